"""`dfdsl check`: parse and check a model and generate its df IR, nothing else."""

from __future__ import annotations

import argparse
from pathlib import Path

from dfdsl.cli.options import add_run_settings, overrides
from dfdsl.dialects import df
from dfdsl.driver import load_model
from dfdsl.report import machine_label


def add_parser(sub) -> None:
    p = sub.add_parser("check", help="parse and verify a model, nothing else",
                       description="Parse a .dfl file, check it, and generate its df IR (which must verify): "
                                   "its decode step, and its prefill and draft model when the run has them.")
    p.add_argument("file", metavar="MODEL.dfl")
    add_run_settings(p)
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    model = load_model(Path(args.file), overrides(args))
    model.module.verify()
    layer_calls = sum(1 for op in model.module.walk() if isinstance(op, df.CallOp))
    run = model.resolved.run
    draft = model.draft()
    # A request's prefill, and a speculative round's verification, run the prefill graph.
    if run.prompt or draft is not None:
        for each in (model, draft):
            if each is not None:
                each.prefill_module().verify()
    extra = (f", prompt {run.prompt}" if run.prompt else "") + (f", draft {draft.resolved.name}" if draft else "")
    print(f"{args.file}: ok: model {model.resolved.name}, {layer_calls} layer calls, "
          f"{len(model.resolved.layers)} kind(s) of layer, run at batch {run.batch}, "
          f"context {run.context}{extra}, on {machine_label(run.sockets, model.hardware.unit, run.target)}")
    return 0
