"""`dfdsl import-hf`: a `.dfl` model written from a Hugging Face `config.json`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dfdsl.cli.output import UsageError, emit
from dfdsl.hf_import import HfImportError, import_config


def add_parser(sub) -> None:
    p = sub.add_parser("import-hf", help="write a .dfl model from a Hugging Face config.json",
                       description="Write a .dfl model from a Hugging Face config.json (Llama, Mistral, "
                                   "Mixtral, Qwen2, Gemma 2 and DeepSeek-V3 families). Nothing is downloaded.")
    p.add_argument("config", metavar="CONFIG.json")
    p.add_argument("-o", "--output", metavar="OUT.dfl", help="write here instead of standard output")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    path = Path(args.config)
    try:
        text = import_config(path)
    except HfImportError as err:
        raise UsageError(str(err)) from None
    emit(text, args.output, [path])
    if args.output not in (None, "-"):
        sys.stderr.write(f"wrote {args.output}; try: dfdsl run {args.output}\n")
    return 0
