"""The `nv` dialect: a decode step as a node of NVIDIA GPUs runs it under a TensorRT-LLM-style runtime.

A module holds one `nv.program` (the decode step on one GPU: declared buffers, `nv.launch`es of
kernels and NCCL collectives (`nv.all_reduce`, `nv.reduce_scatter`, `nv.all_gather`) in stream order, `nv.output`) and the `nv.kernel`s it
launches. A GPU kernel is opaque here: a symbol with a signature, the operators it runs and its
work per launch as `#cost.work<c + b*B + bs*B*S>` quantities (the affine work both target
dialects share, from the `cost` dialect). Every launch and every NCCL call is a synchronization boundary; nothing
is pipelined across them. Everything inside a program is per GPU; `gpus` says how many run it
side by side (the tensor-parallel degree).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import ClassVar, cast

from xdsl.dialects.builtin import I64, ArrayAttr, FunctionType, IntegerAttr, StringAttr, SymbolNameConstraint
from xdsl.ir import Attribute, Dialect, SSAValue
from xdsl.irdl import (
    IRDLOperation,
    ParsePropInAttrDict,
    irdl_attr_definition,
    irdl_op_definition,
    operand_def,
    prop_def,
    result_def,
    traits_def,
    var_operand_def,
    var_result_def,
)
from xdsl.traits import HasParent, SymbolOpInterface
from xdsl.utils.exceptions import VerifyException

from dfdsl.dialects import df, target_ops
from dfdsl.dialects.cost import Work


@irdl_attr_definition
class BufferType(target_ops.BufferTypeBase):
    """A buffer in GPU-visible memory: `!nv.buffer<[B, 4096], bf16, hbm>`; the tier is required.

    Activations handed between kernels are in `hbm` (device global memory): a GPU keeps no
    tensor in on-chip SRAM across a kernel boundary."""

    name = "nv.buffer"


@irdl_op_definition
class ProgramOp(target_ops.ProgramBase):
    """One decode step on one GPU: declared buffers, launches and NCCL calls in stream order, the output."""

    KIND: ClassVar[str] = "gpu"
    COUNTS: ClassVar[tuple[str, ...]] = ("batch", "context", "tokens", "gpus")

    name = "nv.program"
    gpus = prop_def(IntegerAttr[I64])


@irdl_op_definition
class BufferOp(target_ops.BufferBase):
    """A declared buffer: the step's input, a weight, or a KV cache.

    `%w = nv.buffer "layers.0.wq" {kind = "weight"} : !nv.buffer<[4096, 512], bf16, hbm>`
    """

    name = "nv.buffer"
    result = result_def(BufferType)
    traits = traits_def(HasParent(ProgramOp))
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = "$buffer_name attr-dict `:` type($result)"


@irdl_op_definition
class OutputOp(target_ops.OutputBase):
    """The values a decode step produces (the sampled tokens)."""

    name = "nv.output"
    values = var_operand_def(BufferType)
    traits = traits_def(HasParent(ProgramOp))


@irdl_op_definition
class KernelOp(target_ops.OperatorWorkBase):
    """A GPU kernel: its signature, the `df` operators it runs, and its work per launch.

    `flops` and the bytes read and written per memory tier (`hbm_read`, ...) are per launch,
    activations included. A MoE experts kernel also says `experts`, `top_k` and `expert_read`,
    the bytes of ONE expert in `expert_tier`, as `rdu.stage` does.

    `nv.kernel @gemm_wq_wk_wv : (...) -> ... {operators = ["linear", ...], flops = #cost.work<...>, ...}`
    """

    name = "nv.kernel"
    sym_name = prop_def(SymbolNameConstraint())
    function_type = prop_def(FunctionType)
    traits = traits_def(SymbolOpInterface())
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = "$sym_name `:` $function_type attr-dict"

    def verify_(self) -> None:
        self.verify_work(f"nv.kernel @{self.sym_name.data}")


def make_kernel(name: str, inputs: Sequence[Attribute], outputs: Sequence[Attribute], operators: Sequence[str],
                *, flops: Work, traffic: Mapping[str, Work],
                moe: target_ops.ExpertWork | None = None) -> KernelOp:
    """Builds a kernel; `traffic` maps keys of `target_ops.TRAFFIC` to work (missing ones are zero);
    `moe` is (experts, top_k, expert_read, expert_tier) for a MoE experts kernel."""
    properties: dict[str, Attribute] = {
        "sym_name": StringAttr(name),
        "function_type": FunctionType.from_lists(inputs, outputs),
        "operators": ArrayAttr([StringAttr(o) for o in operators]),
        **target_ops.traffic_properties(flops, traffic),
        **target_ops.expert_properties(moe),
    }
    return KernelOp.create(properties=properties)


@irdl_op_definition
class LaunchOp(df.CallBase):
    """One kernel launch in the step's CUDA graph: a synchronization boundary."""

    name = "nv.launch"
    CALLEE: ClassVar[type[df.Callee]] = KernelOp
    args = var_operand_def(BufferType)
    res = var_result_def(BufferType)
    traits = traits_def(HasParent(ProgramOp))


class CollectiveBase(IRDLOperation):
    """A collective of one buffer across `gpus` GPUs: a call of its own (NCCL's, or for an
    all-reduce the serving runtime's own kernel).

    `bytes` is the message each GPU contributes (an all-reduce's or a reduce-scatter's whole
    partial sum, an all-gather's own share); which implementation runs it and what it costs are the
    target's software (`[gpu_software] all_reduce` for an all-reduce), the simulator's to price.
    """

    input = operand_def(BufferType)
    result = result_def(BufferType)
    bytes = prop_def(Work)
    gpus = prop_def(IntegerAttr[I64])
    traits = traits_def(HasParent(ProgramOp))
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = "$input attr-dict `:` functional-type($input, $result)"

    SHARE: ClassVar[str] = "the same"
    """How the result's last dimension relates to the input's: `the same`, `divided` or `multiplied`
    by the GPUs."""

    def __init__(self, value: SSAValue, bytes_: Work, gpus: int, result_type: BufferType | None = None):
        super().__init__(
            operands=[value], result_types=[result_type or value.type],
            properties={"bytes": bytes_, "gpus": IntegerAttr(gpus, 64)},
        )

    @property
    def kind(self) -> str:
        """What it does, as the timing model names it: `all_reduce`, `reduce_scatter`, `all_gather`."""
        return self.name.removeprefix("nv.")

    def verify_(self) -> None:
        gpus = self.gpus.value.data
        if gpus < 2:
            raise VerifyException(f"{self.name}: a collective needs at least 2 GPUs")
        program = cast(ProgramOp, self.parent_op())  # HasParent(ProgramOp)
        if gpus != program.count("gpus"):
            raise VerifyException(f"{self.name}: exchanges over {gpus} GPUs in a program that runs on "
                                  f"{program.count('gpus')}")
        given, result = cast(BufferType, self.input.type), self.result.type
        dims = given.dims
        last = dims[-1] if dims else None
        wanted: Attribute = given
        if isinstance(last, int) and self.SHARE != "the same":
            width = last // gpus if self.SHARE == "divided" else last * gpus
            if self.SHARE == "divided" and last % gpus:
                raise VerifyException(f"{self.name}: the last dimension {last} does not divide over {gpus} GPUs")
            wanted = given.with_dims((*dims[:-1], width))
        if result != wanted:
            raise VerifyException(f"{self.name}: the result must be {wanted} (the input's last dimension "
                                  f"{self.SHARE}{'' if self.SHARE == 'the same' else ' by the GPUs'}), got {result}")


@irdl_op_definition
class AllReduceOp(CollectiveBase):
    """An all-reduce (sum): every GPU gets the whole sum, of the input's type."""

    name = "nv.all_reduce"


@irdl_op_definition
class ReduceScatterOp(CollectiveBase):
    """An NCCL reduce-scatter: every GPU gets its 1/gpus share of the sum, along the last dimension."""

    name = "nv.reduce_scatter"
    SHARE: ClassVar[str] = "divided"


@irdl_op_definition
class AllGatherOp(CollectiveBase):
    """An NCCL all-gather: every GPU's buffer side by side on every GPU, along the last dimension."""

    name = "nv.all_gather"
    SHARE: ClassVar[str] = "multiplied"


Nv = Dialect(
    "nv",
    [ProgramOp, BufferOp, OutputOp, KernelOp, LaunchOp, AllReduceOp, ReduceScatterOp, AllGatherOp],
    [BufferType],
)
