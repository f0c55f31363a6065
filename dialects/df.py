"""The `df` dialect: a target-neutral dataflow graph of one decode step.

A module holds `df.layer` definitions (callable regions, one per kind of layer), and one
`df.graph`, the decode step: tensor declarations (`df.input`, `df.weight`, `df.kv_cache`),
operators, and `df.call`s of layers. Fusion replaces layers and operators by `df.kernel`s and
`df.launch`es; kernel looping wraps a kernel body in a pipelined `df.loop` over stacked weights.
Tensors are `!df.tensor<[B, 4096], bf16>`, with `B` (batch) and `S` (context) left symbolic and
an optional memory tier (`!df.tensor<[4096, 1024], bf16, hbm>`) on declared tensors. A prefill
graph (one with a `prompt`) processes `P` prompt tokens per sequence in one pass: its
activations are `!df.tensor<[B, P, 4096], bf16>`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import ClassVar, Protocol, TypeVar, cast

from xdsl.dialects.builtin import (
    I64,
    ArrayAttr,
    BFloat16Type,
    Float8E4M3FNType,
    Float16Type,
    Float32Type,
    FloatAttr,
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
    VarOperand,
    VarOpResult,
    irdl_attr_definition,
    irdl_op_definition,
    operand_def,
    opt_operand_def,
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
    Pure,
    SymbolOpInterface,
    SymbolTable,
)
from xdsl.utils.exceptions import PassFailedException, VerifyException

from dfdsl.dialects import shapes
from dfdsl.dialects.shapes import DTYPE_BYTES, TIERS, Shape, TensorShape
from dfdsl.errors import LoweringError
from dfdsl.hardware import bundled_kind, bundled_targets

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
        return tuple(d.data for d in self.shape.data)

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

    def num_bytes(self, batch: int = 1, context: int = 1, prompt: int = 1) -> int:
        sizes = {"B": batch, "S": context, "P": prompt}
        return shapes.num_elements(self.dims, sizes) * DTYPE_BYTES[self.dtype]

    def verify(self) -> None:
        if self.element_type not in _TYPE_TO_DTYPE:
            raise VerifyException(
                f"unsupported element type {self.element_type}; use one of "
                + ", ".join(str(t) for t in _DTYPE_TO_TYPE.values())
            )
        for d in self.shape.data:
            if isinstance(d, StringAttr) and d.data not in shapes.SYMBOLIC_DIMS:
                raise VerifyException(f"unknown symbolic dimension {d.data!r}; only B, S and P are open")
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


def tensor_type(type_: Attribute) -> TensorType:
    """`type_`, which the op it comes from declares a `!df.tensor` (an operand's, a `df.kernel`'s
    argument's), narrowed to one."""
    if not isinstance(type_, TensorType):
        raise VerifyException(f"expected a !df.tensor, got {type_}")
    return type_


def tensor_operand() -> SSAValue[TensorType]:
    """An operand that is a `!df.tensor`, typed as one (xDSL's `operand_def` is not generic)."""
    return cast("SSAValue[TensorType]", operand_def(TensorType))


def opt_tensor_operand() -> SSAValue[TensorType] | None:
    """An optional operand that is a `!df.tensor`, typed as one."""
    return cast("SSAValue[TensorType] | None", opt_operand_def(TensorType))


def var_tensor_operand() -> VarOperand[TensorType]:
    """A variadic operand of `!df.tensor`s, typed as such."""
    return cast("VarOperand[TensorType]", var_operand_def(TensorType))


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


def _print_func_like(op: FuncLikeBase, printer: Printer) -> None:
    print_func_op_like(
        printer,
        op.sym_name,
        op.function_type,
        op.body,
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


def verify_unique_names(named: Iterable[tuple[str, Operation]], where: str, what: str) -> None:
    """No two ops of `named` (name, op) share a name: two weights called `w` are two tensors a pass
    could not tell apart, and memory placement would count one twice."""
    seen: dict[str, Operation] = {}
    for name, op in named:
        if name in seen:
            raise VerifyException(f"{where} {what} {name!r} twice ({seen[name].name} and {op.name})")
        seen[name] = op


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


SPLITS: dict[str, tuple[str, ...]] = {
    "attention": ("tensor", "data"),
    "experts": ("tensor", "expert", "data"),
    "dense": ("tensor", "data"),
}
"""The parts of a model a `parallel` block splits, and the splits each may take: `tensor` (split
the weights over the sockets, Megatron-style), `expert` (the routed experts spread over the
sockets), `data` (the weights whole on every socket, the batch's sequences split over them)."""

PARALLEL_SETTINGS = (*SPLITS, "imbalance", "pad")
"""Every setting of a `parallel` block (and of `--parallel`)."""


class ParallelError(ValueError):
    """A bad `parallel` setting: `key` names it (for the located error the front end makes)."""

    def __init__(self, key: str, message: str):
        super().__init__(message)
        self.key = key
        self.message = message


@dataclass(frozen=True)
class Parallel:
    """How a model is split over its sockets: each part's split, the routing's load imbalance and
    whether uneven splits are padded. `df.graph`'s `parallel` property holds it as text
    (`attention=data,experts=expert,dense=data,imbalance=1,pad=on`)."""

    attention: str = "tensor"
    experts: str = "tensor"
    dense: str = "tensor"
    imbalance: float = 1.0
    """The busiest socket's routed tokens over the mean, under expert parallelism (1: even)."""
    pad: bool = True
    """Pad a dimension that does not divide the sockets (False: refuse, E020)."""

    @property
    def data_parallel(self) -> bool:
        """Each socket runs the whole step for its own sequences (attention split by batch)."""
        return self.attention == "data"

    def text(self) -> str:
        return (f"attention={self.attention},experts={self.experts},dense={self.dense},"
                f"imbalance={self.imbalance:g},pad={'on' if self.pad else 'off'}")

    @staticmethod
    def of(given: dict[str, str | float | bool]) -> Parallel:
        """The plan from the settings given (strings for the splits and `pad`, a number for
        `imbalance`); raises `ParallelError`. A split left out follows `attention`: `data`
        attention gives every socket its own sequences, so the dense layers run data-parallel and
        the experts expert-parallel; `tensor` attention leaves both `tensor`. With `data` attention
        a `tensor` split of either is refused: it would need the tokens of every socket gathered
        before the layer and scattered back after it, collectives no pass emits."""
        for key, value in given.items():
            if key not in PARALLEL_SETTINGS:
                raise ParallelError(key, f"`parallel` has no setting `{key}`; settings are "
                                    + ", ".join(PARALLEL_SETTINGS))
            if key in SPLITS and value not in SPLITS[key]:
                raise ParallelError(key, f"`{key}` is split `{value}`, which it cannot be; {key} takes "
                                    + " or ".join(SPLITS[key]))
        imbalance = given.get("imbalance", 1.0)
        if isinstance(imbalance, bool) or not isinstance(imbalance, int | float) or not 1 <= imbalance <= 1024:
            raise ParallelError("imbalance", f"`imbalance` is {imbalance}; it is the busiest socket's "
                                "routed tokens over the mean, a number from 1 (even) to 1,024")
        pad = given.get("pad", True)
        if pad not in (True, False, "on", "off"):
            raise ParallelError("pad", f"`pad` is {pad}; it is on or off")
        attention = str(given.get("attention", "tensor"))
        data = attention == "data"
        plan = Parallel(attention, str(given.get("experts", "expert" if data else "tensor")),
                        str(given.get("dense", "data" if data else "tensor")), float(imbalance),
                        pad in (True, "on"))
        if data:
            for key in ("experts", "dense"):
                if getattr(plan, key) == "tensor":
                    raise ParallelError(key, f"`attention = data` gives each socket its own sequences, so "
                                        f"`{key} = tensor` would need every socket's tokens: an all-gather of "
                                        "them before each such layer and a reduce-scatter back after it, which "
                                        "dfdsl does not model (docs/timing-model.md, Limits); use "
                                        + ("`experts = expert` or `experts = data`" if key == "experts"
                                           else "`dense = data` (each socket then reads the dense weights and the "
                                                "LM head whole)") + ", or `attention = tensor`")
        return plan

    @staticmethod
    def parts(text: str) -> dict[str, str | float | bool]:
        """The settings of `key=value,...` text (as `--parallel` and the graph's property give
        them), unchecked but for their form; raises `ParallelError`."""
        given: dict[str, str | float | bool] = {}
        for part in filter(None, (p.strip() for p in text.split(","))):
            key, eq, value = part.partition("=")
            key, value = key.strip(), value.strip()
            if not eq or not value:
                raise ParallelError(key, f"`{part}` is not `setting=value` (attention=data, say)")
            if key in given:
                raise ParallelError(key, f"`{key}` is given twice")
            if key == "imbalance":
                try:
                    given[key] = float(value)
                except ValueError:
                    raise ParallelError(key, f"`imbalance` is {value}, not a number such as 1.2") from None
            else:
                given[key] = value
        return given

    @staticmethod
    def parse(text: str) -> Parallel:
        """The plan of `key=value,...` text; raises `ParallelError`."""
        return Parallel.of(Parallel.parts(text))


@irdl_op_definition
class GraphOp(IRDLOperation):
    """One decode step of a model, with the run it was written for; or, with a `prompt`, one
    prefill pass of `prompt` tokens per sequence (its activations carry the dimension `P`).

    `sockets` is the tensor-parallel degree asked for; `tp` the degree the graph is sharded to
    (1 until `shard-tensor-parallel` runs). Tensor types inside are per socket. `activations`
    is the tier of the activations passed between kernel calls. `explicit_tiers` lists the tensor
    classes (`PLACEMENT_CLASSES`), and `explicit_tensors` the tensor names or name patterns
    (`layers.*.wq`), whose tier the `.dfl` file set: memory placement never moves those.
    `parallel` says how the model is split (`Parallel`; tensor parallel throughout when absent).
    When its attention is `data`, a sharded graph's types are those of one socket's sequences: a
    socket holds ceil(batch / tp) of the run's `batch` (`sequences_per_socket`).
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
    prompt = opt_prop_def(IntegerAttr[I64])
    explicit_tiers = opt_prop_def(ArrayAttr[StringAttr])
    explicit_tensors = opt_prop_def(ArrayAttr[StringAttr])
    parallel = opt_prop_def(StringAttr)
    body = region_def("single_block")
    traits = traits_def(NoTerminator(), SymbolOpInterface())
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = "$sym_name attr-dict-with-keyword $body"

    def __init__(self, name: str, *, batch: int, context: int, tokens: int, sockets: int,
                 target: str, activations: str = "sram", tp: int = 1, prompt: int | None = None,
                 explicit_tiers: Sequence[str] = (), explicit_tensors: Sequence[str] = (),
                 parallel: Parallel | None = None, region: Region | None = None):
        explicit = {"explicit_tiers": explicit_tiers, "explicit_tensors": explicit_tensors}
        prefill = {} if prompt is None else {"prompt": IntegerAttr(prompt, 64)}
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
                **prefill,
                **{key: ArrayAttr(StringAttr(n) for n in names) for key, names in explicit.items() if names},
                **({} if parallel is None else {"parallel": StringAttr(parallel.text())}),
            },
            regions=[region or Region(Block())],
        )

    @property
    def prompt_tokens(self) -> int:
        """Tokens per sequence one pass processes: the `prompt` of a prefill graph, 1 in a decode step."""
        return 1 if self.prompt is None else self.prompt.value.data

    @property
    def plan(self) -> Parallel:
        """How the model is split over the sockets (tensor parallel throughout by default)."""
        return Parallel() if self.parallel is None else Parallel.parse(self.parallel.data)

    @property
    def batch_shards(self) -> int:
        """Over how many sockets the batch's sequences are split: the sockets of a sharded graph
        whose attention is data-parallel, else 1 (every socket holds every sequence)."""
        return self.tp.value.data if self.plan.data_parallel else 1

    def sequences_per_socket(self, batch: int) -> int:
        """The sequences of a run of `batch` that the busiest socket holds: ceil(batch / shards),
        the other sockets' empty slots padding the batch."""
        return -(-batch // self.batch_shards)

    def classes_placed_explicitly(self) -> set[str]:
        """The entries of `explicit_tiers`."""
        return {c.data for c in self.explicit_tiers.data} if self.explicit_tiers else set()

    def tensors_placed_explicitly(self) -> set[str]:
        """The entries of `explicit_tensors`."""
        return {t.data for t in self.explicit_tensors.data} if self.explicit_tensors else set()

    def verify_(self) -> None:
        verify_defined_before_use(self.body.block, f"df.graph @{self.sym_name.data}")
        for key, value in (("batch", self.batch), ("context", self.context), ("tokens", self.tokens),
                           ("sockets", self.sockets), ("tp", self.tp), ("prompt", self.prompt)):
            if value is not None and value.value.data <= 0:
                raise VerifyException(f"df.graph: {key} must be positive")
        tp, sockets = self.tp.value.data, self.sockets.value.data
        if tp not in (1, sockets):
            raise VerifyException(f"df.graph: tp = {tp} with sockets = {sockets}; a graph is sharded to its "
                                  "sockets (tp = sockets) or not yet (tp = 1)")
        if bundled_kind(self.target.data) is None:
            raise VerifyException(f"df.graph: unknown target {self.target.data!r}; targets are "
                                  f"{', '.join(bundled_targets())}")
        if self.activations.data not in TIERS:
            raise VerifyException(f"df.graph: unknown tier {self.activations.data!r} for activations")
        if self.prompt is None:
            for op in self.body.block.ops:
                for result in op.results:
                    if isinstance(result.type, TensorType) and shapes.PROMPT in result.type.dims:
                        raise VerifyException(
                            f"df.graph @{self.sym_name.data}: {op.name} gives {result.type}, a prompt's tensor, "
                            "and the graph has no `prompt` (a decode step processes one token per sequence)"
                        )
        if self.parallel is not None:
            try:
                Parallel.parse(self.parallel.data)
            except ParallelError as err:
                raise VerifyException(f"df.graph: parallel = {self.parallel.data!r}: {err.message}") from None
        unknown = sorted(self.classes_placed_explicitly() - set(PLACEMENT_CLASSES))
        if unknown:
            raise VerifyException(
                f"df.graph: explicit_tiers holds {', '.join(map(repr, unknown))}, not a tensor class; "
                f"classes are {', '.join(PLACEMENT_CLASSES)}"
            )
        verify_unique_names(((op.tensor_name.data, op) for op in self.body.block.ops if isinstance(op, DeclBase)),
                            f"df.graph @{self.sym_name.data}", "declares the tensor")


@irdl_op_definition
class OutputOp(IRDLOperation):
    """The values a decode step produces (the sampled tokens)."""

    name = "df.output"
    values = var_operand_def()
    traits = traits_def(HasParent(GraphOp))
    assembly_format = "attr-dict ($values^ `:` type($values))?"

    def __init__(self, *values: SSAValue):
        super().__init__(operands=[values])


class Callee(Protocol):
    """What a call may name: an op with a signature (`df.layer`, `df.kernel`, a target's kernel)."""

    name: ClassVar[str]
    function_type: FunctionType


class CallBase(IRDLOperation):
    """A call of a symbol by name: `args` in, `res` out, as the callee's signature says.

    `CALLEE` is the op class the symbol must name, in the same module; anything else, or no such
    symbol, does not verify, so every pass and simulator may look a callee up without checking.
    """

    CALLEE: ClassVar[type[Callee]]

    callee = prop_def(SymbolRefAttr)
    args = var_operand_def(TensorType)
    # Typed as any shaped value, not as TensorType, so a target's call may constrain it to its buffer type.
    res: VarOpResult[ShapedTypeBase] = var_result_def(TensorType)
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
        ft = callee.function_type
        if tuple(self.args.types) != ft.inputs.data or tuple(self.res.types) != ft.outputs.data:
            raise VerifyException(
                f"{self.name} {symbol}: operand or result types differ from the {wanted}'s signature"
            )


SymbolT = TypeVar("SymbolT", bound=Operation)


def lookup(scope: Operation, name: str, kind: type[SymbolT], who: str) -> SymbolT:
    """The `kind` op named `name` in the module around `scope`.

    A call's verifier makes sure the symbol it names is there and of its `CALLEE` class; in a module
    that was not verified, a `LoweringError` that names `who` says it is not.
    """
    found = SymbolTable.lookup_symbol(scope, name)
    if not isinstance(found, kind):
        raise LoweringError(f"{who}: the module has no {kind.name} @{name}")
    return found


@irdl_op_definition
class CallOp(CallBase):
    """One instance of a layer: its activation in, its own weights and KV cache, its activation out."""

    name = "df.call"
    CALLEE: ClassVar[type[Callee]] = LayerOp


@irdl_op_definition
class LaunchOp(CallBase):
    """One call of a fused kernel: a synchronization boundary (launch, fill, run, drain)."""

    name = "df.launch"
    CALLEE: ClassVar[type[Callee]] = KernelOp


# ---------------------------------------------------------------------------------------------
# Tensor declarations.


class DeclBase(IRDLOperation):
    """A declared tensor of the graph, named `tensor_name`. The class variables say what the
    front end, memory placement and the target dialects call such a tensor."""

    KEYWORD: ClassVar[str]
    """The `.dfl` keyword that declares one (`weight w: bf16[4096, 1024]`)."""
    PLACEMENT_CLASS: ClassVar[str]
    """The tensor class a `.dfl` `place` block names for it (`weights -> hbm`)."""
    BUFFER_KIND: ClassVar[str]
    """What a target buffer of it holds, its `kind` (`rdu.buffer "wq" kind weight`)."""

    tensor_name = prop_def(StringAttr)
    result = result_def(TensorType)
    traits = traits_def(HasParent(GraphOp))
    assembly_format = "$tensor_name attr-dict `:` type($result)"

    def __init__(self, tensor_name: str, type_: TensorType):
        super().__init__(properties={"tensor_name": StringAttr(tensor_name)}, result_types=[type_])


@irdl_op_definition
class InputOp(DeclBase):
    """A tensor fed to each decode step (the previous step's tokens)."""

    KEYWORD: ClassVar[str] = "in"
    PLACEMENT_CLASS: ClassVar[str] = "inputs"
    BUFFER_KIND: ClassVar[str] = "input"

    name = "df.input"


@irdl_op_definition
class WeightOp(DeclBase):
    """A model parameter, read once per decode step whatever the batch.

    A weight `tied_to` another is a view of that weight's storage (an LM head that reads the
    embedding table transposed): `%lm_head = df.weight "lm_head" tied_to "embed" : ...`. It holds
    no bytes of its own; its type is what its readers see of the storage (per socket, a part of
    it), in the storage's tier.
    """

    KEYWORD: ClassVar[str] = "weight"
    PLACEMENT_CLASS: ClassVar[str] = "weights"
    BUFFER_KIND: ClassVar[str] = "weight"

    name = "df.weight"
    tied_to = opt_prop_def(StringAttr)
    assembly_format = "$tensor_name (`tied_to` $tied_to^)? attr-dict `:` type($result)"

    def __init__(self, tensor_name: str, type_: TensorType, tied_to: str = ""):
        super().__init__(tensor_name, type_)
        if tied_to:
            self.properties["tied_to"] = StringAttr(tied_to)

    def storage(self) -> WeightOp | None:
        """The weight this one is tied to, found in the same graph (None if untied or absent)."""
        if self.tied_to is None:
            return None
        graph = self.parent_op()
        ops = graph.body.block.ops if isinstance(graph, GraphOp) else ()
        return next((op for op in ops if isinstance(op, WeightOp) and op.tensor_name == self.tied_to), None)

    def verify_(self) -> None:
        name = f"weight {self.tensor_name.data!r}"
        if set(self.result.type.dims) & set(shapes.SYMBOLIC_DIMS):
            raise VerifyException(f"{name}: weights cannot depend on B or S")
        if self.tied_to is None:
            return
        storage = self.storage()
        if storage is None or storage.tied_to is not None:
            raise VerifyException(f"{name} is tied to {self.tied_to.data!r}, which is not an untied "
                                  "weight of the same graph")
        mine, theirs = self.result.type, storage.result.type
        if (mine.dtype, mine.tier_name) != (theirs.dtype, theirs.tier_name):
            raise VerifyException(f"{name}: a tied weight has the dtype and tier of its storage "
                                  f"{self.tied_to.data!r}, {theirs.dtype} in {theirs.tier_name or 'no tier'}")
        if mine.num_bytes() > theirs.num_bytes():
            raise VerifyException(f"{name} is larger than its storage {self.tied_to.data!r}")


@irdl_op_definition
class KvCacheOp(DeclBase):
    """A KV cache: `S` tokens of context per sequence, read in full and appended to each step."""

    KEYWORD: ClassVar[str] = "cache"
    PLACEMENT_CLASS: ClassVar[str] = "kv_cache"
    BUFFER_KIND: ClassVar[str] = "kv_cache"

    name = "df.kv_cache"

    def verify_(self) -> None:
        dims = self.result.type.dims
        if "S" not in dims:
            raise VerifyException(f"kv cache {self.tensor_name.data!r} must have a context dimension S")


# ---------------------------------------------------------------------------------------------
# Operators: one op per dataflow operator, each checked by its rule in `shapes`.


class OperatorBase(IRDLOperation):
    """An operator: named tensor operands, one tensor result, and the integer properties it takes.

    Its operands, in the order the op declares them, are the operands of its shape rule in
    `dfdsl.dialects.shapes` (the rules the front end checks `.dfl` files with), and the verifier
    checks the result against that rule. Every operator prints as
    `df.linear %x, %w {...} : (...) -> ...`. The class variables are what the passes know of it.
    """

    HEAVY: ClassVar[bool] = False
    """The operator carries the bulk of a step's work (a projection, attention, experts, a gather
    from a table, the sampling pass over the vocabulary's logits): on an RDU it gets a pipeline
    stage of its own, on a GPU a kernel of its own (projections of one input share a GEMM), and a
    fused kernel is named after its last heavy operator. Light operators (`LightOperatorBase`)
    ride along with a neighbour; the collectives (`CollectiveBase`) are neither."""

    result = result_def(TensorType)
    irdl_options = (ParsePropInAttrDict(),)

    def __init__(self, *operands: SSAValue, result_type: Attribute, **int_properties: int):
        """Operands in the order the op declares them (an optional one, last, may be left out);
        the integer properties by name."""
        declared = len(type(self).get_irdl_definition().operands)
        super().__init__(
            operands=[*operands, *[None] * (declared - len(operands))],
            result_types=[result_type],
            properties={k: IntegerAttr(v, 64) for k, v in int_properties.items()},
        )

    @property
    def operator(self) -> str:
        """The operator's name without the dialect, as the front end and the stage lists spell it."""
        return self.name.removeprefix("df.")

    def int_attrs(self) -> dict[str, int]:
        """The integer properties by name, as the shape rule takes them."""
        return {k: v.value.data for k, v in self.properties.items() if isinstance(v, IntegerAttr)}

    def inferred_shape(self) -> TensorShape:
        """The result the shape rule gives for the current operands; raises `shapes.ShapeError`."""
        operands = [tensor_type(t).tensor_shape() for t in self.operand_types]
        return shapes.infer(self.operator, operands, self.int_attrs())

    def verify_(self) -> None:
        try:
            expected = self.inferred_shape()
        except shapes.ShapeError as err:
            raise VerifyException(f"{self.name}: {err.message}") from err
        got = self.result.type.tensor_shape()
        if got != expected:
            raise VerifyException(f"{self.name}: result should be {expected}, got {got}")


class LightOperatorBase(OperatorBase):
    """A norm, rotary embedding, activation or elementwise operator: a little arithmetic per
    element of its result, fused with its heavy neighbours."""

    FLOPS_PER_ELEMENT: ClassVar[int]
    """FLOPs per result element (estimates: light operators are never the bottleneck)."""

    traits = traits_def(Pure())


_UNARY_FORMAT = "$x attr-dict `:` functional-type(operands, results)"
_BINARY_FORMAT = "$lhs `,` $rhs attr-dict `:` functional-type(operands, results)"
_PROJECTION_FORMAT = "$x `,` $w (`,` $bias^)? attr-dict `:` functional-type(operands, results)"


@irdl_op_definition
class EmbeddingOp(OperatorBase):
    """Gather the rows of `table` for the token `ids`: only this step's rows are read."""

    HEAVY: ClassVar[bool] = True

    name = "df.embedding"
    ids = tensor_operand()
    table = tensor_operand()
    traits = traits_def(Pure())
    assembly_format = "$ids `,` $table attr-dict `:` functional-type(operands, results)"


class ProjectionBase(OperatorBase):
    """x[..., K] @ w[K, N] (+ bias[N]): an activation projected by a weight."""

    HEAVY: ClassVar[bool] = True

    x = tensor_operand()
    w = tensor_operand()
    bias = opt_tensor_operand()
    traits = traits_def(Pure())
    assembly_format = _PROJECTION_FORMAT


@irdl_op_definition
class LinearOp(ProjectionBase):
    """x[..., K] @ w[K, N] (+ bias[N]): a projection by a weight."""

    name = "df.linear"


@irdl_op_definition
class LmHeadOp(ProjectionBase):
    """The classifier: hidden state x[B, H] @ w[H, V] to logits over the vocabulary."""

    name = "df.lm_head"


@irdl_op_definition
class MoeRouterOp(ProjectionBase):
    """Score experts for each token, x[B, H] @ w[H, E]; the `top_k` best are used."""

    name = "df.moe_router"
    top_k = prop_def(IntegerAttr[I64])


@irdl_op_definition
class MatmulOp(OperatorBase):
    """lhs[..., K] @ rhs[K, N] (+ bias[N]) where both factors are activations."""

    HEAVY: ClassVar[bool] = True

    name = "df.matmul"
    lhs = tensor_operand()
    rhs = tensor_operand()
    bias = opt_tensor_operand()
    traits = traits_def(Pure())
    assembly_format = "$lhs `,` $rhs (`,` $bias^)? attr-dict `:` functional-type(operands, results)"


class NormBase(LightOperatorBase):
    """A normalisation of x over its last dimension, with a `scale` (and a `bias`) of that width."""

    x = tensor_operand()
    scale = tensor_operand()
    bias = opt_tensor_operand()
    assembly_format = "$x `,` $scale (`,` $bias^)? attr-dict `:` functional-type(operands, results)"


@irdl_op_definition
class RmsnormOp(NormBase):
    """RMS normalisation over the last dimension, with a scale."""

    FLOPS_PER_ELEMENT: ClassVar[int] = 4  # square, accumulate, multiply by the reciprocal root, scale

    name = "df.rmsnorm"


@irdl_op_definition
class LayernormOp(NormBase):
    """Layer normalisation over the last dimension, with a scale and a bias."""

    # accumulate, centre, square, accumulate, normalise, scale, add the bias
    FLOPS_PER_ELEMENT: ClassVar[int] = 7

    name = "df.layernorm"


@irdl_op_definition
class RopeOp(LightOperatorBase):
    """Rotary position embedding of x, applied per head of `head_dim`."""

    FLOPS_PER_ELEMENT: ClassVar[int] = 3  # x * cos + rotate(x) * sin

    name = "df.rope"
    x = tensor_operand()
    head_dim = prop_def(IntegerAttr[I64])
    assembly_format = _UNARY_FORMAT


@irdl_op_definition
class AttentionOp(OperatorBase):
    """Grouped-query attention of q[B, H*D] over a KV cache of S tokens plus this step's k and v.

    The caches are k_cache[B, S, Hkv, D] and v_cache[B, S, Hkv, Dv]; the step's key k[B, Hkv*D]
    and value v[B, Hkv*Dv] are appended to them. Not pure: it writes the caches.
    """

    HEAVY: ClassVar[bool] = True

    name = "df.attention"
    q = tensor_operand()
    k = tensor_operand()
    v = tensor_operand()
    k_cache = tensor_operand()
    v_cache = tensor_operand()
    heads = prop_def(IntegerAttr[I64])
    kv_heads = prop_def(IntegerAttr[I64])
    assembly_format = (
        "$q `,` $k `,` $v `,` $k_cache `,` $v_cache attr-dict `:` functional-type(operands, results)"
    )


@irdl_op_definition
class MlaAttentionOp(OperatorBase):
    """Multi-head latent attention (DeepSeek), with the up-projections absorbed.

    The cache[B, S, latent + rope_dim] holds one latent vector and one rotary key per token; this
    step's kv[B, latent + rope_dim] is appended to it. q is `heads` heads of (nope + rope_dim), and
    kv_up[latent, heads * (nope + v_head)] the absorbed up-projection. Not pure: it writes the cache.
    """

    HEAVY: ClassVar[bool] = True

    name = "df.mla_attention"
    q = tensor_operand()
    kv = tensor_operand()
    kv_up = tensor_operand()
    cache = tensor_operand()
    heads = prop_def(IntegerAttr[I64])
    rope_dim = prop_def(IntegerAttr[I64])
    v_head = prop_def(IntegerAttr[I64])
    assembly_format = "$q `,` $kv `,` $kv_up `,` $cache attr-dict `:` functional-type(operands, results)"


@irdl_op_definition
class SoftmaxOp(LightOperatorBase):
    """Softmax over the last dimension."""

    FLOPS_PER_ELEMENT: ClassVar[int] = 5  # max, subtract, exp, accumulate, divide

    name = "df.softmax"
    x = tensor_operand()
    assembly_format = _UNARY_FORMAT


@irdl_op_definition
class SiluOp(LightOperatorBase):
    """x * sigmoid(x)."""

    FLOPS_PER_ELEMENT: ClassVar[int] = 4  # exp, add, divide (the sigmoid), multiply

    name = "df.silu"
    x = tensor_operand()
    assembly_format = _UNARY_FORMAT


@irdl_op_definition
class GeluOp(LightOperatorBase):
    """Gaussian error linear unit."""

    # the tanh approximation: cube, two multiply-adds, tanh, add, two multiplies
    FLOPS_PER_ELEMENT: ClassVar[int] = 8

    name = "df.gelu"
    x = tensor_operand()
    assembly_format = _UNARY_FORMAT


@irdl_op_definition
class MulOp(LightOperatorBase):
    """Elementwise product."""

    FLOPS_PER_ELEMENT: ClassVar[int] = 1

    name = "df.mul"
    lhs = tensor_operand()
    rhs = tensor_operand()
    assembly_format = _BINARY_FORMAT


@irdl_op_definition
class AddOp(LightOperatorBase):
    """Elementwise sum (residual connections)."""

    FLOPS_PER_ELEMENT: ClassVar[int] = 1

    name = "df.add"
    lhs = tensor_operand()
    rhs = tensor_operand()
    assembly_format = _BINARY_FORMAT


class CollectiveBase(OperatorBase):
    """An exchange between the tensor-parallel sockets: neither heavy nor light, and not pure,
    since every socket must take part in it."""

    x = tensor_operand()
    assembly_format = _UNARY_FORMAT


@irdl_op_definition
class AllReduceOp(CollectiveBase):
    """Sum x, each socket's partial result, across the tensor-parallel sockets."""

    name = "df.all_reduce"


@irdl_op_definition
class AllGatherOp(CollectiveBase):
    """Put every socket's x side by side on every socket: x[..., n] becomes [..., n * sockets]."""

    name = "df.all_gather"
    sockets = prop_def(IntegerAttr[I64])


@irdl_op_definition
class AllToAllOp(CollectiveBase):
    """Exchange tokens between the sockets for expert parallelism: `dispatch` sends each token of
    x[B, H] to the sockets holding its `top_k` experts, `combine` brings their outputs back;
    `imbalance` is the busiest socket's tokens over the mean."""

    name = "df.all_to_all"
    top_k = prop_def(IntegerAttr[I64])
    phase = opt_prop_def(StringAttr)
    imbalance = opt_prop_def(FloatAttr)

    def verify_(self) -> None:
        super().verify_()
        if self.phase is not None and self.phase.data not in ALL_TO_ALL_PHASES:
            raise VerifyException(f"df.all_to_all: phase is {self.phase.data!r}, not one of "
                                  + ", ".join(ALL_TO_ALL_PHASES))
        if self.imbalance is not None and self.imbalance.value.data < 1:
            raise VerifyException("df.all_to_all: the imbalance (busiest socket over the mean) is at least 1")


ALL_TO_ALL_PHASES = ("dispatch", "combine")


@irdl_op_definition
class SampleOp(OperatorBase):
    """Pick the next token from the logits[B, V]: one pass over the vocabulary per sequence.

    Not pure: sampling may draw at random, so two samples of the same logits can differ. Over
    candidates gathered from the sockets (`top_k`, `all_gather`), it picks one of them.
    """

    HEAVY: ClassVar[bool] = True

    name = "df.sample"
    logits = tensor_operand()
    assembly_format = "$logits attr-dict `:` functional-type(operands, results)"


@irdl_op_definition
class TopKOp(OperatorBase):
    """A socket's `k` best candidates of its share of the logits[B, V], each its logit and its
    vocabulary index (int32[B, 2k]): one pass over the share. With the Gumbel-max trick (noise
    added to the logits first), the best of all sockets' candidates is a sample from the whole
    vocabulary, so k = 1 serves greedy and random sampling alike."""

    HEAVY: ClassVar[bool] = True

    name = "df.top_k"
    logits = tensor_operand()
    k = prop_def(IntegerAttr[I64])
    traits = traits_def(Pure())
    assembly_format = "$logits attr-dict `:` functional-type(operands, results)"


@irdl_op_definition
class MoeExpertsOp(OperatorBase):
    """Run each token of x[B, H] through its `top_k` experts by `scores`[B, E] and combine them.

    Each expert is a SwiGLU MLP: gate[E, H, F], up[E, H, F] and down[E, F, H] hold all experts.
    """

    HEAVY: ClassVar[bool] = True

    name = "df.moe_experts"
    x = tensor_operand()
    scores = tensor_operand()
    gate = tensor_operand()
    up = tensor_operand()
    down = tensor_operand()
    top_k = prop_def(IntegerAttr[I64])
    expert_shards = opt_prop_def(IntegerAttr[I64])
    """Expert parallelism: the experts are spread over this many sockets, this one holding
    ceil(E / shards) of the E experts the scores cover."""
    token_shards = opt_prop_def(IntegerAttr[I64])
    """The sockets whose tokens are routed to these experts: each socket's own sequences reach
    every socket's experts when attention is data-parallel (1: every socket holds every token)."""
    imbalance = opt_prop_def(FloatAttr)
    """The busiest socket's routed tokens over the mean (at least 1)."""
    traits = traits_def(Pure())
    assembly_format = "$x `,` $scores `,` $gate `,` $up `,` $down attr-dict `:` functional-type(operands, results)"

    def shards(self) -> tuple[int, int, float]:
        """(expert_shards, token_shards, imbalance), 1 each when not set."""
        return (self.expert_shards.value.data if self.expert_shards else 1,
                self.token_shards.value.data if self.token_shards else 1,
                self.imbalance.value.data if self.imbalance else 1.0)


OPERATORS: dict[str, type[OperatorBase]] = {
    cls.name.removeprefix("df."): cls
    for cls in (
        EmbeddingOp, LinearOp, MatmulOp, RmsnormOp, LayernormOp, RopeOp, AttentionOp,
        MlaAttentionOp, SoftmaxOp, SiluOp, GeluOp, MulOp, AddOp, AllReduceOp, AllGatherOp, AllToAllOp,
        LmHeadOp, TopKOp, SampleOp, MoeRouterOp, MoeExpertsOp,
    )
}
"""The operators by the name the front end and `shapes.RULES` use."""
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
    carried = var_tensor_operand()
    stacked = var_tensor_operand()
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
            dims = value.type.dims
            if not dims or dims[0] != n:
                raise VerifyException(
                    f"df.loop: stacked operand of shape [{', '.join(map(str, dims))}] must have "
                    f"the trip count {n} as its leading dimension"
                )
            if tensor_type(arg.type).dims != dims[1:] or tensor_type(arg.type).dtype != value.type.dtype:
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
"""The ops that declare a graph's tensors."""

ACTIVATIONS_CLASS = "activations"
"""The placement class of the tensors operators pass between them, which no op declares."""

PLACEMENT_CLASSES = (WeightOp.PLACEMENT_CLASS, KvCacheOp.PLACEMENT_CLASS, ACTIVATIONS_CLASS, InputOp.PLACEMENT_CLASS)
"""Every tensor class a `place` block can name, and `df.graph`'s `explicit_tiers` can hold."""


def the_graph(module: ModuleOp, who: str) -> GraphOp:
    """The module's one `df.graph`; `who` (a pass name) is named in the error when there is not one."""
    graphs = [op for op in module.ops if isinstance(op, GraphOp)]
    if len(graphs) != 1:
        raise PassFailedException(f"{who}: expected one df.graph in the module, found {len(graphs)}")
    return graphs[0]

# ---------------------------------------------------------------------------------------------
# Pipeline parallelism: stage boundaries.


class PipelineSendBase(IRDLOperation):
    """The boundary between two pipeline stages: the activation `x` leaves the sockets of stage
    `stage - 1` over the inter-node link and enters those of `stage`, of `stages` in all; the
    batch runs through the stages as `micro_batches` micro-batches. Ops before the first send
    run on stage 0, ops after the k-th on stage k. A graph's (or program's) sends are numbered
    1 to `stages - 1` in order and agree on `stages` and `micro_batches`. Undecorated: `df` and
    `rdu` each define the op for their values and parent.

    `%y = df.pipeline_send %x {stage = 1 : i64, stages = 2 : i64, micro_batches = 1 : i64} : (...) -> ...`
    """

    stage = prop_def(IntegerAttr[I64])
    stages = prop_def(IntegerAttr[I64])
    micro_batches = prop_def(IntegerAttr[I64])
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = "$x attr-dict `:` functional-type(operands, results)"

    def count(self, key: str) -> int:
        """`stage`, `stages` or `micro_batches` as an int."""
        return cast(IntegerAttr, self.properties[key]).value.data

    def verify_(self) -> None:
        stage, stages, micro = self.count("stage"), self.count("stages"), self.count("micro_batches")
        if not 1 <= stage < stages:
            raise VerifyException(f"{self.name}: stage {stage} of {stages}: a send enters stage 1 to {stages - 1}")
        if micro < 1:
            raise VerifyException(f"{self.name}: micro_batches must be positive, not {micro}")
        operand, result = self.operands[0].type, self.results[0].type
        if operand != result:
            raise VerifyException(f"{self.name}: the activation keeps its type across the link: {operand} "
                                  f"is sent, {result} received")
        block = self.parent_block()
        if block is None:
            return
        sends = [op for op in block.ops if isinstance(op, type(self))]
        index = sends.index(self)
        if stage != index + 1:
            raise VerifyException(f"{self.name}: send {index + 1} of the step enters stage {stage}; "
                                  "sends enter stages 1, 2, ... in order")
        if stages != len(sends) + 1:
            raise VerifyException(f"{self.name}: a pipeline of {stages} stages has {stages - 1} sends, "
                                  f"this step has {len(sends)}")
        if micro != sends[0].count("micro_batches"):
            raise VerifyException(f"{self.name}: every send of a step has the same micro_batches")


@irdl_op_definition
class PipelineSendOp(PipelineSendBase):
    """A pipeline stage boundary in a fused `df.graph` (`pipeline-stages` makes them)."""

    name = "df.pipeline_send"
    x = tensor_operand()
    result = result_def(TensorType)
    traits = traits_def(HasParent(GraphOp))


def pipeline_stage_of(block: Block) -> dict[Operation, int]:
    """The pipeline stage of every op of a graph's or program's block: the number of stage
    boundaries (`PipelineSendBase`) before it; a send belongs to the stage it enters."""
    stage, stages = 0, {}
    for op in block.ops:
        if isinstance(op, PipelineSendBase):
            stage += 1
        stages[op] = stage
    return stages


Df = Dialect(
    "df",
    [
        GraphOp, OutputOp, LayerOp, KernelOp, ReturnOp, CallOp, LaunchOp, InputOp, WeightOp,
        KvCacheOp, LoopOp, YieldOp, PipelineSendOp, *OPERATORS.values(),
    ],
    [TensorType],
)
