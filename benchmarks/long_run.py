"""Wall time and peak memory of `dfdsl run` as the tokens grow: a run keeps sums, not steps, so its
memory stays flat (issue: a million tokens took 779 MB when every step was kept).

Run: .venv/bin/python benchmarks/long_run.py [--tokens 1024,65536,1048576]
Each run is a process of its own; peak memory is its maximum resident set, imports included.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

MODEL = Path(__file__).resolve().parent.parent / "examples" / "llama3_1_8b.dfl"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", default="1024,65536,1048576")
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f}, {os.cpu_count()} cores")
    for tokens in args.tokens.split(","):
        start = time.perf_counter()
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        subprocess.run([sys.executable, "-m", "dfdsl", "run", str(MODEL), "--tokens", tokens, "--json"],
                       check=True, stdout=subprocess.DEVNULL)
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        # RUSAGE_CHILDREN keeps the largest child so far: report it only when this run raised it.
        shown = f"{peak / 1024:,.0f} MB" if peak > before else f"<= {before / 1024:,.0f} MB"
        print(f"{int(tokens):>9,} tokens  {time.perf_counter() - start:7.1f} s  peak {shown}")


if __name__ == "__main__":
    main()
