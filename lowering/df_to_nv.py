"""The `df-to-nv` pass: a GPU-partitioned `df` module becomes an `nv` program.

It runs after `gpu-partition` (and `place-memory`). The `df.graph` becomes one `nv.program`:
declarations become `nv.buffer`s, `df.launch`es become `nv.launch`es, graph-level
`df.all_reduce`s become `nv.all_reduce` NCCL calls. Each `df.kernel` becomes an `nv.kernel` whose
work is the sum of its operators' work (the cost model `df-to-rdu` uses too, `operator_work`) plus
its activations: a GPU kernel reads its activation inputs from and writes its results to device
memory, since nothing stays on chip across a kernel boundary. That traffic is counted as HBM
traffic; at decode sizes it sits in L2 and is a few KB against the MB of weights.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp, StringAttr
from xdsl.ir import Block, Operation, Region, SSAValue
from xdsl.rewriter import InsertPoint, Rewriter

from dfdsl.dialects import df, nv
from dfdsl.dialects.cost import ZERO, Work
from dfdsl.errors import LoweringError
from dfdsl.hardware import check_target
from dfdsl.lowering.gpu_partition import KernelLoopingOnGpuError
from dfdsl.lowering.operator_work import OperatorWork, operator_work
from dfdsl.lowering.stages import Stage, StagedPass

ACTIVATION_TIER = "hbm"
"""Where activations live between GPU kernels: device global memory."""

def buffer_type(type_: df.TensorType) -> nv.BufferType:
    """The nv buffer of a df tensor: a declared tensor keeps its tier, an activation is in HBM."""
    return nv.BufferType(type_.shape, type_.element_type, StringAttr(type_.tier_name or ACTIVATION_TIER))


def _activation_io(kernel: df.KernelOp) -> OperatorWork:
    """The kernel's activation arguments read from, and its results written to, device memory."""
    args = [df.tensor_type(a.type) for a in kernel.args]
    read = sum((Work.of_bytes(t) for t in args if not t.tier_name), ZERO)
    written = sum((Work.of_bytes(df.tensor_type(t)) for t in kernel.function_type.outputs.data), ZERO)
    return OperatorWork(traffic={f"{ACTIVATION_TIER}_read": read, f"{ACTIVATION_TIER}_write": written})


def lower_kernel(kernel: df.KernelOp, activations: str) -> nv.KernelOp:
    """The `nv.kernel` of a `df.kernel` of operators: its signature, operators and summed work."""
    name = kernel.sym_name.data
    ops: list[df.OperatorBase] = []
    for op in kernel.body.block.ops:
        if isinstance(op, df.ReturnOp):
            continue
        if not isinstance(op, df.OperatorBase) or isinstance(op, df.CollectiveBase):
            raise LoweringError(
                f"df-to-nv: kernel @{name} holds {op.name}; a GPU kernel holds operators only "
                "(run gpu-partition, which leaves all-reduces as NCCL calls)"
            )
        ops.append(op)
    work = sum((operator_work(op, activations) for op in ops), OperatorWork()) + _activation_io(kernel)
    return nv.make_kernel(
        name,
        [buffer_type(df.tensor_type(t)) for t in kernel.function_type.inputs.data],
        [buffer_type(df.tensor_type(t)) for t in kernel.function_type.outputs.data],
        [op.operator for op in ops],
        flops=work.flops, traffic=work.traffic, moe=work.moe,
    )


def _lower_op(op: Operation, values: dict[SSAValue, SSAValue], gpus: int) -> Operation | None:
    """The program op for one op of a partitioned graph (None: a reduction over one GPU vanishes)."""
    if isinstance(op, df.DeclBase):
        return nv.BufferOp(op.tensor_name.data, op.BUFFER_KIND, buffer_type(op.result.type))
    if isinstance(op, df.LaunchOp):
        return nv.LaunchOp(op.callee.string_value(), [values[a] for a in op.args],
                           [buffer_type(df.tensor_type(t)) for t in op.res.types])
    if isinstance(op, df.CollectiveBase):
        if gpus < 2:
            return None
        if isinstance(op, df.AllGatherOp):
            return nv.AllGatherOp(values[op.x], Work.of_bytes(op.x.type), gpus, buffer_type(op.result.type))
        return nv.AllReduceOp(values[op.x], Work.of_bytes(op.x.type), gpus)
    if isinstance(op, df.OutputOp):
        return nv.OutputOp(*(values[v] for v in op.values))
    raise LoweringError(  # the placed contract leaves nothing else
        f"df-to-nv expects a GPU-partitioned graph, but {op.name} is outside a kernel: run gpu-partition first"
    )


def lower_graph(graph: df.GraphOp, target: str) -> nv.ProgramOp:
    """The `nv.program` of a partitioned `df.graph`: one op per declaration, launch, all-reduce and output."""
    gpus = graph.tp.value.data
    values: dict[SSAValue, SSAValue] = {}
    block = Block()
    for op in graph.body.block.ops:
        new = _lower_op(op, values, gpus)
        if new is None:
            values[op.results[0]] = values[op.operands[0]]
            continue
        for old, result in zip(op.results, new.results):
            result.name_hint = old.name_hint
            values[old] = result
        block.add_op(new)
    return nv.ProgramOp(
        graph.sym_name.data, target=target, region=Region(block),
        batch=graph.batch.value.data, context=graph.context.value.data,
        tokens=graph.tokens.value.data, gpus=gpus, prompt=graph.prompt.value.data if graph.prompt else None,
    )


@dataclass(frozen=True)
class DfToNv(StagedPass):
    """Lowers a GPU-partitioned `df` module to an `nv` program for `target`."""

    name = "df-to-nv"
    STAGES = {Stage.PLACED: Stage.NV}

    target: str = "dgx_h100"

    def expect(self, module: ModuleOp) -> Stage:
        """Placed IR without loops: a GPU cannot loop kernels."""
        stage = super().expect(module)
        if any(isinstance(o, df.LoopOp) for o in module.walk()):
            raise KernelLoopingOnGpuError()
        return stage

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        self.expect(op)
        check_target("df-to-nv", self.target, "gpu")
        graph = df.the_graph(op, "df-to-nv")
        activations = graph.activations.data
        replaced: list[tuple[Operation, Operation]] = [
            (kernel, lower_kernel(kernel, activations)) for kernel in op.ops if isinstance(kernel, df.KernelOp)
        ]
        replaced.append((graph, lower_graph(graph, self.target)))
        for old, new in replaced:
            Rewriter.insert_op(new, InsertPoint.before(old))
        for old, _ in reversed(replaced):
            Rewriter.erase_op(old)

