"""Tests of the df-to-rdu pass: work totals against hand computations, stage grouping, the chip budget."""

from pathlib import Path

import pytest
from xdsl.dialects.builtin import ModuleOp
from xdsl.parser import Parser
from xdsl.utils.exceptions import DiagnosticException

from df_models import step_totals, tiny_llama, tiny_mla, tiny_moe
from dfdsl.dialects import cost, df, rdu
from dfdsl.hardware import load_hardware
from dfdsl.lowering.df_to_rdu import DfToRdu, _share_out
from dfdsl.lowering.operator_work import operator_work
from dfdsl.lowering.pipeline import RDU_PIPELINE, LoweringOptions, context, run_passes
from dfdsl.lowering.stages import StageError

TINY_CHIP = Path(__file__).parent / "filecheck" / "df-to-rdu" / "Inputs" / "tiny_chip.toml"


def lower(module: ModuleOp, looping: bool = True, **pass_options: str) -> ModuleOp:
    """Shards, fuses, loops (if asked) and lowers `module` to rdu, verifying after each pass."""
    passes = RDU_PIPELINE.passes_to("looped", LoweringOptions(kernel_looping=looping))
    run_passes(module, [*passes, DfToRdu(**pass_options)])
    return module


def test_tiny_llama_totals_match_a_hand_computation():
    # tiny_llama: hidden 64, 4 heads and 2 KV heads of 16, ffn 128, vocab 100, bf16, 2 layers.
    h, heads, kv, d, f, v, layers, b, s = 64, 4, 2, 16, 128, 100, 2, 2, 100
    matmul_params = h * heads * d + 2 * h * kv * d + heads * d * h + 3 * h * f   # q, k, v, o, mlp
    elementwise = 2 * 4 * h + 3 * (heads * d + kv * d) + 2 * h + 4 * f + f      # norms, rope, adds, silu, mul
    layer_flops = 2 * b * matmul_params + 2 * b * (s + 1) * heads * 2 * d + b * elementwise
    head_flops = b * (4 * h + 2 * h * v + v)                                       # final norm, lm_head, sample
    kv_read = 2 * b * s * kv * d * 2                                               # both caches, bf16
    layer_read = (matmul_params + 2 * h) * 2 + kv_read
    head_read = b * h * 2 + h * 2 + h * v * 2                                      # embedding rows, norm, lm_head
    module = lower(tiny_llama(layers, batch=b, context=s))
    totals = step_totals(module, b, s)
    assert totals["flops"] == layers * layer_flops + head_flops == 430920
    assert totals["hbm_read"] == layers * layer_read + head_read == 212352
    assert totals["hbm_write"] == layers * 2 * b * kv * d * 2                    # the K and V appends
    assert totals["ddr_read"] == totals["ddr_write"] == totals["p2p"] == 0


@pytest.mark.parametrize("build", [tiny_llama, tiny_moe, tiny_mla])
@pytest.mark.parametrize("sockets", [1, 2])
def test_kernel_looping_does_not_change_the_work_of_a_step(build, sockets):
    looped = step_totals(lower(build(3, sockets=sockets, batch=2, context=100)), 2, 100)
    unlooped = step_totals(lower(build(3, sockets=sockets, batch=2, context=100), looping=False), 2, 100)
    assert looped == pytest.approx(unlooped)


@pytest.mark.parametrize("build", [tiny_llama, tiny_moe, tiny_mla])
@pytest.mark.parametrize("sockets", [1, 2])
def test_every_kernel_fits_the_usable_part_of_the_chip(build, sockets):
    module = lower(build(2, sockets=sockets, batch=8, context=1000))
    chip = load_hardware("sn40l").chip
    program = next(op for op in module.ops if isinstance(op, rdu.ProgramOp))
    assert program.count("pcus_per_socket") == chip.pcus
    for kernel in (op for op in module.ops if isinstance(op, rdu.KernelOp)):
        stages = kernel.stages()
        assert stages and all(s.units("pcus") >= 1 and s.units("pmus") >= 1 for s in stages)
        assert kernel.pcus.value.data <= round(chip.usable_fraction * chip.pcus)
        assert kernel.pmus.value.data <= round(chip.usable_fraction * chip.pmus)
        assert sum(s.units("sram_bytes") for s in stages) <= chip.sram_bytes


def test_output_has_no_df_ops_and_prints_and_parses_back():
    module = lower(tiny_moe(2, sockets=2))
    assert not [op for op in module.walk() if op.name.startswith("df.")]
    text = str(module)
    again = Parser(context(), text).parse_module()
    again.verify()
    assert str(again) == text


def test_a_sharded_layer_gets_one_all_reduce_per_row_split_projection():
    module = lower(tiny_llama(2, sockets=2))
    program = next(op for op in module.ops if isinstance(op, rdu.ProgramOp))
    assert program.count("sockets") == 2
    layer = next(op for op in module.ops if isinstance(op, rdu.KernelOp) and op.loop)
    reduces = [op for op in layer.pipeline()[0] if isinstance(op, rdu.AllReduceOp)]
    assert [(r.bytes, r.sockets.value.data) for r in reduces] == [(cost.Work.make(0, 128), 2)] * 2


def test_the_loop_strides_its_stacked_arguments_by_one_layer():
    module = lower(tiny_llama(3))
    layer = next(op for op in module.ops if isinstance(op, rdu.KernelOp) and op.loop)
    loop = layer.loop
    assert loop.trip_count.value.data == 3
    for index, stride in zip(loop.stacked_indices, loop.strides.data):
        slice_type = layer.args[index].type.with_dims(layer.args[index].type.dims[1:])
        assert stride == cost.Work.of_bytes(slice_type)
    assert loop.carried_bytes == cost.Work.make(0, 64 * 2)


def test_moe_experts_stage_reads_experts_by_the_expert():
    module = lower(tiny_moe(2))
    stage = next(s for k in module.ops if isinstance(k, rdu.KernelOp) for s in k.stages()
                 if s.stage_name.data == "moe_experts")
    # 4 experts, top 2, hidden 64, expert ffn 32: one expert's gate, up and down in bf16.
    assert (stage.experts.value.data, stage.top_k.value.data) == (4, 2)
    assert stage.work("expert_read") == cost.Work.make(3 * 64 * 32 * 2)
    assert stage.expert_tier.data == "hbm"
    assert stage.work("flops") == cost.Work.make(0, 2 * 2 * 3 * 64 * 32 + 64)  # + the residual add


def test_mla_attention_work_by_hand():
    module = tiny_mla(1)
    op = next(o for o in module.walk() if isinstance(o, df.MlaAttentionOp))
    work = operator_work(op)
    # 4 heads, latent 32, rope 8, nope 16, v_head 16: per sequence
    # 2*4*(16*32 + (S+1)*40 + (S+1)*32 + 32*16) = 8768 + 576*S.
    assert work.flops == cost.Work.make(0, 8768, 576)
    assert work.traffic["hbm_read"] == cost.Work.make(32 * 128 * 2, 0, 40 * 2)  # kv_up + the cache
    assert work.traffic["hbm_write"] == cost.Work.make(0, 40 * 2)


def test_activations_in_hbm_are_read_and_written_by_each_unlooped_kernel():
    module = tiny_llama(1)
    graph = next(op for op in module.ops if isinstance(op, df.GraphOp))
    graph.properties["activations"] = df.StringAttr("hbm")
    lower(module, looping=False)
    sample = next(op for op in module.ops if isinstance(op, rdu.KernelOp) and op.sym_name.data == "sample")
    (stage,) = sample.stages()
    assert stage.work("hbm_read") == cost.Work.make(0, 100 * 2)   # the logits in
    assert stage.work("hbm_write") == cost.Work.make(0, 4)        # the token ids out


def test_share_out_gives_every_stage_a_unit_and_spends_the_budget():
    assert _share_out(10, [0.0, 0.0]) == [5, 5]
    assert _share_out(90, [33280, 32768, 34176]) == [30, 29, 31]
    shares = _share_out(936, [1e9, 1, 0, 5e8])
    assert sum(shares) == 936 and min(shares) == 1


def test_too_many_stages_for_the_chip_is_an_error(tmp_path):
    small = tmp_path / "small.toml"
    small.write_text(TINY_CHIP.read_text().replace("pcus = 100", "pcus = 3"))
    with pytest.raises(DiagnosticException, match=r"kernel @llama_decoder_x2 has \d+ stages but a socket has only 3"):
        lower(tiny_llama(2), hardware=str(small))


def test_unknown_hardware_is_an_error():
    with pytest.raises(DiagnosticException, match="no such hardware file"):
        lower(tiny_llama(1), hardware="no/such/chip.toml")


UNPLACED = """
df.kernel @embed(%t: !df.tensor<[B], i32>, %e: !df.tensor<[100, 64], bf16>) -> !df.tensor<[B, 64], bf16> {
  %x = df.embedding %t, %e : (!df.tensor<[B], i32>, !df.tensor<[100, 64], bf16>) -> !df.tensor<[B, 64], bf16>
  df.return %x : !df.tensor<[B, 64], bf16>
}
df.graph @m attributes {activations = "sram", batch = 1 : i64, context = 8 : i64, tokens = 1 : i64, sockets = 1 : i64, tp = 1 : i64, target = "sn40l"} {
  %t = df.input "tokens" : !df.tensor<[B], i32>
  %e = df.weight "embed" : !df.tensor<[100, 64], bf16>
  %x = df.launch @embed(%t, %e) : (!df.tensor<[B], i32>, !df.tensor<[100, 64], bf16>) -> !df.tensor<[B, 64], bf16>
  df.output %x : !df.tensor<[B, 64], bf16>
}
"""


def test_an_unplaced_weight_is_an_error():
    module = Parser(context(), UNPLACED).parse_module()
    module.verify()
    with pytest.raises(StageError, match="df-to-rdu expects placed IR, but df.weight 'embed' has no memory tier"):
        DfToRdu().apply(context(), module)
