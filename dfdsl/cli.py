"""The `dfdsl` command line: one subcommand per job, each a short driver over the pipeline stages.

Exit codes: 0 success, 2 bad input (a located diagnostic), 1 an internal failure (a bug).
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

from dfdsl import __version__
from dfdsl.ast import Span
from dfdsl.diagnostics import DfslError, Diagnostic

EMITS = ("df", "fused", "looped", "rdu", "nv", "graph")
GRAPH_FORMATS = ("dot", "svg", "png", "json")


USAGE_CODE = "E027"
HARDWARE_CODE = "E023"


class UsageError(Exception):
    """A command-line mistake; printed as `dfdsl: error: ...` with exit code 2."""


# -- shared pieces --------------------------------------------------------------------------


def _add_run_overrides(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("run settings (override the file's `run` block)")
    g.add_argument("--batch", type=int, metavar="B", help="sequences decoded together")
    g.add_argument("--context", type=int, metavar="C", help="tokens already in the KV cache")
    g.add_argument("--tokens", type=int, metavar="T", help="tokens to generate")
    g.add_argument("--sockets", type=int, metavar="N", help="sockets (tensor-parallel degree)")
    g.add_argument("--target", metavar="NAME", help="machine to run on: sn40l or dgx-h100")


def _add_lowering_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("lowering")
    g.add_argument("--fusion", choices=("none", "block", "layer"), default="layer",
                   help="operators per kernel: one each, attention/MLP blocks, or whole layers (default)")
    g.add_argument("--no-kernel-looping", action="store_true",
                   help="keep one kernel call per layer instead of one looped call per run of layers")
    g.add_argument("--hardware", metavar="FILE", help="a hardware TOML file to use instead of the target's")


def _overrides(args: argparse.Namespace) -> dict[str, int | str]:
    keys = ("batch", "context", "tokens", "sockets", "target")
    values = {k: getattr(args, k) for k in keys if getattr(args, k, None) is not None}
    if "target" in values:
        values["target"] = str(values["target"]).replace("-", "_")  # dgx-h100 names dgx_h100
    return values


def _front_end(path: Path, overrides: dict[str, int | str]):
    from dfdsl.elaborate import check_file
    from dfdsl.irgen import generate

    from dfdsl.sim.hardware import bundled_targets

    model = check_file(path, overrides, targets=bundled_targets())
    return model, generate(model)


def _lowering_options(args: argparse.Namespace, model, *, gpu: bool):
    from dfdsl.lowering.pipeline import LoweringOptions

    return LoweringOptions(
        sockets=model.run.sockets,
        fusion=args.fusion,
        kernel_looping=not (args.no_kernel_looping or gpu),
        target=model.run.target,
        hardware=args.hardware or "",
    )


def write_output(path: Path, data: str | bytes, inputs: Sequence[Path] = ()) -> None:
    """Write `data` to `path` through a temporary file and a rename: never half-written, never an input."""
    target = Path(path)
    for source in inputs:
        if target.exists() and source.exists() and target.resolve() == Path(source).resolve():
            raise UsageError(f"refusing to overwrite the input file {source}; choose another -o")
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        if isinstance(data, bytes):
            tmp.write_bytes(data)
        else:
            tmp.write_text(data, encoding="utf-8")
        os.replace(tmp, target)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise UsageError(f"cannot write {target}: {err.strerror}") from None


def _emit(text: str, out: str | None, inputs: Sequence[Path]) -> None:
    if out in (None, "-"):
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    else:
        write_output(Path(out), text if text.endswith("\n") else text + "\n", inputs)


def _print_ir(module, generic: bool) -> str:
    from io import StringIO

    from xdsl.printer import Printer

    stream = StringIO()
    Printer(stream=stream, print_generic_format=generic).print_op(module)
    return stream.getvalue()


# -- subcommands ----------------------------------------------------------------------------


def cmd_check(args: argparse.Namespace) -> int:
    model, module = _front_end(Path(args.file), _overrides(args))
    layer_calls = sum(1 for op in module.walk() if op.name == "df.call")
    print(f"{args.file}: ok: model {model.name}, {layer_calls} layer calls, "
          f"{len(model.layers)} kind(s) of layer, run at batch {model.run.batch}, "
          f"context {model.run.context}, {model.run.sockets} socket(s) of {model.run.target}")
    return 0


def cmd_lower(args: argparse.Namespace) -> int:
    from dfdsl.lowering.pipeline import GPU_STAGES, STAGES, gpu_passes_to, passes_to, run_passes
    from dfdsl.sim.hardware import GpuHardware, load_hardware

    path = Path(args.file)
    model, module = _front_end(path, _overrides(args))
    gpu = isinstance(load_hardware(args.hardware or model.run.target), GpuHardware)
    options = _lowering_options(args, model, gpu=gpu)
    if args.emit != "graph" and (args.stage or args.format or args.unfold):
        raise UsageError("--stage, --format and --unfold go with --emit graph")
    if args.emit is None:
        args.emit = "nv" if gpu else "rdu"
    stage = (args.stage or ("fused" if gpu else "looped")) if args.emit == "graph" else args.emit
    stages = GPU_STAGES if gpu else STAGES
    if stage not in stages:
        machine = f"{model.run.target} is a GPU" if gpu else f"{model.run.target} is an RDU"
        raise UsageError(f"{machine}: its stages are {', '.join(stages)}, not {stage}")
    passes = (gpu_passes_to if gpu else passes_to)(stage, options)
    if args.remarks:
        passes = [_with_remarks(p) for p in passes]
    timings: list[tuple[str, float]] = []

    def after_each(p, mod, seconds: float) -> None:
        timings.append((p.name, seconds))
        if args.print_after_all:
            sys.stderr.write(f"// -----// IR after {p.name} //----- //\n{_print_ir(mod, False)}\n")

    run_passes(module, passes, after_each)
    if args.emit == "graph":
        _emit_graph(module, args, path)
    else:
        _emit(_print_ir(module, args.generic), args.output, [path])
    if args.timing:
        width = max((len(n) for n, _ in timings), default=4)
        for name, seconds in timings:
            sys.stderr.write(f"{name:<{width}}  {seconds * 1e3:8.2f} ms\n")
    return 0


def _emit_graph(module, args: argparse.Namespace, path: Path) -> None:
    from dfdsl.graph_view import build_graph, render

    fmt = args.format or "dot"
    data = render(build_graph(module, unfold=args.unfold, stage=args.stage), fmt)
    if isinstance(data, bytes) and args.output in (None, "-"):
        if sys.stdout.isatty():
            raise UsageError(f"--format {fmt} is binary: write it to a file with -o graph.{fmt}")
        sys.stdout.buffer.write(data)
        return
    if isinstance(data, bytes):
        write_output(Path(args.output), data, [path])
    else:
        _emit(data, args.output, [path])


def _with_remarks(p):
    import dataclasses

    if p.name == "kernel-looping":
        return dataclasses.replace(p, remarks=True)
    return p


def _variant(args: argparse.Namespace):
    from dfdsl.runner import Variant

    # Kernel looping is on unless turned off; None lets the target decide (a GPU cannot loop).
    return Variant(fusion=args.fusion, kernel_looping=False if args.no_kernel_looping else None,
                   hardware=args.hardware or "")


def cmd_run(args: argparse.Namespace) -> int:
    import json

    from dfdsl.report import render_table
    from dfdsl.runner import run_model
    from dfdsl.sim.trace import trace_json

    path = Path(args.file)
    report = run_model(path, _overrides(args), _variant(args))
    if args.trace:
        write_output(Path(args.trace), trace_json(report.timeline, model=report["model"]), [path])
    if args.json:
        _emit(json.dumps(report.figures, indent=2), args.output, [path])
    else:
        _emit(render_table(report), args.output, [path])
    if args.trace and not args.json:
        sys.stderr.write(f"trace of one decode step written to {args.trace} (open it at ui.perfetto.dev)\n")
    return 0


def cmd_import_hf(args: argparse.Namespace) -> int:
    from dfdsl.hf_import import HfImportError, import_config

    path = Path(args.config)
    try:
        text = import_config(path)
    except HfImportError as err:
        raise UsageError(str(err)) from None
    _emit(text, args.output, [path])
    if args.output not in (None, "-"):
        sys.stderr.write(f"wrote {args.output}; try: dfdsl run {args.output}\n")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from dfdsl import sweep
    from dfdsl.elaborate import check_file
    from dfdsl.sim.hardware import bundled_targets

    path = Path(args.file)
    run = check_file(path, targets=bundled_targets()).run
    try:
        axes = {
            "sockets": sweep.parse_values(args.sockets or str(run.sockets), int, "sockets"),
            "batch": sweep.parse_values(args.batch or str(run.batch), int, "batch"),
            "context": sweep.parse_values(args.context or str(run.context), int, "context"),
            "tokens": sweep.parse_values(args.tokens or str(run.tokens), int, "tokens"),
            "fusion": sweep.parse_values(args.fusion, str, "fusion"),
            "kernel_looping": [v == "on" for v in sweep.parse_values(args.kernel_looping, str, "kernel_looping")],
        }
        bad = [f for f in axes["fusion"] if f not in ("none", "block", "layer")]
        bad += [v for v in args.kernel_looping.split(",") if v.strip() not in ("on", "off")]
        if bad:
            raise sweep.SweepError(f"unknown value(s) {', '.join(bad)}: --fusion takes none,block,layer and "
                                   "--kernel-looping on,off")
        hardware_axes = {}
        for item in args.set or []:
            key, eq, values = item.partition("=")
            if not eq:
                raise sweep.SweepError(f"--set {item!r}: write KEY=V1,V2")
            hardware_axes[key.strip()] = sweep.parse_values(values, float, "set")
        points = sweep.make_points(axes, hardware_axes)
    except sweep.SweepError as err:
        raise UsageError(str(err)) from None
    if args.output and Path(args.output).resolve() == path.resolve():
        raise UsageError(f"refusing to overwrite the input file {path}; choose another -o")
    columns = [TextColumn("sweep"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    with Progress(*columns, transient=True, disable=args.quiet) as bar:
        task = bar.add_task("points", total=len(points))
        rows = sweep.run_sweep(path, points, hardware_file=args.hardware or "", workers=args.workers,
                               scheduler=args.scheduler, progress=lambda n: bar.advance(task, n))
    failed = sum(1 for r in rows if r["error"])
    _emit(sweep.to_csv(rows), args.output, [path])
    if args.plot:
        try:
            write_output(Path(args.plot), sweep.plot(rows, path.stem), [path])
        except sweep.SweepError as err:
            raise UsageError(str(err)) from None
    if not args.quiet:
        sys.stderr.write(f"{len(rows)} points, {failed} with an error (see the `error` column)"
                         + (f"; wrote {args.output}" if args.output else "") + "\n")
    return 0


def cmd_opt(args: argparse.Namespace) -> int:
    from xdsl.parser import Parser
    from xdsl.passes import PassPipeline
    from xdsl.utils.exceptions import ParseError

    from dfdsl.lowering.pipeline import context
    from dfdsl.lowering.stages import apply_checked
    from dfdsl.universe import DFDSL_UNIVERSE

    path = Path(args.file)
    text = sys.stdin.read() if args.file == "-" else _read_text(path)
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
        try:
            pipeline = PassPipeline.parse_spec(DFDSL_UNIVERSE.all_passes, args.passes)
        except Exception as err:  # xDSL reports a bad spec as ValueError or its own exceptions
            raise UsageError(f"bad pass pipeline {args.passes!r}: {err}; passes are "
                             + ", ".join(DFDSL_UNIVERSE.all_passes)) from None
        for p in pipeline.passes:
            apply_checked(p, ctx, module)
    _emit(_print_ir(module, args.generic), args.output, [path])
    return 0


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as err:
        raise UsageError(f"cannot read {path}: {err.strerror}") from None
    except UnicodeDecodeError:
        raise UsageError(f"{path} is not UTF-8 text") from None


# -- the parser ------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dfdsl",
        description="Compile LLM decode programs written in .dfl through the df dialect to the SN40L's "
                    "rdu dialect (or a DGX H100's nv), and time their decode on a bundled simulator.",
        epilog="Start with: dfdsl run examples/llama3_1_8b.dfl. Docs: README.md, docs/tutorial.md.",
    )
    parser.add_argument("--version", action="version", version=f"dfdsl {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("check", help="parse and verify a model, nothing else",
                       description="Parse a .dfl file, check it, and generate its df IR (which must verify).")
    p.add_argument("file", metavar="MODEL.dfl")
    _add_run_overrides(p)
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("lower", help="lower a model and print the IR of a stage (or draw its graph)",
                       description="Lower a .dfl model to a stage of the pipeline and print its IR.")
    p.add_argument("file", metavar="MODEL.dfl")
    p.add_argument("--emit", choices=EMITS,
                   help="stage to print: df (front end), fused, looped, rdu (the default), nv (the GPU "
                        "program, the default for --target dgx-h100), or graph: the dataflow graph of --stage")
    p.add_argument("--stage", choices=EMITS[:4],
                   help="with --emit graph: the stage to draw (default looped; fused on a GPU)")
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
    _add_run_overrides(p)
    _add_lowering_options(p)
    p.set_defaults(func=cmd_lower)

    p = sub.add_parser("run", help="compile a model and simulate its decode on the target",
                       description="Compile a .dfl model to the rdu dialect and time its decode on the "
                                   "SN40L timing interpreter: ms per token, tokens/s, the fraction of "
                                   "the HBM roofline, and where the time goes.")
    p.add_argument("file", metavar="MODEL.dfl")
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")
    p.add_argument("--trace", metavar="FILE", help="write a Chrome/Perfetto trace of one decode step")
    p.add_argument("-o", "--output", metavar="OUT", help="write the report here instead of standard output")
    _add_run_overrides(p)
    _add_lowering_options(p)
    p.set_defaults(func=cmd_run)

    from dfdsl import compare, validate

    p = sub.add_parser("compare", help="one model under every fusion mode, with and without kernel looping",
                       description="Compile and simulate a .dfl model under fusion none/block/layer x kernel "
                                   "looping on/off x socket counts, as one table with speedups.")
    compare.add_arguments(p)
    p.set_defaults(func=compare.main)

    p = sub.add_parser("validate", help="the published SN40L results beside the simulator's",
                       description="Compare the published SN40L figures of HARDWARE.md with the simulator "
                                   "under the same configurations; exit code 1 if one is outside its tolerance.")
    validate.add_arguments(p)
    p.set_defaults(func=validate.main)

    p = sub.add_parser("sweep", help="run every combination of settings and write a CSV",
                       description="Simulate every combination of the given axes (comma-separated values; "
                                   "an axis not given takes the file's run value) and write one CSV row per "
                                   "point. Points that differ only in run or hardware values share one "
                                   "compiled program.")
    p.add_argument("file", metavar="MODEL.dfl")
    p.add_argument("--sockets", metavar="N,N", help="socket counts, e.g. 8,16")
    p.add_argument("--batch", metavar="B,B", help="batch sizes, e.g. 1,8,32")
    p.add_argument("--context", metavar="C,C", help="context lengths, e.g. 4096,32768")
    p.add_argument("--tokens", metavar="T,T", help="tokens to generate")
    p.add_argument("--fusion", metavar="MODES", default="layer", help="fusion modes: none,block,layer (default layer)")
    p.add_argument("--kernel-looping", metavar="on,off", default="on", help="kernel looping on, off, or on,off")
    p.add_argument("--set", metavar="KEY=V,V", action="append",
                   help="a hardware value to sweep, e.g. hbm_bandwidth=1.6e12,1.8e12 (repeatable)")
    p.add_argument("--hardware", metavar="FILE", help="a hardware TOML file to use instead of the target's")
    p.add_argument("--workers", type=int, metavar="N", help="local processes (default: all cores)")
    p.add_argument("--scheduler", metavar="ADDRESS", help="run on an existing Dask cluster (tcp://host:8786)")
    p.add_argument("-o", "--output", metavar="OUT.csv", help="write the CSV here instead of standard output")
    p.add_argument("--plot", metavar="FILE.png",
                   help="also draw tokens/s per user against the axis with the most values (needs matplotlib)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary")
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("import-hf", help="write a .dfl model from a Hugging Face config.json",
                       description="Write a .dfl model from a Hugging Face config.json (Llama, Mistral, "
                                   "Mixtral, Qwen2, Gemma 2 and DeepSeek-V3 families). Nothing is downloaded.")
    p.add_argument("config", metavar="CONFIG.json")
    p.add_argument("-o", "--output", metavar="OUT.dfl", help="write here instead of standard output")
    p.set_defaults(func=cmd_import_hf)

    p = sub.add_parser("opt", help="run passes over an IR file (like xdsl-opt)",
                       description="Parse MLIR-syntax IR in the df/rdu dialects, run passes, print the result.")
    p.add_argument("file", metavar="FILE.mlir", help="the IR file, or - for standard input")
    p.add_argument("-p", "--passes", metavar="PIPELINE", default="",
                   help="comma-separated passes with options: 'fuse{mode=block},kernel-looping'")
    p.add_argument("-o", "--output", metavar="OUT", help="write here instead of standard output")
    p.add_argument("--generic", action="store_true", help="print the generic form of every op")
    p.set_defaults(func=cmd_opt)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return run_command(args.func, args)


def _code_of(err: Exception) -> str:
    """The catalogue code of an error raised by a pass or the simulator (docs/errors.md): its
    `code` (dfdsl.lowering.errors), or E025 for xDSL's own verifier."""
    from xdsl.utils.exceptions import VerifyException

    return "E025" if isinstance(err, VerifyException) else getattr(err, "code", "E024")


def run_command(func: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    from xdsl.utils.exceptions import DiagnosticException

    from dfdsl.sim.hardware import HardwareError

    try:
        return func(args)
    except DfslError as err:
        sys.stderr.write(err.render() + "\n")
        return 2
    except UsageError as err:
        sys.stderr.write(f"dfdsl: error: {err} [{USAGE_CODE}]\n")
        return 2
    except HardwareError as err:
        sys.stderr.write(f"dfdsl: error: {err} [{HARDWARE_CODE}]\n")
        return 2
    except DiagnosticException as err:
        where = getattr(args, "file", None)
        sys.stderr.write(f"{where + ': ' if where else ''}error: {err} [{_code_of(err)}]\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("dfdsl: interrupted\n")
        return 130
    except BrokenPipeError:
        return 0
    except Exception as err:  # a bug in dfdsl: say so, briefly, and how to see more
        if os.environ.get("DFDSL_DEBUG"):
            traceback.print_exc()
        sys.stderr.write(f"dfdsl: internal error: {type(err).__name__}: {err}\n"
                         "This is a bug in dfdsl. Rerun with DFDSL_DEBUG=1 to see the traceback.\n")
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
