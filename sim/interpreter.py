"""The SN40L timing interpreter: xDSL's `Interpreter` over an `rdu` module, with time as its result.

`RduFunctions` gives one implementation per `rdu` op. Running the `rdu.program` walks its calls
in order; the first `rdu.call` of each kernel runs the kernel's body once (stages, collectives, the loop) to learn what one
iteration does (`timing.KernelCall`: work affine in B and B*S), then places the call on the
step's timeline. `simulate` interprets the program once, at the first step's context, and then
evaluates the same calls at every later context of the run with the timing model alone: the work
of a call does not change from step to step, only the value of S does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
from xdsl.dialects.builtin import ModuleOp
from xdsl.interpreter import (
    Interpreter,
    InterpreterFunctions,
    ReturnedValues,
    TerminatorValue,
    impl,
    impl_terminator,
    register_impls,
)
from xdsl.utils.exceptions import DiagnosticException

from dfdsl.dialects import rdu
from dfdsl.sim import timing
from dfdsl.sim.hardware import Hardware, load_hardware


@attrs.frozen
class Buffer:
    """What an SSA value of an `rdu` program stands for while interpreting: a named buffer."""

    name: str
    kind: str
    tier: str


def affine(work: rdu.Work) -> timing.Affine:
    """The timing model's plain-number copy of an `#rdu.work`."""
    return timing.Affine(*work.terms)


@attrs.define
class KernelWork:
    """Accumulates one kernel's pipeline while its body is interpreted."""

    depth_stages: int = 0
    trips: int = 1
    work: timing.IterationWork = timing.IterationWork()

    def add_stage(self, stage: rdu.StageOp) -> None:
        w = self.work
        experts = w.experts
        if stage.experts is not None and stage.top_k is not None and stage.expert_tier is not None:
            experts += (timing.ExpertRead(stage.experts.value.data, stage.top_k.value.data,
                                          affine(stage.work("expert_read")), stage.expert_tier.data),)
        self.work = attrs.evolve(
            w,
            flops=w.flops + affine(stage.work("flops")),
            hbm_read=w.hbm_read + affine(stage.work("hbm_read")),
            hbm_write=w.hbm_write + affine(stage.work("hbm_write")),
            ddr_read=w.ddr_read + affine(stage.work("ddr_read")),
            ddr_write=w.ddr_write + affine(stage.work("ddr_write")),
            experts=experts,
        )
        self.depth_stages += 1

    def add_all_reduce(self, op: rdu.AllReduceOp) -> None:
        reduce = timing.AllReduce(affine(op.bytes), op.sockets.value.data)
        self.work = attrs.evolve(self.work, all_reduces=(*self.work.all_reduces, reduce))


@attrs.define
class StepState:
    """Per-run state of the interpreter: the run's sizes, the calls so far, the timeline."""

    hardware: Hardware
    batch: int
    context: int
    calls: list[timing.KernelCall] = attrs.field(factory=list)
    kernels: dict[str, timing.KernelCall] = attrs.field(factory=dict)
    kernel: KernelWork | None = None
    timeline: timing.TimelineBuilder = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self.timeline = timing.TimelineBuilder(self.hardware, self.batch, self.context)


@register_impls
class RduFunctions(InterpreterFunctions):
    """Times the `rdu` ops of one decode step for one hardware, batch and context."""

    def __init__(self, hardware: Hardware, batch: int, context: int):
        self.hardware = hardware
        self.batch = batch
        self.context = context

    def state(self, interpreter: Interpreter) -> StepState:
        return interpreter.get_data(
            RduFunctions, "step", lambda: StepState(self.hardware, self.batch, self.context)
        )

    def _kernel(self, interpreter: Interpreter) -> KernelWork:
        kernel = self.state(interpreter).kernel
        if kernel is None:
            raise DiagnosticException("rdu stages and collectives only run inside an rdu.kernel")
        return kernel

    @impl(rdu.ProgramOp)
    def run_program(self, interpreter: Interpreter, op: rdu.ProgramOp, args: tuple[Any, ...]) -> tuple[()]:
        interpreter.run_ssacfg_region(op.body, (), op.sym_name.data)
        return ()

    @impl(rdu.BufferOp)
    def run_buffer(self, interpreter: Interpreter, op: rdu.BufferOp, args: tuple[Any, ...]) -> tuple[Buffer]:
        return (Buffer(op.buffer_name.data, op.kind.data, op.result.type.tier_name),)  # type: ignore[attr-defined]

    @impl(rdu.CallOp)
    def run_call(self, interpreter: Interpreter, op: rdu.CallOp, args: tuple[Any, ...]) -> tuple[Buffer, ...]:
        state = self.state(interpreter)
        callee = op.callee.string_value()
        if callee not in state.kernels:
            state.kernels[callee] = self._profile_kernel(interpreter, callee, args)
        call = state.kernels[callee]
        state.calls.append(call)
        state.timeline.add_call(call)
        return tuple(
            Buffer(f"{callee}#{i}", "activation", result.type.tier_name)  # type: ignore[attr-defined]
            for i, result in enumerate(op.res)
        )

    def _profile_kernel(self, interpreter: Interpreter, callee: str, args: tuple[Any, ...]) -> timing.KernelCall:
        """Interprets the kernel's body once and records what one iteration of it does."""
        kernel_op = interpreter.get_op_for_symbol(callee)
        if not isinstance(kernel_op, rdu.KernelOp):
            raise DiagnosticException(f"rdu.call @{callee}: the callee is not an rdu.kernel")
        state = self.state(interpreter)
        state.kernel = KernelWork()
        interpreter.run_ssacfg_region(kernel_op.body, args, callee)
        kernel, state.kernel = state.kernel, None
        return timing.KernelCall(
            kernel=callee,
            trips=kernel.trips,
            depth_stages=kernel.depth_stages,
            pcus=kernel_op.pcus.value.data,
            work=kernel.work,
        )

    @impl(rdu.OutputOp)
    def run_output(self, interpreter: Interpreter, op: rdu.OutputOp, args: tuple[Any, ...]) -> tuple[()]:
        return ()

    @impl(rdu.LoopOp)
    def run_loop(self, interpreter: Interpreter, op: rdu.LoopOp, args: tuple[Any, ...]) -> tuple[()]:
        """One pass over the body gives one iteration's work; the trip count does the rest."""
        self._kernel(interpreter).trips = op.trip_count.value.data
        interpreter.run_ssacfg_region(op.body, (), "rdu.loop")
        return ()

    @impl(rdu.StageOp)
    def run_stage(self, interpreter: Interpreter, op: rdu.StageOp, args: tuple[Any, ...]) -> tuple[()]:
        self._kernel(interpreter).add_stage(op)
        return ()

    @impl(rdu.AllReduceOp)
    def run_all_reduce(self, interpreter: Interpreter, op: rdu.AllReduceOp, args: tuple[Any, ...]) -> tuple[()]:
        self._kernel(interpreter).add_all_reduce(op)
        return ()

    @impl_terminator(rdu.ReturnOp)
    def run_return(self, interpreter: Interpreter, op: rdu.ReturnOp,
                   args: tuple[Any, ...]) -> tuple[TerminatorValue, tuple[()]]:
        kernel = op.parent_op()
        outputs = kernel.function_type.outputs.data  # type: ignore[union-attr]
        return ReturnedValues(tuple(Buffer("result", "activation", t.tier_name) for t in outputs)), ()


@attrs.frozen
class SimResult:
    """What a run of `tokens` decode steps costs. Per-token figures are averaged over the steps;
    bytes and FLOPs per token count all sockets; the timeline is the first step's."""

    model: str
    target: str
    sockets: int
    batch: int
    context: int
    tokens: int
    ms_per_token: float
    breakdown_ms: dict[str, float]
    step_ms: tuple[float, ...]
    kernel_calls_per_token: int
    bytes_per_token: float
    hbm_bytes_per_token: float
    ddr_bytes_per_token: float
    flops_per_token: float
    aggregate_hbm_bytes_per_s: float
    calls: tuple[timing.KernelCall, ...]
    timeline: timing.Timeline

    @property
    def tokens_per_s_per_user(self) -> float:
        return 1000.0 / self.ms_per_token

    @property
    def tokens_per_s(self) -> float:
        return self.batch * self.tokens_per_s_per_user

    @property
    def flops_per_byte(self) -> float:
        return self.flops_per_token / self.bytes_per_token

    def peak_fraction(self, bytes_per_step: float) -> float:
        """Achieved tokens/s per user over the HBM roofline for `bytes_per_step` (for the report:
        all parameter bytes plus the KV bytes read, the definition in HARDWARE.md)."""
        roofline = timing.roofline_tokens_per_s(self.aggregate_hbm_bytes_per_s, bytes_per_step)
        return self.tokens_per_s_per_user / roofline


def _program(module: ModuleOp) -> rdu.ProgramOp:
    programs = [op for op in module.walk() if isinstance(op, rdu.ProgramOp)]
    if len(programs) != 1:
        raise DiagnosticException(
            f"the simulator runs a module with exactly one rdu.program, found {len(programs)}: "
            "lower the model with df-to-rdu first"
        )
    return programs[0]


def interpret_step(module: ModuleOp, hardware: Hardware, batch: int, context: int) -> StepState:
    """Interprets the module's program once: its calls and the timeline of a step at `context`."""
    program = _program(module)
    functions = RduFunctions(hardware, batch, context)
    interpreter = Interpreter(module)
    interpreter.register_implementations(functions)
    interpreter.run_op(program, ())
    return functions.state(interpreter)


def simulate(module: ModuleOp, hardware: Hardware | str | Path, *, batch: int | None = None,
             context: int | None = None, tokens: int | None = None) -> SimResult:
    """Times `tokens` decode steps of the module's program (sizes default to the program's)."""
    hw = hardware if isinstance(hardware, Hardware) else load_hardware(hardware)
    program = _program(module)
    batch = program.count("batch") if batch is None else batch
    context = program.count("context") if context is None else context
    tokens = program.count("tokens") if tokens is None else tokens
    sockets = program.count("sockets")
    if min(batch, context, tokens) <= 0:
        raise DiagnosticException("batch, context and tokens must be positive")
    first = interpret_step(module, hw, batch, context)
    run = timing.run(first.calls, hw, batch, context, tokens)
    return SimResult(
        model=program.sym_name.data,
        target=hw.name,
        sockets=sockets,
        batch=batch,
        context=context,
        tokens=tokens,
        ms_per_token=run.step_s * 1e3,
        breakdown_ms={k: v * 1e3 for k, v in run.breakdown_s.items()},
        step_ms=tuple(s.total_s * 1e3 for s in run.steps),
        kernel_calls_per_token=len(first.calls),
        bytes_per_token=sockets * run.mean("read_bytes"),
        hbm_bytes_per_token=sockets * run.mean("hbm_read_bytes"),
        ddr_bytes_per_token=sockets * run.mean("ddr_read_bytes"),
        flops_per_token=sockets * run.mean("flops"),
        aggregate_hbm_bytes_per_s=sockets * hw.hbm.bandwidth_bytes_per_s,
        calls=tuple(first.calls),
        timeline=first.timeline.finish(sockets),
    )
