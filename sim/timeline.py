"""The record of one simulated decode step: its events on named tracks, for reports and traces.

`TimelineBuilder` lays the SN40L's kernel calls end to end on the `PCU stages` track with the
costs of `sim/timing.py`, and adds what each iteration keeps busy underneath (HBM, DDR, P2P); the
GPU interpreter builds its own events on a `GPU kernels` track. sim/trace.py draws a `Timeline`.
"""

from __future__ import annotations

import attrs

from dfdsl.hardware import Hardware
from dfdsl.sim.timing import KernelCall, call_timing, resource_times


@attrs.frozen
class Event:
    """One span on a track of the timeline (seconds from the start of the step)."""

    track: str
    name: str
    start_s: float
    duration_s: float
    category: str
    kernel: str = ""
    """The kernel whose call the event is part of ("" for the host)."""


SCHEDULE_TRACKS = ("PCU stages", "GPU kernels", "host")
"""Tracks whose events tile the step end to end; the others show resources busy underneath."""


@attrs.frozen
class Timeline:
    """The events of one decode step on one socket. Tensor-parallel sockets run in lockstep
    (every collective is a barrier), so each of the `sockets` sockets has this same timeline."""

    events: tuple[Event, ...]
    sockets: int
    step_s: float

    def on(self, track: str) -> list[Event]:
        return [e for e in self.events if e.track == track]

    def scheduled_s(self) -> float:
        """Sum of the durations on the schedule tracks: the step time."""
        return sum(e.duration_s for e in self.events if e.track in SCHEDULE_TRACKS)


class TimelineBuilder:
    """Appends the phases of calls one after another, with the resources each iteration uses."""

    def __init__(self, hw: Hardware, batch: int, context: int):
        self.hw = hw
        self.batch = batch
        self.context = context
        self.now_s = 0.0
        self.events: list[Event] = []

    def _schedule(self, name: str, duration_s: float, category: str, kernel: str) -> float:
        start = self.now_s
        self.events.append(Event("PCU stages", name, start, duration_s, category, kernel))
        self.now_s += duration_s
        return start

    def add_call(self, call: KernelCall) -> None:
        """Launch/sync, fill, one event per iteration (with its streams and transfers), drain."""
        timing = call_timing(call, self.hw, self.batch, self.context)
        times = resource_times(call, self.hw, self.batch, self.context)
        kernel = call.kernel
        self._schedule(f"{kernel}: launch/sync", timing.launch_sync_s, "sync", kernel)
        self._schedule(f"{kernel}: fill", timing.fill_s, "fill_drain", kernel)
        for i in range(call.trips):
            duration, category = timing.first_interval if i == 0 else timing.later_interval
            label = f"{kernel}[{i}]" if call.trips > 1 else kernel
            start = self._schedule(label, duration, category, kernel)
            for track, busy_s, kind in (
                ("HBM stream", times.hbm_s, "stream"),
                ("DDR stream", times.ddr_s, "stream"),
                ("P2P", times.p2p_s + times.barrier_s, "collective"),
            ):
                if busy_s > 0:
                    self.events.append(Event(track, label, start, min(busy_s, duration), kind, kernel))
        self._schedule(f"{kernel}: drain", timing.drain_s, "fill_drain", kernel)

    def finish(self, sockets: int) -> Timeline:
        """Closes the step with the host's work and returns the timeline."""
        host_s = self.hw.assumptions.host_per_token_s
        self.events.append(Event("host", "host: next token", self.now_s, host_s, "host"))
        return Timeline(tuple(self.events), sockets, self.now_s + host_s)
