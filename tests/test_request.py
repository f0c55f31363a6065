"""Whole requests and speculative decoding (`sim/request.py` through the driver): the time to first
token grows with the prompt and, at long prompts, with its square; a request of no output token
costs its prefill; chunking a prefill does the same work in more passes; speculation with nothing
accepted is slower than decoding alone, and with everything accepted yields k + 1 tokens per step.
Small models, on both targets."""

from __future__ import annotations

import math
from functools import cache
from pathlib import Path

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dfdsl.driver import CompileOptions, Compiler, Model, load_model, run_model
from dfdsl.report import JSON_KEYS, REQUEST_KEYS, SPECULATION_KEYS
from dfdsl.sim.request import tokens_per_round

MODEL = """import std.llama

model tiny : llama {
  dtype = bf16; vocab = 512; hidden = 256; layers = 4
  heads = 4; kv_heads = 2; head_dim = 64; ffn = 512
}
"""
DRAFT = """
draft tinier : llama {
  dtype = bf16; vocab = 512; hidden = 128; layers = 2
  heads = 2; kv_heads = 1; head_dim = 64; ffn = 256
}
"""
TARGETS = {"sn40l": CompileOptions(), "dgx_h100": CompileOptions(kernel_looping=False)}


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("request")
    plain, speculative = folder / "tiny.dfl", folder / "tiny_speculative.dfl"
    plain.write_text(MODEL + "run r { batch = 1; prompt = 1024; tokens = 32; target = sn40l(sockets = 1) }\n")
    speculative.write_text(MODEL + DRAFT + "run r { batch = 1; prompt = 1024; tokens = 32; draft_tokens = 4; "
                           "acceptance = 0.8; target = sn40l(sockets = 1) }\n")
    return {"plain": plain, "speculative": speculative}


COMPILER = Compiler()


@cache
def _model(path: Path, target: str) -> Model:
    return load_model(path, {"target": target})


def _run(path: Path, target: str = "sn40l", **changes) -> dict:
    """The report of the file's run on `target` with some settings changed (a new prompt is also
    the context); one compiler for all, as a sweep would."""
    model = _model(path, target)
    if "prompt" in changes:
        changes.setdefault("context", changes["prompt"] or model.settings.context)
    run_settings = attrs.evolve(model.settings, **changes)
    return COMPILER.simulate(model, run_settings, TARGETS[target]).report.figures


@pytest.mark.parametrize("target", TARGETS)
def test_a_request_reports_the_contract_keys_after_todays(files, target):
    f = _run(files["plain"], target)
    assert list(f)[: len(JSON_KEYS)] == list(JSON_KEYS)
    assert set(REQUEST_KEYS) <= set(f) and not set(SPECULATION_KEYS) & set(f)
    assert f["prompt"] == 1024 and f["context"] == 1024 and f["tokens"] == 32
    assert f["tpot_ms"] == f["ms_per_token"]
    assert f["request_latency_ms"] == pytest.approx(f["ttft_ms"] + 31 * f["tpot_ms"])
    assert f["prefill_tokens_per_s"] == pytest.approx(1024 / (f["ttft_ms"] / 1e3))
    assert 0 < f["prefill_compute_fraction"] < 1
    assert sum(f["prefill_breakdown_ms"].values()) == pytest.approx(f["ttft_ms"])


def test_a_decode_without_a_prompt_has_no_request_keys(files):
    f = run_model(files["plain"], {"prompt": 0, "context": 1024}).figures
    assert not (set(REQUEST_KEYS) | set(SPECULATION_KEYS)) & set(f)
    assert f["tokens"] == 32


@pytest.mark.parametrize("target", TARGETS)
def test_ttft_grows_with_the_prompt_and_becomes_quadratic(files, target):
    prompts = [2**n for n in range(4, 22)]
    ttft = [_run(files["plain"], target, prompt=p, tokens=1)["ttft_ms"] for p in prompts]
    assert all(later > earlier for earlier, later in zip(ttft, ttft[1:]))
    ratios = [later / earlier for earlier, later in zip(ttft, ttft[1:])]
    # Doubling a short prompt costs little more (the weights are streamed once whatever the
    # prompt); doubling a long one costs four times as much (causal attention, P^2/2 pairs).
    assert ratios[0] < 1.5
    assert ratios[-1] == pytest.approx(4, rel=0.05)
    # In between the growth only accelerates: no doubling costs less than the one before.
    assert all(b > a - 0.05 for a, b in zip(ratios[3:], ratios[4:]))


@pytest.mark.parametrize("target", TARGETS)
def test_a_request_of_no_output_token_costs_exactly_its_ttft(files, target):
    f = _run(files["plain"], target, tokens=0)
    assert f["request_latency_ms"] == f["ttft_ms"]
    assert _run(files["plain"], target, tokens=1)["request_latency_ms"] == f["ttft_ms"]


@settings(max_examples=10, deadline=None)
@given(chunk=st.integers(min_value=16, max_value=1024))
def test_chunked_prefill_does_the_same_work_in_more_passes(files, chunk):
    """A prefill's FLOPs are a P^2 + b P + c (c: what a pass does per sequence, its LM head and
    sampling); chunks split the prompt's rows and its attention pairs exactly, and pay c each."""
    a_p2, b_p, c = _quadratic([_run(files["plain"], prompt=p, tokens=1)["prefill_flops"] for p in (1, 2, 3)])
    whole = _run(files["plain"])
    assert whole["prefill_flops"] == a_p2 * 1024**2 + b_p * 1024 + c
    chunked = _run(files["plain"], chunk=chunk)
    passes = math.ceil(1024 / chunk)
    assert chunked["prefill_passes"] == passes
    assert chunked["prefill_flops"] - whole["prefill_flops"] == (passes - 1) * c
    # Each pass also streams the weights again and pays its calls' fixed costs.
    assert chunked["ttft_ms"] >= whole["ttft_ms"] * (1 - 1e-12)


def _quadratic(values: list[int]) -> tuple[int, int, int]:
    """(a, b, c) of a x^2 + b x + c through (1, y1), (2, y2), (3, y3)."""
    y1, y2, y3 = values
    a2 = y3 - 2 * y2 + y1  # 2a
    assert a2 % 2 == 0
    a = a2 // 2
    b = y2 - y1 - 3 * a
    return a, b, y1 - a - b


@pytest.mark.parametrize("target", TARGETS)
def test_speculation_accepting_nothing_is_slower_than_decoding_alone(files, target):
    f = _run(files["speculative"], target, acceptance=0.0)
    assert set(SPECULATION_KEYS) <= set(f)
    assert f["tokens_per_target_step"] == 1.0
    assert f["ms_per_token"] > f["plain_ms_per_token"]
    assert 0 < f["draft_time_fraction"] < 1


@pytest.mark.parametrize("target", TARGETS)
def test_speculation_accepting_everything_yields_k_plus_one_tokens_per_step(files, target):
    for k in (1, 4, 8):
        f = _run(files["speculative"], target, acceptance=1.0, draft_tokens=k)
        assert f["tokens_per_target_step"] == k + 1
        almost = _run(files["speculative"], target, acceptance=0.999, draft_tokens=k)
        assert almost["tokens_per_target_step"] == pytest.approx(k + 1, rel=0.01)
        assert almost["ms_per_token"] > f["ms_per_token"]


@given(k=st.integers(1, 64), a=st.floats(0.0, 1.0), b=st.floats(0.0, 1.0))
def test_tokens_per_round_grows_with_the_acceptance_from_1_to_k_plus_1(k, a, b):
    low, high = sorted((a, b))
    assert 1.0 <= tokens_per_round(k, low) <= tokens_per_round(k, high) + 1e-9 <= k + 1 + 1e-9
    assert tokens_per_round(k, 0.0) == 1.0 and tokens_per_round(k, 1.0) == k + 1


def test_the_ttft_of_a_speculative_request_includes_the_drafts_prefill(files):
    alone = _run(files["plain"])
    speculative = _run(files["speculative"])
    assert speculative["ttft_ms"] > alone["ttft_ms"]
    assert speculative["plain_ms_per_token"] == pytest.approx(alone["ms_per_token"])


def test_the_model_and_its_draft_must_fit_the_sockets_hbm_together(files, tmp_path):
    """Each is placed on its own; together they share each socket's HBM (E021 when they do not fit)."""
    from importlib import resources

    from xdsl.utils.exceptions import DiagnosticException

    from dfdsl.driver import hbm_bytes_per_socket

    model = _model(files["speculative"], "sn40l")
    run_settings = model.settings
    draft = model.draft()
    assert draft is not None
    sizes = [hbm_bytes_per_socket(COMPILER.compile(m, run_settings, CompileOptions()), run_settings)
             for m in (model, draft)]
    capacity = max(sizes) + min(sizes) // 2
    text = (resources.files("dfdsl.hardware") / "sn40l.toml").read_text(encoding="utf-8")
    small = tmp_path / "small_hbm.toml"
    small.write_text(text.replace("capacity_bytes = 64000000000", f"capacity_bytes = {capacity}"))
    with pytest.raises(DiagnosticException, match=r"tiny and its draft tinier need .* GB of hbm per socket together") as err:
        run_model(files["speculative"], {}, CompileOptions(hardware=str(small)))
    assert getattr(err.value, "code", None) == "E021"
    # Without its draft, the same model fits.
    assert run_model(files["plain"], {}, CompileOptions(hardware=str(small)))["ttft_ms"] > 0
