"""Sweeps: one row per point of the product of the axes, in program order, as the interpreter gives
them; streamed to CSV, Parquet or a Pareto front; stopped by Ctrl-C without a partial file."""

from __future__ import annotations

import csv
import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from dfdsl import sweep, sweep_view
from dfdsl.cli import main
from dfdsl.driver import CompileOptions, Compiler, RunSettings, load_model, load_source
from dfdsl.hardware import HardwareError, load_hardware, with_value

ROOT = Path(__file__).parent.parent
MODEL = ROOT / "examples" / "llama3_1_8b.dfl"
SN40L = load_hardware("sn40l")


def axes(**overrides):
    base = {"sockets": [8], "batch": [1], "context": [1024], "tokens": [4], "fusion": ["layer"],
            "kernel_looping": [True]}
    base.update(overrides)
    return base


def rows_of(path: Path, grid: sweep.Grid, **options) -> list[dict]:
    model = load_model(path)
    out = io.StringIO()
    sweep.run_sweep(model.source, grid, sweep.CsvWriter(out, grid.columns), model=model, **options)
    return list(csv.DictReader(io.StringIO(out.getvalue())))


def test_the_grid_is_the_product_of_the_axes_program_by_program():
    grid = sweep.make_grid(axes(sockets=[8, 16], batch=[1, 4, 8]), {"hbm_bandwidth": [1.6e12, 1.8e12]}, SN40L)
    assert grid.size == 2 * 3 * 2
    chunks = grid.chunks(points=4)
    assert [(c.program, c.start, c.stop) for c in chunks] == [(0, 0, 4), (0, 4, 6), (1, 0, 4), (1, 4, 6)]
    points, hardware = grid.points(chunks[0])
    assert points.batch.tolist() == [1, 1, 4, 4] and hardware["hbm_bandwidth"].tolist() == [1.6e12, 1.8e12] * 2


def test_rows_follow_the_grid_and_are_what_the_interpreter_gives():
    grid = sweep.make_grid(axes(kernel_looping=[True, False], batch=[1, 64]), {"p2p_latency_s": [1e-6, 4e-6]},
                           SN40L)
    rows = rows_of(MODEL, grid, workers=1)
    assert [(r["kernel_looping"], r["batch"], r["p2p_latency_s"]) for r in rows] == [
        (looping, batch, latency) for looping in ("True", "False") for batch in ("1", "64")
        for latency in ("1e-06", "4e-06")]
    assert all(r["error"] == "" for r in rows)
    model = load_model(MODEL)
    for r in rows:
        hw = with_value(model.hardware, "assumptions.p2p_latency_s", float(r["p2p_latency_s"]))
        settings = RunSettings(int(r["batch"]), 1024, 4, 8)
        report = Compiler().simulate(model, settings, CompileOptions(kernel_looping=r["kernel_looping"] == "True"),
                                     hardware=hw).report
        assert float(r["ms_per_token"]) == pytest.approx(report["ms_per_token"], rel=1e-9)
        assert int(r["bytes_per_token"]) == report["bytes_per_token"]
        assert float(r["collective_ms"]) == pytest.approx(report["breakdown_ms"]["collective"], rel=1e-9, abs=1e-15)


def test_a_point_that_does_not_fit_is_a_row_with_its_error_and_no_figures():
    rows = rows_of(ROOT / "examples" / "llama3_1_405b.dfl", sweep.make_grid(axes(sockets=[8]), {}, SN40L), workers=1)
    assert "each of its 8 sockets must hold 105.2 GB there" in rows[0]["error"]
    assert rows[0]["ms_per_token"] == "" and rows[0]["model"] == ""


def test_hardware_keys_are_named_and_checked():
    with pytest.raises(sweep.SweepError, match="unknown hardware key `hbm_bandwith`"):
        sweep.make_grid(axes(), {"hbm_bandwith": [1.0]}, SN40L)
    with pytest.raises(HardwareError, match="--set p2p_bandwidth = nan is not a number"):
        sweep.make_grid(axes(), {"p2p_bandwidth": [float("nan")]}, SN40L)
    with pytest.raises(sweep.SweepError, match="both set"):
        sweep.make_grid(axes(), {"p2p_bandwidth": [1.0], "p2p_bandwidth_bytes_per_s": [2.0]}, SN40L)
    assert sweep.hardware_path(SN40L, "memory.hbm.bandwidth_bytes_per_s") == "hbm.bandwidth_bytes_per_s"
    assert sweep.hardware_path(SN40L, "launch_sync_hardware_s") == "assumptions.launch_sync_hardware_s"


def test_cli_writes_one_csv_row_per_point(tmp_path):
    out = tmp_path / "sweep.csv"
    code = main(["sweep", str(MODEL), "--sockets", "8,16", "--batch", "1,2", "--tokens", "4",
                 "--context", "512", "--workers", "1", "-q", "-o", str(out)])
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert len(rows) == 4
    assert {(r["sockets"], r["batch"]) for r in rows} == {("8", "1"), ("8", "2"), ("16", "1"), ("16", "2")}
    assert list(rows[0]) == list(sweep.make_grid(axes(), {}, SN40L).columns)


def test_cli_rejects_bad_axes(capsys):
    assert main(["sweep", str(MODEL), "--fusion", "layr"]) == 2
    assert "--fusion takes none,block,layer" in capsys.readouterr().err
    assert main(["sweep", str(MODEL), "--pareto", "tokens_per_s"]) == 2
    assert "--pareto 'tokens_per_s': name two different figures" in capsys.readouterr().err


def test_a_process_pool_gives_the_rows_of_one_process(tmp_path, monkeypatch):
    monkeypatch.setattr(sweep, "CHUNK_POINTS", 3)
    grid = sweep.make_grid(axes(batch=[1, 2, 4, 8], context=[512, 4096]), {}, SN40L)
    assert rows_of(MODEL, grid, workers=2) == rows_of(MODEL, grid, workers=1)


def test_a_local_dask_cluster_runs_the_sweep():
    distributed = pytest.importorskip("dask.distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=":0") as cluster:
        grid = sweep.make_grid(axes(batch=[1, 2]), {}, SN40L)
        rows = rows_of(MODEL, grid, scheduler=cluster.scheduler_address)
    assert [r["batch"] for r in rows] == ["1", "2"]
    assert all(r["error"] == "" for r in rows)


def test_the_pareto_front_keeps_what_nothing_beats():
    x = np.array([1.0, 2.0, 3.0, 2.0, 0.5, 3.0])
    y = np.array([5.0, 4.0, 1.0, 3.0, 6.0, 1.0])
    assert sorted(sweep_view.front(x, y).tolist()) == [0, 1, 2, 4]


def test_cli_prints_the_pareto_front(tmp_path, capsys):
    out = tmp_path / "s.csv"
    assert main(["sweep", str(MODEL), "--batch", "1,8,32,128", "--sockets", "8,16", "--tokens", "2",
                 "--workers", "1", "-q", "-o", str(out), "--pareto", "tokens_per_s,tokens_per_s_per_user"]) == 0
    printed = capsys.readouterr().out
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    front = [r for r in rows if not any(
        float(o["tokens_per_s"]) >= float(r["tokens_per_s"]) and float(o["tokens_per_s_per_user"])
        >= float(r["tokens_per_s_per_user"]) and o is not r for o in rows)]
    assert f"({len(front)} points)" in printed
    for r in front:
        assert sweep_view.figure_text(float(r["tokens_per_s"])) in printed


@pytest.mark.parametrize("many", [False, True])
def test_cli_plot_is_a_png(tmp_path, many):
    pytest.importorskip("matplotlib")
    plot = tmp_path / "sweep.png"
    extra = ["--sockets", "1,2,4,8", "--context", "256,1024,4096", "--set", "hbm_bandwidth=1e12,2e12"] if many else []
    code = main(["sweep", str(MODEL), "--batch", "1,2", "--tokens", "2", "--context", "256", *extra,
                 "--workers", "1", "-q", "-o", str(tmp_path / "s.csv"), "--plot", str(plot)])
    assert code == 0 and plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_axes_carry_units():
    assert sweep_view.unit("hbm.bandwidth_bytes_per_s", [1.6e12]) == ("hbm bandwidth (TB/s)", 1e-12)
    assert sweep_view.unit("assumptions.p2p_latency_s", [1.5e-6]) == ("p2p latency (µs)", 1e6)
    assert sweep_view.unit("chip.peak_flops_per_s", [6e14])[0] == "peak (TFLOP/s)"


def test_parquet_rows_are_the_csv_rows(tmp_path):
    parquet = pytest.importorskip("pyarrow.parquet")
    args = ["sweep", str(MODEL), "--batch", "1,2,4", "--tokens", "2", "--workers", "1", "-q"]
    assert main([*args, "-o", str(tmp_path / "s.parquet")]) == 0
    assert main([*args, "-o", str(tmp_path / "s.csv")]) == 0
    table = parquet.read_table(tmp_path / "s.parquet").to_pylist()
    rows = list(csv.DictReader(io.StringIO((tmp_path / "s.csv").read_text())))
    assert [str(t["ms_per_token"]) for t in table] == [r["ms_per_token"] for r in rows]


def test_ctrl_c_stops_a_sweep_at_once_and_leaves_no_file(tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    out = folder / "big.csv"
    # Many programs (each compiled on its own) keep the sweep busy far longer than the test waits.
    with open(tmp_path / "stderr.txt", "w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dfdsl", "sweep", str(MODEL), "--sockets", "1,2,4,8,16", "--fusion",
             "none,block,layer", "--kernel-looping", "on,off", "--batch", ",".join(str(b) for b in range(1, 200)),
             "--workers", "2", "-q", "-o", str(out)], stderr=stderr, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not list(folder.glob(".big.csv.*.tmp")) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.0)  # well into the sweep: workers started and compiling
        assert proc.poll() is None, (tmp_path / "stderr.txt").read_text()
        os.killpg(proc.pid, signal.SIGINT)
        # The sweep has minutes of work left; how soon it stops is measured by benchmarks/sweep.py.
        proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, (tmp_path / "stderr.txt").read_text()
    assert list(folder.iterdir()) == []
    assert (tmp_path / "stderr.txt").read_text() == "dfdsl: interrupted\n"


def test_a_model_travels_as_the_text_of_every_file_it_imports(tmp_path):
    folder = tmp_path / "a"
    (folder / "blocks").mkdir(parents=True)
    (folder / "blocks" / "sizes.dfl").write_text("const n_layers = 16\n")
    text = MODEL.read_text().replace("import std.llama", "import std.llama\nimport blocks.sizes")
    (folder / "m.dfl").write_text(text.replace("layers = 32", "layers = n_layers"))
    model = load_model(folder / "m.dfl")
    names = [name for name, _ in model.source.files]
    assert names == sorted(["m.dfl", "blocks/sizes.dfl", "<bundled>/llama.dfl"])
    shipped = load_source(model.source)
    assert shipped.key == model.key and shipped.path != model.path
    assert shipped.resolved.name == model.resolved.name
    (folder / "blocks" / "sizes.dfl").write_text("const n_layers = 8\n")
    assert load_model(folder / "m.dfl").key != model.key  # an edited import is another model


def test_dash_is_standard_output(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["sweep", str(MODEL), "--batch", "1,2", "--tokens", "2", "--workers", "1", "-q", "-o", "-"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 3 and list(tmp_path.iterdir()) == []
