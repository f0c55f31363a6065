"""The `df-to-rdu` pass: a fused (and possibly looped) `df` module becomes an `rdu` program.

The `df.graph` becomes one `rdu.program` whose declarations are `rdu.buffer`s and whose launches
are `rdu.call`s. Each `df.kernel` becomes an `rdu.kernel`: one `rdu.stage` per heavy operator,
the light operators (norms, activations, elementwise) merged into the next heavy stage (or the
previous one when none follows), an `rdu.all_reduce` per collective, and an `rdu.loop` for a
`df.loop`. Each stage gets its work per invocation (FLOPs, bytes per tier, B and S symbolic) and
a share of the socket's usable PCUs and PMUs in proportion to its FLOPs and its bytes moved at
the program's batch and context.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import attrs
from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp, StringAttr
from xdsl.ir import Block, BlockArgument, Operation, Region, SSAValue
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import (
    GreedyRewritePatternApplier,
    PatternRewriter,
    PatternRewriteWalker,
    RewritePattern,
    op_type_rewrite_pattern,
)
from xdsl.utils.exceptions import DiagnosticException

from dfdsl.dialects import df, rdu
from dfdsl.dialects.rdu import ZERO, Work
from dfdsl.sim.hardware import Chip, HardwareError, load_hardware


def _chip_budget(target: str, hardware: str) -> Chip:
    """One socket's PCUs, PMUs and SRAM, from the `hardware` file if given, else the bundled `target`."""
    try:
        return load_hardware(hardware or target).chip
    except HardwareError as err:
        raise DiagnosticException(f"df-to-rdu: {err}") from err


HEAVY_OPERATORS = (
    "linear", "matmul", "lm_head", "embedding", "attention", "mla_attention", "moe_router",
    "moe_experts", "sample",
)
"""Operators that get a stage of their own; the others ride along in a neighbouring stage."""

ELEMENTWISE_FLOPS: dict[str, int] = {
    "rmsnorm": 4,     # square, accumulate, multiply by the reciprocal root, multiply by the scale
    "layernorm": 7,   # accumulate, centre, square, accumulate, normalise, scale, add the bias
    "rope": 3,        # x * cos + rotate(x) * sin
    "silu": 4,        # exp, add, divide (the sigmoid), multiply
    "gelu": 8,        # tanh approximation: cube, two multiply-adds, tanh, add, two multiplies
    "softmax": 5,     # max, subtract, exp, accumulate, divide
    "mul": 1,
    "add": 1,
}
"""FLOPs per result element of the light operators (estimates: they are never the bottleneck)."""

OFF_CHIP_TIERS = ("hbm", "ddr")


@attrs.frozen
class OperatorWork:
    """The work of one operator or stage per invocation: FLOPs, bytes by `rdu.TRAFFIC` key,
    and for MoE experts (experts, top_k, one expert's bytes, the experts' tier)."""

    flops: Work = ZERO
    traffic: Mapping[str, Work] = attrs.field(factory=dict)
    moe: tuple[int, int, Work, str] | None = None

    def __add__(self, other: OperatorWork) -> OperatorWork:
        keys = dict.fromkeys([*self.traffic, *other.traffic])
        return OperatorWork(
            self.flops + other.flops,
            {k: self.traffic.get(k, ZERO) + other.traffic.get(k, ZERO) for k in keys},
            self.moe or other.moe,
        )


def _tier(value: SSAValue) -> str:
    """The memory tier of a declared tensor ("" for an activation); a loop's slice of a stacked
    tensor lives where the stacked tensor does."""
    tier = value.type.tier_name  # type: ignore[attr-defined]
    if tier or not isinstance(value, BlockArgument):
        return tier
    loop = value.owner.parent_op() if isinstance(value.owner, Block) else None
    if isinstance(loop, df.LoopOp) and value.index >= len(loop.carried):
        return _tier(loop.stacked[value.index - len(loop.carried)])
    return tier


def _moved(direction: str, tier: str, nbytes: Work) -> OperatorWork:
    """`nbytes` read or written in `tier`; nothing when the tier is on chip."""
    if tier not in OFF_CHIP_TIERS:
        return OperatorWork()
    return OperatorWork(traffic={f"{tier}_{direction}": nbytes})


def _read_all(values: Sequence[SSAValue]) -> OperatorWork:
    """Each declared tensor among `values` read once in full (activations are on chip)."""
    return sum((_moved("read", _tier(v), Work.of_bytes(v.type)) for v in values), OperatorWork())  # type: ignore[arg-type]


def _elements(value: SSAValue, drop_last: int = 0) -> Work:
    dims = value.type.dims  # type: ignore[attr-defined]
    return Work.of_elements(dims[: len(dims) - drop_last])


def _projection(op: df.OperatorBase) -> OperatorWork:
    """x[..., K] @ w[K, N] (+ bias): 2*K*N FLOPs per row (+ N for the bias); the weights read in full."""
    x, w, *bias = op.inputs
    n = w.type.dims[1]  # type: ignore[attr-defined]
    flops = _elements(x) * (2 * n) + (_elements(op.result) if bias else ZERO)
    return OperatorWork(flops) + _read_all([w, *bias])


def _embedding(op: df.OperatorBase) -> OperatorWork:
    """A gather: only the rows of this step's tokens are read."""
    return _moved("read", _tier(op.inputs[1]), Work.of_bytes(op.result.type))  # type: ignore[arg-type]


def _attention(op: df.OperatorBase) -> OperatorWork:
    """Scores and weighted sum over S + 1 tokens per head; both caches read, this step's key and value appended."""
    q, k, v, k_cache, v_cache = op.inputs
    heads = op.int_attrs()["heads"]
    per_token = 2 * heads * (k_cache.type.dims[3] + v_cache.type.dims[3])  # type: ignore[attr-defined]
    flops = (_elements(k_cache, drop_last=2) + _elements(q, drop_last=1)) * per_token
    work = OperatorWork(flops) + _read_all([k_cache, v_cache])
    for new, cache in ((k, k_cache), (v, v_cache)):
        work += _moved("write", _tier(cache), Work.of_bytes(new.type))  # type: ignore[arg-type]
    return work


def _mla_attention(op: df.OperatorBase) -> OperatorWork:
    """Latent attention with absorbed up-projections (latent L, rope r, nope n, value width v, H heads):
    per sequence 2H(n*L + (S+1)(L+r) + (S+1)L + L*v) FLOPs; the cache and kv_up read, the new latent appended."""
    q, kv, kv_up, cache = op.inputs
    attrs_ = op.int_attrs()
    heads, rope, v_head = attrs_["heads"], attrs_["rope_dim"], attrs_["v_head"]
    latent = cache.type.dims[2] - rope  # type: ignore[attr-defined]
    nope = q.type.dims[-1] // heads - rope  # type: ignore[attr-defined]
    per_token = 2 * heads * ((latent + rope) + latent)
    per_sequence = 2 * heads * (nope * latent + latent * v_head) + per_token
    flops = _elements(cache, drop_last=1) * per_token + _elements(q, drop_last=1) * per_sequence
    work = OperatorWork(flops) + _read_all([cache, kv_up])
    return work + _moved("write", _tier(cache), Work.of_bytes(kv.type))  # type: ignore[arg-type]


def _moe_experts(op: df.OperatorBase, activations: str) -> OperatorWork:
    """Each token through top_k SwiGLU experts: 2*k*3*H*F FLOPs per token; the expert weights are
    counted per expert touched (`expert_read`, one expert's gate, up and down), not here."""
    x, _, gate, up, down = op.inputs
    top_k = op.int_attrs()["top_k"]
    experts, _, ffn = gate.type.dims  # type: ignore[attr-defined]
    one_expert = sum(
        (Work.of_bytes(w.type.with_dims(w.type.dims[1:])) for w in (gate, up, down)), ZERO  # type: ignore[attr-defined]
    )
    return OperatorWork(_elements(x) * (2 * top_k * 3 * ffn),
                        moe=(experts, top_k, one_expert, _tier(gate) or activations))


def operator_work(op: df.OperatorBase, activations: str = "sram") -> OperatorWork:
    """The work of one `df` operator per invocation, per socket; `activations` is the graph's tier."""
    name = op.operator
    if name in ("linear", "matmul", "lm_head", "moe_router"):
        return _projection(op)
    if name == "embedding":
        return _embedding(op)
    if name == "attention":
        return _attention(op)
    if name == "mla_attention":
        return _mla_attention(op)
    if name == "moe_experts":
        return _moe_experts(op, activations)
    if name == "sample":
        return OperatorWork(_elements(op.inputs[0]))  # one pass over the logits
    if name in ELEMENTWISE_FLOPS:
        return OperatorWork(_elements(op.result) * ELEMENTWISE_FLOPS[name]) + _read_all(op.inputs)
    raise DiagnosticException(f"df-to-rdu: no work rule for df.{name}")


# ---------------------------------------------------------------------------------------------
# Kernels: operators grouped into stages, stages sized to the chip.


@attrs.frozen
class _Run:
    """What the lowering needs to know about the graph's run."""

    batch: int
    context: int
    tp: int
    activations: str
    chip: Chip

    def buffer_type(self, type_: df.TensorType) -> rdu.BufferType:
        """The rdu buffer of a df tensor: activations go to the graph's activations tier."""
        return rdu.BufferType(type_.shape, type_.element_type, StringAttr(type_.tier_name or self.activations))


@attrs.define
class _StageDraft:
    """A stage being grouped: its operators so far and their summed work."""

    operators: list[str]
    work: OperatorWork
    heavy: bool


def _group(ops: Sequence[Operation], run: _Run) -> list[_StageDraft | rdu.AllReduceOp]:
    """The pipeline of a kernel body: stage drafts and collectives in order."""
    pipeline: list[_StageDraft | rdu.AllReduceOp] = []
    light: list[df.OperatorBase] = []
    for op in ops:
        if not isinstance(op, df.OperatorBase):
            raise DiagnosticException(f"df-to-rdu: {op.name} cannot appear in a kernel body")
        if op.operator == "all_reduce":
            # One socket has nothing to reduce: the collective vanishes.
            if run.tp >= 2:
                pipeline.append(rdu.AllReduceOp(Work.of_bytes(op.inputs[0].type), run.tp))  # type: ignore[arg-type]
        elif op.operator in HEAVY_OPERATORS:
            grouped = [*light, op]
            work = sum((operator_work(o, run.activations) for o in grouped), OperatorWork())
            pipeline.append(_StageDraft([o.operator for o in grouped], work, heavy=True))
            light = []
        else:
            light.append(op)
    if light:
        work = sum((operator_work(o, run.activations) for o in light), OperatorWork())
        last = next((d for d in reversed(pipeline) if isinstance(d, _StageDraft)), None)
        if last is None:
            pipeline.append(_StageDraft([o.operator for o in light], work, heavy=False))
        else:
            last.operators += [o.operator for o in light]
            last.work += work
    return pipeline


def _share_out(units: int, weights: Sequence[float]) -> list[int]:
    """Splits `units` in proportion to `weights`, at least one each (largest remainders get the rest)."""
    spare = units - len(weights)
    total = sum(weights)
    if total == 0:
        weights, total = [1.0] * len(weights), float(len(weights))
    exact = [spare * w / total for w in weights]
    shares = [math.floor(e) for e in exact]
    by_remainder = sorted(range(len(exact)), key=lambda i: exact[i] - shares[i], reverse=True)
    for i in by_remainder[: spare - sum(shares)]:
        shares[i] += 1
    return [1 + s for s in shares]


def _stages(kernel: str, pipeline: list[_StageDraft | rdu.AllReduceOp], run: _Run) -> list[Operation]:
    """Stage drafts made into `rdu.stage`s holding the kernel's share of the usable PCUs and PMUs."""
    drafts = [d for d in pipeline if isinstance(d, _StageDraft)]
    chip = run.chip
    usable_pcus = round(chip.usable_fraction * chip.pcus)
    usable_pmus = round(chip.usable_fraction * chip.pmus)
    if len(drafts) > min(usable_pcus, usable_pmus):
        raise DiagnosticException(
            f"df-to-rdu: kernel @{kernel} has {len(drafts)} stages but a socket has only "
            f"{min(usable_pcus, usable_pmus)} usable PCUs/PMUs: fuse fewer operators per kernel"
        )
    stages = {
        id(d): rdu.make_stage(
            d.operators[-1] if not d.heavy else next(o for o in reversed(d.operators) if o in HEAVY_OPERATORS),
            d.operators, pcus=1, pmus=1, sram_bytes=0, flops=d.work.flops, traffic=dict(d.work.traffic),
            moe=d.work.moe,
        )
        for d in drafts
    }
    sized = list(stages.values())
    pcus = _share_out(usable_pcus, [s.work("flops").at(run.batch, run.context) for s in sized])
    pmus = _share_out(usable_pmus, [s.memory_bytes(run.batch, run.context) for s in sized])
    for stage, n_pcus, n_pmus in zip(sized, pcus, pmus):
        stage.properties["pcus"] = rdu.IntegerAttr(n_pcus, 64)
        stage.properties["pmus"] = rdu.IntegerAttr(n_pmus, 64)
        # A stage owns the whole capacity of the PMUs it is given (an allocation, not a footprint).
        stage.properties["sram_bytes"] = rdu.IntegerAttr(n_pmus * chip.pmu_bytes, 64)
    return [stages[id(d)] if isinstance(d, _StageDraft) else d for d in pipeline]
