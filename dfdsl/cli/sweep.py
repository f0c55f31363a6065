"""`dfdsl sweep`: every combination of run settings and hardware values, one CSV row each."""

from __future__ import annotations

import argparse
import contextlib
import itertools
import re
import sys
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from dfdsl import sweep
from dfdsl.cli.options import add_lowering_options, overrides
from dfdsl.cli.output import UsageError, distinct_outputs, emit, write_output
from dfdsl.driver import load_model
from dfdsl.elaborate import check_run_settings
from dfdsl.hardware import GpuHardware, Hardware, check_relations, check_value, format_value
from dfdsl.lowering.pipeline import FUSION_MODES

MAX_WORKERS = 1024
SCHEDULER_ADDRESS = re.compile(r"^(?:(?:tcp|tls|ws|wss|ucx)://)?(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(\d{1,5})$")
"""`tcp://host:8786` and the other forms Dask connects to: a protocol (tcp if none), a host name or
address (IPv6 in brackets), a port."""


def add_parser(sub) -> None:
    p = sub.add_parser("sweep", help="run every combination of settings and write a CSV",
                       description="Simulate every combination of the given axes (comma-separated values; "
                                   "an axis not given takes the file's run value) and write one CSV row per "
                                   "point. Points that differ only in run or hardware values share one "
                                   "compiled program.")
    p.add_argument("file", metavar="MODEL.dfl")
    p.add_argument("--sockets", metavar="N,N", help="socket counts, e.g. 8,16")
    p.add_argument("--batch", metavar="B,B", help="batch sizes, e.g. 1,8,32")
    p.add_argument("--context", metavar="C,C", help="context lengths, e.g. 4096,32768")
    p.add_argument("--tokens", metavar="T,T", help="tokens to generate")
    p.add_argument("--target", metavar="NAME", help="machine to run on, as in `dfdsl run`")
    p.add_argument("--fusion", metavar="MODES", default="layer", help="fusion modes: none,block,layer (default layer)")
    p.add_argument("--kernel-looping", metavar="on,off",
                   help="kernel looping on, off, or on,off (default: the target's, on wherever it can loop)")
    p.add_argument("--set", metavar="KEY=V,V", action="append",
                   help="a hardware value to sweep, e.g. hbm_bandwidth=1.6e12,1.8e12 (repeatable)")
    add_lowering_options(p, fusion=False)
    p.add_argument("--workers", type=int, metavar="N", help=f"local processes, 1 to {MAX_WORKERS:,} (default: all cores)")
    p.add_argument("--scheduler", metavar="ADDRESS", help="run on an existing Dask cluster (tcp://host:8786)")
    p.add_argument("--scheduler-timeout", type=float, metavar="S", default=30.0,
                   help="with --scheduler: seconds to wait for the scheduler to answer (default 30)")
    p.add_argument("-o", "--output", metavar="OUT.csv", help="write the CSV here instead of standard output")
    p.add_argument("--plot", metavar="FILE.png",
                   help="also draw tokens/s per user against the axis with the most values (needs matplotlib)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary")
    p.set_defaults(func=main)


def _points(args: argparse.Namespace, path: Path) -> list[sweep.Point]:
    target = overrides(args).get("target")
    model = load_model(path, {"target": target} if target else None, args.hardware or "")
    run = model.settings
    looping = args.kernel_looping.split(",") if args.kernel_looping else []
    bad = [v for v in looping if v.strip() not in ("on", "off")]
    axes = {
        "sockets": sweep.parse_values(args.sockets or str(run.sockets), int, "sockets"),
        "batch": sweep.parse_values(args.batch or str(run.batch), int, "batch"),
        "context": sweep.parse_values(args.context or str(run.context), int, "context"),
        "tokens": sweep.parse_values(args.tokens or str(run.tokens), int, "tokens"),
        "fusion": sweep.parse_values(args.fusion, str, "fusion"),
        "kernel_looping": [v.strip() == "on" for v in looping] or [None],
    }
    for key in ("sockets", "batch", "context", "tokens"):
        for value in axes[key]:
            check_run_settings({key: value})  # the limits `dfdsl run` enforces, before any work
    bad += [f for f in axes["fusion"] if f not in FUSION_MODES]
    if bad:
        raise sweep.SweepError(f"unknown value(s) {', '.join(bad)}: --fusion takes none,block,layer and "
                               "--kernel-looping on,off")
    hardware_axes = {}
    for item in args.set or []:
        key, eq, values = item.partition("=")
        if not eq:
            raise sweep.SweepError(f"--set {item!r}: write KEY=V1,V2")
        hardware_axes[key.strip()] = sweep.parse_values(values, float, "set")
    check_hardware_axes(model.hardware, hardware_axes)
    return sweep.make_points(axes, hardware_axes)


def check_hardware_axes(hw: Hardware | GpuHardware, hardware_axes: dict[str, list[float]]) -> None:
    """Each `--set` value through the checks a hardware file's value gets (finite, in its physical
    range), and each combination of them through the relations between values, before any work."""
    paths = {key: sweep.hardware_path(hw, key) for key in hardware_axes}
    for key, values in hardware_axes.items():
        for value in values:
            check_value(f"--set {key}", paths[key].rsplit(".", 1)[-1], value, exact_type=False)
    for combination in itertools.product(*hardware_axes.values()):
        changed = hw
        for (key, path), value in zip(paths.items(), combination):
            changed = sweep.with_value(changed, path, value)
        check_relations(changed, "--set " + " --set ".join(f"{key}={format_value(value)}" for key, value in
                                                           zip(paths, combination)))


def check_distribution(args: argparse.Namespace) -> None:
    """`--workers`, `--scheduler` and its timeout make sense, before anything is loaded or run."""
    if args.workers is not None and not 1 <= args.workers <= MAX_WORKERS:
        raise UsageError(f"--workers {args.workers}: give a number of processes from 1 to {MAX_WORKERS:,}")
    if args.scheduler is not None:
        address = SCHEDULER_ADDRESS.match(args.scheduler)
        if address is None or not 1 <= int(address.group(1)) <= 65535:
            raise UsageError(f"--scheduler {args.scheduler}: not a scheduler address; write tcp://HOST:PORT "
                             "(PORT from 1 to 65535), as `dask scheduler` prints it")
    if not 0 < args.scheduler_timeout <= 3600:
        raise UsageError(f"--scheduler-timeout {args.scheduler_timeout:g}: give seconds, more than 0 and at most 3600")


def main(args: argparse.Namespace) -> int:
    path = Path(args.file)
    check_distribution(args)
    try:
        points = _points(args, path)
    except sweep.SweepError as err:
        raise UsageError(str(err)) from None
    if args.output and Path(args.output).resolve() == path.resolve():
        raise UsageError(f"refusing to overwrite the input file {path}; choose another -o")
    distinct_outputs({"-o": args.output, "--plot": args.plot})
    columns = [TextColumn("sweep"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    waiting: contextlib.AbstractContextManager = contextlib.nullcontext()
    if args.scheduler:
        import dask
        import dask.distributed  # first: its defaults join dask's configuration when it is imported, and
        # `set` restores on exit what it found, so a first import inside it would lose them for good

        waiting = dask.config.set({"distributed.comm.timeouts.connect": f"{args.scheduler_timeout:g}s"})
    with waiting, Progress(*columns, transient=True, disable=args.quiet) as bar:
        task = bar.add_task("points", total=len(points))
        rows = sweep.run_sweep(path, points, hardware_file=args.hardware or "",
                               target=str(overrides(args).get("target", "")), workers=args.workers,
                               scheduler=args.scheduler, progress=lambda n: bar.advance(task, n))
    failed = sum(1 for r in rows if r["error"])
    emit(sweep.to_csv(rows), args.output, [path])
    if args.plot:
        try:
            write_output(Path(args.plot), sweep.plot(rows, path.stem), [path])
        except sweep.SweepError as err:
            raise UsageError(str(err)) from None
    if not args.quiet:
        sys.stderr.write(f"{len(rows)} points, {failed} with an error (see the `error` column)"
                         + (f"; wrote {args.output}" if args.output else "") + "\n")
    return 0
