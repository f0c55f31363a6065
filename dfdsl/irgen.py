"""IR generation: a checked `ResolvedModel` becomes a `df` dialect module that verifies.

Each layer instance becomes a `df.layer`; the graph becomes a `df.graph` whose body declares each
tensor and applies operators and layer calls in program order (docs/ir.md describes the result).
A prefill model becomes a graph with a `prompt` whose activations carry `P`.
"""

from __future__ import annotations

from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Block, Operation, Region, SSAValue

from dfdsl.dialects import df
from dfdsl.dialects.shapes import TensorShape
from dfdsl.model import LayerCall, ResolvedDecl, ResolvedLayer, ResolvedModel, ResolvedOp

_DECL_OPS = {decl.KEYWORD: decl for decl in df.DECLS}


def _type(t: TensorShape, tier: str = "") -> df.TensorType:
    return df.TensorType.make(t.shape, t.dtype, tier)


def _hint(ref: str) -> str:
    """The user's name for a value: `q_17` -> `q`, `gqa_attention.wq_40` -> `wq`."""
    return ref.rsplit("_", 1)[0].rsplit(".", 1)[-1]


def _named(op: Operation, ref: str) -> Operation:
    op.results[0].name_hint = _hint(ref)
    return op


def _operator(op: ResolvedOp, values: dict[str, SSAValue]) -> Operation:
    cls = df.OPERATORS[op.op]
    return _named(cls(*(values[r] for r in op.operands), result_type=_type(op.type), **dict(op.attrs)), op.ref)


def _layer(layer: ResolvedLayer) -> df.LayerOp:
    args = (*layer.inputs, *layer.weights, *layer.caches)
    arg_types = [_type(a.type, a.tier if a.kind != "in" else "") for a in args]
    block = Block(arg_types=arg_types)
    values: dict[str, SSAValue] = {}
    for decl, arg in zip(args, block.args):
        arg.name_hint = _hint(decl.ref)
        values[decl.ref] = arg
    for op in layer.ops:
        new = _operator(op, values)
        block.add_op(new)
        values[op.ref] = new.results[0]
    block.add_op(df.ReturnOp(values[layer.output]))
    return df.LayerOp(layer.symbol, arg_types, [_type(layer.output_type)], Region(block))


def generate(model: ResolvedModel) -> ModuleOp:
    """The `df` module of a model; it verifies."""
    layers = {layer.symbol: _layer(layer) for layer in model.layers}
    run = model.run
    # A prefill graph's `prompt` is its tokens per pass: the prompt, or a chunk of it (one token
    # when the run has neither, as the driver sets each pass's own before compiling).
    prompt = (run.chunk or run.prompt or 1) if model.prefill else None
    graph = df.GraphOp(model.name, batch=run.batch, context=run.context, tokens=max(run.tokens, 1),
                       sockets=run.sockets, target=run.target, activations=model.activations_tier,
                       prompt=prompt, explicit_tiers=model.explicit_classes,
                       explicit_tensors=model.explicit_patterns)
    block = graph.body.block
    values: dict[str, SSAValue] = {}
    for step in model.steps:
        if isinstance(step, ResolvedDecl):
            type_ = _type(step.type, step.tier)
            decl = df.WeightOp(step.name, type_, step.tied_to) if step.tied_to else _DECL_OPS[step.kind](step.name, type_)
            op: Operation = _named(decl, step.ref)
        elif isinstance(step, ResolvedOp):
            op = _operator(step, values)
        else:
            assert isinstance(step, LayerCall)
            callee = layers[step.symbol]
            op = _named(df.CallOp(step.symbol, [values[a] for a in step.args],
                                  callee.function_type.outputs.data), step.ref)
        block.add_op(op)
        values[step.ref] = op.results[0]
    block.add_op(df.OutputOp(values[model.output]))
    module = ModuleOp([*layers.values(), graph])
    module.verify()
    return module
