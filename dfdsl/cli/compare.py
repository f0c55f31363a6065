"""`dfdsl compare`: one model under every fusion mode with and without kernel looping, or on
several machines (`--targets`), in one table."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from dfdsl import compare, compare_view
from dfdsl.cli.options import add_lowering_options, add_run_settings, overrides, target_names
from dfdsl.cli.output import UsageError, distinct_outputs, emit, write_output
from dfdsl.elaborate import RunValue
from dfdsl.lowering.pipeline import FUSION_MODES


def _socket_list(text: str) -> list[int]:
    try:
        sockets = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected socket counts separated by commas, got {text!r}") from None
    return list(dict.fromkeys(sockets))


def _variant_list(text: str) -> list[tuple[str, bool]]:
    try:
        return compare.parse_variants(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `dfdsl compare`."""
    parser.add_argument("file", metavar="MODEL.dfl")
    parser.add_argument("--variants", type=_variant_list, metavar="SPEC",
                        default=[(f, on) for f in FUSION_MODES for on in (False, True)],
                        help="fusion modes and looping, comma-separated: FUSION (looping off and on), "
                             "FUSION:on or FUSION:off; FUSION is none, block or layer "
                             "(default: all six)")
    parser.add_argument("--sockets", type=_socket_list, metavar="N,M", default=list(compare.DEFAULT_SOCKETS),
                        help="socket counts, comma-separated (default: 8,16)")
    parser.add_argument("--targets", metavar="SPEC",
                        help=f"compare machines instead: NAME[:SOCKETS],... with NAME one of {target_names()}, "
                             "e.g. sn40l:8,sn40l:16,dgx-h100 (each as `dfdsl run` runs it there; speedups "
                             "against the GPU; for a composition, its gains over each machine at batch 1 and 8)")
    parser.add_argument("--plot", metavar="FILE.png",
                        help="with --targets: also draw tokens/s and %% of roofline per target; for a composition, "
                             "its mean request latency against the number of experts (needs matplotlib)")
    parser.add_argument("--json", action="store_true", help="print a JSON list of the rows' reports")
    parser.add_argument("-o", "--output", metavar="OUT", help="write here instead of standard output")
    add_run_settings(parser, sockets=False)
    parser.add_argument("--experts", type=int, metavar="N",
                        help="with --targets, for a composition: its expert count, replacing the file's")
    add_lowering_options(parser, fusion=False)


def add_parser(sub) -> None:
    p = sub.add_parser("compare", help="one model under every fusion mode and looping, or on several machines "
                                       "(--targets)",
                       description="Compile and simulate a .dfl model under fusion none/block/layer x kernel "
                                   "looping on/off x socket counts, as one table with speedups; or, with "
                                   "--targets, on several machines side by side.")
    add_arguments(p)
    p.set_defaults(func=main)


def _compare_targets(args: argparse.Namespace, path: Path, values: dict[str, RunValue]) -> int:
    try:
        specs = compare.parse_targets(args.targets)
    except ValueError as err:
        raise UsageError(str(err)) from None
    if compare.is_composition(path, values):
        return _compare_composition(args, path, values, specs)
    outcomes = compare.run_targets(path, values, specs)
    if args.json:
        emit(json.dumps(compare_view.targets_json(outcomes), indent=2), args.output, [path])
    else:
        emit(compare_view.render_targets(outcomes, compare_view.targets_title(outcomes, path.stem)),
             args.output, [path])
    if args.plot:
        try:
            png = compare_view.plot_targets(outcomes, path.stem)
        except ValueError as err:
            raise UsageError(str(err)) from None
        write_output(Path(args.plot), png, [path], option="--plot")
    return 0


def _compare_composition(args: argparse.Namespace, path: Path, values: dict[str, RunValue],
                         specs: list[compare.TargetSpec]) -> int:
    """A composition on several machines: switch time, latency at batches 1 and 8, footprint."""
    outcomes = compare.run_composition_targets(path, values, specs)
    if args.json:
        emit(json.dumps(compare_view.composition_json(outcomes), indent=2), args.output, [path])
    else:
        ran = next((o.report.figures for o in outcomes if o.report is not None), None)
        title = (f"{ran['model']}: {ran['experts']} experts · {ran['requests']:,} requests · {ran['tokens']} output "
                 "tokens · each target as `dfdsl run` serves it") if ran else path.stem
        emit(compare_view.render_composition_targets(outcomes, title), args.output, [path])
    if args.plot:
        model = compare.load_model(path, values)
        assert model.composition is not None
        if len(model.composition.models) > 1:
            raise UsageError("--plot varies the count of a composition's one expert model; this one has several")
        counts = sorted({*compare.EXPERT_COUNTS, model.composition.expert_count})
        curves = [(spec.label, compare.experts_curve(path, values, spec, counts)) for spec in specs]
        try:
            png = compare_view.plot_experts(curves, f"{model.composition.name}: request latency against experts")
        except ValueError as err:
            raise UsageError(str(err)) from None
        write_output(Path(args.plot), png, [path], option="--plot")
    return 0


def main(args: argparse.Namespace) -> int:
    """`dfdsl compare`: prints the table (or JSON); exit code 1 if a row hit a bug in dfdsl."""
    path = Path(args.file)
    values = {k: v for k, v in overrides(args).items() if k != "sockets"}  # --sockets is a list here
    if getattr(args, "experts", None) is not None:
        values["experts"] = args.experts
    distinct_outputs({"-o": args.output, "--plot": args.plot})
    if args.targets:
        return _compare_targets(args, path, values)
    if args.plot:
        raise UsageError("--plot goes with --targets")
    if compare.is_composition(path, values):
        raise UsageError("a composition is compared across machines: give --targets, e.g. "
                         "--targets sn40l:8,dgx-h100,dgx-a100")
    outcomes = compare.simulate_configs(path, values, compare.configurations(args.sockets, args.variants),
                                        args.hardware or "")
    rows = compare_view.table_rows(outcomes)
    if args.json:
        emit(json.dumps(compare_view.rows_json(rows, path.stem), indent=2), args.output, [path])
    else:
        emit(compare_view.render_table(rows, compare_view.variants_title(path, outcomes)), args.output, [path])
    bugs = [o for o in outcomes if o.internal_error]
    for o in bugs:
        sys.stderr.write(f"dfdsl: {o.config.sockets} sockets, fusion {o.config.fusion}, looping "
                         f"{'on' if o.config.kernel_looping else 'off'}: {o.error}\n"
                         "This is a bug in dfdsl.\n")
    return 1 if bugs else 0
