"""Safety: absurd inputs get a clear, coded error quickly; nothing runs user text as code; imports
stay inside their folders; outputs are written whole or not at all; every error code is
documented and used.
"""

from __future__ import annotations

import ast
import os
import re
import time
from pathlib import Path

import pytest

from dfdsl.diagnostics import ERROR_CODES
from fuzz.mutations import Outcome, run_cli

ROOT = Path(__file__).resolve().parent.parent
LLAMA_8B = (ROOT / "examples" / "llama3_1_8b.dfl").read_text(encoding="utf-8")
SOURCE_DIRS = ("dfdsl", "dialects", "lowering", "sim", "grammar")
QUICK_S = 5.0
"""CPU seconds within which an absurd input must be refused (each takes well under one). CPU time of
this thread, not wall time, so parallel test workers and other jobs on the machine do not fail it;
a wait that burns no CPU is caught by run_cli's 60 s limit."""


def model(tmp_path: Path, text: str = LLAMA_8B, name: str = "model.dfl") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def refused(argv: list[str], code: str) -> Outcome:
    """Run the CLI; assert it exits 2 within QUICK_S with `code`, and no traceback."""
    start = time.thread_time()
    outcome = run_cli(argv, seconds=60)
    elapsed = time.thread_time() - start
    assert outcome.code == 2, f"exit {outcome.code} {outcome.error}\n{outcome.stderr}"
    assert f"[{code}]" in outcome.stderr, outcome.stderr
    assert "Traceback" not in outcome.stderr
    assert elapsed < QUICK_S, f"took {elapsed:.1f} s"
    return outcome


# -- resource limits ----------------------------------------------------------------------------

ABSURD_MODELS = {
    "layers = 10^9": (LLAMA_8B.replace("layers = 32", "layers = 1_000_000_000"), "E017"),
    "layers = 2^62": (LLAMA_8B.replace("layers = 32", f"layers = {2**62}"), "E017"),
    "hidden = 2^63": (LLAMA_8B.replace("hidden = 4096", f"hidden = {2**63}"), "E006"),
    "vocab * vocab * vocab * vocab": (LLAMA_8B.replace("vocab = 128256", "vocab = 128256 * 128256 * 128256 * 128256 * 128256"), "E006"),
    "context = 2^40": (LLAMA_8B.replace("context = 4096", "context = 1099511627776"), "E019"),
    "batch = 0": (LLAMA_8B.replace("batch = 1", "batch = 0"), "E019"),
    "tokens = 2^40": (LLAMA_8B.replace("tokens = 128", "tokens = 1099511627776"), "E019"),
    "run sockets = 0": (LLAMA_8B.replace("target = sn40l(sockets = 8)", "sockets = 0"), "E019"),
    "run sockets = 1025": (LLAMA_8B.replace("target = sn40l(sockets = 8)", "sockets = 1025"), "E019"),
    "target sockets = 0": (LLAMA_8B.replace("sockets = 8", "sockets = 0"), "E019"),
    "100,000 unclosed parentheses": (f"const a = {'(' * 100_000}1\n{LLAMA_8B}", "E001"),
    "a chain of 20,000 sums": (f"const a = {' + '.join(['1'] * 20_000)}\n{LLAMA_8B}", "E017"),
    "20,000 minus signs": (f"const a = {'-' * 20_000}1\n{LLAMA_8B}", "E017"),
    "two loops of 3000": (LLAMA_8B.replace("layers = 32", "layers = 3000").replace(
        "model llama3_1_8b : llama", "graph twice(dtype, vocab, hidden, layers, heads, kv_heads, head_dim, ffn) {\n"
        "  in t : int32[B]\n  weight e : dtype[vocab, hidden]\n  x = embedding(t, e)\n"
        "  for l in 0..layers { x = llama_decoder(x) }\n  for l in layers..2 * layers { x = llama_decoder(x) }\n"
        "  s = sample(x)\n  out s\n}\nmodel llama3_1_8b : twice"), "E017"),
}


@pytest.mark.parametrize("text, code", ABSURD_MODELS.values(), ids=ABSURD_MODELS.keys())
def test_absurd_values_in_the_file_are_refused_quickly(text, code, tmp_path):
    refused(["check", str(model(tmp_path, text))], code)


def test_deeply_nested_parentheses_are_accepted_quickly(tmp_path):
    """Parentheses make no tree node, so 100,000 of them cost nothing (unlike `-` or `+` chains)."""
    start = time.thread_time()
    path = model(tmp_path, f"const a = {'(' * 100_000}1{')' * 100_000}\n{LLAMA_8B}")
    assert run_cli(["check", str(path)], seconds=60).code == 0
    assert time.thread_time() - start < QUICK_S


def test_a_100_mb_file_is_refused_quickly(tmp_path):
    path = tmp_path / "huge.dfl"
    with path.open("wb") as f:
        f.write(LLAMA_8B.encode())
        chunk = b"# " + b"x" * (1 << 20) + b"\n"
        for _ in range(100):
            f.write(chunk)
    assert path.stat().st_size > 100 * 10**6
    outcome = refused(["check", str(path)], "E017")
    assert "the limit is 4,194,304" in outcome.stderr


def test_an_imported_file_past_the_size_limit_is_refused_at_the_import(tmp_path):
    (tmp_path / "big.dfl").write_bytes(b"# " + b"x" * (5 << 20) + b"\n")
    outcome = refused(["check", str(model(tmp_path, "import big\n" + LLAMA_8B))], "E017")
    assert "big.dfl" in outcome.stderr


def test_a_chain_of_257_imports_is_refused(tmp_path):
    for i in range(300):
        (tmp_path / f"m{i}.dfl").write_text(f"import m{i + 1}\n" if i < 299 else "", encoding="utf-8")
    outcome = refused(["check", str(model(tmp_path, "import m0\n" + LLAMA_8B))], "E017")
    assert "more than 256 files" in outcome.stderr


RUN_OVERRIDES = {
    "--context 2^40": (["--context", "1099511627776"], "E019"),
    "--sockets 0": (["--sockets", "0"], "E019"),
    "--batch 0": (["--batch", "0"], "E019"),
    "--batch -1": (["--batch", "-1"], "E019"),
    "--tokens 2^63": (["--tokens", str(2**63)], "E019"),
    "--sockets 2^70": (["--sockets", str(2**70)], "E019"),
}


@pytest.mark.parametrize("command", ["check", "lower", "run"])
@pytest.mark.parametrize("options, code", RUN_OVERRIDES.values(), ids=RUN_OVERRIDES.keys())
def test_absurd_run_settings_on_the_command_line_are_refused_quickly(command, options, code, tmp_path):
    outcome = refused([command, str(model(tmp_path)), *options], code)
    assert "on the command line" in outcome.stderr


def test_sockets_1000_is_in_range_but_does_not_divide_the_heads(tmp_path):
    path = model(tmp_path)
    assert run_cli(["check", str(path), "--sockets", "1000"]).code == 0  # within 1..1024: E019 does not apply
    outcome = run_cli(["run", str(path), "--sockets", "1000"], seconds=60)
    assert outcome.code == 2 and "Traceback" not in outcome.stderr
    assert "1000 sockets cannot split attention" in outcome.stderr and "nothing but padding" in outcome.stderr


# -- nothing runs user text as code ------------------------------------------------------------

FORBIDDEN_CALLS = {"eval", "exec", "compile", "__import__", "breakpoint", "input"}
FORBIDDEN_MODULES = {"pickle", "cPickle", "marshal", "shelve", "dill", "cloudpickle", "yaml", "code", "pty"}
FORBIDDEN_ATTRIBUTES = {("os", "system"), ("os", "popen"), ("os", "execv"), ("os", "execvp"), ("pickle", "loads")}


def source_files() -> list[Path]:
    files = [p for d in SOURCE_DIRS for p in sorted((ROOT / d).rglob("*.py"))]
    assert len(files) > 20
    return files


def unsafe_uses(path: Path) -> list[str]:
    """Calls and imports in one module that could run text as code, by line."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name) and func.id in FORBIDDEN_CALLS:
                found.append(f"{path.name}:{node.lineno}: {func.id}()")
            if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and (
                    (func.value.id, func.attr) in FORBIDDEN_ATTRIBUTES):
                found.append(f"{path.name}:{node.lineno}: {func.value.id}.{func.attr}()")
            for kw in node.keywords:
                if kw.arg == "shell" and not (isinstance(kw.value, ast.Constant) and kw.value.value is False):
                    found.append(f"{path.name}:{node.lineno}: shell=")
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            found += [f"{path.name}:{node.lineno}: import {n}" for n in names if n.split(".")[0] in FORBIDDEN_MODULES]
    return found


def test_no_module_evaluates_executes_or_unpickles_anything():
    problems = [use for path in source_files() for use in unsafe_uses(path)]
    assert problems == []


def test_the_unsafe_use_check_finds_what_it_looks_for(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import pickle\nimport os\neval(t)\nos.system(t)\nrun(t, shell=True)\nself.eval(t)\n")
    assert sorted(unsafe_uses(bad)) == ["bad.py:1: import pickle", "bad.py:3: eval()", "bad.py:4: os.system()",
                                        "bad.py:5: shell="]


def test_modules_are_imported_only_from_fixed_tables():
    """`import_module` is used only by the pass and dialect registries, on names from their tables."""
    users = sorted(p.relative_to(ROOT).as_posix() for p in source_files() if "import_module(" in p.read_text(encoding="utf-8"))
    assert users == ["dialects/__init__.py", "lowering/pipeline.py"]


# -- imports cannot escape ----------------------------------------------------------------------


def test_a_symlink_to_a_file_outside_the_models_folder_is_refused(tmp_path):
    outside = tmp_path / "outside.dfl"
    outside.write_text("layer leaked() { }\n", encoding="utf-8")
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "common.dfl").symlink_to(outside)
    outcome = refused(["check", str(model(folder, "import common\n" + LLAMA_8B))], "E015")
    assert re.search(r"model.dfl:1:1: error: `common` resolves to .*outside.dfl, outside ", outcome.stderr)


def test_a_symlinked_folder_pointing_up_is_refused(tmp_path):
    (tmp_path / "secret.dfl").write_text("const secret = 1\n", encoding="utf-8")
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "up").symlink_to(tmp_path, target_is_directory=True)
    refused(["check", str(model(folder, "import up.secret\n" + LLAMA_8B))], "E015")


def test_a_symlink_to_a_system_file_is_refused_before_it_is_read(tmp_path):
    (tmp_path / "passwd.dfl").symlink_to("/etc/passwd")
    outcome = refused(["check", str(model(tmp_path, "import passwd\n" + LLAMA_8B))], "E015")
    assert "root:" not in outcome.stderr


@pytest.mark.parametrize("line, code", [
    ("import std..llama", "E001"),
    ("import std/../llama", "E001"),
    ("import ..std.llama", "E001"),
    ('import "../llama"', "E001"),
    ("import std", "E013"),
    ("import std.llama.llama", "E013"),
    ("import std.__init__", "E013"),
    ("import std.__pycache__", "E013"),
])
def test_import_std_cannot_be_tricked(line, code, tmp_path):
    refused(["check", str(model(tmp_path, LLAMA_8B.replace("import std.llama", line)))], code)


def test_a_local_folder_named_std_does_not_shadow_the_library(tmp_path):
    (tmp_path / "std").mkdir()
    (tmp_path / "std" / "llama.dfl").write_text("this is not dfl\n", encoding="utf-8")
    assert run_cli(["check", str(model(tmp_path))]).code == 0


# -- outputs are written whole, or not at all ----------------------------------------------------

BAD_MODEL = LLAMA_8B.replace("hidden = 4096", "hidden = hiden")
OUTPUT_COMMANDS = {
    "lower -o": lambda src, out: ["lower", src, "-o", out],
    "run -o": lambda src, out: ["run", src, "-o", out],
    "run --json -o": lambda src, out: ["run", src, "--json", "-o", out],
    "run --trace": lambda src, out: ["run", src, "--trace", out],
}


@pytest.mark.parametrize("argv", OUTPUT_COMMANDS.values(), ids=OUTPUT_COMMANDS.keys())
def test_a_failing_run_leaves_no_output_and_no_temporary_file(argv, tmp_path):
    src = model(tmp_path, BAD_MODEL)
    refused(argv(str(src), str(tmp_path / "out.txt")), "E003")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.dfl"]


@pytest.mark.parametrize("argv", OUTPUT_COMMANDS.values(), ids=OUTPUT_COMMANDS.keys())
def test_a_run_failing_after_the_front_end_leaves_nothing_either(argv, tmp_path):
    src = model(tmp_path)
    outcome = run_cli([*argv(str(src), str(tmp_path / "out.txt")), "--sockets", "3", "--no-pad"], seconds=60)
    assert outcome.code == 2 and "3 sockets cannot split" in outcome.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.dfl"]


@pytest.mark.parametrize("argv", OUTPUT_COMMANDS.values(), ids=OUTPUT_COMMANDS.keys())
def test_a_successful_run_writes_the_output_and_no_temporary_file(argv, tmp_path):
    src = model(tmp_path)
    out = tmp_path / "out.txt"
    out.write_text("old contents", encoding="utf-8")
    outcome = run_cli(argv(str(src), str(out)), seconds=60)
    assert outcome.code == 0, outcome.stderr
    assert out.read_text(encoding="utf-8") != "old contents" and out.stat().st_size > 100
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.dfl", "out.txt"]


@pytest.mark.parametrize("argv", OUTPUT_COMMANDS.values(), ids=OUTPUT_COMMANDS.keys())
@pytest.mark.parametrize("alias", ["same path", "relative path", "symlink"])
def test_output_to_the_input_file_is_refused_and_the_input_kept(argv, alias, tmp_path, monkeypatch):
    src = model(tmp_path)
    out = {"same path": str(src), "relative path": "./sub/../model.dfl", "symlink": str(tmp_path / "link.dfl")}[alias]
    (tmp_path / "sub").mkdir()
    (tmp_path / "link.dfl").symlink_to(src)
    monkeypatch.chdir(tmp_path)
    outcome = run_cli(argv(str(src), out), seconds=60)
    assert outcome.code == 2 and "refusing to overwrite the input file" in outcome.stderr, outcome.stderr
    assert src.read_text(encoding="utf-8") == LLAMA_8B
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.dfl", "model.dfl", "sub"]


@pytest.mark.parametrize("argv", OUTPUT_COMMANDS.values(), ids=OUTPUT_COMMANDS.keys())
def test_output_to_a_missing_folder_is_a_clear_error(argv, tmp_path):
    src = model(tmp_path)
    outcome = run_cli(argv(str(src), str(tmp_path / "no" / "such" / "out.txt")), seconds=60)
    assert outcome.code == 2 and "Traceback" not in outcome.stderr
    assert re.search(r"dfdsl: error: cannot write .*out.txt: No such file or directory", outcome.stderr)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.dfl"]


@pytest.mark.parametrize("argv", OUTPUT_COMMANDS.values(), ids=OUTPUT_COMMANDS.keys())
def test_output_onto_a_folder_is_a_clear_error_and_leaves_no_temporary_file(argv, tmp_path):
    src = model(tmp_path)
    (tmp_path / "out").mkdir()
    outcome = run_cli(argv(str(src), str(tmp_path / "out")), seconds=60)
    assert outcome.code == 2 and "dfdsl: error: cannot write" in outcome.stderr
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["model.dfl", "out"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_output_to_a_read_only_folder_is_a_clear_error(tmp_path):
    src = model(tmp_path)
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        outcome = run_cli(["lower", str(src), "-o", str(locked / "out.mlir")], seconds=60)
    finally:
        locked.chmod(0o755)
    assert outcome.code == 2 and "Permission denied" in outcome.stderr
    assert list(locked.iterdir()) == []


# -- the error catalogue ------------------------------------------------------------------------

CODE = re.compile(r"""["'](E\d{3})["']""")


def codes_used_in_source() -> dict[str, list[str]]:
    """Each code string in the source, with the files using it (the catalogue itself excluded)."""
    used: dict[str, list[str]] = {}
    for path in source_files():
        text = path.read_text(encoding="utf-8")
        if path.name == "diagnostics.py":
            text = text.replace(text[text.index("ERROR_CODES"):text.index('"""Every code')], "")
        for code in CODE.findall(text):
            used.setdefault(code, []).append(path.relative_to(ROOT).as_posix())
    return used


def test_every_catalogued_code_is_raised_somewhere():
    used = codes_used_in_source()
    assert [code for code in ERROR_CODES if code not in used] == []


def test_every_code_raised_is_catalogued_and_documented():
    docs = (ROOT / "docs" / "errors.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^## (E\d{3}): ", docs, re.MULTILINE))
    used = codes_used_in_source()
    assert sorted(set(used) - set(ERROR_CODES)) == []
    assert sorted(set(used) - documented) == []
    assert documented == set(ERROR_CODES)
    for code, title in ERROR_CODES.items():
        assert f"## {code}: {title}" in docs, f"docs/errors.md has no section `## {code}: {title}`"


# -- known problems: minimal reproducers, each to flip when fixed -------------------------------


def test_an_endless_input_file_is_refused_before_it_is_read():
    """Under a 1 GB memory limit, /dev/zero is refused as a device, not read until memory runs out."""
    import resource
    import subprocess
    import sys

    def limit_memory() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))

    proc = subprocess.run([sys.executable, "-m", "dfdsl", "check", "/dev/zero"], capture_output=True,
                          text=True, timeout=60, preexec_fn=limit_memory)
    assert proc.returncode == 2 and "not a regular file [E002]" in proc.stderr, proc.stderr


def test_importing_a_named_pipe_is_refused(tmp_path):
    os.mkfifo(tmp_path / "blocks.dfl")
    outcome = run_cli(["check", str(model(tmp_path, "import blocks\n" + LLAMA_8B))], seconds=2)
    assert outcome.code == 2 and "model.dfl:1:1: error:" in outcome.stderr, outcome.error or outcome.stderr


def test_importing_a_folder_is_a_located_error(tmp_path):
    (tmp_path / "blocks.dfl").mkdir()
    outcome = run_cli(["check", str(model(tmp_path, "import blocks\n" + LLAMA_8B))])
    assert outcome.code == 2 and "model.dfl:1:1: error:" in outcome.stderr, outcome.stderr


@pytest.mark.parametrize("hardware", ["no_such_file.toml", "empty.toml"])
def test_a_bad_hardware_file_is_a_clear_error(hardware, tmp_path):
    (tmp_path / "empty.toml").write_text("", encoding="utf-8")
    outcome = run_cli(["run", str(model(tmp_path)), "--hardware", str(tmp_path / hardware)], seconds=60)
    assert outcome.code == 2 and "Traceback" not in outcome.stderr, outcome.stderr
