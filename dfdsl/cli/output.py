"""What every command shares to say something: the usage error, and writing an output whole.

An output goes to standard output, or to a file through a temporary file and a rename, so a
failed command never leaves a half-written file, and never overwrites one of its inputs.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from io import StringIO
from pathlib import Path
from typing import Any

from xdsl.dialects.builtin import ModuleOp
from xdsl.printer import Printer

USAGE_CODE = "E027"


class UsageError(Exception):
    """A command-line mistake; printed as `dfdsl: error: ... [E027]` with exit code 2."""


@contextmanager
def output_stream(path: Path, inputs: Sequence[Path] = (), binary: bool = False) -> Iterator[Any]:
    """A stream to `path` through a temporary file, renamed over `path` only when the block ends
    without an exception: a failed or interrupted command never leaves a half-written file, and
    never overwrites one of its inputs."""
    target = Path(path)
    for source in inputs:
        if target.exists() and source.exists() and target.resolve() == Path(source).resolve():
            raise UsageError(f"refusing to overwrite the input file {source}; choose another -o")
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with (open(tmp, "wb") if binary else open(tmp, "w", encoding="utf-8", newline="")) as f:
            yield f
        os.replace(tmp, target)
    except OSError as err:
        raise UsageError(f"cannot write {target}: {err.strerror}") from None
    finally:
        tmp.unlink(missing_ok=True)


def write_output(path: Path, data: str | bytes, inputs: Sequence[Path] = ()) -> None:
    """Write `data` to `path` through a temporary file and a rename: never half-written, never an input."""
    with output_stream(path, inputs, binary=isinstance(data, bytes)) as f:
        f.write(data)


def emit(text: str, out: str | None, inputs: Sequence[Path]) -> None:
    """`text` (ended by a newline) to standard output, or to the file `out` unless it is `-`."""
    text = text if text.endswith("\n") else text + "\n"
    if out in (None, "-"):
        sys.stdout.write(text)
    else:
        write_output(Path(out), text, inputs)


def print_ir(module: ModuleOp, generic: bool) -> str:
    stream = StringIO()
    Printer(stream=stream, print_generic_format=generic).print_op(module)
    return stream.getvalue()


def read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as err:
        raise UsageError(f"cannot read {path}: {err.strerror}") from None
    except UnicodeDecodeError:
        raise UsageError(f"{path} is not UTF-8 text") from None
