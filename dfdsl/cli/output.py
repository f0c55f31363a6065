"""What every command shares to say something: the usage error, and writing an output whole.

An output goes to standard output, or to a file. A regular file (or a symbolic link to one, which
is written through to its target) is written through a temporary file beside it and a rename, so a
failed command never leaves a half-written file, keeps the file's permissions, and never
overwrites one of its inputs or a read-only file. A device or a named pipe (`/dev/null`, a FIFO a
reader waits on) is written directly: it cannot be replaced. When the system refuses a write
(a full disk, an I/O error), the command stops with E028 and what to do.
"""

from __future__ import annotations

import errno
import os
import stat
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from io import StringIO
from pathlib import Path
from typing import Any

from xdsl.dialects.builtin import ModuleOp
from xdsl.printer import Printer

from dfdsl.errors import OutputFailure

USAGE_CODE = "E027"


class UsageError(Exception):
    """A command-line mistake; printed as `dfdsl: error: ... [E027]` with exit code 2."""


def _failure(where: str, err: OSError, option: str = "-o") -> OutputFailure:
    """E028 for a failed write, its fix naming the option that chose the file (`-o`, `--report`, ...)."""
    fix = {
        errno.ENOSPC: f"free some space on that disk, or write elsewhere with {option}",
        errno.EDQUOT: f"free some of your disk quota, or write elsewhere with {option}",
        errno.EACCES: f"write where you may ({option} in a folder of yours), or change the permissions",
        errno.EROFS: f"the file system is mounted read-only: write elsewhere with {option}",
    }.get(err.errno or 0, f"check the path, or write elsewhere with {option}")
    return OutputFailure(f"cannot write {where}: {err.strerror or err}", fix)


def distinct_outputs(outputs: Mapping[str, str | None]) -> None:
    """Refuse two options naming one file (`--trace x.json -o x.json`): the second would replace
    the first, and the command would say both were written."""
    seen: dict[Path, str] = {}
    for option, name in outputs.items():
        if name in (None, "-"):
            continue
        real = Path(name).resolve()
        if real in seen:
            raise UsageError(f"{seen[real]} and {option} name the same file, {name}: give each its own")
        seen[real] = option


def write_output(path: Path, data: str | bytes, inputs: Sequence[Path] = (), option: str = "-o") -> None:
    """Write `data` to `path`, whole or not at all (see the module's docstring); never an input.
    `option` is the command-line option that named `path`, for the fix an error gives."""
    with output_stream(path, inputs, binary=isinstance(data, bytes), option=option) as f:
        f.write(data)


def write_stdout(data: str | bytes) -> None:
    """`data` to standard output, flushed now so that a full disk or a failed device is E028 here,
    not an error at exit. A closed pipe (`| head`) stays a BrokenPipeError: not a failure."""
    try:
        if isinstance(data, bytes):
            sys.stdout.flush()
            sys.stdout.buffer.write(data)
        else:
            sys.stdout.write(data)
        sys.stdout.flush()
    except BrokenPipeError:
        raise
    except OSError as err:
        _drop_stdout()
        raise _failure("to standard output", err) from None


def _drop_stdout() -> None:
    """Point standard output at /dev/null, so that flushing what is left at exit cannot fail again
    (Python would print a second error and exit with status 120)."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # replaced by a test or an embedding program
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)


@contextmanager
def output_stream(path: Path, inputs: Sequence[Path] = (), binary: bool = False, option: str = "-o") -> Iterator[Any]:
    """A stream to `path`, written as `write_output` writes (through symbolic links, never an input,
    a device or named pipe directly, a read-only file refused, failures E028), through a temporary
    file renamed over `path` only when the block ends without an exception: a failed or interrupted
    command never leaves a half-written file."""
    target = Path(path)
    for source in inputs:
        if target.exists() and source.exists() and target.resolve() == Path(source).resolve():
            raise UsageError(f"refusing to overwrite the input file {source}; choose another {option}")
    real = Path(os.path.realpath(target))
    try:
        info: os.stat_result | None = os.stat(real)
    except OSError:
        info = None
    if info is not None and not stat.S_ISREG(info.st_mode) and not stat.S_ISDIR(info.st_mode):
        # A device or a named pipe: opened and written as it is (opening a pipe waits for a reader).
        try:
            with open(real, "wb") if binary else open(real, "w", encoding="utf-8", newline="") as direct:
                yield direct
        except OSError as err:
            raise _failure(str(target), err, option) from None
        return
    if info is not None and stat.S_ISREG(info.st_mode) and (
            not info.st_mode & 0o222 or not os.access(real, os.W_OK)):
        raise OutputFailure(f"cannot write {target}: the file is read-only",
                            f"make it writable (chmod u+w) if it may be replaced, or write elsewhere with {option}")
    tmp = real.with_name(f".{real.name}.{os.getpid()}.tmp")
    try:
        with (open(tmp, "wb") if binary else open(tmp, "w", encoding="utf-8", newline="")) as f:
            yield f
        if info is not None and stat.S_ISREG(info.st_mode):
            os.chmod(tmp, stat.S_IMODE(info.st_mode))
        os.replace(tmp, real)
    except OSError as err:
        raise _failure(str(target), err, option) from None
    finally:
        tmp.unlink(missing_ok=True)


def emit(text: str, out: str | None, inputs: Sequence[Path]) -> None:
    """`text` (ended by a newline) to standard output, or to the file `out` unless it is `-`."""
    text = text if text.endswith("\n") else text + "\n"
    if out in (None, "-"):
        write_stdout(text)
    else:
        write_output(Path(out), text, inputs)


def print_ir(module: ModuleOp, generic: bool) -> str:
    stream = StringIO()
    Printer(stream=stream, print_generic_format=generic).print_op(module)
    return stream.getvalue()
