"""The whole flow for one run: `.dfl` file -> df -> passes -> rdu -> simulated decode -> `Report`.

`dfdsl run`, `compare`, `validate` and `sweep` all go through `run_model`; each stage is called
through its one entry point, so this file only wires them together.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import attrs

from dfdsl.elaborate import check_file
from dfdsl.footprint import footprint
from dfdsl.irgen import generate
from dfdsl.lowering.pipeline import LoweringOptions, passes_to, run_passes
from dfdsl.report import Report, make_report
from dfdsl.sim.hardware import Hardware, bundled_targets, load_hardware
from dfdsl.sim.interpreter import simulate


@attrs.frozen
class Variant:
    """How to compile and where to run: what `dfdsl run`'s options choose."""

    fusion: str = "layer"
    kernel_looping: bool = True
    hardware: str = ""
    """A hardware file overriding the run's target."""


def load_target(model_target: str, variant: Variant) -> Hardware:
    return load_hardware(variant.hardware or model_target)


def run_model(path: Path, overrides: Mapping[str, int | str] | None = None,
              variant: Variant = Variant()) -> Report:
    """Compile and simulate one model under one variant."""
    model = check_file(path, overrides, targets=bundled_targets())
    module = generate(model)
    hardware = load_target(model.run.target, variant)
    fp = footprint(module, model.run.batch)
    options = LoweringOptions(
        sockets=model.run.sockets, fusion=variant.fusion, kernel_looping=variant.kernel_looping,
        target=model.run.target, hardware=variant.hardware,
    )
    run_passes(module, passes_to("rdu", options))
    result = simulate(module, hardware)
    return make_report(result, fp, hardware, fusion=variant.fusion, kernel_looping=variant.kernel_looping)
