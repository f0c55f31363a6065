"""Wall time of the front end (parse, check, IR generation) for every example.

Run: .venv/bin/python benchmarks/front_end.py [--repeat N]
Prints, per example, the best of N runs of each stage in milliseconds, and the IR size.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from dfdsl.elaborate import elaborate
from dfdsl.irgen import generate
from dfdsl.loader import load

ROOT = Path(__file__).resolve().parent.parent


def best_of(repeat: int, fn):
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print(f"{'example':<18} {'parse':>8} {'check':>8} {'irgen':>8} {'total':>8} {'df ops':>7}   (ms, best of {args.repeat})")
    for path in sorted((ROOT / "examples").glob("*.dfl")):
        t_load, program = best_of(args.repeat, lambda: load(path))
        t_check, model = best_of(args.repeat, lambda: elaborate(program))
        t_gen, module = best_of(args.repeat, lambda: generate(model))
        ops = sum(1 for _ in module.walk())
        total = t_load + t_check + t_gen
        print(f"{path.stem:<18} {t_load * 1e3:8.1f} {t_check * 1e3:8.1f} {t_gen * 1e3:8.1f} {total * 1e3:8.1f} {ops:7d}")


if __name__ == "__main__":
    main()
