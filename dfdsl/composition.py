"""A file's Composition of Experts: its `compose` block and `place` rules resolved into a
`Composition` record, every problem a located diagnostic (E016, E011).

A composition is a router model and a set of experts (one model repeated, or several models, each
a `model` of the file), where their weights live (`router -> hbm; experts -> ddr` in the `place`
block), how many experts HBM keeps resident (`hbm_slots`: a count, or `auto`: as many as fit), and
the requests it serves (`requests`: a file of requests, or a seeded generator; `dfdsl.stream`).
Each distinct model is elaborated by `dfdsl.elaborate` as any model is; this module only says
which models play which role.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import attrs

from dfdsl import ast
from dfdsl.diagnostics import Collector, did_you_mean
from dfdsl.elaborate import Elaborator, RunValue, _Abort
from dfdsl.loader import Program

SETTINGS = ("router", "experts", "hbm_slots", "requests", "count")
"""What a `compose` block may set."""
GENERATORS = {"uniform": ("seed",), "zipf": ("skew", "seed")}
"""The request generators and the settings each takes (`seed` and `skew` have defaults)."""
DEFAULT_COUNT = 1000
"""Requests a generator makes unless `count` says."""
MAX_EXPERTS = 1_000_000
MAX_REQUESTS = 10_000_000
"""Limits on a composition (E017-sized, checked as E016): far past any published deployment."""


@attrs.frozen
class ExpertGroup:
    """`count` experts that are all copies of one model (same shapes, different weights)."""

    model: str
    count: int


@attrs.frozen
class StreamSpec:
    """Where the requests come from: a file (`path`), or a generator (`uniform` or `zipf`, with
    its `skew`) making `count` requests from `seed`."""

    kind: str
    path: Path | None = None
    span: ast.Span | None = None
    seed: int = 0
    skew: float = 1.0
    count: int = DEFAULT_COUNT


@attrs.frozen
class Composition:
    name: str
    router: str
    experts: tuple[ExpertGroup, ...]
    router_tier: str
    """Where the router's weights live (and it runs from): `hbm` unless placed in `ddr`."""
    experts_tier: str
    """Where every expert's weights live: `ddr` (copied into an HBM slot to run) or `hbm` (all resident)."""
    hbm_slots: int | None
    """Experts HBM keeps resident; None: as many as fit beside the router and the KV caches."""
    stream: StreamSpec
    span: ast.Span

    @property
    def expert_count(self) -> int:
        return sum(g.count for g in self.experts)

    @property
    def models(self) -> tuple[str, ...]:
        """The distinct expert models, in order: each is compiled once."""
        return tuple(dict.fromkeys(g.model for g in self.experts))

    def with_experts(self, count: int) -> Composition:
        """The composition with `count` experts of its one expert model (`--experts N`)."""
        return attrs.evolve(self, experts=(ExpertGroup(self.experts[0].model, count),))


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
            path = (self.program.main.path.parent / value)
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
