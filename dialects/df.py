"""The `df` dialect: a target-neutral dataflow graph of one decode step.

A module holds `df.layer` definitions (callable regions, one per kind of layer), and one
`df.graph`, the decode step: tensor declarations (`df.input`, `df.weight`, `df.kv_cache`),
operators, and `df.call`s of layers. Fusion replaces layers and operators by `df.kernel`s and
`df.launch`es; kernel looping wraps a kernel body in a pipelined `df.loop` over stacked weights.
Tensors are `!df.tensor<[B, 4096], bf16>`, with `B` (batch) and `S` (context) left symbolic and
an optional memory tier (`!df.tensor<[4096, 1024], bf16, hbm>`) on declared tensors.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from xdsl.dialects.builtin import (
    I64,
    ArrayAttr,
    BFloat16Type,
    Float8E4M3FNType,
    Float16Type,
    Float32Type,
    FunctionType,
    IntAttr,
    IntegerAttr,
    ModuleOp,
    StringAttr,
    SymbolNameConstraint,
    SymbolRefAttr,
    i8,
    i32,
)
from xdsl.dialects.utils import parse_func_op_like, print_func_op_like
from xdsl.ir import Attribute, Block, Dialect, Operation, ParametrizedAttribute, Region, SSAValue, TypeAttribute
from xdsl.irdl import (
    AttrSizedOperandSegments,
    IRDLOperation,
    ParsePropInAttrDict,
    irdl_attr_definition,
    irdl_op_definition,
    opt_prop_def,
    prop_def,
    region_def,
    result_def,
    traits_def,
    var_operand_def,
    var_result_def,
)
from xdsl.parser import AttrParser, Parser
from xdsl.printer import Printer
from xdsl.traits import (
    HasParent,
    IsolatedFromAbove,
    IsTerminator,
    NoTerminator,
    SymbolOpInterface,
    SymbolTable,
)
from xdsl.utils.exceptions import PassFailedException, VerifyException

from dfdsl.dialects import shapes
from dfdsl.dialects.shapes import DTYPE_BYTES, TIERS, Shape, TensorShape

_DTYPE_TO_TYPE: dict[str, Attribute] = {
    "bf16": BFloat16Type(),
    "fp16": Float16Type(),
    "fp32": Float32Type(),
    "fp8": Float8E4M3FNType(),
    "int8": i8,
    "int32": i32,
}
_TYPE_TO_DTYPE = {v: k for k, v in _DTYPE_TO_TYPE.items()}


def element_type(dtype: str) -> Attribute:
    return _DTYPE_TO_TYPE[dtype]


@dataclass(frozen=True, init=False)
class ShapedTypeBase(ParametrizedAttribute, TypeAttribute):
    """A shape of ints and symbolic dims, an element type, and a memory tier ("" if unplaced).

    Printed as `<[B, 4096], bf16>` or `<[4096, 1024], bf16, hbm>`; shared with `!rdu.buffer`.
    """

    shape: ArrayAttr[IntAttr | StringAttr]
    element_type: Attribute
    tier: StringAttr

    @classmethod
    def make(cls, shape: Shape, dtype: str, tier: str = ""):
        dims = [IntAttr(d) if isinstance(d, int) else StringAttr(d) for d in shape]
        return cls(ArrayAttr(dims), element_type(dtype), StringAttr(tier))

    @property
    def dims(self) -> Shape:
        return tuple(d.data for d in self.shape.data)  # type: ignore[union-attr]

    @property
    def dtype(self) -> str:
        return _TYPE_TO_DTYPE[self.element_type]

    @property
    def tier_name(self) -> str:
        return self.tier.data

    def tensor_shape(self) -> TensorShape:
        return TensorShape(self.dims, self.dtype)

    def with_tier(self, tier: str):
        return type(self)(self.shape, self.element_type, StringAttr(tier))

    def with_dims(self, shape: Shape):
        return type(self).make(shape, self.dtype, self.tier_name)

    def num_bytes(self, batch: int = 1, context: int = 1) -> int:
        sizes = {"B": batch, "S": context}
        return shapes.num_elements(self.dims, sizes) * DTYPE_BYTES[self.dtype]

    def verify(self) -> None:
        if self.element_type not in _TYPE_TO_DTYPE:
            raise VerifyException(
                f"unsupported element type {self.element_type}; use one of "
                + ", ".join(str(t) for t in _DTYPE_TO_TYPE.values())
            )
        for d in self.shape.data:
            if isinstance(d, StringAttr) and d.data not in shapes.SYMBOLIC_DIMS:
                raise VerifyException(f"unknown symbolic dimension {d.data!r}; only B and S are open")
            if isinstance(d, IntAttr) and d.data <= 0:
                raise VerifyException(f"dimensions must be positive, got {d.data}")
        if self.tier.data and self.tier.data not in TIERS:
            raise VerifyException(f"unknown memory tier {self.tier.data!r}; tiers are {', '.join(TIERS)}")

    @classmethod
    def parse_parameters(cls, parser: AttrParser) -> list[Attribute]:
        def dim() -> Attribute:
            value = parser.parse_optional_integer(allow_boolean=False, allow_negative=False)
            if value is not None:
                return IntAttr(value)
            return StringAttr(parser.parse_identifier(" (a dimension: an integer, B or S)"))

        parser.parse_punctuation("<")
        dims = parser.parse_comma_separated_list(parser.Delimiter.SQUARE, dim)
        parser.parse_punctuation(",")
        elt = parser.parse_type()
        tier = ""
        if parser.parse_optional_punctuation(","):
            tier = parser.parse_identifier(" (a memory tier)")
        parser.parse_punctuation(">")
        return [ArrayAttr(dims), elt, StringAttr(tier)]

    def print_parameters(self, printer: Printer) -> None:
        printer.print_string("<[" + ", ".join(str(d) for d in self.dims) + "], ")
        printer.print_attribute(self.element_type)
        if self.tier.data:
            printer.print_string(", " + self.tier.data)
        printer.print_string(">")


@irdl_attr_definition
class TensorType(ShapedTypeBase):
    name = "df.tensor"


# ---------------------------------------------------------------------------------------------
# Structure: the decode-step graph, layers, kernels, calls.


def verify_defined_before_use(block: Block, where: str) -> None:
    """Raises unless each value an op of `block` (or an op nested in it) uses from `block` is
    defined by an earlier op: the parser accepts a use before its definition, and xDSL's verifier
    does not check dominance."""
    seen: set[Operation] = set()
    for op in block.ops:
        for user in op.walk():
            for value in user.operands:
                owner = value.owner
                if isinstance(owner, Operation) and owner.parent is block and owner not in seen:
                    raise VerifyException(f"{where}: {user.name} uses a result of {owner.name} before it is defined")
        seen.add(op)


def _print_func_like(op: IRDLOperation, printer: Printer) -> None:
    print_func_op_like(
        printer,
        op.properties["sym_name"],  # type: ignore[arg-type]
        op.properties["function_type"],  # type: ignore[arg-type]
        op.regions[0],
        op.attributes,
        reserved_attr_names=("sym_name", "function_type"),
    )


def _parse_func_like(cls, parser: Parser):
    name, inputs, outputs, region, extra, _, _ = parse_func_op_like(
        parser, reserved_attr_names=("sym_name", "function_type")
    )
    op = cls(name, inputs, outputs, region)
    if extra is not None:
        op.attributes |= extra.data
    return op


class FuncLikeBase(IRDLOperation):
    """A named, isolated region with typed arguments, ended by a return terminator."""

    sym_name = prop_def(SymbolNameConstraint())
    function_type = prop_def(FunctionType)
    body = region_def("single_block")

    def __init__(
        self,
        name: str,
        inputs: Sequence[Attribute],
        outputs: Sequence[Attribute],
        region: Region | None = None,
    ):
        if region is None:
            region = Region(Block(arg_types=inputs))
        super().__init__(
            properties={
                "sym_name": StringAttr(name),
                "function_type": FunctionType.from_lists(inputs, outputs),
            },
            regions=[region],
        )

    @property
    def args(self):
        return self.body.block.args

    def verify_(self) -> None:
        verify_defined_before_use(self.body.block, f"{self.name} @{self.sym_name.data}")
        if tuple(self.body.block.arg_types) != self.function_type.inputs.data:
            raise VerifyException(f"@{self.sym_name.data}: block arguments differ from the signature")
        ret = self.body.block.last_op
        if isinstance(ret, ReturnOp) and tuple(ret.operand_types) != self.function_type.outputs.data:
            raise VerifyException(f"@{self.sym_name.data}: returned types differ from the signature")

    def print(self, printer: Printer) -> None:
        _print_func_like(self, printer)

    @classmethod
    def parse(cls, parser: Parser):
        return _parse_func_like(cls, parser)


@irdl_op_definition
class LayerOp(FuncLikeBase):
    """A kind of layer (a decoder layer, say): a dataflow graph over its activations and weights."""

    name = "df.layer"
    traits = traits_def(IsolatedFromAbove(), SymbolOpInterface())


@irdl_op_definition
class KernelOp(FuncLikeBase):
    """A fused kernel: operators that run together as one spatial pipeline, called by `df.launch`."""

    name = "df.kernel"
    traits = traits_def(IsolatedFromAbove(), SymbolOpInterface())


@irdl_op_definition
class ReturnOp(IRDLOperation):
    name = "df.return"
    values = var_operand_def()
    traits = traits_def(IsTerminator(), HasParent(LayerOp, KernelOp))
    assembly_format = "attr-dict ($values^ `:` type($values))?"

    def __init__(self, *values: SSAValue):
        super().__init__(operands=[values])


@irdl_op_definition
class GraphOp(IRDLOperation):
    """One decode step of a model, with the run it was written for.

    `sockets` is the tensor-parallel degree asked for; `tp` the degree the graph is sharded to
    (1 until `shard-tensor-parallel` runs). Tensor types inside are per socket. `activations`
    is the tier of the activations passed between kernel calls.
    """

    name = "df.graph"
    sym_name = prop_def(SymbolNameConstraint())
    batch = prop_def(IntegerAttr[I64])
    context = prop_def(IntegerAttr[I64])
    tokens = prop_def(IntegerAttr[I64])
    sockets = prop_def(IntegerAttr[I64])
    tp = prop_def(IntegerAttr[I64])
    target = prop_def(StringAttr)
    activations = prop_def(StringAttr)
    body = region_def("single_block")
    traits = traits_def(NoTerminator(), SymbolOpInterface())
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = "$sym_name attr-dict-with-keyword $body"

    def __init__(self, name: str, *, batch: int, context: int, tokens: int, sockets: int,
                 target: str, activations: str = "sram", tp: int = 1,
                 region: Region | None = None):
        super().__init__(
            properties={
                "sym_name": StringAttr(name),
                "batch": IntegerAttr(batch, 64),
                "context": IntegerAttr(context, 64),
                "tokens": IntegerAttr(tokens, 64),
                "sockets": IntegerAttr(sockets, 64),
                "tp": IntegerAttr(tp, 64),
                "target": StringAttr(target),
                "activations": StringAttr(activations),
            },
            regions=[region or Region(Block())],
        )

    def verify_(self) -> None:
        verify_defined_before_use(self.body.block, f"df.graph @{self.sym_name.data}")
        for key in ("batch", "context", "tokens", "sockets", "tp"):
            if self.properties[key].value.data <= 0:  # type: ignore[union-attr]
                raise VerifyException(f"df.graph: {key} must be positive")
        if self.activations.data not in TIERS:
            raise VerifyException(f"df.graph: unknown tier {self.activations.data!r} for activations")


@irdl_op_definition
class OutputOp(IRDLOperation):
    """The values a decode step produces (the sampled tokens)."""

    name = "df.output"
    values = var_operand_def()
    traits = traits_def(HasParent(GraphOp))
    assembly_format = "attr-dict ($values^ `:` type($values))?"

    def __init__(self, *values: SSAValue):
        super().__init__(operands=[values])


class CallBase(IRDLOperation):
    """A call of a symbol by name: `args` in, `res` out, as the callee's signature says.

    `CALLEE` is the op class the symbol must name, in the same module; anything else, or no such
    symbol, does not verify, so every pass and simulator may look a callee up without checking.
    """

    CALLEE: ClassVar[type[Operation]]

    callee = prop_def(SymbolRefAttr)
    args = var_operand_def(TensorType)
    res = var_result_def(TensorType)
    assembly_format = "$callee `(` $args `)` attr-dict `:` functional-type($args, $res)"

    def __init__(self, callee: str, args: Sequence[SSAValue], result_types: Sequence[Attribute]):
        super().__init__(
            operands=[args], result_types=[result_types], properties={"callee": SymbolRefAttr(callee)}
        )

    def verify_(self) -> None:
        symbol = f"@{self.callee.string_value()}"
        wanted = self.CALLEE.name
        callee = SymbolTable.lookup_symbol(self, self.callee)
        if callee is None:
            raise VerifyException(f"{self.name} {symbol}: the module has no {wanted} {symbol}")
        if not isinstance(callee, self.CALLEE):
            raise VerifyException(f"{self.name} {symbol}: {symbol} is a {callee.name}, not a {wanted}")
        ft: FunctionType = callee.function_type  # type: ignore[attr-defined]
        if tuple(self.args.types) != ft.inputs.data or tuple(self.res.types) != ft.outputs.data:
            raise VerifyException(
                f"{self.name} {symbol}: operand or result types differ from the {wanted}'s signature"
            )


@irdl_op_definition
class CallOp(CallBase):
    """One instance of a layer: its activation in, its own weights and KV cache, its activation out."""

    name = "df.call"
    CALLEE: ClassVar[type[Operation]] = LayerOp


@irdl_op_definition
class LaunchOp(CallBase):
    """One call of a fused kernel: a synchronization boundary (launch, fill, run, drain)."""

    name = "df.launch"
    CALLEE: ClassVar[type[Operation]] = KernelOp


# ---------------------------------------------------------------------------------------------
# Tensor declarations.


class _DeclBase(IRDLOperation):
    tensor_name = prop_def(StringAttr)
    result = result_def(TensorType)
    traits = traits_def(HasParent(GraphOp))
    assembly_format = "$tensor_name attr-dict `:` type($result)"

    def __init__(self, tensor_name: str, type_: TensorType):
        super().__init__(properties={"tensor_name": StringAttr(tensor_name)}, result_types=[type_])


@irdl_op_definition
class InputOp(_DeclBase):
    """A tensor fed to each decode step (the previous step's tokens)."""

    name = "df.input"


@irdl_op_definition
class WeightOp(_DeclBase):
    """A model parameter, read once per decode step whatever the batch."""

    name = "df.weight"

    def verify_(self) -> None:
        if set(self.result.type.dims) & set(shapes.SYMBOLIC_DIMS):  # type: ignore[attr-defined]
            raise VerifyException(f"weight {self.tensor_name.data!r}: weights cannot depend on B or S")


@irdl_op_definition
class KvCacheOp(_DeclBase):
    """A KV cache: `S` tokens of context per sequence, read in full and appended to each step."""

    name = "df.kv_cache"

    def verify_(self) -> None:
        dims = self.result.type.dims  # type: ignore[attr-defined]
        if "S" not in dims:
            raise VerifyException(f"kv cache {self.tensor_name.data!r} must have a context dimension S")


# ---------------------------------------------------------------------------------------------
# Operators: one op per dataflow operator, each checked by its rule in `shapes`.


class OperatorBase(IRDLOperation):
    """An operator: tensors in, one tensor out; its shape rule lives in `dfdsl.dialects.shapes`."""

    inputs = var_operand_def(TensorType)
    result = result_def(TensorType)
    heads = opt_prop_def(IntegerAttr[I64])
    kv_heads = opt_prop_def(IntegerAttr[I64])
    head_dim = opt_prop_def(IntegerAttr[I64])
    top_k = opt_prop_def(IntegerAttr[I64])
    rope_dim = opt_prop_def(IntegerAttr[I64])
    v_head = opt_prop_def(IntegerAttr[I64])
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = "$inputs attr-dict `:` functional-type($inputs, $result)"

    @property
    def operator(self) -> str:
        return self.name.removeprefix("df.")

    def int_attrs(self) -> dict[str, int]:
        return {
            k: v.value.data  # type: ignore[union-attr]
            for k, v in self.properties.items()
            if isinstance(v, IntegerAttr)
        }

    @classmethod
    def make(cls, inputs: Sequence[SSAValue], result_type: TensorType, **int_attrs: int):
        return cls(
            operands=[inputs],
            result_types=[result_type],
            properties={k: IntegerAttr(v, 64) for k, v in int_attrs.items()},
        )

    def verify_(self) -> None:
        wanted = set(shapes.OPERATOR_ATTRS.get(self.operator, ()))
        given = set(self.int_attrs())
        if given - wanted:
            raise VerifyException(f"{self.name} takes no attribute {', '.join(sorted(given - wanted))}")
        try:
            expected = shapes.infer(
                self.operator,
                [t.tensor_shape() for t in self.inputs.types],  # type: ignore[attr-defined]
                self.int_attrs(),
            )
        except shapes.ShapeError as err:
            raise VerifyException(f"{self.name}: {err.message}") from err
        got = self.result.type.tensor_shape()  # type: ignore[attr-defined]
        if got != expected:
            raise VerifyException(f"{self.name}: result should be {expected}, got {got}")


def _operator(op_name: str, doc: str) -> type[OperatorBase]:
    cls = type(
        "".join(p.capitalize() for p in op_name.split("_")) + "Op",
        (OperatorBase,),
        {"name": f"df.{op_name}", "__doc__": doc, "__module__": __name__},
    )
    return irdl_op_definition(cls)


EmbeddingOp = _operator("embedding", "Gather the rows of a table for token ids.")
LinearOp = _operator("linear", "x[..., K] @ w[K, N] (+ bias[N]): a projection by a weight.")
MatmulOp = _operator("matmul", "a[..., K] @ b[K, N] where both are activations.")
RmsnormOp = _operator("rmsnorm", "RMS normalisation over the last dimension, with a scale.")
LayernormOp = _operator("layernorm", "Layer normalisation over the last dimension, scale and bias.")
RopeOp = _operator("rope", "Rotary position embedding, applied per head of `head_dim`.")
AttentionOp = _operator(
    "attention",
    "Grouped-query attention over a KV cache of S tokens, appending this step's key and value.",
)
MlaAttentionOp = _operator(
    "mla_attention", "Multi-head latent attention over a latent cache, with absorbed up-projections."
)
SoftmaxOp = _operator("softmax", "Softmax over the last dimension.")
SiluOp = _operator("silu", "x * sigmoid(x).")
GeluOp = _operator("gelu", "Gaussian error linear unit.")
MulOp = _operator("mul", "Elementwise product.")
AddOp = _operator("add", "Elementwise sum (residual connections).")
AllReduceOp = _operator("all_reduce", "Sum partial results across the tensor-parallel sockets.")
LmHeadOp = _operator("lm_head", "The classifier: hidden state to logits over the vocabulary.")
SampleOp = _operator("sample", "Pick the next token from the logits.")
MoeRouterOp = _operator("moe_router", "Score experts for each token; the top_k are used.")
MoeExpertsOp = _operator(
    "moe_experts", "Run each token through its top_k experts (SwiGLU MLPs) and combine them."
)

OPERATORS: dict[str, type[OperatorBase]] = {
    cls.name.removeprefix("df."): cls
    for cls in (
        EmbeddingOp, LinearOp, MatmulOp, RmsnormOp, LayernormOp, RopeOp, AttentionOp,
        MlaAttentionOp, SoftmaxOp, SiluOp, GeluOp, MulOp, AddOp, AllReduceOp, LmHeadOp,
        SampleOp, MoeRouterOp, MoeExpertsOp,
    )
}
assert set(OPERATORS) == set(shapes.RULES), "every operator needs an op and a shape rule"


# ---------------------------------------------------------------------------------------------
# Kernel looping.


@irdl_op_definition
class LoopOp(IRDLOperation):
    """A pipelined loop of `trip_count` iterations inside a looped kernel.

    `carried` values flow from one iteration to the next (the hidden state, kept on chip);
    each `stacked` operand has a leading dimension of `trip_count`, and iteration i sees slice i.
    The body's arguments are the carried values, then one slice per stacked operand.
    """

    name = "df.loop"
    trip_count = prop_def(IntegerAttr[I64])
    carried = var_operand_def(TensorType)
    stacked = var_operand_def(TensorType)
    res = var_result_def(TensorType)
    body = region_def("single_block")
    irdl_options = (AttrSizedOperandSegments(as_property=True), ParsePropInAttrDict())
    assembly_format = (
        "$trip_count `carried` `(` $carried `:` type($carried) `)` "
        "`stacked` `(` $stacked `:` type($stacked) `)` attr-dict-with-keyword `->` type($res) $body"
    )

    def __init__(self, trip_count: int, carried: Sequence[SSAValue], stacked: Sequence[SSAValue],
                 body: Region):
        super().__init__(
            operands=[carried, stacked],
            result_types=[[v.type for v in carried]],
            properties={"trip_count": IntegerAttr(trip_count, 64)},
            regions=[body],
        )

    def verify_(self) -> None:
        verify_defined_before_use(self.body.block, "df.loop")
        n = self.trip_count.value.data
        if n < 1:
            raise VerifyException("df.loop: trip count must be positive")
        args = self.body.block.args
        if len(args) != len(self.carried) + len(self.stacked):
            raise VerifyException("df.loop: the body takes the carried values then one slice per stacked operand")
        for value, arg in zip(self.carried, args):
            if arg.type != value.type:
                raise VerifyException("df.loop: a carried body argument differs from its operand's type")
        for value, arg in zip(self.stacked, args[len(self.carried):]):
            dims = value.type.dims  # type: ignore[attr-defined]
            if not dims or dims[0] != n:
                raise VerifyException(
                    f"df.loop: stacked operand of shape [{', '.join(map(str, dims))}] must have "
                    f"the trip count {n} as its leading dimension"
                )
            if arg.type.dims != dims[1:] or arg.type.dtype != value.type.dtype:  # type: ignore[attr-defined]
                raise VerifyException("df.loop: a stacked body argument must be one slice of its operand")
        if tuple(self.res.types) != tuple(self.carried.types):
            raise VerifyException("df.loop: results must have the carried values' types")


@irdl_op_definition
class YieldOp(IRDLOperation):
    """The carried values for the next iteration of a `df.loop`."""

    name = "df.yield"
    values = var_operand_def()
    traits = traits_def(IsTerminator(), HasParent(LoopOp))
    assembly_format = "attr-dict ($values^ `:` type($values))?"

    def __init__(self, *values: SSAValue):
        super().__init__(operands=[values])


DECLS = (InputOp, WeightOp, KvCacheOp)


def the_graph(module: ModuleOp, who: str) -> GraphOp:
    """The module's one `df.graph`; `who` (a pass name) is named in the error when there is not one."""
    graphs = [op for op in module.ops if isinstance(op, GraphOp)]
    if len(graphs) != 1:
        raise PassFailedException(f"{who}: expected one df.graph in the module, found {len(graphs)}")
    return graphs[0]

Df = Dialect(
    "df",
    [
        GraphOp, OutputOp, LayerOp, KernelOp, ReturnOp, CallOp, LaunchOp, InputOp, WeightOp,
        KvCacheOp, LoopOp, YieldOp, *OPERATORS.values(),
    ],
    [TensorType],
)
