"""The documentation is executable: every example in docs/errors.md fails with its section's code
and prints the diagnostic the page shows, every model in docs/language.md checks, and the tables of
docs/language.md (operators, limits, defaults, dtypes) say what the code does."""

from __future__ import annotations

import re
from pathlib import Path

import attrs
import pytest

from dfdsl import elaborate, loader, parser
from dfdsl.diagnostics import ERROR_CODES, DfslError
from dfdsl.dialects.shapes import DTYPE_BYTES, OPERATOR_ATTRS, RULES
from dfdsl.elaborate import check_file
from dfdsl.errors import LoweringError, OutOfMemory
from dfdsl.hardware import TargetMismatchError
from dfdsl.lowering.place_memory import CapacityError
from dfdsl.lowering.shard_tensor_parallel import ShardingError
from dfdsl.model import RunConfig

ROOT = Path(__file__).parent.parent
ERRORS_MD = (ROOT / "docs" / "errors.md").read_text(encoding="utf-8")
LANGUAGE_MD = (ROOT / "docs" / "language.md").read_text(encoding="utf-8")
CHECK_PROMPT = "$ dfdsl check example.dfl\n"


def fenced_blocks(text: str, lang: str) -> list[str]:
    """The contents of the ```lang blocks of a markdown text, in order."""
    return re.findall(rf"^```{lang}\n(.*?)^```$", text, re.S | re.M)


def sections(text: str, level: str = "##") -> dict[str, str]:
    """Heading text to the body under it, for headings of exactly this level."""
    parts = re.split(rf"^{level} (.+)$", text, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2]))


def table_rows(text: str) -> list[list[str]]:
    """The cells of the body rows of every markdown table in `text` (not headers, not separators)."""
    lines = text.splitlines()
    rows = []
    for i, line in enumerate(lines):
        is_separator = set(line) <= set("|-: ")
        is_header = i + 1 < len(lines) and lines[i + 1].startswith("|---")
        if line.startswith("|") and not is_separator and not is_header:
            rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def numbers(cell: str) -> list[int]:
    return [int(n.replace(",", "")) for n in re.findall(r"\d[\d,]*", cell)]


ERROR_SECTIONS = {heading[:4]: (heading, body) for heading, body in sections(ERRORS_MD).items()}
FIRST_LATE_CODE = 20
"""E020 and on come from the passes, the simulator and the command line, not from `check`."""
DFL_EXAMPLES = [
    (code, i, block)
    for code, (_, body) in ERROR_SECTIONS.items()
    if int(code[1:]) < FIRST_LATE_CODE
    for i, block in enumerate(fenced_blocks(body, "dfl"))
]
LATE_CODES = [code for code in ERROR_SECTIONS if int(code[1:]) >= FIRST_LATE_CODE]
SHELL_CODES = [code for code in LATE_CODES if not fenced_blocks(ERROR_SECTIONS[code][1], "console")[0]
               .startswith("$ dfdsl ")]
"""Late codes whose command needs a shell (a limit, a redirection): run by a test of their own."""
ENVIRONMENT = {"E030": {"PATH": ""}}
"""What a section's command runs without: E030's shows a machine without Graphviz."""


def documented_output(code: str) -> str:
    """The first `dfdsl check example.dfl` output shown in a section of docs/errors.md."""
    _, body = ERROR_SECTIONS[code]
    outputs = [b for b in fenced_blocks(body, "console") if b.startswith(CHECK_PROMPT)]
    assert outputs, f"{code}: no `{CHECK_PROMPT.strip()}` output block"
    return outputs[0].removeprefix(CHECK_PROMPT).rstrip("\n")


def diagnostics_of(path: Path) -> DfslError:
    with pytest.raises(DfslError) as info:
        check_file(path)
    return info.value


# -- docs/errors.md -----------------------------------------------------------------------------


def test_every_code_has_a_section_with_its_title():
    assert list(ERROR_SECTIONS) == list(ERROR_CODES)
    for code, (heading, _) in ERROR_SECTIONS.items():
        assert heading == f"{code}: {ERROR_CODES[code]}"


def test_an_error_class_names_a_code_of_the_catalogue():
    """Exception classes give their code as they are declared; one not in the catalogue is refused."""
    assert (CapacityError.code, ShardingError.code, TargetMismatchError.code, OutOfMemory.code) == (
        "E021", "E020", "E022", "E031")
    assert issubclass(CapacityError, LoweringError) and LoweringError.code == "E024"
    assert str(CapacityError("too big", "use more sockets")) == "too big; use more sockets"
    with pytest.raises(ValueError, match="E099"):
        type("Unknown", (LoweringError,), {}, code="E099")


@pytest.mark.parametrize(("code", "index", "source"), DFL_EXAMPLES,
                         ids=[f"{code}-{index}" for code, index, _ in DFL_EXAMPLES])
def test_each_dfl_example_fails_with_its_code(tmp_path, monkeypatch, code, index, source):
    monkeypatch.chdir(tmp_path)
    Path("example.dfl").write_text(source, encoding="utf-8")
    err = diagnostics_of(Path("example.dfl"))
    assert err.diagnostics[0].code == code, err.render()
    if index == 0:
        assert err.render() == documented_output(code)


def write_latin1_model(folder: Path) -> None:
    """The E002 example: a comment with an `è` saved as the single Latin-1 byte 0xe8."""
    (folder / "example.dfl").write_bytes("# Modèle de test\nimport std.llama\n".encode("latin-1"))


def write_import_through_symlink(folder: Path) -> Path:
    """The E015 example: models/common.dfl links to ../common.dfl. Returns the models folder."""
    models = folder / "project" / "models"
    models.mkdir(parents=True)
    (models.parent / "common.dfl").write_text("const width = 64\n")
    (models / "common.dfl").symlink_to("../common.dfl")
    (models / "example.dfl").write_text("import common\n")
    return models


def test_codes_without_a_dfl_example_are_tested_directly():
    """A section whose example cannot be a plain `dfl` block needs a test of its own below."""
    without = {code for code in ERROR_CODES if not any(c == code for c, _, _ in DFL_EXAMPLES)}
    assert without - set(LATE_CODES) == {"E002", "E015"}


@pytest.mark.parametrize("code", [code for code in LATE_CODES if code not in SHELL_CODES])
def test_each_late_error_is_what_its_command_prints(tmp_path, monkeypatch, capsys, code):
    """The section's input files (marked `# file: NAME`), its `$ dfdsl ...` command, its output."""
    import shlex

    from dfdsl.cli import main

    monkeypatch.chdir(tmp_path)
    for name, value in ENVIRONMENT.get(code, {}).items():
        monkeypatch.setenv(name, value)
    _, body = ERROR_SECTIONS[code]
    for lang in ("dfl", "toml", "mlir", "csv"):
        for block in fenced_blocks(body, lang):
            first, _, rest = block.partition("\n")
            name = re.match(r"^(?:#|//) file: (\S+)$", first)
            assert name, f"{code}: a {lang} block must start with a `file: NAME` comment"
            Path(name.group(1)).write_text(block, encoding="utf-8")
    (console,) = fenced_blocks(body, "console")
    command, _, expected = console.partition("\n")
    assert command.startswith("$ dfdsl ")
    assert main(shlex.split(command)[2:]) == 2
    assert capsys.readouterr().err == expected


def test_shell_commands_print_what_the_page_shows(tmp_path):
    """E031's command sets a memory limit in a subshell: run it in one, with this dfdsl on PATH."""
    import os
    import subprocess
    import sys

    assert SHELL_CODES == ["E031"]
    (console,) = fenced_blocks(ERROR_SECTIONS["E031"][1], "console")
    command, _, expected = console.partition("\n")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    done = subprocess.run(["bash", "-c", command.removeprefix("$ ")], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2 and done.stderr == expected, done.stderr


def test_e002_not_utf8(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_latin1_model(tmp_path)
    err = diagnostics_of(Path("example.dfl"))
    assert [d.code for d in err.diagnostics] == ["E002"]
    assert err.render() == documented_output("E002")


def test_e002_missing_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    err = diagnostics_of(Path("missing.dfl"))
    assert [d.code for d in err.diagnostics] == ["E002"]
    assert err.render() in ERROR_SECTIONS["E002"][1]


def test_e015_import_through_a_symlink(tmp_path, monkeypatch):
    models = write_import_through_symlink(tmp_path)
    monkeypatch.chdir(models)
    err = diagnostics_of(Path("example.dfl"))
    assert [d.code for d in err.diagnostics] == ["E015"]
    project = str((tmp_path / "project").resolve())
    assert err.render().replace(project, "/home/me/project") == documented_output("E015")


def test_e016_no_model_prints_what_the_doc_shows(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("example.dfl").write_text("import std.llama\n")
    rendered = diagnostics_of(Path("example.dfl")).render()
    assert f"```console\n{CHECK_PROMPT}{rendered}\n```" in ERROR_SECTIONS["E016"][1]


def test_e017_file_too_large(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    line = b"# " + b"x" * 77 + b"\n"
    Path("example.dfl").write_bytes(line * (parser.MAX_SOURCE_BYTES // len(line) + 1))
    (diag,) = diagnostics_of(Path("example.dfl")).diagnostics
    assert diag.code == "E017"
    assert f"error: {diag.message} [E017]" in " ".join(ERROR_SECTIONS["E017"][1].split())


def test_e017_too_many_files(tmp_path):
    for i in range(loader.MAX_FILES):
        (tmp_path / f"f{i}.dfl").write_text(f"const c{i} = {i}\n")
    imports = "".join(f"import f{i}\n" for i in range(loader.MAX_FILES))
    (tmp_path / "example.dfl").write_text(imports)
    (diag,) = diagnostics_of(tmp_path / "example.dfl").diagnostics
    assert diag.code == "E017" and diag.span.line == loader.MAX_FILES
    assert diag.message in " ".join(ERROR_SECTIONS["E017"][1].split())


def test_e017_expression_too_deep(tmp_path):
    (tmp_path / "example.dfl").write_text("const a = " + "-" * 2000 + "1\n")
    (diag,) = diagnostics_of(tmp_path / "example.dfl").diagnostics
    assert diag.code == "E017"
    assert diag.message in ERROR_SECTIONS["E017"][1]


def test_error_pages_state_the_limits_of_the_code():
    e017 = " ".join(ERROR_SECTIONS["E017"][1].split())
    assert f"larger than {parser.MAX_SOURCE_BYTES:,} bytes" in e017
    assert f"more than {loader.MAX_FILES} files" in e017
    e019 = " ".join(ERROR_SECTIONS["E019"][1].split())
    for key, (lo, hi) in elaborate.RUN_LIMITS.items():
        assert f"`{key}` {lo:,} to {hi:,}" in e019


# -- docs/language.md ---------------------------------------------------------------------------

LANGUAGE_SECTIONS = sections(LANGUAGE_MD)
LANGUAGE_EXAMPLES = fenced_blocks(LANGUAGE_MD, "dfl")
MODEL_LINE = re.compile(r"^model \w+ :", re.M)
FILE_LINE = re.compile(r"\A# file: (\S+)\n")


def test_the_opening_example_is_the_real_file():
    assert LANGUAGE_EXAMPLES[0] == (ROOT / "examples" / "llama3_1_8b.dfl").read_text(encoding="utf-8")


def test_language_page_has_complete_models():
    assert sum(bool(MODEL_LINE.search(b)) for b in LANGUAGE_EXAMPLES) >= 5


@pytest.mark.parametrize("index", range(len(LANGUAGE_EXAMPLES)))
def test_every_example_parses(index):
    parser.parse_text(LANGUAGE_EXAMPLES[index], Path("example.dfl"))


@pytest.mark.parametrize("index", [i for i, b in enumerate(LANGUAGE_EXAMPLES) if MODEL_LINE.search(b)])
def test_each_complete_model_checks(tmp_path, index):
    """Blocks that start with `# file: PATH` are written there first, so local imports resolve."""
    for block in LANGUAGE_EXAMPLES:
        named = FILE_LINE.match(block)
        if named:
            target = tmp_path / named.group(1)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(block, encoding="utf-8")
    source = LANGUAGE_EXAMPLES[index]
    named = FILE_LINE.match(source)
    path = tmp_path / (named.group(1) if named else "example.dfl")
    path.write_text(source, encoding="utf-8")
    try:
        check_file(path)
    except DfslError as err:
        pytest.fail(err.render())


def test_operator_table_lists_every_operator_and_its_settings():
    rows = {row[0].strip("`"): row for row in table_rows(LANGUAGE_SECTIONS["Operators"])}
    assert set(rows) == set(RULES)
    for op in RULES:
        settings = set(re.findall(r"`(\w+)`", rows[op][2]))
        assert set(OPERATOR_ATTRS.get(op, ())) <= settings, op


def test_limits_table_states_the_constants_of_the_code():
    limits = {}
    for row in table_rows(LANGUAGE_SECTIONS["Limits"]):
        limit, value, code, where = row
        constant = re.search(r"`(\w+)`", where).group(1)
        run_setting = re.match(r"run `(\w+)`", limit)
        limits[(constant, run_setting.group(1) if run_setting else None)] = (numbers(value), code)
    assert limits.pop(("MAX_SOURCE_BYTES", None))[0][0] == parser.MAX_SOURCE_BYTES
    assert limits.pop(("MAX_FILES", None))[0] == [loader.MAX_FILES]
    assert limits.pop(("MAX_LAYER_CALLS", None))[0] == [elaborate.MAX_LAYER_CALLS]
    assert elaborate.MAX_INT in limits.pop(("MAX_INT", None))[0]
    for key, bounds in elaborate.RUN_LIMITS.items():
        assert limits.pop(("RUN_LIMITS", key)) == (list(bounds), "E019")
    assert not limits


def test_run_table_states_the_defaults_of_the_code():
    rows = {row[0].strip("`"): row for row in table_rows(LANGUAGE_SECTIONS["`run`"])}
    assert list(rows) == list(elaborate.RUN_SETTING_NAMES)
    assert sorted(rows) == sorted(f.name for f in attrs.fields(RunConfig))
    for setting in elaborate.RUN_SETTING_NAMES:
        default = elaborate.DEFAULT_RUN.get(setting, "none")
        assert rows[setting][2].strip("`") == str(default)
        assert f"--{setting.replace('_', '-')} " in rows[setting][3]


def test_place_table_states_the_classes_and_defaults_of_the_code():
    rows = {row[0].strip("`"): row[2].strip("`") for row in table_rows(LANGUAGE_SECTIONS["`place`"])}
    assert rows == elaborate.DEFAULT_PLACEMENT
    assert list(rows) == list(elaborate.TENSOR_CLASSES)


def test_dtype_table_states_the_sizes_of_the_code():
    rows = {row[0].strip("`"): int(row[1]) for row in table_rows(LANGUAGE_SECTIONS["Dtypes"])}
    assert rows == DTYPE_BYTES


# -- docs/report.md -------------------------------------------------------------------------------

REPORT_MD = (ROOT / "docs" / "report.md").read_text(encoding="utf-8")


COMPOSITION_SECTION = "A Composition of Experts (`COMPOSITION_KEYS` and more)"


def test_report_page_lists_a_compositions_keys():
    """The composition section's table is the contract tuple, and its prose names every other key
    a composition's run adds to a plain request's."""
    from dfdsl.driver import run_model
    from dfdsl.report import COMPOSITION_KEYS, JSON_KEYS

    body = sections(REPORT_MD)[COMPOSITION_SECTION]
    assert [row[0].strip("`") for row in table_rows(body)] == list(COMPOSITION_KEYS)
    printed = run_model(ROOT / "examples" / "samba_coe.dfl", {"experts": 10, "batch": 1}).figures
    plain = run_model(ROOT / "examples" / "llama2_7b.dfl").figures  # every run's keys (above)
    extra = set(printed) - set(plain) - set(COMPOSITION_KEYS)
    assert set(JSON_KEYS) <= set(printed)
    assert extra and all(f"`{key}`" in body for key in extra), extra


PIPELINE_SECTION = "A pipelined run (`--pipeline N`, N > 1)"
_PIPELINED = """import std.llama
model big : llama { dtype = bf16; vocab = 256; hidden = 128; layers = 2; heads = 2; kv_heads = 1
                    head_dim = 64; ffn = 256 }
run r { tokens = 8; pipeline = 2; target = sn40l(sockets = 1) }
"""


def test_report_page_lists_every_key_a_run_prints(tmp_path):
    """A speculative request prints every key there is; the page names exactly those, and its
    contract sections exactly the code's contract tuples, in order."""
    from dfdsl.driver import run_model
    from dfdsl.report import JSON_KEYS, PIPELINE_KEYS, REQUEST_KEYS, SPECULATION_KEYS

    path = tmp_path / "example.dfl"
    path.write_text("""import std.llama
model big : llama { dtype = bf16; vocab = 256; hidden = 128; layers = 2; heads = 2; kv_heads = 1
                    head_dim = 64; ffn = 256 }
draft small : llama { dtype = bf16; vocab = 256; hidden = 64; layers = 1; heads = 1; kv_heads = 1
                      head_dim = 64; ffn = 128 }
run r { prompt = 64; tokens = 8; acceptance = 0.5; target = sn40l(sockets = 1) }
""")
    printed = list(run_model(path).figures)
    report_sections = sections(REPORT_MD)
    documented = {section: [row[0].strip("`") for row in table_rows(body)] for section, body in report_sections.items()
                  if section != COMPOSITION_SECTION}
    # A pipeline times a plain decode only: its keys are checked with a pipelined run.
    pipelined = documented.pop(PIPELINE_SECTION)
    assert sorted(k for keys in documented.values() for k in keys) == sorted(printed)
    path.write_text(_PIPELINED)
    plain = documented["Every run (`JSON_KEYS`)"] + documented["Also in every run"]
    assert list(run_model(path).figures) == plain + pipelined == plain + list(PIPELINE_KEYS)
    assert documented["Every run (`JSON_KEYS`)"] == list(JSON_KEYS)
    request = documented["A request: a run with a prompt (`REQUEST_KEYS` and more)"]
    assert request[: len(REQUEST_KEYS)] == list(REQUEST_KEYS)
    speculation = documented["Speculative decoding: a run with a draft model (`SPECULATION_KEYS` and more)"]
    assert speculation[: len(SPECULATION_KEYS)] == list(SPECULATION_KEYS)
