"""Decode reports: the JSON contract of `dfdsl run --json` (keys, order, types), and invariants of
the simulated figures on real examples over many run settings (hypothesis): never above the
roofline, looping never slower, the breakdown sums to the step, more sockets never read more per
socket, and batch multiplies the KV reads but not the weight reads."""

from __future__ import annotations

import json
import math
from functools import cache
from importlib import resources
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis import target as target_score
from xdsl.dialects.builtin import ModuleOp

from dfdsl.cli import main as cli_main
from dfdsl.elaborate import check_file
from dfdsl.footprint import footprint
from dfdsl.irgen import generate
from dfdsl.lowering.pipeline import RDU_PIPELINE, LoweringOptions, run_passes
from dfdsl.lowering.place_memory import CapacityError
from dfdsl.lowering.shard_tensor_parallel import ShardingError
from dfdsl.report import JSON_KEYS, Report, make_report, render_table
from dfdsl.driver import CompileOptions, run_model
from dfdsl.hardware import GPU_ALLREDUCES, GpuHardware, load_hardware, range_of
from dfdsl.sim.gpu_interpreter import step_bytes
from dfdsl.sim.interpreter import simulate
from dfdsl.sim.timing import CATEGORIES
from dfdsl.targets import target_for
from df_models import tiny_llama, tiny_mla, tiny_moe

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


def test_a_moe_report_shows_the_parameters_held_and_the_bytes_read_apart_and_they_add_up():
    report = _report("mixtral_8x7b")
    f = report.figures
    assert f["bytes_per_token"] < 0.3 * f["param_bytes"]  # 2 of 8 experts per layer at batch 1
    assert f["bytes_per_token"] == pytest.approx(f["weight_bytes_read"] + f["kv_bytes"], abs=2)
    rows = {line.split("│")[1].strip(): line.split("│")[2].strip()
            for line in render_table(report).splitlines() if line.count("│") == 3}
    assert rows["parameters held"] == f"{f['param_bytes'] / 1e9:,.2f} GB"
    assert rows["bytes a step must read"] == (f"{f['bytes_per_token'] / 1e9:,.2f} GB  ({f['weight_bytes_read'] / 1e9:,.2f} "
                                              f"GB weights + {f['kv_bytes'] / 1e9:,.2f} GB KV)")


def test_bound_names_the_largest_part_of_the_breakdown():
    """Llama 3.1 8B on 16 sockets at batch 1,024: FLOPs per byte is past the ridge, but the
    all-reduces of 1,024 sequences take most of the step."""
    figures = _report_at("llama3_1_8b", 16, True, batch=1024, context=128)
    assert figures["flops_per_byte"] > figures["ridge_flops_per_byte"]
    assert figures["bound"] == "collective" == max(figures["breakdown_ms"], key=figures["breakdown_ms"].get)
    assert _report_at("llama3_1_8b", 8, True, batch=1, context=4096)["bound"] == "stream"


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
        assert 0 < figures["peak_fraction"] <= HW.assumptions.stream_efficiency
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


# -- the roofline bound, over random models and machines -------------------------------------------


HardwareValues = dict[tuple[str, str], float | int | str | bool]
"""Values of a hardware file by (table, key)."""


def _hardware_file(base: str, values: HardwareValues, folder: Path) -> Path:
    """The bundled `base` file with `values[(section, key)]` in place of its own, written to `folder`."""
    lines = (resources.files("dfdsl.hardware") / f"{base}.toml").read_text(encoding="utf-8").splitlines()
    section = ""
    for i, line in enumerate(lines):
        if line.startswith("["):
            section = line.strip("[]")
        key = line.split("=")[0].strip()
        if (section, key) in values:
            value = values[section, key]
            lines[i] = f"{key} = {str(value).lower() if isinstance(value, bool) else repr(value)}"
    path = folder / f"{base}_{abs(hash(tuple(sorted(values.items()))))}.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _bandwidth() -> st.SearchStrategy[float]:
    return st.floats(1e10, 2e13)


def _within(key: str) -> st.SearchStrategy[float]:
    """Any value of the numeric hardware key `key` its physical range allows (`range_of`)."""
    rule = range_of(key)
    return st.floats(rule.low, rule.high)


@st.composite
def _gpu_software(draw: st.DrawFn) -> HardwareValues:
    """A GPU node's `[gpu_software]` redrawn: each kernel's streaming efficiency anywhere in its
    physical range, the GEMM's half-efficiency width, the kernels' fixed times, the all-reduce and
    how kernels are launched."""
    values: HardwareValues = {("gpu_software", key): draw(_within(key))
                              for key in ("gemm_efficiency", "attention_efficiency", "experts_efficiency",
                                          "gemm_half_efficiency_columns")}
    for key in ("gemm_ramp_s", "attention_ramp_s", "attention_floor_s", "experts_ramp_s", "host_launch_s"):
        values[("gpu_software", key)] = draw(st.floats(1e-9, 5e-5))
    values[("gpu_software", "all_reduce")] = draw(st.sampled_from(GPU_ALLREDUCES))
    values[("gpu_software", "cuda_graphs")] = draw(st.booleans())
    return values


@st.composite
def _machines(draw: st.DrawFn) -> tuple[str, HardwareValues]:
    """A bundled machine with its memories, efficiencies and latencies redrawn (DDR may be as fast
    as HBM, the fastest a hardware file allows, and HBM small enough that tensors spill to DDR; a
    GPU node's software as well)."""
    base = draw(st.sampled_from(("sn40l", "dgx_h100")))
    assumptions = "assumptions" if base == "sn40l" else "gpu_assumptions"
    hbm = draw(_bandwidth())
    values: HardwareValues = {
        ("memory.hbm", "bandwidth_bytes_per_s"): hbm,
        ("memory.ddr", "bandwidth_bytes_per_s"): draw(st.floats(1e10, hbm)),
        ("memory.hbm", "capacity_bytes"): draw(st.sampled_from((2_000_000, 20_000_000, 64 * 10**9))),
        (assumptions, "stream_efficiency"): draw(st.floats(0.2, 1.0)),
        (assumptions, "compute_efficiency"): draw(st.floats(0.05, 1.0)),
        (assumptions, "host_per_token_s"): draw(st.floats(1e-9, 1e-4)),
    }
    if base == "sn40l":
        values[("assumptions", "stage_latency_s")] = draw(st.floats(1e-9, 2e-6))
        values[("assumptions", "p2p_latency_s")] = draw(st.floats(1e-9, 1e-5))
        values[("assumptions", "allreduce_algorithm")] = draw(st.sampled_from(("direct", "ring", "auto")))
    else:
        values[("gpu_assumptions", "stream_ramp_s")] = draw(st.floats(1e-9, 5e-6))
        # An L2 that a small model's step fits in (its GEMMs' weights hit), or that nothing fits in.
        values[("gpu", "sram_bytes")] = draw(st.sampled_from((10_000, 1_000_000, 50_000_000)))
        values.update(draw(_gpu_software()))
    return base, values


@st.composite
def _models(draw: st.DrawFn) -> ModuleOp:
    """A small model of a random family, shape and placement (df_models)."""
    heads = draw(st.sampled_from((1, 2, 4, 8)))
    config = dict(
        heads=heads,
        kv_heads=draw(st.sampled_from([k for k in (1, 2, 4, 8) if heads % k == 0])),
        head_dim=draw(st.sampled_from((8, 16, 32))),
        hidden=draw(st.sampled_from((32, 64, 128))),
        ffn=draw(st.sampled_from((32, 64, 256))),
        vocab=draw(st.sampled_from((64, 100, 512, 4096))),
        experts=(experts := draw(st.sampled_from((2, 4, 8)))),
        top_k=draw(st.integers(1, experts)),
        expert_ffn=draw(st.sampled_from((16, 32))),
        weight_tier=draw(st.sampled_from(("hbm", "hbm", "ddr", "sram"))),
        cache_tier=draw(st.sampled_from(("hbm", "hbm", "ddr"))),
        tied_head=draw(st.booleans()),
    )
    build = draw(st.sampled_from((tiny_llama, tiny_moe, tiny_mla)))
    return build(draw(st.integers(1, 3)), **config)


LARGEST = {"peak_fraction": 0.0, "of_efficiency": 0.0}
"""The largest peak_fraction seen, and the largest peak_fraction / stream_efficiency (for reports)."""


GPU_AT_ITS_BEST: HardwareValues = {
    **{("gpu_software", f"{kind}_efficiency"): 1.0 for kind in ("gemm", "attention", "experts")},
    **{("gpu_software", key): 1e-9 for key in ("gemm_ramp_s", "attention_ramp_s", "attention_floor_s")},
    ("gpu_assumptions", "stream_ramp_s"): 1e-9,
    ("gpu_assumptions", "host_per_token_s"): 1e-9,
    ("gpu_assumptions", "stream_efficiency"): 0.2,
}
"""A GPU node whose kernels stream at full bandwidth and whose fixed times are next to nothing."""


def _peak_and_bound(folder: Path, front: ModuleOp, machine: tuple[str, HardwareValues], sockets: int, batch: int,
                    context: int, tokens: int, fusion: str, looping: bool) -> tuple[float, float]:
    """The run's peak_fraction, and the bound it must stay under: stream_efficiency, or on a GPU
    the largest of it and its kernels' streaming efficiencies."""
    base, values = machine
    path = _hardware_file(base, values, folder)
    hw = load_hardware(str(path))
    target = target_for(hw)
    options = LoweringOptions(sockets=sockets, fusion=fusion, kernel_looping=looping and target.loops_kernels,
                              target=base, hardware=str(path))
    module = front.clone()
    try:
        run_passes(module, target.pipeline.passes_to(target.final_stage, options))
    except (ShardingError, CapacityError):
        assume(False)  # a model that does not divide over, or fit on, these sockets has no run
    result = target.simulator(module, hw, batch=batch, context=context, tokens=tokens)
    figures = make_report(result, footprint(front), hw, fusion=fusion, kernel_looping=looping).figures
    efficiency = hw.assumptions.stream_efficiency
    if isinstance(hw, GpuHardware):
        # A GPU's GEMMs, attention and experts stream at the efficiencies measured for its kernels.
        software = hw.software
        efficiency = max(efficiency, software.gemm_efficiency, software.attention_efficiency,
                         software.experts_efficiency)
        reuse = min((step_bytes(c.reuse, batch, context) for c in target.kernel_calls(module, hw) if c.reuse),
                    default=math.inf)
        if reuse < hw.chip.sram_bytes:
            # A step that fits in the L2 reads its GEMMs' weights from there, faster than the HBM
            # roofline allows (physically so): bound it by the L2's rate instead.
            efficiency *= max(1.0, hw.assumptions.l2_bandwidth_bytes_per_s / hw.hbm.bandwidth_bytes_per_s)
    return figures["peak_fraction"], efficiency


@settings(max_examples=60, deadline=None)
@given(front=_models(), machine=_machines(), sockets=st.sampled_from((1, 2, 4, 8)),
       batch=st.integers(1, 512), context=st.integers(1, 100_000), tokens=st.integers(1, 3),
       fusion=st.sampled_from(("none", "block", "layer")), looping=st.booleans())
def test_no_run_beats_the_streaming_efficiency_of_the_roofline(tmp_path_factory, front, machine, sockets,
                                                                batch, context, tokens, fusion, looping):
    """peak_fraction <= stream_efficiency (on a GPU, the largest of its kernels' streaming
    efficiencies): every byte the roofline counts is streamed by the simulated step at no more than
    that fraction of the bandwidth it is counted at."""
    peak, efficiency = _peak_and_bound(tmp_path_factory.getbasetemp(), front, machine, sockets, batch, context,
                                       tokens, fusion, looping)
    LARGEST["peak_fraction"] = max(LARGEST["peak_fraction"], peak)
    LARGEST["of_efficiency"] = max(LARGEST["of_efficiency"], peak / efficiency)
    target_score(peak / efficiency)
    assert 0 < peak <= efficiency * (1 + 1e-9)


def test_a_gpu_at_its_best_comes_within_a_few_percent_of_the_bound(tmp_path):
    """The bound is tight where it should be: with GPU_AT_ITS_BEST's kernels and a KV cache of
    gigabytes, a step streams at 97% or more of its kernels' efficiency (1.0), far above the node's
    stream_efficiency (0.2) that a bound without the kernels' own would take."""
    front = tiny_llama(3, heads=8, kv_heads=8, head_dim=32, hidden=128, ffn=256, vocab=4096)
    peak, efficiency = _peak_and_bound(tmp_path, front, ("dgx_h100", GPU_AT_ITS_BEST), 1, 512, 100_000, 1,
                                       "layer", False)
    assert efficiency == 1.0 and 0.97 < peak <= 1.0 + 1e-9
