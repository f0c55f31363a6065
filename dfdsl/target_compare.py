"""`dfdsl compare --targets`: one model on several machines, side by side, and a plot of it.

Each target runs as `dfdsl run` would run it there (SN40L: whole-layer fusion and kernel looping;
a GPU: its own kernel partition, no looping). The table shows what decides the difference: the
kernel calls per token and where the time of a token goes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import attrs

from dfdsl.report import Report
from dfdsl.runner import Variant, run_model
from dfdsl.sim.timing import CATEGORIES


@attrs.frozen
class TargetSpec:
    target: str
    sockets: int | None

    @property
    def label(self) -> str:
        return self.target if self.sockets is None else f"{self.target}:{self.sockets}"


def parse_targets(text: str) -> list[TargetSpec]:
    """`sn40l:8,sn40l:16,dgx-h100` -> specs; a missing count keeps the file's (or the machine's)."""
    specs = []
    for item in text.split(","):
        name, _, count = item.strip().partition(":")
        if not name:
            continue
        if count and (not count.isdigit() or int(count) < 1):
            raise ValueError(f"--targets: bad socket count in {item.strip()!r}; write NAME:N, e.g. sn40l:16")
        specs.append(TargetSpec(name.replace("-", "_"), int(count) if count else None))
    if not specs:
        raise ValueError("--targets needs at least one target, e.g. sn40l:8,sn40l:16,dgx-h100")
    return specs


def run_targets(path: Path, overrides: Mapping[str, int | str], specs: Sequence[TargetSpec]) -> list[Report | str]:
    """A report per target, or the reason it could not run (a capacity or divisibility error)."""
    from xdsl.utils.exceptions import DiagnosticException

    results: list[Report | str] = []
    for spec in specs:
        values = dict(overrides, target=spec.target)
        if spec.sockets is not None:
            values["sockets"] = spec.sockets
        elif spec.target != "sn40l":
            values.pop("sockets", None)
        try:
            results.append(run_model(path, values, Variant(kernel_looping=None)))
        except DiagnosticException as err:
            results.append(" ".join(str(err).split()))
    return results


def baseline_index(specs: Sequence[TargetSpec], results: Sequence[Report | str]) -> int | None:
    """The row speedups are measured against: the first GPU that ran, else the first row that ran."""
    ran = [i for i, r in enumerate(results) if isinstance(r, Report)]
    gpus = [i for i in ran if "h100" in specs[i].target or "gpu" in specs[i].target]
    return (gpus or ran or [None])[0]


def render(specs: Sequence[TargetSpec], results: Sequence[Report | str], title: str) -> str:
    from io import StringIO

    from rich.console import Console
    from rich.table import Table

    base = baseline_index(specs, results)
    table = Table(title=title, title_justify="left")
    for column in ("target", "sockets", "ms/token", "tokens/s/user", "% roofline", "calls/token",
                   f"speedup vs {specs[base].label}" if base is not None else "speedup"):
        table.add_column(column, justify="left" if column == "target" else "right")
    for category in CATEGORIES:
        table.add_column(category.replace("_", "/") + " ms", justify="right")
    notes = []
    for spec, result in zip(specs, results):
        if isinstance(result, str):
            notes.append(f"{spec.label} did not run: {result}")
            table.add_row(spec.label, *["—"] * (6 + len(CATEGORIES)))
            continue
        f = result.figures
        speedup = results[base].figures["ms_per_token"] / f["ms_per_token"] if base is not None else 1.0  # type: ignore[union-attr]
        table.add_row(
            spec.label, str(f["sockets"]), f"{f['ms_per_token']:.3f}", f"{f['tokens_per_s_per_user']:,.1f}",
            f"{f['peak_fraction']:.1%}", str(f["kernel_calls_per_token"]), f"{speedup:.2f}×",
            *(f"{f['breakdown_ms'][c]:.3f}" for c in CATEGORIES),
        )
    out = StringIO()
    console = Console(file=out, width=200, color_system=None, highlight=False)
    console.print(table)
    for note in notes:
        console.print(note, markup=False)
    return out.getvalue()


def plot(specs: Sequence[TargetSpec], results: Sequence[Report | str], title: str) -> bytes:
    """A PNG: tokens/s per user and fraction of roofline per target (matplotlib, the `plot` extra)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ValueError("--plot needs matplotlib: pip install 'dfdsl[plot]'") from None
    from io import BytesIO

    ran = [(s, r) for s, r in zip(specs, results) if isinstance(r, Report)]
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
