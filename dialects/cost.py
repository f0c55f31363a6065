"""The `cost` dialect: what the target dialects state work in, and the cost facts they share.

Both targets (`rdu` for the SN40L, `nv` for a GPU) state each op's FLOPs and bytes per
invocation as `#cost.work<c + b*B + bs*B*S>`, affine in the batch `B` and in batch times context
`B*S`, so one program serves every run size. `expected_experts` is the routing rule a MoE layer's
weight reads follow; the `rdu` dialect sizes stages with it and the simulator times reads with it.
This module imports no lowering and no simulator, so all of them can import it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

from xdsl.dialects.builtin import IntAttr
from xdsl.ir import Attribute, Dialect, ParametrizedAttribute
from xdsl.irdl import irdl_attr_definition
from xdsl.parser import AttrParser
from xdsl.parser.base_parser import BaseParser
from xdsl.printer import Printer
from xdsl.utils.exceptions import VerifyException

from dfdsl.dialects.shapes import DTYPE_BYTES, Shape
from dfdsl.errors import LoweringError

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

    from dfdsl.dialects.df import ShapedTypeBase


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

    Printed `#cost.work<1024 + 8*B + 2*B*S>` with the zero terms left out (`#cost.work<0>`).
    """

    name = "cost.work"

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
            "expressed as work"
        )

    @staticmethod
    def of_bytes(type_: ShapedTypeBase) -> Work:
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
            raise VerifyException(f"#cost.work<{self.expression()}>: work cannot be negative")

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


Batch = TypeVar("Batch", float, "NDArray[np.float64]")
"""A batch size, or an array of them (the array timing model's)."""


def expected_experts(experts: int, top_k: int, batch: Batch) -> Batch:
    """Distinct experts a batch touches when each token picks `top_k` of `experts` uniformly:
    E (1 - (1 - k/E)^B)."""
    return experts * (1.0 - (1.0 - top_k / experts) ** batch)


Cost = Dialect("cost", [], [Work])
