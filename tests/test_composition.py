"""Composition of Experts: the `compose` block, request streams, LRU residency, serving a stream,
the report's keys, and the commands that show them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dfdsl.cli import main
from dfdsl.composition import ExpertGroup, StreamSpec
from dfdsl.diagnostics import DfslError
from dfdsl.driver import Compiler, load_model, run_model
from dfdsl.report import COMPOSITION_KEYS, JSON_KEYS
from dfdsl.sim.composition import Tiers, lru, residency, serve
from dfdsl.stream import generate, read

EXAMPLES = Path(__file__).parent.parent / "examples"

TINY = """import std.llama
model small : llama {
  dtype = bf16; vocab = 100; hidden = 64; layers = 2
  heads = 4; kv_heads = 2; head_dim = 16; ffn = 128
}
model large : llama {
  dtype = bf16; vocab = 100; hidden = 64; layers = 4
  heads = 4; kv_heads = 2; head_dim = 16; ffn = 256
}
compose pair {
  router = small
  experts = small * 3 + large * 2
  hbm_slots = 2
  requests = zipf(skew = 1.0, seed = 3)
  count = 20
}
place { router -> hbm; experts -> ddr }
run serve { batch = 2; prompt = 16; tokens = 4; target = sn40l(sockets = 2) }
"""


def write(tmp_path: Path, text: str, name: str = "coe.dfl") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def diagnostics(path: Path, overrides: dict | None = None) -> list:
    with pytest.raises(DfslError) as info:
        load_model(path, overrides)
    return info.value.diagnostics


# -- LRU on known streams ----------------------------------------------------------------------


def test_lru_counts_hits_misses_and_evictions_of_a_known_stream():
    found = lru([0, 1, 0, 2, 1, 0], slots=2)
    # 0 and 1 fill the region; 0 hits; 2 evicts 1 (least recent); 1 evicts 0; 0 evicts 2.
    assert found.hits.tolist() == [False, False, True, False, False, False]
    assert found.misses == 5
    assert found.evictions == 3


def test_lru_starts_from_its_preloaded_experts():
    found = lru([0, 1, 0, 2, 1, 0], slots=2, preload=[0, 1])
    assert found.hits.tolist() == [True, True, True, False, False, False]
    assert found.evictions == 3


def test_a_region_that_holds_every_expert_never_evicts():
    found = lru([3, 1, 2, 3, 0, 1], slots=4)
    assert found.hits.tolist() == [False, False, False, True, False, True]
    assert found.evictions == 0


def test_a_region_of_one_slot_hits_only_on_repeats():
    found = lru([5, 5, 6, 5, 5], slots=1)
    assert found.hits.tolist() == [False, True, False, False, True]
    assert found.evictions == 2


def test_experts_beyond_one_nodes_home_tier_need_more_nodes():
    tiers = Tiers(slots=1, home_slots=2, copy_bytes_per_s=1e9)
    assert tiers.nodes(2) == 1
    assert tiers.nodes(3) == 2
    found, nodes = residency(np.array([0, 1, 0, 1, 2]), 3, tiers)
    # Node 0 holds experts 0 and 2 (0 preloaded), node 1 expert 1 (preloaded).
    assert nodes == 2
    assert found.hits.tolist() == [True, True, True, True, False]


def test_serving_adds_router_switch_prefill_and_decode_in_groups():
    switch = np.array([0.5, 0.5, 0.5])
    served = serve(np.array([0, 1, 2, 0]), 3, Tiers(1, 3, 1e9), batch=2, switch_s=switch,
                   prefill_s=np.full(4, 0.1), decode_s=np.full(4, 1.0), router_s=lambda n: 0.01 * n)
    # Region of one slot preloaded with expert 0: hit, miss, miss, miss.
    assert served.residency.hits.tolist() == [True, False, False, False]
    assert served.switch_s.tolist() == [0.0, 0.5, 0.5, 0.5]
    # Group [0, 1]: router 0.02, then 1.1, then 1.6 more; group [2, 0]: router 0.02, 1.6, 1.6 more.
    assert served.latency_s == pytest.approx([0.02 + 1.1, 0.02 + 2.7, 0.02 + 1.6, 0.02 + 3.2])


# -- request streams ---------------------------------------------------------------------------


def test_generators_are_seeded_and_zipf_favours_the_first_experts():
    a = generate(StreamSpec("zipf", skew=1.2, seed=7, count=5000), 50, 128, 20)
    b = generate(StreamSpec("zipf", skew=1.2, seed=7, count=5000), 50, 128, 20)
    assert (a.experts == b.experts).all()
    counts = np.bincount(a.experts, minlength=50)
    assert counts[0] > counts[10] > counts[49]
    uniform = generate(StreamSpec("uniform", seed=1, count=5000), 50, 128, 20)
    assert uniform.experts.min() == 0 and uniform.experts.max() == 49
    assert (uniform.prompt == 128).all() and (uniform.tokens == 20).all()


def test_a_csv_and_a_jsonl_stream_read_alike(tmp_path):
    csv = write(tmp_path, "expert,prompt,tokens\n3,128,20\n0,64,200\n", "s.csv")
    jsonl = write(tmp_path, '{"expert": 3, "prompt": 128, "tokens": 20}\n{"expert": 0, "prompt": 64, "tokens": 200}\n',
                  "s.jsonl")
    for path in (csv, jsonl):
        stream = read(StreamSpec("file", path), 4)
        assert stream.experts.tolist() == [3, 0]
        assert stream.prompt.tolist() == [128, 64]
        assert stream.tokens.tolist() == [20, 200]


@pytest.mark.parametrize(("text", "where", "message"), [
    ("expert,prompt\n1,2\n", (1, 1), "the header is expert,prompt"),
    ("expert,prompt,tokens\n1,2,3\n9,2,3\n", (3, 1), "`expert` is 9; it must be an expert index from 0 to 3"),
    ("expert,prompt,tokens\n1,x,3\n", (2, 3), "`prompt` is 'x'; it must be a whole number"),
    ("expert,prompt,tokens\n1,2\n", (2, 1), "2 values; a request has 3"),
])
def test_a_bad_csv_line_is_located(tmp_path, text, where, message):
    path = write(tmp_path, text, "s.csv")
    with pytest.raises(DfslError) as info:
        read(StreamSpec("file", path), 4)
    (d,) = info.value.diagnostics
    assert (d.code, d.span.line, d.span.column) == ("E016", *where)
    assert message in d.message


def test_a_bad_jsonl_line_is_located(tmp_path):
    path = write(tmp_path, '{"expert": 1, "prompt": 2, "tokens": 3}\n{"expert": 1,\n', "s.jsonl")
    with pytest.raises(DfslError) as info:
        read(StreamSpec("file", path), 4)
    (d,) = info.value.diagnostics
    assert (d.span.path, d.span.line) == (path, 2)
    assert "not JSON" in d.message


# -- the compose block ---------------------------------------------------------------------------


def test_a_composition_resolves_its_roles(tmp_path):
    model = load_model(write(tmp_path, TINY))
    c = model.composition
    assert c is not None
    assert (c.router, c.experts, c.hbm_slots, c.router_tier, c.experts_tier) == (
        "small", (ExpertGroup("small", 3), ExpertGroup("large", 2)), 2, "hbm", "ddr")
    assert c.models == ("small", "large")
    assert model.resolved.name == "small"
    assert model.expert("large").resolved.name == "large"


@pytest.mark.parametrize(("old", "new", "code", "message"), [
    ("experts = small * 3 + large * 2", "experts = small * 3 + huge * 2", "E016",
     "`experts`: the file defines no model `huge`"),
    ("hbm_slots = 2", "hbm_slot = 2", "E016", "a composition has no setting `hbm_slot`"),
    ("requests = zipf(skew = 1.0, seed = 3)", 'requests = "stream.txt"', "E016",
     "a request file is .csv or .jsonl, not `stream.txt`"),
    ("requests = zipf(skew = 1.0, seed = 3)", "requests = zipf(skew = 1.0, seeds = 3)", "E016",
     "`zipf` has no setting `seeds`"),
    ("router = small", "router = 3", "E016", "`router` names a model of the file"),
    ("requests = zipf(skew = 1.0, seed = 3)\n  count = 20", 'requests = "../outside.csv"', "E016",
     "the request file `../outside.csv` is not under"),
    ("experts = small * 3 + large * 2", "experts = small * 0", "E016", "an expert count is 0"),
    ("place { router -> hbm", "place { router -> sram", "E011", "a composition's router live in hbm or ddr"),
])
def test_composition_errors_are_located(tmp_path, old, new, code, message):
    assert old in TINY
    path = write(tmp_path, TINY.replace(old, new))
    first = diagnostics(path)[0]
    assert first.code == code
    assert message in first.message
    assert first.span is not None and first.span.path == path and first.span.line > 1


def test_placing_a_router_without_a_composition_is_an_error(tmp_path):
    text = (EXAMPLES / "llama2_7b.dfl").read_text().replace("place {", "place { router -> hbm;")
    (d,) = diagnostics(write(tmp_path, text))
    assert d.code == "E011" and "the file has no `compose` block" in d.message


def test_two_models_without_a_composition_are_still_an_error(tmp_path):
    text = TINY.split("compose")[0] + "run decode { batch = 1 }\n"
    assert [d.code for d in diagnostics(write(tmp_path, text))] == ["E016"]


def test_experts_override_needs_one_expert_model(tmp_path):
    (d,) = diagnostics(write(tmp_path, TINY), {"experts": 10})
    assert "--experts repeats one expert model" in d.message


def test_a_generated_stream_needs_a_prompt(tmp_path):
    path = write(tmp_path, TINY.replace("prompt = 16; ", ""))
    model = load_model(path)
    with pytest.raises(DfslError) as info:
        Compiler().serve(model, model.settings, __import__("dfdsl.driver").driver.CompileOptions())
    assert "the run gives no prompt" in info.value.diagnostics[0].message


# -- serving ---------------------------------------------------------------------------------


def test_a_composition_run_has_the_contract_keys(tmp_path):
    report = run_model(write(tmp_path, TINY))
    f = report.figures
    assert set(JSON_KEYS) <= set(f) and set(COMPOSITION_KEYS) <= set(f)
    assert (f["model"], f["experts"], f["experts_resident"], f["batch"], f["requests"]) == ("pair", 5, 2, 2, 20)
    assert 0 < f["hit_rate"] < 1
    assert f["misses"] == round(20 * (1 - f["hit_rate"]))
    assert f["switch_ms"] > 0
    # A request's latency is at least its router, prefill and decode.
    assert f["request_latency_ms"] > f["router_ms"] + f["prefill_ms"] + f["decode_ms"]


def test_a_composition_that_fits_in_hbm_never_switches(tmp_path):
    path = write(tmp_path, TINY.replace("experts = small * 3 + large * 2", "experts = small * 2"))
    f = run_model(path).figures
    assert (f["hit_rate"], f["mean_switch_ms"], f["experts_resident"]) == (1.0, 0.0, 2)


def test_a_request_file_drives_the_stream(tmp_path):
    write(tmp_path, "expert,prompt,tokens\n0,16,4\n4,16,4\n4,32,8\n", "stream.csv")
    path = write(tmp_path, TINY.replace("requests = zipf(skew = 1.0, seed = 3)\n  count = 20",
                                        'requests = "stream.csv"'))
    f = run_model(path).figures
    assert f["requests"] == 3
    # Expert 0 is preloaded, expert 4 misses once and then hits.
    assert f["hit_rate"] == pytest.approx(2 / 3)


def test_the_gpu_copies_from_host_memory_only_once_experts_leave_hbm():
    small = run_model(EXAMPLES / "samba_coe.dfl", {"target": "dgx_h100", "experts": 20}).figures
    large = run_model(EXAMPLES / "samba_coe.dfl", {"target": "dgx_h100", "experts": 100}).figures
    assert small["hit_rate"] == 1.0 and small["mean_switch_ms"] == 0.0
    assert large["hit_rate"] < 1.0 and large["mean_switch_ms"] > 0.0
    assert large["request_latency_ms"] > small["request_latency_ms"]
    assert large["experts_per_node"] == small["experts_per_node"] == large["experts_resident"]


def test_the_sn40l_copies_at_the_sockets_aggregate_ddr_bandwidth():
    from dfdsl.hardware import load_hardware

    f = run_model(EXAMPLES / "samba_coe.dfl", {"experts": 60}).figures
    hw = load_hardware("sn40l")
    weights_per_socket = f["switch_ms"] / 1e3 * 8 * hw.ddr.bandwidth_bytes_per_s / 8
    # One expert's weights per socket, each socket at its own DDR bandwidth: about 13.5 GB / 8.
    assert 1.6e9 < weights_per_socket < 2.0e9
    assert f["experts_per_node"] == hw.ddr.capacity_bytes // round(weights_per_socket)


# -- the commands ----------------------------------------------------------------------------


def test_run_json_with_experts_override(capsys):
    assert main(["run", str(EXAMPLES / "samba_coe.dfl"), "--json", "--experts", "30", "--batch", "1",
                 "--tokens", "8"]) == 0
    f = json.loads(capsys.readouterr().out)
    assert (f["experts"], f["batch"], f["tokens"]) == (30, 1, 8)
    assert set(COMPOSITION_KEYS) <= set(f)


def test_compare_targets_json_is_a_list_of_reports(tmp_path, capsys):
    path = write(tmp_path, TINY.replace("target = sn40l(sockets = 2)", "target = sn40l(sockets = 8)")
                 .replace("heads = 4; kv_heads = 2", "heads = 8; kv_heads = 8").replace("vocab = 100", "vocab = 128"))
    assert main(["compare", "--targets", "sn40l:8,dgx-h100", str(path), "--json"]) == 0
    reports = json.loads(capsys.readouterr().out)
    assert [r["target"] for r in reports] == ["sn40l", "dgx_h100"]
    assert all(set(COMPOSITION_KEYS) <= set(r) for r in reports)
    assert reports[0]["switch_ratio"] == 1.0 and set(reports[1]["request_latency_ms_by_batch"]) == {"1", "8"}


@pytest.mark.parametrize(("target", "machine"), [("sn40l", "2 sockets of sn40l"), ("dgx-h100", "8 GPUs of dgx-h100")])
def test_a_composition_title_names_its_machine_as_every_report_does(tmp_path, capsys, target, machine):
    path = write(tmp_path, TINY.replace("heads = 4; kv_heads = 2", "heads = 8; kv_heads = 8")
                 .replace("vocab = 100", "vocab = 128"))
    assert main(["run", str(path), "--target", target]) == 0
    title = capsys.readouterr().out.splitlines()[0]
    assert title.startswith(f"pair: 5 experts on {machine} · 20 requests · batch 2"), title


def test_run_with_experts_on_a_plain_model_is_an_error(capsys):
    assert main(["run", str(EXAMPLES / "llama2_7b.dfl"), "--experts", "3"]) == 2
    assert "the file has no `compose` block" in capsys.readouterr().err


def _reference_lru(stream: list[int], slots: int) -> tuple[list[bool], int]:
    """LRU as a list, most recent last: the plainest statement of the policy."""
    resident: list[int] = []
    hits, evictions = [], 0
    for expert in stream:
        hits.append(expert in resident)
        if expert in resident:
            resident.remove(expert)
        elif len(resident) == slots:
            resident.pop(0)
            evictions += 1
        resident.append(expert)
    return hits, evictions


@pytest.mark.parametrize("seed", range(20))
def test_lru_agrees_with_a_plain_list_on_random_streams(seed):
    rng = np.random.default_rng(seed)
    experts, slots = int(rng.integers(1, 12)), int(rng.integers(1, 6))
    stream = rng.integers(0, experts, 200).tolist()
    found = lru(stream, slots)
    hits, evictions = _reference_lru(stream, slots)
    assert found.hits.tolist() == hits and found.evictions == evictions
