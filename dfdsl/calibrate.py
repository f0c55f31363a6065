"""Calibration: fit a hardware file's free parameters to measured decode times.

A measurements file (CSV, `read_measurements`) holds points: a model file, the settings it ran at
(sockets, batch, context, tokens, the machine), the measured milliseconds per output token and the
public source of the figure. The user names the parameters to fit (`resolve_parameters`: a
hardware number, or a short name such as `launch_cost` that means the right key on either kind of
machine), each between bounds that default to the physical range of its unit (`range_of`, the
hardware file's one validation). `fit` then

- predicts each point's ms per token at many parameter vectors at once: one array evaluation per
  point (`Compiler.evaluate`, the array timing model) for a plain decode, the driver's `simulate`
  for a file with a draft model or a prompt;
- minimises the points' relative errors by bounded least squares (scipy's `least_squares`, in the
  logarithm of each parameter, so values of any magnitude move alike);
- refits once per point without it (leave-one-out), to say how well the fit predicts a point it
  has not seen;
- reads from the Jacobian at the fit which parameters the data cannot pin down: one no point
  depends on, one that moves with others along a direction that leaves every residual unchanged
  (a small singular value), or one whose values within the cost tolerance span more than
  `PINNED_FACTOR` either side of the fit.

`fitted_toml` writes the result into the base file's text: comments and layout kept, each fitted
value replaced and marked with where and when it was fitted. scipy and tomlkit are the optional
extra `dfdsl[calibrate]`.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np
from numpy.typing import NDArray

from dfdsl import files
from dfdsl.ast import Span
from dfdsl.diagnostics import Diagnostic, DfslError
from dfdsl.elaborate import RUN_LIMITS
from dfdsl.driver import POINT_ERRORS, CompileOptions, Compiler, Model, RunSettings, load_model
from dfdsl.errors import ProgramFailure
from dfdsl.hardware import (
    GpuHardware,
    Hardware,
    HardwareError,
    bundled_kind,
    bundled_targets,
    check_relations,
    check_value,
    display_name,
    format_value,
    load_hardware,
    parse_hardware,
    range_of,
    target_name,
    with_value,
)
from dfdsl.sim.vectorized import HardwareValues, Points
from dfdsl.sweep import SweepError, hardware_numbers, hardware_path

CODE = "E032"
MAX_MEASUREMENTS_BYTES = 1024 * 1024
"""A measurements file is a few kilobytes; past this it is refused before it is read."""
COLUMNS = ("model", "ms_per_token", "source", "target", "sockets", "batch", "context", "tokens")
REQUIRED = ("model", "ms_per_token", "source")
SETTINGS = ("sockets", "batch", "context", "tokens")
SHORT_NAMES: dict[str, dict[str, tuple[str, ...]]] = {
    "launch_cost": {"rdu": ("assumptions.launch_sync_hardware_s",), "gpu": ("assumptions.launch_sync_s",)},
    "stream_efficiency": {"rdu": ("assumptions.stream_efficiency",), "gpu": ("assumptions.stream_efficiency",)},
    "compute_efficiency": {"rdu": ("assumptions.compute_efficiency",), "gpu": ("assumptions.compute_efficiency",)},
    "allreduce_latency": {"rdu": ("assumptions.p2p_latency_s",), "gpu": ("assumptions.nccl_base_latency_s",)},
    "host_cost": {"rdu": ("assumptions.host_per_token_s",), "gpu": ("assumptions.host_per_token_s",)},
    "hbm_bandwidth": {"rdu": ("hbm.bandwidth_bytes_per_s",), "gpu": ("hbm.bandwidth_bytes_per_s",)},
}
"""Names that mean one parameter on either kind of machine (the first key of the list the file has).
An RDU's launch cost is that of its file's orchestration (`launch_sync_hardware_s` or `_host_s`); a
GPU's is the host's launch (`host_launch_s`) when its software launches eagerly (no CUDA graphs),
and its all-reduce latency is that of the all-reduce its software runs (`GPU_ALLREDUCE_LATENCY`)."""
GPU_ALLREDUCE_LATENCY = {
    "nccl-ring": "assumptions.nccl_base_latency_s",
    "nccl-tree": "assumptions.nccl_base_latency_s",
    "one-shot": "software.custom_allreduce_latency_s",
    "two-shot": "software.custom_allreduce_twoshot_latency_s",
    "custom": "software.custom_allreduce_latency_s",
}
"""The fixed latency of each `[gpu_software] all_reduce`: NCCL's base latency, or the runtime's
kernel's (`custom` picks the one-shot kernel for the small messages of a decode step)."""
DEFAULT_TOLERANCE = 0.01
"""How far the points' RMS relative error may rise (0.01: one percentage point) inside a
parameter's range."""
PINNED_FACTOR = 1.25
"""A parameter is pinned down when the values within the tolerance stay within this factor of the fit."""
FLAT = 1e-6
"""A Jacobian column (relative error per relative change of a parameter) this small is no dependence."""
RCOND = 1e-6
"""Singular values below this fraction of the largest span directions the data cannot see."""
STEP = 1e-4
"""The finite-difference step in the logarithm of a parameter (0.01%)."""
NO_DEPENDENCE = "no point depends on it near these values (its value is kept)"
SIGNIFICANT = 4
"""Digits a fitted value is written with; the residuals reported are those of the written values."""


class CalibrationError(ValueError):
    """The fit cannot be made as asked (no point left, a relation between values broken); E027."""


def require_scipy() -> Any:
    """scipy.optimize, or E030 saying how to install the extra."""
    try:
        import scipy.optimize as optimize
        import tomlkit  # noqa: F401  (the writer needs it too: fail before any work)
    except ImportError as err:
        raise ProgramFailure(f"dfdsl calibrate needs the Python package {err.name or 'scipy'}, which is not "
                             "installed", "install the extra: pip install 'dfdsl[calibrate]'") from None
    return optimize


# -- the measurements file ------------------------------------------------------------------------


@attrs.frozen
class Measurement:
    """One measured point: a row of the file (its `line`), the model file it names (relative to the
    measurements file's folder), the settings it ran at (None: the model file's), the measured ms
    per output token and the figure's source."""

    line: int
    model: Path
    ms_per_token: float
    source: str
    target: str | None = None
    sockets: int | None = None
    batch: int | None = None
    context: int | None = None
    tokens: int | None = None
    spans: Mapping[str, Span] = attrs.field(factory=dict, eq=False, repr=False)

    def overrides(self, target: str) -> dict[str, Any]:
        return {"target": target, **{k: getattr(self, k) for k in SETTINGS if getattr(self, k) is not None}}

    def settings_text(self) -> str:
        return ", ".join(f"{k} {getattr(self, k)}" for k in SETTINGS if getattr(self, k) is not None)


def _error(span: Span, message: str, help: str | None = None) -> DfslError:
    return DfslError([Diagnostic(CODE, message, span, help)])


def _fields(line: str, path: Path, number: int) -> list[tuple[str, int]]:
    """The comma-separated fields of a line with the 1-based column where each starts: a field in
    double quotes may hold commas (`""` is a quote), spaces around a field are dropped."""
    found: list[tuple[str, int]] = []
    i = 0
    while True:
        while i < len(line) and line[i] == " ":
            i += 1
        start = i
        if i < len(line) and line[i] == '"':
            text, i = [], i + 1
            while True:
                if i >= len(line):
                    raise _error(Span(path, number, start + 1, number, len(line) + 1),
                                 "this quoted field has no closing `\"`", "end it with `\"` on the same line")
                if line[i] == '"' and line.startswith('""', i):
                    text.append('"')
                    i += 2
                elif line[i] == '"':
                    i += 1
                    break
                else:
                    text.append(line[i])
                    i += 1
            while i < len(line) and line[i] == " ":
                i += 1
            if i < len(line) and line[i] != ",":
                raise _error(Span(path, number, i + 1, number, i + 2),
                             "unexpected text after a quoted field", "put a `,` between fields")
            found.append(("".join(text), start + 1))
        else:
            end = line.find(",", i)
            end = len(line) if end < 0 else end
            found.append((line[i:end].rstrip(" "), start + 1))
            i = end
        if i >= len(line):
            return found
        i += 1  # the comma


def _number(text: str, span: Span, column: str, kind: type) -> Any:
    wanted = "a positive whole number" if kind is int else "a positive number of milliseconds"
    try:
        value = kind(text)
    except ValueError:
        raise _error(span, f"{column} `{text}` is not a number", f"write {wanted}") from None
    if not math.isfinite(value):
        raise _error(span, f"{column} = {text} is not a finite number", f"write {wanted}")
    if value <= 0:
        raise _error(span, f"{column} = {text} is not positive", f"write {wanted}")
    low, high = RUN_LIMITS.get(column, (1, math.inf))
    if kind is int and not low <= value <= high:
        raise _error(span, f"{column} = {text} is out of range", f"write a whole number from {max(low, 1):,} to {high:,}")
    return value


def read_measurements(path: Path) -> list[Measurement]:
    """The points of a measurements file (see docs/calibrate.md); `DfslError` E032 naming the line
    and column of what is wrong, E002 when the file cannot be read."""
    path = Path(path)
    try:
        text = files.read_text(path, MAX_MEASUREMENTS_BYTES)
    except files.FileReadError as err:
        span = Span(path, err.line, err.column, err.line, err.column + 1) if err.line else None
        raise DfslError([Diagnostic("E002", str(err).split(": ", 1)[-1] if err.line else str(err), span)]) from None
    header: list[tuple[str, int]] | None = None
    header_line = 0
    rows: list[Measurement] = []
    for number, line in enumerate(text.split("\n"), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = _fields(line, path, number)
        if header is None:
            header, header_line = fields, number
            seen: set[str] = set()
            for name, column in fields:
                span = Span(path, number, column, number, column + max(len(name), 1))
                if name not in COLUMNS:
                    raise _error(span, f"unknown column `{name}`", "the columns are " + ", ".join(COLUMNS))
                if name in seen:
                    raise _error(span, f"the column `{name}` is named twice", "name each column once")
                seen.add(name)
            missing = [c for c in REQUIRED if c not in seen]
            if missing:
                raise _error(Span(path, number, 1, number, len(line) + 1),
                             f"the header has no {', '.join(f'`{c}`' for c in missing)} column",
                             "the first line names the columns: model, ms_per_token and source are required")
            continue
        if len(fields) != len(header):
            end = len(line) + 1
            raise _error(Span(path, number, end, number, end + 1),
                         f"this row has {len(fields)} fields; the header (line {header_line}) names {len(header)}",
                         "give every column a value (an empty one takes the model file's setting)")
        rows.append(_row(path, number, header, fields))
    if not rows:
        raise _error(Span(path, max(header_line, 1), 1, max(header_line, 1), 2),
                     "the file holds no measured point",
                     "write a header line, then one line per point: model,ms_per_token,source,...")
    return rows


def _row(path: Path, number: int, header: list[tuple[str, int]], fields: list[tuple[str, int]]) -> Measurement:
    spans = {name: Span(path, number, column, number, column + max(len(text), 1))
             for (name, _), (text, column) in zip(header, fields)}
    cells = {name: text for (name, _), (text, _) in zip(header, fields)}
    for column in REQUIRED:
        if not cells[column]:
            raise _error(spans[column], f"the `{column}` of this point is empty",
                         "every point needs its model file, its measured ms per token and where the figure comes from")
    model = path.parent / cells["model"]
    if not model.is_file():
        raise _error(spans["model"], f"no model file `{cells['model']}` (looked for {model})",
                     "name a .dfl file relative to the measurements file's folder")
    values: dict[str, Any] = {k: _number(cells[k], spans[k], k, int) for k in SETTINGS if cells.get(k)}
    target = cells.get("target") or None
    if target is not None:
        target = target_name(target)
        if target not in bundled_targets():
            raise _error(spans["target"], f"no bundled target is called `{cells['target']}`",
                         "the targets are " + ", ".join(t.replace("_", "-") for t in bundled_targets()))
    return Measurement(number, model, _number(cells["ms_per_token"], spans["ms_per_token"], "ms_per_token", float),
                       cells["source"], target, spans=spans, **values)


# -- the parameters -------------------------------------------------------------------------------


@attrs.frozen
class Parameter:
    """A parameter to fit: the name as given, its attribute path in the hardware record, its value
    in the base file and its bounds."""

    name: str
    path: str
    base: float
    low: float
    high: float


def fittable_names(hw: Hardware | GpuHardware) -> list[str]:
    """What `--fit` accepts on this machine: the short names, then each fittable number's own name."""
    short = [n for n in SHORT_NAMES if _short_path(hw, n)]
    own = [name for name, path in hardware_numbers(hw).items()
           if "." not in name and not range_of(name).integer and name not in short]
    return [*short, *own]


def _short_path(hw: Hardware | GpuHardware, name: str) -> str | None:
    if name == "launch_cost" and isinstance(hw, Hardware):
        return f"assumptions.{hw.launch_sync_key}"
    if isinstance(hw, GpuHardware):
        if name == "launch_cost" and not hw.software.cuda_graphs:
            return "software.host_launch_s"
        if name == "allreduce_latency":
            return GPU_ALLREDUCE_LATENCY[hw.software.all_reduce]
    known = set(hardware_numbers(hw).values())
    return next((p for p in SHORT_NAMES.get(name, {}).get(hw.kind, ()) if p in known), None)


def resolve_parameters(hw: Hardware | GpuHardware, spec: str) -> list[Parameter]:
    """The parameters of `--fit NAME[=LO:HI],...`; `CalibrationError` naming the accepted names
    when one is unknown, or a count or capacity (facts of the machine, not fitted); `HardwareError`
    when a bound is outside the value's physical range."""
    found: list[Parameter] = []
    for item in (part.strip() for part in spec.split(",")):
        if not item:
            continue
        name, _, bounds = item.partition("=")
        name = name.strip()
        path = _short_path(hw, name)
        if path is None:
            try:
                path = hardware_path(hw, name)
            except SweepError:
                path = None
        leaf = path.rsplit(".", 1)[-1] if path else ""
        if path is None or range_of(leaf).integer:
            why = "is a count or a capacity, a fact of the machine" if path else "is not a parameter of " + hw.name
            raise CalibrationError(f"--fit: `{name}` {why}; the parameters that can be fitted are "
                                   + ", ".join(fittable_names(hw)))
        rule = range_of(leaf)
        low, high = rule.low, rule.high
        if bounds:
            lo_text, colon, hi_text = bounds.partition(":")
            try:
                low, high = float(lo_text), float(hi_text)
            except ValueError:
                raise CalibrationError(f"--fit {item}: write bounds as {name}=LO:HI, e.g. {name}="
                                       f"{format_value(rule.low)}:{format_value(rule.high)}") from None
            if not colon:
                raise CalibrationError(f"--fit {item}: write bounds as {name}=LO:HI")
            low = check_value(f"--fit {name} low bound", leaf, low, exact_type=False)
            high = check_value(f"--fit {name} high bound", leaf, high, exact_type=False)
            if not low < high:
                raise CalibrationError(f"--fit {item}: the low bound must be below the high one")
        if any(p.path == path for p in found):
            raise CalibrationError(f"--fit: `{name}` names {path} a second time")
        base = float(HardwareValues(hw)(path))
        found.append(Parameter(name, path, base, float(low), float(high)))
    if not found:
        raise CalibrationError("--fit names no parameter; the parameters that can be fitted are "
                               + ", ".join(fittable_names(hw)))
    return found


# -- predicting the points ------------------------------------------------------------------------


@attrs.frozen
class Point:
    """A measurement and the model it runs (its settings applied), with how it is timed."""

    measurement: Measurement
    model: Model
    settings: RunSettings
    arrays: bool
    """Timed by the array model (a plain decode); else by the driver's `simulate`."""


class Predictor:
    """Each point's predicted ms per token at many parameter vectors."""

    def __init__(self, points: Sequence[Point], parameters: Sequence[Parameter], options: CompileOptions,
                 compiler: Compiler):
        self.points, self.parameters, self.options, self.compiler = list(points), list(parameters), options, compiler
        self.measured = np.array([p.measurement.ms_per_token for p in self.points])

    def __call__(self, values: NDArray[np.float64], which: Sequence[int] | None = None) -> NDArray[np.float64]:
        """Milliseconds per token (K x points) at K parameter vectors (`values`, K x parameters,
        in the parameters' units), for the points `which` (all by default)."""
        which = range(len(self.points)) if which is None else which
        out = np.zeros((len(values), len(self.points)))
        for i in which:
            out[:, i] = self._point(self.points[i], values)
        return out

    def _point(self, point: Point, values: NDArray[np.float64]) -> NDArray[np.float64]:
        k, s = len(values), point.settings
        if point.arrays:
            points = Points(np.full(k, s.batch), np.full(k, s.context), np.full(k, s.tokens))
            swept = {p.path: values[:, j] for j, p in enumerate(self.parameters)}
            evaluation = self.compiler.evaluate(point.model, self.options, s.sockets, points, swept)
            error = next((e for e in evaluation.errors if e is not None), None)
            if error is not None:
                raise _point_error(point, error)
            return np.asarray(evaluation.figures["ms_per_token"], dtype=np.float64)
        found = np.zeros(k)
        for row in range(k):
            hw = point.model.hardware
            for j, p in enumerate(self.parameters):
                hw = with_value(hw, p.path, float(values[row, j]))
            try:
                found[row] = self.compiler.simulate(point.model, s, self.options, hardware=hw).report["ms_per_token"]
            except POINT_ERRORS as err:
                raise _point_error(point, err) from None
        return found


def _point_error(point: Point, err: Exception) -> DfslError:
    code = getattr(err, "code", None) or (err.diagnostics[0].code if isinstance(err, DfslError) else "")
    text = err.diagnostics[0].message if isinstance(err, DfslError) else str(err)
    m = point.measurement
    return _error(m.spans["model"], f"this point does not run on the hardware file: {text}"
                  + (f" ({code})" if code else ""), "fix the point's settings, or drop the row")


def load_points(measurements: Sequence[Measurement], hardware: str, measured_on: str | None,
                compiler: Compiler) -> tuple[list[Point], list[Measurement], Hardware | GpuHardware]:
    """The points measured on `measured_on` (default: the hardware file's name; a row without a
    target always counts), each model loaded on the hardware file; and the rows left out."""
    base = load_hardware(hardware)
    wanted = target_name(measured_on) if measured_on else base.name
    points: list[Point] = []
    skipped: list[Measurement] = []
    for m in measurements:
        if m.target is not None and m.target != wanted:
            skipped.append(m)
            continue
        run_target = _run_target(base, m.target)
        model = load_model(m.model, m.overrides(run_target), hardware)
        settings = model.settings
        points.append(Point(m, model, settings, settings.acceptance is None and not settings.prompt))
    if not points:
        targets = sorted({display_name(m.target) for m in measurements if m.target})
        raise CalibrationError(f"no point was measured on {display_name(wanted)} (the file's targets: "
                               f"{', '.join(targets)}); choose the rows with --measured-on NAME")
    return points, skipped, base


def other_machine_note(base: Hardware | GpuHardware, base_name: str, bundled: bool,
                       measured_on: str | None) -> str | None:
    """What to tell a user whose rows were measured on another bundled machine than the bundled
    file the fit starts from (`--hardware dgx-h100 --measured-on dgx-h100-nccl`): the points run on
    the hardware file's machine and software, not on the ones they were measured on. None otherwise
    (a file of the user's own may well describe the machine its rows name)."""
    wanted = target_name(measured_on) if measured_on else base.name
    if not bundled or wanted == base.name or wanted not in bundled_targets():
        return None
    return (f"the rows measured on {display_name(wanted)} run on {base_name}, another machine or software; "
            f"to fit {display_name(wanted)}'s own file, give --hardware {display_name(wanted)}")


def _run_target(hw: Hardware | GpuHardware, target: str | None) -> str:
    """The bundled target a point's lowering names: its own if of the hardware file's kind, else
    the hardware file's name if bundled, else the first bundled target of its kind (the passes read
    the hardware file's numbers; the name only says the kind of machine)."""
    for name in (target, hw.name):
        if name and bundled_kind(name) == hw.kind:
            return name
    return next(t for t in bundled_targets() if bundled_kind(t) == hw.kind)


# -- the fit --------------------------------------------------------------------------------------


@attrs.frozen
class FittedParameter:
    name: str
    key: str
    """Its dotted key in the hardware file (`assumptions.launch_sync_hardware_s`)."""
    base: float
    fitted: float
    low: float
    high: float
    at_bound: bool
    range_low: float | None
    """The values within the tolerance (None where the data cannot bound it)."""
    range_high: float | None
    pinned: bool
    why: str
    """Why it is not pinned down ("" when it is)."""


@attrs.frozen
class FittedPoint:
    measurement: Measurement
    base_ms: float
    fitted_ms: float
    loo_ms: float | None

    @property
    def residual(self) -> float:
        return self.fitted_ms / self.measurement.ms_per_token - 1

    @property
    def base_residual(self) -> float:
        return self.base_ms / self.measurement.ms_per_token - 1

    @property
    def loo_residual(self) -> float | None:
        return None if self.loo_ms is None else self.loo_ms / self.measurement.ms_per_token - 1


@attrs.frozen
class Fit:
    parameters: tuple[FittedParameter, ...]
    points: tuple[FittedPoint, ...]
    skipped: tuple[Measurement, ...]
    tolerance: float
    singular_values: tuple[float, ...]

    @property
    def rms(self) -> float:
        return _rms([p.residual for p in self.points])

    @property
    def base_rms(self) -> float:
        return _rms([p.base_residual for p in self.points])

    @property
    def loo_rms(self) -> float | None:
        found = [p.loo_residual for p in self.points]
        return None if any(r is None for r in found) else _rms([r for r in found if r is not None])

    @property
    def not_pinned(self) -> list[str]:
        return [p.name for p in self.parameters if not p.pinned]

    def values(self) -> dict[str, float]:
        """The fitted values by attribute path."""
        return {p.key: p.fitted for p in self.parameters}


def _rms(values: Sequence[float]) -> float:
    return float(np.sqrt(np.mean(np.square(values)))) if values else 0.0


def _round(value: float) -> float:
    return float(f"{value:.{SIGNIFICANT - 1}e}")


def fit(predictor: Predictor, *, tolerance: float = DEFAULT_TOLERANCE, loo: bool = True,
        skipped: Sequence[Measurement] = (), progress: Callable[[str], None] | None = None) -> tuple[Fit, dict[str, float]]:
    """The fit of the predictor's parameters to its points: the report, and the fitted values by
    attribute path (rounded to `SIGNIFICANT` digits, as written)."""
    optimize = require_scipy()
    params = predictor.parameters
    low = np.log([p.low for p in params])
    high = np.log([p.high for p in params])
    inside = (high - low) * 1e-9
    start = np.clip(np.log([p.base for p in params]), low + inside, high - inside)
    n = len(params)

    def differences(u: NDArray[np.float64], which: list[int]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """The relative errors of the points `which` at `u` and their Jacobian (points x parameters),
        in one evaluation: forward differences, backward at an upper bound (never past a bound)."""
        steps = np.where(u + STEP > high, -STEP, STEP)
        rows = predictor(np.exp(np.vstack([u, u + np.diag(steps)])), which)[:, which] / predictor.measured[which] - 1
        return rows[0], ((rows[1:] - rows[0]) / steps[:, None]).T

    def solve(which: list[int], u0: NDArray[np.float64]) -> NDArray[np.float64]:
        cache: dict[bytes, tuple[NDArray[np.float64], NDArray[np.float64]]] = {}

        def both(u: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
            key = u.tobytes()
            if key not in cache:
                cache.clear()
                cache[key] = differences(u, which)
            return cache[key]

        def residuals(u: NDArray[np.float64]) -> NDArray[np.float64]:
            return both(u)[0]

        def jacobian(u: NDArray[np.float64]) -> NDArray[np.float64]:
            return both(u)[1]

        result = optimize.least_squares(residuals, u0, jac=jacobian, bounds=(low, high), method="trf",
                                        x_scale=1.0, ftol=1e-12, xtol=1e-12, gtol=1e-12, max_nfev=100 * (n + 1))
        return np.asarray(result.x, dtype=np.float64)

    everything = list(range(len(predictor.points)))
    u = solve(everything, start)
    fitted = np.array([_round(v) for v in np.exp(u)])
    fitted = np.clip(fitted, [p.low for p in params], [p.high for p in params])
    u = np.log(fitted)
    base_ms = predictor(np.array([[p.base for p in params]]))[0]
    errors, jac = differences(u, everything)
    fitted_ms = (errors + 1) * predictor.measured
    loo_ms: list[float | None] = [None] * len(everything)
    if loo and len(everything) > 1:
        for i in everything:
            if progress:
                progress(f"leave-one-out fit {i + 1} of {len(everything)}")
            others = [j for j in everything if j != i]
            u_i = solve(others, np.clip(u, low + inside, high - inside))
            loo_ms[i] = float(predictor(np.exp(u_i)[None, :], [i])[0, i])
    fitted_params, singular = _identify(params, fitted, jac, tolerance, predictor.points[0].model.hardware.kind)
    # A value no point depends on, at the fit nor at the base file's value, keeps the base file's:
    # the points say nothing about it. One the points pushed to where nothing depends on it (a
    # launch cost driven to zero) keeps its fitted value: the points bound it from one side.
    flat = [j for j, p in enumerate(fitted_params) if p.why == NO_DEPENDENCE]
    if flat:
        base_jac = differences(start, everything)[1]
        unseen = [j for j in flat if float(np.abs(base_jac[:, j]).max()) < FLAT]
    else:
        unseen = []
    for j in (j for j in flat if j not in unseen):
        way = "down" if fitted[j] < params[j].base else "up"
        fitted_params[j] = attrs.evolve(fitted_params[j], why=(
            f"the points push it {way} to {format_value(float(fitted[j]))}, where no point depends on it: they "
            f"say only that it is {'small' if way == 'down' else 'large'}"))
    for j in unseen:
        fitted[j] = params[j].base
        fitted_params[j] = attrs.evolve(fitted_params[j], fitted=params[j].base, at_bound=False)
    if unseen:
        fitted_ms = predictor(fitted[None, :])[0]
    points = tuple(FittedPoint(point.measurement, float(base_ms[i]), float(fitted_ms[i]), loo_ms[i])
                   for i, point in enumerate(predictor.points))
    values = {p.path: float(v) for j, (p, v) in enumerate(zip(params, fitted)) if j not in unseen}
    return Fit(tuple(fitted_params), points, tuple(skipped), tolerance, singular), values


def _identify(params: Sequence[Parameter], fitted: NDArray[np.float64], jac: NDArray[np.float64],
              tolerance: float, kind: str) -> tuple[list[FittedParameter], tuple[float, ...]]:
    """Each parameter's range within the tolerance and whether the data pin it down (see the
    module's docstring), from the Jacobian of the relative errors in the parameters' logarithms."""
    m, n = jac.shape
    _, s, vt = np.linalg.svd(jac, full_matrices=True)
    s_full = np.zeros(n)
    s_full[:len(s)] = s
    largest = float(s_full.max()) if n else 0.0
    blind = s_full <= max(largest * RCOND, FLAT)  # directions (rows of vt) no point sees
    seen = ~blind
    # Linearized: the sum of squares grows by d^T J^T J d; it may grow by m tolerance^2.
    covariance = (vt[seen].T / s_full[seen] ** 2) @ vt[seen]
    allowed = m * tolerance ** 2
    found = []
    for j, p in enumerate(params):
        value = float(fitted[j])
        at_bound = bool(np.isclose(value, p.low, rtol=1e-6) or np.isclose(value, p.high, rtol=1e-6))
        column = float(np.abs(jac[:, j]).max()) if m else 0.0
        partners = [params[k].name for k in range(n) if k != j
                    and any(abs(vt[d, j]) > 0.1 and abs(vt[d, k]) > 0.1 for d in np.flatnonzero(blind))]
        lo: float | None
        hi: float | None
        if column < FLAT:
            lo = hi = None
            why = NO_DEPENDENCE
        elif any(abs(vt[d, j]) > 0.1 for d in np.flatnonzero(blind)):
            lo = hi = None
            why = ("it trades off against " + ", ".join(partners) + ": the points fix only a combination"
                   if partners else "the points do not fix it")
        else:
            width = math.sqrt(allowed * max(float(covariance[j, j]), 0.0))
            lo, hi = max(value * math.exp(-width), p.low), min(value * math.exp(width), p.high)
            why = "" if math.exp(width) <= PINNED_FACTOR else (
                f"values from {format_value(_round(lo))} to {format_value(_round(hi))} fit within the tolerance")
        found.append(FittedParameter(p.name, _dotted(p.path, kind), p.base, value, p.low, p.high, at_bound, lo, hi,
                                     not why, why))
    return found, tuple(float(v) for v in s)


def _dotted(path: str, kind: str) -> str:
    """An attribute path as the hardware file writes its key (`hbm.x` is `memory.hbm.x`; a GPU
    file's `assumptions.x` is `gpu_assumptions.x`, its `chip.x` is `gpu.x`)."""
    head, _, rest = path.partition(".")
    sections = {"hbm": "memory.hbm", "ddr": "memory.ddr"}
    if kind == "gpu":
        sections |= {"assumptions": "gpu_assumptions", "chip": "gpu"}
    return f"{sections.get(head, head)}.{rest}"


def check_fitted(base: Hardware | GpuHardware, values: Mapping[str, float]) -> Hardware | GpuHardware:
    """The base machine with the fitted values, its relations checked (`CalibrationError` if the
    fit breaks one: bound the parameter below the other value)."""
    hw = base
    for path, value in values.items():
        hw = with_value(hw, path, value)
    try:
        check_relations(hw, "the fitted values")
    except HardwareError as err:
        raise CalibrationError(f"{err}; bound the parameter with --fit NAME=LO:HI") from None
    return hw


# -- the fitted file ------------------------------------------------------------------------------


def fitted_toml(base_text: str, base_name: str, values: Mapping[str, float], measured: str, when: str) -> str:
    """The base file's text with each fitted value (by attribute path) replaced, its comments and
    layout kept, each changed value commented with the file it was fitted to and the date; checked
    to read back (`parse_hardware`) with exactly the fitted values."""
    import tomlkit
    from tomlkit.items import Float, Table, Trivia

    document = tomlkit.parse(files.normalize(base_text))
    for path, value in values.items():
        table = _table_of(document, path, base_name)
        leaf = path.rsplit(".", 1)[-1]
        old = table[leaf]
        was = format_value(float(old))
        raw = format_value(value)
        item = Float(value, Trivia(), raw if any(c in raw for c in ".en") else f"{raw}.0")
        kept = old.trivia.comment.lstrip("#").strip() if hasattr(old, "trivia") else ""
        item.comment(f"fitted by dfdsl calibrate to {measured} on {when} (was {was})" + (f"; {kept}" if kept else ""))
        if kept:  # aligned as the comment it replaces
            item.trivia.comment_ws = old.trivia.comment_ws
        assert isinstance(table, Table | tomlkit.TOMLDocument)
        table[leaf] = item
    header = (f"# Fitted by `dfdsl calibrate` to {measured} on {when}: the values marked `fitted` below\n"
              f"# replace those of {base_name}; everything else is that file's.\n")
    text = header + tomlkit.dumps(document)
    written = parse_hardware(text, "the fitted file")
    for path, value in values.items():
        if float(HardwareValues(written)(path)) != value:
            raise AssertionError(f"the fitted file reads {path} otherwise than it was fitted")
    return text


def _table_of(document: Any, path: str, base_name: str) -> Any:
    """The table of the TOML document that holds the number at attribute path `path`: the only
    table with its key, or among several the one named like the attribute (`hbm` is `[memory.hbm]`)."""
    parent, leaf = (path.rsplit(".", 1) + [""])[:2] if "." in path else ("", path)
    found: list[tuple[str, Any]] = []

    def walk(table: Any, name: str) -> None:
        for key, value in table.items():
            if isinstance(value, dict):
                walk(value, f"{name}.{key}" if name else key)
            elif key == leaf:
                found.append((name, table))

    walk(document, "")
    if len(found) > 1:
        found = [(name, table) for name, table in found if name.rsplit(".", 1)[-1] == parent.rsplit(".", 1)[-1]]
    if len(found) != 1:
        raise AssertionError(f"{base_name}: cannot tell which table holds {path}")
    return found[0][1]


def now() -> str:
    """The time a fit is written, in UTC, to the second."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")


# -- the report -----------------------------------------------------------------------------------


def report_json(result: Fit, *, measured: str, hardware: str, output: str, when: str) -> dict[str, Any]:
    """The fit report as JSON (docs/calibrate.md lists its keys)."""
    loo = result.loo_rms
    return {
        "measured": measured,
        "hardware": hardware,
        "output": output,
        "fitted_at": when,
        "tolerance": result.tolerance,
        "rms_residual_base": result.base_rms,
        "rms_residual": result.rms,
        "loo_rms_residual": loo,
        "not_pinned": result.not_pinned,
        "singular_values": list(result.singular_values),
        "parameters": [{
            "name": p.name, "key": p.key, "base": p.base, "fitted": p.fitted, "low": p.low, "high": p.high,
            "at_bound": p.at_bound, "range": None if p.range_low is None else [p.range_low, p.range_high],
            "pinned": p.pinned, "why": p.why,
        } for p in result.parameters],
        "points": [{
            "line": p.measurement.line, "model": p.measurement.model.name, "target": p.measurement.target,
            **{k: getattr(p.measurement, k) for k in SETTINGS}, "source": p.measurement.source,
            "measured_ms": p.measurement.ms_per_token, "base_ms": p.base_ms, "fitted_ms": p.fitted_ms,
            "residual": p.residual, "loo_ms": p.loo_ms, "loo_residual": p.loo_residual,
        } for p in result.points],
        "skipped_lines": [m.line for m in result.skipped],
    }


def render_report(result: Fit, *, measured: str, hardware: str, output: str) -> str:
    """The fit report as text: the parameters, every point's residual, the cross-validation error
    and the parameters the data cannot pin down."""
    from rich.table import Table

    from dfdsl.compare_view import table_text

    params = Table(title=f"Fitted to {measured} from {hardware}, written to {output}", title_justify="left")
    for header in ("parameter", "key", "base", "fitted", "bounds", f"within {result.tolerance:.0%} RMS", "pinned"):
        params.add_column(header, justify="left" if header in ("parameter", "key", "pinned") else "right")
    for p in result.parameters:
        spread = "—" if p.range_low is None else f"{_g(p.range_low)} – {_g(p.range_high or 0)}"
        pinned = "yes" if p.pinned else f"no: {p.why}"
        params.add_row(p.name, p.key, _g(p.base), _g(p.fitted) + (" (at bound)" if p.at_bound else ""),
                       f"{_g(p.low)} – {_g(p.high)}", spread, pinned)
    points = Table(title="Points (residual: predicted / measured - 1; LOO: predicted by a fit without the point)",
                   title_justify="left")
    for header in ("line", "model", "settings", "measured ms", "base ms", "fitted ms", "residual", "LOO ms",
                   "LOO residual"):
        points.add_column(header, justify="left" if header in ("model", "settings") else "right")
    for point in result.points:
        m, loo_residual = point.measurement, point.loo_residual
        points.add_row(str(m.line), m.model.name, m.settings_text() or "the file's", f"{m.ms_per_token:.4g}",
                       f"{point.base_ms:.4g}", f"{point.fitted_ms:.4g}", f"{point.residual:+.1%}",
                       "—" if point.loo_ms is None else f"{point.loo_ms:.4g}",
                       "—" if loo_residual is None else f"{loo_residual:+.1%}")
    loo = result.loo_rms
    lines = [
        f"RMS residual: {result.base_rms:.1%} with the base values, {result.rms:.1%} fitted; "
        + (f"leave-one-out {loo:.1%}" if loo is not None else "leave-one-out: needs two points or more"
           if len(result.points) < 2 else "leave-one-out: not computed (--no-loo)"),
        "Not pinned down by these points: " + (", ".join(result.not_pinned) or "none"),
    ]
    if result.skipped:
        lines.append(f"Left out (measured on another machine): line{'s' if len(result.skipped) > 1 else ''} "
                     + ", ".join(str(m.line) for m in result.skipped))
    return table_text(params, width=160) + "\n" + table_text(points, width=160) + "\n" + "\n".join(lines) + "\n"


def _g(value: float) -> str:
    return format_value(float(f"{value:.{SIGNIFICANT}g}"))
