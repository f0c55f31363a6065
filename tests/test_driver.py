"""The driver: one path from a model to a report for every target, with compiled stages shared."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dfdsl import driver, sweep
from dfdsl.cli import main
from dfdsl.driver import CompileOptions, Compiler, RunSettings, load_model
from dfdsl.hardware import TargetMismatchError, bundled_targets, load_hardware
from dfdsl.targets import TARGETS, target_for

ROOT = Path(__file__).parent.parent
MODEL = ROOT / "examples" / "llama3_1_8b.dfl"
TARGET_OF_KIND = {load_hardware(name).kind: name for name in bundled_targets()}


def test_every_kind_of_target_has_a_record_and_a_bundled_machine():
    assert set(TARGET_OF_KIND) == set(TARGETS)
    for kind, name in TARGET_OF_KIND.items():
        assert target_for(load_hardware(name)) is TARGETS[kind]


def test_a_sweep_compiles_the_shared_prefix_once(monkeypatch):
    applied: list[str] = []
    real = driver.run_passes
    monkeypatch.setattr(driver, "run_passes",
                        lambda module, passes, after=None: applied.extend(p.name for p in passes)
                        or real(module, passes, after))
    model = load_model(MODEL)
    compiler = Compiler()
    for batch in (1, 8, 32):
        compiler.simulate(model, RunSettings(batch, 1024, 2, 8), CompileOptions())
    assert applied.count("shard-tensor-parallel") == applied.count("fuse") == applied.count("kernel-looping") == 1
    assert applied.count("place-memory") == applied.count("df-to-rdu") == 3
    compiler.simulate(model, RunSettings(8, 1024, 2, 8), CompileOptions())  # seen before: nothing compiles
    assert len(applied) == 3 + 2 * 3


def test_a_kept_stage_is_not_changed_by_later_runs():
    model = load_model(MODEL)
    compiler = Compiler()
    first = compiler.simulate(model, RunSettings(1, 1024, 2, 8), CompileOptions()).report.figures
    compiler.simulate(model, RunSettings(64, 8192, 2, 16), CompileOptions())
    again = compiler.simulate(model, RunSettings(1, 1024, 2, 8), CompileOptions()).report.figures
    fresh = Compiler().simulate(model, RunSettings(1, 1024, 2, 8), CompileOptions()).report.figures
    assert first == again == fresh


def test_a_stage_the_target_does_not_have_is_refused():
    model = load_model(MODEL)
    with pytest.raises(TargetMismatchError, match="its stages are df, fused, looped, rdu, not nv"):
        Compiler().compile(model, model.settings, CompileOptions(), until="nv")


@pytest.mark.parametrize("kind", sorted(TARGETS))
def test_every_command_works_for_every_target(kind, tmp_path, capsys):
    name = TARGET_OF_KIND[kind].replace("_", "-")
    assert main(["run", str(MODEL), "--target", name, "--tokens", "2", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["target"] == TARGET_OF_KIND[kind] and report["kernel_looping"] == TARGETS[kind].loops_kernels
    assert main(["lower", str(MODEL), "--target", name]) == 0
    assert f"{TARGETS[kind].final_stage}.program" in capsys.readouterr().out
    variant = "layer:on" if TARGETS[kind].loops_kernels else "layer:off"
    assert main(["compare", str(MODEL), "--target", name, "--variants", variant, "--sockets", "8",
                 "--tokens", "2", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["ms_per_token"] == report["ms_per_token"]
    out = tmp_path / "sweep.csv"
    assert main(["sweep", str(MODEL), "--target", name, "--batch", "1,4", "--tokens", "2", "--workers", "1",
                 "-q", "-o", str(out)]) == 0
    rows = out.read_text().splitlines()
    assert len(rows) == 3 and all(row.endswith(",") for row in rows[1:])  # the error column is empty


def test_a_model_whose_own_target_is_a_gpu_sweeps(tmp_path):
    gpu_model = tmp_path / "gpu.dfl"
    gpu_model.write_text(MODEL.read_text().replace("target = sn40l(sockets = 8)", "target = dgx_h100(sockets = 8)"))
    model = load_model(gpu_model)
    grid = sweep.make_grid({"sockets": [8], "batch": [1, 8], "context": [1024], "tokens": [2],
                            "fusion": ["layer"], "kernel_looping": [None]}, {}, model.hardware)
    chunks: list[sweep.Rows] = []
    sweep.run_sweep(model.source, grid, chunks.append, workers=1, model=model)
    (rows,) = chunks
    assert rows.columns["error"] == ["", ""]
    assert set(rows.columns["target"]) == {"dgx_h100"} and not any(rows.columns["kernel_looping"])


def test_a_sweep_axis_outside_the_run_limits_is_refused_before_any_work(capsys):
    assert main(["sweep", str(MODEL), "--tokens", "3000000", "-q"]) == 2
    assert "[E019]" in capsys.readouterr().err
