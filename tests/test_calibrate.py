"""`dfdsl calibrate`: it recovers parameters from points generated with known values, on both kinds
of machine; it names what the points cannot pin down; the fitted file keeps the base file's text;
bad measurements are located errors; the shipped public measurements read and fit."""

from __future__ import annotations

import json
import re
import types
from pathlib import Path

import numpy as np
import pytest

from dfdsl import calibrate
from dfdsl.cli import main
from dfdsl.diagnostics import DfslError
from dfdsl.driver import CompileOptions, Compiler, load_model
from dfdsl.errors import ProgramFailure
from dfdsl.hardware import bundled_kind, bundled_targets, hardware_text, load_hardware, target_name

ROOT = Path(__file__).parent.parent
EXAMPLES = ROOT / "examples"
HEADER = "model,target,sockets,batch,context,tokens,ms_per_token,source\n"


def true_machine(folder: Path, base: str, changes: dict[str, str]) -> Path:
    """A copy of a bundled hardware file with some values changed (key: new value as written; the
    first line that sets the key, so `bandwidth_bytes_per_s` is HBM's)."""
    text, _, _ = hardware_text(base)
    for key, value in changes.items():
        text, count = re.subn(rf"(?m)^({key}\s*=\s*)\S+", rf"\g<1>{value}", text, count=1)
        assert count == 1, key
    path = folder / f"true_{base}.toml"
    path.write_text(text, encoding="utf-8")
    return path


def synthetic_csv(folder: Path, truth: Path, target: str, points: list[tuple[str, int, int, int]]) -> Path:
    """Points timed by the driver's simulate on the true machine: (model, sockets, batch, context)."""
    compiler = Compiler()
    rows = []
    for model_name, sockets, batch, context in points:
        overrides = {"sockets": sockets, "batch": batch, "context": context, "tokens": 16, "target": target}
        model = load_model(EXAMPLES / model_name, overrides, str(truth))
        report = compiler.simulate(model, model.settings, CompileOptions(hardware=str(truth))).report
        rows.append(f"{EXAMPLES / model_name},{target},{sockets},{batch},{context},16,{report['ms_per_token']!r},"
                    "synthetic\n")
    path = folder / "measured.csv"
    path.write_text(HEADER + "".join(rows), encoding="utf-8")
    return path


def run_json(capsys, *args: str) -> dict:
    assert main(["calibrate", *args, "--json"]) == 0, capsys.readouterr().err
    return json.loads(capsys.readouterr().out)


def fitted(report: dict) -> dict[str, float]:
    return {p["name"]: p["fitted"] for p in report["parameters"]}


def test_recovers_known_rdu_parameters(tmp_path, capsys):
    truth = true_machine(tmp_path, "sn40l", {"launch_sync_hardware_s": "24e-6", "stream_efficiency": "0.8"})
    csv = synthetic_csv(tmp_path, truth, "sn40l", [
        ("llama3_1_8b.dfl", 8, 1, 4096), ("llama3_1_8b.dfl", 16, 1, 4096), ("llama3_1_8b.dfl", 16, 4, 1024),
        ("llama3_1_8b.dfl", 2, 1, 2048),
    ])
    out = tmp_path / "fitted.toml"
    report = run_json(capsys, str(csv), "--hardware", "sn40l", "-o", str(out), "--fit", "launch_cost,stream_efficiency",
                      "--tolerance", "0.001")
    values = fitted(report)
    assert values["launch_cost"] == pytest.approx(24e-6, rel=0.01)
    assert values["stream_efficiency"] == pytest.approx(0.8, rel=0.01)
    assert report["rms_residual"] < 0.002 < report["rms_residual_base"]
    assert report["loo_rms_residual"] < 0.01
    assert report["not_pinned"] == []
    assert [p["key"] for p in report["parameters"]] == ["assumptions.launch_sync_hardware_s",
                                                         "assumptions.stream_efficiency"]
    assert all(abs(p["residual"]) < 0.005 for p in report["points"])
    # The written file is a hardware file `--hardware` accepts, with the fitted values.
    hw = load_hardware(out)
    assert hw.assumptions.launch_sync_hardware_s == values["launch_cost"]
    assert hw.assumptions.stream_efficiency == values["stream_efficiency"]
    assert main(["run", str(EXAMPLES / "llama3_1_8b.dfl"), "--hardware", str(out), "--json"]) == 0


def test_recovers_known_gpu_parameters(tmp_path, capsys):
    # Keys every GPU file has, however its kernels are priced: the HBM's bandwidth, the host's time per token.
    truth = true_machine(tmp_path, "dgx_h100", {"bandwidth_bytes_per_s": "3.0e12", "host_per_token_s": "40e-6"})
    csv = synthetic_csv(tmp_path, truth, "dgx_h100", [
        ("llama3_1_8b.dfl", 1, 1, 4096), ("llama3_1_8b.dfl", 2, 1, 4096), ("llama3_1_8b.dfl", 8, 1, 4096),
        ("llama3_1_8b.dfl", 8, 8, 1024),
    ])
    out = tmp_path / "fitted_gpu.toml"
    report = run_json(capsys, str(csv), "--hardware", "dgx-h100", "-o", str(out), "--fit",
                      "hbm_bandwidth,host_cost", "--tolerance", "0.001")
    values = fitted(report)
    assert values["hbm_bandwidth"] == pytest.approx(3.0e12, rel=0.01)
    # The host's time is 1-2% of these points' step: the fit pins it to its reported range, which holds the truth.
    host = next(p for p in report["parameters"] if p["name"] == "host_cost")
    assert values["host_cost"] == pytest.approx(40e-6, rel=0.15) and host["range"][0] <= 40e-6 <= host["range"][1]
    assert report["not_pinned"] == []
    assert [p["key"] for p in report["parameters"]] == ["memory.hbm.bandwidth_bytes_per_s",
                                                         "gpu_assumptions.host_per_token_s"]
    hw = load_hardware(out)
    assert hw.kind == "gpu" and hw.hbm.bandwidth_bytes_per_s == values["hbm_bandwidth"]


def test_names_what_the_points_cannot_pin_down(tmp_path, capsys):
    """Every point runs the same calls per step, so a call's launch cost and the host's time per
    token move the points alike: only their combination is fixed. On one socket, nothing depends
    on the all-reduce latency, which keeps the base file's value."""
    truth = true_machine(tmp_path, "sn40l", {"host_per_token_s": "30e-6"})
    csv = synthetic_csv(tmp_path, truth, "sn40l", [("llama3_1_8b.dfl", 1, 1, 1024), ("llama3_1_8b.dfl", 1, 1, 4096),
                                                    ("llama3_1_8b.dfl", 1, 2, 2048)])
    out = tmp_path / "fitted.toml"
    report = run_json(capsys, str(csv), "--hardware", "sn40l", "-o", str(out), "--no-loo",
                      "--fit", "launch_cost,host_cost,allreduce_latency")
    by_name = {p["name"]: p for p in report["parameters"]}
    assert set(report["not_pinned"]) == {"launch_cost", "host_cost", "allreduce_latency"}
    assert "trades off against host_cost" in by_name["launch_cost"]["why"]
    assert "no point depends on it" in by_name["allreduce_latency"]["why"]
    assert by_name["allreduce_latency"]["fitted"] == by_name["allreduce_latency"]["base"]
    assert report["rms_residual"] < 0.002
    base_line = next(line for line in hardware_text("sn40l")[0].splitlines() if line.startswith("p2p_latency_s"))
    assert base_line in out.read_text().splitlines()  # kept as written, not marked fitted


def test_the_fitted_file_keeps_the_base_text(tmp_path):
    base, name, _ = hardware_text("sn40l")
    text = calibrate.fitted_toml(base, name, {"assumptions.stream_efficiency": 0.8125,
                                              "hbm.bandwidth_bytes_per_s": 1.7e12}, "m.csv", "2026-12-01 12:00 UTC")
    changed = [line for line in text.splitlines() if line not in base.splitlines()]
    assert changed[:2] == ["# Fitted by `dfdsl calibrate` to m.csv on 2026-12-01 12:00 UTC: the values marked "
                           "`fitted` below", "# replace those of sn40l.toml (bundled); everything else is that file's."]
    assert changed[2:] == [
        "bandwidth_bytes_per_s = 1.7e12 # fitted by dfdsl calibrate to m.csv on 2026-12-01 12:00 UTC (was 1.6e12)",
        "stream_efficiency = 0.8125 # fitted by dfdsl calibrate to m.csv on 2026-12-01 12:00 UTC (was 0.9)",
    ]
    assert len(text.splitlines()) == len(base.splitlines()) + 2


def test_a_kept_trailing_comment_follows_the_fitted_note():
    base, name, _ = hardware_text("sn40l")
    text = calibrate.fitted_toml(base, name, {"chip.peak_flops_per_s": 600e12}, "m.csv", "today")
    assert ("peak_flops_per_s = 6e14       # fitted by dfdsl calibrate to m.csv on today (was 6.38e14); "
            "paper: 638 BF16 TFLOP/s") in text


@pytest.mark.parametrize(("row", "where", "message"), [
    ("llama3_1_8b.dfl,sn40l,8,1,4096,,fast,x", "3:33", "ms_per_token `fast` is not a number"),
    ("llama3_1_8b.dfl,sn40l,8,1,4096,,-1,x", "3:33", "ms_per_token = -1 is not positive"),
    ("llama3_1_8b.dfl,sn40l,eight,1,4096,,1.0,x", "3:23", "sockets `eight` is not a number"),
    ("llama3_1_8b.dfl,sn40l,8,1,4096,,1e400,x", "3:33", "ms_per_token = 1e400 is not a finite number"),
    ("llama3_1_8b.dfl,sn40l,8,1,4096,99999999999999999999,1.0,x", "3:32",
     "tokens = 99999999999999999999 is out of range"),
    ("llama3_1_8b.dfl,sn40l,2000,1,4096,,1.0,x", "3:23", "sockets = 2000 is out of range"),
    ("llama3_1_8b.dfl,sn40l,8,1,4096,,1.0", "3:36", "this row has 7 fields; the header (line 2) names 8"),
    ('llama3_1_8b.dfl,sn40l,8,1,4096,,1.0,"unended', "3:37", "this quoted field has no closing"),
    ("nope.dfl,sn40l,8,1,4096,,1.0,x", "3:1", "no model file `nope.dfl`"),
    ("llama3_1_8b.dfl,tpu,8,1,4096,,1.0,x", "3:17", "no bundled target is called `tpu`"),
    ("llama3_1_8b.dfl,sn40l,8,1,4096,,1.0,", "3:37", "the `source` of this point is empty"),
])
def test_a_bad_row_is_a_located_error(tmp_path, capsys, row, where, message):
    (tmp_path / "llama3_1_8b.dfl").write_text((EXAMPLES / "llama3_1_8b.dfl").read_text())
    csv = tmp_path / "m.csv"
    csv.write_text("# a comment\n" + HEADER + row + "\n")
    out = tmp_path / "fitted.toml"
    assert main(["calibrate", str(csv), "--hardware", "sn40l", "-o", str(out), "--fit", "launch_cost"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{csv}:{where}: error: {message}") and "[E032]" in err
    assert "Traceback" not in err and not out.exists()


def test_a_bad_header_is_a_located_error(tmp_path):
    csv = tmp_path / "m.csv"
    csv.write_text("model, ms_per_token,speed,source\n")
    with pytest.raises(DfslError) as info:
        calibrate.read_measurements(csv)
    d = info.value.diagnostics[0]
    assert (d.code, d.span.line, d.span.column, d.message) == ("E032", 1, 21, "unknown column `speed`")
    csv.write_text("model,source\n")
    with pytest.raises(DfslError, match="the header has no `ms_per_token` column"):
        calibrate.read_measurements(csv)
    csv.write_text(HEADER)
    with pytest.raises(DfslError, match="the file holds no measured point"):
        calibrate.read_measurements(csv)


def test_quoted_fields_and_their_columns(tmp_path):
    path = tmp_path / "m.csv"
    assert calibrate._fields('a, "b, ""c""" ,d', path, 1) == [("a", 1), ('b, "c"', 4), ("d", 16)]
    assert calibrate._fields("", path, 1) == [("", 1)]


def test_an_unknown_parameter_lists_the_names(tmp_path, capsys):
    csv = tmp_path / "m.csv"
    csv.write_text(HEADER + f"{EXAMPLES / 'llama3_1_8b.dfl'},sn40l,8,1,4096,,1.0,x\n")
    out = tmp_path / "fitted.toml"
    out.write_text("kept")
    assert main(["calibrate", str(csv), "--hardware", "sn40l", "-o", str(out), "--fit", "launch_speed"]) == 2
    err = capsys.readouterr().err
    assert "`launch_speed` is not a parameter of sn40l" in err and "[E027]" in err
    for name in ("launch_cost", "stream_efficiency", "allreduce_latency", "launch_sync_hardware_s", "p2p_latency_s"):
        assert name in err
    assert main(["calibrate", str(csv), "--hardware", "sn40l", "-o", str(out), "--fit", "pcus"]) == 2
    assert "`pcus` is a count or a capacity" in capsys.readouterr().err
    assert main(["calibrate", str(csv), "--hardware", "sn40l", "-o", str(out), "--fit", "stream_efficiency=0:2"]) == 2
    assert "low bound" in capsys.readouterr().err
    assert out.read_text() == "kept"


def test_bounds_hold(tmp_path, capsys):
    csv = tmp_path / "m.csv"
    csv.write_text(HEADER + f"{EXAMPLES / 'llama3_1_8b.dfl'},sn40l,8,1,4096,16,1.0,x\n")
    report = run_json(capsys, str(csv), "--hardware", "sn40l", "-o", str(tmp_path / "f.toml"),
                      "--fit", "stream_efficiency=0.5:0.95")
    (p,) = report["parameters"]
    assert (p["low"], p["high"]) == (0.5, 0.95) and 0.5 <= p["fitted"] <= 0.95
    assert report["loo_rms_residual"] is None  # one point: nothing to leave out


def test_rows_of_another_machine_are_left_out(tmp_path, capsys):
    csv = tmp_path / "m.csv"
    model = EXAMPLES / "llama3_1_8b.dfl"
    csv.write_text(HEADER + f"{model},dgx-h100,8,1,4096,16,3.0,x\n{model},sn40l,8,1,4096,16,1.5,x\n")
    report = run_json(capsys, str(csv), "--hardware", "sn40l", "-o", str(tmp_path / "f.toml"), "--fit", "launch_cost")
    assert report["skipped_lines"] == [2] and [p["line"] for p in report["points"]] == [3]
    assert main(["calibrate", str(csv), "--hardware", "sn40l", "-o", str(tmp_path / "f.toml"), "--fit",
                 "launch_cost", "--measured-on", "dgx-h200"]) == 2
    assert "no point was measured on dgx-h200" in capsys.readouterr().err


def test_missing_scipy_is_e030(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "scipy.optimize", None)  # `import scipy.optimize` raises ImportError
    monkeypatch.setitem(sys.modules, "scipy", None)
    with pytest.raises(ProgramFailure) as info:
        calibrate.require_scipy()
    assert info.value.code == "E030" and "scipy" in str(info.value) and "dfdsl[calibrate]" in info.value.fix


SHIPPED = EXAMPLES / "measured_public.csv"
SHIPPED_ROWS = calibrate.read_measurements(SHIPPED)


def test_the_shipped_rows_name_bundled_targets_and_their_sources():
    """Every shipped point names a bundled machine, its model file and its source; the GPU points
    span two GPUs, the paper's 2024 baseline on the profile of the software it measured."""
    assert all(r.target in bundled_targets() and r.model.is_file() and len(r.source) > 20 for r in SHIPPED_ROWS)
    gpu = [r for r in SHIPPED_ROWS if bundled_kind(r.target or "") == "gpu"]
    assert len(gpu) >= 8 and {r.target for r in gpu} >= {"dgx_a100", "dgx_h100_nccl"}
    (paper,) = [r for r in SHIPPED_ROWS if "2410.23668" in r.source]
    assert paper.target == "dgx_h100_nccl"
    doc = (ROOT / "docs" / "calibrate.md").read_text()
    sources = {r.source.split(":")[0].split(",")[0] for r in SHIPPED_ROWS}
    assert all(source in doc for source in sources), [s for s in sources if s not in doc]


@pytest.mark.parametrize("row", SHIPPED_ROWS, ids=[f"line{r.line}" for r in SHIPPED_ROWS])
def test_every_shipped_row_runs_on_its_target(row):
    """Each point compiles and runs on its own bundled machine at its settings, and the model is
    within a factor 2.5 of the published figure (the report's residuals say how close)."""
    model = load_model(row.model, row.overrides(row.target), row.target)
    report = Compiler().simulate(model, model.settings, CompileOptions(hardware=row.target)).report
    assert 0.4 < report["ms_per_token"] / row.ms_per_token < 2.5


def test_a_fit_to_the_shipped_a100_rows_lowers_their_error(tmp_path, capsys):
    out = tmp_path / "a100_fitted.toml"
    report = run_json(capsys, str(SHIPPED), "--hardware", "dgx-a100", "-o", str(out), "--fit", "gemm_efficiency",
                      "--no-loo")
    a100 = [r.line for r in SHIPPED_ROWS if r.target == "dgx_a100"]
    assert [p["line"] for p in report["points"]] == a100
    assert sorted(report["skipped_lines"]) == sorted(r.line for r in SHIPPED_ROWS if r.line not in a100)
    assert report["rms_residual"] < report["rms_residual_base"]
    assert [p["key"] for p in report["parameters"]] == ["software.gemm_efficiency"]
    assert load_hardware(out).name == "dgx_a100"


def test_the_shipped_sn40l_rows_fit(tmp_path, capsys):
    """The SN40L points (the speculative files through the driver's simulate) fit, and the report
    says how well."""
    out = tmp_path / "sn40l_fitted.toml"
    report = run_json(capsys, str(SHIPPED), "--hardware", "sn40l", "-o", str(out), "--fit", "launch_cost",
                      "--no-loo")
    assert len(report["points"]) == sum(r.target == "sn40l" for r in SHIPPED_ROWS) >= 4
    assert report["rms_residual"] <= report["rms_residual_base"]
    assert load_hardware(out).name == "sn40l"


def test_the_paper_row_fits_the_eager_launch_of_its_own_profile(tmp_path, capsys):
    """On `dgx-h100-nccl` (no CUDA graphs) a call's launch cost is the host's launch; the paper's
    row alone fixes it exactly."""
    report = run_json(capsys, str(SHIPPED), "--hardware", "dgx-h100-nccl", "-o", str(tmp_path / "n.toml"),
                      "--fit", "launch_cost")
    (point,) = report["points"]
    assert "2410.23668" in point["source"] and abs(point["residual"]) < 0.001 < abs(point["base_ms"] / point["measured_ms"] - 1)
    assert [p["key"] for p in report["parameters"]] == ["software.host_launch_s"]


def test_rows_of_another_bundled_machine_are_fitted_with_a_note(tmp_path, capsys):
    """`--measured-on` may choose rows of another bundled machine than the hardware file's; they
    run on the hardware file, and the command says so."""
    assert main(["calibrate", str(SHIPPED), "--hardware", "dgx-h100", "--measured-on", "dgx-h100-nccl", "-o",
                 str(tmp_path / "f.toml"), "--fit", "launch_cost", "--json"]) == 0
    captured = capsys.readouterr()
    assert "note: the rows measured on dgx-h100-nccl run on dgx_h100.toml (bundled)" in captured.err
    assert "--hardware dgx-h100-nccl" in captured.err
    report = json.loads(captured.out)
    assert [p["key"] for p in report["parameters"]] == ["gpu_assumptions.launch_sync_s"]  # graphs: the dependent launch
    assert main(["calibrate", str(SHIPPED), "--hardware", "dgx-a100", "-o", str(tmp_path / "g.toml"), "--fit",
                 "gemm_efficiency", "--no-loo"]) == 0
    assert "note:" not in capsys.readouterr().err  # the file's own rows: nothing to say
    own = tmp_path / "my_h100.toml"  # a file of the user's own: its rows may name the machine it describes
    own.write_text(hardware_text("dgx_h100")[0].replace('name = "dgx_h100"', 'name = "my_h100"'), encoding="utf-8")
    assert main(["calibrate", str(SHIPPED), "--hardware", str(own), "--measured-on", "dgx-h100", "-o",
                 str(tmp_path / "h.toml"), "--fit", "gemm_efficiency", "--no-loo"]) == 0
    assert "note:" not in capsys.readouterr().err


@pytest.mark.parametrize(("target", "launch", "allreduce"), [
    ("dgx_h100", "assumptions.launch_sync_s", "software.custom_allreduce_latency_s"),
    ("dgx_h100_nccl", "software.host_launch_s", "assumptions.nccl_base_latency_s"),
    ("dgx_a100", "assumptions.launch_sync_s", "software.custom_allreduce_latency_s"),
    ("dgx_h200", "assumptions.launch_sync_s", "software.custom_allreduce_latency_s"),
])
def test_gpu_short_names_follow_the_software(target, launch, allreduce):
    hw = load_hardware(target)
    assert [p.path for p in calibrate.resolve_parameters(hw, "launch_cost,allreduce_latency")] == [launch, allreduce]


@pytest.mark.parametrize("all_reduce", ["nccl-ring", "one-shot", "two-shot", "custom"])
def test_the_allreduce_latency_moves_a_tensor_parallel_gpu_point(tmp_path, all_reduce):
    """Whatever all-reduce a GPU file's software runs, `allreduce_latency` is one the points see:
    a microsecond more per all-reduce is 64 us more per step of Llama 3.1 8B (2 per layer)."""
    text, _, _ = hardware_text("dgx_h100")
    path = tmp_path / "h100.toml"
    path.write_text(re.sub(r'(?m)^all_reduce = "custom"', f'all_reduce = "{all_reduce}"', text), encoding="utf-8")
    hw = load_hardware(path)
    assert hw.software.all_reduce == all_reduce
    (parameter,) = calibrate.resolve_parameters(hw, "allreduce_latency")
    measurement = calibrate.Measurement(1, EXAMPLES / "llama3_1_8b.dfl", 2.0, "x", None, 8, 1, 4096, 4)
    points, _, _ = calibrate.load_points([measurement], str(path), None, Compiler())
    predictor = calibrate.Predictor(points, [parameter], CompileOptions(hardware=str(path)), Compiler())
    ms = predictor(np.array([[parameter.base], [parameter.base + 1e-6]]))[:, 0]
    assert ms[1] - ms[0] == pytest.approx(0.064, rel=0.02)


def test_a_parameter_pushed_to_where_nothing_depends_on_it_keeps_its_fit():
    """Points that want a cost as small as it goes drive it to its bound, where no point depends on
    it: it keeps the fitted value (the base file's would undo the fit), and is not pinned down."""

    class Linear:
        """ms = measured x 1.05 + k x value: the fit wants the value at 0."""

        def __init__(self):
            self.measured = np.array([1.0, 2.0])
            self.parameters = [calibrate.Parameter("launch_cost", "assumptions.launch_sync_s", 2e-6, 1e-12, 1.0)]
            model = types.SimpleNamespace(hardware=types.SimpleNamespace(kind="gpu"))
            self.points = [types.SimpleNamespace(model=model, measurement=calibrate.Measurement(
                i + 2, Path("m.dfl"), float(v), "x")) for i, v in enumerate(self.measured)]

        def __call__(self, values, which=None):
            return self.measured * 1.05 + np.asarray(values)[:, :1] * np.array([2e4, 5e4])

    result, values = calibrate.fit(Linear(), loo=False)
    (p,) = result.parameters
    assert values == {"assumptions.launch_sync_s": p.fitted} and p.fitted < 1e-9 and not p.pinned
    assert "push it down" in p.why
    assert result.rms < 0.051 < result.base_rms


def test_text_report_and_help(tmp_path, capsys):
    csv = tmp_path / "m.csv"
    model = EXAMPLES / "llama3_1_8b.dfl"
    csv.write_text(HEADER + f"{model},sn40l,8,1,4096,16,1.5,x\n{model},sn40l,16,1,4096,16,0.9,y\n")
    assert main(["calibrate", str(csv), "--hardware", "sn40l", "-o", str(tmp_path / "f.toml"),
                 "--fit", "launch_cost,stream_efficiency"]) == 0
    out = capsys.readouterr().out
    for needle in ("launch_cost", "assumptions.launch_sync_hardware_s", "RMS residual:", "leave-one-out",
                   "Not pinned down by these points:"):
        assert needle in out
    with pytest.raises(SystemExit):
        main(["calibrate", "--help"])
    assert "--fit" in capsys.readouterr().out


def test_a_point_that_does_not_run_is_located_at_its_row(tmp_path, capsys):
    csv = tmp_path / "m.csv"
    csv.write_text(HEADER + f"{EXAMPLES / 'llama3_1_405b.dfl'},sn40l,1,1,4096,16,50.0,x\n")
    assert main(["calibrate", str(csv), "--hardware", "sn40l", "-o", str(tmp_path / "f.toml"), "--fit",
                 "launch_cost"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{csv}:2:1: error: this point does not run on the hardware file: ") and "(E021)" in err


def test_the_documented_json_keys_are_the_report_s():
    doc = (ROOT / "docs" / "calibrate.md").read_text()
    csv = EXAMPLES / "measured_public.csv"
    measurement = calibrate.read_measurements(csv)[0]
    point = calibrate.FittedPoint(measurement, 1.0, 1.0, None)
    parameter = calibrate.FittedParameter("a", "b", 1.0, 1.0, 0.5, 2.0, False, None, None, True, "")
    report = calibrate.report_json(calibrate.Fit((parameter,), (point,), (), 0.01, (1.0,)), measured="m",
                                   hardware="h", output="o", when="w")
    keys = {*report, *report["parameters"][0], *report["points"][0]}
    assert all(f"`{key}`" in doc for key in keys), [k for k in keys if f"`{k}`" not in doc]


@pytest.mark.parametrize("machine", ["sn40l", "dgx-a100", "dgx-h100"])
def test_the_fittable_names_are_each_named_once(machine):
    names = calibrate.fittable_names(load_hardware(target_name(machine)))
    assert len(names) == len(set(names)) and "stream_efficiency" in names


def test_a_report_that_cannot_be_written_leaves_no_fitted_file_and_a_written_one_has_both(tmp_path, capsys):
    csv = tmp_path / "m.csv"
    csv.write_text(HEADER + f"{EXAMPLES / 'llama3_1_8b.dfl'},sn40l,8,1,4096,16,1.5,x\n")
    out = tmp_path / "fitted.toml"
    args = ["calibrate", str(csv), "--hardware", "sn40l", "-o", str(out), "--fit", "launch_cost", "--json"]
    assert main([*args, "--report", str(tmp_path / "missing" / "r.json")]) == 2
    assert "[E028]" in capsys.readouterr().err and not out.exists()
    assert main([*args, "--report", str(tmp_path / "r.json")]) == 0
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["output"] == str(out) and "fitted by dfdsl calibrate" in out.read_text()
