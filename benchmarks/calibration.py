"""The calibration table: every dense example at 8 and 16 sockets, with and without kernel looping,
under the settings `dfdsl validate` uses (batch 1, 128 tokens, context 4,096, 8,192 for Llama 3.1
8B, fusion layer), and the speedup and roofline figures it reads the published claims from.

Run: .venv/bin/python benchmarks/calibration.py [--hardware FILE]
"""

from __future__ import annotations

import argparse
import math
import time

from dfdsl.validate import SOCKETS, calibrate, dense_examples, render_calibration


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hardware", metavar="FILE", help="a hardware TOML file instead of the bundled sn40l")
    args = parser.parse_args()
    start = time.perf_counter()
    calibrations, skipped = calibrate(dense_examples(), SOCKETS, args.hardware or "")
    seconds = time.perf_counter() - start
    print(render_calibration(calibrations, skipped), end="")
    if calibrations:
        speedups = [c.speedup for c in calibrations]
        fractions = [c.peak_fraction for c in calibrations]
        claims = [c.claims_fraction for c in calibrations]
        geomean = math.exp(sum(map(math.log, speedups)) / len(speedups))
        print(f"\nkernel looping speedup: max {max(speedups):.2f}×, geometric mean {geomean:.2f}× "
              f"over {len(speedups)} configurations")
        print(f"fraction of the roofline with looping: {min(fractions):.1%} to {max(fractions):.1%} "
              f"({min(claims):.1%} to {max(claims):.1%} counted as the published claims count it)")
    print(f"({len(calibrations)} configurations simulated twice each in {seconds:.1f} s)")


if __name__ == "__main__":
    main()
