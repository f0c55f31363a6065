"""The one path from a model to a report: load and check a `.dfl` file, compile it to a stage of
its target's pipeline, simulate it, and report.

Every command goes through here (`run`, `lower`, `compare`, `validate`, `sweep`), so they agree.
What a machine needs is read off its `Target` record (`dfdsl.targets`): its stages, the passes
between them, its simulator and its defaults. A `Compiler` keeps each stage it has compiled,
keyed by what produced it (the model's content, the sockets, the passes, and for the stages that
depend on them the batch, context and tokens), so runs that share a prefix of the pipeline
compile it once: a sweep over batch sizes shards, fuses and loops once.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable, Mapping
from pathlib import Path

import attrs
from xdsl.dialects.builtin import IntegerAttr, ModuleOp
from xdsl.passes import ModulePass
from xdsl.utils.exceptions import DiagnosticException

from dfdsl.dialects import df
from dfdsl.elaborate import check_run_settings, elaborate
from dfdsl.footprint import footprint
from dfdsl.hardware import GpuHardware, Hardware, TargetMismatchError, bundled_targets, load_hardware
from dfdsl.irgen import generate
from dfdsl.loader import load
from dfdsl.lowering.pipeline import LoweringOptions, PassCallback, run_passes
from dfdsl.lowering.place_memory import CapacityError, place_class
from dfdsl.lowering.shard_tensor_parallel import ShardingError, counts_text
from dfdsl.lowering.socket_hints import advise
from dfdsl.model import ResolvedModel
from dfdsl.report import Report, make_report
from dfdsl.sim.interpreter import SimResult
from dfdsl.targets import Target, target_for

RUN_SIZES = ("batch", "context", "tokens")


@attrs.frozen
class CompileOptions:
    """How to compile, and for which machine: what `dfdsl run`'s lowering options choose."""

    fusion: str = "layer"
    kernel_looping: bool | None = None
    """None: the target's default (on where it can loop kernels)."""
    min_calls: int = 2
    hardware: str = ""
    """A hardware file (or bundled target name) to use instead of the model's target."""


@attrs.frozen
class RunSettings:
    """Where a compiled model runs: the run's sizes and its sockets (tensor-parallel degree)."""

    batch: int
    context: int
    tokens: int
    sockets: int


@attrs.frozen(eq=False)
class Model:
    """A checked model, its front-end `df` module (never changed: compiling works on copies), and
    the machine it runs on."""

    path: Path
    resolved: ResolvedModel
    module: ModuleOp
    key: str
    """A digest of the text of every file the model was read from, and of its target."""
    hardware: Hardware | GpuHardware
    target: Target
    target_name: str

    @property
    def settings(self) -> RunSettings:
        run = self.resolved.run
        return RunSettings(run.batch, run.context, run.tokens, run.sockets)


def load_model(path: Path, overrides: Mapping[str, int | str] | None = None, hardware: str = "") -> Model:
    """Load, check and generate the model of a `.dfl` file (`overrides` replace its run settings),
    and find its machine: `hardware` if given, else the run's target."""
    program = load(path)
    resolved = elaborate(program, overrides, targets=bundled_targets())
    hw = load_hardware(hardware or resolved.run.target)
    digest = hashlib.sha256()
    for name, text in sorted(program.sources().items()):
        digest.update(f"{name}\0{text}\0".encode())
    digest.update(f"{resolved.run.target}\0{hw}".encode())
    return Model(path, resolved, generate(resolved), digest.hexdigest(), hw, target_for(hw),
                 resolved.run.target)


def lowering_options(model: Model, settings: RunSettings, options: CompileOptions) -> LoweringOptions:
    looping = model.target.loops_kernels if options.kernel_looping is None else options.kernel_looping
    return LoweringOptions(sockets=settings.sockets, fusion=options.fusion, kernel_looping=looping,
                           min_calls=options.min_calls, target=model.target_name, hardware=options.hardware)


def _with_settings(module: ModuleOp, settings: RunSettings) -> None:
    """Sets the run's sizes and sockets on the module's graph (they are the graph's properties)."""
    for op in module.walk():
        if isinstance(op, df.GraphOp):
            for key in (*RUN_SIZES, "sockets"):
                op.properties[key] = IntegerAttr(getattr(settings, key), 64)
            return


@attrs.frozen
class Run:
    """A simulated run: its report, and the simulation and hardware behind it."""

    report: Report
    result: SimResult
    hardware: Hardware | GpuHardware


class Compiler:
    """Compiles and simulates models, keeping the stages it compiled for later runs to share."""

    def __init__(self, max_stages: int = 256):
        self._stages: OrderedDict[tuple, ModuleOp] = OrderedDict()
        self.max_stages = max_stages

    def compile(self, model: Model, settings: RunSettings, options: CompileOptions, until: str | None = None,
                *, rewrite: Callable[[ModulePass], ModulePass] | None = None,
                after_each: PassCallback | None = None) -> ModuleOp:
        """The model compiled to stage `until` (the target's last by default). The module returned
        may be shared with later runs: copy it (`clone()`) before changing it. `rewrite` changes a
        pass before it runs and `after_each` sees each pass run; with either, nothing is shared."""
        check_run_settings(attrs.asdict(settings))
        target = model.target
        stage = until or target.final_stage
        if stage not in target.stages:
            machine = f"{model.target_name} is {'a GPU' if target.kind == 'gpu' else 'an RDU'}"
            raise TargetMismatchError(f"{machine}: its stages are {', '.join(target.stages)}, not {stage}")
        lowering = lowering_options(model, settings, options)
        steps = target.pipeline.steps_to(stage)
        shared = rewrite is None and after_each is None
        keys: list[tuple] = []
        key: tuple = (model.key, settings.sockets)
        sized = False
        for step in steps:
            if step.uses_run_sizes and not sized:
                key += (settings.batch, settings.context, settings.tokens)
                sized = True
            key += (step.stage, tuple(step.make(lowering)))
            keys.append(key)
        start, module = 0, None
        if shared:
            for i in reversed(range(len(steps))):
                if keys[i] in self._stages:
                    start, module = i + 1, self._stages[keys[i]]
                    self._stages.move_to_end(keys[i])
                    break
        if start == len(steps) and module is not None:
            return module
        module = (module or model.module).clone()
        _with_settings(module, settings)
        for i in range(start, len(steps)):
            passes = keys[i][-1]
            if rewrite is not None:
                passes = tuple(rewrite(p) for p in passes)
            try:
                run_passes(module, passes, after_each)
            except (ShardingError, CapacityError) as err:
                raise type(err)(err.problem, self.socket_hint(model, settings, options)) from None
            if shared:
                self._keep(keys[i], module)
                if i + 1 < len(steps):
                    module = module.clone()
        return module

    def socket_hint(self, model: Model, settings: RunSettings, options: CompileOptions) -> str:
        """What to do when a model does not divide over, or fit on, the run's sockets: the counts
        that work (every split divides and every socket holds its tensors), or, when none does,
        a placement that works, on how many sockets, and what a token then costs."""
        module = model.module.clone()
        _with_settings(module, settings)
        advice = advise(module, model.hardware)
        unit = model.hardware.unit
        if advice.counts:
            return (f"use {counts_text(advice.counts, unit)}: with those, every split divides and every "
                    f"{unit} holds its tensors")
        why = (f"no {unit} count works: the splits divide over {counts_text(advice.shardable, unit)}, and at "
               "none of them do the tensors fit as placed")
        if advice.placement is None:
            return why + ", nor with KV caches or weights in DDR: use a smaller dtype, batch or context"
        tensor_class, tier, count = advice.placement
        moved = model.module.clone()
        place_class(moved, tensor_class, tier)
        alternative = attrs.evolve(model, module=moved, key=f"{model.key}\0{tensor_class}->{tier}")
        try:
            ms = self.simulate(alternative, attrs.evolve(settings, sockets=count), options).report["ms_per_token"]
            cost = f", at {ms:,.3f} ms per token"
        except DiagnosticException:
            cost = ""
        return (f"{why}. With `{tensor_class} -> {tier}` in the file's `place` block it runs on "
                f"{counts_text([count], unit)}{cost}")

    def _keep(self, key: tuple, module: ModuleOp) -> None:
        self._stages[key] = module
        while len(self._stages) > self.max_stages:
            self._stages.popitem(last=False)

    def simulate(self, model: Model, settings: RunSettings, options: CompileOptions,
                 hardware: Hardware | GpuHardware | None = None) -> Run:
        """Compiles the model for its target and times `settings.tokens` decode steps; `hardware`
        (the model's by default) is what the simulator sees, e.g. with swept values."""
        target = model.target
        hw = hardware or model.hardware
        if target_for(hw) is not target:
            raise TargetMismatchError(f"{hw.name} is not a machine of the kind {model.target_name} is")
        module = self.compile(model, settings, options)
        result = target.simulator(module, hw, batch=settings.batch, context=settings.context,
                                  tokens=settings.tokens)
        looping = target.loops_kernels if options.kernel_looping is None else options.kernel_looping
        report = make_report(result, footprint(model.module, settings.batch), hw,
                             fusion=target.fusion_label(options.fusion), kernel_looping=looping)
        return Run(report, result, hw)


def run_model(path: Path, overrides: Mapping[str, int | str] | None = None,
              options: CompileOptions = CompileOptions()) -> Report:
    """Compile and simulate one model under one set of options: what `dfdsl run` prints."""
    model = load_model(path, overrides, options.hardware)
    return Compiler().simulate(model, model.settings, options).report
