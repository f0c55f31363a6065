"""A composition's requests: each one's expert, prompt tokens and output tokens, read from a file
or made by a seeded generator.

A request file is CSV with the header `expert,prompt,tokens`, or JSONL with one object per line
with those keys; `expert` is the expert's index (0 to experts - 1, in the order the `compose`
block lists them). A generator picks each request's expert uniformly or by Zipf's law (expert i
drawn with probability proportional to 1 / (i + 1)^skew) from a numpy generator seeded by
`seed`, so a stream is the same on every run; its prompt and output tokens are the run's. A bad
line is a located error (E016) naming the file, line and column.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import attrs
import numpy as np
from numpy.typing import NDArray

from dfdsl import ast, files
from dfdsl.composition import StreamSpec
from dfdsl.diagnostics import DfslError, Diagnostic, read_diagnostic

MAX_STREAM_BYTES = 256 * 1024 * 1024
"""A request file of ten million requests is ~200 MB; anything past this is refused (E017)."""
COLUMNS = ("expert", "prompt", "tokens")
TOKEN_LIMIT = 1 << 24
"""Prompt and output tokens per request (the run settings' limit)."""


@attrs.frozen(eq=False)
class Stream:
    """Requests in order, as arrays of one length: each one's expert index, prompt and output tokens."""

    experts: NDArray[np.int64]
    prompt: NDArray[np.int64]
    tokens: NDArray[np.int64]

    def __len__(self) -> int:
        return len(self.experts)


def generate(spec: StreamSpec, experts: int, prompt: int, tokens: int) -> Stream:
    """`spec.count` requests from a generator over `experts` experts, each of `prompt` prompt tokens
    and `tokens` output tokens."""
    rng = np.random.default_rng(spec.seed)
    if spec.kind == "uniform":
        chosen = rng.integers(0, experts, spec.count)
    else:
        weights = 1.0 / np.arange(1, experts + 1, dtype=np.float64) ** spec.skew
        chosen = rng.choice(experts, spec.count, p=weights / weights.sum())
    n = len(chosen)
    return Stream(chosen.astype(np.int64), np.full(n, prompt, np.int64), np.full(n, tokens, np.int64))


def _error(path: Path, line: int, column: int, message: str, help: str | None = None) -> DfslError:
    span = ast.Span(path, line, column, line, column + 1)
    return DfslError([Diagnostic("E016", message, span, help)])


def _value(path: Path, line: int, column: int, key: str, raw: object, experts: int) -> int:
    if isinstance(raw, str) and raw.strip().isdigit():
        raw = int(raw.strip())
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise _error(path, line, column, f"`{key}` is {raw!r}; it must be a whole number")
    high = experts - 1 if key == "expert" else TOKEN_LIMIT
    low = 1 if key == "prompt" else 0
    if not low <= raw <= high:
        what = f"an expert index from 0 to {high}" if key == "expert" else f"from {low} to {high:,}"
        raise _error(path, line, column, f"`{key}` is {raw}; it must be {what}",
                     "experts are numbered from 0 in the order `experts` lists them" if key == "expert" else None)
    return raw


def read(spec: StreamSpec, experts: int) -> Stream:
    """The requests of a request file; `DfslError` at the first bad line."""
    assert spec.path is not None
    path = spec.path
    try:
        text = files.read_text(path, MAX_STREAM_BYTES)
    except files.FileReadError as err:
        diagnostic = read_diagnostic(err, "a request file holds a few bytes per request")
        if spec.span is not None and diagnostic.span is None:
            diagnostic = attrs.evolve(diagnostic, span=spec.span)
        raise DfslError([diagnostic]) from None
    rows: list[list[int]] = []
    if path.suffix == ".csv":
        lines = text.splitlines()
        header = [h.strip() for h in next(csv.reader(lines[:1]), [])]
        if header != list(COLUMNS):
            raise _error(path, 1, 1, f"the header is {','.join(header) or 'missing'}; it must be "
                         + ",".join(COLUMNS), "one request a line after it: `3,128,20`")
        for number, cells in enumerate(csv.reader(lines[1:]), start=2):
            if not cells or not "".join(cells).strip():
                continue
            if len(cells) != len(COLUMNS):
                raise _error(path, number, 1, f"{len(cells)} values; a request has {len(COLUMNS)}: "
                             + ",".join(COLUMNS))
            columns = np.cumsum([1] + [len(c) + 1 for c in cells[:-1]])
            rows.append([_value(path, number, int(col), key, cell, experts)
                         for key, cell, col in zip(COLUMNS, cells, columns)])
    else:
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as err:
                raise _error(path, number, err.colno, f"not JSON: {err.msg}") from None
            if not isinstance(obj, dict) or sorted(obj) != sorted(COLUMNS):
                raise _error(path, number, 1, "a request is an object with the keys " + ", ".join(COLUMNS),
                             '{"expert": 3, "prompt": 128, "tokens": 20}')
            rows.append([_value(path, number, 1, key, obj[key], experts) for key in COLUMNS])
    if not rows:
        raise _error(path, 1, 1, "the request file has no requests")
    data = np.array(rows, dtype=np.int64)
    return Stream(data[:, 0].copy(), data[:, 1].copy(), data[:, 2].copy())


def requests(spec: StreamSpec, experts: int, prompt: int, tokens: int) -> Stream:
    """The composition's requests: its file's, or its generator's."""
    return read(spec, experts) if spec.kind == "file" else generate(spec, experts, prompt, tokens)
