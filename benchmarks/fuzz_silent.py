"""Fuzz for silent wrong answers: hardware values, pass pipelines and mutated IR, thousands of each.

Run: .venv/bin/python benchmarks/fuzz_silent.py [--hardware N] [--pipelines N] [--ir N] [--seed S] [--jobs J]

Case i of each fuzzer draws from `random.Random(S + i)` (tests/fuzz/silent.py):

- hardware: one to three keys of a bundled hardware file set to NaN, an infinity, a subnormal, a
  huge, negative or fractional number, a string, or a random value near the real one, as a file
  (`dfdsl run --hardware`) or, for numbers, with `dfdsl sweep --set`;
- pipelines: a `dfdsl opt -p` string of passes, options, braces, quotes, commas and odd characters,
  over the tiny model's df IR;
- ir: an IR seed (two programs at every stage of both pipelines) with a line, a symbol, a tier, a
  number, a socket count, a target or a tensor name changed, through `dfdsl opt` with 0 to 3
  random passes.

Each case is a clean error, a success, a crash, a hang (past --timeout) or a silent acceptance
(exit 0 although an independent check finds the input wrong or the report untrue). Prints the
count of each outcome per fuzzer and every case that is not a clean error or a success, with its
reproducer; exits 1 when there is one.
"""

from __future__ import annotations

import argparse
import collections
import functools
import multiprocessing
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from fuzz import silent  # noqa: E402
from fuzz.mutations import IR_PASSES, ir_seeds, run_cli  # noqa: E402

BAD = ("crash", "hang", "silent acceptance")


@functools.cache
def _folder() -> Path:
    """A folder per worker process, holding the tiny model and its df IR."""
    folder = Path(tempfile.mkdtemp(prefix="fuzz-silent-"))
    (folder / "tiny.dfl").write_text(silent.TINY, encoding="utf-8")
    assert run_cli(["lower", str(folder / "tiny.dfl"), "--emit", "df", "-o", str(folder / "tiny.mlir")]).code == 0
    return folder


@functools.cache
def _ir_seeds() -> list[tuple[str, str]]:
    return ir_seeds()


def one_case(job: tuple[str, int, float]) -> tuple[str, str, str, str]:
    """(fuzzer, outcome, reproducer, why) of case `number` of `fuzzer`."""
    fuzzer, number, timeout = job
    rng = random.Random(number)
    folder = _folder()
    if fuzzer == "hardware":
        case = silent.hardware_case(rng)
        outcome, why = silent.run_hardware_case(case, folder, timeout)
        reproducer = f"seed {number}: {case.describe()}"
    elif fuzzer == "pipelines":
        spec = silent.random_pipeline(rng)
        outcome, why = silent.run_pipeline_case(spec, folder / "tiny.mlir", timeout)
        reproducer = f"seed {number}: dfdsl opt tiny.mlir -p {spec!r}"
    else:
        name, text = rng.choice(_ir_seeds())
        text, change = silent.mutate_consistency(text, rng)
        passes = ",".join(rng.choice(IR_PASSES) for _ in range(rng.randint(0, 3)))
        outcome, why = silent.run_ir_case(text, passes, folder / "mutated.mlir", timeout)
        reproducer = f"seed {number}: {name}, {change}, -p {passes!r}"
    return fuzzer, outcome, reproducer, why


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hardware", type=int, default=2000, help="hardware cases")
    parser.add_argument("--pipelines", type=int, default=5000, help="pass-pipeline cases")
    parser.add_argument("--ir", type=int, default=2000, help="mutated-IR cases")
    parser.add_argument("--seed", type=int, default=0, help="the first case's random seed")
    parser.add_argument("--jobs", type=int, default=max(1, multiprocessing.cpu_count() or 1))
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds allowed per case")
    args = parser.parse_args()

    jobs = [(fuzzer, args.seed + i, args.timeout)
            for fuzzer, count in (("hardware", args.hardware), ("pipelines", args.pipelines), ("ir", args.ir))
            for i in range(count)]
    counts: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    findings = []
    start = time.perf_counter()
    with multiprocessing.Pool(args.jobs) as pool:
        for done, (fuzzer, outcome, reproducer, why) in enumerate(pool.imap_unordered(one_case, jobs, 8), 1):
            counts[fuzzer][outcome] += 1
            if outcome in BAD:
                findings.append((fuzzer, outcome, reproducer, why))
                print(f"{fuzzer}: {outcome}: {reproducer}\n  {why[:500]}", flush=True)
            if done % 1000 == 0:
                print(f"... {done} cases, {time.perf_counter() - start:.0f} s", flush=True)
    elapsed = time.perf_counter() - start
    print(f"{len(jobs)} cases in {elapsed:.0f} s ({args.jobs} jobs)")
    for fuzzer in ("hardware", "pipelines", "ir"):
        total = sum(counts[fuzzer].values())
        print(f"{fuzzer}: {total} cases: " + ", ".join(f"{o}: {counts[fuzzer][o]}" for o in silent.OUTCOMES))
    return 1 if findings else 0


if __name__ == "__main__":
    raise SystemExit(main())
