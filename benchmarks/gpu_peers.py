"""dfdsl's GPU model against NVIDIA's aiconfigurator: time per output token side by side.

Over a grid (Llama 3.1 8B and 70B, Mixtral 8x7B x tensor-parallel 1, 2, 4, 8 x batch 1, 8, 32,
context 4,096, BF16) it prints dfdsl's ms per token on a bundled GPU target and aiconfigurator's
static decode estimate (`cli_estimate(mode="static_gen")`, TensorRT-LLM backend), which sums
TensorRT-LLM kernels measured on that GPU. Then the per-kernel comparison for one configuration,
and the paper's-software profile (`dgx-h100-nccl`) on the kernel-looping paper's configuration
(Llama 3.1 8B, TP8, batch 1) as a fraction of the 24 TB/s roofline that paper uses.

aiconfigurator is an optional extra, never a dfdsl dependency: install it into a separate venv
(`python3 -m venv /work/venv-aic && /work/venv-aic/bin/pip install aiconfigurator`) and pass that
interpreter with `--aiconfigurator-python` (or set AICONFIGURATOR_PYTHON); this script runs itself
there to ask aiconfigurator, and prints dfdsl's side alone when it cannot. Both sides share the
measured kernels (dfdsl's coefficients are fitted to aiconfigurator's tables): agreement checks
that dfdsl's per-kernel model and its accounting of a decode step reproduce the tables' sum, not
that either matches a real deployment (docs/gpu-baseline.md).

Run: .venv/bin/python benchmarks/gpu_peers.py [--target dgx-h100] [--aiconfigurator-python PATH]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

MODELS = {"llama3_1_8b": "meta-llama/Meta-Llama-3.1-8B", "llama3_1_70b": "meta-llama/Meta-Llama-3.1-70B",
          "mixtral_8x7b": "mistralai/Mixtral-8x7B-v0.1"}
"""The grid's dense and MoE examples and the Hugging Face ids aiconfigurator knows them by."""
TPS = (1, 2, 4, 8)
BATCHES = (1, 8, 32)
CONTEXT = 4096
SYSTEMS = {"dgx_h100": "h100_sxm", "dgx_h100_nccl": "h100_sxm", "dgx_h200": "h200_sxm", "dgx_a100": "a100_sxm"}
"""aiconfigurator's system for each bundled GPU target."""
PAPER_ROOFLINE_BYTES_PER_S = 24e12
"""The DGX H100's HBM bandwidth as the kernel-looping paper counts it (8 x 3 TB/s)."""

# dfdsl's kernels -> aiconfigurator's decode ops (`generation_<op>`), for the per-kernel table.
KERNEL_OPS = {
    "embedding": ("embedding", "embedding_ar"),
    "add_rmsnorm": ("add_norm_1", "add_norm_2"),
    "gemm_wq_wk_wv": ("qkv_gemm",),
    "rope + attention": ("attention",),
    "gemm_wo": ("proj_gemm",),
    "all-reduce": ("ar_1", "ar_2", "moe_pre_dispatch", "moe_post_dispatch"),
    "gemm_w_gate_w_up": ("gate_ffn1_gemm",),
    "silu_mul": ("act_gate",),
    "gemm_w_down": ("ffn2_gemm",),
    "moe_router": ("router_gemm",),
    "moe_experts": ("moe",),
    "lm_head": ("logits_gemm",),
}


def _group(kernel: str) -> str:
    if kernel in ("rope", "attention"):
        return "rope + attention"
    if kernel == "nccl_all_reduce":
        return "all-reduce"
    return kernel if kernel in KERNEL_OPS else "other"


# -- aiconfigurator's side (runs in aiconfigurator's interpreter; no dfdsl import) -------------


def _hf_path(hf_id: str, scratch: Path) -> str:
    """A path aiconfigurator reads offline: its id when it is in its default list, else a folder
    holding the config it ships (it would download one otherwise)."""
    from importlib import resources

    from aiconfigurator.sdk import common

    if hf_id in getattr(common, "DefaultHFModels", ()):
        return hf_id
    shipped = resources.files("aiconfigurator_core") / "model_configs" / f"{hf_id.replace('/', '--')}_config.json"
    folder = scratch / hf_id.replace("/", "--")
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(str(shipped), folder / "config.json")
    return str(folder)


def aiconfigurator_grid(system: str, points: list[tuple[str, int, int]]) -> dict[str, Any]:
    """aiconfigurator's static decode estimate at each point: its TPOT (ms) and per-op ms."""
    import logging

    from aiconfigurator.cli.api import cli_estimate

    logging.disable(logging.WARNING)
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for model, tp, batch in points:
            moe = {"moe_tp_size": tp, "moe_ep_size": 1} if "mixtral" in model else {}
            try:
                r = cli_estimate(model_path=_hf_path(MODELS[model], Path(scratch)), system_name=system,
                                 mode="static_gen", backend_name="trtllm", isl=CONTEXT, osl=2, batch_size=batch,
                                 tp_size=tp, **moe)
                out[f"{model} {tp} {batch}"] = {"tpot_ms": r.tpot, "version": r.backend_version,
                                                "ops_ms": r.summary.get_generation_latency_dict()}
            except Exception as err:  # a point aiconfigurator refuses is reported, not fatal
                out[f"{model} {tp} {batch}"] = {"error": f"{type(err).__name__}: {err}"[:200]}
    return out


def ask_aiconfigurator(python: str, system: str, points: list[tuple[str, int, int]]) -> dict[str, Any] | None:
    """aiconfigurator's grid from its own interpreter, or None (with the reason on stderr)."""
    request = json.dumps({"system": system, "points": points})
    try:
        done = subprocess.run([python, __file__, "--aiconfigurator-side"], input=request, capture_output=True,
                              text=True, timeout=3600, check=False)
    except OSError as err:
        print(f"aiconfigurator: cannot run {python}: {err}", file=sys.stderr)
        return None
    if done.returncode != 0:
        print(f"aiconfigurator: {python} failed:\n{done.stderr[-2000:]}", file=sys.stderr)
        return None
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return result


# -- dfdsl's side ----------------------------------------------------------------------------


def collector_conditions(call: Any, hw: Any, batch: int) -> Any:
    """A GEMM as aiconfigurator's collector times it (collect_gemm.py): max(1, min(5, ceil(L2 /
    weights))) copies of its weights replayed in turn, so its reuse distance is that many times the
    weights (the L2 its file's); any other call as it is."""
    import attrs

    from dfdsl.sim import timing

    if call.kind != "gemm":
        return call
    t = timing.traffic(call.work, batch, 0)
    weights = t.hbm_read_bytes + t.hbm_write_bytes
    copies = max(1, min(5, math.ceil(hw.chip.sram_bytes / weights)))
    return attrs.evolve(call, reuse=timing.IterationWork(hbm_read=timing.Affine(int(copies * weights))))


def dfdsl_point(target: str, model: str, tp: int, batch: int) -> dict[str, Any]:
    """dfdsl's ms per token at one point, its kernels' ms per token by group, and its figures."""
    from collections import defaultdict

    from dfdsl.driver import POINT_ERRORS, CompileOptions, Compiler, load_model
    from dfdsl.validate import EXAMPLES_DIR

    overrides = {"target": target, "sockets": tp, "batch": batch, "context": CONTEXT, "tokens": 2}
    try:
        m = load_model(Path(EXAMPLES_DIR) / f"{model}.dfl", overrides)
        compiler = Compiler()
        options = CompileOptions(kernel_looping=False)
        run = compiler.simulate(m, m.settings, options)
        calls = m.target.kernel_calls(compiler.compile(m, m.settings, options), m.hardware)
    except POINT_ERRORS as err:
        return {"error": str(err).split(";")[0][:90]}
    kernels: dict[str, list[float]] = defaultdict(lambda: [0.0, 0, 0.0])
    for call in calls:
        t = m.target.time_call(call, m.hardware, batch, CONTEXT)
        kernels[_group(call.kernel)][0] += t.total_s * 1e3
        kernels[_group(call.kernel)][1] += 1
        at_collector = m.target.time_call(collector_conditions(call, m.hardware, batch), m.hardware, batch, CONTEXT)
        kernels[_group(call.kernel)][2] += at_collector.total_s * 1e3
    figures = run.report.figures
    return {"ms": figures["ms_per_token"], "kernels": dict(kernels), "tokens_per_s": figures["tokens_per_s_per_user"],
            "bytes_per_token": figures["bytes_per_token"], "peak_fraction": figures["peak_fraction"]}


# -- the tables ------------------------------------------------------------------------------


def grid_table(target: str, dfdsl: dict[str, dict], aic: dict[str, dict] | None) -> list[float]:
    """Prints the grid; returns the errors (dfdsl / aiconfigurator - 1) where both have a figure."""
    print(f"Time per output token, {target} (dfdsl) vs aiconfigurator ({SYSTEMS[target]}, TensorRT-LLM), "
          f"BF16, context {CONTEXT:,}")
    print(f"{'model':<14}{'TP':>3}{'batch':>6}{'dfdsl ms':>10}{'aic ms':>9}{'error':>8}")
    errors = []
    for key, ours in dfdsl.items():
        model, tp, batch = key.split()
        theirs = (aic or {}).get(key, {})
        if "error" in ours:
            print(f"{model:<14}{tp:>3}{batch:>6}   {'':>7}{'':>9}   dfdsl: {ours['error']}")
            continue
        if "tpot_ms" not in theirs:
            note = theirs.get("error", "aiconfigurator not run")
            print(f"{model:<14}{tp:>3}{batch:>6}{ours['ms']:>10.3f}{'-':>9}{'':>8}  {note[:60]}")
            continue
        error = ours["ms"] / theirs["tpot_ms"] - 1
        errors.append(error)
        print(f"{model:<14}{tp:>3}{batch:>6}{ours['ms']:>10.3f}{theirs['tpot_ms']:>9.3f}{error:>+8.1%}")
    if errors:
        absolute = [abs(e) for e in errors]
        print(f"{len(errors)} points: median |error| {statistics.median(absolute):.1%}, worst {max(absolute):.1%} "
              f"(points that do not fit in dfdsl's memory check are left out)")
    return errors


def kernel_table(key: str, ours: dict[str, Any], theirs: dict[str, Any] | None) -> None:
    """dfdsl's kernels against aiconfigurator's ops (each from its measured table) at one point."""
    model, tp, batch = key.split()
    print(f"\nPer kernel, {model} TP{tp} batch {batch} (us per token, all layers; calls per token; "
          "`collector`: dfdsl's GEMMs priced at the L2 conditions of aiconfigurator's GEMM collector)")
    print(f"{'kernel':<20}{'calls':>6}{'dfdsl us':>10}{'aic us':>9}{'error':>8}{'collector':>11}{'error':>8}")
    ops = (theirs or {}).get("ops_ms", {})
    for group, (ms, calls, collector_ms) in sorted(ours["kernels"].items(), key=lambda item: -item[1][0]):
        names = KERNEL_OPS.get(group, ())
        their_ms = sum(ops.get(f"generation_{op}", 0.0) for op in names)
        shown = f"{their_ms * 1e3:>9.1f}{ms / their_ms - 1:>+8.1%}" if their_ms else f"{'-':>9}{'':>8}"
        if collector_ms != ms:
            shown += f"{collector_ms * 1e3:>11.1f}" + (f"{collector_ms / their_ms - 1:>+8.1%}" if their_ms else "")
        print(f"{group:<20}{calls:>6}{ms * 1e3:>10.1f}{shown}")


def kernel_summary(dfdsl: dict[str, dict], aic: dict[str, dict], models: tuple[str, ...]) -> None:
    """Per kernel group, dfdsl's error against aiconfigurator's op over every point of `models`."""
    errors: dict[str, list[tuple[float, str]]] = {}
    for key, ours in dfdsl.items():
        ops = aic.get(key, {}).get("ops_ms")
        if key.split()[0] not in models or "error" in ours or not ops:
            continue
        for group, (ms, _, collector_ms) in ours["kernels"].items():
            their_ms = sum(ops.get(f"generation_{op}", 0.0) for op in KERNEL_OPS.get(group, ()))
            if their_ms:
                errors.setdefault(group, []).append((ms / their_ms - 1, key))
                if group.startswith("gemm") or group == "lm_head":
                    errors.setdefault(f"{group} (collector)", []).append((collector_ms / their_ms - 1, key))
    print(f"\nPer kernel over every point of {', '.join(models)} (dfdsl against aiconfigurator's op; "
          "`(collector)`: dfdsl's GEMM priced at the collector's L2 conditions, as the table was measured)")
    print(f"{'kernel':<28}{'points':>7}{'median':>8}{'worst':>8}  worst at")
    for group, found in sorted(errors.items()):
        worst = max(found, key=lambda item: abs(item[0]))
        print(f"{group:<28}{len(found):>7}{statistics.median(abs(e) for e, _ in found):>8.1%}{worst[0]:>+8.1%}  {worst[1]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="dgx-h100", help="a bundled GPU target (default dgx-h100)")
    parser.add_argument("--aiconfigurator-python", default=os.environ.get("AICONFIGURATOR_PYTHON", ""),
                        metavar="PATH", help="the Python that has aiconfigurator installed")
    parser.add_argument("--kernels", default="llama3_1_8b:8:1", metavar="MODEL:TP:BATCH",
                        help="the configuration of the per-kernel table (default llama3_1_8b:8:1)")
    parser.add_argument("--aiconfigurator-side", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.aiconfigurator_side:
        request = json.loads(sys.stdin.read())
        print(json.dumps(aiconfigurator_grid(request["system"], [tuple(p) for p in request["points"]])))
        return
    target = args.target.replace("-", "_")
    if target not in SYSTEMS:
        parser.error(f"--target: no aiconfigurator system for {args.target}; use one of "
                     + ", ".join(t.replace("_", "-") for t in SYSTEMS))
    points = [(model, tp, batch) for model in MODELS for tp in TPS for batch in BATCHES]
    kernel_key = " ".join(args.kernels.split(":"))
    dfdsl = {f"{m} {tp} {b}": dfdsl_point(target, m, tp, b) for m, tp, b in points}
    aic = None
    python = args.aiconfigurator_python
    if not python:
        if importlib.util.find_spec("aiconfigurator") is not None:
            python = sys.executable
        else:
            print("aiconfigurator is not installed here: pass --aiconfigurator-python PATH (a venv with "
                  "`pip install aiconfigurator`); showing dfdsl's side only\n")
    if python:
        aic = ask_aiconfigurator(python, SYSTEMS[target], points)
    grid_table(target, dfdsl, aic)
    if kernel_key in dfdsl and "error" not in dfdsl[kernel_key]:
        kernel_table(kernel_key, dfdsl[kernel_key], (aic or {}).get(kernel_key))
    if aic:
        kernel_summary(dfdsl, aic, ("llama3_1_8b", "llama3_1_70b"))
    paper = dfdsl_point("dgx_h100_nccl", "llama3_1_8b", 8, 1)
    today = dfdsl["llama3_1_8b 8 1"] if target == "dgx_h100" else dfdsl_point("dgx_h100", "llama3_1_8b", 8, 1)
    print("\nLlama 3.1 8B, TP8, batch 1, context 4,096 on a DGX H100 (the kernel-looping paper's configuration):")
    for name, point in (("dgx-h100 (today's TensorRT-LLM-class software)", today),
                        ("dgx-h100-nccl (NCCL all-reduce, eager launches)", paper)):
        roof = point["tokens_per_s"] * point["bytes_per_token"] / PAPER_ROOFLINE_BYTES_PER_S
        print(f"  {name:<50} {point['ms']:.3f} ms, {point['tokens_per_s']:.0f} tokens/s, "
              f"{roof:.1%} of 24 TB/s ({point['peak_fraction']:.1%} of 26.8 TB/s)")


if __name__ == "__main__":
    main()
