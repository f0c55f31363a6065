"""How well and how fast `dfdsl calibrate` recovers known parameters: points are timed by the
driver's simulate on a copy of each bundled machine with some values changed (the truth), then
fitted from the bundled file; prints each parameter's truth, base and fitted value, the RMS
residual, the leave-one-out RMS and the seconds the fit took (with its leave-one-out refits).

Run: .venv/bin/python benchmarks/calibrate.py
"""

from __future__ import annotations

import re
import tempfile
import time
from pathlib import Path

from dfdsl import calibrate
from dfdsl.driver import CompileOptions, Compiler, load_model
from dfdsl.hardware import hardware_text

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "examples"
CASES = {
    "sn40l": ({"launch_sync_hardware_s": 24e-6, "stream_efficiency": 0.8, "p2p_latency_s": 3e-6},
              "launch_cost,stream_efficiency,allreduce_latency"),
    "dgx_h100": ({"launch_sync_s": 3e-6, "stream_efficiency": 0.75, "host_per_token_s": 40e-6},
                 "launch_cost,stream_efficiency,host_cost"),
}
POINTS = [("llama3_1_8b.dfl", s, b, c) for s in (1, 2, 8) for b in (1, 8) for c in (1024, 8192)]


def main() -> None:
    for target, (truth, names) in CASES.items():
        with tempfile.TemporaryDirectory() as folder:
            text = hardware_text(target)[0]
            for key, value in truth.items():
                text = re.sub(rf"(?m)^({key}\s*=\s*)\S+", rf"\g<1>{value!r}", text)
            true_file = Path(folder) / "truth.toml"
            true_file.write_text(text)
            compiler, rows = Compiler(), ["model,target,sockets,batch,context,tokens,ms_per_token,source"]
            for name, sockets, batch, context in POINTS:
                settings = {"sockets": sockets, "batch": batch, "context": context, "tokens": 64, "target": target}
                model = load_model(MODELS / name, settings, str(true_file))
                ms = compiler.simulate(model, model.settings, CompileOptions(hardware=str(true_file))).report
                rows.append(f"{MODELS / name},{target},{sockets},{batch},{context},64,{ms['ms_per_token']!r},truth")
            csv = Path(folder) / "measured.csv"
            csv.write_text("\n".join(rows) + "\n")
            start = time.perf_counter()
            compiler = Compiler()
            points, skipped, base = calibrate.load_points(calibrate.read_measurements(csv), target, None, compiler)
            parameters = calibrate.resolve_parameters(base, names)
            predictor = calibrate.Predictor(points, parameters, CompileOptions(hardware=target), compiler)
            fit, _ = calibrate.fit(predictor, tolerance=0.001)
            seconds = time.perf_counter() - start
        print(f"{target}: {len(points)} points, {len(parameters)} parameters, fit and {len(points)} leave-one-out "
              f"refits in {seconds:.1f} s")
        for p in fit.parameters:
            true = truth.get(p.key.rsplit(".", 1)[-1], p.base)
            print(f"  {p.name:18} truth {true:<10.4g} base {p.base:<10.4g} fitted {p.fitted:<10.4g} "
                  f"({p.fitted / true - 1:+.2%}){'' if p.pinned else '  not pinned: ' + p.why}")
        print(f"  RMS residual {fit.rms:.3%} (base {fit.base_rms:.1%}), leave-one-out {fit.loo_rms or 0:.3%}")


if __name__ == "__main__":
    main()
