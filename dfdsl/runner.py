"""The whole flow for one run: `.dfl` file -> df -> passes -> rdu or nv -> simulated decode -> `Report`.

`dfdsl run`, `compare`, `validate` and `sweep` all go through `run_model`; each stage is called
through its one entry point, so this file only wires them together. A run whose target (or
hardware file) is a GPU node goes through the GPU pipeline instead: `shard-tensor-parallel`,
`gpu-partition` (in place of fusion and kernel looping), `place-memory`, `df-to-nv`, and the
GPU interpreter.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import attrs
from xdsl.dialects.builtin import ModuleOp

from dfdsl.elaborate import check_file
from dfdsl.footprint import footprint
from dfdsl.irgen import generate
from dfdsl.lowering.pipeline import LoweringOptions, gpu_passes_to, passes_to, run_passes
from dfdsl.report import Report, make_report
from dfdsl.sim.hardware import GpuHardware, Hardware, bundled_targets, load_hardware
from dfdsl.sim.interpreter import SimResult, simulate

GPU_FUSION = "gpu-partition"
"""What a GPU run reports as its fusion: the pass that made its kernels."""


@attrs.frozen
class Variant:
    """How to compile and where to run: what `dfdsl run`'s options choose."""

    fusion: str = "layer"
    kernel_looping: bool | None = None
    """None: the target's default (on for SN40L; a GPU cannot loop kernels, so asking for it
    there is an error)."""
    hardware: str = ""
    """A hardware file overriding the run's target."""


def load_target(model_target: str, variant: Variant) -> Hardware | GpuHardware:
    return load_hardware(variant.hardware or model_target)


def _simulate_gpu(module: ModuleOp, options: LoweringOptions, hardware: GpuHardware) -> SimResult:
    from dfdsl.sim.gpu_interpreter import simulate_gpu

    run_passes(module, gpu_passes_to("nv", options))
    return simulate_gpu(module, hardware)


def run_model(path: Path, overrides: Mapping[str, int | str] | None = None,
              variant: Variant = Variant()) -> Report:
    """Compile and simulate one model under one variant."""
    model = check_file(path, overrides, targets=bundled_targets())
    module = generate(model)
    hardware = load_target(model.run.target, variant)
    fp = footprint(module, model.run.batch)
    is_gpu = isinstance(hardware, GpuHardware)
    kernel_looping = (not is_gpu) if variant.kernel_looping is None else variant.kernel_looping
    options = LoweringOptions(
        sockets=model.run.sockets, fusion=variant.fusion, kernel_looping=kernel_looping,
        target=model.run.target, hardware=variant.hardware,
    )
    if is_gpu:
        result = _simulate_gpu(module, options, hardware)
        return make_report(result, fp, hardware, fusion=GPU_FUSION, kernel_looping=False)  # type: ignore[arg-type]
    run_passes(module, passes_to("rdu", options))
    result = simulate(module, hardware)
    return make_report(result, fp, hardware, fusion=variant.fusion, kernel_looping=kernel_looping)
