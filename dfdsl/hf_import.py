"""Hugging Face import: a model's `config.json` becomes a `.dfl` model over the bundled library.

`import_config` picks the family by `architectures[0]` (else `model_type`), maps the config's
hyperparameters onto the parameters of that family's graph in the bundled library, and writes a
file in the style of examples/: a header saying where the model came from and what became of
every field (used, checked, not modelled, ignored), the model, the default placement, and a decode
run on the fewest sockets (8 or 16) whose HBM holds the weights. The weights are counted by
checking the generated file itself, so the count is the one the compiler sees. A problem with the
config raises `HfImportError` naming the file and the field.
"""

from __future__ import annotations

import json
import re
import tempfile
import textwrap
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

import attrs

from dfdsl.diagnostics import DfslError
from dfdsl.dialects.shapes import DTYPE_BYTES, num_elements
from dfdsl.elaborate import DEFAULT_PLACEMENT, DEFAULT_RUN, check_file
from dfdsl.hardware import load_hardware
from dfdsl.model import ResolvedDecl, ResolvedModel

SOCKET_CHOICES = (8, 16)
"""Socket counts a run is given, smallest first: one SN40L node, then a 16-socket rack."""

TORCH_DTYPES = {"bfloat16": "bf16", "float16": "fp16", "float32": "fp32"}
QUANTIZED_DTYPES = {"fp8": "fp8"}
"""`quantization_config.quant_method` values whose weights have a dtype of the language."""

KEYWORDS = frozenset({"import", "const", "layer", "graph", "model", "place", "run", "in", "weight",
                      "cache", "let", "for", "out"})
HEADER_WIDTH = 100
NBSP = "\xa0"
"""Joins words the header must not break apart (`field = value`); printed as a space."""


class HfImportError(Exception):
    """A config that cannot be imported: unreadable, unsupported, or missing or bad fields."""


@attrs.frozen
class Binding:
    """One parameter of the graph, its value, and the config field(s) it came from."""

    param: str
    value: int | str
    source: str


class _Config:
    """A config's fields, read with checks; remembers what became of each field for the header."""

    def __init__(self, path: Path, data: dict[str, Any]):
        self.path = path
        self.data = data
        self.seen: set[str] = {"architectures", "model_type", "_name_or_path"}
        self.checked: list[str] = []
        self.notes: list[str] = []

    def error(self, message: str) -> HfImportError:
        return HfImportError(f"{self.path}: {message}")

    def size(self, field: str) -> int:
        """A required positive integer."""
        self.seen.add(field)
        if field not in self.data:
            raise self.error(f"missing field `{field}`")
        value = self.data[field]
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise self.error(f"field `{field}` must be a positive integer, got {json.dumps(value)}")
        return value

    def bind(self, param: str, field: str) -> Binding:
        return Binding(param, self.size(field), field)

    def expect(self, field: str, allowed: Collection[object], why: str) -> None:
        """A field the family's graph fixes: absent (the family's default) or one of `allowed`."""
        self.seen.add(field)
        if field not in self.data:
            return
        value = self.data[field]
        if value not in allowed:
            wanted = " or ".join(json.dumps(a) for a in allowed)
            raise self.error(f"field `{field}` is {json.dumps(value)}; only {wanted} is supported: {why}")
        self.checked.append(f"{field}{NBSP}={NBSP}{json.dumps(value)}")

    def note(self, fields: Collection[str], text: str) -> None:
        """Say what became of `fields` (those present) in the header."""
        present = [f for f in fields if f in self.data]
        if present:
            self.seen.update(present)
            self.notes.append(f"{', '.join(present)}: {text}")

    def ignored(self) -> list[str]:
        return sorted(k for k in self.data if k not in self.seen)


@attrs.frozen
class Family:
    """A supported architecture: where its graph lives and how a config maps onto it."""

    architecture: str
    model_type: str
    library: str
    graph: str
    tied_by_default: bool
    read: Callable[[_Config], list[list[Binding]]]
    """The graph's parameters from a config, grouped into the lines the model block prints."""
    ties_head: bool = False
    """The graph's LM head is the embedding table transposed (`lm_head = transpose(embed)`)."""


# -- reading each family ------------------------------------------------------------------------


def _dtype(config: _Config) -> Binding:
    """`torch_dtype` (`dtype` in newer configs), unless `quantization_config` names the weights'."""
    quantization = config.data.get("quantization_config")
    dtype_field = "torch_dtype" if "torch_dtype" in config.data else "dtype"
    if quantization is not None:
        config.seen.add("quantization_config")
        method = quantization.get("quant_method") if isinstance(quantization, dict) else None
        if method not in QUANTIZED_DTYPES:
            raise config.error(f"unsupported quantization `{method}`; supported: "
                               + ", ".join(QUANTIZED_DTYPES))
        config.note([dtype_field], "the type of the tensors the checkpoint leaves unquantized (for "
                    "DeepSeek-V3 the embeddings, norms, router and LM head); every weight is counted as "
                    f"{QUANTIZED_DTYPES[method]} here, and the quantization's scales are not counted")
        return Binding("dtype", QUANTIZED_DTYPES[method], f"quantization_config.quant_method ({method})")
    if dtype_field not in config.data:
        config.notes.append("torch_dtype: absent, so bf16 is assumed")
        return Binding("dtype", "bf16", "(absent)")
    config.seen.add(dtype_field)
    torch_dtype = config.data[dtype_field]
    if torch_dtype not in TORCH_DTYPES:
        raise config.error(f"field `{dtype_field}` is {json.dumps(torch_dtype)}; supported: "
                           + ", ".join(TORCH_DTYPES))
    return Binding("dtype", TORCH_DTYPES[torch_dtype], f"{dtype_field} ({torch_dtype})")


def _stack(config: _Config) -> list[Binding]:
    return [_dtype(config), config.bind("vocab", "vocab_size"), config.bind("hidden", "hidden_size"),
            config.bind("layers", "num_hidden_layers")]


def _heads(config: _Config) -> list[Binding]:
    """Query heads, KV heads (default: as many as query heads), head width (default: hidden / heads)."""
    heads = config.size("num_attention_heads")
    hidden = config.size("hidden_size")
    if config.data.get("num_key_value_heads") is None:
        config.seen.add("num_key_value_heads")
        kv_heads, kv_source = heads, "num_attention_heads (num_key_value_heads is absent)"
    else:
        kv_heads, kv_source = config.size("num_key_value_heads"), "num_key_value_heads"
    if heads % kv_heads:
        raise config.error(f"num_attention_heads ({heads}) is not a multiple of num_key_value_heads "
                           f"({kv_heads})")
    if config.data.get("head_dim") is not None:
        head_dim = config.bind("head_dim", "head_dim")
    else:
        config.seen.add("head_dim")
        if hidden % heads:
            raise config.error(f"missing field `head_dim`, and hidden_size ({hidden}) is not a multiple "
                               f"of num_attention_heads ({heads})")
        head_dim = Binding("head_dim", hidden // heads,
                           "hidden_size / num_attention_heads (head_dim is absent)")
    return [Binding("heads", heads, "num_attention_heads"), Binding("kv_heads", kv_heads, kv_source), head_dim]


def _silu_mlp(config: _Config, library: str) -> None:
    config.expect("hidden_act", ["silu"], f"the MLP of {library} is SwiGLU")


def _read_llama(config: _Config) -> list[list[Binding]]:
    _silu_mlp(config, "std.llama")
    config.expect("attention_bias", [False], "std.llama's attention projections have no bias")
    config.expect("mlp_bias", [False], "std.llama's MLP projections have no bias")
    return [_stack(config), [*_heads(config), config.bind("ffn", "intermediate_size")]]


def _read_qwen2(config: _Config) -> list[list[Binding]]:
    _silu_mlp(config, "std.qwen2")
    return [_stack(config), [*_heads(config), config.bind("ffn", "intermediate_size")]]


def _top_k(config: _Config, experts: int) -> Binding:
    top_k = config.size("num_experts_per_tok")
    if top_k > experts:
        raise config.error(f"num_experts_per_tok ({top_k}) exceeds the {experts} experts")
    return Binding("top_k", top_k, "num_experts_per_tok")


def _read_mixtral(config: _Config) -> list[list[Binding]]:
    _silu_mlp(config, "std.moe")
    experts = config.size("num_local_experts")
    config.note(["router_aux_loss_coef", "output_router_logits"], "training only")
    return [_stack(config), [*_heads(config), config.bind("ffn", "intermediate_size"),
                             Binding("experts", experts, "num_local_experts"), _top_k(config, experts)]]


def _read_gemma2(config: _Config) -> list[list[Binding]]:
    gelu = ["gelu_pytorch_tanh", "gelu"]
    config.expect("hidden_activation", gelu, "std.gemma's MLP is GeLU-gated")
    config.expect("hidden_act", gelu, "std.gemma's MLP is GeLU-gated")
    config.expect("attention_bias", [False], "std.gemma's attention projections have no bias")
    config.note(["attn_logit_softcapping", "final_logit_softcapping", "query_pre_attn_scalar"],
                "not modelled: a scale or a tanh per score or logit, a few FLOPs per element")
    config.note(["cache_implementation"], "not modelled: how the library lays out its cache")
    config.notes.append("attention: Gemma 2 alternates sliding-window (local) and global layers; "
                        "std.gemma makes them one kind of layer (see sliding_window)")
    return [_stack(config), [*_heads(config), config.bind("ffn", "intermediate_size")]]


def _read_deepseek(config: _Config) -> list[list[Binding]]:
    _silu_mlp(config, "std.deepseek")
    layers = config.size("num_hidden_layers")
    dense = config.size("first_k_dense_replace")
    if dense >= layers:
        raise config.error(f"first_k_dense_replace ({dense}) leaves no mixture-of-experts layer "
                           f"among the {layers}; std.deepseek needs at least one of each kind")
    config.expect("n_shared_experts", [1], "std.deepseek has one shared expert")
    config.expect("moe_layer_freq", [1], "std.deepseek makes every layer after the dense ones MoE")
    config.note(["num_key_value_heads"], "not used: latent attention caches one latent vector per token, "
                "shared by all heads")
    config.note(["n_group", "topk_group", "topk_method", "scoring_func", "norm_topk_prob",
                 "routed_scaling_factor"],
                "how the router picks and weighs experts; its work is one [hidden, experts] projection "
                "whatever the rule")
    config.note(["num_nextn_predict_layers"], "the multi-token prediction module, not used by plain "
                "decoding, is left out")
    config.note(["aux_loss_alpha", "seq_aux", "ep_size"], "training or expert-parallel settings")
    experts = config.size("n_routed_experts")
    attention = [config.bind("heads", "num_attention_heads"), config.bind("q_lora_rank", "q_lora_rank"),
                 config.bind("kv_lora_rank", "kv_lora_rank")]
    head_dims = [config.bind("qk_nope_dim", "qk_nope_head_dim"),
                 config.bind("qk_rope_dim", "qk_rope_head_dim"), config.bind("v_head_dim", "v_head_dim")]
    mlp = [config.bind("ffn", "intermediate_size"), config.bind("moe_ffn", "moe_intermediate_size"),
           Binding("experts", experts, "n_routed_experts"), _top_k(config, experts)]
    return [[*_stack(config), Binding("dense_layers", dense, "first_k_dense_replace")], attention, head_dims, mlp]


FAMILIES = (
    Family("LlamaForCausalLM", "llama", "std.llama", "llama", False, _read_llama),
    Family("MistralForCausalLM", "mistral", "std.llama", "llama", False, _read_llama),
    Family("MixtralForCausalLM", "mixtral", "std.moe", "mixtral", False, _read_mixtral),
    Family("Qwen2ForCausalLM", "qwen2", "std.qwen2", "qwen2", False, _read_qwen2),
    Family("Gemma2ForCausalLM", "gemma2", "std.gemma", "gemma2", True, _read_gemma2, ties_head=True),
    Family("DeepseekV3ForCausalLM", "deepseek_v3", "std.deepseek", "deepseek", False, _read_deepseek),
)


# -- fields every family treats alike ----------------------------------------------------------


def _common_notes(config: _Config, family: Family, bindings: dict[str, int | str]) -> None:
    config.note(["rope_theta", "rope_scaling"],
                "not modelled: rotary embeddings cost the same whatever their frequencies and scaling")
    config.note(["max_position_embeddings"], "not modelled: the run's context sets the KV cache's length")
    window = config.data.get("sliding_window")
    if window is None or config.data.get("use_sliding_window") is False:
        config.note(["sliding_window", "use_sliding_window", "max_window_layers"],
                    "full attention over the whole context, as modelled")
    else:
        config.note(["sliding_window", "sliding_window_size", "use_sliding_window", "max_window_layers"],
                    "ignored: every layer attends over the whole context, which is the same work as the "
                    f"window's while the context is within {window} tokens")
    tied = config.data.get("tie_word_embeddings", family.tied_by_default)
    config.seen.add("tie_word_embeddings")
    state = json.dumps(tied)
    if "tie_word_embeddings" not in config.data:
        state = f"absent ({state} for {family.model_type})"
    table_bytes = int(bindings["vocab"]) * int(bindings["hidden"]) * DTYPE_BYTES[str(bindings["dtype"])]
    if tied and family.ties_head:
        config.notes.append(
            f"tie_word_embeddings: {state}: the LM head is the embedding table transposed "
            f"(`lm_head = transpose(embed)` in {family.library}), held and read once")
    elif tied:
        config.notes.append(
            f"tie_word_embeddings: {state}: the LM head reads the embedding table, but {family.library}'s "
            f"`{family.graph}` gives it a weight of its own, so the table's {_gb(table_bytes)} count "
            "twice in the weights and in HBM")
    elif family.ties_head:
        config.notes.append(
            f"tie_word_embeddings: {state}: but {family.library}'s `{family.graph}` ties the LM head to "
            f"the embedding table, so the checkpoint's separate head ({_gb(table_bytes)}) is not counted")
    else:
        config.notes.append(f"tie_word_embeddings: {state}: the LM head has its own weight")


# -- the model's name, size and sockets -----------------------------------------------------------


def model_name(config_path: Path, data: dict[str, Any]) -> str:
    """A NAME for the model: the last part of `_name_or_path`, else the file's stem (or, for a
    file called config.json, its folder's name), lowercased, with runs of other characters as `_`."""
    raw = str(data.get("_name_or_path") or "").rstrip("/").rsplit("/", 1)[-1]
    if not raw:
        raw = config_path.stem
        if raw == "config" and config_path.resolve().parent.name:
            raw = config_path.resolve().parent.name
    name = re.sub(r"[^a-z0-9]+", "_", raw.lower()).strip("_") or "model"
    if name[0].isdigit() or name in KEYWORDS:
        name = f"m_{name}"
    return name


def weight_bytes(model: ResolvedModel) -> int:
    """Bytes of every weight a checked model declares, all layers together (before sharding); a
    tied weight's are its storage's, counted there."""
    return sum(num_elements(step.type.shape, {}) * DTYPE_BYTES[step.type.dtype] for step in model.steps
               if isinstance(step, ResolvedDecl) and step.kind == "weight" and not step.tied_to)


def _gb(num_bytes: int) -> str:
    return f"{num_bytes / 1e9:.4g} GB"


def _sockets(total_bytes: int) -> tuple[int, bool, str]:
    """The smallest socket choice whose HBM holds `total_bytes`, whether it does, and why."""
    hardware = load_hardware(str(DEFAULT_RUN["target"]))
    per_socket = hardware.hbm.capacity_bytes
    capacity = f"{_gb(per_socket)} of HBM per socket, from the {hardware.name} hardware file"
    for sockets in SOCKET_CHOICES:
        if total_bytes <= sockets * per_socket:
            return sockets, True, (f"Sockets: the {_gb(total_bytes)} of weights fit the HBM of {sockets} "
                                   f"sockets ({capacity}).")
    sockets = SOCKET_CHOICES[-1]
    return sockets, False, (
        f"Sockets: the {_gb(total_bytes)} of weights exceed the {_gb(sockets * per_socket)} of HBM of "
        f"{sockets} sockets ({capacity}); the run will need DDR, so the place block leaves weights and "
        "the KV cache to place-memory, which spills what HBM cannot hold to DDR.")


# -- writing the file -------------------------------------------------------------------------------


def _comment(text: str, indent: str = "") -> list[str]:
    """`text` as comment lines of the header, wrapped, continuation lines indented."""
    lines = textwrap.wrap(text, HEADER_WIDTH, initial_indent="# " + indent,
                          subsequent_indent="# " + indent + "  ", break_on_hyphens=False)
    return [line.replace(NBSP, " ") for line in lines]


def _header(config: _Config, family: Family, lines: list[list[Binding]], sockets_note: str) -> list[str]:
    origin = config.data.get("_name_or_path")
    where = f" ({origin})" if origin else ""
    out = _comment(f"Imported by `dfdsl import-hf` from {config.path.name}{where}: {family.architecture}, "
                   f"over {family.graph} in {family.library}.")
    out.append("#")
    out.append("# Parameters from the config:")
    for binding in (b for line in lines for b in line):
        out.extend(_comment(f"{binding.param} <- {binding.source}", "  "))
    if config.checked:
        out.extend(_comment("Checked: " + ", ".join(config.checked) + "."))
    out.append("# Other fields:")
    for note in config.notes:
        out.extend(_comment(note, "  "))
    if ignored := config.ignored():
        out.extend(_comment("Ignored (no effect on the work of a decode step): " + ", ".join(ignored) + ".",
                            "  "))
    out.append("#")
    out.extend(_comment(sockets_note))
    return out


def _render(name: str, family: Family, lines: list[list[Binding]], header: list[str], sockets: int,
            pin_weights: bool) -> str:
    model = "\n".join("  " + "; ".join(f"{b.param} = {b.value}" for b in line) for line in lines)
    pinned = ("weights", "kv_cache", "activations") if pin_weights else ("activations",)
    place = "; ".join(f"{c} -> {DEFAULT_PLACEMENT[c]}" for c in pinned)
    run = (f"batch = {DEFAULT_RUN['batch']}; context = {DEFAULT_RUN['context']}; "
           f"tokens = {DEFAULT_RUN['tokens']}; target = {DEFAULT_RUN['target']}(sockets = {sockets})")
    return "\n".join([
        *header,
        "",
        f"import {family.library}",
        "",
        f"model {name} : {family.graph} {{",
        model,
        "}",
        "",
        f"place {{ {place} }}",
        "",
        f"run decode {{ {run} }}",
        "",
    ])


def _check(text: str, name: str, config_path: Path) -> ResolvedModel:
    """Check the generated file as the compiler will; a failure means the config is inconsistent."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"{name}.dfl"
        path.write_text(text, encoding="utf-8")
        try:
            return check_file(path)
        except DfslError as err:
            messages = "; ".join(d.message for d in err.diagnostics)
            raise HfImportError(f"{config_path}: the imported model does not check: {messages}") from None


def _family(config: _Config) -> Family:
    architectures = config.data.get("architectures")
    if architectures:
        if not isinstance(architectures, list) or not isinstance(architectures[0], str):
            raise config.error("field `architectures` must be a list of names")
        key, by = architectures[0], "architecture"
    elif isinstance(config.data.get("model_type"), str):
        key, by = config.data["model_type"], "model_type"
    else:
        raise config.error("missing field `architectures` (and `model_type`)")
    for family in FAMILIES:
        if key == (family.architecture if by == "architecture" else family.model_type):
            return family
    supported = ", ".join(f.architecture if by == "architecture" else f.model_type for f in FAMILIES)
    raise config.error(f"unsupported {by} `{key}`; supported: {supported}")


def _load(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise HfImportError(f"{path}: cannot read: {getattr(err, 'strerror', None) or err}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise HfImportError(f"{path}: not valid JSON: line {err.lineno} column {err.colno}: "
                            f"{err.msg}") from None
    if not isinstance(data, dict):
        raise HfImportError(f"{path}: a config.json holds one JSON object, got {type(data).__name__}")
    return data


def import_config(path: Path) -> str:
    """The `.dfl` text of the model a Hugging Face `config.json` describes."""
    path = Path(path)
    config = _Config(path, _load(path))
    family = _family(config)
    lines = family.read(config)
    bindings = {b.param: b.value for line in lines for b in line}
    _common_notes(config, family, bindings)
    name = model_name(path, config.data)
    draft = _render(name, family, lines, [], SOCKET_CHOICES[0], pin_weights=True)
    sockets, fits, sockets_note = _sockets(weight_bytes(_check(draft, name, path)))
    return _render(name, family, lines, _header(config, family, lines, sockets_note), sockets, fits)
