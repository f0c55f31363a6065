"""Sensitivity: how far each named hardware value moves a chosen output over a range of factors,
and which conclusions flip inside that range.

Each parameter is scaled from LO to HI times its value in the hardware file (the others stay put)
at `steps` points spaced evenly in log scale, for every configuration in play (each socket count,
and for the kernel-looping speedup looping on and off), all of one configuration's points in one
array evaluation (`Compiler.evaluate`). A conclusion is a comparison of configurations ("16
sockets beat 8": more tokens/s per user) or "kernel looping is faster"; where one changes between
two steps, the value where it changes is narrowed down by evaluating finer steps there.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

import attrs
import numpy as np
from numpy.typing import NDArray

from dfdsl.driver import CompileOptions, Compiler, Model
from dfdsl.sim.vectorized import HardwareValues, Points
from dfdsl.sweep import SweepError, check_hardware_axes, hardware_path
from dfdsl.sweep_view import MINIMIZED, NUMERIC, require_matplotlib

DERIVED = ("looping_speedup", "best_sockets")
"""Outputs that compare configurations rather than read one figure."""
OUTPUTS = (*(f for f in NUMERIC if not f.endswith("_ms")), *DERIVED)
REFINE_POINTS = 64
REFINE_ROUNDS = 3


@attrs.frozen
class Flip:
    """A conclusion that holds (or not) at the file's value and changes at `changes_at`."""

    conclusion: str
    at_base: bool
    changes_at: float
    holds_above: bool
    """Whether the conclusion holds above `changes_at` (else below it)."""


@attrs.frozen
class Sensitivity:
    parameter: str
    key: str
    """The hardware value's attribute path."""
    base: float
    lo: float
    hi: float
    output: str
    at_base: float
    at_lo: float
    at_hi: float
    flips: tuple[Flip, ...]

    @property
    def swing(self) -> float:
        return abs(self.at_hi - self.at_lo)

    def as_json(self) -> dict:
        return {**{f.name: getattr(self, f.name) for f in attrs.fields(Sensitivity) if f.name != "flips"},
                "flips": [attrs.asdict(flip) for flip in self.flips]}


@attrs.frozen
class Configuration:
    sockets: int
    kernel_looping: bool | None

    def name(self) -> str:
        looping = {None: "", True: " with kernel looping", False: " without kernel looping"}[self.kernel_looping]
        return f"{self.sockets} sockets{looping}"


class Study:
    """The outputs of every configuration at any hardware values, one array evaluation each."""

    def __init__(self, model: Model, output: str, sockets: Sequence[int], fusion: str, kernel_looping: bool | None,
                 compiler: Compiler):
        if output not in OUTPUTS:
            raise SweepError(f"--output {output!r}: choose one of " + ", ".join(OUTPUTS))
        if output == "looping_speedup" and not model.target.loops_kernels:
            raise SweepError(f"--output looping_speedup: {model.target_name} cannot loop kernels")
        self.model, self.output, self.fusion, self.compiler = model, output, fusion, compiler
        loopings: tuple[bool | None, ...] = (True, False) if output == "looping_speedup" else (kernel_looping,)
        self.configurations = [Configuration(s, looping) for s in sockets for looping in loopings]
        self.figure = output if output not in DERIVED else "tokens_per_s_per_user"
        self.sign = -1.0 if self.figure in MINIMIZED else 1.0
        self.primary = model.settings.sockets if model.settings.sockets in sockets else sockets[0]
        self.compared = self.configurations
        """The configurations conclusions compare: those that run at the file's values."""

    def figures(self, swept: dict[str, NDArray[np.float64]], n: int) -> dict[Configuration, NDArray[np.float64]]:
        """The compared figure of each configuration at `n` points (NaN where it does not run)."""
        run = self.model.settings
        points = Points(np.full(n, run.batch), np.full(n, run.context), np.full(n, run.tokens))
        found = {}
        for c in self.configurations:
            options = CompileOptions(fusion=self.fusion, kernel_looping=c.kernel_looping,
                                     hardware=self.model.hardware_option)
            evaluation = self.compiler.evaluate(self.model, options, c.sockets, points, swept)
            ok = np.array([e is None for e in evaluation.errors])
            value = evaluation.figures.get(self.figure, np.zeros(n)).astype(np.float64)
            found[c] = np.where(ok, value, np.nan)
        return found

    def output_of(self, figures: dict[Configuration, NDArray[np.float64]]) -> NDArray[np.float64]:
        if self.output == "best_sockets":
            by_sockets = np.stack([np.nan_to_num(figures[c] * self.sign, nan=-np.inf) for c in self.configurations])
            best = np.array([c.sockets for c in self.configurations], dtype=np.float64)[np.argmax(by_sockets, axis=0)]
            return np.where(np.isneginf(by_sockets).all(axis=0), np.nan, best)  # NaN where no count runs
        if self.output == "looping_speedup":
            # tokens/s per user with looping over without: the unlooped ms per token over the looped
            return figures[Configuration(self.primary, True)] / figures[Configuration(self.primary, False)]
        return figures[next(c for c in self.configurations if c.sockets == self.primary)]

    def conclusions(self, figures: dict[Configuration, NDArray[np.float64]]) -> dict[str, NDArray[np.bool_]]:
        """Each conclusion's truth at each point (compared only where both configurations run)."""
        found = {}
        if self.output == "looping_speedup":
            for s in sorted({c.sockets for c in self.configurations}):
                on, off = figures[Configuration(s, True)], figures[Configuration(s, False)]
                found[f"kernel looping is faster on {s} sockets"] = on > off
            return found
        ran = self.compared
        for a, b in ((a, b) for i, a in enumerate(ran) for b in ran[i + 1:]):
            low, high = sorted((a, b), key=lambda c: c.sockets)
            found[f"{high.name()} beat {low.sockets}"] = self.sign * figures[high] > self.sign * figures[low]
        return found


def sensitivity(model: Model, parameters: Sequence[str], lo: float, hi: float, *, output: str = "tokens_per_s_per_user",
                sockets: Sequence[int] = (), fusion: str = "layer", kernel_looping: bool | None = None,
                steps: int = 33, compiler: Compiler | None = None) -> list[Sensitivity]:
    """Each parameter's effect on `output` from `lo` to `hi` times its value, largest swing first
    (`kernel_looping`: None for the target's default; `looping_speedup` compares on and off)."""
    if not 0 < lo < 1 < hi or not np.isfinite(hi):
        raise SweepError(f"--range {lo:g},{hi:g}: give LO,HI with 0 < LO < 1 < HI, e.g. 0.5,2")
    study = Study(model, output, list(sockets) or [model.settings.sockets], fusion, kernel_looping,
                  compiler or Compiler())
    values = HardwareValues(model.hardware)
    paths = [hardware_path(model.hardware, p) for p in parameters]
    for parameter, path in zip(parameters, paths):
        check_hardware_axes(model.hardware, {parameter: [float(values(path)) * lo, float(values(path)) * hi]},
                            "--params")
    factors = np.geomspace(lo, hi, steps)
    base_figures = study.figures({}, 1)
    at_base = float(study.output_of(base_figures)[0])
    if np.isnan(at_base):
        raise SweepError(f"the model does not run as given ({study.primary} sockets): see `dfdsl run`")
    study.compared = [c for c in study.configurations if not np.isnan(base_figures[c][0])]
    truth_at_base = {k: bool(v[0]) for k, v in study.conclusions(base_figures).items()}
    results = []
    for parameter, path in zip(parameters, paths):
        base = float(values(path))
        figures = study.figures({path: base * factors}, steps)
        out = study.output_of(figures)
        flips = []
        for conclusion, truth in study.conclusions(figures).items():
            for k in np.flatnonzero(truth[1:] != truth[:-1]):
                changes_at = _narrow(study, conclusion, path, base * factors[k], base * factors[k + 1])
                flips.append(Flip(conclusion, truth_at_base[conclusion], changes_at, bool(truth[k + 1])))
        results.append(Sensitivity(parameter, path, base, base * lo, base * hi, output, at_base, float(out[0]),
                                   float(out[-1]), tuple(flips)))
    return sorted(results, key=lambda r: -r.swing)


def _narrow(study: Study, conclusion: str, path: str, below: float, above: float) -> float:
    """Where `conclusion` changes between two values of `path`: finer steps, then finer again."""
    for _ in range(REFINE_ROUNDS):
        tried = np.geomspace(below, above, REFINE_POINTS)
        truth = study.conclusions(study.figures({path: tried}, REFINE_POINTS))[conclusion]
        k = int(np.flatnonzero(truth[1:] != truth[:-1])[0])
        below, above = float(tried[k]), float(tried[k + 1])
    return float(np.sqrt(below * above))


def flip_texts(result: Sensitivity) -> list[str]:
    """Each flip as a sentence: `16 sockets beat 8: false above 1.38 µs`."""
    from dfdsl.sweep_view import unit

    label, scale = unit(result.key, [result.base])
    unit_text = label[label.rfind("(") + 1:-1] if label.endswith(")") else ""
    return [f"{f.conclusion}: {'false' if f.at_base else 'true'} {'above' if f.holds_above != f.at_base else 'below'} "
            f"{f.changes_at * scale:.3g} {unit_text}".rstrip() for f in result.flips]


def render_table(results: Sequence[Sensitivity], title: str) -> str:
    """The sensitivities as text, largest swing first, with each flip spelled out."""
    from rich.table import Table

    from dfdsl.compare_view import table_text
    from dfdsl.sweep_view import unit

    table = Table(title=title, title_justify="left")
    for header in ("parameter", "value", "at LO", "at value", "at HI", "swing", "conclusions that flip"):
        table.add_column(header, justify="left" if header in ("parameter", "conclusions that flip") else "right")
    for r in results:
        label, scale = unit(r.key, [r.base])
        unit_text = label[label.rfind("(") + 1:-1] if label.endswith(")") else ""
        flips = "; ".join(flip_texts(r)) or "none"
        swing = f"{r.swing / abs(r.at_base):.1%}" if r.at_base else "—"
        table.add_row(r.parameter, f"{r.base * scale:.3g} {unit_text}".rstrip(), f"{r.at_lo:,.4g}",
                      f"{r.at_base:,.4g}", f"{r.at_hi:,.4g}", swing, flips)
    return table_text(table, width=180)


def tornado_png(results: Sequence[Sensitivity], title: str, lo: float, hi: float) -> bytes:
    """A tornado chart: one bar per parameter from its output at LO to at HI, around the output at
    the file's values, the largest swing on top; the legend beside the bars."""
    from dfdsl.sweep_view import legend_beside, save_png, unit

    plt = require_matplotlib()
    ordered = list(reversed(results))
    fig, ax = plt.subplots(figsize=(9, 0.75 * len(ordered) + 1.8), layout="constrained")
    base = ordered[0].at_base if ordered else 0.0
    label, scale = unit(ordered[0].output if ordered else "", [base])
    for i, r in enumerate(ordered):
        ax.barh(i, (r.at_lo - base) * scale, left=base * scale, color="C0", label=f"at {lo:g}×" if i == 0 else None)
        ax.barh(i, (r.at_hi - base) * scale, left=base * scale, color="C1", label=f"at {hi:g}×" if i == 0 else None)
        for value in sorted({r.at_lo, r.at_hi}):
            ax.annotate(f"{value * scale:,.4g}", (value * scale, i), fontsize=7, va="center",
                        xytext=(3 if value >= base else -3, 0), textcoords="offset points",
                        ha="left" if value >= base else "right")
    ax.axvline(base * scale, color="0.3", linewidth=1)
    ax.set_yticks(range(len(ordered)), [r.parameter + "".join(f"\n{text}" for text in flip_texts(r))
                                        for r in ordered], fontsize=8)
    ax.set_xlabel(label)
    ax.set_title(textwrap.fill(title, 90), fontsize=10)
    ax.margins(x=0.15)
    legend_beside(ax, "parameter scaled")
    return save_png(fig)
