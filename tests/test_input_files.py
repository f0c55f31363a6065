"""Input files as they come: a model, an IR file or a hardware file may be a named pipe, a device,
a huge sparse file, or text saved with a byte-order mark or old Mac line endings. Each is read the
same way (`dfdsl.files`): only regular files, never past a size limit, UTF-8 with the mark dropped
and every line ending made `\\n`; what cannot be read is a coded error, never a hang."""

from __future__ import annotations

import os
import time
from pathlib import Path

import attrs
import pytest

from dfdsl import files
from dfdsl.cli.opt import MAX_IR_BYTES
from dfdsl.hardware import MAX_HARDWARE_BYTES, load_hardware
from fuzz.mutations import run_cli

ROOT = Path(__file__).resolve().parent.parent
SN40L = (ROOT / "dfdsl" / "hardware" / "sn40l.toml").read_text(encoding="utf-8")
TINY = """# a tiny Llama
import std.llama

model tiny : llama {
  dtype = bf16; vocab = 100; hidden = 64; layers = 2
  heads = 4; kv_heads = 2; head_dim = 16; ffn = 128
}
run decode { batch = 2; context = 32; tokens = 4; target = sn40l(sockets = 2) }
"""
BOM = "\ufeff"


def tiny_ir(folder: Path) -> Path:
    path = folder / "tiny.mlir"
    (folder / "tiny.dfl").write_text(TINY, encoding="utf-8")
    outcome = run_cli(["lower", str(folder / "tiny.dfl"), "--emit", "df", "-o", str(path)], seconds=60)
    assert outcome.code == 0, outcome.stderr
    return path


# -- a byte-order mark and CR-only line endings --------------------------------------------------


@pytest.mark.parametrize("variant", ["BOM", "CR", "CRLF", "BOM and CR"])
def test_a_model_with_a_bom_or_old_line_endings_checks(variant, tmp_path):
    text = TINY.replace("\n", "\r" if "CR" in variant and variant != "CRLF" else "\r\n" if variant == "CRLF" else "\n")
    path = tmp_path / "tiny.dfl"
    path.write_bytes(((BOM if "BOM" in variant else "") + text).encode())
    outcome = run_cli(["check", str(path)])
    assert outcome.code == 0, outcome.stderr
    assert "model tiny, 2 layer calls" in outcome.stdout


def test_an_error_in_a_cr_only_file_is_on_its_own_line(tmp_path):
    path = tmp_path / "tiny.dfl"
    path.write_bytes((BOM + TINY.replace("hidden = 64", "hidden = hiden")).replace("\n", "\r").encode())
    outcome = run_cli(["check", str(path)])
    assert outcome.code == 2
    assert f"{path}:5:39: error: unknown name `hiden`" in outcome.stderr
    assert "  5 |   dtype = bf16; vocab = 100; hidden = hiden; layers = 2\n" in outcome.stderr


@pytest.mark.parametrize("variant", ["BOM", "CR"])
def test_ir_with_a_bom_or_cr_line_endings_parses(variant, tmp_path):
    ir = tiny_ir(tmp_path)
    text = ir.read_text(encoding="utf-8")
    ir.write_bytes((BOM + text if variant == "BOM" else text.replace("\n", "\r")).encode())
    outcome = run_cli(["opt", str(ir), "-p", "shard-tensor-parallel"])
    assert outcome.code == 0, outcome.stderr
    assert "tp = 2 : i64" in outcome.stdout


@pytest.mark.parametrize("variant", ["BOM", "CR", "CRLF"])
def test_a_hardware_file_with_a_bom_or_other_line_endings_loads(variant, tmp_path):
    path = tmp_path / "chip.toml"
    ending = {"BOM": "\n", "CR": "\r", "CRLF": "\r\n"}[variant]
    path.write_bytes(((BOM if variant == "BOM" else "") + SN40L.replace("\n", ending)).encode())
    assert attrs.evolve(load_hardware(path), path="sn40l") == attrs.evolve(load_hardware("sn40l"), path="sn40l")


def test_a_latin1_hardware_file_is_a_located_e023(tmp_path):
    path = tmp_path / "chip.toml"
    path.write_bytes(SN40L.replace("# paper; Hot Chips", "# pap\xe9r; Hot Chips", 1).encode("latin-1"))
    (tmp_path / "tiny.dfl").write_text(TINY, encoding="utf-8")
    outcome = run_cli(["run", str(tmp_path / "tiny.dfl"), "--hardware", str(path)])
    assert outcome.code == 2, outcome.stderr
    assert f"{path}:13:" in outcome.stderr and "not UTF-8 text (byte 0xe9); save it as UTF-8 [E023]" in outcome.stderr


# -- files that are not regular files -----------------------------------------------------------


@pytest.mark.parametrize("command", ["check", "opt"])
def test_a_named_pipe_as_the_main_file_is_refused_without_waiting(command, tmp_path):
    fifo = tmp_path / "model.dfl"
    os.mkfifo(fifo)
    start = time.perf_counter()
    outcome = run_cli([command, str(fifo)], seconds=5)
    assert outcome.code == 2, outcome.error or outcome.stderr
    assert f"dfdsl: error: {fifo} is a named pipe, not a regular file [E002]" in outcome.stderr
    assert time.perf_counter() - start < 2


def test_a_named_pipe_as_the_hardware_file_is_refused(tmp_path):
    fifo = tmp_path / "chip.toml"
    os.mkfifo(fifo)
    (tmp_path / "tiny.dfl").write_text(TINY, encoding="utf-8")
    outcome = run_cli(["run", str(tmp_path / "tiny.dfl"), "--hardware", str(fifo)], seconds=5)
    assert outcome.code == 2 and "is a named pipe, not a regular file [E023]" in outcome.stderr, outcome.error


@pytest.mark.parametrize("command", ["check", "opt"])
def test_an_endless_device_is_refused_before_it_is_read(command):
    outcome = run_cli([command, "/dev/zero"], seconds=5)
    assert outcome.code == 2 and "/dev/zero is a character device, not a regular file [E002]" in outcome.stderr


# -- size limits --------------------------------------------------------------------------------


def sparse(path: Path, size: int) -> Path:
    """A file of `size` bytes that takes no room on disk: reading it would cost `size` in memory."""
    with path.open("wb") as f:
        f.truncate(size)
    return path


def test_a_huge_ir_file_is_refused_from_its_size(tmp_path):
    path = sparse(tmp_path / "huge.mlir", 1 << 30)
    outcome = run_cli(["opt", str(path)], seconds=5)
    assert outcome.code == 2, outcome.error or outcome.stderr
    assert f"the file is 1,073,741,824 bytes; the limit is {MAX_IR_BYTES:,} [E017]" in outcome.stderr


def test_huge_ir_on_standard_input_is_refused_at_the_limit(tmp_path, monkeypatch):
    path = sparse(tmp_path / "huge.mlir", MAX_IR_BYTES + 10)
    with path.open("rb") as f:
        monkeypatch.setattr("sys.stdin", f)
        outcome = run_cli(["opt", "-"], seconds=10)
    assert outcome.code == 2 and f"the file is more than {MAX_IR_BYTES:,} bytes" in outcome.stderr, outcome.stderr


def test_a_huge_hardware_file_is_refused_from_its_size(tmp_path):
    path = sparse(tmp_path / "chip.toml", 1 << 30)
    (tmp_path / "tiny.dfl").write_text(TINY, encoding="utf-8")
    outcome = run_cli(["run", str(tmp_path / "tiny.dfl"), "--hardware", str(path)], seconds=5)
    assert outcome.code == 2
    assert f"the file is 1,073,741,824 bytes; the limit is {MAX_HARDWARE_BYTES:,}" in outcome.stderr


def test_a_file_that_grows_while_it_is_read_is_still_cut_at_the_limit(tmp_path):
    """`read_at_most` stops at the limit whatever the size said when the file was opened."""
    path = tmp_path / "growing"
    path.write_bytes(b"x" * 100)
    with path.open("rb") as f:
        with pytest.raises(files.FileReadError, match="more than 10 bytes"):
            files.read_at_most(f.fileno(), path, 10)


# -- what an error echoes ---------------------------------------------------------------------


def test_the_echoed_line_shows_control_characters_without_sending_them(tmp_path):
    path = tmp_path / "tiny.dfl"
    path.write_bytes(b"const a = 1\x00\x1b[31m\n" + TINY.encode())
    outcome = run_cli(["check", str(path)])
    assert outcome.code == 2
    assert "\x00" not in outcome.stderr and "\x1b" not in outcome.stderr
    assert "  1 | const a = 1\u2400\u241b[31m\n    |            ^\n" in outcome.stderr


def test_too_deep_an_expression_is_pointed_at_where_it_starts(tmp_path):
    path = tmp_path / "tiny.dfl"
    path.write_text(TINY.replace("layers = 2", "layers = " + "-" * 3000 + "2"), encoding="utf-8")
    outcome = run_cli(["check", str(path)])
    assert outcome.code == 2
    assert f"{path}:5:52: error: the file nests expressions too deeply [E017]" in outcome.stderr
