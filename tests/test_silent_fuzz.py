"""Fuzzing for silent wrong answers (tests/fuzz/silent.py): hardware values given as a file or with
`--set`, pass pipelines for `dfdsl opt -p`, and mutated IR, each judged by a check that shares no
code with what it checks. Every case must end in a clean error or a success; never a crash, a
hang, or a silent acceptance. A few dozen cases each here; benchmarks/fuzz_silent.py runs
thousands and prints the count of each outcome.
"""

from __future__ import annotations

import functools
import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fuzz import silent
from fuzz.mutations import IR_PASSES, Outcome, ir_seeds, run_cli
from test_inconsistent_ir import CASES, printed

FEW = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                      HealthCheck.function_scoped_fixture])
seeds = st.integers(0, 2**32 - 1)


@FEW
@given(seed=seeds)
def test_hardware_values_are_refused_or_give_a_true_report(seed, tmp_path_factory):
    case = silent.hardware_case(random.Random(seed))
    outcome, why = silent.run_hardware_case(case, tmp_path_factory.mktemp("hw"))
    assert outcome in ("clean error", "success"), f"{case.describe()}: {outcome}: {why}"


@functools.cache
def tiny_ir() -> Path:
    import tempfile

    path = Path(tempfile.mkdtemp()) / "tiny.mlir"
    path.write_text(printed("df"), encoding="utf-8")
    return path


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=seeds)
def test_pass_pipelines_are_refused_or_well_formed(seed):
    spec = silent.random_pipeline(random.Random(seed))
    outcome, why = silent.run_pipeline_case(spec, tiny_ir())
    assert outcome in ("clean error", "success"), f"-p {spec!r}: {outcome}: {why}"


@functools.cache
def all_ir_seeds() -> list[tuple[str, str]]:
    return ir_seeds()


@FEW
@given(seed=seeds)
def test_mutated_ir_is_refused_or_consistent(seed, tmp_path_factory):
    rng = random.Random(seed)
    name, text = rng.choice(all_ir_seeds())
    text, change = silent.mutate_consistency(text, rng)
    passes = ",".join(rng.choice(IR_PASSES) for _ in range(rng.randint(0, 3)))
    outcome, why = silent.run_ir_case(text, passes, tmp_path_factory.mktemp("ir") / "mutated.mlir")
    assert outcome in ("clean error", "success"), f"{name}, {change}, -p {passes}: {outcome}: {why}"


# -- the checks have teeth ------------------------------------------------------------------------


def test_the_hardware_check_finds_what_is_wrong():
    assert silent.implausible(silent.HardwareCase("sn40l", (), False)) == []
    assert silent.implausible(silent.HardwareCase("dgx_h100", (), True)) == []
    wrong = silent.HardwareCase("sn40l", (("memory.hbm", "bandwidth_bytes_per_s", "nan"),
                                          ("assumptions", "stream_efficiency", "1.5"),
                                          ("chip", "pcus", "1040.5"), ("memory.ddr", "bandwidth_bytes_per_s", "5e12")),
                                False)
    found = " ".join(silent.implausible(wrong))
    for needle in ("bandwidth_bytes_per_s = nan is not a finite", "stream_efficiency = 1.5 is a fraction above one",
                   "pcus = 1040.5 is not a whole count"):
        assert needle in found
    slower_hbm = silent.HardwareCase("sn40l", (("memory.hbm", "bandwidth_bytes_per_s", "5e10"),), True)
    assert silent.implausible(slower_hbm) == ["DDR (100000000000.0 bytes/s) is faster than HBM (50000000000.0)"]
    assert silent.untrue_figures([{"ms_per_token": float("nan"), "peak_fraction": 4.16}]) == [
        "ms_per_token = nan", "ms_per_token = nan", "peak_fraction = 4.16 (above 100% of the roofline)"]


def test_a_run_that_prints_nan_would_be_a_silent_acceptance(monkeypatch, tmp_path):
    """Were a NaN to reach the printed report, the fuzz would call it silent acceptance."""
    import json

    case = silent.HardwareCase("sn40l", (("assumptions", "stream_efficiency", "0.5"),), False)
    monkeypatch.setattr(silent, "run_cli", lambda argv, seconds: Outcome(
        0, json.dumps({"ms_per_token": float("nan"), "peak_fraction": 0.5}), ""))
    assert silent.run_hardware_case(case, tmp_path)[0] == "silent acceptance"


def test_the_pipeline_check_finds_what_is_malformed():
    assert silent.pipeline_problems("shard-tensor-parallel{sockets=2},fuse{mode=layer}") == []
    assert silent.pipeline_problems("fuse{mode=layer mode=none}") == ["an option given twice in {mode=layer mode=none}"]
    assert silent.pipeline_problems("fuse{") == ["a { or a quote left open"]
    assert silent.pipeline_problems("fuse,") == ["an empty pass between commas"]


@pytest.mark.parametrize(("stage", "target", "old", "new", "message"), CASES.values(), ids=CASES)
def test_the_ir_check_finds_each_inconsistency_the_verifier_refuses(stage, target, old, new, message):
    from xdsl.parser import Parser

    from dfdsl.lowering.pipeline import context

    text = printed(stage, target)
    assert silent.consistency_problems(Parser(context(), text).parse_module()) == []
    broken = text.replace(old, new, 1)
    parse = Parser(context(), broken).parse_module  # parsed, not verified: the check must see it itself
    assert silent.consistency_problems(parse()) != []


def test_the_fuzz_knows_the_targets():
    from dfdsl.hardware import bundled_kind, bundled_targets

    assert silent.TARGET_KINDS == {name: bundled_kind(name) for name in bundled_targets()}


def test_argparse_refusing_an_option_is_a_clean_error():
    outcome = run_cli(["opt", str(tiny_ir()), "-p", "-2sockets"])
    assert silent.classify(outcome, [])[0] == "clean error"
