"""The SN40L timing interpreter: xDSL's `Interpreter` over an `rdu` module, with time as its result.

`RduFunctions` gives one implementation per `rdu` op. Running the `rdu.program` walks its calls
in order; the first `rdu.call` of each kernel runs the kernel's body once (stages, collectives, the loop) to learn what one
iteration does (`timing.KernelCall`: work affine in B and B*S), then places the call on the
step's timeline. `simulate` interprets the program once, at the first step's context, and then
evaluates the same calls at every later context of the run with the timing model alone: the work
of a call does not change from step to step, only the value of S does. `profile` is that one
interpretation alone (a `Profile`: the calls of a step), for `sim/vectorized.py` to time many
points at once. What the GPU interpreter does alike (the ops of `target_ops`, the log of calls,
finding the program, `Profile` and `SimResult`) is here too, and `sim/gpu_interpreter.py` uses it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar, cast

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
from xdsl.ir import Operation, OpResult
from xdsl.utils.exceptions import DiagnosticException

from dfdsl.dialects import cost, df, rdu, target_ops
from dfdsl.errors import HardwareFileError, LoweringError
from dfdsl.lowering.stages import Stage, expect
from dfdsl.sim import timing
from dfdsl.hardware import GpuHardware, Hardware, TargetMismatchError, load_hardware
from dfdsl.sim.timeline import Timeline, TimelineBuilder

ProgramT = TypeVar("ProgramT", bound=target_ops.ProgramBase)
KernelT = TypeVar("KernelT", bound=Operation)


@attrs.frozen
class Buffer:
    """What an SSA value of an `rdu` program stands for while interpreting: a named buffer."""

    name: str
    kind: str
    tier: str


def affine(work: cost.Work) -> timing.Affine:
    """The timing model's plain-number copy of a `#cost.work`."""
    return timing.Affine(*work.terms)


def operator_work(op: target_ops.OperatorWorkBase) -> timing.IterationWork:
    """The work an op states per invocation (an `rdu.stage`, an `nv.kernel`), for the timing model."""
    experts: tuple[timing.ExpertRead, ...] = ()
    if op.experts is not None and op.top_k is not None and op.expert_tier is not None:
        held, token_shards = op.expert_shares()
        experts = (timing.ExpertRead(op.experts.value.data, op.top_k.value.data,
                                     affine(op.work("expert_read")), op.expert_tier.data,
                                     held=held, token_shards=token_shards),)
    return timing.IterationWork(
        flops=affine(op.work("flops")),
        hbm_read=affine(op.work("hbm_read")),
        hbm_write=affine(op.work("hbm_write")),
        ddr_read=affine(op.work("ddr_read")),
        ddr_write=affine(op.work("ddr_write")),
        experts=experts,
    )


def activations(callee: str, results: Sequence[OpResult[df.ShapedTypeBase]]) -> tuple[Buffer, ...]:
    """The buffers a call of `callee` returns, each in the tier of its type."""
    return tuple(Buffer(f"{callee}#{i}", "activation", result.type.tier_name) for i, result in enumerate(results))


def callee_kernel(op: df.CallBase, kernel_type: type[KernelT]) -> KernelT:
    """The kernel `op` calls, or a diagnostic if the symbol names none (in a module that was
    not verified: the verifier says so too)."""
    name = op.callee.string_value()
    return df.lookup(op, name, kernel_type, f"{op.name} @{name}")


@attrs.define
class CallLog:
    """The kernel calls of one step so far, in order; what each kernel does is worked out once."""

    calls: list[timing.KernelCall] = attrs.field(factory=list)
    kernels: dict[str, timing.KernelCall] = attrs.field(factory=dict)

    def add(self, callee: str, profile: Callable[[], timing.KernelCall]) -> timing.KernelCall:
        """Logs a call of `callee`, running `profile` for its first one."""
        if callee not in self.kernels:
            self.kernels[callee] = profile()
        call = self.kernels[callee]
        self.calls.append(call)
        return call


class TargetFunctions(InterpreterFunctions):
    """What both targets' interpreters do with the ops of `target_ops`. A subclass binds these to
    its dialect's ops, `run_program = impl(rdu.ProgramOp)(TargetFunctions.enter_program)`, as the
    interpreter dispatches on the exact op class."""

    def enter_program(self, interpreter: Interpreter, op: target_ops.ProgramBase, args: tuple[Any, ...]) -> tuple[()]:
        interpreter.run_ssacfg_region(op.body, (), op.sym_name.data)
        return ()

    def declare_buffer(self, interpreter: Interpreter, op: target_ops.BufferBase,
                       args: tuple[Any, ...]) -> tuple[Buffer]:
        return (Buffer(op.buffer_name.data, op.kind.data, op.result.type.tier_name),)

    def end_step(self, interpreter: Interpreter, op: target_ops.OutputBase, args: tuple[Any, ...]) -> tuple[()]:
        return ()


@attrs.define
class KernelWork:
    """Accumulates one kernel's pipeline while its body is interpreted."""

    depth_stages: int = 0
    trips: int = 1
    work: timing.IterationWork = timing.IterationWork()

    def add_stage(self, stage: rdu.StageOp) -> None:
        self.work = self.work + operator_work(stage)
        self.depth_stages += 1

    def add_collective(self, op: rdu.CollectiveBase) -> None:
        collective = timing.AllReduce(affine(op.bytes), op.sockets.value.data, op.kind)
        self.work = self.work + timing.IterationWork(all_reduces=(collective,))

    def add_all_to_all(self, op: rdu.AllToAllOp) -> None:
        exchange = timing.AllToAll(affine(op.bytes), op.sockets.value.data, op.imbalance.value.data)
        self.work = self.work + timing.IterationWork(all_to_alls=(exchange,))


@attrs.define(kw_only=True)
class StepState(CallLog):
    """Per-run state of the interpreter: the run's sizes, the calls so far, the timeline."""

    hardware: Hardware
    batch: int
    context: int
    kernel: KernelWork | None = None
    timeline: TimelineBuilder = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self.timeline = TimelineBuilder(self.hardware, self.batch, self.context)


@register_impls
class RduFunctions(TargetFunctions):
    """Times the `rdu` ops of one decode step for one hardware, batch and context."""

    run_program = impl(rdu.ProgramOp)(TargetFunctions.enter_program)
    run_buffer = impl(rdu.BufferOp)(TargetFunctions.declare_buffer)
    run_output = impl(rdu.OutputOp)(TargetFunctions.end_step)

    def __init__(self, hardware: Hardware, batch: int, context: int):
        self.hardware = hardware
        self.batch = batch
        self.context = context

    def state(self, interpreter: Interpreter) -> StepState:
        return interpreter.get_data(
            RduFunctions, "step",
            lambda: StepState(hardware=self.hardware, batch=self.batch, context=self.context),
        )

    def _kernel(self, interpreter: Interpreter) -> KernelWork:
        kernel = self.state(interpreter).kernel
        if kernel is None:
            raise LoweringError("rdu stages and collectives only run inside an rdu.kernel")
        return kernel

    @impl(rdu.CallOp)
    def run_call(self, interpreter: Interpreter, op: rdu.CallOp, args: tuple[Any, ...]) -> tuple[Buffer, ...]:
        state = self.state(interpreter)
        callee = op.callee.string_value()
        call = state.add(callee, lambda: self._profile_kernel(interpreter, op, args))
        state.timeline.add_call(call)
        return activations(callee, op.res)

    def _profile_kernel(self, interpreter: Interpreter, op: rdu.CallOp, args: tuple[Any, ...]) -> timing.KernelCall:
        """Interprets the kernel's body once and records what one iteration of it does."""
        kernel_op = callee_kernel(op, rdu.KernelOp)
        callee = op.callee.string_value()
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

    @impl(rdu.PipelineSendOp)
    def run_pipeline_send(self, interpreter: Interpreter, op: rdu.PipelineSendOp,
                          args: tuple[Any, ...]) -> tuple[Any, ...]:
        """The activation arrives on the next stage's sockets as it left (the link's time is the
        pipeline's, `timing.pipeline_step`)."""
        return (args[0],)

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

    def run_collective(self, interpreter: Interpreter, op: rdu.CollectiveBase, args: tuple[Any, ...]) -> tuple[()]:
        self._kernel(interpreter).add_collective(op)
        return ()

    run_all_reduce = impl(rdu.AllReduceOp)(run_collective)
    run_reduce_scatter = impl(rdu.ReduceScatterOp)(run_collective)
    run_all_gather = impl(rdu.AllGatherOp)(run_collective)

    @impl(rdu.AllToAllOp)
    def run_all_to_all(self, interpreter: Interpreter, op: rdu.AllToAllOp, args: tuple[Any, ...]) -> tuple[()]:
        self._kernel(interpreter).add_all_to_all(op)
        return ()

    @impl_terminator(rdu.ReturnOp)
    def run_return(self, interpreter: Interpreter, op: rdu.ReturnOp,
                   args: tuple[Any, ...]) -> tuple[TerminatorValue, tuple[()]]:
        # rdu.return has no operands: run_call makes the call's results from its own result types.
        return ReturnedValues(()), ()


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
    first_step_ms: float
    last_step_ms: float
    """The first and the last step: a step slows as the KV cache grows."""
    kernel_calls_per_token: float
    """Calls per step (an int); with speculative decoding, per output token on average."""
    bytes_per_token: float
    hbm_bytes_per_token: float
    ddr_bytes_per_token: float
    flops_per_token: float
    aggregate_hbm_bytes_per_s: float
    aggregate_ddr_bytes_per_s: float
    calls: tuple[timing.KernelCall, ...]
    timeline: Timeline
    socket_batch: int = 0
    """The sequences the busiest socket runs (data-parallel attention); 0: all `batch` of them."""

    @property
    def sequences_per_socket(self) -> int:
        return self.socket_batch or self.batch
    pipeline_stages: int = 1
    """Pipeline stages, each on `sockets` sockets (1: no pipeline)."""
    micro_batches: int = 1
    bubble_fraction: float = 0.0
    """The share of the stages' time they sit idle (0 without a pipeline)."""

    @property
    def tokens_per_s_per_user(self) -> float:
        return 1000.0 / self.ms_per_token

    @property
    def tokens_per_s(self) -> float:
        return self.batch * self.tokens_per_s_per_user

    @property
    def flops_per_byte(self) -> float:
        return self.flops_per_token / self.bytes_per_token

    @property
    def roofline_bandwidth_bytes_per_s(self) -> float:
        """The bandwidth the roofline streams at: every socket's HBM, and its DDR as well when
        the step reads from DDR (the two stream concurrently, so a step that reads both could
        otherwise beat an HBM-only roofline)."""
        ddr = self.aggregate_ddr_bytes_per_s if self.ddr_bytes_per_token > 0 else 0.0
        return self.aggregate_hbm_bytes_per_s + ddr

    @classmethod
    def of_run(cls, program: target_ops.ProgramBase, hw: Hardware | GpuHardware, *, sockets: int, batch: int,
               context: int, run: timing.Run, calls: Sequence[timing.KernelCall],
               timeline: Timeline, socket_batch: int = 0, pipeline: timing.Pipeline | None = None) -> SimResult:
        """The figures of `run`, steps of `program` on `sockets` sockets (or GPUs) of `hw` running
        `calls` each, whose first step is `timeline`; with a `pipeline`, on that many stages of
        `sockets` sockets each."""
        stages = pipeline.stages if pipeline is not None else 1
        return cls(
            pipeline_stages=stages,
            micro_batches=pipeline.micro_batches if pipeline is not None else 1,
            bubble_fraction=timing.bubble_fraction(run, stages) if pipeline is not None else 0.0,
            model=program.sym_name.data,
            target=hw.name,
            sockets=sockets,
            batch=batch,
            context=context,
            tokens=run.tokens,
            kernel_calls_per_token=len(calls),
            aggregate_hbm_bytes_per_s=stages * sockets * hw.hbm.bandwidth_bytes_per_s,
            aggregate_ddr_bytes_per_s=stages * sockets * hw.ddr.bandwidth_bytes_per_s,
            calls=tuple(calls),
            timeline=timeline,
            socket_batch=socket_batch,
            **_per_token(run, sockets),
        )

    def with_run(self, run: timing.Run) -> SimResult:
        """This result with the per-token figures of `run` (the means of its steps) instead: what
        speculative decoding makes of the same run's tokens."""
        return attrs.evolve(self, **_per_token(run, self.sockets))


def _per_token(run: timing.Run, sockets: int) -> dict[str, Any]:
    """The `SimResult` fields that are the means of the run's steps, bytes and FLOPs on all sockets,
    and its first and last steps."""
    return {
        **timing.per_token(run, sockets),
        "first_step_ms": run.first.total_s * 1e3,
        "last_step_ms": run.last.total_s * 1e3,
    }


def the_program(module: ModuleOp, program_type: type[ProgramT], simulator: str, stage: Stage) -> ProgramT:
    """The module's one program, after checking the module is `stage` IR (`simulator` names the
    simulator in the error)."""
    expect(module, f"the {simulator}", [stage])
    return next(op for op in module.ops if isinstance(op, program_type))


def run_sizes(program: target_ops.ProgramBase, batch: int | None, context: int | None,
              tokens: int | None) -> tuple[int, int, int]:
    """The batch, context and number of steps of a run: those given, else the program's."""
    batch = program.count("batch") if batch is None else batch
    context = program.count("context") if context is None else context
    tokens = program.count("tokens") if tokens is None else tokens
    if min(batch, context, tokens) <= 0:
        raise DiagnosticException("batch, context and tokens must be positive")
    return batch, context, tokens


def interpret(module: ModuleOp, program: target_ops.ProgramBase, functions: InterpreterFunctions) -> Interpreter:
    """Runs `program` once with `functions`; the returned interpreter holds their state."""
    interpreter = Interpreter(module)
    interpreter.register_implementations(functions)
    interpreter.run_op(program, ())
    return interpreter


def _program(module: ModuleOp) -> rdu.ProgramOp:
    return the_program(module, rdu.ProgramOp, "simulator", Stage.RDU)


def interpret_step(module: ModuleOp, hardware: Hardware, batch: int, context: int) -> StepState:
    """Interprets the module's program once: its calls and the timeline of a step at `context`."""
    functions = RduFunctions(hardware, batch, context)
    return functions.state(interpret(module, _program(module), functions))


@attrs.frozen
class Profile:
    """What one step of a program runs, as the timing model needs it: the program's name, its
    sockets (or GPUs) and its calls in order; the same at every batch, context and step."""

    model: str
    sockets: int
    calls: tuple[timing.KernelCall, ...]
    batch_shards: int = 1
    """The sockets the batch is split over (data-parallel attention): a step at batch B is the
    program's at ceil(B / batch_shards) sequences."""
    pipeline: timing.Pipeline | None = None
    """The program's pipeline stages, if it has them."""


def pipeline_of(module: ModuleOp, hw: Hardware) -> timing.Pipeline | None:
    """The pipeline stages of the module's program (None if it has one stage): the stage of each
    call, each send's message and the returned tokens' bytes, after checking that the hardware
    gives the inter-node link."""
    program = _program(module)
    block = program.body.block
    sends = [op for op in block.ops if isinstance(op, rdu.PipelineSendOp)]
    if not sends:
        return None
    if hw.internode is None:
        raise HardwareFileError(f"{hw.path}: a pipelined program crosses the link between nodes, and the "
                                "hardware file has no [internode] section: give its bandwidth_bytes_per_s and latency_s")
    stage_of = df.pipeline_stage_of(block)
    output = next(op for op in block.ops if isinstance(op, rdu.OutputOp))
    returned = sum((cost.Work.of_bytes(cast(df.ShapedTypeBase, v.type)) for v in output.values), cost.ZERO)
    return timing.Pipeline(
        stages=sends[0].count("stages"), micro_batches=sends[0].count("micro_batches"),
        call_stages=tuple(stage_of[op] for op in block.ops if isinstance(op, rdu.CallOp)),
        messages=tuple(affine(cost.Work.of_bytes(cast(df.ShapedTypeBase, send.x.type))) for send in sends),
        returned=affine(returned))


def micro_batch_error(pipeline: timing.Pipeline | None, batch: int) -> LoweringError | None:
    """The error of a pipelined run whose batch does not split into its micro-batches, else None."""
    if pipeline is not None and batch % pipeline.micro_batches:
        return LoweringError(f"a batch of {batch} does not split into {pipeline.micro_batches} equal micro-batches: "
                             "give a micro_batches that divides the batch")
    return None


def _check_micro_batches(pipeline: timing.Pipeline | None, batch: int) -> None:
    if (error := micro_batch_error(pipeline, batch)) is not None:
        raise error


def _rdu_hardware(hardware: Hardware | GpuHardware | str | Path) -> Hardware:
    hw = hardware if isinstance(hardware, Hardware | GpuHardware) else load_hardware(hardware)
    if not isinstance(hw, Hardware):
        raise TargetMismatchError(f"{hw.name} is a GPU: the SN40L interpreter needs a hardware file with "
                                  "kind = \"rdu\" (the default); GPUs run with simulate_gpu")
    return hw


def kernel_calls(module: ModuleOp, hardware: Hardware | GpuHardware) -> list[timing.KernelCall]:
    """The calls of one run of the module's program, a decode step or a prefill pass, each with
    its kernel's work as the program states it (`sim/request.py` times prefill passes from them)."""
    program = _program(module)
    batch = program.sequences_per_socket(program.count("batch"))
    return interpret_step(module, _rdu_hardware(hardware), batch, program.count("context")).calls
def profile(module: ModuleOp, hardware: Hardware | GpuHardware) -> Profile:
    """Interprets the module's program once for what its steps run (`sim/vectorized.py` times them)."""
    hw = _rdu_hardware(hardware)
    program = _program(module)
    first = interpret_step(module, hw, program.sequences_per_socket(program.count("batch")), program.count("context"))
    shards = program.batch_shards.value.data if program.batch_shards else 1
    return Profile(program.sym_name.data, program.count("sockets"), tuple(first.calls), shards, pipeline_of(module, hw))


def simulate(module: ModuleOp, hardware: Hardware | str | Path, *, batch: int | None = None,
             context: int | None = None, tokens: int | None = None) -> SimResult:
    """Times `tokens` decode steps of the module's program (sizes default to the program's)."""
    hw = _rdu_hardware(hardware)
    program = _program(module)
    batch, context, tokens = run_sizes(program, batch, context, tokens)
    sockets = program.count("sockets")
    local = program.sequences_per_socket(batch)
    first = interpret_step(module, hw, local, context)
    pipeline = pipeline_of(module, hw)
    _check_micro_batches(pipeline, batch)
    run = timing.run(first.calls, hw, local, context, tokens, pipeline=pipeline)
    return SimResult.of_run(program, hw, sockets=sockets, batch=batch, context=context, run=run,
                            calls=first.calls, timeline=first.timeline.finish(sockets),
                            socket_batch=local if local != batch else 0, pipeline=pipeline)
