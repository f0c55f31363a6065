"""`dfdsl lower`: a model compiled to a stage of its target's pipeline, as IR or as a graph."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass

from dfdsl.cli.options import add_lowering_options, add_run_settings, compile_options, overrides
from dfdsl.cli.output import UsageError, emit, print_ir, write_output, write_stdout
from dfdsl.driver import Compiler, Model, load_model
from dfdsl.lowering.kernel_looping import KernelLooping
from dfdsl.targets import TARGETS

STAGES = tuple(dict.fromkeys(stage for target in TARGETS.values() for stage in target.stages))
"""Every stage of every target, in pipeline order."""
EMITS = (*STAGES, "graph", "composition")
GRAPH_FORMATS = ("dot", "svg", "png", "json")


def add_parser(sub) -> None:
    p = sub.add_parser("lower", help="lower a model and print the IR of a stage (or draw its graph)",
                       description="Lower a .dfl model to a stage of its target's pipeline and print its IR.")
    p.add_argument("file", metavar="MODEL.dfl")
    p.add_argument("--emit", choices=EMITS,
                   help="stage to print: df (front end), fused, looped, rdu (an RDU's last stage, its "
                        "default), nv (a GPU's last stage, its default), graph: the dataflow graph of --stage, or "
                        "composition: a composition's program (its HBM region and expert copies, on an RDU)")
    p.add_argument("--stage", choices=STAGES,
                   help="with --emit graph: the stage to draw (default looped on an RDU, fused on a GPU)")
    p.add_argument("--format", choices=GRAPH_FORMATS,
                   help="with --emit graph: dot (default), svg, png (need Graphviz's `dot`), or json (node-link)")
    p.add_argument("--unfold", action="store_true",
                   help="with --emit graph: draw every layer instead of folding identical ones")
    p.add_argument("-o", "--output", metavar="OUT", help="write here instead of standard output")
    p.add_argument("--generic", action="store_true", help="print the generic form of every op")
    p.add_argument("--print-after-all", action="store_true", help="print the IR after each pass to stderr")
    p.add_argument("--timing", action="store_true", help="print each pass's wall time to stderr")
    p.add_argument("--remarks", action="store_true",
                   help="say where kernel looping did not apply, and why (stderr)")
    p.add_argument("--prefill", action="store_true",
                   help="lower the prefill pass of the run's prompt (or of its chunks) instead of a decode step")
    p.add_argument("--draft", action="store_true", help="lower the file's draft model instead of its model")
    add_run_settings(p)
    add_lowering_options(p)
    p.set_defaults(func=main)


def _with_remarks(p: ModulePass) -> ModulePass:
    if isinstance(p, KernelLooping):
        return dataclasses.replace(p, remarks=True)
    return p


def main(args: argparse.Namespace) -> int:
    path = Path(args.file)
    model = load_model(path, overrides(args), args.hardware or "")
    target = model.target
    if args.emit != "graph" and (args.stage or args.format or args.unfold):
        raise UsageError("--stage, --format and --unfold go with --emit graph")
    emit_what = args.emit or target.final_stage
    if emit_what == "composition":
        _emit_composition(model, args, path)
        return 0
    stage = (args.stage or target.graph_stage) if emit_what == "graph" else emit_what
    if stage not in target.stages:
        machine = f"{model.target_name} is {'a GPU' if target.kind == 'gpu' else 'an RDU'}"
        raise UsageError(f"{machine}: its stages are {', '.join(target.stages)}, not {stage}")
    timings: list[tuple[str, float]] = []

    def after_each(p: ModulePass, module: ModuleOp, seconds: float) -> None:
        timings.append((p.name, seconds))
        if args.print_after_all:
            sys.stderr.write(f"// -----// IR after {p.name} //----- //\n{print_ir(module, False)}\n")

    settings = model.settings
    if args.draft:
        draft = model.draft()
        if draft is None:
            raise UsageError(f"--draft: {path} has no draft model")
        model = draft
    pass_tokens = None
    if args.prefill:
        pass_tokens = settings.chunk or settings.prompt
        if not pass_tokens:
            raise UsageError("--prefill lowers a prompt's prefill: give the prompt's length (--prompt P, or "
                             "`prompt` in the run)")
    module = Compiler().compile(model, settings, compile_options(args), stage, pass_tokens=pass_tokens,
                                rewrite=_with_remarks if args.remarks else None, after_each=after_each)
    if emit_what == "graph":
        _emit_graph(module, args, path)
    else:
        emit(print_ir(module, args.generic), args.output, [path])
    if args.timing:
        width = max((len(n) for n, _ in timings), default=4)
        for name, seconds in timings:
            sys.stderr.write(f"{name:<{width}}  {seconds * 1e3:8.2f} ms\n")
    return 0


def _emit_composition(model: Model, args: argparse.Namespace, path: Path) -> None:
    if model.composition is None:
        raise UsageError(f"--emit composition: {path} has no `compose` block")
    program = Compiler().serve(model, model.settings, compile_options(args)).program
    if program is None:
        raise UsageError(f"--emit composition: the composition program is an RDU's, and {model.target_name} is a GPU "
                         "node (its copies are timed from its hardware file's [host] table)")
    emit(print_ir(program, args.generic), args.output, [path])


def _emit_graph(module: ModuleOp, args: argparse.Namespace, path: Path) -> None:
    from dfdsl.graph_render import render
    from dfdsl.graph_view import build_graph

    fmt = args.format or "dot"
    data = render(build_graph(module, unfold=args.unfold, stage=args.stage), fmt)
    if isinstance(data, bytes) and args.output in (None, "-"):
        if sys.stdout.isatty():
            raise UsageError(f"--format {fmt} is binary: write it to a file with -o graph.{fmt}")
        write_stdout(data)
        return
    if isinstance(data, bytes):
        write_output(Path(args.output), data, [path])
    else:
        emit(data, args.output, [path])
