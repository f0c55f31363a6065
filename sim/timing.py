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
from typing import Any, cast

import attrs
import numpy as np

from dfdsl.dialects.cost import experts_read
from dfdsl.hardware import GpuHardware, Hardware, InterNodeLink

CATEGORIES = ("stream", "compute", "sync", "fill_drain", "collective", "host", "internode", "pipeline_wait")
"""Where the time of a decode step goes; they always sum to the step time. The last two are a
pipeline's (0 without one): the inter-node transfers on a token's path through the stages, and
the time a micro-batch waits for the busiest stage to finish the others (see `pipeline_step`)."""


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
    held: int = 0
    """Expert parallelism: the experts this socket holds (0: all)."""
    token_shards: int = 1
    """Expert parallelism: the sockets whose tokens (as many as this one's) are routed."""


COLLECTIVES = ("all_reduce", "reduce_scatter", "all_gather")
"""What a collective does: sum across the sockets, sum and keep one share each, or gather the shares."""


@attrs.frozen
class AllReduce:
    """A collective inside a kernel (an all-reduce unless `kind` says otherwise, one of
    `COLLECTIVES`): each socket contributes `message_bytes` (the all-reduce's and the
    reduce-scatter's whole partial sum, the all-gather's own share)."""

    message_bytes: Affine
    sockets: int
    kind: str = "all_reduce"


@attrs.frozen
class AllToAll:
    """An exchange of tokens inside a kernel (expert parallelism): each socket sends
    `message_bytes`, and the busiest receives `imbalance` times the mean."""

    message_bytes: Affine
    sockets: int
    imbalance: float = 1.0


def all_to_all_time_s(message_bytes: float, sockets: int, imbalance: float,
                      link_bytes_per_s: float, latency_s: float) -> tuple[float, float]:
    """(transfer seconds on the busiest socket's link, latency seconds on the critical path): every
    socket writes to each of the others at once, one latency; (sockets - 1) / sockets of its
    message leaves it (the rest stays on the socket), and the busiest socket receives `imbalance`
    times that, which bounds the exchange."""
    if sockets < 2:
        return 0.0, 0.0
    return imbalance * (sockets - 1) / sockets * message_bytes / link_bytes_per_s, latency_s


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
    all_to_alls: tuple[AllToAll, ...] = ()

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
            all_to_alls=self.all_to_alls + other.all_to_alls,
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
    heads: int = 0
    """A GPU attention kernel's KV heads per GPU and sequence (how its software splits it over the
    SMs); 0 for other kernels."""


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
                     link_bytes_per_s: float, latency_s: float, kind: str = "all_reduce") -> tuple[float, float]:
    """(transfer seconds on each socket's link, latency seconds on the critical path) of a
    collective (an all-reduce unless `kind` says otherwise) on one flat network (a GPU node's
    switch): `algorithm` is one of `ALGORITHMS` but the tree, or `auto`."""
    links = Links(link_bytes_per_s, latency_s, max(sockets, 1), link_bytes_per_s, latency_s)
    options = collective_options(kind, message_bytes, sockets, links)
    return options[choose(options, algorithm)]


ALGORITHMS = ("one-shot", "two-shot", "ring", "tree")
"""The all-reduce algorithms, in the order `auto` breaks ties in."""

Number = Any
"""A float, or a numpy array of one per point (`sim/vectorized.py` costs collectives with the
same functions, so the two models choose the same algorithm)."""


@attrs.frozen
class Links:
    """The peer-to-peer network, per socket and direction: a node's all-to-all links, and the
    links between the nodes of a rack (numbers, or arrays of one per point)."""

    bandwidth_bytes_per_s: Number
    latency_s: Number
    node_sockets: int
    rack_bandwidth_bytes_per_s: Number
    rack_latency_s: Number

    @classmethod
    def of(cls, hw: Hardware) -> Links:
        a = hw.assumptions
        return cls(a.p2p_bandwidth_bytes_per_s, a.p2p_latency_s, a.p2p_node_sockets,
                   a.p2p_rack_bandwidth_bytes_per_s, a.p2p_rack_latency_s)

    def flat(self, sockets: int) -> tuple[Number, Number]:
        """(bandwidth, latency) of a step among `sockets` sockets taken as one network: a node's,
        or, once the run spans nodes, the slower of a node's and the rack's."""
        if sockets <= self.node_sockets:
            return self.bandwidth_bytes_per_s, self.latency_s
        return (np.minimum(self.bandwidth_bytes_per_s, self.rack_bandwidth_bytes_per_s),
                np.maximum(self.latency_s, self.rack_latency_s))


def collective_options(kind: str, message_bytes: Number, sockets: int, links: Links) -> dict[str, tuple[Number, Number]]:
    """(transfer seconds on each socket's links, latency seconds on the chain) of every algorithm
    that runs the collective `kind` of `message_bytes` on `sockets` sockets, in `ALGORITHMS` order.

    A reduce-scatter sends each peer that peer's 1/sockets share of the message, an all-gather
    sends each peer the whole (its share of the result): in one step (`one-shot`) or in
    sockets - 1 neighbour steps (`ring`). An all-reduce is `one-shot` (each
    socket sends its whole message to every peer, which sums locally: one step, (sockets - 1)
    messages), `two-shot` (a reduce-scatter then an all-gather), `ring` (the two-shot's bytes in
    2 (sockets - 1) neighbour steps), and `tree` when the run spans whole nodes: a reduce-scatter
    in each node, each socket's share summed across the nodes over the rack's links (a one-shot
    exchange among the nodes), an all-gather in each node."""
    if sockets < 2:
        return {"one-shot": (0.0 * message_bytes, 0.0)}
    bandwidth, latency = links.flat(sockets)
    share = (sockets - 1) / sockets * message_bytes / bandwidth
    if kind != "all_reduce":
        sent = share if kind == "reduce_scatter" else (sockets - 1) * message_bytes / bandwidth
        return {"one-shot": (sent, latency), "ring": (sent, (sockets - 1) * latency)}
    options = {
        "one-shot": ((sockets - 1) * message_bytes / bandwidth, latency),
        "two-shot": (2 * share, 2 * latency),
        "ring": (2 * share, 2 * (sockets - 1) * latency),
    }
    per_node = links.node_sockets
    if sockets > per_node and sockets % per_node == 0:
        nodes = sockets // per_node
        inside = 2 * (per_node - 1) / per_node * message_bytes / links.bandwidth_bytes_per_s
        across = (nodes - 1) * message_bytes / per_node / links.rack_bandwidth_bytes_per_s
        options["tree"] = (inside + across, 2 * links.latency_s + links.rack_latency_s)
    return options


def choose(options: dict[str, tuple[float, float]], algorithm: str) -> str:
    """The algorithm a collective runs: the one asked for (a tree where the run does not span
    whole nodes is two-shot; a reduce-scatter or an all-gather runs one-shot unless asked for a
    ring), or for `auto` the
    one whose transfer and latency add up to the least, the first of `ALGORITHMS` on a tie."""
    if algorithm == "auto":
        return min(options, key=lambda name: sum(options[name]))
    if algorithm in options:
        return algorithm
    return "two-shot" if "two-shot" in options else "one-shot"


def collective_time_s(collective: AllReduce, algorithm: str, links: Links, batch: int, context: int) -> tuple[float, float]:
    """(transfer, latency) seconds of one collective at this batch and context."""
    options = collective_options(collective.kind, float(collective.message_bytes.at(batch, context)),
                                 collective.sockets, links)
    transfer, latency = options[choose(options, algorithm)]
    return float(transfer), float(latency)


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
        reads[moe.tier] = reads.get(moe.tier, 0.0) + experts_read(
            moe.experts, moe.top_k, batch * moe.tokens_per_sequence, moe.held, moe.token_shards
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
    links = Links.of(hw)
    for collective in call.work.all_reduces:
        transfer, latency = collective_time_s(collective, a.allreduce_algorithm, links, batch, context)
        transfer_s += transfer
        latency_s += latency
    for exchange in call.work.all_to_alls:
        transfer, latency = all_to_all_time_s(
            exchange.message_bytes.at(batch, context), exchange.sockets, exchange.imbalance,
            a.p2p_bandwidth_bytes_per_s, a.p2p_latency_s,
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
    """One decode step: its seconds by category, its bytes read and its FLOPs (per socket; with
    a pipeline, summed over one socket of each stage). `stage_busy_s` is, in a pipeline, the
    seconds the stages compute in the step, summed over the stages (0 without one)."""

    breakdown_s: dict[str, float]
    read_bytes: float
    hbm_read_bytes: float
    ddr_read_bytes: float
    flops: float
    stage_busy_s: float = 0.0

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
        time_call: CallTimer = call_timing, pipeline: Pipeline | None = None) -> Run:
    """Steps at contexts `context`, `context + 1`, ..., `context + tokens - 1`, one at a time: the
    reference the array model (`sim/vectorized.py`) is checked against. With a `pipeline`, each
    step is `pipeline_step`'s."""
    counted = Counter(calls)

    def one(at: int) -> Step:
        if pipeline is None:
            return _step(counted, hw, batch, at, time_call)
        return pipeline_step(calls, pipeline, hw, batch, at, time_call)

    first = last = one(context)
    breakdown = dict(first.breakdown_s)
    hbm, ddr, flops, total_s = first.hbm_read_bytes, first.ddr_read_bytes, first.flops, first.total_s
    busy = first.stage_busy_s
    for t in range(1, tokens):
        last = one(context + t)
        for category, seconds in last.breakdown_s.items():
            breakdown[category] += seconds
        hbm += last.hbm_read_bytes
        ddr += last.ddr_read_bytes
        flops += last.flops
        total_s += last.total_s
        busy += last.stage_busy_s
    return Run(tokens, Step(breakdown, hbm + ddr, hbm, ddr, flops, busy), first, last, total_s)


@attrs.frozen
class Pipeline:
    """A program split into pipeline stages (`rdu.pipeline_send`): the stage of each call in
    order, the activation each send carries (bytes, as a function of the batch it carries), the
    sampled tokens the last stage returns to the first, and the micro-batches of the batch."""

    stages: int
    micro_batches: int
    call_stages: tuple[int, ...]
    messages: tuple[Affine, ...]
    returned: Affine


def link_time_s(num_bytes: float, hw: Hardware) -> float:
    """One message over the inter-node link: its latency, then its bytes at the link's bandwidth."""
    link = hw.internode
    if link is None:
        raise ValueError(f"{hw.name} gives no [internode] link")
    return link.latency_s + num_bytes / link.bandwidth_bytes_per_s


def micro_batch(batch: int, micro_batches: int) -> int:
    """The sequences of one micro-batch; the batch must divide evenly."""
    if micro_batches < 1 or batch % micro_batches:
        raise ValueError(f"a batch of {batch} does not split into {micro_batches} equal micro-batches")
    return batch // micro_batches


def pipeline_step(calls: Sequence[KernelCall], pipeline: Pipeline, hw: Hardware | GpuHardware, batch: int,
                  context: int, time_call: CallTimer = call_timing) -> Step:
    """One decode step of a pipelined program: every sequence of the batch gains one token.

    The batch flows as M micro-batches of b = batch / M sequences. Stage s takes t_s (its calls,
    each timed at batch b) per micro-batch; a send k takes x_k = latency + bytes(b) / bandwidth,
    and the sampled tokens go back to stage 0 the same way (x_r). A micro-batch's token makes
    one round trip, the cycle

        L = sum_s t_s + sum_k x_k + x_r + host,

    and a stage serves the M micro-batches one after the other, so a step (the time between two
    tokens of one sequence) lasts

        T = max(L, M * max_s t_s, M * max_k (bytes_k(b) / bandwidth)).

    Its breakdown is one micro-batch's cycle (the calls' categories, `internode` for the x's,
    `host`) plus `pipeline_wait` = T - L. Stages stream their weights once per micro-batch, so the
    bytes and FLOPs are M times one micro-batch's. The stages compute M * sum_s t_s of the N * T
    they have (`stage_busy_s`); the rest is the bubble (docs/timing-model.md).
    """
    if not isinstance(hw, Hardware):
        raise TypeError("pipeline stages run on an RDU")
    m = pipeline.micro_batches
    b = micro_batch(batch, m)
    breakdown = dict.fromkeys(CATEGORIES, 0.0)
    stage_s = [0.0] * pipeline.stages
    hbm = ddr = flops = 0.0
    for call, stage in zip(calls, pipeline.call_stages, strict=True):
        timed = time_call(call, hw, b, context)
        timed.add_to(breakdown)
        stage_s[stage] += timed.total_s
        t = traffic(call.work, b, context)
        hbm += m * call.trips * t.hbm_read_bytes
        ddr += m * call.trips * t.ddr_read_bytes
        flops += m * call.trips * t.flops
    messages = [*(message.at(b, context) for message in pipeline.messages), pipeline.returned.at(b, context)]
    breakdown["internode"] = sum(link_time_s(n, hw) for n in messages)
    breakdown["host"] += hw.assumptions.host_per_token_s
    cycle_s = sum(breakdown.values())
    link = cast(InterNodeLink, hw.internode)
    period_s = max(cycle_s, m * max(stage_s), m * max(messages) / link.bandwidth_bytes_per_s)
    breakdown["pipeline_wait"] = period_s - cycle_s
    return Step(breakdown, hbm + ddr, hbm, ddr, flops, stage_busy_s=m * sum(stage_s))


def bubble_fraction(run: Run, stages: int) -> float:
    """The share of the stages' time they sit idle over a run: 1 - busy / (stages x time)."""
    return 1.0 - run.total.stage_busy_s / (stages * run.total_s)


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
