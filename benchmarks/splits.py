"""The splits of issue 14 on the SN40L: DeepSeek-V3 on 16 sockets with tensor-parallel attention
and with data-parallel attention and expert-parallel experts (batch 1 and 256), and the models
whose heads do not divide the sockets (Qwen2 7B, Llama 2 13B) at 8 and 16 sockets, padded. Context
4,096, 128 tokens, each example's dtype, as `dfdsl run` gives them; a configuration that does not
fit or does not divide is listed with its error.

Run: .venv/bin/python benchmarks/splits.py
"""

from __future__ import annotations

import contextlib
import io

from xdsl.utils.exceptions import DiagnosticException

from dfdsl.diagnostics import DfslError
from dfdsl.driver import run_model
from dfdsl.validate import EXAMPLES_DIR

RUNS = (
    ("deepseek_v3", 16, 1, ""),
    ("deepseek_v3", 16, 1, "attention=data,experts=expert"),
    ("deepseek_v3", 16, 256, ""),
    ("deepseek_v3", 16, 256, "attention=data,experts=expert"),
    ("qwen2_7b", 8, 1, ""),
    ("qwen2_7b", 16, 1, ""),
    ("llama2_13b", 8, 1, ""),
    ("llama2_13b", 16, 1, ""),
)


def main() -> None:
    header = (f"{'model':<13}{'sockets':>8}{'batch':>7}  {'parallel':<31}{'ms/token':>10}{'tok/s/user':>12}"
              f"{'tok/s':>10}{'% roofline':>12}{'GB read/token':>15}")
    print(header)
    print("-" * len(header))
    for name, sockets, batch, parallel in RUNS:
        overrides: dict[str, int | str] = {"sockets": sockets, "batch": batch}
        if parallel:
            overrides["parallel"] = parallel
        label = parallel or "tensor (default)"
        try:
            with contextlib.redirect_stderr(io.StringIO()):  # the padding remarks
                r = run_model(EXAMPLES_DIR / f"{name}.dfl", overrides)
        except (DfslError, DiagnosticException) as err:
            print(f"{name:<13}{sockets:>8}{batch:>7}  {label:<31}{str(err)[:90]}")
            continue
        print(f"{name:<13}{sockets:>8}{batch:>7}  {label:<31}{r['ms_per_token']:>10.3f}"
              f"{r['tokens_per_s_per_user']:>12,.1f}{r['tokens_per_s']:>10,.1f}{100 * r['peak_fraction']:>11.1f}%"
              f"{r['read_bytes_per_token_all_sockets'] / 1e9:>15.1f}")


if __name__ == "__main__":
    main()
