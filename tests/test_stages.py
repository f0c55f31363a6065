"""Stage contracts and legality: what the verifier refuses, which stage a module meets, what each
pass does with a module of every stage (its work, or one `LoweringError` with its code, and exit 2
from `dfdsl opt`, never an internal error), and every example lowered with each pass's output
checked against the contract of the stage it produces."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from xdsl.context import Context
from xdsl.dialects.builtin import IntegerAttr, ModuleOp
from xdsl.parser import Parser
from xdsl.utils.exceptions import VerifyException

import df_models
from dfdsl.cli import main
from dfdsl.dialects import df
from dfdsl.elaborate import check_file
from dfdsl.irgen import generate
from dfdsl.errors import LoweringError, VerificationError
from dfdsl.lowering.pipeline import (
    GPU_PIPELINE, PASSES, RDU_PIPELINE, LoweringOptions, context, make_pass, pass_class, run_passes,
)
from dfdsl.lowering.stages import BrokenOutputError, Stage, StagedPass, StageError, apply_checked, check_stage
from dfdsl.sim.interpreter import simulate

ROOT = Path(__file__).parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.dfl"))

SPECS = {
    "df": [],
    "sharded": ["shard-tensor-parallel"],
    "fused": ["shard-tensor-parallel", "fuse"],
    "looped": ["shard-tensor-parallel", "fuse", "kernel-looping"],
    "placed": ["shard-tensor-parallel", "fuse", "kernel-looping", "place-memory"],
    "rdu": ["shard-tensor-parallel", "fuse", "kernel-looping", "place-memory", "df-to-rdu"],
    "gpu-fused": ["shard-tensor-parallel", "gpu-partition"],
    "nv": ["shard-tensor-parallel", "gpu-partition", "place-memory", "df-to-nv"],
}
"""A tiny Llama over 2 sockets, lowered to each stage of both pipelines."""

MEETS = {
    "df": {Stage.DF, Stage.SHARDED},
    "sharded": {Stage.SHARDED},
    # The front end gives every weight and cache a tier, so fused IR already meets `placed`.
    "fused": {Stage.FUSED, Stage.LOOPED, Stage.PLACED},
    "looped": {Stage.LOOPED, Stage.PLACED},
    "placed": {Stage.LOOPED, Stage.PLACED},
    "rdu": {Stage.RDU},
    "gpu-fused": {Stage.FUSED, Stage.LOOPED, Stage.PLACED},
    "nv": {Stage.NV},
}

OK = "ok"
E024, E022 = "E024", "E022"
PASS_RESULTS = {
    "shard-tensor-parallel": {"df": OK},
    "fuse": {"df": OK, "sharded": OK},
    # A looped module needs another target rather than another pass, so gpu-partition says that.
    "gpu-partition": {"df": OK, "sharded": OK, "looped": E022, "placed": E022},
    "kernel-looping": {"fused": OK, "looped": OK, "placed": OK, "gpu-fused": OK},
    "place-memory": {s: OK for s in ("df", "sharded", "fused", "looped", "placed", "gpu-fused")},
    "df-to-rdu": {"fused": OK, "looped": OK, "placed": OK},
    "df-to-nv": {"gpu-fused": OK, "looped": E022, "placed": E022},
}
"""What each pass does with the module of each stage: its work, or the code of its error (E024
where the table says nothing)."""

_TEXTS: dict[str, str] = {}


def stage_module(name: str) -> ModuleOp:
    """A fresh copy of the tiny Llama at stage `name` (lowered once, then parsed back)."""
    if name not in _TEXTS:
        module = df_models.tiny_llama(layers=3, sockets=2)
        run_passes(module, [make_pass(p) for p in SPECS[name]])
        _TEXTS[name] = str(module)
    return parse(_TEXTS[name])


def parse(text: str) -> ModuleOp:
    module = Parser(context(), text).parse_module()
    module.verify()
    return module


# -- the verifier ---------------------------------------------------------------------------------

T = "!df.tensor<[B, 64], bf16>"
W = "!df.tensor<[64, 64], bf16, hbm>"
GRAPH = ('df.graph @g attributes {activations = "sram", batch = 1 : i64, context = 8 : i64, tokens = 1 : i64, '
         'sockets = 1 : i64, tp = 1 : i64, target = "sn40l"}')
LAYER = f"""  df.layer @layer(%x: {T}, %w: {W}) -> {T} {{
    %h = df.linear %x, %w : ({T}, {W}) -> {T}
    df.return %h : {T}
  }}
"""


def graph_module(body: str, defs: str = "") -> str:
    """A module of `defs` (layers, kernels) and a graph of the input %x, the weight %w and `body`."""
    return (f'builtin.module {{\n{defs}  {GRAPH} {{\n    %x = df.input "x" : {T}\n'
            f'    %w = df.weight "w" : {W}\n{body}  }}\n}}\n')


RDU_CALL = """builtin.module {
  rdu.program @m attributes {target = "sn40l", batch = 1 : i64, context = 8 : i64, tokens = 1 : i64, sockets = 1 : i64, pcus_per_socket = 1040 : i64, pmus_per_socket = 1040 : i64, sram_bytes_per_socket = 520000000 : i64} {
    %x = rdu.buffer "x" kind input : !rdu.buffer<[B, 64], bf16, sram>
    %y = rdu.call @nope(%x) : (!rdu.buffer<[B, 64], bf16, sram>) -> !rdu.buffer<[B, 64], bf16, sram>
    rdu.output %y : !rdu.buffer<[B, 64], bf16, sram>
  }
}
"""

NV_LAUNCH = """builtin.module {
  nv.program @m attributes {target = "dgx_h100", batch = 1 : i64, context = 8 : i64, tokens = 1 : i64, gpus = 1 : i64} {
    %x = nv.buffer "x" {kind = "input"} : !nv.buffer<[B, 64], bf16, hbm>
    %y = nv.launch @nope(%x) : (!nv.buffer<[B, 64], bf16, hbm>) -> !nv.buffer<[B, 64], bf16, hbm>
    nv.output %y : !nv.buffer<[B, 64], bf16, hbm>
  }
}
"""

INVALID = {
    "launch-nope": (graph_module(f"    %y = df.launch @nope(%x) : ({T}) -> {T}\n    df.output %y : {T}\n"),
                    "df.launch @nope: the module has no df.kernel @nope"),
    "call-nope": (graph_module(f"    %y = df.call @nope(%x, %w) : ({T}, {W}) -> {T}\n    df.output %y : {T}\n"),
                  "df.call @nope: the module has no df.layer @nope"),
    "rdu-call-nope": (RDU_CALL, "rdu.call @nope: the module has no rdu.kernel @nope"),
    "nv-launch-nope": (NV_LAUNCH, "nv.launch @nope: the module has no nv.kernel @nope"),
    "launch-a-layer": (graph_module(f"    %y = df.launch @layer(%x, %w) : ({T}, {W}) -> {T}\n    df.output %y : {T}\n",
                                    LAYER), "df.launch @layer: @layer is a df.layer, not a df.kernel"),
    "use-before-def": (graph_module(f"    %z = df.add %y, %y : ({T}, {T}) -> {T}\n"
                                    f"    %y = df.linear %x, %w : ({T}, {W}) -> {T}\n    df.output %z : {T}\n"),
                       "df.graph @g: df.add uses a result of df.linear before it is defined"),
}


@pytest.mark.parametrize("name", INVALID)
def test_the_verifier_refuses(name, tmp_path, capsys):
    text, message = INVALID[name]
    module = Parser(context(), text).parse_module()
    with pytest.raises(VerifyException, match=message):
        module.verify()
    path = tmp_path / "bad.mlir"
    path.write_text(text)
    assert main(["opt", str(path), "-p", "place-memory"]) == 2
    assert capsys.readouterr().err == f"{path}: error: {message} [E025]\n"


def test_a_call_of_an_existing_layer_verifies():
    parse(graph_module(f"    %y = df.call @layer(%x, %w) : ({T}, {W}) -> {T}\n    df.output %y : {T}\n", LAYER))


# -- which stage a module meets -------------------------------------------------------------------


@pytest.mark.parametrize("name", SPECS)
def test_each_stage_module_meets_exactly_its_contracts(name):
    module = stage_module(name)
    met = set()
    for stage in Stage:
        try:
            check_stage(module, stage)
            met.add(stage)
        except StageError as err:
            assert str(err).startswith(f"{stage}: ") and err.stage is stage and err.code == "E024"
    assert met == MEETS[name]


@pytest.mark.parametrize(("name", "stage", "message"), [
    ("sharded", Stage.FUSED, "fused: df.layer @llama_decoder remains; run fuse first (gpu-partition for a GPU)"),
    ("sharded", Stage.DF, "df: graph @tiny_llama is already sharded over 2 sockets (tp = 2); use the unsharded module"),
    ("fused", Stage.SHARDED, "sharded: df.kernel @llama_decoder is defined, so the module is already fused; "
                             "use the module from before fuse"),
    ("looped", Stage.FUSED, "fused: kernel @llama_decoder_x3 holds a df.loop, so the module is already looped; "
                            "use the module from before kernel-looping"),
    ("placed", Stage.RDU, "rdu: df ops remain: df.kernel @llama_decoder_x3; run df-to-rdu first"),
    ("rdu", Stage.NV, "nv: the module holds rdu.kernel @llama_decoder_x3, which is not nv IR; "
                      "df-to-nv makes nv IR from placed df IR"),
    ("nv", Stage.PLACED, "placed: the module holds nv.kernel @embedding, so it is already lowered; "
                         "use the module from before df-to-nv"),
])
def test_contract_messages_name_the_stage_the_problem_and_the_fix(name, stage, message):
    with pytest.raises(StageError) as err:
        check_stage(stage_module(name), stage)
    assert str(err.value) == message


def test_a_graph_level_call_in_a_fused_module_is_named():
    text = graph_module(f"    %y = df.call @layer_0(%x, %w) : ({T}, {W}) -> {T}\n    df.output %y : {T}\n",
                        LAYER.replace("@layer", "@layer_0"))
    module = parse(text)
    with pytest.raises(StageError, match=r"^fused: df.layer @layer_0 remains; run fuse first"):
        check_stage(module, Stage.FUSED)
    module.body.block.first_op.detach()  # the layer, so that the call is what remains
    with pytest.raises(StageError, match=r"^fused: df.call @layer_0 remains; run fuse first"):
        check_stage(module, Stage.FUSED)


def test_placed_needs_a_tier_on_every_weight_and_cache():
    u = "!df.tensor<[64, 64], bf16>"
    untiered = parse(f"""builtin.module {{
  df.kernel @k(%x: {T}, %w: {u}) -> {T} {{
    %h = df.linear %x, %w : ({T}, {u}) -> {T}
    df.return %h : {T}
  }}
  {GRAPH} {{
    %x = df.input "x" : {T}
    %w = df.weight "layers.0.w" : {u}
    %y = df.launch @k(%x, %w) : ({T}, {u}) -> {T}
    df.output %y : {T}
  }}
}}""")
    check_stage(untiered, Stage.LOOPED)
    with pytest.raises(StageError, match=r"^placed: df.weight 'layers.0.w' has no memory tier; write one in its type"):
        check_stage(untiered, Stage.PLACED)
    with pytest.raises(LoweringError, match="^place-memory: df.weight 'layers.0.w' has no memory tier"):
        make_pass("place-memory").apply(Context(), untiered)


def test_a_written_location_is_in_the_message():
    text = graph_module(f'    %y = df.linear %x, %w : ({T}, {W}) -> {T} loc("model.mlir":7:5)\n    df.output %y : {T}\n')
    with pytest.raises(StageError, match=r"df.linear \(at model.mlir:7:5\) is outside a kernel"):
        make_pass("kernel-looping").apply(Context(), parse(text))


# -- each pass on each stage ----------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    pass_name: str
    stage: str

    @property
    def expected(self) -> str:
        return PASS_RESULTS[self.pass_name].get(self.stage, E024)


CASES = [Case(p, s) for p in PASS_RESULTS for s in SPECS]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.pass_name}-on-{c.stage}")
def test_each_pass_on_each_stage(case, tmp_path, capsys):
    p = make_pass(case.pass_name)
    module = stage_module(case.stage)
    if case.expected == OK:
        apply_checked(p, context(), module)  # checks the output's contract as well
        return
    before = str(module)
    with pytest.raises(LoweringError) as err:
        p.apply(context(), module)
    assert err.value.code == case.expected
    assert str(module) == before, "a pass that refuses its input leaves it as it was"
    if case.expected == E024 and isinstance(err.value, StageError):
        accepted = [str(s) for s in p.STAGES]  # type: ignore[attr-defined]
        assert str(err.value).startswith(f"{case.pass_name} expects {accepted[0]}")
    path = tmp_path / "in.mlir"
    path.write_text(before)
    assert main(["opt", str(path), "-p", case.pass_name]) == 2
    stderr = capsys.readouterr().err
    assert stderr == f"{path}: error: {err.value} [{case.expected}]\n"
    assert "internal error" not in stderr


def test_every_pass_declares_the_stages_docs_ir_md_says_it_takes():
    table = (ROOT / "docs" / "ir.md").read_text().split("| pass | takes | leaves |\n")[1].split("\n\n")[0]
    takes = {}
    for row in table.splitlines()[1:]:
        passes, stages, _ = row.strip("|").split("|")
        for name in re.findall(r"`([\w-]+)`", passes):
            takes[name] = {Stage(s) for s in re.findall(r"`(\w+)`", stages)}
    classes = {name: pass_class(name) for name in PASSES}
    assert set(takes) == set(classes)
    for name, cls in classes.items():
        assert issubclass(cls, StagedPass) and set(cls.STAGES) == takes[name], name


def test_a_pass_that_breaks_its_own_contract_is_caught():
    @dataclass(frozen=True)
    class Nothing(StagedPass):
        """Claims to fuse, does nothing."""

        name = "nothing"
        STAGES = {Stage.DF: Stage.FUSED}

        def apply(self, ctx: Context, op: ModuleOp) -> None:
            self.expect(op)

    with pytest.raises(BrokenOutputError, match="nothing produced a module that is not fused IR: fused: df.layer"):
        apply_checked(Nothing(), context(), stage_module("df"))


def test_output_that_does_not_verify_is_a_verification_error():
    @dataclass(frozen=True)
    class Break(StagedPass):
        """Sets the graph's tp to 0."""

        name = "break"
        STAGES = {Stage.DF: Stage.DF}

        def apply(self, ctx: Context, op: ModuleOp) -> None:
            df.the_graph(op, self.name).properties["tp"] = IntegerAttr(0, 64)

    with pytest.raises(VerificationError, match="df.graph: tp must be positive") as err:
        apply_checked(Break(), context(), stage_module("df"))
    assert err.value.code == "E025"


def test_a_size_not_affine_in_b_and_s_is_refused_with_its_code(tmp_path, capsys):
    c = "!df.tensor<[S, 64], bf16, hbm>"
    path = tmp_path / "cache.mlir"
    path.write_text(f"""builtin.module {{
  df.kernel @k(%c: {c}) -> {c} {{
    %h = df.add %c, %c : ({c}, {c}) -> {c}
    df.return %h : {c}
  }}
  {GRAPH} {{
    %c = df.kv_cache "c" : {c}
    %y = df.launch @k(%c) : ({c}) -> {c}
    df.output %y : {c}
  }}
}}""")
    for lowering in ("df-to-rdu", "df-to-nv"):
        assert main(["opt", str(path), "-p", lowering]) == 2
        assert capsys.readouterr().err == (f"{path}: error: shape [S, 64] is not affine in B, B*S, B*P and "
                                           "B*P*S, so its size cannot be expressed as work [E024]\n")


def test_a_bad_hardware_file_given_to_a_pass_is_e023(tmp_path, capsys):
    path = tmp_path / "placed.mlir"
    path.write_text(str(stage_module("placed")))
    for spec in ('place-memory{hardware="no/chip.toml"}', 'df-to-rdu{hardware="no/chip.toml"}'):
        assert main(["opt", str(path), "-p", spec]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"{path}: error: {spec.split('{')[0]}: ") and err.endswith("[E023]\n"), err


def test_the_simulators_check_their_input():
    with pytest.raises(StageError, match=r"^the simulator expects rdu IR, but df ops remain: df.kernel @llama_decoder_x3"):
        simulate(stage_module("placed"), "sn40l")


# -- every example, every pass's output checked ----------------------------------------------------

RDU_STAGES = {"shard-tensor-parallel": Stage.SHARDED, "fuse": Stage.FUSED, "kernel-looping": Stage.LOOPED,
              "place-memory": Stage.PLACED, "df-to-rdu": Stage.RDU}
GPU_STAGES = {"shard-tensor-parallel": Stage.SHARDED, "gpu-partition": Stage.FUSED, "place-memory": Stage.PLACED,
              "df-to-nv": Stage.NV}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_every_example_meets_each_contract_along_both_pipelines(path):
    model = check_file(path)
    front = generate(model)
    check_stage(front, Stage.DF)
    seen: list[str] = []

    def check(stages: dict[str, Stage]):
        def after_each(p, module, seconds):
            check_stage(module, stages[p.name])
            seen.append(p.name)
        return after_each

    options = LoweringOptions(sockets=model.run.sockets, target=model.run.target)
    run_passes(front.clone(), RDU_PIPELINE.passes_to("rdu", options), check(RDU_STAGES))
    assert seen == list(RDU_STAGES)
    seen.clear()
    gpu = LoweringOptions(sockets=8, target="dgx_h100", kernel_looping=False)
    try:
        run_passes(front.clone(), GPU_PIPELINE.passes_to("nv", gpu), check(GPU_STAGES))
    except LoweringError as err:  # a model too big for one node: every pass before place-memory ran
        assert err.code == "E021" and seen == ["shard-tensor-parallel", "gpu-partition"], str(err)
        return
    assert seen == list(GPU_STAGES)
