"""Socket-count hints (E020, E021): every count offered compiles, counted from every split's
divisibility and every socket's memory at once; when none exists the message says so and offers a
placement that works, with what a token then costs."""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

import pytest
from df_models import tiny_llama, tiny_moe
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from xdsl.dialects.builtin import ArrayAttr, IntegerAttr, ModuleOp, StringAttr

from dfdsl.cli import main as cli_main
from dfdsl.dialects import df
from dfdsl.hardware import load_hardware
from dfdsl.lowering.pipeline import LoweringOptions, run_passes
from dfdsl.lowering.place_memory import CapacityError, place_class
from dfdsl.lowering.shard_tensor_parallel import ShardingError, counts_text
from dfdsl.lowering.socket_hints import advise
from dfdsl.targets import target_for

CHECKED = [0]
"""Suggestions compiled by the tests of this file (for reports: `pytest -s` prints it)."""

SMALL_3B = """\
import std.llama
model llama3_2_3b : llama {
  dtype = bf16; vocab = 128256; hidden = 3072; layers = 28
  heads = 24; kv_heads = 8; head_dim = 128; ffn = 8192
}
run decode { batch = 1; context = 4096; tokens = 2; target = sn40l(sockets = 16) }
"""


def _hardware(folder: Path, hbm_bytes: int, ddr_bytes: int = 1_500_000_000_000) -> Path:
    """The SN40L file with `hbm_bytes` of HBM and `ddr_bytes` of DDR per socket."""
    text = (resources.files("dfdsl.hardware") / "sn40l.toml").read_text(encoding="utf-8")
    text = text.replace("capacity_bytes = 64000000000", f"capacity_bytes = {hbm_bytes}")
    text = text.replace("capacity_bytes = 1500000000000", f"capacity_bytes = {ddr_bytes}")
    path = folder / f"sn40l_{hbm_bytes}_{ddr_bytes}.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _compile(front: ModuleOp, sockets: int, hardware: Path) -> None:
    """The whole SN40L pipeline at `sockets`; raises what a pass raises."""
    module = front.clone()
    options = LoweringOptions(sockets=sockets, target="sn40l", hardware=str(hardware))
    run_passes(module, target_for(load_hardware(str(hardware))).pipeline.passes_to("rdu", options))


def _check_every_suggestion(front: ModuleOp, hardware: Path) -> int:
    """Compiles each count `advise` offers (and its placement, if it offers one); returns how many."""
    advice = advise(front, load_hardware(str(hardware)))
    for count in advice.counts:
        _compile(front, count, hardware)
    if advice.placement is not None:
        tensor_class, tier, count = advice.placement
        moved = front.clone()
        place_class(moved, tensor_class, tier)
        _compile(moved, count, hardware)
    checked = len(advice.counts) + (advice.placement is not None)
    CHECKED[0] += checked
    return checked


def _with_run(module: ModuleOp, explicit: tuple[str, ...] = (), **values: int) -> ModuleOp:
    """`module` with the run's sizes set, and the tensor classes `explicit` placed as a file would
    place them (explicitly: they never spill)."""
    graph = df.the_graph(module, "test")
    for key, value in values.items():
        graph.properties[key] = IntegerAttr(value, 64)
    if explicit:
        graph.properties["explicit_tiers"] = ArrayAttr(StringAttr(c) for c in explicit)
    return module


def test_a_3b_model_at_16_or_24_sockets_is_offered_only_counts_where_every_split_divides(tmp_path, capsys):
    path = tmp_path / "small.dfl"
    path.write_text(SMALL_3B)
    for sockets in ("16", "24"):
        assert cli_main(["run", str(path), "--sockets", sockets, "--no-pad"]) == 2  # padding would run it
        err = capsys.readouterr().err
        assert "[E020]" in err and "use 1, 2, 4 or 8 sockets" in err
    for sockets in (1, 2, 4, 8):
        assert cli_main(["check", str(path), "--sockets", str(sockets)]) == 0
        assert cli_main(["lower", str(path), "--sockets", str(sockets), "--emit", "rdu", "-o",
                         str(tmp_path / "out.mlir")]) == 0
        CHECKED[0] += 1


def test_when_no_socket_count_holds_the_kv_cache_the_message_offers_ddr_with_its_cost(tmp_path, capsys):
    path = tmp_path / "long.dfl"
    path.write_text(SMALL_3B.replace("batch = 1; context = 4096", "batch = 64; context = 131072")
                    .replace("sockets = 16", "sockets = 1").replace("run decode", "place { kv_cache -> hbm }\nrun decode"))
    assert cli_main(["run", str(path), "--tokens", "1"]) == 2
    err = capsys.readouterr().err
    assert "[E021]" in err and "no socket count works" in err
    assert "its socket must hold 962.1 GB there (962.1 GB of KV cache, 256 bytes of inputs" in err
    assert "With `kv_cache -> ddr` in the file's `place` block it runs on" in err and "ms per token" in err


def counts_said(text: str) -> list[int]:
    """The counts a message lists (`use 2-4, 8 or 12 sockets` -> [2, 3, 4, 8, 12]): ranges include
    both ends."""
    listed = re.search(r"(?:use|over) ([0-9, or-]+?) sockets?\b", text)
    assert listed is not None, text
    counts: list[int] = []
    for word in re.split(r", | or ", listed.group(1)):
        first, _, last = word.partition("-")
        counts += range(int(first), int(last or first) + 1)
    return counts


@given(st.sets(st.integers(1, 200), min_size=1))
def test_a_list_of_counts_reads_back_as_the_counts_ranges_included(counts):
    ordered = sorted(counts)
    text = counts_text(ordered)
    assert counts_said(f"use {text}") == ordered
    # Only three or more consecutive counts make a range; a range is never written out.
    assert all(b - a >= 2 for a, b in (map(int, r.split("-")) for r in re.findall(r"\d+-\d+", text)))
    # (Whole numbers only: "1, 2 or 30" holds the text "1, 2 or 3".)
    assert not any(re.search(rf"\b{n}, {n + 1}(,| or) {n + 2}\b", text) for n in ordered)


TINY_DFL = """\
import std.llama
model tiny : llama {
  dtype = bf16; vocab = 96; hidden = 48; layers = 2
  heads = 12; kv_heads = 4; head_dim = 8; ffn = 96
}
place { weights -> hbm; kv_cache -> hbm }
run decode { batch = 16; context = 4000; tokens = 2; target = sn40l(sockets = 1) }
"""


def test_a_padded_hint_says_its_counts_as_ranges_and_each_count_it_says_compiles(tmp_path, capsys):
    """With padding on, 2 to 4 sockets all work: the message says `2-4`, and exactly the counts it
    says compile."""
    path = tmp_path / "tiny.dfl"
    path.write_text(TINY_DFL)
    hardware = str(_hardware(tmp_path, 9_000_000))
    assert cli_main(["run", str(path), "--hardware", hardware]) == 2
    err = capsys.readouterr().err
    assert "[E021]" in err and "use 2-4, 8 or 12 sockets" in err
    said = counts_said(err)
    for sockets in range(1, 17):
        compiled = cli_main(["run", str(path), "--hardware", hardware, "--sockets", str(sockets)]) == 0
        capsys.readouterr()
        assert compiled == (sockets in said), sockets
    CHECKED[0] += len(said)


# Tiny models and a machine with little memory, so that capacity binds as it does for real models:
# KV heads replicated past their count, experts, every split's divisibility, classes the file
# placed (which never spill).
HBM_CHOICES = (200_000, 600_000, 2_000_000, 20_000_000)
DDR_CHOICES = (2_000_000, 50_000_000, 1_500_000_000_000)
EXPLICIT_CHOICES = ((), ("kv_cache",), ("weights", "kv_cache"))


@settings(max_examples=25, deadline=None)
@given(build=st.sampled_from((tiny_llama, tiny_moe)), heads=st.sampled_from((2, 4, 6, 8, 12)),
       kv_heads=st.sampled_from((1, 2, 4)), ffn=st.sampled_from((48, 64, 96, 128)),
       sockets=st.sampled_from((2, 3, 4, 6, 8, 16)), batch=st.integers(1, 64), context=st.integers(1, 20_000),
       hbm=st.sampled_from(HBM_CHOICES), ddr=st.sampled_from(DDR_CHOICES), explicit=st.sampled_from(EXPLICIT_CHOICES))
def test_every_suggestion_compiles(tmp_path_factory, build, heads, kv_heads, ffn, sockets, batch, context, hbm, ddr,
                                   explicit):
    assume(heads % kv_heads == 0)
    front = _with_run(build(2, heads=heads, kv_heads=kv_heads, ffn=ffn, expert_ffn=ffn, head_dim=8, hidden=48,
                            vocab=96), explicit, batch=batch, context=context)
    hardware = _hardware(tmp_path_factory.getbasetemp(), hbm, ddr)
    try:
        _compile(front, sockets, hardware)
    except (ShardingError, CapacityError):
        _check_every_suggestion(front, hardware)
    else:
        assert sockets in advise(front, load_hardware(str(hardware))).counts


def test_the_counts_offered_are_every_count_that_compiles(tmp_path):
    """Not only does each offered count compile: no count left out would have compiled."""
    front = _with_run(tiny_llama(2, heads=12, kv_heads=4, ffn=96, head_dim=8, hidden=48, vocab=96), batch=16,
                      context=4000)
    hardware = _hardware(tmp_path, 600_000)
    advice = advise(front, load_hardware(str(hardware)))
    compiled = []
    for count in range(1, 25):
        try:
            _compile(front, count, hardware)
            compiled.append(count)
        except (ShardingError, CapacityError):
            pass
    assert advice.counts == tuple(compiled) and compiled
    CHECKED[0] += len(compiled)


@pytest.fixture(scope="module", autouse=True)
def _report_checked():
    yield
    print(f"\nsocket-count suggestions checked by compiling them: {CHECKED[0]}")


def test_a_pipelined_run_says_its_counts_are_for_one_stage_and_each_count_it_says_compiles(tmp_path, capsys):
    """The counts are worked out as if one stage held the whole model: each still compiles over
    two stages (a stage holds less), and the message says fewer may do."""
    path = tmp_path / "tiny.dfl"
    path.write_text(TINY_DFL)
    hardware = str(_hardware(tmp_path, 6_000_000))
    assert cli_main(["run", str(path), "--hardware", hardware, "--pipeline", "2"]) == 2
    err = capsys.readouterr().err
    assert "[E021]" in err and "counted as if one stage held the whole model" in err
    assert "over 2 pipeline stages each holds only its layers, so fewer may do" in err
    for sockets in counts_said(err):
        assert cli_main(["run", str(path), "--hardware", hardware, "--pipeline", "2", "--sockets", str(sockets)]) == 0
        capsys.readouterr()
