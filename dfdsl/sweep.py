"""Design-space sweeps: every combination of run settings and hardware values, one row each.

A sweep is a `Grid`, the product of its axes, enumerated program by program (sockets, fusion and
kernel looping decide the compiled program), then by batch, context, tokens and hardware values.
It runs in chunks of consecutive points of one program, each evaluated as arrays by the driver
(`Compiler.evaluate`: one compile per distinct program, the array timing model at every point),
here, on local processes (`workers`) or on a Dask cluster (`scheduler`). Every worker gets the
model's content (`ModelSource`), never a path, and keeps what it compiled for its next chunks.
Chunks come back in order and go straight to a sink (the CSV or Parquet writer, the Pareto front,
a plot's columns), a few chunks in flight at a time: a sweep never holds all its rows, and a chunk
lost with a worker is computed again, so every row arrives exactly once.

`--set KEY=V1,V2` changes the simulator's hardware (dotted names of the target file such as
`memory.hbm.bandwidth_bytes_per_s`, a field's own name such as `p2p_latency_s`, or the short names
in `ALIASES`); capacities used for memory placement stay those of the target file.
"""

from __future__ import annotations

import csv
import itertools
import math
import os
import signal
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs
import numpy as np
from numpy.typing import NDArray

from dfdsl.diagnostics import DfslError
from dfdsl.driver import CompileOptions, Compiler, Model, ModelSource, load_source
from dfdsl.errors import SchedulerUnreachable
from dfdsl.hardware import GpuHardware, Hardware, check_relations, check_value, format_value, with_value
from dfdsl.report import JSON_KEYS
from dfdsl.sim.timing import CATEGORIES
from dfdsl.sim.vectorized import Points

AXES = ("sockets", "batch", "context", "tokens", "fusion", "kernel_looping")
PROGRAM_AXES = ("sockets", "fusion", "kernel_looping")
"""The axes that decide the compiled program: rows come program by program."""
ALIASES = {
    "hbm_bandwidth": "memory.hbm.bandwidth_bytes_per_s",
    "ddr_bandwidth": "memory.ddr.bandwidth_bytes_per_s",
    "launch_sync": "assumptions.launch_sync_hardware_s",
    "stream_efficiency": "assumptions.stream_efficiency",
    "p2p_bandwidth": "assumptions.p2p_bandwidth_bytes_per_s",
    "p2p_latency": "assumptions.p2p_latency_s",
    "rack_bandwidth": "assumptions.p2p_rack_bandwidth_bytes_per_s",
    "rack_latency": "assumptions.p2p_rack_latency_s",
    "peak_flops": "chip.peak_flops_per_s",
}
"""Short names for the hardware values people sweep most."""
FIXED = frozenset(("assumptions.p2p_node_sockets",))
"""Hardware numbers that shape the model rather than scale it: not swept."""
FIGURES = (*(k for k in JSON_KEYS if k not in AXES and k != "breakdown_ms"), *(f"{c}_ms" for c in CATEGORIES))
"""The CSV's columns after the axes and hardware values, before `error` (a contract)."""
CHUNK_POINTS = 20_000
"""Points per task: enough for numpy to pay off, few enough to spread over workers and to keep
a few chunks in flight in little memory."""
IN_FLIGHT_PER_WORKER = 2
"""Chunks queued per worker: one running, one ready to start, so no worker waits for the client."""


class SweepError(ValueError):
    """A bad axis or hardware key; the CLI prints it with exit code 2."""


# -- the grid ---------------------------------------------------------------------------------


def _numbers(node: Any, prefix: str = "") -> dict[str, str]:
    """Every number of a hardware record: its own name and dotted path -> dotted path."""
    found: dict[str, str] = {}
    for field in attrs.fields(type(node)):
        value = getattr(node, field.name)
        path = f"{prefix}{field.name}"
        if attrs.has(type(value)):
            found.update(_numbers(value, f"{path}."))
        elif isinstance(value, int | float) and not isinstance(value, bool):
            found[path] = path
            found.setdefault(field.name, path)
    return found


def hardware_numbers(hw: Hardware | GpuHardware) -> dict[str, str]:
    """Every number of a hardware record, by its attribute path and by its own name (the first
    section's with that name), to its attribute path."""
    return _numbers(hw)


def hardware_path(hw: Hardware | GpuHardware, key: str) -> str:
    """The attribute path of a hardware number (`hbm.bandwidth_bytes_per_s`) for a key a person
    types: a short name of `ALIASES`, a dotted key of the target file (`memory.hbm.x`), or the
    name of a number that only one section has (`p2p_latency_s`)."""
    dotted = ALIASES.get(key, key)
    dotted = dotted.removeprefix("memory.")
    numbers = _numbers(hw)
    if dotted not in numbers:
        raise SweepError(f"unknown hardware key `{key}`; use a key of the target file such as "
                         "memory.hbm.bandwidth_bytes_per_s, a number's own name such as p2p_latency_s, or one "
                         "of " + ", ".join(ALIASES))
    if numbers[dotted] in FIXED:
        raise SweepError(f"`{key}` decides the topology the collectives run on and cannot be swept; write a "
                         "hardware file for each value and run each with --hardware")
    return numbers[dotted]


def check_hardware_axes(hw: Hardware | GpuHardware, hardware_axes: Mapping[str, Sequence[float]],
                        option: str = "--set") -> None:
    """Each swept hardware value (by key as given) through the checks a hardware file's value gets
    (finite, in its physical range: `dfdsl.hardware`), and each combination of them through the
    relations between values, before any work; `HardwareError` naming `option` otherwise."""
    paths = {key: hardware_path(hw, key) for key in hardware_axes}
    for key, values in hardware_axes.items():
        for value in values:
            check_value(f"{option} {key}", paths[key].rsplit(".", 1)[-1], value, exact_type=False)
    for combination in itertools.product(*hardware_axes.values()):
        changed = hw
        for path, value in zip(paths.values(), combination):
            changed = with_value(changed, path, value)
        check_relations(changed, " ".join(f"{option} {key}={format_value(value)}"
                                          for key, value in zip(paths, combination)))


def parse_values(text: str, kind: Callable[[str], object], name: str) -> list:
    try:
        values = [kind(v.strip()) for v in text.split(",") if v.strip()]
    except ValueError:
        raise SweepError(f"--{name.replace('_', '-')}: cannot read {text!r}; give comma-separated values") from None
    if not values:
        raise SweepError(f"--{name.replace('_', '-')} needs at least one value")
    return values


@attrs.frozen
class Chunk:
    """Points `start` to `stop` (exclusive) of the program at `program` in the grid's programs."""

    program: int
    start: int
    stop: int


@attrs.frozen
class Grid:
    """Every combination of `axes` (each of `AXES` with its values) and hardware values (`hardware`:
    key as given, attribute path, values; in key order)."""

    axes: Mapping[str, Sequence[Any]]
    hardware: tuple[tuple[str, str, tuple[float, ...]], ...] = ()

    @property
    def programs(self) -> list[tuple[Any, ...]]:
        return list(itertools.product(*(self.axes[a] for a in PROGRAM_AXES)))

    @property
    def shape(self) -> tuple[int, ...]:
        """Of one program's points: batch, context, tokens, then each hardware value."""
        return (*(len(self.axes[a]) for a in ("batch", "context", "tokens")), *(len(v) for _, _, v in self.hardware))

    @property
    def size(self) -> int:
        return len(self.programs) * math.prod(self.shape)

    @property
    def columns(self) -> tuple[str, ...]:
        return (*AXES, *(key for key, _, _ in self.hardware), *FIGURES, "error")

    def chunks(self, points: int | None = None) -> list[Chunk]:
        points = points or CHUNK_POINTS
        per_program = math.prod(self.shape)
        return [Chunk(p, start, min(start + points, per_program))
                for p in range(len(self.programs)) for start in range(0, per_program, points)]

    def points(self, chunk: Chunk) -> tuple[Points, dict[str, NDArray[np.float64]]]:
        """The run sizes and hardware values (by key) of a chunk's points."""
        index = np.unravel_index(np.arange(chunk.start, chunk.stop), self.shape)
        sizes = [np.asarray(self.axes[a], dtype=np.int64)[i] for a, i in zip(("batch", "context", "tokens"), index)]
        hardware = {key: np.asarray(values, dtype=np.float64)[i]
                    for (key, _, values), i in zip(self.hardware, index[3:])}
        return Points(*sizes), hardware


def make_grid(axes: Mapping[str, Sequence[Any]], hardware_axes: Mapping[str, Sequence[float]],
              hw: Hardware | GpuHardware) -> Grid:
    """The grid of `axes` and of hardware values by key, the keys checked against `hw`."""
    hardware = []
    paths: dict[str, str] = {}
    for key in sorted(hardware_axes):
        path = hardware_path(hw, key)
        if path in paths:
            raise SweepError(f"--set {paths[path]} and --set {key} both set {path}")
        paths[path] = key
        hardware.append((key, path, tuple(float(v) for v in hardware_axes[key])))
    check_hardware_axes(hw, hardware_axes)
    return Grid({a: tuple(axes[a]) for a in AXES}, tuple(hardware))


# -- evaluation (in worker processes) ---------------------------------------------------------


_COMPILER = Compiler()
_MODELS: OrderedDict[str, Model] = OrderedDict()
"""Per worker process: the compiler that keeps compiled stages, and the models it was sent, by
content (an edited file is a new key, so it is never confused with the old one)."""
_KEEP_MODELS = 8


def _model(source: ModelSource) -> Model:
    if source.key not in _MODELS:
        _MODELS[source.key] = load_source(source)
        while len(_MODELS) > _KEEP_MODELS:
            _MODELS.popitem(last=False)
    return _MODELS[source.key]


@attrs.frozen
class Rows:
    """A chunk's rows as columns (numpy arrays or lists, by name); `ok` marks the rows that ran."""

    columns: dict[str, Any]
    ok: NDArray[np.bool_]

    def __len__(self) -> int:
        return len(self.ok)


def _message(err: Exception) -> str:
    message = err.render() if isinstance(err, DfslError) else str(err)
    return " ".join(message.split())


def evaluate_chunk(source: ModelSource, grid: Grid, chunk: Chunk) -> Rows:
    """One chunk's rows: its points run as arrays on this process's compiler."""
    model = _model(source)
    sockets, fusion, looping = grid.programs[chunk.program]
    points, hardware = grid.points(chunk)
    swept = {path: hardware[key] for key, path, _ in grid.hardware}
    options = CompileOptions(fusion=fusion, kernel_looping=looping, hardware=model.hardware_option)
    evaluation = _COMPILER.evaluate(model, options, sockets, points, swept)
    n = chunk.stop - chunk.start
    columns: dict[str, Any] = {
        "sockets": np.full(n, sockets), "batch": points.batch, "context": points.context, "tokens": points.tokens,
        "fusion": [fusion] * n, "kernel_looping": [evaluation.kernel_looping] * n, **hardware,
        "model": [evaluation.model] * n, "target": [evaluation.target] * n,
    }
    ok = np.array([e is None for e in evaluation.errors], dtype=bool)
    for name in FIGURES:
        if name not in columns:
            columns[name] = evaluation.figures.get(name, np.zeros(n))
    messages: dict[int, str] = {}  # many points share one error: render it once
    for e in evaluation.errors:
        if e is not None and id(e) not in messages:
            messages[id(e)] = _message(e)
    columns["error"] = ["" if e is None else messages[id(e)] for e in evaluation.errors]
    return Rows(columns, ok)


# -- scheduling -------------------------------------------------------------------------------

Sink = Callable[[Rows], None]


def run_sweep(source: ModelSource, grid: Grid, sink: Sink, *, workers: int | None = None,
              scheduler: str | None = None, progress: Callable[[int], None] | None = None,
              model: Model | None = None) -> None:
    """Evaluates every chunk of `grid` and gives each one's rows to `sink`, in the grid's order.
    `model` (the source's, already loaded here) saves loading it again in this process."""
    if model is not None:
        _MODELS[source.key] = model
    chunks = grid.chunks()
    advance = progress or (lambda n: None)
    if scheduler:
        _on_dask(scheduler, source, grid, chunks, sink, advance)
    elif (workers or os.cpu_count() or 1) == 1 or len(chunks) == 1:
        for chunk in chunks:
            rows = evaluate_chunk(source, grid, chunk)
            sink(rows)
            advance(len(rows))
    else:
        _on_processes(workers or os.cpu_count() or 1, source, grid, chunks, sink, advance)


def _in_order(submit: Callable[[Chunk], Any], chunks: Sequence[Chunk], window: int, sink: Sink,
              advance: Callable[[int], None], pending: deque) -> None:
    """Keeps `window` chunks in flight (their futures in `pending`, oldest first) and hands their
    rows to `sink` in order; the caller cancels what is still pending if this raises."""
    upcoming = iter(chunks)
    for chunk in itertools.islice(upcoming, window):
        pending.append(submit(chunk))
    while pending:
        rows = pending[0].result()
        pending.popleft()
        for chunk in itertools.islice(upcoming, 1):
            pending.append(submit(chunk))
        sink(rows)
        advance(len(rows))


def _ignore_interrupts() -> None:
    """Worker processes leave Ctrl-C to the sweep, which stops them. A worker starts with Ctrl-C
    blocked (`_submit`), so one that arrives while it starts waits until now, to be ignored."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def _submit(pool: Any, *args: Any) -> Any:
    """`pool.submit`, with Ctrl-C blocked meanwhile: a worker process the pool starts now inherits
    the block, and this process gets a Ctrl-C that came meanwhile as soon as it is unblocked."""
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        return pool.submit(*args)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)


def _on_processes(workers: int, source: ModelSource, grid: Grid, chunks: Sequence[Chunk], sink: Sink,
                  advance: Callable[[int], None]) -> None:
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    pool = ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"), initializer=_ignore_interrupts)
    pending: deque = deque()
    try:
        _in_order(lambda c: _submit(pool, evaluate_chunk, source, grid, c), chunks,
                  IN_FLIGHT_PER_WORKER * workers, sink, advance, pending)
    finally:
        if pending:
            # Interrupted or failed: stop the workers at once rather than let them finish their queue.
            processes = list((pool._processes or {}).values())  # the pool has no public way to stop them
            pool.shutdown(wait=False, cancel_futures=True)
            for process in processes:
                process.kill()
        else:
            pool.shutdown()


def _on_dask(scheduler: str, source: ModelSource, grid: Grid, chunks: Sequence[Chunk], sink: Sink,
             advance: Callable[[int], None]) -> None:
    from dask.distributed import Client

    try:  # refused or silent: Dask retries until its connect timeout (`--scheduler-timeout`)
        session = Client(scheduler)
    except OSError as err:
        raise SchedulerUnreachable(
            f"cannot reach the Dask scheduler at {scheduler}: {err}",
            "start it (`dask scheduler`, then `dask worker ADDRESS` on each machine) or check the address "
            "it printed; leave out --scheduler to run on this machine's cores") from None
    with session as client:
        workers = max(1, len(client.scheduler_info().get("workers", {})))
        shipped = client.scatter(source, broadcast=True)
        pending: deque = deque()
        try:
            _in_order(lambda c: client.submit(evaluate_chunk, shipped, grid, c, pure=False), chunks,
                      IN_FLIGHT_PER_WORKER * workers, sink, advance, pending)
        finally:
            if pending:
                client.cancel(list(pending))


# -- sinks ------------------------------------------------------------------------------------


def _cells(rows: Rows, columns: Sequence[str]) -> list[list[Any]]:
    """The rows' cells, column by column, as Python values; a row that did not run has no figures."""
    cells = [rows.columns[c].tolist() if isinstance(rows.columns[c], np.ndarray) else list(rows.columns[c])
             for c in columns]
    failed = np.flatnonzero(~rows.ok)
    if len(failed):
        for c, column in zip(columns, cells):
            if c in FIGURES:
                for i in failed:
                    column[i] = None
    return cells


class CsvWriter:
    """Writes rows as CSV text to a stream, the header first."""

    def __init__(self, stream: Any, columns: Sequence[str]):
        self.stream = stream
        self.columns = list(columns)
        self.writer = csv.writer(stream, lineterminator="\n")
        self.writer.writerow(self.columns)

    def __call__(self, rows: Rows) -> None:
        self.writer.writerows(zip(*_cells(rows, self.columns)))




class ParquetWriter:
    """Writes rows to a Parquet file, one row group per chunk (pyarrow, the `parquet` extra)."""

    def __init__(self, stream: Any, columns: Sequence[str]):
        try:
            import pyarrow  # type: ignore[import-untyped]  # ships no types
            import pyarrow.parquet  # type: ignore[import-untyped]
        except ImportError:
            raise SweepError("-o FILE.parquet needs pyarrow: pip install 'dfdsl[parquet]'") from None
        self.pyarrow = pyarrow
        self.columns = list(columns)
        whole = ("sockets", "batch", "context", "tokens", "param_bytes", "kv_bytes", "bytes_per_token",
                 "flops_per_token", "kernel_calls_per_token")
        text = ("fusion", "model", "target", "error")
        self.schema = pyarrow.schema([
            (c, pyarrow.int64() if c in whole else pyarrow.string() if c in text else
             pyarrow.bool_() if c == "kernel_looping" else pyarrow.float64()) for c in self.columns])
        self.writer = pyarrow.parquet.ParquetWriter(stream, self.schema)

    def __call__(self, rows: Rows) -> None:
        cells = dict(zip(self.columns, _cells(rows, self.columns)))
        self.writer.write_table(self.pyarrow.table(cells, schema=self.schema))

    def close(self) -> None:
        self.writer.close()
