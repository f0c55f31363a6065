"""`dfdsl sensitivity`: the output at each end of the range is what a run there gives, and a flip is
where the interpreter's own comparison of the two configurations changes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dfdsl.cli import main
from dfdsl.driver import CompileOptions, Compiler, RunSettings, load_model
from dfdsl.hardware import with_value

ROOT = Path(__file__).parent.parent
MODEL = ROOT / "examples" / "llama3_1_8b.dfl"


def tokens_per_user(sockets: int, path: str, value: float, batch: int = 32) -> float:
    model = load_model(MODEL, {"batch": batch})
    hw = with_value(model.hardware, path, value)
    settings = RunSettings(batch, model.settings.context, model.settings.tokens, sockets)
    return Compiler().simulate(model, settings, CompileOptions(), hardware=hw).report["tokens_per_s_per_user"]


def test_json_gives_each_parameter_its_ends_and_flips(capsys):
    # At batch 256 the all-reduces are large: below ~18 GB/s of link bandwidth 8 sockets win.
    assert main(["sensitivity", str(MODEL), "--params", "p2p_bandwidth,hbm_bandwidth", "--range", "0.25,2",
                 "--batch", "256", "--sockets", "8,16", "--json"]) == 0
    results = {r["parameter"]: r for r in json.loads(capsys.readouterr().out)}
    assert set(results) == {"p2p_bandwidth", "hbm_bandwidth"}
    hbm = results["hbm_bandwidth"]
    assert hbm["at_lo"] == pytest.approx(tokens_per_user(8, hbm["key"], hbm["lo"], 256), rel=1e-9)
    assert hbm["at_hi"] == pytest.approx(tokens_per_user(8, hbm["key"], hbm["hi"], 256), rel=1e-9)
    link = results["p2p_bandwidth"]
    (flip,) = link["flips"]
    assert flip["conclusion"] == "16 sockets beat 8"
    for side, factor in (("below", 0.99), ("above", 1.01)):
        value = flip["changes_at"] * factor
        holds = tokens_per_user(16, link["key"], value, 256) > tokens_per_user(8, link["key"], value, 256)
        assert holds == (flip["holds_above"] if side == "above" else not flip["holds_above"])
    assert flip["at_base"] == (tokens_per_user(16, link["key"], link["base"], 256)
                               > tokens_per_user(8, link["key"], link["base"], 256))


def test_the_table_names_the_flip_and_the_plot_is_a_tornado(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    plot = tmp_path / "tornado.png"
    assert main(["sensitivity", str(MODEL), "--params", "p2p_bandwidth,launch_sync_hardware_s", "--batch", "256",
                 "--range", "0.25,2", "--sockets", "8,16", "--output", "best_sockets", "--plot", str(plot)]) == 0
    table = capsys.readouterr().out
    assert "p2p_bandwidth" in table and "16 sockets beat 8: false below" in table and "GB/s" in table
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_looping_speedup_compares_looping_on_and_off(capsys):
    assert main(["sensitivity", str(MODEL), "--params", "launch_sync", "--output", "looping_speedup",
                 "--sockets", "16", "--tokens", "8", "--json"]) == 0
    (result,) = json.loads(capsys.readouterr().out)
    assert result["at_hi"] > result["at_base"] > result["at_lo"] > 1.0


@pytest.mark.parametrize("argv,message", [
    (["--params", "hbm_bandwith"], "unknown hardware key `hbm_bandwith`"),
    (["--params", "launch_sync", "--range", "2,0.5"], "give LO,HI with 0 < LO < 1 < HI"),
    (["--params", "stream_efficiency", "--range", "0.5,2"], "--params stream_efficiency = 1.8; it must be a number from 0.001 to 1"),
    (["--params", "launch_sync", "--output", "speed"], "--output 'speed': choose one of"),
])
def test_bad_options_are_usage_errors(capsys, argv, message):
    assert main(["sensitivity", str(MODEL), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.rstrip().endswith("[E027]")
