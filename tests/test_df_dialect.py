"""Tests of the `df` dialect's operators and declarations: named operands, per-op properties,
the shape rules they are verified by, and the facts the passes read off their classes."""

import pytest
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Block
from xdsl.parser import Parser
from xdsl.traits import Pure
from xdsl.utils.exceptions import VerifyException

from dfdsl.dialects import df, shapes, target_ops
from dfdsl.lowering.pipeline import context


def _values(*types: df.TensorType):
    return Block(arg_types=types).args


def _t(*shape, dtype="bf16", tier=""):
    return df.TensorType.make(shape, dtype, tier)


def test_every_operator_takes_the_properties_the_front_end_allows():
    for name, cls in df.OPERATORS.items():
        declared = set(cls.get_irdl_definition().properties)
        assert declared == set(shapes.OPERATOR_ATTRS.get(name, ())), name


def test_each_operator_is_heavy_light_or_a_collective():
    for cls in df.OPERATORS.values():
        light = issubclass(cls, df.LightOperatorBase)
        kinds = [cls.HEAVY, light, issubclass(cls, df.CollectiveBase)]
        assert kinds.count(True) == 1, cls.name
        assert not light or cls.FLOPS_PER_ELEMENT > 0, cls.name
    assert df.SampleOp.HEAVY and df.EmbeddingOp.HEAVY and not df.RmsnormOp.HEAVY


def test_only_operators_without_side_effects_are_pure():
    impure = {df.AttentionOp, df.MlaAttentionOp, df.AllReduceOp, df.AllGatherOp, df.SampleOp}
    for cls in df.OPERATORS.values():
        assert cls.has_trait(Pure) == (cls not in impure), cls.name


def test_operands_are_named_and_the_bias_is_optional():
    x, w, bias = _values(_t("B", 64), _t(64, 32, tier="hbm"), _t(32, tier="hbm"))
    plain = df.LinearOp(x, w, result_type=_t("B", 32))
    plain.verify()
    assert (plain.x, plain.w, plain.bias) == (x, w, None)
    biased = df.LinearOp(x, w, bias, result_type=_t("B", 32))
    biased.verify()
    assert biased.bias is bias


def test_integer_properties_are_named_and_typed():
    q, k, v, kc, vc = _values(_t("B", 64), _t("B", 32), _t("B", 32), _t("B", "S", 2, 16), _t("B", "S", 2, 16))
    op = df.AttentionOp(q, k, v, kc, vc, result_type=_t("B", 64), heads=4, kv_heads=2)
    op.verify()
    assert (op.heads.value.data, op.kv_heads.value.data) == (4, 2)
    assert op.int_attrs() == {"heads": 4, "kv_heads": 2}
    assert (op.k_cache, op.v_cache) == (kc, vc)


def test_the_result_is_checked_against_the_shape_rule():
    x, w = _values(_t("B", 64), _t(64, 32, tier="hbm"))
    with pytest.raises(VerifyException, match=r"df.linear: result should be bf16\[B, 32\], got bf16\[B, 64\]"):
        df.LinearOp(x, w, result_type=_t("B", 64)).verify()
    with pytest.raises(VerifyException, match="df.rope: rope: `head_dim` must be positive, got 0"):
        df.RopeOp(x, result_type=_t("B", 64), head_dim=0).verify()


def test_a_property_the_operator_does_not_take_is_rejected():
    (x,) = _values(_t("B", 64))
    with pytest.raises(VerifyException, match="property 'heads' is not defined by the operation 'df.silu'"):
        df.SiluOp(x, result_type=_t("B", 64), heads=2).verify()


def test_an_operator_with_the_wrong_number_of_operands_does_not_parse():
    text = """
    builtin.module {
      df.layer @l(%x: !df.tensor<[B, 64], bf16>) -> !df.tensor<[B, 64], bf16> {
        %y = df.add %x : (!df.tensor<[B, 64], bf16>) -> !df.tensor<[B, 64], bf16>
        df.return %y : !df.tensor<[B, 64], bf16>
      }
    }"""
    with pytest.raises(Exception, match="Expected ','"):
        Parser(context(), text).parse_module()


def test_declarations_say_what_each_stage_calls_them():
    assert [d.KEYWORD for d in df.DECLS] == ["in", "weight", "cache"]
    assert [d.PLACEMENT_CLASS for d in df.DECLS] == ["inputs", "weights", "kv_cache"]
    assert target_ops.BUFFER_KINDS == tuple(d.BUFFER_KIND for d in df.DECLS) == ("input", "weight", "kv_cache")
    assert set(df.PLACEMENT_CLASSES) == {*(d.PLACEMENT_CLASS for d in df.DECLS), df.ACTIVATIONS_CLASS}


def test_the_explicit_placement_of_a_graph_prints_in_its_attributes():
    graph = df.GraphOp("m", batch=1, context=8, tokens=1, sockets=1, target="sn40l",
                       explicit_tiers=["weights"], explicit_tensors=["lm_head"])
    graph.verify()
    text = str(ModuleOp([graph]))
    assert 'explicit_tiers = ["weights"], explicit_tensors = ["lm_head"]' in text
    again = Parser(context(), text).parse_module()
    assert str(again) == text
    assert df.GraphOp("m", batch=1, context=8, tokens=1, sockets=1, target="sn40l").explicit_tiers is None
