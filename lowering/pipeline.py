"""The lowering pipelines as data: for each kind of target, its stages in order and the passes
that take a module from one stage to the next.

An RDU (the SN40L) has the stages `df` (what the front end makes), `fused` (sharding, fusion and, for a pipeline,
its stages),
`looped` (kernel looping) and `rdu` (memory placement and the conversion to the `rdu` dialect). A
GPU node has `df`, `fused` (sharding and `gpu-partition`, TensorRT-LLM's kernels; a GPU cannot
loop kernels) and `nv` (memory placement and the conversion to the `nv` dialect). The passes of
each step are made from `LoweringOptions`, so one set of options names a whole compilation; the
passes of a step marked `uses_run_sizes` depend on the batch, context and tokens of the run (the
KV cache's size decides placement), the earlier ones only on the model and the sockets.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from importlib import import_module

import attrs
from xdsl.context import Context
from xdsl.dialects.builtin import Builtin, ModuleOp
from xdsl.passes import ModulePass

from dfdsl.dialects import all_dialects
from dfdsl.lowering.stages import apply_checked

FUSION_MODES = ("none", "block", "layer")

PASSES: dict[str, tuple[str, str]] = {
    "shard-tensor-parallel": ("dfdsl.lowering.shard_tensor_parallel", "ShardTensorParallel"),
    "fuse": ("dfdsl.lowering.fuse", "Fuse"),
    "pipeline-stages": ("dfdsl.lowering.pipeline_stages", "PipelineStages"),
    "kernel-looping": ("dfdsl.lowering.kernel_looping", "KernelLooping"),
    "place-memory": ("dfdsl.lowering.place_memory", "PlaceMemory"),
    "df-to-rdu": ("dfdsl.lowering.df_to_rdu", "DfToRdu"),
    "gpu-partition": ("dfdsl.lowering.gpu_partition", "GpuPartition"),
    "df-to-nv": ("dfdsl.lowering.df_to_nv", "DfToNv"),
}
"""Pass name to (module, class), imported only when the pass is asked for."""


@attrs.frozen
class LoweringOptions:
    sockets: int = 0
    """Tensor-parallel degree; 0 takes the run's `sockets` from the graph."""
    fusion: str = "layer"
    kernel_looping: bool = True
    min_calls: int = 2
    pipeline: int = 1
    """Pipeline stages, each on `sockets` sockets (1: no pipeline)."""
    micro_batches: int = 1
    """Parts the batch flows through the pipeline stages in."""
    target: str = "sn40l"
    hardware: str = ""
    """A hardware TOML file overriding `target`'s bundled one."""


def pass_class(name: str) -> type[ModulePass]:
    module, cls = PASSES[name]
    return getattr(import_module(module), cls)


def pass_loader(name: str) -> Callable[[], type[ModulePass]]:
    return lambda: pass_class(name)


def make_pass(name: str, **options: object) -> ModulePass:
    return pass_class(name)(**options)


PassMaker = Callable[[LoweringOptions], "ModulePass | None"]
"""Makes one pass of a step from the options, or None when the options leave it out."""


@attrs.frozen
class Step:
    """The passes that take a module from the previous stage to `stage`."""

    stage: str
    passes: tuple[PassMaker, ...] = ()
    uses_run_sizes: bool = False
    """The passes depend on the run's batch, context and tokens, not only on the model and sockets."""

    def make(self, options: LoweringOptions) -> list[ModulePass]:
        made = (maker(options) for maker in self.passes)
        return [p for p in made if p is not None]


@attrs.frozen
class Pipeline:
    """A target's stages in order, each reached from the one before by its step's passes."""

    steps: tuple[Step, ...]

    @property
    def stages(self) -> tuple[str, ...]:
        return tuple(step.stage for step in self.steps)

    def steps_to(self, stage: str) -> tuple[Step, ...]:
        if stage not in self.stages:
            raise ValueError(f"unknown stage {stage!r}; stages are {', '.join(self.stages)}")
        return self.steps[: self.stages.index(stage) + 1]

    @property
    def shared_stage(self) -> str:
        """The last stage that depends only on the model and the sockets, not on the run's sizes:
        every batch, context and number of tokens starts from it."""
        sized = next(i for i, step in enumerate(self.steps) if step.uses_run_sizes)
        return self.steps[sized - 1].stage

    def passes_to(self, stage: str, options: LoweringOptions) -> list[ModulePass]:
        """The passes that take a front-end `df` module to `stage`, in order."""
        return [p for step in self.steps_to(stage) for p in step.make(options)]


def _shard(o: LoweringOptions) -> ModulePass:
    return make_pass("shard-tensor-parallel", sockets=o.sockets)


def _fuse(o: LoweringOptions) -> ModulePass:
    return make_pass("fuse", mode=o.fusion)


def _pipeline_stages(o: LoweringOptions) -> ModulePass | None:
    if o.pipeline == 1:
        return None
    return make_pass("pipeline-stages", stages=o.pipeline, micro_batches=o.micro_batches)


def _kernel_looping(o: LoweringOptions) -> ModulePass | None:
    return make_pass("kernel-looping", min_calls=o.min_calls) if o.kernel_looping else None


def _place_memory(o: LoweringOptions) -> ModulePass:
    return make_pass("place-memory", target=o.target, hardware=o.hardware)


def _df_to_rdu(o: LoweringOptions) -> ModulePass:
    return make_pass("df-to-rdu", target=o.target, hardware=o.hardware)


def _gpu_partition(o: LoweringOptions) -> ModulePass:
    if o.pipeline > 1:
        from dfdsl.hardware import TargetMismatchError

        raise TargetMismatchError(f"pipeline parallelism ({o.pipeline} stages) is modelled on an RDU only: "
                                  "run a GPU node without --pipeline")
    if o.kernel_looping:
        from dfdsl.lowering.gpu_partition import KernelLoopingOnGpuError

        raise KernelLoopingOnGpuError()
    return make_pass("gpu-partition")


def _df_to_nv(o: LoweringOptions) -> ModulePass:
    return make_pass("df-to-nv", target=o.target)


RDU_PIPELINE = Pipeline((
    Step("df"),
    Step("fused", (_shard, _fuse, _pipeline_stages)),
    Step("looped", (_kernel_looping,)),
    Step("rdu", (_place_memory, _df_to_rdu), uses_run_sizes=True),
))
GPU_PIPELINE = Pipeline((
    Step("df"),
    Step("fused", (_shard, _gpu_partition)),
    Step("nv", (_place_memory, _df_to_nv), uses_run_sizes=True),
))


def context() -> Context:
    ctx = Context()
    ctx.load_dialect(Builtin)
    for dialect in all_dialects():
        ctx.load_dialect(dialect)
    return ctx


PassCallback = Callable[[ModulePass, ModuleOp, float], None]


def run_passes(module: ModuleOp, passes: Sequence[ModulePass], after_each: PassCallback | None = None) -> None:
    """Apply `passes` in order, verifying and checking the stage after each (`apply_checked`);
    `after_each(pass, module, seconds)` sees each."""
    ctx = context()
    for p in passes:
        start = time.perf_counter()
        apply_checked(p, ctx, module)
        if after_each is not None:
            after_each(p, module, time.perf_counter() - start)

