"""Decode reports: a simulated run's figures as the JSON contract of `dfdsl run --json`, and as a
table.

Bytes are bytes (integers where they are counts); a figure printed for people says GB (10^9
bytes) or KiB (2^10) explicitly. Two byte figures are kept apart: the parameters a model holds
(`param_bytes`) and the bytes a step must read (`bytes_per_token`: the weights it reads, routed
experts only as far as the batch touches them, plus the KV cache; `dfdsl.footprint`).
`peak_fraction` is the simulated tokens/s per user over the roofline of the same run: the bytes a
step must read streamed at the memory bandwidth of every socket (`SimResult.roofline_bandwidth_bytes_per_s`).
A simulated step streams at most `stream_efficiency` of that bandwidth, so `peak_fraction` never
exceeds it (tests/test_report.py checks this over random models and machines). `bound` is the
part of the step's time breakdown that takes longest.
"""

from __future__ import annotations

import attrs

from dfdsl.footprint import Footprint
from dfdsl.hardware import GpuHardware, Hardware, display_name
from dfdsl.sim.interpreter import SimResult
from dfdsl.sim.timeline import Timeline
from dfdsl.sim.timing import CATEGORIES, roofline_tokens_per_s

JSON_KEYS = (
    "model", "target", "sockets", "batch", "context", "tokens", "fusion", "kernel_looping",
    "ms_per_token", "tokens_per_s_per_user", "tokens_per_s", "param_bytes", "kv_bytes",
    "bytes_per_token", "flops_per_token", "flops_per_byte", "peak_fraction",
    "kernel_calls_per_token", "breakdown_ms",
)
"""The keys `dfdsl run --json` always prints (a contract; more may follow them)."""


@attrs.frozen
class Report:
    figures: dict
    """The JSON object: `JSON_KEYS` and a few more."""
    timeline: Timeline
    """The first decode step, for traces."""

    def __getitem__(self, key: str):
        return self.figures[key]


def make_report(result: SimResult, fp: Footprint, hardware: Hardware | GpuHardware, *, fusion: str,
                kernel_looping: bool) -> Report:
    # The run's steps see contexts context .. context + tokens - 1; its roofline uses their mean.
    mean_context = result.context + (result.tokens - 1) / 2
    kv_bytes = fp.kv_bytes_read(mean_context)
    bytes_per_token = fp.bytes_per_step(mean_context)
    roofline = roofline_tokens_per_s(result.roofline_bandwidth_bytes_per_s, bytes_per_token)
    ridge = hardware.chip.peak_flops_per_s / hardware.hbm.bandwidth_bytes_per_s
    flops_per_byte = result.flops_per_token / bytes_per_token
    figures = {
        "model": result.model,
        "target": result.target,
        "sockets": result.sockets,
        "batch": result.batch,
        "context": result.context,
        "tokens": result.tokens,
        "fusion": fusion,
        "kernel_looping": kernel_looping,
        "ms_per_token": result.ms_per_token,
        "tokens_per_s_per_user": result.tokens_per_s_per_user,
        "tokens_per_s": result.tokens_per_s,
        "param_bytes": fp.param_bytes,
        "kv_bytes": round(kv_bytes),
        "bytes_per_token": round(bytes_per_token),
        "flops_per_token": round(result.flops_per_token),
        "flops_per_byte": flops_per_byte,
        "peak_fraction": result.tokens_per_s_per_user / roofline,
        "kernel_calls_per_token": result.kernel_calls_per_token,
        "breakdown_ms": {k: result.breakdown_ms[k] for k in CATEGORIES},
        "roofline_tokens_per_s_per_user": roofline,
        "bound": max(CATEGORIES, key=lambda k: result.breakdown_ms[k]),
        "ridge_flops_per_byte": ridge,
        "expert_bytes_read_fraction": fp.expert_fraction_read,
        "read_bytes_per_token_all_sockets": round(result.bytes_per_token),
        "hbm_bandwidth_bytes_per_s": result.aggregate_hbm_bytes_per_s,
        "weight_bytes_read": round(fp.weight_bytes_read),
        "roofline_bandwidth_bytes_per_s": result.roofline_bandwidth_bytes_per_s,
        "roofline_reads_ddr": result.ddr_bytes_per_token > 0,
        "unit": hardware.unit,
    }
    return Report(figures, result.timeline)


def machine_label(count: int, unit: str, target: str) -> str:
    """`8 sockets of sn40l`, `8 GPUs of dgx-h100`: what a run ran on, for titles."""
    return f"{count} {unit}{'' if count == 1 else 's'} of {display_name(target)}"


def _gb(n: float) -> str:
    return f"{n / 1e9:,.2f} GB"


def render_table(report: Report) -> str:
    """The human report: a rich table, rendered to text (no colour when not on a terminal)."""
    from io import StringIO

    from rich.console import Console
    from rich.table import Table

    f = report.figures
    title = (f"{f['model']} on {machine_label(f['sockets'], f['unit'], f['target'])} · batch {f['batch']} · context {f['context']:,} · "
             f"{f['tokens']} tokens · fusion {f['fusion']} · kernel looping "
             f"{'on' if f['kernel_looping'] else 'off'}")
    table = Table(show_header=False)
    table.add_column("figure", style="bold")
    table.add_column("value", justify="right")
    memories = "HBM + DDR" if f["roofline_reads_ddr"] else "HBM"
    total = f["ms_per_token"]
    rows = [
        ("ms per token", f"{total:.3f}"),
        ("tokens/s per user", f"{f['tokens_per_s_per_user']:,.1f}"),
        ("tokens/s (all users)", f"{f['tokens_per_s']:,.1f}"),
        (f"{memories} roofline, tokens/s per user", f"{f['roofline_tokens_per_s_per_user']:,.1f}"),
        ("fraction of roofline", f"{f['peak_fraction']:.1%}"),
        ("parameters held", _gb(f["param_bytes"])),
        ("bytes a step must read", f"{_gb(f['bytes_per_token'])}  ({_gb(f['weight_bytes_read'])} weights "
                                   f"+ {_gb(f['kv_bytes'])} KV)"),
    ]
    if f["expert_bytes_read_fraction"] < 1.0:
        rows.append(("routed experts read per step", f"{f['expert_bytes_read_fraction']:.1%} "
                     "(expected distinct experts, uniform routing)"))
    rows += [
        ("FLOPs per token", f"{f['flops_per_token'] / 1e9:,.2f} GFLOP"),
        ("FLOPs per byte", f"{f['flops_per_byte']:.2f}  (ridge {f['ridge_flops_per_byte']:.0f})"),
        ("bound by", f"{f['bound'].replace('_', '/')}  ({f['breakdown_ms'][f['bound']] / total:.1%} of the step)"),
        ("kernel calls per token", f"{f['kernel_calls_per_token']}"),
    ]
    for name, value in rows:
        table.add_row(name, value)
    table.add_section()
    for category, ms in f["breakdown_ms"].items():
        table.add_row(f"  {category.replace('_', '/')}", f"{ms:.3f} ms  {ms / total:6.1%}")
    out = StringIO()
    console = Console(file=out, width=120, color_system=None, highlight=False)
    console.print(title, markup=False)
    console.print(table)
    return out.getvalue()
