"""What one decode step must read, counted on the model as written (before sharding).

These are the roofline's bytes, as docs/timing-model.md defines them: every parameter byte once per step
(whatever the batch) plus the KV cache each sequence reads. For a mixture of experts, a step
reads only the experts its batch routes to: we count the expected number of distinct experts
under uniform routing, E (1 - (1 - k/E)^B), the same rule the simulator uses.
"""

from __future__ import annotations

from typing import cast

import attrs
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import BlockArgument

from dfdsl.dialects import df
from dfdsl.dialects.cost import expected_experts


@attrs.frozen
class Footprint:
    param_bytes: int
    """All parameter bytes of the model."""
    expert_tensors: tuple[tuple[int, int, int], ...]
    """The routed experts' weight tensors: (bytes, experts E, top_k k) each."""
    kv_bytes_per_context_token: int
    """KV-cache bytes per sequence per token of context."""

    @property
    def expert_bytes(self) -> int:
        """The part of `param_bytes` in routed experts."""
        return sum(n for n, _, _ in self.expert_tensors)

    def expert_fraction_read(self, batch):
        """The fraction of the expert bytes a step reads at `batch` (1.0 without experts); a
        number, or a numpy array at an array of batches."""
        if not self.expert_tensors:
            return 1.0 + 0 * batch
        read = sum(n * expected_experts(experts, top_k, batch) / experts for n, experts, top_k in self.expert_tensors)
        return read / self.expert_bytes

    def param_bytes_read(self, batch):
        return self.param_bytes - self.expert_bytes + self.expert_bytes * self.expert_fraction_read(batch)


def _expert_arguments(module: ModuleOp) -> dict[str, dict[int, tuple[int, int]]]:
    """For each layer, the argument positions that hold routed-expert weights, with (E, top_k)."""
    found: dict[str, dict[int, tuple[int, int]]] = {}
    for layer in module.body.ops:
        if not isinstance(layer, df.LayerOp):
            continue
        for op in layer.walk():
            if isinstance(op, df.MoeExpertsOp):
                # The moe_experts shape rule, which the verifier applied, makes E a number.
                experts = cast(int, op.gate.type.dims[0])
                top_k = op.top_k.value.data
                for weight in (op.gate, op.up, op.down):
                    if isinstance(weight, BlockArgument):
                        found.setdefault(layer.sym_name.data, {})[weight.index] = (experts, top_k)
    return found


def footprint(module: ModuleOp) -> Footprint:
    """The footprint of a front-end `df` module (one socket, unsharded)."""
    graphs = [op for op in module.body.ops if isinstance(op, df.GraphOp)]
    if len(graphs) != 1 or graphs[0].tp.value.data != 1:
        raise ValueError("footprint() takes the front end's unsharded df module")
    expert_args = _expert_arguments(module)
    expert_ops = set()
    experts = []
    for op in graphs[0].body.block.ops:
        if isinstance(op, df.CallOp) and op.callee.string_value() in expert_args:
            for index, (count, top_k) in expert_args[op.callee.string_value()].items():
                value = op.args[index]
                if value.owner not in expert_ops:
                    expert_ops.add(value.owner)
                    experts.append((df.tensor_type(value.type).num_bytes(), count, top_k))
    params = sum(op.result.type.num_bytes() for op in graphs[0].body.block.ops if isinstance(op, df.WeightOp))
    kv = sum(op.result.type.num_bytes(batch=1, context=1) for op in graphs[0].body.block.ops
             if isinstance(op, df.KvCacheOp))
    return Footprint(params, tuple(experts), kv)
