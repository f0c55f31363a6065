"""The GPU timing interpreter: xDSL's `Interpreter` over an `nv` module, with time as its result.

A GPU decode step is its launches and all-reduces in stream order, each a synchronization
boundary; nothing is pipelined across them (no fill or drain, no kernel looping). So each
`nv.launch` costs the per-kernel launch/sync plus a body bounded by its slowest resource, the
skeleton of `sim/timing.py` with the GPU's parameters and its software's (`[gpu_software]`):

    launch = launch_sync + max(HBM stream, DDR stream, FLOPs / (compute_efficiency * peak))

where a kernel's HBM stream depends on what it is (`kernel_kind`), as its software's measured
kernels do:

    gemm       gemm_ramp + bytes / (gemm_efficiency * N / (N + gemm_half_efficiency_columns) * bandwidth)
                 - hit * max(0, weights' HBM time - their L2 time)          (`l2_saving_s`)
    attention  max(attention_floor, attention_ramp + bytes / (attention_efficiency * bandwidth)
                                    + attention_wave * waves)
    experts    experts_ramp + bytes / (experts_efficiency * bandwidth)
    stream     stream_ramp + bytes / (stream_efficiency * bandwidth)    (norms, rotary, activations, ...)

with N the GEMM's output columns per GPU, and `waves` the CTAs of a decode attention kernel split
as XQA splits it (`attention_waves`): B x H x c / attention_block_tokens CTAs over the SMs, at
most attention_max_waves, for B sequences of H KV heads at context c. A GEMM's weights (its bytes
that do not grow with the context) are served from the L2 when they are used again before the L2
has been overwritten: `hit` (`l2_hit_fraction`) is 1 when its reuse distance, the bytes that pass
through the L2 between two uses of the weights (in a decode step, the whole step's HBM traffic),
is at most `l2_full_reuse_fraction` of the L2, 0 from the whole L2 on, and linear between. An
`nv.all_reduce` costs launch_sync plus its implementation's time (`all_reduce_time_s`: NCCL's ring
or tree, or the runtime's one-shot or two-shot kernel). Without CUDA graphs every launch is issued
by the host, so a call takes at least `host_launch_s`. A step adds the host's time per token.
`simulate_gpu` interprets the program once and re-evaluates the same launches at every context of
the run, and returns the same `SimResult` as the SN40L interpreter, so the same report describes
both.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import attrs

from xdsl.dialects.builtin import ModuleOp
from xdsl.interpreter import Interpreter, impl, register_impls

from dfdsl.dialects import nv
from dfdsl.lowering.stages import Stage
from dfdsl.sim import timing
from dfdsl.hardware import GpuHardware, Hardware, TargetMismatchError, display_name, load_hardware
from dfdsl.sim.interpreter import (
    Buffer,
    CallLog,
    Profile,
    SimResult,
    TargetFunctions,
    activations,
    affine,
    callee_kernel,
    interpret,
    operator_work,
    run_sizes,
    the_program,
)
from dfdsl.sim.timeline import Event, Timeline

GPU_TRACK = "GPU kernels"
"""The timeline track whose events (launch/sync, kernel bodies, all-reduces) tile the step with `host`."""


class NotAGpuError(TargetMismatchError):
    """The GPU interpreter was given hardware that is not a GPU node."""


def gpu_hardware(hardware: Hardware | GpuHardware | str) -> GpuHardware:
    """A `GpuHardware` by name or path, or a clear error if the file describes something else."""
    hw = load_hardware(hardware) if isinstance(hardware, str) else hardware
    if not isinstance(hw, GpuHardware):
        raise NotAGpuError(f"{hw.name}: the GPU interpreter needs a hardware file with kind = \"gpu\"")
    return hw


KERNEL_KINDS = ("gemm", "attention", "experts", "stream")
"""What a GPU kernel is, for its cost: a GEMM (projections only), decode attention, a MoE experts
kernel, or a streaming kernel (norms, rotary, activations, embedding, routing, sampling)."""

GEMM_OPERATORS = frozenset(("linear", "matmul", "lm_head"))


def kernel_kind(kernel: nv.KernelOp) -> str:
    """The kind (`KERNEL_KINDS`) of a kernel, from the operators it runs."""
    operators = [o.data for o in kernel.operators.data]
    if any("attention" in o for o in operators):
        return "attention"
    if kernel.experts is not None:
        return "experts"
    if operators and all(o in GEMM_OPERATORS for o in operators):
        return "gemm"
    return "stream"


def gemm_columns(kernel: nv.KernelOp) -> int:
    """A GEMM kernel's output columns per GPU: the last dimensions of its outputs (a fused QKV
    GEMM writes q, k and v: its weights are one matrix of their summed widths)."""
    columns = 0
    for output in kernel.function_type.outputs.data:
        dims = output.dims if isinstance(output, nv.BufferType) else ()
        columns += dims[-1] if dims and isinstance(dims[-1], int) else 0
    return columns


def attention_heads(kernel: nv.KernelOp) -> int:
    """An attention kernel's KV heads per sequence: the heads of its first KV cache input, a
    buffer `[B, S, heads..., head_dim]` (1 for a cache of one head or latent, `[B, S, D]`)."""
    for operand in kernel.function_type.inputs.data:
        dims = operand.dims if isinstance(operand, nv.BufferType) else ()
        if len(dims) >= 3 and dims[1] == "S":
            return math.prod(d for d in dims[2:-1] if isinstance(d, int))
    return 0


def kernel_launch(kernel: nv.KernelOp) -> timing.KernelCall:
    """One launch of `kernel` as the timing skeleton sees it: one iteration, no spatial pipeline
    (depth 0), the whole GPU (`pcus` is an SN40L notion and unused here), its kind and, for a
    GEMM, its output columns, for attention, its KV heads."""
    kind = kernel_kind(kernel)
    return timing.KernelCall(kernel=kernel.sym_name.data, trips=1, depth_stages=0, pcus=0,
                             work=operator_work(kernel), kind=kind,
                             columns=gemm_columns(kernel) if kind == "gemm" else 0,
                             heads=attention_heads(kernel) if kind == "attention" else 0)


def nccl_call(op: nv.CollectiveBase) -> timing.KernelCall:
    """One collective as the timing skeleton sees it: a call whose only work is the collective."""
    collective = timing.AllReduce(affine(op.bytes), op.gpus.value.data, op.kind)
    return timing.KernelCall(kernel=f"nccl_{op.kind}", trips=1, depth_stages=0, pcus=0,
                             work=timing.IterationWork(all_reduces=(collective,)), kind="collective")


def stream_time_s(num_bytes: float, bandwidth_bytes_per_s: float, hw: GpuHardware) -> float:
    """One streaming kernel's stream: the ramp it cannot overlap, then the bytes at the sustained efficiency."""
    if num_bytes <= 0:
        return 0.0
    a = hw.assumptions
    return a.stream_ramp_s + timing.stream_time_s(num_bytes, bandwidth_bytes_per_s, a.stream_efficiency)


def attention_waves(call: timing.KernelCall, hw: GpuHardware, batch: int, context: int) -> float:
    """The waves of CTAs a decode attention kernel runs in, as XQA (TensorRT-LLM's decode
    attention) splits it: one CTA per sequence, KV head and `attention_block_tokens` of context
    (its multi-block mode, which fills the SMs that one CTA per sequence and head leaves idle),
    while the CTAs are at most `attention_max_waves` times the SMs (past that, the blocks grow)."""
    s = hw.software
    ctas = batch * call.heads * context / s.attention_block_tokens
    return min(ctas / hw.chip.sms, s.attention_max_waves)


def l2_hit_fraction(reuse_bytes: float, hw: GpuHardware) -> float:
    """The share of a kernel's weights that the L2 serves when `reuse_bytes` pass through it between
    two uses of them: all while they are at most `l2_full_reuse_fraction` of the L2 (the L2 keeps
    lines that every SM reads in both of its partitions, so a set read by the whole GPU may need
    up to twice its size), none from the whole L2 on (a cyclic read of more than the cache evicts
    every line before its reuse), linearly between."""
    l2 = float(hw.chip.sram_bytes)
    full = hw.assumptions.l2_full_reuse_fraction * l2
    if reuse_bytes <= full:
        return 1.0
    if reuse_bytes >= l2:
        return 0.0
    return (l2 - reuse_bytes) / (l2 - full)


def l2_saving_s(weight_bytes: float, columns: int, hw: GpuHardware) -> float:
    """What a GEMM of `columns` output columns per GPU saves when all of its `weight_bytes` hit in
    the L2: their HBM time (the stream, and the narrow-GEMM term of its few tiles' loads) less their
    time from the L2 (at `l2_bandwidth_bytes_per_s`, and the narrow-GEMM term at the L2's width
    `gemm_l2_half_efficiency_columns`: the tiles' walk along k); never negative."""
    s, a = hw.software, hw.assumptions
    bandwidth = hw.hbm.bandwidth_bytes_per_s
    from_hbm = weight_bytes / (s.gemm_efficiency * bandwidth) * (1 + s.gemm_half_efficiency_columns / columns)
    from_l2 = weight_bytes / s.gemm_efficiency * (1 / a.l2_bandwidth_bytes_per_s
                                                  + s.gemm_l2_half_efficiency_columns / (columns * bandwidth))
    return max(0.0, from_hbm - from_l2)


def gemm_time_s(num_bytes: float, weight_bytes: float, columns: int, reuse_bytes: float, hw: GpuHardware) -> float:
    """A GEMM of `columns` output columns per GPU moving `num_bytes`, of which `weight_bytes` are
    used again after `reuse_bytes` have passed through the L2: the HBM stream of the measured
    tables, less what the L2's hits save (`l2_saving_s`)."""
    s = hw.software
    efficiency = s.gemm_efficiency * columns / (columns + s.gemm_half_efficiency_columns)
    stream = s.gemm_ramp_s + num_bytes / (efficiency * hw.hbm.bandwidth_bytes_per_s)
    return stream - l2_hit_fraction(reuse_bytes, hw) * l2_saving_s(weight_bytes, columns, hw)


def step_bytes(work: timing.IterationWork | None, batch: int, context: int) -> float:
    """The HBM traffic of `work` (a step's, `KernelCall.reuse`) at this batch and context; +inf
    without one (no reuse: every byte from HBM)."""
    if work is None:
        return math.inf
    t = timing.traffic(work, batch, context)
    return t.hbm_read_bytes + t.hbm_write_bytes


def hbm_time_s(call: timing.KernelCall, num_bytes: float, hw: GpuHardware, batch: int, context: int,
               weight_bytes: float = 0.0, reuse_bytes: float = math.inf) -> float:
    """A kernel's HBM stream by its kind at `batch` sequences of `context` tokens: the measured
    shape of its software's kernels (a GEMM's `weight_bytes` hit in the L2 as far as `reuse_bytes`
    allow: `gemm_time_s`)."""
    if num_bytes <= 0:
        return 0.0
    s, bandwidth = hw.software, hw.hbm.bandwidth_bytes_per_s
    if call.kind == "gemm":
        return gemm_time_s(num_bytes, weight_bytes, call.columns, reuse_bytes, hw)
    if call.kind == "attention":
        stream = s.attention_ramp_s + num_bytes / (s.attention_efficiency * bandwidth)
        return max(s.attention_floor_s, stream + s.attention_wave_s * attention_waves(call, hw, batch, context))
    if call.kind == "experts":
        return s.experts_ramp_s + num_bytes / (s.experts_efficiency * bandwidth)
    return stream_time_s(num_bytes, bandwidth, hw)


def all_reduce_time_s(message_bytes: float, gpus: int, hw: GpuHardware, kind: str = "all_reduce") -> float:
    """One all-reduce of `message_bytes` per GPU over `gpus` GPUs after its launch, by the
    software's implementation (`[gpu_software] all_reduce`):

        nccl-ring  nccl_base + 2 (N - 1) nccl_step + 2 (N - 1) / N  b / nccl_bus_bandwidth
        nccl-tree  nccl_base + 2 ceil(log2 N) nccl_step + 2 (N - 1) / N  b / nccl_bus_bandwidth
        one-shot   custom_latency + (N - 1) custom_step
                     + (N - 1) b / custom_bandwidth x (1 + custom_contention (N - 2))
        two-shot   custom_twoshot_latency + 2 (N - 1) custom_step + 2 (N - 1) / N  b / custom_bandwidth
        custom     the faster of one-shot and two-shot for this message

    Another `kind`, an all-gather or a reduce-scatter, which every runtime leaves to NCCL's ring: a
    half of the all-reduce ring, nccl_base + (N - 1) nccl_step + (N - 1) b / nccl_bus_bandwidth for
    an all-gather (each GPU's whole share forwarded), (N - 1) / N b for a reduce-scatter.
    """
    if gpus < 2:
        return 0.0
    a, s = hw.assumptions, hw.software
    if kind != "all_reduce":
        parts = 1 if kind == "all_gather" else gpus
        return (a.nccl_base_latency_s + (gpus - 1) * a.nccl_step_latency_s
                + (gpus - 1) * message_bytes / parts / a.nccl_bus_bandwidth_bytes_per_s)
    shared = 2 * (gpus - 1) / gpus * message_bytes
    if s.all_reduce in ("nccl-ring", "nccl-tree"):
        steps = 2 * (gpus - 1) if s.all_reduce == "nccl-ring" else 2 * math.ceil(math.log2(gpus))
        return a.nccl_base_latency_s + steps * a.nccl_step_latency_s + shared / a.nccl_bus_bandwidth_bytes_per_s
    contention = 1 + s.custom_allreduce_contention_fraction * (gpus - 2)
    one = (s.custom_allreduce_latency_s + (gpus - 1) * s.custom_allreduce_step_latency_s
           + (gpus - 1) * message_bytes * contention / s.custom_allreduce_bandwidth_bytes_per_s)
    two = (s.custom_allreduce_twoshot_latency_s + 2 * (gpus - 1) * s.custom_allreduce_step_latency_s
           + shared / s.custom_allreduce_bandwidth_bytes_per_s)
    return {"one-shot": one, "two-shot": two}.get(s.all_reduce, min(one, two))


def nccl_time_s(call: timing.KernelCall, hw: GpuHardware, batch: int, context: int) -> float:
    """The collectives of a call after their launch (`all_reduce_time_s`)."""
    return sum(all_reduce_time_s(r.message_bytes.at(batch, context), r.sockets, hw, r.kind)
               for r in call.work.all_reduces)


def resource_times(call: timing.KernelCall, hw: GpuHardware, batch: int, context: int) -> dict[str, float]:
    """Seconds the launch's body keeps each resource busy, by timeline track."""
    t = timing.traffic(call.work, batch, context)
    weight_bytes = reuse_bytes = 0.0
    if call.kind == "gemm":
        weight_bytes = step_bytes(call.work, batch, 0)
        reuse_bytes = step_bytes(call.reuse, batch, context)
    return {
        "HBM stream": hbm_time_s(call, t.hbm_read_bytes + t.hbm_write_bytes, hw, batch, context,
                                 weight_bytes, reuse_bytes),
        "DDR stream": stream_time_s(t.ddr_read_bytes + t.ddr_write_bytes, hw.ddr.bandwidth_bytes_per_s, hw),
        "SMs": timing.compute_time_s(t.flops, hw.chip.peak_flops_per_s, hw.assumptions.compute_efficiency, 1.0),
        "NVLink": nccl_time_s(call, hw, batch, context),
    }


def host_bound_s(hw: GpuHardware) -> float:
    """Without CUDA graphs, the least a launch's body can take: the host issues one launch per
    `host_launch_s`, so a kernel shorter than that waits for the next launch (0 with graphs)."""
    s = hw.software
    return 0.0 if s.cuda_graphs else max(0.0, s.host_launch_s - hw.assumptions.launch_sync_s)


_CATEGORY = {"HBM stream": "stream", "DDR stream": "stream", "SMs": "compute", "NVLink": "collective"}


def launch_timing(call: timing.KernelCall, hw: GpuHardware, batch: int, context: int) -> timing.CallTiming:
    """The phases of one launch: launch/sync, then one body bounded by its slowest resource (or,
    without CUDA graphs, by the host issuing the next launch: `host_bound_s`)."""
    track, body_s = max(resource_times(call, hw, batch, context).items(), key=lambda item: item[1])
    body = (body_s, _CATEGORY[track])
    host_s = host_bound_s(hw)
    if host_s > body_s:
        body = (host_s, "sync")
    return timing.CallTiming(launch_sync_s=hw.assumptions.launch_sync_s, fill_s=0.0, first_interval=body,
                             later_interval=body, trips=1, drain_s=0.0)


def step(calls: Sequence[timing.KernelCall], hw: GpuHardware, batch: int, context: int) -> timing.Step:
    """One decode step at `context` tokens cached: the launches in order, then the host."""
    return timing.step(calls, hw, batch, context, launch_timing)


def timeline(calls: Sequence[timing.KernelCall], hw: GpuHardware, batch: int, context: int,
             gpus: int) -> Timeline:
    """The first step on one GPU: launch/sync and body of every launch on `GPU kernels`, what each
    body keeps busy underneath, and the host at the end. The GPUs run in lockstep."""
    events: list[Event] = []
    now_s = 0.0
    for call in calls:
        timing_ = launch_timing(call, hw, batch, context)
        events.append(Event(GPU_TRACK, f"{call.kernel}: launch/sync", now_s, timing_.launch_sync_s, "sync",
                            call.kernel))
        now_s += timing_.launch_sync_s
        body_s, category = timing_.first_interval
        events.append(Event(GPU_TRACK, call.kernel, now_s, body_s, category, call.kernel))
        for track, busy_s in resource_times(call, hw, batch, context).items():
            if busy_s > 0 and track != "SMs":
                events.append(Event(track, call.kernel, now_s, min(busy_s, body_s), _CATEGORY[track], call.kernel))
        now_s += body_s
    host_s = hw.assumptions.host_per_token_s
    events.append(Event("host", "host: next token", now_s, host_s, "host"))
    return Timeline(tuple(events), gpus, now_s + host_s)


@register_impls
class NvFunctions(TargetFunctions):
    """Records the launches and all-reduces of one `nv` decode step."""

    run_program = impl(nv.ProgramOp)(TargetFunctions.enter_program)
    run_buffer = impl(nv.BufferOp)(TargetFunctions.declare_buffer)
    run_output = impl(nv.OutputOp)(TargetFunctions.end_step)

    def state(self, interpreter: Interpreter) -> CallLog:
        return interpreter.get_data(NvFunctions, "step", CallLog)

    @impl(nv.LaunchOp)
    def run_launch(self, interpreter: Interpreter, op: nv.LaunchOp, args: tuple[Any, ...]) -> tuple[Buffer, ...]:
        callee = op.callee.string_value()
        self.state(interpreter).add(callee, lambda: kernel_launch(callee_kernel(op, nv.KernelOp)))
        return activations(callee, op.res)

    def run_collective(self, interpreter: Interpreter, op: nv.CollectiveBase, args: tuple[Any, ...]) -> tuple[Buffer]:
        call = nccl_call(op)
        self.state(interpreter).calls.append(call)
        return (Buffer(call.kernel, "activation", op.result.type.tier_name),)

    run_all_reduce = impl(nv.AllReduceOp)(run_collective)
    run_reduce_scatter = impl(nv.ReduceScatterOp)(run_collective)
    run_all_gather = impl(nv.AllGatherOp)(run_collective)


def _program(module: ModuleOp) -> nv.ProgramOp:
    return the_program(module, nv.ProgramOp, "GPU simulator", Stage.NV)


def with_reuse(calls: Sequence[timing.KernelCall]) -> list[timing.KernelCall]:
    """The calls, each GEMM with its reuse distance: the HBM traffic of all the calls (one step, or
    one prefill pass), which passes through the L2 between two uses of any one weight."""
    step = timing.IterationWork()
    for call in calls:
        for _ in range(call.trips):
            step += timing.IterationWork(hbm_read=call.work.hbm_read, hbm_write=call.work.hbm_write,
                                         experts=call.work.experts)
    return [attrs.evolve(call, reuse=step) if call.kind == "gemm" else call for call in calls]


def interpret_step(module: ModuleOp) -> list[timing.KernelCall]:
    """Interprets the module's program once: its launches and all-reduces in stream order (GEMMs
    with their reuse distance, `with_reuse`)."""
    functions = NvFunctions()
    return with_reuse(functions.state(interpret(module, _program(module), functions)).calls)


def kernel_calls(module: ModuleOp, hardware: Hardware | GpuHardware) -> list[timing.KernelCall]:
    """The launches and all-reduces of one run of the module's program, a decode step or a prefill
    pass, each with its work as the program states it (`sim/request.py` times prefill passes)."""
    gpu_hardware(hardware)
    return interpret_step(module)


def _gpus(program: nv.ProgramOp, hw: GpuHardware) -> int:
    """The program's GPUs, which must be in one node."""
    gpus = program.count("gpus")
    if gpus > hw.node.gpus:
        raise TargetMismatchError(
            f"{display_name(hw.name)} has {hw.node.gpus} GPUs per node and the program runs on {gpus}: tensor "
            f"parallelism across nodes is not modelled; use at most {hw.node.gpus} (--sockets counts GPUs here)"
        )
    return gpus


def profile_gpu(module: ModuleOp, hardware: GpuHardware | Hardware) -> Profile:
    """Interprets the module's program once for what its steps run (`sim/vectorized.py` times them)."""
    hw = gpu_hardware(hardware)
    program = _program(module)
    return Profile(program.sym_name.data, _gpus(program, hw), tuple(interpret_step(module)))


def simulate_gpu(module: ModuleOp, hardware: GpuHardware | str, *, batch: int | None = None,
                 context: int | None = None, tokens: int | None = None) -> SimResult:
    """Times `tokens` decode steps of the module's `nv.program` (sizes default to the program's)."""
    hw = gpu_hardware(hardware)
    program = _program(module)
    batch, context, tokens = run_sizes(program, batch, context, tokens)
    gpus = _gpus(program, hw)
    calls = interpret_step(module)
    run = timing.run(calls, hw, batch, context, tokens, launch_timing)
    return SimResult.of_run(program, hw, sockets=gpus, batch=batch, context=context, run=run, calls=calls,
                            timeline=timeline(calls, hw, batch, context, gpus))
