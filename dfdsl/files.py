"""Reading an input file (a `.dfl` model, an IR file, a hardware file): the one way dfdsl does it.

Only a regular file is read: the file is opened without blocking and refused when it is a folder, a
named pipe, a device or a socket (a named pipe with no writer would hang the command, a device such
as /dev/zero never ends). No more than a limit is read, so a huge or endless file costs the limit,
not the machine's memory. Text is UTF-8; a byte-order mark some editors write is dropped, and
every line ending (`\\r\\n`, or `\\r` alone as old Mac editors write) becomes `\\n`, so line numbers
count the same lines an editor shows. Each caller turns a `FileReadError` into its own error code.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

BOM = "\ufeff"

_SPECIAL = (
    (stat.S_ISFIFO, "a named pipe"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


class FileReadError(Exception):
    """A file that cannot be read as text. `reason` is one of `unreadable` (the system's error,
    `strerror`), `folder`, `special` (not a regular file), `too-large` (`size` bytes) and `not-utf8`
    (at `line` and `column`, the byte `byte`)."""

    def __init__(self, path: Path, reason: str, message: str, *, strerror: str = "", size: int = 0,
                 line: int = 0, column: int = 0, byte: int = 0):
        super().__init__(message)
        self.path = path
        self.reason = reason
        self.strerror = strerror
        self.size = size
        self.line = line
        self.column = column
        self.byte = byte


def read_bytes(path: Path, limit: int) -> bytes:
    """At most `limit` bytes of the regular file `path`; `FileReadError` otherwise (`too-large`
    when it holds more)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as err:
        if err.errno == errno.EISDIR:
            raise FileReadError(path, "folder", f"{path} is a folder, not a file") from None
        raise FileReadError(path, "unreadable", f"cannot read {path}: {err.strerror}",
                            strerror=err.strerror or str(err)) from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise FileReadError(path, "folder", f"{path} is a folder, not a file")
        special = next((what for test, what in _SPECIAL if test(info.st_mode)), None)
        if special is not None:
            raise FileReadError(path, "special", f"{path} is {special}, not a regular file")
        if info.st_size > limit:
            raise FileReadError(path, "too-large", f"{path}: the file is {info.st_size:,} bytes; the limit is "
                                f"{limit:,}", size=info.st_size)
        return read_at_most(fd, path, limit)
    except OSError as err:
        raise FileReadError(path, "unreadable", f"cannot read {path}: {err.strerror}",
                            strerror=err.strerror or str(err)) from None
    finally:
        os.close(fd)


def read_at_most(fd: int, path: Path, limit: int) -> bytes:
    """What the open file `fd` (a regular file, or standard input) holds, `FileReadError` past
    `limit` bytes: the size can change while it is read, and a pipe has none, so never read more."""
    chunks: list[bytes] = []
    size = 0
    while size <= limit:
        chunk = os.read(fd, min(1 << 20, limit + 1 - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    if size > limit:
        raise FileReadError(path, "too-large", f"{path}: the file is more than {limit:,} bytes; the limit "
                            f"is {limit:,}")
    return b"".join(chunks)


def decode(path: Path, data: bytes) -> str:
    """`data` as text: UTF-8 without its byte-order mark, every line ended by `\\n`;
    `FileReadError` (`not-utf8`, located) when it is not UTF-8."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        before = normalize(data[:err.start].decode("utf-8"))  # valid up to the bad byte
        line = before.count("\n") + 1
        column = len(before) - (before.rfind("\n") + 1) + 1
        byte = data[err.start]
        raise FileReadError(path, "not-utf8", f"{path}:{line}:{column}: not UTF-8 text (byte 0x{byte:02x})",
                            line=line, column=column, byte=byte) from None
    return normalize(text)


def normalize(text: str) -> str:
    """`text` without a leading byte-order mark, with `\\r\\n` and lone `\\r` made `\\n`."""
    return text.removeprefix(BOM).replace("\r\n", "\n").replace("\r", "\n")


def read_text(path: Path, limit: int) -> str:
    """The text of the regular file `path` (`read_bytes`, then `decode`)."""
    return decode(path, read_bytes(path, limit))
