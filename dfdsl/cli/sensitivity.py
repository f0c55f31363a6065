"""`dfdsl sensitivity`: how much each named hardware value moves an output, and which conclusions flip."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from dfdsl import sensitivity
from dfdsl.cli.options import add_lowering_options, add_run_settings, compile_options, overrides
from dfdsl.cli.output import UsageError, emit, write_output
from dfdsl.driver import load_model
from dfdsl.sweep import SweepError, parse_values


def add_parser(sub) -> None:
    p = sub.add_parser("sensitivity", help="how much each hardware value moves a result, and what flips",
                       description="Scale each named hardware value from LO to HI times its value in the "
                                   "hardware file, the others fixed, and show how far the output moves "
                                   "(largest swing first) and which conclusions change inside the range, such as "
                                   "\"16 sockets beat 8\" (compared over --sockets).")
    p.add_argument("file", metavar="MODEL.dfl")
    p.add_argument("--params", metavar="P,P", required=True,
                   help="hardware values: short names (p2p_bandwidth, p2p_latency, launch_sync, hbm_bandwidth), "
                        "a number's own name (launch_sync_hardware_s) or a dotted key (memory.hbm.bandwidth_bytes_per_s)")
    p.add_argument("--range", metavar="LO,HI", default="0.5,2", help="factors to scale each value by (default 0.5,2)")
    p.add_argument("--output", metavar="NAME", default="tokens_per_s_per_user",
                   help="what to watch: a figure of the sweep CSV (tokens_per_s_per_user, tokens_per_s, "
                        "ms_per_token, peak_fraction, ...), looping_speedup or best_sockets")
    p.add_argument("--sockets", metavar="N,N", dest="compared_sockets",
                   help="socket counts to compare (default: half, the run's, and twice the run's)")
    p.add_argument("--steps", type=int, default=33, metavar="N", help="values tried across the range (default 33)")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object per parameter: the output at LO and HI, and a `flips` list")
    p.add_argument("--plot", metavar="FILE.png", help="also draw a tornado chart (needs matplotlib)")
    p.add_argument("-o", "--output-file", metavar="OUT", help="write the table or JSON here")
    add_run_settings(p, sockets=False)
    add_lowering_options(p)
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    path = Path(args.file)
    model = load_model(path, overrides(args), args.hardware or "")
    run_sockets = model.settings.sockets
    try:
        low, high = parse_values(args.range, float, "range")
        if args.steps < 2:
            raise SweepError("--steps needs at least 2 values")
        sockets = (parse_values(args.compared_sockets, int, "sockets") if args.compared_sockets else
                   sorted({max(1, run_sockets // 2), run_sockets, 2 * run_sockets}))
        if args.plot:
            sensitivity.require_matplotlib()
        results = sensitivity.sensitivity(model, parse_values(args.params, str, "params"), low, high,
                                          output=args.output, sockets=sockets, fusion=args.fusion,
                                          kernel_looping=compile_options(args).kernel_looping, steps=args.steps)
    except (SweepError, ValueError) as err:
        raise UsageError(str(err)) from None
    title = (f"{model.resolved.name}: {args.output} with each value scaled {low:g}× to {high:g}× "
             f"(batch {model.settings.batch}, context {model.settings.context:,}, {run_sockets} sockets; "
             f"compared: {', '.join(map(str, sockets))} sockets)")
    if args.json:
        emit(json.dumps([r.as_json() for r in results], indent=2), args.output_file, [path])
    else:
        emit(sensitivity.render_table(results, title), args.output_file, [path])
    if args.plot:
        write_output(Path(args.plot), sensitivity.tornado_png(results, title, low, high), [path],
                     option="--plot")
    return 0
