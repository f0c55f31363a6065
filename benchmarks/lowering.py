"""Wall time of each lowering pass, and the IR size with and without kernel looping.

Run: .venv/bin/python benchmarks/lowering.py [MODEL.dfl] [--sockets N] [--repeat N]
Defaults to Llama 3.1 405B on 16 sockets. Prints per-pass times (best of N) and, for the `rdu`
stage, the number of ops and printed lines with kernel looping and without.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from dfdsl.elaborate import check_file
from dfdsl.irgen import generate
from dfdsl.lowering.pipeline import RDU_PIPELINE, LoweringOptions, run_passes

ROOT = Path(__file__).resolve().parent.parent


def lower(path: Path, sockets: int, looping: bool) -> tuple[dict[str, float], object, float]:
    start = time.perf_counter()
    model = check_file(path, {"sockets": sockets})
    module = generate(model)
    front = time.perf_counter() - start
    times: dict[str, float] = {}
    options = LoweringOptions(sockets=sockets, kernel_looping=looping, target=model.run.target)
    run_passes(module, RDU_PIPELINE.passes_to("rdu", options), lambda p, m, s: times.__setitem__(p.name, s))
    return times, module, front


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", default=str(ROOT / "examples" / "llama3_1_405b.dfl"))
    parser.add_argument("--sockets", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    path = Path(args.model)
    print(f"{path.name} at {args.sockets} sockets (best of {args.repeat})")
    for looping in (True, False):
        best: dict[str, float] = {}
        best_front = float("inf")
        for _ in range(args.repeat):
            times, module, front = lower(path, args.sockets, looping)
            best_front = min(best_front, front)
            for name, seconds in times.items():
                best[name] = min(best.get(name, float("inf")), seconds)
        ops = sum(1 for _ in module.walk())
        lines = len(str(module).splitlines())
        print(f"\nkernel looping {'on' if looping else 'off'}: {ops:,} rdu ops, {lines:,} printed lines")
        print(f"  {'front end (parse, check, irgen)':<34} {best_front * 1e3:8.1f} ms")
        for name, seconds in best.items():
            print(f"  {name:<34} {seconds * 1e3:8.1f} ms")
        print(f"  {'lowering total (passes)':<34} {sum(best.values()) * 1e3:8.1f} ms")


if __name__ == "__main__":
    main()
