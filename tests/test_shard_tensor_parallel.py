"""Unit tests of the shard-tensor-parallel pass on the tiny models of df_models."""

import pytest
from df_models import tiny_llama, tiny_mla, tiny_moe
from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.parser import Parser
from xdsl.utils.exceptions import DiagnosticException

from dfdsl.dialects import df
from dfdsl.lowering.shard_tensor_parallel import ShardTensorParallel
from dfdsl.lowering.pipeline import context


def _shard(module: ModuleOp, sockets: int = 0) -> ModuleOp:
    ShardTensorParallel(sockets).apply(Context(), module)
    module.verify()
    return module


def _graph(module: ModuleOp) -> df.GraphOp:
    return next(op for op in module.ops if isinstance(op, df.GraphOp))


def _declared(module: ModuleOp) -> dict[str, df.TensorType]:
    return {
        op.tensor_name.data: op.result.type
        for op in _graph(module).body.block.ops
        if isinstance(op, df.DECLS)
    }


def _layer(module: ModuleOp, name: str) -> df.LayerOp:
    return next(op for op in module.ops if isinstance(op, df.LayerOp) and op.sym_name.data == name)


def _ops(block, cls) -> list:
    return [op for op in block.ops if isinstance(op, cls)]


@pytest.mark.parametrize(
    ("build", "sockets"),
    [(tiny_llama, 2), (tiny_moe, 2), (tiny_mla, 2), (tiny_mla, 4), (lambda n: tiny_moe(n, dense_layers=1), 2)],
)
def test_split_weights_add_up_to_the_unsharded_ones(build, sockets):
    """Every declared tensor is either whole on each socket or split N ways, nothing is lost."""
    before = _declared(build(2))
    after = _declared(_shard(build(2), sockets))
    assert before.keys() == after.keys()
    split = [name for name in before if after[name].dims != before[name].dims]
    assert split, "something must be split"
    for name in split:
        assert sockets * after[name].num_bytes(4, 64) == before[name].num_bytes(4, 64), name
    assert sum(sockets * after[n].num_bytes() for n in split) == sum(before[n].num_bytes() for n in split)


def test_llama_two_sockets_splits_heads_and_ffn():
    module = _shard(tiny_llama(2), 2)
    types = _declared(module)
    assert types["layers.1.wq"].dims == (64, 32)
    assert types["layers.1.wk"].dims == (64, 16)
    assert types["layers.1.wo"].dims == (32, 64)
    assert types["layers.1.w_gate"].dims == (64, 64)
    assert types["layers.1.w_down"].dims == (64, 64)
    assert types["layers.1.k_cache"].dims == ("B", "S", 1, 16)
    assert types["layers.1.attn_norm"].dims == (64,)
    assert types["embed"].dims == (100, 64)
    assert types["lm_head"].dims == (64, 50)
    layer = _layer(module, "llama_decoder")
    (attention,) = _ops(layer.body.block, df.AttentionOp)
    assert (attention.heads.value.data, attention.kv_heads.value.data) == (2, 1)
    reduces = _ops(layer.body.block, df.AllReduceOp)
    assert [r.x.owner.w.name_hint for r in reduces] == ["wo", "w_down"]
    assert _graph(module).tp.value.data == 2


def test_fewer_kv_heads_than_sockets_replicates_them():
    """Megatron keeps one KV head per socket when the sockets outnumber the KV heads."""
    types = _declared(_shard(tiny_llama(1), 4))
    assert types["layers.0.wq"].dims == (64, 16)
    assert types["layers.0.wk"].dims == (64, 16)
    assert types["layers.0.v_cache"].dims == ("B", "S", 1, 16)


def test_mla_keeps_the_latent_cache_whole():
    module = _shard(tiny_mla(1), 4)
    types = _declared(module)
    assert types["layers.0.kv_cache"].dims == ("B", "S", 40)
    assert types["layers.0.wkv_a"].dims == (64, 40)
    assert types["layers.0.kv_up"].dims == (32, 32)
    assert types["layers.0.router"].dims == (64, 4)
    assert types["layers.0.experts_up"].dims == (4, 64, 8)
    (mla,) = _ops(_layer(module, "mla_moe_decoder").body.block, df.MlaAttentionOp)
    assert mla.heads.value.data == 1


def test_sockets_default_to_the_graph_and_one_socket_changes_nothing():
    assert _graph(_shard(tiny_llama(1, sockets=2))).tp.value.data == 2
    assert str(_shard(tiny_llama(1))) == str(tiny_llama(1))


def test_output_is_deterministic_and_parses_back():
    text = str(_shard(tiny_moe(3, dense_layers=1), 2))
    assert text == str(_shard(tiny_moe(3, dense_layers=1), 2))
    parsed = Parser(context(), text).parse_module()
    parsed.verify()
    assert str(parsed) == text


@pytest.mark.parametrize(
    ("module", "sockets", "message"),
    [
        (tiny_llama(1), 3, "layer @llama_decoder: 3 sockets cannot split attention with 4 heads and 2 KV heads"),
        (tiny_llama(1), 3, "; every split divides over 1, 2 or 4 sockets"),
        # Attention alone would take 6 (6 heads, the 2 KV heads replicated 3 times); the FFN of 64 does not.
        (tiny_llama(1, heads=6, kv_heads=2, head_dim=8, hidden=48), 6, "every split divides over 1 or 2 sockets"),
        (tiny_llama(1, heads=6, kv_heads=3, head_dim=8, hidden=48), 2, "6 heads and 3 KV heads"),
        (tiny_llama(1, ffn=6), 4, "the MLP width (ffn) 6 does not divide over 4 sockets"),
        (tiny_moe(1, expert_ffn=6), 4, "expert ffn) has width 6"),
        (tiny_mla(1, heads=2), 4, "4 sockets cannot split latent attention with 2 heads; every split divides over 1 or 2"),
        (tiny_llama(1, vocab=99), 2, "the LM head (vocab) has width 99"),
    ],
)
def test_splits_that_do_not_divide_are_clear_errors(module, sockets, message):
    before = str(module)
    with pytest.raises(DiagnosticException) as err:
        ShardTensorParallel(sockets).apply(Context(), module)
    assert message in str(err.value)
    assert str(module) == before, "a failed split leaves the module untouched"


def test_sharding_twice_is_an_error():
    module = _shard(tiny_llama(1), 2)
    with pytest.raises(DiagnosticException, match="already sharded over 2 sockets"):
        ShardTensorParallel(2).apply(Context(), module)
