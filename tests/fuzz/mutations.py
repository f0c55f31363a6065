"""Fuzzing inputs shared by the fuzz tests and the fuzz scripts in benchmarks/.

Two halves:

- front end: `seeds()` are the example models and the standard library (each library module
  followed by a model that uses it, so its layers get elaborated), and `mutate` breaks a seed
  with a few of the `MUTATORS` (deleting, duplicating, swapping tokens, truncating, odd bytes,
  huge numbers, deep nesting, long lines, unbalanced braces, stray keywords). `run_check` runs
  `dfdsl check` in-process under a time limit and `judge` says whether the run is acceptable:
  exit 0, or exit 2 with a located, coded diagnostic;
- passes: `random_program` builds a random valid `df` module (layer kinds from tests/df_models.py,
  random shapes that divide over the socket count), and `check_pipeline` lowers it through one of
  the `PASS_ORDERS`, checking that every output verifies, prints and parses back, has the form of
  the stage its pass produces, and keeps the invariants of sharding, kernel looping and df-to-rdu;
- IR: `ir_seeds()` are a few programs printed at every stage of both pipelines, `mutate_ir`
  breaks one (deleting, duplicating, swapping or moving lines, another symbol, tier, number or op
  name), and `judge_opt` says whether `dfdsl opt` over it with random passes was acceptable.

The front-end cases are plain `random.Random` draws from one integer seed, so a case is
reproduced from (seed file, seed) alone.
"""

from __future__ import annotations

import contextlib
import io
import os
import random
import re
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
STDLIB = ROOT / "dfdsl" / "stdlib"

# -- front-end seeds ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Seed:
    """A valid (or, for a library module no example uses, model-less) `.dfl` text to mutate."""

    name: str
    text: bytes


def seeds() -> list[Seed]:
    """Every example, and every library module followed by the model of an example importing it."""
    examples = {p.stem: p.read_bytes() for p in sorted(EXAMPLES.glob("*.dfl"))}
    found = [Seed(f"examples/{name}.dfl", text) for name, text in examples.items()]
    for module in sorted(STDLIB.glob("*.dfl")):
        library = module.read_bytes()
        line = f"import std.{module.stem}\n".encode()
        user = next((text for text in examples.values() if line in text), None)
        # The model's own `import std.X` would define the library's names twice (E004).
        model = user.replace(line, b"") if user is not None else b""
        found.append(Seed(f"dfdsl/stdlib/{module.name}", library + b"\n" + model))
    return found


# -- mutators -----------------------------------------------------------------------------------

TOKEN = re.compile(rb"[A-Za-z_][A-Za-z0-9_]*|[0-9][0-9_]*|\.\.|->|\S")
NUMBER = re.compile(rb"\b[0-9][0-9_]*\b")
NAME = re.compile(rb"\b[A-Za-z_][A-Za-z0-9_]*\b")
KEYWORDS = (
    b"import", b"const", b"layer", b"graph", b"model", b"place", b"run", b"in", b"weight", b"cache",
    b"let", b"for", b"out", b"std", b"B", b"S", b"bf16", b"int32", b"sn40l", b"sockets", b"layers",
    b"linear", b"attention", b"sample", b"weights", b"hbm", b"ddr", b"..", b"->", b"=", b":", b";",
)
HUGE_NUMBERS = (
    b"0", b"-1", b"1", b"4096", b"4097", b"65537", b"16777217", b"1000000000", str(2**31).encode(),
    str(2**62).encode(), str(2**62 + 1).encode(), str(2**63).encode(), str(10**30).encode(),
    b"1_000_000_000_000", b"9" * 5000,
)
ODD_BYTES = (
    b"\x00", b"\xff", b"\xfe\xff", b"\xc3\x28", b"\xe2\x82", b"\xed\xa0\x80", b"\xf4\x90\x80\x80",
    b"\xef\xbb\xbf", b"\r", b"\t", b"\x0b", b"\x1b[31m", "é".encode(), "\u202e".encode(), b"$", b"\\", b'"',
)
BRACKETS = (b"{", b"}", b"(", b")", b"[", b"]")

Mutator = Callable[[bytes, random.Random], bytes]


def _tokens(data: bytes) -> list[re.Match[bytes]]:
    return list(TOKEN.finditer(data))


def _pick(pattern: re.Pattern[bytes], data: bytes, rng: random.Random) -> re.Match[bytes] | None:
    matches = list(pattern.finditer(data))
    return rng.choice(matches) if matches else None


def _splice(data: bytes, start: int, end: int, new: bytes) -> bytes:
    return data[:start] + new + data[end:]


def delete_token(data: bytes, rng: random.Random) -> bytes:
    tokens = _tokens(data)
    if not tokens:
        return data
    t = rng.choice(tokens)
    return _splice(data, t.start(), t.end(), b"")


def delete_line(data: bytes, rng: random.Random) -> bytes:
    lines = data.split(b"\n")
    del lines[rng.randrange(len(lines))]
    return b"\n".join(lines)


def delete_range(data: bytes, rng: random.Random) -> bytes:
    start = rng.randrange(len(data) + 1)
    return _splice(data, start, start + rng.randrange(1, 200), b"")


def duplicate(data: bytes, rng: random.Random) -> bytes:
    """Repeat a token, a line or a range in place (a duplicated `layer` or binding, say)."""
    if rng.random() < 0.5:
        lines = data.split(b"\n")
        i = rng.randrange(len(lines))
        lines[i:i] = [lines[i]] * rng.choice((1, 2, 50))
        return b"\n".join(lines)
    start = rng.randrange(len(data) + 1)
    piece = data[start:start + rng.randrange(1, 400)]
    return _splice(data, start, start, piece)


def swap_tokens(data: bytes, rng: random.Random) -> bytes:
    tokens = _tokens(data)
    if len(tokens) < 2:
        return data
    a, b = sorted(rng.sample(tokens, 2), key=lambda m: m.start())
    return data[:a.start()] + b.group() + data[a.end():b.start()] + a.group() + data[b.end():]


def truncate(data: bytes, rng: random.Random) -> bytes:
    return data[:rng.randrange(len(data) + 1)]


def inject_bytes(data: bytes, rng: random.Random) -> bytes:
    """Odd characters and bytes that are not UTF-8, or random bytes, somewhere in the text."""
    at = rng.randrange(len(data) + 1)
    new = rng.choice(ODD_BYTES) if rng.random() < 0.7 else rng.randbytes(rng.randrange(1, 16))
    return _splice(data, at, at, new)


def replace_number(data: bytes, rng: random.Random) -> bytes:
    """A number becomes 0, -1, one past a limit, 2^63, 10^30 or 5000 digits."""
    match = _pick(NUMBER, data, rng)
    if match is None:
        return data
    return _splice(data, match.start(), match.end(), rng.choice(HUGE_NUMBERS))


def deep_nesting(data: bytes, rng: random.Random) -> bytes:
    """A number wrapped in many parentheses or minus signs, or replaced by a long chain of sums."""
    match = _pick(NUMBER, data, rng)
    if match is None:
        return data
    depth = rng.choice((10, 100, 400, 1000, 5000))
    number = match.group()
    new = rng.choice((
        b"(" * depth + number + b")" * depth,
        b"-" * depth + number,
        b"+".join([number] * depth),
        b"(" * depth + number,  # unbalanced as well
    ))
    return _splice(data, match.start(), match.end(), new)


def long_line(data: bytes, rng: random.Random) -> bytes:
    """A very long name, comment, number or list of statements on one line."""
    at = rng.choice([m.start() for m in NAME.finditer(data)] or [0])
    n = rng.choice((1_000, 100_000))
    new = rng.choice((b"x" * n, b"#" + b"c" * n + b"\n", b"1" * n, b";" * n, b"let a = 1 " * (n // 10)))
    return _splice(data, at, at, new)


def unbalance(data: bytes, rng: random.Random) -> bytes:
    """Remove a bracket, or add one (or a run of them) somewhere."""
    brackets = [m for m in re.finditer(rb"[{}()\[\]]", data)]
    if brackets and rng.random() < 0.5:
        b = rng.choice(brackets)
        return _splice(data, b.start(), b.end(), b"")
    at = rng.randrange(len(data) + 1)
    return _splice(data, at, at, rng.choice(BRACKETS) * rng.choice((1, 1, 3, 1000)))


def insert_keyword(data: bytes, rng: random.Random) -> bytes:
    tokens = _tokens(data)
    at = rng.choice(tokens).start() if tokens else 0
    return _splice(data, at, at, rng.choice(KEYWORDS) + b" ")


def replace_name(data: bytes, rng: random.Random) -> bytes:
    """A name becomes another name of the file or a keyword: type errors, unknown and shadowed names."""
    names = list(NAME.finditer(data))
    if not names:
        return data
    old = rng.choice(names)
    new = rng.choice(names).group() if rng.random() < 0.7 else rng.choice(KEYWORDS)
    return _splice(data, old.start(), old.end(), new)


MUTATORS: dict[str, Mutator] = {
    f.__name__: f
    for f in (
        delete_token, delete_line, delete_range, duplicate, swap_tokens, truncate, inject_bytes,
        replace_number, deep_nesting, long_line, unbalance, insert_keyword, replace_name,
    )
}


def mutate(data: bytes, rng: random.Random, rounds: int | None = None) -> tuple[bytes, list[str]]:
    """`data` after 1 to 3 (or `rounds`) random mutators, and their names in order."""
    applied = []
    for _ in range(rounds if rounds is not None else rng.choice((1, 1, 2, 3))):
        name = rng.choice(sorted(MUTATORS))
        data = MUTATORS[name](data, rng)
        applied.append(name)
    return data, applied


@dataclass(frozen=True)
class Case:
    """One front-end fuzz case: the seed file, the random seed that mutates it, the mutators it
    drew and the mutated text."""

    seed: Seed
    number: int
    mutators: tuple[str, ...]
    data: bytes


def make_case(seed: Seed, number: int) -> Case:
    data, applied = mutate(seed.text, random.Random(number))
    return Case(seed, number, tuple(applied), data)


# -- running and judging `dfdsl check` ---------------------------------------------------------


class CaseTimeout(BaseException):
    """A case ran past its time limit. A BaseException, so the CLI's catch-all does not swallow it."""


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise `CaseTimeout` in the main thread after `seconds` (POSIX interval timer)."""

    def expire(signum, frame):
        raise CaseTimeout(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@dataclass(frozen=True)
class Outcome:
    code: int | None
    """The exit code, or None when the run raised or timed out."""
    stdout: str
    stderr: str
    error: str = ""
    """What escaped `main` (an exception, or the time limit), if anything."""


def run_cli(argv: list[str], seconds: float = 10.0) -> Outcome:
    """`dfdsl.cli.main(argv)` in-process, its output captured, with the traceback on internal errors."""
    from dfdsl.cli import main

    out, err = io.StringIO(), io.StringIO()
    debug = os.environ.get("DFDSL_DEBUG")
    os.environ["DFDSL_DEBUG"] = "1"  # an internal error then prints its traceback too
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), time_limit(seconds):
            code = main(argv)
        return Outcome(code, out.getvalue(), err.getvalue())
    except CaseTimeout as timeout:
        return Outcome(None, out.getvalue(), err.getvalue(), f"timeout: {timeout}")
    except KeyboardInterrupt:
        raise
    except BaseException as escaped:  # noqa: BLE001 - whatever escapes main is the finding
        return Outcome(None, out.getvalue(), err.getvalue(), f"{type(escaped).__name__}: {escaped}")
    finally:
        if debug is None:
            os.environ.pop("DFDSL_DEBUG", None)
        else:
            os.environ["DFDSL_DEBUG"] = debug


LOCATED = re.compile(r"^(?P<path>.+?):(?P<line>\d+):(?P<column>\d+): error: .+ \[(?P<code>E\d{3})\]$")
NO_MODEL = re.compile(r"^dfdsl: error: .+ defines no model \[E016\]$")
"""The one documented diagnostic on a file without a location: a file with no model at all."""


def judge(outcome: Outcome) -> str | None:
    """None when the run is acceptable: exit 0, or exit 2 whose first line is a located, coded
    diagnostic (or says the file has no model); else what is wrong."""
    from dfdsl.diagnostics import ERROR_CODES

    if outcome.error:
        return outcome.error
    if outcome.code == 0:
        return None
    lines = outcome.stderr.split("\n")  # only \n ends a line for the parser's line numbers
    if outcome.code != 2:
        internal = next((line for line in lines if line.startswith("dfdsl: internal error")), lines[0])
        return f"exit {outcome.code}: {internal}"
    first = lines[0]
    if NO_MODEL.match(first):
        return None
    located = LOCATED.match(first)
    if located is None:
        return f"exit 2 without a located diagnostic: {first!r}"
    if located["code"] not in ERROR_CODES:
        return f"undocumented code {located['code']}: {first}"
    return None


def check_case(case: Case, folder: Path, seconds: float = 10.0) -> tuple[Outcome, str | None]:
    """Write the case to `folder`/model.dfl, run `dfdsl check` on it, and judge the run."""
    path = folder / "model.dfl"
    path.write_bytes(case.data)
    outcome = run_cli(["check", str(path)], seconds)
    return outcome, judge(outcome)


def signature(problem: str, outcome: Outcome) -> str:
    """A crash's identity for de-duplication: its kind and the innermost frame of its traceback."""
    frames = re.findall(r'File "([^"]+)", line (\d+), in (\w+)', outcome.stderr)
    where = f"{Path(frames[-1][0]).name}:{frames[-1][2]}" if frames else ""
    kind = re.sub(r"\d+", "N", problem.split(":")[0] if ":" in problem else problem)
    internal = re.search(r"internal error: (\w+)", outcome.stderr)
    return " ".join(filter(None, (kind, internal[1] if internal else "", where)))


# -- random df programs for the passes ---------------------------------------------------------

SOCKET_COUNTS = (1, 2, 4, 8)
FUSION_MODES = ("none", "block", "layer")


@dataclass(frozen=True)
class Program:
    """A random valid df program: its layer stack (names of df_models layer kinds) and config."""

    stack: tuple[str, ...]
    config: dict[str, int | str] = field(default_factory=dict)

    def build(self):
        import df_models

        kinds = {"llama": df_models.LLAMA, "moe": df_models.MOE, "mla_dense": df_models.MLA_DENSE,
                 "mla_moe": df_models.MLA_MOE}
        return df_models.build_model("fuzz", [kinds[k] for k in self.stack],
                                     df_models.TinyConfig(**self.config))  # type: ignore[arg-type]


def random_program(rng: random.Random) -> Program:
    """A stack of 1 to 6 layers of up to four kinds (runs of one kind, or mixed), with shapes
    chosen so that the socket count divides everything sharding splits."""
    n = rng.choice(SOCKET_COUNTS)
    kinds = ("llama", "moe", "mla_dense", "mla_moe")
    layers = rng.randint(1, 6)
    if rng.random() < 0.5:
        runs = [rng.choice(kinds) for _ in range(rng.randint(1, 3))]
        sizes = [1 + rng.randrange(layers) for _ in runs]
        stack = tuple(kind for kind, size in zip(runs, sizes) for _ in range(size))
    else:
        stack = tuple(rng.choice(kinds) for _ in range(layers))
    heads = n * rng.choice((1, 2, 3, 4))
    kv_choices = [k for k in range(1, heads + 1) if heads % k == 0 and (k % n == 0 or n % k == 0)]
    head_dim = rng.choice((8, 16, 32))
    config: dict[str, int | str] = {
        "hidden": rng.choice((32, 48, 64, 96, 128)),
        "heads": heads,
        "kv_heads": rng.choice(kv_choices),
        "head_dim": head_dim,
        "ffn": n * rng.choice((4, 8, 12, 16)),
        "vocab": n * rng.choice((8, 25, 50)),
        "experts": rng.choice((2, 4, 8)),
        "expert_ffn": n * rng.choice((2, 4, 8)),
        "shared_ffn": n * rng.choice((2, 4, 8)),
        "latent": rng.choice((8, 16, 32)),
        "nope_dim": rng.choice((8, 16)),
        "rope_dim": rng.choice((4, 8)),
        "v_head": rng.choice((8, 16)),
        "dtype": rng.choice(("bf16", "fp16", "fp32", "fp8")),
        "batch": rng.choice((1, 2, 8, 64)),
        "context": rng.choice((1, 16, 1000, 4096)),
        "tokens": rng.choice((1, 4, 16)),
        "sockets": n,
    }
    config["top_k"] = rng.randint(1, int(config["experts"]))
    return Program(stack, config)


@dataclass(frozen=True)
class PassOrder:
    """One way through the passes: shard (or not), fuse in a mode, loop 0 to 2 times, lower."""

    shard: bool = True
    fusion: str = "layer"
    loops: int = 1
    rdu: bool = True

    def describe(self) -> str:
        steps = (["shard-tensor-parallel"] if self.shard else []) + [f"fuse{{mode={self.fusion}}}"]
        steps += ["kernel-looping"] * self.loops + (["place-memory", "df-to-rdu"] if self.rdu else [])
        return ",".join(steps)


PASS_ORDERS = tuple(
    PassOrder(shard, fusion, loops, rdu)
    for shard in (True, False) for fusion in FUSION_MODES for loops in (0, 1, 2) for rdu in (True, False)
)


def pass_list(order: PassOrder):
    from dfdsl.lowering.pipeline import make_pass

    passes = [make_pass("shard-tensor-parallel")] if order.shard else []
    passes.append(make_pass("fuse", mode=order.fusion))
    passes += [make_pass("kernel-looping") for _ in range(order.loops)]
    if order.rdu:
        passes += [make_pass("place-memory"), make_pass("df-to-rdu")]
    return passes


def round_trip(module) -> None:
    """The module verifies, and its printed form parses back to a module that prints the same."""
    from xdsl.parser import Parser

    from dfdsl.lowering.pipeline import context

    module.verify()
    text = str(module)
    again = Parser(context(), text).parse_module()
    again.verify()
    assert str(again) == text, "the module does not print the same after parsing back"


def declared_bytes(module, batch: int, context: int) -> dict[str, int]:
    """Bytes of each df.weight and df.kv_cache, by tensor name."""
    from dfdsl.dialects import df

    return {op.tensor_name.data: op.result.type.num_bytes(batch, context)
            for op in module.walk() if isinstance(op, df.WeightOp | df.KvCacheOp)}


def launch_count(module) -> tuple[int, int]:
    """(df.launch ops, kernel invocations they stand for: a looped launch counts its trip count)."""
    from xdsl.traits import SymbolTable

    from dfdsl.dialects import df

    launches = [op for op in module.walk() if isinstance(op, df.LaunchOp)]
    invocations = 0
    for launch in launches:
        kernel = SymbolTable.lookup_symbol(module, launch.callee)
        loops = [op for op in kernel.walk() if isinstance(op, df.LoopOp)] if kernel is not None else []
        invocations += loops[0].trip_count.value.data if loops else 1
    return len(launches), invocations


def check_pipeline(program: Program, order: PassOrder, batch: int = 3, context: int = 17,
                   print_parse: bool = True) -> dict[str, float] | None:
    """Lower `program` through `order`, checking after every pass that the module verifies (and,
    with `print_parse`, round-trips), has the form of the stage the pass produces, and the pass's
    invariant holds; return the rdu step totals at
    `batch`, `context` (None without rdu). Raises AssertionError (or the pass's own exception)."""
    from xdsl.context import Context

    from dfdsl.lowering.pipeline import context as make_context
    from dfdsl.lowering.stages import apply_checked

    module = program.build()
    round_trip(module)
    sockets = int(program.config.get("sockets", 1))
    ctx: Context = make_context()
    totals = None
    looped = False
    for p in pass_list(order):
        before_bytes = declared_bytes(module, batch, context)
        before_launches = launch_count(module)
        before_text = str(module) if looped and p.name == "kernel-looping" else None
        apply_checked(p, ctx, module)
        if print_parse:
            round_trip(module)
        if p.name == "shard-tensor-parallel":
            after = declared_bytes(module, batch, context)
            assert after.keys() == before_bytes.keys(), "sharding changed the declared tensors"
            for name, old in before_bytes.items():
                factor = split_factor(name, program)
                assert after[name] * factor == old, (
                    f"{name}: {old} bytes became {after[name]} over {sockets} sockets, not 1/{factor}")
        elif p.name == "kernel-looping":
            after_launches = launch_count(module)
            assert after_launches[1] == before_launches[1], (
                f"kernel looping changed the kernel invocations per step: {before_launches} -> {after_launches}")
            assert sum(declared_bytes(module, batch, context).values()) == sum(before_bytes.values()), (
                "kernel looping changed the declared bytes")
            if order.fusion == "layer" and not looped:
                assert after_launches[0] == before_launches[0] - sum(
                    size - 1 for size in _layer_runs(program.stack)), "a run of identical layers is not one launch"
            assert before_text is None or str(module) == before_text, "kernel looping twice changed the module"
            looped = True
        elif p.name == "df-to-rdu":
            from df_models import step_totals

            totals = step_totals(module, batch, context)
    return totals


SPLIT_BY_SOCKETS = frozenset((
    "wq", "wo", "w_gate", "w_up", "w_down", "lm_head", "experts_gate", "experts_up", "experts_down",
    "kv_up", "shared_gate", "shared_up", "shared_down",
))
"""Weights that tensor parallelism divides by the socket count: heads, FFN width, vocabulary."""
SPLIT_BY_KV_HEADS = frozenset(("wk", "wv", "k_cache", "v_cache"))
"""Tensors split by KV heads: over the sockets, or one KV head per socket when there are fewer."""


def split_factor(name: str, program: Program) -> int:
    """By how much sharding divides the bytes of the tensor `name` of `program`."""
    sockets = int(program.config.get("sockets", 1))
    kv_heads = int(program.config.get("kv_heads", 2))
    short = name.rsplit(".", 1)[-1]
    if short in SPLIT_BY_SOCKETS:
        return sockets
    if short in SPLIT_BY_KV_HEADS and sockets > 1:
        return sockets if kv_heads % sockets == 0 else kv_heads
    return 1


def _layer_runs(stack: tuple[str, ...]) -> list[int]:
    """Lengths of the maximal runs of one layer kind in a stack."""
    runs: list[int] = []
    for i, kind in enumerate(stack):
        if i and stack[i - 1] == kind:
            runs[-1] += 1
        else:
            runs.append(1)
    return runs


def check_looping_keeps_work(program: Program, fusion: str, batch: int, context: int) -> None:
    """df-to-rdu's FLOPs and bytes per step are the same with and without kernel looping."""
    import math

    looped = check_pipeline(program, PassOrder(True, fusion, 1, True), batch, context, print_parse=False)
    plain = check_pipeline(program, PassOrder(True, fusion, 0, True), batch, context, print_parse=False)
    assert looped is not None and plain is not None
    for key in plain:
        assert math.isclose(looped[key], plain[key], rel_tol=1e-12), (
            f"{key} per step: {plain[key]} without kernel looping, {looped[key]} with")


def random_passes(rng: random.Random) -> list:
    """1 to 5 passes in any order, with random options: what `dfdsl opt -p` lets a user write."""
    from dfdsl.lowering.pipeline import make_pass

    choices = (
        lambda: make_pass("shard-tensor-parallel", sockets=rng.choice((0, 1, 2, 3, 4, 8))),
        lambda: make_pass("fuse", mode=rng.choice(FUSION_MODES)),
        lambda: make_pass("kernel-looping", min_calls=rng.choice((2, 3))),
        lambda: make_pass("place-memory"),
        lambda: make_pass("df-to-rdu"),
    )
    return [rng.choice(choices)() for _ in range(rng.randint(1, 5))]


def check_any_order(program: Program, rng: random.Random) -> list[str]:
    """Run random passes over `program`: each either works, leaving a module that verifies, has the
    form of the stage the pass produces and round-trips, or stops with a DiagnosticException (not a
    failed verification). Returns what happened, one line per pass."""
    from xdsl.utils.exceptions import DiagnosticException

    from dfdsl.errors import VerificationError
    from dfdsl.lowering.pipeline import context
    from dfdsl.lowering.stages import apply_checked

    module = program.build()
    ctx = context()
    log = []
    for p in random_passes(rng):
        try:
            apply_checked(p, ctx, module)
        except VerificationError as err:
            raise AssertionError(f"{p.name} left a module that does not verify: {err}") from err
        except DiagnosticException as err:
            log.append(f"{p.name}: stopped: {err}")
            break
        except Exception as err:
            raise AssertionError(f"{p.name} crashed after {log}: {type(err).__name__}: {err}") from err
        round_trip(module)
        log.append(f"{p.name}: ok")
    return log


# -- mutated IR through `dfdsl opt` -------------------------------------------------------------

IR_PASSES = ("shard-tensor-parallel", "shard-tensor-parallel{sockets=2}", "fuse", "fuse{mode=none}",
             "fuse{mode=block}", "gpu-partition", "kernel-looping", "place-memory", "df-to-rdu", "df-to-nv")
IR_PIPELINES = {
    "df": [], "sharded": ["shard-tensor-parallel"], "fused": ["shard-tensor-parallel", "fuse"],
    "fused-none": ["shard-tensor-parallel", "fuse{mode=none}"],
    "looped": ["shard-tensor-parallel", "fuse", "kernel-looping"],
    "placed": ["shard-tensor-parallel", "fuse", "kernel-looping", "place-memory"],
    "rdu": ["shard-tensor-parallel", "fuse", "kernel-looping", "place-memory", "df-to-rdu"],
    "gpu-fused": ["shard-tensor-parallel", "gpu-partition"],
    "nv": ["shard-tensor-parallel", "gpu-partition", "place-memory", "df-to-nv"],
}
"""The stages the IR seeds are printed at, and the passes that take a program there."""
IR_PROGRAMS = (
    Program(("llama", "llama", "moe"), {"sockets": 2, "kv_heads": 2}),
    Program(("mla_dense", "mla_moe", "mla_moe"), {"sockets": 1}),
)
SYMBOL = re.compile(r"@[A-Za-z_][\w.$-]*")
TIER = re.compile(r"\b(sram|hbm|ddr)\b")
OP_NAME = re.compile(r"\b(df|rdu|nv)\.[a-z_]+\b")
INTEGER = re.compile(r"\b\d+\b")


def ir_seeds() -> list[tuple[str, str]]:
    """(name, text) of each of `IR_PROGRAMS` printed at each stage of `IR_PIPELINES`."""
    from xdsl.passes import PassPipeline

    from dfdsl.lowering.pipeline import run_passes
    from dfdsl.universe import DFDSL_UNIVERSE

    seeds = []
    for i, program in enumerate(IR_PROGRAMS):
        for stage, spec in IR_PIPELINES.items():
            module = program.build()
            passes = PassPipeline.parse_spec(DFDSL_UNIVERSE.all_passes, ",".join(spec)).passes if spec else []
            run_passes(module, list(passes))
            seeds.append((f"program {i} at {stage}", str(module)))
    return seeds


def _replace_match(text: str, pattern: re.Pattern[str], rng: random.Random, choices: list[str]) -> tuple[str, str]:
    """`text` with one match of `pattern` replaced by one of `choices`, and which."""
    matches = list(pattern.finditer(text))
    if not matches:
        return text, "nothing"
    m, new = rng.choice(matches), rng.choice(choices)
    line = text.count("\n", 0, m.start()) + 1
    return text[:m.start()] + new + text[m.end():], f"{m.group()} -> {new} on line {line}"


def mutate_ir(text: str, rng: random.Random) -> tuple[str, str]:
    """`text` with one random change, and what the change was."""
    lines = text.split("\n")
    i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
    kind = rng.choice(("delete", "duplicate", "swap", "move", "symbol", "tier", "number", "op"))
    if kind == "delete":
        del lines[i]
    elif kind == "duplicate":
        lines.insert(i, lines[i])
    elif kind == "swap":
        lines[i], lines[j] = lines[j], lines[i]
    elif kind == "move":
        lines.insert(j, lines.pop(i))
    else:
        pattern, choices = {
            "symbol": (SYMBOL, sorted(set(SYMBOL.findall(text))) + ["@nope"]),
            "tier": (TIER, ["sram", "hbm", "ddr", "hmb"]),
            "number": (INTEGER, ["0", "1", "2", "3", "7", "64", str(2**40)]),
            "op": (OP_NAME, sorted({m.group() for m in OP_NAME.finditer(text)})),
        }[kind]
        changed, what = _replace_match(text, pattern, rng, choices)
        return changed, f"{kind}: {what}"
    return "\n".join(lines), f"{kind} line {i + 1}" + (f" and {j + 1}" if kind in ("swap", "move") else "")


OPT_ERROR = re.compile(r"^.+?(:\d+:\d+)?: error: .+ \[(?P<code>E\d{3})\]$")


def judge_opt(outcome: Outcome) -> str | None:
    """None when a `dfdsl opt` run is acceptable: exit 0, or exit 2 whose first line that is not a
    warning or remark is an error with a documented code; else what is wrong."""
    from dfdsl.diagnostics import ERROR_CODES

    if outcome.error:
        return outcome.error
    if outcome.code == 0:
        return None
    lines = [line for line in outcome.stderr.split("\n") if not line.startswith(("warning:", "remark:"))]
    if outcome.code != 2:
        internal = next((line for line in lines if line.startswith("dfdsl: internal error")), lines[0])
        return f"exit {outcome.code}: {internal}"
    error = OPT_ERROR.match(lines[0])
    if error is None:
        return f"exit 2 without a coded error: {lines[0]!r}"
    if error["code"] not in ERROR_CODES:
        return f"undocumented code {error['code']}: {lines[0]}"
    return None


def describe(program: Program, order: PassOrder) -> str:
    """A reproducer line for a failing pass-fuzz case."""
    return f"stack={list(program.stack)} config={program.config} passes={order.describe()}"


__all__ = [
    "Case", "Outcome", "PassOrder", "Program", "Seed", "MUTATORS", "PASS_ORDERS", "IR_PASSES", "check_case",
    "check_any_order", "check_looping_keeps_work", "check_pipeline", "describe", "ir_seeds", "judge", "judge_opt",
    "make_case", "mutate", "mutate_ir", "random_passes", "random_program", "run_cli", "split_factor", "seeds",
    "signature", "time_limit",
]
