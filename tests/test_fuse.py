"""Unit tests of the fuse pass on the tiny models of df_models, unsharded and sharded."""

import pytest
from df_models import tiny_llama, tiny_mla, tiny_moe
from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.parser import Parser
from xdsl.utils.exceptions import DiagnosticException

from dfdsl.dialects import df
from dfdsl.lowering.fuse import Fuse
from dfdsl.lowering.shard_tensor_parallel import ShardTensorParallel
from dfdsl.lowering.pipeline import context


def _fuse(module: ModuleOp, mode: str, sockets: int = 1) -> ModuleOp:
    ShardTensorParallel(sockets).apply(Context(), module)
    Fuse(mode).apply(Context(), module)
    module.verify()
    return module


def _graph(module: ModuleOp) -> df.GraphOp:
    return next(op for op in module.ops if isinstance(op, df.GraphOp))


def _launches(module: ModuleOp) -> list[df.LaunchOp]:
    return [op for op in _graph(module).body.block.ops if isinstance(op, df.LaunchOp)]


def _kernels(module: ModuleOp) -> dict[str, df.KernelOp]:
    return {op.sym_name.data: op for op in module.ops if isinstance(op, df.KernelOp)}


def _operators_per_step(module: ModuleOp) -> int:
    """How many operators one decode step runs: each call runs its layer's body."""
    layers = {op.sym_name.data: op for op in module.ops if isinstance(op, df.LayerOp)}
    count = 0
    for op in _graph(module).body.block.ops:
        if isinstance(op, df.OperatorBase):
            count += 1
        elif isinstance(op, df.CallOp):
            body = layers[op.callee.string_value()].body.block.ops
            count += sum(isinstance(o, df.OperatorBase) for o in body)
    return count


@pytest.mark.parametrize("layers", [1, 3])
@pytest.mark.parametrize("sockets", [1, 2])
def test_launch_counts_per_mode(layers, sockets):
    assert len(_launches(_fuse(tiny_llama(layers), "layer", sockets))) == layers + 3
    assert len(_launches(_fuse(tiny_llama(layers), "block", sockets))) == 2 * layers + 3
    sharded = tiny_llama(layers)
    ShardTensorParallel(sockets).apply(Context(), sharded)
    assert len(_launches(_fuse(tiny_llama(layers), "none", sockets))) == _operators_per_step(sharded)


@pytest.mark.parametrize("mode", ["none", "block", "layer"])
@pytest.mark.parametrize("build", [tiny_llama, tiny_moe, tiny_mla])
def test_only_declarations_launches_and_output_remain(mode, build):
    module = _fuse(build(2), mode, 2)
    assert not [op for op in module.ops if isinstance(op, df.LayerOp)]
    for op in _graph(module).body.block.ops:
        assert isinstance(op, (*df.DECLS, df.LaunchOp, df.OutputOp)), op.name
    launched = {launch.callee.string_value() for launch in _launches(module)}
    assert launched == set(_kernels(module)), "every kernel is launched, every launch has a kernel"


def test_identical_layers_launch_one_kernel_with_the_layer_arguments():
    module = _fuse(tiny_llama(3), "layer", 2)
    assert list(_kernels(module)) == ["llama_decoder", "embedding", "lm_head", "sample"]
    layer_launches = [launch for launch in _launches(module) if launch.callee.string_value() == "llama_decoder"]
    assert len(layer_launches) == 3
    names = [arg.name_hint for arg in _kernels(module)["llama_decoder"].args]
    assert names[:3] == ["x", "attn_norm", "wq"] and names[-2:] == ["k_cache", "v_cache"]
    assert [a.name_hint for a in layer_launches[2].args[1:3]] == ["layers.2.attn_norm", "layers.2.wq"]
    assert layer_launches[1].args[0] is layer_launches[0].res[0], "the activation flows layer to layer"
    body = _kernels(module)["llama_decoder"].body.block.ops
    assert sum(isinstance(op, df.AllReduceOp) for op in body) == 2


def test_different_layers_are_different_kernels():
    module = _fuse(tiny_moe(3, dense_layers=1), "layer")
    callees = [launch.callee.string_value() for launch in _launches(module)]
    assert callees == ["embedding", "llama_decoder", "moe_decoder", "moe_decoder", "lm_head", "sample"]


def test_block_mode_shares_the_attention_block_of_dense_and_moe_layers():
    """The dense and MoE layers differ only in their MLP, so their attention blocks dedupe."""
    module = _fuse(tiny_moe(2, dense_layers=1), "block")
    callees = [launch.callee.string_value() for launch in _launches(module)]
    assert callees == [
        "embedding", "llama_decoder_block0", "llama_decoder_block1",
        "llama_decoder_block0", "moe_decoder_block1", "lm_head", "sample",
    ]


def test_none_mode_names_kernels_by_operator():
    module = _fuse(tiny_mla(1), "none", 2)
    names = list(_kernels(module))
    assert {"mla_attention_0", "moe_experts_0", "all_reduce_0", "embedding_0", "sample_0"} <= set(names)
    for name in names:
        kernel_ops = [op for op in _kernels(module)[name].body.block.ops if isinstance(op, df.OperatorBase)]
        assert len(kernel_ops) == 1 and name.rsplit("_", 1)[0] == kernel_ops[0].operator


def test_kernel_arguments_in_first_use_order_and_results_used_outside():
    module = _fuse(tiny_llama(1), "block")
    block0 = _kernels(module)["llama_decoder_block0"]
    assert [a.name_hint for a in block0.args] == [
        "x", "attn_norm", "wq", "wk", "wv", "k_cache", "v_cache", "wo"
    ]
    assert len(block0.function_type.outputs) == 1


def test_fused_module_is_deterministic_and_parses_back():
    text = str(_fuse(tiny_moe(3, dense_layers=1), "block", 2))
    assert text == str(_fuse(tiny_moe(3, dense_layers=1), "block", 2))
    parsed = Parser(context(), text).parse_module()
    parsed.verify()
    assert str(parsed) == text


def test_unknown_mode_is_an_error():
    with pytest.raises(DiagnosticException, match="unknown mode 'fast'; use mode=none, mode=block or mode=layer"):
        Fuse("fast").apply(Context(), tiny_llama(1))


@pytest.mark.parametrize("build", [tiny_moe, tiny_mla])
def test_block_mode_cuts_only_at_residual_adds(build):
    """DeepSeek's add of routed and shared experts is not a residual add: still 2 blocks a layer."""
    assert len(_launches(_fuse(build(3), "block", 2))) == 2 * 3 + 3
