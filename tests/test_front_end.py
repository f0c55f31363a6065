"""The front end: grammar, AST spans, each error class at its exact place, and IR generation."""

from __future__ import annotations

from pathlib import Path

import pytest
from xdsl.parser import Parser

from dfdsl import ast
from dfdsl.dialects import df
from dfdsl.diagnostics import DfslError
from dfdsl.elaborate import check_file
from dfdsl.irgen import generate
from dfdsl.lowering.pipeline import context
from dfdsl.parser import parse_text

ROOT = Path(__file__).parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.dfl"))

TINY = """\
import std.llama
model tiny : llama {
  dtype = bf16; vocab = 100; hidden = 64; layers = 2
  heads = 4; kv_heads = 2; head_dim = 16; ffn = 128
}
run decode { batch = 1; context = 32; tokens = 4; target = sn40l(sockets = 2) }
"""

CUSTOM = """\
layer blk(dtype, hidden) {
  in x : dtype[B, hidden]
  weight w : dtype[hidden, hidden]
  y = linear(x, w)
  out y
}
graph g(dtype, hidden, layers) {
  in t : int32[B]
  weight e : dtype[100, hidden]
  x = embedding(t, e)
  for l in 0..layers { x = blk(x) }
  s = sample(x)
  out s
}
model m : g { dtype = bf16; hidden = 64; layers = 3 }
"""


def write(tmp_path: Path, text: str, name: str = "model.dfl") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def errors_of(path: Path) -> list:
    with pytest.raises(DfslError) as info:
        check_file(path)
    return info.value.diagnostics


def test_parse_builds_ast_with_spans():
    items = parse_text("const hidden = 2 * (3 + 1_000)\n", Path("x.dfl")).items
    (const,) = items
    assert isinstance(const, ast.Const) and const.name == "hidden"
    assert isinstance(const.value, ast.BinOp) and const.value.op == "*"
    assert (const.name_span.line, const.name_span.column) == (1, 7)
    assert const.value.right.right.value == 1000


def test_statements_need_no_separators():
    text = "model m : g { a = 1 b = 2; c = a * b }"
    (model,) = parse_text(text, Path("x.dfl")).items
    assert [b.name for b in model.bindings] == ["a", "b", "c"]


@pytest.mark.parametrize(
    ("source", "code", "line", "column", "message"),
    [
        ("layer a() {\n  y = \n}\n", "E001", 3, 1, "unexpected `}`"),
        ("model m : g { x = 1 + }\n", "E001", 1, 23, "unexpected `}`"),
        ("model m : g { x = 3 $ 4 }\n", "E001", 1, 21, "unexpected character `$`"),
        ("layer a() {\n", "E001", 1, 12, "the file ends too early"),
    ],
)
def test_syntax_errors_are_located(tmp_path, source, code, line, column, message):
    (diag,) = errors_of(write(tmp_path, source))
    assert (diag.code, diag.span.line, diag.span.column) == (code, line, column)
    assert message in diag.message


@pytest.mark.parametrize(
    ("edit", "code", "line", "column", "message"),
    [
        (("y = linear(x, w)", "y = linaer(x, w)"), "E009", 4, 7, "`linaer` is not an operator or a layer"),
        (("y = linear(x, w)", "y = linear(x, ww)"), "E003", 4, 17, "unknown name `ww`"),
        (("weight w : dtype[hidden, hidden]", "weight w : dtype[hidden * 2, hidden]"),
         "E008", 4, 17, "linear: inner dimensions differ: input [B, 64] has 64, weight [128, 64] has 128"),
        (("weight w : dtype[hidden, hidden]", "weight w : dtype[hidden, hidden - 64]"),
         "E007", 3, 28, "dimension is 0; sizes must be positive"),
        (("weight w : dtype[hidden, hidden]", "weight w : dtype[hidden, hidden / 3]"),
         "E006", 3, 28, "64 / 3 is not a whole number"),
        (("weight w : dtype[hidden, hidden]", "weight w : dtype[B, hidden]"),
         "E005", 3, 14, "weight `w` cannot depend on B or S"),
        (("for l in 0..layers", "for l in 4..layers"), "E012", 11, 3, "loop `l in 4..3` runs backwards"),
        (("layers = 3 }", "layers = 3; hiden = 2 }"), "E016", 15, 54, "graph `g` has no parameter `hiden`"),
        (("  out y\n}\ngraph", "  out y\n  weight w : dtype[hidden]\n}\ngraph"),
         "E004", 6, 10, "`w` is already defined in this scope"),
        (("y = linear(x, w)", "y = rope(x, heads = 4)"), "E010", 4, 15, "`rope` has no setting `heads`"),
    ],
)
def test_semantic_errors_are_located(tmp_path, edit, code, line, column, message):
    old, new = edit
    assert old in CUSTOM
    diags = errors_of(write(tmp_path, CUSTOM.replace(old, new)))
    assert diags[0].code == code, diags[0].render()
    assert (diags[0].span.line, diags[0].span.column) == (line, column), diags[0].render()
    assert message in diags[0].message


def test_independent_errors_are_all_reported(tmp_path):
    text = CUSTOM.replace("y = linear(x, w)", "y = linear(x, w)\n  z = linaer(y, w)\n  q = add(x, nothing)")
    text += 'place { weights -> hmb }\nrun r { batch = 0 }\n'
    codes = sorted(d.code for d in errors_of(write(tmp_path, text)))
    assert codes == ["E003", "E009", "E011", "E019"]


def test_help_suggests_the_near_name(tmp_path):
    text = TINY.replace("kv_heads = 2", "kv_head = 2")
    diag = errors_of(write(tmp_path, text))[0]
    assert diag.help == "did you mean `kv_heads`?"
    rendered = diag.render(text)
    assert rendered.startswith(f"{tmp_path / 'model.dfl'}:4:14: error: graph `llama` has no parameter `kv_head` [E016]")
    assert "\n  4 |   heads = 4; kv_head = 2; head_dim = 16; ffn = 128\n" in rendered
    assert "\n    |              ^^^^^^^\n" in rendered


def test_errors_in_the_library_name_the_model_that_caused_them(tmp_path):
    diag = errors_of(write(tmp_path, TINY.replace("heads = 4;", "heads = 3;")))[0]
    assert diag.code == "E008" and diag.span.path.name == "llama.dfl"
    assert "heads (3) must be a multiple of kv_heads (2)" in diag.message
    assert any("model `tiny`" in note and "model.dfl:2:7" in note for note in diag.notes)


def test_unknown_tier_and_class(tmp_path):
    diags = errors_of(write(tmp_path, TINY + "place { weights -> hmb; kv -> hbm }\n"))
    assert [(d.code, d.message) for d in diags] == [
        ("E011", "unknown memory tier `hmb`"), ("E011", "unknown tensor class `kv`")]
    assert diags[0].help == "did you mean `hbm`?"


def test_imports_resolve_locally_and_reject_escapes_and_cycles(tmp_path):
    (tmp_path / "blocks").mkdir()
    (tmp_path / "blocks" / "mine.dfl").write_text(CUSTOM.split("graph g")[0])
    main = write(tmp_path, "import blocks.mine\n" + "graph g" + CUSTOM.split("graph g")[1])
    assert check_file(main).layers[0].symbol == "blk"

    outside = tmp_path.parent / f"{tmp_path.name}_outside.dfl"
    outside.write_text("const a = 1\n")
    (tmp_path / "link.dfl").symlink_to(outside)
    (diag,) = errors_of(write(tmp_path, "import link\n" + TINY, "escape.dfl"))
    assert diag.code == "E015" and "outside" in diag.message

    write(tmp_path, "import b\n", "a.dfl")
    write(tmp_path, "import a\n", "b.dfl")
    diags = errors_of(write(tmp_path, "import a\n" + TINY, "c.dfl"))
    assert [d.code for d in diags] == ["E014"]
    assert "import cycle: a.dfl -> b.dfl -> a.dfl" in diags[0].message

    (diag,) = errors_of(write(tmp_path, "import std.lama\n" + TINY, "d.dfl"))
    assert diag.code == "E013" and "std.llama" in diag.help


def test_limits_refuse_absurd_models(tmp_path):
    diag = errors_of(write(tmp_path, CUSTOM.replace("layers = 3", "layers = 1000000000")))[0]
    assert diag.code == "E017" and "limit is 4,096" in diag.message
    diag = errors_of(write(tmp_path, TINY.replace("context = 32", "context = 1099511627776")))[0]
    assert diag.code == "E019"
    diag = errors_of(write(tmp_path, CUSTOM.replace("hidden = 64", "hidden = 99999999999999999999")))[0]
    assert diag.code == "E006"


def test_non_utf8_is_a_located_error(tmp_path):
    path = tmp_path / "bad.dfl"
    path.write_bytes(b"const a = 1\nconst b = \xff\n")
    (diag,) = errors_of(path)
    assert (diag.code, diag.span.line, diag.span.column) == ("E002", 2, 11)


def test_run_block_and_overrides(tmp_path):
    path = write(tmp_path, TINY)
    assert check_file(path).run.sockets == 2
    run = check_file(path, {"sockets": 4, "batch": 8}).run
    assert (run.sockets, run.batch, run.context) == (4, 8, 32)


def test_layers_are_instantiated_once_per_signature(tmp_path):
    model = check_file(write(tmp_path, TINY))
    assert [layer.symbol for layer in model.layers] == ["llama_decoder"]
    assert sum(1 for s in model.steps if s.__class__.__name__ == "LayerCall") == 2
    names = [s.name for s in model.steps if hasattr(s, "name")]
    assert "layers.1.self_attn.wq" in names and "layers.0.mlp.w_down" in names


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_every_example_lowers_to_df_that_round_trips(path):
    module = generate(check_file(path))
    module.verify()
    for generic in (False, True):
        from io import StringIO

        from xdsl.printer import Printer

        out = StringIO()
        Printer(stream=out, print_generic_format=generic).print_op(module)
        reparsed = Parser(context(), out.getvalue()).parse_module()
        reparsed.verify()
        assert str(reparsed) == str(module)


@pytest.mark.parametrize(
    ("name", "gigabytes", "kv_kib"),
    [("llama3_1_8b", 16.06, 128), ("llama3_1_70b", 141.1, 320), ("llama3_1_405b", 811.7, 504)],
)
def test_examples_match_published_sizes(name, gigabytes, kv_kib):
    module = generate(check_file(ROOT / "examples" / f"{name}.dfl"))
    weights = sum(op.result.type.num_bytes() for op in module.walk() if isinstance(op, df.WeightOp))
    kv = sum(op.result.type.num_bytes(1, 1) for op in module.walk() if isinstance(op, df.KvCacheOp))
    assert round(weights / 1e9, 1) == round(gigabytes, 1)
    assert kv == kv_kib * 1024


def test_constants_may_not_shadow_builtins_or_repeat(tmp_path):
    diags = errors_of(write(tmp_path, "const B = 1\nconst a = 1\nconst a = 2\n" + CUSTOM))
    assert [(d.code, d.message) for d in diags] == [
        ("E004", "`B` is a built-in name"), ("E004", "`a` is already a constant")]


def test_a_layer_may_not_take_an_operator_name(tmp_path):
    diags = errors_of(write(tmp_path, CUSTOM.replace("blk", "add")))
    assert diags[0].code == "E004" and diags[0].message == "`add` is the name of an operator"


def test_unknown_targets_are_located_when_the_targets_are_known(tmp_path):
    path = write(tmp_path, TINY.replace("sn40l(", "sn41l("))
    with pytest.raises(DfslError) as info:
        check_file(path, targets={"sn40l", "dgx_h100"})
    (diag,) = info.value.diagnostics
    assert (diag.code, diag.span.line, diag.help) == ("E016", 6, "did you mean `sn40l`?")


def test_command_line_overrides_out_of_range_are_not_pinned_on_the_file(tmp_path):
    with pytest.raises(DfslError) as info:
        check_file(write(tmp_path, TINY), {"sockets": 5000})
    (diag,) = info.value.diagnostics
    assert diag.span is None and "on the command line" in diag.message


def test_a_model_whose_loop_over_layers_is_empty_is_refused_at_its_setting(tmp_path):
    (diag,) = errors_of(write(tmp_path, CUSTOM.replace("layers = 3", "layers = 0")))
    assert diag.code == "E016" and "has no layers" in diag.message and "(`layers` is 0)" in diag.message
    assert (diag.span.line, diag.span.column) == (15, 42)


def test_an_empty_loop_is_fine_when_other_layers_run(tmp_path):
    two_loops = CUSTOM.replace("for l in 0..layers { x = blk(x) }",
                               "for l in 0..0 { x = blk(x) }\n  for l in 0..layers { x = blk(x) }")
    assert len(check_file(write(tmp_path, two_loops)).layers) == 1


def test_a_weight_no_operator_reads_is_refused_where_it_is_declared(tmp_path):
    spare = CUSTOM.replace("weight w : dtype[hidden, hidden]",
                           "weight w : dtype[hidden, hidden]\n  weight spare : dtype[hidden]")
    (diag,) = errors_of(write(tmp_path, spare))
    assert diag.code == "E018" and diag.message == "weight `spare` is declared but no operator reads it"
    assert (diag.span.line, diag.span.column) == (4, 10)
    extra = CUSTOM.replace("weight e : dtype[100, hidden]", "weight e : dtype[100, hidden]\n  weight extra : dtype[hidden]")
    (diag,) = errors_of(write(tmp_path, extra))
    assert diag.code == "E018" and "`extra`" in diag.message and diag.span.line == 10


def test_a_tied_weight_is_a_view_of_its_storage_placed_with_it(tmp_path):
    text = CUSTOM.replace("  s = sample(x)",
                          "  logits = lm_head(x, head)\n  s = sample(logits)").replace(
        "  x = embedding(t, e)", "  weight head : dtype[hidden, 100] = transpose(e)\n  x = embedding(t, e)")
    text += 'place { "head" -> ddr }\n'
    model = check_file(write(tmp_path, text))
    decls = {s.name: s for s in model.steps if getattr(s, "kind", "") == "weight"}
    assert decls["head"].tied_to == "e" and decls["head"].tier == decls["e"].tier == "hbm"
    module = generate(model)
    (head,) = [op for op in module.walk() if isinstance(op, df.WeightOp) and op.tied_to is not None]
    assert head.storage() is not None and head.storage().tensor_name.data == "e"


@pytest.mark.parametrize(("tie", "code", "words"), [
    ("transpose(t)", "E005", "not an untied weight"),
    ("e", "E008", "but `e` is bf16[100, 64]"),
    ("flip(e)", "E010", "as it is or transposed"),
    ("nothing", "E003", "unknown name"),
])
def test_a_bad_tie_is_located_at_the_tie(tmp_path, tie, code, words):
    text = CUSTOM.replace("  s = sample(x)", "  logits = lm_head(x, head)\n  s = sample(logits)").replace(
        "  x = embedding(t, e)", f"  weight head : dtype[hidden, 100] = {tie}\n  x = embedding(t, e)")
    (diag,) = errors_of(write(tmp_path, text))
    assert diag.code == code and words in diag.message and diag.span.line == 10


def test_a_long_flat_expression_is_a_located_limit_not_a_crash(tmp_path):
    diags = errors_of(write(tmp_path, "const a = " + "+".join(["1"] * 3000) + "\n"))
    assert diags[0].code == "E017"


def test_a_nested_operator_call_says_operands_are_names(tmp_path):
    diag = errors_of(write(tmp_path, CUSTOM.replace("y = linear(x, w)", "y = rope(linear(x, w), head_dim = 16)")))[0]
    assert diag.code == "E010" and "operands are names" in diag.message
    assert diag.help == "write `t = linear(...)` on its own line and pass `t`"


def test_the_parallel_block_chooses_each_split_and_the_left_out_ones_follow_attention(tmp_path):
    assert check_file(write(tmp_path, TINY)).parallel == df.Parallel()
    path = write(tmp_path, TINY + "parallel { attention = data; imbalance = 1.25 }\n")
    plan = check_file(path).parallel
    assert (plan.attention, plan.experts, plan.dense, plan.imbalance, plan.pad) == ("data", "expert", "data", 1.25, True)
    # --parallel replaces the settings it gives; --no-pad arrives as pad=off.
    plan = check_file(path, {"parallel": "attention=tensor,pad=off"}).parallel
    assert (plan.attention, plan.experts, plan.dense, plan.imbalance, plan.pad) == ("tensor", "tensor", "tensor", 1.25, False)
    graph = next(op for op in generate(check_file(path)).walk() if isinstance(op, df.GraphOp))
    assert graph.plan == df.Parallel("data", "expert", "data", 1.25) and graph.batch_shards == 1
    assert graph.sequences_per_socket(7) == 7  # until sharded


@pytest.mark.parametrize(
    ("block", "code", "column", "message"),
    [
        ("parallel { attention = expert }", "E016", 24, "`attention` is split `expert`, which it cannot be"),
        ("parallel { experts = data; dense = tensor; attention = data }", "E016", 36,
         "`attention = data` gives each socket its own sequences, so `dense = tensor` would need every socket's "
         "tokens: an all-gather of them before each such layer and a reduce-scatter back after it, which dfdsl "
         "does not model"),
        ("parallel { atention = data }", "E016", 12, "`parallel` has no setting `atention`"),
        ("parallel { imbalance = 0.5 }", "E019", 24, "`imbalance` is 0.5"),
        ("parallel { dense = 2 }", "E005", 20, "`dense` takes tensor or data"),
        ("parallel { pad = maybe }", "E016", 18, "`pad` is maybe; it is on or off"),
        ("parallel { dense = data; dense = data }", "E004", 26, "`dense` is set twice"),
    ],
)
def test_bad_parallel_settings_are_located(tmp_path, block, code, column, message):
    (diag,) = errors_of(write(tmp_path, TINY + block + "\n"))
    assert (diag.code, diag.span.line, diag.span.column) == (code, 7, column)
    assert message in diag.message


def test_bad_parallel_settings_on_the_command_line_say_so(tmp_path):
    path = write(tmp_path, TINY)
    for text, message in (("attention=data,dense=tensor", "(on the command line)"),
                          ("experts", "`experts` is not `setting=value`"),
                          ("imbalance=lots", "not a number such as 1.2")):
        with pytest.raises(DfslError) as info:
            check_file(path, {"parallel": text})
        (diag,) = info.value.diagnostics
        assert diag.code == "E016" and diag.span is None and message in diag.message


@pytest.mark.parametrize(("slip", "message", "fix"), [
    ("layers = 3k", "`3k` is not a number: sizes are written as integers", "`3072` (or `3 * 1024`)"),
    ("layers = 3.5", "`3.5` is not an integer", "e.g. `3`"),
    ("layers = 1e3", "`1e3` is not a number", "out in full"),
])
def test_a_number_with_a_unit_or_a_fraction_says_sizes_are_integers_and_how_to_write_it(tmp_path, slip, message,
                                                                                         fix):
    (diag,) = errors_of(write(tmp_path, CUSTOM.replace("layers = 3", slip)))
    assert diag.code == "E001" and message in diag.message and fix in diag.help
    assert (diag.span.line, diag.span.column) == (15, 51)


def test_numbers_in_names_comments_and_strings_are_not_slips(tmp_path):
    text = CUSTOM.replace("model m", "# 4k context, 3.5 layers\nmodel m") + 'place { "layers.3.w" -> hbm }\n'
    assert check_file(write(tmp_path, text)).name == "m"
