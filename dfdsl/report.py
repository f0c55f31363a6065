"""Decode reports: a simulated run's figures as the JSON contract of `dfdsl run --json`, and as a
table.

Bytes are bytes (integers where they are counts); a figure printed for people says GB (10^9
bytes) or KiB (2^10) explicitly. Two byte figures are kept apart: the parameters a model holds
(`param_bytes`) and the bytes a step must read (`bytes_per_token`: the weights it reads, routed
experts only as far as the batch touches them, plus the KV cache; `dfdsl.footprint`).
`peak_fraction` is the simulated tokens/s per user over the roofline of the same run: the bytes a
step must read streamed at the memory bandwidth of every socket (`SimResult.roofline_bandwidth_bytes_per_s`).
A simulated step streams at most `stream_efficiency` of that bandwidth (on a GPU, the largest of
its kernels' measured efficiencies), so `peak_fraction` never exceeds it (tests/test_report.py checks this over random models and machines). `bound` is the
part of the step's time breakdown that takes longest.
"""

from __future__ import annotations

import math
from typing import Any, Protocol

import attrs
import numpy as np

from dfdsl.footprint import Footprint
from dfdsl.hardware import GpuHardware, Hardware, display_name
from dfdsl.sim.interpreter import SimResult
from dfdsl.sim.composition import Served
from dfdsl.sim.request import Prefill, Speculation
from dfdsl.sim.timeline import Timeline
from dfdsl.sim.timing import CATEGORIES, roofline_tokens_per_s

JSON_KEYS = (
    "model", "target", "sockets", "batch", "context", "tokens", "fusion", "kernel_looping",
    "ms_per_token", "tokens_per_s_per_user", "tokens_per_s", "param_bytes", "kv_bytes",
    "bytes_per_token", "flops_per_token", "flops_per_byte", "peak_fraction",
    "kernel_calls_per_token", "breakdown_ms",
)
"""The keys `dfdsl run --json` always prints (a contract; more may follow them)."""
REQUEST_KEYS = ("prompt", "ttft_ms", "tpot_ms", "request_latency_ms", "prefill_tokens_per_s",
                "prefill_compute_fraction")
"""The keys a run with a prompt (`--prompt P`) adds, a whole request's figures (a contract)."""
SPECULATION_KEYS = ("draft_tokens", "acceptance", "tokens_per_target_step", "draft_time_fraction")
"""The keys a run with a draft model adds, speculative decoding's figures (a contract)."""
COMPOSITION_KEYS = ("experts", "experts_resident", "switch_ms", "request_latency_ms", "hit_rate", "experts_per_node")
"""The keys a run of a Composition of Experts adds (a contract)."""
PIPELINE_KEYS = ("pipeline_stages", "micro_batches", "bubble_fraction", "total_sockets", "internode_ms")
"""The keys a pipelined run (`--pipeline N`, N > 1) adds."""


@attrs.frozen
class RequestFigures:
    """What a run adds to a plain decode: the request's `prompt` (0: none) and output `tokens`,
    the prefill of the model (and then of its draft) before the decode, and speculative decoding."""

    prompt: int = 0
    tokens: int = 0
    prefill: tuple[Prefill, ...] = ()
    speculation: Speculation | None = None


@attrs.frozen
class Report:
    figures: dict
    """The JSON object: `JSON_KEYS` and a few more."""
    timeline: Timeline
    """The first decode step, for traces."""

    def __getitem__(self, key: str):
        return self.figures[key]


class RunFigures(Protocol):
    """What the report reads of a simulated run: a `SimResult`, or many runs of one program as
    numpy arrays (`dfdsl.sim.vectorized.ArrayResult`)."""

    @property
    def sockets(self) -> int: ...
    @property
    def kernel_calls_per_token(self) -> float: ...
    @property
    def batch(self) -> Any: ...
    @property
    def context(self) -> Any: ...
    @property
    def tokens(self) -> Any: ...
    @property
    def ms_per_token(self) -> Any: ...
    @property
    def breakdown_ms(self) -> dict[str, Any]: ...
    @property
    def bytes_per_token(self) -> Any: ...
    @property
    def flops_per_token(self) -> Any: ...
    @property
    def aggregate_hbm_bytes_per_s(self) -> Any: ...
    @property
    def roofline_bandwidth_bytes_per_s(self) -> Any: ...
    @property
    def tokens_per_s_per_user(self) -> Any: ...
    @property
    def tokens_per_s(self) -> Any: ...


def _whole(x: Any) -> Any:
    """Rounded to a whole number (half to even, as `round`): an int, or an int64 array."""
    return round(x) if isinstance(x, float | int) else np.rint(x).astype(np.int64)


def decode_figures(result: RunFigures, fp: Footprint) -> dict[str, Any]:
    """The report's numbers (`JSON_KEYS` but the names, and the roofline's), for one run or, with
    arrays, for many: one formula for `dfdsl run` and for sweeps."""
    # The run's steps see contexts context .. context + tokens - 1; its roofline uses their mean.
    mean_context = result.context + (result.tokens - 1) / 2
    kv_bytes = fp.kv_bytes_read(result.batch, mean_context)
    weight_bytes = fp.weight_bytes_read(result.batch)
    bytes_per_token = weight_bytes + kv_bytes
    roofline = roofline_tokens_per_s(result.roofline_bandwidth_bytes_per_s, bytes_per_token)
    return {
        "sockets": result.sockets,
        "batch": result.batch,
        "context": result.context,
        "tokens": result.tokens,
        "ms_per_token": result.ms_per_token,
        "tokens_per_s_per_user": result.tokens_per_s_per_user,
        "tokens_per_s": result.tokens_per_s,
        "param_bytes": fp.param_bytes,
        "kv_bytes": _whole(kv_bytes),
        "bytes_per_token": _whole(bytes_per_token),
        "flops_per_token": _whole(result.flops_per_token),
        "flops_per_byte": result.flops_per_token / bytes_per_token,
        "peak_fraction": result.tokens_per_s_per_user / roofline,
        "kernel_calls_per_token": result.kernel_calls_per_token,
        "breakdown_ms": {k: result.breakdown_ms[k] for k in CATEGORIES},
        "roofline_tokens_per_s_per_user": roofline,
        "expert_bytes_read_fraction": fp.expert_fraction_read(result.batch),
        "read_bytes_per_token_all_sockets": _whole(result.bytes_per_token),
        "hbm_bandwidth_bytes_per_s": result.aggregate_hbm_bytes_per_s,
        "weight_bytes_read": _whole(weight_bytes),
        "roofline_bandwidth_bytes_per_s": result.roofline_bandwidth_bytes_per_s,
    }


EXTRA_KEYS = ("roofline_tokens_per_s_per_user", "expert_bytes_read_fraction", "read_bytes_per_token_all_sockets",
              "hbm_bandwidth_bytes_per_s", "weight_bytes_read", "roofline_bandwidth_bytes_per_s")
"""The figures of `decode_figures` a report prints after `JSON_KEYS`."""


def make_report(result: SimResult, fp: Footprint, hardware: Hardware | GpuHardware, *, fusion: str,
                kernel_looping: bool, request: RequestFigures = RequestFigures()) -> Report:
    numbers = decode_figures(result, fp)
    figures = {"model": result.model, "target": result.target, "fusion": fusion, "kernel_looping": kernel_looping}
    figures = {key: figures[key] if key in figures else numbers[key] for key in JSON_KEYS}
    for key in EXTRA_KEYS:
        figures[key] = numbers[key]
    # What bounds the step is the part of its time breakdown that takes longest.
    figures["bound"] = max(CATEGORIES, key=lambda k: result.breakdown_ms[k])
    figures["ridge_flops_per_byte"] = hardware.chip.peak_flops_per_s / hardware.hbm.bandwidth_bytes_per_s
    figures["roofline_reads_ddr"] = result.ddr_bytes_per_token > 0
    figures["unit"] = hardware.unit
    if request.prompt:
        figures.update(_request_figures(result, hardware, request))
    if request.speculation is not None:
        figures.update(_speculation_figures(request.speculation))
    if result.pipeline_stages > 1:
        figures.update(_pipeline_figures(result))
    _check_figures(figures)
    return Report(figures, result.timeline)


class ReportError(RuntimeError):
    """A figure came out NaN, infinite or negative. Every input was checked (hardware values by
    `dfdsl.hardware`, run settings by the front end), so this is a bug in dfdsl, never printed as a number."""


def _check_figures(figures: dict, prefix: str = "") -> None:
    """Every number of the report (times, rates, bytes, fractions) is finite and not negative."""
    for key, value in figures.items():
        if isinstance(value, dict):
            _check_figures(value, f"{prefix}{key}.")
        elif isinstance(value, int | float) and not isinstance(value, bool) and not 0 <= value < math.inf:
            raise ReportError(f"the report's {prefix}{key} came out {value!r}; a figure must be finite and "
                              "not negative")


def _request_figures(result: SimResult, hardware: Hardware | GpuHardware, request: RequestFigures) -> dict:
    """TTFT is the prefill (the model's, then its draft's); the request's other output tokens each
    take the decode's mean time per output token. FLOPs and peak are per socket, so their ratio is
    the fraction of the sockets' peak compute the prefill reached."""
    ttft_s = sum(p.total_s for p in request.prefill)
    ttft_ms = ttft_s * 1e3
    flops = sum(p.flops for p in request.prefill)
    return {
        "tokens": request.tokens,
        "prompt": request.prompt,
        "ttft_ms": ttft_ms,
        "tpot_ms": result.ms_per_token,
        "request_latency_ms": ttft_ms + max(request.tokens - 1, 0) * result.ms_per_token,
        "prefill_tokens_per_s": result.batch * request.prompt / ttft_s,
        "prefill_compute_fraction": flops / (ttft_s * hardware.chip.peak_flops_per_s),
        "prefill_flops": round(result.sockets * flops),
        "prefill_passes": len(request.prefill[0].passes),
        "prefill_breakdown_ms": {c: sum(s.breakdown_s[c] for p in request.prefill for s in p.passes) * 1e3
                                 for c in CATEGORIES},
    }


PIPELINE_CATEGORIES = ("internode", "pipeline_wait")
"""The breakdown's parts that only a pipeline has; tables leave them out of other runs."""


def table_categories(pipelined: bool) -> tuple[str, ...]:
    """The breakdown's parts a table shows: the pipeline's only for a pipelined run."""
    return tuple(c for c in CATEGORIES if pipelined or c not in PIPELINE_CATEGORIES)


def _pipeline_figures(result: SimResult) -> dict:
    return {
        "pipeline_stages": result.pipeline_stages,
        "micro_batches": result.micro_batches,
        "bubble_fraction": result.bubble_fraction,
        "total_sockets": result.pipeline_stages * result.sockets,
        "internode_ms": result.breakdown_ms["internode"],
    }


def _speculation_figures(speculation: Speculation) -> dict:
    return {
        "draft_tokens": speculation.draft_tokens,
        "acceptance": speculation.acceptance,
        "tokens_per_target_step": speculation.tokens_per_round,
        "draft_time_fraction": speculation.draft_time_fraction,
        "plain_ms_per_token": speculation.plain.ms_per_token,
    }
def machine_label(count: int, unit: str, target: str) -> str:
    """`8 sockets of sn40l`, `8 GPUs of dgx-h100`: what a run ran on, for titles."""
    return f"{count} {unit}{'' if count == 1 else 's'} of {display_name(target)}"


def composition_figures(expert: dict, served: Served, *, name: str, experts: int, slots: int, switch_s: float,
                        experts_per_node: int, batch: int) -> dict:
    """A composition's report: the first request's expert run (`expert`, its decode figures at
    batch 1) under the composition's name and the run's batch, then `COMPOSITION_KEYS` and the
    stream's means. `experts_per_node` is the footprint: the experts one node serves at
    tensor-parallel latency."""
    figures = {**expert, "model": name, "batch": batch}
    requests = len(served.latency_s)
    figures.update({
        "experts": experts,
        "experts_resident": slots,
        "switch_ms": switch_s * 1e3,
        "request_latency_ms": float(served.latency_s.mean()) * 1e3,
        "hit_rate": float(served.residency.hits.mean()),
        "experts_per_node": experts_per_node,
        "requests": requests,
        "nodes": served.nodes,
        "nodes_at_tp_latency": -(-experts // experts_per_node),
        "misses": served.residency.misses,
        "evictions": served.residency.evictions,
        "router_ms": float(served.router_s.mean()) * 1e3,
        "mean_switch_ms": float(served.switch_s.mean()) * 1e3,
        "prefill_ms": float(served.prefill_s.mean()) * 1e3,
        "decode_ms": float(served.decode_s.mean()) * 1e3,
    })
    for key in ("prompt", "ttft_ms", "tpot_ms", "prefill_tokens_per_s", "prefill_compute_fraction", "prefill_flops",
                "prefill_passes", "prefill_breakdown_ms"):
        figures.pop(key, None)
    _check_figures(figures)
    return figures


def render_composition(report: Report) -> str:
    """A composition's report for people: its stream's figures, then its expert's decode."""
    f = report.figures
    title = (f"{f['model']}: {f['experts']} experts on {machine_label(f['sockets'], f['unit'], f['target'])} · "
             f"{f['requests']:,} requests · batch {f['batch']}")
    rows = _section(f, "experts", COMPOSITION_ROWS)
    return _figure_table(title, [rows])


def _figure_table(title: str, sections: list[list[tuple[str, str]]], width: int = 110) -> str:
    """A titled table of (figure, value) rows, its non-empty sections ruled apart, as plain text."""
    from io import StringIO

    from rich.console import Console
    from rich.table import Table

    table = Table(show_header=False)
    table.add_column("figure", style="bold")
    table.add_column("value", justify="right")
    for i, section in enumerate(s for s in sections if s):
        if i:
            table.add_section()
        for name, value in section:
            table.add_row(name, value)
    out = StringIO()
    console = Console(file=out, width=width, color_system=None, highlight=False)
    console.print(title, markup=False)
    console.print(table)
    return out.getvalue()


def _gb(n: float) -> str:
    return f"{n / 1e9:,.2f} GB"


def render_table(report: Report) -> str:
    """The human report: a rich table, rendered to text (no colour when not on a terminal)."""
    f = report.figures
    start = f"prompt {f['prompt']:,}" if "prompt" in f else f"context {f['context']:,}"
    stages = f"{f['pipeline_stages']} pipeline stages of " if "pipeline_stages" in f else ""
    title = (f"{f['model']} on {stages}{machine_label(f['sockets'], f['unit'], f['target'])} · batch {f['batch']} · {start} · "
             f"{f['tokens']} tokens · fusion {f['fusion']} · kernel looping "
             f"{'on' if f['kernel_looping'] else 'off'}")
    memories = "HBM + DDR" if f["roofline_reads_ddr"] else "HBM"
    total = f["ms_per_token"]
    rows = [
        ("ms per token", f"{total:.3f}"),
        ("tokens/s per user", f"{f['tokens_per_s_per_user']:,.1f}"),
        ("tokens/s (all users)", f"{f['tokens_per_s']:,.1f}"),
        (f"{memories} roofline, tokens/s per user", f"{f['roofline_tokens_per_s_per_user']:,.1f}"),
        ("fraction of roofline", f"{f['peak_fraction']:.1%}"
                                 + ("  (speculative decoding)" if "draft_tokens" in f else "")),
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
        ("kernel calls per token", format_calls(f["kernel_calls_per_token"])),
    ]
    breakdown = [(f"  {category.replace('_', '/')}", f"{f['breakdown_ms'][category]:.3f} ms  "
                  f"{f['breakdown_ms'][category] / total:6.1%}")
                 for category in table_categories("pipeline_stages" in f)]
    sections = [_section(f, when, section) for when, section in OPTIONAL_SECTIONS]
    return _figure_table(title, [rows, *sections, breakdown], width=120)


def format_calls(calls: float) -> str:
    """Calls per token: a whole number per decode step, a mean per token with speculative decoding."""
    return str(calls) if isinstance(calls, int) else f"{calls:.2f}"


Rows = tuple[tuple[str, str], ...]
"""A section of a table as data: each row's label and value, format strings (`str.format_map`)
over the report's figures and the words `_words` makes of them."""

REQUEST_ROWS: Rows = (
    ("time to first token", "{ttft_ms:,.1f} ms  ({prompt:,} prompt tokens, {passes})"),
    ("time per output token", "{tpot_ms:.3f} ms"),
    ("request latency ({tokens} tokens)", "{request_latency_ms:,.1f} ms"),
    ("prefill tokens/s", "{prefill_tokens_per_s:,.0f}"),
    ("prefill: fraction of peak compute", "{prefill_compute_fraction:.1%}"),
)
SPECULATION_ROWS: Rows = (
    ("speculative decoding", "{draft_tokens} draft tokens per step, acceptance {acceptance:g}"),
    ("tokens per target step", "{tokens_per_target_step:.2f}"),
    ("draft share of decode time", "{draft_time_fraction:.1%}"),
    ("ms per token without the draft", "{plain_ms_per_token:.3f}"),
)
PIPELINE_ROWS: Rows = (
    ("pipeline", "{pipeline_stages} stages × {sockets} sockets = {total_sockets} sockets, "
                 "{micro_batches} micro-batch{micro_batches_plural}"),
    ("pipeline bubble (stages idle)", "{bubble_fraction:.1%}"),
    ("inter-node transfers per token", "{internode_ms:.3f} ms"),
)
OPTIONAL_SECTIONS: tuple[tuple[str, Rows], ...] = (
    ("prompt", REQUEST_ROWS), ("draft_tokens", SPECULATION_ROWS), ("pipeline_stages", PIPELINE_ROWS),
)
"""The sections a decode's table adds when its report has the figure named first."""
COMPOSITION_ROWS: Rows = (
    ("experts resident in HBM", "{experts_resident} of {experts}"),
    ("HBM hit rate", "{hit_rate:.1%}  ({misses:,} misses, {evictions:,} evictions)"),
    ("switch (one expert's copy)", "{switch_ms:.2f} ms"),
    ("request latency (mean)", "{request_latency_ms:,.1f} ms"),
    ("  router (its group's prefill)", "{router_ms:.2f} ms"),
    ("  switch (mean over requests)", "{mean_switch_ms:.2f} ms"),
    ("  prefill", "{prefill_ms:.2f} ms"),
    ("  decode", "{decode_ms:.2f} ms"),
    ("  waiting for the group's earlier requests", "{waiting_ms:.2f} ms"),
    ("experts per node (at tensor-parallel latency)", "{experts_per_node:,}"),
    ("nodes (serving this stream; at tensor-parallel latency)", "{nodes}; {nodes_at_tp_latency}"),
    ("expert decode, ms per token", "{ms_per_token:.3f}"),
)


def _words(f: dict) -> dict[str, Any]:
    """What the rows print that is not a figure of the report, made of the figures it has."""
    words: dict[str, Any] = {}
    if "prefill_passes" in f:
        words["passes"] = f"{f['prefill_passes']} passes" if f["prefill_passes"] > 1 else "one pass"
    if "micro_batches" in f:
        words["micro_batches_plural"] = "es" if f["micro_batches"] > 1 else ""
    if "router_ms" in f:
        waiting = f["request_latency_ms"] - f["router_ms"] - f["mean_switch_ms"] - f["prefill_ms"] - f["decode_ms"]
        words["waiting_ms"] = max(waiting, 0.0)
    return words


def _section(f: dict, when: str, rows: Rows) -> list[tuple[str, str]]:
    """The rows filled in with the report's figures; none when the report has no figure `when`."""
    if when not in f:
        return []
    values = {**f, **_words(f)}
    return [(label.format_map(values), value.format_map(values)) for label, value in rows]
