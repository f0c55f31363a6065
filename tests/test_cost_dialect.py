"""Tests of the `cost` dialect: work arithmetic and syntax, and the expected experts a batch reads."""

import pytest
from xdsl.parser import Parser
from xdsl.utils.exceptions import ParseError, VerifyException

from dfdsl.dialects import df
from dfdsl.dialects.cost import NotAffineError, Work, expected_experts
from dfdsl.lowering.pipeline import context
from dfdsl.universe import DFDSL_UNIVERSE


def parse_attr(text: str):
    return Parser(context(), text).parse_attribute()


def test_work_arithmetic():
    a = Work.make(1024, 8, 2)
    b = Work.make(0, 1, 0)
    assert (a + b).terms == (1024, 9, 2, 0, 0, 0)
    assert (a * 3).terms == (3072, 24, 6, 0, 0, 0)
    assert (3 * a) == a * 3
    assert a.at(batch=2, context=100) == 1024 + 8 * 2 + 2 * 2 * 100
    assert Work.make().is_zero() and not b.is_zero()


def test_prefill_work_in_the_prompt():
    """A pass of P tokens per sequence: terms in B*P, B*P*S and B*P*P; a decode step is P = 1."""
    w = Work.make(5, 0, 0, 3, 2, 1)
    assert w.at(batch=2, context=10, prompt=4) == 5 + 2 * (3 * 4 + 2 * 4 * 10 + 1 * 4 * 4)
    assert Work.make(7, 3, 2).at(2, 10) == Work.make(7, 3, 2).at(2, 10, prompt=1)
    assert Work.of_elements(("B", "P", 4096)) == Work.make(per_prompt=4096)
    assert Work.of_elements(("B", "P", "S", 2)) == Work.make(per_prompt_context=2)


def test_work_of_shapes():
    assert Work.of_elements((4096, 512)) == Work.make(4096 * 512)
    assert Work.of_elements(("B", 4096)) == Work.make(0, 4096)
    assert Work.of_elements(("B", "S", 8, 128)) == Work.make(0, 0, 1024)
    assert Work.of_bytes(df.TensorType.make(("B", "S", 8, 128), "bf16", "hbm")) == Work.make(0, 0, 2048)
    with pytest.raises(NotAffineError, match=r"\[S, 8\] is not affine"):
        Work.of_elements(("S", 8))
    with pytest.raises(NotAffineError, match=r"\[P, 8\] is not affine"):
        Work.of_elements(("P", 8))


@pytest.mark.parametrize(
    "text, terms, printed",
    [
        ("#cost.work<0>", (0, 0, 0, 0, 0, 0), "#cost.work<0>"),
        ("#cost.work<1024 + 8*B + 2*B*S>", (1024, 8, 2, 0, 0, 0), "#cost.work<1024 + 8*B + 2*B*S>"),
        ("#cost.work<B*S + B>", (0, 1, 1, 0, 0, 0), "#cost.work<B + B*S>"),
        ("#cost.work<2*B*S + 7 + 1*B + 3*B*S>", (7, 1, 5, 0, 0, 0), "#cost.work<7 + B + 5*B*S>"),
        ("#cost.work<B*P*P + 2*B*P*S + 3*B*P>", (0, 0, 0, 3, 2, 1), "#cost.work<3*B*P + 2*B*P*S + B*P*P>"),
        ("#cost.work<4*B*S*P + B>", (0, 1, 0, 0, 4, 0), "#cost.work<B + 4*B*P*S>"),
    ],
)
def test_work_parse_and_print(text, terms, printed):
    work = parse_attr(text)
    assert isinstance(work, Work) and work.terms == terms
    assert str(work) == printed
    assert parse_attr(str(work)) == work


@pytest.mark.parametrize("text", ["#cost.work<S>", "#cost.work<B*B>", "#cost.work<2*>", "#cost.work<>",
                                  "#cost.work<B*S*S>", "#cost.work<P>", "#cost.work<B*S*S*P>"])
def test_work_rejects_other_forms(text):
    with pytest.raises(ParseError):
        parse_attr(text)


def test_work_cannot_be_negative():
    with pytest.raises(VerifyException, match="work cannot be negative"):
        Work.make(0, -1)


def test_expected_experts():
    assert expected_experts(8, 2, 1) == pytest.approx(2)
    assert expected_experts(8, 2, 2) == pytest.approx(8 * (1 - 0.75**2))
    assert expected_experts(8, 2, 1000) == pytest.approx(8)


def test_xdsl_opt_and_the_pipeline_know_the_dialect():
    assert "cost" in DFDSL_UNIVERSE.all_dialects
    assert context().get_optional_attr("cost.work") is Work
