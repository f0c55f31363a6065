"""Memory placement: every declared tensor gets a tier that fits one socket's SRAM, HBM and DDR.

The front end gives every `df.input`, `df.weight` and `df.kv_cache` the tier the `.dfl` placement
asks for. This pass sizes them per socket (types are per socket; a KV cache holds `context +
tokens` tokens of each of `batch` sequences, a prefill graph's inputs `prompt` tokens of each)
and checks each tier's capacity from the target's hardware file. When a tier overflows it spills
whole tensor groups (one group: the same tensor of every layer, `layers.*.wq`) one tier down,
SRAM to HBM and HBM to DDR, KV caches before weights so that weights stay in HBM longest; inputs and activations never move. A tier the user
named explicitly for a tensor class is honoured: those tensors never spill, and when what remains
does not fit, `CapacityError` says by how much and what to do. Each spill is a warning on stderr.
Moved tensors change type, so the kernels and layers they are passed to change signature too
(a callee that would need two signatures is cloned). A weight tied to another holds no bytes of
its own and goes where its storage goes.
"""

from __future__ import annotations

import functools
import math
import re
import sys
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import attrs
import numpy as np
from xdsl.context import Context
from xdsl.dialects.builtin import ArrayAttr, FunctionType, ModuleOp, StringAttr, SymbolRefAttr
from xdsl.ir import Attribute, SSAValue
from xdsl.rewriter import InsertPoint, Rewriter
from xdsl.traits import SymbolTable

from dfdsl.dialects import df
from dfdsl.dialects.shapes import DTYPE_BYTES
from dfdsl.errors import HardwareFileError, HintedError, LoweringError, describe
from dfdsl.hardware import GpuHardware, Hardware, HardwareError, load_hardware
from dfdsl.lowering.stages import NO_TIER_FIX, Stage, StagedPass, untiered

TIER_ORDER = ("sram", "hbm", "ddr")
"""Fastest and smallest first; a spill moves a group one step along."""

SPILL_PRIORITY = (df.KvCacheOp.PLACEMENT_CLASS, df.WeightOp.PLACEMENT_CLASS)
"""Classes that may spill, first to go first: weights stay in the faster tier longest."""

GB = 10**9
_LAYER_INDEX = re.compile(r"(?<=\.)(\d+|\{\d+\.\.\d+\})(?=\.)")


class CapacityError(HintedError, code="E021"):
    """The tensors do not fit the sockets' memories, even after spilling what may spill:
    `problem` says what each socket must hold, and the message adds what to do (`hint`)."""


def group_name(tensor_name: str) -> str:
    """`layers.3.wq` and `layers.{0..31}.wq` -> `layers.*.wq`: the same tensor of every layer."""
    return _LAYER_INDEX.sub("*", tensor_name)


@attrs.frozen
class Size:
    """Bytes per socket as a polynomial in the batch B and the tokens cached S: (B power, S power,
    bytes) terms. Evaluates at numbers or at numpy arrays of them alike."""

    terms: tuple[tuple[int, int, int], ...]

    def at(self, batch, tokens_cached):
        return sum(coefficient * batch**b * tokens_cached**s for b, s, coefficient in self.terms)


def _size(types: Sequence[df.TensorType], prompt: int) -> Size:
    """The size of `types` in a graph whose passes process `prompt` tokens per sequence (P)."""
    terms: dict[tuple[int, int], int] = defaultdict(int)
    for type_ in types:
        numbers = math.prod(d for d in type_.dims if isinstance(d, int)) * DTYPE_BYTES[type_.dtype]
        numbers *= prompt ** type_.dims.count("P")
        terms[(type_.dims.count("B"), type_.dims.count("S"))] += numbers
    return Size(tuple((b, s, c) for (b, s), c in sorted(terms.items())))


@attrs.define
class TensorGroup:
    """Declarations of one tensor across layers, placed together."""

    name: str
    tensor_class: str
    tier: str
    bytes_per_socket: int
    dtype: str
    explicit: bool
    decls: list[df.DeclBase] = attrs.field(factory=list)
    stage: int = 0
    """The pipeline stage whose sockets hold it (0 without a pipeline)."""


def _gb(num_bytes: float) -> str:
    return f"{num_bytes / GB:.1f} GB"


def _amount(num_bytes: int) -> str:
    """GB to one decimal, or bytes when that would read 0.0 GB."""
    return _gb(num_bytes) if num_bytes >= GB / 20 else f"{num_bytes:,} bytes"


def tensor_groups(graph: df.GraphOp, types: Mapping[SSAValue, df.TensorType] | None = None,
                  placed: Mapping[str, str] | None = None) -> list[TensorGroup]:
    """The graph's declarations grouped by tensor (across layers) and tier, sized per socket for
    the graph's run (`Placement` says how `types` and `placed` change them)."""
    return Placement(graph, types, placed).groups(graph.batch.value.data,
                                                  graph.context.value.data + graph.tokens.value.data)


class Placement:
    """The placement problem of one graph: its tensor groups as declared, each sized as a
    polynomial in B and S, so that a plan at any batch and tokens cached is quick. The groups are
    as typed, or as `types` says for the declarations it has (a sharding not made yet); a class in
    `placed` (class to tier) is placed there explicitly, whatever the graph says."""

    def __init__(self, graph: df.GraphOp, types: Mapping[SSAValue, df.TensorType] | None = None,
                 placed: Mapping[str, str] | None = None):
        self.graph = graph
        explicit_classes = graph.classes_placed_explicitly() | set(placed or {})
        explicit_tensors = graph.tensors_placed_explicitly()
        shapes: dict[tuple[int, str, str], TensorGroup] = {}
        sized: dict[tuple[int, str, str], list[df.TensorType]] = defaultdict(list)
        position_stage = df.pipeline_stage_of(graph.body.block)
        self.stages = 1 + max(position_stage.values(), default=0)
        for op in graph.body.block.ops:
            if not isinstance(op, df.DeclBase) or (isinstance(op, df.WeightOp) and op.tied_to is not None):
                continue  # a tied weight holds no bytes: it is placed with its storage
            type_ = (types or {}).get(op.result, op.result.type)
            if placed and op.PLACEMENT_CLASS in placed:
                type_ = type_.with_tier(placed[op.PLACEMENT_CLASS])
            name, tensor_class = group_name(op.tensor_name.data), op.PLACEMENT_CLASS
            # A tensor lives on the sockets of each pipeline stage that uses it.
            used_on = sorted({position_stage[use.operation] for use in op.result.uses} or {position_stage[op]})
            for stage in used_on:
                key = (stage, name, type_.tier_name)
                if key not in shapes:
                    explicit = tensor_class in explicit_classes or bool({name, op.tensor_name.data} & explicit_tensors)
                    shapes[key] = TensorGroup(name, tensor_class, type_.tier_name, 0, type_.dtype, explicit,
                                              stage=stage)
                shapes[key].decls.append(op)
                sized[key].append(df.tensor_type(type_))
        self._shapes = list(shapes.values())
        self.sizes = [_size(sized[key], graph.prompt_tokens) for key in shapes]

    def groups(self, batch: int, tokens_cached: int) -> list[TensorGroup]:
        """The groups in their declared tiers, sized for a run of `batch` sequences of
        `tokens_cached` tokens (of which one socket holds `sequences_per_socket`)."""
        batch = self.graph.sequences_per_socket(batch)
        return [attrs.evolve(g, bytes_per_socket=size.at(batch, tokens_cached), decls=list(g.decls))
                for g, size in zip(self._shapes, self.sizes)]

    def declared_bytes(self, tier: str, batch, tokens_cached):
        """Bytes per socket declared in `tier` (numbers or numpy arrays of them), on the sockets of
        the pipeline stage that needs the most."""
        batch = self.graph.sequences_per_socket(batch)
        per_stage = [sum((size.at(batch, tokens_cached) for g, size in zip(self._shapes, self.sizes)
                          if g.tier == tier and g.stage == stage), 0 * batch) for stage in range(self.stages)]
        return functools.reduce(np.maximum, per_stage)

    def plan(self, hw: Hardware | GpuHardware, batch: int, tokens_cached: int,
             sockets: int = 0) -> tuple[list[TensorGroup], list[str]]:
        """Decides every group's tier at `batch` and `tokens_cached` (`plan_placement`)."""
        return plan_placement(self.graph, hw, self.groups(batch, tokens_cached), sockets)


def _used(groups: Sequence[TensorGroup], tier: str) -> int:
    return sum(g.bytes_per_socket for g in groups if g.tier == tier)


def _next_spill(groups: Sequence[TensorGroup], tier: str, overflow: int) -> TensorGroup | None:
    """The group to move out of `tier`: from the first class in spill priority that has a
    movable group, the smallest group that covers the overflow alone, else the largest."""
    for tensor_class in SPILL_PRIORITY:
        movable = [g for g in groups if g.tier == tier and g.tensor_class == tensor_class and not g.explicit]
        if movable:
            covering = [g for g in movable if g.bytes_per_socket >= overflow]
            if covering:
                return min(covering, key=lambda g: g.bytes_per_socket)
            return max(movable, key=lambda g: g.bytes_per_socket)
    return None


def _capacity_error(graph: df.GraphOp, groups: Sequence[TensorGroup], tier: str, hw: Hardware | GpuHardware,
                    sockets: int, stage: int = 0, stages: int = 1) -> CapacityError:
    """The message: what each socket must hold in the tier, of which classes, and what it has."""
    capacity = hw.capacity_bytes(tier)
    by_class: dict[str, int] = defaultdict(int)
    dtypes = set()
    for g in groups:
        if g.tier == tier:
            by_class[g.tensor_class] += g.bytes_per_socket
            if g.tensor_class in SPILL_PRIORITY:  # the model's dtype, not its token ids'
                dtypes.add(g.dtype)
    per_socket = sum(by_class.values())
    parts = ", ".join(f"{_amount(b)} of {'KV cache' if c == df.KvCacheOp.PLACEMENT_CLASS else c}"
                      for c, b in sorted(by_class.items(), key=lambda item: -item[1]) if b)
    dtype = f" in {dtypes.pop().upper()}" if len(dtypes) == 1 else ""
    where = f"its {hw.unit}" if sockets == 1 else f"each of its {sockets} {hw.unit}s"
    if stages > 1:
        where += f" of pipeline stage {stage} (of {stages})"
    fixes = []
    slower = TIER_ORDER.index(tier) + 1
    if slower < len(TIER_ORDER):
        fixes.append(f"place {max(by_class, key=lambda c: by_class[c])} in {TIER_ORDER[slower]}")
    if stages > 1:
        fixes.append("use more pipeline stages")
    return CapacityError(
        f"place-memory: {graph.sym_name.data}{dtype} does not fit in {tier}: {where} must hold "
        f"{_amount(per_socket)} there ({parts}; its share of each split tensor, the whole of each "
        f"replicated one) and has {_amount(capacity)} (GB = 10^9 bytes)",
        ", or ".join(fixes),
    )


def plan_placement(graph: df.GraphOp, hw: Hardware | GpuHardware,
                   groups: list[TensorGroup] | None = None, sockets: int = 0) -> tuple[list[TensorGroup], list[str]]:
    """Decides every group's tier (of `groups`, by default the graph's as typed, on `sockets`, by
    default the graph's); returns the groups and one warning per spill.

    Raises `CapacityError` when a tier still overflows after everything that may move has moved.
    """
    groups = tensor_groups(graph) if groups is None else groups
    stages = 1 + max((g.stage for g in groups), default=0)
    warnings = []
    for index, tier in enumerate(TIER_ORDER):
        capacity = hw.capacity_bytes(tier)
        # Each pipeline stage's sockets hold that stage's tensors (one stage without a pipeline).
        for stage in range(stages):
            on_stage = [g for g in groups if g.stage == stage]
            while (used := _used(on_stage, tier)) > capacity:
                group = _next_spill(on_stage, tier, used - capacity) if index + 1 < len(TIER_ORDER) else None
                if group is None:
                    raise _capacity_error(graph, on_stage, tier, hw, sockets or graph.tp.value.data, stage, stages)
                group.tier = TIER_ORDER[index + 1]
                where = f" on pipeline stage {stage}" if stages > 1 else ""
                warnings.append(
                    f"warning: place-memory: {tier} overflows{where}: {_gb(used)} per socket, capacity "
                    f"{_gb(capacity)} (GB = 10^9 bytes); moved {group.tensor_class} {group.name} "
                    f"({_gb(group.bytes_per_socket)} per socket) to {group.tier}"
                )
    return groups, warnings


def place_class(module: ModuleOp, tensor_class: str, tier: str) -> None:
    """Puts every declaration of `tensor_class` in `tier`, explicitly, as the `.dfl` rule
    `tensor_class -> tier` would have (for trying a placement without editing the file)."""
    graph = df.the_graph(module, "place-memory")
    for decl in [d for d in graph.body.block.ops if isinstance(d, df.DeclBase) and d.PLACEMENT_CLASS == tensor_class]:
        _retype(decl.result, decl.result.type.with_tier(tier))
    explicit = sorted(graph.classes_placed_explicitly() | {tensor_class})
    graph.properties["explicit_tiers"] = ArrayAttr(StringAttr(c) for c in explicit)
    _retype_callees(module, graph)


def _retype_callees(module: ModuleOp, graph: df.GraphOp) -> None:
    """Makes every callee's signature match the operand types of its calls, cloning a callee
    that its calls now need with different signatures."""
    calls: dict[str, list[df.CallOp | df.LaunchOp]] = defaultdict(list)
    for op in graph.body.block.ops:
        if isinstance(op, df.CallOp | df.LaunchOp):
            calls[op.callee.string_value()].append(op)
    for callee_name, uses in calls.items():
        kind = df.LayerOp if isinstance(uses[0], df.CallOp) else df.KernelOp
        callee = df.lookup(module, callee_name, kind, "place-memory")
        original = _signature(callee.function_type.inputs.data)
        variants: dict[tuple[tuple[object, ...], ...], df.FuncLikeBase] = {original: callee}
        original_used = any(_signature(c.args.types) == original for c in uses)
        for call in uses:
            signature = _signature(call.args.types)
            if signature not in variants:
                if not original_used and len(variants) == 1:
                    target = callee
                else:
                    target = callee.clone()
                    target.properties["sym_name"] = StringAttr(_free_name(module, callee_name))
                    Rewriter.insert_op(target, InsertPoint.after(callee))
                _set_inputs(target, call.args.types)
                variants[signature] = target
            call.properties["callee"] = SymbolRefAttr(variants[signature].sym_name.data)


def _signature(types: Sequence[Attribute]) -> tuple[tuple[object, ...], ...]:
    """Argument types as comparable keys: shape, dtype and tier spelled out, since the tier is
    what this pass changes."""
    return tuple(
        (t.dims, t.dtype, t.tier_name) if isinstance(t, df.TensorType) else (t,) for t in types
    )


def _free_name(module: ModuleOp, base: str) -> str:
    suffix = 1
    while SymbolTable.lookup_symbol(module, f"{base}_{suffix}") is not None:
        suffix += 1
    return f"{base}_{suffix}"


def _set_inputs(callee: df.FuncLikeBase, inputs: Sequence[Attribute]) -> None:
    """Retypes a callee's arguments, and the loop slices they feed, to the new tiers."""
    for arg, new_type in zip(callee.args, inputs):
        if _signature([arg.type]) != _signature([new_type]):
            _retype(arg, df.tensor_type(new_type))
    callee.properties["function_type"] = FunctionType.from_lists(inputs, callee.function_type.outputs.data)


def _retype(value: SSAValue, new_type: df.TensorType) -> None:
    """Gives `value` a new tier; a `df.loop` it is stacked into gets the same tier on its slice."""
    new_value = Rewriter.replace_value_with_new_type(value, new_type)
    for use in list(new_value.uses):
        loop = use.operation
        # A loop's operands are its carried values then its stacked ones, and its body's
        # arguments follow the same order: a stacked operand's index is its slice's.
        if isinstance(loop, df.LoopOp) and use.index >= len(loop.carried):
            slice_arg = loop.body.block.args[use.index]
            _retype(slice_arg, df.tensor_type(slice_arg.type).with_tier(new_type.tier_name))



@dataclass(frozen=True)
class PlaceMemory(StagedPass):
    """Checks the tensors fit each socket's SRAM, HBM and DDR, spilling one tier down if not.

    `target` names a bundled hardware file; `hardware` is a path to another one (it wins). The
    pipeline places a fused or looped module; an unfused one works too, its layers retyped as
    kernels are.
    """

    name = "place-memory"
    STAGES = {Stage.DF: Stage.DF, Stage.SHARDED: Stage.SHARDED, Stage.FUSED: Stage.PLACED,
              Stage.LOOPED: Stage.PLACED}
    target: str = "sn40l"
    hardware: str = ""

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        self.expect(op)
        try:
            hw = load_hardware(self.hardware or self.target)
        except HardwareError as err:
            raise HardwareFileError(f"place-memory: {err}") from err
        graph = df.the_graph(op, "place-memory")
        if (decl := untiered(graph)) is not None:
            # Tensors move between tiers from where the front end put them; with none, a tensor
            # would not count against any capacity.
            raise LoweringError(f"place-memory: {describe(decl)} has no memory tier: {NO_TIER_FIX}")
        groups, warnings = Placement(graph).plan(
            hw, graph.batch.value.data, graph.context.value.data + graph.tokens.value.data)
        for warning in warnings:
            print(warning, file=sys.stderr)
        for group in groups:
            for decl in group.decls:
                type_ = decl.result.type
                if type_.tier_name != group.tier:
                    _retype(decl.result, type_.with_tier(group.tier))
        for weight in [w for w in graph.body.block.ops if isinstance(w, df.WeightOp)]:
            storage = weight.storage()
            if storage is not None and storage.result.type.tier_name != weight.result.type.tier_name:
                _retype(weight.result, weight.result.type.with_tier(storage.result.type.tier_name))
        _retype_callees(op, graph)
