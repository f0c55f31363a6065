"""Sweeps: one row per point of the product of the axes, shared compiles, hardware axes, Dask."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from dfdsl import sweep
from dfdsl.cli import main

ROOT = Path(__file__).parent.parent
MODEL = ROOT / "examples" / "llama3_1_8b.dfl"


def axes(**overrides):
    base = {"sockets": [8], "batch": [1], "context": [1024], "tokens": [4], "fusion": ["layer"],
            "kernel_looping": [True]}
    base.update(overrides)
    return base


def test_points_are_the_product_of_the_axes():
    points = sweep.make_points(axes(sockets=[8, 16], batch=[1, 4, 8]), {"hbm_bandwidth": [1.6e12, 1.8e12]})
    assert len(points) == 2 * 3 * 2
    assert len(set(points)) == len(points)


def test_rows_follow_the_points_and_hardware_values_change_the_result():
    points = sweep.make_points(axes(kernel_looping=[True, False]), {"hbm_bandwidth": [1.6e12, 3.2e12]})
    rows = sweep.run_sweep(MODEL, points, workers=1)
    assert [(r["kernel_looping"], r["hbm_bandwidth"]) for r in rows] == [
        (True, 1.6e12), (True, 3.2e12), (False, 1.6e12), (False, 3.2e12)]
    assert all(r["error"] == "" for r in rows)
    looped_slow, looped_fast, unlooped_slow, _ = (r["ms_per_token"] for r in rows)
    assert looped_fast < looped_slow < unlooped_slow
    assert sum(rows[0][f"{k}_ms"] for k in ("stream", "compute", "sync", "fill_drain", "collective", "host")) \
        == pytest.approx(rows[0]["ms_per_token"])


def test_a_point_that_does_not_fit_is_a_row_with_its_error():
    rows = sweep.run_sweep(ROOT / "examples" / "llama3_1_405b.dfl",
                           sweep.make_points(axes(sockets=[8]), {}), workers=1)
    assert "each of its 8 sockets must hold 105.2 GB there" in rows[0]["error"]
    assert "use 16, 32, 64 or 128 sockets" in rows[0]["error"]


def test_unknown_hardware_keys_are_named():
    with pytest.raises(sweep.SweepError, match="unknown hardware key `hbm_bandwith`"):
        sweep.run_sweep(MODEL, sweep.make_points(axes(), {"hbm_bandwith": [1.0]}), workers=1)[0]["error"] \
            and sweep.hardware_path(__import__("dfdsl.hardware", fromlist=["x"]).load_hardware("sn40l"),
                                    "hbm_bandwith")


def test_cli_writes_one_csv_row_per_point(tmp_path, capsys):
    out = tmp_path / "sweep.csv"
    code = main(["sweep", str(MODEL), "--sockets", "8,16", "--batch", "1,2", "--tokens", "4",
                 "--context", "512", "--workers", "1", "-q", "-o", str(out)])
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert len(rows) == 4
    assert {(r["sockets"], r["batch"]) for r in rows} == {("8", "1"), ("8", "2"), ("16", "1"), ("16", "2")}


def test_cli_rejects_bad_axes(capsys):
    assert main(["sweep", str(MODEL), "--fusion", "layr"]) == 2
    assert "--fusion takes none,block,layer" in capsys.readouterr().err


def test_a_local_dask_cluster_runs_the_sweep():
    distributed = pytest.importorskip("dask.distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster:
        points = sweep.make_points(axes(batch=[1, 2]), {})
        rows = sweep.run_sweep(MODEL, points, scheduler=cluster.scheduler_address)
    assert [r["batch"] for r in rows] == [1, 2]
    assert all(r["error"] == "" for r in rows)


def test_cli_plot_is_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    plot = tmp_path / "sweep.png"
    code = main(["sweep", str(MODEL), "--batch", "1,2", "--tokens", "2", "--context", "256",
                 "--workers", "1", "-q", "-o", str(tmp_path / "s.csv"), "--plot", str(plot)])
    assert code == 0 and plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
