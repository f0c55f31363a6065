"""Wall time of the whole pipeline, stage by stage: parse, check, IR generation, each lowering pass,
and the simulation of 128 decode tokens, for every example at 8 and 16 sockets; then how the
simulation's time grows with the tokens simulated and with the layers of a model.

Run: .venv/bin/python benchmarks/pipeline.py [--repeat N]
Times are the best of N runs, in milliseconds. Configurations that cannot be built (too little
memory, heads that do not divide over the sockets) are listed with the reason instead.
"""

from __future__ import annotations

import argparse
import re
import tempfile
import time
from pathlib import Path

from front_end import best_of  # benchmarks/ is on the path when a benchmark runs as a script
from xdsl.utils.exceptions import DiagnosticException

from dfdsl.elaborate import elaborate
from dfdsl.irgen import generate
from dfdsl.loader import load
from dfdsl.lowering.pipeline import RDU_PIPELINE, LoweringOptions, run_passes
from dfdsl.hardware import bundled_targets, load_hardware
from dfdsl.sim.interpreter import simulate

ROOT = Path(__file__).resolve().parent.parent
SOCKETS = (8, 16)
TOKENS = 128
PASS_COLUMNS = ("shard-tensor-parallel", "fuse", "kernel-looping", "place-memory", "df-to-rdu")


def lower(path: Path, overrides: dict, kernel_looping: bool = True):
    """Front end and lowering once, with the seconds of each stage: (stages, module, hardware)."""
    stages: dict[str, float] = {}
    start = time.perf_counter()
    program = load(path)
    stages["parse"] = time.perf_counter() - start
    start = time.perf_counter()
    model = elaborate(program, overrides, bundled_targets())
    stages["check"] = time.perf_counter() - start
    start = time.perf_counter()
    module = generate(model)
    stages["irgen"] = time.perf_counter() - start
    options = LoweringOptions(sockets=model.run.sockets, kernel_looping=kernel_looping, target=model.run.target)
    run_passes(module, RDU_PIPELINE.passes_to("rdu", options), lambda p, _, seconds: stages.__setitem__(p.name, seconds))
    return stages, module, load_hardware(model.run.target)


def pipeline_table(repeat: int) -> None:
    columns = ("parse", "check", "irgen", *PASS_COLUMNS, "simulate")
    short = ("parse", "check", "irgen", "shard", "fuse", "loop", "place", "rdu", "sim")
    print(f"Whole pipeline, fusion layer, kernel looping on, {TOKENS} tokens (ms, best of {repeat})")
    print(f"{'example':<15} {'sockets':>7} " + " ".join(f"{c:>7}" for c in short) + f" {'total':>8}")
    notes = []
    for path in sorted((ROOT / "examples").glob("*.dfl")):
        for sockets in SOCKETS:
            overrides = {"sockets": sockets, "tokens": TOKENS}
            best: dict[str, float] = {}
            try:
                for _ in range(repeat):
                    stages, module, hardware = lower(path, overrides)
                    start = time.perf_counter()
                    simulate(module, hardware)
                    stages["simulate"] = time.perf_counter() - start
                    best = {k: min(v, best.get(k, v)) for k, v in stages.items()}
            except DiagnosticException as err:
                notes.append(f"{path.stem} at {sockets} sockets: {err}")
                print(f"{path.stem:<15} {sockets:>7}   (cannot be built; see below)")
                continue
            cells = " ".join(f"{best.get(c, 0.0) * 1e3:7.1f}" for c in columns)
            print(f"{path.stem:<15} {sockets:>7} {cells} {sum(best.values()) * 1e3:8.1f}")
    for note in notes:
        print(f"  {note}")


def tokens_growth(repeat: int) -> None:
    path = ROOT / "examples" / "llama3_1_8b.dfl"
    print(f"\nSimulation time against tokens simulated: {path.stem}, 8 sockets (ms, best of {repeat})")
    print(f"{'tokens':>7} {'looped':>8} {'unlooped':>9}")
    modules = {looped: lower(path, {"sockets": 8}, looped)[1:] for looped in (True, False)}
    for tokens in (32, 128, 512, 2048):
        times = [best_of(repeat, lambda m=m, h=h: simulate(m, h, tokens=tokens))[0]
                 for m, h in (modules[True], modules[False])]
        print(f"{tokens:>7} {times[0] * 1e3:8.1f} {times[1] * 1e3:9.1f}")


def layers_growth(repeat: int) -> None:
    path = ROOT / "examples" / "llama3_1_70b.dfl"
    text = path.read_text(encoding="utf-8")
    print(f"\nTime against layers: {path.stem} with its layers changed, 8 sockets, {TOKENS} tokens "
          f"(ms, best of {repeat})")
    print(f"{'layers':>7} {'lower looped':>13} {'sim looped':>11} {'lower unlooped':>15} {'sim unlooped':>13}")
    with tempfile.TemporaryDirectory() as folder:
        for layers in (10, 20, 40, 80):
            variant = Path(folder) / f"llama3_1_70b_{layers}.dfl"
            variant.write_text(re.sub(r"\blayers = \d+", f"layers = {layers}", text), encoding="utf-8")
            cells = []
            for looped in (True, False):
                lower_s, (stages, module, hardware) = best_of(repeat, lambda: lower(variant, {"sockets": 8}, looped))
                sim_s, _ = best_of(repeat, lambda: simulate(module, hardware))
                cells += [lower_s, sim_s]
            widths = (13, 11, 15, 13)
            print(f"{layers:>7} " + " ".join(f"{s * 1e3:{w}.1f}" for s, w in zip(cells, widths)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    pipeline_table(args.repeat)
    tokens_growth(args.repeat)
    layers_growth(args.repeat)


if __name__ == "__main__":
    main()
