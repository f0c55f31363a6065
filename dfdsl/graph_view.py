"""The dataflow-graph view of a module at any stage (`dfdsl lower FILE --emit graph`).

`build_graph` turns a `df` module (front end, fused or looped) or an `rdu` module into a networkx
`MultiDiGraph`: operators, pipeline stages and tensor declarations are nodes, tensors are edges
labelled with their shape and their bytes at batch 1 and the graph's context, and every layer
call, kernel launch or loop is a cluster that holds what it runs. Runs of identical consecutive
calls (one callee, or one repeating group of callees such as attention and MLP blocks) are folded
into one cluster drawn once, unless `unfold` is set. `dfdsl.graph_render` draws the graph.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeGuard

import networkx as nx
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Block, Operation, OpResult, SSAValue
from xdsl.traits import SymbolTable
from xdsl.utils.exceptions import DiagnosticException

from dfdsl.dialects import df, rdu

MAX_FOLD_PERIOD = 64
"""The longest repeating group of calls folding looks for: a layer's kernels when each operator is one."""

CALL_OPS = (df.CallOp, df.LaunchOp, rdu.CallOp)
DECL_OPS = (*df.DECLS, rdu.BufferOp)
_LAYER_PREFIX = re.compile(r"^.*?\.(?:\d+|\{\d+\.\.\d+\})\.")
"""A tensor name's prefix up to the layer number: `layers.3.` of `layers.3.wq`, or `layers.{0..31}.`."""
_RANGE = re.compile(r"\.\{(\d+)\.\.(\d+)\}\.")


# ---------------------------------------------------------------------------------------------
# Labels.


def format_bytes(count: int) -> str:
    """`8 KiB`, `1.5 MiB`, `112 MiB`: binary units, at most one decimal."""
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            break
        value /= 1024
    return f"{value:.1f}".removesuffix(".0") + f" {unit}"


def tensor_label(type_: df.ShapedTypeBase, context: int) -> str:
    """`[B, 4096] bf16 · 8 KiB`: the shape, and the bytes at batch 1 and the graph's context."""
    dims = ", ".join(str(d) for d in type_.dims)
    return f"[{dims}] {type_.dtype} · {format_bytes(type_.num_bytes(batch=1, context=context))}"


def short_name(tensor_name: str) -> str:
    """The name without its layer prefix: `layers.{0..31}.self_attn.wq` is `self_attn.wq`."""
    return _LAYER_PREFIX.sub("", tensor_name, count=1)


def layer_index(tensor_name: str) -> int | None:
    """The layer a per-layer tensor belongs to (`layers.3.wq` is 3), or None."""
    for part in tensor_name.split(".")[:-1]:
        if part.isdigit():
            return int(part)
    return None


def _copies(tensor_name: str) -> int:
    """How many layers' tensors a name stands for: 32 for `layers.{0..31}.wq`, else 1."""
    found = _RANGE.search(tensor_name)
    return int(found[2]) - int(found[1]) + 1 if found else 1


def name_range(names: Sequence[str]) -> str:
    """One name for the same tensor of consecutive layers (`layers.{0..3}.wq`), else `first … last`."""
    if len(names) == 1:
        return names[0]
    first = layer_index(names[0])
    if first is not None:
        def numbered(index: int | str) -> str:
            return names[0].replace(f".{first}.", f".{index}.", 1)

        if list(names) == [numbered(first + i) for i in range(len(names))]:
            return numbered(f"{{{first}..{first + len(names) - 1}}}")
    return f"{names[0]} … {names[-1]}"


# ---------------------------------------------------------------------------------------------
# Folding: which consecutive calls are drawn once.


@dataclass(frozen=True)
class Fold:
    """`len(reps)` repetitions of the same group of calls; the first is drawn, the others alias it."""

    reps: tuple[tuple[df.CallBase, ...], ...]

    @property
    def first(self) -> tuple[df.CallBase, ...]:
        return self.reps[0]


def _is_decl(value: SSAValue) -> TypeGuard[OpResult]:
    return isinstance(value, OpResult) and isinstance(value.op, DECL_OPS)


def _repeats(first: Sequence[df.CallBase], rep: Sequence[df.CallBase], previous: Sequence[df.CallBase]) -> bool:
    """Whether `rep` does what `first` does, fed by `previous` the way `first` is fed from outside."""
    produced_by: dict[SSAValue, tuple[int, int]] = {
        res: (j, k) for j, call in enumerate(first) for k, res in enumerate(call.results)
    }
    produced_here: dict[SSAValue, tuple[int, int]] = {
        res: (j, k) for j, call in enumerate(rep) for k, res in enumerate(call.results)
    }
    produced_before = {res for call in previous for res in call.results}
    for call0, call in zip(first, rep, strict=True):
        if call0.callee != call.callee or call0.operand_types != call.operand_types:
            return False
        if call0.result_types != call.result_types:
            return False
        for value0, value in zip(call0.operands, call.operands):
            if _is_decl(value0) and _is_decl(value):
                continue
            if value in produced_here and produced_by.get(value0) == produced_here[value]:
                continue
            from_outside = not _is_decl(value0) and value0 not in produced_by
            if value in produced_before and from_outside:
                continue
            if value is not value0 or _is_decl(value):
                return False
    return True


def _count_reps(calls: Sequence[df.CallBase], start: int, period: int) -> int:
    first = calls[start : start + period]
    reps = 1
    while start + (reps + 1) * period <= len(calls):
        rep = calls[start + reps * period : start + (reps + 1) * period]
        previous = calls[start + (reps - 1) * period : start + reps * period]
        if not _repeats(first, rep, previous):
            break
        reps += 1
    return reps


def _adjacent_runs(block: Block) -> list[list[df.CallBase]]:
    """Calls with only declarations between them, in order: the candidates for folding."""
    runs: list[list[df.CallBase]] = [[]]
    for op in block.ops:
        if isinstance(op, CALL_OPS):
            runs[-1].append(op)
        elif not isinstance(op, DECL_OPS) and runs[-1]:
            runs.append([])
    return [run for run in runs if run]


def find_folds(block: Block, unfold: bool = False) -> list[Fold]:
    """Every call of `block` in one fold, greedily taking the repeating group that covers most calls."""
    folds: list[Fold] = []
    for calls in _adjacent_runs(block):
        start = 0
        while start < len(calls):
            reps, period = 1, 1
            for candidate in () if unfold else range(1, MAX_FOLD_PERIOD + 1):
                if start + 2 * candidate > len(calls):
                    break
                count = _count_reps(calls, start, candidate)
                if count >= 2 and count * candidate > reps * period:
                    reps, period = count, candidate
            folds.append(Fold(tuple(
                tuple(calls[start + r * period : start + (r + 1) * period]) for r in range(reps)
            )))
            start += reps * period
    return folds


# ---------------------------------------------------------------------------------------------
# Building the graph.


def _decl_name(value: SSAValue) -> str:
    """The name of the tensor or buffer `value`, a declaration's result, stands for."""
    op = value.owner
    if isinstance(op, rdu.BufferOp):
        return op.buffer_name.data
    assert isinstance(op, df.DeclBase), "not a declared tensor"
    return op.tensor_name.data


def _decl_kind(op: Operation) -> str:
    if isinstance(op, rdu.BufferOp):
        return op.kind.data
    assert isinstance(op, df.DeclBase), f"{op.name} declares no tensor"
    return op.BUFFER_KIND


def _stage_of(module: ModuleOp, top: Operation) -> str:
    if isinstance(top, rdu.ProgramOp):
        return "rdu"
    if not any(isinstance(op, df.LaunchOp) for op in top.walk()):
        return "df"
    return "looped" if any(isinstance(op, df.LoopOp) for op in module.walk()) else "fused"


def _top_op(module: ModuleOp) -> df.GraphOp | rdu.ProgramOp:
    for op in module.ops:
        if isinstance(op, df.GraphOp | rdu.ProgramOp):
            return op
    raise DiagnosticException("the module has no df.graph or rdu.program to draw")


def _loop_label(trip_count: int) -> str:
    return f"loop ×{trip_count} · pipelined"


class _GraphBuilder:
    """Walks a graph or program once, adding nodes, clusters and edges in a fixed order."""

    def __init__(self, module: ModuleOp, unfold: bool, stage: str | None):
        top = _top_op(module)
        self.top = top
        self.unfold = unfold
        context = top.context.value.data
        tp = top.sockets.value.data if isinstance(top, rdu.ProgramOp) else top.tp.value.data
        stage = stage or _stage_of(module, top)
        self.context = context
        self.graph: nx.MultiDiGraph[str] = nx.MultiDiGraph(
            name=top.sym_name.data,
            stage=stage,
            tp=tp,
            context=context,
            label=f"{top.sym_name.data} · {stage} stage · tp={tp}\n"
                  f"edges: tensor shape and bytes at batch 1, context {context}",
            clusters=[],
        )
        self.producer: dict[SSAValue, str] = {}
        self.alias: dict[SSAValue, SSAValue] = {}
        self.owner: dict[Operation, df.CallBase] = {}
        self.fold_of: dict[Operation, Fold] = {}

    # -- primitives ----------------------------------------------------------------------

    def add_node(self, kind: str, label: str, cluster: str, **attrs: object) -> str:
        node = f"n{self.graph.number_of_nodes()}"
        self.graph.add_node(node, kind=kind, label=label, cluster=cluster, **attrs)
        return node

    def add_cluster(self, kind: str, label: str, parent: str, **attrs: object) -> str:
        clusters = self.graph.graph["clusters"]
        cluster = f"c{len(clusters)}"
        clusters.append({"id": cluster, "kind": kind, "label": label, "parent": parent, **attrs})
        return cluster

    def source(self, value: SSAValue) -> str:
        return self.producer[self.alias.get(value, value)]

    def add_edge(self, value: SSAValue, target: str, kind: str = "tensor") -> None:
        """An edge carrying `value` into `target`, labelled with its type and bytes."""
        type_ = value.type
        assert isinstance(type_, df.ShapedTypeBase)
        self.graph.add_edge(
            self.source(value), target, kind=kind, label=tensor_label(type_, self.context),
            bytes=type_.num_bytes(batch=1, context=self.context),
        )

    # -- the decode step -----------------------------------------------------------------

    def build(self) -> nx.MultiDiGraph:
        block = self.top.body.block
        for fold in find_folds(block, self.unfold):
            self.plan_fold(fold)
        for op in block.ops:
            if isinstance(op, DECL_OPS):
                if op.results[0] not in self.alias and op not in self.owner:
                    self.add_decl(op, "")
            elif isinstance(op, CALL_OPS):
                first_of = self.fold_of.get(op)
                if first_of is not None:
                    self.add_fold(first_of)
            elif isinstance(op, df.OutputOp | rdu.OutputOp):
                node = self.add_node("output", "output", "")
                for value in op.operands:
                    self.add_edge(value, node)
            else:
                self.add_operator(op, "")
        return self.graph

    def plan_fold(self, fold: Fold) -> None:
        """Aliases every later repetition's values to the first's, and gives calls their own declarations."""
        self.fold_of[fold.first[0]] = fold
        for call in fold.first:
            for value in call.operands:
                users = {use.operation for use in value.uses}
                if _is_decl(value) and users == {call}:
                    self.owner[value.op] = call
        for rep in fold.reps[1:]:
            for call0, call in zip(fold.first, rep):
                for value0, value in zip(call0.operands, call.operands):
                    if _is_decl(value) and value is not value0:
                        self.alias[value] = value0
                self.alias.update(zip(call.results, call0.results))

    def add_decl(self, op: Operation, cluster: str, fold: Fold | None = None) -> None:
        """A declared tensor, coloured by tier; in a fold, one node standing for every layer's copy."""
        value = op.results[0]
        names = [_decl_name(value)]
        if fold is not None and len(fold.reps) > 1:
            call = self.owner[op]
            j = fold.first.index(call)
            k = list(call.operands).index(value)
            names = [_decl_name(rep[j].operands[k]) for rep in fold.reps]
        full_name = name_range(names)
        copies = len(names) if len(names) > 1 else _copies(full_name)
        label = short_name(full_name) + (f" ×{copies}" if copies > 1 else "")
        type_ = value.type
        assert isinstance(type_, df.ShapedTypeBase), f"{op.name} declares a tensor or buffer"
        self.producer[value] = self.add_node(
            _decl_kind(op), label, cluster, tier=type_.tier_name, tooltip=full_name,
        )

    def add_operator(self, op: Operation, cluster: str) -> None:
        kind = "collective" if isinstance(op, df.CollectiveBase) else "operator"
        node = self.add_node(kind, op.name.removeprefix("df."), cluster)
        for value in op.operands:
            self.add_edge(value, node)
        self.producer[op.results[0]] = node

    def add_fold(self, fold: Fold) -> None:
        """The first repetition of a fold, in one cluster labelled `<callee> ×N (layers i..j)`."""
        count = len(fold.reps)
        span = f" ×{count} ({self.layer_span(fold)})" if count > 1 else ""
        if len(fold.first) == 1:
            self.add_call(fold.first[0], "", fold, span)
            return
        names = " + ".join(call.callee.string_value() for call in fold.first)
        parent = self.add_cluster("fold", names + span, "", count=count)
        for call in fold.first:
            self.add_call(call, parent, fold)

    def layer_span(self, fold: Fold) -> str:
        """`layers 0..31` from the declarations' names, else `calls 1..32` counting the step's calls from 0."""
        def index(rep: tuple[df.CallBase, ...]) -> int | None:
            decls = [v for call in rep for v in call.operands if _is_decl(v)]
            found = [i for i in (layer_index(_decl_name(d)) for d in decls) if i is not None]
            return found[0] if found else None

        first, last = index(fold.reps[0]), index(fold.reps[-1])
        if first is not None and last is not None:
            return f"layers {first}..{last}"
        calls: list[df.CallBase] = [op for op in self.top.body.block.ops if isinstance(op, CALL_OPS)]
        return f"calls {calls.index(fold.reps[0][0])}..{calls.index(fold.reps[-1][-1])}"

    # -- one call ------------------------------------------------------------------------

    def add_call(self, call: df.CallBase, parent: str, fold: Fold, span: str = "") -> None:
        """A call's callee expanded in a cluster under `parent`; `span` says what it stands for when folded."""
        callee = SymbolTable.lookup_symbol(call, call.callee)
        assert isinstance(callee, df.FuncLikeBase), f"{call.name} of a missing callee"
        loop = _only_loop(callee)
        label = callee.sym_name.data
        if loop is not None:
            label += " · " + _loop_label(loop.trip_count.value.data)
        label += span
        if isinstance(callee, rdu.KernelOp):
            label += f"\n{callee.pcus.value.data} PCUs · {callee.pmus.value.data} PMUs"
        if span:
            cluster = self.add_cluster("fold", label, parent, count=len(fold.reps))
        else:
            cluster = self.add_cluster(_cluster_kind(callee), label, parent)
        for value in call.operands:
            if _is_decl(value) and self.owner.get(value.op) is call:
                self.add_decl(value.op, cluster, fold)
        if isinstance(callee, rdu.KernelOp):
            self.add_rdu_kernel(callee, call, cluster)
            return
        self.producer.update(zip(callee.args, (self.source(v) for v in call.operands)))
        for op in callee.body.block.ops:
            if isinstance(op, df.ReturnOp):
                self.producer.update(zip(call.results, (self.source(v) for v in op.operands)))
            elif isinstance(op, df.LoopOp):
                label = _loop_label(op.trip_count.value.data)
                self.add_loop(op, cluster if op is loop else self.add_cluster("loop", label, cluster))
            else:
                self.add_operator(op, cluster)

    def add_loop(self, loop: df.LoopOp, cluster: str) -> None:
        """A `df.loop`'s body, its arguments fed by the carried and stacked operands."""
        body = loop.body.block
        self.producer.update(zip(body.args, (self.source(v) for v in loop.operands)))
        for op in body.ops:
            if isinstance(op, df.YieldOp):
                self.producer.update(zip(loop.results, (self.source(v) for v in op.operands)))
            else:
                self.add_operator(op, cluster)

    def add_rdu_kernel(self, kernel: rdu.KernelOp, call: df.CallBase, cluster: str) -> None:
        """An rdu kernel's pipeline: its stages and collectives in order, fed by the call's buffers."""
        pipeline, _ = kernel.pipeline()
        nodes = [self.add_pipeline_node(op, cluster) for op in pipeline]
        if not nodes:
            nodes = [self.add_node("stage", "(no stages)", cluster)]
        # Which stage reads which buffer is not in the IR: the kernel as a whole reads them all.
        for value in call.operands:
            self.add_edge(value, nodes[0], kind="argument")
        for before, after in zip(nodes, nodes[1:]):
            self.graph.add_edge(before, after, kind="pipeline", label="", bytes=0)
        for result in call.results:
            self.producer[result] = nodes[-1]

    def add_pipeline_node(self, op: Operation, cluster: str) -> str:
        if isinstance(op, rdu.CollectiveBase):
            sockets = op.sockets.value.data
            message = format_bytes(op.bytes.at(1, self.context))
            return self.add_node("collective", f"{op.name.removeprefix('rdu.')}\n{sockets} sockets · {message}",
                                 cluster)
        assert isinstance(op, rdu.StageOp)
        label = (f"{op.stage_name.data}\n{', '.join(o.data for o in op.operators)}\n"
                 f"{op.units('pcus')} PCUs · {op.units('pmus')} PMUs")
        return self.add_node("stage", label, cluster)


def _only_loop(callee: df.FuncLikeBase) -> df.LoopOp | rdu.LoopOp | None:
    """The loop a looped kernel's body consists of, if that is all it does."""
    ops = [op for op in callee.body.block.ops if not isinstance(op, df.ReturnOp | rdu.ReturnOp)]
    if len(ops) == 1 and isinstance(ops[0], df.LoopOp | rdu.LoopOp):
        return ops[0]
    return None


def _cluster_kind(callee: df.FuncLikeBase) -> str:
    return "layer" if isinstance(callee, df.LayerOp) else "kernel"


def build_graph(module: ModuleOp, *, unfold: bool = False, stage: str | None = None) -> nx.MultiDiGraph:
    """The dataflow graph of `module`'s `df.graph` or `rdu.program`.

    Node attributes: `kind` (operator, collective, stage, input, weight, kv_cache, output),
    `label`, `cluster` (the id of the innermost cluster, "" at the top), and for declarations
    `tier` and `tooltip` (the full name). Edge attributes: `kind` (tensor; in rdu kernels, argument
    for a buffer the kernel reads and pipeline for stage order), `label` and `bytes`. Graph attributes:
    `name`, `stage` (inferred unless given), `tp`, `context`, `label`, and `clusters`, a list of
    `{id, kind, label, parent}` (kind: layer, kernel, loop, or fold with its `count`).
    """
    return _GraphBuilder(module, unfold, stage).build()
