"""Operator fusion: group `df` operators into `df.kernel`s and launch them from the graph.

`mode` says how much runs in one kernel, and so how many synchronization boundaries (kernel
launches) a decode step pays: `none` puts every operator in its own kernel (an unfused compiler or
a GPU runtime), `block` cuts each layer after every residual add (attention and MLP as two
kernels), `layer` makes a whole decoder layer, collectives included, one kernel (what SN40L
does). At graph level the embedding and the sampler (the sample, with the top-k and the gather of
candidates that precede it on split logits) are kernels of their own, and the operators between
them form maximal groups. Every group is a contiguous run in program order, so it is
convex: no path leaves a group and comes back. Kernels with structurally identical bodies are one
symbol, so the layers of a stack launch one kernel. Afterwards the graph holds declarations,
`df.launch`es and `df.output` only, and no `df.layer` remains.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass
from itertools import count
from typing import cast

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Attribute, Block, Region, SSAValue
from xdsl.pattern_rewriter import PatternRewriter
from xdsl.rewriter import InsertPoint

from dfdsl.dialects import df
from dfdsl.errors import LoweringError
from dfdsl.lowering.stages import Stage, StagedPass

MODES = ("none", "block", "layer")

SOLO_OPERATORS = (df.EmbeddingOp,)
"""Graph-level operators that are always a kernel of their own."""
SAMPLING_OPERATORS = (df.TopKOp, df.AllGatherOp, df.SampleOp)
"""Graph-level operators that together are always a kernel of their own, the sampler: on split
logits, each socket's top-k, the gather of the candidates, and the sample among them."""


def _type_key(type_: Attribute) -> Hashable:
    return type_.name, getattr(type_, "parameters", type_)


def _body_key(block: Block) -> Hashable:
    """What makes two kernel bodies one kernel: the argument types, and each operation's name,
    properties, attributes, operands (numbered in order of definition) and result types."""
    numbers: dict[SSAValue, int] = {arg: i for i, arg in enumerate(block.args)}
    ops = []
    for op in block.ops:
        ops.append((
            op.name,
            tuple(sorted(op.properties.items())),
            tuple(sorted(op.attributes.items())),
            tuple(numbers[v] for v in op.operands),
            tuple(_type_key(t) for t in op.result_types),
        ))
        numbers.update((r, len(numbers)) for r in op.results)
    return tuple(_type_key(t) for t in block.arg_types), tuple(ops)


def _candidate_names(name: str, numbered: bool) -> Iterator[str]:
    if not numbered:
        yield name
    yield from (f"{name}_{i}" for i in count(0 if numbered else 1))


class Kernels:
    """The kernels made so far, one symbol per distinct body, in order of creation."""

    def __init__(self, taken_names: Sequence[str]):
        self.by_body: dict[Hashable, df.KernelOp] = {}
        self.taken = set(taken_names)

    def intern(self, body: Region, outputs: Sequence[Attribute], name: str, numbered: bool) -> str:
        """The symbol of the kernel with this body; a new kernel is named `name` (`name_N` when
        `numbered`, or when `name` is taken)."""
        key = _body_key(body.block)
        if (kernel := self.by_body.get(key)) is None:
            fresh = next(c for c in _candidate_names(name, numbered) if c not in self.taken)
            self.taken.add(fresh)
            kernel = df.KernelOp(fresh, body.block.arg_types, outputs, body)
            self.by_body[key] = kernel
        return kernel.sym_name.data


@dataclass
class Group:
    """Operators to fuse, with the values they read from outside (the kernel's arguments, in
    order of first use) and those they define for outside (its results, in program order)."""

    ops: list[df.OperatorBase]
    args: list[SSAValue]
    results: list[SSAValue]

    @classmethod
    def of(cls, ops: list[df.OperatorBase]) -> Group:
        inside = set(ops)
        args = list(dict.fromkeys(v for op in ops for v in op.operands if v.owner not in inside))
        results: list[SSAValue] = [
            r for op in ops for r in op.results if any(u.operation not in inside for u in r.uses)
        ]
        return cls(ops, args, results)

    def outline(self) -> Region:
        """A kernel body: copies of the operators over block arguments, returning the results."""
        block = Block(arg_types=[a.type for a in self.args])
        values: dict[SSAValue, SSAValue] = dict(zip(self.args, block.args))
        for arg, value in zip(block.args, self.args):
            arg.name_hint = value.name_hint
        for op in self.ops:
            block.add_op(op.clone(values))
        block.add_op(df.ReturnOp(*(values[r] for r in self.results)))
        return Region(block)

    def name(self, mode: str) -> tuple[str, bool]:
        """`<op>_N` for a single operator in mode `none`, else the last heavy operator's name."""
        if mode == "none":
            return self.ops[0].operator, True
        heavy = [op for op in self.ops if op.HEAVY] or self.ops
        return heavy[-1].operator, False


@dataclass
class _Launch:
    """One launch in a fused layer: a kernel, and the layer-body values it reads and defines."""

    kernel: str
    args: Sequence[SSAValue]
    results: Sequence[SSAValue]


@dataclass
class _FusedLayer:
    """A layer as a sequence of launches, over its block arguments, to its returned values."""

    args: Sequence[SSAValue]
    launches: list[_Launch]
    outputs: Sequence[SSAValue]


def _residual_blocks(ops: list[df.OperatorBase], stream: SSAValue) -> list[list[df.OperatorBase]]:
    """Cut after each residual add, the `df.add` onto the residual stream (starting as the
    layer's activation), giving a decoder layer's attention block, then its MLP block. Other
    adds (routed plus shared experts) do not cut."""
    blocks: list[list[df.OperatorBase]] = [[]]
    for op in ops:
        blocks[-1].append(op)
        if isinstance(op, df.AddOp) and stream in (op.lhs, op.rhs):
            stream = op.result
            blocks.append([])
    return [b for b in blocks if b]


def _fuse_layer(layer: df.LayerOp, mode: str, kernels: Kernels) -> _FusedLayer:
    """The launches that replace each call of `layer`: the whole body in mode `layer`, its
    residual blocks in mode `block`, one per operator in mode `none`."""
    block = layer.body.block
    name = layer.sym_name.data
    ret = cast(df.ReturnOp, block.last_op)  # the df stage contract ends a layer with df.return
    ops = [op for op in block.ops if op is not ret]
    if not block.args:
        raise LoweringError(f"fuse: layer @{name} takes no arguments; a layer takes its activation first")
    if mode == "layer":
        kernel = kernels.intern(layer.body.clone(), layer.function_type.outputs.data, name, numbered=False)
        return _FusedLayer(block.args, [_Launch(kernel, block.args, ret.values)], ret.values)
    parts = [[op] for op in ops] if mode == "none" else _residual_blocks(ops, block.args[0])
    launches = []
    for index, part in enumerate(parts):
        group = Group.of(part)
        kernel_name, numbered = group.name(mode) if mode == "none" else (f"{name}_block{index}", False)
        kernel = kernels.intern(group.outline(), [r.type for r in group.results], kernel_name, numbered)
        launches.append(_Launch(kernel, group.args, group.results))
    return _FusedLayer(block.args, launches, ret.values)


def _replace_call(call: df.CallOp, layer: _FusedLayer, rewriter: PatternRewriter) -> None:
    """Launch the layer's kernels in place of the call, on the call's own weights and caches."""
    values: dict[SSAValue, SSAValue] = dict(zip(layer.args, call.args))
    for step in layer.launches:
        launch = df.LaunchOp(step.kernel, [values[a] for a in step.args], [r.type for r in step.results])
        rewriter.insert(launch, InsertPoint.before(call))
        values.update(zip(step.results, launch.res))
    rewriter.replace(call, [], [values[v] for v in layer.outputs])


def _graph_runs(block: Block, mode: str) -> list[list[df.OperatorBase]]:
    """Maximal runs of graph-level operators, broken by launches, by the output, around operators
    that are kernels of their own and around the sampler; declarations do not break a run."""
    runs: list[list[df.OperatorBase]] = [[]]
    for op in block.ops:
        if isinstance(op, df.OperatorBase) and (mode == "none" or isinstance(op, SOLO_OPERATORS)):
            runs += [[op], []]
        elif isinstance(op, df.OperatorBase):
            sampling = isinstance(op, SAMPLING_OPERATORS)
            if runs[-1] and isinstance(runs[-1][-1], SAMPLING_OPERATORS) != sampling:
                runs.append([])
            runs[-1].append(op)
        elif not isinstance(op, df.DECLS):
            runs.append([])
    return [run for run in runs if run]


def _replace_run(run: list[df.OperatorBase], mode: str, kernels: Kernels, rewriter: PatternRewriter) -> None:
    """Launch one kernel made of `run` in its place, after its last operator."""
    group = Group.of(run)
    kernel = kernels.intern(group.outline(), [r.type for r in group.results], *group.name(mode))
    launch = df.LaunchOp(kernel, group.args, [r.type for r in group.results])
    rewriter.insert(launch, InsertPoint.after(group.ops[-1]))
    inside = set(group.ops)
    for old, new in zip(group.results, launch.res):
        rewriter.replace_uses_with_if(old, new, lambda use: use.operation not in inside)
    for op in reversed(group.ops):
        rewriter.erase(op)


@dataclass(frozen=True)
class Fuse(StagedPass):
    """Group operators into kernels: one per operator (`none`), per residual block (`block`) or
    per decoder layer (`layer`)."""

    name = "fuse"
    STAGES = {Stage.DF: Stage.FUSED, Stage.SHARDED: Stage.FUSED}

    mode: str = "layer"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        self.expect(op)
        if self.mode not in MODES:
            raise LoweringError(
                f"fuse: unknown mode {self.mode!r}; use mode=none, mode=block or mode=layer"
            )
        graph = df.the_graph(op, "fuse")
        layers = {layer.sym_name.data: layer for layer in op.ops if isinstance(layer, df.LayerOp)}
        kernels = Kernels([graph.sym_name.data])
        rewriter = PatternRewriter(InsertPoint.at_end(op.body.block))
        fused_layers: dict[str, _FusedLayer] = {}
        for call in [c for c in graph.body.block.ops if isinstance(c, df.CallOp)]:
            callee = call.callee.string_value()
            if callee not in fused_layers:
                fused_layers[callee] = _fuse_layer(layers[callee], self.mode, kernels)
            _replace_call(call, fused_layers[callee], rewriter)
        for run in _graph_runs(graph.body.block, self.mode):
            _replace_run(run, self.mode, kernels, rewriter)
        for layer in layers.values():
            rewriter.erase(layer)
        for kernel in kernels.by_body.values():
            rewriter.insert(kernel, InsertPoint.before(graph))
