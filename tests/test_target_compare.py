"""`dfdsl compare --targets`: machines side by side, speedups against the GPU, and the plot."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dfdsl.cli import main
from dfdsl.compare import TargetSpec, parse_targets

MODEL = str(Path(__file__).parent.parent / "examples" / "llama3_1_8b.dfl")


def test_parse_targets():
    specs = parse_targets("sn40l:8, sn40l:16,dgx-h100")
    assert specs == [TargetSpec("sn40l", 8, "sn40l"), TargetSpec("sn40l", 16, "sn40l"),
                     TargetSpec("dgx_h100", None, "dgx-h100")]
    # Labels keep the user's spelling.
    assert [s.label for s in specs] == ["sn40l:8", "sn40l:16", "dgx-h100"]
    with pytest.raises(ValueError, match="bad socket count"):
        parse_targets("sn40l:x")


def test_targets_side_by_side_with_speedups_against_the_gpu(capsys):
    assert main(["compare", MODEL, "--targets", "sn40l:8,sn40l:16,dgx-h100", "--tokens", "8", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["target"], r["sockets"]) for r in rows] == [("sn40l", 8), ("sn40l", 16), ("dgx_h100", 8)]
    sn8, sn16, gpu = rows
    assert sn8["kernel_looping"] and not gpu["kernel_looping"]
    assert gpu["kernel_calls_per_token"] > 10 * sn8["kernel_calls_per_token"]
    # The GPU pays more at kernel boundaries, which is what the comparison is about.
    assert gpu["breakdown_ms"]["sync"] > sn8["breakdown_ms"]["sync"]
    assert sn16["ms_per_token"] < sn8["ms_per_token"]
    assert all(r["peak_fraction"] <= 1 for r in rows)


def test_table_names_the_gpu_baseline_and_the_plot_is_a_png(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    plot = tmp_path / "cmp.png"
    assert main(["compare", MODEL, "--targets", "sn40l:16,dgx-h100", "--tokens", "4", "--plot", str(plot)]) == 0
    out = capsys.readouterr().out
    assert "speedup vs dgx-h100" in out and "sn40l:16" in out
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_target_that_cannot_run_is_a_row_with_the_reason(capsys):
    big = str(Path(MODEL).parent / "llama3_1_405b.dfl")
    assert main(["compare", big, "--targets", "sn40l:8,sn40l:16", "--tokens", "2"]) == 0
    assert "must hold 105.4 GB there" in capsys.readouterr().out


def test_every_bundled_gpu_node_compares_by_its_contract_name(capsys):
    """`dgx-h100`, `dgx-h100-nccl`, `dgx-a100`, `dgx-h200` (the contract's names) side by side: the
    paper's software (NCCL all-reduce, eager launches) loses on all-reduce and launches, nothing
    else; the H200's bandwidth beats the H100's, the A100's loses."""
    targets = "dgx-h100,dgx-h100-nccl,dgx-a100,dgx-h200"
    assert main(["compare", MODEL, "--targets", targets, "--tokens", "4", "--json"]) == 0
    rows = {r["target"]: r for r in json.loads(capsys.readouterr().out)}
    assert set(rows) == {"dgx_h100", "dgx_h100_nccl", "dgx_a100", "dgx_h200"}
    today, paper = rows["dgx_h100"], rows["dgx_h100_nccl"]
    assert paper["kernel_calls_per_token"] == today["kernel_calls_per_token"]
    assert paper["breakdown_ms"]["collective"] > 5 * today["breakdown_ms"]["collective"]
    assert paper["breakdown_ms"]["sync"] > today["breakdown_ms"]["sync"]
    assert rows["dgx_h200"]["ms_per_token"] < today["ms_per_token"] < rows["dgx_a100"]["ms_per_token"]
