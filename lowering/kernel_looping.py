"""Kernel looping: a run of launches of one kernel, one per layer, becomes one launch of a loop.

`find_runs` reads a fused module and finds the maximal runs of consecutive `df.launch`es of the
same kernel whose activations chain from launch i to launch i+1 and whose other operands are
per-layer `df.weight`s and `df.kv_cache`s, each used by its launch only; where such launches
cannot be looped it says why, as `Remark`s. `KernelLooping` then replaces each run of N launches
by per-position stacked declarations with a leading layer dimension of N and one launch of a
new kernel `@<kernel>_x<N>`, whose body is a `df.loop` of N iterations over the old kernel body.
Launch indices in runs and remarks count the `df.launch`es of a graph from 0, in program order.
"""

from __future__ import annotations

import itertools
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import attrs
from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Block, Operation, Region, SSAValue
from xdsl.pattern_rewriter import PatternRewriter
from xdsl.rewriter import InsertPoint
from xdsl.traits import SymbolTable

from dfdsl.dialects import df
from dfdsl.errors import LoweringError
from dfdsl.lowering.stages import Stage, StagedPass

PER_LAYER_DECLS = (df.WeightOp, df.KvCacheOp)
"""Declarations that can be stacked along a layer dimension (inputs are shared, never per layer)."""


@attrs.frozen
class Remark:
    """Why some launches of `kernel` (by launch index) were left as they are."""

    kernel: str
    launches: tuple[int, ...]
    message: str


@attrs.frozen(eq=False)
class Run:
    """Consecutive launches of `kernel`, from launch index `first`, that loop into one launch.

    `carried` gives, for each result of the kernel, the operand position where the next launch
    takes it; `stacked` lists the other operand positions (per-layer weights and caches).
    """

    kernel: str
    first: int
    launches: tuple[df.LaunchOp, ...] = attrs.field(repr=False)
    carried: tuple[int, ...]
    stacked: tuple[int, ...]

    @property
    def indices(self) -> range:
        return range(self.first, self.first + len(self.launches))


def find_runs(module: ModuleOp, min_calls: int = 2) -> tuple[list[Run], list[Remark]]:
    """The runs of at least `min_calls` launches to loop in every graph, and remarks on the rest."""
    runs: list[Run] = []
    remarks: list[Remark] = []
    looped = {op.sym_name.data for op in module.ops
              if isinstance(op, df.KernelOp) and isinstance(op.body.block.first_op, df.LoopOp)}
    for graph in module.ops:
        if isinstance(graph, df.GraphOp):
            launches = [op for op in graph.body.block.ops if isinstance(op, df.LaunchOp)]
            graph_remarks = _interleaving_remarks(launches)
            for group in _same_kernel_groups(launches):
                if (kernel := _callee(launches[group[0]])) in looped:
                    graph_remarks.append(Remark(kernel, tuple(group), (
                        f"launches {group[0]}..{group[-1]} of @{kernel} not looped: @{kernel} already "
                        "holds a df.loop, and loops do not nest")))
                    continue
                runs += _runs_in_group(launches, group, min_calls, graph_remarks)
            remarks += sorted(graph_remarks, key=lambda r: r.launches)
    return runs, remarks


# ---------------------------------------------------------------------------------------------
# Finding runs.


def _callee(launch: df.LaunchOp) -> str:
    return launch.callee.string_value()


def _same_kernel_groups(launches: Sequence[df.LaunchOp]) -> list[list[int]]:
    """Maximal groups of consecutive launch indices with the same callee, two or more long."""
    groups = [
        [i for i, _ in members]
        for _, members in itertools.groupby(enumerate(launches), key=lambda p: _callee(p[1]))
    ]
    return [g for g in groups if len(g) > 1]


def _runs_in_group(
    launches: Sequence[df.LaunchOp], group: list[int], min_calls: int, remarks: list[Remark]
) -> list[Run]:
    """Split a group of launches of one kernel at broken chains, then at bad operands."""
    kernel = _callee(launches[group[0]])
    runs: list[Run] = []
    start, carried = group[0], None
    for i in group[:-1]:
        link = _chain(launches, i)
        if isinstance(link, str):
            reason = link
        elif carried is None or link == carried:
            carried = link
            continue
        else:
            reason = _mismatch(i, link, carried)
        remarks.append(
            Remark(
                kernel, (i, i + 1), f"launches {i} and {i + 1} of @{kernel} not looped together: {reason}"
            )
        )
        if carried is not None:
            runs += _runs_in_chain(launches, range(start, i + 1), carried, min_calls, remarks)
        start, carried = i + 1, None
    if carried is not None:
        runs += _runs_in_chain(launches, range(start, group[-1] + 1), carried, min_calls, remarks)
    return runs


def _mismatch(i: int, positions: tuple[int, ...], before: tuple[int, ...]) -> str:
    return (
        f"launch {i + 1} takes the activations at operands {list(positions)}, "
        f"launch {i} took them at {list(before)}"
    )


def _chain(launches: Sequence[df.LaunchOp], i: int) -> tuple[int, ...] | str:
    """Where launch i+1 takes each result of launch i, or why the results do not chain."""
    launch, successor = launches[i], launches[i + 1]
    if not launch.res:
        return f"@{_callee(launch)} returns nothing, so no activation flows between launches"
    positions: list[int] = []
    for j, result in enumerate(launch.res):
        what = "the result" if len(launch.res) == 1 else f"result {j}"
        users = [use.operation for use in result.uses]
        others = [user for user in users if user is not successor]
        if others:
            return f"{what} of launch {i} is also used by {_describe_user(others[0], launches)}"
        if not users:
            return f"{what} of launch {i} is not used by launch {i + 1}"
        if len(users) > 1:
            return f"launch {i + 1} takes {what} of launch {i} more than once"
        positions.append(next(iter(result.uses)).index)
    return tuple(positions)


def _runs_in_chain(
    launches: Sequence[df.LaunchOp],
    chain: range,
    carried: tuple[int, ...],
    min_calls: int,
    remarks: list[Remark],
) -> list[Run]:
    """Split a chain at launches whose other operands are not per-layer, keep the long pieces."""
    kernel = _callee(launches[chain[0]])
    stacked = tuple(p for p in range(len(launches[chain[0]].args)) if p not in carried)
    pieces: list[list[int]] = [[]]
    for i in chain:
        problem = _operand_problem(launches, i, stacked)
        if problem is None:
            pieces[-1].append(i)
        else:
            remarks.append(Remark(kernel, (i,), f"launch {i} of @{kernel} not looped: {problem}"))
            pieces.append([])
    runs: list[Run] = []
    for piece in pieces:
        if len(piece) >= min_calls:
            members = tuple(launches[i] for i in piece)
            runs.append(Run(kernel, piece[0], members, carried, stacked))
        elif len(piece) > 1:
            remarks.append(
                Remark(
                    kernel,
                    tuple(piece),
                    f"launches {piece[0]}..{piece[-1]} of @{kernel} not looped: a run of "
                    f"{len(piece)} launches is shorter than min-calls={min_calls}",
                )
            )
    return runs


def _operand_problem(launches: Sequence[df.LaunchOp], i: int, stacked: tuple[int, ...]) -> str | None:
    """Why an operand of launch i at a stacked position is not a per-layer tensor, if it is not."""
    launch = launches[i]
    for p in stacked:
        value = launch.args[p]
        if not isinstance(value.owner, PER_LAYER_DECLS):
            what = _describe_value(value, launches)
            return f"operand {p} is {what}, not a per-layer df.weight or df.kv_cache"
        if value.has_more_than_one_use():
            others = [use.operation for use in value.uses if use.operation is not launch]
            where = (
                f"used by {_describe_user(others[0], launches)}" if others else f"passed twice to launch {i}"
            )
            return (
                f"operand {p} ({_describe_value(value, launches)}) is also {where}; "
                "a per-layer weight or cache must feed one launch only"
            )
    return None


def _describe_value(value: SSAValue, launches: Sequence[df.LaunchOp]) -> str:
    owner = value.owner
    if isinstance(owner, df.DECLS):
        return f'{owner.name} "{owner.tensor_name.data}"'
    if isinstance(owner, df.LaunchOp):
        return f"a result of {_describe_user(owner, launches)}"
    return f"a value defined by {owner.name}" if isinstance(owner, Operation) else "a block argument"


def _describe_user(op: Operation, launches: Sequence[df.LaunchOp]) -> str:
    if isinstance(op, df.LaunchOp) and op in launches:
        return f"launch {launches.index(op)} (@{_callee(op)})"
    return op.name


def _interleaving_remarks(launches: Sequence[df.LaunchOp]) -> list[Remark]:
    """Remarks on kernels launched more than once with other kernels launched in between.

    A kernel that is never launched twice in a row alternates with the kernels between its
    launches (what `fuse{mode=none}` gives); one remark names the whole alternating set. A kernel
    that does have consecutive launches gets one remark per gap.
    """
    at: dict[str, list[int]] = {}
    for i, launch in enumerate(launches):
        at.setdefault(_callee(launch), []).append(i)
    repeated = {_callee(a) for a, b in itertools.pairwise(launches) if _callee(a) == _callee(b)}
    remarks: list[Remark] = []
    alternating: list[tuple[str, list[str]]] = []
    for kernel, indices in at.items():
        gaps = [(a, b) for a, b in itertools.pairwise(indices) if b > a + 1]
        between = [_kernels_in(launches, a, b) for a, b in gaps]
        if gaps and kernel not in repeated:
            partners = dict.fromkeys(k for ks in between for k in ks)
            alternating.append((kernel, [kernel, *partners]))
            continue
        if gaps:
            remarks.append(_gap_remark(kernel, gaps, between))
    for n, (kernel, kernels) in enumerate(alternating):
        # One remark per alternating set: skip sets that an earlier or larger one covers.
        if any(set(kernels) < set(other) for _, other in alternating) or any(
            set(kernels) == set(other) for _, other in alternating[:n]
        ):
            continue
        span = range(min(at[k][0] for k in kernels), max(at[k][-1] for k in kernels) + 1)
        involved = tuple(i for i in span if _callee(launches[i]) in kernels)
        tail = "one kernel" if not set(kernels) & repeated else f"@{kernel}"
        remarks.append(
            Remark(
                kernel,
                involved,
                f"{_names(kernels)} alternate over launches {involved[0]}..{involved[-1]}; "
                f"no consecutive launches of {tail}",
            )
        )
    return remarks


def _gap_remark(kernel: str, gaps: list[tuple[int, int]], between: list[list[str]]) -> Remark:
    """One remark for all the places where other kernels split the launches of `kernel`."""
    others = list(dict.fromkeys(k for ks in between for k in ks))
    verb = "is" if len(others) == 1 else "are"
    (a, b), count = gaps[0], len(gaps)
    more = {1: "", 2: " (and one more such pair)"}.get(count, f" (and {count - 1} more such pairs)")
    where = f"launches {a} and {b}{more}"
    return Remark(
        kernel,
        tuple(i for gap in gaps for i in gap),
        f"{where} of @{kernel} not looped together: {_names(others)} {verb} launched between them",
    )


def _kernels_in(launches: Sequence[df.LaunchOp], a: int, b: int) -> list[str]:
    """The kernels launched strictly between launch indices a and b, in first-launch order."""
    return list(dict.fromkeys(_callee(launch) for launch in launches[a + 1 : b]))


def _names(kernels: Sequence[str]) -> str:
    names = [f"@{k}" for k in kernels]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


# ---------------------------------------------------------------------------------------------
# Rewriting runs into loops.


_INTEGER_FIELD = re.compile(r"(\d+)")


def stacked_name(names: Sequence[str]) -> str:
    """`layers.0.wq` ... `layers.31.wq` -> `layers.{0..31}.wq`; otherwise `<first>..<last>`.

    The braces are used only when the names differ in exactly one integer field and that field
    counts up by one, so the stacked name says exactly which tensors were stacked, in order.
    """
    parts = [_INTEGER_FIELD.split(name) for name in names]
    first = parts[0]
    if all(len(p) == len(first) for p in parts):
        differing = [k for k in range(len(first)) if any(p[k] != first[k] for p in parts)]
        # re.split with one group puts the integer fields at the odd indices.
        if len(differing) == 1 and differing[0] % 2 == 1:
            k = differing[0]
            values = [int(p[k]) for p in parts]
            if values == list(range(values[0], values[0] + len(values))):
                return f"{''.join(first[:k])}{{{values[0]}..{values[-1]}}}{''.join(first[k + 1:])}"
    return f"{names[0]}..{names[-1]}"


def _stack_declarations(
    decls: Sequence[df.DeclBase], rewriter: PatternRewriter
) -> SSAValue:
    """One declaration of `decls[0]`'s kind with a leading layer dimension, where decls[0] stood."""
    first = decls[0]
    slice_type = first.result.type
    stacked_type = slice_type.with_dims((len(decls), *slice_type.dims))
    stacked = type(first)(stacked_name([d.tensor_name.data for d in decls]), stacked_type)
    rewriter.insert(stacked, InsertPoint.before(first))
    # `%wq0` names layer 0's tensor; the stacked one is `%wq`.
    hint = re.sub(r"_?\d+$", "", first.result.name_hint or "")
    stacked.result.name_hint = hint or None
    return stacked.result


def looped_kernel(kernel: df.KernelOp, name: str, trip_count: int, carried: Sequence[int],
                  stacked: Sequence[int]) -> df.KernelOp:
    """A kernel taking `kernel`'s operands, those at `stacked` positions with a leading layer
    dimension, whose body is a `df.loop` of `trip_count` copies of `kernel`'s body."""
    inputs = list(kernel.function_type.inputs.data)
    outer_inputs = [
        df.tensor_type(t).with_dims((trip_count, *df.tensor_type(t).dims)) if p in stacked else t
        for p, t in enumerate(inputs)
    ]
    looped = df.KernelOp(name, outer_inputs, kernel.function_type.outputs.data)
    outer_args = looped.body.block.args
    order = [*carried, *stacked]
    body = Block(arg_types=[inputs[p] for p in order])
    for outer, original in zip(outer_args, kernel.args):
        outer.name_hint = original.name_hint
    mapping: dict[SSAValue, SSAValue] = {}
    for inner, p in zip(body.args, order):
        inner.name_hint = kernel.args[p].name_hint
        mapping[kernel.args[p]] = inner
    for op in kernel.body.block.ops:
        if isinstance(op, df.ReturnOp):
            body.add_op(df.YieldOp(*(mapping[v] for v in op.values)))
        else:
            body.add_op(op.clone(value_mapper=mapping))
    loop = df.LoopOp(
        trip_count, [outer_args[p] for p in carried], [outer_args[p] for p in stacked], Region(body)
    )
    looped.body.block.add_ops([loop, df.ReturnOp(*loop.res)])
    return looped


def _free_symbol(module: ModuleOp, base: str) -> str:
    name, suffix = base, 1
    while SymbolTable.lookup_symbol(module, name) is not None:
        name, suffix = f"{base}_{suffix}", suffix + 1
    return name


def _loop_run(
    run: Run, module: ModuleOp, rewriter: PatternRewriter, made: dict[tuple[str, int], str]
) -> None:
    """Replace the launches of `run` and their per-layer declarations by one looped launch."""
    kernel = df.lookup(module, run.kernel, df.KernelOp, "kernel-looping")
    trip_count = len(run.launches)
    key = (run.kernel, trip_count)
    if key not in made:
        made[key] = _free_symbol(module, f"{run.kernel}_x{trip_count}")
        new_kernel = looped_kernel(kernel, made[key], trip_count, run.carried, run.stacked)
        rewriter.insert(new_kernel, InsertPoint.before(kernel))
    # find_runs checked that these owners are df.weight or df.kv_cache ops.
    per_layer = {p: [cast(df.DeclBase, launch.args[p].owner) for launch in run.launches] for p in run.stacked}
    stacked = {p: _stack_declarations(decls, rewriter) for p, decls in per_layer.items()}
    first, last = run.launches[0], run.launches[-1]
    args = [stacked.get(p, value) for p, value in enumerate(first.args)]
    rewriter.replace(last, df.LaunchOp(made[key], args, kernel.function_type.outputs.data))
    for launch in reversed(run.launches[:-1]):
        rewriter.erase(launch)
    for decls in per_layer.values():
        for decl in decls:
            rewriter.erase(decl)


@dataclass(frozen=True)
class KernelLooping(StagedPass):
    """Loop every run of at least `min_calls` chained launches of one kernel (see the module doc).

    With `remarks`, say on stderr what was looped, and why launches of one kernel were left unlooped.
    """

    name = "kernel-looping"
    STAGES = {Stage.FUSED: Stage.LOOPED, Stage.LOOPED: Stage.LOOPED}

    min_calls: int = 2
    remarks: bool = False

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        self.expect(op)
        if self.min_calls < 2:
            raise LoweringError(
                f"kernel-looping: min-calls must be at least 2, got {self.min_calls}; "
                "a loop of one launch saves nothing"
            )
        runs, remarks = find_runs(op, self.min_calls)
        # The runs are found on the whole graph before any rewrite, so this is one rewrite over
        # the module rather than a walker of local patterns.
        rewriter = PatternRewriter(InsertPoint.at_end(op.body.block))
        made: dict[tuple[str, int], str] = {}
        for run in runs:
            _loop_run(run, op, rewriter, made)
        if self.remarks:
            said = [(run.first, f"looped launches {run.indices.start}..{run.indices.stop - 1} of @{run.kernel} "
                                f"into one launch of @{made[run.kernel, len(run.launches)]}") for run in runs]
            said += [(remark.launches[0], remark.message) for remark in remarks]
            for _, message in sorted(said):
                print(f"remark: kernel-looping: {message}", file=sys.stderr)
            if not said:
                print("remark: kernel-looping: nothing to loop: no kernel is launched twice in a row",
                      file=sys.stderr)
        launched = {_callee(o) for o in op.walk() if isinstance(o, df.LaunchOp)}
        for kernel in dict.fromkeys(run.kernel for run in runs):
            if kernel not in launched:
                rewriter.erase(df.lookup(op, kernel, df.KernelOp, "kernel-looping"))
