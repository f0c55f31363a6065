"""The elaborated model: what the front end's checks produce and the IR generator reads.

`dfdsl.elaborate` builds a `ResolvedModel` from a `.dfl` program (the decode step of its model or
of its draft, or their prefill pass), `dfdsl.irgen` turns it into the `df` dialect, and `dfdsl.hf_import` counts the weights of the file it wrote from it. Every operand
is an SSA name of the graph and every shape is known.
"""

from __future__ import annotations

import attrs

from dfdsl.dialects.shapes import TensorShape


@attrs.frozen
class ResolvedDecl:
    kind: str  # "in", "weight", "cache"
    ref: str  # the SSA name
    name: str  # the tensor's full name (layers.3.wq)
    type: TensorShape
    tier: str
    tied_to: str = ""
    """For a weight tied to another: that weight's full name (its storage)."""


@attrs.frozen
class ResolvedOp:
    op: str
    operands: tuple[str, ...]
    attrs: tuple[tuple[str, int], ...]
    ref: str
    type: TensorShape


@attrs.frozen
class ResolvedLayer:
    """One instantiation of a layer: arguments in order (inputs, weights, caches) and operators."""

    symbol: str
    inputs: tuple[ResolvedDecl, ...]
    weights: tuple[ResolvedDecl, ...]
    caches: tuple[ResolvedDecl, ...]
    ops: tuple[ResolvedOp, ...]
    output: str
    output_type: TensorShape


@attrs.frozen
class LayerCall:
    symbol: str
    args: tuple[str, ...]
    ref: str
    type: TensorShape


Step = ResolvedDecl | ResolvedOp | LayerCall


@attrs.frozen
class RunConfig:
    """The run of a `.dfl` file: a decode of `tokens` steps from `context` cached tokens, or with a
    `prompt` a whole request (its prefill, in passes of `chunk` tokens if given, then `tokens`
    output tokens; `context` is then the prompt). With a draft model, `draft_tokens` drafted per
    step and their `acceptance` rate."""

    batch: int
    context: int
    tokens: int
    sockets: int
    target: str
    prompt: int = 0
    chunk: int = 0
    draft_tokens: int = 0
    acceptance: float | None = None


@attrs.frozen
class ResolvedModel:
    name: str
    layers: tuple[ResolvedLayer, ...]
    steps: tuple[Step, ...]
    output: str
    output_type: TensorShape
    run: RunConfig
    activations_tier: str
    explicit_classes: tuple[str, ...]
    """Tensor classes whose tier the file set explicitly (place-memory will not spill those)."""
    explicit_patterns: tuple[str, ...]
    """Tensor names or name patterns whose tier the file set explicitly (nor those)."""
    prefill: bool = False
    """The graph processes a prompt: its inputs and activations carry `P` after `B`."""
    draft: str = ""
    """The name of the file's draft model, if it has one (elaborated on its own)."""
