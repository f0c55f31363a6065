"""`dfdsl opt`: an xdsl-opt-style pass runner over IR files, for IR tests."""

from __future__ import annotations

import argparse
import dataclasses
import re
import sys
from pathlib import Path

from xdsl.parser import Parser
from xdsl.passes import PassPipeline
from xdsl.utils.exceptions import ParseError

from dfdsl.ast import Span
from dfdsl.cli.output import UsageError, emit, print_ir, read_text
from dfdsl.diagnostics import DfslError, Diagnostic
from dfdsl.lowering.pipeline import PASSES, context, pass_class, pass_loader
from dfdsl.lowering.stages import apply_checked


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
    path = Path(args.file)
    text = sys.stdin.read() if args.file == "-" else read_text(path)
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
    if args.passes:
        available = {name: pass_loader(name) for name in PASSES}
        try:
            pipeline = PassPipeline.parse_spec(available, args.passes)
        except Exception as err:  # xDSL reports a bad spec as ValueError or its own exceptions
            raise UsageError(f"bad pass pipeline {args.passes!r}: {_as_written(str(err), args.passes)}; "
                             f"{_options_of(args.passes)}") from None
        for p in pipeline.passes:
            apply_checked(p, ctx, module)
    emit(print_ir(module, args.generic), args.output, [path])
    return 0
