"""Stage contracts: the form a module has between two passes, and a checker for each stage.

The lowering takes a module through these stages:

- `df`, what the front end makes: one `df.graph` not yet sharded (tp = 1) of declarations,
  operators, `df.call`s and `df.output`, and the `df.layer`s it calls, each operators ended by
  `df.return`; no kernel, launch or loop;
- `sharded`, after shard-tensor-parallel: the same at any tp;
- `fused`, after fuse (or gpu-partition for a GPU): no layer or call left; the graph holds
  declarations, `df.launch`es, graph-level collectives (gpu-partition's NCCL calls) and
  `df.output`, and every `df.kernel` is operators ended by `df.return`;
- `looped`, after kernel-looping: fused, except that a kernel may instead hold one `df.loop` of
  operators, whose stacked operands are the kernel's arguments;
- `placed`, after place-memory: looped, with a memory tier on every `df.weight` and `df.kv_cache`;
- `rdu` (after df-to-rdu) and `nv` (after df-to-nv): one `rdu.program` and `rdu.kernel`s, or one
  `nv.program` and `nv.kernel`s, and no op of another dialect.

`check_stage(module, stage)` raises `StageError` (E024), naming the stage, what is wrong and what
to run, when `module` does not have that stage's form. The verifier checks each op (a call names a
callee of its kind, types match), so a contract assumes a module that verifies and checks its form.

Every pass is a `StagedPass`: `STAGES` maps each stage it accepts to the stage it then produces,
and its `apply` starts with `self.expect(module)`. `apply_checked` runs a pass the way the
pipeline and `dfdsl opt` do: it also verifies the result and checks it against the contract of
the stage the pass produces, so a pass that breaks its own contract (`BrokenOutputError`, a bug in
dfdsl) fails where it does, not in a later pass.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Collection, Mapping
from typing import ClassVar

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import BlockArgument, Operation
from xdsl.passes import ModulePass

from dfdsl.dialects import df, nv, rdu
from dfdsl.errors import LoweringError, describe, verify


class Stage(enum.Enum):
    """The stages of the lowering (docs/ir.md); `dfdsl lower --emit` prints five of them."""

    DF = "df"
    SHARDED = "sharded"
    FUSED = "fused"
    LOOPED = "looped"
    PLACED = "placed"
    RDU = "rdu"
    NV = "nv"

    def __str__(self) -> str:
        return self.value


class StageError(LoweringError):
    """A module without the form of a stage: the `stage`, what is wrong (`problem`) and the `fix`."""

    def __init__(self, message: str, stage: Stage, problem: str, fix: str):
        super().__init__(message)
        self.stage, self.problem, self.fix = stage, problem, fix

    @classmethod
    def broken(cls, stage: Stage, problem: str, fix: str) -> StageError:
        """`fused: df.call @layer_0 remains; run fuse first ...`"""
        return cls(f"{stage}: {problem}; {fix}", stage, problem, fix)


class BrokenOutputError(Exception):
    """A pass produced a module without the form of the stage it declares: a bug in dfdsl."""


RUN_FUSE = "run fuse first (gpu-partition for a GPU)"
BEFORE_FUSE = "use the module from before fuse"
UNFUSED_GRAPH_OPS = (*df.DECLS, df.OperatorBase, df.CallOp, df.OutputOp)
FUSED_GRAPH_OPS = (*df.DECLS, df.LaunchOp, df.CollectiveBase, df.OutputOp)


def _df_graph(module: ModuleOp, stage: Stage, callables: type[df.FuncLikeBase]) -> df.GraphOp:
    """The module's one `df.graph`, its other top-level ops being `callables` (layers or kernels)."""
    graphs = []
    for op in module.ops:
        if isinstance(op, df.GraphOp):
            graphs.append(op)
        elif isinstance(op, callables):
            continue
        elif isinstance(op, df.LayerOp):
            raise StageError.broken(stage, f"{describe(op)} remains", RUN_FUSE)
        elif isinstance(op, df.KernelOp):
            raise StageError.broken(stage, f"{describe(op)} is defined, so the module is already fused",
                                    BEFORE_FUSE)
        elif op.name.startswith(("rdu.", "nv.")):
            lowering = "df-to-rdu" if op.name.startswith("rdu.") else "df-to-nv"
            raise StageError.broken(stage, f"the module holds {describe(op)}, so it is already lowered",
                                    f"use the module from before {lowering}")
        else:
            raise StageError.broken(stage, f"the module holds {describe(op)}, which is not df IR",
                                    "a df module holds one df.graph and its layers or kernels")
    if len(graphs) != 1:
        raise StageError.broken(stage, f"the module has {len(graphs)} df.graphs",
                                "a df module holds exactly one, the decode step")
    return graphs[0]


def _operators_then(block_ops: list[Operation], end: type[Operation], stage: Stage, where: str,
                    form: str) -> None:
    """Checks that a body is operators ended by one `end` op; `form` says so in the message."""
    if not block_ops or not isinstance(block_ops[-1], end):
        raise StageError.broken(stage, f"{where} does not end with {end.name}", form)
    for op in block_ops[:-1]:
        if not isinstance(op, df.OperatorBase):
            raise StageError.broken(stage, f"{where} holds {describe(op)}", form)


def _check_unfused(module: ModuleOp, stage: Stage) -> None:
    graph = _df_graph(module, stage, df.LayerOp)
    where = f"graph @{graph.sym_name.data}"
    if stage is Stage.DF and (tp := graph.tp.value.data) != 1:
        raise StageError.broken(stage, f"{where} is already sharded over {tp} sockets (tp = {tp})",
                                "use the unsharded module")
    for op in graph.body.block.ops:
        if isinstance(op, df.LaunchOp):
            raise StageError.broken(stage, f"{where} holds {describe(op)}, so it is already fused", BEFORE_FUSE)
        if not isinstance(op, UNFUSED_GRAPH_OPS):
            raise StageError.broken(stage, f"{where} holds {describe(op)}",
                                    "an unfused graph holds declarations, operators, df.calls and df.output")
    for layer in module.ops:
        if isinstance(layer, df.LayerOp):
            _operators_then(list(layer.body.block.ops), df.ReturnOp, stage, f"layer @{layer.sym_name.data}",
                            "a layer holds operators ended by df.return")


def _check_kernel(kernel: df.KernelOp, stage: Stage) -> None:
    where = f"kernel @{kernel.sym_name.data}"
    ops = list(kernel.body.block.ops)
    loop = ops[0] if ops and isinstance(ops[0], df.LoopOp) else None
    if loop is None or stage is Stage.FUSED:
        if loop is not None:
            raise StageError.broken(stage, f"{where} holds a df.loop, so the module is already looped",
                                    "use the module from before kernel-looping")
        _operators_then(ops, df.ReturnOp, stage, where, "a kernel holds operators ended by df.return")
        return
    if len(ops) != 2 or not isinstance(ops[1], df.ReturnOp):
        raise StageError.broken(stage, f"{where} holds a df.loop and other ops",
                                "a looped kernel holds one df.loop and its df.return")
    _operators_then(list(loop.body.block.ops), df.YieldOp, stage, f"the df.loop of {where}",
                    "a loop body holds operators ended by df.yield")
    for value in loop.stacked:
        if not (isinstance(value, BlockArgument) and value.owner is kernel.body.block):
            raise StageError.broken(stage, f"the df.loop of {where} stacks a value that is not a kernel argument",
                                    "a looped kernel stacks its own arguments")


def untiered(graph: df.GraphOp) -> Operation | None:
    """The first `df.weight` or `df.kv_cache` of the graph without a memory tier, if any."""
    return next((op for op in graph.body.block.ops if isinstance(op, df.WeightOp | df.KvCacheOp)
                 and not op.result.type.tier_name), None)


NO_TIER_FIX = "write one in its type (`!df.tensor<[...], bf16, hbm>`), as the front end does"


def _check_fused(module: ModuleOp, stage: Stage) -> None:
    graph = _df_graph(module, stage, df.KernelOp)
    where = f"graph @{graph.sym_name.data}"
    for op in graph.body.block.ops:
        if isinstance(op, df.CallOp):
            raise StageError.broken(stage, f"{describe(op)} remains", RUN_FUSE)
        if isinstance(op, df.OperatorBase) and not isinstance(op, df.CollectiveBase):
            raise StageError.broken(stage, f"{describe(op)} is outside a kernel", RUN_FUSE)
        if not isinstance(op, FUSED_GRAPH_OPS):
            raise StageError.broken(stage, f"{where} holds {describe(op)}",
                                    "a fused graph holds declarations, df.launches, collectives and df.output")
    for kernel in module.ops:
        if isinstance(kernel, df.KernelOp):
            _check_kernel(kernel, stage)
    if stage is Stage.PLACED and (op := untiered(graph)) is not None:
        raise StageError.broken(stage, f"{describe(op)} has no memory tier", NO_TIER_FIX)


def _target_checker(program: type[Operation], lowering: str) -> Callable[[ModuleOp, Stage], None]:
    """The check of a target stage: only ops of its dialect, and one `program` (the dialect's
    verifier places the rest: buffers and calls in the program, stages in kernels)."""

    def check(module: ModuleOp, stage: Stage) -> None:
        programs = [op for op in module.ops if isinstance(op, program)]
        for op in module.walk():
            if op is module or op.name.startswith(f"{stage}."):
                continue
            if op.name.startswith("df."):
                raise StageError.broken(stage, f"df ops remain: {describe(op)}", f"run {lowering} first")
            raise StageError.broken(stage, f"the module holds {describe(op)}, which is not {stage} IR",
                                    f"{lowering} makes {stage} IR from placed df IR")
        if len(programs) != 1:
            raise StageError.broken(stage, f"the module has {len(programs)} {program.name}s",
                                    f"{lowering} makes exactly one")
    return check


CHECKS: dict[Stage, Callable[[ModuleOp, Stage], None]] = {
    Stage.DF: _check_unfused,
    Stage.SHARDED: _check_unfused,
    Stage.FUSED: _check_fused,
    Stage.LOOPED: _check_fused,
    Stage.PLACED: _check_fused,
    Stage.RDU: _target_checker(rdu.ProgramOp, "df-to-rdu"),
    Stage.NV: _target_checker(nv.ProgramOp, "df-to-nv"),
}


def check_stage(module: ModuleOp, stage: Stage) -> None:
    """Raises `StageError` unless `module` (which verifies) has the form of `stage`."""
    CHECKS[stage](module, stage)


def expect(module: ModuleOp, who: str, stages: Collection[Stage]) -> Stage:
    """The first of `stages` whose contract `module` meets; else a `StageError` saying what `who`
    (a pass, a simulator) expects and what the last of `stages` finds wrong."""
    for stage in stages:
        try:
            check_stage(module, stage)
            return stage
        except StageError as err:
            last = err
    names = [str(s) for s in stages]
    accepted = " or ".join([", ".join(names[:-1]), names[-1]] if len(names) > 2 else names)
    raise StageError(f"{who} expects {accepted} IR, but {last.problem}: {last.fix}",
                     last.stage, last.problem, last.fix) from last


class StagedPass(ModulePass):
    """A pass with a stage contract: `STAGES` maps each stage it accepts to the stage it produces.

    The first stage a module meets decides what the pass produces; when it meets none, the error
    is that of the last stage, so a pass lists the stage the pipeline gives it last.
    """

    STAGES: ClassVar[Mapping[Stage, Stage]]

    def expect(self, module: ModuleOp) -> Stage:
        """The stage of `module` among `STAGES`, or a `StageError` naming this pass."""
        return expect(module, self.name, self.STAGES)


def apply_checked(p: ModulePass, ctx: Context, module: ModuleOp) -> None:
    """Applies `p`, then verifies the module and checks it has the form of the stage `p` produces."""
    produced = p.STAGES[p.expect(module)] if isinstance(p, StagedPass) else None
    p.apply(ctx, module)
    verify(module)
    if produced is not None:
        try:
            check_stage(module, produced)
        except StageError as err:
            raise BrokenOutputError(f"{p.name} produced a module that is not {produced} IR: {err}") from err
