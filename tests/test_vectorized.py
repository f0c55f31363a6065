"""The array timing model gives the reference's numbers (sim/timing.py, step by step) at random
points, for random calls on both targets, and its closed-form sum of maxima is the brute-force sum."""

from __future__ import annotations

import zlib
from typing import Any

import attrs
import numpy as np
import pytest

from pathlib import Path

from xdsl.utils.exceptions import DiagnosticException

from dfdsl.diagnostics import DfslError
from dfdsl.driver import CompileOptions, Compiler, RunSettings, load_model
from dfdsl.hardware import load_hardware, with_value
from dfdsl.report import JSON_KEYS
from dfdsl.sim import timing, vectorized
from dfdsl.sim.gpu_interpreter import launch_timing
from dfdsl.sim.timing import Affine, AllReduce, AllToAll, ExpertRead, IterationWork, KernelCall
from dfdsl.sim.vectorized import HardwareValues, Line, Points

ROOT = Path(__file__).parent.parent
RDU = load_hardware("sn40l")
GPU = load_hardware("dgx_h100")
TOLERANCE = 1e-9


def close(a: float, b: float) -> bool:
    return abs(a - b) <= TOLERANCE * max(abs(a), abs(b)) + 1e-300


def test_sum_of_max_is_the_brute_force_sum():
    rng = np.random.default_rng(7)
    categories = ("stream", "compute", "collective")
    for _ in range(40):
        n, count = 64, int(rng.integers(1, 6))
        # Small integers make exact ties at whole contexts, where the first line must win.
        lines = [Line(categories[i % 3], rng.integers(0, 40, n).astype(float), rng.integers(-3, 4, n).astype(float))
                 for i in range(count)]
        if count > 1:
            lines[-1] = attrs.evolve(lines[-1], at0=lines[0].at0.copy(), slope=lines[0].slope.copy())
        first = rng.integers(0, 20, n).astype(float)
        last = first + rng.integers(0, 30, n)
        got = vectorized.sum_of_max(lines, first, last)
        for p in range(n):
            want = dict.fromkeys(categories, 0.0)
            for c in range(int(first[p]), int(last[p]) + 1):
                best = max(lines, key=lambda line: line.at0[p] + line.slope[p] * c)
                want[best.category] += best.at0[p] + best.slope[p] * c
            for category, seconds in want.items():
                assert got.get(category, np.zeros(n))[p] == pytest.approx(seconds, abs=1e-9), (p, category)


def _affine(rng, const: float, per_batch: float, per_batch_context: float) -> Affine:
    def term(scale: float) -> int:
        return int(rng.integers(0, scale)) if scale and rng.random() < 0.7 else 0
    return Affine(term(const), term(per_batch), term(per_batch_context))


def random_calls(rng, gpu: bool) -> list[KernelCall]:
    calls = []
    for i in range(int(rng.integers(1, 5))):
        experts = ()
        if rng.random() < 0.3:
            # Half of them spread over 4 sockets (expert parallelism): 2 of the 8 experts held here.
            held, shards = (2, 4) if rng.random() < 0.5 else (0, 1)
            experts = (ExpertRead(8, 2, _affine(rng, 1e7, 1e4, 10), "hbm" if rng.random() < 0.7 else "ddr",
                                  held=held, token_shards=shards),)
        reduces = tuple(AllReduce(_affine(rng, 1e4, 2e4, 50), int(rng.choice([1, 2, 4, 8, 12, 16, 32])),
                                  str(rng.choice(timing.COLLECTIVES)))
                        for _ in range(int(rng.integers(0, 3))))
        # The GPU targets run tensor parallelism only: no all-to-all reaches their calls.
        exchanges = () if gpu else tuple(
            AllToAll(_affine(rng, 1e3, 4e4, 0), int(rng.choice([1, 2, 16])), float(rng.uniform(1.0, 2.0)))
            for _ in range(int(rng.choice([0, 0, 2]))))
        work = IterationWork(flops=_affine(rng, 1e10, 1e9, 1e5), hbm_read=_affine(rng, 1e8, 1e5, 1e4),
                             hbm_write=_affine(rng, 1e6, 1e4, 0), ddr_read=_affine(rng, 1e6, 1e3, 1e2),
                             ddr_write=_affine(rng, 1e5, 0, 0), experts=experts, all_reduces=reduces,
                             all_to_alls=exchanges)
        trips = 1 if gpu else int(rng.choice([1, 1, 32]))
        kind = str(rng.choice(["gemm", "attention", "experts", "stream", ""])) if gpu else ""
        columns = int(rng.integers(1, 20_000)) if kind == "gemm" else 0
        heads = int(rng.choice([0, 1, 2, 8, 64])) if kind == "attention" else 0
        calls += [KernelCall(f"k{i}", trips, 0 if gpu else int(rng.integers(1, 9)),
                             0 if gpu else int(rng.integers(1, 936)), work, kind, columns, heads)] * int(rng.integers(1, 3))
    return calls


SWEPT = {
    "rdu": ("hbm.bandwidth_bytes_per_s", "ddr.bandwidth_bytes_per_s", "assumptions.p2p_bandwidth_bytes_per_s",
            "assumptions.p2p_latency_s", "assumptions.p2p_rack_bandwidth_bytes_per_s",
            "assumptions.p2p_rack_latency_s", "assumptions.launch_sync_hardware_s", "assumptions.stage_latency_s",
            "chip.peak_flops_per_s", "chip.pcus"),
    "gpu": ("hbm.bandwidth_bytes_per_s", "assumptions.stream_ramp_s", "assumptions.nccl_step_latency_s",
            "assumptions.nccl_bus_bandwidth_bytes_per_s", "chip.peak_flops_per_s", "assumptions.launch_sync_s",
            "software.gemm_ramp_s", "software.gemm_half_efficiency_columns", "software.attention_floor_s",
            "software.attention_efficiency", "software.attention_wave_s", "software.attention_block_tokens",
            "software.attention_max_waves", "chip.sms", "software.experts_ramp_s", "software.custom_allreduce_latency_s",
            "software.custom_allreduce_twoshot_latency_s", "software.custom_allreduce_bandwidth_bytes_per_s",
            "software.host_launch_s"),
}
GPU_CASES = [("gpu", f"{reduce} {graphs}") for reduce in ("nccl-ring", "nccl-tree", "one-shot", "two-shot", "custom")
             for graphs in ("graphs", "eager")]


@pytest.mark.parametrize("kind,algorithm", [*(("rdu", a) for a in (*timing.ALGORITHMS, "auto")), *GPU_CASES])
def test_random_calls_at_random_points_match_the_reference(kind, algorithm):
    rng = np.random.default_rng(zlib.crc32(f"{kind}{algorithm}".encode()))
    base: Any = RDU if kind == "rdu" else GPU
    if kind == "rdu":
        base = attrs.evolve(base, assumptions=attrs.evolve(base.assumptions, allreduce_algorithm=algorithm))
    else:
        reduce, graphs = algorithm.split()
        base = attrs.evolve(base, software=attrs.evolve(base.software, all_reduce=reduce, cuda_graphs=graphs == "graphs"))
    lines_of = vectorized.rdu_call_lines if kind == "rdu" else vectorized.gpu_call_lines
    time_call = timing.call_timing if kind == "rdu" else launch_timing
    for _ in range(6):
        calls = random_calls(rng, kind == "gpu")
        n = 12
        points = Points(rng.integers(1, 300, n), rng.integers(1, 200_000, n), rng.integers(1, 60, n))
        swept = {}
        for path in SWEPT[kind]:
            value = float(HardwareValues(base)(path))
            factor = np.exp(rng.uniform(np.log(0.25), np.log(4.0), n))
            swept[path] = np.round(value * factor) if path in ("chip.pcus", "chip.sms") else value * factor
        got = vectorized.run(calls, HardwareValues(base, swept), points, lines_of)
        for p in range(n):
            hw = base
            for path, values in swept.items():
                hw = with_value(hw, path, values[p])
            want = timing.run(calls, hw, int(points.batch[p]), int(points.context[p]), int(points.tokens[p]), time_call)
            assert close(got.step_s[p], want.step_s)
            for category, seconds in want.breakdown_s.items():
                assert close(got.breakdown_s[category][p], seconds), category
            for figure in ("read_bytes", "hbm_read_bytes", "ddr_read_bytes", "flops"):
                assert close(got.mean(figure)[p], want.mean(figure)), figure


PIPELINE_SWEPT = (*SWEPT["rdu"], "internode.bandwidth_bytes_per_s", "internode.latency_s")


@pytest.mark.parametrize("algorithm", [*timing.ALGORITHMS, "auto"])
def test_random_pipelined_calls_at_random_points_match_the_reference(algorithm):
    """A pipelined step's period, max(round trip, M x slowest stage, M x largest send), summed in
    closed form over each point's run, is the reference's step by step: every figure to 1e-9 of
    itself, the pipeline's wait to 1e-9 of the step (it is a difference of two near sums)."""
    rng = np.random.default_rng(zlib.crc32(f"pipeline {algorithm}".encode()))
    base: Any = attrs.evolve(RDU, assumptions=attrs.evolve(RDU.assumptions, allreduce_algorithm=algorithm))
    waited = 0
    for _ in range(8):
        calls = random_calls(rng, False) + random_calls(rng, False)
        stages = int(rng.integers(2, 5))
        call_stages = tuple(sorted(int(s) for s in rng.integers(0, stages, len(calls))))
        micro = int(rng.choice([1, 2, 4, 8]))
        messages = tuple(_affine(rng, 1e5, 4e5, 50) for _ in range(stages - 1))
        pipeline = timing.Pipeline(stages, micro, call_stages, messages, _affine(rng, 10, 4, 0))
        n = 12
        points = Points(micro * rng.integers(1, 64, n), rng.integers(1, 200_000, n), rng.integers(1, 60, n))
        swept = {}
        for path in PIPELINE_SWEPT:
            value = float(HardwareValues(base)(path))
            factor = np.exp(rng.uniform(np.log(0.25), np.log(4.0), n))
            swept[path] = np.round(value * factor) if path == "chip.pcus" else value * factor
        got = vectorized.pipeline_run(calls, pipeline, HardwareValues(base, swept), points, vectorized.rdu_call_lines)
        for p in range(n):
            hw = base
            for path, values in swept.items():
                hw = with_value(hw, path, values[p])
            want = timing.run(calls, hw, int(points.batch[p]), int(points.context[p]), int(points.tokens[p]),
                              pipeline=pipeline)
            assert close(got.step_s[p], want.step_s)
            for category, seconds in want.breakdown_s.items():
                if category == "pipeline_wait":
                    assert abs(got.breakdown_s[category][p] - seconds) <= TOLERANCE * want.step_s
                else:
                    assert close(got.breakdown_s[category][p], seconds), category
            for figure in ("read_bytes", "hbm_read_bytes", "ddr_read_bytes", "flops"):
                assert close(got.mean(figure)[p], want.mean(figure)), figure
            waited += want.breakdown_s["pipeline_wait"] > 0
    assert waited  # some points wait for a stage or a send, not only for the round trip


def test_an_auto_all_reduce_changes_algorithm_inside_a_run():
    # A message growing with the context: one-shot at the start of the run, two-shot at its end.
    reduce = AllReduce(Affine(0, 0, 64), 16)
    call = KernelCall("k", 1, 1, 100, IterationWork(all_reduces=(reduce,)))
    links = timing.Links.of(RDU)
    chosen = [timing.choose(timing.collective_options("all_reduce", 64.0 * c, 16, links), "auto")
              for c in range(1, 400)]
    switch = chosen.index("two-shot") + 1
    assert chosen[0] == "one-shot" and 10 < switch < 350
    points = Points(np.array([1]), np.array([switch - 9]), np.array([20]))
    got = vectorized.run([call], HardwareValues(RDU), points, vectorized.rdu_call_lines)
    want = timing.run([call], RDU, 1, switch - 9, 20)
    assert close(got.step_s[0], want.step_s)
    for category, seconds in want.breakdown_s.items():
        assert close(got.breakdown_s[category][0], seconds), category
    assert len(vectorized.rdu_call_lines(call, HardwareValues(RDU), points).pieces) > 1


def test_an_attention_split_reaches_its_most_waves_inside_a_run():
    # 32 sequences of 2 KV heads: XQA's split grows with the context to 8 waves of 132 SMs at
    # 8 x 128 x 132 / 64 = 2,112 tokens, then stays there.
    call = KernelCall("attention", 1, 0, 0, IterationWork(hbm_read=Affine(0, 0, 1024)), "attention", heads=2)
    points = Points(np.array([32]), np.array([2100]), np.array([30]))
    got = vectorized.run([call], HardwareValues(GPU), points, vectorized.gpu_call_lines)
    want = timing.run([call], GPU, 32, 2100, 30, launch_timing)
    assert close(got.step_s[0], want.step_s)
    assert len(vectorized.gpu_call_lines(call, HardwareValues(GPU), points).pieces) == 2


@pytest.mark.parametrize("target", ["sn40l", "dgx_h100", "dgx_h100_nccl", "dgx_a100", "dgx_h200"])
def test_the_driver_evaluates_random_points_as_simulate_does(target, tmp_path, capfd):
    # Llama 3.1 8B on 8 sockets, its KV cache free to spill: small points fit as declared, large
    # ones spill their KV cache to DDR, the largest do not fit at all.
    source = (ROOT / "examples" / "llama3_1_8b.dfl").read_text()
    (tmp_path / "m.dfl").write_text(source.replace("kv_cache -> hbm; ", ""))
    model = load_model(tmp_path / "m.dfl", {"target": target})
    rng = np.random.default_rng(zlib.crc32(target.encode()))
    n = 12
    points = Points(rng.integers(1, 2048, n), rng.integers(1, 800_000, n), rng.integers(1, 40, n))
    points = Points(np.append(points.batch, [1, 1]), np.append(points.context, [4096, 4097]),
                    np.append(points.tokens, [8, 8]))
    path = "hbm.bandwidth_bytes_per_s"
    swept = {path: float(HardwareValues(model.hardware)(path)) * rng.uniform(0.5, 2.0, n + 2)}
    compiler = Compiler()
    got = compiler.evaluate(model, CompileOptions(), 8, points, swept)
    outcomes = set()
    for p in range(n + 2):
        settings = RunSettings(int(points.batch[p]), int(points.context[p]), int(points.tokens[p]), 8)
        try:
            want = Compiler().simulate(model, settings, CompileOptions(),
                                       hardware=with_value(model.hardware, path, swept[path][p])).report.figures
        except (DfslError, DiagnosticException) as err:
            assert str(got.errors[p]) == str(err)
            outcomes.add("error")
            continue
        assert got.errors[p] is None
        outcomes.add("ok")
        assert got.model == want["model"] and got.target == want["target"]
        for key in JSON_KEYS:
            if isinstance(want[key], dict):
                for category, ms in want[key].items():
                    assert close(got.figures[f"{category}_ms"][p], ms), (p, key, category)
            elif isinstance(want[key], int | float) and not isinstance(want[key], bool):
                assert close(float(got.figures[key][p]), float(want[key])), (p, key)
    assert outcomes == {"ok", "error"}
    assert target != "sn40l" or "moved kv_cache" in capfd.readouterr().err


def test_the_driver_evaluates_a_batch_split_over_the_sockets_as_simulate_does(tmp_path):
    # Data-parallel attention and expert-parallel experts: every point's steps are the program's
    # at its busiest socket's ceil(batch / 4) sequences, batches that do not divide included.
    (tmp_path / "m.dfl").write_text(DATA_PARALLEL_MODEL)
    model = load_model(tmp_path / "m.dfl")
    points = Points(np.array([1, 3, 4, 5, 64, 301]), np.array([10, 100, 4096, 33, 2000, 7]),
                    np.array([4, 1, 20, 9, 3, 2]))
    got = Compiler().evaluate(model, CompileOptions(), 4, points)
    for p in range(len(points.batch)):
        settings = RunSettings(int(points.batch[p]), int(points.context[p]), int(points.tokens[p]), 4)
        want = Compiler().simulate(model, settings, CompileOptions()).report.figures
        assert got.errors[p] is None
        for key in ("ms_per_token", "tokens_per_s", "bytes_per_token", "flops_per_token", "peak_fraction"):
            assert close(float(got.figures[key][p]), float(want[key])), (p, key)
    # 4 and 3 sequences cost a socket the same step (one each); 5 cost two.
    ms = got.figures["ms_per_token"]
    assert close(ms[1], Compiler().simulate(model, RunSettings(4, 100, 1, 4), CompileOptions()).report["ms_per_token"])
    assert ms[3] > Compiler().simulate(model, RunSettings(4, 33, 9, 4), CompileOptions()).report["ms_per_token"]


DATA_PARALLEL_MODEL = """
import std.deepseek

model tiny_deepseek : deepseek {
  dtype = bf16; vocab = 100; hidden = 64; layers = 3; dense_layers = 1
  heads = 4; q_lora_rank = 32; kv_lora_rank = 32; qk_nope_dim = 16; qk_rope_dim = 8; v_head_dim = 16
  ffn = 128; moe_ffn = 32; experts = 8; top_k = 2
}
parallel { attention = data; imbalance = 1.3 }
run decode { batch = 8; context = 64; tokens = 4; target = sn40l(sockets = 4) }
"""


def test_points_placed_alike_compile_once(monkeypatch):
    from dfdsl import driver

    applied: list[str] = []
    real = driver.run_passes
    monkeypatch.setattr(driver, "run_passes", lambda module, passes, after=None: applied.extend(p.name for p in passes)
                        or real(module, passes, after))
    model = load_model(ROOT / "examples" / "llama3_1_8b.dfl")
    rng = np.random.default_rng(3)
    points = Points(rng.integers(1, 64, 1000), rng.integers(1, 32768, 1000), rng.integers(1, 512, 1000))
    evaluation = Compiler().evaluate(model, CompileOptions(), 8, points)
    assert all(e is None for e in evaluation.errors)
    assert applied.count("place-memory") == applied.count("df-to-rdu") == applied.count("fuse") == 1
