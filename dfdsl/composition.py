"""A file's Composition of Experts as records: what `dfdsl.elaborate` resolves a `compose` block
and its `place` rules into (every problem a located diagnostic, E016 or E011).

A composition is a router model and a set of experts (one model repeated, or several models, each
a `model` of the file), where their weights live (`router -> hbm; experts -> ddr` in the `place`
block), how many experts HBM keeps resident (`hbm_slots`: a count, or `auto`: as many as fit), and
the requests it serves (`requests`: a file of requests, or a seeded generator; `dfdsl.stream`).
Each distinct model is elaborated as any model is; a composition only says which models play
which role.
"""

from __future__ import annotations

from pathlib import Path

import attrs

from dfdsl import ast

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
