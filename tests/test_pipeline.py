"""Pipeline parallelism: stages on groups of sockets joined by the inter-node link, micro-batches
and the bubble in the timing, Llama 3.1 405B on 2 x 8 sockets, and the errors of a bad `--pipeline`."""

from __future__ import annotations

from pathlib import Path

import attrs
import numpy as np
import pytest

from dfdsl.cli import main
from dfdsl.driver import CompileOptions, Compiler, load_model
from dfdsl.hardware import load_hardware
from dfdsl.lowering.pipeline_stages import choose_cuts
from dfdsl.sim import timing, vectorized
from dfdsl.sim.timing import Affine, IterationWork, KernelCall

ROOT = Path(__file__).parent.parent
LLAMA_8B = str(ROOT / "examples" / "llama3_1_8b.dfl")
LLAMA_405B = ROOT / "examples" / "llama3_1_405b.dfl"


def _call(name: str, hbm_bytes: int) -> KernelCall:
    """A one-stage kernel that streams `hbm_bytes` from HBM and does nothing else."""
    return KernelCall(kernel=name, trips=1, depth_stages=1, pcus=100,
                      work=IterationWork(hbm_read=Affine(const=hbm_bytes)))


def test_bubble_and_step_against_a_hand_computed_case():
    """Two stages of one call each, streaming 1.44 GB and 2.88 GB: at 90% of 1.6 TB/s, 1 ms and
    2 ms of body. Each call adds launch 15 us, fill 1 + 0.5 us and drain 0.5 us (sn40l.toml)."""
    hw = load_hardware("sn40l")
    a, link = hw.assumptions, hw.internode
    assert link is not None
    calls = [_call("a", 1_440_000_000), _call("b", 2_880_000_000)]
    per_call = a.launch_sync_hardware_s + a.first_tile_latency_s + 2 * a.stage_latency_s
    t0, t1 = 1e-3 + per_call, 2e-3 + per_call
    pipeline = timing.Pipeline(stages=2, micro_batches=1, call_stages=(0, 1),
                               messages=(Affine(per_batch=8192),), returned=Affine(per_batch=4))

    # One micro-batch: a token crosses stage 0, the link, stage 1 and the link back; stages take turns.
    step = timing.pipeline_step(calls, pipeline, hw, 1, 100)
    internode = (link.latency_s + 8192 / link.bandwidth_bytes_per_s) + (link.latency_s + 4 / link.bandwidth_bytes_per_s)
    cycle = t0 + t1 + internode + a.host_per_token_s
    assert step.total_s == pytest.approx(cycle, rel=1e-12)
    assert step.breakdown_s["internode"] == pytest.approx(internode, rel=1e-12)
    assert step.breakdown_s["pipeline_wait"] == 0.0
    run = timing.run(calls, hw, 1, 100, 3, pipeline=pipeline)
    assert timing.bubble_fraction(run, 2) == pytest.approx(1 - (t0 + t1) / (2 * cycle), rel=1e-12)

    # Two micro-batches of one sequence: stage 1 serves both, 2 x 2.0xx ms, longer than the cycle.
    two = timing.Pipeline(stages=2, micro_batches=2, call_stages=(0, 1),
                          messages=pipeline.messages, returned=pipeline.returned)
    step = timing.pipeline_step(calls, two, hw, 2, 100)
    assert step.total_s == pytest.approx(2 * t1, rel=1e-12)
    assert step.breakdown_s["pipeline_wait"] == pytest.approx(2 * t1 - cycle, rel=1e-12)
    assert step.hbm_read_bytes == 2 * (1_440_000_000 + 2_880_000_000)  # weights stream once per micro-batch
    run = timing.run(calls, hw, 2, 100, 3, pipeline=two)
    assert timing.bubble_fraction(run, 2) == pytest.approx(1 - 2 * (t0 + t1) / (2 * 2 * t1), rel=1e-12)


def test_a_run_is_the_sum_of_its_steps_whichever_way_it_is_built():
    """`run` makes its steps one at a time and `run_of` adds up steps already made: the same
    accumulator, so the same Run for the same steps, a pipeline's busy time included."""
    hw = load_hardware("sn40l")
    calls = [_call("a", 1_440_000_000), _call("b", 2_880_000_000)]
    pipeline = timing.Pipeline(stages=2, micro_batches=2, call_stages=(0, 1),
                               messages=(Affine(per_batch=8192),), returned=Affine(per_batch=4))
    for staged in (None, pipeline):
        whole = timing.run(calls, hw, 2, 100, 3, pipeline=staged)
        steps = [timing.step(calls, hw, 2, c) if staged is None else timing.pipeline_step(calls, staged, hw, 2, c)
                 for c in (100, 101, 102)]
        assert timing.run_of(steps) == whole
        assert timing.run_of(iter(steps)) == whole
        assert (whole.tokens, whole.first, whole.last) == (3, steps[0], steps[-1])
    busy = timing.run_of(steps).total.stage_busy_s
    assert busy > 0 and busy == sum(s.stage_busy_s for s in steps)
    with pytest.raises(ValueError):
        timing.run_of([])


def test_balanced_stages_idle_only_for_the_links_and_host_unless_micro_batches_cover_them():
    """N equal stages of time t and M = N micro-batches: the cycle L = N t + N links + host exceeds
    M t, so the stages idle the links' and host's share, 1 - N t / L; with M = 2N they never idle."""
    hw = load_hardware("sn40l")
    a, link = hw.assumptions, hw.internode
    assert link is not None
    calls = [_call(f"k{i}", 1_440_000_000) for i in range(4)]
    t_call = 1e-3 + a.launch_sync_hardware_s + a.first_tile_latency_s + 2 * a.stage_latency_s
    for stages in (2, 4):
        per_stage = 4 // stages
        t = per_stage * t_call

        def bubble(micro: int) -> float:
            pipeline = timing.Pipeline(stages, micro, tuple(i // per_stage for i in range(4)),
                                       (Affine(per_batch=8192),) * (stages - 1), Affine(per_batch=4))
            return timing.bubble_fraction(timing.run(calls, hw, micro, 10, 2, pipeline=pipeline), stages)

        links = (stages - 1) * (link.latency_s + 8192 / link.bandwidth_bytes_per_s) + (
            link.latency_s + 4 / link.bandwidth_bytes_per_s)
        cycle = stages * t + links + a.host_per_token_s
        assert bubble(stages) == pytest.approx(1 - stages * t / cycle, rel=1e-9)
        assert bubble(2 * stages) == pytest.approx(0.0, abs=1e-12)


def test_cuts_balance_the_prefix():
    assert choose_cuts([1, 1, 1, 1], [0, 1, 2], 2) == [1]
    assert choose_cuts([1, 1, 1, 1], [0, 1, 2], 4) == [0, 1, 2]
    assert choose_cuts([0, 5, 5, 5, 5, 1], [0, 1, 2, 3, 4], 2) == [2]
    assert choose_cuts([1, 1, 1, 1, 1, 1], [4], 2) == [4]  # the only place an activation passes alone


def test_llama_405b_runs_on_2_x_8_sockets_with_its_weights_in_hbm():
    model = load_model(LLAMA_405B, {"sockets": 8, "pipeline": 2})
    run = Compiler().simulate(model, model.settings, CompileOptions())
    figures = run.report.figures
    assert figures["pipeline_stages"] == 2 and figures["total_sockets"] == 16 and figures["sockets"] == 8
    assert run.result.ddr_bytes_per_token == 0  # every weight and the KV cache in HBM
    assert figures["kernel_calls_per_token"] == 5  # embedding, a looped call per stage, LM head, sampling
    assert figures["internode_ms"] > 0 and figures["breakdown_ms"]["internode"] == figures["internode_ms"]
    assert sum(figures["breakdown_ms"].values()) == pytest.approx(figures["ms_per_token"], rel=1e-9)
    # One micro-batch: each stage streams half the weights on 8 sockets while the other waits, so a
    # token takes about twice as long as on one 16-socket tensor-parallel node, and the bubble is ~1/2.
    flat = load_model(LLAMA_405B, {"sockets": 16})
    flat_ms = Compiler().simulate(flat, flat.settings, CompileOptions()).report["ms_per_token"]
    assert 1.9 < figures["ms_per_token"] / flat_ms < 2.1
    assert 0.45 < figures["bubble_fraction"] < 0.55
    assert figures["hbm_bandwidth_bytes_per_s"] == 16 * model.hardware.hbm.bandwidth_bytes_per_s


def test_llama_405b_does_not_fit_8_sockets_without_the_pipeline(capsys):
    assert main(["run", str(LLAMA_405B), "--sockets", "8"]) == 2
    assert "[E021]" in capsys.readouterr().err
    assert main(["run", str(LLAMA_405B), "--sockets", "8", "--pipeline", "2", "--json"]) == 0


def test_each_stage_loops_its_own_layers(capsys):
    assert main(["lower", LLAMA_8B, "--emit", "rdu", "--pipeline", "2"]) == 0
    out = capsys.readouterr().out
    assert out.count("rdu.pipeline_send %") == 1
    assert out.count("rdu.loop ") == 2  # one looped kernel per stage (17 and 15 layers)


@pytest.mark.parametrize(("args", "needle"), [
    (["--pipeline", "0"], "`pipeline` is 0 on the command line; it must be from 1 to 64 [E019]"),
    (["--pipeline", "33"], "`pipeline` is 33 but model `llama3_1_8b` has 32 layers"),
    (["--pipeline", "2", "--batch", "4", "--micro-batches", "3"], "does not divide the batch of 4 [E016]"),
    (["--micro-batches", "2", "--batch", "2"], "the run has one pipeline stage"),
    (["--pipeline", "2", "--prompt", "128"], "a pipeline times a plain decode"),
    (["--pipeline", "2", "--target", "dgx-h100", "--no-kernel-looping"], "on an RDU only"),
])
def test_bad_pipelines_exit_2_without_a_traceback(args, needle, capsys):
    assert main(["run", LLAMA_8B, *args]) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err


def test_a_bad_pipeline_in_the_file_is_located(tmp_path, capsys):
    bad = tmp_path / "bad.dfl"
    bad.write_text(Path(LLAMA_8B).read_text().replace("run decode {", "run decode { pipeline = 40;"))
    assert main(["check", str(bad)]) == 2
    err = capsys.readouterr().err
    line = next(i for i, text in enumerate(bad.read_text().splitlines(), 1) if "pipeline = 40" in text)
    assert f"{bad}:{line}:" in err and "has 32 layers" in err and "[E016]" in err


def test_the_driver_evaluates_pipelined_points_as_simulate_does():
    """Sweeps and sensitivities time a pipelined program with the array model: every figure at each
    point is `simulate`'s (the interpreter, step by step), and a batch that does not split into
    the micro-batches fails its point as `simulate` fails."""
    model = load_model(Path(LLAMA_8B), {"pipeline": 2, "micro_batches": 2, "batch": 2})
    batch, context, tokens = np.array([2, 8, 64, 3]), np.array([4096, 100, 30_000, 4096]), np.array([128, 1, 7, 5])
    compiler = Compiler()
    evaluation = compiler.evaluate(model, CompileOptions(), 8, vectorized.Points(batch, context, tokens))
    for p in range(3):
        settings = attrs.evolve(model.settings, batch=int(batch[p]), context=int(context[p]), tokens=int(tokens[p]))
        want = compiler.simulate(model, settings, CompileOptions()).report.figures
        for key in ("ms_per_token", "bytes_per_token", "flops_per_token", "peak_fraction", "kv_bytes"):
            assert evaluation.figures[key][p] == pytest.approx(want[key], rel=1e-9), key
        for category, ms in want["breakdown_ms"].items():
            assert evaluation.figures[f"{category}_ms"][p] == pytest.approx(ms, rel=1e-9, abs=1e-9 * want["ms_per_token"])
    assert evaluation.figures["pipeline_wait_ms"][2] > 0  # batch 64: the stages, not the round trip, set the pace
    assert evaluation.errors[:3] == [None] * 3
    assert "does not split into 2 equal micro-batches" in str(evaluation.errors[3])


def test_a_sweep_of_a_pipelined_file_writes_its_points(tmp_path, capsys):
    piped = tmp_path / "piped.dfl"
    piped.write_text(Path(LLAMA_8B).read_text().replace("run decode {", "run decode { pipeline = 2;"))
    out = tmp_path / "sweep.csv"
    assert main(["sweep", str(piped), "--batch", "1,4", "--tokens", "16", "-o", str(out), "-q"]) == 0
    rows = out.read_text().splitlines()
    assert len(rows) == 3 and "internode_ms" in rows[0] and "pipeline_wait_ms" in rows[0]
    assert main(["run", str(piped), "--batch", "4", "--tokens", "16", "--json"]) == 0
    ms = __import__("json").loads(capsys.readouterr().out)["ms_per_token"]
    header = rows[0].split(",")
    assert float(rows[2].split(",")[header.index("ms_per_token")]) == pytest.approx(ms, rel=1e-9)
