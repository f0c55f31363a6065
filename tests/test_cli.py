"""The command line as a user drives it: exit codes, outputs, and errors without tracebacks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dfdsl.cli import main

ROOT = Path(__file__).parent.parent
MODEL = str(ROOT / "examples" / "llama3_1_8b.dfl")


def test_check_ok(capsys):
    assert main(["check", MODEL]) == 0
    assert "ok: model llama3_1_8b, 32 layer calls" in capsys.readouterr().out


def test_bad_input_exits_2_with_a_located_error(tmp_path, capsys):
    bad = tmp_path / "bad.dfl"
    bad.write_text(Path(MODEL).read_text().replace("heads = 32;", "heads = 32 32;"))
    assert main(["check", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:6:14:" in err and "error: unexpected `32`" in err and "Traceback" not in err


@pytest.mark.parametrize(("emit", "needle"), [
    ("df", "df.call @llama_decoder("), ("fused", "df.launch @llama_decoder("),
    ("looped", "df.loop 32 carried"), ("rdu", "rdu.loop 32 stacked"),
])
def test_lower_emits_each_stage(emit, needle, capsys):
    assert main(["lower", MODEL, "--emit", emit]) == 0
    assert needle in capsys.readouterr().out


def test_lower_rdu_has_four_calls_with_looping_and_35_without(capsys):
    assert main(["lower", MODEL, "--emit", "rdu", "--sockets", "8"]) == 0
    assert capsys.readouterr().out.count("rdu.call @") == 4
    assert main(["lower", MODEL, "--emit", "rdu", "--sockets", "8", "--no-kernel-looping"]) == 0
    assert capsys.readouterr().out.count("rdu.call @") == 32 + 3


def test_lower_graph_json_and_option_checks(capsys):
    assert main(["lower", MODEL, "--emit", "graph", "--stage", "df", "--format", "json"]) == 0
    graph = json.loads(capsys.readouterr().out)
    assert graph["graph"]["stage"] == "df"
    assert main(["lower", MODEL, "--emit", "rdu", "--unfold"]) == 2
    assert "--unfold go with --emit graph" in capsys.readouterr().err


def test_remarks_say_why_looping_did_not_apply(capsys):
    assert main(["lower", MODEL, "--emit", "looped", "--fusion", "block", "--remarks"]) == 0
    assert "remark: kernel-looping:" in capsys.readouterr().err


def test_capacity_error_is_exit_2_with_the_numbers(capsys):
    assert main(["run", str(ROOT / "examples" / "llama3_1_405b.dfl"), "--sockets", "8"]) == 2
    err = capsys.readouterr().err
    assert "each of its 8 sockets must hold 105.4 GB there" in err and "and has 64.0 GB" in err
    assert "use 16, " in err and "or 128 sockets" in err and "Traceback" not in err


def test_output_is_never_the_input(tmp_path, capsys):
    model = tmp_path / "m.dfl"
    model.write_text(Path(MODEL).read_text())
    assert main(["lower", str(model), "--emit", "df", "-o", str(model)]) == 2
    assert model.read_text() == Path(MODEL).read_text()
    assert "refusing to overwrite the input" in capsys.readouterr().err


def test_opt_runs_passes_and_reports_bad_pipelines(tmp_path, capsys):
    ir = tmp_path / "df.mlir"
    assert main(["lower", MODEL, "--emit", "df", "-o", str(ir)]) == 0
    assert main(["opt", str(ir), "-p", "shard-tensor-parallel{sockets=4},fuse{mode=block}"]) == 0
    assert "df.launch @llama_decoder_block0" in capsys.readouterr().out
    assert main(["opt", str(ir), "-p", "no-such-pass"]) == 2
    assert "bad pass pipeline" in capsys.readouterr().err


def test_version_and_help(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0 and "dfdsl 0.1.0" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    help_text = capsys.readouterr().out
    for option in ("--json", "--trace", "--fusion", "--no-kernel-looping", "--hardware", "--sockets"):
        assert option in help_text


def test_lower_for_a_gpu_target_emits_the_nv_program(capsys):
    assert main(["lower", MODEL, "--target", "dgx-h100"]) == 0
    out = capsys.readouterr().out
    assert "nv.program @llama3_1_8b" in out and out.count("nv.all_reduce") == 64
    assert main(["lower", MODEL, "--target", "dgx-h100", "--emit", "looped"]) == 2
    assert "dgx_h100 is a GPU: its stages are df, fused, nv" in capsys.readouterr().err


MALFORMED_PIPELINES = {
    "fuse{": "at column 6, expected argument name here",
    ",,,": "at column 1, expected pass name here",
    "fuse{mode=layer": "at column 16, malformed pass arguments, expected either a space or `}` here",
    "fuse{mode=layer}}": "at column 17, expected a comma after pass argument dict here",
    '"': "at column 1, unknown token",
    "fuse{mode=layer mode=none}": "fuse is given the option mode twice; give each option once",
    "kernel-looping{min-calls=2 min_calls=3}": "kernel-looping is given the option min_calls twice",
    "fuse,": "it ends with a comma; name the pass that follows, or remove the comma",
}


@pytest.mark.parametrize(("spec", "message"), MALFORMED_PIPELINES.items(), ids=MALFORMED_PIPELINES)
def test_a_malformed_pipeline_is_e027_with_where_and_why(spec, message, tmp_path, capsys):
    ir = tmp_path / "df.mlir"
    assert main(["lower", MODEL, "--emit", "df", "-o", str(ir)]) == 0
    assert main(["opt", str(ir), "-p", spec]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"dfdsl: error: bad pass pipeline {spec!r}: {message}") and err.endswith("[E027]\n"), err


def test_parallel_and_no_pad_select_the_splits_from_the_command_line(capsys):
    # The contract: `dfdsl run MODEL --parallel attention=data,experts=expert --json`, and --no-pad.
    deepseek = str(ROOT / "examples" / "deepseek_v3.dfl")
    assert main(["run", deepseek, "--batch", "256", "--parallel", "attention=data,experts=expert", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["batch"] == 256 and report["tokens_per_s"] == pytest.approx(256 * report["tokens_per_s_per_user"])
    qwen = str(ROOT / "examples" / "qwen2_7b.dfl")
    assert main(["run", qwen, "--json"]) == 0
    assert "remark: shard-tensor-parallel: attention: 28 heads and 4 KV heads padded to 32" in capsys.readouterr().err
    assert main(["run", qwen, "--no-pad"]) == 2
    err = capsys.readouterr().err
    assert "[E020]" in err and "padding is off" in err and "Traceback" not in err
    assert main(["check", qwen, "--parallel", "attention=expert"]) == 2
    assert "(on the command line) [E016]" in capsys.readouterr().err
    for command in ("run", "lower", "check", "compare", "sweep", "sensitivity"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        out = capsys.readouterr().out
        assert "--parallel" in out and "--no-pad" in out, command


def test_an_unknown_argument_of_a_subcommand_prints_that_subcommands_usage(capsys):
    with pytest.raises(SystemExit) as info:
        main(["sweep", MODEL, "--bogus"])
    err = capsys.readouterr().err
    assert info.value.code == 2 and err.startswith("usage: dfdsl sweep ") and "--kernel-looping" in err
    assert "dfdsl sweep: error: unrecognized arguments: --bogus" in err


def test_a_bad_pass_option_is_named_as_a_pipeline_writes_it(capsys):
    mlir = str(ROOT / "tests" / "filecheck" / "kernel-looping" / "llama-32-layers.mlir")
    assert main(["opt", mlir, "-p", "kernel-looping{min_call=3}"]) == 2
    err = capsys.readouterr().err
    assert '["min-calls", "remarks"]' in err and "kernel-looping takes min-calls, remarks" in err
    assert "min_calls" not in err


def test_titles_say_what_a_run_ran_on_as_the_user_spells_it(capsys):
    assert main(["run", MODEL, "--target", "dgx-h100", "--tokens", "2"]) == 0
    assert capsys.readouterr().out.startswith("llama3_1_8b on 8 GPUs of dgx-h100 · batch 1")
    assert main(["run", MODEL, "--sockets", "1", "--tokens", "2"]) == 0
    assert capsys.readouterr().out.startswith("llama3_1_8b on 1 socket of sn40l · batch 1")


def test_init_lays_out_a_folder_once_and_leaves_what_is_there(tmp_path, capsys):
    assert main(["init", str(tmp_path / "work")]) == 0
    assert capsys.readouterr().out.startswith("wrote mymodels/, hf/, filecheck/, filecheck/lit.cfg.py, 8 Hugging")
    config = tmp_path / "work" / "hf" / "Mistral-7B-v0.3.json"
    config.write_text("{}")
    assert main(["init", str(tmp_path / "work")]) == 0
    assert capsys.readouterr().out.startswith("nothing to write")
    assert config.read_text() == "{}"
    (tmp_path / "file").write_text("")
    assert main(["init", str(tmp_path / "file")]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err


GPU_TINY = """import std.llama
model tiny : llama {
  dtype = bf16; vocab = 128; hidden = 64; layers = 2
  heads = 8; kv_heads = 8; head_dim = 8; ffn = 128
}
run decode { batch = 1; context = 64; tokens = 2; target = dgx_h100(sockets = 8) }
"""


def _hardware_commands(tmp_path: Path) -> dict[str, list[str]]:
    """Each command that takes `--hardware`, with the other arguments it needs, on a tiny GPU model."""
    model = tmp_path / "tiny.dfl"
    model.write_text(GPU_TINY, encoding="utf-8")
    measured = tmp_path / "measured.csv"
    measured.write_text(f"model,target,ms_per_token,source\n{model},dgx_h100,1.0,test\n", encoding="utf-8")
    return {
        "run": ["run", str(model)],
        "lower": ["lower", str(model)],
        "compare": ["compare", str(model)],
        "sweep": ["sweep", str(model), "--batch", "1,2"],
        "sensitivity": ["sensitivity", str(model), "--params", "hbm_bandwidth"],
        "validate": ["validate"],
        "calibrate": ["calibrate", str(measured), "-o", str(tmp_path / "fitted.toml"), "--fit", "launch_cost"],
    }


def test_every_command_with_hardware_names_the_bundled_machines_when_it_knows_none(tmp_path, capsys):
    from dfdsl.cli import build_parser

    commands = _hardware_commands(tmp_path)
    _, subcommands = build_parser()
    assert {name for name, p in subcommands.items()
            if any("--hardware" in a.option_strings for a in p._actions)} == set(commands)
    for name, argv in commands.items():
        assert main([*argv, "--hardware", "dgx-h1000"]) == 2, name
        err = capsys.readouterr().err
        assert "dgx-h1000: no such hardware file, and no bundled machine of that name" in err, (name, err)
        assert "(dgx-a100, dgx-h100, dgx-h100-nccl, dgx-h200, sn40l; `-` or `_` alike) [E023]" in err, name
        assert "Traceback" not in err


@pytest.mark.parametrize("command", ["run", "lower", "compare", "sweep", "sensitivity"])
def test_every_command_takes_a_bundled_machine_by_either_spelling(tmp_path, capsys, command):
    argv = _hardware_commands(tmp_path)[command]
    printed = []
    for spelling in ("dgx-h100", "dgx_h100"):
        assert main([*argv, "--hardware", spelling]) == 0, spelling
        printed.append(capsys.readouterr().out)
    assert printed[0] == printed[1] and printed[0]


def test_a_bundled_file_name_that_is_not_a_file_says_how_to_name_the_machine(tmp_path, capsys):
    argv = _hardware_commands(tmp_path)["run"]
    assert main([*argv, "--hardware", "dgx_h100.toml"]) == 2
    assert "for the bundled one, give its name alone: dgx-h100 [E023]" in capsys.readouterr().err


def test_a_machine_of_another_kind_than_the_target_is_refused_before_compiling(tmp_path, capsys):
    argv = _hardware_commands(tmp_path)["run"]
    assert main([*argv, "--hardware", "sn40l"]) == 2
    err = capsys.readouterr().err
    assert ("the hardware file sn40l.toml (bundled) is an rdu machine and the run's target dgx-h100 is not: "
            "give a target of its kind as well (sn40l) [E022]") in err


@pytest.mark.parametrize(("target", "hint"), [
    ("sn40l:8", "help: --target takes a name alone: write --target sn40l --sockets 8"),
    ("dgx-h10", "did you mean `dgx-h100`?"),
    ("nope", "targets are dgx-a100, dgx-h100, dgx-h100-nccl, dgx-h200, sn40l"),
])
def test_an_unknown_target_on_the_command_line_is_not_blamed_on_the_file(target, hint, capsys):
    assert main(["run", MODEL, "--target", target]) == 2
    err = capsys.readouterr().err
    assert f"--target {target}: unknown target (on the command line) [E016]" in err and hint in err
    assert "llama3_1_8b.dfl:11" not in err and "Traceback" not in err
