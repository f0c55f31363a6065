"""`dfdsl validate`: the published SN40L results beside the simulator's, one table."""

from __future__ import annotations

import argparse
import json

import attrs

from dfdsl import compare_view
from dfdsl.cli.options import hardware_help
from dfdsl.cli.output import emit
from dfdsl.hardware import TargetMismatchError, load_hardware
from dfdsl.validate import (
    SOCKETS,
    calibrate,
    checks,
    composition_checks,
    composition_runs,
    dense_examples,
    render_calibration,
    render_checks,
    speculative_checks,
    speculative_runs,
)


def add_parser(sub) -> None:
    p = sub.add_parser("validate", help="the published SN40L results beside the simulator's",
                       description="Compare the published SN40L figures (docs/validation.md lists them with "
                                   "their sources) with the simulator under the same configurations; exit "
                                   "code 1 if a calibrated figure is outside its tolerance (the speculative "
                                   "figures, predicted under a stated draft and acceptance, and the Composition "
                                   "of Experts ratios, whose DGX side the paper estimated, are reported as MISS "
                                   "when outside).")
    add_arguments(p)
    p.set_defaults(func=main)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `dfdsl validate`."""
    parser.add_argument("--json", action="store_true",
                        help="print the checks, the configurations and the skipped ones as one JSON object")
    parser.add_argument("-o", "--output", metavar="OUT", help="write here instead of standard output")
    parser.add_argument("--hardware", metavar="FILE|NAME",
                        help=hardware_help("the machine to validate instead of the bundled sn40l"))


def main(args: argparse.Namespace) -> int:
    """`dfdsl validate`: exit code 1 when a calibrated published figure is outside its tolerance."""
    if args.hardware and (kind := load_hardware(args.hardware).kind) != "rdu":
        raise TargetMismatchError(f"--hardware {args.hardware} is a {kind} machine, and validate checks the "
                                  "published SN40L figures: give an rdu machine (sn40l, or a hardware file "
                                  "of that kind)")
    calibrations, skipped = calibrate(dense_examples(), SOCKETS, args.hardware or "")
    speculative = speculative_runs(hardware_file=args.hardware or "")
    compositions = composition_runs()
    results = checks(calibrations) + speculative_checks(speculative) + composition_checks(compositions)
    if args.json:
        data = {"claims": [c.as_json() for c in results],
                "configurations": [c.as_json() for c in calibrations],
                "skipped": [attrs.asdict(s) for s in skipped],
                "speculative": [r.as_json() for r in speculative],
                "composition": compare_view.composition_json(compositions)}
        emit(json.dumps(data, indent=2), args.output, [])
    else:
        emit(render_checks(results) + "\n" + render_calibration(calibrations, skipped), args.output, [])
    return 0 if all(c.passed for c in results if c.gates) else 1
