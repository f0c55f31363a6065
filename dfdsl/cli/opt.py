"""`dfdsl opt`: an xdsl-opt-style pass runner over IR files, for IR tests."""

from __future__ import annotations

import argparse
import dataclasses
import re
import sys
from pathlib import Path

from xdsl.parser import Parser
from xdsl.passes import ModulePass, PassPipeline
from xdsl.utils.arg_spec import PipelineLexer, SpecTokenKind
from xdsl.utils.exceptions import ArgSpecParseError, ParseError

from dfdsl import files
from dfdsl.ast import Span
from dfdsl.cli.output import UsageError, emit, print_ir
from dfdsl.diagnostics import DfslError, Diagnostic, read_diagnostic
from dfdsl.lowering.pipeline import PASSES, context, pass_class, pass_loader
from dfdsl.lowering.stages import apply_checked

MAX_IR_BYTES = 64 * 1024 * 1024
"""An IR file `dfdsl opt` reads (E017 past it): the largest model printed at any stage is a few MB."""


def add_parser(sub) -> None:
    p = sub.add_parser("opt", help="run passes over an IR file (like xdsl-opt)",
                       description="Parse MLIR-syntax IR in the df/rdu/nv dialects, run passes, print the result. "
                                   "Passes: " + ", ".join(PASSES) + ".")
    p.add_argument("file", metavar="FILE.mlir", help="the IR file, or - for standard input")
    p.add_argument("-p", "--passes", metavar="PIPELINE", default="",
                   help="comma-separated passes with options, e.g. 'fuse{mode=layer},kernel-looping{min-calls=2}'")
    p.add_argument("-o", "--output", metavar="OUT", help="write here instead of standard output")
    p.add_argument("--generic", action="store_true", help="print the generic form of every op")
    p.set_defaults(func=main)


STDIN = Path("<stdin>")
"""What errors call standard input (`dfdsl opt -`)."""


def read_ir(path: Path) -> str:
    """The text of the IR file `path` (`STDIN`: standard input), at most `MAX_IR_BYTES`."""
    try:
        if path == STDIN:
            return files.decode(path, files.read_at_most(sys.stdin.fileno(), path, MAX_IR_BYTES))
        return files.read_text(path, MAX_IR_BYTES)
    except files.FileReadError as err:
        raise DfslError([read_diagnostic(err, "an IR file of a whole model is a few megabytes: is this the "
                                              "right file?")]) from None


def parse_passes(spec: str) -> list[ModulePass]:
    """The passes of a `-p` pipeline; a `UsageError` (E027) saying where it is malformed, or which
    pass or option is wrong."""
    available = {name: pass_loader(name) for name in PASSES}
    known = "; " + _options_of(spec)
    try:
        pipeline = PassPipeline.parse_spec(available, spec)
    except ArgSpecParseError as err:  # a BaseException in xDSL: `except Exception` misses it
        raise UsageError(f"bad pass pipeline {spec!r}: {_syntax_error(str(err))}{known}") from None
    except ValueError as err:  # an unknown pass or option, or an option value of the wrong type
        raise UsageError(f"bad pass pipeline {spec!r}: {_as_written(str(err), spec)}{known}") from None
    twice = _options_given_twice(spec)
    if twice:
        raise UsageError(f"bad pass pipeline {spec!r}: {twice}; give each option once")
    if spec.rstrip().endswith(","):  # xDSL takes `fuse,` as `fuse`: a pass cut off after the comma
        raise UsageError(f"bad pass pipeline {spec!r}: it ends with a comma; name the pass that follows, "
                         "or remove the comma")
    return list(pipeline.passes)


def _syntax_error(message: str) -> str:
    """xDSL's multi-line report of a malformed pipeline (`pass-pipeline:1:6`, the text, a caret,
    what it expected) as one clause: `at column 6, expected argument name here`."""
    lines = message.strip().split("\n")
    where = re.search(r":\d+:(\d+)$", lines[1]) if len(lines) > 1 else None
    what = lines[-1].strip()
    what = what[:1].lower() + what[1:]
    return f"at column {where.group(1)}, {what}" if where else what


def _options_given_twice(spec: str) -> str:
    """`fuse{mode=layer mode=none}` parses (the last value wins, silently): say which option of
    which pass is given twice, or "" when none is. Call on a spec that parses."""
    seen: set[str] = set()
    pass_name, previous, depth = "", SpecTokenKind.EOF, 0
    lexer = PipelineLexer(spec)
    while (token := lexer.lex()).kind is not SpecTokenKind.EOF:
        kind = token.kind
        if kind is SpecTokenKind.L_BRACE:
            depth, seen = depth + 1, set()
        elif kind is SpecTokenKind.R_BRACE:
            depth -= 1
        elif kind is SpecTokenKind.IDENT and depth == 0:
            pass_name = token.span.text
        elif kind is SpecTokenKind.IDENT and previous in (SpecTokenKind.L_BRACE, SpecTokenKind.SPACE):
            option = token.span.text.replace("-", "_")
            if option in seen:
                return f"{pass_name} is given the option {token.span.text} twice"
            seen.add(option)
        previous = kind
    return ""
def _named(spec: str) -> list[str]:
    """The passes of ours a pipeline spec names, in order."""
    return [name for name in PASSES if re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", spec)]


def _options_of(spec: str) -> str:
    """What the passes named in `spec` take, as a pipeline spells it (`kernel-looping{min-calls=N}`)."""
    named = _named(spec)
    if not named:
        return "passes are " + ", ".join(PASSES)
    takes = [f"{name} takes {', '.join(option for option, _ in _fields(name)) or 'no options'}" for name in named]
    return "; ".join(takes)


def _fields(name: str) -> list[tuple[str, str]]:
    """(option as written, field name) of each option of pass `name`: `min-calls`, `min_calls`."""
    return [(f.name.replace("_", "-"), f.name) for f in dataclasses.fields(pass_class(name))]


def _as_written(message: str, spec: str) -> str:
    """xDSL's message with each option named as a pipeline writes it (`min-calls`, not `min_calls`)."""
    for name in _named(spec):
        for option, field in _fields(name):
            message = message.replace(f'"{field}"', f'"{option}"')
    return message


def main(args: argparse.Namespace) -> int:
    path = STDIN if args.file == "-" else Path(args.file)
    text = read_ir(path)
    passes = parse_passes(args.passes) if args.passes else []
    ctx = context()
    try:
        module = Parser(ctx, text, str(path)).parse_module()
    except ParseError as err:
        start, end = err.span.start, max(err.span.end, err.span.start + 1)
        line = text.count("\n", 0, start) + 1
        column = start - (text.rfind("\n", 0, start) + 1) + 1
        where = Span(path, line, column, line, column + (end - start))
        raise DfslError([Diagnostic("E026", f"cannot parse the IR: {err.msg}", where)]) from None
    module.verify()
    for p in passes:
        apply_checked(p, ctx, module)
    emit(print_ir(module, args.generic), args.output, [path])
    return 0
