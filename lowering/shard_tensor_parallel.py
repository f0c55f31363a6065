"""Megatron-style tensor parallelism: rewrite a `df` module to the types one socket of N holds.

The split is decided by what each operator means. Attention is split by heads: the projections
feeding q, k and v are column-split, the caches keep their socket's KV heads, and the projection
reading the attention output is row-split and followed by a `df.all_reduce`. A gated MLP
(`mul(silu(x @ w_gate), x @ w_up) @ w_down`) and routed experts are split along the FFN width,
with an all-reduce after the row-split part; where two such partial sums are added (a MoE layer's
routed and shared experts), one all-reduce follows the add. Latent attention (MLA) splits its
heads but keeps the latent cache whole on every socket. The LM head is split over the vocabulary, so sampling becomes a
per-socket top-k, an all-gather of the candidates and a sample among them. Everything else is
replicated. Weights are split where they are declared: a layer argument's new type is carried to
the `df.weight`/`df.kv_cache` each `df.call` passes for it.

The graph's `parallel` plan (`df.Parallel`) chooses each part's split. `attention = data` splits the
batch instead: every socket holds the attention weights whole and its own sequences' caches, so
the graph's types become those of one socket's sequences (`df.GraphOp.sequences_per_socket`).
`dense = data` keeps the dense MLPs and the LM head whole on every socket. `experts = expert`
spreads the routed experts over the sockets (ceil(E / sockets) each): with data-parallel attention
each socket's tokens go to the experts' sockets and back through a `df.all_to_all` dispatch and
combine; with tensor-parallel attention every socket holds every token, so an all-reduce sums the
sockets' experts. A dimension that does not divide the sockets is padded to the next multiple
(heads, KV heads, widths, experts), the idle shards' bytes and FLOPs counted as a socket holds and
runs them, and a remark on stderr says so; with `pad = off` it is refused (E020).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import cast

from xdsl.context import Context
from xdsl.dialects.builtin import FloatAttr, FunctionType, IntegerAttr, ModuleOp, StringAttr, f64
from xdsl.ir import Block, BlockArgument, Operation, SSAValue
from xdsl.pattern_rewriter import PatternRewriter
from xdsl.rewriter import InsertPoint

from dfdsl.dialects import df, shapes
from dfdsl.dialects.shapes import Shape
from dfdsl.errors import HintedError
from dfdsl.lowering.stages import Stage, StagedPass


class ShardingError(HintedError, code="E020"):
    """The model does not divide over the sockets (heads, KV heads, FFN width, vocabulary):
    `problem` says which split fails, and the message adds what to do (`hint`)."""


MAX_SOCKETS = 1024
"""The largest socket count a hint considers (the largest a run may ask for)."""


def count_runs(counts: Sequence[int]) -> list[tuple[int, int]]:
    """Increasing counts as runs of consecutive ones, (first, last): [1, 2, 3, 8] -> [(1, 3), (8, 8)]."""
    runs: list[tuple[int, int]] = []
    for n in counts:
        if runs and n == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], n)
        else:
            runs.append((n, n))
    return runs


def counts_text(counts: Sequence[int], unit: str = "socket") -> str:
    """`1, 2 or 4 sockets`, `1 socket`; three or more consecutive counts as a range, both ends
    included: `5-8, 16 or 24 sockets`."""
    words: list[str] = []
    for first, last in count_runs(counts):
        words += [f"{first}-{last}"] if last - first >= 2 else [str(n) for n in range(first, last + 1)]
    listed = ", ".join(words[:-1]) + " or " + words[-1] if len(words) > 1 else "".join(words)
    return f"{listed} {unit}{'' if list(counts) == [1] else 's'}"


PADDING_ONLY = "padding would leave a socket nothing but padding"
"""Why a split that padding could not help is refused: fewer heads, KV heads or widths than sockets."""


@dataclass
class _Plan:
    """What sharding changes in one block (a layer body or the graph), worked out before any
    change is made so that an error leaves the module untouched."""

    sockets: int
    where: str
    block: Block
    parallel: df.Parallel = df.Parallel()
    new_types: dict[SSAValue, df.TensorType] = field(default_factory=dict)
    new_attrs: dict[df.OperatorBase, dict[str, int]] = field(default_factory=dict)
    reduced: list[df.OperatorBase] = field(default_factory=list)
    """Operators whose partial results are summed across sockets by a new all-reduce."""
    exchanged: list[df.MoeExpertsOp] = field(default_factory=list)
    """Expert-parallel experts of per-socket tokens: an all-to-all before (dispatch) and after (combine)."""
    remarks: list[str] = field(default_factory=list)
    """What was padded, for the user (a remark on stderr)."""

    def padded(self, width: int, what: str) -> int:
        """The share of `width` one socket holds: width / sockets, or if that is not whole and
        padding is on, the next whole number (with a remark); else a `ShardingError`. Padding is
        impossible where it would leave a socket nothing but padding (a width under the sockets)."""
        share = -(-width // self.sockets)
        if width % self.sockets:
            if not self.parallel.pad or width < self.sockets:
                why = "padding is off" if not self.parallel.pad else PADDING_ONLY
                raise self.fail(f"{what} has width {width}, which does not divide over {self.sockets} sockets "
                                f"({why})")
            self.remark(f"{what}: {width} padded to {share * self.sockets} ({share} per socket); the idle "
                        f"{share * self.sockets - width} are counted in the bytes and FLOPs")
        return share

    def remark(self, text: str) -> None:
        if text not in self.remarks:
            self.remarks.append(text)
    sampled: list[df.SampleOp] = field(default_factory=list)
    """Samples of vocabulary-split logits: each becomes a top-k, an all-gather and a sample."""

    def fail(self, message: str) -> ShardingError:
        return ShardingError(f"shard-tensor-parallel: {self.where}: {message}")

    def retype(self, value: SSAValue, dims: Shape) -> None:
        """Give a declared tensor (a block argument or a declaration) its per-socket shape."""
        owner = value.owner
        declared = isinstance(value, BlockArgument) and value.block is self.block
        if not declared and not isinstance(owner, df.DeclBase):
            computed_by = owner.name if isinstance(owner, Operation) else "an enclosing block"
            raise self.fail(
                f"a split operand is computed by {computed_by}, not declared; tensor parallelism "
                "splits declared weights and caches"
            )
        new_type = df.tensor_type(value.type).with_dims(dims)
        if self.new_types.setdefault(value, new_type).dims != dims:
            raise self.fail(
                f"a tensor of type {value.type} is shared by operators that split it differently"
            )

    def split(self, value: SSAValue, dim: int, what: str) -> None:
        """Divide dimension `dim` of a declared tensor by the socket count."""
        dims = df.tensor_type(value.type).dims
        width = dims[dim]
        if not isinstance(width, int):
            raise self.fail(f"{what} has width {width}, which is not a number and cannot be split")
        self.retype(value, dims[:dim] + (self.padded(width, what),) + dims[dim + 1 :])

    def column_split(self, linear: df.LinearOp, width: int) -> None:
        """Keep `width` output columns of a projection (its weight's dim 1, and its bias)."""
        rows = linear.w.type.dims[0]
        self.retype(linear.w, (rows, width))
        if linear.bias is not None:
            self.retype(linear.bias, (width,))

    def row_split(self, linear: df.LinearOp, what: str, rows: int | None = None) -> None:
        """Split a projection's weight by rows (`rows` of them per socket, when the split is
        decided elsewhere: heads) and sum its partial products across sockets."""
        if linear.bias is not None:
            raise self.fail(
                f"the {what} has a bias; a row-split projection would add it once per socket. "
                "Fold the bias into the next operator or run with sockets=1"
            )
        if rows is None:
            self.split(linear.w, 0, f"the input of the {what}")
        else:
            self.retype(linear.w, (rows, *linear.w.type.dims[1:]))
        self.reduced.append(linear)


_SingleInput = df.RopeOp | df.SiluOp | df.GeluOp
"""The operators `_producer` looks through: one input `x`, and the shape of it out."""


def _producer(value: SSAValue, through: tuple[type[_SingleInput], ...]) -> df.LinearOp | None:
    """The `df.linear` computing `value`, looking through the single-input operators `through`."""
    op = value.owner
    while isinstance(op, through):
        op = op.x.owner
    return op if isinstance(op, df.LinearOp) else None


def _only_consumer(value: SSAValue) -> df.LinearOp | None:
    """The `df.linear` that alone reads `value` as its input, if there is one."""
    uses = list(value.uses)
    if len(uses) == 1 and isinstance(user := uses[0].operation, df.LinearOp) and user.x is value:
        return user
    return None


def attention_shares(heads: int, kv_heads: int, sockets: int, pad: bool) -> tuple[int, int] | None:
    """The query heads and KV heads one socket holds, or None if they do not divide and padding is
    off or impossible. KV heads divide over the sockets, or are replicated when the sockets divide
    over them (a group of query heads then spans sockets, padded to a multiple of them); otherwise
    the KV heads are padded to a multiple of the sockets, each socket holding whole groups. Padding
    is impossible where a socket would hold no real head (a group smaller than the sockets it
    spans, fewer KV heads than sockets)."""
    group = heads // kv_heads
    if kv_heads % sockets == 0:
        return heads // sockets, kv_heads // sockets
    if sockets % kv_heads == 0:
        spans = sockets // kv_heads
        if group % spans == 0 or (pad and group >= spans):
            return -(-group // spans), 1
        return None
    if not pad or kv_heads < sockets:
        return None
    local_kv = -(-kv_heads // sockets)
    return group * local_kv, local_kv


def _plan_attention(op: df.AttentionOp, plan: _Plan) -> None:
    """Head-parallel attention; KV heads are replicated when there are fewer than sockets, and
    padded (with the query heads) when they do not divide."""
    n = plan.sockets
    heads = op.heads.value.data
    kv_heads = op.kv_heads.value.data

    shares = attention_shares(heads, kv_heads, n, plan.parallel.pad)
    if shares is None:
        why = "padding is off" if not plan.parallel.pad else PADDING_ONLY
        raise plan.fail(
            f"{n} sockets cannot split attention with {heads} heads and {kv_heads} KV heads: the "
            "heads must divide evenly over the sockets, and the KV heads over the sockets or the "
            f"sockets over the KV heads ({why})"
        )
    local_heads, local_kv = shares
    if local_heads * n != heads or (local_kv * n != kv_heads and n % kv_heads):
        kv_total = local_kv * n if n % kv_heads else kv_heads
        plan.remark(f"attention: {heads} heads and {kv_heads} KV heads padded to {local_heads * n} heads and "
                    f"{kv_total} KV heads ({local_heads} and {local_kv} per socket); the idle heads' weights, "
                    "cache and FLOPs are counted")
    # The attention shape rule, which the verifier applied, makes both head widths numbers.
    head_dim, v_dim = cast(int, op.k_cache.type.dims[3]), cast(int, op.v_cache.type.dims[3])
    for value, width, what in (
        (op.q, local_heads * head_dim, "query"),
        (op.k, local_kv * head_dim, "key"),
        (op.v, local_kv * v_dim, "value"),
    ):
        linear = _producer(value, (df.RopeOp,))
        if linear is None:
            raise plan.fail(f"the attention {what} is not computed by a df.linear, so it cannot be split by heads")
        plan.column_split(linear, width)
    for cache in (op.k_cache, op.v_cache):
        plan.retype(cache, cache.type.dims[:2] + (local_kv,) + cache.type.dims[3:])
    plan.new_attrs[op] = {"heads": local_heads, "kv_heads": local_kv}
    _plan_output_projection(op, plan, "attention output projection", local_heads * v_dim)


def _plan_mla_attention(op: df.MlaAttentionOp, plan: _Plan) -> None:
    """Head-parallel latent attention: the latent input and cache stay whole on every socket,
    as in real MLA tensor parallelism, since every head reads all of the latent."""
    n = plan.sockets
    heads = op.heads.value.data
    if heads % n and (not plan.parallel.pad or heads < n):
        why = "padding is off" if not plan.parallel.pad else PADDING_ONLY
        raise plan.fail(
            f"{n} sockets cannot split latent attention with {heads} heads ({why})"
        )
    local = plan.padded(heads, "latent attention heads")
    q_linear = _producer(op.q, (df.RopeOp,))
    if q_linear is None:
        raise plan.fail("the latent attention query is not computed by a df.linear, so it cannot be split by heads")
    q_width = q_linear.w.type.dims[1]
    up_width = op.kv_up.type.dims[1]
    if not isinstance(q_width, int) or not isinstance(up_width, int):
        raise plan.fail("the latent attention query's width must be a number")
    plan.column_split(q_linear, q_width // heads * local)
    plan.retype(op.kv_up, (op.kv_up.type.dims[0], up_width // heads * local))
    plan.new_attrs[op] = {"heads": local}
    _plan_output_projection(op, plan, "latent attention output projection", local * op.v_head.value.data)


def _plan_output_projection(op: df.AttentionOp | df.MlaAttentionOp, plan: _Plan, what: str, rows: int) -> None:
    """Row-split the projection reading an attention's heads, which each socket holds a share of."""
    linear = _only_consumer(op.result)
    if linear is None:
        raise plan.fail(f"{op.name} must be read by one df.linear (the {what}) to be split by heads")
    plan.row_split(linear, what, rows)


def _plan_gated_mlp(mul: df.MulOp, plan: _Plan) -> None:
    """FFN-parallel `mul(act(x @ w_gate), x @ w_up) @ w_down`; any other product stays replicated."""
    gate = _producer(mul.lhs, (df.SiluOp, df.GeluOp))
    up = _producer(mul.rhs, (df.SiluOp, df.GeluOp))
    down = _only_consumer(mul.result)
    if gate is None or up is None or down is None:
        return
    ffn = mul.result.type.dims[-1]
    if not isinstance(ffn, int):
        raise plan.fail("the MLP width (ffn) must be a number")
    share = plan.padded(ffn, "the MLP (ffn)")
    for linear in (gate, up):
        plan.column_split(linear, share)
    plan.row_split(down, "MLP down projection", share)


def _plan_moe_experts(op: df.MoeExpertsOp, plan: _Plan) -> None:
    """`tensor`: every expert split along its FFN width. `expert`: the experts spread over the
    sockets, exchanged with all-to-alls when each socket holds its own tokens. The router stays
    replicated."""
    if plan.parallel.experts == "data":
        return
    if plan.parallel.experts == "tensor":
        plan.split(op.gate, 2, "the experts' gate projection (expert ffn)")
        plan.split(op.up, 2, "the experts' up projection (expert ffn)")
        plan.split(op.down, 1, "the experts' down projection (expert ffn)")
        plan.reduced.append(op)
        return
    if plan.parallel.imbalance > plan.sockets:
        raise plan.fail(f"an imbalance of {plan.parallel.imbalance:g} over {plan.sockets} sockets would give the "
                        "busiest socket more than every token; it is at most the socket count")
    experts = cast(int, op.gate.type.dims[0])  # the moe_experts shape rule makes it a number
    held = plan.padded(experts, "the routed experts")
    for weight in (op.gate, op.up, op.down):
        plan.retype(weight, (held, *weight.type.dims[1:]))
    tokens_local = plan.parallel.data_parallel
    plan.new_attrs[op] = {"expert_shards": plan.sockets, "token_shards": plan.sockets if tokens_local else 1}
    if tokens_local:
        plan.exchanged.append(op)
    else:
        plan.reduced.append(op)


SAMPLE_CANDIDATES = 1
"""Candidates each socket offers a sample of split logits (`df.top_k`'s k). One is enough for
greedy decoding (the argmax) and for sampling from the whole distribution (the Gumbel-max trick:
the best of the noised logits is a sample), so only a top-k or top-p sampler would need more."""


def _plan_lm_head(op: df.LmHeadOp, plan: _Plan) -> None:
    """Column-split over the vocabulary. Each socket then holds a share of the logits, so a
    `df.sample` of them (directly or through light operators) would pick from that share alone:
    it becomes the socket's `df.top_k` of its share, a `df.all_gather` of every socket's
    candidates (values and indices), and the sample among those, as a real system does."""
    plan.split(op.w, 1, "the LM head (vocab)")
    values, seen = [op.result], set()
    while values:
        for use in values.pop().uses:
            user = use.operation
            if isinstance(user, df.SampleOp) and user not in plan.sampled:
                plan.sampled.append(user)
            elif isinstance(user, df.LightOperatorBase) and user not in seen:
                seen.add(user)
                values.append(user.result)


def _plan_block(block: Block, sockets: int, where: str, parallel: df.Parallel = df.Parallel()) -> _Plan:
    plan = _Plan(sockets, where, block, parallel)
    attention = parallel.attention == "tensor"
    dense = parallel.dense == "tensor"
    for op in block.ops:
        if isinstance(op, df.AttentionOp) and attention:
            _plan_attention(op, plan)
        elif isinstance(op, df.MlaAttentionOp) and attention:
            _plan_mla_attention(op, plan)
        elif isinstance(op, df.MulOp) and dense:
            _plan_gated_mlp(op, plan)
        elif isinstance(op, df.MoeExpertsOp):
            _plan_moe_experts(op, plan)
        elif isinstance(op, df.LmHeadOp) and dense:
            _plan_lm_head(op, plan)
    _plan_shared_sums(plan)
    return plan


def _plan_shared_sums(plan: _Plan) -> None:
    """One all-reduce for a sum of partial sums: where a `df.add` alone reads two results that
    would each be all-reduced (a MoE layer's routed experts and its shared expert), the add's
    result is all-reduced instead, as sum(a) + sum(b) = sum(a + b) across the sockets."""
    for op in plan.block.ops:
        if not isinstance(op, df.AddOp) or op.lhs is op.rhs:
            continue
        owners = [value.owner for value in (op.lhs, op.rhs)]
        alone = all(len(list(value.uses)) == 1 for value in (op.lhs, op.rhs))
        if alone and all(owner in plan.reduced for owner in owners):
            plan.reduced = [reduced for reduced in plan.reduced if reduced not in owners]
            plan.reduced.append(op)


def _plan_call_operands(graph: df.GraphOp, layer_plans: dict[str, _Plan], plan: _Plan) -> None:
    """Carry each layer argument's new type to the declaration a call passes for it."""
    for call in graph.body.block.ops:
        if not isinstance(call, df.CallOp):
            continue
        layer = layer_plans[call.callee.string_value()]  # the verifier checked it names a df.layer
        for operand, arg in zip(call.args, layer.block.args):
            if (new_type := layer.new_types.get(arg)) is not None:
                plan.retype(operand, new_type.dims)


def _apply(plan: _Plan, layers: dict[str, df.LayerOp], rewriter: PatternRewriter) -> None:
    """Retype the declared tensors, set the new head counts, add the all-reduces, and re-derive
    every operator's and call's result type from its operands."""
    for value, new_type in plan.new_types.items():
        rewriter.replace_value_with_new_type(value, new_type)
    for op, attrs in plan.new_attrs.items():
        for key, count in attrs.items():
            op.properties[key] = IntegerAttr(count, 64)
        if "expert_shards" in attrs:
            op.properties["imbalance"] = FloatAttr(plan.parallel.imbalance, f64)
    for op in plan.reduced:
        reduce = df.AllReduceOp(op.result, result_type=op.result.type)
        rewriter.insert(reduce, InsertPoint.after(op))
        rewriter.replace_uses_with_if(op.result, reduce.result, lambda use: use.operation is not reduce)
    for experts in plan.exchanged:
        _exchange(experts, plan, rewriter)
    for op in plan.block.ops:
        if isinstance(op, df.OperatorBase):
            _reinfer(op, plan, rewriter)
        elif isinstance(op, df.CallOp):
            layer = layers[op.callee.string_value()]
            for result, result_type in zip(op.res, layer.function_type.outputs.data):
                rewriter.replace_value_with_new_type(result, result_type)
    for sample in plan.sampled:
        top_k = _operator(df.TopKOp, sample.logits, k=SAMPLE_CANDIDATES)
        gather = _operator(df.AllGatherOp, top_k.result, sockets=plan.sockets)
        rewriter.insert([top_k, gather], InsertPoint.before(sample))
        sample.operands[0] = gather.result


def _operator(cls: type[df.OperatorBase], x: SSAValue, **int_attrs: int) -> df.OperatorBase:
    """A new one-operand operator on `x`, its result typed by its shape rule."""
    inferred = shapes.infer(cls.name.removeprefix("df."), [df.tensor_type(x.type).tensor_shape()], int_attrs)
    return cls(x, result_type=df.TensorType.make(inferred.shape, inferred.dtype), **int_attrs)


def _all_to_all(x: SSAValue, phase: str, top_k: int, imbalance: float) -> df.AllToAllOp:
    exchange = df.AllToAllOp(x, result_type=x.type, top_k=top_k)
    exchange.properties["phase"] = StringAttr(phase)
    exchange.properties["imbalance"] = FloatAttr(imbalance, f64)
    return exchange


def _exchange(experts: df.MoeExpertsOp, plan: _Plan, rewriter: PatternRewriter) -> None:
    """Dispatch the tokens to the experts' sockets before `experts` and combine them after."""
    top_k, imbalance = experts.top_k.value.data, plan.parallel.imbalance
    dispatch = _all_to_all(experts.x, "dispatch", top_k, imbalance)
    rewriter.insert(dispatch, InsertPoint.before(experts))
    experts.operands[0] = dispatch.result
    combine = _all_to_all(experts.result, "combine", top_k, imbalance)
    rewriter.insert(combine, InsertPoint.after(experts))
    rewriter.replace_uses_with_if(experts.result, combine.result, lambda use: use.operation is not combine)


def _reinfer(op: df.OperatorBase, plan: _Plan, rewriter: PatternRewriter) -> None:
    """Give an operator the result shape its rule derives from its (new) operands."""
    try:
        inferred = op.inferred_shape()
    except shapes.ShapeError as err:
        raise plan.fail(f"after splitting, {op.name} no longer fits its operands: {err.message}") from err
    if inferred.shape != op.result.type.dims:
        rewriter.replace_value_with_new_type(op.result, op.result.type.with_dims(inferred.shape))


def _refresh_signature(layer: df.LayerOp) -> None:
    """Make a layer's signature match its retyped arguments and returned values."""
    ret = layer.body.block.last_op
    outputs = ret.operand_types if isinstance(ret, df.ReturnOp) else layer.function_type.outputs.data
    layer.properties["function_type"] = FunctionType.from_lists(layer.body.block.arg_types, outputs)



@dataclass(frozen=True)
class ShardTensorParallel(StagedPass):
    """Shard the module over `sockets` sockets (0: the graph's own `sockets`) as the graph's
    `parallel` plan says, and set `tp`."""

    name = "shard-tensor-parallel"
    STAGES = {Stage.DF: Stage.SHARDED}

    sockets: int = 0
    pad: bool = True
    """Pad what does not divide the sockets, if the graph's `parallel` plan pads too (false: refuse)."""

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        self.expect(op)
        graph = df.the_graph(op, "shard-tensor-parallel")
        sockets = self.sockets or graph.sockets.value.data
        if sockets < 1:
            raise ShardingError(f"shard-tensor-parallel: sockets must be positive, got {sockets}")
        if sockets > 1:
            try:
                plans = _plans(op, graph, sockets, self.pad)
            except ShardingError as err:
                counts = counts_text(shardable_counts(op, pad=self.pad))
                raise ShardingError(err.problem, f"every split divides over {counts}") from None
            for remark in plans.remarks():
                print(f"remark: shard-tensor-parallel: {remark}", file=sys.stderr)
            _apply_plans(plans)
        # An explicit `sockets` is the degree asked for from now on: the graph says so, as it says tp.
        graph.properties["sockets"] = IntegerAttr(sockets, 64)
        graph.properties["tp"] = IntegerAttr(sockets, 64)


@dataclass
class _Plans:
    """What sharding changes in every layer and in the graph."""

    graph: df.GraphOp
    layers: dict[str, df.LayerOp]
    layer_plans: dict[str, _Plan]
    graph_plan: _Plan

    def remarks(self) -> list[str]:
        """What every plan padded, once each."""
        return list(dict.fromkeys(r for p in (*self.layer_plans.values(), self.graph_plan) for r in p.remarks))


def _plans(module: ModuleOp, graph: df.GraphOp, sockets: int, pad: bool = True) -> _Plans:
    """Plan every layer and the graph; raises `ShardingError` for the first split that fails."""
    layers = {layer.sym_name.data: layer for layer in module.ops if isinstance(layer, df.LayerOp)}
    parallel = replace(graph.plan, pad=graph.plan.pad and pad)
    layer_plans = {
        name: _plan_block(layer.body.block, sockets, f"layer @{name}", parallel) for name, layer in layers.items()
    }
    graph_plan = _plan_block(graph.body.block, sockets, f"graph @{graph.sym_name.data}", parallel)
    _plan_call_operands(graph, layer_plans, graph_plan)
    return _Plans(graph, layers, layer_plans, graph_plan)


def _apply_plans(plans: _Plans) -> None:
    """Every plan was made first, so that any error comes before any change."""
    rewriter = PatternRewriter(plans.graph)
    for name, layer in plans.layers.items():
        _apply(plans.layer_plans[name], plans.layers, rewriter)
        _refresh_signature(layer)
    _apply(plans.graph_plan, plans.layers, rewriter)


def per_socket_types(module: ModuleOp, sockets: int, pad: bool = True) -> dict[SSAValue, df.TensorType] | None:
    """The type one of `sockets` sockets holds of each declaration of the (unsharded) graph that
    sharding splits (the others are replicated whole), or None if a split does not divide.
    Nothing is changed."""
    graph = df.the_graph(module, "shard-tensor-parallel")
    if sockets == 1:
        return {}
    try:
        return dict(_plans(module, graph, sockets, pad).graph_plan.new_types)
    except ShardingError:
        return None


def shardable_counts(module: ModuleOp, limit: int = MAX_SOCKETS, pad: bool = True) -> list[int]:
    """The socket counts up to `limit` over which every split of the model divides (or, with
    `pad` and the graph's plan padding, can be padded)."""
    return [n for n in range(1, limit + 1) if per_socket_types(module, n, pad) is not None]
