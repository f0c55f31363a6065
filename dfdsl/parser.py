"""Text to AST: the lark LALR parser for grammar/dfl.lark and the one Transformer that builds the AST.

Parse errors become `Diagnostic`s (code E001) pointing at the offending token, never raw lark text.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from importlib import resources
from pathlib import Path

from lark import Lark, Token, Transformer, Tree, v_args
from lark.tree import Meta
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError

from dfdsl import ast, files
from dfdsl.diagnostics import DfslError, Diagnostic, read_diagnostic

MAX_SOURCE_BYTES = 4 * 1024 * 1024
"""A model file is a few kilobytes; anything past this is refused before parsing (E017)."""


@functools.cache
def _lark() -> Lark:
    grammar = resources.files("dfdsl.grammar").joinpath("dfl.lark").read_text(encoding="utf-8")
    return Lark(grammar, parser="lalr", propagate_positions=True, maybe_placeholders=True)


def _span(path: Path, meta: Meta) -> ast.Span:
    return ast.Span(path, meta.line, meta.column, meta.end_line, meta.end_column)


def _token_span(path: Path, tok: Token) -> ast.Span:
    # lark types a token's position as optional, for tokens made by hand; its lexer always sets it.
    assert tok.line is not None and tok.column is not None and tok.end_line is not None and tok.end_column is not None
    return ast.Span(path, tok.line, tok.column, tok.end_line, tok.end_column)


# Rule methods for several rules that differ in one word, made outside the class so that they are
# typed as what they are: methods of _ToAst.

def _binary(op: str) -> Callable[[_ToAst, Meta, ast.Expr, ast.Expr], ast.BinOp]:
    def method(self: _ToAst, meta: Meta, left: ast.Expr, right: ast.Expr) -> ast.BinOp:
        return ast.BinOp(op, left, right, self._s(meta))

    return method


def _declaration(kind: str) -> Callable[[_ToAst, Meta, Token, ast.TensorTypeExpr, ast.Tie | None], ast.Decl]:
    def method(self: _ToAst, meta: Meta, name: Token, type_: ast.TensorTypeExpr,
               tie: ast.Tie | None = None) -> ast.Decl:
        return ast.Decl(kind, str(name), type_, self._s(meta), self._t(name), tie)

    return method


def _definition(kind: str) -> Callable[
    [_ToAst, Meta, Token, tuple[ast.Name, ...] | None, tuple[ast.Stmt, ...]], ast.Definition
]:
    def method(self: _ToAst, meta: Meta, name: Token, params: tuple[ast.Name, ...] | None,
               body: tuple[ast.Stmt, ...]) -> ast.Definition:
        return ast.Definition(kind, str(name), params or (), body, self._s(meta), self._t(name))

    return method


@v_args(meta=True, inline=True)
class _ToAst(Transformer):
    """One method per grammar rule; each returns the AST node for it."""

    def __init__(self, path: Path):
        super().__init__()
        self.path = path

    def _s(self, meta: Meta) -> ast.Span:
        return _span(self.path, meta)

    def _t(self, tok: Token) -> ast.Span:
        return _token_span(self.path, tok)

    # expressions
    def int(self, meta, tok):
        digits = tok.replace("_", "").lstrip("0") or "0"
        if len(digits) > 19:  # past 2^62 for sure; also keeps int() away from huge literals
            raise DfslError([Diagnostic("E006", f"{tok[:20]}... ({len(digits)} digits) is too large (the limit "
                                        "is 2^62)", self._s(meta))])
        return ast.Int(int(digits), self._s(meta))

    def decimal(self, meta, tok):
        return ast.Decimal(float(tok), self._s(meta))

    def name(self, meta, tok):
        return ast.Name(str(tok), self._s(meta))

    add = _binary("+")
    sub = _binary("-")
    mul = _binary("*")
    div = _binary("/")
    mod = _binary("%")

    def neg(self, meta, operand):
        return ast.Neg(operand, self._s(meta))

    def keyword_arg(self, meta, name, value):
        return ast.KeywordArg(str(name), value, self._s(meta))

    def arg_list(self, meta, *args):
        return list(args)

    def call(self, meta, name, args):
        args = args or []
        positional = tuple(a for a in args if not isinstance(a, ast.KeywordArg))
        keywords = tuple(a for a in args if isinstance(a, ast.KeywordArg))
        return ast.Call(str(name), positional, keywords, self._s(meta), self._t(name))

    # statements
    def tensor_type(self, meta, dtype, *dims):
        return ast.TensorTypeExpr(ast.Name(str(dtype), self._t(dtype)), tuple(dims), self._s(meta))

    def tie_same(self, meta, storage):
        return ast.Tie(str(storage), "", self._s(meta))

    def tie_view(self, meta, view, storage):
        return ast.Tie(str(storage), str(view), self._s(meta))

    input_decl = _declaration("in")
    weight_decl = _declaration("weight")
    cache_decl = _declaration("cache")

    def let_stmt(self, meta, name, value):
        return ast.Let(str(name), value, self._s(meta), self._t(name))

    def assign_stmt(self, meta, target, call):
        return ast.Assign(str(target), call, self._s(meta), self._t(target))

    def for_stmt(self, meta, var, start, stop, body):
        return ast.For(str(var), start, stop, body, self._s(meta))

    def out_stmt(self, meta, name):
        return ast.Out(str(name), self._t(name))

    def body(self, meta, *stmts):
        return tuple(s for s in stmts if s is not None)

    # items
    def dotted_name(self, meta, *parts):
        return tuple(str(p) for p in parts)

    def import_stmt(self, meta, module):
        return ast.Import(module, self._s(meta))

    def const_def(self, meta, name, value):
        return ast.Const(str(name), value, self._s(meta), self._t(name))

    def param_list(self, meta, *names):
        return tuple(ast.Name(str(n), self._t(n)) for n in names)

    layer_def = _definition("layer")
    graph_def = _definition("graph")

    def binding(self, meta, name, value):
        return ast.Binding(str(name), value, self._s(meta), self._t(name))

    def model_def(self, meta, name, graph, *bindings):
        return ast.Model(
            str(name), ast.Name(str(graph), self._t(graph)), bindings, self._s(meta), self._t(name)
        )

    def draft_def(self, meta, name, graph, *bindings):
        return ast.Model(
            str(name), ast.Name(str(graph), self._t(graph)), bindings, self._s(meta), self._t(name), "draft"
        )

    def place_rule(self, meta, subject, tier):
        is_pattern = subject.type == "STRING"
        text = str(subject)[1:-1] if is_pattern else str(subject)
        return ast.PlaceRule(
            text, is_pattern, ast.Name(str(tier), self._t(tier)), self._s(meta), self._t(subject)
        )

    def place_def(self, meta, *rules):
        return ast.Place(rules, self._s(meta))

    def run_def(self, meta, name, *bindings):
        return ast.Run(str(name), bindings, self._s(meta))

    def start(self, meta, *items):
        return tuple(i for i in items if i is not None)


_FRIENDLY_TERMINALS = {
    "NAME": "a name",
    "INT": "an integer",
    "DECIMAL": "a decimal",
    "STRING": 'a "string"',
    "$END": "the end of the file",
}


def _describe_expected(expected: set[str]) -> str:
    lark = _lark()
    names = []
    for term in sorted(expected):
        if term in _FRIENDLY_TERMINALS:
            names.append(_FRIENDLY_TERMINALS[term])
            continue
        try:
            pattern = lark.get_terminal(term).pattern
        except KeyError:
            names.append(term)
            continue
        names.append(f"`{pattern.value}`" if pattern.type == "str" else term)
    names = sorted(set(names))
    if len(names) > 6:
        return ", ".join(names[:6]) + ", ..."
    return ", ".join(names)


def _end_of_text(source: str) -> tuple[int, int]:
    """The line and column just after the last non-blank character."""
    text = source.rstrip()
    line = text.count("\n") + 1
    return line, len(text) - (text.rfind("\n") + 1) + 1


def _syntax_diagnostic(path: Path, source: str, err: UnexpectedInput) -> Diagnostic:
    line, column = max(err.line, 1), max(err.column, 1)
    width = 1
    at_end = isinstance(err, UnexpectedEOF) or (isinstance(err, UnexpectedToken) and err.token.type == "$END")
    if at_end:
        line, column = _end_of_text(source)
    if isinstance(err, UnexpectedToken) and err.token.type == "$END":
        message = f"the file ends too early; expected {_describe_expected(err.expected)}"
    elif isinstance(err, UnexpectedToken):
        width = max(1, len(str(err.token)))
        message = f"unexpected `{err.token}`; expected {_describe_expected(err.expected)}"
    elif isinstance(err, UnexpectedCharacters):
        char = err.char if err.char.isprintable() else repr(err.char)[1:-1]
        message = f"unexpected character `{char}`"
    elif isinstance(err, UnexpectedEOF):
        message = f"the file ends too early; expected {_describe_expected(set(err.expected))}"
    else:  # pragma: no cover - lark has no other kinds
        message = "syntax error"
    span = ast.Span(path, line, column, line, column + width)
    return Diagnostic("E001", message, span, _syntax_help(err))


def _syntax_help(err: UnexpectedInput) -> str | None:
    if isinstance(err, UnexpectedToken) and err.token.type == "NAME" and "EQUAL" in err.expected:
        return "a statement is `name = operator(...)`, or starts with a keyword such as `weight` or `for`"
    return None


_NOT_CODE = re.compile(r'#[^\n]*|"[^"\n]*"')
_MALFORMED_NUMBER = re.compile(r"(?<![\w.])(\d(?:_?\d)*)(\.\d+|[A-Za-z]\w*)")
"""A number run into letters or a fraction (`4k`, `1e6`, `3072.5`): never valid, since a name
cannot start with a digit and sizes are integers."""
_UNITS = ("k", "m", "g")
"""Suffixes people write sizes with (4k, 1M): refused, since 4k may mean 4,000 or 4,096."""


def _malformed_number(path: Path, source: str, before: tuple[int, int]) -> Diagnostic | None:
    """An E001 that says what is wrong with the first malformed number at or before the line and
    column `before` (where the parser gave up), if there is one."""
    code = _NOT_CODE.sub(lambda m: " " * len(m.group()), source)
    for match in _MALFORMED_NUMBER.finditer(code):
        line = code.count("\n", 0, match.start()) + 1
        column = match.start() - (code.rfind("\n", 0, match.start()) + 1) + 1
        if (line, column) > before:
            return None
        digits, rest = match.group(1), match.group(2)
        span = ast.Span(path, line, column, line, column + len(match.group()))
        text = match.group() if len(match.group()) <= 24 else match.group()[:20] + "..."
        if rest.startswith("."):
            return Diagnostic("E001", f"`{text}` is not an integer: sizes and settings are whole "
                              "numbers", span, f"write a whole number, e.g. `{digits[:20]}`")
        # A number of thousands of digits is a mistake of another kind: no conversion for it.
        value = int(digits.replace("_", "")) if len(digits) <= 18 else 0
        if rest.lower() in _UNITS and value:
            power = _UNITS.index(rest.lower()) + 1
            fix = (f"write `{value * 1024 ** power}` (or `{value} * {1024 ** power}`) if you count in "
                   f"binary units, as context lengths are, or `{value * 1000 ** power}` in decimal ones")
        else:
            fix = "write the number out in full, e.g. `1_000_000`"
        return Diagnostic("E001", f"`{text}` is not a number: sizes are written as integers, "
                          "without units or exponents", span, fix)
    return None


def parse_text(source: str, path: Path) -> ast.File:
    """Parse one file's text; raise `DfslError` with a located E001 on a syntax error."""
    source = files.normalize(source)
    try:
        tree = _lark().parse(source)  # LALR: iterative, however deep the nesting
    except UnexpectedInput as err:
        at = _syntax_diagnostic(path, source, err)
        assert at.span is not None
        raise DfslError([_malformed_number(path, source, (at.span.line, at.span.column)) or at]) from None
    try:
        items = _ToAst(path).transform(tree)
    except VisitError as err:
        if isinstance(err.orig_exc, DfslError):
            raise err.orig_exc from None
        if not isinstance(err.orig_exc, RecursionError):
            raise
        raise DfslError([_too_deep(path, tree)]) from None
    except RecursionError:  # the transformer recurses once per level of the tree
        raise DfslError([_too_deep(path, tree)]) from None
    return ast.File(path, source, items)


_EXPRESSION_RULES = frozenset(("add", "sub", "mul", "div", "mod", "neg"))


def _too_deep(path: Path, tree: Tree) -> Diagnostic:
    """E017 at the outermost expression on the deepest path of `tree` (found without recursing:
    the tree is too deep for that), or at the file's start if no expression is on it."""
    height: dict[int, int] = {}
    stack: list[tuple[Tree, bool]] = [(tree, False)]
    while stack:
        node, children_done = stack.pop()
        subtrees = [c for c in node.children if isinstance(c, Tree)]
        if children_done:
            height[id(node)] = 1 + max((height[id(c)] for c in subtrees), default=0)
        else:
            stack.append((node, True))
            stack.extend((c, False) for c in subtrees)
    span = ast.Span(path, 1, 1, 1, 2)
    node = tree
    while subtrees := [c for c in node.children if isinstance(c, Tree)]:
        node = max(subtrees, key=lambda c: height[id(c)])
        if node.data in _EXPRESSION_RULES:
            span = _span(path, node.meta)
            break
    return Diagnostic("E017", "the file nests expressions too deeply", span,
                      "split the expression with `let` or `const`")


def parse_file(path: Path) -> ast.File:
    """Read and parse one `.dfl` file: a located E002 when it cannot be read as UTF-8 text (or is
    not a regular file), E017 when it is larger than `MAX_SOURCE_BYTES`."""
    try:
        text = files.read_text(path, MAX_SOURCE_BYTES)
    except files.FileReadError as err:
        raise DfslError([read_diagnostic(err, "a model file is a few kilobytes: is this the right file?")]) from None
    return parse_text(text, path)
