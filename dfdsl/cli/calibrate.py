"""`dfdsl calibrate`: fit a hardware file's free parameters to measured ms per token, write the
fitted file, print the fit report."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from dfdsl import calibrate
from dfdsl.cli.output import UsageError, distinct_outputs, emit, output_stream, write_output
from dfdsl.driver import CompileOptions, Compiler
from dfdsl.cli.options import hardware_help
from dfdsl.hardware import hardware_text


def add_parser(sub) -> None:
    p = sub.add_parser(
        "calibrate", help="fit hardware parameters to measured ms per token; write a fitted hardware file",
        description="Fit the hardware parameters named by --fit to the measured points of MEASURED.csv by "
                    "bounded least squares on their relative errors, write the hardware file with the fitted "
                    "values (its comments kept, each fitted value marked) to -o, and print the fit report: "
                    "base and fitted values, every point's residual, the leave-one-out cross-validation "
                    "error, and the parameters the points cannot pin down. Needs the extra "
                    "dfdsl[calibrate] (scipy, tomlkit). The CSV's columns: model, ms_per_token and source "
                    "(required), then target, sockets, batch, context, tokens (empty: the model file's "
                    "setting); see docs/calibrate.md.")
    p.add_argument("file", metavar="MEASURED.csv", help="the measured points, one per line after a header")
    p.add_argument("--hardware", metavar="BASE.toml|NAME", required=True,
                   help=hardware_help("the machine whose values the fit starts from"))
    p.add_argument("-o", "--output", metavar="FITTED.toml", required=True,
                   help="where to write the fitted hardware file (whole or not at all)")
    p.add_argument("--fit", metavar="P[=LO:HI],...", required=True,
                   help="the parameters to fit: short names (launch_cost, stream_efficiency, allreduce_latency, "
                        "host_cost, compute_efficiency, hbm_bandwidth, the right key on either kind of machine) or "
                        "a number's own name (launch_sync_hardware_s); bounds default to the value's physical range")
    p.add_argument("--measured-on", metavar="NAME",
                   help="use the rows whose target is NAME (default: the hardware file's name; rows without a "
                        "target are always used)")
    p.add_argument("--tolerance", type=float, default=calibrate.DEFAULT_TOLERANCE, metavar="T",
                   help="how far the points' RMS relative error may rise inside a parameter's reported range "
                        f"(default {calibrate.DEFAULT_TOLERANCE:g}: one percentage point)")
    p.add_argument("--no-loo", action="store_true", help="skip the leave-one-out refits (one fit per point)")
    p.add_argument("--json", action="store_true", help="print the fit report as JSON")
    p.add_argument("--report", metavar="FILE", help="write the fit report to FILE instead of standard output")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    if not 0 < args.tolerance < 1:
        raise UsageError(f"--tolerance {args.tolerance:g}: give a fraction between 0 and 1, e.g. 0.01")
    distinct_outputs({"-o": args.output, "--report": args.report})
    calibrate.require_scipy()
    path = Path(args.file)
    measurements = calibrate.read_measurements(path)
    hardware = args.hardware
    base_text, base_name, bundled = hardware_text(hardware)
    compiler = Compiler()
    try:
        points, skipped, base = calibrate.load_points(measurements, hardware, args.measured_on, compiler)
        parameters = calibrate.resolve_parameters(base, args.fit)
    except calibrate.CalibrationError as err:
        raise UsageError(str(err)) from None
    note = calibrate.other_machine_note(base, base_name, bundled, args.measured_on)
    if note:
        sys.stderr.write(f"dfdsl: note: {note}\n")
    predictor = calibrate.Predictor(points, parameters, CompileOptions(hardware=hardware), compiler)

    def progress(text: str) -> None:
        if sys.stderr.isatty():
            sys.stderr.write(f"\r{text}\033[K")

    result, values = calibrate.fit(predictor, tolerance=args.tolerance, loo=not args.no_loo, skipped=skipped,
                                   progress=progress)
    if sys.stderr.isatty():
        sys.stderr.write("\r\033[K")
    try:
        calibrate.check_fitted(base, values)
    except calibrate.CalibrationError as err:
        raise UsageError(str(err)) from None
    when = calibrate.now()
    inputs = [path] + ([] if bundled else [Path(args.hardware)])
    text = calibrate.fitted_toml(base_text, base_name, values, path.name, when)
    names = {"measured": str(path), "hardware": base_name, "output": args.output}
    report = (json.dumps(calibrate.report_json(result, when=when, **names), indent=2) if args.json
              else calibrate.render_report(result, **names))
    if args.report in (None, "-"):
        write_output(Path(args.output), text, inputs)
        emit(report, None, inputs)
        return 0
    # Both files or neither: each is renamed into place only when both are written.
    with (output_stream(Path(args.report), inputs, option="--report") as report_file,
          output_stream(Path(args.output), inputs) as fitted):
        report_file.write(report if report.endswith("\n") else report + "\n")
        fitted.write(text)
    return 0
