"""The typed AST of a `.dfl` file: frozen attrs nodes, each with the source span it came from."""

from __future__ import annotations

from pathlib import Path

import attrs


@attrs.frozen
class Span:
    """Where a node is: a file and 1-based line and column, with the end column on the same line."""

    path: Path
    line: int
    column: int
    end_line: int
    end_column: int


# Expressions -------------------------------------------------------------------------------


@attrs.frozen
class Int:
    value: int
    span: Span


@attrs.frozen
class Decimal:
    """`0.8`: a fraction, for the settings that take one (a run's `acceptance`)."""

    value: float
    span: Span


@attrs.frozen
class Name:
    name: str
    span: Span


@attrs.frozen
class BinOp:
    op: str  # one of + - * / %
    left: Expr
    right: Expr
    span: Span


@attrs.frozen
class Neg:
    operand: Expr
    span: Span


@attrs.frozen
class KeywordArg:
    name: str
    value: Expr
    span: Span


@attrs.frozen
class Call:
    """`f(a, b, key = c)`: an operator, a layer, or (in an expression) a target."""

    callee: str
    args: tuple[Expr, ...]
    kwargs: tuple[KeywordArg, ...]
    span: Span
    callee_span: Span


Expr = Int | Decimal | Name | BinOp | Neg | Call


# Statements inside layers and graphs --------------------------------------------------------


@attrs.frozen
class TensorTypeExpr:
    dtype: Name
    dims: tuple[Expr, ...]
    span: Span


@attrs.frozen
class Tie:
    """`= embed` or `= transpose(embed)` after a weight's type: the weight is a view of `storage`."""

    storage: str
    view: str
    """"" for the storage as it is, else the function written (`transpose`; no other is accepted)."""
    span: Span


@attrs.frozen
class Decl:
    """`in x : T`, `weight w : T` or `cache k : T`; a weight may be tied to another (`= transpose(e)`)."""

    kind: str  # "in", "weight", "cache"
    name: str
    type: TensorTypeExpr
    span: Span
    name_span: Span
    tie: Tie | None = None


@attrs.frozen
class Let:
    name: str
    value: Expr
    span: Span
    name_span: Span


@attrs.frozen
class Assign:
    target: str
    call: Call
    span: Span
    target_span: Span


@attrs.frozen
class For:
    var: str
    start: Expr
    stop: Expr
    body: tuple[Stmt, ...]
    span: Span


@attrs.frozen
class Out:
    name: str
    span: Span


Stmt = Decl | Let | Assign | For | Out


# Top-level items -----------------------------------------------------------------------------


@attrs.frozen
class Import:
    module: tuple[str, ...]
    span: Span


@attrs.frozen
class Const:
    name: str
    value: Expr
    span: Span
    name_span: Span


@attrs.frozen
class Definition:
    """A `layer` or a `graph`: parameters and a body of statements."""

    kind: str  # "layer" or "graph"
    name: str
    params: tuple[Name, ...]
    body: tuple[Stmt, ...]
    span: Span
    name_span: Span


@attrs.frozen
class Binding:
    name: str
    value: Expr
    span: Span
    name_span: Span


@attrs.frozen
class Model:
    """`model NAME : GRAPH { ... }`, or with `kind` "draft" the draft model of speculative decoding."""

    name: str
    graph: Name
    bindings: tuple[Binding, ...]
    span: Span
    name_span: Span
    kind: str = "model"  # "model" or "draft"


@attrs.frozen
class PlaceRule:
    """`weights -> hbm` (a class of tensors) or `"layers.*.w_down" -> ddr` (a name pattern)."""

    subject: str
    is_pattern: bool
    tier: Name
    span: Span
    subject_span: Span


@attrs.frozen
class Place:
    rules: tuple[PlaceRule, ...]
    span: Span


@attrs.frozen
class Run:
    name: str
    bindings: tuple[Binding, ...]
    span: Span


Item = Import | Const | Definition | Model | Place | Run


@attrs.frozen
class File:
    path: Path
    source: str
    items: tuple[Item, ...]
