"""The one path from a model to a report: load and check a `.dfl` file, compile it to a stage of
its target's pipeline, simulate it, and report.

Every command goes through here (`run`, `lower`, `compare`, `validate`, `sweep`, `sensitivity`),
so they agree. What a machine needs is read off its `Target` record (`dfdsl.targets`): its stages,
the passes between them, its simulator and its defaults. A `Compiler` keeps each stage it has
compiled, keyed by what produced it (the model's content, the graph, the sockets, the passes, and
for the stages that depend on them the batch, context, tokens and prompt tokens per pass), so runs
that share a prefix of the pipeline compile it once: a sweep over batch sizes shards, fuses and
loops once. Its `evaluate` times many points at once: one program per placement, the array timing
model for all points. A model is its content (`ModelSource`), which is what workers of a sweep are
sent.

A model has up to four graphs, each compiled by the same pipeline: its decode step and, when a
run needs them, its prefill pass (a request's prompt, a speculative round's verification) and its
draft model's decode step and prefill pass. `Compiler.simulate` times the decode as a plain run,
a whole request (prefill, then the decode steps) and with speculative decoding, as the run asks.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections import OrderedDict
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import cast

import attrs
import numpy as np
from numpy.typing import NDArray
from xdsl.dialects.builtin import IntegerAttr, ModuleOp
from xdsl.passes import ModulePass
from xdsl.utils.exceptions import DiagnosticException

from dfdsl.composition import Composition
from dfdsl.diagnostics import DfslError, Diagnostic
from dfdsl.dialects import df, target_ops
from dfdsl.elaborate import RunValue, check_draft, check_run_settings, composition_of, elaborate
from dfdsl.errors import Coded
from dfdsl.footprint import Footprint, footprint
from dfdsl.hardware import (
    GpuHardware,
    Hardware,
    TargetMismatchError,
    bundled_kind,
    bundled_targets,
    display_name,
    hardware_text,
    parse_hardware,
    with_value,
)
from dfdsl.irgen import generate
from dfdsl.loader import Program, load, stdlib_dir
from dfdsl import stream
from dfdsl.lowering.compose import CompositionError, composition_module, region_slots
from dfdsl.lowering.pipeline import LoweringOptions, PassCallback, run_passes
from dfdsl.lowering.place_memory import TIER_ORDER, CapacityError, Placement, place_class
from dfdsl.lowering.shard_tensor_parallel import ShardingError, counts_text
from dfdsl.lowering.socket_hints import advise
from dfdsl.model import ResolvedModel, RunSettings
from dfdsl.report import Report, RequestFigures, composition_figures, decode_figures, make_report
from dfdsl.sim import composition as composition_sim
from dfdsl.sim import request, vectorized
from dfdsl.sim.composition import Tiers, plan_of
from dfdsl.sim.interpreter import SimResult, micro_batch_error
from dfdsl.sim.timing import KernelCall
from dfdsl.targets import Target, target_for

RUN_SIZES = ("batch", "context", "tokens")
POINT_ERRORS = (DfslError, DiagnosticException)
"""What makes a point fail rather than the program: the model does not divide, does not fit, or
asks the machine for what it cannot do (each with its code)."""


@attrs.frozen
class CompileOptions:
    """How to compile, and for which machine: what `dfdsl run`'s lowering options choose."""

    fusion: str = "layer"
    kernel_looping: bool | None = None
    """None: the target's default (on where it can loop kernels)."""
    min_calls: int = 2
    hardware: str = ""
    """A hardware file (or bundled target name) to use instead of the model's target."""

    def loops_kernels(self, target: Target) -> bool:
        """Whether kernels are looped on `target`: as asked, or the target's default."""
        return target.loops_kernels if self.kernel_looping is None else self.kernel_looping


BUNDLED = "<bundled>"
"""The folder a model source names the bundled library's files under."""


@attrs.frozen
class ModelSource:
    """What a model is made of, as text: its file and every file it imports (named relative to its
    folder; the bundled library's under `<bundled>/`), its hardware file, and the run settings given
    outside the file; `key` is a digest of all of it. A sweep ships this to its workers, never a
    path, so neither a worker's folder nor an edit made since can change the model it runs."""

    main: str
    files: tuple[tuple[str, str], ...]
    hardware: str
    """The hardware as given: "" (the run's target), a bundled target's name, or a file's name."""
    hardware_text: str
    hardware_is_file: bool
    overrides: tuple[tuple[str, RunValue], ...]
    key: str


def _source(path: Path, sources: Mapping[Path, str], hardware: str, hardware_text: str, bundled: bool,
            overrides: Mapping[str, RunValue]) -> ModelSource:
    # Imports resolve under the importing file's folder, so every file of the model is under the
    # main file's (as the loader sees it: the folder of the path given, links resolved).
    folder, library = path.parent.resolve(), stdlib_dir().resolve()
    files = []
    for file_path, text in sources.items():
        real = Path(file_path).resolve()
        if Path(file_path) == path:
            name = path.name
        elif real.is_relative_to(library):
            name = f"{BUNDLED}/{real.relative_to(library).as_posix()}"
        else:
            name = real.relative_to(folder).as_posix()
        files.append((name, text))
    settings = tuple(sorted((k, v) for k, v in overrides.items() if v is not None))
    digest = hashlib.sha256()
    for name, text in sorted(files):
        digest.update(f"{name}\0{text}\0".encode())
    digest.update(f"{hardware_text}\0{settings}".encode())
    return ModelSource(path.name, tuple(sorted(files)), hardware if bundled else Path(hardware).name,
                       hardware_text, not bundled, settings, digest.hexdigest())


@attrs.frozen(eq=False)
class Model:
    """A checked model, its front-end `df` module (never changed: compiling works on copies), and
    the machine it runs on. Its prefill module and its draft model are made when first asked for."""

    path: Path
    resolved: ResolvedModel
    module: ModuleOp
    source: ModelSource
    hardware: Hardware | GpuHardware
    hardware_option: str
    """The hardware file (or bundled target) it was loaded with; "" for the run's target."""
    target: Target
    target_name: str
    program: Program
    overrides: Mapping[str, RunValue] = attrs.field(factory=dict)
    is_draft: bool = False
    """This is the draft model of the file's model."""
    composition: Composition | None = None
    """The file's Composition of Experts, if it has one; this model is then its router."""
    model_name: str = ""
    """In a file with a composition, the model of the file this is ("" the first)."""
    weights_tier: str = ""
    """Where its weights live whatever the `place` block says (a composition's roles; "" as it says)."""
    _made: dict[str, object] = attrs.field(factory=dict)
    footprint: Footprint = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "footprint", footprint(self.module))

    @property
    def key(self) -> str:
        """A digest of the text of every file the model was read from, of its hardware and of the
        run settings given outside the file (`ModelSource.key`); a draft's key names the draft."""
        return self.source.key

    @property
    def settings(self) -> RunSettings:
        """The run the file's `run` block (and the overrides) give: `RunConfig` without its target."""
        return self.resolved.run.settings(speculative=bool(self.resolved.draft))

    def prefill_module(self) -> ModuleOp:
        """The `df` module of the model's prefill pass (never changed, as `module`)."""
        if "prefill" not in self._made:
            resolved = elaborate(self.program, self.overrides, targets=bundled_targets(), prefill=True,
                                 draft=self.is_draft, model=self.model_name, weights_tier=self.weights_tier)
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
                                               source=attrs.evolve(self.source, key=f"{self.key}:draft"),
                                               is_draft=True, made={})
        return cast(Model, self._made["draft"])

    def expert(self, name: str) -> Model:
        """The composition's expert model `name`, on the same machine and run, with its weights in
        HBM (an expert runs from its HBM slot; its home tier is the composition's business)."""
        key = f"expert:{name}"
        if key not in self._made:
            resolved = elaborate(self.program, self.overrides, targets=bundled_targets(), model=name,
                                 weights_tier="hbm")
            self._made[key] = attrs.evolve(self, resolved=resolved, module=generate(resolved),
                                           source=attrs.evolve(self.source, key=f"{self.key}:{key}"),
                                           model_name=name, weights_tier="hbm", made={})
        return cast(Model, self._made[key])


def load_model(path: Path, overrides: Mapping[str, RunValue] | None = None, hardware: str = "") -> Model:
    """Load, check and generate the model of a `.dfl` file (`overrides` replace its run settings),
    and find its machine: `hardware` if given, else the run's target. A file with a draft is
    checked with its draft."""
    path = Path(path)
    program = load(path)
    settings = {k: v for k, v in (overrides or {}).items() if k != "experts"}
    composition = composition_of(program, overrides)
    router, tier = (composition.router, composition.router_tier) if composition is not None else ("", "")
    resolved = elaborate(program, settings, targets=bundled_targets(), model=router, weights_tier=tier)
    text, name, bundled = hardware_text(hardware or resolved.run.target)
    hw = parse_hardware(text, name)
    if bundled_kind(resolved.run.target) != hw.kind:
        # The target's passes would refuse the machine later, naming only the target.
        same = ", ".join(display_name(t) for t in bundled_targets() if bundled_kind(t) == hw.kind)
        raise TargetMismatchError(f"the hardware file {name} is {'an' if hw.kind == 'rdu' else 'a'} {hw.kind} machine and "
                                  f"the run's target {display_name(resolved.run.target)} is not: give a target of "
                                  f"its kind as well ({same})")
    source = _source(path, program.sources(), hardware, text, bundled, overrides or {})
    model = Model(path, resolved, generate(resolved), source, hw, hardware, target_for(hw), resolved.run.target,
                  program, settings, composition=composition, model_name=router, weights_tier=tier)
    model.draft()
    return model


class SourceMismatchError(Coded, DiagnosticException, code="E027"):
    """A worker read a shipped model otherwise than its client: their dfdsl versions differ, so
    the cluster given (`--scheduler`) cannot run this sweep."""


def _models_folder() -> Path:
    """The folder of shipped models of this machine's user, one folder per model key. A key names
    its content, so processes share the folders and never need to remove them (worker processes
    are often ended without running exit handlers); each holds a few kilobytes of text."""
    folder = Path(tempfile.gettempdir()) / f"dfdsl-models-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    return folder


def load_source(source: ModelSource) -> Model:
    """The model of a shipped source: its files written out under the folder of its key (the
    passes read the hardware file by path), loaded as `load_model` does, and checked to be the
    model the client read."""
    folder = _models_folder() / source.key
    hardware = source.hardware
    if source.hardware_is_file:
        hardware = str(folder / ".hardware" / source.hardware)
    if not folder.exists():
        partial = Path(tempfile.mkdtemp(prefix=f"{source.key}.", dir=folder.parent))
        for name, text in source.files:
            if not name.startswith(f"{BUNDLED}/"):
                (partial / name).parent.mkdir(parents=True, exist_ok=True)
                (partial / name).write_text(text, encoding="utf-8")
        if source.hardware_is_file:
            (partial / ".hardware").mkdir(parents=True, exist_ok=True)
            (partial / ".hardware" / source.hardware).write_text(source.hardware_text, encoding="utf-8")
        try:
            partial.rename(folder)
        except OSError:  # another process wrote the same key first
            shutil.rmtree(partial, ignore_errors=True)
    model = load_model(folder / source.main, dict(source.overrides), hardware)
    if model.key != source.key:
        raise SourceMismatchError(
            "this worker reads the model otherwise than the client did: its dfdsl (bundled library or "
            "hardware files) differs; install the client's version of dfdsl on every worker")
    return model


def lowering_options(model: Model, settings: RunSettings, options: CompileOptions) -> LoweringOptions:
    looping = options.loops_kernels(model.target)
    return LoweringOptions(sockets=settings.sockets, fusion=options.fusion, kernel_looping=looping,
                           min_calls=options.min_calls, target=model.target_name, hardware=options.hardware,
                           pipeline=settings.pipeline, micro_batches=settings.micro_batches)


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
class CompositionRun:
    """A composition's stream served: its report, and each request's times."""

    report: Report
    served: composition_sim.Served
    program: ModuleOp | None
    """The composition program (its HBM region and copies) on an RDU; None on a GPU node, whose
    copies over PCIe are timed from its hardware file's `[host]` table."""


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
        _with_settings(module, settings, None)
        advice = advise(module, model.hardware)
        unit = model.hardware.unit
        if advice.counts:
            staged = (f" (counted as if one stage held the whole model; over {settings.pipeline} pipeline stages "
                      "each holds only its layers, so fewer may do)" if settings.pipeline > 1 else "")
            return (f"use {counts_text(advice.counts, unit)}: with those, every split divides and every "
                    f"{unit} holds its tensors{staged}")
        why = (f"no {unit} count works: the splits divide over {counts_text(advice.shardable, unit)}, and at "
               "none of them do the tensors fit as placed")
        if advice.placement is None:
            return why + ", nor with KV caches or weights in DDR: use a smaller dtype, batch or context"
        tensor_class, tier, count = advice.placement
        moved = model.module.clone()
        place_class(moved, tensor_class, tier)
        alternative = attrs.evolve(model, module=moved, made={},
                                   source=attrs.evolve(model.source, key=f"{model.key}:{tensor_class}->{tier}"))
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
                                batch=result.sequences_per_socket, prompt=settings.prompt, chunk=settings.chunk)
                for m in (model, draft) if m is not None
            )
        looping = options.loops_kernels(target)
        report = make_report(result, model.footprint, hw,
                             fusion=target.fusion_label(options.fusion), kernel_looping=looping,
                             request=RequestFigures(settings.prompt, settings.tokens, prefill, speculation))
        return Run(report, result, hw)

    def serve(self, model: Model, settings: RunSettings, options: CompileOptions) -> CompositionRun:
        """Serves the requests of the model's composition (`model` is its router): compiles the
        router and each distinct expert model once, builds the composition program (its HBM region
        and copies) for an RDU, and times the stream request by request (`sim/composition.py`):
        router, switch, prefill and decode. `settings.batch` prompts go through the router together."""
        composition = model.composition
        assert composition is not None
        hw = model.hardware
        sockets = hw.node.gpus if isinstance(hw, GpuHardware) else settings.sockets
        if composition.stream.kind != "file" and not settings.prompt:
            raise DfslError([Diagnostic(
                "E016", f"composition `{composition.name}` generates its requests, and the run gives no prompt "
                "for them", composition.span, "add `prompt = 128` to the `run` block, or give --prompt")])
        requests = stream.requests(composition.stream, composition.expert_count, settings.prompt, settings.tokens)
        model_of = np.repeat(np.arange(len(composition.experts)), [g.count for g in composition.experts])
        names = [g.model for g in composition.experts]
        longest = int(requests.prompt.max()), int(requests.tokens.max())

        def request_settings(batch: int, prompt: int, tokens: int) -> RunSettings:
            return RunSettings(batch, prompt, tokens, sockets, prompt=prompt)

        routers: dict[int, float] = {}

        def router_s(batch: int) -> float:
            if batch not in routers:
                run = self.simulate(model, request_settings(batch, longest[0], 1), options)
                routers[batch] = run.report["ttft_ms"] / 1e3
            return routers[batch]

        router_module = self.compile(model, request_settings(settings.batch, longest[0], 1), options)
        router_hbm = hbm_bytes_per_socket(router_module, request_settings(settings.batch, longest[0], 1))
        copies, first = [], None
        prefill_s, decode_s = np.zeros(len(requests)), np.zeros(len(requests))
        groups = model_of[requests.experts]
        for index, name in enumerate(composition.models):
            expert = model.expert(name)
            widest = request_settings(1, *longest)
            module = self.compile(expert, widest, options)
            weights = hbm_bytes_per_socket(module, widest, ("weight",))
            kv = hbm_bytes_per_socket(module, widest, tuple(k for k in target_ops.BUFFER_KINDS if k != "weight"))
            copies.append((name, weights, sum(g.count for g in composition.experts if g.model == name), kv))
            mine = np.flatnonzero(np.asarray([names[g] for g in groups]) == name) if len(composition.models) > 1 \
                else np.arange(len(requests))
            pairs = np.stack([requests.prompt[mine], requests.tokens[mine]], axis=1)
            distinct, inverse = np.unique(pairs, axis=0, return_inverse=True)
            for k, (prompt, tokens) in enumerate(distinct.tolist()):
                run = self.simulate(expert, request_settings(1, prompt, tokens), options)
                first = first or run
                at = mine[inverse.ravel() == k]
                prefill_s[at] = run.report["ttft_ms"] / 1e3
                decode_s[at] = (run.report["request_latency_ms"] - run.report["ttft_ms"]) / 1e3
        free = hw.capacity_bytes("hbm") - router_hbm - max(c[3] for c in copies)
        slot_bytes = max(c[1] for c in copies)
        wanted = composition.expert_count if composition.experts_tier == "hbm" else composition.hbm_slots
        slots = region_slots(free, slot_bytes, wanted, composition.expert_count, f"composition `{composition.name}`",
                             all_resident=composition.experts_tier == "hbm")
        fit = free // slot_bytes
        # `fit`: the experts HBM could keep resident, however many the composition has.
        per_socket = {name: weights for name, weights, _, _ in copies}
        program = None
        if isinstance(hw, GpuHardware):
            host = hw.host
            link = 0.0 if host is None else min(sockets * host.pcie_bandwidth_bytes_per_s,
                                                 host.memory_bandwidth_bytes_per_s)
            home = 0 if host is None or composition.experts_tier == "hbm" else \
                host.memory_bytes // (slot_bytes * sockets)
            tiers = Tiers(slots, int(home), link)
        else:
            program = composition_module([(n, b, c) for n, b, c, _ in copies], slots, sockets)
            plan = plan_of(program)
            slots = plan.slots
            per_socket = {name: b for name, b, _, _ in plan.copies}
            home = 0 if composition.experts_tier == "hbm" else hw.capacity_bytes("ddr") // plan.slot_bytes
            tiers = Tiers(slots, int(home), sockets * hw.ddr.bandwidth_bytes_per_s)
        if tiers.nodes(composition.expert_count) == 0 or (tiers.copy_bytes_per_s == 0 and
                                                          composition.expert_count > slots):
            raise CompositionError(
                f"composition `{composition.name}`: {composition.expert_count} experts, {slots} fit in HBM and "
                f"{hw.name} has no tier to copy the others from: place them in HBM on more nodes, or use fewer")
        switch = np.array([per_socket[names[g]] * sockets / tiers.copy_bytes_per_s if tiers.copy_bytes_per_s else 0.0
                           for g in model_of])
        served = composition_sim.serve(requests.experts, composition.expert_count, tiers, batch=settings.batch,
                                       switch_s=switch, prefill_s=prefill_s, decode_s=decode_s, router_s=router_s)
        assert first is not None
        figures = composition_figures(
            first.report.figures, served, name=composition.name, experts=composition.expert_count,
            slots=slots, switch_s=float(switch[0]), experts_per_node=fit if isinstance(hw, GpuHardware)
            else max(fit, tiers.home_slots), batch=settings.batch)
        return CompositionRun(Report(figures, first.report.timeline), served, program)

    def _calls(self, model: Model, settings: RunSettings, options: CompileOptions, hw: Hardware | GpuHardware,
               pass_tokens: int) -> list[KernelCall]:
        """The calls of the model's prefill program compiled for passes of `pass_tokens` tokens."""
        module = self.compile(model, settings, options, pass_tokens=pass_tokens)
        return model.target.kernel_calls(module, hw)

    def evaluate(self, model: Model, options: CompileOptions, sockets: int, points: vectorized.Points,
                 swept: Mapping[str, NDArray[np.float64]] | None = None) -> Evaluation:
        """`simulate` at many points of one model, options and sockets: the report's numbers at
        each point (`decode_figures`, as arrays), or its error. `swept` replaces hardware values
        (by attribute path, one value per point) for the timing, as `simulate`'s `hardware` does.

        Points whose tensors are placed alike run one program: it is compiled once (at the first
        such point) and timed by the array model at all of them (`sim/vectorized.py`)."""
        swept = dict(swept or {})
        target = model.target
        looping = options.loops_kernels(target)
        evaluation = Evaluation(model.resolved.name, model.hardware.name, looping, len(points.batch))
        # The model's pipeline comes along: the array model times its stages.
        staged = {"pipeline": model.settings.pipeline, "micro_batches": model.settings.micro_batches}
        start = RunSettings(int(points.batch[0]), int(points.context[0]), int(points.tokens[0]), sockets, **staged)
        try:
            shared = self.compile(model, start, options, until=target.pipeline.shared_stage)
        except POINT_ERRORS as err:
            evaluation.fail(np.arange(len(points.batch)), err)
            return evaluation
        groups = _placements(Placement(df.the_graph(shared, "evaluate")), model.hardware, points)
        checked = [swept[key] for key in target.checked_hardware if key in swept]
        keys = np.stack([groups.ids, *checked], axis=1)
        _, first, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
        # The points of each group, in order: one sort rather than one scan per group.
        members = np.split(np.argsort(inverse.ravel(), kind="stable"), np.cumsum(np.bincount(inverse.ravel()))[:-1])
        for representative, index in zip(first, members):
            settings = RunSettings(int(points.batch[representative]), int(points.context[representative]),
                                   int(points.tokens[representative]), sockets, **staged)
            failure = groups.errors.get(int(groups.ids[representative]))
            if isinstance(failure, CapacityError):
                # As `compile` says it: what does not fit, and what to do.
                failure = CapacityError(failure.problem, self.socket_hint(model, settings, options))
            if failure is not None:
                # As `compile` says it: with the socket counts or the placement that would work.
                evaluation.fail(index, CapacityError(failure.problem, self.socket_hint(model, settings, options)))
                continue
            hw = model.hardware
            for key in target.checked_hardware:
                if key in swept:
                    hw = with_value(hw, key, float(swept[key][representative]))
            try:
                profile = target.profiler(self.compile(model, settings, options), hw)
            except POINT_ERRORS as err:
                evaluation.fail(index, err)
                continue
            if profile.pipeline is not None:
                # As `simulate` refuses it: a batch that does not split into the micro-batches.
                uneven = points.batch[index] % profile.pipeline.micro_batches != 0
                for i in index[uneven]:
                    error = micro_batch_error(profile.pipeline, int(points.batch[i]))
                    assert error is not None
                    evaluation.fail(np.array([i]), error)
                index = index[~uneven]
                if not len(index):
                    continue
            at = vectorized.Points(points.batch[index], points.context[index], points.tokens[index])
            values = vectorized.HardwareValues(model.hardware, {k: v[index] for k, v in swept.items()})
            result = vectorized.simulate(profile, values, at, target.call_lines)
            evaluation.model = profile.model
            evaluation.put(index, decode_figures(result, model.footprint))
        return evaluation


@attrs.define
class Evaluation:
    """Many points of one model: the report's numbers at each (arrays; a point in error has no
    meaningful number there) and each point's error, if any."""

    model: str
    target: str
    kernel_looping: bool
    size: int
    figures: dict[str, NDArray] = attrs.field(factory=dict)
    errors: list[Exception | None] = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self.errors = [None] * self.size

    def fail(self, index: NDArray[np.intp], error: Exception) -> None:
        for i in index:
            self.errors[i] = error

    def put(self, index: NDArray[np.intp], numbers: Mapping[str, object]) -> None:
        flat = {f"{c}_ms" if k == "breakdown_ms" else k: v
                for k, value in numbers.items()
                for c, v in (value.items() if isinstance(value, dict) else [(None, value)])}
        for key, value in flat.items():
            array = np.asarray(value)
            if key not in self.figures:
                self.figures[key] = np.zeros(self.size, dtype=array.dtype)
            self.figures[key][index] = array


@attrs.frozen
class _Placements:
    """Each point's placement, as an id (0: every tensor where it was declared), and the error of
    an id whose tensors do not fit."""

    ids: NDArray[np.int64]
    errors: dict[int, CapacityError]


def _placements(placement: Placement, hardware: Hardware | GpuHardware, points: vectorized.Points) -> _Placements:
    """Which points place their tensors alike. Most fit as declared, found for all at once; the
    others are planned once per distinct batch and tokens cached, as place-memory plans them."""
    tokens_cached = points.context + points.tokens
    batch = points.batch.astype(np.float64)
    fits = np.ones(len(batch), dtype=bool)
    for tier in TIER_ORDER:
        # With a margin: float sums this close to a capacity go to the exact plan below.
        used = placement.declared_bytes(tier, batch, tokens_cached.astype(np.float64))
        fits &= used <= hardware.capacity_bytes(tier) * (1 - 1e-9)
    ids = np.zeros(len(batch), dtype=np.int64)
    plans: dict[object, int] = {(): 0}
    errors: dict[int, CapacityError] = {}
    for i in np.flatnonzero(~fits):
        b, s = int(points.batch[i]), int(tokens_cached[i])
        try:
            groups, warnings = placement.plan(hardware, b, s)
            plan: object = tuple(g.tier for g in groups) if warnings else ()
        except CapacityError as err:
            plan = ("error", b, s)
            errors.setdefault(plans.setdefault(plan, len(plans)), err)
        ids[i] = plans.setdefault(plan, len(plans))
    return _Placements(ids, errors)



def hbm_bytes_per_socket(module: ModuleOp, settings: RunSettings, kinds: tuple[str, ...] = target_ops.BUFFER_KINDS,
                         tier: str = "hbm") -> int:
    """The memory of `tier` one socket gives the buffers of `kinds` a compiled program declares (KV
    caches for the whole run)."""
    cached = settings.context + max(settings.tokens, 1)
    program = next(op for op in module.walk() if isinstance(op, target_ops.ProgramBase))
    batch = program.sequences_per_socket(settings.batch)
    types = (op.results[0].type for op in module.walk()
             if isinstance(op, target_ops.BufferBase) and op.kind.data in kinds)
    return sum(t.num_bytes(batch, cached) for t in types
               if isinstance(t, df.ShapedTypeBase) and t.tier_name == tier)


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
    if model.composition is not None:
        return Compiler().serve(model, model.settings, options).report
    return Compiler().simulate(model, model.settings, options).report
