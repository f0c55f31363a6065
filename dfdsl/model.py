"""The elaborated model: what the front end's checks produce and the IR generator reads.

`dfdsl.elaborate` builds a `ResolvedModel` from a `.dfl` program (the decode step of its model or
of its draft, or their prefill pass), `dfdsl.irgen` turns it into the `df` dialect, and `dfdsl.hf_import` counts the weights of the file it wrote from it. Every operand
is an SSA name of the graph and every shape is known.
"""

from __future__ import annotations

import attrs

from dfdsl.dialects.df import Parallel
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
class RunSettings:
    """Where a model runs: a decode of `tokens` steps from `context` cached tokens at `batch`
    sequences on `sockets` sockets (the tensor-parallel degree), or with a `prompt` a whole request
    (its prefill, in passes of `chunk` tokens if given, then `tokens` output tokens; `context` is
    then the prompt). With a draft model, `draft_tokens` drafted per round and their `acceptance`
    rate (None: the model decodes alone). The driver compiles and simulates a model under these;
    a file's `run` block gives them (`RunConfig`)."""

    batch: int
    context: int
    tokens: int
    sockets: int
    prompt: int = 0
    chunk: int = 0
    draft_tokens: int = 4
    acceptance: float | None = None
    pipeline: int = 1
    """Pipeline stages, each on `sockets` sockets: the run uses pipeline x sockets sockets (1: none)."""
    micro_batches: int = 1
    """Equal parts of the batch that flow through the pipeline stages one after another."""

    @property
    def decode_steps(self) -> int:
        """The decode steps timed: `tokens`; in a request the prefill samples the first output
        token, so one fewer (but at least one, for the time per output token)."""
        return max(self.tokens - 1, 1) if self.prompt else self.tokens


@attrs.frozen
class RunConfig(RunSettings):
    """The run of a `.dfl` file: its settings and the machine it names (`target`)."""

    target: str = attrs.field(kw_only=True)

    def settings(self, speculative: bool) -> RunSettings:
        """The settings alone (`acceptance` None unless the run decodes `speculative`ly)."""
        values = {f.name: getattr(self, f.name) for f in attrs.fields(RunSettings)}
        if not speculative:
            values["acceptance"] = None
        return RunSettings(**values)


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
    parallel: Parallel = Parallel()
    """How the model is split over the sockets: the `parallel` block and `--parallel`."""
