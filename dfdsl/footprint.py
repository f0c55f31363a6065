"""What one decode step must read: the bytes of the roofline, counted once on the model as written
(before sharding).

A step must read each tensor it uses once, as much of it as its operators read (`operand_reads` in
lowering/operator_work.py, the rule the targets' lowerings state their work with): a weight read
in full by any operator in full, even when several read it (a tied LM head and the embedding table
it is a view of are one tensor); an embedding table only the rows of the batch's tokens; routed
experts only those the batch touches, the expected number of distinct experts under uniform
routing, E (1 - (1 - k/E)^B), the rule the simulator uses; and every KV cache in full. Tensors
placed on chip (`sram`) are not read from memory and are not counted. Every byte counted here is
read by the simulated step too, on some socket (sharding splits or replicates a tensor, never
reads less of it), which is why a run cannot beat the roofline built on these bytes.

The parameters a model holds (`param_bytes`) are another figure: every weight's bytes, once, read
or not by a step.
"""

from __future__ import annotations

import attrs
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import BlockArgument, SSAValue

from dfdsl.dialects import df
from dfdsl.dialects.cost import ZERO, Work, expected_experts
from dfdsl.lowering.operator_work import OFF_CHIP_TIERS, OperandRead, operand_reads


def _value(work: Work, batch: int, context: float) -> float:
    """`work` at a batch and a (possibly mean) context."""
    const, per_batch, per_batch_context = work.terms
    return const + per_batch * batch + per_batch_context * batch * context


@attrs.frozen
class Footprint:
    """The bytes a model holds and the bytes one decode step at `batch` must read."""

    batch: int
    param_bytes: int
    """Every weight's bytes, once (a tied weight is its storage's bytes, counted there)."""
    expert_bytes: int
    """The part of `param_bytes` in routed experts."""
    expert_fraction_read: float
    """The fraction of the expert bytes a step reads at this batch (1.0 without experts)."""
    weight_bytes_read: float
    """The weight bytes a step must read at this batch (and of any declared input an operator
    reads: none in the bundled models, whose token ids only index the embedding)."""
    kv_read: Work
    """The KV-cache bytes a step must read, in B and B*S."""

    def kv_bytes_read(self, context: float) -> float:
        return _value(self.kv_read, self.batch, context)

    def bytes_per_step(self, context: float) -> float:
        """Everything a step at `context` tokens cached must read: weights and KV cache."""
        return self.weight_bytes_read + self.kv_bytes_read(context)


def _reads_by_declaration(module: ModuleOp, graph: df.GraphOp) -> dict[df.DeclBase, list[OperandRead]]:
    """Every read of a declared tensor by an operator, in the graph or in a layer it calls, keyed
    by the declaration (a tied weight's reads are its storage's)."""
    layers = {op.sym_name.data: op for op in module.body.ops if isinstance(op, df.LayerOp)}
    reads: dict[df.DeclBase, list[OperandRead]] = {}

    def add(read: OperandRead, value: SSAValue) -> None:
        decl = value.owner
        if isinstance(decl, df.WeightOp):
            decl = decl.storage() or decl
        if isinstance(decl, df.DeclBase):
            reads.setdefault(decl, []).append(read)

    for op in graph.body.block.ops:
        if isinstance(op, df.OperatorBase):
            for read in operand_reads(op):
                add(read, read.value)
        elif isinstance(op, df.CallOp):
            for inner in layers[op.callee.string_value()].body.block.ops:
                if isinstance(inner, df.OperatorBase):
                    for read in operand_reads(inner):
                        if isinstance(read.value, BlockArgument):
                            add(read, op.args[read.value.index])
    return reads


def footprint(module: ModuleOp, batch: int) -> Footprint:
    """The footprint of a front-end `df` module (unsharded) at `batch`."""
    graphs = [op for op in module.body.ops if isinstance(op, df.GraphOp)]
    if len(graphs) != 1 or graphs[0].tp.value.data != 1:
        raise ValueError("footprint() takes the front end's unsharded df module")
    graph = graphs[0]
    expert_bytes = 0
    experts_read = weights_read = 0.0
    kv_read = ZERO
    for decl, reads in _reads_by_declaration(module, graph).items():
        if decl.result.type.tier_name not in OFF_CHIP_TIERS:
            continue
        if isinstance(decl, df.KvCacheOp):
            # Caches are read in full (attention); the largest read is the one a step must make.
            kv_read += max((r.nbytes for r in reads), key=lambda w: w.terms[::-1])
            continue
        whole = Work.of_bytes(decl.result.type).at(batch, 0)
        most = 0.0
        for read in reads:
            n = _value(read.nbytes, batch, 0)
            if read.routing is not None:
                n *= expected_experts(*read.routing, batch)
            most = max(most, n)
        routed = all(r.routing is not None for r in reads)
        if routed:
            expert_bytes += whole
            experts_read += min(most, whole)
        weights_read += min(most, whole)
    params = sum(op.result.type.num_bytes() for op in graph.body.block.ops
                 if isinstance(op, df.WeightOp) and op.tied_to is None)
    fraction = experts_read / expert_bytes if expert_bytes else 1.0
    return Footprint(batch, params, expert_bytes, fraction, weights_read, kv_read)
