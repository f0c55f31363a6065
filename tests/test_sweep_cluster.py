"""Sweeps on a real local Dask cluster: a scheduler and two workers started here on 127.0.0.1 (as
processes of their own, in a folder of their own) and stopped by PID. The workers get the model's
content, so an edit between two sweeps and a sweep from another folder give the local numbers;
a worker killed in the middle of a sweep loses no row and repeats none."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from dfdsl import sweep
from dfdsl.driver import load_model

pytest.importorskip("dask.distributed")

ROOT = Path(__file__).parent.parent
LLAMA = (ROOT / "examples" / "llama3_1_8b.dfl").read_text()
AXES = {"sockets": [8], "batch": [1, 8], "context": [4096], "tokens": [4], "fusion": ["layer"],
        "kernel_looping": [None]}


def _wait_for(path: Path, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} did not appear")
        time.sleep(0.1)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """(scheduler address, worker processes); the workers run in a folder holding another `m.dfl`."""
    folder = tmp_path_factory.mktemp("cluster")
    (folder / "m.dfl").write_text(LLAMA.replace("layers = 32", "layers = 4"))
    scheduler_file = folder / "scheduler.json"
    dask = [sys.executable, "-m", "distributed.cli.dask_scheduler"]
    processes = [subprocess.Popen([*dask, "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                                   "--scheduler-file", str(scheduler_file)], cwd=folder,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        _wait_for(scheduler_file)
        workers = [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", "--scheduler-file",
                                     str(scheduler_file), "--nthreads", "1", "--no-nanny", "--no-dashboard",
                                     "--host", "127.0.0.1"], cwd=folder,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(2)]
        processes += workers
        from dask.distributed import Client

        with Client(scheduler_file=str(scheduler_file), timeout=60) as client:
            client.wait_for_workers(2, timeout=60)
            address = client.scheduler.address
        yield address, workers
    finally:
        for process in processes:  # stopped by the PIDs started here, nothing else
            if process.poll() is None:
                os.kill(process.pid, signal.SIGKILL)
            process.wait()


def _sweep(path: Path, hardware: str = "", **options) -> dict[str, np.ndarray]:
    """Every column of the sweep of `AXES` over `path`, chunks joined."""
    model = load_model(path, hardware=hardware)
    grid = sweep.make_grid(AXES, {}, model.hardware)
    chunks: list[sweep.Rows] = []
    sweep.run_sweep(model.source, grid, chunks.append, **options)
    return {c: np.concatenate([np.asarray(r.columns[c]) for r in chunks]) for c in grid.columns}


def test_an_edited_model_is_swept_as_edited(cluster, tmp_path):
    address, _ = cluster
    model = tmp_path / "m.dfl"
    model.write_text(LLAMA)
    first = _sweep(model, scheduler=address)
    model.write_text(LLAMA.replace("layers = 32", "layers = 16"))
    second = _sweep(model, scheduler=address)
    assert second["ms_per_token"].tolist() == _sweep(model, workers=1)["ms_per_token"].tolist()
    assert (second["ms_per_token"] < 0.7 * first["ms_per_token"]).all()


def test_an_edited_hardware_file_is_swept_as_edited(cluster, tmp_path):
    address, _ = cluster
    model = tmp_path / "m.dfl"
    model.write_text(LLAMA)
    hardware = tmp_path / "chip.toml"
    text = (ROOT / "dfdsl" / "hardware" / "sn40l.toml").read_text()
    hardware.write_text(text)
    first = _sweep(model, str(hardware), scheduler=address)
    hardware.write_text(text.replace("bandwidth_bytes_per_s = 1.6e12", "bandwidth_bytes_per_s = 3.2e12"))
    second = _sweep(model, str(hardware), scheduler=address)
    assert second["ms_per_token"].tolist() == _sweep(model, str(hardware), workers=1)["ms_per_token"].tolist()
    assert (second["ms_per_token"] < first["ms_per_token"]).all()


def test_a_sweep_from_another_folder_runs_its_own_model(cluster, tmp_path, monkeypatch):
    address, _ = cluster
    (tmp_path / "m.dfl").write_text(LLAMA)  # the workers' folder holds a 4-layer m.dfl
    monkeypatch.chdir(tmp_path)
    remote = _sweep(Path("m.dfl"), scheduler=address)
    assert remote["error"].tolist() == ["", ""]
    assert remote["ms_per_token"].tolist() == _sweep(Path("m.dfl"), workers=1)["ms_per_token"].tolist()


def test_a_worker_killed_mid_sweep_loses_no_row(cluster, tmp_path, monkeypatch):
    address, workers = cluster
    monkeypatch.setattr(sweep, "CHUNK_POINTS", 500)
    path = tmp_path / "m.dfl"
    path.write_text(LLAMA)
    model = load_model(path)
    axes = {**AXES, "batch": list(range(1, 101)), "context": list(range(1024, 1024 + 100 * 64, 64))}
    grid = sweep.make_grid(axes, {"p2p_latency_s": [1e-6, 2e-6, 3e-6, 4e-6]}, model.hardware)
    chunks: list[sweep.Rows] = []

    def sink(rows: sweep.Rows) -> None:
        chunks.append(rows)
        if len(chunks) == 3:
            os.kill(workers[0].pid, signal.SIGKILL)

    sweep.run_sweep(model.source, grid, sink, scheduler=address)
    assert workers[0].wait(timeout=10) == -signal.SIGKILL
    local: list[sweep.Rows] = []
    sweep.run_sweep(model.source, grid, local.append, workers=1, model=model)
    assert sum(len(r) for r in chunks) == grid.size == 40_000
    for column in ("batch", "context", "p2p_latency_s", "ms_per_token", "error"):
        joined = np.concatenate([np.asarray(r.columns[column]) for r in chunks])
        assert joined.tolist() == np.concatenate([np.asarray(r.columns[column]) for r in local]).tolist()
