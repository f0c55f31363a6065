"""The SN40L timing model, as pure functions over plain numbers (no IR in here).

A kernel call costs `launch_sync + fill + body + drain`. Its body is a sequence of iterations (one
for a plain kernel, the trip count for a looped one); an iteration lasts as long as its slowest
resource: the HBM stream, the DDR stream, the PCUs, the P2P links, or the dependency chain (the
collectives' latencies and, from the second iteration of a loop on, the carried activation's trip
through the pipeline). A looped kernel therefore pays launch, fill and drain once, and then one
initiation interval per layer, the next layer's weight stream overlapping this layer's tail. A
decode step is the program's calls in order plus the host's time per token. docs/timing-model.md
explains each choice; the numbers come from a `Hardware` (dfdsl/hardware/*.toml). `step` and `run`
take the function that times one call, so the GPU interpreter runs its launches through them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import attrs

from dfdsl.dialects.cost import expected_experts
from dfdsl.hardware import GpuHardware, Hardware

CATEGORIES = ("stream", "compute", "sync", "fill_drain", "collective", "host")
"""Where the time of a decode step goes; the six always sum to the step time."""


@attrs.frozen
class Affine:
    """A quantity per invocation: `const + per_batch * B + per_batch_context * B * S`, and for a
    prefill pass `+ per_prompt * B * P + per_prompt_context * B * P * S + per_prompt_pair * B * P * P`
    (the terms of `#cost.work`). `at` evaluates the first three: a prefill pass's quantities are
    first fixed at its prompt with `at_prompt`."""

    const: int = 0
    per_batch: int = 0
    per_batch_context: int = 0
    per_prompt: int = 0
    per_prompt_context: int = 0
    per_prompt_pair: int = 0

    def at(self, batch: int, context: int) -> int:
        return self.const + self.per_batch * batch + self.per_batch_context * batch * context

    def at_prompt(self, prompt: int) -> Affine:
        """The quantity of a pass of `prompt` tokens per sequence, as a function of B and S alone."""
        return Affine(self.const, self.per_batch + prompt * (self.per_prompt + prompt * self.per_prompt_pair),
                      self.per_batch_context + prompt * self.per_prompt_context)

    def __add__(self, other: Affine) -> Affine:
        return Affine(
            self.const + other.const,
            self.per_batch + other.per_batch,
            self.per_batch_context + other.per_batch_context,
            self.per_prompt + other.per_prompt,
            self.per_prompt_context + other.per_prompt_context,
            self.per_prompt_pair + other.per_prompt_pair,
        )


@attrs.frozen
class ExpertRead:
    """The routed experts of a MoE stage: one expert's weight bytes in `tier`, `top_k` of
    `experts` chosen per token, `tokens_per_sequence` tokens routed per sequence (a prefill
    pass's prompt; 1 in a decode step)."""

    experts: int
    top_k: int
    bytes_per_expert: Affine
    tier: str
    tokens_per_sequence: int = 1


@attrs.frozen
class AllReduce:
    """A collective inside a kernel: each socket contributes `message_bytes`; an all-reduce (a
    sum), or with `gather` an all-gather (every socket's message to every socket)."""

    message_bytes: Affine
    sockets: int
    gather: bool = False


@attrs.frozen
class IterationWork:
    """What one iteration of a kernel (one layer, or the whole call if not looped) does, per socket."""

    flops: Affine = Affine()
    hbm_read: Affine = Affine()
    hbm_write: Affine = Affine()
    ddr_read: Affine = Affine()
    ddr_write: Affine = Affine()
    experts: tuple[ExpertRead, ...] = ()
    all_reduces: tuple[AllReduce, ...] = ()

    def __add__(self, other: IterationWork) -> IterationWork:
        """The work of both, as one iteration that does the one and then the other."""
        return IterationWork(
            flops=self.flops + other.flops,
            hbm_read=self.hbm_read + other.hbm_read,
            hbm_write=self.hbm_write + other.hbm_write,
            ddr_read=self.ddr_read + other.ddr_read,
            ddr_write=self.ddr_write + other.ddr_write,
            experts=self.experts + other.experts,
            all_reduces=self.all_reduces + other.all_reduces,
        )


@attrs.frozen
class KernelCall:
    """One `rdu.call` as the timing model needs it: the kernel's pipeline and its work."""

    kernel: str
    trips: int
    depth_stages: int
    pcus: int
    work: IterationWork
    kind: str = ""
    """What a GPU kernel does, for its cost (`gpu_interpreter.KERNEL_KINDS`); "" on the SN40L."""
    columns: int = 0
    """A GPU GEMM's output columns per GPU (its shape-dependent efficiency); 0 for other kernels."""


@attrs.frozen
class ResourceTimes:
    """Seconds one iteration keeps each resource busy; `barrier_s` is the collectives' latency,
    `carry_s` the carried activation's trip through the pipeline between loop iterations."""

    hbm_s: float
    ddr_s: float
    compute_s: float
    p2p_s: float
    barrier_s: float
    carry_s: float

    def interval(self, carried: bool) -> tuple[float, str]:
        """The iteration's duration and the category of its binding resource."""
        chain_s = self.barrier_s + (self.carry_s if carried else 0.0)
        bounds = (
            (self.hbm_s, "stream"),
            (self.ddr_s, "stream"),
            (self.compute_s, "compute"),
            (self.p2p_s, "collective"),
            (chain_s, "collective"),
        )
        return max(bounds, key=lambda bound: bound[0])


def stream_time_s(num_bytes: float, bandwidth_bytes_per_s: float, efficiency: float) -> float:
    """Seconds to stream `num_bytes` through a memory at `efficiency` of its bandwidth."""
    return num_bytes / (efficiency * bandwidth_bytes_per_s)


def compute_time_s(flops: float, peak_flops_per_s: float, efficiency: float, pcu_share: float) -> float:
    """Seconds of compute on a kernel's share of the chip's PCUs (none for a kernel that only
    moves data, such as a lone all-reduce, which holds no PCUs)."""
    if flops == 0:
        return 0.0
    return flops / (efficiency * peak_flops_per_s * pcu_share)


def allreduce_time_s(message_bytes: float, sockets: int, algorithm: str,
                     link_bytes_per_s: float, latency_s: float, gather: bool = False) -> tuple[float, float]:
    """(transfer seconds on each socket's link, latency seconds on the critical path).

    `direct`: every socket sends its message to each of the others at once: one latency, and
    (sockets - 1) messages leave each socket. `ring`: reduce-scatter then all-gather, 2 (sockets - 1)
    steps of 1/sockets of the message each; an all-gather (`gather`) is the second half alone,
    sockets - 1 steps of a whole message. `auto`: whichever of the two finishes first for this
    message, as collective libraries choose by message size (direct for decode's few KB, ring once
    the batch makes messages large).
    """
    if sockets < 2:
        return 0.0, 0.0
    direct = ((sockets - 1) * message_bytes / link_bytes_per_s, latency_s)
    steps = sockets - 1 if gather else 2 * (sockets - 1)
    chunk = message_bytes if gather else message_bytes / sockets
    ring = (steps * chunk / link_bytes_per_s, steps * latency_s)
    if algorithm == "direct":
        return direct
    if algorithm == "ring":
        return ring
    return min(direct, ring, key=sum)


@attrs.frozen
class Traffic:
    """Bytes and FLOPs of one iteration at a given batch and context."""

    hbm_read_bytes: float
    hbm_write_bytes: float
    ddr_read_bytes: float
    ddr_write_bytes: float
    flops: float

    @property
    def read_bytes(self) -> float:
        return self.hbm_read_bytes + self.ddr_read_bytes


def traffic(work: IterationWork, batch: int, context: int) -> Traffic:
    """The iteration's bytes per tier (expected MoE expert reads included) and FLOPs."""
    reads = {"hbm": float(work.hbm_read.at(batch, context)), "ddr": float(work.ddr_read.at(batch, context))}
    for moe in work.experts:
        reads[moe.tier] = reads.get(moe.tier, 0.0) + expected_experts(
            moe.experts, moe.top_k, batch * moe.tokens_per_sequence
        ) * moe.bytes_per_expert.at(batch, context)
    return Traffic(
        hbm_read_bytes=reads["hbm"],
        hbm_write_bytes=float(work.hbm_write.at(batch, context)),
        ddr_read_bytes=reads["ddr"],
        ddr_write_bytes=float(work.ddr_write.at(batch, context)),
        flops=float(work.flops.at(batch, context)),
    )


def resource_times(call: KernelCall, hw: Hardware, batch: int, context: int) -> ResourceTimes:
    """Seconds one iteration of `call` keeps each resource busy at this batch and context."""
    a = hw.assumptions
    t = traffic(call.work, batch, context)
    transfer_s = latency_s = 0.0
    for reduce in call.work.all_reduces:
        transfer, latency = allreduce_time_s(
            reduce.message_bytes.at(batch, context), reduce.sockets, a.allreduce_algorithm,
            a.p2p_bandwidth_bytes_per_s, a.p2p_latency_s, reduce.gather,
        )
        transfer_s += transfer
        latency_s += latency
    return ResourceTimes(
        hbm_s=stream_time_s(t.hbm_read_bytes + t.hbm_write_bytes, hw.hbm.bandwidth_bytes_per_s, a.stream_efficiency),
        ddr_s=stream_time_s(t.ddr_read_bytes + t.ddr_write_bytes, hw.ddr.bandwidth_bytes_per_s, a.stream_efficiency),
        compute_s=compute_time_s(t.flops, hw.chip.peak_flops_per_s, a.compute_efficiency,
                                 min(1.0, call.pcus / hw.chip.pcus)),
        p2p_s=transfer_s,
        barrier_s=latency_s,
        carry_s=call.depth_stages * a.stage_latency_s,
    )


def fill_s(depth_stages: int, hw: Hardware) -> float:
    """Until the first tile leaves the pipeline: its memory latency, then every stage."""
    return hw.assumptions.first_tile_latency_s + depth_stages * hw.assumptions.stage_latency_s


def drain_s(depth_stages: int, hw: Hardware) -> float:
    """After the last tile enters, until it leaves the last stage."""
    return depth_stages * hw.assumptions.stage_latency_s


@attrs.frozen
class CallTiming:
    """One call's phases: launch/sync, fill, the body's intervals, drain (seconds)."""

    launch_sync_s: float
    fill_s: float
    first_interval: tuple[float, str]
    later_interval: tuple[float, str]
    trips: int
    drain_s: float

    @property
    def body_s(self) -> float:
        return self.first_interval[0] + (self.trips - 1) * self.later_interval[0]

    @property
    def total_s(self) -> float:
        return self.launch_sync_s + self.fill_s + self.body_s + self.drain_s

    def add_to(self, breakdown: dict[str, float], repeats: int = 1) -> None:
        """Adds the seconds of `repeats` such calls to a breakdown by category."""
        breakdown["sync"] += repeats * self.launch_sync_s
        breakdown["fill_drain"] += repeats * (self.fill_s + self.drain_s)
        breakdown[self.first_interval[1]] += repeats * self.first_interval[0]
        breakdown[self.later_interval[1]] += repeats * (self.trips - 1) * self.later_interval[0]


def call_timing(call: KernelCall, hw: Hardware, batch: int, context: int) -> CallTiming:
    """The phases of one call at this batch and context. The first iteration's carried input
    arrives with the fill; each later one waits for the previous layer's output to cross the
    pipeline, unless a resource is slower."""
    times = resource_times(call, hw, batch, context)
    return CallTiming(
        launch_sync_s=hw.launch_sync_s,
        fill_s=fill_s(call.depth_stages, hw),
        first_interval=times.interval(carried=False),
        later_interval=times.interval(carried=True),
        trips=call.trips,
        drain_s=drain_s(call.depth_stages, hw),
    )


@attrs.frozen
class Step:
    """One decode step: its seconds by category, its bytes read and its FLOPs (per socket)."""

    breakdown_s: dict[str, float]
    read_bytes: float
    hbm_read_bytes: float
    ddr_read_bytes: float
    flops: float

    @property
    def total_s(self) -> float:
        return sum(self.breakdown_s.values())


CallTimer = Callable[[KernelCall, Any, int, int], CallTiming]
"""How a target times one call at a batch and context on its hardware: `call_timing` for the
SN40L, the GPU interpreter's `launch_timing` for a GPU node."""


def step(calls: Sequence[KernelCall], hw: Hardware | GpuHardware, batch: int, context: int,
         time_call: CallTimer = call_timing) -> Step:
    """One decode step at `context` tokens already cached: the calls, each timed by `time_call`,
    then the host. Calls of the same kernel cost the same, so each distinct call is timed once."""
    return _step(Counter(calls), hw, batch, context, time_call)


def _step(counted: Counter[KernelCall], hw: Hardware | GpuHardware, batch: int, context: int,
          time_call: CallTimer) -> Step:
    breakdown = dict.fromkeys(CATEGORIES, 0.0)
    hbm = ddr = flops = 0.0
    for call, repeats in counted.items():
        time_call(call, hw, batch, context).add_to(breakdown, repeats)
        t = traffic(call.work, batch, context)
        hbm += repeats * call.trips * t.hbm_read_bytes
        ddr += repeats * call.trips * t.ddr_read_bytes
        flops += repeats * call.trips * t.flops
    breakdown["host"] += hw.assumptions.host_per_token_s
    return Step(breakdown, hbm + ddr, hbm, ddr, flops)


@attrs.frozen
class Run:
    """`tokens` decode steps, the context growing by one each step: their sums (a `Step` whose
    figures add up every step's), and the first and last steps. Figures are averaged per step.
    The steps themselves are not kept, so a run of a million tokens takes no more memory than one."""

    tokens: int
    total: Step
    first: Step
    last: Step
    total_s: float
    """The steps' times added up step by step (each step's categories first, as a step's time is)."""

    @property
    def step_s(self) -> float:
        return self.total_s / self.tokens

    def mean(self, figure: str) -> float:
        return getattr(self.total, figure) / self.tokens

    @property
    def breakdown_s(self) -> dict[str, float]:
        return {c: self.total.breakdown_s[c] / self.tokens for c in CATEGORIES}


def run(calls: Sequence[KernelCall], hw: Hardware | GpuHardware, batch: int, context: int, tokens: int,
        time_call: CallTimer = call_timing) -> Run:
    """Steps at contexts `context`, `context + 1`, ..., `context + tokens - 1`, one at a time: the
    reference the array model (`sim/vectorized.py`) is checked against."""
    counted = Counter(calls)
    first = last = _step(counted, hw, batch, context, time_call)
    breakdown = dict(first.breakdown_s)
    hbm, ddr, flops, total_s = first.hbm_read_bytes, first.ddr_read_bytes, first.flops, first.total_s
    for t in range(1, tokens):
        last = _step(counted, hw, batch, context + t, time_call)
        for category, seconds in last.breakdown_s.items():
            breakdown[category] += seconds
        hbm += last.hbm_read_bytes
        ddr += last.ddr_read_bytes
        flops += last.flops
        total_s += last.total_s
    return Run(tokens, Step(breakdown, hbm + ddr, hbm, ddr, flops), first, last, total_s)


def run_of(steps: Sequence[Step]) -> Run:
    """The run of the given steps (at least one), in order."""
    breakdown = dict.fromkeys(CATEGORIES, 0.0)
    hbm = ddr = flops = total_s = 0.0
    for s in steps:
        for category, seconds in s.breakdown_s.items():
            breakdown[category] += seconds
        hbm += s.hbm_read_bytes
        ddr += s.ddr_read_bytes
        flops += s.flops
        total_s += s.total_s
    return Run(len(steps), Step(breakdown, hbm + ddr, hbm, ddr, flops), steps[0], steps[-1], total_s)


def per_token(run: Any, sockets: int) -> dict[str, Any]:
    """A run's figures per token as results give them: milliseconds, the breakdown in ms, and bytes
    and FLOPs over all `sockets` (of a `Run`, or of `sim/vectorized.py`'s runs of many points)."""
    return {
        "ms_per_token": run.step_s * 1e3,
        "breakdown_ms": {k: v * 1e3 for k, v in run.breakdown_s.items()},
        "bytes_per_token": sockets * run.mean("read_bytes"),
        "hbm_bytes_per_token": sockets * run.mean("hbm_read_bytes"),
        "ddr_bytes_per_token": sockets * run.mean("ddr_read_bytes"),
        "flops_per_token": sockets * run.mean("flops"),
    }


def roofline_tokens_per_s(aggregate_bandwidth_bytes_per_s: float, bytes_per_step: float) -> float:
    """Tokens per second per user if every step only streamed its bytes at full bandwidth."""
    return aggregate_bandwidth_bytes_per_s / bytes_per_step
