"""Fuzz the passes: random valid `df` programs through every pass order; nothing may break the IR.

Run: .venv/bin/python benchmarks/fuzz_passes.py [--programs N] [--seed S] [--jobs J]

Program i is `random_program(random.Random(S + i))` (tests/fuzz/mutations.py: random layer kinds
and shapes, 1, 2, 4 or 8 sockets that divide them) lowered through pass order i mod 36 (shard or
not, fuse none/block/layer, kernel looping 0, 1 or 2 times, down to rdu or not). After every pass
the module must verify, print and parse back, and the pass's invariant must hold (sharding divides
split bytes by N, kernel looping keeps invocations and declared bytes); when the order reaches
rdu, the same order with and without kernel looping must give the same FLOPs and bytes per step
at a random batch and context. Then 1 to 5 passes in a random order (what `dfdsl opt -p` allows)
must each work or stop with a DiagnosticException. Prints the counts and every failure with its
reproducer; exits 1 when anything failed.
"""

from __future__ import annotations

import argparse
import collections
import math
import multiprocessing
import random
import sys
import time
import traceback
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from fuzz.mutations import PASS_ORDERS, check_any_order, check_pipeline, describe, random_program  # noqa: E402


def fuzz_one(number: int) -> tuple[int, str, str, list[str]]:
    """(number, outcome, reproducer, any-order log); outcome is "ok" or the kind of failure."""
    from xdsl.utils.exceptions import DiagnosticException, VerifyException

    from dfdsl.errors import VerificationError

    rng = random.Random(number)
    program = random_program(rng)
    order = PASS_ORDERS[number % len(PASS_ORDERS)]
    batch, context = rng.randint(1, 64), rng.randint(1, 8192)
    reproducer = f"seed {number}: {describe(program, order)} batch={batch} context={context}"
    try:
        totals = check_pipeline(program, order, batch, context)
        if totals is not None:
            twin = replace(order, loops=0 if order.loops else 1)
            other = check_pipeline(program, twin, batch, context, print_parse=False)
            assert other is not None
            for key in totals:
                assert math.isclose(totals[key], other[key], rel_tol=1e-12), (
                    f"{key} per step: {totals[key]} with {order.loops} kernel looping, "
                    f"{other[key]} with {twin.loops}")
        log = check_any_order(program, rng)
    except (VerifyException, VerificationError) as err:
        return number, "verifier failure", f"{reproducer}\n{err}", []
    except AssertionError as err:
        kind = "verifier failure" if "does not verify" in str(err) else "invariant failure"
        return number, kind, f"{reproducer}\n{err}", []
    except DiagnosticException as err:
        return number, "refused a valid program", f"{reproducer}\n{err}", []
    except Exception:
        return number, "crash", f"{reproducer}\n{traceback.format_exc()}", []
    return number, "ok", reproducer, log


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--programs", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0, help="the first program's random seed")
    parser.add_argument("--jobs", type=int, default=max(1, (multiprocessing.cpu_count() or 1)))
    args = parser.parse_args()

    numbers = range(args.seed, args.seed + args.programs)
    outcomes: collections.Counter[str] = collections.Counter()
    any_order: collections.Counter[str] = collections.Counter()
    failures = []
    start = time.perf_counter()
    with multiprocessing.Pool(args.jobs) as pool:
        for done, (number, outcome, reproducer, log) in enumerate(pool.imap_unordered(fuzz_one, numbers), 1):
            outcomes[outcome] += 1
            for line in log:
                name, what = line.split(": ", 2)[:2]
                any_order[f"{name} {what}"] += 1
            if outcome != "ok":
                failures.append(reproducer)
                print(f"{outcome}: {reproducer}", flush=True)
            if done % 100 == 0:
                print(f"... {done} programs, {time.perf_counter() - start:.0f} s", flush=True)
    elapsed = time.perf_counter() - start
    print(f"{args.programs} programs in {elapsed:.1f} s ({args.programs / elapsed:.2f}/s, {args.jobs} jobs), "
          f"{len(PASS_ORDERS)} pass orders: " + ", ".join(f"{k}: {v}" for k, v in sorted(outcomes.items())))
    print("random-order passes: " + ", ".join(f"{k}: {v}" for k, v in sorted(any_order.items())))
    print(f"verifier failures: {outcomes['verifier failure']}, invariant failures: {outcomes['invariant failure']}, "
          f"crashes: {outcomes['crash']}, valid programs refused: {outcomes['refused a valid program']}")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
