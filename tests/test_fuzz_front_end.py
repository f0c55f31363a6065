"""Fuzzing the front end: `dfdsl check` on broken input exits 0, or 2 with a located diagnostic.

Never 1 (an internal error), never an uncaught exception, never a hang. The mutated inputs come
from tests/fuzz/mutations.py, which benchmarks/fuzz_front_end.py runs 10,000 times; here a
bounded hypothesis test runs ~200, and hand-written cases pin each kind of damage. The tests at
the end reproduce the crashes the fuzzer found, now fixed.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fuzz.mutations import MUTATORS, Outcome, check_case, judge, make_case, run_cli, seeds

SEEDS = seeds()
LLAMA_8B = (Path(__file__).parent.parent / "examples" / "llama3_1_8b.dfl").read_text(encoding="utf-8")




def check_text(data: bytes | str, tmp_path: Path, name: str = "model.dfl") -> tuple[Outcome, str | None]:
    path = tmp_path / name
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    outcome = run_cli(["check", str(path)], seconds=60)
    return outcome, judge(outcome)


def assert_clean(outcome: Outcome, problem: str | None) -> None:
    assert problem is None, f"{problem}\n--- stderr ---\n{outcome.stderr}"


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.sampled_from(SEEDS), number=st.integers(0, 2**32 - 1))
def test_mutated_models_exit_0_or_2_with_a_located_diagnostic(seed, number):
    case = make_case(seed, number)
    with tempfile.TemporaryDirectory() as tmp:
        outcome, problem = check_case(case, Path(tmp), seconds=60)
    assert problem is None, (
        f"{case.seed.name} mutated with random seed {number} ({', '.join(case.mutators)}): {problem}\n"
        f"--- stderr ---\n{outcome.stderr}"
    )


@pytest.mark.parametrize("seed", SEEDS, ids=lambda s: s.name)
def test_every_seed_is_accepted_unmutated(seed, tmp_path):
    """The seeds are valid (a library module alone has no model: E016), so the mutations are what fail."""
    outcome, problem = check_text(seed.text, tmp_path)
    assert_clean(outcome, problem)
    assert outcome.code == 0 or "defines no model" in outcome.stderr


@pytest.mark.parametrize("name", sorted(MUTATORS))
def test_each_mutator_changes_its_input(name):
    import random

    text = SEEDS[0].text
    assert any(MUTATORS[name](text, random.Random(n)) != text for n in range(5))


BROKEN = {
    "empty file": b"",
    "only a comment": b"# nothing here\n",
    "byte order mark": b"\xef\xbb\xbf" + LLAMA_8B.encode(),
    "NUL byte": LLAMA_8B.encode().replace(b"model", b"mo\x00del", 1),
    "Latin-1": b"# Mod\xe8le\n" + LLAMA_8B.encode(),
    "lone surrogate": b"const a = 1 # \xed\xa0\x80\n",
    "random bytes": bytes(range(256)) * 4,
    "truncated in a block": LLAMA_8B[: LLAMA_8B.index("ffn")].encode(),
    "unbalanced brace": LLAMA_8B.replace("}", "", 1).encode(),
    "extra braces": LLAMA_8B.replace("{", "{{{{", 1).encode(),
    "5000 parentheses": f"const a = {'(' * 5000}1{')' * 5000}\n{LLAMA_8B}".encode(),
    "5000 minus signs": f"const a = {'-' * 5000}1\n{LLAMA_8B}".encode(),
    "a sum of 5000 terms": f"const a = {'+'.join(['1'] * 5000)}\n{LLAMA_8B}".encode(),
    "5000 unclosed parentheses": f"const a = {'(' * 5000}1\n".encode(),
    "2^63": LLAMA_8B.replace("hidden = 4096", f"hidden = {2**63}").encode(),
    "10^30 layers": LLAMA_8B.replace("layers = 32", f"layers = {10**30}").encode(),
    "2^62 times 2": LLAMA_8B.replace("hidden = 4096", f"hidden = {2**62} * 2").encode(),
    "zero heads": LLAMA_8B.replace("heads = 32", "heads = 0").encode(),
    "negative ffn": LLAMA_8B.replace("ffn = 14336", "ffn = -1").encode(),
    "a 100,000-character line": ("# " + "x" * 100_000 + "\n" + LLAMA_8B).encode(),
    "a 100,000-character name": LLAMA_8B.replace("llama3_1_8b :", "x" * 100_000 + " :").encode(),
    "a keyword as a name": LLAMA_8B.replace("hidden = 4096", "model = 4096").encode(),
    "a model in a model": LLAMA_8B.replace("dtype = bf16", "model m : llama { }").encode(),
    "vertical tab": b"const a = 1\x0b\n",
    "carriage returns only": LLAMA_8B.replace("\n", "\r").encode(),
    "import std..llama": LLAMA_8B.replace("import std.llama", "import std..llama").encode(),
    "import of a directory": LLAMA_8B.replace("import std.llama", "import std").encode(),
    "import of the bundled package": LLAMA_8B.replace("import std.llama", "import std.__init__").encode(),
    "layer names an operator": b"layer linear() { }\n" + LLAMA_8B.encode(),
    "graph used as a layer": LLAMA_8B.replace("llama3_1_8b : llama", "m : self_attn").encode(),
}


@pytest.mark.parametrize("data", BROKEN.values(), ids=BROKEN.keys())
def test_hand_broken_models_exit_0_or_2_with_a_located_diagnostic(data, tmp_path):
    outcome, problem = check_text(data, tmp_path)
    assert_clean(outcome, problem)


def test_judge_calls_an_internal_error_a_crash():
    crash = Outcome(1, "", "Traceback ...\ndfdsl: internal error: ValueError: boom\nThis is a bug in dfdsl.\n")
    assert judge(crash) == "exit 1: dfdsl: internal error: ValueError: boom"
    unlocated = Outcome(2, "", "dfdsl: error: something [E005]\n")
    assert judge(unlocated).startswith("exit 2 without a located diagnostic")
    assert judge(Outcome(2, "", "m.dfl:3:4: error: unknown name `x` [E003]\n")) is None


# -- known crashes: minimal reproducers, each to flip when the front end is fixed ----------------


def test_an_integer_literal_of_5000_digits_is_an_error(tmp_path):
    outcome, problem = check_text(f"const a = {'9' * 5000}\n{LLAMA_8B}", tmp_path)
    assert_clean(outcome, problem)
    assert re.search(r"model.dfl:1:11: error: .* \[E006\]", outcome.stderr)


def test_an_import_with_a_name_too_long_for_the_file_system_is_an_error(tmp_path):
    outcome, problem = check_text(f"import std.{'x' * 300}\n{LLAMA_8B}", tmp_path)
    assert_clean(outcome, problem)
    assert "[E013]" in outcome.stderr


def test_a_socket_count_out_of_range_in_the_target_call_is_located(tmp_path):
    outcome, problem = check_text(LLAMA_8B.replace("sn40l(sockets = 8)", "sn40l(sockets = 0)"), tmp_path)
    assert_clean(outcome, problem)
    assert "model.dfl:11:" in outcome.stderr and "[E019]" in outcome.stderr


def test_a_form_feed_in_a_comment_does_not_shift_the_echoed_line(tmp_path):
    source = LLAMA_8B.replace("# Llama 3.1 8B", "# Llama\x0c3.1 8B").replace("vocab = 128256", "vocab 128256")
    outcome, _ = check_text(source, tmp_path)
    assert outcome.code == 2
    located, echoed = outcome.stderr.split("\n")[:2]
    line = int(located.split(":")[1])
    assert echoed.startswith(f"  {line} | ") and "vocab 128256" in echoed


def test_an_unexpected_control_character_is_shown_escaped(tmp_path):
    outcome, problem = check_text(b"const a = 1\x0b\n", tmp_path)
    assert_clean(outcome, problem)
    first = outcome.stderr.split("\n")[0]
    assert first.isprintable(), repr(first)
