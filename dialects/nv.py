"""The `nv` dialect: a decode step as a node of NVIDIA GPUs runs it under a TensorRT-LLM-style runtime.

A module holds one `nv.program` (the decode step on one GPU: declared buffers, `nv.launch`es of
kernels and `nv.all_reduce` NCCL calls in stream order, `nv.output`) and the `nv.kernel`s it
launches. A GPU kernel is opaque here: a symbol with a signature, the operators it runs and its
work per launch as `#rdu.work<c + b*B + bs*B*S>` quantities (the `rdu` dialect's affine work,
imported, not copied). Every launch and every NCCL call is a synchronization boundary; nothing
is pipelined across them. Everything inside a program is per GPU; `gpus` says how many run it
side by side (the tensor-parallel degree).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from xdsl.dialects.builtin import (
    I64,
    ArrayAttr,
    FunctionType,
    IntegerAttr,
    StringAttr,
    SymbolNameConstraint,
    SymbolRefAttr,
)
from xdsl.ir import Attribute, Block, Dialect, Region, SSAValue
from xdsl.irdl import (
    IRDLOperation,
    ParsePropInAttrDict,
    irdl_attr_definition,
    irdl_op_definition,
    operand_def,
    opt_prop_def,
    prop_def,
    region_def,
    result_def,
    traits_def,
    var_operand_def,
    var_result_def,
)
from xdsl.traits import HasParent, NoTerminator, SymbolOpInterface, SymbolTable
from xdsl.utils.exceptions import VerifyException

from dfdsl.dialects import df
from dfdsl.dialects.rdu import BUFFER_KINDS, TRAFFIC, ZERO, Work
from dfdsl.dialects.shapes import TIERS


@irdl_attr_definition
class BufferType(df.ShapedTypeBase):
    """A buffer in GPU-visible memory: `!nv.buffer<[B, 4096], bf16, hbm>`; the tier is required.

    Activations handed between kernels are in `hbm` (device global memory): a GPU keeps no
    tensor in on-chip SRAM across a kernel boundary."""

    name = "nv.buffer"

    def verify(self) -> None:
        super().verify()
        if not self.tier.data:
            raise VerifyException(f"!nv.buffer needs a memory tier ({', '.join(TIERS)})")


_PROGRAM_COUNTS = ("batch", "context", "tokens", "gpus")


@irdl_op_definition
class ProgramOp(IRDLOperation):
    """One decode step on one GPU: declared buffers, launches and NCCL calls in stream order, the output."""

    name = "nv.program"
    sym_name = prop_def(SymbolNameConstraint())
    batch = prop_def(IntegerAttr[I64])
    context = prop_def(IntegerAttr[I64])
    tokens = prop_def(IntegerAttr[I64])
    gpus = prop_def(IntegerAttr[I64])
    target = prop_def(StringAttr)
    body = region_def("single_block")
    traits = traits_def(NoTerminator(), SymbolOpInterface())
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = "$sym_name attr-dict-with-keyword $body"

    def __init__(self, name: str, *, target: str, region: Region | None = None, **counts: int):
        super().__init__(
            properties={
                "sym_name": StringAttr(name),
                "target": StringAttr(target),
                **{key: IntegerAttr(counts[key], 64) for key in _PROGRAM_COUNTS},
            },
            regions=[region or Region(Block())],
        )

    def count(self, key: str) -> int:
        """`batch`, `context`, `tokens` or `gpus` as an int."""
        return self.properties[key].value.data  # type: ignore[union-attr]

    def verify_(self) -> None:
        for key in _PROGRAM_COUNTS:
            if self.count(key) <= 0:
                raise VerifyException(f"nv.program: {key} must be positive")
        outputs = [op for op in self.body.block.ops if isinstance(op, OutputOp)]
        if outputs and outputs[-1] is not self.body.block.last_op:
            raise VerifyException("nv.program: nv.output must be the last op of the program")


@irdl_op_definition
class BufferOp(IRDLOperation):
    """A declared buffer: the step's input, a weight, or a KV cache.

    `%w = nv.buffer "layers.0.wq" {kind = "weight"} : !nv.buffer<[4096, 512], bf16, hbm>`
    """

    name = "nv.buffer"
    buffer_name = prop_def(StringAttr)
    kind = prop_def(StringAttr)
    result = result_def(BufferType)
    traits = traits_def(HasParent(ProgramOp))
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = "$buffer_name attr-dict `:` type($result)"

    def __init__(self, buffer_name: str, kind: str, type_: BufferType):
        super().__init__(
            properties={"buffer_name": StringAttr(buffer_name), "kind": StringAttr(kind)},
            result_types=[type_],
        )

    def verify_(self) -> None:
        if self.kind.data not in BUFFER_KINDS:
            raise VerifyException(
                f"nv.buffer {self.buffer_name.data!r}: kind {self.kind.data!r} is not one of "
                + ", ".join(BUFFER_KINDS)
            )


@irdl_op_definition
class OutputOp(IRDLOperation):
    """The values a decode step produces (the sampled tokens)."""

    name = "nv.output"
    values = var_operand_def(BufferType)
    traits = traits_def(HasParent(ProgramOp))
    assembly_format = "attr-dict ($values^ `:` type($values))?"

    def __init__(self, *values: SSAValue):
        super().__init__(operands=[values])


_EXPERT_FIELDS = ("experts", "top_k", "expert_read", "expert_tier")


@irdl_op_definition
class KernelOp(IRDLOperation):
    """A GPU kernel: its signature, the `df` operators it runs, and its work per launch.

    `flops` and the bytes read and written per memory tier (`hbm_read`, ...) are per launch,
    activations included. A MoE experts kernel also says `experts`, `top_k` and `expert_read`,
    the bytes of ONE expert in `expert_tier`, as `rdu.stage` does.

    `nv.kernel @gemm_wq_wk_wv : (...) -> ... {operators = ["linear", ...], flops = #rdu.work<...>, ...}`
    """

    name = "nv.kernel"
    sym_name = prop_def(SymbolNameConstraint())
    function_type = prop_def(FunctionType)
    operators = prop_def(ArrayAttr[StringAttr])
    flops = prop_def(Work)
    hbm_read = prop_def(Work, default_value=ZERO)
    hbm_write = prop_def(Work, default_value=ZERO)
    ddr_read = prop_def(Work, default_value=ZERO)
    ddr_write = prop_def(Work, default_value=ZERO)
    experts = opt_prop_def(IntegerAttr[I64])
    top_k = opt_prop_def(IntegerAttr[I64])
    expert_read = opt_prop_def(Work)
    expert_tier = opt_prop_def(StringAttr)
    traits = traits_def(SymbolOpInterface())
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = "$sym_name `:` $function_type attr-dict"

    def work(self, key: str) -> Work:
        """`flops`, one of `rdu.TRAFFIC`, or `expert_read` (zero when absent)."""
        return self.properties.get(key, ZERO)  # type: ignore[return-value]

    def verify_(self) -> None:
        name = f"nv.kernel @{self.sym_name.data}"
        if not self.operators.data:
            raise VerifyException(f"{name} runs no operators")
        given = [key for key in _EXPERT_FIELDS if key in self.properties]
        if given and len(given) != len(_EXPERT_FIELDS):
            raise VerifyException(f"{name}: a MoE kernel gives all of {', '.join(_EXPERT_FIELDS)}")
        if self.expert_tier is not None and self.expert_tier.data not in TIERS:
            raise VerifyException(f"{name}: unknown expert tier {self.expert_tier.data!r}")
        if self.experts is not None and self.top_k is not None:
            if not 1 <= self.top_k.value.data <= self.experts.value.data:
                raise VerifyException(f"{name}: top_k must be between 1 and the number of experts")


def make_kernel(name: str, inputs: Sequence[Attribute], outputs: Sequence[Attribute], operators: Sequence[str],
                *, flops: Work, traffic: Mapping[str, Work],
                moe: tuple[int, int, Work, str] | None = None) -> KernelOp:
    """Builds a kernel; `traffic` maps keys of `rdu.TRAFFIC` to work (missing ones are zero);
    `moe` is (experts, top_k, expert_read, expert_tier) for a MoE experts kernel."""
    properties: dict[str, Attribute] = {
        "sym_name": StringAttr(name),
        "function_type": FunctionType.from_lists(inputs, outputs),
        "operators": ArrayAttr([StringAttr(o) for o in operators]),
        "flops": flops,
        **{key: traffic.get(key, ZERO) for key in TRAFFIC},
    }
    if moe is not None:
        experts, top_k, expert_read, expert_tier = moe
        properties |= {
            "experts": IntegerAttr(experts, 64),
            "top_k": IntegerAttr(top_k, 64),
            "expert_read": expert_read,
            "expert_tier": StringAttr(expert_tier),
        }
    return KernelOp.create(properties=properties)


@irdl_op_definition
class LaunchOp(IRDLOperation):
    """One kernel launch in the step's CUDA graph: a synchronization boundary."""

    name = "nv.launch"
    callee = prop_def(SymbolRefAttr)
    args = var_operand_def(BufferType)
    res = var_result_def(BufferType)
    traits = traits_def(HasParent(ProgramOp))
    assembly_format = "$callee `(` $args `)` attr-dict `:` functional-type($args, $res)"

    def __init__(self, callee: str, args: Sequence[SSAValue], result_types: Sequence[Attribute]):
        super().__init__(
            operands=[args], result_types=[result_types], properties={"callee": SymbolRefAttr(callee)}
        )

    def verify_(self) -> None:
        kernel = SymbolTable.lookup_symbol(self, self.callee)
        if kernel is None:
            return
        name = f"nv.launch @{self.callee.string_value()}"
        if not isinstance(kernel, KernelOp):
            raise VerifyException(f"{name}: the callee is not an nv.kernel")
        ft = kernel.function_type
        if tuple(self.args.types) != ft.inputs.data or tuple(self.res.types) != ft.outputs.data:
            raise VerifyException(f"{name}: operand or result types differ from the kernel's signature")


@irdl_op_definition
class AllReduceOp(IRDLOperation):
    """An NCCL all-reduce (sum) of one buffer across `gpus` GPUs: a library call of its own.

    `bytes` is the message each GPU contributes; the algorithm and its costs are the simulator's.
    """

    name = "nv.all_reduce"
    input = operand_def(BufferType)
    result = result_def(BufferType)
    bytes = prop_def(Work)
    gpus = prop_def(IntegerAttr[I64])
    traits = traits_def(HasParent(ProgramOp))
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = "$input attr-dict `:` functional-type($input, $result)"

    def __init__(self, value: SSAValue, bytes_: Work, gpus: int):
        super().__init__(
            operands=[value], result_types=[value.type],
            properties={"bytes": bytes_, "gpus": IntegerAttr(gpus, 64)},
        )

    def verify_(self) -> None:
        if self.gpus.value.data < 2:
            raise VerifyException("nv.all_reduce: a collective needs at least 2 GPUs")
        if self.input.type != self.result.type:
            raise VerifyException("nv.all_reduce: the result has the type of the input")


Nv = Dialect(
    "nv",
    [ProgramOp, BufferOp, OutputOp, KernelOp, LaunchOp, AllReduceOp],
    [BufferType],
)
