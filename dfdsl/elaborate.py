"""Semantic checks: evaluates a loaded program into a `ResolvedModel` (dfdsl/model.py) with every
shape known.

Elaboration binds the model's values to its graph's parameters, evaluates constants and
dimensions, unrolls loops, instantiates each layer once per distinct set of parameter values
(inlining layers that call layers), infers every operator's result with the shared shape rules,
and applies the placement. Every problem becomes a located diagnostic; elaboration goes on after
an error where it can, so one run reports all independent errors.

A file with a `compose` block also resolves into a `Composition` (`composition_of`): which of its
models is the router and which are the experts, where they live, and where the requests come from.

The same program elaborates to four graphs: the decode step of its `model` or of its `draft`, and
the prefill pass of either, in which every `in` tensor holds each prompt token (`P` follows `B`
in its type, `shapes.with_prompt`) and the shape rules carry the prompt through every operator.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Collection, Iterator, Mapping
from pathlib import Path
from typing import NoReturn

import attrs

from dfdsl import ast
from dfdsl.composition import (
    DEFAULT_COUNT,
    GENERATORS,
    MAX_EXPERTS,
    MAX_REQUESTS,
    SETTINGS,
    Composition,
    ExpertGroup,
    StreamSpec,
)
from dfdsl.dialects import df, shapes
from dfdsl.dialects.shapes import DTYPE_BYTES, TIERS, TensorShape
from dfdsl.diagnostics import Collector, DfslError, did_you_mean
from dfdsl.hardware import display_name, target_name
from dfdsl.loader import Program, load
from dfdsl.model import LayerCall, ResolvedDecl, ResolvedLayer, ResolvedModel, ResolvedOp, RunConfig, RunSettings, Step

MAX_LAYER_CALLS = 4096
"""Layer instances in one model, after unrolling (E017): 10x the deepest real model."""
MAX_INT = 2**62
"""Integers past this are refused (E006): no real size comes near it."""
RUN_LIMITS: dict[str, tuple[int, int]] = {
    "batch": (1, 65536),
    "context": (1, 1 << 24),
    "tokens": (0, 1 << 20),
    "sockets": (1, 1024),
    "prompt": (0, 1 << 24),
    "chunk": (0, 1 << 24),
    "draft_tokens": (1, 64),
    "pipeline": (1, 64),
    "micro_batches": (1, 65536),
}
"""Bounds on the integer run settings (E019), wide enough for any real deployment. `tokens` may
be 0 only in a request (a prompt alone); `prompt` and `chunk` are 0 when not used; no published
speculative setup drafts more than ~10 tokens per step; 64 pipeline stages of 16 sockets are
a thousand sockets."""
ACCEPTANCE_LIMITS = (0.0, 1.0)
"""The draft tokens' acceptance rate is a probability (E019)."""
TENSOR_CLASSES = df.PLACEMENT_CLASSES
DEFAULT_PLACEMENT = {"weights": "hbm", "kv_cache": "hbm", "activations": "sram", "inputs": "hbm"}
DECL_CLASS = {decl.KEYWORD: decl.PLACEMENT_CLASS for decl in df.DECLS}
RunValue = int | float | str
"""A run setting's value: an integer, the acceptance (a fraction) or the target's name."""
DEFAULT_RUN: dict[str, RunValue] = {
    "batch": 1, "context": 4096, "tokens": 128, "sockets": 8, "target": "sn40l",
    **{f.name: f.default for f in attrs.fields(RunSettings) if f.default not in (attrs.NOTHING, None)},
}
"""Each run setting's value when neither the file nor the command line gives one: the sizes and
the machine here, the others `RunSettings`' defaults (`acceptance` has none: a run with a draft
must state it)."""
RUN_SETTING_NAMES = ("batch", "context", "tokens", "sockets", "target", "prompt", "chunk", "draft_tokens",
                     "acceptance", "pipeline", "micro_batches")
"""Every setting a `run` block may give (the fields of `RunConfig`), in the order docs/language.md
lists them."""
SPECULATION_SETTINGS = ("draft_tokens", "acceptance")
"""The run settings that only a file with a `draft` may give."""
COMPOSITION_CLASSES = ("router", "experts")
"""What a `place` block may place besides tensor classes in a file with a `compose` block: where
the router's and the experts' weights live (`router -> hbm; experts -> ddr`)."""


@attrs.frozen
class DType:
    name: str


@attrs.frozen
class Target:
    name: str
    sockets: int | None


@attrs.frozen
class Tensor:
    """A tensor value during elaboration: its SSA name in the resolved graph and its type."""

    ref: str
    type: TensorShape


class _Poison:
    """The value of a name whose definition had an error: using it reports nothing more."""


POISON = _Poison()
Value = int | float | str | DType | Target | Tensor | _Poison  # str: the symbolic dims "B" and "S"


class _Abort(Exception):
    """Stops elaborating one statement after its error was recorded."""


class _Scope:
    def __init__(self, parent: _Scope | None = None):
        self.parent = parent
        self.values: dict[str, Value] = {}

    def lookup(self, name: str) -> Value | None:
        scope: _Scope | None = self
        while scope is not None:
            if name in scope.values:
                return scope.values[name]
            scope = scope.parent
        return None

    def names(self) -> Iterator[str]:
        scope: _Scope | None = self
        while scope is not None:
            yield from scope.values
            scope = scope.parent


class _LayerBuilder:
    """Collects one layer instance's arguments and operators while its body is elaborated."""

    def __init__(self) -> None:
        self.inputs: list[ResolvedDecl] = []
        self.weights: list[ResolvedDecl] = []
        self.caches: list[ResolvedDecl] = []
        self.ops: list[ResolvedOp] = []
        self.prefixes: set[str] = set()
        self.spans: dict[str, ast.Span] = {}
        """Where each weight and cache (by SSA name) is declared, for the unused-tensor check."""


class Elaborator:
    def __init__(self, program: Program, overrides: Mapping[str, RunValue] | None = None,
                 targets: Collection[str] | None = None, *, prefill: bool = False, draft: bool = False,
                 model: str = "", weights_tier: str = ""):
        self.program = program
        self.model_name = model
        """Which of the file's models to elaborate, by name, in a file with a composition ("" the first)."""
        self.weights_tier = weights_tier
        """Where the weights go whatever the `place` block says ("" as it says): a composition's
        router and experts run from the tier of their role."""
        self.prefill = prefill
        """Elaborate the prefill pass: every `in` tensor holds each prompt token."""
        self.kind = "draft" if draft else "model"
        """Which of the file's models to elaborate: its `model` or its `draft`."""
        self.targets = targets
        self.overrides = dict(overrides or {})
        self.errors = Collector()
        self.counter = 0
        self.instances: dict[tuple, ResolvedLayer] = {}
        self.layers: dict[tuple, ResolvedLayer] = {}
        self.symbols: set[str] = set()
        self.steps: list[Step] = []
        self.decl_names: dict[str, ast.Span] = {}
        self.graph_spans: dict[str, ast.Span] = {}
        """Where each of the graph's own declarations (by SSA name) is written."""
        self.empty_loops: list[tuple[ast.For, str, int]] = []
        """Loops of the graph that ran no iterations, with their upper bound's name (if it is one) and value."""
        self.layer_calls = 0
        self.pipeline_at: tuple[int, ast.Span | None] = (1, None)
        self.place_rules: list[ast.PlaceRule] = []
        self.placement = dict(DEFAULT_PLACEMENT)
        self.explicit_classes: set[str] = set()
        self.explicit_patterns: set[str] = set()
        self.context: list[str] = []
        self._root: _Scope | None = None
        """Where the statement being elaborated was instantiated from, innermost last."""

    # -- helpers -------------------------------------------------------------------------

    def fresh(self, hint: str) -> str:
        self.counter += 1
        return f"{hint}_{self.counter}"

    def fail(self, code: str, message: str, span: ast.Span | None, help: str | None = None) -> NoReturn:
        self.errors.error(code, message, span, help, notes=tuple(reversed(self.context)))
        raise _Abort

    # -- expressions ---------------------------------------------------------------------

    def eval(self, expr: ast.Expr, scope: _Scope) -> Value:
        if isinstance(expr, ast.Int):
            if expr.value > MAX_INT:
                self.fail("E006", f"{expr.value} is too large (the limit is 2^62)", expr.span)
            return expr.value
        if isinstance(expr, ast.Decimal):
            return expr.value
        if isinstance(expr, ast.Name):
            value = scope.lookup(expr.name)
            if value is None:
                self.fail("E003", f"unknown name `{expr.name}`", expr.span,
                          did_you_mean(expr.name, scope.names()))
            if value is POISON:
                raise _Abort
            return value
        if isinstance(expr, ast.Neg):
            return -self.eval_int(expr.operand, scope, "a negation")
        if isinstance(expr, ast.BinOp):
            left = self.eval_int(expr.left, scope, f"`{expr.op}`")
            right = self.eval_int(expr.right, scope, f"`{expr.op}`")
            if expr.op in "/%" and right == 0:
                self.fail("E006", "division by zero", expr.span)
            if expr.op == "/" and left % right:
                self.fail("E006", f"{left} / {right} is not a whole number", expr.span,
                          "sizes are integers: check the operands, or use `%` to see the remainder")
            result = {
                "+": lambda: left + right, "-": lambda: left - right, "*": lambda: left * right,
                "/": lambda: left // right, "%": lambda: left % right,
            }[expr.op]()
            if abs(result) > MAX_INT:
                self.fail("E006", f"{left} {expr.op} {right} is too large (the limit is 2^62)", expr.span)
            return result
        if isinstance(expr, ast.Call):
            if expr.callee in shapes.RULES or expr.callee in self.program.definitions:
                self.fail("E010", f"`{expr.callee}(...)` cannot be nested in an expression: operands are names",
                          expr.span, f"write `t = {expr.callee}(...)` on its own line and pass `t`")
            return self.eval_target(expr, scope)
        raise AssertionError(expr)

    def eval_int(self, expr: ast.Expr, scope: _Scope, what: str) -> int:
        value = self.eval(expr, scope)
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail("E005", f"{what} needs an integer, got {_describe(value)}", expr.span)
        return value

    def eval_fraction(self, expr: ast.Expr, scope: _Scope, what: str) -> float:
        value = self.eval(expr, scope)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        return self.fail("E005", f"{what} needs a number such as 0.8, got {_describe(value)}", expr.span)

    def eval_target(self, call: ast.Call, scope: _Scope) -> Target:
        if call.args:
            self.fail("E010", f"`{call.callee}(...)` takes only `sockets = N`", call.span)
        sockets = None
        for kw in call.kwargs:
            if kw.name != "sockets":
                self.fail("E010", f"a target takes `sockets`, not `{kw.name}`", kw.span,
                          did_you_mean(kw.name, ["sockets"]))
            sockets = self.eval_int(kw.value, scope, "`sockets`")
        return Target(call.callee, sockets)

    def eval_dim(self, expr: ast.Expr, scope: _Scope) -> int | str:
        value = self.eval(expr, scope)
        if isinstance(value, str):
            return value
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail("E005", f"a dimension must be an integer, B or S; got {_describe(value)}", expr.span)
        if value <= 0:
            self.fail("E007", f"dimension is {value}; sizes must be positive", expr.span)
        return value

    def eval_type(self, texpr: ast.TensorTypeExpr, scope: _Scope) -> TensorShape:
        dtype = self.eval(texpr.dtype, scope)
        if not isinstance(dtype, DType):
            self.fail("E005", f"`{texpr.dtype.name}` is not a dtype", texpr.dtype.span,
                      "dtypes are " + ", ".join(DTYPE_BYTES))
        dims = []
        ok = True
        for d in texpr.dims:
            try:
                dims.append(self.eval_dim(d, scope))
            except _Abort:
                ok = False
        if not ok:
            raise _Abort
        return TensorShape(tuple(dims), dtype.name)

    # -- statements -----------------------------------------------------------------------

    def elaborate_body(self, body: tuple[ast.Stmt, ...], scope: _Scope, *, layer: _LayerBuilder | None,
                       prefix: str, outputs: list[tuple[Tensor, ast.Span]]) -> None:
        for stmt in body:
            try:
                self.elaborate_stmt(stmt, scope, layer=layer, prefix=prefix, outputs=outputs)
            except _Abort:
                for name in _defined_names(stmt):
                    scope.values[name] = POISON

    def define(self, scope: _Scope, name: str, value: Value, span: ast.Span, *, rebind_tensor: bool) -> None:
        existing = scope.values.get(name)
        if existing is not None and existing is not POISON:
            if not (rebind_tensor and isinstance(existing, Tensor)):
                self.fail("E004", f"`{name}` is already defined in this scope", span,
                          "pick another name")
        scope.values[name] = value

    def elaborate_stmt(self, stmt: ast.Stmt, scope: _Scope, *, layer: _LayerBuilder | None,
                       prefix: str, outputs: list[tuple[Tensor, ast.Span]]) -> None:
        if isinstance(stmt, ast.Let):
            self.define(scope, stmt.name, self.eval(stmt.value, scope), stmt.name_span, rebind_tensor=False)
        elif isinstance(stmt, ast.Decl):
            self.elaborate_decl(stmt, scope, layer, prefix)
        elif isinstance(stmt, ast.Assign):
            result = self.elaborate_call(stmt, scope, layer, prefix)
            self.define(scope, stmt.target, result, stmt.target_span, rebind_tensor=True)
        elif isinstance(stmt, ast.For):
            self.elaborate_for(stmt, scope, layer, prefix, outputs)
        elif isinstance(stmt, ast.Out):
            value = scope.lookup(stmt.name)
            if value is None:
                self.fail("E003", f"unknown name `{stmt.name}`", stmt.span, did_you_mean(stmt.name, scope.names()))
            if value is POISON:
                raise _Abort
            if not isinstance(value, Tensor):
                self.fail("E005", f"`out` needs a tensor, `{stmt.name}` is {_describe(value)}", stmt.span)
            outputs.append((value, stmt.span))

    def decl_type(self, decl: ast.Decl, scope: _Scope) -> TensorShape:
        """A declaration's type; in a prefill, an `in` tensor holds every prompt token (`P` after `B`)."""
        type_ = self.eval_type(decl.type, scope)
        if self.prefill and decl.kind == "in":
            return TensorShape(shapes.with_prompt(type_.shape), type_.dtype)
        return type_

    def elaborate_decl(self, decl: ast.Decl, scope: _Scope, layer: _LayerBuilder | None, prefix: str) -> None:
        type_ = self.decl_type(decl, scope)
        self.check_decl_type(decl, type_)
        full_name = prefix + decl.name
        ref = self.fresh(decl.name)
        resolved = ResolvedDecl(decl.kind, ref, full_name, type_, self.tier_for(decl.kind, full_name))
        if decl.tie is not None:
            storage = self.tie_storage(decl, decl.tie, type_, scope)
            resolved = attrs.evolve(resolved, tier=storage.tier, tied_to=storage.name)
        if layer is not None:
            {"in": layer.inputs, "weight": layer.weights, "cache": layer.caches}[decl.kind].append(resolved)
        else:
            if full_name in self.decl_names:
                first = self.decl_names[full_name]
                self.fail("E004", f"tensor `{full_name}` is declared twice (first at line {first.line})",
                          decl.name_span, "give each weight, cache and input of a graph its own name")
            self.decl_names[full_name] = decl.name_span
            self.graph_spans[ref] = decl.name_span
            self.steps.append(resolved)
        self.define(scope, decl.name, Tensor(ref, type_), decl.name_span, rebind_tensor=False)

    def tie_storage(self, decl: ast.Decl, tie: ast.Tie, type_: TensorShape, scope: _Scope) -> ResolvedDecl:
        """The weight `decl` is tied to, after checking the tie: an untied weight of this graph,
        of the same dtype, whose shape (transposed if the tie says so) is `decl`'s."""
        if tie.view not in ("", "transpose"):
            self.fail("E010", f"a weight is tied to another as it is or transposed, not `{tie.view}(...)`",
                      tie.span, f"write `= {tie.storage}` or `= transpose({tie.storage})`")
        value = scope.lookup(tie.storage)
        if value is None:
            self.fail("E003", f"unknown name `{tie.storage}`", tie.span, did_you_mean(tie.storage, scope.names()))
        if value is POISON:
            raise _Abort
        storage = next((s for s in self.steps if isinstance(s, ResolvedDecl) and isinstance(value, Tensor)
                        and s.ref == value.ref), None)
        if storage is None or storage.kind != "weight" or storage.tied_to:
            self.fail("E005", f"`{tie.storage}` is not an untied weight of this graph, so `{decl.name}` cannot "
                      "be tied to it", tie.span, "tie a weight to a weight declared above it in the same graph")
        assert storage is not None
        shape = storage.type.shape[::-1] if tie.view else storage.type.shape
        if tie.view and len(shape) != 2:
            self.fail("E008", f"`transpose` takes a 2-D weight; `{tie.storage}` is {storage.type}", tie.span)
        if TensorShape(shape, storage.type.dtype) != type_:
            seen = f"transpose({tie.storage})" if tie.view else f"`{tie.storage}`"
            self.fail("E008", f"`{decl.name}` is {type_}, but {seen} is {TensorShape(shape, storage.type.dtype)}",
                      tie.span, "a tied weight has its storage's dtype and shape (reversed by `transpose`)")
        return storage

    def tier_for(self, kind: str, full_name: str) -> str:
        tier = self.placement[DECL_CLASS[kind]]
        for rule in self.place_rules:
            if rule.is_pattern and fnmatch.fnmatchcase(full_name, rule.subject):
                tier = rule.tier.name
        return tier

    def elaborate_for(self, stmt: ast.For, scope: _Scope, layer: _LayerBuilder | None, prefix: str,
                      outputs: list[tuple[Tensor, ast.Span]]) -> None:
        if layer is not None:
            self.fail("E018", "loops belong in a graph, not inside a layer", stmt.span,
                      "move the loop to the graph that calls this layer")
        start = self.eval_int(stmt.start, scope, "a loop bound")
        stop = self.eval_int(stmt.stop, scope, "a loop bound")
        if start < 0 or stop < start:
            self.fail("E012", f"loop `{stmt.var} in {start}..{stop}` runs backwards" if stop < start
                      else f"loop bounds must not be negative, got {start}", stmt.span,
                      "a loop runs from its first bound up to, not including, its second: `0..layers`; "
                      "equal bounds run no iterations")
        if stop - start + self.layer_calls > MAX_LAYER_CALLS:
            self.fail("E017", f"the loop would unroll {stop - start:,} iterations; the limit is "
                      f"{MAX_LAYER_CALLS:,} layer calls per model", stmt.span)
        if start == stop:
            self.empty_loops.append((stmt, stmt.stop.name if isinstance(stmt.stop, ast.Name) else "", stop))
        for i in range(start, stop):
            inner = _Scope(scope)
            inner.values[stmt.var] = i
            before = len(self.errors.diagnostics)
            self.elaborate_body(stmt.body, inner, layer=None, prefix=f"layers.{i}.", outputs=outputs)
            # Tensors rebound in the loop body carry to the next iteration and out of the loop.
            for name, value in inner.values.items():
                if name != stmt.var and isinstance(value, Tensor) and isinstance(scope.lookup(name), Tensor):
                    _assign_outer(scope, name, value)
            if len(self.errors.diagnostics) > before:
                break  # the same error would repeat in every iteration

    # -- calls -------------------------------------------------------------------------------

    def elaborate_call(self, stmt: ast.Assign, scope: _Scope, layer: _LayerBuilder | None, prefix: str) -> Tensor:
        call = stmt.call
        if call.callee in shapes.RULES:
            return self.elaborate_operator(stmt, scope, layer)
        definition = self.program.definitions.get(call.callee)
        if definition is None or definition.kind != "layer":
            known = [*shapes.RULES, *(d.name for d in self.program.definitions.values() if d.kind == "layer")]
            what = "a graph, not a layer" if definition is not None else "not an operator or a layer"
            self.fail("E009", f"`{call.callee}` is {what}", call.callee_span, did_you_mean(call.callee, known)
                      or "operators are " + ", ".join(shapes.RULES))
        return self.elaborate_layer_call(stmt, definition, scope, layer, prefix)

    def _tensor_args(self, call: ast.Call, scope: _Scope) -> list[Tensor]:
        tensors: list[Tensor] = []
        bad = False
        for arg in call.args:
            try:
                value = self.eval(arg, scope)
                if not isinstance(value, Tensor):
                    self.fail("E005", f"`{call.callee}` takes tensors as positional arguments, got "
                              f"{_describe(value)}", arg.span, "integer settings go by keyword: `heads = 32`")
                tensors.append(value)
            except _Abort:
                bad = True
        if bad:
            raise _Abort
        return tensors

    def elaborate_operator(self, stmt: ast.Assign, scope: _Scope, layer: _LayerBuilder | None) -> Tensor:
        call = stmt.call
        tensors = self._tensor_args(call, scope)
        allowed = shapes.OPERATOR_ATTRS.get(call.callee, ())
        int_attrs: dict[str, int] = {}
        for kw in call.kwargs:
            if kw.name not in allowed:
                hint = did_you_mean(kw.name, allowed) or (
                    f"`{call.callee}` takes " + ", ".join(f"`{a}`" for a in allowed) if allowed
                    else f"`{call.callee}` takes no settings")
                self.fail("E010", f"`{call.callee}` has no setting `{kw.name}`", kw.span, hint)
            int_attrs[kw.name] = self.eval_int(kw.value, scope, f"`{kw.name}`")
            if int_attrs[kw.name] <= 0:
                self.fail("E007", f"`{kw.name}` is {int_attrs[kw.name]}; it must be positive", kw.value.span)
        missing = [a for a in allowed if a not in int_attrs]
        if missing:
            self.fail("E010", f"`{call.callee}` needs " + ", ".join(f"`{m} = ...`" for m in missing),
                      call.span)
        try:
            result = shapes.infer(call.callee, [t.type for t in tensors], int_attrs)
        except shapes.ShapeError as err:
            span = call.args[err.operand].span if err.operand is not None and err.operand < len(call.args) else call.span
            self.fail("E008", err.message, span)
        ref = self.fresh(stmt.target)
        op = ResolvedOp(call.callee, tuple(t.ref for t in tensors), tuple(sorted(int_attrs.items())), ref, result)
        (layer.ops if layer is not None else self.steps).append(op)
        return Tensor(ref, result)

    def bind_params(self, call: ast.Call, definition: ast.Definition, caller: _Scope) -> _Scope:
        """A callee's parameters: keyword arguments first, else the caller's names of the same name."""
        scope = self.root_scope()
        params = [p.name for p in definition.params]
        given: dict[str, Value] = {}
        for kw in call.kwargs:
            if kw.name not in params:
                self.fail("E010", f"layer `{definition.name}` has no parameter `{kw.name}`", kw.span,
                          did_you_mean(kw.name, params))
            given[kw.name] = self.eval(kw.value, caller)
        missing = []
        for p in params:
            value = given[p] if p in given else caller.lookup(p)
            if value is None:
                missing.append(p)
            elif isinstance(value, Tensor):
                self.fail("E005", f"parameter `{p}` of `{definition.name}` must be an integer or a dtype, "
                          f"and the caller's `{p}` is a tensor", call.span, f"pass it explicitly: `{p} = ...`")
            else:
                scope.values[p] = value
        if missing:
            self.fail("E010", f"`{definition.name}` needs " + ", ".join(f"`{m}`" for m in missing)
                      + "; the caller has no such names", call.span,
                      "pass them as keyword arguments, or define them in the caller")
        return scope

    def elaborate_layer_call(self, stmt: ast.Assign, definition: ast.Definition, scope: _Scope,
                             layer: _LayerBuilder | None, prefix: str) -> Tensor:
        call = stmt.call
        tensors = self._tensor_args(call, scope)
        params = self.bind_params(call, definition, scope)
        if layer is not None:
            # A layer calling a layer: inline the callee's body into this instance.
            inline_prefix = f"{prefix}{definition.name}."
            n = 1
            while inline_prefix in layer.prefixes:
                n += 1
                inline_prefix = f"{prefix}{definition.name}{n}."
            layer.prefixes.add(inline_prefix)
            return self.instantiate_into(definition, params, tensors, call, layer, prefix=inline_prefix)
        self.layer_calls += 1
        if self.layer_calls > MAX_LAYER_CALLS:
            self.fail("E017", f"more than {MAX_LAYER_CALLS:,} layer calls in one model", call.span)
        key = (definition.name, tuple(sorted((k, _key(v)) for k, v in params.values.items())),
               tuple(t.type for t in tensors))
        if key not in self.instances:
            self.instances[key] = self.instantiate(definition, params, tensors, call)
        template = self.instances[key]
        names = prefix if prefix else f"{definition.name}."
        decls = []
        for d in (*template.weights, *template.caches):
            full_name = names + d.name
            if full_name in self.decl_names:
                self.fail("E004", f"tensor `{full_name}` is declared twice", call.span,
                          "loops over layers must not overlap (check their bounds), and a layer called "
                          "outside a loop names its tensors after itself: call it once, or from a loop")
            self.decl_names[full_name] = call.span
            decls.append(ResolvedDecl(d.kind, self.fresh(d.name), full_name, d.type,
                                      self.tier_for(d.kind, full_name)))
        # Layers whose tensors sit in different tiers are different layers (one signature each).
        tiers = tuple(d.tier for d in decls)
        if (key, tiers) not in self.layers:
            self.layers[(key, tiers)] = self.with_tiers(template, tiers)
        resolved = self.layers[(key, tiers)]
        self.steps.extend(decls)
        ref = self.fresh(stmt.target)
        self.steps.append(LayerCall(resolved.symbol, (*(t.ref for t in tensors), *(d.ref for d in decls)),
                                    ref, resolved.output_type))
        return Tensor(ref, resolved.output_type)

    def instantiate(self, definition: ast.Definition, params: _Scope, tensors: list[Tensor],
                    call: ast.Call) -> ResolvedLayer:
        """The layer's body for these parameters, its tensors not yet placed."""
        builder = _LayerBuilder()
        out = self.instantiate_into(definition, params, tensors, call, builder, prefix="")
        return ResolvedLayer(definition.name, tuple(builder.inputs), tuple(builder.weights),
                             tuple(builder.caches), tuple(builder.ops), out.ref, out.type)

    def with_tiers(self, template: ResolvedLayer, tiers: tuple[str, ...]) -> ResolvedLayer:
        """A placed copy of a layer instance, under a symbol of its own."""
        symbol = template.symbol
        n = 1
        while symbol in self.symbols:
            n += 1
            symbol = f"{template.symbol}_{n}"
        self.symbols.add(symbol)
        placed = [attrs.evolve(d, tier=t) for d, t in zip((*template.weights, *template.caches), tiers)]
        return attrs.evolve(template, symbol=symbol, weights=tuple(placed[: len(template.weights)]),
                            caches=tuple(placed[len(template.weights):]))

    def instantiate_into(self, definition: ast.Definition, params: _Scope, tensors: list[Tensor],
                         call: ast.Call, builder: _LayerBuilder, prefix: str) -> Tensor:
        where = call.span
        settings = ", ".join(f"{p.name} = {_key(params.values[p.name])}" for p in definition.params
                             if p.name in params.values)
        self.context.append(f"in layer `{definition.name}` ({settings}) called at "
                            f"{where.path}:{where.line}:{where.column}")
        try:
            return self._instantiate_body(definition, params, tensors, call, builder, prefix)
        finally:
            self.context.pop()

    def _instantiate_body(self, definition: ast.Definition, params: _Scope, tensors: list[Tensor],
                          call: ast.Call, builder: _LayerBuilder, prefix: str) -> Tensor:
        scope = _Scope(params)
        inputs = [s for s in definition.body if isinstance(s, ast.Decl) and s.kind == "in"]
        if len(inputs) != len(tensors):
            self.fail("E010", f"layer `{definition.name}` takes {len(inputs)} tensor input(s), "
                      f"got {len(tensors)}", call.span)
        outputs: list[tuple[Tensor, ast.Span]] = []
        inner_prefix = prefix
        inlined = bool(prefix)
        errors_before = len(self.errors.diagnostics)
        for stmt in definition.body:
            try:
                if isinstance(stmt, ast.Decl) and stmt.kind == "in":
                    declared = self.decl_type(stmt, scope)
                    given = tensors[inputs.index(stmt)]
                    if declared != given.type:
                        self.fail("E008", f"`{definition.name}` expects `{stmt.name}` to be {declared}, "
                                  f"got {given.type}", call.args[inputs.index(stmt)].span)
                    if inlined:
                        scope.values[stmt.name] = given
                    else:
                        ref = self.fresh(stmt.name)
                        builder.inputs.append(
                            ResolvedDecl("in", ref, stmt.name, declared, self.placement["activations"]))
                        scope.values[stmt.name] = Tensor(ref, declared)
                    continue
                if isinstance(stmt, ast.Decl):
                    if stmt.tie is not None:
                        self.fail("E018", f"weight `{stmt.name}` is tied inside a layer; ties belong in a graph",
                                  stmt.tie.span, "declare the tied weight in the graph and pass it to the layer")
                    type_ = self.eval_type(stmt.type, scope)
                    self.check_decl_type(stmt, type_)
                    ref = self.fresh(stmt.name)
                    builder.spans[ref] = stmt.name_span
                    decl = ResolvedDecl(stmt.kind, ref, inner_prefix + stmt.name, type_, "")
                    (builder.weights if stmt.kind == "weight" else builder.caches).append(decl)
                    self.define(scope, stmt.name, Tensor(ref, type_), stmt.name_span, rebind_tensor=False)
                    continue
                self.elaborate_stmt(stmt, scope, layer=builder, prefix=inner_prefix, outputs=outputs)
            except _Abort:
                for name in _defined_names(stmt):
                    scope.values[name] = POISON
        if len(self.errors.diagnostics) > errors_before:
            raise _Abort
        if len(outputs) != 1:
            self.fail("E018", f"layer `{definition.name}` must end with exactly one `out`, found {len(outputs)}",
                      definition.name_span, "add `out NAME` naming the layer's result")
        if not inlined:
            read = {ref for op in builder.ops for ref in op.operands}
            self.check_read((*builder.weights, *builder.caches), read, builder.spans)
        return outputs[0][0]

    def check_read(self, decls: Collection[ResolvedDecl], read: Collection[str], spans: Mapping[str, ast.Span]) -> None:
        """An error for each weight or cache among `decls` that no operator reads: it would be
        held in memory, and counted in the model's size, for nothing."""
        for decl in decls:
            if decl.ref not in read:
                what = "weight" if decl.kind == "weight" else "cache"
                self.errors.error("E018", f"{what} `{decl.name}` is declared but no operator reads it",
                                  spans.get(decl.ref), f"pass `{decl.name.rsplit('.', 1)[-1]}` to the operator "
                                  f"that should read it, or remove the declaration",
                                  notes=tuple(reversed(self.context)))

    def check_decl_type(self, stmt: ast.Decl, type_: TensorShape) -> None:
        if stmt.kind == "weight" and set(type_.shape) & set(shapes.SYMBOLIC_DIMS):
            self.fail("E005", f"weight `{stmt.name}` cannot depend on B or S", stmt.type.span,
                      "weights are read once per step whatever the batch; use `cache` for per-sequence state")
        if stmt.kind == "cache" and "S" not in type_.shape:
            self.fail("E005", f"cache `{stmt.name}` needs a context dimension S", stmt.type.span,
                      "a KV cache is `dtype[B, S, kv_heads, head_dim]`")

    # -- the model ----------------------------------------------------------------------------

    def root_scope(self) -> _Scope:
        """Built-in names and the program's constants (evaluated once), under a fresh child scope."""
        if self._root is None:
            root = _Scope()
            for name in DTYPE_BYTES:
                root.values[name] = DType(name)
            root.values["B"] = "B"
            root.values["S"] = "S"
            builtin = set(root.values)
            for const in self.program.consts:
                try:
                    if const.name in root.values:
                        what = "a built-in name" if const.name in builtin else "already a constant"
                        self.fail("E004", f"`{const.name}` is {what}", const.name_span, "pick another name")
                    root.values[const.name] = self.eval(const.value, root)
                except _Abort:
                    root.values.setdefault(const.name, POISON)
            self._root = root
        return _Scope(self._root)

    def elaborate_place(self, items: tuple[ast.Item, ...]) -> None:
        places = [i for i in items if isinstance(i, ast.Place)]
        for extra in places[1:]:
            self.errors.error("E004", "a model has one `place` block", extra.span, "merge the rules into the first")
        for rule in places[0].rules if places else ():
            if rule.tier.name not in TIERS:
                self.errors.error("E011", f"unknown memory tier `{rule.tier.name}`", rule.tier.span,
                                  did_you_mean(rule.tier.name, TIERS) or "tiers are " + ", ".join(TIERS))
                continue
            if rule.is_pattern:
                self.place_rules.append(rule)
                self.explicit_patterns.add(rule.subject)
            elif rule.subject in COMPOSITION_CLASSES:
                if not any(isinstance(i, ast.Compose) for i in self.program.main.items):
                    self.errors.error("E011", f"`{rule.subject}` places a composition's {rule.subject}, and the "
                                      "file has no `compose` block", rule.subject_span,
                                      "add `compose NAME { router = ...; experts = ... }`, or remove the rule")
                elif rule.tier.name == "sram":
                    self.errors.error("E011", f"a composition's {rule.subject} live in hbm or ddr, not sram",
                                      rule.tier.span, f"`{rule.subject} -> hbm` or `{rule.subject} -> ddr`")
            elif rule.subject in TENSOR_CLASSES:
                self.placement[rule.subject] = rule.tier.name
                self.explicit_classes.add(rule.subject)
            else:
                self.errors.error("E011", f"unknown tensor class `{rule.subject}`", rule.subject_span,
                                  did_you_mean(rule.subject, TENSOR_CLASSES)
                                  or 'classes are weights, kv_cache, activations, inputs; quote a name pattern: "layers.*.wq"')

    def elaborate_parallel(self, items: tuple[ast.Item, ...], scope: _Scope) -> df.Parallel:
        """The `parallel` block, with `--parallel` (the override `parallel`, `key=value,...` text)
        replacing the settings it gives."""
        blocks = [i for i in items if isinstance(i, ast.Parallel)]
        for extra in blocks[1:]:
            self.errors.error("E016", "a file has one `parallel` block", extra.span, "merge the settings into the first")
        given: dict[str, str | float | bool] = {}
        spans: dict[str, ast.Span] = {}
        for binding in blocks[0].bindings if blocks else ():
            if binding.name not in df.PARALLEL_SETTINGS:
                self.errors.error("E016", f"`parallel` has no setting `{binding.name}`", binding.name_span,
                                  did_you_mean(binding.name, df.PARALLEL_SETTINGS)
                                  or "settings are " + ", ".join(df.PARALLEL_SETTINGS))
                continue
            if binding.name in given:
                self.errors.error("E004", f"`{binding.name}` is set twice", binding.name_span)
                continue
            spans[binding.name] = binding.value.span
            try:
                if binding.name == "imbalance":
                    given["imbalance"] = self.eval_fraction(binding.value, scope, "`imbalance`")
                elif isinstance(binding.value, ast.Name):
                    given[binding.name] = binding.value.name
                else:
                    choices = df.SPLITS.get(binding.name, ("on", "off"))
                    self.fail("E005", f"`{binding.name}` takes " + " or ".join(choices), binding.value.span,
                              f"write `{binding.name} = {choices[-1]}`")
            except _Abort:
                pass
        cli = self.overrides.get("parallel")
        from_cli: set[str] = set()
        if isinstance(cli, str):
            try:
                parts = df.Parallel.parts(cli)
            except df.ParallelError as err:
                self.errors.error("E016", f"--parallel {cli}: {err.message}", None,
                                  "give --parallel attention=data,experts=expert (settings: "
                                  + ", ".join(df.PARALLEL_SETTINGS) + ")")
                return df.Parallel()
            given.update(parts)
            from_cli = set(parts)
        try:
            return df.Parallel.of(given)
        except df.ParallelError as err:
            code = "E019" if err.key == "imbalance" else "E016"
            where = " (on the command line)" if err.key in from_cli else ""
            self.errors.error(code, err.message + where, None if err.key in from_cli else spans.get(err.key))
            return df.Parallel()

    def unknown_cli_target(self, name: str) -> None:
        """E016 for a `--target` the targets do not name (the file's own target is checked where it is written)."""
        names = [display_name(t) for t in sorted(self.targets or ())]
        spelled, _, count = display_name(name).partition(":")
        if count and target_name(spelled) in (self.targets or ()):
            hint = f"--target takes a name alone: write --target {spelled} --sockets {count}"
        else:
            hint = did_you_mean(display_name(name), names) or "targets are " + ", ".join(names)
        self.errors.error("E016", f"--target {display_name(name)}: unknown target (on the command line)", None, hint)

    def elaborate_run(self, items: tuple[ast.Item, ...], scope: _Scope, draft: ast.Span | None) -> RunConfig:
        """The run settings; `draft` is where the file's draft model is named (None: it has none)."""
        runs = [i for i in items if isinstance(i, ast.Run)]
        for extra in runs[1:]:
            self.errors.error("E016", "a file has one `run` block", extra.span)
        values: dict[str, RunValue] = dict(DEFAULT_RUN)
        spans: dict[str, ast.Span] = {}
        for binding in runs[0].bindings if runs else ():
            spans[binding.name] = binding.span
            try:
                if binding.name == "target":
                    target = self.eval(binding.value, scope)
                    if not isinstance(target, Target):
                        self.fail("E005", "`target` names a machine: `target = sn40l(sockets = 8)`", binding.span)
                    if self.targets is not None and target.name not in self.targets:
                        self.fail("E016", f"unknown target `{target.name}`", binding.value.span,
                                  did_you_mean(target.name, self.targets)
                                  or "targets are " + ", ".join(sorted(self.targets)))
                    values["target"] = target.name
                    if target.sockets is not None:
                        spans["sockets"] = binding.span
                        values["sockets"] = target.sockets
                elif binding.name in RUN_LIMITS:
                    values[binding.name] = self.eval_int(binding.value, scope, f"`{binding.name}`")
                elif binding.name == "acceptance":
                    values[binding.name] = self.eval_fraction(binding.value, scope, "`acceptance`")
                else:
                    self.fail("E016", f"a run has no setting `{binding.name}`", binding.name_span,
                              did_you_mean(binding.name, [*RUN_SETTING_NAMES])
                              or "settings are " + ", ".join(RUN_SETTING_NAMES))
            except _Abort:
                pass
        from_file = set(spans)
        values.update({k: v for k, v in self.overrides.items() if v is not None and k != "parallel"})
        if self.targets is not None and values["target"] not in self.targets:
            self.unknown_cli_target(str(values["target"]))
        for key, message in _run_limit_errors(values, from_cli=self.overrides):
            self.errors.error("E019", message, None if key in self.overrides else spans.get(key))
        self.check_request(values, from_file, spans)
        self.check_pipeline(values, spans, draft is not None)
        where = runs[0].span if runs else draft
        self.check_speculation(values, from_file | set(self.overrides), spans, draft is not None, where)
        acceptance = values.get("acceptance")
        counts = {name: int(values[name]) for name in RUN_LIMITS}
        return RunConfig(**counts, acceptance=None if acceptance is None else float(acceptance),
                         target=str(values["target"]))

    def check_pipeline(self, values: dict[str, RunValue], spans: dict[str, ast.Span], has_draft: bool) -> None:
        """A pipeline's stages are at most the model's layers; its micro-batches split the batch
        evenly; a pipeline times a plain decode (no prompt, no draft)."""
        stages, micro = int(values["pipeline"]), int(values["micro_batches"])

        def at(key: str) -> ast.Span | None:
            return None if key in self.overrides else spans.get(key)

        self.pipeline_at = (stages, at("pipeline"))
        if micro > 1 and stages == 1:
            self.errors.error("E016", f"`micro_batches` is {micro} and the run has one pipeline stage: micro-batches "
                              "flow through pipeline stages", at("micro_batches"), "give `pipeline = 2` or more")
        elif int(values["batch"]) % micro:
            self.errors.error("E016", f"`micro_batches` is {micro}, which does not divide the batch of "
                              f"{values['batch']}", at("micro_batches"), "give a divisor of the batch")
        if stages > 1 and (int(values["prompt"]) or has_draft):
            what = "a request's prefill (`prompt`)" if int(values["prompt"]) else "speculative decoding (a `draft`)"
            self.errors.error("E016", f"a pipeline times a plain decode, not {what}",
                              at("pipeline"), "run the pipeline without a prompt or a draft")

    def check_request(self, values: dict[str, RunValue], from_file: set[str], spans: dict[str, ast.Span]) -> None:
        """A request's decode starts with its prompt in the KV cache, so its context is the prompt:
        a `context` that says otherwise is an error, unless the command line's `--prompt`
        replaces the file's request (then it replaces the file's context too)."""
        prompt = values["prompt"]
        if not prompt:
            if values["chunk"]:
                self.errors.error("E016", "`chunk` splits a prompt's prefill, and the run has no `prompt`",
                                  None if "chunk" in self.overrides else spans.get("chunk"),
                                  "give the prompt's length: `prompt = 4096`")
            return
        context_given = "context" in self.overrides or ("context" in from_file and "prompt" not in self.overrides)
        if context_given and values["context"] != prompt:
            from_cli = "context" in self.overrides or "prompt" in self.overrides
            self.errors.error(
                "E016", f"`context` is {values['context']} but `prompt` is {prompt}: a request's decode starts "
                "with its prompt in the KV cache, so its context is the prompt",
                None if from_cli else spans.get("context"),
                "leave `context` out of a run with a `prompt`" + (" (or use --prompt alone)" if from_cli else ""))
        values["context"] = prompt

    def check_speculation(self, values: dict[str, RunValue], given: set[str], spans: dict[str, ast.Span],
                          has_draft: bool, where: ast.Span | None) -> None:
        """The speculation settings need a `draft`, and a `draft` needs its acceptance rate."""
        if not has_draft:
            for key in SPECULATION_SETTINGS:
                if key in given:
                    self.errors.error("E016", f"`{key}` is a setting of speculative decoding, and the file has no "
                                      "`draft` model", None if key in self.overrides else spans.get(key),
                                      "add `draft NAME : GRAPH { ... }`, a smaller model over the same vocabulary")
        elif values.get("acceptance") is None:
            self.errors.error("E016", "a run with a `draft` needs `acceptance`, the rate at which the model "
                              "accepts drafted tokens", where,
                              "add it to the `run` block (`acceptance = 0.8`) or give --acceptance")

    def run(self) -> ResolvedModel:
        main = self.program.main
        models = [i for i in main.items if isinstance(i, ast.Model) and i.kind == "model"]
        drafts = [i for i in main.items if isinstance(i, ast.Model) and i.kind == "draft"]
        if not models:
            self.errors.error("E016", f"{main.path} defines no model", None,
                              "add `model NAME : GRAPH { ... }`, e.g. `model m : llama { hidden = 4096 ... }`")
            self.errors.check()
        composed = any(isinstance(i, ast.Compose) for i in main.items)
        for extra in models[1:] if not composed else ():
            self.errors.error("E016", "a file defines one model", extra.name_span,
                              "a file with a `compose` block may define several (its router and experts)")
        for extra in drafts[1:]:
            self.errors.error("E016", "a file defines at most one draft model", extra.name_span)
        model = (drafts if self.kind == "draft" else models)[0]
        if self.model_name and self.kind == "model":
            named = [m for m in models if m.name == self.model_name]
            if not named:
                self.errors.error("E016", f"the file defines no model `{self.model_name}`", None,
                                  did_you_mean(self.model_name, [m.name for m in models])
                                  or "models: " + ", ".join(m.name for m in models))
                self.errors.check()
            model = named[0]
        self.elaborate_place(main.items)
        if self.weights_tier:
            self.placement["weights"] = self.weights_tier
            self.explicit_classes.add("weights")
        scope = self.root_scope()
        run = self.elaborate_run(main.items, scope, drafts[0].name_span if drafts else None)
        parallel = self.elaborate_parallel(main.items, scope)
        for definition in self.program.definitions.values():
            if definition.name in shapes.RULES:
                self.errors.error("E004", f"`{definition.name}` is the name of an operator", definition.name_span,
                                  f"rename the {definition.kind}: calls to `{definition.name}` mean the operator")
        graph = self.program.definitions.get(model.graph.name)
        if graph is None or graph.kind != "graph":
            graphs = [d.name for d in self.program.definitions.values() if d.kind == "graph"]
            self.errors.error("E016", f"`{model.graph.name}` is not a graph" if graph else
                              f"unknown graph `{model.graph.name}`", model.graph.span,
                              did_you_mean(model.graph.name, graphs)
                              or ("graphs: " + ", ".join(graphs) if graphs else "import one: `import std.llama`"))
            self.errors.check()
        assert graph is not None
        params = {p.name for p in graph.params}
        graph_scope = _Scope(scope)
        for binding in model.bindings:
            if binding.name not in params:
                self.errors.error("E016", f"graph `{graph.name}` has no parameter `{binding.name}`",
                                  binding.name_span, did_you_mean(binding.name, params))
                continue
            if binding.name in graph_scope.values:
                self.errors.error("E004", f"`{binding.name}` is set twice", binding.name_span)
                continue
            try:
                value = self.eval(binding.value, graph_scope)
            except _Abort:
                value = POISON
            if isinstance(value, float):
                # Model parameters are sizes and counts; only a run's `acceptance` is a fraction.
                self.errors.error("E001", f"`{value:g}` is not an integer: sizes and settings are whole numbers",
                                  binding.value.span, f"write a whole number, e.g. `{int(value)}`")
                value = POISON
            graph_scope.values[binding.name] = value
        missing = [p.name for p in graph.params if p.name not in graph_scope.values]
        if missing:
            self.errors.error("E016", f"model `{model.name}` does not set " + ", ".join(f"`{m}`" for m in missing),
                              model.name_span, f"graph `{graph.name}` needs: " + ", ".join(p.name for p in graph.params))
            self.errors.check()
        outputs: list[tuple[Tensor, ast.Span]] = []
        at = model.name_span
        self.context.append(f"in graph `{graph.name}` of model `{model.name}` at {at.path}:{at.line}:{at.column}")
        self.elaborate_body(graph.body, graph_scope, layer=None, prefix="", outputs=outputs)
        self.context.pop()
        stages, where = self.pipeline_at
        if stages > 1 and not self.errors.diagnostics and stages > self.layer_calls:
            self.errors.error("E016", f"`pipeline` is {stages} but model `{model.name}` has {self.layer_calls} "
                              "layers: a stage holds at least one layer", where,
                              f"use at most {max(self.layer_calls, 1)} stages")
        if not self.errors.diagnostics and len(outputs) != 1:
            self.errors.error("E018", f"graph `{graph.name}` must have exactly one `out`, found {len(outputs)}",
                              graph.name_span, "add `out next` naming the sampled tokens")
        if not self.errors.diagnostics:
            self.check_graph(model)
        self.errors.check()
        return ResolvedModel(
            model.name, tuple(self.layers.values()), tuple(self.steps), outputs[0][0].ref,
            outputs[0][0].type, run, self.placement["activations"], tuple(sorted(self.explicit_classes)),
            tuple(sorted(self.explicit_patterns)), prefill=self.prefill,
            draft=drafts[0].name if drafts and self.kind == "model" else "", parallel=parallel,
        )

    def check_graph(self, model: ast.Model) -> None:
        """The whole model's checks: it calls a layer if it has a loop over layers, and every
        weight and cache of the graph is read (a tied weight's reads are its storage's too)."""
        if self.empty_loops and self.layer_calls == 0:
            loop, bound, value = self.empty_loops[0]
            binding = next((b for b in model.bindings if b.name == bound), None)
            self.errors.error(
                "E016", f"model `{model.name}` has no layers: its loop over layers, `for {loop.var} in ...`, "
                "runs no iterations" + (f" (`{bound}` is {value})" if bound else ""),
                binding.span if binding else loop.span,
                f"set `{bound or 'the loop bound'}` to the model's number of layers, 1 or more")
        read = {ref for step in self.steps if isinstance(step, ResolvedOp) for ref in step.operands}
        read |= {ref for step in self.steps if isinstance(step, LayerCall) for ref in step.args}
        decls = [s for s in self.steps if isinstance(s, ResolvedDecl) and s.kind in ("weight", "cache")]
        by_name = {d.name: d.ref for d in decls}
        read |= {by_name[d.tied_to] for d in decls if d.tied_to and d.ref in read}
        self.check_read([d for d in decls if d.ref in self.graph_spans], read, self.graph_spans)


# -- compositions --------------------------------------------------------------------------------


def composition_of(program: Program, overrides: Mapping[str, RunValue] | None = None) -> Composition | None:
    """The file's composition, None if it has no `compose` block; `DfslError` with every problem.
    `overrides["experts"]` replaces the expert count of a composition of one expert model."""
    main = program.main
    blocks = [i for i in main.items if isinstance(i, ast.Compose)]
    if not blocks:
        if overrides and overrides.get("experts") is not None:
            errors = Collector()
            errors.error("E016", "--experts sets a composition's expert count, and the file has no `compose` "
                         "block", None, "add `compose NAME { router = ...; experts = MODEL * N }`")
            errors.check()
        return None
    return _Resolver(program).resolve(blocks, dict(overrides or {}))


class _Resolver:
    def __init__(self, program: Program):
        self.program = program
        self.errors = Collector()
        self.evaluator = Elaborator(program)
        self.evaluator.errors = self.errors
        self.scope = self.evaluator.root_scope()
        self.models = [i.name for i in program.main.items if isinstance(i, ast.Model) and i.kind == "model"]

    def integer(self, expr: ast.Expr, what: str, low: int, high: int) -> int | None:
        try:
            value = self.evaluator.eval_int(expr, self.scope, what)
        except _Abort:
            return None
        if not low <= value <= high:
            self.errors.error("E016", f"{what} is {value:,}; it must be from {low:,} to {high:,}", expr.span)
            return None
        return value

    def model(self, expr: ast.Expr | str, span: ast.Span, what: str) -> str | None:
        if not isinstance(expr, ast.Name):
            self.errors.error("E016", f"{what} names a model of the file", span,
                              "models: " + ", ".join(self.models))
            return None
        if expr.name not in self.models:
            self.errors.error("E016", f"{what}: the file defines no model `{expr.name}`", expr.span,
                              did_you_mean(expr.name, self.models) or "models: " + ", ".join(self.models))
            return None
        return expr.name

    def experts(self, expr: ast.Expr | str, span: ast.Span) -> list[ExpertGroup]:
        """`m * 150`, `m`, `a * 50 + b * 100`, `a + b + c`."""
        if isinstance(expr, ast.BinOp) and expr.op == "+":
            return self.experts(expr.left, expr.left.span) + self.experts(expr.right, expr.right.span)
        if isinstance(expr, ast.BinOp) and expr.op == "*":
            model, count = (expr.left, expr.right) if isinstance(expr.left, ast.Name) else (expr.right, expr.left)
            name = self.model(model, model.span, "`experts`")
            n = self.integer(count, "an expert count", 1, MAX_EXPERTS)
            return [ExpertGroup(name, n)] if name is not None and n is not None else []
        name = self.model(expr, span, "`experts`")
        if name is None and not isinstance(expr, ast.Name):
            self.errors.diagnostics[-1] = attrs.evolve(
                self.errors.diagnostics[-1], help="write `experts = MODEL * COUNT`, or a sum: `a * 50 + b * 100`")
        return [ExpertGroup(name, 1)] if name is not None else []

    def stream(self, binding: ast.ComposeBinding, count: int) -> StreamSpec | None:
        value = binding.value
        if isinstance(value, str):
            folder = self.program.main.path.parent
            path = folder / value
            try:
                inside = path.resolve().is_relative_to(folder.resolve())
            except OSError:  # a name too long for the file system, a loop of links
                inside = False
            if not inside:
                self.errors.error("E016", f"the request file `{value}` is not under {folder}", binding.value_span,
                                  "a request file lives under the .dfl file's folder, as an import does")
                return None
            if path.suffix not in (".csv", ".jsonl"):
                self.errors.error("E016", f"a request file is .csv or .jsonl, not `{value}`", binding.value_span,
                                  'e.g. `requests = "stream.csv"` with the columns expert, prompt, tokens')
                return None
            return StreamSpec("file", path, binding.value_span)
        if not isinstance(value, ast.Call) or value.callee not in GENERATORS:
            self.errors.error("E016", "`requests` is a file name or a generator", binding.value_span,
                              'e.g. `requests = "stream.csv"`, `uniform(seed = 1)` or `zipf(skew = 1.0, seed = 1)`')
            return None
        spec = StreamSpec(value.callee, count=count)
        if value.args:
            self.errors.error("E016", f"`{value.callee}` takes named settings", value.args[0].span,
                              f"`{value.callee}(" + ", ".join(f"{k} = ..." for k in GENERATORS[value.callee]) + ")`")
        for kw in value.kwargs:
            if kw.name not in GENERATORS[value.callee]:
                self.errors.error("E016", f"`{value.callee}` has no setting `{kw.name}`", kw.span,
                                  "it takes " + ", ".join(f"`{k}`" for k in GENERATORS[value.callee]))
            elif kw.name == "seed":
                seed = self.integer(kw.value, "`seed`", 0, 2**32 - 1)
                spec = attrs.evolve(spec, seed=seed or 0)
            else:
                try:
                    skew = self.evaluator.eval_fraction(kw.value, self.scope, "`skew`") \
                        if isinstance(kw.value, ast.Decimal) else float(self.evaluator.eval_int(kw.value, self.scope,
                                                                                               "`skew`"))
                except _Abort:
                    continue
                if not 0.0 <= skew <= 10.0:
                    self.errors.error("E016", f"`skew` is {skew:g}; it must be from 0 to 10", kw.value.span,
                                      "Zipf's exponent: 0 is uniform, about 1 is typical of popularity")
                spec = attrs.evolve(spec, skew=skew)
        return spec

    def tiers(self) -> dict[str, str]:
        tiers = {"router": "hbm", "experts": "ddr"}
        for place in (i for i in self.program.main.items if isinstance(i, ast.Place)):
            for rule in place.rules:
                if not rule.is_pattern and rule.subject in tiers and rule.tier.name in ("hbm", "ddr"):
                    tiers[rule.subject] = rule.tier.name
        return tiers

    def resolve(self, blocks: list[ast.Compose], overrides: dict[str, RunValue]) -> Composition:
        block = blocks[0]
        for extra in blocks[1:]:
            self.errors.error("E016", "a file has one `compose` block", extra.span)
        given: dict[str, ast.ComposeBinding] = {}
        for b in block.bindings:
            if b.name not in SETTINGS:
                self.errors.error("E016", f"a composition has no setting `{b.name}`", b.name_span,
                                  did_you_mean(b.name, SETTINGS) or "settings are " + ", ".join(SETTINGS))
            elif b.name in given:
                self.errors.error("E004", f"`{b.name}` is set twice", b.name_span)
            else:
                given[b.name] = b
        for required in ("router", "experts"):
            if required not in given:
                self.errors.error("E016", f"composition `{block.name}` does not set `{required}`", block.name_span,
                                  "e.g. `router = llama2_7b; experts = llama2_7b * 150`")
        router = self.model(given["router"].value, given["router"].value_span, "`router`") \
            if "router" in given else None
        experts = self.experts(given["experts"].value, given["experts"].value_span) if "experts" in given else []
        slots: int | None = None
        if "hbm_slots" in given:
            value = given["hbm_slots"].value
            if not (isinstance(value, ast.Name) and value.name == "auto"):
                if isinstance(value, str):
                    self.errors.error("E016", "`hbm_slots` is a count or `auto`", given["hbm_slots"].value_span)
                else:
                    slots = self.integer(value, "`hbm_slots`", 1, MAX_EXPERTS)
        count = DEFAULT_COUNT
        if "count" in given:
            value = given["count"].value
            if isinstance(value, str):
                self.errors.error("E016", "`count` is a number of requests", given["count"].value_span)
            else:
                count = self.integer(value, "`count`", 1, MAX_REQUESTS) or DEFAULT_COUNT
        stream = self.stream(given["requests"], count) if "requests" in given else StreamSpec("uniform", count=count)
        if stream is not None and stream.kind == "file" and "count" in given:
            self.errors.error("E016", "`count` is the number of requests a generator makes; a request file has "
                              "its own", given["count"].name_span, "remove `count`")
        self.errors.check()
        assert router is not None and stream is not None
        tiers = self.tiers()
        composition = Composition(block.name, router, tuple(experts), tiers["router"], tiers["experts"], slots,
                                  stream, block.span)
        wanted = overrides.get("experts")
        if wanted is not None:
            if not isinstance(wanted, int) or not 1 <= wanted <= MAX_EXPERTS:
                self.errors.error("E019", f"--experts is {wanted}; it must be from 1 to {MAX_EXPERTS:,}", None)
            elif len(composition.models) > 1:
                self.errors.error("E016", "--experts repeats one expert model, and this composition has "
                                  f"{len(composition.models)}: " + ", ".join(composition.models),
                                  given["experts"].value_span, "edit `experts` in the file instead")
            self.errors.check()
            composition = composition.with_experts(int(wanted))
        return composition


def _assign_outer(scope: _Scope, name: str, value: Value) -> None:
    s: _Scope | None = scope
    while s is not None:
        if name in s.values:
            s.values[name] = value
            return
        s = s.parent


def _defined_names(stmt: ast.Stmt) -> list[str]:
    if isinstance(stmt, (ast.Let, ast.Decl)):
        return [stmt.name]
    if isinstance(stmt, ast.Assign):
        return [stmt.target]
    return []


def _describe(value: Value) -> str:
    if isinstance(value, float):
        return f"the number {value:g}"
    if isinstance(value, Tensor):
        return f"a tensor {value.type}"
    if isinstance(value, DType):
        return f"the dtype {value.name}"
    if isinstance(value, Target):
        return f"the target {value.name}"
    if isinstance(value, str):
        return f"the symbolic size {value}"
    return f"the integer {value}"


def _key(value: Value) -> object:
    return value.name if isinstance(value, (DType, Target)) else value


def _run_limit_errors(values: Mapping[str, object], from_cli: Collection[str]) -> Iterator[tuple[str, str]]:
    """(setting, message) for each run setting in `values` outside `RUN_LIMITS` (or, for the
    acceptance, `ACCEPTANCE_LIMITS`), and for 0 tokens in a run without a prompt."""
    for key, (lo, hi) in RUN_LIMITS.items():
        value = values.get(key)
        where = " on the command line" if key in from_cli else ""
        if key in values and (not isinstance(value, int) or not lo <= value <= hi):
            yield key, f"`{key}` is {value}{where}; it must be from {lo:,} to {hi:,}"
        elif key == "tokens" and value == 0 and not values.get("prompt"):
            yield key, (f"`tokens` is 0{where}; a decode generates at least 1 token (0 output tokens is a "
                        "request's prefill alone: give a `prompt`)")
    acceptance = values.get("acceptance")
    lo_a, hi_a = ACCEPTANCE_LIMITS
    if acceptance is not None and (not isinstance(acceptance, int | float) or not lo_a <= acceptance <= hi_a):
        where = " on the command line" if "acceptance" in from_cli else ""
        yield "acceptance", f"`acceptance` is {acceptance}{where}; it must be from {lo_a:g} to {hi_a:g}"


def check_run_settings(values: Mapping[str, object]) -> None:
    """Raises `DfslError` (E019) if a run setting given outside a file (a command line, a sweep's
    axis) is outside `RUN_LIMITS`: the limits every command enforces."""
    errors = Collector()
    for _, message in _run_limit_errors(values, from_cli=values.keys()):
        errors.error("E019", message, None)
    errors.check()


def elaborate(program: Program, overrides: Mapping[str, RunValue] | None = None,
              targets: Collection[str] | None = None, *, prefill: bool = False, draft: bool = False,
              model: str = "", weights_tier: str = "") -> ResolvedModel:
    """Check a loaded program and resolve its model (its `draft` with `draft`, the prefill pass
    with `prefill`); raise `DfslError` with all problems.

    `targets`, when given, are the machine names a run may name (the front end knows no machine).
    In a file with a composition, `model` names the model to resolve and `weights_tier` the tier
    of its role (the router's, or HBM for an expert, which runs from its HBM slot).
    """
    return Elaborator(program, overrides, targets, prefill=prefill, draft=draft, model=model,
                      weights_tier=weights_tier).run()


def check_draft(program: Program, model: ResolvedModel, draft: ResolvedModel) -> None:
    """Raises `DfslError` (E016) unless the draft proposes tokens of the model's vocabulary: the
    model verifies the draft's tokens, so both classify over the same vocabulary."""
    vocab, draft_vocab = _vocabulary(model), _vocabulary(draft)
    if vocab != draft_vocab:
        item = next(i for i in program.main.items if isinstance(i, ast.Model) and i.kind == "draft")
        errors = Collector()
        errors.error("E016", f"draft `{draft.name}` scores {draft_vocab} tokens and model `{model.name}` "
                     f"{vocab}: the model verifies the draft's tokens, so both need one vocabulary",
                     item.name_span, "draft with a smaller model of the same family (the same tokenizer)")
        errors.check()


def _vocabulary(model: ResolvedModel) -> object:
    """The width of the logits the model samples its tokens from."""
    producers = {op.ref: op for op in model.steps if isinstance(op, ResolvedOp)}
    sample = next((op for op in model.steps if isinstance(op, ResolvedOp) and op.op == "sample"), None)
    logits = producers.get(sample.operands[0]) if sample is not None else None
    return logits.type.shape[-1] if logits is not None else None


def check_file(path: Path, overrides: Mapping[str, RunValue] | None = None,
               targets: Collection[str] | None = None) -> ResolvedModel:
    """Load, parse and check a `.dfl` file, its draft model included; the model's resolution."""
    program = load(path)
    composition = composition_of(program, overrides)
    settings = {k: v for k, v in (overrides or {}).items() if k != "experts"}
    model = elaborate(program, settings, targets, model=composition.router if composition else "",
                      weights_tier=composition.router_tier if composition else "")
    if model.draft:
        check_draft(program, model, elaborate(program, overrides, targets, draft=True))
    return model


__all__ = ["DfslError", "check_file", "elaborate"]
