"""Whole requests: time to first token (TTFT), time per output token and end-to-end latency of
Llama 3.1 8B, 70B and 405B with 4K and 32K prompts, on SN40L at 8 and 16 sockets and on a DGX
H100, as `dfdsl run --prompt P --tokens T` gives them (batch 1, 128 output tokens, BF16, each
target's default compilation). Configurations that do not fit in memory are listed as such.

Run: .venv/bin/python benchmarks/requests.py [--tokens T] [--hardware-sn40l FILE]
"""

from __future__ import annotations

import argparse
import time

from xdsl.utils.exceptions import DiagnosticException

from dfdsl.driver import run_model
from dfdsl.validate import EXAMPLES_DIR

MODELS = ("llama3_1_8b", "llama3_1_70b", "llama3_1_405b")
PROMPTS = (4096, 32768)
MACHINES = (("sn40l", 8), ("sn40l", 16), ("dgx_h100", 8))

PUBLISHED_TTFT = (
    "Public TTFT figures found (for comparison only; other machines, not fitted):",
    "  NVIDIA, \"Low Latency Inference Chapter 2\" (developer.nvidia.com blog, 2024), GH200 NVL32",
    "  (32 Grace Hopper GPUs over NVLink Switch, TensorRT-LLM): Llama 3.1 70B at a 32,768-token",
    "  prompt, 472 ms; Llama 3.1 405B at 32,768 tokens, about 1.6 s. No DGX H100 or SN40L TTFT at",
    "  these prompt lengths was found.",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=128, help="output tokens per request (default 128)")
    args = parser.parse_args()
    header = (f"{'model':<15}{'machine':<13}{'prompt':>7}{'TTFT ms':>11}{'TPOT ms':>9}{'latency ms':>12}"
              f"{'prefill tok/s':>15}{'% peak':>8}  prefill bound by")
    print(header)
    print("-" * len(header))
    start = time.perf_counter()
    for model in MODELS:
        for prompt in PROMPTS:
            for target, sockets in MACHINES:
                machine = f"{target.replace('_', '-')}:{sockets}"
                overrides = {"prompt": prompt, "tokens": args.tokens, "target": target, "sockets": sockets}
                try:
                    f = run_model(EXAMPLES_DIR / f"{model}.dfl", overrides).figures
                except DiagnosticException as err:
                    reason = str(err).split(":", 2)[-1].split(";")[0].strip()
                    print(f"{model:<15}{machine:<13}{prompt:>7,}  does not fit: {reason}")
                    continue
                breakdown = f["prefill_breakdown_ms"]
                bound = max(breakdown, key=lambda c: breakdown[c])
                print(f"{model:<15}{machine:<13}{prompt:>7,}{f['ttft_ms']:>11,.1f}{f['tpot_ms']:>9.3f}"
                      f"{f['request_latency_ms']:>12,.1f}{f['prefill_tokens_per_s']:>15,.0f}"
                      f"{f['prefill_compute_fraction']:>8.1%}  {bound} ({breakdown[bound] / f['ttft_ms']:.0%})")
    print(f"\n({time.perf_counter() - start:.1f} s; batch 1, {args.tokens} output tokens, BF16)\n")
    print("\n".join(PUBLISHED_TTFT))


if __name__ == "__main__":
    main()
