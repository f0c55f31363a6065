"""The cost model of `df` operators: the work of one operator per invocation, on any target.

`operand_reads` says what an operator reads of each operand per invocation: a projection its
whole weight, an embedding only the rows of this step's tokens, attention its whole caches, routed
experts one expert's slice per expert the batch touches. It is the one definition of what a step
reads: `operator_work` turns it into an operator's bytes per memory tier (with its FLOPs and writes),
as `#cost.work` quantities affine in B and B*S (and in a prefill in B*P, B*P*S and B*P*P), per socket (or GPU), which `df-to-rdu` sums over a
stage's operators and `df-to-nv` over a GPU kernel's; and `dfdsl.footprint` takes from it the bytes
a step must read, the roofline's. Declared tensors are read from the tier they are placed in;
activations are on chip and cost no traffic here (each target's lowering adds what its kernels
move between them). A MoE experts operator states one expert's bytes and the routing instead,
since which experts a step reads depends on the batch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import attrs
from xdsl.ir import Block, BlockArgument, SSAValue
from xdsl.utils.exceptions import DiagnosticException

from dfdsl.dialects import df
from dfdsl.dialects.cost import ZERO, Work
from dfdsl.dialects.target_ops import ExpertWork

OFF_CHIP_TIERS = ("hbm", "ddr")


@attrs.frozen
class OperatorWork:
    """The work of one operator or stage per invocation: FLOPs, bytes by `target_ops.TRAFFIC`
    key, and for MoE experts (experts, top_k, one expert's bytes, the experts' tier)."""

    flops: Work = ZERO
    traffic: Mapping[str, Work] = attrs.field(factory=dict)
    moe: ExpertWork | None = None

    def __add__(self, other: OperatorWork) -> OperatorWork:
        keys = dict.fromkeys([*self.traffic, *other.traffic])
        return OperatorWork(
            self.flops + other.flops,
            {k: self.traffic.get(k, ZERO) + other.traffic.get(k, ZERO) for k in keys},
            self.moe or other.moe,
        )


def _tier(value: SSAValue) -> str:
    """The memory tier of a declared tensor ("" for an activation); a loop's slice of a stacked
    tensor lives where the stacked tensor does."""
    tier = df.tensor_type(value.type).tier_name
    if tier or not isinstance(value, BlockArgument):
        return tier
    loop = value.owner.parent_op() if isinstance(value.owner, Block) else None
    if isinstance(loop, df.LoopOp) and value.index >= len(loop.carried):
        return _tier(loop.stacked[value.index - len(loop.carried)])
    return tier


@attrs.frozen
class OperandRead:
    """What an operator reads of one operand per invocation: `nbytes` of `value`, or, with
    `routing` = (experts, top_k), `nbytes` of each expert the batch routes to."""

    value: SSAValue
    nbytes: Work
    routing: tuple[int, int] | None = None


def moved(direction: str, tier: str, nbytes: Work) -> OperatorWork:
    """`nbytes` read or written in `tier`; nothing when the tier is on chip."""
    if tier not in OFF_CHIP_TIERS:
        return OperatorWork()
    return OperatorWork(traffic={f"{tier}_{direction}": nbytes})


def _whole(values: Sequence[SSAValue]) -> list[OperandRead]:
    """Each of `values` read once in full."""
    return [OperandRead(v, Work.of_bytes(df.tensor_type(v.type))) for v in values]


def _elements(value: SSAValue, drop_last: int = 0) -> Work:
    dims = df.tensor_type(value.type).dims
    return Work.of_elements(dims[: len(dims) - drop_last])


def _size(value: SSAValue, index: int) -> int:
    """Dimension `index` of `value`'s type, which a cost rule needs as a number (a weight's width,
    a cache's head width)."""
    dim = df.tensor_type(value.type).dims[index]
    if not isinstance(dim, int):
        raise DiagnosticException(f"no work rule for a tensor whose dimension {index} is {dim}, not a number")
    return dim


def _projection_flops(w: SSAValue, bias: SSAValue | None, result: SSAValue) -> OperatorWork:
    """x[..., K] @ w[K, N] (+ bias): 2*K*N FLOPs per row of the result (+ N for the bias). Counted
    on the result's rows, since an LM head in a prefill classifies only the last prompt position of
    each sequence."""
    flops = _elements(result, drop_last=1) * (2 * _size(w, 0) * _size(w, 1)) + (_elements(result) if bias else ZERO)
    return OperatorWork(flops)


def _token_pairs(query: SSAValue) -> tuple[Work, Work]:
    """(query token, key token) pairs an attention scores, split into those with a cached key and
    those within this pass. A decode step's query sees S cached tokens and itself: B*S + B. A
    prefill's P query tokens see the S cached ones and, causally, the prompt up to themselves:
    B*P*S + B*P*(P+1)/2. The second is returned doubled (2B or B*P*P + B*P), to stay whole."""
    rows = df.tensor_type(query.type).dims[:-1]
    cached = Work.of_elements((*rows, "S"))
    if "P" not in rows:
        return cached, Work.of_elements(rows) * 2
    return cached, Work.make(per_prompt=1, per_prompt_pair=1)


def _attention(op: df.AttentionOp) -> OperatorWork:
    """Scores and weighted sum per (query, key) pair per head, 2*H*(D+Dv) FLOPs (`_token_pairs`:
    S + 1 pairs per sequence in a decode step); this pass's keys and values appended to the caches."""
    per_pair = 2 * op.heads.value.data * (_size(op.k_cache, 3) + _size(op.v_cache, 3))
    cached, new_twice = _token_pairs(op.q)
    work = OperatorWork(cached * per_pair + new_twice * (per_pair // 2))
    for new, cache in ((op.k, op.k_cache), (op.v, op.v_cache)):
        work += moved("write", _tier(cache), Work.of_bytes(new.type))
    return work


def _mla_attention(op: df.MlaAttentionOp) -> OperatorWork:
    """Latent attention with absorbed up-projections (latent L, rope r, nope n, value width v,
    H heads): per query token 2H(n*L + L*v) FLOPs, and per (query, key) pair (`_token_pairs`)
    2H((L+r) + L), so a decode step costs 2H(n*L + (S+1)(L+r) + (S+1)L + L*v) per sequence; the
    new latents appended to the cache."""
    heads, rope, v_head = op.heads.value.data, op.rope_dim.value.data, op.v_head.value.data
    latent = _size(op.cache, 2) - rope
    nope = _size(op.q, -1) // heads - rope
    per_pair = 2 * heads * ((latent + rope) + latent)
    per_query = 2 * heads * (nope * latent + latent * v_head)
    cached, new_twice = _token_pairs(op.q)
    flops = cached * per_pair + new_twice * (per_pair // 2) + _elements(op.q, drop_last=1) * per_query
    return OperatorWork(flops) + moved("write", _tier(op.cache), Work.of_bytes(op.kv.type))


def _expert_slices(op: df.MoeExpertsOp) -> list[OperandRead]:
    """One expert's slice of the gate, up and down weights, per expert the batch touches."""
    routing = (_size(op.gate, 0), op.top_k.value.data)
    return [OperandRead(w, Work.of_bytes(w.type.with_dims(w.type.dims[1:])), routing)
            for w in (op.gate, op.up, op.down)]


def operand_reads(op: df.OperatorBase) -> list[OperandRead]:
    """What `op` reads of its operands per invocation (activations among them cost nothing: they
    are on chip unless a target's lowering says otherwise)."""
    if isinstance(op, df.ProjectionBase):
        return _whole([op.w] if op.bias is None else [op.w, op.bias])
    if isinstance(op, df.MatmulOp):
        return _whole([op.rhs] if op.bias is None else [op.rhs, op.bias])
    if isinstance(op, df.EmbeddingOp):
        # A gather: only the rows of this step's tokens are read.
        return [OperandRead(op.table, Work.of_bytes(op.result.type))]
    if isinstance(op, df.AttentionOp):
        return _whole([op.k_cache, op.v_cache])
    if isinstance(op, df.MlaAttentionOp):
        return _whole([op.cache, op.kv_up])
    if isinstance(op, df.MoeExpertsOp):
        return _expert_slices(op)
    if isinstance(op, df.LightOperatorBase):
        return _whole(op.operands)
    return []


def _flops(op: df.OperatorBase) -> OperatorWork:
    """An operator's FLOPs, and the writes to the KV caches of the attention operators."""
    if isinstance(op, df.ProjectionBase):
        return _projection_flops(op.w, op.bias, op.result)
    if isinstance(op, df.MatmulOp):
        return _projection_flops(op.rhs, op.bias, op.result)
    if isinstance(op, df.EmbeddingOp):
        return OperatorWork()
    if isinstance(op, df.AttentionOp):
        return _attention(op)
    if isinstance(op, df.MlaAttentionOp):
        return _mla_attention(op)
    if isinstance(op, df.MoeExpertsOp):
        # Each token through top_k SwiGLU experts: 2*k*3*H*F FLOPs per token.
        return OperatorWork(_elements(op.x) * (2 * op.top_k.value.data * 3 * _size(op.gate, 2)))
    if isinstance(op, df.SampleOp | df.TopKOp):
        return OperatorWork(_elements(op.logits))  # one pass over the logits (or the candidates)
    if isinstance(op, df.LightOperatorBase):
        return OperatorWork(_elements(op.result) * op.FLOPS_PER_ELEMENT)
    raise DiagnosticException(f"no work rule for {op.name}")


def operator_work(op: df.OperatorBase, activations: str = "sram") -> OperatorWork:
    """The work of one `df` operator per invocation, per socket; `activations` is the graph's tier.
    Routed experts state one expert's bytes (`expert_read`) and the routing, not their reads."""
    work = _flops(op)
    expert_bytes, routing, expert_tier = ZERO, None, ""
    for read in operand_reads(op):
        if read.routing is None:
            work += moved("read", _tier(read.value), read.nbytes)
        else:
            expert_bytes, routing = expert_bytes + read.nbytes, read.routing
            expert_tier = expert_tier or _tier(read.value) or activations
    if routing is not None:
        work += OperatorWork(moe=(*routing, expert_bytes, expert_tier))
    return work
