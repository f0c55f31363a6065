"""Which socket counts a model can run on, and what to do when none can.

A run on N sockets needs every tensor-parallel split of the model to divide over N
(`shard-tensor-parallel`) and each socket's memories to hold its share of every split tensor and a
whole copy of every replicated one, KV heads included (`place-memory`). Each pass on its own
can only say what it checks, so a hint from one can lead to an error from the other; `advise`
checks both at every count at once, on the model as written, without compiling it, so each
count it offers compiles (tests/test_socket_hints.py compiles every one). When no count works as
the model is placed, it looks for a placement that does: KV caches in DDR, then weights.
"""

from __future__ import annotations

import attrs
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import SSAValue

from dfdsl.dialects import df
from dfdsl.hardware import GpuHardware, Hardware
from dfdsl.lowering.place_memory import SPILL_PRIORITY, TIER_ORDER, CapacityError, plan_placement, tensor_groups
from dfdsl.lowering.shard_tensor_parallel import MAX_SOCKETS, per_socket_types


@attrs.frozen
class Advice:
    """Socket counts that work as the model is placed (`counts`); if there are none, a class of
    tensors to place in another tier and the fewest sockets that then work (`placement`)."""

    counts: tuple[int, ...]
    shardable: tuple[int, ...]
    """The counts over which every split divides, whether or not the tensors fit."""
    placement: tuple[str, str, int] | None = None
    """(tensor class, tier, sockets)."""


def _fits(graph: df.GraphOp, hw: Hardware | GpuHardware, types: dict[SSAValue, df.TensorType], sockets: int,
          placed: dict[str, str] | None = None) -> bool:
    try:
        plan_placement(graph, hw, tensor_groups(graph, types, placed), sockets)
    except CapacityError:
        return False
    return True


def advise(module: ModuleOp, hw: Hardware | GpuHardware) -> Advice:
    """The socket counts `module` (a front-end `df` module whose graph holds the run's batch,
    context and tokens) runs on with `hw`, up to the machine's limit: a GPU node's GPUs, else
    `MAX_SOCKETS`."""
    graph = df.the_graph(module, "advise")
    limit = hw.node.gpus if isinstance(hw, GpuHardware) else MAX_SOCKETS
    shardable = {}
    for n in range(1, limit + 1):
        if (types := per_socket_types(module, n)) is not None:
            shardable[n] = types
    counts = tuple(n for n, types in shardable.items() if _fits(graph, hw, types, n))
    placement = None
    if not counts:
        slower = TIER_ORDER[-1]
        placement = next(((cls, slower, n) for cls in SPILL_PRIORITY for n, types in shardable.items()
                          if _fits(graph, hw, types, n, {cls: slower})), None)
    return Advice(counts, tuple(shardable), placement)
