"""`dfdsl compare`: one model under every fusion mode, with and without kernel looping, at several
socket counts, side by side in one table.

The configurations share work: the front end runs once per socket count, sharding and fusion once
per (socket count, fusion), and where kernel looping finds nothing to loop (no run of consecutive
calls to one kernel) the looped configuration is the unlooped program, simulated once and shown in
both rows with a note. A configuration that cannot be built (sockets that do not divide the heads,
weights that do not fit) shows its error in its row instead of failing the table. The figures are
those of `dfdsl run` (`runner.run_model`) under the same settings; a target with its own pipeline
(a GPU node) goes through `run_model` for each row.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import attrs
from xdsl.dialects.builtin import ModuleOp
from xdsl.utils.exceptions import DiagnosticException

from dfdsl.elaborate import check_file
from dfdsl.footprint import Footprint, footprint
from dfdsl.irgen import generate
from dfdsl.lowering.kernel_looping import find_runs
from dfdsl.lowering.pipeline import FUSION_MODES, LoweringOptions, passes_to, run_passes
from dfdsl.report import Report, make_report
from dfdsl.runner import Variant, load_target, run_model
from dfdsl.sim.hardware import Hardware, bundled_targets
from dfdsl.sim.interpreter import SimResult, simulate

DEFAULT_SOCKETS = (8, 16)
"""A node and a rack (HARDWARE.md)."""

NOTHING_TO_LOOP = "nothing to loop: the same program as looping off"


@attrs.frozen
class Config:
    """One row of the comparison: where the model runs and how it is compiled."""

    sockets: int
    fusion: str
    kernel_looping: bool


@attrs.frozen
class Outcome:
    """What one configuration gave: a report (and the simulation behind it), or an error."""

    config: Config
    report: Report | None = None
    result: SimResult | None = None
    hardware: Hardware | None = None
    error: str = ""
    internal_error: bool = False
    """The error is a bug in dfdsl rather than a property of the configuration."""
    note: str = ""

    @property
    def ms_per_token(self) -> float | None:
        return None if self.report is None else self.report["ms_per_token"]


def parse_variants(spec: str) -> list[tuple[str, bool]]:
    """`none,block:on,layer:off` -> [(fusion, kernel_looping), ...]; a fusion without `:on` or
    `:off` stands for both (looping off first)."""
    variants: list[tuple[str, bool]] = []
    for item in (part.strip() for part in spec.split(",")):
        fusion, _, looping = item.partition(":")
        if fusion not in FUSION_MODES or looping not in ("", "on", "off"):
            raise ValueError(
                f"bad variant {item!r}: write FUSION or FUSION:on or FUSION:off, with FUSION one of "
                + ", ".join(FUSION_MODES)
            )
        loopings = {"": (False, True), "on": (True,), "off": (False,)}[looping]
        variants += [(fusion, on) for on in loopings if (fusion, on) not in variants]
    return variants


def configurations(sockets: Sequence[int], variants: Sequence[tuple[str, bool]]) -> list[Config]:
    """The product of the axes, socket counts outermost: the table's rows in order."""
    return [Config(s, fusion, looping) for s in sockets for fusion, looping in variants]


@attrs.frozen
class FrontEnd:
    """A model checked and generated for one socket count, with what every lowering of it shares."""

    module: ModuleOp
    footprint: Footprint
    hardware: Hardware
    target: str
    sockets: int


def front_end(path: Path, overrides: Mapping[str, int | str], hardware_file: str) -> FrontEnd:
    """Checks and generates the model as `runner.run_model` does, with its footprint and hardware."""
    model = check_file(path, overrides, targets=bundled_targets())
    module = generate(model)
    hardware = load_target(model.run.target, Variant(hardware=hardware_file))
    return FrontEnd(module, footprint(module, model.run.batch), hardware, model.run.target,
                    model.run.sockets)


def _simulate_lowered(front: FrontEnd, fused: ModuleOp, options: LoweringOptions) -> tuple[Report, SimResult]:
    """Lowers a copy of the fused module the rest of the way (looping per `options`) and times it."""
    module = fused.clone()
    run_passes(module, passes_to("rdu", options)[len(passes_to("fused", options)):])
    result = simulate(module, front.hardware)
    report = make_report(result, front.footprint, front.hardware, fusion=options.fusion,
                         kernel_looping=options.kernel_looping)
    return report, result


def _failure(config: Config, err: Exception) -> Outcome:
    """An outcome for a configuration that could not be built or simulated."""
    if isinstance(err, DiagnosticException):
        return Outcome(config, error=str(err))
    return Outcome(config, error=f"internal error: {type(err).__name__}: {err}", internal_error=True)


def _fusion_outcomes(front: FrontEnd, fusion: str, configs: Sequence[Config],
                     hardware_file: str) -> list[Outcome]:
    """The configurations of one socket count and fusion mode: shard and fuse once, then lower
    each distinct program (looped or not) once."""
    options = LoweringOptions(sockets=front.sockets, fusion=fusion, target=front.target,
                              hardware=hardware_file)
    fused = front.module.clone()
    # A bug in one configuration (not only a user error) must not hide the rest of the table: it
    # shows in its row, and `main` reports it through its exit code.
    try:
        run_passes(fused, passes_to("fused", options))
        loopable = bool(find_runs(fused, options.min_calls)[0])
    except Exception as err:
        return [_failure(c, err) for c in configs]
    simulated: dict[bool, Outcome] = {}
    outcomes = []
    for config in configs:
        lowers_looped = config.kernel_looping and loopable
        if lowers_looped not in simulated:
            try:
                report, result = _simulate_lowered(front, fused, attrs.evolve(options, kernel_looping=lowers_looped))
                simulated[lowers_looped] = Outcome(config, report, result, front.hardware)
            except Exception as err:
                simulated[lowers_looped] = _failure(config, err)
        outcome = simulated[lowers_looped]
        if config.kernel_looping and not loopable:
            outcome = _relabelled(outcome, config)
        outcomes.append(attrs.evolve(outcome, config=config))
    return outcomes


def _relabelled(outcome: Outcome, config: Config) -> Outcome:
    """The unlooped program's outcome shown as the looped configuration's."""
    if outcome.report is None:
        return outcome
    figures = {**outcome.report.figures, "kernel_looping": config.kernel_looping}
    return attrs.evolve(outcome, report=Report(figures, outcome.report.timeline), note=NOTHING_TO_LOOP)


def _run_outcomes(path: Path, overrides: Mapping[str, int | str], configs: Sequence[Config],
                  hardware_file: str) -> list[Outcome]:
    """The configurations of a target lowered by its own pipeline (a GPU node), each through
    `run_model`. Where the target makes its own kernels whatever the fusion mode, the program of
    one looping setting runs once and stands for every fusion mode."""
    own_kernels: dict[bool, Outcome] = {}
    outcomes = []
    for config in configs:
        if config.kernel_looping in own_kernels:
            outcomes.append(attrs.evolve(own_kernels[config.kernel_looping], config=config))
            continue
        try:
            report = run_model(path, overrides, Variant(config.fusion, config.kernel_looping, hardware_file))
            outcome = Outcome(config, report)
        except Exception as err:
            outcome = _failure(config, err)
        if outcome.report is not None and outcome.report["fusion"] != config.fusion:
            outcome = attrs.evolve(outcome, note=f"the target makes its own kernels ({outcome.report['fusion']})")
            own_kernels[config.kernel_looping] = outcome
        outcomes.append(outcome)
    return outcomes


def simulate_configs(path: Path, overrides: Mapping[str, int | str], configs: Sequence[Config],
                     hardware_file: str = "") -> list[Outcome]:
    """Every configuration of `configs`, in order. Front-end errors (a bad file or setting) raise;
    errors of one configuration's lowering or simulation are in its outcome."""
    by_config: dict[Config, Outcome] = {}
    for sockets in dict.fromkeys(c.sockets for c in configs):
        front = front_end(path, {**overrides, "sockets": sockets}, hardware_file)
        if not isinstance(front.hardware, Hardware):
            group = [c for c in configs if c.sockets == sockets]
            by_config.update(zip(group, _run_outcomes(path, {**overrides, "sockets": sockets}, group,
                                                      hardware_file)))
            continue
        for fusion in dict.fromkeys(c.fusion for c in configs if c.sockets == sockets):
            group = [c for c in configs if (c.sockets, c.fusion) == (sockets, fusion)]
            by_config.update(zip(group, _fusion_outcomes(front, fusion, group, hardware_file)))
    return [by_config[c] for c in configs]


# -- the table ------------------------------------------------------------------------------


@attrs.frozen
class Row:
    """An outcome with the speedups the table shows beside it."""

    outcome: Outcome
    speedup: float | None
    """The baseline's ms/token over this row's (the baseline is the first row that ran)."""
    looping_speedup: float | None
    """For a looped row: the same configuration without looping, ms/token over this row's."""


def table_rows(outcomes: Sequence[Outcome]) -> list[Row]:
    baseline = next((o.ms_per_token for o in outcomes if o.ms_per_token is not None), None)
    unlooped = {(o.config.sockets, o.config.fusion): o.ms_per_token
                for o in outcomes if not o.config.kernel_looping}
    rows = []
    for o in outcomes:
        ms = o.ms_per_token
        off = unlooped.get((o.config.sockets, o.config.fusion)) if o.config.kernel_looping else None
        rows.append(Row(
            o,
            speedup=None if ms is None or baseline is None else baseline / ms,
            looping_speedup=None if ms is None or off is None else off / ms,
        ))
    return rows


def _baseline_label(rows: Sequence[Row]) -> str:
    first = next((r.outcome.config for r in rows if r.outcome.report is not None), None)
    if first is None:
        return "no configuration ran"
    return (f"speedup: over the first row that ran ({first.sockets} sockets, fusion {first.fusion}, "
            f"looping {'on' if first.kernel_looping else 'off'}); looping speedup: over the same "
            "sockets and fusion without looping")


def render_table(rows: Sequence[Row], title: str) -> str:
    """The comparison as text (a rich table, no colour)."""
    from rich.table import Table

    table = Table(title=title, title_justify="left", caption=_baseline_label(rows), caption_justify="left")
    for header in ("sockets", "fusion", "looping", "ms/token", "tokens/s/user", "% roofline",
                   "calls/token", "speedup", "looping speedup"):
        table.add_column(header, justify="left" if header in ("fusion", "looping") else "right")
    table.add_column("note")

    def times(x: float | None) -> str:
        return "—" if x is None else f"{x:.2f}×"

    for row in rows:
        o, c = row.outcome, row.outcome.config
        cells = [str(c.sockets), c.fusion, "on" if c.kernel_looping else "off"]
        if o.report is None:
            cells += ["—"] * 6 + [o.error]
        else:
            f = o.report.figures
            cells += [f"{f['ms_per_token']:.3f}", f"{f['tokens_per_s_per_user']:,.1f}",
                      f"{f['peak_fraction']:.1%}", str(f["kernel_calls_per_token"]),
                      times(row.speedup), times(row.looping_speedup), o.note]
        table.add_row(*cells)
    return table_text(table, width=160)


def table_text(table, width: int) -> str:
    """A rich table as plain text, without the padding rich adds after the title and caption."""
    from io import StringIO

    from rich.console import Console

    out = StringIO()
    Console(file=out, width=width, color_system=None, highlight=False).print(table)
    return "\n".join(line.rstrip() for line in out.getvalue().splitlines()) + "\n"


def rows_json(rows: Sequence[Row], model: str) -> list[dict]:
    """The report dict of each row (error rows: the configuration and the error), with the
    table's speedups and note after the report's keys."""
    out = []
    for row in rows:
        o, c = row.outcome, row.outcome.config
        if o.report is None:
            out.append({"model": model, "sockets": c.sockets, "fusion": c.fusion,
                        "kernel_looping": c.kernel_looping, "error": o.error})
        else:
            out.append({**o.report.figures, "speedup": row.speedup,
                        "looping_speedup": row.looping_speedup, "note": o.note})
    return out


def _title(path: Path, outcomes: Sequence[Outcome]) -> str:
    ran = next((o.report.figures for o in outcomes if o.report is not None), None)
    if ran is None:
        return f"{path.stem}: no configuration ran"
    return (f"{ran['model']} on {ran['target']} · batch {ran['batch']} · context {ran['context']:,} · "
            f"{ran['tokens']} tokens")


# -- the command ----------------------------------------------------------------------------


def _socket_list(text: str) -> list[int]:
    try:
        sockets = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected socket counts separated by commas, got {text!r}") from None
    return list(dict.fromkeys(sockets))


def _variant_list(text: str) -> list[tuple[str, bool]]:
    try:
        return parse_variants(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `dfdsl compare`."""
    parser.add_argument("file", metavar="MODEL.dfl")
    parser.add_argument("--variants", type=_variant_list, metavar="SPEC",
                        default=[(f, on) for f in FUSION_MODES for on in (False, True)],
                        help="fusion modes and looping, comma-separated: FUSION (looping off and on), "
                             "FUSION:on or FUSION:off; FUSION is none, block or layer "
                             "(default: all six)")
    parser.add_argument("--sockets", type=_socket_list, metavar="N,M", default=list(DEFAULT_SOCKETS),
                        help="socket counts, comma-separated (default: 8,16)")
    parser.add_argument("--targets", metavar="SPEC",
                        help="compare machines instead: NAME[:SOCKETS],... e.g. sn40l:8,sn40l:16,dgx-h100 "
                             "(each as `dfdsl run` runs it there; speedups against the GPU)")
    parser.add_argument("--plot", metavar="FILE.png",
                        help="with --targets: also draw tokens/s and %% of roofline per target (needs matplotlib)")
    parser.add_argument("--json", action="store_true", help="print a JSON list of the rows' reports")
    parser.add_argument("-o", "--output", metavar="OUT", help="write here instead of standard output")
    g = parser.add_argument_group("run settings (override the file's `run` block)")
    g.add_argument("--batch", type=int, metavar="B", help="sequences decoded together")
    g.add_argument("--context", type=int, metavar="C", help="tokens already in the KV cache")
    g.add_argument("--tokens", type=int, metavar="T", help="tokens to generate")
    g.add_argument("--target", metavar="NAME", help="machine to run on: sn40l or dgx-h100 (see also --targets)")
    g.add_argument("--hardware", metavar="FILE", help="a hardware TOML file to use instead of the target's")


def _compare_targets(args: argparse.Namespace, path: Path, overrides: dict) -> int:
    from dfdsl import target_compare
    from dfdsl.cli import UsageError, _emit, write_output

    try:
        specs = target_compare.parse_targets(args.targets)
    except ValueError as err:
        raise UsageError(str(err)) from None
    results = target_compare.run_targets(path, overrides, specs)
    ran = [r for r in results if not isinstance(r, str)]
    title = path.stem
    if ran:
        f = ran[0].figures
        title = f"{f['model']} · batch {f['batch']} · context {f['context']:,} · each target as `dfdsl run` runs it"
    if args.json:
        rows = [r.figures if not isinstance(r, str) else {"target": s.target, "sockets": s.sockets, "error": r}
                for s, r in zip(specs, results)]
        _emit(json.dumps(rows, indent=2), args.output, [path])
    else:
        _emit(target_compare.render(specs, results, title), args.output, [path])
    if args.plot:
        try:
            png = target_compare.plot(specs, results, path.stem)
        except ValueError as err:
            raise UsageError(str(err)) from None
        write_output(Path(args.plot), png, [path])
    return 0


def main(args: argparse.Namespace) -> int:
    """`dfdsl compare`: prints the table (or JSON); exit code 1 if a row hit a bug in dfdsl."""
    from dfdsl.cli import _emit

    path = Path(args.file)
    overrides = {k: getattr(args, k) for k in ("batch", "context", "tokens", "target")
                 if getattr(args, k, None) is not None}
    if "target" in overrides:
        overrides["target"] = overrides["target"].replace("-", "_")  # dgx-h100 names dgx_h100
    if args.targets:
        return _compare_targets(args, path, overrides)
    if args.plot:
        from dfdsl.cli import UsageError

        raise UsageError("--plot goes with --targets")
    outcomes = simulate_configs(path, overrides, configurations(args.sockets, args.variants),
                                args.hardware or "")
    rows = table_rows(outcomes)
    if args.json:
        _emit(json.dumps(rows_json(rows, path.stem), indent=2), args.output, [path])
    else:
        _emit(render_table(rows, _title(path, outcomes)), args.output, [path])
    bugs = [o for o in outcomes if o.internal_error]
    for o in bugs:
        sys.stderr.write(f"dfdsl: {o.config.sockets} sockets, fusion {o.config.fusion}, looping "
                         f"{'on' if o.config.kernel_looping else 'off'}: {o.error}\n"
                         "This is a bug in dfdsl.\n")
    return 1 if bugs else 0
