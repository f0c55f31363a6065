"""`import_config`: Hugging Face configs become `.dfl` models that check, lower and simulate."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from dfdsl import ast
from dfdsl.dialects import df
from dfdsl.dialects.shapes import DTYPE_BYTES
from dfdsl.elaborate import check_file
from dfdsl.hf_import import FAMILIES, HfImportError, import_config, model_name, weight_bytes
from dfdsl.model import ResolvedModel
from dfdsl.irgen import generate
from dfdsl.lowering.pipeline import RDU_PIPELINE, LoweringOptions, run_passes
from dfdsl.parser import parse_text
from dfdsl.sim.interpreter import simulate

ROOT = Path(__file__).parent.parent
CONFIGS = ROOT / "dfdsl" / "hf_configs"
SHIPPED = sorted(CONFIGS.glob("*.json"))


def imported(config: Path, tmp_path: Path) -> tuple[str, ResolvedModel]:
    """The imported text, and the model it checks to."""
    text = import_config(config)
    path = tmp_path / "imported.dfl"
    path.write_text(text, encoding="utf-8")
    return text, check_file(path)


def config_file(tmp_path: Path, data: dict, name: str = "config.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def llama_8b(**changes: object) -> dict:
    data = json.loads((CONFIGS / "Llama-3.1-8B.json").read_text(encoding="utf-8"))
    data.update(changes)
    return {k: v for k, v in data.items() if v is not ...}


def model_of(text: str) -> ast.Model:
    return next(i for i in parse_text(text, Path("m.dfl")).items if isinstance(i, ast.Model))


def values(bindings: tuple[ast.Binding, ...]) -> dict[str, object]:
    """Binding names to values, for bindings that are numbers or names (`bf16`)."""
    out: dict[str, object] = {}
    for b in bindings:
        assert isinstance(b.value, ast.Int | ast.Name), b
        out[b.name] = b.value.value if isinstance(b.value, ast.Int) else b.value.name
    return out


def test_the_shipped_configs_cover_every_family():
    shipped = {json.loads(p.read_text(encoding="utf-8"))["architectures"][0] for p in SHIPPED}
    assert shipped == {f.architecture for f in FAMILIES}
    assert len(SHIPPED) == 8


@pytest.mark.parametrize("config", SHIPPED, ids=lambda p: p.stem)
def test_every_shipped_config_checks_lowers_and_simulates(config: Path, tmp_path: Path):
    text, model = imported(config, tmp_path)
    assert text.startswith(f"# Imported by `dfdsl import-hf` from {config.name}")
    module = generate(model)
    run_passes(module, RDU_PIPELINE.passes_to("rdu", LoweringOptions(sockets=model.run.sockets)))
    result = simulate(module, "sn40l")
    assert result.sockets == model.run.sockets
    assert result.ms_per_token > 0


@pytest.mark.parametrize(("config", "gigabytes", "digits"),
                         [("Llama-3.1-8B.json", 16.06, 2), ("Llama-3.1-70B.json", 141.1, 1)])
def test_llama_3_1_weights_match_the_model_zoo(config: str, gigabytes: float, digits: int, tmp_path: Path):
    _, model = imported(CONFIGS / config, tmp_path)
    module = generate(model)
    declared = sum(op.result.type.num_bytes() for op in module.walk() if isinstance(op, df.WeightOp))
    assert round(declared / 1e9, digits) == gigabytes
    assert weight_bytes(model) == declared


def test_llama_3_1_8b_matches_the_hand_written_example(tmp_path: Path):
    text, _ = imported(CONFIGS / "Llama-3.1-8B.json", tmp_path)
    example = (ROOT / "examples" / "llama3_1_8b.dfl").read_text(encoding="utf-8")
    ours, theirs = model_of(text), model_of(example)
    assert ours.graph.name == theirs.graph.name == "llama"
    assert values(ours.bindings) == values(theirs.bindings)
    assert ours.name == "llama_3_1_8b"
    tail = example[example.index("place {"):]
    assert text.endswith(tail)  # the same placement and run, 8 sockets


def test_the_header_says_what_became_of_each_field(tmp_path: Path):
    text, _ = imported(CONFIGS / "Llama-3.1-8B.json", tmp_path)
    header = text[: text.index("import std.")]
    assert "head_dim <- hidden_size / num_attention_heads (head_dim is absent)" in header
    assert "rope_theta, rope_scaling: not modelled" in header
    assert "tie_word_embeddings: false: the LM head has its own weight" in header
    assert "Ignored (no effect on the work of a decode step): attention_dropout, bos_token_id" in header
    assert "fit the HBM of 8 sockets (64 GB of HBM per socket" in header
    assert all(line.startswith("#") or not line for line in header.splitlines())
    assert max(len(line) for line in header.splitlines()) <= 100


def test_llama_2_weights_are_fp16_and_named_from_name_or_path(tmp_path: Path):
    _, model = imported(CONFIGS / "Llama-2-7b-hf.json", tmp_path)
    assert model.name == "llama_2_7b_hf"
    assert {s.type.dtype for s in model.steps if getattr(s, "kind", "") == "weight"} == {"fp16"}


def test_gemma_2_has_four_norms_a_gelu_mlp_and_a_tied_head(tmp_path: Path):
    text, model = imported(CONFIGS / "gemma-2-27b.json", tmp_path)
    (layer,) = model.layers
    ops = [op.op for op in layer.ops]
    assert ops.count("rmsnorm") == 4
    assert "gelu" in ops and "silu" not in ops
    assert dict(next(op for op in layer.ops if op.op == "attention").attrs) == {"heads": 32, "kv_heads": 16}
    assert next(d for d in layer.caches).type.shape[-1] == 128
    assert "sliding_window, sliding_window_size: ignored: every layer attends over the whole context" in text
    assert "the LM head is the embedding table transposed\n#     (`lm_head = transpose(embed)` in std.gemma), held and read once" in text
    weights = {s.name: s for s in model.steps if getattr(s, "kind", "") == "weight"}
    assert weights["embed"].type.shape == (256000, 4608) and weights["lm_head"].type.shape == (4608, 256000)
    assert weights["lm_head"].tied_to == "embed"
    # Held once: the table counts in the weights only as `embed`.
    held = sum(DTYPE_BYTES[w.type.dtype] * math.prod(w.type.shape) for w in weights.values() if not w.tied_to)
    assert weight_bytes(model) == held


def test_deepseek_v3_is_fp8_on_16_sockets_with_dense_then_moe_layers(tmp_path: Path):
    text, model = imported(CONFIGS / "DeepSeek-V3.json", tmp_path)
    assert model.run.sockets == 16
    assert {layer.symbol for layer in model.layers} == {"deepseek_dense", "deepseek_moe"}
    assert round(weight_bytes(model) / 1e9) == 671
    assert values(model_of(text).bindings)["dtype"] == "fp8"
    assert "dense_layers = 3" in text


def test_weights_beyond_16_sockets_of_hbm_leave_placement_to_place_memory(tmp_path: Path):
    big = llama_8b(hidden_size=16384, intermediate_size=53248, num_hidden_layers=126,
                   num_attention_heads=128, torch_dtype="float32")
    text, model = imported(config_file(tmp_path, big), tmp_path)
    assert model.run.sockets == 16
    assert "the run will need DDR" in text
    assert "place { activations -> sram }" in text
    assert model.explicit_classes == ("activations",)


def test_absent_kv_heads_and_head_dim_take_their_defaults(tmp_path: Path):
    config = config_file(tmp_path, llama_8b(num_key_value_heads=..., _name_or_path="org/Tiny"))
    text, model = imported(config, tmp_path)
    bindings = values(model_of(text).bindings)
    assert bindings["kv_heads"] == bindings["heads"] == 32
    assert bindings["head_dim"] == 4096 // 32
    assert model.name == "tiny"


def test_a_config_without_architectures_goes_by_model_type(tmp_path: Path):
    text, _ = imported(config_file(tmp_path, llama_8b(architectures=..., model_type="mistral")), tmp_path)
    assert "import std.llama" in text


@pytest.mark.parametrize(("path", "data", "expected"), [
    ("config.json", {"_name_or_path": "meta-llama/Llama-3.1-8B"}, "llama_3_1_8b"),
    ("Qwen2-72B.json", {}, "qwen2_72b"),
    ("405b.json", {}, "m_405b"),
    ("models/Mistral-7B/config.json", {}, "mistral_7b"),
    ("model.json", {}, "m_model"),
])
def test_model_names_are_valid_names(path: str, data: dict, expected: str):
    assert model_name(Path(path), data) == expected


def errors(tmp_path: Path, data: dict | str) -> str:
    path = tmp_path / "config.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    with pytest.raises(HfImportError) as info:
        import_config(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    return message


def test_an_unsupported_architecture_is_named(tmp_path: Path):
    message = errors(tmp_path, {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2"})
    assert "unsupported architecture `GPT2LMHeadModel`; supported: LlamaForCausalLM" in message
    assert "DeepseekV3ForCausalLM" in message


def test_a_missing_field_is_named(tmp_path: Path):
    assert errors(tmp_path, llama_8b(num_hidden_layers=...)).endswith("missing field `num_hidden_layers`")
    deepseek = json.loads((CONFIGS / "DeepSeek-V3.json").read_text(encoding="utf-8"))
    del deepseek["kv_lora_rank"]
    assert errors(tmp_path, deepseek).endswith("missing field `kv_lora_rank`")


@pytest.mark.parametrize(("changes", "expected"), [
    ({"hidden_size": "4096"}, 'field `hidden_size` must be a positive integer, got "4096"'),
    ({"num_key_value_heads": 5}, "num_attention_heads (32) is not a multiple of num_key_value_heads (5)"),
    ({"torch_dtype": "float64"}, 'field `torch_dtype` is "float64"; supported: bfloat16, float16, float32'),
    ({"hidden_act": "gelu"}, 'field `hidden_act` is "gelu"; only "silu" is supported'),
    ({"attention_bias": True}, "field `attention_bias` is true"),
    ({"quantization_config": {"quant_method": "awq"}}, "unsupported quantization `awq`; supported: fp8"),
    ({"architectures": ..., "model_type": ...}, "missing field `architectures` (and `model_type`)"),
    ({"num_attention_heads": 24, "num_key_value_heads": 8},
     "missing field `head_dim`, and hidden_size (4096)"),
])
def test_bad_fields_are_named(changes: dict, expected: str, tmp_path: Path):
    assert expected in errors(tmp_path, llama_8b(**changes))


def test_unreadable_and_malformed_files_are_named(tmp_path: Path):
    assert "not valid JSON: line 1 column 2" in errors(tmp_path, "{hidden_size: 1}")
    assert "holds one JSON object, got list" in errors(tmp_path, "[]")
    with pytest.raises(HfImportError, match="cannot read"):
        import_config(tmp_path / "absent.json")
