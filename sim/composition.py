"""A Composition of Experts served request by request: which expert is resident in HBM (LRU), what
each switch costs, and each request's latency.

A node keeps `slots` experts resident in an HBM region; every expert also has a home in a larger,
slower tier (the SN40L's DDR, a GPU node's host memory), which holds `home_slots` experts per
node. More experts than one node's home holds need more nodes: expert e lives on node e mod nodes,
and each node keeps its own region. A request whose expert is resident (a hit) runs at once; a
miss copies the expert's weights into the region first (its switch), evicting the least recently
used expert when the region is full; weights are read-only, so an evicted expert is dropped without
a write-back. The region starts holding the first experts of its node (as many as fit), so a
composition that fits in HBM never switches.

Requests come in groups of `batch`: the router runs on the group's prompts together (a prefill),
then each (request, expert) pair runs one after another at batch 1: its switch, its prefill and
its decode. A request's latency is from its group's start to its last output token.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence

import attrs
import numpy as np
from numpy.typing import NDArray
from xdsl.dialects.builtin import ModuleOp

from dfdsl.dialects import rdu


@attrs.frozen(eq=False)
class Residency:
    """What LRU residency did to a stream: each request a hit or not, and the evictions."""

    hits: NDArray[np.bool_]
    evictions: int

    @property
    def misses(self) -> int:
        return int(len(self.hits) - self.hits.sum())


def lru(experts: Sequence[int] | NDArray[np.int64], slots: int, preload: Sequence[int] = ()) -> Residency:
    """Least-recently-used residency of `slots` experts over a stream of expert indices; the region
    starts with `preload` (least recently used first)."""
    if slots < 1:
        raise ValueError("a region holds at least one expert")
    resident: OrderedDict[int, None] = OrderedDict((e, None) for e in list(preload)[-slots:])
    hits = np.zeros(len(experts), dtype=bool)
    evictions = 0
    for i, expert in enumerate(np.asarray(experts).tolist()):
        if expert in resident:
            resident.move_to_end(expert)
            hits[i] = True
            continue
        if len(resident) >= slots:
            resident.popitem(last=False)  # read-only weights: dropped, never written back
            evictions += 1
        resident[expert] = None
    return Residency(hits, evictions)


@attrs.frozen
class Tiers:
    """One node's memories as a composition uses them."""

    slots: int
    """Experts the HBM region of a node keeps resident."""
    home_slots: int
    """Experts a node's home tier (DDR, host memory) holds; 0 when it has none."""
    copy_bytes_per_s: float
    """One node's copy bandwidth from the home tier into HBM (all sockets or GPU links at once)."""

    def nodes(self, experts: int) -> int:
        """The nodes `experts` experts need: one while they fit in HBM or in the home tier."""
        per_node = max(self.slots, self.home_slots)
        return max(1, -(-experts // per_node)) if per_node else 0


def residency(experts: NDArray[np.int64], count: int, tiers: Tiers) -> tuple[Residency, int]:
    """LRU residency of a stream over `count` experts on as many nodes as they need (each expert
    on one node, each node with its own region), and the number of nodes."""
    nodes = tiers.nodes(count)
    if nodes == 0:
        raise ValueError("no node holds an expert")
    hits = np.zeros(len(experts), dtype=bool)
    evictions = 0
    node_of = experts % nodes
    for node in range(nodes):
        index = np.flatnonzero(node_of == node)
        own = range(node, count, nodes)
        result = lru(experts[index], tiers.slots, list(own[:tiers.slots])[::-1])
        hits[index] = result.hits
        evictions += result.evictions
    return Residency(hits, evictions), nodes


@attrs.frozen(eq=False)
class Served:
    """A stream served: per request, its times in seconds and whether its expert was resident."""

    router_s: NDArray[np.float64]
    """The router's time of the request's group (shared by the group)."""
    switch_s: NDArray[np.float64]
    prefill_s: NDArray[np.float64]
    decode_s: NDArray[np.float64]
    latency_s: NDArray[np.float64]
    residency: Residency
    nodes: int


def serve(experts: NDArray[np.int64], count: int, tiers: Tiers, *, batch: int,
          switch_s: NDArray[np.float64], prefill_s: NDArray[np.float64], decode_s: NDArray[np.float64],
          router_s: Callable[[int], float]) -> Served:
    """The stream's requests (`experts`, and each one's expert `prefill_s` and `decode_s`) served
    in groups of `batch`; `switch_s[e]` is the copy of expert e, `router_s(n)` the router's prefill
    of a group of n prompts."""
    found, nodes = residency(experts, count, tiers)
    switch = np.where(found.hits, 0.0, switch_s[experts])
    work = switch + prefill_s + decode_s
    n = len(experts)
    group = np.arange(n) // batch
    starts = np.arange(0, n, batch)
    sizes = np.diff(np.append(starts, n))
    router = np.array([router_s(int(size)) for size in sizes])[group]
    done = np.cumsum(work)
    before = np.concatenate(([0.0], done))[starts][group]
    return Served(router, switch, prefill_s, decode_s, router + done - before, found, nodes)


@attrs.frozen
class CopyPlan:
    """What a composition program says: its region's slots and bytes per slot, and for each expert
    model its copy's bytes per socket, the sockets that copy, and the experts of that model."""

    slots: int
    slot_bytes: int
    copies: tuple[tuple[str, int, int, int], ...]
    """(model, bytes per socket, experts, sockets) per `rdu.copy`, in order."""


def plan_of(module: ModuleOp) -> CopyPlan:
    """The region and copies of a composition program (`lowering/compose.py`)."""
    regions = [op for op in module.walk() if isinstance(op, rdu.HbmRegionOp)]
    if len(regions) != 1:
        raise ValueError(f"a composition program has one rdu.hbm_region, this one {len(regions)}")
    copies = tuple((op.expert.root_reference.data, op.bytes.value.data, op.experts.value.data, op.sockets.value.data)
                   for op in module.walk() if isinstance(op, rdu.CopyOp))
    return CopyPlan(regions[0].slots.value.data, regions[0].slot_bytes.value.data, copies)
