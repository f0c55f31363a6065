"""`dfdsl run`: compile a model for its target and report its simulated decode."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from dfdsl.cli.options import add_lowering_options, add_run_settings, compile_options, overrides, target_names
from dfdsl.cli.output import distinct_outputs, emit, write_output
from dfdsl.driver import run_model
from dfdsl.report import render_composition, render_table
from dfdsl.sim.trace import trace_json


def add_parser(sub) -> None:
    p = sub.add_parser("run", help="compile a model and simulate its decode on the target",
                       description="Compile a .dfl model for its target (" + target_names() + ") and time "
                                   "its decode on that target's timing interpreter: ms per token, tokens/s, "
                                   "the fraction of the HBM roofline, and where the time goes. With a prompt "
                                   "(--prompt), the whole request: time to first token and latency; with a "
                                   "draft model in the file, speculative decoding. docs/report.md describes "
                                   "every figure. With a `compose` block, the Composition of Experts serving its requests: "
                                   "switch time, HBM hit rate, request latency, experts per node.")
    p.add_argument("file", metavar="MODEL.dfl")
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")
    p.add_argument("--trace", metavar="FILE", help="write a Chrome/Perfetto trace of one decode step")
    p.add_argument("-o", "--output", metavar="OUT", help="write the report here instead of standard output")
    add_run_settings(p)
    p.add_argument("--experts", type=int, metavar="N",
                   help="a composition's expert count, replacing the file's (its one expert model repeated N times)")
    add_lowering_options(p)
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    path = Path(args.file)
    distinct_outputs({"--trace": args.trace, "-o": args.output})
    values = overrides(args)
    if args.experts is not None:
        values["experts"] = args.experts
    report = run_model(path, values, compile_options(args))
    if args.trace:
        write_output(Path(args.trace), trace_json(report.timeline, model=report["model"]), [path],
                     option="--trace")
    if args.json:
        emit(json.dumps(report.figures, indent=2), args.output, [path])
    else:
        emit(render_composition(report) if "experts" in report.figures else render_table(report), args.output,
             [path])
    if args.trace and not args.json:
        sys.stderr.write(f"trace of one decode step written to {args.trace} (open it at ui.perfetto.dev)\n")
    return 0
