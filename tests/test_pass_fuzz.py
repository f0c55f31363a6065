"""Fuzzing the passes: random valid `df` programs through every order of passes the pipeline allows.

Each output verifies, prints and parses back; sharding divides each split tensor's bytes by the
socket count (the KV tensors by the KV heads when there are fewer than sockets); kernel looping
keeps the kernel invocations per step and the declared bytes and turns each run of identical
layers into one launch; df-to-rdu's FLOPs and bytes per step are the same with and without
kernel looping. Any other order of passes (as `dfdsl opt -p` allows) either works, with output
that verifies and has the form of the stage its pass produces, or stops with a
DiagnosticException, never another exception. IR printed at every stage and then broken (a line
deleted, moved or repeated, another symbol, tier, number or op name) goes through `dfdsl opt` with
random passes to exit 0, or exit 2 with a coded error, never an internal error.
benchmarks/fuzz_passes.py runs the same checks on 1,000+ programs.
"""

from __future__ import annotations

import functools
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fuzz.mutations import (
    IR_PASSES, PASS_ORDERS, PassOrder, Program, check_any_order, check_looping_keeps_work, check_pipeline, describe,
    ir_seeds, judge_opt, mutate_ir, random_program, run_cli, split_factor,
)

programs = st.integers(0, 2**32 - 1).map(lambda n: random_program(random.Random(n)))
FUZZ = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(program=programs, order=st.sampled_from(PASS_ORDERS))
def test_random_programs_lower_through_every_pass_order(program, order):
    try:
        check_pipeline(program, order)
    except Exception as err:
        raise AssertionError(describe(program, order)) from err


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(program=programs, fusion=st.sampled_from(("none", "block", "layer")),
       batch=st.integers(1, 64), context=st.integers(1, 5000))
def test_kernel_looping_keeps_the_work_of_a_step(program, fusion, batch, context):
    check_looping_keeps_work(program, fusion, batch, context)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(program=programs, seed=st.integers(0, 2**32 - 1))
def test_any_order_of_passes_works_or_stops_with_a_diagnostic(program, seed):
    check_any_order(program, random.Random(seed))


@pytest.mark.parametrize("order", PASS_ORDERS, ids=lambda o: o.describe())
def test_every_pass_order_on_a_mixed_stack(order):
    stack = ("llama", "llama", "mla_moe", "mla_moe")
    check_pipeline(Program(stack, {"sockets": 2, "kv_heads": 1}), order)


def test_a_wrong_split_would_be_caught(monkeypatch):
    """The sharding check is not vacuous: with 4 sockets and 2 KV heads, the KV tensors are halved
    while the query projection is quartered, and a check expecting no split fails."""
    program = Program(("llama",), {"sockets": 4, "heads": 8, "kv_heads": 2})
    assert split_factor("layers.0.wq", program) == 4
    assert split_factor("layers.0.wk", program) == 2
    assert split_factor("layers.0.attn_norm", program) == 1
    check_pipeline(program, PassOrder(True, "layer", 1, True))
    monkeypatch.setattr("fuzz.mutations.split_factor", lambda name, program: 1)
    with pytest.raises(AssertionError, match="bytes became"):
        check_pipeline(program, PassOrder(True, "layer", 1, True))


@functools.cache
def seeds() -> list[tuple[str, str]]:
    return ir_seeds()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1))
def test_mutated_ir_through_dfdsl_opt_never_makes_an_internal_error(seed, tmp_path_factory):
    rng = random.Random(seed)
    name, text = rng.choice(seeds())
    changes = []
    for _ in range(rng.choice((1, 1, 2))):
        text, change = mutate_ir(text, rng)
        changes.append(change)
    passes = ",".join(rng.choice(IR_PASSES) for _ in range(rng.randint(1, 4)))
    path = tmp_path_factory.mktemp("ir") / "mutated.mlir"
    path.write_text(text)
    problem = judge_opt(run_cli(["opt", str(path), "-p", passes]))
    assert problem is None, f"{name}, {'; '.join(changes)}, -p {passes}: {problem}"


def test_the_ir_fuzz_judge_is_not_vacuous(tmp_path):
    """Runs refused with a code pass, located or not; a run ending in an internal error does not."""
    path = tmp_path / "looped.mlir"
    path.write_text(next(text for name, text in seeds() if name.endswith(" at looped")))
    refused = run_cli(["opt", str(path), "-p", "fuse"])
    assert refused.code == 2 and "[E024]" in refused.stderr and judge_opt(refused) is None
    path.write_text("builtin.module {\n  df.graph\n")
    unparsed = run_cli(["opt", str(path), "-p", "fuse"])
    assert unparsed.code == 2 and "[E026]" in unparsed.stderr and judge_opt(unparsed) is None
    internal = type(refused)(1, "", "dfdsl: internal error: KeyError: 0\nThis is a bug in dfdsl.\n")
    assert judge_opt(internal) == "exit 1: dfdsl: internal error: KeyError: 0"
