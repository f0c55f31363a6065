"""The tutorial (docs/tutorial.md) is executable: the files it asks you to write are the real files
under docs/tutorial/ and tests/filecheck/tutorial/, every command it shows prints what it shows
(`...` marks a trimmed part), and the figures its prose quotes are what the commands compute.

The commands run in order in one empty scratch folder, as the tutorial promises, `dfdsl` in-process
through `dfdsl.cli.main`: `dfdsl init` lays the folder out, and each file the tutorial asks you to
write is written where it says, when it says. When a figure changes on purpose (say a hardware
assumption), rerun the commands and paste their new output into the tutorial.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import attrs
import pytest

from dfdsl import parser
from dfdsl.cli import main

ROOT = Path(__file__).parent.parent
TUTORIAL_MD = (ROOT / "docs" / "tutorial.md").read_text(encoding="utf-8")
MODELS = ROOT / "docs" / "tutorial" / "mymodels"
FILECHECK_TEST = ROOT / "tests" / "filecheck" / "tutorial" / "kernel-looping-demo.mlir"
SVG = ROOT / "docs" / "tutorial" / "tiny_llama.svg"
VENV_BIN = Path(sys.executable).parent
FILE_LINE = re.compile(r"\A# file: (\S+)\n")
FILECHECK_SAVED_AS = Path("filecheck") / "kernel-looping-demo.mlir"
"""Where step 7 saves its test, in the tutorial's folder."""
SKIP_LINE = "..."


def fenced_blocks(text: str) -> list[tuple[str, str]]:
    """(language, body) of every fenced block of a markdown text, in order."""
    return re.findall(r"^```(\w*)\n(.*?)^```$", text, re.S | re.M)


BLOCKS = fenced_blocks(TUTORIAL_MD)
PROSE = " ".join(re.sub(r"^```.*?^```$", "", TUTORIAL_MD, flags=re.S | re.M).split())


@attrs.frozen
class Command:
    """A `$ command` of a console block and the output shown under it."""

    line: str
    shown: str
    block: int
    """Index in BLOCKS of the console block holding it."""


def commands_of(block: int, body: str) -> list[Command]:
    chunks = re.split(r"^\$ (.*)\n", body, flags=re.M)
    assert chunks[0] == "", f"console block {block} does not start with a `$ ` command"
    return [Command(line, shown, block) for line, shown in zip(chunks[1::2], chunks[2::2])]


COMMANDS = [c for i, (lang, body) in enumerate(BLOCKS) if lang == "console" for c in commands_of(i, body)]


def output_pattern(shown: str) -> re.Pattern[str]:
    """A regex matching the lines of `shown` as consecutive lines of an output, where a line `...`
    stands for any number of lines and `...` inside a line for any text."""
    parts = ["(?m)^"]
    for line in shown.rstrip("\n").split("\n"):
        if line.strip() == SKIP_LINE:
            parts.append(r"(?:[^\n]*\n)*?")
        else:
            parts.append(".*?".join(map(re.escape, line.rstrip().split(SKIP_LINE))) + r"\n")
    return re.compile("".join(parts))


def normalized(text: str) -> str:
    """Lines without trailing blanks (rich pads its table titles), ending with a newline."""
    return "".join(line.rstrip() + "\n" for line in text.splitlines())


# -- running the commands -------------------------------------------------------------------------


def run_dfdsl(argv: list[str]) -> tuple[int, str]:
    """`dfdsl ARGV` in-process: exit code and stdout followed by stderr."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue() + err.getvalue()


def run_cut_column(line: str) -> tuple[int, str]:
    """`cut -d, -fLIST FILE | column -s, -t`, done in Python: the chosen CSV columns, aligned."""
    match = re.fullmatch(r"cut -d, -f([\d,]+) (\S+) \| column -s, -t", line)
    assert match, f"unexpected cut command: {line}"
    fields = [int(f) - 1 for f in match.group(1).split(",")]
    rows = [[row[f] for f in fields] for row in csv.reader(Path(match.group(2)).read_text().splitlines())]
    widths = [max(len(r[i]) for r in rows) for i in range(len(fields))]
    return 0, "".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() + "\n" for r in rows)


def run_lit(line: str) -> tuple[int, str]:
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}"}
    argv = shlex.split(line)
    # No test times: tests/test_filecheck.py's lit run may be rewriting the shared times file (and
    # lit aborts on a half-written one) while this one reads it.
    proc = subprocess.run([str(VENV_BIN / "lit"), "--skip-test-time-recording", *argv[1:]], capture_output=True,
                          text=True, env=env)
    return proc.returncode, proc.stdout.replace(str(Path.cwd()) + "/", "") + proc.stderr


def run_command(line: str) -> tuple[int, str]:
    program = line.split()[0]
    if program == "dfdsl":
        argv = shlex.split(line)[1:]
        if argv[0] == "sweep":
            argv += ["--workers", "1"]  # same rows; no process pool to start in a test
        return run_dfdsl(argv)
    if program == "cut":
        return run_cut_column(line)
    if program == "lit":
        return run_lit(line)
    raise AssertionError(f"the tutorial shows a command this test cannot run: {line}")


def run_isolated(line: str) -> tuple[int, str]:
    """`run_command`, with a crash of this test's helpers recorded as that command's failure only."""
    try:
        return run_command(line)
    except Exception as err:  # e.g. a CSV without the columns `cut` asks for
        return 1, f"{type(err).__name__}: {err}"


def apply_diff(body: str, path: Path) -> None:
    """Replace the `-` lines of a one-hunk diff block by its `+` lines in `path`."""
    old = "".join(line[1:] + "\n" for line in body.splitlines() if line.startswith("-"))
    new = "".join(line[1:] + "\n" for line in body.splitlines() if line.startswith("+"))
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"the diff's `-` lines are not in {path.name} exactly once"
    path.write_text(text.replace(old, new), encoding="utf-8")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """An empty scratch folder, where the tutorial starts."""
    return tmp_path_factory.mktemp("tutorial")


@pytest.fixture(scope="module")
def results(workdir):
    """Every command of the tutorial run in order: (exit code, output) per entry of COMMANDS.

    A `dfl` block naming its file is written there, and the FileCheck test where step 7 saves it,
    when the tutorial reaches them. A diff block applies to mymodels/tiny_llama.dfl for the console
    block right after it only, as the tutorial says to undo it."""
    outputs: list[tuple[int, str]] = []
    model = workdir / "mymodels" / "tiny_llama.dfl"
    pristine = ""
    with contextlib.chdir(workdir):
        for i, (lang, body) in enumerate(BLOCKS):
            if lang == "dfl" and (name := FILE_LINE.match(body)):
                Path(name.group(1)).write_text(body, encoding="utf-8")
                pristine = model.read_text(encoding="utf-8") if model.exists() else ""
            if lang == "mlir":
                FILECHECK_SAVED_AS.write_text(body, encoding="utf-8")
            if lang == "diff":
                apply_diff(body, model)
            if lang != "console":
                continue
            outputs += [run_isolated(c.line) for c in COMMANDS if c.block == i]
            if pristine:
                model.write_text(pristine, encoding="utf-8")
    return outputs


# -- the files ------------------------------------------------------------------------------------


def test_the_model_files_are_the_tutorial_blocks():
    named = {FILE_LINE.match(body).group(1): body for lang, body in BLOCKS if lang == "dfl" and FILE_LINE.match(body)}
    assert set(named) == {"mymodels/tiny_llama.dfl", "mymodels/micro_llama.dfl"}
    for name, body in named.items():
        assert body == (MODELS / Path(name).name).read_text(encoding="utf-8"), name


def test_the_filecheck_file_is_the_tutorial_block():
    (body,) = [body for lang, body in BLOCKS if lang == "mlir"]
    assert body == FILECHECK_TEST.read_text(encoding="utf-8")


def test_the_std_block_layer_parses():
    (snippet,) = [body for lang, body in BLOCKS if lang == "dfl" and not FILE_LINE.match(body)]
    parser.parse_text(snippet, Path("snippet.dfl"))


# -- the commands ---------------------------------------------------------------------------------


@pytest.mark.parametrize("index", range(len(COMMANDS)), ids=[c.line[:60] for c in COMMANDS])
def test_command_prints_what_the_tutorial_shows(results, index):
    command = COMMANDS[index]
    if "--format svg" in command.line and shutil.which("dot") is None:
        pytest.skip("Graphviz's `dot` is not installed")
    code, output = results[index]
    assert code == (2 if ": error:" in command.shown else 0), output
    if command.shown.strip():
        assert output_pattern(command.shown).search(normalized(output)), (
            f"`{command.line}` printed:\n{output}")


def test_every_console_block_is_run():
    assert {c.line.split()[0] for c in COMMANDS} == {"dfdsl", "cut", "lit"}
    assert len([c for c in COMMANDS if c.line.startswith("dfdsl ")]) >= 15


def test_pattern_rejects_what_the_output_does_not_have():
    assert output_pattern("a\n...\nc\n").search("a\nb\nc\n")
    assert not output_pattern("a\nc\n").search("a\nb\nc\n")
    assert output_pattern("x = ... y\n").search("x = 1, 2 y\n")
    assert not output_pattern("x = ... z\n").search("x = 1, 2 y\n")


# -- the figures quoted in the prose --------------------------------------------------------------


def output_of(results, line: str) -> str:
    (index,) = [i for i, c in enumerate(COMMANDS) if c.line == line]
    return results[index][1]


@pytest.fixture(scope="module")
def looped(results):
    return json.loads(output_of(results, "dfdsl run mymodels/tiny_llama.dfl --json"))


@pytest.fixture(scope="module")
def unlooped(workdir):
    with contextlib.chdir(workdir):
        code, output = run_dfdsl(["run", "mymodels/tiny_llama.dfl", "--no-kernel-looping", "--json"])
    assert code == 0, output
    return json.loads(output)


def test_kernel_calls_per_token_are_the_rdu_calls(results, looped, unlooped):
    rdu = output_of(results, "dfdsl lower mymodels/tiny_llama.dfl --emit rdu")
    assert rdu.count("rdu.call @") == looped["kernel_calls_per_token"]
    assert f"**{looped['kernel_calls_per_token']} kernel calls per token**" in PROSE
    assert (f"**{unlooped['kernel_calls_per_token']} kernel calls per token** instead of "
            f"{looped['kernel_calls_per_token']}") in PROSE
    assert unlooped["kernel_calls_per_token"] == looped["kernel_calls_per_token"] + 15


def test_the_gain_of_kernel_looping(looped, unlooped):
    ms, ms_off = looped["ms_per_token"], unlooped["ms_per_token"]
    assert f"{ms_off:.3f} ms per token instead of {ms:.3f}, **{ms_off / ms:.2f}x** slower" in PROSE
    assert (f"{unlooped['peak_fraction']:.1%} of the roofline instead of {looped['peak_fraction']:.1%}"
            in PROSE)
    assert f"here {looped['peak_fraction']:.1%}" in PROSE


def test_the_breakdown_explained(looped):
    sync_us = looped["breakdown_ms"]["sync"] * 1e3 / looped["kernel_calls_per_token"]
    assert f"{sync_us:.0f} µs per call, {looped['kernel_calls_per_token']} calls" in PROSE
    assert f"starting the next step, {looped['breakdown_ms']['host'] * 1e3:.0f} µs" in PROSE
    last_context = looped["context"] + looped["tokens"] - 1
    assert f"from {looped['context']:,} to {last_context:,}" in PROSE
    assert f"ridge ({looped['ridge_flops_per_byte']:.0f} FLOP per byte)" in PROSE
    assert looped["breakdown_ms"]["compute"] < 1e-3
    # The only collective on the chain is the sampler's gather: one latency per step.
    assert f"{looped['breakdown_ms']['collective'] * 1e3:.1f} µs per step" in PROSE


def test_the_sweep_saving_is_the_same_everywhere(workdir, results):
    rows = list(csv.DictReader((workdir / "sweep.csv").read_text().splitlines()))
    on = {(r["sockets"], r["batch"]): r for r in rows if r["kernel_looping"] == "True"}
    off = {(r["sockets"], r["batch"]): r for r in rows if r["kernel_looping"] == "False"}
    savings = {round(float(off[k]["ms_per_token"]) - float(on[k]["ms_per_token"]), 2) for k in on}
    calls = {int(off[k]["kernel_calls_per_token"]) - int(on[k]["kernel_calls_per_token"]) for k in on}
    (saving,), (fewer,) = savings, calls
    assert f"saves the same {saving:.2f} ms per token here ({fewer} fewer calls" in PROSE
    for key in on:
        batch_16 = (key[0], "16")
        assert float(on[batch_16]["tokens_per_s"]) > float(on[(key[0], "1")]["tokens_per_s"])


def test_the_trace_is_as_described(workdir, results):
    trace = json.loads((workdir / "step.json").read_text())
    events = trace["traceEvents"]
    processes = sorted(e["args"]["name"] for e in events if e["name"] == "process_name")
    assert processes == [f"tiny_llama · socket {i}" for i in range(4)]
    tracks = {e["args"]["name"] for e in events if e["name"] == "thread_name"}
    assert tracks == {"PCU stages", "HBM stream", "P2P", "host"}
    for track in tracks:
        assert f"**{track}**" in PROSE
    stage_track = next(e["tid"] for e in events if e.get("args", {}).get("name") == "PCU stages" and e["pid"] == 0)
    slices = [e for e in events if e["pid"] == 0 and e["tid"] == stage_track
              and re.fullmatch(r"parallel_decoder_x16\[\d+\]", e["name"])]
    (duration,) = {round(e["dur"], 1) for e in slices}
    assert f"{len(slices)} slices `parallel_decoder_x16[0]` to `[{len(slices) - 1}]` of {duration} µs each" in PROSE
    end = max(e["ts"] + e["dur"] for e in events if e["ph"] == "X" and e["pid"] == 0)
    assert f"The first step ends at {end:.1f} µs" in PROSE


def test_embed_in_ddr_turns_orange_and_barely_moves_the_run(workdir, looped):
    """The tip of step 3: `"embed" -> ddr` in the place block."""
    model = workdir / "mymodels" / "tiny_llama_ddr.dfl"
    text = (MODELS / "tiny_llama.dfl").read_text(encoding="utf-8")
    model.write_text(text.replace("activations -> sram }", 'activations -> sram; "embed" -> ddr }'))
    assert '"embed" -> ddr' in PROSE and "turns orange" in PROSE
    with contextlib.chdir(workdir):
        code, dot = run_dfdsl(["lower", str(model), "--emit", "graph"])
        assert code == 0, dot
        code, output = run_dfdsl(["run", str(model), "--json"])
        assert code == 0, output
    legend = re.search(r'"legend.ddr" \[.*fillcolor="(#\w+)"', dot).group(1)
    assert re.search(rf'\[label="embed", [^\]]*fillcolor="{legend}"', dot)
    assert json.loads(output)["ms_per_token"] == pytest.approx(looped["ms_per_token"], rel=0.01)


def test_the_svg_shows_the_loop_and_the_stacked_weights(workdir, results):
    svgs = [SVG.read_text(encoding="utf-8")]
    if shutil.which("dot"):
        svgs.append((workdir / "tiny_llama.svg").read_text(encoding="utf-8"))
    for svg in svgs:
        assert "parallel_decoder_x16 · loop ×16 · pipelined" in svg
        assert "wq ×16" in svg and "k_cache ×16" in svg and "all_reduce" in svg


# -- the FileCheck test ---------------------------------------------------------------------------


def test_the_filecheck_test_can_fail(tmp_path):
    """Step 7 says: `@parallel_decoder_x4` in the first CHECK line makes the test fail."""
    broken = tmp_path / "broken.mlir"
    text = FILECHECK_TEST.read_text(encoding="utf-8")
    broken.write_text(text.replace("// CHECK:      df.kernel @parallel_decoder_x3(",
                                   "// CHECK:      df.kernel @parallel_decoder_x4(", 1))
    assert "@parallel_decoder_x4" in PROSE
    code, looped_ir = run_dfdsl(["opt", str(broken), "-p", "kernel-looping"])
    assert code == 0, looped_ir
    filecheck = subprocess.run([str(VENV_BIN / "filecheck"), str(broken)], input=looped_ir,
                               capture_output=True, text=True)
    assert filecheck.returncode != 0


def test_xdsl_opt_prints_the_same(results):
    """Step 7 says plain `xdsl-opt FILE -p kernel-looping` prints what `dfdsl opt` does."""
    line = f"dfdsl opt {FILECHECK_SAVED_AS} -p kernel-looping"
    assert "`xdsl-opt FILE -p kernel-looping` prints the same" in PROSE
    proc = subprocess.run([str(VENV_BIN / "xdsl-opt"), str(FILECHECK_TEST), "-p", "kernel-looping"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.rstrip("\n") == output_of(results, line).rstrip("\n")
