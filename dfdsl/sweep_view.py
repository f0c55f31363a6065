"""How sweeps and sensitivities are shown: the Pareto front, row counts, and readable pictures.

Pictures follow three rules. Axes carry units (`TB/s`, `µs`, `TFLOP/s`), never raw SI floats. A
legend sits beside the data, never on it. Many series become small multiples or heatmaps instead
of more lines than a colour cycle can tell apart. matplotlib is the `plot` extra.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from io import BytesIO
from typing import Any

import numpy as np
from numpy.typing import NDArray

from dfdsl.sweep import AXES, FIGURES, Grid, Rows, SweepError

MAX_LINES = 6
"""Series one panel draws as lines; more become panels or a heatmap."""
MAX_PANELS = 24
MINIMIZED = ("ms_per_token", "param_bytes", "kv_bytes", "bytes_per_token", "flops_per_token")
"""Figures where less is better (and every `*_ms`); for the others, more is better."""
NUMERIC = tuple(f for f in FIGURES if f not in ("model", "target"))

_LABELS = {
    "tokens_per_s_per_user": "tokens/s per user",
    "tokens_per_s": "tokens/s (all users)",
    "ms_per_token": "ms per token",
    "peak_fraction": "fraction of the HBM roofline",
    "context": "context (tokens)",
    "tokens": "tokens generated",
}


def require_matplotlib() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise SweepError("--plot needs matplotlib: pip install 'dfdsl[plot]'") from None
    return plt


def unit(name: str, values: Sequence[float] | NDArray) -> tuple[str, float]:
    """An axis label with its unit, and the factor that brings `values` to that unit (the key's
    name says its unit: `_bytes_per_s`, `_flops_per_s`, `_s`, `_bytes`)."""
    sections = ("assumptions", "gpu_assumptions", "software", "chip", "node", "memory")
    label = _LABELS.get(name, " ".join(p for p in name.split(".") if p not in sections).replace("_", " "))
    top = float(np.max(np.abs(values))) if len(values) else 0.0
    if name.endswith("bytes_per_s"):
        label = label.removesuffix(" bytes per s")
        return (f"{label} (TB/s)", 1e-12) if top >= 1e12 else (f"{label} (GB/s)", 1e-9)
    if name.endswith("flops_per_s"):
        return f"{label.removesuffix(' flops per s')} (TFLOP/s)", 1e-12
    if name.endswith("_s") and name != "tokens_per_s":
        label = label.removesuffix(" s")
        return (f"{label} (µs)", 1e6) if top < 1e-3 else (f"{label} (ms)", 1e3) if top < 1 else (f"{label} (s)", 1.0)
    if name.endswith("bytes"):
        return f"{label.removesuffix(' bytes')} (GB)", 1e-9
    return label, 1.0


def _setting(axis: str, value: Any, paths: Mapping[str, str], values: Sequence[Any]) -> str:
    """`sockets=8`, `kernel_looping=on`, or a hardware value in its unit: `p2p latency 3 µs`."""
    if axis not in paths:
        return f"{axis}={_tick(value, 1.0)}"
    label, scale = unit(paths[axis], values)
    name, _, unit_name = label.partition(" (")
    return f"{name} {_tick(value, scale)} {unit_name.rstrip(')')}".rstrip()


def _tick(value: Any, scale: float) -> str:
    """A value as an axis or a legend shows it: kernel looping on or off, a number in its unit."""
    if value is None:
        return "default"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, str):
        return value
    return f"{float(value) * scale:g}"


class Counts:
    """How many rows a sweep wrote, and how many of them failed."""

    def __init__(self) -> None:
        self.rows = 0
        self.failed = 0

    def __call__(self, rows: Rows) -> None:
        self.rows += len(rows)
        self.failed += int((~rows.ok).sum())


def front(x: NDArray[np.float64], y: NDArray[np.float64]) -> NDArray[np.intp]:
    """Indices of the points no other beats in both x and y (more is better in both), by x
    descending; of equal points, the first."""
    order = np.lexsort((np.arange(len(x)), -y, -x))
    best = np.maximum.accumulate(y[order])
    keep = np.ones(len(order), dtype=bool)
    keep[1:] = y[order][1:] > best[:-1]
    return order[keep]


class Pareto:
    """The Pareto front of two figures over a sweep, kept as rows arrive (only the front is held)."""

    def __init__(self, spec: str, grid: Grid):
        names = [n.strip() for n in spec.split(",")]
        if len(names) != 2 or any(n not in NUMERIC for n in names) or names[0] == names[1]:
            raise SweepError(f"--pareto {spec!r}: name two different figures of the CSV, e.g. "
                             "tokens_per_s,tokens_per_s_per_user (any of " + ", ".join(NUMERIC) + ")")
        self.x, self.y = names
        self.grid = grid
        self.configuration = [*AXES, *(key for key, _, _ in grid.hardware)]
        self.rows: list[dict[str, Any]] = []

    def sign(self, name: str) -> float:
        return -1.0 if name in MINIMIZED or name.endswith("_ms") else 1.0

    def __call__(self, rows: Rows) -> None:
        ok = np.flatnonzero(rows.ok)
        if not len(ok):
            return
        x = np.asarray(rows.columns[self.x], dtype=np.float64)[ok]
        y = np.asarray(rows.columns[self.y], dtype=np.float64)[ok]
        found = ok[front(self.sign(self.x) * x, self.sign(self.y) * y)]
        candidates = self.rows + [
            {c: _plain(rows.columns[c][i]) for c in (*self.configuration, self.x, self.y)} for i in found
        ]
        cx = np.array([r[self.x] for r in candidates]) * self.sign(self.x)
        cy = np.array([r[self.y] for r in candidates]) * self.sign(self.y)
        self.rows = [candidates[i] for i in front(cx, cy)]

    def render(self) -> str:
        from rich.table import Table

        from dfdsl.compare_view import table_text

        varying = [c for c in self.configuration if len({r[c] for r in self.rows}) > 1 or c in ("sockets", "batch")]
        table = Table(title=f"Pareto front: {self.x} against {self.y} ({len(self.rows)} points)",
                      title_justify="left")
        for name in (self.x, self.y, *varying):
            table.add_column(name, justify="right")
        for r in self.rows:
            table.add_row(figure_text(r[self.x]), figure_text(r[self.y]), *(_tick(r[c], 1.0) for c in varying))
        return table_text(table, width=160)


def figure_text(value: float) -> str:
    """A figure as the Pareto table prints it: whole above 1,000, four digits below."""
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:,.4g}"


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


class PlotColumns:
    """What a sweep's picture needs, gathered as rows arrive: for the Pareto picture every point's
    two figures; otherwise the varying axes and tokens/s per user of the points that ran."""

    def __init__(self, grid: Grid, pareto: Pareto | None):
        self.grid = grid
        self.pareto = pareto
        self.names = [pareto.x, pareto.y] if pareto else [
            *(a for a in AXES if len(grid.axes[a]) > 1), *(key for key, _, v in grid.hardware if len(v) > 1),
            "tokens_per_s_per_user"]
        self.parts: dict[str, list[Any]] = {n: [] for n in self.names}

    def __call__(self, rows: Rows) -> None:
        for name in self.names:
            column = rows.columns[name]
            values = np.asarray(column, dtype=np.float32 if self.pareto else None)
            self.parts[name].append(values[rows.ok] if isinstance(column, np.ndarray) else
                                    [v for v, ok in zip(column, rows.ok) if ok])

    def column(self, name: str) -> list[Any]:
        return [v for part in self.parts[name] for v in (part.tolist() if isinstance(part, np.ndarray) else part)]

    def png(self, title: str) -> bytes:
        if self.pareto is not None:
            x = np.concatenate(self.parts[self.pareto.x]) if self.parts[self.pareto.x] else np.zeros(0)
            y = np.concatenate(self.parts[self.pareto.y]) if self.parts[self.pareto.y] else np.zeros(0)
            return pareto_png(x, y, self.pareto, title)
        paths = {key: path for key, path, _ in self.grid.hardware}
        columns = {name: self.column(name) for name in self.names}
        return sweep_png(columns, paths, title)


def save_png(fig: Any) -> bytes:
    plt = require_matplotlib()
    out = BytesIO()
    fig.savefig(out, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    return out.getvalue()


def legend_beside(ax: Any, title: str) -> None:
    ax.legend(title=title, fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)


def sweep_png(columns: Mapping[str, Sequence[Any]], paths: Mapping[str, str], title: str) -> bytes:
    """tokens/s per user against the axis with the most values: one line per combination of the
    others when they are few, else one panel per combination (lines inside for the axis with the
    fewest values), else heatmaps of the two axes with the most values."""
    plt = require_matplotlib()
    y = np.asarray(columns["tokens_per_s_per_user"], dtype=np.float64)
    if not len(y):
        raise SweepError("--plot: no point ran, nothing to draw")
    axes = [a for a in columns if a != "tokens_per_s_per_user"]
    values = {a: sorted(set(columns[a]), key=lambda v: (v is None, v)) for a in axes}
    axes.sort(key=lambda a: -len(values[a]))
    if not axes:
        axes, values = ["batch"], {"batch": [None]}
        columns = {**columns, "batch": [None] * len(y)}
    x_axis, others = axes[0], axes[1:]
    x_label, x_scale = unit(paths.get(x_axis, x_axis), [v for v in values[x_axis] if not isinstance(v, str)] or [1])
    combos = math.prod(len(values[a]) for a in others)
    if combos <= MAX_LINES:
        lines, panels = others, []
    elif len(values[others[-1]]) <= MAX_LINES and math.prod(len(values[a]) for a in others[:-1]) <= MAX_PANELS:
        lines, panels = others[-1:], others[:-1]
    else:
        return _heatmaps(columns, values, axes, paths, y, title)
    panel_keys = list(itertools.product(*(values[a] for a in panels)))
    cols = min(4, len(panel_keys))
    rows_ = math.ceil(len(panel_keys) / cols)
    fig, grid = plt.subplots(rows_, cols, figsize=(4.2 * cols + 2, 3.2 * rows_ + 0.6), sharey=True, squeeze=False,
                             layout="constrained")
    numeric_x = not any(isinstance(v, str | bool) or v is None for v in values[x_axis])
    for index, key in enumerate(panel_keys):
        ax = grid[index // cols][index % cols]
        for line in itertools.product(*(values[a] for a in lines)):
            picked = [i for i in range(len(y))
                      if all(columns[a][i] == v for a, v in (*zip(panels, key), *zip(lines, line)))]
            picked.sort(key=lambda i: values[x_axis].index(columns[x_axis][i]))
            xs = [columns[x_axis][i] * x_scale if numeric_x else values[x_axis].index(columns[x_axis][i])
                  for i in picked]
            label = ", ".join(_setting(a, v, paths, values[a]) for a, v in zip(lines, line)) or "tokens/s per user"
            ax.plot(xs, y[picked], marker="o", label=label)
        if numeric_x and x_axis in ("batch", "context", "tokens") and min(values[x_axis]) > 0 \
                and max(values[x_axis]) / min(values[x_axis]) >= 16:
            ax.set_xscale("log", base=2)
        if not numeric_x:
            ax.set_xticks(range(len(values[x_axis])), [_tick(v, 1.0) for v in values[x_axis]])
        ax.set_xlabel(x_label)
        ax.grid(True, alpha=0.3)
        if panels:
            ax.set_title(", ".join(_setting(a, v, paths, values[a]) for a, v in zip(panels, key)), fontsize=9)
    for index in range(len(panel_keys), rows_ * cols):
        grid[index // cols][index % cols].set_visible(False)
    for row in grid:
        row[0].set_ylabel("tokens/s per user")
    if lines:
        legend_beside(grid[0][min(cols, len(panel_keys)) - 1], ", ".join(lines))
    fig.suptitle(title)
    return save_png(fig)


def _heatmaps(columns: Mapping[str, Sequence[Any]], values: Mapping[str, list[Any]], axes: Sequence[str],
              paths: Mapping[str, str], y: NDArray[np.float64], title: str) -> bytes:
    """One heatmap per combination of the axes beyond the two with the most values."""
    plt = require_matplotlib()
    x_axis, y_axis, panels = axes[0], axes[1], axes[2:]
    keys = list(itertools.product(*(values[a] for a in panels)))
    shown = keys[:MAX_PANELS]
    cols = min(4, len(shown))
    rows_ = math.ceil(len(shown) / cols)
    fig, grid = plt.subplots(rows_, cols, figsize=(4.4 * cols + 1.5, 3.6 * rows_ + 0.6), squeeze=False,
                             layout="constrained")
    low, high = float(np.min(y)), float(np.max(y))
    image = None
    for index, key in enumerate(shown):
        ax = grid[index // cols][index % cols]
        cells = np.full((len(values[y_axis]), len(values[x_axis])), np.nan)
        for i in range(len(y)):
            if all(columns[a][i] == v for a, v in zip(panels, key)):
                cells[values[y_axis].index(columns[y_axis][i]), values[x_axis].index(columns[x_axis][i])] = y[i]
        image = ax.imshow(cells, origin="lower", aspect="auto", vmin=low, vmax=high, cmap="viridis")
        for axis, name, setter in ((x_axis, "x", ax.set_xticks), (y_axis, "y", ax.set_yticks)):
            label, scale = unit(paths.get(axis, axis), [v for v in values[axis] if not isinstance(v, str)] or [1])
            step = max(1, len(values[axis]) // 8)
            setter(range(0, len(values[axis]), step), [_tick(v, scale) for v in values[axis][::step]])
            (ax.set_xlabel if name == "x" else ax.set_ylabel)(label)
        if panels:
            ax.set_title(", ".join(_setting(a, v, paths, values[a]) for a, v in zip(panels, key)), fontsize=9)
    for index in range(len(shown), rows_ * cols):
        grid[index // cols][index % cols].set_visible(False)
    fig.colorbar(image, ax=grid.ravel().tolist(), label="tokens/s per user")
    more = f" (the first {MAX_PANELS} of {len(keys)} panels)" if len(keys) > MAX_PANELS else ""
    fig.suptitle(title + more + "; blank: did not run (see the CSV's error column)")
    return save_png(fig)


def pareto_png(x: NDArray, y: NDArray, pareto: Pareto, title: str) -> bytes:
    """Every point that ran in grey and the front as a line, each of its points labelled with what
    varies along it, as serving papers draw throughput against interactivity."""
    plt = require_matplotlib()
    fig, ax = plt.subplots(figsize=(8, 5), layout="constrained")
    x_label, x_scale = unit(pareto.x, x)
    y_label, y_scale = unit(pareto.y, y)
    ax.scatter(np.asarray(x) * x_scale, np.asarray(y) * y_scale, s=6, color="0.75", label="every point",
               rasterized=True)
    fx = [r[pareto.x] * x_scale for r in pareto.rows]
    fy = [r[pareto.y] * y_scale for r in pareto.rows]
    ax.plot(fx, fy, color="C3", marker="o", label="Pareto front")
    varying = [c for c in pareto.configuration if len({r[c] for r in pareto.rows}) > 1]
    for r, px, py in zip(pareto.rows, fx, fy):
        ax.annotate(" ".join(f"{c}={_tick(r[c], 1.0)}" for c in varying[:3]), (px, py), fontsize=7,
                    xytext=(4, 4), textcoords="offset points")
    ax.set_xlabel(x_label)
    ax.set_ylabel(y_label)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    legend_beside(ax, "")
    return save_png(fig)
