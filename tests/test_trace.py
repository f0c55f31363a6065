"""Traces of one decode step: the schedule tracks tile the step end to end in the timeline and in
the Chrome/Perfetto JSON, resources are busy only inside their iteration, every traced socket shows
the same events, and `dfdsl run --trace` writes the file whole or not at all."""

from __future__ import annotations

import json
import os
from functools import cache
from pathlib import Path

import pytest

from dfdsl.cli import main as cli_main
from dfdsl.report import Report
from dfdsl.driver import CompileOptions, run_model
from dfdsl.sim.timeline import SCHEDULE_TRACKS
from dfdsl.sim.trace import MAX_TRACED_SOCKETS, trace_events, trace_json

EXAMPLES = Path(__file__).parent.parent / "examples"
LLAMA = EXAMPLES / "llama3_1_8b.dfl"


@cache
def _report(looping: bool, sockets: int = 16) -> Report:
    return run_model(LLAMA, {"sockets": sockets, "tokens": 2}, CompileOptions(kernel_looping=looping))


@pytest.mark.parametrize("looping", [True, False])
def test_the_schedule_tracks_add_up_to_the_first_step(looping):
    report = _report(looping)
    timeline = report.timeline
    assert timeline.scheduled_s() == pytest.approx(timeline.step_s, rel=1e-12)
    # The timeline is the first step; the reported figure averages two steps with growing context.
    assert timeline.step_s * 1e3 == pytest.approx(report["ms_per_token"], rel=1e-3)
    assert timeline.step_s * 1e3 <= report["ms_per_token"]
    schedule = sorted((e for e in timeline.events if e.track in SCHEDULE_TRACKS), key=lambda e: e.start_s)
    for before, after in zip(schedule, schedule[1:]):
        assert after.start_s == pytest.approx(before.start_s + before.duration_s, abs=1e-15)
    iterations = [e for e in timeline.on("PCU stages") if not e.name.endswith(("launch/sync", "fill", "drain"))]
    assert len([e for e in timeline.on("PCU stages") if e.name.endswith("launch/sync")]) == (
        report["kernel_calls_per_token"])
    assert len(iterations) == (35 if not looping else 3 + 32)


def test_resources_are_busy_only_inside_their_iteration():
    timeline = _report(True).timeline
    iterations = {e.name: e for e in timeline.on("PCU stages")}
    busy = [e for e in timeline.events if e.track not in SCHEDULE_TRACKS]
    assert busy
    for event in busy:
        iteration = iterations[event.name]
        assert event.start_s == iteration.start_s
        assert event.duration_s <= iteration.duration_s


@pytest.mark.parametrize("looping", [True, False])
def test_the_trace_json_loads_and_its_schedule_threads_add_up_to_the_step(looping):
    timeline = _report(looping).timeline
    trace = json.loads(trace_json(timeline, model="llama3_1_8b"))
    events = trace["traceEvents"]
    assert trace["otherData"]["step_ms"] == pytest.approx(timeline.step_s * 1e3)
    pids = sorted({e["pid"] for e in events})
    assert pids == list(range(min(timeline.sockets, MAX_TRACED_SOCKETS)))
    threads = {(e["pid"], e["tid"]): e["args"]["name"] for e in events if e["name"] == "thread_name"}
    for pid in pids:
        spans = [e for e in events if e["ph"] == "X" and e["pid"] == pid
                 and threads[(pid, e["tid"])] in SCHEDULE_TRACKS]
        # Times are rounded to 10^-4 us each.
        assert sum(e["dur"] for e in spans) == pytest.approx(timeline.step_s * 1e6, abs=1e-4 * len(spans))
    per_socket = [[(e["name"], e["ts"], e["dur"]) for e in events if e["ph"] == "X" and e["pid"] == pid]
                  for pid in pids]
    assert all(events_of_socket == per_socket[0] for events_of_socket in per_socket)


def test_a_trace_of_several_steps_repeats_the_step():
    timeline = _report(True, sockets=8).timeline
    one = [e for e in trace_events(timeline, model="m")["traceEvents"] if e["ph"] == "X"]
    three = [e for e in trace_events(timeline, model="m", steps=3)["traceEvents"] if e["ph"] == "X"]
    assert len(three) == 3 * len(one)
    last = max(three, key=lambda e: e["ts"] + e["dur"])
    assert last["ts"] + last["dur"] == pytest.approx(3 * timeline.step_s * 1e6, abs=1e-3)


def test_run_writes_the_trace_and_says_where(tmp_path, capsys):
    path = tmp_path / "step.json"
    path.write_text("an older, longer trace that must be replaced whole " * 1000)
    assert cli_main(["run", str(LLAMA), "--tokens", "2", "--trace", str(path)]) == 0
    trace = json.loads(path.read_text())
    assert trace["otherData"]["model"] == "llama3_1_8b"
    assert "trace of one decode step written to" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step.json"]


def test_run_leaves_no_half_written_trace_when_the_write_fails(tmp_path, monkeypatch, capsys):
    path = tmp_path / "step.json"
    path.write_text("the previous trace")

    def fail(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", fail)
    assert cli_main(["run", str(LLAMA), "--tokens", "2", "--trace", str(path)]) == 2
    assert "cannot write" in capsys.readouterr().err
    assert path.read_text() == "the previous trace"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step.json"]


def test_run_refuses_to_write_the_trace_over_its_input(tmp_path, capsys):
    model = tmp_path / "model.dfl"
    model.write_text(LLAMA.read_text())
    assert cli_main(["run", str(model), "--tokens", "2", "--trace", str(model)]) == 2
    assert "refusing to overwrite the input" in capsys.readouterr().err
    assert model.read_text() == LLAMA.read_text()
