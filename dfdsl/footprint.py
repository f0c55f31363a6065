"""What one decode step must read: the bytes of the roofline, counted once on the model as written
(before sharding), and the parameters the model holds.

A step must read each tensor it uses once, as much of it as its operators read (`operand_reads` in
lowering/operator_work.py, the rule the targets' lowerings state their work with): a weight read
in full by any operator in full, even when several read it (a tied LM head and the embedding table
it is a view of are one tensor); an embedding table only the rows of the batch's tokens; routed
experts only those the batch touches, the expected number of distinct experts under uniform
routing, E (1 - (1 - k/E)^B), the rule the simulator uses; and every KV cache in full. Tensors
placed on chip (`sram`) are not read from memory and are not counted. Every byte counted here is
read by the simulated step too, on some socket (sharding splits or replicates a tensor, never
reads less of it), which is why a run cannot beat the roofline built on these bytes.

The footprint is computed once per model and does not depend on the run: each figure is a function
of the batch (and the context), which may be a number or a numpy array of them (the array timing
model's points).

The parameters a model holds (`param_bytes`) are another figure: every weight's bytes, once, read
or not by a step.
"""

from __future__ import annotations

import attrs
import numpy as np
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import BlockArgument, SSAValue

from dfdsl.dialects import df
from dfdsl.dialects.cost import ZERO, Batch, Work, expected_experts
from dfdsl.lowering.operator_work import OFF_CHIP_TIERS, OperandRead, operand_reads


def _plain(x: Batch) -> Batch:
    """A numpy scalar as a Python float (a report's figure); an array as it is."""
    return float(x) if np.ndim(x) == 0 else x


def _value(work: Work, batch: Batch, context: Batch) -> Batch:
    """A decode step's `work` (constant, `B` and `B*S` terms) at a batch and a (possibly mean) context."""
    const, per_batch, per_batch_context = work.terms[:3]
    return const + per_batch * batch + per_batch_context * batch * context


@attrs.frozen
class TensorReads:
    """The reads of one declared off-chip weight by a step's operators."""

    nbytes: int
    """The whole tensor's bytes."""
    reads: tuple[tuple[Work, tuple[int, int] | None], ...]
    """Each operator's read: its bytes, and (experts E, top_k k) when it reads routed experts."""

    @property
    def routed(self) -> bool:
        return all(routing is not None for _, routing in self.reads)

    def bytes_read(self, batch: Batch) -> Batch:
        """The bytes a step at `batch` must read: the largest operator's read, at most the whole."""
        most: Batch = 0.0 * batch
        for nbytes, routing in self.reads:
            n = _value(nbytes, batch, 0)
            if routing is not None:
                n = n * expected_experts(*routing, batch)
            most = np.maximum(most, n)
        return np.minimum(most, self.nbytes)


@attrs.frozen
class Footprint:
    """The bytes a model holds and the bytes one decode step must read, at any batch and context."""

    param_bytes: int
    """Every weight's bytes, once (a tied weight is its storage's bytes, counted there)."""
    weights: tuple[TensorReads, ...]
    """The off-chip weights a step reads (and any declared input an operator reads: none in the
    bundled models, whose token ids only index the embedding)."""
    kv_read: Work
    """The KV-cache bytes a step must read, in B and B*S."""

    @property
    def expert_bytes(self) -> int:
        """The part of `param_bytes` in routed experts."""
        return sum(w.nbytes for w in self.weights if w.routed)

    def expert_fraction_read(self, batch: Batch) -> Batch:
        """The fraction of the expert bytes a step at `batch` reads (1.0 without experts)."""
        if not self.expert_bytes:
            return 1.0 + 0.0 * batch
        return _plain(sum((w.bytes_read(batch) for w in self.weights if w.routed), 0.0 * batch) / self.expert_bytes)

    def weight_bytes_read(self, batch: Batch) -> Batch:
        """The weight bytes a step at `batch` must read."""
        return _plain(sum((w.bytes_read(batch) for w in self.weights), 0.0 * batch))

    def kv_bytes_read(self, batch: Batch, context: Batch) -> Batch:
        return _value(self.kv_read, batch, context)

    def bytes_per_step(self, batch: Batch, context: Batch) -> Batch:
        """Everything a step at `batch` with `context` tokens cached must read: weights and KV cache."""
        return self.weight_bytes_read(batch) + self.kv_bytes_read(batch, context)


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


def footprint(module: ModuleOp) -> Footprint:
    """The footprint of a front-end `df` module (unsharded)."""
    graphs = [op for op in module.body.ops if isinstance(op, df.GraphOp)]
    if len(graphs) != 1 or graphs[0].tp.value.data != 1:
        raise ValueError("footprint() takes the front end's unsharded df module")
    graph = graphs[0]
    weights = []
    kv_read = ZERO
    for decl, reads in _reads_by_declaration(module, graph).items():
        if decl.result.type.tier_name not in OFF_CHIP_TIERS:
            continue
        if isinstance(decl, df.KvCacheOp):
            # Caches are read in full (attention); the largest read is the one a step must make.
            kv_read += max((r.nbytes for r in reads), key=lambda w: w.terms[::-1])
            continue
        whole = Work.of_bytes(decl.result.type).at(1, 0)
        weights.append(TensorReads(whole, tuple((r.nbytes, r.routing) for r in reads)))
    params = sum(op.result.type.num_bytes() for op in graph.body.block.ops
                 if isinstance(op, df.WeightOp) and op.tied_to is None)
    return Footprint(params, tuple(weights), kv_read)
