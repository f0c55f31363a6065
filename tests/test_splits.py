"""The splits beyond tensor parallelism (issue 14): padding of what does not divide the sockets,
expert parallelism and data-parallel attention, end to end through the driver."""

from __future__ import annotations

from pathlib import Path

import pytest

from dfdsl.dialects import df
from dfdsl.driver import CompileOptions, Compiler, RunSettings, hbm_bytes_per_socket, load_model
from dfdsl.errors import LoweringError
from dfdsl.lowering.shard_tensor_parallel import attention_shares

ROOT = Path(__file__).parent.parent
EXAMPLES = ROOT / "examples"


def _llama(heads: int, kv_heads: int, parallel: str = "") -> str:
    return f"""
import std.llama
model m : llama {{
  dtype = bf16; vocab = 99; hidden = 64; layers = 2
  heads = {heads}; kv_heads = {kv_heads}; head_dim = 16; ffn = 96
}}
{parallel}
run decode {{ batch = 2; context = 64; tokens = 4; target = sn40l(sockets = 3) }}
"""


def _run(tmp_path: Path, text: str, overrides: dict | None = None, name: str = "m.dfl"):
    (tmp_path / name).write_text(text)
    model = load_model(tmp_path / name, overrides or {})
    return Compiler().simulate(model, model.settings, CompileOptions())


@pytest.mark.parametrize(
    ("heads", "kv_heads", "sockets", "shares"),
    [
        (32, 8, 8, (4, 1)),      # Llama 3.1 8B: divides
        (32, 8, 16, (2, 1)),     # each KV head on 2 sockets
        (28, 4, 8, (4, 1)),      # Qwen2 7B: groups of 7 over 2 sockets, padded to 8
        (28, 4, 16, (2, 1)),     # ... over 4 sockets, padded to 8
        (40, 40, 16, (3, 3)),    # Llama 2 13B: 40 KV heads padded to 48
        (15, 5, 4, (6, 2)),      # 5 KV heads padded to 8, 2 whole groups per socket
        (4, 2, 3, None),         # 2 KV heads padded to 3 would leave a socket only padding
        (32, 8, 1000, None),     # ... as 32 heads over 1,000 sockets would
    ],
)
def test_attention_shares_pad_what_does_not_divide(heads, kv_heads, sockets, shares):
    assert attention_shares(heads, kv_heads, sockets, pad=True) == shares
    divides = heads % sockets == 0 and (kv_heads % sockets == 0 or sockets % kv_heads == 0)
    assert (attention_shares(heads, kv_heads, sockets, pad=False) is None) == (not divides)


def test_padding_is_counted_in_the_bytes_and_flops(tmp_path, capfd):
    # 4 heads on 3 sockets are padded to 6, 2 per socket: a socket holds and runs exactly what a
    # socket of the same model with 6 heads does, and the report's roofline stays the 4-head model's.
    padded = _run(tmp_path, _llama(4, 4), name="padded.dfl")
    assert "remark: shard-tensor-parallel: attention: 4 heads and 4 KV heads padded to 6 heads" in capfd.readouterr().err
    six = _run(tmp_path, _llama(6, 6), name="six.dfl")
    for key in ("flops_per_token", "ms_per_token", "read_bytes_per_token_all_sockets"):
        assert padded.report[key] == pytest.approx(six.report[key], rel=1e-12), key
    assert padded.report["param_bytes"] < six.report["param_bytes"]
    assert padded.report["kv_bytes"] < six.report["kv_bytes"]


def test_no_pad_restores_the_refusal(tmp_path):
    with pytest.raises(LoweringError) as err:
        _run(tmp_path, _llama(4, 4), {"parallel": "pad=off"})
    assert err.value.code == "E020" and "padding is off" in str(err.value)
    with pytest.raises(LoweringError, match="padding is off"):
        _run(tmp_path, _llama(4, 4, "parallel { pad = off }"))


@pytest.mark.parametrize("name", ["qwen2_7b", "llama2_13b"])
@pytest.mark.parametrize("sockets", [8, 16])
def test_heads_that_do_not_divide_run_at_8_and_16_sockets(name, sockets):
    model = load_model(EXAMPLES / f"{name}.dfl", {"sockets": sockets})
    report = Compiler().simulate(model, model.settings, CompileOptions()).report
    assert report["sockets"] == sockets and report["tokens_per_s"] > 0
    assert 0.5 < report["peak_fraction"] < 1


def test_deepseek_v3_at_batch_256_on_16_sockets_needs_data_parallel_attention():
    settings = {"batch": 256, "sockets": 16}
    # Tensor-parallel attention replicates the latent cache on every socket: it does not fit.
    with pytest.raises(LoweringError) as err:
        model = load_model(EXAMPLES / "deepseek_v3.dfl", settings)
        Compiler().simulate(model, model.settings, CompileOptions())
    assert err.value.code == "E021"
    model = load_model(EXAMPLES / "deepseek_v3.dfl", {**settings, "parallel": "attention=data,experts=expert"})
    run = Compiler().simulate(model, model.settings, CompileOptions())
    assert run.result.batch == 256 and run.result.sequences_per_socket == 16
    assert run.report["tokens_per_s"] == pytest.approx(256 * run.report["tokens_per_s_per_user"])
    module = Compiler().compile(model, model.settings, CompileOptions())
    assert hbm_bytes_per_socket(module, model.settings) <= model.hardware.capacity_bytes("hbm")
    # Each socket's latent cache holds its own 16 sequences, not the batch's 256.
    graph = df.the_graph(Compiler().compile(model, model.settings, CompileOptions(), until="fused"), "test")
    assert graph.batch_shards == 16 and graph.sequences_per_socket(256) == 16
    batch_one = Compiler().simulate(load_model(EXAMPLES / "deepseek_v3.dfl"), RunSettings(1, 4096, 128, 16),
                                    CompileOptions()).report
    assert run.report["tokens_per_s"] > 10 * batch_one["tokens_per_s"]


def test_the_imbalance_slows_the_busiest_socket(tmp_path):
    text = (ROOT / "tests" / "filecheck" / "front-end" / "parallel.dfl").read_text()
    even = _run(tmp_path, text, {"parallel": "imbalance=1", "batch": 64}, "even.dfl").report
    skewed = _run(tmp_path, text, {"parallel": "imbalance=2", "batch": 64}, "skewed.dfl").report
    assert skewed["flops_per_token"] > even["flops_per_token"]
    assert skewed["ms_per_token"] >= even["ms_per_token"]
    assert skewed["read_bytes_per_token_all_sockets"] == even["read_bytes_per_token_all_sockets"]


def test_gpu_targets_refuse_splits_other_than_tensor(tmp_path):
    with pytest.raises(LoweringError) as err:
        _run(tmp_path, _llama(4, 4), {"target": "dgx_h100", "parallel": "attention=data"})
    assert err.value.code == "E022" and "tensor-parallel only" in str(err.value)
