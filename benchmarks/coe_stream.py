"""Composition of Experts: how long `dfdsl run` takes to serve a 10,000-request stream over 150
experts (examples/samba_coe.dfl with `count = 10000`), on the SN40L node and a DGX H100; the target
is under 5 s each on a 2-core machine. Prints the wall time of the whole run (load, compile the
router and the expert once, serve the stream) and of the stream alone (LRU residency and the
latency arithmetic over the 10,000 requests), with the run's figures.

Run: .venv/bin/python benchmarks/coe_stream.py [--requests N] [--experts N]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from dfdsl.driver import CompileOptions, Compiler, load_model
from dfdsl.sim.composition import Tiers, serve
from dfdsl.validate import EXAMPLES_DIR

TARGET_S = 5.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--experts", type=int, default=150)
    args = parser.parse_args()
    text = (EXAMPLES_DIR / "samba_coe.dfl").read_text(encoding="utf-8").replace("count = 1000",
                                                                                 f"count = {args.requests}")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "samba_coe.dfl"
        path.write_text(text, encoding="utf-8")
        for target in ("sn40l", "dgx_h100"):
            start = time.perf_counter()
            model = load_model(path, {"target": target, "experts": args.experts})
            f = Compiler().serve(model, model.settings, CompileOptions()).report.figures
            whole = time.perf_counter() - start
            verdict = "under" if whole < TARGET_S else "OVER"
            print(f"{target:<9} {args.requests:,} requests over {args.experts} experts: {whole:.2f} s in all "
                  f"({verdict} the {TARGET_S:.0f} s target); hit rate {f['hit_rate']:.1%}, mean latency "
                  f"{f['request_latency_ms']:.1f} ms, switch {f['switch_ms']:.2f} ms")
    rng = np.random.default_rng(0)
    experts = rng.integers(0, args.experts, args.requests)
    start = time.perf_counter()
    serve(experts, args.experts, Tiers(32, 800, 8e11), batch=8, switch_s=np.full(args.experts, 0.02),
          prefill_s=np.full(args.requests, 0.002), decode_s=np.full(args.requests, 0.02), router_s=lambda n: 0.02)
    print(f"the stream alone (LRU and latencies of {args.requests:,} requests): "
          f"{(time.perf_counter() - start) * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
