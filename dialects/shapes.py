"""Shape and dtype rules of the dataflow operators, shared by the front end and the `df` verifiers.

A shape is a tuple of dimensions; a dimension is an int or one of the symbolic sizes a step leaves
open: ``B`` (batch) and ``S`` (context length), and in a prefill ``P``, the prompt tokens each
sequence processes in one pass (an activation of a prefill is `[B, P, ...]`: every prompt token
of every sequence). Each rule takes the operand
shapes and dtypes and the operator's integer attributes and returns the result's shape and dtype,
or raises `ShapeError` naming the operand at fault, so the front end can point at it in the source.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import attrs

Dim = int | str
Shape = tuple[Dim, ...]

SYMBOLIC_DIMS = ("B", "S", "P")
"""`B` is the batch (sequences decoded together); `S` the context length already in the KV cache;
`P` the prompt tokens of each sequence that one prefill pass processes."""

PROMPT = "P"


def with_prompt(shape: Shape) -> Shape:
    """The shape of a per-token tensor in a prefill: `P` right after the batch `B`
    (`[B, 4096]` -> `[B, P, 4096]`, `[B]` -> `[B, P]`); a shape without `B`, or that already has
    `P`, is unchanged."""
    if "B" not in shape or PROMPT in shape:
        return shape
    at = shape.index("B") + 1
    return shape[:at] + (PROMPT,) + shape[at:]

DTYPE_BYTES: dict[str, int] = {
    "bf16": 2,
    "fp16": 2,
    "fp32": 4,
    "fp8": 1,
    "int8": 1,
    "int32": 4,
}

TIERS = ("sram", "hbm", "ddr")


@attrs.frozen
class TensorShape:
    shape: Shape
    dtype: str

    def __str__(self) -> str:
        return f"{self.dtype}[{', '.join(str(d) for d in self.shape)}]"


class ShapeError(Exception):
    """An operator's operands do not fit its rule; `operand` is the index at fault (or None)."""

    def __init__(self, message: str, operand: int | None = None):
        super().__init__(message)
        self.message = message
        self.operand = operand


def _fmt(shape: Shape) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def _rank(t: TensorShape, rank: int, what: str, index: int) -> None:
    if len(t.shape) != rank:
        raise ShapeError(f"{what} must have rank {rank}, got {_fmt(t.shape)}", index)


def _same_dtype(ts: Sequence[TensorShape], first: int = 0) -> None:
    for i, t in enumerate(ts[first + 1 :], start=first + 1):
        if t.dtype != ts[first].dtype:
            raise ShapeError(
                f"dtype mismatch: operand {i + 1} is {t.dtype}, operand {first + 1} is {ts[first].dtype}",
                i,
            )


def _count(ops: Sequence[TensorShape], n: int | tuple[int, int], name: str) -> None:
    lo, hi = (n, n) if isinstance(n, int) else n
    if not lo <= len(ops) <= hi:
        want = str(lo) if lo == hi else f"{lo} to {hi}"
        raise ShapeError(f"{name} takes {want} operands, got {len(ops)}")


def _int_attr(attrs_: Mapping[str, int], key: str, name: str) -> int:
    if key not in attrs_:
        raise ShapeError(f"{name} needs the attribute `{key}`")
    value = attrs_[key]
    if value <= 0:
        raise ShapeError(f"{name}: `{key}` must be positive, got {value}")
    return value


def _elementwise(name: str, n: int) -> Callable[..., TensorShape]:
    def rule(ops: Sequence[TensorShape], attrs_: Mapping[str, int]) -> TensorShape:
        _count(ops, n, name)
        for i, t in enumerate(ops[1:], start=1):
            if t.shape != ops[0].shape:
                raise ShapeError(
                    f"{name}: operand {i + 1} has shape {_fmt(t.shape)}, operand 1 has {_fmt(ops[0].shape)}",
                    i,
                )
        _same_dtype(ops)
        return ops[0]

    return rule


def _projection(name: str) -> Callable[..., TensorShape]:
    """x[..., K] times w[K, N] (plus an optional bias[N]) gives [..., N]."""

    def rule(ops: Sequence[TensorShape], attrs_: Mapping[str, int]) -> TensorShape:
        _count(ops, (2, 3), name)
        x, w = ops[0], ops[1]
        if len(x.shape) < 1:
            raise ShapeError(f"{name}: the input must have rank 1 or more", 0)
        _rank(w, 2, f"{name}: the weight", 1)
        if x.shape[-1] != w.shape[0]:
            raise ShapeError(
                f"{name}: inner dimensions differ: input {_fmt(x.shape)} has {x.shape[-1]}, "
                f"weight {_fmt(w.shape)} has {w.shape[0]}",
                1,
            )
        if len(ops) == 3 and ops[2].shape != (w.shape[1],):
            raise ShapeError(
                f"{name}: the bias must be [{w.shape[1]}], got {_fmt(ops[2].shape)}", 2
            )
        _same_dtype(ops)
        return TensorShape(x.shape[:-1] + (w.shape[1],), x.dtype)

    return rule


def _norm(name: str) -> Callable[..., TensorShape]:
    def rule(ops: Sequence[TensorShape], attrs_: Mapping[str, int]) -> TensorShape:
        _count(ops, (2, 3), name)
        x = ops[0]
        for i, w in enumerate(ops[1:], start=1):
            if w.shape != (x.shape[-1],):
                raise ShapeError(
                    f"{name}: the scale must be [{x.shape[-1]}], got {_fmt(w.shape)}", i
                )
        _same_dtype(ops)
        return x

    return rule


def _embedding(ops: Sequence[TensorShape], attrs_: Mapping[str, int]) -> TensorShape:
    _count(ops, 2, "embedding")
    ids, table = ops
    if ids.dtype not in ("int32", "int8"):
        raise ShapeError(f"embedding: token ids must be an integer type, got {ids.dtype}", 0)
    _rank(table, 2, "embedding: the table", 1)
    return TensorShape(ids.shape + (table.shape[1],), table.dtype)


def _rope(ops: Sequence[TensorShape], attrs_: Mapping[str, int]) -> TensorShape:
    _count(ops, 1, "rope")
    head_dim = _int_attr(attrs_, "head_dim", "rope")
    last = ops[0].shape[-1]
    if isinstance(last, int) and last % head_dim:
        raise ShapeError(f"rope: width {last} is not a multiple of head_dim {head_dim}", 0)
    return ops[0]


def _attention(ops: Sequence[TensorShape], attrs_: Mapping[str, int]) -> TensorShape:
    """q[B, H*D], k_new[B, Hkv*D], v_new[B, Hkv*Dv], k_cache[B, S, Hkv, D], v_cache[B, S, Hkv, Dv].

    In a prefill the query, key and value carry the prompt, q[B, P, H*D] and so on: every prompt
    token attends to the cache and, causally, to the prompt tokens before it."""
    _count(ops, 5, "attention")
    q, k, v, kc, vc = ops
    heads = _int_attr(attrs_, "heads", "attention")
    kv_heads = _int_attr(attrs_, "kv_heads", "attention")
    if heads % kv_heads:
        raise ShapeError(f"attention: heads ({heads}) must be a multiple of kv_heads ({kv_heads})")
    _rank(kc, 4, "attention: the key cache", 3)
    _rank(vc, 4, "attention: the value cache", 4)
    batch, _, cache_heads, head_dim = kc.shape
    v_dim = vc.shape[3]
    if cache_heads != kv_heads:
        raise ShapeError(
            f"attention: the key cache holds {cache_heads} heads, kv_heads is {kv_heads}", 3
        )
    if vc.shape[:3] != kc.shape[:3]:
        raise ShapeError(
            f"attention: value cache {_fmt(vc.shape)} does not match key cache {_fmt(kc.shape)}", 4
        )
    expect = (
        (q, heads, head_dim, 0, "query"),
        (k, kv_heads, head_dim, 1, "new key"),
        (v, kv_heads, v_dim, 2, "new value"),
    )
    if not isinstance(head_dim, int) or not isinstance(v_dim, int):
        raise ShapeError("attention: the caches' head dimensions must be numbers", 3)
    rows = _token_rows(q, batch)
    for t, n, d, i, what in expect:
        if t.shape != (*rows, n * d):
            raise ShapeError(
                f"attention: the {what} must be {_fmt((*rows, n * d))} ({n} heads of {d}), "
                f"got {_fmt(t.shape)}",
                i,
            )
    _same_dtype(ops)
    return TensorShape((*rows, heads * v_dim), q.dtype)


def _token_rows(q: TensorShape, batch: Dim) -> Shape:
    """The leading dimensions of an attention's query: its cache's batch, then `P` in a prefill."""
    return (batch, PROMPT) if q.shape[:2] == (batch, PROMPT) else (batch,)


def _mla_attention(ops: Sequence[TensorShape], attrs_: Mapping[str, int]) -> TensorShape:
    """Multi-head latent attention (DeepSeek), weights absorbed: the cache holds one latent vector
    plus a rotary key per token. q[B, H*(nope+rope)], kv[B, latent+rope],
    kv_up[latent, H*(nope+v_head)], cache[B, S, latent+rope] -> [B, H*v_head]; in a prefill q,
    kv and the result carry the prompt after B, as in `attention`."""
    _count(ops, 4, "mla_attention")
    q, kv, kv_up, cache = ops
    heads = _int_attr(attrs_, "heads", "mla_attention")
    rope = _int_attr(attrs_, "rope_dim", "mla_attention")
    v_head = _int_attr(attrs_, "v_head", "mla_attention")
    _rank(cache, 3, "mla_attention: the latent cache", 3)
    _rank(kv_up, 2, "mla_attention: the up-projection", 2)
    width = cache.shape[2]
    if not isinstance(width, int) or width <= rope:
        raise ShapeError(f"mla_attention: cache width {width} must exceed rope_dim {rope}", 3)
    latent = width - rope
    rows = _token_rows(q, cache.shape[0])
    if kv.shape != (*rows, width):
        raise ShapeError(
            f"mla_attention: the new latent must be {_fmt((*rows, width))}, got {_fmt(kv.shape)}", 1
        )
    q_width = q.shape[-1]
    if not isinstance(q_width, int) or q_width % heads or q_width // heads <= rope:
        raise ShapeError(
            f"mla_attention: query width {q_width} is not {heads} heads of more than {rope}", 0
        )
    nope = q_width // heads - rope
    if kv_up.shape != (latent, heads * (nope + v_head)):
        raise ShapeError(
            f"mla_attention: the up-projection must be [{latent}, {heads * (nope + v_head)}], "
            f"got {_fmt(kv_up.shape)}",
            2,
        )
    _same_dtype(ops)
    return TensorShape((*rows, heads * v_head), q.dtype)


def _lm_head(ops: Sequence[TensorShape], attrs_: Mapping[str, int]) -> TensorShape:
    """The classifier scores the token that follows each sequence: in a prefill, x[B, P, H] gives
    the logits of the last prompt position only, [B, V] (serving stacks gather that position
    before the LM head rather than classify every prompt token)."""
    logits = _projection("lm_head")(ops, attrs_)
    return TensorShape(tuple(d for d in logits.shape if d != PROMPT), logits.dtype)


def _sample(ops: Sequence[TensorShape], attrs_: Mapping[str, int]) -> TensorShape:
    _count(ops, 1, "sample")
    return TensorShape(ops[0].shape[:-1], "int32")


CANDIDATE_DTYPE = "int32"
"""A candidate of `top_k` is two int32 words: its logit's bits (as an fp32) and its vocabulary index."""


def _top_k(ops: Sequence[TensorShape], attrs_: Mapping[str, int]) -> TensorShape:
    """logits[..., V] -> the `k` largest with their indices, int32[..., 2k] (a value and an index each)."""
    _count(ops, 1, "top_k")
    k = _int_attr(attrs_, "k", "top_k")
    width = ops[0].shape[-1] if ops[0].shape else None
    if not isinstance(width, int) or k > width:
        raise ShapeError(f"top_k: k ({k}) must not exceed the logits' width, {width}", 0)
    return TensorShape((*ops[0].shape[:-1], 2 * k), CANDIDATE_DTYPE)


def _all_gather(ops: Sequence[TensorShape], attrs_: Mapping[str, int]) -> TensorShape:
    """x[..., n] on each of `sockets` sockets -> every socket's x side by side, [..., n * sockets]."""
    _count(ops, 1, "all_gather")
    sockets = _int_attr(attrs_, "sockets", "all_gather")
    width = ops[0].shape[-1] if ops[0].shape else None
    if not isinstance(width, int):
        raise ShapeError(f"all_gather: the last dimension must be a number, got {width}", 0)
    return TensorShape((*ops[0].shape[:-1], width * sockets), ops[0].dtype)


def _moe_router(ops: Sequence[TensorShape], attrs_: Mapping[str, int]) -> TensorShape:
    scores = _projection("moe_router")(ops, attrs_)
    top_k = _int_attr(attrs_, "top_k", "moe_router")
    experts = scores.shape[-1]
    if isinstance(experts, int) and top_k > experts:
        raise ShapeError(f"moe_router: top_k ({top_k}) exceeds the {experts} experts", 1)
    return scores


def _moe_experts(ops: Sequence[TensorShape], attrs_: Mapping[str, int]) -> TensorShape:
    """x[B, H], scores[B, E], gate[E, H, F], up[E, H, F], down[E, F, H] -> [B, H]."""
    _count(ops, 5, "moe_experts")
    x, scores, gate, up, down = ops
    _int_attr(attrs_, "top_k", "moe_experts")
    for t, i, what in ((gate, 2, "gate"), (up, 3, "up"), (down, 4, "down")):
        _rank(t, 3, f"moe_experts: the {what} weights", i)
    experts, hidden, ffn = gate.shape
    if scores.shape[-1] != experts:
        raise ShapeError(
            f"moe_experts: the scores must cover the {experts} experts, got {_fmt(scores.shape)}", 1
        )
    if x.shape[-1] != hidden:
        raise ShapeError(f"moe_experts: input width {x.shape[-1]} is not hidden {hidden}", 0)
    if up.shape != gate.shape:
        raise ShapeError(f"moe_experts: up {_fmt(up.shape)} differs from gate {_fmt(gate.shape)}", 3)
    if down.shape != (experts, ffn, hidden):
        raise ShapeError(
            f"moe_experts: down must be [{experts}, {ffn}, {hidden}], got {_fmt(down.shape)}", 4
        )
    _same_dtype(ops)
    return x


RULES: dict[str, Callable[[Sequence[TensorShape], Mapping[str, int]], TensorShape]] = {
    "embedding": _embedding,
    "linear": _projection("linear"),
    "matmul": _projection("matmul"),
    "rmsnorm": _norm("rmsnorm"),
    "layernorm": _norm("layernorm"),
    "rope": _rope,
    "attention": _attention,
    "mla_attention": _mla_attention,
    "softmax": _elementwise("softmax", 1),
    "silu": _elementwise("silu", 1),
    "gelu": _elementwise("gelu", 1),
    "mul": _elementwise("mul", 2),
    "add": _elementwise("add", 2),
    "all_reduce": _elementwise("all_reduce", 1),
    "all_gather": _all_gather,
    "top_k": _top_k,
    "lm_head": _lm_head,
    "sample": _sample,
    "moe_router": _moe_router,
    "moe_experts": _moe_experts,
}
"""Operator name (without the `df.` prefix) to its rule."""

OPERATOR_ATTRS: dict[str, tuple[str, ...]] = {
    "rope": ("head_dim",),
    "attention": ("heads", "kv_heads"),
    "mla_attention": ("heads", "rope_dim", "v_head"),
    "moe_router": ("top_k",),
    "moe_experts": ("top_k",),
    "top_k": ("k",),
    "all_gather": ("sockets",),
}
"""The integer attributes each operator takes (all required); operators not listed take none."""


def infer(op: str, operands: Sequence[TensorShape], attrs_: Mapping[str, int]) -> TensorShape:
    return RULES[op](operands, attrs_)


def num_elements(shape: Shape, sizes: Mapping[str, int]) -> int:
    n = 1
    for d in shape:
        n *= d if isinstance(d, int) else sizes[d]
    return n
