"""How far the unpublished P2P link values can move before the socket recommendation (8 or 16
sockets, whichever gives more tokens/s per user) changes, for every dense example and Mixtral at
batch 1, 16, 64 and 256 (each file's context), under the bundled sn40l.toml.

Each link value is scaled from 1/64 to 64 times its value in the file, the others fixed
(`dfdsl sensitivity --output best_sockets --sockets 8,16`); the table gives, per value, the range
around the file's value within which no example's recommendation changes, the example and batch
that bound it, and the plausible range the hardware file states. Rows that cannot run at 16 (heads
that do not divide) or at 8 (too little memory) recommend the other count whatever the links.

Run: .venv/bin/python benchmarks/link_sensitivity.py [--hardware FILE] [--batches 1,16,64,256]
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np

from dfdsl.driver import CompileOptions, Compiler, load_model
from dfdsl.sensitivity import sensitivity
from dfdsl.sweep_view import unit
from dfdsl.sim.vectorized import Points
from dfdsl.validate import dense_examples

ROOT = Path(__file__).resolve().parent.parent
PARAMETERS = ("p2p_bandwidth", "p2p_latency", "rack_bandwidth", "rack_latency")
PLAUSIBLE = {
    "p2p_bandwidth": (25e9, 450e9),
    "p2p_latency": (0.5e-6, 10e-6),
    "rack_bandwidth": (12.5e9, 50e9),
    "rack_latency": (1.5e-6, 10e-6),
}
"""The ranges dfdsl/hardware/sn40l.toml states for each value (its comments give the reasoning)."""
FACTORS = (1 / 64, 64.0)


def _format(key: str, value: float) -> str:
    label, scale = unit(key, [value])
    unit_text = label[label.rfind("(") + 1:-1] if label.endswith(")") else ""
    return f"{value * scale:.3g} {unit_text}".rstrip() if math.isfinite(value) else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hardware", metavar="FILE", default="", help="a hardware TOML file instead of sn40l")
    parser.add_argument("--batches", default="1,16,64,256", help="batch sizes (default 1,16,64,256)")
    args = parser.parse_args()
    batches = [int(b) for b in args.batches.split(",")]
    examples = [*dense_examples(), ROOT / "examples" / "mixtral_8x7b.dfl"]
    compiler = Compiler()
    start = time.perf_counter()
    # Per parameter: the lowest flip above the file's value and the highest below, and who flips there.
    upper: dict[str, tuple[float, str]] = {p: (math.inf, "") for p in PARAMETERS}
    lower: dict[str, tuple[float, str]] = {p: (0.0, "") for p in PARAMETERS}
    keys: dict[str, tuple[str, float]] = {}
    rows = []
    for path in examples:
        for batch in batches:
            model = load_model(path, {"batch": batch, "sockets": 8}, args.hardware)
            where = f"{path.stem} B={batch}"
            try:
                results = sensitivity(model, PARAMETERS, *FACTORS, output="best_sockets", sockets=(8, 16),
                                      compiler=compiler)
            except ValueError as err:  # does not run at 8 sockets as given
                rows.append(f"{where}: skipped ({str(err).splitlines()[0][:90]})")
                continue
            run = model.settings
            point = Points(np.array([run.batch]), np.array([run.context]), np.array([run.tokens]))
            runs = [s for s in (8, 16) if compiler.evaluate(model, CompileOptions(), s, point).errors[0] is None]
            alone = "" if len(runs) == 2 else f" (only {runs[0]} runs)"
            rows.append(f"{where}: {int(results[0].at_base)} sockets at the file's values{alone}")
            for r in results:
                keys[r.parameter] = (r.key, r.base)
                for flip in r.flips:
                    if flip.changes_at > r.base and flip.changes_at < upper[r.parameter][0]:
                        upper[r.parameter] = (flip.changes_at, where)
                    if flip.changes_at < r.base and flip.changes_at > lower[r.parameter][0]:
                        lower[r.parameter] = (flip.changes_at, where)
    seconds = time.perf_counter() - start
    print("Recommendation (8 or 16 sockets, more tokens/s per user) at the file's values:")
    for row in rows:
        print(f"  {row}")
    print()
    print(f"Range within which no recommendation changes (searched {FACTORS[0]:g}x to {FACTORS[1]:g}x):")
    print("| value | in the file | stays the same from | to | bound by (below / above) | plausible range |")
    print("|---|---|---|---|---|---|")
    for p in PARAMETERS:
        key, base = keys[p]
        low, high = lower[p], upper[p]
        low_text = _format(key, low[0]) if low[1] else f"below {_format(key, base * FACTORS[0])}"
        high_text = _format(key, high[0]) if high[1] else f"above {_format(key, base * FACTORS[1])}"
        plausible = " to ".join(_format(key, v) for v in PLAUSIBLE[p])
        print(f"| {p} | {_format(key, base)} | {low_text} | {high_text} | {low[1] or '-'} / {high[1] or '-'} "
              f"| {plausible} |")
    print(f"\n({len(rows)} example-batch rows x {len(PARAMETERS)} values in {seconds:.1f} s)")


if __name__ == "__main__":
    main()
