"""place-memory: sizing per socket, spilling with warnings, capacity errors with numbers."""

import re
from importlib import resources

import pytest
from xdsl.context import Context
from xdsl.dialects.builtin import ArrayAttr, Builtin, ModuleOp, StringAttr
from xdsl.parser import Parser
from xdsl.utils.exceptions import VerifyException

from dfdsl.dialects import df
from dfdsl.lowering.fuse import Fuse
from dfdsl.lowering.kernel_looping import KernelLooping
from dfdsl.lowering.place_memory import CapacityError, PlaceMemory, group_name, tensor_groups
from dfdsl.lowering.shard_tensor_parallel import ShardTensorParallel
from df_models import tiny_llama

SN40L_TEXT = (resources.files("dfdsl.hardware") / "sn40l.toml").read_text(encoding="utf-8")
TINY_LLAMA_3_LAYERS_BYTES = 298_372
"""Per-socket bytes of `tiny_llama(layers=3)`'s declarations (KV caches at context + tokens)."""


def _hardware(tmp_path, hbm_bytes=64 * 10**9, ddr_bytes=1_500 * 10**9, sram_bytes=520_000_000):
    text = SN40L_TEXT.replace("capacity_bytes = 64000000000", f"capacity_bytes = {hbm_bytes}")
    text = text.replace("capacity_bytes = 1500000000000", f"capacity_bytes = {ddr_bytes}")
    text = text.replace("sram_bytes = 520000000", f"sram_bytes = {sram_bytes}")
    path = tmp_path / "target.toml"
    path.write_text(text)
    return str(path)


def _graph(module: ModuleOp) -> df.GraphOp:
    return next(op for op in module.ops if isinstance(op, df.GraphOp))


def _tiers(module: ModuleOp) -> dict[str, str]:
    return {
        op.tensor_name.data: op.result.type.tier_name
        for op in _graph(module).body.block.ops
        if isinstance(op, df.DeclBase)
    }


def _round_trip(module: ModuleOp) -> str:
    module.verify()
    ctx = Context()
    ctx.load_dialect(Builtin)
    ctx.load_dialect(df.Df)
    text = str(module)
    assert str(Parser(ctx, text).parse_module()) == text
    return text


def test_group_names_drop_the_layer_index():
    assert group_name("layers.3.wq") == "layers.*.wq"
    assert group_name("layers.{0..31}.k_cache") == "layers.*.k_cache"
    assert group_name("lm_head") == "lm_head"


def test_sizes_are_per_socket_with_the_cache_at_context_plus_tokens():
    groups = {g.name: g for g in tensor_groups(_graph(tiny_llama(layers=3)))}
    # 3 layers x (128 + 4) tokens x 2 heads x 16 x 2 bytes
    assert groups["layers.*.k_cache"].bytes_per_socket == 3 * 132 * 2 * 16 * 2
    assert groups["layers.*.wq"].bytes_per_socket == 3 * 64 * 64 * 2
    assert sum(g.bytes_per_socket for g in groups.values()) == TINY_LLAMA_3_LAYERS_BYTES


def test_nothing_moves_when_everything_fits(capsys):
    module = tiny_llama(layers=3)
    before = _tiers(module)
    PlaceMemory().apply(Context(), module)
    assert _tiers(module) == before
    assert capsys.readouterr().err == ""


def test_kv_caches_spill_to_ddr_before_weights(tmp_path, capsys):
    module = tiny_llama(layers=3)
    hw = _hardware(tmp_path, hbm_bytes=TINY_LLAMA_3_LAYERS_BYTES - 10_000)
    PlaceMemory(hardware=hw).apply(Context(), module)
    tiers = _tiers(module)
    # One 25,344-byte cache covers the 10,000-byte overflow; every weight stays in HBM.
    assert {name for name, tier in tiers.items() if tier == "ddr"} == {f"layers.{i}.k_cache" for i in range(3)}
    err = capsys.readouterr().err
    assert "warning: place-memory: hbm overflows: 0.0 GB per socket" in err
    assert "moved kv_cache layers.*.k_cache" in err
    text = _round_trip(module)
    assert re.search(r"df.layer @llama_decoder\(.*%k_cache: !df.tensor<\[B, S, 2, 16\], bf16, ddr>", text)


def test_weights_spill_once_the_caches_are_gone(tmp_path, capsys):
    module = tiny_llama(layers=3)
    PlaceMemory(hardware=_hardware(tmp_path, hbm_bytes=200_000)).apply(Context(), module)
    tiers = _tiers(module)
    assert tiers["layers.0.k_cache"] == tiers["layers.0.v_cache"] == "ddr"
    # 47,684 bytes still over: the smallest weight group that covers it alone is one 49,152-byte
    # MLP matrix; the other weights stay.
    assert sum(tier == "ddr" for name, tier in tiers.items() if name.startswith("layers.0.w")) == 1
    assert tiers["embed"] == tiers["lm_head"] == "hbm"
    assert capsys.readouterr().err.count("warning: place-memory:") == 3
    _round_trip(module)


def test_a_looped_kernel_and_its_loop_slices_follow_a_spill(tmp_path):
    module = tiny_llama(layers=3)
    Fuse(mode="layer").apply(Context(), module)
    KernelLooping().apply(Context(), module)
    PlaceMemory(hardware=_hardware(tmp_path, hbm_bytes=TINY_LLAMA_3_LAYERS_BYTES - 10_000)).apply(Context(), module)
    text = _round_trip(module)
    assert 'df.kv_cache "layers.{0..2}.k_cache" : !df.tensor<[3, B, S, 2, 16], bf16, ddr>' in text
    assert "%k_cache: !df.tensor<[3, B, S, 2, 16], bf16, ddr>" in text
    assert "%k_cache_1: !df.tensor<[B, S, 2, 16], bf16, ddr>" in text
    assert "%v_cache_1: !df.tensor<[B, S, 2, 16], bf16, hbm>" in text


SHARED_KERNEL = """
builtin.module {
  df.layer @proj(%x: !df.tensor<[B, 4096], bf16>, %w: !df.tensor<[4096, 14336], bf16, hbm>) -> !df.tensor<[B, 14336], bf16> {
    %y = df.linear %x, %w : (!df.tensor<[B, 4096], bf16>, !df.tensor<[4096, 14336], bf16, hbm>) -> !df.tensor<[B, 14336], bf16>
    df.return %y : !df.tensor<[B, 14336], bf16>
  }
  df.graph @m attributes {activations = "sram", batch = 1 : i64, context = 16 : i64, tokens = 1 : i64, sockets = 1 : i64, tp = 1 : i64, target = "sn40l"} {
    %x = df.input "x" : !df.tensor<[B, 4096], bf16>
    %a = df.weight "gate" : !df.tensor<[4096, 14336], bf16, hbm>
    %b = df.weight "up" : !df.tensor<[4096, 14336], bf16, hbm>
    %ya = df.call @proj(%x, %a) : (!df.tensor<[B, 4096], bf16>, !df.tensor<[4096, 14336], bf16, hbm>) -> !df.tensor<[B, 14336], bf16>
    %yb = df.call @proj(%x, %b) : (!df.tensor<[B, 4096], bf16>, !df.tensor<[4096, 14336], bf16, hbm>) -> !df.tensor<[B, 14336], bf16>
    df.output %ya, %yb : !df.tensor<[B, 14336], bf16>, !df.tensor<[B, 14336], bf16>
  }
}
"""


def _parse(text: str) -> ModuleOp:
    ctx = Context()
    ctx.load_dialect(Builtin)
    ctx.load_dialect(df.Df)
    return Parser(ctx, text).parse_module()


def test_a_callee_needed_with_two_signatures_is_cloned(tmp_path):
    module = _parse(SHARED_KERNEL)
    PlaceMemory(hardware=_hardware(tmp_path, hbm_bytes=150_000_000)).apply(Context(), module)
    text = _round_trip(module)
    assert _tiers(module) == {"x": "", "gate": "ddr", "up": "hbm"}
    # `up` still needs the original signature, so `gate` gets a copy of the layer.
    assert "df.layer @proj(%x: !df.tensor<[B, 4096], bf16>, %w: !df.tensor<[4096, 14336], bf16, hbm>)" in text
    assert "df.layer @proj_1(%x: !df.tensor<[B, 4096], bf16>, %w: !df.tensor<[4096, 14336], bf16, ddr>)" in text
    assert re.search(r"df.call @proj_1\(.*bf16, ddr>\)", text)
    assert re.search(r"df.call @proj\(.*bf16, hbm>\)", text)


def test_sram_overflow_spills_to_hbm(tmp_path, capsys):
    module = _parse(SHARED_KERNEL.replace("bf16, hbm", "bf16, sram"))
    PlaceMemory(hardware=_hardware(tmp_path, sram_bytes=200_000_000)).apply(Context(), module)
    assert _tiers(module) == {"x": "", "gate": "hbm", "up": "sram"}
    assert "sram overflows: 0.2 GB per socket, capacity 0.2 GB" in capsys.readouterr().err
    _round_trip(module)


def test_an_explicitly_placed_tensor_stays_and_the_other_spills(tmp_path):
    module = _parse(SHARED_KERNEL.replace('target = "sn40l"', 'target = "sn40l", explicit_tensors = ["gate"]'))
    PlaceMemory(hardware=_hardware(tmp_path, hbm_bytes=150_000_000)).apply(Context(), module)
    assert _tiers(module) == {"x": "", "gate": "hbm", "up": "ddr"}
    assert 'explicit_tensors = ["gate"]' in _round_trip(module)


def test_explicit_tiers_name_known_tensor_classes_only():
    graph = _graph(tiny_llama(layers=1))
    graph.properties["explicit_tiers"] = ArrayAttr([StringAttr("weights"), StringAttr("activations")])
    graph.verify_()
    graph.properties["explicit_tiers"] = ArrayAttr([StringAttr("weights"), StringAttr("foo")])
    with pytest.raises(VerifyException, match="explicit_tiers holds 'foo', not a tensor class; classes are "
                       "weights, kv_cache, activations, inputs"):
        graph.verify_()


def test_explicit_weights_in_hbm_fail_with_the_numbers_and_a_way_out(tmp_path):
    module = tiny_llama(layers=3)
    _graph(module).properties["explicit_tiers"] = ArrayAttr([StringAttr("weights")])
    with pytest.raises(CapacityError) as caught:
        PlaceMemory(hardware=_hardware(tmp_path, hbm_bytes=200_000)).apply(Context(), module)
    message = str(caught.value)
    weights = sum(op.result.type.num_bytes() for op in _graph(module).body.block.ops if isinstance(op, df.WeightOp))
    assert (f"tiny_llama in BF16 does not fit in hbm: its socket must hold {weights:,} bytes there "
            f"({weights:,} bytes of weights; its share of each split tensor, the whole of each replicated one) "
            "and has 200,000 bytes (GB = 10^9 bytes); place weights in ddr") in message
    # The pass cannot re-shard the module: the socket counts that work are the driver's hint.
    assert "sockets" not in message.split(";")[-1]


def test_llama_405b_on_8_sockets_of_hbm():
    """The design's example: 405B's BF16 weights, named for HBM, do not fit 8 sockets. (The
    embedding table is replicated on every socket, hence more than 811.7 GB / 8 per socket.)"""
    module = tiny_llama(layers=126, hidden=16384, heads=128, kv_heads=8, head_dim=128, ffn=53248,
                        vocab=128256, context=8192, tokens=128, sockets=8)
    ShardTensorParallel(sockets=8).apply(Context(), module)
    _graph(module).properties["explicit_tiers"] = ArrayAttr([StringAttr("weights")])
    with pytest.raises(CapacityError, match=re.escape(
        "tiny_llama in BF16 does not fit in hbm: each of its 8 sockets must hold 105.1 GB there (105.1 GB of "
        "weights; its share of each split tensor, the whole of each replicated one) and has 64.0 GB "
        "(GB = 10^9 bytes); place weights in ddr"
    )):
        PlaceMemory().apply(Context(), module)


def test_ddr_overflow_fails_even_for_the_default_placement(tmp_path):
    module = tiny_llama(layers=3)
    with pytest.raises(CapacityError, match=r"does not fit in ddr: .* bytes of KV cache; .* and has 100,000 bytes "
                                             r"\(GB = 10\^9 bytes\)$"):
        PlaceMemory(hardware=_hardware(tmp_path, hbm_bytes=100_000, ddr_bytes=100_000)).apply(Context(), module)


def test_a_bad_hardware_path_is_a_diagnostic():
    module = tiny_llama(layers=1)
    with pytest.raises(Exception, match=r"place-memory: /nope.toml: no such hardware file"):
        PlaceMemory(hardware="/nope.toml").apply(Context(), module)
