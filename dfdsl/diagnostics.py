"""Diagnostics for people who write `.dfl` files: located, coded, rendered as rustc and clang do.

A `Diagnostic` names a file, a line and column, a stable code (documented in docs/errors.md) and a
message; it may carry a `help` line. `render` prints

    model.dfl:3:12: error: unknown name `hiden` [E003]
      3 |   hidden = hiden * 2
        |            ^^^^^
    help: did you mean `hidden`?

Front-end stages collect diagnostics and raise them together as a `DfslError`, so one run reports
every independent error.
"""

from __future__ import annotations

import difflib
import unicodedata
from collections.abc import Iterable
from pathlib import Path

import attrs

from dfdsl import files
from dfdsl.ast import Span

ERROR_CODES: dict[str, str] = {
    "E001": "syntax error",
    "E002": "file cannot be read",
    "E003": "unknown name",
    "E004": "duplicate name",
    "E005": "wrong kind of value",
    "E006": "arithmetic error",
    "E007": "size must be positive",
    "E008": "shape or dtype mismatch",
    "E009": "unknown operator or layer",
    "E010": "bad arguments to an operator or layer",
    "E011": "unknown memory tier or tensor class",
    "E012": "bad loop bounds",
    "E013": "import not found",
    "E014": "import cycle",
    "E015": "import outside the allowed folders",
    "E016": "bad model or run",
    "E017": "limit exceeded",
    "E018": "layer structure error",
    "E019": "run setting out of range",
    "E020": "the model does not divide over the sockets",
    "E021": "the model does not fit in memory",
    "E022": "not possible on this target",
    "E023": "bad hardware file",
    "E024": "the IR does not suit the pass",
    "E025": "the IR does not verify",
    "E026": "the IR does not parse",
    "E027": "bad command line",
    "E028": "an output cannot be written",
    "E029": "the Dask scheduler cannot be reached",
    "E030": "a program dfdsl runs is missing or failed",
    "E031": "out of memory",
    "E032": "bad measurements file",
}
"""Every code dfdsl emits, with a one-line title (docs/errors.md holds examples and fixes).
E001-E019 come from the front end, located in the .dfl file; E020-E027 from lowering, the
simulator and the command line; E028-E031 from the environment (`dfdsl.errors.EnvironmentFailure`);
E032 from `dfdsl calibrate`'s measurements file, located in it."""


@attrs.frozen
class Diagnostic:
    code: str
    message: str
    span: Span | None = None
    help: str | None = None
    severity: str = "error"
    notes: tuple[str, ...] = ()

    def __attrs_post_init__(self) -> None:
        assert self.code in ERROR_CODES, self.code

    def location(self) -> str:
        if self.span is None:
            return "dfdsl"
        return f"{self.span.path}:{self.span.line}:{self.span.column}"

    def render(self, source: str | None = None) -> str:
        lines = [f"{self.location()}: {self.severity}: {_visible(self.message)} [{self.code}]"]
        if self.span is not None and source is not None:
            text_lines = source.split("\n")  # normalized as the parser read it: lines end at \n
            if 1 <= self.span.line <= len(text_lines):
                text = _visible(text_lines[self.span.line - 1])
                number = str(self.span.line)
                pad = " " * len(number)
                if self.span.end_line == self.span.line:
                    width = max(1, self.span.end_column - self.span.column)
                else:
                    width = max(1, len(text) - self.span.column + 1)
                lines.append(f"  {number} | {text}")
                lines.append(f"  {pad} | {' ' * (self.span.column - 1)}{'^' * width}")
        lines.extend(f"note: {note}" for note in self.notes)
        if self.help:
            lines.append(f"help: {self.help}")
        return "\n".join(lines)


class DfslError(Exception):
    """Bad input: one or more diagnostics. The CLI prints them and exits with code 2."""

    def __init__(self, diagnostics: Iterable[Diagnostic]):
        self.diagnostics = list(diagnostics)
        super().__init__("\n".join(d.render() for d in self.diagnostics))

    def render(self, sources: dict[Path, str] | None = None) -> str:
        sources = sources or {}
        out = []
        for d in self.diagnostics:
            source = None
            if d.span is not None:
                source = sources.get(d.span.path)
                if source is None:
                    source = _read_quietly(d.span.path)
            out.append(d.render(source))
        errors = sum(d.severity == "error" for d in self.diagnostics)
        if errors > 1:
            out.append(f"{errors} errors")
        return "\n".join(out)


_MAX_ECHOED_BYTES = 4 * 1024 * 1024
"""A source file is echoed only when it is a regular file this size or smaller."""


def _read_quietly(path: Path) -> str | None:
    """The text of a source file as the parser saw it (`files.normalize`), bytes that are not
    UTF-8 replaced; None when it cannot be read."""
    try:
        data = files.read_bytes(path, _MAX_ECHOED_BYTES)
    except files.FileReadError:
        return None
    return files.normalize(data.decode("utf-8", errors="replace"))


def _visible(text: str) -> str:
    """`text` with tabs as spaces and every control or format character (NUL, ESC, a bidi
    override) shown as a visible character of one column, so an echoed line neither drives the
    terminal nor shifts the caret under it."""
    out = []
    for char in text:
        if char == "\t":
            out.append(" ")
        elif char == "\n":  # a message may run over lines; an echoed line has none
            out.append(char)
        elif char < " ":
            out.append(chr(0x2400 + ord(char)))  # the Control Pictures block: NUL is ␀
        elif char == "\x7f":
            out.append("\u2421")
        elif unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp"):
            out.append("\ufffd")
        else:
            out.append(char)
    return "".join(out)


def read_diagnostic(err: files.FileReadError, too_large_help: str) -> Diagnostic:
    """The diagnostic of an input file that cannot be read: E017 past its size limit (at its
    start, with `too_large_help`), E002 otherwise (at the byte that is not UTF-8, if that is why)."""
    if err.reason == "too-large":
        return Diagnostic("E017", str(err), Span(err.path, 1, 1, 1, 2), too_large_help)
    if err.reason == "not-utf8":
        return Diagnostic("E002", f"the file is not valid UTF-8 (byte 0x{err.byte:02x})",
                          Span(err.path, err.line, err.column, err.line, err.column + 1), "save the file as UTF-8")
    return Diagnostic("E002", str(err), None)


def did_you_mean(name: str, candidates: Iterable[str]) -> str | None:
    """A `help:` line for a misspelt name, or None when nothing is close."""
    close = difflib.get_close_matches(name, sorted(set(candidates)), n=1, cutoff=0.6)
    return f"did you mean `{close[0]}`?" if close else None


class Collector:
    """Gathers diagnostics during one stage; `check()` raises them all at once."""

    def __init__(self) -> None:
        self.diagnostics: list[Diagnostic] = []

    def error(self, code: str, message: str, span: Span | None, help: str | None = None,
              notes: tuple[str, ...] = ()) -> None:
        self.diagnostics.append(Diagnostic(code, message, span, help, notes=notes))

    def check(self) -> None:
        if self.diagnostics:
            raise DfslError(self.diagnostics)
