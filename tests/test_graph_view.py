"""Tests of the dataflow-graph view (built in dfdsl/graph_view.py, drawn by dfdsl/graph_render.py):
exact DOT of a tiny model at each stage, folding, formats.

The expected DOT files under tests/data/graph/ were written from this module's output and checked
by eye. After an intended change to the drawing, regenerate them with
`DFDSL_UPDATE_GRAPHS=1 .venv/bin/pytest tests/test_graph_view.py`, review the diff, and commit it.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import networkx as nx
import pytest
from xdsl.dialects.builtin import ModuleOp
from xdsl.parser import Parser

from df_models import tiny_llama, tiny_moe
from dfdsl.elaborate import check_file
from dfdsl.errors import ProgramFailure
from dfdsl.graph_render import TIER_COLOURS, render
from dfdsl.graph_view import build_graph, format_bytes, name_range, short_name
from dfdsl.irgen import generate
from dfdsl.lowering.pipeline import RDU_PIPELINE, LoweringOptions, context, run_passes

EXPECTED = Path(__file__).parent / "data" / "graph"
EXAMPLES = Path(__file__).parent.parent / "examples"
needs_dot = pytest.mark.skipif(shutil.which("dot") is None,
                               reason="Graphviz's `dot` is not installed (apt-get install graphviz)")


def lowered(module: ModuleOp, stage: str, **options: object) -> ModuleOp:
    run_passes(module, RDU_PIPELINE.passes_to(stage, LoweringOptions(**options)))  # type: ignore[arg-type]
    return module


def tiny(stage: str, layers: int = 2, **options: object) -> ModuleOp:
    """The two-socket tiny Llama lowered to `stage` (two sockets, so sharding adds collectives)."""
    return lowered(tiny_llama(layers=layers, sockets=2), stage, **options)


def example(name: str, stage: str, **options: object) -> ModuleOp:
    model = check_file(EXAMPLES / f"{name}.dfl", {})
    return lowered(generate(model), stage, sockets=model.run.sockets, **options)


def clusters(graph: nx.MultiDiGraph, kind: str) -> list[dict]:
    return [c for c in graph.graph["clusters"] if c["kind"] == kind]


def nodes(graph: nx.MultiDiGraph, kind: str) -> list[dict]:
    return [attrs for _, attrs in graph.nodes(data=True) if attrs["kind"] == kind]


# -- exact output --------------------------------------------------------------------------


@pytest.mark.parametrize("stage", RDU_PIPELINE.stages)
def test_dot_of_tiny_llama_matches_the_reviewed_file(stage: str):
    dot = render(build_graph(tiny(stage)), "dot")
    expected = EXPECTED / f"tiny_llama_{stage}.dot"
    if os.environ.get("DFDSL_UPDATE_GRAPHS"):
        expected.write_text(dot, encoding="utf-8")
    assert dot == expected.read_text(encoding="utf-8")


@pytest.mark.parametrize("stage", RDU_PIPELINE.stages)
def test_dot_is_the_same_for_the_same_module(stage: str):
    assert render(build_graph(tiny(stage)), "dot") == render(build_graph(tiny(stage)), "dot")


def test_json_loads_back_as_the_same_graph():
    graph = build_graph(tiny("df"))
    data = json.loads(render(graph, "json"))
    loaded = nx.node_link_graph(data, edges="edges")
    assert loaded.is_multigraph() and loaded.is_directed()
    # tokens, embed, embedding, 11 declarations and 16 operators of one folded layer,
    # final_norm, rmsnorm, lm_head weight, lm_head, sample, output
    assert loaded.number_of_nodes() == graph.number_of_nodes() == 36
    assert loaded.number_of_edges() == graph.number_of_edges()
    assert loaded.graph["tp"] == 1


# -- what each stage shows -------------------------------------------------------------------


def test_df_stage_declarations_are_coloured_by_tier_and_named_short():
    graph = build_graph(tiny("df"))
    weights = {a["label"]: a for a in nodes(graph, "weight")}
    assert weights["wq ×2"]["tier"] == "hbm"
    assert weights["wq ×2"]["tooltip"] == "layers.{0..1}.wq"
    assert {a["label"] for a in nodes(graph, "kv_cache")} == {"k_cache ×2", "v_cache ×2"}
    dot = render(graph, "dot")
    assert len(set(TIER_COLOURS.values())) == 3
    for tier, colour in TIER_COLOURS.items():
        assert f'"legend.{tier}" [label="{tier}", shape=box, style=filled, fillcolor="{colour}"]' in dot
    assert f'[label="wq ×2", shape=box, style=filled, fillcolor="{TIER_COLOURS["hbm"]}"' in dot


def test_edges_carry_shape_and_bytes_at_batch_1_and_the_graphs_context():
    graph = build_graph(tiny("df"))
    labels = {attrs["label"] for _, _, attrs in graph.edges(data=True)}
    assert "[B, 64] bf16 · 128 B" in labels
    # k_cache [B, S, 2, 16] bf16 at batch 1 and context 128: 128 * 2 * 16 * 2 bytes
    assert "[B, S, 2, 16] bf16 · 8 KiB" in labels


def test_graph_label_names_model_stage_and_sockets():
    graph = build_graph(tiny("fused"))
    assert graph.graph["tp"] == 2
    assert graph.graph["stage"] == "fused"
    assert graph.graph["label"].startswith("tiny_llama · fused stage · tp=2")


def test_collectives_are_drawn_distinctly():
    graph = build_graph(tiny("fused"))
    collectives = nodes(graph, "collective")
    # The two of the folded layer, and the gather of the sampling candidates.
    assert [a["label"] for a in collectives] == ["all_reduce", "all_reduce", "all_gather"]
    assert 'label="all_reduce", shape=hexagon' in render(graph, "dot")


def test_looped_kernel_is_one_cluster_over_stacked_declarations():
    graph = build_graph(tiny("looped"))
    labels = [c["label"] for c in graph.graph["clusters"]]
    assert labels == ["embedding", "llama_decoder_x2 · loop ×2 · pipelined", "lm_head", "sample"]
    assert {a["tooltip"] for a in nodes(graph, "weight")} >= {"layers.{0..1}.wq", "layers.{0..1}.w_down"}


def test_a_loop_beside_other_operators_gets_its_own_cluster():
    text = str(tiny("looped")).replace(
        "    df.return %0 : !df.tensor<[B, 64], bf16>",
        "    %sum = df.add %0, %x : (!df.tensor<[B, 64], bf16>, !df.tensor<[B, 64], bf16>) -> "
        "!df.tensor<[B, 64], bf16>\n    df.return %sum : !df.tensor<[B, 64], bf16>",
        1,
    )
    module = Parser(context(), text).parse_module()
    module.verify()
    graph = build_graph(module)
    kernel = next(c for c in graph.graph["clusters"] if c["label"] == "llama_decoder_x2")
    (loop,) = clusters(graph, "loop")
    assert loop["label"] == "loop ×2 · pipelined" and loop["parent"] == kernel["id"]
    assert [a["label"] for a in graph.nodes.values() if a["cluster"] == kernel["id"]][-1] == "add"


def test_rdu_stage_shows_stages_with_units_and_buffers_by_tier():
    graph = build_graph(tiny("rdu"))
    loop = next(c for c in graph.graph["clusters"] if "loop ×2 · pipelined" in c["label"])
    assert "PCUs" in loop["label"] and "PMUs" in loop["label"]
    stages = nodes(graph, "stage")
    assert all("PCUs ·" in a["label"] for a in stages)
    assert any(a["label"].startswith("attention\n") for a in stages)
    assert [a["label"].split("\n")[0] for a in nodes(graph, "collective")] == ["all_reduce"] * 2 + ["all_gather"]
    assert {a["tier"] for a in nodes(graph, "input")} == {"sram"}


def test_stage_can_be_named_by_the_caller():
    graph = build_graph(tiny("looped", kernel_looping=False), stage="looped")
    assert graph.graph["stage"] == "looped"


# -- folding ---------------------------------------------------------------------------------


def test_four_identical_layers_fold_into_one_cluster():
    graph = build_graph(tiny_llama(layers=4))
    (fold,) = clusters(graph, "fold")
    assert fold["label"] == "llama_decoder ×4 (layers 0..3)"
    assert clusters(graph, "layer") == []
    assert {a["label"] for a in nodes(graph, "weight")} >= {"wq ×4", "w_up ×4"}


def test_unfold_expands_every_call():
    graph = build_graph(tiny_llama(layers=4), unfold=True)
    assert [c["label"] for c in clusters(graph, "layer")] == ["llama_decoder"] * 4
    assert clusters(graph, "fold") == []
    assert "layers.3.wq" in {a["tooltip"] for a in nodes(graph, "weight")}


def test_a_different_callee_starts_a_new_fold():
    graph = build_graph(tiny_moe(layers=4, dense_layers=1))
    assert [c["label"] for c in graph.graph["clusters"]] == [
        "llama_decoder", "moe_decoder ×3 (layers 1..3)",
    ]


def test_folds_of_unnumbered_declarations_count_calls():
    text = str(tiny("fused")).replace('"layers.0.', '"first.').replace('"layers.1.', '"second.')
    module = Parser(context(), text).parse_module()
    (fold,) = clusters(build_graph(module), "fold")
    assert fold["label"] == "llama_decoder ×2 (calls 1..2)"
    assert "first.wq … second.wq ×2" in {a["label"] for a in build_graph(module).nodes.values()}


def test_repeating_groups_of_kernels_fold_together():
    graph = build_graph(tiny("fused", layers=3, fusion="block"))
    (fold,) = clusters(graph, "fold")
    assert fold["label"] == "llama_decoder_block0 + llama_decoder_block1 ×3 (layers 0..2)"
    inner = [c["label"] for c in graph.graph["clusters"] if c["parent"] == fold["id"]]
    assert inner == ["llama_decoder_block0", "llama_decoder_block1"]


def test_unfolded_kernel_launches_each_get_a_cluster():
    graph = build_graph(tiny("fused", layers=3), unfold=True)
    assert [c["label"] for c in clusters(graph, "kernel")] == [
        "embedding", "llama_decoder", "llama_decoder", "llama_decoder", "lm_head", "sample",
    ]


@pytest.mark.parametrize(("name", "stage", "fusion"), [
    ("llama3_1_70b", "df", "layer"),
    ("deepseek_v3", "looped", "layer"),
    ("llama3_1_8b", "rdu", "none"),
])
def test_folded_examples_stay_small(name: str, stage: str, fusion: str):
    graph = build_graph(example(name, stage, fusion=fusion))
    assert graph.number_of_nodes() < 300
    assert render(graph, "dot").count("\n") < 800


# -- rendering -------------------------------------------------------------------------------


@needs_dot
def test_svg_and_png_render():
    graph = build_graph(tiny("looped"))
    svg = render(graph, "svg")
    assert isinstance(svg, str) and "<svg" in svg and "llama_decoder_x2" in svg
    png = render(graph, "png")
    assert isinstance(png, bytes) and png.startswith(b"\x89PNG")


def test_missing_graphviz_says_which_package_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ProgramFailure, match=r"needs Graphviz's `dot` program, which is not on PATH$") as info:
        render(build_graph(tiny("df")), "svg")
    assert info.value.code == "E030"
    assert "Debian package `graphviz` (apt-get install graphviz)" in info.value.fix


def test_a_failing_or_hanging_dot_is_named_with_what_it_said(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    fake = tmp_path / "dot"
    fake.write_text("#!/bin/sh\necho 'Error: syntax error in line 1' >&2\nexit 3\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ProgramFailure, match=rf"{fake} -Tsvg failed with exit status 3: Error: syntax error in line 1"):
        render(build_graph(tiny("df")), "svg")
    fake.write_text("#!/bin/sh\nexec /bin/sleep 5\n")  # exec: the timeout kills the sleep itself
    monkeypatch.setattr("dfdsl.graph_render.DOT_TIMEOUT_S", 0.2)
    with pytest.raises(ProgramFailure, match=rf"{fake} -Tpng did not finish within 0.2 s"):
        render(build_graph(tiny("df")), "png")


def test_unknown_format_is_refused():
    with pytest.raises(ValueError, match="formats are dot, json, svg, png"):
        render(build_graph(tiny("df")), "pdf")


# -- labels ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("count", "text"), [
    (4, "4 B"), (1023, "1023 B"), (1024, "1 KiB"), (1536, "1.5 KiB"), (8 << 20, "8 MiB"),
    (117440512, "112 MiB"), (3 << 40, "3 TiB"),
])
def test_format_bytes(count: int, text: str):
    assert format_bytes(count) == text


def test_names():
    assert short_name("layers.0.self_attn.wq") == "self_attn.wq"
    assert short_name("layers.{0..31}.mlp.w_up") == "mlp.w_up"
    assert short_name("embed") == "embed"
    assert name_range(["layers.0.wq", "layers.1.wq", "layers.2.wq"]) == "layers.{0..2}.wq"
    assert name_range(["embed"]) == "embed"
    assert name_range(["layers.0.wq", "layers.2.wq"]) == "layers.0.wq … layers.2.wq"
    assert name_range(["dense.w", "moe.w"]) == "dense.w … moe.w"
