"""Pipeline parallelism: the kernel calls of a fused graph split into consecutive stages, each run
by its own group of sockets (a node), joined by the inter-node link.

`PipelineStages{stages=N micro_batches=M}` cuts a fused graph's launches into N stages in program
order and puts one `df.pipeline_send` at each cut: the activation that the last call of stage
k - 1 hands to the first call of stage k crosses the link there. A cut is possible only between
two launches where exactly one activation (a launch's result) is live across it; the cuts are
chosen so that the stages stream about the same weight bytes per socket (a decode step's time
is mostly its weight streams; an embedding table is gathered, not streamed, and does not count).
Every stage keeps the tensor-parallel degree the graph was sharded to, so a run on N stages of
`sockets` sockets uses N x sockets sockets. The pass runs before kernel looping, so each stage's
decoder layers loop on their own (the send breaks the chain of launches). `micro_batches` is the
number of parts the batch is split into as it flows through the stages (the timing's concern;
docs/timing-model.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import IntegerAttr, ModuleOp
from xdsl.ir import Operation, SSAValue
from xdsl.rewriter import InsertPoint, Rewriter

from dfdsl.dialects import df
from dfdsl.errors import LoweringError
from dfdsl.lowering.stages import Stage, StagedPass


class PipelineSplitError(LoweringError, code="E020"):
    """A graph cannot be split into the pipeline stages asked for: the model does not divide
    over the stages, as over sockets (E020)."""


def streamed_weight_bytes(module: ModuleOp, launch: df.LaunchOp) -> int:
    """The weight bytes per socket a launch streams: its `df.weight` operands, but for a table its
    kernel only gathers rows of (`df.embedding`)."""
    kernel = df.lookup(module, launch.callee.string_value(), df.KernelOp, "pipeline-stages")
    total = 0
    for arg, value in zip(kernel.body.block.args, launch.args):
        if not isinstance(value.owner, df.WeightOp):
            continue
        if arg.uses and all(isinstance(use.operation, df.EmbeddingOp) for use in arg.uses):
            continue
        total += df.tensor_type(value.type).num_bytes()
    return total


def _crossing(ops: Sequence[Operation], cut: int, position: dict[Operation, int]) -> list[SSAValue]:
    """The launch results defined before position `cut` of the graph and used at or after it."""
    return [result for op in ops[:cut] if isinstance(op, df.LaunchOp) for result in op.results
            if any(position[use.operation] >= cut for use in result.uses)]


def choose_cuts(weights: Sequence[int], candidates: Sequence[int], stages: int) -> list[int]:
    """`stages - 1` of the `candidates` (a cut after launch i splits launches ..i from i+1..),
    each the one whose prefix of `weights` is closest to its share of the total, in order."""
    prefix = [sum(weights[: i + 1]) for i in range(len(weights))]
    total = prefix[-1] if prefix else 0
    chosen: list[int] = []
    for k in range(1, stages):
        left = stages - 1 - k  # cuts still to place after this one
        allowed = [c for c in candidates if (not chosen or c > chosen[-1])]
        allowed = allowed[: len(allowed) - left] if left else allowed
        goal = total * k / stages
        chosen.append(min(allowed, key=lambda c: (abs(prefix[c] - goal), c)))
    return chosen


@dataclass(frozen=True)
class PipelineStages(StagedPass):
    """Split a fused graph into `stages` pipeline stages at `df.pipeline_send`s (see the module doc)."""

    name = "pipeline-stages"
    STAGES = {Stage.FUSED: Stage.FUSED}

    stages: int = 2
    micro_batches: int = 1

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        self.expect(op)
        if self.stages < 1 or self.micro_batches < 1:
            raise PipelineSplitError(
                f"pipeline-stages: stages ({self.stages}) and micro_batches ({self.micro_batches}) must be positive")
        graph = df.the_graph(op, "pipeline-stages")
        ops = list(graph.body.block.ops)
        if any(isinstance(o, df.PipelineSendOp) for o in ops):
            raise PipelineSplitError("pipeline-stages: the graph is already split into pipeline stages; "
                                     "use the module from before pipeline-stages")
        if self.stages == 1:
            return
        launches = [o for o in ops if isinstance(o, df.LaunchOp)]
        position = {o: i for i, o in enumerate(ops)}
        candidates = [i for i, launch in enumerate(launches[:-1])
                      if len(_crossing(ops, position[launch] + 1, position)) == 1]
        if len(candidates) < self.stages - 1:
            raise PipelineSplitError(
                f"pipeline-stages: graph @{graph.sym_name.data} cannot run on {self.stages} pipeline stages: its "
                f"{len(launches)} kernel calls have {len(candidates)} places where one activation passes "
                f"from a call to the next; use at most {len(candidates) + 1} stages")
        weights = [streamed_weight_bytes(op, launch) for launch in launches]
        cuts = choose_cuts(weights, candidates, self.stages)
        crossing = [_crossing(ops, position[launches[cut]] + 1, position)[0] for cut in cuts]
        for stage, (cut, value) in enumerate(zip(cuts, crossing), start=1):
            launch = launches[cut]
            send = df.PipelineSendOp.create(
                operands=[value], result_types=[value.type],
                properties={key: IntegerAttr(number, 64) for key, number in
                            (("stage", stage), ("stages", self.stages), ("micro_batches", self.micro_batches))})
            send.results[0].name_hint = value.name_hint
            cut = position[launch]
            value.replace_uses_with_if(send.results[0], lambda use: position.get(use.operation, -1) > cut)
            Rewriter.insert_op(send, InsertPoint.after(launch))
