"""The lowering pipeline: which passes, with which options, take a `df` module to each stage.

`df` is what the front end makes; `fused` has run sharding and fusion; `looped` kernel looping;
`rdu` memory placement and the conversion to the `rdu` dialect. A GPU target has its own stages:
`fused` is sharding and `gpu-partition` (TensorRT-LLM's kernels; no kernel looping on a GPU),
and `nv` memory placement and the conversion to the `nv` dialect.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from importlib import import_module

import attrs
from xdsl.context import Context
from xdsl.dialects.builtin import Builtin, ModuleOp
from xdsl.passes import ModulePass

from dfdsl.lowering.stages import apply_checked
from dfdsl.universe import PASSES, dialects

STAGES = ("df", "fused", "looped", "rdu")
GPU_STAGES = ("df", "fused", "nv")
FUSION_MODES = ("none", "block", "layer")


@attrs.frozen
class LoweringOptions:
    sockets: int = 0
    """Tensor-parallel degree; 0 takes the run's `sockets` from the graph."""
    fusion: str = "layer"
    kernel_looping: bool = True
    min_calls: int = 2
    target: str = "sn40l"
    hardware: str = ""
    """A hardware TOML file overriding `target`'s bundled one."""


def make_pass(name: str, **options: object) -> ModulePass:
    module, cls = PASSES[name]
    return getattr(import_module(module), cls)(**options)


def passes_to(stage: str, options: LoweringOptions) -> list[ModulePass]:
    """The passes that take a front-end `df` module to `stage`, in order."""
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; stages are {', '.join(STAGES)}")
    order = STAGES.index(stage)
    passes: list[ModulePass] = []
    if order >= STAGES.index("fused"):
        passes.append(make_pass("shard-tensor-parallel", sockets=options.sockets))
        passes.append(make_pass("fuse", mode=options.fusion))
    if order >= STAGES.index("looped") and options.kernel_looping:
        passes.append(make_pass("kernel-looping", min_calls=options.min_calls))
    if order >= STAGES.index("rdu"):
        passes.append(make_pass("place-memory", target=options.target, hardware=options.hardware))
        passes.append(make_pass("df-to-rdu", target=options.target, hardware=options.hardware))
    return passes


def gpu_passes_to(stage: str, options: LoweringOptions) -> list[ModulePass]:
    """The passes that take a front-end `df` module to `stage` of a GPU target, in order."""
    if stage not in GPU_STAGES:
        raise ValueError(f"a GPU target has the stages {', '.join(GPU_STAGES)}, not {stage!r}")
    if options.kernel_looping and stage != "df":
        from dfdsl.lowering.gpu_partition import KernelLoopingOnGpuError

        raise KernelLoopingOnGpuError()
    order = GPU_STAGES.index(stage)
    passes: list[ModulePass] = []
    if order >= GPU_STAGES.index("fused"):
        passes.append(make_pass("shard-tensor-parallel", sockets=options.sockets))
        passes.append(make_pass("gpu-partition"))
    if order >= GPU_STAGES.index("nv"):
        passes.append(make_pass("place-memory", target=options.target, hardware=options.hardware))
        passes.append(make_pass("df-to-nv", target=options.target))
    return passes


def context() -> Context:
    ctx = Context()
    ctx.load_dialect(Builtin)
    for dialect in dialects():
        ctx.load_dialect(dialect)
    return ctx


PassCallback = Callable[[ModulePass, ModuleOp, float], None]


def run_passes(module: ModuleOp, passes: list[ModulePass], after_each: PassCallback | None = None) -> None:
    """Apply `passes` in order, verifying and checking the stage after each (`apply_checked`);
    `after_each(pass, module, seconds)` sees each."""
    ctx = context()
    for p in passes:
        start = time.perf_counter()
        apply_checked(p, ctx, module)
        if after_each is not None:
            after_each(p, module, time.perf_counter() - start)
