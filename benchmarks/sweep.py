"""How fast sweeps run, and in how much memory: points per second and peak memory of a sweep of
one compiled program (10,000 and 100,000 points, each target, and the SN40L with the model in 2
pipeline stages), evaluated as arrays and written as CSV; and, with --dask, a 1,000,000-point sweep on a local Dask cluster of two workers, streamed to
a CSV file by `dfdsl sweep --scheduler` with its progress bar.

Run: .venv/bin/python benchmarks/sweep.py [--points 10000,100000] [--dask [--kill-after S]] [--interrupt]
Each measurement runs in a process of its own, so its peak memory (the process's maximum resident
set, imports included) is its own. The goal for 100,000 points: at most 10 s and 1 GB. --interrupt
times how soon Ctrl-C stops a running sweep (the goal: within a second, no file left).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "examples" / "llama3_1_8b.dfl"


def grid_options(points: int) -> list[str]:
    """`dfdsl sweep` options for `points` points of one program: batch x context x HBM bandwidth."""
    contexts = 100
    bandwidths = 10
    batches = max(1, points // (contexts * bandwidths))
    return ["--batch", ",".join(str(b) for b in range(1, batches + 1)),
            "--context", ",".join(str(1024 + 64 * c) for c in range(contexts)),
            "--tokens", "128",
            "--set", "hbm_bandwidth=" + ",".join(f"{1.0e12 + 0.2e12 * i:g}" for i in range(bandwidths))]


PIPELINED = "+2stages"
"""A target name's suffix: the model file with `pipeline = 2` in its run."""


def one(points: int, target: str) -> None:
    """Runs in its own process: one sweep written as CSV to /dev/null, its figures printed."""
    from dfdsl.cli import main

    model = MODEL
    if target.endswith(PIPELINED):
        model = Path(tempfile.mkdtemp()) / MODEL.name
        model.write_text(MODEL.read_text(encoding="utf-8").replace("run decode {", "run decode { pipeline = 2;"),
                         encoding="utf-8")
    start = time.perf_counter()
    code = main(["sweep", str(model), "--target", target.removesuffix(PIPELINED), *grid_options(points),
                 "--workers", "1", "-q", "-o", os.devnull])
    seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    assert code == 0
    print(f"{target:<14} {points:>9,} points  {seconds:6.2f} s  {points / seconds:>10,.0f} points/s  "
          f"peak {peak_mb:,.0f} MB")


def dask_million(kill_after_s: float | None) -> None:
    """A local cluster of two worker processes, and `dfdsl sweep` over 1,000,000 points on it;
    with `kill_after_s`, one worker process is killed that long after the sweep starts (its nanny
    starts another), and every row must still arrive exactly once."""
    import csv
    import signal
    import threading

    from dask.distributed import Client, LocalCluster

    options = grid_options(1_000_000)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client, tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "million.csv"
        if kill_after_s is not None:
            victim = next(iter(client.run(os.getpid).values()))
            threading.Timer(kill_after_s, os.kill, (victim, signal.SIGKILL)).start()
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "dfdsl", "sweep", str(MODEL), *options, "--scheduler",
                        cluster.scheduler_address, "-o", str(out)], check=True)
        seconds = time.perf_counter() - start
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        with out.open() as f:
            points = {(r["batch"], r["context"], r["hbm_bandwidth"]) for r in csv.DictReader(f)}
        with out.open() as f:
            rows = sum(1 for _ in f) - 1
        killed = f", a worker killed at {kill_after_s:g} s" if kill_after_s is not None else ""
        print(f"dask, 2 workers{killed}: {rows:,} rows ({len(points):,} distinct points) in {seconds:.1f} s "
              f"({rows / seconds:,.0f} points/s), CSV {out.stat().st_size / 1e6:,.0f} MB, "
              f"client peak {peak_mb:,.0f} MB")


def interrupted(scheduler: str | None) -> None:
    """Seconds from Ctrl-C (SIGINT to the sweep's process group) to the sweep's exit, a few seconds
    into a sweep with minutes left, on local processes or on the cluster at `scheduler`."""
    import signal

    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "stopped.csv"
        where = ["--scheduler", scheduler] if scheduler else ["--workers", "2"]
        proc = subprocess.Popen([sys.executable, "-m", "dfdsl", "sweep", str(MODEL), "--sockets", "1,2,4,8,16",
                                 "--fusion", "none,block,layer", "--kernel-looping", "on,off",
                                 *grid_options(1_000_000), *where, "-q", "-o", str(out)],
                                stderr=subprocess.PIPE, text=True, start_new_session=True)
        time.sleep(4)
        os.killpg(proc.pid, signal.SIGINT)
        start = time.perf_counter()
        _, stderr = proc.communicate(timeout=60)
        left = [p.name for p in Path(folder).iterdir()]
        print(f"Ctrl-C, {'Dask' if scheduler else 'local processes'}: stopped in {time.perf_counter() - start:.2f} s, "
              f"exit {proc.returncode}, {stderr.strip()!r}, files left: {left or 'none'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", default="10000,100000")
    parser.add_argument("--dask", action="store_true", help="also the 1,000,000-point sweep on a local cluster")
    parser.add_argument("--interrupt", action="store_true", help="time Ctrl-C on a running sweep")
    parser.add_argument("--kill-after", type=float, metavar="S",
                        help="with --dask, kill one worker process S seconds into the sweep")
    parser.add_argument("--one", nargs=2, metavar=("POINTS", "TARGET"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        one(int(args.one[0]), args.one[1])
        return
    print(f"load average {os.getloadavg()[0]:.2f}, {os.cpu_count()} cores")
    if args.interrupt:
        from dask.distributed import LocalCluster

        interrupted(None)
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
            interrupted(cluster.scheduler_address)
        return
    for target in ("sn40l", "dgx-h100", f"sn40l{PIPELINED}"):
        for points in (int(p) for p in args.points.split(",")):
            subprocess.run([sys.executable, __file__, "--one", str(points), target], check=True)
    if args.dask:
        dask_million(args.kill_after)


if __name__ == "__main__":
    main()
