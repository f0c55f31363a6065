"""`dfdsl compare`: one model under several ways of compiling it, or on several machines, each run
as `dfdsl run` would run it (through `dfdsl.driver`).

Variants: every fusion mode with and without kernel looping, at several socket counts. The
configurations share one `Compiler`, so sharding and fusion run once per (socket count, fusion);
where kernel looping finds nothing to loop (no run of consecutive calls to one kernel) the looped
configuration is the unlooped program, simulated once and shown in both rows with a note. On a
target that makes its own kernels (a GPU), the fusion mode changes nothing: that program is
simulated once. A configuration that cannot be built (sockets that do not divide the heads,
weights that do not fit) has its error in its outcome instead of failing the comparison.

Targets: one model on several machines (`sn40l:8,sn40l:16,dgx-h100`), each with its defaults.
How both are shown is `dfdsl.compare_view`'s job.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import attrs
from xdsl.utils.exceptions import DiagnosticException

from dfdsl.driver import CompileOptions, Compiler, Model, Run, RunSettings, load_model, run_model
from dfdsl.elaborate import RunValue, check_run_settings
from dfdsl.errors import EnvironmentFailure
from dfdsl.hardware import load_hardware, target_name
from dfdsl.lowering.kernel_looping import find_runs
from dfdsl.lowering.pipeline import FUSION_MODES
from dfdsl.report import Report

DEFAULT_SOCKETS = (8, 16)
"""A node and a rack."""

NOTHING_TO_LOOP = "nothing to loop: the same program as looping off"


@attrs.frozen
class Config:
    """One row of the comparison: where the model runs and how it is compiled."""

    sockets: int
    fusion: str
    kernel_looping: bool


@attrs.frozen
class Outcome:
    """What one configuration gave: its run (report, simulation and machine), or an error."""

    config: Config
    run: Run | None = None
    error: str = ""
    internal_error: bool = False
    """The error is a bug in dfdsl rather than a property of the configuration."""
    note: str = ""

    @property
    def report(self) -> Report | None:
        return None if self.run is None else self.run.report

    @property
    def ms_per_token(self) -> float | None:
        return None if self.report is None else self.report["ms_per_token"]


def parse_variants(spec: str) -> list[tuple[str, bool]]:
    """`none,block:on,layer:off` -> [(fusion, kernel_looping), ...]; a fusion without `:on` or
    `:off` stands for both (looping off first)."""
    variants: list[tuple[str, bool]] = []
    for item in (part.strip() for part in spec.split(",")):
        fusion, _, looping = item.partition(":")
        if fusion not in FUSION_MODES or looping not in ("", "on", "off"):
            raise ValueError(
                f"bad variant {item!r}: write FUSION or FUSION:on or FUSION:off, with FUSION one of "
                + ", ".join(FUSION_MODES)
            )
        loopings = {"": (False, True), "on": (True,), "off": (False,)}[looping]
        variants += [(fusion, on) for on in loopings if (fusion, on) not in variants]
    return variants


def configurations(sockets: Sequence[int], variants: Sequence[tuple[str, bool]]) -> list[Config]:
    """The product of the axes, socket counts outermost: the table's rows in order."""
    return [Config(s, fusion, looping) for s in sockets for fusion, looping in variants]


def _failure(config: Config, err: Exception) -> Outcome:
    """An outcome for a configuration that could not be built or simulated."""
    if isinstance(err, DiagnosticException):
        return Outcome(config, error=str(err))
    return Outcome(config, error=f"internal error: {type(err).__name__}: {err}", internal_error=True)


class _Variants:
    """Simulates the configurations of one model, each distinct program once."""

    def __init__(self, model: Model, hardware_file: str):
        self.model = model
        self.hardware_file = hardware_file
        self.compiler = Compiler()
        self.runs: dict[tuple, Run] = {}

    def loops_something(self, settings: RunSettings, fusion: str) -> bool:
        fused = self.compiler.compile(self.model, settings, CompileOptions(fusion, False, hardware=self.hardware_file),
                                      until="fused")
        return bool(find_runs(fused, CompileOptions().min_calls)[0])

    def outcome(self, config: Config) -> Outcome:
        target = self.model.target
        settings = attrs.evolve(self.model.settings, sockets=config.sockets)
        note, looping = "", config.kernel_looping
        # A bug in one configuration (not only a user error) must not hide the rest of the table: it
        # shows in its row, and the command reports it through its exit code.
        try:
            if looping and target.loops_kernels and not self.loops_something(settings, config.fusion):
                note, looping = NOTHING_TO_LOOP, False
            fusion = "" if target.own_kernels else config.fusion
            key = (config.sockets, fusion, looping)
            if key not in self.runs:
                options = CompileOptions(config.fusion, looping, hardware=self.hardware_file)
                self.runs[key] = self.compiler.simulate(self.model, settings, options)
            run = self.runs[key]
        except (MemoryError, EnvironmentFailure):  # the machine's problem, not this row's: stop the command
            raise
        except Exception as err:
            return _failure(config, err)
        if target.own_kernels:
            note = f"the target makes its own kernels ({target.own_kernels})"
        figures = {**run.report.figures, "kernel_looping": config.kernel_looping}
        return Outcome(config, Run(Report(figures, run.report.timeline), run.result, run.hardware), note=note)


def simulate_configs(path: Path, overrides: Mapping[str, RunValue], configs: Sequence[Config],
                     hardware_file: str = "") -> list[Outcome]:
    """Every configuration of `configs`, in order. Front-end errors (a bad file or setting) raise;
    errors of one configuration's lowering or simulation are in its outcome."""
    for sockets in dict.fromkeys(c.sockets for c in configs):
        check_run_settings({"sockets": sockets})
    variants = _Variants(load_model(path, overrides, hardware_file), hardware_file)
    return [variants.outcome(c) for c in configs]


# -- targets ---------------------------------------------------------------------------------


@attrs.frozen
class TargetSpec:
    target: str
    sockets: int | None
    spelled: str = ""
    """The name as the user wrote it (`dgx-h100`), for labels; the target's own name if none."""

    @property
    def label(self) -> str:
        name = self.spelled or self.target
        return name if self.sockets is None else f"{name}:{self.sockets}"


def parse_targets(text: str) -> list[TargetSpec]:
    """`sn40l:8,sn40l:16,dgx-h100` -> specs; a missing count keeps the file's (or the machine's)."""
    specs = []
    for item in text.split(","):
        name, _, count = item.strip().partition(":")
        if not name:
            continue
        if count and (not count.isdigit() or int(count) < 1):
            raise ValueError(f"--targets: bad socket count in {item.strip()!r}; write NAME:N, e.g. sn40l:16")
        specs.append(TargetSpec(target_name(name), int(count) if count else None, name))
    if not specs:
        raise ValueError("--targets needs at least one target, e.g. sn40l:8,sn40l:16,dgx-h100")
    return specs


@attrs.frozen
class TargetOutcome:
    """One machine's report, or the reason it could not run (a capacity or divisibility error)."""

    spec: TargetSpec
    kind: str
    """The machine's kind (`rdu`, `gpu`): speedups are measured against the first GPU."""
    report: Report | None = None
    error: str = ""


def run_targets(path: Path, overrides: Mapping[str, RunValue], specs: Sequence[TargetSpec]) -> list[TargetOutcome]:
    """The model on each machine of `specs`, as `dfdsl run` runs it there."""
    outcomes = []
    for spec in specs:
        values = dict(overrides, target=spec.target)
        kind = load_hardware(spec.target).kind
        if spec.sockets is not None:
            values["sockets"] = spec.sockets
        elif kind != "rdu":  # a GPU node without a count: the file's, not the other machines'
            values.pop("sockets", None)
        try:
            outcomes.append(TargetOutcome(spec, kind, run_model(path, values)))
        except DiagnosticException as err:
            outcomes.append(TargetOutcome(spec, kind, error=" ".join(str(err).split())))
    return outcomes
