"""Tests of the `rdu` dialect: work arithmetic and syntax, buffers, stages, kernels and loops."""

import pytest
from xdsl.dialects.builtin import ModuleOp
from xdsl.parser import Parser
from xdsl.printer import Printer
from xdsl.utils.exceptions import ParseError, VerifyException

from dfdsl.dialects import df, rdu
from dfdsl.dialects.rdu import Work
from dfdsl.lowering.pipeline import context


def parse_attr(text: str):
    return Parser(context(), text).parse_attribute()


def parse_module(text: str) -> ModuleOp:
    return Parser(context(), text).parse_module()


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
    with pytest.raises(rdu.NotAffineError, match=r"\[S, 8\] is not affine"):
        Work.of_elements(("S", 8))


@pytest.mark.parametrize(
    "text, terms, printed",
    [
        ("#rdu.work<0>", (0, 0, 0), "#rdu.work<0>"),
        ("#rdu.work<1024 + 8*B + 2*B*S>", (1024, 8, 2), "#rdu.work<1024 + 8*B + 2*B*S>"),
        ("#rdu.work<B*S + B>", (0, 1, 1), "#rdu.work<B + B*S>"),
        ("#rdu.work<2*B*S + 7 + 1*B + 3*B*S>", (7, 1, 5), "#rdu.work<7 + B + 5*B*S>"),
    ],
)
def test_work_parse_and_print(text, terms, printed):
    work = parse_attr(text)
    assert isinstance(work, Work) and work.terms == terms
    assert str(work) == printed
    assert parse_attr(str(work)) == work


@pytest.mark.parametrize("text", ["#rdu.work<S>", "#rdu.work<B*B>", "#rdu.work<2*>", "#rdu.work<>"])
def test_work_rejects_other_forms(text):
    with pytest.raises(ParseError):
        parse_attr(text)


def test_buffer_type_needs_a_tier():
    rdu.BufferType.make(("B", 64), "bf16", "sram").verify()
    with pytest.raises(VerifyException, match="needs a memory tier"):
        rdu.BufferType.make(("B", 64), "bf16").verify()


def test_expected_experts_touched():
    assert rdu.expected_experts_touched(8, 2, 1) == pytest.approx(2)
    assert rdu.expected_experts_touched(8, 2, 2) == pytest.approx(8 * (1 - 0.75**2))
    assert rdu.expected_experts_touched(8, 2, 1000) == pytest.approx(8)


def test_moe_stage_moves_the_experts_it_touches():
    stage = rdu.make_stage(
        "moe_experts", ["moe_experts"], flops=Work.make(), traffic={"hbm_read": Work.make(100)},
        moe=(8, 2, Work.make(1000), "hbm"),
    )
    stage.verify()
    touched = rdu.expected_experts_touched(8, 2, 2)
    assert stage.memory_bytes(batch=2, context=10) == pytest.approx(100 + touched * 1000)


LOOPED = """
rdu.kernel @k(%x: !rdu.buffer<[B, 64], bf16, sram>, %w: !rdu.buffer<[3, 64, 64], bf16, hbm>) -> !rdu.buffer<[B, 64], bf16, sram> attributes {pcus = 7 : i64, pmus = 3 : i64} {
  rdu.loop 3 stacked [1] strides [8192] carried_bytes #rdu.work<128*B> {
    rdu.stage "linear" {operators = ["linear"], pcus = 5 : i64, pmus = 2 : i64, flops = #rdu.work<8192*B>, hbm_read = #rdu.work<8192>, sram_bytes = 0 : i64}
    rdu.all_reduce {bytes = #rdu.work<128*B>, sockets = 2 : i64}
    rdu.stage "linear" {operators = ["add", "linear"], pcus = 2 : i64, pmus = 1 : i64, flops = #rdu.work<8256*B>, hbm_read = #rdu.work<8192>, sram_bytes = 0 : i64}
  }
  rdu.return
}
"""


def test_kernel_pipeline_of_a_looped_kernel():
    module = parse_module(LOOPED)
    module.verify()
    kernel = next(op for op in module.ops if isinstance(op, rdu.KernelOp))
    ops, trips = kernel.pipeline()
    assert trips == 3
    assert [op.name for op in ops] == ["rdu.stage", "rdu.all_reduce", "rdu.stage"]
    assert kernel.loop is not None and kernel.loop.stacked_indices == (1,)
    assert [s.units("pcus") for s in kernel.stages()] == [5, 2]


def test_kernel_units_are_kept_equal_to_the_stages():
    module = parse_module(LOOPED)
    kernel = next(op for op in module.ops if isinstance(op, rdu.KernelOp))
    kernel.stages()[0].assign(pcus=9, pmus=2, sram_bytes=0)
    with pytest.raises(VerifyException, match="pcus must be the sum over its stages, 11"):
        kernel.verify()
    kernel.set_units()
    kernel.verify()


def test_loop_must_sit_in_a_kernel():
    module = parse_module("rdu.loop 1 stacked [] strides [] carried_bytes #rdu.work<0> {\n}")
    assert str(parse_module(str(module))) == str(module)
    with pytest.raises(VerifyException, match="'rdu.loop' expects parent op 'rdu.kernel'"):
        module.verify()


def test_buffer_kind_is_checked():
    op = rdu.BufferOp("w", "bias", rdu.BufferType.make((64,), "bf16", "hbm"))
    with pytest.raises(VerifyException, match="kind 'bias' is not one of input, weight, kv_cache"):
        op.verify_()


def test_ops_print_and_parse_back_in_both_forms():
    module = parse_module(LOOPED)
    custom, generic = str(module), _generic(module)
    assert str(parse_module(custom)) == custom
    assert str(parse_module(generic)) == custom


def _generic(module: ModuleOp) -> str:
    import io

    stream = io.StringIO()
    Printer(stream=stream, print_generic_format=True).print_op(module)
    return stream.getvalue()
