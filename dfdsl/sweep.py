"""Design-space sweeps: every combination of run settings and hardware values, one report each.

Every point goes through the driver (`dfdsl.driver`), as `dfdsl run` does, on any target. Points
that differ only in batch, context, tokens or hardware values share the stages of the pipeline
that do not depend on them: each worker's `Compiler` shards, fuses and loops each distinct
(sockets, fusion, kernel looping) once, and each point only places memory, converts to the
target's dialect and simulates. Work runs on all
local cores (a process pool) or on an existing Dask cluster (`--scheduler ADDRESS`), in chunks
that keep each worker's compiled programs in a cache.

`--set KEY=V1,V2` changes the simulator's hardware (dotted names of the target file, such as
`memory.hbm.bandwidth_bytes_per_s`, or the short names in `ALIASES`); capacities used for memory
placement stay those of the target file.
"""

from __future__ import annotations

import csv
import io
import itertools
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

import attrs

from xdsl.utils.exceptions import DiagnosticException

from dfdsl.diagnostics import DfslError
from dfdsl.driver import CompileOptions, Compiler, Model, RunSettings, load_model
from dfdsl.errors import SchedulerUnreachable
from dfdsl.report import JSON_KEYS

AXES = ("sockets", "batch", "context", "tokens", "fusion", "kernel_looping")
ALIASES = {
    "hbm_bandwidth": "memory.hbm.bandwidth_bytes_per_s",
    "ddr_bandwidth": "memory.ddr.bandwidth_bytes_per_s",
    "launch_sync": "assumptions.launch_sync_hardware_s",
    "stream_efficiency": "assumptions.stream_efficiency",
    "p2p_bandwidth": "assumptions.p2p_bandwidth_bytes_per_s",
    "peak_flops": "chip.peak_flops_per_s",
}
"""Short names for the hardware values people sweep most."""
CHUNK_POINTS = 16
"""Points per task: small enough to balance the cores, large enough to amortize a compile."""


class SweepError(ValueError):
    """A bad axis or hardware key; the CLI prints it with exit code 2."""


@attrs.frozen
class Point:
    sockets: int
    batch: int
    context: int
    tokens: int
    fusion: str
    kernel_looping: bool | None
    """None: the target's default."""
    hardware: tuple[tuple[str, float], ...] = ()

    def program_key(self) -> tuple:
        return (self.sockets, self.fusion, self.kernel_looping)


def hardware_path(hw, dotted: str) -> str:
    """The attribute path of a Hardware for a target-file key (`memory.hbm.x` -> `hbm.x`)."""
    key = ALIASES.get(dotted, dotted)
    parts = key.split(".")
    if parts[0] == "memory":
        parts = parts[1:]
    node = hw
    for part in parts:
        if not attrs.has(type(node)) or part not in attrs.fields_dict(type(node)):
            raise SweepError(f"unknown hardware key `{dotted}`; use a key of the target file such as "
                             "memory.hbm.bandwidth_bytes_per_s, or one of " + ", ".join(ALIASES))
        node = getattr(node, part)
    if isinstance(node, bool) or not isinstance(node, (int, float)):
        raise SweepError(f"hardware key `{dotted}` is not a number")
    return ".".join(parts)


def with_value(obj, path: str, value: float):
    head, _, rest = path.partition(".")
    current = getattr(obj, head)
    if rest:
        return attrs.evolve(obj, **{head: with_value(current, rest, value)})
    return attrs.evolve(obj, **{head: type(current)(value)})


def parse_values(text: str, kind: Callable[[str], object], name: str) -> list:
    try:
        values = [kind(v.strip()) for v in text.split(",") if v.strip()]
    except ValueError:
        raise SweepError(f"--{name.replace('_', '-')}: cannot read {text!r}; give comma-separated values") from None
    if not values:
        raise SweepError(f"--{name.replace('_', '-')} needs at least one value")
    return values


def make_points(axes: Mapping[str, Sequence], hardware_axes: Mapping[str, Sequence[float]]) -> list[Point]:
    hw_keys = sorted(hardware_axes)
    points = []
    for combo in itertools.product(*(axes[a] for a in AXES), *(hardware_axes[k] for k in hw_keys)):
        run, hw = combo[: len(AXES)], combo[len(AXES):]
        points.append(Point(**dict(zip(AXES, run)), hardware=tuple(zip(hw_keys, hw))))
    return points


# -- evaluation (runs in worker processes) --------------------------------------------------


_COMPILER = Compiler()
_MODELS: dict[tuple, Model] = {}
"""Per worker process: the compiler that keeps compiled stages, and the models it compiled,
by path, hardware file and the files' modification times (an edited file is read again)."""


def _stamp(path: str) -> int:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return 0


def _model(path: str, hardware_file: str, target: str) -> Model:
    key = (path, hardware_file, target, _stamp(path), _stamp(hardware_file) if hardware_file else 0)
    if key not in _MODELS:
        _MODELS[key] = load_model(Path(path), {"target": target} if target else None, hardware_file)
    return _MODELS[key]


def evaluate(path: str, point: Point, hardware_file: str = "", target: str = "") -> dict:
    """One point's report figures, or its error (capacity, divisibility) as `error`."""
    row: dict = attrs.asdict(point, recurse=False)
    row.pop("hardware")
    row.update(dict(point.hardware))
    try:
        model = _model(path, hardware_file, target)
        hw = model.hardware
        for key, value in point.hardware:
            hw = with_value(hw, hardware_path(hw, key), value)
        settings = RunSettings(point.batch, point.context, point.tokens, point.sockets)
        options = CompileOptions(fusion=point.fusion, kernel_looping=point.kernel_looping, hardware=hardware_file)
        report = _COMPILER.simulate(model, settings, options, hardware=hw).report
        figures = {k: report.figures[k] for k in JSON_KEYS if k not in row}
        breakdown = figures.pop("breakdown_ms")
        row["kernel_looping"] = report["kernel_looping"]
        row.update(figures)
        row.update({f"{k}_ms": v for k, v in breakdown.items()})
        row["error"] = ""
    except (DfslError, DiagnosticException, SweepError) as err:
        message = err.render() if isinstance(err, DfslError) else str(err)
        row["error"] = " ".join(message.split())
    return row


def evaluate_chunk(path: str, points: Sequence[Point], hardware_file: str = "", target: str = "") -> list[dict]:
    return [evaluate(path, p, hardware_file, target) for p in points]


# -- scheduling -------------------------------------------------------------------------------


def _chunks(points: Sequence[Point]) -> list[list[Point]]:
    """Chunks of points sharing a compiled program, so a worker compiles each program once."""
    groups: dict[tuple, list[Point]] = {}
    for p in points:
        groups.setdefault(p.program_key(), []).append(p)
    return [g[i:i + CHUNK_POINTS] for g in groups.values() for i in range(0, len(g), CHUNK_POINTS)]


def run_sweep(path: Path, points: Sequence[Point], *, hardware_file: str = "", target: str = "",
              workers: int | None = None,
              scheduler: str | None = None, progress: Callable[[int], None] | None = None) -> list[dict]:
    """Every point's row, in the order of `points`."""
    chunks = _chunks(points)
    order = {p: i for i, p in enumerate(points)}
    rows: list[dict | None] = [None] * len(points)

    def collect(chunk: Sequence[Point], results: Iterable[dict]) -> None:
        for p, row in zip(chunk, results):
            rows[order[p]] = row
        if progress is not None:
            progress(len(chunk))

    if scheduler:
        from dask.distributed import Client, as_completed

        try:  # refused or silent: Dask retries until its connect timeout (`--scheduler-timeout`)
            client = Client(scheduler)
        except OSError as err:
            raise SchedulerUnreachable(
                f"cannot reach the Dask scheduler at {scheduler}: {err}",
                "start it (`dask scheduler`, then `dask worker ADDRESS` on each machine) or check the address "
                "it printed; leave out --scheduler to run on this machine's cores") from None
        with client as session:
            futures = {session.submit(evaluate_chunk, str(path), c, hardware_file, target, pure=False): c for c in chunks}
            for future in as_completed(futures):
                collect(futures[future], future.result())
    elif (workers or os.cpu_count() or 1) == 1 or len(chunks) == 1:
        for c in chunks:
            collect(c, evaluate_chunk(str(path), c, hardware_file, target))
    else:
        from concurrent.futures import ProcessPoolExecutor
        from concurrent.futures import as_completed as pool_completed
        from multiprocessing import get_context

        with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
            futures = {pool.submit(evaluate_chunk, str(path), c, hardware_file, target): c for c in chunks}
            for future in pool_completed(futures):
                collect(futures[future], future.result())
    return [r for r in rows if r is not None]


def to_csv(rows: Sequence[dict]) -> str:
    columns: list[str] = []
    for row in rows:
        columns.extend(k for k in row if k not in columns)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def plot(rows: Sequence[dict], title: str) -> bytes:
    """A PNG of tokens/s per user against the axis with the most values, one line per combination
    of the other varying axes (matplotlib, the `plot` extra)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise SweepError("--plot needs matplotlib: pip install 'dfdsl[plot]'") from None
    from io import BytesIO

    ok = [r for r in rows if not r["error"]]
    if not ok:
        raise SweepError("--plot: no point ran, nothing to draw")
    axes = [k for k in ok[0] if k in AXES or k in ALIASES or "." in k]
    varying = [k for k in axes if len({r[k] for r in ok}) > 1] or [AXES[1]]
    x_axis = max(varying, key=lambda k: len({r[k] for r in ok}))
    others = [k for k in varying if k != x_axis]
    fig, ax = plt.subplots(figsize=(8, 5))
    series: dict[tuple, list[dict]] = {}
    for r in ok:
        series.setdefault(tuple(r[k] for k in others), []).append(r)
    for key, points in sorted(series.items(), key=lambda item: str(item[0])):
        points.sort(key=lambda r: r[x_axis])
        label = ", ".join(f"{k}={v}" for k, v in zip(others, key)) or "tokens/s per user"
        ax.plot([r[x_axis] for r in points], [r["tokens_per_s_per_user"] for r in points], marker="o", label=label)
    if x_axis in ("batch", "context"):
        ax.set_xscale("log", base=2)
    ax.set_xlabel(x_axis)
    ax.set_ylabel("tokens/s per user")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    if len(series) > 1:
        ax.legend(fontsize=8)
    fig.tight_layout()
    out = BytesIO()
    fig.savefig(out, format="png", dpi=120)
    plt.close(fig)
    return out.getvalue()
