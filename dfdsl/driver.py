"""The one path from a model to a report: load and check a `.dfl` file, compile it to a stage of
its target's pipeline, simulate it, and report.

Every command goes through here (`run`, `lower`, `compare`, `validate`, `sweep`), so they agree.
What a machine needs is read off its `Target` record (`dfdsl.targets`): its stages, the passes
between them, its simulator and its defaults. A `Compiler` keeps each stage it has compiled,
keyed by what produced it (the model's content, the graph, the sockets, the passes, and for the
stages that depend on them the batch, context, tokens and prompt tokens per pass), so runs that
share a prefix of the pipeline compile it once: a sweep over batch sizes shards, fuses and loops
once.

A model has up to four graphs, each compiled by the same pipeline: its decode step and, when a
run needs them, its prefill pass (a request's prompt, a speculative round's verification) and its
draft model's decode step and prefill pass. `Compiler.simulate` times the decode as a plain run,
a whole request (prefill, then the decode steps) and with speculative decoding, as the run asks.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import cast

import attrs
from xdsl.dialects.builtin import IntegerAttr, ModuleOp
from xdsl.passes import ModulePass

from dfdsl.dialects import df, target_ops
from dfdsl.elaborate import RunValue, check_draft, check_run_settings, elaborate
from dfdsl.footprint import footprint
from dfdsl.hardware import GpuHardware, Hardware, TargetMismatchError, bundled_targets, load_hardware
from dfdsl.irgen import generate
from dfdsl.loader import Program, load
from dfdsl.lowering.pipeline import LoweringOptions, PassCallback, run_passes
from dfdsl.lowering.place_memory import CapacityError
from dfdsl.model import ResolvedModel
from dfdsl.report import Report, RequestFigures, make_report
from dfdsl.sim import request
from dfdsl.sim.interpreter import SimResult
from dfdsl.sim.timing import KernelCall
from dfdsl.targets import Target, target_for


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
    """Where a compiled model runs: the run's sizes and its sockets (tensor-parallel degree); for
    a request its prompt (and prefill chunk), for speculative decoding its draft tokens per round
    and their acceptance (None: the model decodes alone)."""

    batch: int
    context: int
    tokens: int
    sockets: int
    prompt: int = 0
    chunk: int = 0
    draft_tokens: int = 4
    acceptance: float | None = None

    @property
    def decode_steps(self) -> int:
        """The decode steps timed: `tokens`; in a request the prefill samples the first output
        token, so one fewer (but at least one, for the time per output token)."""
        return max(self.tokens - 1, 1) if self.prompt else self.tokens


@attrs.frozen(eq=False)
class Model:
    """A checked model, its front-end `df` module (never changed: compiling works on copies), and
    the machine it runs on. Its prefill module and its draft model are made when first asked for."""

    path: Path
    resolved: ResolvedModel
    module: ModuleOp
    key: str
    """A digest of the text of every file the model was read from, and of its target."""
    hardware: Hardware | GpuHardware
    target: Target
    target_name: str
    program: Program
    overrides: Mapping[str, RunValue] = attrs.field(factory=dict)
    is_draft: bool = False
    """This is the draft model of the file's model."""
    _made: dict[str, object] = attrs.field(factory=dict)

    @property
    def settings(self) -> RunSettings:
        run = self.resolved.run
        return RunSettings(run.batch, run.context, run.tokens, run.sockets, run.prompt, run.chunk,
                           run.draft_tokens, run.acceptance if self.resolved.draft else None)

    def prefill_module(self) -> ModuleOp:
        """The `df` module of the model's prefill pass (never changed, as `module`)."""
        if "prefill" not in self._made:
            resolved = elaborate(self.program, self.overrides, targets=bundled_targets(), prefill=True,
                                 draft=self.is_draft)
            self._made["prefill"] = generate(resolved)
        return cast(ModuleOp, self._made["prefill"])

    def draft(self) -> Model | None:
        """The file's draft model, on the same machine and run; None if the file has none."""
        if not self.resolved.draft:
            return None
        if "draft" not in self._made:
            resolved = elaborate(self.program, self.overrides, targets=bundled_targets(), draft=True)
            check_draft(self.program, self.resolved, resolved)
            self._made["draft"] = attrs.evolve(self, resolved=resolved, module=generate(resolved),
                                               key=f"{self.key}:draft", is_draft=True, made={})
        return cast(Model, self._made["draft"])


def load_model(path: Path, overrides: Mapping[str, RunValue] | None = None, hardware: str = "") -> Model:
    """Load, check and generate the model of a `.dfl` file (`overrides` replace its run settings),
    and find its machine: `hardware` if given, else the run's target. A file with a draft is
    checked with its draft."""
    program = load(path)
    resolved = elaborate(program, overrides, targets=bundled_targets())
    hw = load_hardware(hardware or resolved.run.target)
    digest = hashlib.sha256()
    for name, text in sorted(program.sources().items()):
        digest.update(f"{name}\0{text}\0".encode())
    digest.update(f"{resolved.run.target}\0{hw}".encode())
    model = Model(path, resolved, generate(resolved), digest.hexdigest(), hw, target_for(hw),
                  resolved.run.target, program, dict(overrides or {}))
    model.draft()
    return model


def lowering_options(model: Model, settings: RunSettings, options: CompileOptions) -> LoweringOptions:
    looping = model.target.loops_kernels if options.kernel_looping is None else options.kernel_looping
    return LoweringOptions(sockets=settings.sockets, fusion=options.fusion, kernel_looping=looping,
                           min_calls=options.min_calls, target=model.target_name, hardware=options.hardware)


def _with_settings(module: ModuleOp, settings: RunSettings, pass_tokens: int | None) -> None:
    """Sets the run's sizes and sockets on the module's graph (they are the graph's properties),
    and a prefill graph's tokens per pass. A request of no output token still caches its prompt,
    so the graph (which sizes the KV cache for `context + tokens`) says at least one."""
    for op in module.walk():
        if isinstance(op, df.GraphOp):
            for key in ("batch", "context", "sockets"):
                op.properties[key] = IntegerAttr(getattr(settings, key), 64)
            op.properties["tokens"] = IntegerAttr(max(settings.tokens, 1), 64)
            if pass_tokens is not None:
                op.properties["prompt"] = IntegerAttr(pass_tokens, 64)
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
                *, pass_tokens: int | None = None, rewrite: Callable[[ModulePass], ModulePass] | None = None,
                after_each: PassCallback | None = None) -> ModuleOp:
        """The model compiled to stage `until` (the target's last by default): its decode step, or
        with `pass_tokens` its prefill pass of that many tokens per sequence. The module returned
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
        key: tuple = (model.key, "decode" if pass_tokens is None else "prefill", settings.sockets)
        sized = False
        for step in steps:
            if step.uses_run_sizes and not sized:
                key += (settings.batch, settings.context, max(settings.tokens, 1), pass_tokens)
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
        source = model.module if pass_tokens is None else model.prefill_module()
        module = (module or source).clone()
        _with_settings(module, settings, pass_tokens)
        for i in range(start, len(steps)):
            passes = keys[i][-1]
            if rewrite is not None:
                passes = tuple(rewrite(p) for p in passes)
            run_passes(module, passes, after_each)
            if shared:
                self._keep(keys[i], module)
                if i + 1 < len(steps):
                    module = module.clone()
        return module

    def _keep(self, key: tuple, module: ModuleOp) -> None:
        self._stages[key] = module
        while len(self._stages) > self.max_stages:
            self._stages.popitem(last=False)

    def simulate(self, model: Model, settings: RunSettings, options: CompileOptions,
                 hardware: Hardware | GpuHardware | None = None) -> Run:
        """Compiles the model for its target and times its decode (`settings.decode_steps` steps),
        with speculative decoding when the settings give an acceptance, and the prefill before it
        when they give a prompt. `hardware` (the model's by default) is what the simulator sees,
        e.g. with swept values."""
        target = model.target
        hw = hardware or model.hardware
        if target_for(hw) is not target:
            raise TargetMismatchError(f"{hw.name} is not a machine of the kind {model.target_name} is")
        module = self.compile(model, settings, options)
        result = target.simulator(module, hw, batch=settings.batch, context=settings.context,
                                  tokens=settings.decode_steps)
        draft = model.draft() if settings.acceptance is not None else None
        speculation = None
        if draft is not None and settings.acceptance is not None:
            draft_module = self.compile(draft, settings, options)
            _check_both_fit(model, module, draft, draft_module, settings, hw)
            speculation = request.speculate(
                result, self._calls(model, settings, options, hw, settings.draft_tokens + 1),
                target.kernel_calls(draft_module, hw), hw, target.time_call,
                draft_tokens=settings.draft_tokens, acceptance=settings.acceptance)
            result = speculation.result
        prefill: tuple[request.Prefill, ...] = ()
        if settings.prompt:
            pass_tokens = settings.chunk or settings.prompt
            prefill = tuple(
                request.prefill(self._calls(m, settings, options, hw, pass_tokens), hw, target.time_call,
                                batch=settings.batch, prompt=settings.prompt, chunk=settings.chunk)
                for m in (model, draft) if m is not None
            )
        looping = target.loops_kernels if options.kernel_looping is None else options.kernel_looping
        report = make_report(result, footprint(model.module, settings.batch), hw,
                             fusion=target.fusion_label(options.fusion), kernel_looping=looping,
                             request=RequestFigures(settings.prompt, settings.tokens, prefill, speculation))
        return Run(report, result, hw)

    def _calls(self, model: Model, settings: RunSettings, options: CompileOptions, hw: Hardware | GpuHardware,
               pass_tokens: int) -> list[KernelCall]:
        """The calls of the model's prefill program compiled for passes of `pass_tokens` tokens."""
        module = self.compile(model, settings, options, pass_tokens=pass_tokens)
        return model.target.kernel_calls(module, hw)


def hbm_bytes_per_socket(module: ModuleOp, settings: RunSettings) -> int:
    """The HBM one socket gives the buffers a compiled program declares (KV caches for the whole run)."""
    cached = settings.context + max(settings.tokens, 1)
    types = (op.results[0].type for op in module.walk() if isinstance(op, target_ops.BufferBase))
    return sum(t.num_bytes(settings.batch, cached) for t in types
               if isinstance(t, df.ShapedTypeBase) and t.tier_name == "hbm")


def _check_both_fit(model: Model, module: ModuleOp, draft: Model, draft_module: ModuleOp, settings: RunSettings,
                    hw: Hardware | GpuHardware) -> None:
    """Speculative decoding keeps the model and its draft in the HBM of the same sockets: each was
    placed on its own, so check that both fit together (E021)."""
    needed = hbm_bytes_per_socket(module, settings) + hbm_bytes_per_socket(draft_module, settings)
    capacity = hw.capacity_bytes("hbm")
    if needed > capacity:
        raise CapacityError(
            f"{model.resolved.name} and its draft {draft.resolved.name} need {needed / 1e9:.1f} GB of hbm per "
            f"socket together, and a socket has {capacity / 1e9:.1f} GB (GB = 10^9 bytes): use more sockets, "
            "or place the draft's weights in ddr"
        )


def run_model(path: Path, overrides: Mapping[str, RunValue] | None = None,
              options: CompileOptions = CompileOptions()) -> Report:
    """Compile and simulate one model under one set of options: what `dfdsl run` prints."""
    model = load_model(path, overrides, options.hardware)
    return Compiler().simulate(model, model.settings, options).report
