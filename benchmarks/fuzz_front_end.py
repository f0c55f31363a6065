"""Fuzz the front end: `dfdsl check` on mutated examples and library modules must never crash.

Run: .venv/bin/python benchmarks/fuzz_front_end.py [--cases N] [--seed S] [--out DIR] [--timeout SECONDS]

Case i mutates seed file i mod (number of seeds) with `random.Random(S + i)` (the mutators are in
tests/fuzz/mutations.py) and runs `dfdsl check` on it in-process under a per-case time limit.
A run is fine when it exits 0, or 2 with a located, coded diagnostic. Prints the counts, the rate
and each distinct crash; every crash (exit 1, an escaped exception, a run past the time limit or
an unlocated diagnostic) is written to DIR as crash-<i>.dfl with crash-<i>.txt holding the
command, the mutators and the output. Exits 1 when anything crashed.
"""

from __future__ import annotations

import argparse
import collections
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from fuzz.mutations import Case, Outcome, check_case, make_case, seeds, signature  # noqa: E402


def save_crash(out: Path, index: int, case: Case, outcome: Outcome, problem: str) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"crash-{index}.dfl"
    path.write_bytes(case.data)
    path.with_suffix(".txt").write_text(
        f"dfdsl check {path}\nseed file: {case.seed.name}\nrandom seed: {case.number}\n"
        f"mutators: {', '.join(case.mutators)}\nproblem: {problem}\nexit code: {outcome.code}\n"
        f"--- stderr ---\n{outcome.stderr}\n--- stdout ---\n{outcome.stdout}\n",
        encoding="utf-8",
    )
    return path


def short(problem: str, limit: int = 300) -> str:
    return problem if len(problem) <= limit else problem[:limit] + f"... ({len(problem):,} characters)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0, help="the first case's random seed")
    parser.add_argument("--out", type=Path, default=Path("fuzz-crashes"), help="where crashes are written")
    parser.add_argument("--timeout", type=float, default=30.0,
                        help="seconds allowed per case (a model at the 4,096-layer limit takes ~5 s)")
    args = parser.parse_args()

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 1000))
    all_seeds = seeds()
    exits: collections.Counter[str] = collections.Counter()
    crashes: dict[str, tuple[int, str]] = {}
    crashing = 0
    slowest = (0.0, -1)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.cases):
            case = make_case(all_seeds[i % len(all_seeds)], args.seed + i)
            began = time.perf_counter()
            outcome, problem = check_case(case, Path(tmp), args.timeout)
            slowest = max(slowest, (time.perf_counter() - began, i))
            exits[str(outcome.code) if outcome.code is not None else "escaped"] += 1
            if problem is not None:
                crashing += 1
                key = signature(problem, outcome)
                saved = save_crash(args.out, i, case, outcome, problem)
                if key not in crashes:
                    crashes[key] = (i, problem)
                    print(f"crash {len(crashes)} at case {i} ({case.seed.name}, seed {case.number}, "
                          f"{'+'.join(case.mutators)}): {short(problem)}\n  reproducer: {saved}", flush=True)
            if (i + 1) % 1000 == 0:
                print(f"... {i + 1} cases, {time.perf_counter() - start:.0f} s", flush=True)
    elapsed = time.perf_counter() - start
    print(f"{args.cases} cases in {elapsed:.1f} s ({args.cases / elapsed:.1f} cases/s); exit codes: "
          + ", ".join(f"{k}: {v}" for k, v in sorted(exits.items())))
    print(f"slowest case: {slowest[1]} ({slowest[0]:.2f} s); {len(all_seeds)} seed files")
    print(f"crashing cases: {crashing}, distinct crashes: {len(crashes)}")
    for key, (i, problem) in crashes.items():
        print(f"  [{key}] first at case {i}: {short(problem)}")
    return 1 if crashes else 0


if __name__ == "__main__":
    raise SystemExit(main())
