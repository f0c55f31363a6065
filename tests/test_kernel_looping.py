"""Tests of the kernel-looping pass: which launches form runs, the remarks, and what looping keeps.

The inputs are the tiny models of `df_models` after `fuse{mode=layer}` (each layer a kernel, each
call a launch, and the embedding, the LM head and the sampling a kernel each), or small fused
modules written out as text.
"""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from xdsl.context import Context
from xdsl.dialects.builtin import Builtin, ModuleOp
from xdsl.parser import Parser
from xdsl.passes import PassPipeline
from xdsl.traits import SymbolTable
from xdsl.utils.exceptions import DiagnosticException, VerifyException

from dfdsl.dialects import df
from dfdsl.lowering.fuse import Fuse
from dfdsl.lowering.kernel_looping import KernelLooping, Remark, find_runs, stacked_name
import df_models
from df_models import LLAMA, MLA_DENSE, MLA_MOE, MOE, TinyConfig, build_model

CONTEXT = Context()
CONTEXT.load_dialect(Builtin)
CONTEXT.load_dialect(df.Df)


def parse(text: str) -> ModuleOp:
    module = Parser(CONTEXT, text).parse_module()
    module.verify()
    return module


GRAPH_KERNELS = ("embedding", "lm_head", "sample")
"""The kernels layer fusion makes of a tiny model's graph-level operators, around the stack."""


def as_fused(module: ModuleOp) -> ModuleOp:
    """Each layer as one kernel and each call as one launch, as layer fusion leaves the stack."""
    Fuse(mode="layer").apply(CONTEXT, module)
    module.verify()
    return module


def loop(module: ModuleOp, **options: int | bool) -> ModuleOp:
    KernelLooping(**options).apply(CONTEXT, module)  # type: ignore[arg-type]
    module.verify()
    return module


def launches(module: ModuleOp) -> list[df.LaunchOp]:
    return [op for op in module.walk() if isinstance(op, df.LaunchOp)]


def stack_launches(module: ModuleOp) -> list[df.LaunchOp]:
    """The launches of the layer stack, without those of the graph-level kernels."""
    return [op for op in launches(module) if op.callee.string_value() not in GRAPH_KERNELS]


def declared_bytes(module: ModuleOp, batch: int = 3, context: int = 7) -> int:
    """Bytes of every declared weight and KV cache, with B and S set to odd sizes."""
    return sum(
        op.result.type.num_bytes(batch, context)  # type: ignore[attr-defined]
        for op in module.walk()
        if isinstance(op, df.WeightOp | df.KvCacheOp)
    )


def trip_count(module: ModuleOp, launch: df.LaunchOp) -> int:
    """The trip count of the loop in the launched kernel, 0 if it has none."""
    kernel = SymbolTable.lookup_symbol(module, launch.callee)
    assert kernel is not None
    loops = [op for op in kernel.walk() if isinstance(op, df.LoopOp)]
    return loops[0].trip_count.value.data if loops else 0


def groups(kinds: list[object]) -> list[int]:
    """Lengths of the maximal groups of equal consecutive items."""
    lengths: list[int] = []
    for i, kind in enumerate(kinds):
        if i and kinds[i - 1] is kind:
            lengths[-1] += 1
        else:
            lengths.append(1)
    return lengths


stacks = st.lists(st.sampled_from([LLAMA, MOE, MLA_DENSE, MLA_MOE]), min_size=1, max_size=7)


@settings(max_examples=25, deadline=None)
@given(stack=stacks, min_calls=st.integers(2, 4))
@example(stack=[MOE, MOE, LLAMA, MOE, MOE], min_calls=2)
def test_each_run_becomes_one_launch_and_declared_bytes_are_kept(stack, min_calls):
    module = as_fused(build_model("m", stack, TinyConfig()))
    before = declared_bytes(module)
    loop(module, min_calls=min_calls)
    expected = sum(1 if n >= min_calls else n for n in groups(stack))
    assert len(stack_launches(module)) == expected
    assert declared_bytes(module) == before
    # A looped kernel is shared by runs of the same kernel and length, so count launches of loops.
    trip_counts = [trip_count(module, launch) for launch in launches(module)]
    assert [n for n in trip_counts if n] == [n for n in groups(stack) if n >= min_calls]


@settings(max_examples=15, deadline=None)
@given(stack=stacks)
def test_output_round_trips_and_a_second_run_changes_nothing(stack):
    module = loop(as_fused(build_model("m", stack, TinyConfig())))
    text = str(module)
    assert str(parse(text)) == text
    assert str(loop(parse(text))) == text


def test_32_layers_become_one_launch_of_a_loop_of_32():
    module = as_fused(df_models.tiny_llama(layers=32))
    loop(module)
    (launch,) = stack_launches(module)
    assert launch.callee.string_value() == "llama_decoder_x32"
    stacked = [op for op in module.walk() if isinstance(op, df.WeightOp | df.KvCacheOp)]
    names = {op.tensor_name.data for op in stacked}
    assert {"layers.{0..31}.wq", "layers.{0..31}.k_cache", "embed", "lm_head"} <= names
    kernels = {op.sym_name.data for op in module.walk() if isinstance(op, df.KernelOp)}
    assert kernels == {"llama_decoder_x32", *GRAPH_KERNELS}


def test_dense_then_moe_layers_give_two_loops():
    module = loop(as_fused(df_models.tiny_mla(layers=7, dense_layers=3)))
    assert [op.callee.string_value() for op in stack_launches(module)] == [
        "mla_dense_decoder_x3",
        "mla_moe_decoder_x4",
    ]
    first, second = stack_launches(module)
    assert second.args[0] is first.res[0]


def test_find_runs_reports_indices_and_positions_and_changes_nothing():
    module = as_fused(df_models.tiny_moe(layers=5, dense_layers=2))
    text = str(module)
    runs, remarks = find_runs(module)
    assert str(module) == text
    assert remarks == []
    assert [(r.kernel, list(r.indices)) for r in runs] == [  # launch 0 is the embedding's
        ("llama_decoder", [1, 2]),
        ("moe_decoder", [3, 4, 5]),
    ]
    assert runs[0].carried == (0,)
    assert runs[0].stacked == tuple(range(1, 12))


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (["layers.0.wq", "layers.1.wq", "layers.2.wq"], "layers.{0..2}.wq"),
        (["layers.3.w1", "layers.4.w1"], "layers.{3..4}.w1"),
        (["blk9", "blk10", "blk11"], "blk{9..11}"),
        (["layers.0.wq", "layers.2.wq"], "layers.0.wq..layers.2.wq"),
        (["a.0.x", "b.1.x"], "a.0.x..b.1.x"),
        (["q_proj", "k_proj"], "q_proj..k_proj"),
    ],
)
def test_stacked_name(names, expected):
    assert stacked_name(names) == expected


T = "!df.tensor<[B, 64], bf16>"
W = "!df.tensor<[64, 64], bf16, hbm>"
GRAPH = (
    'df.graph @g attributes {activations = "sram", batch = 1 : i64, context = 8 : i64, '
    'tokens = 1 : i64, sockets = 1 : i64, tp = 1 : i64, target = "sn40l"}'
)


def kernel(name: str) -> str:
    return f"""
  df.kernel @{name}(%x: {T}, %w: {W}) -> {T} {{
    %h = df.linear %x, %w : ({T}, {W}) -> {T}
    df.return %h : {T}
  }}"""


def graph_of(callees: list[str]) -> str:
    """A module launching `callees` in order, each with its own weight, the activation chained."""
    body = [f'    %x0 = df.input "hidden" : {T}']
    for i, callee in enumerate(callees):
        body.append(f'    %w{i} = df.weight "layers.{i}.w" : {W}')
        body.append(f"    %x{i + 1} = df.launch @{callee}(%x{i}, %w{i}) : ({T}, {W}) -> {T}")
    body.append(f"    df.output %x{len(callees)} : {T}")
    kernels = "".join(kernel(name) for name in dict.fromkeys(callees))
    return "builtin.module {" + kernels + "\n  " + GRAPH + " {\n" + "\n".join(body) + "\n  }\n}"


def test_alternating_kernels_give_one_remark_naming_them_all():
    # Block fusion: attention, then a dense MLP or a MoE, layer after layer.
    module = parse(graph_of(["attn", "mlp", "attn", "mlp", "attn", "moe", "attn", "moe"]))
    runs, remarks = find_runs(module)
    assert runs == []
    assert [r.message for r in remarks] == [
        "@attn, @mlp and @moe alternate over launches 0..7; no consecutive launches of one kernel"
    ]
    assert remarks[0].launches == tuple(range(8))


def test_a_kernel_interrupted_by_another_gets_a_remark_per_gap():
    module = parse(graph_of(["a", "a", "b", "a", "a"]))
    runs, remarks = find_runs(module)
    assert [list(r.indices) for r in runs] == [[0, 1], [3, 4]]
    assert remarks == [
        Remark("a", (1, 3), "launches 1 and 3 of @a not looped together: @b is launched between them")
    ]
    loop(module)
    assert [op.callee.string_value() for op in launches(module)] == ["a_x2", "b", "a_x2"]


def test_gaps_of_one_kernel_are_one_remark():
    _, remarks = find_runs(parse(graph_of(["a", "a", "b", "a", "a", "c", "a", "a"])))
    assert remarks == [
        Remark(
            "a",
            (1, 3, 4, 6),
            "launches 1 and 3 (and one more such pair) of @a not looped together: "
            "@b and @c are launched between them",
        )
    ]


def test_two_carried_values_may_swap_positions():
    # Each launch takes result 0 of the one before at operand 1, and result 1 at operand 0.
    text = f"""builtin.module {{
  df.kernel @swap(%a: {T}, %b: {T}, %w: {W}) -> ({T}, {T}) {{
    %h = df.linear %a, %w : ({T}, {W}) -> {T}
    df.return %h, %b : {T}, {T}
  }}
  {GRAPH} {{
    %a0 = df.input "a" : {T}
    %b0 = df.input "b" : {T}
""" + "".join(
        f'    %w{i} = df.weight "l.{i}.w" : {W}\n'
        f"    %r{i}:2 = df.launch @swap(%{'a0' if i == 0 else f'r{i - 1}#1'}, "
        f"%{'b0' if i == 0 else f'r{i - 1}#0'}, %w{i}) : ({T}, {T}, {W}) -> ({T}, {T})\n"
        for i in range(3)
    ) + f"""    df.output %r2#0, %r2#1 : {T}, {T}
  }}
}}"""
    module = parse(text)
    (run,), _ = find_runs(module)
    assert run.carried == (1, 0) and run.stacked == (2,)
    loop(module)
    (launch,) = launches(module)
    (loop_op,) = [op for op in module.walk() if isinstance(op, df.LoopOp)]
    assert loop_op.trip_count.value.data == 3
    assert launch.args[0].owner.tensor_name.data == "a"  # type: ignore[attr-defined]
    assert str(parse(str(module))) == str(module)


def test_a_taken_kernel_name_is_not_reused():
    text = graph_of(["layer", "layer"])
    module = parse(text.replace("builtin.module {", "builtin.module {" + kernel("layer_x2"), 1))
    loop(module)
    assert [op.callee.string_value() for op in launches(module)] == ["layer_x2_1"]


def test_options_parse_and_remarks_go_to_stderr(capsys):
    (pass_,) = PassPipeline.parse_spec(
        {"kernel-looping": lambda: KernelLooping}, "kernel-looping{min-calls=3 remarks=true}"
    ).passes
    assert pass_ == KernelLooping(min_calls=3, remarks=True)
    module = parse(graph_of(["layer", "layer"]))
    pass_.apply(CONTEXT, module)
    assert len(launches(module)) == 2
    assert capsys.readouterr().err == (
        "remark: kernel-looping: launches 0..1 of @layer not looped: "
        "a run of 2 launches is shorter than min-calls=3\n"
    )


def test_remarks_say_what_was_looped_and_when_nothing_could_be(capsys):
    module = parse(graph_of(["a", "a", "a", "b", "c"]))
    KernelLooping(remarks=True).apply(CONTEXT, module)
    assert capsys.readouterr().err == (
        "remark: kernel-looping: looped launches 0..2 of @a into one launch of @a_x3\n")
    KernelLooping(remarks=True).apply(CONTEXT, parse(graph_of(["b", "c"])))
    assert capsys.readouterr().err == (
        "remark: kernel-looping: nothing to loop: no kernel is launched twice in a row\n")


def test_min_calls_below_two_is_an_error():
    with pytest.raises(DiagnosticException, match="min-calls must be at least 2"):
        loop(parse(graph_of(["layer"])), min_calls=1)


def test_launching_a_missing_kernel_does_not_verify():
    text = graph_of(["layer", "layer"]).replace(kernel("layer"), "")
    module = Parser(CONTEXT, text).parse_module()
    with pytest.raises(VerifyException, match="df.launch @layer: the module has no df.kernel @layer"):
        module.verify()
