"""Tests of the `rdu` dialect: buffers, stages, kernels and loops."""

import pytest
from xdsl.dialects.builtin import ModuleOp
from xdsl.parser import Parser
from xdsl.printer import Printer
from xdsl.utils.exceptions import VerifyException

from dfdsl.dialects import cost, rdu
from dfdsl.dialects.cost import Work
from dfdsl.lowering.pipeline import context


def parse_attr(text: str):
    return Parser(context(), text).parse_attribute()


def parse_module(text: str) -> ModuleOp:
    return Parser(context(), text).parse_module()


def test_buffer_type_needs_a_tier():
    rdu.BufferType.make(("B", 64), "bf16", "sram").verify()
    with pytest.raises(VerifyException, match="needs a memory tier"):
        rdu.BufferType.make(("B", 64), "bf16").verify()


def test_moe_stage_moves_the_experts_it_touches():
    stage = rdu.make_stage(
        "moe_experts", ["moe_experts"], flops=Work.make(), traffic={"hbm_read": Work.make(100)},
        moe=(8, 2, Work.make(1000), "hbm", 0, 1),
    )
    stage.verify()
    touched = cost.expected_experts(8, 2, 2)
    assert stage.memory_bytes(batch=2, context=10) == pytest.approx(100 + touched * 1000)


LOOPED = """
rdu.kernel @k(%x: !rdu.buffer<[B, 64], bf16, sram>, %w: !rdu.buffer<[3, 64, 64], bf16, hbm>) -> !rdu.buffer<[B, 64], bf16, sram> attributes {pcus = 7 : i64, pmus = 3 : i64} {
  rdu.loop 3 stacked [1] strides [8192] carried_bytes #cost.work<128*B> {
    rdu.stage "linear" {operators = ["linear"], pcus = 5 : i64, pmus = 2 : i64, flops = #cost.work<8192*B>, hbm_read = #cost.work<8192>, sram_bytes = 0 : i64}
    rdu.all_reduce {bytes = #cost.work<128*B>, sockets = 2 : i64}
    rdu.stage "linear" {operators = ["add", "linear"], pcus = 2 : i64, pmus = 1 : i64, flops = #cost.work<8256*B>, hbm_read = #cost.work<8192>, sram_bytes = 0 : i64}
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
    module = parse_module("rdu.loop 1 stacked [] strides [] carried_bytes #cost.work<0> {\n}")
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
