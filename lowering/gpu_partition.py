"""The `gpu-partition` pass: split a sharded `df` graph into the kernels a GPU runtime launches.

It replaces `fuse` on GPU targets and partitions a decode step the way TensorRT-LLM runs a
Llama decoder layer (docs/gpu-baseline.md gives the partition and its sources). The layers are
inlined first, because a GPU runtime fuses across layer boundaries: the residual add that ends
layer l and the RMS norm that starts layer l+1 are one kernel. Then, on the dataflow graph:

- projections (`linear`, `matmul`, `lm_head`) reading the same input are one GEMM kernel (the
  fused QKV and gate+up GEMMs: their weights are concatenated);
- the light operators (norms, rotary, activations, elementwise) between two heavy kernels form
  one kernel: add + RMS norm, rotary of q and k, silu * mul;
- attention, embedding, sampling and MoE operators are kernels of their own;
- a collective (`df.all_reduce`, `df.all_gather`) stays a graph-level operator: an NCCL call, not
  a kernel of ours.

Operators are grouped by a level that grows by one across every heavy operator, so a group never
has a path leaving it and coming back (it is convex). Kernels with identical bodies are one
symbol. Afterwards the graph holds declarations, `df.launch`es, collectives and `df.output`.
Kernel looping does not exist on a GPU: every kernel is a synchronization boundary, and a
looped (`df.loop`) module is refused.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Block, Operation, SSAValue
from xdsl.pattern_rewriter import PatternRewriter
from xdsl.rewriter import InsertPoint

from dfdsl.dialects import df
from dfdsl.errors import LoweringError
from dfdsl.hardware import TargetMismatchError
from dfdsl.lowering.fuse import Group, Kernels
from dfdsl.lowering.stages import Stage, StagedPass

GEMM_OPERATORS = (df.LinearOp, df.MatmulOp, df.LmHeadOp)
"""Projections; siblings reading the same input share one GEMM kernel."""


class KernelLoopingOnGpuError(TargetMismatchError):
    """Kernel looping was asked for on a GPU target."""

    def __init__(self) -> None:
        super().__init__(
            "kernel looping is not possible on a GPU: each kernel launch is a synchronization "
            "boundary (the next kernel starts only when the previous one has retired), so a GPU "
            "cannot stream layer l+1's weights inside layer l's kernel. Run without kernel looping "
            "(--no-kernel-looping) on GPU targets"
        )


def _inline_calls(graph: df.GraphOp, layers: dict[str, df.LayerOp], rewriter: PatternRewriter) -> None:
    """Replaces every `df.call` by a copy of its layer's body over the call's operands."""
    for call in [op for op in graph.body.block.ops if isinstance(op, df.CallOp)]:
        body = layers[call.callee.string_value()].body.block
        values: dict[SSAValue, SSAValue] = dict(zip(body.args, call.args))
        for op in body.ops:
            if isinstance(op, df.ReturnOp):
                rewriter.replace(call, [], [values[v] for v in op.values])
                break
            rewriter.insert(op.clone(values), InsertPoint.before(call))


def _kind(op: df.OperatorBase) -> str:
    """`gemm` for a projection, `light` for an operator fused between heavy kernels, else the
    operator's own name (a kernel of its own, or an all-reduce)."""
    if isinstance(op, GEMM_OPERATORS):
        return "gemm"
    return "light" if isinstance(op, df.LightOperatorBase) else op.operator


def _levels(ops: list[df.OperatorBase]) -> dict[df.OperatorBase, int]:
    """Each operator's level: a light operator shares the level of a light producer and sits one
    above a heavy one; any other operator sits one above all its producers. Declarations are 0."""
    levels: dict[df.OperatorBase, int] = {}
    for op in ops:
        light = _kind(op) == "light"
        level = 1
        for value in op.operands:
            producer = value.owner
            if isinstance(producer, df.OperatorBase):
                step = 0 if light and _kind(producer) == "light" else 1
                level = max(level, levels[producer] + step)
        levels[op] = level
    return levels


def _group_key(op: df.OperatorBase, level: int) -> Hashable:
    kind = _kind(op)
    if kind == "light":
        return kind, level
    if kind == "gemm":
        return kind, level, op.operands[0]
    return kind, op


def _weight_name(value: SSAValue) -> str:
    """`wq` for the weight declared as `layers.0.wq`."""
    owner = value.owner
    return owner.tensor_name.data.rsplit(".", 1)[-1] if isinstance(owner, df.WeightOp) else ""


def kernel_name(ops: list[df.OperatorBase]) -> str:
    """`gemm_wq_wk_wv` for a fused projection, `add_rmsnorm` for light operators, else the operator."""
    if isinstance(ops[0], df.LinearOp):
        weights = [_weight_name(op.w) if isinstance(op, df.ProjectionBase) else "" for op in ops]
        return "_".join(["gemm", *weights]) if all(weights) else "gemm"
    return "_".join(dict.fromkeys(op.operator for op in ops))


@dataclass
class _Partition:
    """The graph's operators in kernel groups, in an order that respects the dataflow."""

    groups: list[list[df.OperatorBase]]

    @classmethod
    def of(cls, block: Block) -> _Partition:
        ops = [op for op in block.ops if isinstance(op, df.OperatorBase)]
        position = {op: i for i, op in enumerate(ops)}
        levels = _levels(ops)
        grouped: dict[Hashable, list[df.OperatorBase]] = {}
        for op in ops:
            grouped.setdefault(_group_key(op, levels[op]), []).append(op)
        groups = sorted(grouped.values(), key=lambda g: (levels[g[0]], position[g[0]]))
        return cls(groups)


def _emit(group: list[df.OperatorBase], kernels: Kernels, values: dict[SSAValue, SSAValue],
          output: Operation, rewriter: PatternRewriter) -> None:
    """Moves the group's declarations before `output`, then launches the group's kernel there
    (a collective stays an operator). `values` maps old results to their replacements."""
    outline = Group.of(group)
    for arg in outline.args:
        decl = arg.owner
        if isinstance(decl, df.DECLS) and arg not in values:
            decl.detach()
            rewriter.insert(decl, InsertPoint.before(output))
            values[arg] = arg
    args = [values[a] for a in outline.args]
    new: df.CollectiveBase | df.LaunchOp
    first = group[0]
    if isinstance(first, df.CollectiveBase):  # alone in its group
        new = type(first)(*args, result_type=first.result.type, **first.int_attrs())
        results = list(new.results)
    else:
        name = kernel_name(group)
        kernel = kernels.intern(outline.outline(), [r.type for r in outline.results], name, numbered=False)
        new = df.LaunchOp(kernel, args, [r.type for r in outline.results])
        results = list(new.res)
    rewriter.insert(new, InsertPoint.before(output))
    for old, result in zip(outline.results, results):
        result.name_hint = old.name_hint
        values[old] = result


def _partition_graph(graph: df.GraphOp, kernels: Kernels, rewriter: PatternRewriter) -> None:
    """Replaces the graph's operators by kernel launches and NCCL all-reduces in dataflow order."""
    block = graph.body.block
    output = block.last_op
    if not isinstance(output, df.OutputOp):
        raise LoweringError(f"gpu-partition: graph @{graph.sym_name.data} must end with df.output")
    partition = _Partition.of(block)
    values: dict[SSAValue, SSAValue] = {}
    for group in partition.groups:
        _emit(group, kernels, values, output, rewriter)
    rewriter.replace(output, df.OutputOp(*(values.get(v, v) for v in output.operands)))
    for group in reversed(partition.groups):
        for op in reversed(group):
            rewriter.erase(op)


@dataclass(frozen=True)
class GpuPartition(StagedPass):
    """Partitions a sharded `df` graph into the kernels and NCCL calls of a GPU decode step."""

    name = "gpu-partition"
    STAGES = {Stage.DF: Stage.FUSED, Stage.SHARDED: Stage.FUSED}

    def expect(self, module: ModuleOp) -> Stage:
        # A looped module is not sharded IR either, but what it needs is another target, not
        # another pass: say that first.
        if any(isinstance(o, df.LoopOp) for o in module.walk()):
            raise KernelLoopingOnGpuError()
        return super().expect(module)

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        self.expect(op)
        graph = df.the_graph(op, "gpu-partition")
        layers = {layer.sym_name.data: layer for layer in op.ops if isinstance(layer, df.LayerOp)}
        kernels = Kernels([graph.sym_name.data])
        rewriter = PatternRewriter(InsertPoint.at_end(op.body.block))
        _inline_calls(graph, layers, rewriter)
        _partition_graph(graph, kernels, rewriter)
        for layer in layers.values():
            rewriter.erase(layer)
        for kernel in kernels.by_body.values():
            rewriter.insert(kernel, InsertPoint.before(graph))
