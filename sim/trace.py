"""Chrome/Perfetto trace-event JSON from a simulated timeline.

One process per socket, one thread per resource (PCU stages, HBM stream, DDR stream, P2P, host);
times in microseconds as the format wants. Tensor-parallel sockets run in lockstep, so every
socket shows the same events. Open the file at ui.perfetto.dev or chrome://tracing.
"""

from __future__ import annotations

import json

from dfdsl.sim.timeline import Timeline

MAX_TRACED_SOCKETS = 16
"""Sockets drawn in a trace; beyond this they repeat the same lockstep events, so we stop."""


def trace_events(timeline: Timeline, *, model: str, steps: int = 1) -> dict:
    """The trace of `steps` consecutive copies of the timeline (the first decode step)."""
    tracks = sorted({e.track for e in timeline.events})
    events: list[dict] = []
    for socket in range(min(timeline.sockets, MAX_TRACED_SOCKETS)):
        events.append({"name": "process_name", "ph": "M", "pid": socket, "tid": 0,
                       "args": {"name": f"{model} · socket {socket}"}})
        for tid, track in enumerate(tracks):
            events.append({"name": "thread_name", "ph": "M", "pid": socket, "tid": tid,
                           "args": {"name": track}})
        for step in range(steps):
            offset_us = step * timeline.step_s * 1e6
            for e in timeline.events:
                events.append({
                    "name": e.name, "cat": e.category, "ph": "X", "pid": socket,
                    "tid": tracks.index(e.track),
                    "ts": round(offset_us + e.start_s * 1e6, 4),
                    "dur": round(e.duration_s * 1e6, 4),
                    "args": {"step": step},
                })
    return {"traceEvents": events, "displayTimeUnit": "ns",
            "otherData": {"model": model, "sockets": timeline.sockets, "step_ms": timeline.step_s * 1e3}}


def trace_json(timeline: Timeline, *, model: str, steps: int = 1) -> str:
    return json.dumps(trace_events(timeline, model=model, steps=steps), separators=(",", ":"))
