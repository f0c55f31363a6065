"""Tiny `df` modules for tests, built in Python exactly as docs/ir.md lays a model out.

`tiny_llama` is a Llama-style decoder stack (GQA attention, SwiGLU MLP); `tiny_moe` swaps the
MLP for a routed mixture of experts; `tiny_mla` is DeepSeek-style (multi-head latent attention,
mixture of routed experts plus a shared expert). Every builder takes the number of layers and `TinyConfig` fields as keyword
overrides (`tiny_llama(layers=3, kv_heads=1, sockets=2)`), and returns a verified `ModuleOp`:
layers first, then one `df.graph` that declares each layer's own weights and caches
(`layers.INDEX.NAME`) just before calling it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Block, SSAValue

from dfdsl.dialects import df, shapes
from dfdsl.dialects.shapes import Shape


@dataclass(frozen=True)
class TinyConfig:
    """Hyperparameters of the tiny models, and the run they are written for."""

    hidden: int = 64
    heads: int = 4
    kv_heads: int = 2
    head_dim: int = 16
    ffn: int = 128
    vocab: int = 100
    experts: int = 4
    top_k: int = 2
    expert_ffn: int = 32
    shared_ffn: int = 32
    latent: int = 32
    nope_dim: int = 16
    rope_dim: int = 8
    v_head: int = 16
    dtype: str = "bf16"
    batch: int = 1
    context: int = 128
    tokens: int = 4
    sockets: int = 1
    weight_tier: str = "hbm"
    cache_tier: str = "hbm"
    tied_head: bool = False
    """The LM head is a view of the embedding table (`tied_to`), as in Gemma 2."""

    def tensor(self, shape: Shape, tier: str = "") -> df.TensorType:
        return df.TensorType.make(shape, self.dtype, tier)


class _Emitter:
    """Appends operators to a block, each result typed by the operator's shape rule."""

    def __init__(self, block: Block):
        self.block = block

    def __call__(self, operator: str, *inputs: SSAValue, **int_attrs: int) -> SSAValue:
        inferred = shapes.infer(operator, [df.tensor_type(v.type).tensor_shape() for v in inputs], int_attrs)
        op = df.OPERATORS[operator](
            *inputs, result_type=df.TensorType.make(inferred.shape, inferred.dtype), **int_attrs
        )
        self.block.add_op(op)
        return op.result


Values = Mapping[str, SSAValue]
Part = Callable[[_Emitter, Values, SSAValue, TinyConfig], SSAValue]
"""One half of a decoder layer: (emit, layer arguments by name, input activation, config) -> output."""


def _gqa_weights(c: TinyConfig) -> dict[str, Shape]:
    return {
        "attn_norm": (c.hidden,),
        "wq": (c.hidden, c.heads * c.head_dim),
        "wk": (c.hidden, c.kv_heads * c.head_dim),
        "wv": (c.hidden, c.kv_heads * c.head_dim),
        "wo": (c.heads * c.head_dim, c.hidden),
    }


def _gqa_caches(c: TinyConfig) -> dict[str, Shape]:
    return {
        "k_cache": ("B", "S", c.kv_heads, c.head_dim),
        "v_cache": ("B", "S", c.kv_heads, c.head_dim),
    }


def _gqa_attention(emit: _Emitter, a: Values, x: SSAValue, c: TinyConfig) -> SSAValue:
    h = emit("rmsnorm", x, a["attn_norm"])
    q = emit("rope", emit("linear", h, a["wq"]), head_dim=c.head_dim)
    k = emit("rope", emit("linear", h, a["wk"]), head_dim=c.head_dim)
    v = emit("linear", h, a["wv"])
    attn = emit("attention", q, k, v, a["k_cache"], a["v_cache"], heads=c.heads, kv_heads=c.kv_heads)
    return emit("add", x, emit("linear", attn, a["wo"]))


def _mla_weights(c: TinyConfig) -> dict[str, Shape]:
    return {
        "attn_norm": (c.hidden,),
        "wq": (c.hidden, c.heads * (c.nope_dim + c.rope_dim)),
        "wkv_a": (c.hidden, c.latent + c.rope_dim),
        "kv_up": (c.latent, c.heads * (c.nope_dim + c.v_head)),
        "wo": (c.heads * c.v_head, c.hidden),
    }


def _mla_caches(c: TinyConfig) -> dict[str, Shape]:
    return {"kv_cache": ("B", "S", c.latent + c.rope_dim)}


def _mla_attention(emit: _Emitter, a: Values, x: SSAValue, c: TinyConfig) -> SSAValue:
    h = emit("rmsnorm", x, a["attn_norm"])
    q = emit("rope", emit("linear", h, a["wq"]), head_dim=c.nope_dim + c.rope_dim)
    kv = emit("linear", h, a["wkv_a"])
    attn = emit(
        "mla_attention", q, kv, a["kv_up"], a["kv_cache"],
        heads=c.heads, rope_dim=c.rope_dim, v_head=c.v_head,
    )
    return emit("add", x, emit("linear", attn, a["wo"]))


def _dense_weights(c: TinyConfig) -> dict[str, Shape]:
    return {
        "ffn_norm": (c.hidden,),
        "w_gate": (c.hidden, c.ffn),
        "w_up": (c.hidden, c.ffn),
        "w_down": (c.ffn, c.hidden),
    }


def _dense_mlp(emit: _Emitter, a: Values, x: SSAValue, c: TinyConfig) -> SSAValue:
    h = emit("rmsnorm", x, a["ffn_norm"])
    gated = emit("mul", emit("silu", emit("linear", h, a["w_gate"])), emit("linear", h, a["w_up"]))
    return emit("add", x, emit("linear", gated, a["w_down"]))


def _moe_weights(c: TinyConfig) -> dict[str, Shape]:
    return {
        "ffn_norm": (c.hidden,),
        "router": (c.hidden, c.experts),
        "experts_gate": (c.experts, c.hidden, c.expert_ffn),
        "experts_up": (c.experts, c.hidden, c.expert_ffn),
        "experts_down": (c.experts, c.expert_ffn, c.hidden),
    }


def _routed_experts(emit: _Emitter, a: Values, h: SSAValue, c: TinyConfig) -> SSAValue:
    scores = emit("moe_router", h, a["router"], top_k=c.top_k)
    return emit(
        "moe_experts", h, scores, a["experts_gate"], a["experts_up"], a["experts_down"],
        top_k=c.top_k,
    )


def _moe_mlp(emit: _Emitter, a: Values, x: SSAValue, c: TinyConfig) -> SSAValue:
    return emit("add", x, _routed_experts(emit, a, emit("rmsnorm", x, a["ffn_norm"]), c))


def _shared_moe_weights(c: TinyConfig) -> dict[str, Shape]:
    return _moe_weights(c) | {
        "shared_gate": (c.hidden, c.shared_ffn),
        "shared_up": (c.hidden, c.shared_ffn),
        "shared_down": (c.shared_ffn, c.hidden),
    }


def _shared_moe_mlp(emit: _Emitter, a: Values, x: SSAValue, c: TinyConfig) -> SSAValue:
    """DeepSeek's MoE: routed experts plus an always-active shared expert."""
    h = emit("rmsnorm", x, a["ffn_norm"])
    shared = emit(
        "mul", emit("silu", emit("linear", h, a["shared_gate"])), emit("linear", h, a["shared_up"])
    )
    both = emit("add", _routed_experts(emit, a, h, c), emit("linear", shared, a["shared_down"]))
    return emit("add", x, both)


@dataclass(frozen=True)
class _LayerKind:
    """A kind of decoder layer: its attention half and its MLP half, with their parameters."""

    name: str
    weights: Callable[[TinyConfig], dict[str, Shape]]
    caches: Callable[[TinyConfig], dict[str, Shape]]
    attention: Part
    mlp_weights: Callable[[TinyConfig], dict[str, Shape]]
    mlp: Part

    def parameters(self, c: TinyConfig) -> tuple[dict[str, Shape], dict[str, Shape]]:
        return self.weights(c) | self.mlp_weights(c), self.caches(c)

    def build(self, c: TinyConfig) -> df.LayerOp:
        weights, caches = self.parameters(c)
        act = c.tensor(("B", c.hidden))
        names = ["x", *weights, *caches]
        types = [act] + [c.tensor(s, c.weight_tier) for s in weights.values()]
        types += [c.tensor(s, c.cache_tier) for s in caches.values()]
        layer = df.LayerOp(self.name, types, [act])
        block = layer.body.block
        for arg, name in zip(block.args, names):
            arg.name_hint = name
        args = dict(zip(names, block.args))
        emit = _Emitter(block)
        y = self.mlp(emit, args, self.attention(emit, args, args["x"], c), c)
        block.add_op(df.ReturnOp(y))
        return layer


LLAMA = _LayerKind("llama_decoder", _gqa_weights, _gqa_caches, _gqa_attention, _dense_weights, _dense_mlp)
MOE = _LayerKind("moe_decoder", _gqa_weights, _gqa_caches, _gqa_attention, _moe_weights, _moe_mlp)
MLA_DENSE = _LayerKind(
    "mla_dense_decoder", _mla_weights, _mla_caches, _mla_attention, _dense_weights, _dense_mlp
)
MLA_MOE = _LayerKind(
    "mla_moe_decoder", _mla_weights, _mla_caches, _mla_attention, _shared_moe_weights, _shared_moe_mlp
)


def build_model(name: str, stack: list[_LayerKind], config: TinyConfig) -> ModuleOp:
    """A module of the layer kinds in `stack` and a graph calling them in that order."""
    c = config
    kinds = list(dict.fromkeys(stack))
    layers = {kind: kind.build(c) for kind in kinds}
    graph = df.GraphOp(
        name, batch=c.batch, context=c.context, tokens=c.tokens, sockets=c.sockets, target="sn40l"
    )
    block = graph.body.block

    def declare(decl: type[df.InputOp | df.WeightOp | df.KvCacheOp], tensor_name: str,
                type_: df.TensorType, tied_to: str = "") -> SSAValue:
        op = df.WeightOp(tensor_name, type_, tied_to) if tied_to else decl(tensor_name, type_)
        op.result.name_hint = tensor_name
        block.add_op(op)
        return op.result

    emit = _Emitter(block)
    tokens = declare(df.InputOp, "tokens", df.TensorType.make(("B",), "int32"))
    x = emit("embedding", tokens, declare(df.WeightOp, "embed", c.tensor((c.vocab, c.hidden), c.weight_tier)))
    for index, kind in enumerate(stack):
        weights, caches = kind.parameters(c)
        args = [x]
        for decl, params, tier in ((df.WeightOp, weights, c.weight_tier), (df.KvCacheOp, caches, c.cache_tier)):
            for param, shape in params.items():
                args.append(declare(decl, f"layers.{index}.{param}", c.tensor(shape, tier)))
        call = df.CallOp(kind.name, args, [x.type])
        block.add_op(call)
        x = call.res[0]
    h = emit("rmsnorm", x, declare(df.WeightOp, "final_norm", c.tensor((c.hidden,), c.weight_tier)))
    head = declare(df.WeightOp, "lm_head", c.tensor((c.hidden, c.vocab), c.weight_tier),
                   "embed" if c.tied_head else "")
    logits = emit("lm_head", h, head)
    block.add_op(df.OutputOp(emit("sample", logits)))
    module = ModuleOp([*layers.values(), graph])
    module.verify()
    return module


def tiny_llama(layers: int = 2, **config: int | str) -> ModuleOp:
    """A Llama-style stack of `layers` identical decoder layers."""
    return build_model("tiny_llama", [LLAMA] * layers, TinyConfig(**config))  # type: ignore[arg-type]


def tiny_moe(layers: int = 2, dense_layers: int = 0, **config: int | str) -> ModuleOp:
    """`dense_layers` Llama layers, then mixture-of-experts layers up to `layers` in all."""
    stack = [LLAMA] * dense_layers + [MOE] * (layers - dense_layers)
    return build_model("tiny_moe", stack, TinyConfig(**config))  # type: ignore[arg-type]


def tiny_mla(layers: int = 2, dense_layers: int = 0, **config: int | str) -> ModuleOp:
    """DeepSeek-style: latent attention everywhere, a dense MLP in the first `dense_layers`
    layers and routed experts plus a shared expert after."""
    stack = [MLA_DENSE] * dense_layers + [MLA_MOE] * (layers - dense_layers)
    return build_model("tiny_mla", stack, TinyConfig(**config))  # type: ignore[arg-type]


def step_totals(module, batch: int, context: int) -> dict[str, float]:
    """FLOPs, bytes per tier and collective bytes of one decode step of an rdu program."""
    from dfdsl.dialects import rdu

    kernels = {op.sym_name.data: op for op in module.ops if isinstance(op, rdu.KernelOp)}
    program = next(op for op in module.ops if isinstance(op, rdu.ProgramOp))
    keys = ("flops", *rdu.TRAFFIC, "expert_read")
    totals = dict.fromkeys((*keys, "p2p"), 0.0)
    for call in program.body.block.ops:
        if not isinstance(call, rdu.CallOp):
            continue
        ops, trips = kernels[call.callee.string_value()].pipeline()
        for op in ops:
            if isinstance(op, rdu.CollectiveBase):
                totals["p2p"] += trips * op.bytes.at(batch, context)
            else:
                for key in keys:
                    totals[key] += trips * op.work(key).at(batch, context)
    return totals
