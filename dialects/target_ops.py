"""Ops every target dialect shares: a program of one decode step, declared buffers, calls, the output.

`rdu` (the SN40L) and `nv` (a GPU node) both lower a `df` graph to one program that declares its
buffers, calls kernels in order and ends with its output. The classes here are undecorated IRDL
bases, as `df.FuncLikeBase` is for func-like ops: each dialect's op subclasses one, names itself,
its buffer type and its parent, and keeps its own syntax. Calls reuse `df.CallBase`. Also here is
what both state work in, `#rdu.work` (affine in B and B*S, named for the dialect that introduced
it), and the base of the ops that run `df` operators with such work (an SN40L stage, a GPU kernel).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from xdsl.dialects.builtin import I64, ArrayAttr, IntAttr, IntegerAttr, StringAttr, SymbolNameConstraint
from xdsl.ir import Attribute, Block, ParametrizedAttribute, Region, SSAValue
from xdsl.irdl import (
    IRDLOperation,
    ParsePropInAttrDict,
    irdl_attr_definition,
    opt_prop_def,
    prop_def,
    region_def,
    traits_def,
)
from xdsl.parser import AttrParser
from xdsl.parser.base_parser import BaseParser
from xdsl.printer import Printer
from xdsl.traits import NoTerminator, SymbolOpInterface
from xdsl.utils.exceptions import VerifyException

from dfdsl.dialects import df
from dfdsl.dialects.shapes import DTYPE_BYTES, TIERS, Shape
from dfdsl.lowering.errors import LoweringError

BUFFER_KINDS = ("input", "weight", "kv_cache")
"""What a declared buffer holds: a step's input, a parameter, or a KV cache."""


class BufferTypeBase(df.ShapedTypeBase):
    """A buffer type of a target: a shaped type whose memory tier is required."""

    def verify(self) -> None:
        super().verify()
        if not self.tier.data:
            raise VerifyException(f"!{self.name} needs a memory tier ({', '.join(TIERS)})")


# ---------------------------------------------------------------------------------------------
# Work: a quantity per invocation, affine in B and B*S.


class NotAffineError(LoweringError):
    """A shape whose size is not of the form c, b*B or bs*B*S, so it cannot be a `Work`: a lowering
    to a target cannot state it (E024)."""


def parse_work_terms(parser: BaseParser) -> tuple[int, int, int]:
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
            terms = parse_work_terms(parser)
        return [IntAttr(x) for x in terms]

    def print_parameters(self, printer: Printer) -> None:
        printer.print_string(f"<{self.expression()}>")


ZERO = Work.make()

TRAFFIC = ("hbm_read", "hbm_write", "ddr_read", "ddr_write")
"""Memory traffic per invocation, by tier and direction (SRAM traffic is on chip)."""

EXPERT_FIELDS = ("experts", "top_k", "expert_read", "expert_tier")
"""What a MoE experts op gives, all or none: experts, top_k, ONE expert's bytes and their tier."""

ExpertWork = tuple[int, int, Work, str]
"""(experts, top_k, expert_read, expert_tier) of a MoE experts op, as the builders take it."""


class OperatorWorkBase(IRDLOperation):
    """An op that runs `df` operators and states their work per invocation.

    `flops` and the bytes read and written per memory tier (`TRAFFIC`) are per invocation. A MoE
    experts op also says `experts`, `top_k` and `expert_read`, the bytes of ONE expert in
    `expert_tier`. The concrete op calls `verify_work` from its `verify_`.
    """

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

    def work(self, key: str) -> Work:
        """`flops`, one of `TRAFFIC`, or `expert_read` (zero when absent)."""
        return self.properties.get(key, ZERO)  # type: ignore[return-value]

    def verify_work(self, label: str) -> None:
        """Checks the operators and the MoE fields; `label` names this op in the messages."""
        if not self.operators.data:
            raise VerifyException(f"{label} runs no operators")
        given = [key for key in EXPERT_FIELDS if key in self.properties]
        if given and len(given) != len(EXPERT_FIELDS):
            kind = self.name.partition(".")[2]
            raise VerifyException(f"{label}: a MoE {kind} gives all of {', '.join(EXPERT_FIELDS)}")
        if self.expert_tier is not None and self.expert_tier.data not in TIERS:
            raise VerifyException(f"{label}: unknown expert tier {self.expert_tier.data!r}")
        if self.experts is not None and self.top_k is not None:
            if not 1 <= self.top_k.value.data <= self.experts.value.data:
                raise VerifyException(f"{label}: top_k must be between 1 and the number of experts")


def traffic_properties(flops: Work, traffic: Mapping[str, Work]) -> dict[str, Attribute]:
    """`flops` and every key of `TRAFFIC`, from `traffic` or zero, as properties."""
    return {"flops": flops, **{key: traffic.get(key, ZERO) for key in TRAFFIC}}


def expert_properties(moe: ExpertWork | None) -> dict[str, Attribute]:
    """The MoE properties of an experts op, none for any other."""
    if moe is None:
        return {}
    experts, top_k, expert_read, expert_tier = moe
    return {
        "experts": IntegerAttr(experts, 64),
        "top_k": IntegerAttr(top_k, 64),
        "expert_read": expert_read,
        "expert_tier": StringAttr(expert_tier),
    }


# ---------------------------------------------------------------------------------------------
# The program and what it declares and produces.


class ProgramBase(IRDLOperation):
    """One decode step of a target: declared buffers, calls in order, the output.

    `COUNTS` are the integer properties the program requires, all positive; the concrete op
    defines those beyond `batch`, `context` and `tokens`.
    """

    COUNTS: ClassVar[tuple[str, ...]]

    sym_name = prop_def(SymbolNameConstraint())
    batch = prop_def(IntegerAttr[I64])
    context = prop_def(IntegerAttr[I64])
    tokens = prop_def(IntegerAttr[I64])
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
                **{key: IntegerAttr(counts[key], 64) for key in self.COUNTS},
            },
            regions=[region or Region(Block())],
        )

    def count(self, key: str) -> int:
        """One of the integer properties (`COUNTS`) as an int."""
        return self.properties[key].value.data  # type: ignore[union-attr]

    def verify_(self) -> None:
        df.verify_defined_before_use(self.body.block, f"{self.name} @{self.sym_name.data}")
        for key in self.COUNTS:
            if self.count(key) <= 0:
                raise VerifyException(f"{self.name}: {key} must be positive")
        outputs = [op for op in self.body.block.ops if isinstance(op, OutputBase)]
        if outputs and outputs[-1] is not self.body.block.last_op:
            raise VerifyException(f"{self.name}: {outputs[-1].name} must be the last op of the program")


class BufferBase(IRDLOperation):
    """A declared buffer: the step's input, a weight, or a KV cache (`BUFFER_KINDS`).

    The concrete op defines `result`, of its dialect's buffer type.
    """

    buffer_name = prop_def(StringAttr)
    kind = prop_def(StringAttr)

    def __init__(self, buffer_name: str, kind: str, type_: BufferTypeBase):
        super().__init__(
            properties={"buffer_name": StringAttr(buffer_name), "kind": StringAttr(kind)},
            result_types=[type_],
        )

    def verify_(self) -> None:
        if self.kind.data not in BUFFER_KINDS:
            raise VerifyException(
                f"{self.name} {self.buffer_name.data!r}: kind {self.kind.data!r} is not one of "
                + ", ".join(BUFFER_KINDS)
            )


class OutputBase(IRDLOperation):
    """The values a decode step produces (the sampled tokens); the concrete op defines `values`."""

    assembly_format = "attr-dict ($values^ `:` type($values))?"

    def __init__(self, *values: SSAValue):
        super().__init__(operands=[values])
