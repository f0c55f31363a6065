"""How `dfdsl compare` shows what it found: the variants table with its speedups, the machines
side by side with where the time goes, their JSON, and the machines' plot."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import attrs

from dfdsl.compare import Outcome, TargetOutcome
from dfdsl.hardware import display_name
from dfdsl.report import format_calls
from dfdsl.sim.timing import CATEGORIES

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
                      f"{f['peak_fraction']:.1%}", format_calls(f["kernel_calls_per_token"]),
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


def variants_title(path: Path, outcomes: Sequence[Outcome]) -> str:
    ran = next((o.report.figures for o in outcomes if o.report is not None), None)
    if ran is None:
        return f"{path.stem}: no configuration ran"
    return (f"{ran['model']} on {display_name(ran['target'])} · batch {ran['batch']} · context {ran['context']:,} · "
            f"{ran['tokens']} tokens")


def baseline_index(outcomes: Sequence[TargetOutcome]) -> int | None:
    """The row speedups are measured against: the first GPU that ran, else the first row that ran."""
    ran = [i for i, o in enumerate(outcomes) if o.report is not None]
    gpus = [i for i in ran if outcomes[i].kind == "gpu"]
    return next(iter(gpus or ran), None)


def render_targets(outcomes: Sequence[TargetOutcome], title: str) -> str:
    """The machines side by side as text, with speedups and where the time of a token goes."""
    from io import StringIO

    from rich.console import Console
    from rich.table import Table

    base = baseline_index(outcomes)
    base_report = outcomes[base].report if base is not None else None
    table = Table(title=title, title_justify="left")
    for column in ("target", "sockets", "ms/token", "tokens/s/user", "% roofline", "calls/token",
                   f"speedup vs {outcomes[base].spec.label}" if base is not None else "speedup"):
        table.add_column(column, justify="left" if column == "target" else "right")
    for category in CATEGORIES:
        table.add_column(category.replace("_", "/") + " ms", justify="right")
    notes = []
    for o in outcomes:
        if o.report is None:
            notes.append(f"{o.spec.label} did not run: {o.error}")
            table.add_row(o.spec.label, *["—"] * (6 + len(CATEGORIES)))
            continue
        f = o.report.figures
        speedup = base_report.figures["ms_per_token"] / f["ms_per_token"] if base_report is not None else 1.0
        table.add_row(
            o.spec.label, str(f["sockets"]), f"{f['ms_per_token']:.3f}", f"{f['tokens_per_s_per_user']:,.1f}",
            f"{f['peak_fraction']:.1%}", format_calls(f["kernel_calls_per_token"]), f"{speedup:.2f}×",
            *(f"{f['breakdown_ms'][c]:.3f}" for c in CATEGORIES),
        )
    out = StringIO()
    console = Console(file=out, width=200, color_system=None, highlight=False)
    console.print(table)
    for note in notes:
        console.print(note, markup=False)
    return out.getvalue()


def plot_targets(outcomes: Sequence[TargetOutcome], title: str) -> bytes:
    """A PNG: tokens/s per user and fraction of roofline per target (matplotlib, the `plot` extra)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ValueError("--plot needs matplotlib: pip install 'dfdsl[plot]'") from None
    from io import BytesIO

    ran = [(o.spec, o.report) for o in outcomes if o.report is not None]
    labels = [s.label for s, _ in ran]
    fig, (tps, roof) = plt.subplots(1, 2, figsize=(10, 4))
    tps.bar(labels, [r.figures["tokens_per_s_per_user"] for _, r in ran], color="#4c72b0")
    tps.set_ylabel("tokens/s per user")
    roof.bar(labels, [100 * r.figures["peak_fraction"] for _, r in ran], color="#dd8452")
    roof.set_ylabel("% of the HBM roofline")
    roof.set_ylim(0, 100)
    for ax in (tps, roof):
        ax.tick_params(axis="x", rotation=20)
    fig.suptitle(title)
    fig.tight_layout()
    out = BytesIO()
    fig.savefig(out, format="png", dpi=120)
    plt.close(fig)
    return out.getvalue()


def targets_json(outcomes: Sequence[TargetOutcome]) -> list[dict]:
    """Each machine's report dict, or its target, sockets and error."""
    return [o.report.figures if o.report is not None
            else {"target": o.spec.target, "sockets": o.spec.sockets, "error": o.error} for o in outcomes]


def targets_title(outcomes: Sequence[TargetOutcome], fallback: str) -> str:
    ran = next((o.report.figures for o in outcomes if o.report is not None), None)
    if ran is None:
        return fallback
    return f"{ran['model']} · batch {ran['batch']} · context {ran['context']:,} · each target as `dfdsl run` runs it"
