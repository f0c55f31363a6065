"""The timing model over arrays: many points of one compiled program at once (numpy).

A program's calls (`timing.KernelCall`, what the interpreters find in one step) do work affine in
B and B*S, so at one point (a batch, a context, a number of tokens and the hardware's numbers)
each bound of a call's interval (the HBM and DDR streams, compute, the P2P transfer, the latency
chain) is a line in the step's context c, `at0 + slope * c`, for the whole run: c runs from
`context` to `context + tokens - 1`. An interval is the largest of its lines, so a run's sum of
intervals is, for each line, its sum over the contexts where it is the largest: an interval of
integers, bounded by the line's crossings with the others (ties go to the first line, as `max`
gives them), summed in closed form. So a point costs the same whatever its number of tokens, and
numpy evaluates thousands of points per operation. An `auto` all-reduce whose message grows with
the context changes algorithm at one context; the run is cut there first. A pipelined program's
step, a maximum over its stages of sums of such intervals, is summed the same way on segments of
the run between its lines' crossings (`pipeline_run`).

`sim/timing.py` stays the reference (and the interpreters the source of traces): tests compare
the two at random points of both targets.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs
import numpy as np
from numpy.typing import NDArray

from dfdsl.dialects.cost import experts_read
from dfdsl.hardware import GpuHardware, Hardware
from dfdsl.sim import timing
from dfdsl.sim.interpreter import Profile
from dfdsl.sim.timing import CATEGORIES, Affine, IterationWork, KernelCall

Array = NDArray[np.float64]


class HardwareValues:
    """A machine's numbers, some of them replaced by arrays of one value per point, by attribute
    path (`hbm.bandwidth_bytes_per_s`, `assumptions.p2p_latency_s`)."""

    def __init__(self, hardware: Hardware | GpuHardware, swept: Mapping[str, Array] | None = None):
        self.hardware = hardware
        self.swept = dict(swept or {})

    def __call__(self, path: str) -> Array | float:
        if path in self.swept:
            return self.swept[path]
        node: Any = self.hardware
        for part in path.split("."):
            node = getattr(node, part)
        return float(node)


@attrs.frozen
class Points:
    """The run sizes of many points (int64 arrays of one length)."""

    batch: NDArray[np.int64]
    context: NDArray[np.int64]
    tokens: NDArray[np.int64]

    @property
    def last_context(self) -> NDArray[np.int64]:
        return self.context + self.tokens - 1

    def zeros(self) -> Array:
        return np.zeros(len(self.batch))


@attrs.frozen
class Line:
    """Seconds `at0 + slope * c` at context c, one line per point; `category` is where they go."""

    category: str
    at0: Array
    slope: Array


@attrs.frozen
class Piece:
    """Contexts `first` to `last` of each point's run (inclusive; empty where last < first) and the
    lines of a call's first and later intervals there."""

    first: Array
    last: Array
    first_interval: list[Line]
    later_interval: list[Line]


@attrs.frozen
class CallLines:
    """One call at every point: its seconds outside the body, and its intervals in pieces of the run."""

    launch_sync_s: Array | float
    fill_drain_s: Array | float
    pieces: list[Piece]


CallLiner = Callable[[KernelCall, HardwareValues, Points], CallLines]
"""A target's timing of one call over arrays: `rdu_call_lines` or `gpu_call_lines`."""


def _line(work: Affine, batch: NDArray[np.int64]) -> tuple[Array, Array]:
    """A work's value in the context c at each batch: (const + per_batch * B, per_batch_context * B)."""
    b = batch.astype(np.float64)
    return float(work.const) + float(work.per_batch) * b, float(work.per_batch_context) * b


@attrs.frozen
class Traffic:
    """One iteration's bytes per tier and FLOPs as lines in c (bytes, not seconds)."""

    hbm_read: tuple[Array, Array]
    hbm_write: tuple[Array, Array]
    ddr_read: tuple[Array, Array]
    ddr_write: tuple[Array, Array]
    flops: tuple[Array, Array]

    def moved(self, tier: str) -> tuple[Array, Array]:
        read, write = (self.hbm_read, self.hbm_write) if tier == "hbm" else (self.ddr_read, self.ddr_write)
        return read[0] + write[0], read[1] + write[1]


def traffic(work: IterationWork, batch: NDArray[np.int64]) -> Traffic:
    """`timing.traffic` as lines: expected MoE expert reads join their tier's reads."""
    reads = {"hbm": _line(work.hbm_read, batch), "ddr": _line(work.ddr_read, batch)}
    for moe in work.experts:
        expected = experts_read(moe.experts, moe.top_k, batch.astype(np.float64) * moe.tokens_per_sequence,
                                moe.held, moe.token_shards)
        at0, slope = _line(moe.bytes_per_expert, batch)
        base0, base1 = reads[moe.tier]
        reads[moe.tier] = (base0 + expected * at0, base1 + expected * slope)
    return Traffic(reads["hbm"], _line(work.hbm_write, batch), reads["ddr"], _line(work.ddr_write, batch),
                   _line(work.flops, batch))


def _scaled(category: str, bytes_or_flops: tuple[Array, Array], per_s: Array | float) -> Line:
    return Line(category, bytes_or_flops[0] / per_s, bytes_or_flops[1] / per_s)


def _const(category: str, seconds: Array | float, points: Points) -> Line:
    return Line(category, points.zeros() + seconds, points.zeros())


# -- the SN40L --------------------------------------------------------------------------------


@attrs.frozen
class _Collective:
    """A collective at every point: each algorithm's transfer line and latency, the contexts
    where an `auto` choice may change, and the choice at any context."""

    collective: timing.AllReduce
    algorithm: str
    links: timing.Links
    points: Points
    options: dict[str, tuple[Line, Array | float]]
    switches: list[Array]

    def chosen(self, context: Array) -> tuple[Line, Array | float]:
        """The transfer line and latency of the algorithm chosen at `context` (one per point):
        `timing.choose` on the same numbers, so both models choose alike."""
        names = list(self.options)
        if self.algorithm != "auto" or len(names) == 1:
            return self.options[timing.choose(dict.fromkeys(names, (0.0, 0.0)), self.algorithm)]
        m0, m1 = _line(self.collective.message_bytes, self.points.batch)
        at = timing.collective_options(self.collective.kind, m0 + m1 * context, self.collective.sockets, self.links)
        pick = np.argmin(np.stack([np.broadcast_to(at[n][0] + at[n][1], context.shape) for n in names]), axis=0)
        lines = [self.options[n] for n in names]
        return (Line("collective", np.choose(pick, [np.broadcast_to(t.at0, context.shape) for t, _ in lines]),
                     np.choose(pick, [np.broadcast_to(t.slope, context.shape) for t, _ in lines])),
                np.choose(pick, [np.broadcast_to(lat, context.shape) for _, lat in lines]))


def _links(hv: HardwareValues, hw: Hardware) -> timing.Links:
    """`timing.Links.of` with the swept values (a node's socket count, which decides the
    topology, is the file's: `dfdsl sweep` does not sweep it)."""
    return timing.Links(hv("assumptions.p2p_bandwidth_bytes_per_s"), hv("assumptions.p2p_latency_s"),
                        hw.assumptions.p2p_node_sockets,
                        hv("assumptions.p2p_rack_bandwidth_bytes_per_s"), hv("assumptions.p2p_rack_latency_s"))


def _collective(collective: timing.AllReduce, algorithm: str, links: timing.Links, points: Points) -> _Collective:
    """`timing.collective_time_s` over arrays. A transfer is proportional to the message, which is
    a line in c, so each algorithm's transfer is a line; `auto` picks the least transfer plus
    latency, and two algorithms' totals cross at most once, at a context found in closed form.
    The run is cut around each crossing (a context either side, so that rounding at a tie cannot
    move a choice inside a piece), and each piece chooses at its first context."""
    m0, m1 = _line(collective.message_bytes, points.batch)
    kind, sockets = collective.kind, collective.sockets
    at0 = timing.collective_options(kind, m0, sockets, links)
    per_c = timing.collective_options(kind, m1, sockets, links)
    options = {name: (Line("collective", points.zeros() + at0[name][0], points.zeros() + per_c[name][0]),
                      at0[name][1]) for name in at0}
    switches: list[Array] = []
    if algorithm == "auto":
        names = list(options)
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                (ta, la), (tb, lb) = options[a], options[b]
                gap0, gap1 = ta.at0 + la - tb.at0 - lb, ta.slope - tb.slope
                with np.errstate(divide="ignore", invalid="ignore"):
                    crossing = np.where(gap1 != 0, np.floor(-gap0 / gap1), np.inf)
                switches.extend(crossing + offset for offset in (-1, 0, 1, 2))
    return _Collective(collective, algorithm, links, points, options, switches)


def _cut(points: Points, switches: Sequence[Array]) -> list[tuple[Array, Array]]:
    """The run's contexts cut at every switch inside it: (first, last) of each piece."""
    first = points.context.astype(np.float64)
    last = points.last_context.astype(np.float64)
    inside: dict[bytes, Array] = {}
    for s in switches:
        if np.any((s > first) & (s <= last)):
            inside.setdefault(s.tobytes(), s)
    if not inside:
        return [(first, last)]
    cuts = np.sort(np.stack([np.clip(s, first, last + 1) for s in inside.values()]), axis=0)
    starts = [first, *cuts]
    ends = [*(c - 1 for c in cuts), last]
    return list(zip(starts, ends))


def _all_to_alls(exchanges: Sequence[timing.AllToAll], hv: HardwareValues, points: Points) -> tuple[Line, Array | float]:
    """`timing.all_to_all_time_s` over arrays, summed over a call's exchanges: (transfer line, latency)."""
    link = hv("assumptions.p2p_bandwidth_bytes_per_s")
    transfer = _const("collective", 0.0, points)
    latency: Array | float = 0.0
    for x in exchanges:
        if x.sockets < 2:
            continue
        m0, m1 = _line(x.message_bytes, points.batch)
        share = x.imbalance * (x.sockets - 1) / x.sockets / link
        transfer = Line("collective", transfer.at0 + share * m0, transfer.slope + share * m1)
        latency = latency + hv("assumptions.p2p_latency_s")
    return transfer, latency


def rdu_call_lines(call: KernelCall, hv: HardwareValues, points: Points) -> CallLines:
    """`timing.call_timing` over arrays: launch/sync, fill and drain, and the interval's lines in
    the order `ResourceTimes.interval` compares them."""
    hw = hv.hardware
    assert isinstance(hw, Hardware)
    t = traffic(call.work, points.batch)
    efficiency = hv("assumptions.stream_efficiency")
    hbm = _scaled("stream", t.moved("hbm"), efficiency * hv("hbm.bandwidth_bytes_per_s"))
    ddr = _scaled("stream", t.moved("ddr"), efficiency * hv("ddr.bandwidth_bytes_per_s"))
    if call.work.flops == Affine():
        compute = _const("compute", 0.0, points)
    else:
        share = np.minimum(1.0, call.pcus / hv("chip.pcus"))
        compute = _scaled("compute", t.flops, hv("assumptions.compute_efficiency") * hv("chip.peak_flops_per_s") * share)
    algorithm = hw.assumptions.allreduce_algorithm
    links = _links(hv, hw)
    collectives = [_collective(c, algorithm, links, points) for c in call.work.all_reduces]
    stage_s = hv("assumptions.stage_latency_s")
    carry_s = call.depth_stages * stage_s
    exchange = _all_to_alls(call.work.all_to_alls, hv, points)
    pieces = []
    for first, last in _cut(points, [s for c in collectives for s in c.switches]):
        transfer = exchange[0]
        latency: Array | float = exchange[1]
        for c in collectives:
            line, seconds = c.chosen(first)
            transfer = Line("collective", transfer.at0 + line.at0, transfer.slope + line.slope)
            latency = latency + seconds
        common = [hbm, ddr, compute, transfer]
        pieces.append(Piece(first, last, [*common, _const("collective", latency, points)],
                            [*common, _const("collective", latency + carry_s, points)]))
    fill_s = hv("assumptions.first_tile_latency_s") + carry_s
    return CallLines(hv(f"assumptions.{hw.launch_sync_key}"), fill_s + carry_s, pieces)


# -- a GPU node -------------------------------------------------------------------------------


def _gpu_stream(moved: tuple[Array, Array], bandwidth: Array | float, hv: HardwareValues,
                ramp: Array | float | None = None, efficiency: Array | float | None = None) -> Line:
    """`gpu_interpreter.stream_time_s` over arrays (or, with `ramp` and `efficiency`, a kernel
    kind's stream): the ramp, then the bytes, where there are any. Work is never negative and
    c >= 1, so a stream moves bytes at every step of a run or at none."""
    efficiency = hv("assumptions.stream_efficiency") if efficiency is None else efficiency
    ramp = hv("assumptions.stream_ramp_s") if ramp is None else ramp
    any_bytes = (moved[0] > 0) | (moved[1] > 0)
    at0 = np.where(any_bytes, ramp + moved[0] / (efficiency * bandwidth), 0.0)
    return Line("stream", at0, moved[1] / (efficiency * bandwidth))


def _attention_waves_per_context(call: KernelCall, hv: HardwareValues, points: Points) -> Array:
    """`gpu_interpreter.attention_waves` below its cap, per token of context: B x H /
    (attention_block_tokens x SMs) at each point (0 for a kernel that is not attention)."""
    if call.kind != "attention":
        return points.zeros()
    return points.batch * call.heads / hv("software.attention_block_tokens") / hv("chip.sms") + points.zeros()


def _attention_switch(call: KernelCall, hv: HardwareValues, points: Points) -> Array:
    """The first context at which an attention kernel's split reaches `attention_max_waves` (it
    grows with the context until then, and stays there after): +inf where it never does."""
    per_c = _attention_waves_per_context(call, hv, points)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(per_c > 0, np.ceil(hv("software.attention_max_waves") / per_c), np.inf)


def _gpu_hbm(call: KernelCall, moved: tuple[Array, Array], hv: HardwareValues, points: Points,
             capped: NDArray[np.bool_]) -> list[Line]:
    """`gpu_interpreter.hbm_time_s` over arrays: the lines whose largest is a kernel's HBM stream
    (an attention kernel's floor is a line of its own, where it moves any bytes; its waves are a
    line in c, or where `capped` their most, `_attention_switch`)."""
    bandwidth = hv("hbm.bandwidth_bytes_per_s")
    if call.kind == "gemm":
        share = call.columns / (call.columns + hv("software.gemm_half_efficiency_columns"))
        return [_gpu_stream(moved, bandwidth, hv, hv("software.gemm_ramp_s"), hv("software.gemm_efficiency") * share)]
    if call.kind == "attention":
        stream = _gpu_stream(moved, bandwidth, hv, hv("software.attention_ramp_s"), hv("software.attention_efficiency"))
        any_bytes = (moved[0] > 0) | (moved[1] > 0)
        wave = hv("software.attention_wave_s")
        waves0 = np.where(any_bytes & capped, wave * hv("software.attention_max_waves"), 0.0)
        waves1 = np.where(any_bytes & ~capped, wave * _attention_waves_per_context(call, hv, points), 0.0)
        stream = Line("stream", stream.at0 + waves0, stream.slope + waves1)
        return [stream, _const("stream", np.where(any_bytes, hv("software.attention_floor_s"), 0.0), points)]
    if call.kind == "experts":
        return [_gpu_stream(moved, bandwidth, hv, hv("software.experts_ramp_s"), hv("software.experts_efficiency"))]
    return [_gpu_stream(moved, bandwidth, hv)]


@attrs.frozen
class _GpuReduce:
    """A GPU all-reduce at every point: its line before `switch` (the first context at which
    `after` is the faster; +inf: never) and after it. Only `custom` switches."""

    before: Line
    after: Line
    switch: Array


def _gpu_all_reduce(r: timing.AllReduce, hv: HardwareValues, points: Points) -> _GpuReduce:
    """`gpu_interpreter.all_reduce_time_s` over arrays (an all-gather too): lines in c (the message
    is affine). `custom`
    takes one-shot while it is no slower: one - two = d0 + d1 c <= 0, and d1 >= 0 (one-shot's
    slope, (N - 1) m1 / bw, is at least two-shot's, 2 (N - 1) / N m1 / bw), so up to one context."""
    hw = hv.hardware
    assert isinstance(hw, GpuHardware)
    n, never = r.sockets, points.zeros() + np.inf
    if n < 2:
        none = _const("collective", 0.0, points)
        return _GpuReduce(none, none, never)
    m0, m1 = _line(r.message_bytes, points.batch)
    shared = 2 * (n - 1) / n
    if r.kind != "all_reduce":
        # NCCL's ring, half of it: an all-gather forwards whole shares, a reduce-scatter 1/n of the sum.
        bandwidth = hv("assumptions.nccl_bus_bandwidth_bytes_per_s") * (1 if r.kind == "all_gather" else n)
        base = hv("assumptions.nccl_base_latency_s") + (n - 1) * hv("assumptions.nccl_step_latency_s")
        ring = Line("collective", points.zeros() + base + (n - 1) * m0 / bandwidth, points.zeros() + (n - 1) * m1 / bandwidth)
        return _GpuReduce(ring, ring, never)
    if hw.software.all_reduce in ("nccl-ring", "nccl-tree"):
        steps = 2 * (n - 1) if hw.software.all_reduce == "nccl-ring" else 2 * math.ceil(math.log2(n))
        bandwidth = hv("assumptions.nccl_bus_bandwidth_bytes_per_s")
        base = hv("assumptions.nccl_base_latency_s") + steps * hv("assumptions.nccl_step_latency_s")
        ring = Line("collective", points.zeros() + base + shared * m0 / bandwidth, points.zeros() + shared * m1 / bandwidth)
        return _GpuReduce(ring, ring, never)
    bandwidth = hv("software.custom_allreduce_bandwidth_bytes_per_s")
    step = hv("software.custom_allreduce_step_latency_s")
    one = Line("collective", points.zeros() + hv("software.custom_allreduce_latency_s") + (n - 1) * step
               + (n - 1) * m0 / bandwidth, points.zeros() + (n - 1) * m1 / bandwidth)
    two = Line("collective", points.zeros() + hv("software.custom_allreduce_twoshot_latency_s") + 2 * (n - 1) * step
               + shared * m0 / bandwidth, points.zeros() + shared * m1 / bandwidth)
    if hw.software.all_reduce != "custom":
        chosen = one if hw.software.all_reduce == "one-shot" else two
        return _GpuReduce(chosen, chosen, never)
    d0, d1 = one.at0 - two.at0, one.slope - two.slope
    with np.errstate(divide="ignore", invalid="ignore"):
        crossing = np.floor(-d0 / d1) + 1
    switch = np.where(d1 > 0, crossing, np.where(d0 <= 0, np.inf, -np.inf))
    return _GpuReduce(one, two, switch)


def gpu_call_lines(call: KernelCall, hv: HardwareValues, points: Points) -> CallLines:
    """`gpu_interpreter.launch_timing` over arrays: launch/sync, then one body, the largest of the
    HBM and DDR streams, the SMs and NVLink (in that order, as the interpreter compares them),
    and without CUDA graphs the host's bound last. A `custom` all-reduce whose message grows with
    the context changes kernel at one context, and an attention kernel's split reaches its most
    waves at one context; the run is cut there first."""
    hw = hv.hardware
    assert isinstance(hw, GpuHardware)
    t = traffic(call.work, points.batch)
    attention_switch = _attention_switch(call, hv, points)
    ddr = _gpu_stream(t.moved("ddr"), hv("ddr.bandwidth_bytes_per_s"), hv)
    sms = _scaled("compute", t.flops, hv("assumptions.compute_efficiency") * hv("chip.peak_flops_per_s"))
    reduces = [_gpu_all_reduce(r, hv, points) for r in call.work.all_reduces]
    launch_sync = hv("assumptions.launch_sync_s")
    host = []
    if not hw.software.cuda_graphs:
        host = [_const("sync", np.maximum(0.0, hv("software.host_launch_s") - launch_sync), points)]
    pieces = []
    for first, last in _cut(points, [r.switch for r in reduces] + [attention_switch]):
        hbm = _gpu_hbm(call, t.moved("hbm"), hv, points, first >= attention_switch)
        nccl = _const("collective", 0.0, points)
        for r in reduces:
            before = first < r.switch
            nccl = Line("collective", nccl.at0 + np.where(before, r.before.at0, r.after.at0),
                        nccl.slope + np.where(before, r.before.slope, r.after.slope))
        body = [*hbm, ddr, sms, nccl, *host]
        pieces.append(Piece(first, last, body, body))
    return CallLines(launch_sync, 0.0, pieces)


# -- a run ------------------------------------------------------------------------------------


def max_ranges(lines: Sequence[Line], first: Array, last: Array) -> list[tuple[Array, Array]]:
    """For each line, the integer contexts (lo, hi) of `first`..`last` where it is the largest
    (empty where hi < lo). A line is the largest where it beats each line before it and ties or
    beats each line after it: an interval of contexts, ended by the crossings."""
    ranges = []
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for j, line in enumerate(lines):
            lo, hi = first.copy(), last.copy()
            for i, other in enumerate(lines):
                if i == j:
                    continue
                gap0, gap1 = line.at0 - other.at0, line.slope - other.slope
                strict = i < j
                crossing = -gap0 / gap1
                # gap0 + gap1 * c > 0 (>= 0 when not strict): above the crossing if gap1 > 0, below if < 0
                lo = np.where(gap1 > 0, np.maximum(lo, np.floor(crossing) + 1 if strict else np.ceil(crossing)), lo)
                hi = np.where(gap1 < 0, np.minimum(hi, np.ceil(crossing) - 1 if strict else np.floor(crossing)), hi)
                never = (gap1 == 0) & ((gap0 <= 0) if strict else (gap0 < 0))
                hi = np.where(never, -np.inf, hi)
            ranges.append((lo, hi))
    return ranges


def line_sum(at0: Array, slope: Array, lo: Array, hi: Array) -> Array:
    """The sum of `at0 + slope * c` over the integer contexts lo..hi (0 where hi < lo)."""
    n = hi - lo + 1
    with np.errstate(invalid="ignore", over="ignore"):
        return np.where(n > 0, n * at0 + slope * (lo + hi) * n / 2, 0.0)


def sum_of_max(lines: Sequence[Line], first: Array, last: Array) -> dict[str, Array]:
    """For each category, the sum over the integer contexts `first`..`last` of the largest line
    where it is of that category (`max_ranges`)."""
    # A line that is zero everywhere adds nothing where it is the largest (every line is >= 0).
    lines = [line for line in lines if line.at0.any() or line.slope.any()]
    sums = {line.category: np.zeros_like(first) for line in lines}
    for line, (lo, hi) in zip(lines, max_ranges(lines, first, last)):
        sums[line.category] += line_sum(line.at0, line.slope, lo, hi)
    return sums


@attrs.frozen
class ArrayRun:
    """`timing.Run` for many points: per-step means over each point's run, per socket."""

    step_s: Array
    breakdown_s: dict[str, Array]
    means: dict[str, Array]
    """`read_bytes`, `hbm_read_bytes`, `ddr_read_bytes` and `flops`, as `timing.Step` names them."""

    def mean(self, figure: str) -> Array:
        return self.means[figure]


def run(calls: Sequence[KernelCall], hv: HardwareValues, points: Points, lines_of: CallLiner) -> ArrayRun:
    """`timing.run` at every point: each distinct call's lines summed over its run, then the host."""
    steps = points.tokens.astype(np.float64)
    breakdown = {c: points.zeros() for c in CATEGORIES}
    mid = points.context + (steps - 1) / 2  # the reads are affine in c: their mean is at the mean context
    hbm, ddr, flops = points.zeros(), points.zeros(), points.zeros()
    for call, repeats in Counter(calls).items():
        lines = lines_of(call, hv, points)
        breakdown["sync"] += repeats * steps * lines.launch_sync_s
        breakdown["fill_drain"] += repeats * steps * lines.fill_drain_s
        for piece in lines.pieces:
            for category, seconds in sum_of_max(piece.first_interval, piece.first, piece.last).items():
                breakdown[category] += repeats * seconds
            if call.trips > 1:
                for category, seconds in sum_of_max(piece.later_interval, piece.first, piece.last).items():
                    breakdown[category] += repeats * (call.trips - 1) * seconds
        t = traffic(call.work, points.batch)
        hbm += repeats * call.trips * (t.hbm_read[0] + t.hbm_read[1] * mid)
        ddr += repeats * call.trips * (t.ddr_read[0] + t.ddr_read[1] * mid)
        flops += repeats * call.trips * (t.flops[0] + t.flops[1] * mid)
    breakdown["host"] += steps * hv("assumptions.host_per_token_s")
    means = {c: v / steps for c, v in breakdown.items()}
    return ArrayRun(sum(means.values(), points.zeros()), means,
                    {"read_bytes": hbm + ddr, "hbm_read_bytes": hbm, "ddr_read_bytes": ddr, "flops": flops})


# -- a pipeline -------------------------------------------------------------------------------


def _crossings(lines: Sequence[Line]) -> list[Array]:
    """The contexts where two of `lines` cross (not finite where they are parallel)."""
    out = []
    with np.errstate(divide="ignore", invalid="ignore"):
        for i, line in enumerate(lines):
            for other in lines[i + 1:]:
                out.append(-(line.at0 - other.at0) / (line.slope - other.slope))
    return out


def _column(value: Array | float) -> Array | float:
    """A value per point as a column (points x 1), to meet arrays of points x segments; a number as is."""
    return np.asarray(value, np.float64)[:, None] if np.ndim(value) else value


def _largest(lines: Sequence[Line], mid: Array) -> tuple[Array, Array]:
    """The largest of `lines` at `mid` (points x segments): its at0 and slope there."""
    shape = mid.shape
    at0 = np.stack([np.broadcast_to(np.asarray(line.at0, np.float64)[:, None], shape) for line in lines])
    slope = np.stack([np.broadcast_to(np.asarray(line.slope, np.float64)[:, None], shape) for line in lines])
    best = np.argmax(at0 + slope * mid, axis=0)[None]
    return np.take_along_axis(at0, best, 0)[0], np.take_along_axis(slope, best, 0)[0]


def pipeline_run(calls: Sequence[KernelCall], pipeline: timing.Pipeline, hv: HardwareValues, points: Points,
                 lines_of: CallLiner) -> ArrayRun:
    """`timing.run` of a pipelined program (each step `timing.pipeline_step`'s) at every point, whose
    batch must split into the pipeline's micro-batches.

    The cycle L is the calls at a micro-batch's b sequences (`run` at b), the sends' and the
    returned tokens' link times (lines in c) and the host. The period T = max(L, M x each stage's
    time, M x each message's bytes / bandwidth) is a maximum over sums of maxima, so the run is cut
    where any two lines of a call's interval cross and where a call's pieces end: between two cuts
    each call's interval is one line (the largest at the segment's middle), so each stage's time
    and L are lines there, and `max_ranges` sums T - L (`pipeline_wait`) over the segment in closed
    form. Bytes and FLOPs are M times one micro-batch's."""
    m = pipeline.micro_batches
    at = attrs.evolve(points, batch=points.batch // m)
    steps = points.tokens.astype(np.float64)
    cycle = run(calls, hv, at, lines_of)
    breakdown = {c: seconds * steps for c, seconds in cycle.breakdown_s.items()}
    bandwidth, latency = hv("internode.bandwidth_bytes_per_s"), hv("internode.latency_s")
    sends = [_line(message, at.batch) for message in (*pipeline.messages, pipeline.returned)]
    link = Line("internode", points.zeros() + sum(latency + b0 / bandwidth for b0, _ in sends),
                points.zeros() + sum(b1 / bandwidth for _, b1 in sends))
    first, last = points.context.astype(np.float64), at.last_context.astype(np.float64)
    breakdown["internode"] += line_sum(link.at0, link.slope, first, last)

    timed = {call: lines_of(call, hv, at) for call in dict.fromkeys(calls)}
    cuts = [piece.last for lines in timed.values() for piece in lines.pieces]
    cuts += [x for lines in timed.values() for piece in lines.pieces
             for interval in (piece.first_interval, piece.later_interval) for x in _crossings(interval)]
    # A cut outside every point's run (or where two lines never cross) makes only empty segments.
    stacked = np.stack([x for x in cuts if np.any((x >= first) & (x < last))] or [last], axis=1)
    ends = np.sort(np.clip(np.floor(np.where(np.isfinite(stacked), stacked, last[:, None])), first[:, None] - 1,
                           last[:, None]), axis=1)
    ends = np.concatenate([ends, last[:, None]], axis=1)
    starts = np.concatenate([first[:, None], ends[:, :-1] + 1], axis=1)
    mid = (starts + ends) / 2
    stage0 = np.zeros((pipeline.stages, *mid.shape))
    stage1 = np.zeros((pipeline.stages, *mid.shape))
    for (call, stage), repeats in Counter(zip(calls, pipeline.call_stages, strict=True)).items():
        lines = timed[call]
        at0 = np.zeros(mid.shape) + _column(lines.launch_sync_s + lines.fill_drain_s)
        slope = np.zeros(mid.shape)
        for piece in lines.pieces:
            inside = (piece.first[:, None] <= mid) & (mid <= piece.last[:, None])
            a0, a1 = _largest(piece.first_interval, mid)
            if call.trips > 1:
                l0, l1 = _largest(piece.later_interval, mid)
                a0, a1 = a0 + (call.trips - 1) * l0, a1 + (call.trips - 1) * l1
            at0 += np.where(inside, a0, 0.0)
            slope += np.where(inside, a1, 0.0)
        stage0[stage] += repeats * at0
        stage1[stage] += repeats * slope
    host = _column(hv("assumptions.host_per_token_s"))
    cycle_line = Line("cycle", stage0.sum(axis=0) + link.at0[:, None] + host, stage1.sum(axis=0) + link.slope[:, None])
    per_byte = m / _column(bandwidth)
    bounds = [cycle_line, *(Line("wait", m * a0, m * a1) for a0, a1 in zip(stage0, stage1)),
              *(Line("wait", np.zeros(mid.shape) + per_byte * b0[:, None], np.zeros(mid.shape) + per_byte * b1[:, None])
                for b0, b1 in sends)]
    wait = np.zeros(mid.shape)
    for line, (lo, hi) in list(zip(bounds, max_ranges(bounds, starts, ends)))[1:]:
        # Where a stage or a message bounds the period (the cycle wins ties), it waits T - L > 0.
        wait += np.maximum(line_sum(line.at0 - cycle_line.at0, line.slope - cycle_line.slope, lo, hi), 0.0)
    breakdown["pipeline_wait"] = wait.sum(axis=1)
    means = {c: v / steps for c, v in breakdown.items()}
    return ArrayRun(sum(means.values(), points.zeros()), means, {k: m * v for k, v in cycle.means.items()})


@attrs.frozen
class ArrayResult:
    """`SimResult`'s figures for many points of one program, as arrays (no timeline: the
    interpreters draw those); `dfdsl.report.decode_figures` reads either."""

    sockets: int
    kernel_calls_per_token: int
    batch: NDArray[np.int64]
    context: NDArray[np.int64]
    tokens: NDArray[np.int64]
    ms_per_token: Array
    breakdown_ms: dict[str, Array]
    bytes_per_token: Array
    hbm_bytes_per_token: Array
    ddr_bytes_per_token: Array
    flops_per_token: Array
    aggregate_hbm_bytes_per_s: Array | float
    aggregate_ddr_bytes_per_s: Array | float

    @property
    def roofline_bandwidth_bytes_per_s(self) -> Array:
        """`SimResult.roofline_bandwidth_bytes_per_s` at every point: HBM, and DDR where a step reads DDR."""
        return self.aggregate_hbm_bytes_per_s + np.where(self.ddr_bytes_per_token > 0,
                                                         self.aggregate_ddr_bytes_per_s, 0.0)

    @property
    def tokens_per_s_per_user(self) -> Array:
        return 1000.0 / self.ms_per_token

    @property
    def tokens_per_s(self) -> Array:
        return self.batch * self.tokens_per_s_per_user


def simulate(profile: Profile, hv: HardwareValues, points: Points, lines_of: CallLiner) -> ArrayResult:
    """`simulate` (or `simulate_gpu`) at every point, from the program's profile; with the batch
    split over the sockets, each point's steps are the program's at its busiest socket's sequences;
    with pipeline stages, `pipeline_run`'s (each point's batch splits into the micro-batches)."""
    local = attrs.evolve(points, batch=-(-points.batch // profile.batch_shards))
    pipeline = profile.pipeline
    result = run(profile.calls, hv, local, lines_of) if pipeline is None else \
        pipeline_run(profile.calls, pipeline, hv, local, lines_of)
    stages = 1 if pipeline is None else pipeline.stages
    return ArrayResult(sockets=profile.sockets, kernel_calls_per_token=len(profile.calls), batch=points.batch,
                       context=points.context, tokens=points.tokens, **timing.per_token(result, profile.sockets),
                       aggregate_hbm_bytes_per_s=stages * profile.sockets * hv("hbm.bandwidth_bytes_per_s"),
                       aggregate_ddr_bytes_per_s=stages * profile.sockets * hv("ddr.bandwidth_bytes_per_s"))
