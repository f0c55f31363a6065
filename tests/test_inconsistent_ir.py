"""IR that parses but contradicts itself does not verify (E025), so no pass lowers it and no
simulator times it: a collective over another socket count than its program's, a graph sharded to
a degree other than its sockets, two tensors or buffers of one name, a target no machine has, a
tensor class no `place` block names. Each case is the printed IR of a tiny model with one line
changed, run through `dfdsl opt`."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

from fuzz.mutations import run_cli
from test_input_files import TINY


@functools.cache
def printed(stage: str, target: str = "sn40l") -> str:
    """The tiny model (2 sockets) printed at `stage` for `target`."""
    import tempfile

    folder = Path(tempfile.mkdtemp())
    (folder / "tiny.dfl").write_text(TINY, encoding="utf-8")
    outcome = run_cli(["lower", str(folder / "tiny.dfl"), "--emit", stage, "--target", target], seconds=60)
    assert outcome.code == 0, outcome.stderr
    return outcome.stdout


CASES = {
    "rdu.all_reduce over 3 sockets in a 2-socket program": (
        "rdu", "sn40l", "rdu.all_reduce {bytes = #cost.work<128*B>, sockets = 2 : i64}",
        "rdu.all_reduce {bytes = #cost.work<128*B>, sockets = 3 : i64}",
        "rdu.all_reduce: exchanges over 3 sockets in a program that runs on 2"),
    "nv.all_reduce over 4 GPUs in a 2-GPU program": (
        "nv", "dgx-h100", "{bytes = #cost.work<128*B>, gpus = 2 : i64}", "{bytes = #cost.work<128*B>, gpus = 4 : i64}",
        "nv.all_reduce: exchanges over 4 GPUs in a program that runs on 2"),
    "sockets = 3 with tp = 2": (
        "fused", "sn40l", "sockets = 2 : i64, tp = 2 : i64", "sockets = 3 : i64, tp = 2 : i64",
        "df.graph: tp = 2 with sockets = 3; a graph is sharded to its sockets (tp = sockets) or not yet (tp = 1)"),
    "two df.weight named embed": (
        "df", "sn40l", 'df.weight "lm_head"', 'df.weight "embed"',
        "df.graph @tiny declares the tensor 'embed' twice (df.weight and df.weight)"),
    "a cache named like a weight": (
        "df", "sn40l", 'df.kv_cache "layers.0.self_attn.k_cache"', 'df.kv_cache "embed"',
        "df.graph @tiny declares the tensor 'embed' twice (df.weight and df.kv_cache)"),
    "two rdu.buffer named embed": (
        "rdu", "sn40l", 'rdu.buffer "lm_head"', 'rdu.buffer "embed"',
        "rdu.program @tiny declares the buffer 'embed' twice (rdu.buffer and rdu.buffer)"),
    "an unknown target on df.graph": (
        "df", "sn40l", 'target = "sn40l"', 'target = "nope"', "df.graph: unknown target 'nope'; targets are"),
    "an unknown target on rdu.program": (
        "rdu", "sn40l", 'target = "sn40l"', 'target = "nope"', "rdu.program: unknown target 'nope'; targets are sn40l"),
    "a GPU target on rdu.program": (
        "rdu", "sn40l", 'target = "sn40l"', 'target = "dgx_h100"',
        "rdu.program: target 'dgx_h100' is a gpu machine, not a rdu one; targets are sn40l"),
    "an unknown tensor class in explicit_tiers": (
        "df", "sn40l", 'activations = "sram"', 'activations = "sram", explicit_tiers = ["weights", "foo"]',
        "df.graph: explicit_tiers holds 'foo', not a tensor class"),
}


@pytest.mark.parametrize(("stage", "target", "old", "new", "message"), CASES.values(), ids=CASES)
def test_inconsistent_ir_does_not_verify(stage, target, old, new, message, tmp_path):
    text = printed(stage, target)
    assert old in text
    path = tmp_path / "broken.mlir"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    outcome = run_cli(["opt", str(path)])
    assert outcome.code == 2 and f"error: {message}" in outcome.stderr and "[E025]" in outcome.stderr, outcome.stderr


@pytest.mark.parametrize("stage, target", [("df", "sn40l"), ("fused", "sn40l"), ("rdu", "sn40l"), ("nv", "dgx-h100")])
def test_the_unchanged_ir_verifies(stage, target, tmp_path):
    """The cases above fail because of their one change."""
    path = tmp_path / "tiny.mlir"
    path.write_text(printed(stage, target), encoding="utf-8")
    assert run_cli(["opt", str(path)]).code == 0


def test_sharding_to_an_explicit_degree_says_so_in_sockets(tmp_path):
    """`shard-tensor-parallel{sockets=1}` on a 2-socket graph leaves tp = sockets = 1, which verifies."""
    path = tmp_path / "tiny.mlir"
    path.write_text(printed("df"), encoding="utf-8")
    outcome = run_cli(["opt", str(path), "-p", "shard-tensor-parallel{sockets=1}"])
    assert outcome.code == 0, outcome.stderr
    assert "sockets = 1 : i64, tp = 1 : i64" in outcome.stdout


WRONG_TARGETS = {
    "df-to-nv for an RDU": ("fused", "dgx-h100", "place-memory{target=dgx_h100},df-to-nv{target=sn40l}",
                            "df-to-nv: `sn40l` is a rdu machine, not a gpu one; gpu targets are dgx_a100, dgx_h100, dgx_h100_nccl, dgx_h200 [E022]"),
    "df-to-nv for no machine": ("fused", "dgx-h100", "place-memory{target=dgx_h100},df-to-nv{target=nope}",
                                "df-to-nv: no bundled target is called `nope`; gpu targets are dgx_a100, dgx_h100, dgx_h100_nccl, dgx_h200 [E023]"),
    "df-to-rdu for a GPU, with an RDU's file": (
        "looped", "sn40l", f'place-memory,df-to-rdu{{target=dgx_h100 hardware="{Path(__file__).parent.parent}'
                           '/dfdsl/hardware/sn40l.toml"}',
        "df-to-rdu: `dgx_h100` is a gpu machine, not a rdu one; rdu targets are sn40l [E022]"),
}


@pytest.mark.parametrize(("stage", "target", "passes", "message"), WRONG_TARGETS.values(), ids=WRONG_TARGETS)
def test_a_pass_refuses_a_target_its_program_could_not_name(stage, target, passes, message, tmp_path):
    """Rather than make a program whose target is of the other kind (which would not verify)."""
    path = tmp_path / "in.mlir"
    path.write_text(printed(stage, target), encoding="utf-8")
    outcome = run_cli(["opt", str(path), "-p", passes])
    assert outcome.code == 2 and outcome.stderr.endswith(f"error: {message}\n"), outcome.stderr
