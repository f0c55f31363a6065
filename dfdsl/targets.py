"""Targets as data: one `Target` record per kind of machine, found from its hardware file.

A record holds what differs between machines and nothing else: the lowering pipeline (its stages
and the passes between them), the simulator that times the last stage, and the defaults of a run
there. Everything that compiles or simulates a model (`dfdsl.driver`) reads the record; adding a
kind of machine is one record here plus its dialect, passes and simulator.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs
from xdsl.dialects.builtin import ModuleOp

from dfdsl.hardware import GpuHardware, Hardware
from dfdsl.lowering.pipeline import GPU_PIPELINE, RDU_PIPELINE, Pipeline
from dfdsl.sim import gpu_interpreter, interpreter
from dfdsl.sim.gpu_interpreter import profile_gpu
from dfdsl.sim.interpreter import Profile, SimResult, profile
from dfdsl.sim.timing import CallTimer, KernelCall, call_timing
from dfdsl.sim.vectorized import CallLiner, gpu_call_lines, rdu_call_lines

Simulator = Callable[..., SimResult]
"""`simulator(module, hardware, batch=, context=, tokens=)`: times a module at the target's last stage."""
KernelCalls = Callable[[ModuleOp, Hardware | GpuHardware], list[KernelCall]]
"""`kernel_calls(module, hardware)`: the calls of one run of a module's program at the last stage."""
Profiler = Callable[[ModuleOp, Hardware | GpuHardware], Profile]
"""`profiler(module, hardware)`: what one step of a module at the target's last stage runs."""


@attrs.frozen
class Target:
    kind: str
    """The `kind` of the hardware files this record runs."""
    description: str
    pipeline: Pipeline
    simulator: Simulator
    kernel_calls: KernelCalls
    """What a prefill pass or a speculative round is timed from (`sim/request.py`), with `time_call`."""
    time_call: CallTimer
    """How the simulator times one call (`timing.call_timing`, a GPU's `launch_timing`)."""
    profiler: Profiler
    call_lines: CallLiner
    """The timing of one call over arrays (`sim/vectorized.py`), for many points at once."""
    loops_kernels: bool
    """Kernel looping is possible, and on unless turned off."""
    graph_stage: str
    """The stage `dfdsl lower --emit graph` draws unless told."""
    own_kernels: str = ""
    """The pass that makes the target's kernels whatever the fusion mode ("" where `--fusion`
    decides); reports name it as the run's fusion."""
    checked_hardware: tuple[str, ...] = ()
    """Hardware values the profiler checks a program against (beyond what the timing reads)."""

    @property
    def stages(self) -> tuple[str, ...]:
        return self.pipeline.stages

    @property
    def final_stage(self) -> str:
        return self.pipeline.stages[-1]

    def fusion_label(self, fusion: str) -> str:
        return self.own_kernels or fusion


RDU = Target(
    kind="rdu",
    description="a reconfigurable dataflow chip (SN40L): fused kernels, kernel looping",
    pipeline=RDU_PIPELINE,
    simulator=interpreter.simulate,
    kernel_calls=interpreter.kernel_calls,
    time_call=call_timing,
    profiler=profile,
    call_lines=rdu_call_lines,
    loops_kernels=True,
    graph_stage="looped",
)
GPU = Target(
    kind="gpu",
    description="a node of GPUs (DGX H100, H200, A100) with its serving software: kernels, launches, all-reduce",
    pipeline=GPU_PIPELINE,
    simulator=gpu_interpreter.simulate_gpu,
    kernel_calls=gpu_interpreter.kernel_calls,
    time_call=gpu_interpreter.launch_timing,
    profiler=profile_gpu,
    call_lines=gpu_call_lines,
    loops_kernels=False,
    graph_stage="fused",
    own_kernels="gpu-partition",
    checked_hardware=("node.gpus",),
)
TARGETS: dict[str, Target] = {t.kind: t for t in (RDU, GPU)}


def target_for(hardware: Hardware | GpuHardware) -> Target:
    """The record of the machine a hardware file describes."""
    return TARGETS[hardware.kind]

