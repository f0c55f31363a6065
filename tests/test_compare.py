"""`dfdsl compare`: the rows are the product of the axes, the figures are `dfdsl run`'s, each
distinct program is lowered and simulated once, and a configuration that cannot be built shows its
error in its row instead of failing the table."""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import pytest

from dfdsl import compare, driver
from dfdsl.cli import compare as compare_command
from dfdsl.cli import run_command
from dfdsl.driver import CompileOptions, run_model
from dfdsl.hardware import bundled_targets

EXAMPLES = Path(__file__).parent.parent / "examples"
LLAMA = EXAMPLES / "llama3_1_8b.dfl"


def _compare(argv: list[str]) -> int:
    """`dfdsl compare ARGV` as the command line runs it."""
    parser = argparse.ArgumentParser(prog="dfdsl compare")
    compare_command.add_arguments(parser)
    return run_command(compare_command.main, parser.parse_args(argv))


def _table_rows(text: str) -> list[list[str]]:
    """The cells of the table's body rows (a row's first line starts with its socket count)."""
    rows = []
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip("│").split("│")]
        if line.startswith("│") and cells[0].isdigit():
            rows.append(cells)
    return rows


def test_variants_parse_into_fusion_and_looping():
    assert compare.parse_variants("layer") == [("layer", False), ("layer", True)]
    assert compare.parse_variants("none:on, block:off,layer") == [
        ("none", True), ("block", False), ("layer", False), ("layer", True)]
    assert compare.parse_variants("layer:on,layer") == [("layer", True), ("layer", False)]
    with pytest.raises(ValueError, match="bad variant 'tile'"):
        compare.parse_variants("tile")
    with pytest.raises(ValueError, match="FUSION:on or FUSION:off"):
        compare.parse_variants("layer:maybe")


def test_the_default_table_is_every_fusion_with_and_without_looping_at_8_and_16_sockets():
    parser = argparse.ArgumentParser()
    compare_command.add_arguments(parser)
    args = parser.parse_args([str(LLAMA)])
    configs = compare.configurations(args.sockets, args.variants)
    assert [(c.sockets, c.fusion, c.kernel_looping) for c in configs] == list(
        itertools.product((8, 16), ("none", "block", "layer"), (False, True)))


def test_the_rows_are_the_product_of_the_axes(capsys):
    assert _compare([str(LLAMA), "--variants", "block,layer", "--sockets", "8,16", "--tokens", "4"]) == 0
    rows = _table_rows(capsys.readouterr().out)
    assert [(int(r[0]), r[1], r[2]) for r in rows] == list(
        itertools.product((8, 16), ("block", "layer"), ("off", "on")))
    first, *_ = rows
    assert first[7] == "1.00×"  # the speedup of the first row over itself


def test_json_is_a_list_of_reports_in_the_table_order(capsys):
    assert _compare([str(LLAMA), "--variants", "layer", "--sockets", "8,16", "--tokens", "4", "--json"]) == 0
    reports = json.loads(capsys.readouterr().out)
    assert [(r["sockets"], r["kernel_looping"]) for r in reports] == [(8, False), (8, True), (16, False), (16, True)]
    looped_16 = reports[3]
    assert looped_16["looping_speedup"] == pytest.approx(reports[2]["ms_per_token"] / looped_16["ms_per_token"])
    assert looped_16["speedup"] == pytest.approx(reports[0]["ms_per_token"] / looped_16["ms_per_token"])
    assert reports[0]["looping_speedup"] is None


def test_the_figures_are_those_of_run():
    outcomes = compare.simulate_configs(LLAMA, {"tokens": 4}, [
        compare.Config(16, "layer", True), compare.Config(8, "block", False)])
    for outcome in outcomes:
        c = outcome.config
        expected = run_model(LLAMA, {"tokens": 4, "sockets": c.sockets}, CompileOptions(c.fusion, c.kernel_looping))
        assert outcome.report.figures == expected.figures


def test_each_distinct_program_is_simulated_once(monkeypatch):
    simulated = []
    real = driver.Compiler.simulate
    monkeypatch.setattr(driver.Compiler, "simulate", lambda *args, **kw: simulated.append(1) or real(*args, **kw))
    configs = compare.configurations([8], compare.parse_variants("block,layer"))
    outcomes = compare.simulate_configs(LLAMA, {"tokens": 2}, configs)
    # block fusion leaves nothing to loop (attention and MLP kernels alternate): one program for two rows.
    assert len(simulated) == 3
    block_off, block_on, layer_off, layer_on = outcomes
    assert block_on.note == compare.NOTHING_TO_LOOP
    assert block_on.report["kernel_looping"] is True
    assert block_on.report["ms_per_token"] == block_off.report["ms_per_token"]
    assert layer_on.note == "" and layer_on.report["kernel_calls_per_token"] == 4
    assert layer_off.report["kernel_calls_per_token"] == 35


def test_a_configuration_that_does_not_divide_shows_its_error_in_its_row(capsys):
    model = EXAMPLES / "llama2_13b.dfl"  # 40 heads: 8 sockets divide them, 16 do not (and no padding)
    assert _compare([str(model), "--variants", "layer:on", "--sockets", "8,16", "--tokens", "2", "--no-pad"]) == 0
    out = capsys.readouterr().out
    rows = _table_rows(out)
    assert [r[0] for r in rows] == ["8", "16"]
    assert rows[0][3] != "—"
    assert rows[1][3] == "—" and rows[1][-1].startswith("shard-tensor-parallel")
    assert "cannot split" in out


def test_a_configuration_that_does_not_fit_shows_its_error(capsys):
    assert _compare([str(LLAMA), "--variants", "layer", "--sockets", "8", "--batch", "512",
                     "--context", "32768", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 2
    assert all("place-memory" in r["error"] and "KV cache" in r["error"] for r in rows)


def test_a_bug_in_one_configuration_is_shown_and_fails_the_command(monkeypatch, capsys):
    def broken(*args, **kw):
        raise RuntimeError("boom")

    monkeypatch.setattr(driver.Compiler, "simulate", broken)
    assert _compare([str(LLAMA), "--variants", "layer:off", "--sockets", "8"]) == 1
    captured = capsys.readouterr()
    assert "internal error: RuntimeError: boom" in captured.out
    assert "This is a bug in dfdsl" in captured.err


def test_bad_input_for_the_whole_table_is_an_error(capsys):
    assert _compare([str(LLAMA), "--sockets", "0"]) == 2
    assert "sockets" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        _compare([str(LLAMA), "--variants", "tile"])


@pytest.mark.skipif("dgx_h100" not in bundled_targets(), reason="no GPU target in this tree")
def test_a_gpu_target_runs_its_own_program_once_and_cannot_loop(capsys):
    assert _compare([str(LLAMA), "--target", "dgx_h100", "--sockets", "8", "--variants", "block,layer",
                     "--tokens", "2", "--json"]) == 0
    block_off, block_on, layer_off, layer_on = json.loads(capsys.readouterr().out)
    assert block_off["ms_per_token"] == layer_off["ms_per_token"]
    assert "makes its own kernels" in layer_off["note"]
    assert block_on["error"] == layer_on["error"]
    assert "kernel looping is not possible on a GPU" in layer_on["error"]
