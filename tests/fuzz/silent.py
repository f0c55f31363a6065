"""Fuzzing for silent wrong answers: inputs that should be refused, and the check that they were.

A fuzz case ends in one of five outcomes (`OUTCOMES`): a clean error (exit 2 and a documented
code), a success (exit 0, and the output passes an independent check), a crash (any other exit,
or an exception escaping the command), a hang (past the time limit), or a silent acceptance (exit
0 although the input was wrong, or with an output that cannot be true). The independent checks
here share no code with what they check: they read the values, the specification or the IR
themselves.

Three kinds of case:

- hardware values (`hardware_case`): one to three keys of a bundled hardware file set to NaN, an
  infinity, a subnormal, a huge or negative number, a fraction above one, a string, or a random
  value near the real one, given as a file (`dfdsl run --hardware`) or, for numbers, as
  `dfdsl sweep --set`. `implausible` says what is physically wrong with the machine that makes;
  a run that succeeds must have found nothing wrong, and print only finite, non-negative figures
  and at most 100% of the roofline;
- pass pipelines (`random_pipeline`): strings of pass names, options, braces, quotes, commas and
  odd characters for `dfdsl opt -p`. A pipeline that runs must be well formed by `pipeline_problems`
  (balanced braces, no option given twice);
- IR (`ir_case`): the IR seeds of `mutations.ir_seeds` with a line, a symbol, a tier, a number, a
  socket count, a target or a tensor name changed. IR that `dfdsl opt` accepts must pass
  `consistency_problems`: collectives over the program's socket count, a graph sharded to its
  sockets, unique tensor, buffer and symbol names, known tiers, classes and targets.
"""

from __future__ import annotations

import csv
import io
import json
import math
import random
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from fuzz.mutations import OPT_ERROR, Outcome, ROOT, mutate_ir, run_cli

OUTCOMES = ("clean error", "success", "crash", "hang", "silent acceptance")
HARDWARE_DIR = ROOT / "dfdsl" / "hardware"
TINY = """import std.llama

model tiny : llama {
  dtype = bf16; vocab = 100; hidden = 64; layers = 2
  heads = 4; kv_heads = 2; head_dim = 16; ffn = 128
}
run decode { batch = 2; context = 32; tokens = 4; target = sn40l(sockets = 2) }
"""


def classify(outcome: Outcome, silent: list[str]) -> tuple[str, str]:
    """(outcome, what): which of `OUTCOMES` a run is, given what the independent check found
    wrong with its input or output (`silent`), and the line that says why."""
    from dfdsl.diagnostics import ERROR_CODES

    if outcome.error.startswith("timeout"):
        return "hang", outcome.error
    if outcome.error == "SystemExit: 2":  # argparse refused an option (`-p -2x` reads as a flag): usage, exit 2
        return "clean error", "argparse usage"
    if outcome.error:
        return "crash", outcome.error
    lines = [line for line in outcome.stderr.split("\n") if not line.startswith(("warning:", "remark:"))]
    if outcome.code == 2:
        error = OPT_ERROR.match(lines[0])
        if error is None or error["code"] not in ERROR_CODES:
            return "crash", f"exit 2 without a documented code: {lines[0]!r}"
        return "clean error", lines[0]
    if outcome.code != 0:
        return "crash", f"exit {outcome.code}: " + next((line for line in lines if "internal error" in line), lines[0])
    if silent:
        return "silent acceptance", "; ".join(silent)
    return "success", ""


# -- hardware values ----------------------------------------------------------------------------

SPECIAL_VALUES = (
    "nan", "+nan", "inf", "-inf", "0", "0.0", "-0.0", "-1", "-1e-9", "5e-324", "2.2250738585072014e-308",
    "1e-300", "1e-13", "1.5", "1e19", "1e30", "1e308", "1.7976931348623157e308", str(10**30), str(2**63 - 1),
    "1040.5", '"fast"', "true", "[1, 2]", "{ a = 1 }", '""',
)
"""What a careless or hostile hardware file says: not numbers, not finite, not positive, subnormal,
huge, not whole, not a number at all."""


@dataclass(frozen=True)
class HardwareCase:
    """`edits` (section, key, TOML value) to the bundled `target` file, given as a file or,
    with `via_set`, as `dfdsl sweep --set`."""

    target: str
    edits: tuple[tuple[str, str, str], ...]
    via_set: bool

    def describe(self) -> str:
        how = "--set" if self.via_set else "file"
        return f"{self.target} {how}: " + ", ".join(f"[{s}] {k} = {v}" for s, k, v in self.edits)


def _numeric_keys(data: dict, prefix: str = "") -> list[tuple[str, str, float]]:
    """(section, key, value) of every number in a parsed hardware file."""
    found = []
    for key, value in data.items():
        if isinstance(value, dict):
            found += _numeric_keys(value, f"{prefix}{key}.")
        elif isinstance(value, int | float) and not isinstance(value, bool):
            found.append((prefix.rstrip("."), key, float(value)))
    return found


def hardware_case(rng: random.Random) -> HardwareCase:
    target = rng.choice(("sn40l", "sn40l", "dgx_h100"))
    keys = _numeric_keys(tomllib.loads((HARDWARE_DIR / f"{target}.toml").read_text(encoding="utf-8")))
    via_set = rng.random() < 0.3
    edits = []
    for section, key, value in rng.sample(keys, rng.choice((1, 1, 2, 3))):
        if rng.random() < 0.4:  # near the real value: most such machines are fine
            new = value * 10 ** rng.uniform(-3, 3)
            text = str(round(new)) if float(value).is_integer() and rng.random() < 0.8 else repr(new)
        else:
            text = rng.choice(SPECIAL_VALUES)
        if via_set and text.startswith(('"', "[", "{", "t")):
            text = "nan"
        edits.append((section, key, text))
    return HardwareCase(target, tuple(edits), via_set)


def _toml_value(text: str) -> object:
    return tomllib.loads(f"v = {text}")["v"]


def implausible(case: HardwareCase) -> list[str]:
    """What is physically wrong with the machine `case` describes, judged from its values alone:
    a value that is not a finite positive number (or is subnormal, absurdly large, a fraction
    above one, a count that is not whole), or a DDR faster than its HBM."""
    data = tomllib.loads((HARDWARE_DIR / f"{case.target}.toml").read_text(encoding="utf-8"))
    for section, key, text in case.edits:
        table = data
        for part in section.split("."):
            table = table[part]
        table[key] = float(text) if case.via_set else _toml_value(text)
    problems = []
    for section, key, _ in _numeric_keys(data) + [(s, k, 0.0) for s, k, _ in case.edits]:
        table = data
        for part in section.split("."):
            table = table[part]
        value = table[key]
        where = f"{section}.{key} = {value!r}"
        if isinstance(value, bool) or not isinstance(value, int | float):
            problems.append(f"{where} is not a number")
        elif not math.isfinite(value) or value <= 0:
            problems.append(f"{where} is not a finite positive number")
        elif value < 2.2250738585072014e-308:
            problems.append(f"{where} is subnormal")
        elif value > 1e20 or (key.endswith("_s") and not key.endswith("_per_s") and value > 100):
            problems.append(f"{where} is absurdly large")
        elif key.endswith(("efficiency", "fraction")) and value > 1:
            problems.append(f"{where} is a fraction above one")
        elif key in ("pcus", "pmus", "sms", "gpus") and value != int(value):
            problems.append(f"{where} is not a whole count")
    hbm, ddr = data["memory"]["hbm"]["bandwidth_bytes_per_s"], data["memory"]["ddr"]["bandwidth_bytes_per_s"]
    if all(isinstance(v, int | float) and math.isfinite(v) for v in (hbm, ddr)) and ddr > hbm:
        problems.append(f"DDR ({ddr!r} bytes/s) is faster than HBM ({hbm!r})")
    return sorted(set(problems))


def untrue_figures(rows: list[dict]) -> list[str]:
    """What no true report holds: a figure that is not a finite non-negative number, no time per
    token, or more than 100% of the HBM roofline."""
    problems = []
    for row in rows:
        for key, value in row.items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                continue
            if not math.isfinite(value) or value < 0:
                problems.append(f"{key} = {value!r}")
        if not row.get("ms_per_token", 0) > 0:
            problems.append(f"ms_per_token = {row.get('ms_per_token')!r}")
        if row.get("peak_fraction", 0) > 1 + 1e-9:
            problems.append(f"peak_fraction = {row['peak_fraction']!r} (above 100% of the roofline)")
    return problems


def _number(text: str) -> object:
    try:
        return float(text)
    except ValueError:
        return text


SET_SECTIONS = {"gpu": "chip", "gpu_assumptions": "assumptions"}
"""`--set` names a GPU's values as its `GpuHardware` does (`chip.sms`), not as its file does (`gpu.sms`)."""


def run_hardware_case(case: HardwareCase, folder: Path, seconds: float = 60.0) -> tuple[str, str]:
    """Run `case` in `folder`; its outcome and why."""
    model = folder / "tiny.dfl"
    model.write_text(TINY, encoding="utf-8")
    if case.via_set:
        argv = ["sweep", str(model), "-q", "--workers", "1", "--target", case.target]
        for section, key, text in case.edits:
            argv += ["--set", f"{SET_SECTIONS.get(section, section)}.{key}={text}"]
    else:
        text = (HARDWARE_DIR / f"{case.target}.toml").read_text(encoding="utf-8")
        for section, key, value in case.edits:
            text = _set_key(text, section, key, value)
        (folder / "chip.toml").write_text(text, encoding="utf-8")
        argv = ["run", str(model), "--json", "--hardware", str(folder / "chip.toml")]
    outcome = run_cli(argv, seconds)
    silent: list[str] = []
    if outcome.code == 0 and not outcome.error:
        if case.via_set:
            rows = [{k: _number(v) for k, v in row.items()} for row in csv.DictReader(io.StringIO(outcome.stdout))]
            if all(row["error"] for row in rows):
                return "clean error", f"every point: {rows[0]['error']}"
            rows = [row for row in rows if not row["error"]]
        else:
            rows = [json.loads(outcome.stdout)]
        silent = implausible(case) + untrue_figures(rows)
    return classify(outcome, silent)


def _set_key(text: str, section: str, key: str, value: str) -> str:
    """`text` (a hardware file) with `key` of `[section]` set to `value`, comments kept."""
    lines = text.split("\n")
    current = ""
    for i, line in enumerate(lines):
        stripped = line.split("#", 1)[0].strip()
        if stripped.startswith("["):
            current = stripped.strip("[]")
        elif current == section and re.match(rf"{key}\s*=", stripped):
            lines[i] = f"{key} = {value}"
            return "\n".join(lines)
    raise KeyError(f"no {key} in [{section}]")


# -- pass pipelines -----------------------------------------------------------------------------

PIPELINE_PIECES = (
    "shard-tensor-parallel", "fuse", "kernel-looping", "place-memory", "df-to-rdu", "gpu-partition", "df-to-nv",
    "no-such-pass", "mlir-opt", "fuse-", "Fuse", "{", "}", "{", "}", "=", "=", ",", ",", " ", " ", '"', "'", "[", "]",
    "mode", "mode=layer", "mode=block", "mode=none", "mode=fast", "sockets", "sockets=2", "sockets=-1",
    "sockets=0", "sockets=99999999999999999999", "min-calls", "min_calls=2", "min-calls=0", "min-calls=x",
    "remarks=true", "remarks=maybe", "target=sn40l", 'target="dgx_h100"', 'hardware="/dev/zero"', "1", "-2",
    "1.5", "1e400", "nan", "\t", "\n", "\x00", "é", "\u202e", "(", ")", "\\",
)


def random_pipeline(rng: random.Random) -> str:
    """A `-p` value: mostly passes with options glued by commas, with the odd piece anywhere."""
    if rng.random() < 0.5:
        passes = []
        for _ in range(rng.randint(1, 4)):
            name = rng.choice(PIPELINE_PIECES[:8])
            options = [rng.choice(PIPELINE_PIECES[27:46]) for _ in range(rng.choice((0, 0, 1, 2, 3)))]
            passes.append(name + ("{" + " ".join(options) + "}" if options else ""))
        spec = ",".join(passes)
        for _ in range(rng.choice((0, 0, 1, 2))):  # a slip somewhere
            at = rng.randrange(len(spec) + 1)
            spec = spec[:at] + rng.choice(PIPELINE_PIECES) + spec[at + rng.choice((0, 0, 1)):]
        return spec
    return "".join(rng.choice(PIPELINE_PIECES) for _ in range(rng.randint(1, 8)))


def pipeline_problems(spec: str) -> list[str]:
    """What makes `spec` malformed, read independently of xDSL's lexer: braces that do not pair,
    a quote left open, an empty pass, an option given twice to one pass."""
    problems = []
    depth, quoted = 0, False
    for char in spec:
        if char == '"':
            quoted = not quoted
        elif not quoted and char == "{":
            depth += 1
            if depth > 1:
                problems.append("nested braces")
        elif not quoted and char == "}":
            depth -= 1
            if depth < 0:
                problems.append("a } without its {")
                depth = 0
    if depth or quoted:
        problems.append("a { or a quote left open")
    for body in re.findall(r"\{([^{}\"]*)\}", spec):
        names = [item.split("=", 1)[0].replace("-", "_") for item in body.split(" ") if item]
        if len(names) != len(set(names)):
            problems.append(f"an option given twice in {{{body}}}")
    if not problems and any(not part.strip() for part in re.sub(r"\{[^{}]*\}", "", spec).split(",")):
        problems.append("an empty pass between commas")
    return problems


def run_pipeline_case(spec: str, ir: Path, seconds: float = 30.0) -> tuple[str, str]:
    outcome = run_cli(["opt", str(ir), "-p", spec], seconds)
    return classify(outcome, pipeline_problems(spec) if outcome.code == 0 else [])


# -- IR consistency -----------------------------------------------------------------------------

KNOWN_TIERS = ("", "sram", "hbm", "ddr")
TENSOR_CLASSES = ("weights", "kv_cache", "activations", "inputs")
TARGET_KINDS = {"sn40l": "rdu", "dgx_a100": "gpu", "dgx_h100": "gpu", "dgx_h100_nccl": "gpu", "dgx_h200": "gpu"}
"""The bundled machines and their kinds, as their files say (`test_the_fuzz_knows_the_targets`)."""
PROGRAM_KINDS = {"rdu.program": "rdu", "nv.program": "gpu"}


def _integer(op, key: str) -> int | None:
    value = op.properties.get(key)
    if value is None:
        value = op.attributes.get(key)
    return value.value.data if value is not None and hasattr(value, "value") else None


def _string(op, key: str) -> str | None:
    value = op.properties.get(key)
    if value is None:
        value = op.attributes.get(key)
    return value.data if value is not None and isinstance(getattr(value, "data", None), str) else None


def consistency_problems(module) -> list[str]:
    """What contradicts itself in `module`, read op by op from names and properties (none of the
    dialects' own checks): socket counts, names, tiers, classes and targets."""
    problems = []
    programs = {op.name: op for op in module.walk() if op.name in ("rdu.program", "nv.program", "df.graph")}
    sockets = {"rdu": _integer(programs["rdu.program"], "sockets") if "rdu.program" in programs else None,
               "nv": _integer(programs["nv.program"], "gpus") if "nv.program" in programs else None}
    symbols: dict[str, int] = {}
    for op in module.walk():
        if op.name == "rdu.all_reduce" and sockets["rdu"] is not None and _integer(op, "sockets") != sockets["rdu"]:
            problems.append(f"rdu.all_reduce over {_integer(op, 'sockets')} sockets in a {sockets['rdu']}-socket program")
        if op.name == "nv.all_reduce" and sockets["nv"] is not None and _integer(op, "gpus") != sockets["nv"]:
            problems.append(f"nv.all_reduce over {_integer(op, 'gpus')} GPUs in a {sockets['nv']}-GPU program")
        if op.name == "df.graph":
            tp, n = _integer(op, "tp"), _integer(op, "sockets")
            if tp not in (1, n):
                problems.append(f"df.graph sharded to tp = {tp} with sockets = {n}")
            if _string(op, "target") not in TARGET_KINDS:
                problems.append(f"df.graph target {_string(op, 'target')!r}")
            if _string(op, "activations") not in KNOWN_TIERS[1:]:
                problems.append(f"df.graph activations in {_string(op, 'activations')!r}")
            explicit = op.properties.get("explicit_tiers")
            for entry in getattr(explicit, "data", ()):
                if entry.data not in TENSOR_CLASSES:
                    problems.append(f"explicit_tiers holds {entry.data!r}")
        if op.name in PROGRAM_KINDS and TARGET_KINDS.get(_string(op, "target") or "") != PROGRAM_KINDS[op.name]:
            problems.append(f"{op.name} target {_string(op, 'target')!r}")
        if op.name in PROGRAM_KINDS or op.name == "df.graph":
            names: dict[str, int] = {}
            for inner in op.regions[0].block.ops:
                name = _string(inner, "tensor_name") or _string(inner, "buffer_name")
                if name is not None:
                    names[name] = names.get(name, 0) + 1
            problems += [f"{op.name} declares {name!r} {count} times" for name, count in names.items() if count > 1]
        symbol = _string(op, "sym_name")
        if symbol is not None and op.parent_op() is module:
            symbols[symbol] = symbols.get(symbol, 0) + 1
        for result in op.results:
            tier = getattr(result.type, "tier", None)
            if tier is not None and tier.data not in KNOWN_TIERS:
                problems.append(f"{op.name} result in tier {tier.data!r}")
    problems += [f"symbol @{name} defined {count} times" for name, count in symbols.items() if count > 1]
    return problems


IR_MUTATIONS = ("line", "socket count", "target", "tensor name")


def mutate_consistency(text: str, rng: random.Random) -> tuple[str, str]:
    """`text` with one change aimed at what `consistency_problems` checks (a socket count, a
    target, a tensor or buffer name), or one of `mutations.mutate_ir`'s changes."""
    kind = rng.choice(IR_MUTATIONS)
    if kind == "socket count":
        pattern, choices = re.compile(r"\b(sockets|tp|gpus) = \d+"), [f"{{}} = {n}" for n in (1, 2, 3, 4, 8)]
    elif kind == "target":
        pattern, choices = re.compile(r'\btarget = "[^"]*"'), [f'target = "{t}"' for t in ("sn40l", "dgx_h100", "nope", "")]
    elif kind == "tensor name":
        names = sorted(set(re.findall(r'(?:df\.\w+|rdu\.buffer|nv\.buffer) ("[^"]*")', text)))
        pattern, choices = re.compile(r'(?<=df\.weight )"[^"]*"|(?<=rdu\.buffer )"[^"]*"|(?<=nv\.buffer )"[^"]*"'), names
    else:
        return mutate_ir(text, rng)
    matches = list(pattern.finditer(text))
    if not matches or not choices:
        return mutate_ir(text, rng)
    m, new = rng.choice(matches), rng.choice(choices)
    new = new.format(m.group(1)) if "{}" in new else new
    line = text.count("\n", 0, m.start()) + 1
    return text[:m.start()] + new + text[m.end():], f"{kind}: {m.group()} -> {new} on line {line}"


def run_ir_case(text: str, passes: str, path: Path, seconds: float = 30.0) -> tuple[str, str]:
    """`dfdsl opt` over the IR `text` (written to `path`) with `passes`; a run that succeeds must
    have been given IR that `consistency_problems` finds nothing wrong with."""
    from xdsl.parser import Parser

    from dfdsl.lowering.pipeline import context

    path.write_text(text, encoding="utf-8")
    outcome = run_cli(["opt", str(path), *(["-p", passes] if passes else [])], seconds)
    silent: list[str] = []
    if outcome.code == 0 and not outcome.error:
        silent = consistency_problems(Parser(context(), text).parse_module())
    return classify(outcome, silent)
