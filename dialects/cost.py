"""The `cost` dialect: what the target dialects state work in, and the cost facts they share.

Both targets (`rdu` for the SN40L, `nv` for a GPU) state each op's FLOPs and bytes per
invocation as `#cost.work<c + b*B + bs*B*S>`, affine in the batch `B` and in batch times context
`B*S`, so one program serves every run size; a prefill program's work also has terms in the
prompt `P` (`B*P`, `B*P*S`, `B*P*P`), so one program serves every prompt length too. `expected_experts` is the routing rule a MoE layer's
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
    """A shape whose size is not one of the `Work` terms (c, B, B*S, B*P, B*P*S), so it cannot be
    a `Work`: a lowering to a target cannot state it (E024)."""


MONOMIALS: tuple[tuple[str, ...], ...] = ((), ("B",), ("B", "S"), ("B", "P"), ("B", "P", "S"), ("B", "P", "P"))
"""The terms of a `Work`, in the order they print: a constant, per sequence (`B`), per sequence
and cached token (`B*S`), and in a prefill per prompt token (`B*P`), per prompt token and cached
token (`B*P*S`) and per pair of prompt tokens (`B*P*P`, causal attention within the prompt)."""


def parse_work_terms(parser: BaseParser) -> tuple[int, ...]:
    """Parses `1024 + 8*B + 2*B*S` (any order, any subset, a term alone meaning `1*` it) into the
    coefficients of `MONOMIALS`."""
    coefficients = [0] * len(MONOMIALS)

    def term() -> None:
        factor = parser.parse_optional_integer(allow_boolean=False, allow_negative=False)
        if factor is not None and parser.parse_optional_punctuation("*") is None:
            coefficients[0] += factor
            return
        parser.parse_keyword("B", " (a term of work: N, N*B, N*B*S, N*B*P, N*B*P*S or N*B*P*P)")
        symbols = ["B"]
        while parser.parse_optional_punctuation("*") is not None:
            symbol = "S" if parser.parse_optional_keyword("S") else "P"
            if symbol == "P":
                parser.parse_keyword("P", " (after B, a term of work multiplies S or P)")
            symbols.append(symbol)
        monomial = ("B", *sorted(symbols[1:]))
        if monomial not in MONOMIALS:
            parser.raise_error(f"{'*'.join(symbols)} is not a term of work; the terms are "
                               + ", ".join("*".join(m) for m in MONOMIALS[1:]))
        coefficients[MONOMIALS.index(monomial)] += 1 if factor is None else factor

    term()
    while parser.parse_optional_punctuation("+") is not None:
        term()
    return tuple(coefficients)


@irdl_attr_definition
class Work(ParametrizedAttribute):
    """FLOPs or bytes per invocation: `const + per_batch*B + per_batch_context*B*S`, and in a
    prefill `+ per_prompt*B*P + per_prompt_context*B*P*S + per_prompt_pair*B*P*P`.

    Printed `#cost.work<1024 + 8*B + 2*B*S>` with the zero terms left out (`#cost.work<0>`).
    """

    name = "cost.work"

    const: IntAttr
    per_batch: IntAttr
    per_batch_context: IntAttr
    per_prompt: IntAttr
    per_prompt_context: IntAttr
    per_prompt_pair: IntAttr

    @staticmethod
    def make(const: int = 0, per_batch: int = 0, per_batch_context: int = 0, per_prompt: int = 0,
             per_prompt_context: int = 0, per_prompt_pair: int = 0) -> Work:
        terms = (const, per_batch, per_batch_context, per_prompt, per_prompt_context, per_prompt_pair)
        return Work(*(IntAttr(x) for x in terms))

    @staticmethod
    def of_elements(dims: Shape) -> Work:
        """The number of elements of a shape: numbers times one of the symbol products of
        `MONOMIALS` (none, B, B and S, B and P, or B, P and S)."""
        count = 1
        for d in dims:
            if isinstance(d, int):
                count *= d
        symbols = tuple(sorted(d for d in dims if isinstance(d, str)))
        if symbols not in MONOMIALS:
            raise NotAffineError(
                f"shape [{', '.join(map(str, dims))}] is not affine in B, B*S, B*P and B*P*S, so its size "
                "cannot be expressed as work"
            )
        terms = [0] * len(MONOMIALS)
        terms[MONOMIALS.index(symbols)] = count
        return Work.make(*terms)

    @staticmethod
    def of_bytes(type_: ShapedTypeBase) -> Work:
        """The bytes of a tensor or buffer type."""
        return Work.of_elements(type_.dims) * DTYPE_BYTES[type_.dtype]

    @property
    def terms(self) -> tuple[int, ...]:
        """The coefficients of `MONOMIALS`, in order."""
        return (self.const.data, self.per_batch.data, self.per_batch_context.data, self.per_prompt.data,
                self.per_prompt_context.data, self.per_prompt_pair.data)

    def at(self, batch: int, context: int, prompt: int = 1) -> int:
        """The value for a pass of `prompt` tokens per sequence (1 in a decode step) over `batch`
        sequences with `context` tokens already cached."""
        c, b, bs, bp, bps, bpp = self.terms
        return c + batch * (b + bs * context + prompt * (bp + bps * context + bpp * prompt))

    def __add__(self, other: Work) -> Work:
        return Work.make(*(x + y for x, y in zip(self.terms, other.terms)))

    def __mul__(self, factor: int) -> Work:
        return Work.make(*(x * factor for x in self.terms))

    __rmul__ = __mul__

    def is_zero(self) -> bool:
        return not any(self.terms)

    def verify(self) -> None:
        if any(x < 0 for x in self.terms):
            raise VerifyException(f"#cost.work<{self.expression()}>: work cannot be negative")

    def expression(self) -> str:
        """`1024 + 8*B + 2*B*S`, without the zero terms; `0` if all are zero."""
        parts = []
        for coefficient, monomial in zip(self.terms, MONOMIALS):
            if not coefficient:
                continue
            symbols = "*".join(monomial)
            if not symbols:
                parts.append(str(coefficient))
            else:
                parts.append(symbols if coefficient == 1 else f"{coefficient}*{symbols}")
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


def experts_read(experts: int, top_k: int, tokens: Batch, held: int = 0, token_shards: int = 1) -> Batch:
    """The experts one socket reads for `tokens` of its own: all of them when it holds every
    expert (`held` 0), else the share of the `held` experts it holds that the machine's tokens
    touch, `token_shards` sockets' worth of tokens being routed (expert parallelism)."""
    touched = expected_experts(experts, top_k, tokens * token_shards)
    return touched if not held else touched * held / experts


Cost = Dialect("cost", [], [Work])
