"""The timing model's pieces against hand computation, and its invariants as properties."""

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dfdsl.sim import timing
from dfdsl.hardware import load_hardware
from dfdsl.sim.timeline import SCHEDULE_TRACKS, TimelineBuilder
from dfdsl.sim.timing import Affine, AllReduce, ExpertRead, IterationWork, KernelCall

HW = load_hardware("sn40l")
A = HW.assumptions
US = 1e-6


def test_a_layer_of_llama_8b_at_16_sockets_streams_in_about_19_us():
    layer_bytes_per_socket = 27_260_000  # 218 M parameters per layer, BF16, over 16 sockets
    seconds = timing.stream_time_s(layer_bytes_per_socket, HW.hbm.bandwidth_bytes_per_s, A.stream_efficiency)
    assert seconds == pytest.approx(layer_bytes_per_socket / (0.9 * 1.6e12))
    assert 18 * US < seconds < 20 * US


def test_compute_uses_the_kernels_share_of_the_pcus():
    full = timing.compute_time_s(1e12, 638e12, 0.5, 1.0)
    assert full == pytest.approx(1e12 / 319e12)
    assert timing.compute_time_s(1e12, 638e12, 0.5, 0.5) == pytest.approx(2 * full)


def test_allreduce_on_one_flat_network():
    transfer, latency = timing.allreduce_time_s(8192, 16, "one-shot", 50e9, 1.5 * US)
    assert transfer == pytest.approx(15 * 8192 / 50e9)
    assert latency == 1.5 * US
    transfer, latency = timing.allreduce_time_s(8192, 16, "ring", 50e9, 1.5 * US)
    assert transfer == pytest.approx(30 * 8192 / 16 / 50e9)
    assert latency == pytest.approx(30 * 1.5 * US)
    assert timing.allreduce_time_s(8192, 16, "two-shot", 50e9, 1.5 * US) == (pytest.approx(30 * 8192 / 16 / 50e9),
                                                                              pytest.approx(3 * US))
    assert timing.allreduce_time_s(8192, 1, "one-shot", 50e9, 1.5 * US) == (0.0, 0.0)


LINKS = timing.Links(50e9, 1.5 * US, 8, 25e9, 4 * US)


def test_each_algorithm_by_hand_on_a_node_and_a_rack():
    m = 1_000_000.0
    node = timing.collective_options("all_reduce", m, 8, LINKS)
    assert list(node) == ["one-shot", "two-shot", "ring"]  # 8 sockets are one node: no tree
    assert node["one-shot"] == (pytest.approx(7 * m / 50e9), 1.5 * US)
    assert node["two-shot"] == (pytest.approx(2 * 7 / 8 * m / 50e9), pytest.approx(3 * US))
    assert node["ring"] == (pytest.approx(2 * 7 / 8 * m / 50e9), pytest.approx(14 * 1.5 * US))
    rack = timing.collective_options("all_reduce", m, 16, LINKS)
    # Across nodes a flat algorithm runs at the slower links; the tree keeps the node's inside.
    assert rack["two-shot"] == (pytest.approx(2 * 15 / 16 * m / 25e9), pytest.approx(8 * US))
    assert rack["tree"] == (pytest.approx(2 * 7 / 8 * m / 50e9 + m / 8 / 25e9), pytest.approx(3 * US + 4 * US))
    assert timing.choose(rack, "auto") == "tree"
    assert "tree" not in timing.collective_options("all_reduce", m, 12, LINKS)  # 12 is not whole nodes


def test_a_two_shot_all_reduce_is_a_reduce_scatter_then_an_all_gather():
    m = 65536.0
    # Each socket contributes its whole partial sum to the reduce-scatter, its 1/8 share to the all-gather.
    scatter = timing.collective_options("reduce_scatter", m, 8, LINKS)
    gather = timing.collective_options("all_gather", m / 8, 8, LINKS)
    assert scatter == gather == {"one-shot": (pytest.approx(7 / 8 * m / 50e9), 1.5 * US),
                                 "ring": (pytest.approx(7 / 8 * m / 50e9), pytest.approx(7 * 1.5 * US))}
    assert timing.choose(scatter, "auto") == timing.choose(scatter, "two-shot") == "one-shot"
    two_shot = timing.collective_options("all_reduce", m, 8, LINKS)["two-shot"]
    assert two_shot == (pytest.approx(scatter["one-shot"][0] + gather["one-shot"][0]), pytest.approx(3 * US))


def test_auto_takes_one_shot_for_small_messages_and_two_shot_for_large():
    small, large = (timing.collective_options("all_reduce", m, 8, LINKS) for m in (8192.0, 1e6))
    assert timing.choose(small, "auto") == "one-shot"
    assert timing.choose(large, "auto") == "two-shot"
    for options in (small, large):
        best = min(sum(cost) for cost in options.values())
        assert sum(options[timing.choose(options, "auto")]) == best
    # Asked for a tree where the run is one node, a collective runs two-shot.
    assert timing.choose(small, "tree") == "two-shot"


def test_affine_work():
    w = Affine(1000, 10, 2)
    assert w.at(4, 100) == 1000 + 40 + 800
    assert (w + Affine(1, 1, 1)).at(1, 1) == 1015


def _call(trips=1, hbm=10_000_000, flops=0, reduces=(), depth=8, ddr=0, experts=()):
    work = IterationWork(
        flops=Affine(0, flops), hbm_read=Affine(hbm), ddr_read=Affine(ddr),
        all_reduces=tuple(AllReduce(Affine(0, b), 16) for b in reduces), experts=experts,
    )
    return KernelCall("k", trips, depth, 936, work)


def test_an_unlooped_call_by_hand():
    t = timing.call_timing(_call(), HW, batch=1, context=0)
    stream = 10_000_000 / (0.9 * 1.6e12)
    assert t.launch_sync_s == A.launch_sync_hardware_s
    assert t.fill_s == pytest.approx(A.first_tile_latency_s + 8 * A.stage_latency_s)
    assert t.drain_s == pytest.approx(8 * A.stage_latency_s)
    assert t.first_interval == (pytest.approx(stream), "stream")
    assert t.total_s == pytest.approx(A.launch_sync_hardware_s + A.first_tile_latency_s + 16 * A.stage_latency_s + stream)


def test_a_looped_call_pays_launch_fill_and_drain_once():
    looped = timing.call_timing(_call(trips=32), HW, 1, 0)
    single = timing.call_timing(_call(trips=1), HW, 1, 0)
    overhead = single.launch_sync_s + single.fill_s + single.drain_s
    assert looped.total_s == pytest.approx(overhead + 32 * single.body_s)
    assert 32 * single.total_s - looped.total_s == pytest.approx(31 * overhead)


def test_a_latency_bound_loop_waits_for_its_carried_activation():
    # Tiny weights, two all-reduces: each later iteration waits for the activation to cross
    # the 8 stages and both collectives' latencies.
    t = timing.call_timing(_call(trips=4, hbm=1000, reduces=(8192, 8192)), HW, 1, 0)
    # 16 sockets span the rack's two nodes: 8 KB messages go one-shot at the rack's latency.
    chain = 2 * A.p2p_rack_latency_s + 8 * A.stage_latency_s
    assert t.later_interval == (pytest.approx(chain), "collective")
    assert t.first_interval[0] == pytest.approx(max(2 * A.p2p_rack_latency_s, 2 * 15 * 8192 / A.p2p_bandwidth_bytes_per_s))


def test_a_compute_bound_call_is_counted_as_compute():
    t = timing.call_timing(_call(hbm=1000, flops=10**12), HW, 1, 0)
    assert t.first_interval[1] == "compute"


def test_ddr_streams_alongside_hbm():
    t = timing.call_timing(_call(hbm=10_000_000, ddr=10_000_000), HW, 1, 0)
    assert t.first_interval == (pytest.approx(10_000_000 / (0.9 * 100e9)), "stream")


def test_moe_experts_are_read_at_their_expected_count():
    moe = ExpertRead(8, 2, Affine(1_000_000), "hbm")
    traffic = timing.traffic(IterationWork(hbm_read=Affine(500), experts=(moe,)), batch=2, context=0)
    assert traffic.hbm_read_bytes == pytest.approx(500 + 8 * (1 - 0.75**2) * 1_000_000)


def test_a_step_adds_the_host_and_a_run_grows_the_context():
    kv = KernelCall("attn", 1, 4, 500, IterationWork(hbm_read=Affine(0, 0, 1_000_000)))
    run = timing.run([kv], HW, batch=1, context=100, tokens=3)
    steps = [timing.step([kv], HW, 1, c) for c in (100, 101, 102)]
    assert (run.first.read_bytes, run.last.read_bytes, run.total.read_bytes) == (100e6, 102e6, 303e6)
    assert run.first.breakdown_s["host"] == A.host_per_token_s
    assert run.step_s == pytest.approx(sum(s.total_s for s in steps) / 3)
    assert run.breakdown_s == pytest.approx({c: sum(s.breakdown_s[c] for s in steps) / 3 for c in timing.CATEGORIES})


works = st.builds(
    IterationWork,
    flops=st.builds(Affine, st.integers(0, 10**12), st.integers(0, 10**10), st.integers(0, 10**7)),
    hbm_read=st.builds(Affine, st.integers(0, 10**9), st.integers(0, 10**6), st.integers(0, 10**5)),
    ddr_read=st.builds(Affine, st.integers(0, 10**7)),
    all_reduces=st.lists(st.builds(AllReduce, st.builds(Affine, st.integers(0, 10**6), st.integers(0, 10**5)),
                                   st.integers(2, 16)), max_size=3).map(tuple),
)
calls = st.builds(KernelCall, st.sampled_from(["a", "b"]), st.integers(1, 128), st.integers(1, 30),
                  st.integers(1, 1040), works)
sizes = st.tuples(st.integers(1, 64), st.integers(1, 32768))


@settings(max_examples=200)
@given(calls, sizes)
def test_looped_is_never_slower_than_the_same_calls_unlooped(call, size):
    batch, context = size
    looped = timing.call_timing(call, HW, batch, context).total_s
    one = attrs.evolve(call, trips=1)
    assert looped <= call.trips * timing.call_timing(one, HW, batch, context).total_s * (1 + 1e-12)


@settings(max_examples=200)
@given(st.lists(calls, min_size=1, max_size=6), sizes)
def test_the_breakdown_sums_to_the_step_and_the_timeline_agrees(program, size):
    batch, context = size
    step = timing.step(program, HW, batch, context)
    assert set(step.breakdown_s) == set(timing.CATEGORIES)
    assert all(v >= 0 for v in step.breakdown_s.values())
    builder = TimelineBuilder(HW, batch, context)
    for call in program:
        builder.add_call(call)
    timeline = builder.finish(sockets=8)
    assert timeline.step_s == pytest.approx(step.total_s)
    assert timeline.scheduled_s() == pytest.approx(step.total_s)
    for category in timing.CATEGORIES:
        on_schedule = sum(e.duration_s for e in timeline.events
                          if e.track in SCHEDULE_TRACKS and e.category == category)
        assert on_schedule == pytest.approx(step.breakdown_s[category], rel=1e-9, abs=1e-12 * step.total_s)


@settings(max_examples=200)
@given(st.lists(calls, min_size=1, max_size=6), sizes)
def test_a_step_never_beats_streaming_its_bytes_at_full_bandwidth(program, size):
    batch, context = size
    step = timing.step(program, HW, batch, context)
    floor = step.hbm_read_bytes / HW.hbm.bandwidth_bytes_per_s
    assert step.total_s >= floor
    per_socket_roofline = timing.roofline_tokens_per_s(HW.hbm.bandwidth_bytes_per_s, max(step.read_bytes, 1))
    if step.ddr_read_bytes == 0 and step.read_bytes > 0:
        assert 1 / step.total_s <= per_socket_roofline
