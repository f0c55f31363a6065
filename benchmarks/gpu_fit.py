"""Fits a GPU target's `[gpu_software]` kernel coefficients to aiconfigurator's measured tables.

Prints, for one GPU, the coefficients the bundled hardware files carry (each with the rows it is
fitted to and the fit's median and worst error), so that every fitted number there can be
reproduced: the GEMM, attention, custom all-reduce and NCCL fits read aiconfigurator's shipped
tables (`aiconfigurator_core/systems/data/<gpu>/`, Apache-2.0, measured by its collector
scripts); the MoE experts fit asks aiconfigurator for its `moe` op at Mixtral 8x7B's shapes.
Nothing is copied into dfdsl: the tables stay in aiconfigurator's package.

It runs in aiconfigurator's interpreter (an optional extra, never a dfdsl dependency; it needs
pandas, pyarrow and scipy, which aiconfigurator installs), and imports nothing of dfdsl:

Run: /work/venv-aic/bin/python benchmarks/gpu_fit.py [h100_sxm|h200_sxm|a100_sxm]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from importlib import resources
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
from scipy.optimize import least_squares

SYSTEMS = {
    "h100_sxm": {"l2_bytes": 50e6, "hbm_bytes_per_s": 3.35e12, "sms": 132, "trtllm": "1.3.0rc20", "nccl": "2.27.3"},
    "h200_sxm": {"l2_bytes": 50e6, "hbm_bytes_per_s": 4.8e12, "sms": 132, "trtllm": "1.3.0rc20", "nccl": "2.29.2"},
    "a100_sxm": {"l2_bytes": 40e6, "hbm_bytes_per_s": 2.039e12, "sms": 108, "trtllm": "1.0.0", "nccl": "2.27.3"},
}
LAUNCH_SYNC_S = 2e-6
"""The hardware files' `launch_sync_s`: every table row (a kernel replayed in a CUDA graph) holds one."""
ROPE_KERNEL_S = 3e-6
"""dfdsl's `rope` kernel (launch_sync_s + stream_ramp_s), inside the tables' attention op."""
ATTENTION_BLOCK_TOKENS = 128
"""XQA's tokens per CTA of its multi-block split (TensorRT-LLM, kMinHistoryTokensPerBlock)."""
ATTENTION_MAX_WAVES = 8
"""XQA's most CTAs of the split, in waves over the SMs (TensorRT-LLM, kTargetWaveFactor)."""
SIZES = [512, 1024, 1536, 2048, 2560, 3072, 3584, 4096, 5120, 6144, 7168, 8192, 10240, 12288, 16384]


def fit(model: Callable[[np.ndarray], np.ndarray], measured: np.ndarray, start: list[float], low: list[float],
        high: list[float], weight: np.ndarray | float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Least squares on the log of the time: the parameters and each row's relative error."""
    result = least_squares(lambda p: weight * np.log(model(p) / measured), start, bounds=(low, high), x_scale="jac")
    return result.x, model(result.x) / measured - 1


def report(name: str, rows: int, values: dict[str, float], error: np.ndarray) -> None:
    shown = ", ".join(f"{k} = {v:.4g}" for k, v in values.items())
    print(f"{name}: {shown}\n  {rows} rows; median error {np.median(abs(error)):.1%}, worst {abs(error).max():.1%}")


def gemm(data: Path, cfg: dict[str, Any]) -> None:
    d = pd.read_parquet(data / f"gemm/trtllm/{cfg['trtllm']}/gemm_perf.parquet")
    d = d[(d.gemm_dtype == "bfloat16") & d.m.isin([1, 8, 32]) & d.n.isin(SIZES) & d.k.isin(SIZES)]
    # The collector replays at most 5 copies of a weight: under a fifth of the L2 they stay there.
    d = d[5 * d.n * d.k * 2 >= cfg["l2_bytes"]]
    weights, columns = (d.n * d.k * 2).to_numpy(float), d.n.to_numpy(float)
    bandwidth = cfg["hbm_bytes_per_s"]
    (fixed, efficiency, half), error = fit(
        lambda p: p[0] + weights / (bandwidth * p[1] * columns / (columns + p[2])), d.latency.to_numpy() * 1e-3,
        [3e-6, 0.9, 500], [0, 0.1, 0], [2e-5, 1.0, 1e5])
    report(f"gemm ({data.name}/gemm/trtllm/{cfg['trtllm']}/gemm_perf.parquet)", len(d),
           {"gemm_ramp_s": fixed - LAUNCH_SYNC_S, "gemm_efficiency": efficiency,
            "gemm_half_efficiency_columns": half}, error)


def attention(data: Path, cfg: dict[str, Any]) -> None:
    """Decode attention as XQA splits it: a fixed time, the KV cache at an efficiency, and a cost
    per wave of the split's CTAs (B x H x context / 128 over the SMs, at most 8 waves), above a
    floor. A row faster than the HBM's bandwidth can stream its KV cache (some A100 rows) is taken
    at that speed of light, as aiconfigurator's own query clamps it."""
    d = pd.read_parquet(data / f"attention/trtllm/{cfg['trtllm']}/generation_attention_perf.parquet")
    d = d[(d.head_dim == 128) & (d.window_size == 0) & (d.kv_cache_dtype == "bfloat16") & d.batch_size.isin([1, 8, 32])
          & (d.num_heads // d.num_key_value_heads).isin([4, 8]) & d.num_key_value_heads.isin([1, 2, 4, 8])
          & d.step.isin([2047, 4095, 8191])]
    streams = (d.batch_size * d.num_key_value_heads * (d.step + 1)).to_numpy(float)
    kv, bandwidth = streams * 128 * 2 * 2, cfg["hbm_bytes_per_s"]
    measured = d.latency.to_numpy() * 1e-3
    raised = measured < kv / bandwidth
    measured = np.maximum(measured, kv / bandwidth)
    waves = np.minimum(streams / ATTENTION_BLOCK_TOKENS / cfg["sms"], ATTENTION_MAX_WAVES)
    (fixed, efficiency, wave, floor), error = fit(
        lambda p: np.maximum(p[3], p[0] + kv / (bandwidth * p[1]) + p[2] * waves), measured,
        [8e-6, 0.9, 2e-6, 1.4e-5], [0, 0.1, 0, 0], [1e-4, 1.0, 1e-4, 1e-4])
    less = LAUNCH_SYNC_S + ROPE_KERNEL_S
    report(f"attention ({data.name}/attention/trtllm/{cfg['trtllm']}/generation_attention_perf.parquet)", len(d),
           {"attention_ramp_s": fixed - less, "attention_efficiency": efficiency, "attention_wave_s": wave,
            "attention_floor_s": floor - less, "attention_block_tokens": ATTENTION_BLOCK_TOKENS,
            "attention_max_waves": ATTENTION_MAX_WAVES}, error)
    context_4k = (d.step == 4095).to_numpy()
    print(f"  context 4K (24 rows): median error {np.median(abs(error[context_4k])):.1%}, "
          f"worst {abs(error[context_4k]).max():.1%}; {int(raised.sum())} rows raised to the HBM's speed of light")


def custom_all_reduce(data: Path, cfg: dict[str, Any]) -> None:
    d = pd.read_parquet(data / f"comm/trtllm/{cfg['trtllm']}/custom_allreduce_perf.parquet")
    d = d[d.message_size >= 1024]
    gpus, message = d.num_gpus.to_numpy(float), d.message_size.to_numpy(float) * 2  # bf16 elements

    def model(p: np.ndarray) -> np.ndarray:
        one = p[0] + p[1] * (gpus - 1) + (gpus - 1) * message / p[2]
        two = p[3] + p[1] * 2 * (gpus - 1) + 2 * (gpus - 1) / gpus * message / p[2]
        return np.minimum(one, two)

    decode = (d.message_size <= 262144).to_numpy()
    p, error = fit(model, d.latency.to_numpy() * 1e-3, [3e-6, 1e-7, 3e11, 6e-6], [0, 0, 1e10, 0],
                   [2e-5, 5e-6, 1e13, 1e-4], np.where(decode, 3.0, 1.0))
    report(f"custom all-reduce ({data.name}/comm/trtllm/{cfg['trtllm']}/custom_allreduce_perf.parquet; "
           "errors at decode sizes, <= 256K elements)", len(d),
           {"custom_allreduce_latency_s": p[0] - LAUNCH_SYNC_S, "custom_allreduce_step_latency_s": p[1],
            "custom_allreduce_bandwidth_bytes_per_s": p[2], "custom_allreduce_twoshot_latency_s": p[3] - LAUNCH_SYNC_S},
           error[decode])


def nccl(data: Path, cfg: dict[str, Any]) -> None:
    d = pd.read_parquet(data / f"comm/nccl/{cfg['nccl']}/nccl_perf.parquet")
    d = d[(d.op_name == "all_reduce") & (d.message_size >= 1024) & (d.message_size <= 262144)]
    gpus, message = d.num_gpus.to_numpy(float), d.message_size.to_numpy(float) * 2
    p, error = fit(lambda p: p[0] + 2 * (gpus - 1) * p[1] + 2 * (gpus - 1) / gpus * message / p[2],
                   d.latency.to_numpy() * 1e-3, [5e-6, 5e-7, 3e11], [0, 0, 1e10], [5e-5, 5e-6, 1e13])
    report(f"NCCL ring ({data.name}/comm/nccl/{cfg['nccl']}/nccl_perf.parquet, all_reduce)", len(d),
           {"nccl_base_latency_s": p[0] - LAUNCH_SYNC_S, "nccl_step_latency_s": p[1],
            "nccl_bus_bandwidth_bytes_per_s": p[2]}, error)


def experts(system: str, cfg: dict[str, Any]) -> None:
    """aiconfigurator's `moe` op at Mixtral 8x7B's shapes: TP 1-8 (experts split the same way), 1, 8
    and 32 tokens; the bytes are dfdsl's: the expected experts (uniform routing) times one expert."""
    from aiconfigurator.cli.api import cli_estimate

    shipped = resources.files("aiconfigurator_core") / "model_configs" / "mistralai--Mixtral-8x7B-v0.1_config.json"
    moved, measured = [], []
    with tempfile.TemporaryDirectory() as scratch:
        shutil.copyfile(str(shipped), Path(scratch) / "config.json")
        for tp in (1, 2, 4, 8):
            for tokens in (1, 8, 32):
                r = cli_estimate(model_path=scratch, system_name=system, mode="static_gen", backend_name="trtllm",
                                 isl=4096, osl=2, batch_size=tokens, tp_size=tp, moe_tp_size=tp, moe_ep_size=1)
                measured.append(r.summary.get_generation_latency_dict()["generation_moe"] / 32 * 1e-3)
                moved.append(8 * (1 - (1 - 2 / 8) ** tokens) * 3 * 4096 * 14336 * 2 / tp)
    bandwidth, bytes_ = cfg["hbm_bytes_per_s"], np.array(moved)
    (fixed, efficiency), error = fit(lambda p: p[0] + bytes_ / (bandwidth * p[1]), np.array(measured),
                                     [1e-5, 0.8], [0, 0.1], [1e-4, 1.0])
    report("experts (aiconfigurator's moe op at Mixtral 8x7B, moe_perf.parquet)", len(measured),
           {"experts_ramp_s": fixed - LAUNCH_SYNC_S, "experts_efficiency": efficiency}, error)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("system", nargs="?", default="h100_sxm", choices=sorted(SYSTEMS))
    args = parser.parse_args()
    cfg = SYSTEMS[args.system]
    data = Path(str(resources.files("aiconfigurator_core") / "systems" / "data" / args.system))
    for step in (gemm, attention, custom_all_reduce, nccl):
        step(data, cfg)
    experts(args.system, cfg)


if __name__ == "__main__":
    main()
