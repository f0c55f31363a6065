"""The `df-to-rdu` pass: a fused (and possibly looped) `df` module becomes an `rdu` program.

The `df.graph` becomes one `rdu.program` whose declarations are `rdu.buffer`s and whose launches
are `rdu.call`s. Each `df.kernel` becomes an `rdu.kernel`: one `rdu.stage` per heavy operator,
the light operators (norms, activations, elementwise) merged into the next heavy stage (or the
previous one when none follows), an `rdu.all_reduce` or `rdu.all_gather` per collective, and an `rdu.loop` for a
`df.loop`. Each stage gets its work per invocation (FLOPs, bytes per tier, B and S symbolic) and
a share of the socket's usable PCUs and PMUs in proportion to its FLOPs and its bytes moved at
the program's batch and context (and prompt, for a prefill graph, which keeps its `prompt`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import attrs
from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp, StringAttr
from xdsl.ir import Block, BlockArgument, Operation, Region, SSAValue
from xdsl.pattern_rewriter import (
    GreedyRewritePatternApplier,
    PatternRewriter,
    PatternRewriteWalker,
    RewritePattern,
    op_type_rewrite_pattern,
)

from dfdsl.dialects import df, rdu
from dfdsl.dialects.cost import ZERO, Work
from dfdsl.errors import HardwareFileError, LoweringError, describe
from dfdsl.hardware import Chip, Hardware, HardwareError, TargetMismatchError, check_target, load_hardware
from dfdsl.lowering.operator_work import OFF_CHIP_TIERS, OperatorWork, moved, operator_work
from dfdsl.lowering.stages import Stage, StagedPass


def _chip_budget(target: str, hardware: str) -> Chip:
    """One socket's PCUs, PMUs and SRAM, from the `hardware` file if given, else the bundled `target`."""
    try:
        hw = load_hardware(hardware or target)
    except HardwareError as err:
        raise HardwareFileError(f"df-to-rdu: {err}") from err
    if not isinstance(hw, Hardware):
        raise TargetMismatchError(
            f"df-to-rdu: `{hw.name}` is a {hw.kind.upper()}, not an RDU; lower GPU targets with "
            "gpu-partition and df-to-nv (dfdsl run does this for you)")
    check_target("df-to-rdu", target, "rdu")  # the program names it, with a hardware file too
    return hw.chip


# ---------------------------------------------------------------------------------------------
# Kernels: operators grouped into stages, stages sized to the chip.


@attrs.frozen
class _Run:
    """What the lowering needs to know about the graph's run."""

    batch: int
    context: int
    prompt: int
    """Tokens per sequence of one pass: the graph's prompt in a prefill, 1 in a decode step."""
    tp: int
    activations: str
    chip: Chip

    def buffer_type(self, type_: df.TensorType) -> rdu.BufferType:
        """The rdu buffer of a df tensor: activations go to the graph's activations tier."""
        tier = type_.tier_name or self.activations
        return rdu.BufferType(type_.shape, type_.element_type, StringAttr(tier))


@attrs.define
class _StageDraft:
    """A stage being grouped: its name (its heavy operator), its operators so far and their work."""

    name: str
    operators: list[str]
    work: OperatorWork


Pipeline = list[_StageDraft | rdu.CollectiveBase]


def _summed(ops: Sequence[df.OperatorBase], run: _Run) -> OperatorWork:
    return sum((operator_work(o, run.activations) for o in ops), OperatorWork())


def _group(ops: Sequence[df.OperatorBase], run: _Run) -> Pipeline:
    """The pipeline of a kernel body (operators, as the placed contract says): stage drafts and
    collectives in order."""
    pipeline: Pipeline = []
    light: list[df.OperatorBase] = []
    for op in ops:
        if not isinstance(op, df.OperatorBase):
            raise LoweringError(f"df-to-rdu: {op.name} cannot appear in a kernel body")
        if isinstance(op, df.CollectiveBase):
            # On one socket there is nothing to exchange: the collective vanishes.
            if run.tp >= 2:
                collective = rdu.AllGatherOp if isinstance(op, df.AllGatherOp) else rdu.AllReduceOp
                pipeline.append(collective(Work.of_bytes(op.x.type), run.tp))
        elif op.HEAVY:
            grouped = [*light, op]
            pipeline.append(_StageDraft(op.operator, [o.operator for o in grouped], _summed(grouped, run)))
            light = []
        else:
            light.append(op)
    if light:
        last = next((d for d in reversed(pipeline) if isinstance(d, _StageDraft)), None)
        if last is None:
            last = _StageDraft(light[-1].operator, [], OperatorWork())
            pipeline.append(last)
        last.operators += [o.operator for o in light]
        last.work += _summed(light, run)
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


def _sized_ops(kernel: str, pipeline: Pipeline, run: _Run) -> list[Operation]:
    """The pipeline as rdu ops, the stages sharing the socket's usable PCUs and PMUs."""
    chip = run.chip
    usable_pcus = round(chip.usable_fraction * chip.pcus)
    usable_pmus = round(chip.usable_fraction * chip.pmus)
    ops: list[Operation] = [
        rdu.make_stage(d.name, d.operators, flops=d.work.flops, traffic=d.work.traffic, moe=d.work.moe)
        if isinstance(d, _StageDraft) else d
        for d in pipeline
    ]
    stages = [op for op in ops if isinstance(op, rdu.StageOp)]
    if len(stages) > min(usable_pcus, usable_pmus):
        raise LoweringError(
            f"df-to-rdu: kernel @{kernel} has {len(stages)} stages but a socket has only "
            f"{min(usable_pcus, usable_pmus)} usable PCUs/PMUs: fuse fewer operators per kernel"
        )
    pcus = _share_out(usable_pcus, [s.work("flops").at(run.batch, run.context, run.prompt) for s in stages])
    pmus = _share_out(usable_pmus, [s.memory_bytes(run.batch, run.context, run.prompt) for s in stages])
    for stage, n_pcus, n_pmus in zip(stages, pcus, pmus):
        # A stage owns the whole capacity of the PMUs it is given: this is an allocation, not an
        # estimate of the on-chip footprint of its tiles.
        stage.assign(pcus=n_pcus, pmus=n_pmus, sram_bytes=n_pmus * chip.pmu_bytes)
    return ops


def _activation_io(kernel: df.KernelOp, pipeline: Pipeline, run: _Run) -> None:
    """With activations in HBM or DDR, a kernel reads its activation arguments (first stage) and
    writes its results (last stage) there; on chip they cost no memory traffic."""
    drafts = [d for d in pipeline if isinstance(d, _StageDraft)]
    if run.activations not in OFF_CHIP_TIERS or not drafts:
        return
    for arg in kernel.args:
        if not df.tensor_type(arg.type).tier_name:
            drafts[0].work += moved("read", run.activations, Work.of_bytes(df.tensor_type(arg.type)))
    for result in kernel.function_type.outputs.data:
        drafts[-1].work += moved("write", run.activations, Work.of_bytes(df.tensor_type(result)))


def _lower_loop(kernel: df.KernelOp, loop: df.LoopOp, run: _Run) -> rdu.LoopOp:
    """A `df.loop` over stacked kernel arguments becomes an `rdu.loop` of one iteration's stages.

    Its carried activation stays on chip between iterations, so a looped kernel's stages carry no
    activation traffic even when activations live off chip (the one read of its input and write
    of its result per call are not counted)."""
    stacked = []
    for value in loop.stacked:
        if not (isinstance(value, BlockArgument) and value.owner is kernel.body.block):
            raise LoweringError(
                f"df-to-rdu: kernel @{kernel.sym_name.data}: a stacked loop operand must be a kernel argument"
            )
        stacked.append(value.index)
    strides = [Work.of_bytes(v.type.with_dims(v.type.dims[1:])) for v in loop.stacked]
    carried = sum((Work.of_bytes(v.type) for v in loop.carried), ZERO)
    body = [op for op in loop.body.block.ops if not isinstance(op, df.YieldOp)]
    ops = _sized_ops(kernel.sym_name.data, _group(body, run), run)
    return rdu.LoopOp(loop.trip_count.value.data, stacked, strides, carried, Region(Block(ops)))


def _lower_kernel(kernel: df.KernelOp, run: _Run) -> rdu.KernelOp:
    """The `rdu.kernel` for a `df.kernel` whose body is operators or one `df.loop`."""
    name = kernel.sym_name.data
    body = [op for op in kernel.body.block.ops if not isinstance(op, df.ReturnOp)]
    if body and isinstance(body[0], df.LoopOp):  # then it is the only op, as the placed contract says
        ops: list[Operation] = [_lower_loop(kernel, body[0], run)]
    else:
        pipeline = _group(body, run)
        _activation_io(kernel, pipeline, run)
        ops = _sized_ops(name, pipeline, run)
    inputs = [run.buffer_type(df.tensor_type(t)) for t in kernel.function_type.inputs.data]
    outputs = [run.buffer_type(df.tensor_type(t)) for t in kernel.function_type.outputs.data]
    block = Block(arg_types=inputs)
    for arg, old in zip(block.args, kernel.args):
        arg.name_hint = old.name_hint
    block.add_ops([*ops, rdu.ReturnOp()])
    return rdu.KernelOp(name, inputs, outputs, Region(block))


# ---------------------------------------------------------------------------------------------
# The graph: declarations, launches and the output become the program.

def _lower_op(op: Operation, values: dict[SSAValue, SSAValue], run: _Run) -> Operation:
    """The program op for one op of a fused graph."""
    if isinstance(op, df.DeclBase):
        return rdu.BufferOp(op.tensor_name.data, op.BUFFER_KIND, run.buffer_type(op.result.type))
    if isinstance(op, df.LaunchOp):
        return rdu.CallOp(
            op.callee.string_value(),
            [values[a] for a in op.args],
            [run.buffer_type(df.tensor_type(t)) for t in op.res.types],
        )
    # The placed contract, less the graph-level all-reduces DfToRdu refuses, leaves the output.
    return rdu.OutputOp(*(values[v] for v in cast(df.OutputOp, op).values))


def _lower_graph(graph: df.GraphOp, run: _Run, target: str) -> rdu.ProgramOp:
    """The `rdu.program` of a fused `df.graph`: one op per declaration, launch and output."""
    values: dict[SSAValue, SSAValue] = {}
    block = Block()
    for op in graph.body.block.ops:
        new = _lower_op(op, values, run)
        for old, result in zip(op.results, new.results):
            result.name_hint = old.name_hint
            values[old] = result
        block.add_op(new)
    chip = run.chip
    return rdu.ProgramOp(
        graph.sym_name.data, target=target, region=Region(block),
        batch=graph.batch.value.data, context=graph.context.value.data,
        tokens=graph.tokens.value.data, sockets=run.tp, prompt=graph.prompt.value.data if graph.prompt else None,
        pcus_per_socket=chip.pcus, pmus_per_socket=chip.pmus, sram_bytes_per_socket=chip.sram_bytes,
    )


@dataclass
class LowerKernel(RewritePattern):
    """df.kernel -> rdu.kernel of sized stages."""

    run: _Run

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: df.KernelOp, rewriter: PatternRewriter) -> None:
        rewriter.replace(op, _lower_kernel(op, self.run))


@dataclass
class LowerGraph(RewritePattern):
    """df.graph -> rdu.program."""

    run: _Run
    target: str

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: df.GraphOp, rewriter: PatternRewriter) -> None:
        rewriter.replace(op, _lower_graph(op, self.run, self.target))



@dataclass(frozen=True)
class DfToRdu(StagedPass):
    """Lowers a fused `df` module to an `rdu` program sized for `target` (or the `hardware` file)."""

    name = "df-to-rdu"
    STAGES = {Stage.PLACED: Stage.RDU}

    target: str = "sn40l"
    hardware: str = ""
    """A hardware TOML file; overrides `target`'s bundled one."""

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        self.expect(op)
        graph = df.the_graph(op, "df-to-rdu")
        if (stray := next((o for o in graph.body.block.ops if isinstance(o, df.CollectiveBase)), None)) is not None:
            raise LoweringError(
                f"df-to-rdu: {describe(stray)} is outside a kernel, where gpu-partition leaves it for a GPU: "
                "run fuse instead for an RDU"
            )
        run = _Run(
            batch=graph.batch.value.data, context=graph.context.value.data, prompt=graph.prompt_tokens,
            tp=graph.tp.value.data,
            activations=graph.activations.data, chip=_chip_budget(self.target, self.hardware),
        )
        PatternRewriteWalker(
            GreedyRewritePatternApplier([LowerKernel(run), LowerGraph(run, self.target)]),
            apply_recursively=False,
        ).rewrite_module(op)
