"""`dfdsl sweep`: every combination of run settings and hardware values, one CSV row each."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from dfdsl import sweep, sweep_view
from dfdsl.cli.options import add_lowering_options, add_split_options, overrides
from dfdsl.cli.output import UsageError, distinct_outputs, output_stream, write_output
from dfdsl.driver import Model, load_model
from dfdsl.elaborate import check_run_settings
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
                                   "compiled program and are timed together, as arrays.")
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
                   help="a hardware value to sweep, e.g. hbm_bandwidth=1.6e12,1.8e12 or p2p_latency_s=1e-6,3e-6 "
                        "(repeatable)")
    add_split_options(p)
    add_lowering_options(p, fusion=False)
    p.add_argument("--workers", type=int, metavar="N", help=f"local processes, 1 to {MAX_WORKERS:,} (default: all cores)")
    p.add_argument("--scheduler", metavar="ADDRESS", help="run on an existing Dask cluster (tcp://host:8786)")
    p.add_argument("--scheduler-timeout", type=float, metavar="S", default=30.0,
                   help="with --scheduler: seconds to wait for the scheduler to answer (default 30)")
    p.add_argument("-o", "--output", metavar="OUT.csv",
                   help="write the CSV here instead of standard output (OUT.parquet: Parquet, needs pyarrow)")
    p.add_argument("--plot", metavar="FILE.png",
                   help="also draw tokens/s per user against the axes (or, with --pareto, the front); needs "
                        "matplotlib")
    p.add_argument("--pareto", metavar="X,Y",
                   help="print the Pareto front of two figures, e.g. tokens_per_s,tokens_per_s_per_user, with "
                        "each point's configuration (on standard output; the CSV then needs -o)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary")
    p.set_defaults(func=main)


def _grid(args: argparse.Namespace, model: Model) -> sweep.Grid:
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
    return sweep.make_grid(axes, hardware_axes, model.hardware)


def _file_writer(stack: ExitStack, out: Path, columns: Sequence[str], inputs: Sequence[Path]) -> sweep.Sink:
    """A CSV (or, for `.parquet`, a Parquet) writer to `out`, renamed into place only when the sweep
    ends well: an interrupted or failed sweep leaves no file."""
    if out.suffix == ".parquet":
        writer = sweep.ParquetWriter(stack.enter_context(output_stream(out, inputs, binary=True)), columns)
        stack.callback(writer.close)
        return writer
    return sweep.CsvWriter(stack.enter_context(output_stream(out, inputs)), columns)


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
    given = {k: v for k, v in overrides(args).items() if k in ("target", "parallel")}
    model = load_model(path, given or None, args.hardware or "")
    try:
        grid = _grid(args, model)
        pareto = sweep_view.Pareto(args.pareto, grid) if args.pareto else None
        if args.plot:
            sweep_view.require_matplotlib()
    except sweep.SweepError as err:
        raise UsageError(str(err)) from None
    output = None if args.output in (None, "-") else args.output  # `-o -`: standard output, as elsewhere
    if output and Path(output).resolve() == path.resolve():
        raise UsageError(f"refusing to overwrite the input file {path}; choose another -o")
    distinct_outputs({"-o": output, "--plot": args.plot})
    counts = sweep_view.Counts()
    sinks: list[sweep.Sink] = [counts]
    if pareto is not None:
        sinks.append(pareto)
    drawing = sweep_view.PlotColumns(grid, pareto) if args.plot else None
    if drawing is not None:
        sinks.append(drawing)
    def every_sink(rows: sweep.Rows) -> None:
        for sink in sinks:
            sink(rows)

    columns = [TextColumn("sweep"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    with ExitStack() as stack:
        if args.scheduler:
            import dask
            import dask.distributed  # first: its defaults join dask's configuration when it is imported, and
            # `set` restores on exit what it found, so a first import inside it would lose them for good

            stack.enter_context(dask.config.set({"distributed.comm.timeouts.connect": f"{args.scheduler_timeout:g}s"}))
        if output:
            try:
                sinks.append(_file_writer(stack, Path(output), grid.columns, [path]))
            except sweep.SweepError as err:
                raise UsageError(str(err)) from None
        elif pareto is None:
            sinks.append(sweep.CsvWriter(sys.stdout, grid.columns))
        bar = stack.enter_context(Progress(*columns, transient=True, disable=args.quiet))
        task = bar.add_task("points", total=grid.size)
        sweep.run_sweep(model.source, grid, every_sink, workers=args.workers,
                        scheduler=args.scheduler, progress=lambda n: bar.advance(task, n), model=model)
    if pareto is not None:
        sys.stdout.write(pareto.render())
    if drawing is not None:
        try:
            write_output(Path(args.plot), drawing.png(path.stem), [path], option="--plot")
        except sweep.SweepError as err:
            raise UsageError(str(err)) from None
    if not args.quiet:
        sys.stderr.write(f"{counts.rows} points, {counts.failed} with an error (see the `error` column)"
                         + (f"; wrote {output}" if output else "") + "\n")
    return 0
