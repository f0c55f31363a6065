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
    assert (a + b).terms == (1024, 9, 2)
    assert (a * 3).terms == (3072, 24, 6)
    assert (3 * a) == a * 3
    assert a.at(batch=2, context=100) == 1024 + 8 * 2 + 2 * 2 * 100
    assert Work.make().is_zero() and not b.is_zero()


def test_work_of_shapes():
    assert Work.of_elements((4096, 512)) == Work.make(4096 * 512)
    assert Work.of_elements(("B", 4096)) == Work.make(0, 4096)
    assert Work.of_elements(("B", "S", 8, 128)) == Work.make(0, 0, 1024)
    assert Work.of_bytes(df.TensorType.make(("B", "S", 8, 128), "bf16", "hbm")) == Work.make(0, 0, 2048)
    with pytest.raises(NotAffineError, match=r"\[S, 8\] is not affine"):
        Work.of_elements(("S", 8))


@pytest.mark.parametrize(
    "text, terms, printed",
    [
        ("#cost.work<0>", (0, 0, 0), "#cost.work<0>"),
        ("#cost.work<1024 + 8*B + 2*B*S>", (1024, 8, 2), "#cost.work<1024 + 8*B + 2*B*S>"),
        ("#cost.work<B*S + B>", (0, 1, 1), "#cost.work<B + B*S>"),
        ("#cost.work<2*B*S + 7 + 1*B + 3*B*S>", (7, 1, 5), "#cost.work<7 + B + 5*B*S>"),
    ],
)
def test_work_parse_and_print(text, terms, printed):
    work = parse_attr(text)
    assert isinstance(work, Work) and work.terms == terms
    assert str(work) == printed
    assert parse_attr(str(work)) == work


@pytest.mark.parametrize("text", ["#cost.work<S>", "#cost.work<B*B>", "#cost.work<2*>", "#cost.work<>"])
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
