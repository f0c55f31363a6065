"""Decode reports: the JSON contract of `dfdsl run --json` (keys, order, types), and invariants of
the simulated figures on real examples over many run settings (hypothesis): never above the
roofline, looping never slower, the breakdown sums to the step, more sockets never read more per
socket, and batch multiplies the KV reads but not the weight reads."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dfdsl.cli import main as cli_main
from dfdsl.elaborate import check_file
from dfdsl.footprint import footprint
from dfdsl.irgen import generate
from dfdsl.lowering.pipeline import RDU_PIPELINE, LoweringOptions, run_passes
from dfdsl.report import JSON_KEYS, Report, make_report, render_table
from dfdsl.driver import CompileOptions, run_model
from dfdsl.hardware import load_hardware
from dfdsl.sim.interpreter import simulate
from dfdsl.sim.timing import CATEGORIES

EXAMPLES = Path(__file__).parent.parent / "examples"
SMALL_MODELS = ("llama3_1_8b", "mistral_7b", "mixtral_8x7b")
HW = load_hardware("sn40l")

CONTRACT_TYPES = {
    "model": str, "target": str, "sockets": int, "batch": int, "context": int, "tokens": int,
    "fusion": str, "kernel_looping": bool, "ms_per_token": float, "tokens_per_s_per_user": float,
    "tokens_per_s": float, "param_bytes": int, "kv_bytes": int, "bytes_per_token": int,
    "flops_per_token": int, "flops_per_byte": float, "peak_fraction": float,
    "kernel_calls_per_token": int, "breakdown_ms": dict,
}


@cache
def _report(model: str, sockets: int = 8, looping: bool = True) -> Report:
    return run_model(EXAMPLES / f"{model}.dfl", {"sockets": sockets}, CompileOptions(kernel_looping=looping))


def test_the_contract_names_every_key_once():
    assert set(CONTRACT_TYPES) == set(JSON_KEYS)
    assert len(set(JSON_KEYS)) == len(JSON_KEYS)


@pytest.mark.parametrize("model", SMALL_MODELS)
def test_the_report_starts_with_the_contract_keys_with_their_types(model):
    figures = _report(model).figures
    assert list(figures)[: len(JSON_KEYS)] == list(JSON_KEYS)
    for key, kind in CONTRACT_TYPES.items():
        # bool is an int to isinstance: compare the exact type so that a count is never a flag.
        assert type(figures[key]) is kind, key
    assert list(figures["breakdown_ms"]) == list(CATEGORIES)
    assert all(type(v) is float for v in figures["breakdown_ms"].values())
    assert json.loads(json.dumps(figures)) == figures


def test_run_json_prints_the_contract(capsys):
    assert cli_main(["run", str(EXAMPLES / "mistral_7b.dfl"), "--json", "--sockets", "16",
                     "--no-kernel-looping", "--tokens", "4"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert list(figures)[: len(JSON_KEYS)] == list(JSON_KEYS)
    assert (figures["model"], figures["sockets"], figures["tokens"], figures["kernel_looping"]) == (
        "mistral_7b", 16, 4, False)
    assert figures["kernel_calls_per_token"] == 35
    assert type(figures["param_bytes"]) is int


def test_run_prints_a_table_with_the_figures(capsys):
    assert cli_main(["run", str(EXAMPLES / "llama3_1_8b.dfl"), "--tokens", "4"]) == 0
    out = capsys.readouterr().out
    assert "ms per token" in out and "fraction of roofline" in out and "GB" in out


def test_the_table_shows_the_report_figures():
    report = _report("llama3_1_8b")
    text = render_table(report)
    assert f"{report['ms_per_token']:.3f}" in text
    assert f"{report['peak_fraction']:.1%}" in text


# -- invariants over run settings ---------------------------------------------------------------


@cache
def _lowered(model: str, sockets: int, looping: bool):
    """The example lowered once per (model, sockets, looping), with its front-end module: run
    settings then only change the simulation (`simulate`'s batch, context and tokens)."""
    resolved = check_file(EXAMPLES / f"{model}.dfl", {"sockets": sockets})
    front = generate(resolved)
    module = front.clone()
    options = LoweringOptions(sockets=sockets, kernel_looping=looping, target=resolved.run.target)
    run_passes(module, RDU_PIPELINE.passes_to("rdu", options))
    return front, module


def _report_at(model: str, sockets: int, looping: bool, batch: int, context: int, tokens: int = 3) -> dict:
    front, module = _lowered(model, sockets, looping)
    result = simulate(module, HW, batch=batch, context=context, tokens=tokens)
    return make_report(result, footprint(front), HW, fusion="layer", kernel_looping=looping).figures


def test_simulating_a_lowered_program_at_other_settings_is_what_run_gives():
    ours = _report_at("mixtral_8x7b", 16, True, batch=4, context=1000, tokens=3)
    theirs = run_model(EXAMPLES / "mixtral_8x7b.dfl", {"sockets": 16, "batch": 4, "context": 1000, "tokens": 3})
    assert ours == theirs.figures


# Mistral 7B is Llama 3.1 8B with a smaller vocabulary: one dense model and the MoE one suffice here.
models = st.sampled_from(("llama3_1_8b", "mixtral_8x7b"))
batches = st.integers(1, 64)
contexts = st.integers(128, 32768)
socket_counts = st.sampled_from((8, 16))


@settings(max_examples=25)
@given(model=models, batch=batches, context=contexts, sockets=socket_counts)
def test_a_run_is_never_above_the_roofline_and_looping_is_never_slower(model, batch, context, sockets):
    looped = _report_at(model, sockets, True, batch, context)
    unlooped = _report_at(model, sockets, False, batch, context)
    for figures in (looped, unlooped):
        assert 0 < figures["peak_fraction"] <= 1
        assert figures["tokens_per_s_per_user"] <= figures["roofline_tokens_per_s_per_user"]
        assert sum(figures["breakdown_ms"].values()) == pytest.approx(figures["ms_per_token"], rel=1e-9)
    assert looped["ms_per_token"] <= unlooped["ms_per_token"]
    assert looped["kernel_calls_per_token"] < unlooped["kernel_calls_per_token"]


@settings(max_examples=20)
@given(model=models, batch=batches, context=contexts, looping=st.booleans())
def test_more_sockets_never_read_more_bytes_per_socket(model, batch, context, looping):
    node, rack = (_report_at(model, s, looping, batch, context) for s in (8, 16))
    assert rack["read_bytes_per_token_all_sockets"] / 16 <= node["read_bytes_per_token_all_sockets"] / 8


@settings(max_examples=20)
@given(model=models, batch=st.integers(2, 64), context=contexts, sockets=socket_counts)
def test_batch_multiplies_the_kv_reads_not_the_weight_reads(model, batch, context, sockets):
    one, two, many = (_report_at(model, sockets, True, b, context) for b in (1, 2, batch))
    assert one["param_bytes"] == many["param_bytes"]
    assert many["kv_bytes"] == pytest.approx(batch * one["kv_bytes"], abs=batch)
    if model == "llama3_1_8b":
        # What the simulator reads grows by one sequence's KV per sequence; the weights stay.
        kv_read = two["read_bytes_per_token_all_sockets"] - one["read_bytes_per_token_all_sockets"]
        weights = one["read_bytes_per_token_all_sockets"] - kv_read
        assert many["read_bytes_per_token_all_sockets"] == pytest.approx(weights + batch * kv_read, rel=1e-9)
        assert weights > 0.9 * one["param_bytes"]
    else:
        # Experts: a larger batch routes to more of them, so more parameter bytes are read.
        assert many["expert_bytes_read_fraction"] > one["expert_bytes_read_fraction"]
