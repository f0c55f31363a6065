"""The `rdu` dialect: a decode step as the SN40L runs it.

A module holds one `rdu.program` (the decode step: declared buffers, `rdu.call`s of kernels in
order, `rdu.output`) and the `rdu.kernel`s it calls. A kernel is a spatial pipeline of
`rdu.stage`s (each on its own PCUs and PMUs, with its work per invocation) and `rdu.all_reduce`
collectives, or one `rdu.loop` holding them (a looped kernel). Work is `#rdu.work<c + b*B + bs*B*S>`,
affine in the batch `B` and in batch times context `B*S`, so one program serves every run size.
Everything inside a program is per socket; `sockets` says how many run it side by side.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from xdsl.dialects.builtin import (
    I64,
    ArrayAttr,
    DenseArrayBase,
    IntAttr,
    IntegerAttr,
    StringAttr,
    SymbolNameConstraint,
    i64,
)
from xdsl.ir import Attribute, Block, Dialect, ParametrizedAttribute, Region, SSAValue
from xdsl.irdl import (
    IRDLOperation,
    ParsePropInAttrDict,
    attr_def,
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
from xdsl.parser.base_parser import BaseParser
from xdsl.printer import Printer
from xdsl.traits import HasParent, IsolatedFromAbove, IsTerminator, NoTerminator, SymbolOpInterface
from xdsl.utils.exceptions import DiagnosticException, VerifyException

from dfdsl.dialects import df
from dfdsl.dialects.shapes import DTYPE_BYTES, TIERS, Shape

BUFFER_KINDS = ("input", "weight", "kv_cache")
"""What a declared buffer holds: a step's input, a parameter, or a KV cache."""


@irdl_attr_definition
class BufferType(df.ShapedTypeBase):
    """A buffer in one memory tier: `!rdu.buffer<[32, 4096, 512], bf16, hbm>`; the tier is required."""

    name = "rdu.buffer"

    def verify(self) -> None:
        super().verify()
        if not self.tier.data:
            raise VerifyException(f"!rdu.buffer needs a memory tier ({', '.join(TIERS)})")


# ---------------------------------------------------------------------------------------------
# Work: a quantity per invocation, affine in B and B*S.


class NotAffineError(DiagnosticException):
    """A shape whose size is not of the form c, b*B or bs*B*S, so it cannot be a `Work`."""


def _parse_work_terms(parser: BaseParser) -> tuple[int, int, int]:
    """Parses `1024 + 8*B + 2*B*S` (any order, any subset, `B` alone meaning `1*B`) into coefficients."""
    coefficients = [0, 0, 0]

    def term() -> None:
        factor = parser.parse_optional_integer(allow_boolean=False, allow_negative=False)
        if factor is not None and parser.parse_optional_punctuation("*") is None:
            coefficients[0] += factor
            return
        parser.parse_keyword("B", " (a term of work: N, N*B or N*B*S)")
        per_context = parser.parse_optional_punctuation("*") is not None
        if per_context:
            parser.parse_keyword("S", " (B*S is the only product of dimensions)")
        coefficients[2 if per_context else 1] += 1 if factor is None else factor

    term()
    while parser.parse_optional_punctuation("+") is not None:
        term()
    return coefficients[0], coefficients[1], coefficients[2]


@irdl_attr_definition
class Work(ParametrizedAttribute):
    """FLOPs or bytes per invocation: `const + per_batch*B + per_batch_context*B*S`.

    Printed `#rdu.work<1024 + 8*B + 2*B*S>` with the zero terms left out (`#rdu.work<0>`).
    """

    name = "rdu.work"

    const: IntAttr
    per_batch: IntAttr
    per_batch_context: IntAttr

    @staticmethod
    def make(const: int = 0, per_batch: int = 0, per_batch_context: int = 0) -> Work:
        return Work(IntAttr(const), IntAttr(per_batch), IntAttr(per_batch_context))

    @staticmethod
    def of_elements(dims: Shape) -> Work:
        """The number of elements of a shape: numbers times at most one B and, with it, one S."""
        count = 1
        for d in dims:
            if isinstance(d, int):
                count *= d
        symbols = sorted(d for d in dims if isinstance(d, str))
        if symbols == []:
            return Work.make(count)
        if symbols == ["B"]:
            return Work.make(0, count)
        if symbols == ["B", "S"]:
            return Work.make(0, 0, count)
        raise NotAffineError(
            f"shape [{', '.join(map(str, dims))}] is not affine in B and B*S, so its size cannot be "
            "expressed as rdu work"
        )

    @staticmethod
    def of_bytes(type_: df.ShapedTypeBase) -> Work:
        """The bytes of a tensor or buffer type."""
        return Work.of_elements(type_.dims) * DTYPE_BYTES[type_.dtype]

    @property
    def terms(self) -> tuple[int, int, int]:
        return self.const.data, self.per_batch.data, self.per_batch_context.data

    def at(self, batch: int, context: int) -> int:
        """The value for a run of `batch` sequences with `context` tokens already cached."""
        c, b, bs = self.terms
        return c + b * batch + bs * batch * context

    def __add__(self, other: Work) -> Work:
        return Work.make(*(x + y for x, y in zip(self.terms, other.terms)))

    def __mul__(self, factor: int) -> Work:
        return Work.make(*(x * factor for x in self.terms))

    __rmul__ = __mul__

    def is_zero(self) -> bool:
        return self.terms == (0, 0, 0)

    def verify(self) -> None:
        if any(x < 0 for x in self.terms):
            raise VerifyException(f"#rdu.work<{self.expression()}>: work cannot be negative")

    def expression(self) -> str:
        """`1024 + 8*B + 2*B*S`, without the zero terms; `0` if all are zero."""
        c, b, bs = self.terms
        parts = [str(c)] if c else []
        parts += [f"{'' if b == 1 else f'{b}*'}B"] if b else []
        parts += [f"{'' if bs == 1 else f'{bs}*'}B*S"] if bs else []
        return " + ".join(parts) or "0"

    @classmethod
    def parse_parameters(cls, parser: AttrParser) -> list[Attribute]:
        with parser.in_angle_brackets():
            terms = _parse_work_terms(parser)
        return [IntAttr(x) for x in terms]

    def print_parameters(self, printer: Printer) -> None:
        printer.print_string(f"<{self.expression()}>")


ZERO = Work.make()


def expected_experts_touched(experts: int, top_k: int, batch: int) -> float:
    """Distinct experts a step of `batch` tokens reaches when each picks `top_k` of `experts` uniformly."""
    return experts * (1 - (1 - top_k / experts) ** batch)


# ---------------------------------------------------------------------------------------------
# The program: one decode step.

_PROGRAM_COUNTS = ("batch", "context", "tokens", "sockets", "pcus_per_socket", "pmus_per_socket",
                   "sram_bytes_per_socket")


@irdl_op_definition
class ProgramOp(IRDLOperation):
    """One decode step, per socket: declared buffers, kernel calls in order, the output.

    `sockets` is the tensor-parallel degree the program is sharded to (each socket runs this
    program on its shard); the `*_per_socket` numbers are the chip budget the kernels were sized for.
    """

    name = "rdu.program"
    sym_name = prop_def(SymbolNameConstraint())
    batch = prop_def(IntegerAttr[I64])
    context = prop_def(IntegerAttr[I64])
    tokens = prop_def(IntegerAttr[I64])
    sockets = prop_def(IntegerAttr[I64])
    target = prop_def(StringAttr)
    pcus_per_socket = prop_def(IntegerAttr[I64])
    pmus_per_socket = prop_def(IntegerAttr[I64])
    sram_bytes_per_socket = prop_def(IntegerAttr[I64])
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
        """One of the integer properties (`batch`, `pcus_per_socket`, ...) as an int."""
        return self.properties[key].value.data  # type: ignore[union-attr]

    def verify_(self) -> None:
        for key in _PROGRAM_COUNTS:
            if self.count(key) <= 0:
                raise VerifyException(f"rdu.program: {key} must be positive")
        outputs = [op for op in self.body.block.ops if isinstance(op, OutputOp)]
        if outputs and outputs[-1] is not self.body.block.last_op:
            raise VerifyException("rdu.program: rdu.output must be the last op of the program")


@irdl_op_definition
class BufferOp(IRDLOperation):
    """A declared buffer: the step's input, a weight, or a KV cache, in its memory tier.

    `%w = rdu.buffer "layers.{0..31}.wq" kind weight : !rdu.buffer<[32, 4096, 512], bf16, hbm>`
    """

    name = "rdu.buffer"
    buffer_name = prop_def(StringAttr)
    kind = prop_def(StringAttr)
    result = result_def(BufferType)
    traits = traits_def(HasParent(ProgramOp))

    def __init__(self, buffer_name: str, kind: str, type_: BufferType):
        super().__init__(
            properties={"buffer_name": StringAttr(buffer_name), "kind": StringAttr(kind)},
            result_types=[type_],
        )

    def verify_(self) -> None:
        if self.kind.data not in BUFFER_KINDS:
            raise VerifyException(
                f"rdu.buffer {self.buffer_name.data!r}: kind {self.kind.data!r} is not one of "
                + ", ".join(BUFFER_KINDS)
            )

    def print(self, printer: Printer) -> None:
        printer.print_string(" ")
        printer.print_string_literal(self.buffer_name.data)
        printer.print_string(f" kind {self.kind.data}")
        printer.print_op_attributes(self.attributes)
        printer.print_string(" : ")
        printer.print_attribute(self.result.type)

    @classmethod
    def parse(cls, parser: Parser) -> BufferOp:
        buffer_name = parser.parse_str_literal(" (the buffer's name)")
        parser.parse_keyword("kind")
        kind = parser.parse_identifier(f" (one of {', '.join(BUFFER_KINDS)})")
        extra = parser.parse_optional_attr_dict()
        parser.parse_punctuation(":")
        type_ = parser.parse_type()
        if not isinstance(type_, BufferType):
            parser.raise_error(f"rdu.buffer must have an !rdu.buffer type, got {type_}")
        op = cls(buffer_name, kind, type_)
        op.attributes |= extra
        return op


@irdl_op_definition
class OutputOp(IRDLOperation):
    """The values a decode step produces (the sampled tokens)."""

    name = "rdu.output"
    values = var_operand_def(BufferType)
    traits = traits_def(HasParent(ProgramOp))
    assembly_format = "attr-dict ($values^ `:` type($values))?"

    def __init__(self, *values: SSAValue):
        super().__init__(operands=[values])


# ---------------------------------------------------------------------------------------------
# Kernels.


@irdl_op_definition
class KernelOp(df.FuncLikeBase):
    """A fused kernel: a spatial pipeline of stages and collectives on one socket, ended by `rdu.return`.

    Its body is `rdu.stage`s and `rdu.all_reduce`s in pipeline order, or one `rdu.loop` holding
    them. `pcus`/`pmus` are the sums over its stages and must fit the program's chip budget.
    """

    name = "rdu.kernel"
    pcus = attr_def(IntegerAttr[I64])
    pmus = attr_def(IntegerAttr[I64])
    traits = traits_def(IsolatedFromAbove(), SymbolOpInterface())

    def __init__(self, name: str, inputs: Sequence[Attribute], outputs: Sequence[Attribute],
                 region: Region | None = None):
        super().__init__(name, inputs, outputs, region)
        self.set_units()

    @property
    def loop(self) -> LoopOp | None:
        first = self.body.block.first_op
        return first if isinstance(first, LoopOp) else None

    def pipeline(self) -> tuple[list[StageOp | AllReduceOp], int]:
        """The stages and collectives in pipeline order, and how often they run per call (the trip count)."""
        loop = self.loop
        block = loop.body.block if loop else self.body.block
        ops = [op for op in block.ops if isinstance(op, StageOp | AllReduceOp)]
        return ops, loop.trip_count.value.data if loop else 1

    def stages(self) -> list[StageOp]:
        return [op for op in self.pipeline()[0] if isinstance(op, StageOp)]

    def set_units(self) -> None:
        """Sets `pcus`/`pmus` to the sums over the stages (call after adding or resizing stages)."""
        stages = self.stages()
        self.attributes["pcus"] = IntegerAttr(sum(s.units("pcus") for s in stages), 64)
        self.attributes["pmus"] = IntegerAttr(sum(s.units("pmus") for s in stages), 64)

    def _program(self) -> ProgramOp | None:
        module = self.parent_op()
        if module is None:
            return None
        return next((op for op in module.regions[0].block.ops if isinstance(op, ProgramOp)), None)

    def verify_(self) -> None:
        super().verify_()
        name = f"rdu.kernel @{self.sym_name.data}"
        body = [op for op in self.body.block.ops if not isinstance(op, ReturnOp)]
        if any(isinstance(op, LoopOp) for op in body) and len(body) != 1:
            raise VerifyException(f"{name}: a looped kernel holds its rdu.loop and nothing else")
        stages = self.stages()
        for key in ("pcus", "pmus"):
            total = sum(s.units(key) for s in stages)
            if self.attributes[key].value.data != total:  # type: ignore[union-attr]
                raise VerifyException(f"{name}: {key} must be the sum over its stages, {total}")
        program = self._program()
        if program is None:
            return
        sram_bytes = sum(s.units("sram_bytes") for s in stages)
        for what, used, budget in (
            ("PCUs", "pcus", "pcus_per_socket"),
            ("PMUs", "pmus", "pmus_per_socket"),
        ):
            needed = self.attributes[used].value.data  # type: ignore[union-attr]
            if needed > program.count(budget):
                raise VerifyException(
                    f"{name} needs {needed} {what} but a socket has {program.count(budget)}: "
                    "fuse fewer operators into it (fuse{mode=block})"
                )
        if sram_bytes > program.count("sram_bytes_per_socket"):
            raise VerifyException(
                f"{name} needs {sram_bytes} bytes of SRAM but a socket has "
                f"{program.count('sram_bytes_per_socket')}: fuse fewer operators into it"
            )


@irdl_op_definition
class ReturnOp(IRDLOperation):
    """The end of a kernel body."""

    name = "rdu.return"
    traits = traits_def(IsTerminator(), HasParent(KernelOp))
    assembly_format = "attr-dict"


@irdl_op_definition
class CallOp(df.CallBase):
    """One kernel call, a synchronization boundary: program load, argument load, execute.

    Its results are activation buffers in the tier the program keeps activations in.
    """

    name = "rdu.call"
    args = var_operand_def(BufferType)
    res = var_result_def(BufferType)
    traits = traits_def(HasParent(ProgramOp))


def _print_list(printer: Printer, values: Sequence[int | str]) -> None:
    printer.print_string("[" + ", ".join(map(str, values)) + "]")


@irdl_op_definition
class LoopOp(IRDLOperation):
    """The pipelined outer loop of a looped kernel (one iteration per layer).

    `stacked` are the indices of the kernel's arguments stacked along a leading layer dimension
    of `trip_count`; `strides` the bytes one iteration advances in each (one layer's slice).
    `carried_bytes` is the activation handed from one iteration to the next, kept on chip in a
    double buffer. The body holds the stages and collectives of one iteration.

    `rdu.loop 32 stacked [1, 2] strides [1048576, 2048*B*S] carried_bytes #rdu.work<128*B> { ... }`
    """

    name = "rdu.loop"
    trip_count = prop_def(IntegerAttr[I64])
    stacked = prop_def(DenseArrayBase.constr(i64))
    strides = prop_def(ArrayAttr[Work])
    carried_bytes = prop_def(Work)
    body = region_def("single_block")
    traits = traits_def(NoTerminator(), HasParent(KernelOp))

    def __init__(self, trip_count: int, stacked: Sequence[int], strides: Sequence[Work],
                 carried_bytes: Work, region: Region | None = None):
        super().__init__(
            properties={
                "trip_count": IntegerAttr(trip_count, 64),
                "stacked": DenseArrayBase.from_list(i64, stacked),
                "strides": ArrayAttr(strides),
                "carried_bytes": carried_bytes,
            },
            regions=[region or Region(Block())],
        )

    @property
    def stacked_indices(self) -> tuple[int, ...]:
        return self.stacked.get_values()  # type: ignore[return-value]

    def verify_(self) -> None:
        trips = self.trip_count.value.data
        if trips < 1:
            raise VerifyException("rdu.loop: the trip count must be positive")
        if len(self.strides.data) != len(self.stacked_indices):
            raise VerifyException("rdu.loop: give one stride per stacked argument")
        args = self.parent_op().args  # type: ignore[union-attr]
        for index, stride in zip(self.stacked_indices, self.strides.data):
            if not 0 <= index < len(args):
                raise VerifyException(f"rdu.loop: stacked index {index} is not a kernel argument")
            dims = args[index].type.dims  # type: ignore[attr-defined]
            if not dims or dims[0] != trips:
                raise VerifyException(
                    f"rdu.loop: stacked argument {index} of shape [{', '.join(map(str, dims))}] must "
                    f"have the trip count {trips} as its leading dimension"
                )
            try:
                slice_bytes = Work.of_bytes(args[index].type.with_dims(dims[1:]))  # type: ignore[attr-defined]
            except NotAffineError as err:
                raise VerifyException(f"rdu.loop: stacked argument {index}: {err}") from err
            if stride != slice_bytes:
                raise VerifyException(
                    f"rdu.loop: stacked argument {index} advances {slice_bytes.expression()} bytes "
                    f"per iteration, not {stride.expression()}"
                )

    def print(self, printer: Printer) -> None:
        printer.print_string(f" {self.trip_count.value.data} stacked ")
        _print_list(printer, self.stacked_indices)
        printer.print_string(" strides ")
        _print_list(printer, [w.expression() for w in self.strides.data])
        printer.print_string(" carried_bytes ")
        printer.print_attribute(self.carried_bytes)
        printer.print_op_attributes(self.attributes, print_keyword=True)
        printer.print_string(" ")
        printer.print_region(self.body, print_entry_block_args=False)

    @classmethod
    def parse(cls, parser: Parser) -> LoopOp:
        trips = parser.parse_integer(allow_boolean=False, allow_negative=False)
        parser.parse_keyword("stacked")
        stacked = parser.parse_comma_separated_list(
            parser.Delimiter.SQUARE, lambda: parser.parse_integer(allow_boolean=False)
        )
        parser.parse_keyword("strides")
        strides = parser.parse_comma_separated_list(
            parser.Delimiter.SQUARE, lambda: Work.make(*_parse_work_terms(parser))
        )
        parser.parse_keyword("carried_bytes")
        carried = parser.parse_attribute()
        if not isinstance(carried, Work):
            parser.raise_error(f"rdu.loop: carried_bytes must be #rdu.work, got {carried}")
        extra = parser.parse_optional_attr_dict_with_keyword()
        region = parser.parse_region()
        if not region.blocks:  # `{ }` is an empty body, which is still one block
            region.add_block(Block())
        op = cls(trips, stacked, strides, carried, region)
        if extra is not None:
            op.attributes |= extra.data
        return op


# ---------------------------------------------------------------------------------------------
# What runs inside a kernel.

TRAFFIC = ("hbm_read", "hbm_write", "ddr_read", "ddr_write")
"""A stage's memory traffic per invocation, by tier and direction (SRAM traffic is on chip)."""

_EXPERT_FIELDS = ("experts", "top_k", "expert_read", "expert_tier")


@irdl_op_definition
class StageOp(IRDLOperation):
    """One pipeline stage: operators mapped onto `pcus` PCUs and `pmus` PMUs, and their work per invocation.

    `flops` and the bytes read and written per memory tier are per invocation of the stage
    (once per call, or once per iteration inside an `rdu.loop`). A MoE experts stage also says
    `experts`, `top_k` and `expert_read`, the bytes of ONE expert's weights in `expert_tier`;
    its `hbm_read`/`ddr_read` hold only the bytes that do not depend on routing.
    """

    name = "rdu.stage"
    stage_name = prop_def(StringAttr)
    operators = prop_def(ArrayAttr[StringAttr])
    pcus = prop_def(IntegerAttr[I64])
    pmus = prop_def(IntegerAttr[I64])
    flops = prop_def(Work)
    hbm_read = prop_def(Work, default_value=ZERO)
    hbm_write = prop_def(Work, default_value=ZERO)
    ddr_read = prop_def(Work, default_value=ZERO)
    ddr_write = prop_def(Work, default_value=ZERO)
    sram_bytes = prop_def(IntegerAttr[I64])
    experts = opt_prop_def(IntegerAttr[I64])
    top_k = opt_prop_def(IntegerAttr[I64])
    expert_read = opt_prop_def(Work)
    expert_tier = opt_prop_def(StringAttr)
    traits = traits_def(HasParent(KernelOp, LoopOp))
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = "$stage_name attr-dict"

    def units(self, key: str) -> int:
        """`pcus`, `pmus` or `sram_bytes` as an int."""
        return self.properties[key].value.data  # type: ignore[union-attr]

    def assign(self, *, pcus: int, pmus: int, sram_bytes: int) -> None:
        """Gives the stage its units (the enclosing kernel's totals then need `KernelOp.set_units`)."""
        for key, value in (("pcus", pcus), ("pmus", pmus), ("sram_bytes", sram_bytes)):
            self.properties[key] = IntegerAttr(value, 64)

    def work(self, key: str) -> Work:
        """`flops`, one of `TRAFFIC`, or `expert_read` (zero when absent)."""
        return self.properties.get(key, ZERO)  # type: ignore[return-value]

    def memory_bytes(self, batch: int, context: int) -> float:
        """Bytes this stage moves to and from HBM and DDR per invocation, experts at their expected count."""
        moved = sum(self.work(key).at(batch, context) for key in TRAFFIC)
        if self.experts is None or self.top_k is None:
            return moved
        touched = expected_experts_touched(self.experts.value.data, self.top_k.value.data, batch)
        return moved + touched * self.work("expert_read").at(batch, context)

    def verify_(self) -> None:
        name = f"rdu.stage {self.stage_name.data!r}"
        if self.units("pcus") < 1 or self.units("pmus") < 1:
            raise VerifyException(f"{name} needs at least one PCU and one PMU")
        if self.units("sram_bytes") < 0:
            raise VerifyException(f"{name}: sram_bytes cannot be negative")
        if not self.operators.data:
            raise VerifyException(f"{name} runs no operators")
        given = [key for key in _EXPERT_FIELDS if key in self.properties]
        if given and len(given) != len(_EXPERT_FIELDS):
            raise VerifyException(f"{name}: a MoE stage gives all of {', '.join(_EXPERT_FIELDS)}")
        if self.expert_tier is not None and self.expert_tier.data not in TIERS:
            raise VerifyException(f"{name}: unknown expert tier {self.expert_tier.data!r}")
        if self.experts is not None and self.top_k is not None:
            if not 1 <= self.top_k.value.data <= self.experts.value.data:
                raise VerifyException(f"{name}: top_k must be between 1 and the number of experts")


@irdl_op_definition
class AllReduceOp(IRDLOperation):
    """A sum across `sockets` sockets over the peer-to-peer network, after a row-split projection.

    `bytes` is the message each socket contributes; the algorithm and link costs are the simulator's.
    """

    name = "rdu.all_reduce"
    bytes = prop_def(Work)
    sockets = prop_def(IntegerAttr[I64])
    traits = traits_def(HasParent(KernelOp, LoopOp))
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = "attr-dict"

    def __init__(self, bytes_: Work, sockets: int):
        super().__init__(properties={"bytes": bytes_, "sockets": IntegerAttr(sockets, 64)})

    def verify_(self) -> None:
        if self.sockets.value.data < 2:
            raise VerifyException("rdu.all_reduce: a collective needs at least 2 sockets")


def make_stage(stage_name: str, operators: Sequence[str], *, flops: Work, traffic: Mapping[str, Work],
               moe: tuple[int, int, Work, str] | None = None, pcus: int = 1, pmus: int = 1,
               sram_bytes: int = 0) -> StageOp:
    """Builds a stage; `traffic` maps keys of `TRAFFIC` to work (missing ones are zero);
    `moe` is (experts, top_k, expert_read, expert_tier) for a MoE experts stage."""
    properties: dict[str, Attribute] = {
        "stage_name": StringAttr(stage_name),
        "operators": ArrayAttr([StringAttr(o) for o in operators]),
        "pcus": IntegerAttr(pcus, 64),
        "pmus": IntegerAttr(pmus, 64),
        "flops": flops,
        **{key: traffic.get(key, ZERO) for key in TRAFFIC},
        "sram_bytes": IntegerAttr(sram_bytes, 64),
    }
    if moe is not None:
        experts, top_k, expert_read, expert_tier = moe
        properties |= {
            "experts": IntegerAttr(experts, 64),
            "top_k": IntegerAttr(top_k, 64),
            "expert_read": expert_read,
            "expert_tier": StringAttr(expert_tier),
        }
    return StageOp.create(properties=properties)


Rdu = Dialect(
    "rdu",
    [ProgramOp, BufferOp, CallOp, OutputOp, KernelOp, ReturnOp, LoopOp, StageOp, AllReduceOp],
    [BufferType, Work],
)
