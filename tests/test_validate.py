"""`dfdsl validate`: one row per published claim, read off one simulation per configuration; a
figure outside its tolerance fails its row and the command; configurations that cannot be built
are skipped with their reason. (Run on a few small examples for speed; `dfdsl validate` itself runs
all the dense ones.)"""

from __future__ import annotations

import argparse
import json
from functools import cache

import attrs
import pytest

from dfdsl import validate
from dfdsl.cli import main, run_command
from dfdsl.cli import validate as validate_command
from dfdsl.report import Report
from dfdsl.sim import timing

SMALL = [validate.EXAMPLES_DIR / f"{name}.dfl" for name in ("llama3_1_8b", "mistral_7b", "llama2_13b")]


@cache
def _calibrated():
    return validate.calibrate(SMALL)


@cache
def _speculative():
    return validate.speculative_runs()


def _validate(argv: list[str], monkeypatch, calibrated=None, speculative=(), compositions=()) -> int:
    """`dfdsl validate ARGV` as the command line runs it, over `calibrated` (default: SMALL), the
    `speculative` runs and the `compositions` (default: none)."""
    result = _calibrated() if calibrated is None else calibrated
    monkeypatch.setattr(validate_command, "calibrate", lambda *args: result)
    monkeypatch.setattr(validate_command, "speculative_runs", lambda **kwargs: list(speculative))
    monkeypatch.setattr(validate_command, "composition_runs", lambda: list(compositions))
    parser = argparse.ArgumentParser(prog="dfdsl validate")
    validate_command.add_arguments(parser)
    return run_command(validate_command.main, parser.parse_args(argv))


def _with_looped_figures(calibration: validate.Calibration, **figures) -> validate.Calibration:
    """The calibration with some of its looped run's figures replaced."""
    report = calibration.looped.report
    looped = attrs.evolve(calibration.looped, report=Report({**report.figures, **figures}, report.timeline))
    return attrs.evolve(calibration, looped=looped)


def test_the_dense_examples_are_the_llamas_mistral_and_qwen():
    names = [p.stem for p in validate.dense_examples()]
    assert names == ["llama2_13b", "llama2_70b", "llama2_7b", "llama3_1_405b", "llama3_1_70b",
                     "llama3_1_8b", "mistral_7b", "qwen2_72b"]
    assert all(p.exists() for p in validate.dense_examples())


def test_every_example_runs_at_both_socket_counts_and_the_unbuildable_are_skipped():
    calibrations, skipped = _calibrated()
    # Llama 2 13B's 40 heads do not divide over 16 sockets: they are padded to 48 (3 per socket).
    assert [(c.model, c.sockets) for c in calibrations] == [
        ("llama3_1_8b", 8), ("llama3_1_8b", 16), ("mistral_7b", 8), ("mistral_7b", 16), ("llama2_13b", 8),
        ("llama2_13b", 16)]
    assert skipped == []
    unbuildable = validate.calibrate([validate.EXAMPLES_DIR / "llama3_1_405b.dfl"], sockets=(8,))
    assert unbuildable[0] == [] and [(s.model, s.sockets) for s in unbuildable[1]] == [("llama3_1_405b", 8)]
    assert "does not fit in hbm" in unbuildable[1][0].reason
    for c in calibrations:
        assert c.looped.report["kernel_looping"] and not c.unlooped.report["kernel_looping"]
        assert c.context == (8192 if c.model == "llama3_1_8b" else 4096)
        assert c.speedup > 1


def test_there_is_one_check_per_claim_and_the_table_has_a_row_for_each():
    calibrations, _ = _calibrated()
    results = validate.checks(calibrations)
    assert len(results) == len(validate.CLAIMS) == 5
    text = validate.render_checks(results)
    assert text.count("PASS") + text.count("FAIL") == len(validate.CLAIMS)
    for label in ("(a)", "(b)", "(c)", "(d)"):
        assert label in text


def test_the_production_claim_is_llama_3_1_8b_on_16_sockets_at_8k_context():
    calibrations, _ = _calibrated()
    check = validate.check_production(calibrations)
    (rack,) = [c for c in calibrations if (c.model, c.sockets) == ("llama3_1_8b", 16)]
    assert check.value == rack.looped.report["tokens_per_s_per_user"]
    assert check.error == pytest.approx(check.value / 1042 - 1)
    assert (check.low, check.high) == pytest.approx((1042 * 0.8, 1042 * 1.2))
    assert check.passed


def test_the_hbm_efficiency_is_the_looped_kernels_bytes_over_its_busy_time_on_the_timeline():
    calibrations, _ = _calibrated()
    for c in calibrations:
        result, hw = c.looped.result, c.looped.hardware
        (call,) = {k for k in result.calls if k.trips > 1}
        t = timing.traffic(call.work, result.batch, result.context)
        phases = timing.call_timing(call, hw, result.batch, result.context)
        busy_s = phases.fill_s + phases.body_s + phases.drain_s
        expected = call.trips * (t.hbm_read_bytes + t.hbm_write_bytes) / (hw.hbm.bandwidth_bytes_per_s * busy_s)
        assert c.hbm_efficiency == pytest.approx(expected, rel=1e-9)
        # Fill and drain are part of the kernel's busy time: the stream's efficiency is an upper bound.
        assert 0 < c.hbm_efficiency < hw.assumptions.stream_efficiency
        assert validate.hbm_efficiency(c.unlooped.result, c.unlooped.hardware) is None


def test_a_figure_outside_its_tolerance_fails_its_row_and_the_command(monkeypatch, capsys):
    calibrations, skipped = _calibrated()
    # Looping three times as fast: the largest speedup leaves 2.2x +-20%, and the roofline band.
    faster = [_with_looped_figures(c, ms_per_token=c.unlooped_ms / 3, tokens_per_s_per_user=3000 / c.unlooped_ms)
              for c in calibrations]
    results = {r.claim[:3]: r for r in validate.checks(faster)}
    assert not results["(b)"].passed
    highest = max(c.claims_fraction for c in faster)
    assert not results["(c)"].passed and results["(c)"].error == pytest.approx(highest - 0.92)
    assert _validate([], monkeypatch, (faster, skipped)) == 1
    assert "FAIL" in capsys.readouterr().out


def test_a_claim_with_nothing_simulated_fails():
    check = validate.check_production([])
    assert check.value is None and not check.passed
    assert "not simulated" in check.simulated


def test_validate_passes_on_the_small_examples_and_prints_both_tables(monkeypatch, capsys):
    assert _validate([], monkeypatch) == 0
    out = capsys.readouterr().out
    assert "FAIL" not in out and out.count("PASS") == 5
    assert "skipped:" not in out  # no configuration skipped: Llama 2 13B's heads are padded over 16 sockets
    assert "mistral_7b" in out


def test_validate_json_has_the_claims_the_configurations_and_the_skipped(monkeypatch, capsys):
    calibrations, _ = _calibrated()
    skipped = [validate.Skipped("llama3_1_405b", 8, "place-memory: does not fit")]
    assert _validate(["--json"], monkeypatch, calibrated=(calibrations, skipped)) == 0
    data = json.loads(capsys.readouterr().out)
    gating = [c for c in data["claims"] if c["gates"]]
    assert len(gating) == 5 and all(c["passed"] for c in gating)
    # The composition claims, with nothing simulated here, are MISS and do not set the exit code.
    assert [c["claim"][:3] for c in data["claims"] if not c["gates"]] == ["(g)", "(h)", "(i)", "(j)"]
    assert len(data["configurations"]) == 6
    assert data["skipped"][0]["model"] == "llama3_1_405b"
    assert _validate([], monkeypatch, calibrated=(calibrations, skipped)) == 0
    assert "skipped: llama3_1_405b at 8 sockets: place-memory: does not fit" in capsys.readouterr().out


def test_the_speculative_claims_run_their_examples_as_written():
    """(e) and (f): the speculative examples as their files say (the same draft, k and acceptance
    for both), compared with the published figure under the same ±20% band as (a)."""
    runs = _speculative()
    assert [r.claim.example for r in runs] == ["llama3_1_70b_speculative", "llama3_1_405b_speculative"]
    for run, check in zip(runs, validate.speculative_checks(runs)):
        figures = run.outcome.report.figures
        assert (figures["draft_tokens"], figures["acceptance"], figures["sockets"]) == (4, 0.8, 16)
        assert check.value == figures["tokens_per_s_per_user"]
        published = run.claim.tokens_per_s_per_user
        assert check.error == pytest.approx(check.value / published - 1)
        assert (check.low, check.high) == pytest.approx((published * 0.8, published * 1.2))
        assert check.passed == (check.low <= check.value <= check.high)
        # Speculation is what lifts the figure above the plain decode's roofline.
        assert figures["tokens_per_s_per_user"] > figures["roofline_tokens_per_s_per_user"]


def test_the_speculative_rows_are_in_the_table_and_the_json(monkeypatch, capsys):
    runs = _speculative()
    code = _validate(["--json"], monkeypatch, speculative=runs)
    data = json.loads(capsys.readouterr().out)
    claims = {c["claim"][:3]: c for c in data["claims"]}
    assert {"(e)", "(f)"} <= set(claims)
    assert not claims["(e)"]["gates"] and not claims["(f)"]["gates"] and claims["(a)"]["gates"]
    assert [r["model"] for r in data["speculative"]] == ["llama3_1_70b_speculative", "llama3_1_405b_speculative"]
    # The exit code is the calibrated claims': a speculative figure outside its band is a MISS.
    assert code == (0 if all(c["passed"] for c in data["claims"] if c["gates"]) else 1)
    assert _validate([], monkeypatch, speculative=runs) == code
    table = capsys.readouterr().out
    for label in ("(e)", "(f)"):
        row = table[table.index(label):]
        assert ("PASS" if claims[label]["passed"] else "MISS") in row.split("\n")[0]


def test_the_composition_claims_read_samba_coe_on_three_machines():
    """(g) to (j): the SN40L node's switch time, request latency and experts per node against each
    DGX's, at batch 8 with 20 output tokens; predictions, so never FAIL."""
    outcomes = validate.composition_runs()
    assert [o.spec.target for o in outcomes] == ["sn40l", "dgx_h100", "dgx_a100"]
    assert all(o.report is not None and o.report["tokens"] == 20 and o.report["batch"] == 8 for o in outcomes)
    checks = validate.composition_checks(outcomes)
    assert [c.claim[:3] for c in checks] == ["(g)", "(h)", "(i)", "(j)"]
    assert not any(c.gates for c in checks) and all(c.verdict in ("PASS", "MISS") for c in checks)
    sn40l, h100, a100 = (o.report for o in outcomes)
    assert checks[1].value == pytest.approx(h100["request_latency_ms"] / sn40l["request_latency_ms"])
    assert checks[2].value == pytest.approx(a100["request_latency_ms"] / sn40l["request_latency_ms"])
    assert checks[3].value == pytest.approx(sn40l["experts_per_node"] / min(h100["experts_per_node"],
                                                                             a100["experts_per_node"]))
    # PCIe Gen4 is half of Gen5: the A100's switch is the slower.
    assert a100["switch_ms"] > h100["switch_ms"] > sn40l["switch_ms"]


@pytest.mark.parametrize("machine", ["dgx-h100", "dgx_a100"])
def test_validate_refuses_a_gpu_machine_at_once_and_says_what_to_give(machine, capsys):
    assert main(["validate", "--hardware", machine]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"dfdsl: error: --hardware {machine} is a gpu machine, and validate checks the published "
                          "SN40L figures: give an rdu machine") and "[E022]" in err and "Traceback" not in err
