"""The `rdu` dialect: a decode step as the SN40L runs it.

A module holds one `rdu.program` (the decode step: declared buffers, `rdu.call`s of kernels in
order, `rdu.output`) and the `rdu.kernel`s it calls. A kernel is a spatial pipeline of
`rdu.stage`s (each on its own PCUs and PMUs, with its work per invocation) and collectives
(`rdu.all_reduce`, `rdu.all_gather`), or one `rdu.loop` holding them (a looped kernel). Work is
`#cost.work<c + b*B + bs*B*S>`, affine in the batch `B` and in batch times context `B*S`, so one
program serves every run size; a prefill program (one with a `prompt`) also has terms in the prompt `P`.
Everything inside a program is per socket; `sockets` says how many run it side by side.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import ClassVar, cast

from xdsl.dialects.builtin import I64, ArrayAttr, DenseArrayBase, IntegerAttr, StringAttr, i64
from xdsl.ir import Attribute, Block, Dialect, Region
from xdsl.irdl import (
    IRDLOperation,
    ParsePropInAttrDict,
    attr_def,
    irdl_attr_definition,
    irdl_op_definition,
    prop_def,
    region_def,
    result_def,
    traits_def,
    var_operand_def,
    var_result_def,
)
from xdsl.parser import Parser
from xdsl.printer import Printer
from xdsl.traits import HasParent, IsolatedFromAbove, IsTerminator, NoTerminator, SymbolOpInterface
from xdsl.utils.exceptions import VerifyException

from dfdsl.dialects import df, target_ops
from dfdsl.dialects.cost import NotAffineError, Work, expected_experts, parse_work_terms
from dfdsl.dialects.target_ops import BUFFER_KINDS, TRAFFIC


@irdl_attr_definition
class BufferType(target_ops.BufferTypeBase):
    """A buffer in one memory tier: `!rdu.buffer<[32, 4096, 512], bf16, hbm>`; the tier is required."""

    name = "rdu.buffer"


# ---------------------------------------------------------------------------------------------
# The program: one decode step.


@irdl_op_definition
class ProgramOp(target_ops.ProgramBase):
    """One decode step, per socket: declared buffers, kernel calls in order, the output.

    `sockets` is the tensor-parallel degree the program is sharded to (each socket runs this
    program on its shard); the `*_per_socket` numbers are the chip budget the kernels were sized for.
    """

    KIND: ClassVar[str] = "rdu"
    COUNTS: ClassVar[tuple[str, ...]] = (
        "batch", "context", "tokens", "sockets", "pcus_per_socket", "pmus_per_socket", "sram_bytes_per_socket",
    )

    name = "rdu.program"
    sockets = prop_def(IntegerAttr[I64])
    pcus_per_socket = prop_def(IntegerAttr[I64])
    pmus_per_socket = prop_def(IntegerAttr[I64])
    sram_bytes_per_socket = prop_def(IntegerAttr[I64])


@irdl_op_definition
class BufferOp(target_ops.BufferBase):
    """A declared buffer: the step's input, a weight, or a KV cache, in its memory tier.

    `%w = rdu.buffer "layers.{0..31}.wq" kind weight : !rdu.buffer<[32, 4096, 512], bf16, hbm>`
    """

    name = "rdu.buffer"
    result = result_def(BufferType)
    traits = traits_def(HasParent(ProgramOp))

    def print(self, printer: Printer) -> None:
        printer.print_string(" ")
        printer.print_string_literal(self.buffer_name.data)
        printer.print_string(f" kind {self.kind.data}")
        printer.print_op_attributes(self.attributes)
        printer.print_string(" : ")
        printer.print_attribute(self.result.type)

    @classmethod
    def parse(cls, parser: Parser) -> BufferOp:
        buffer_name = parser.parse_str_literal(" (the buffer's name)")
        parser.parse_keyword("kind")
        kind = parser.parse_identifier(f" (one of {', '.join(BUFFER_KINDS)})")
        extra = parser.parse_optional_attr_dict()
        parser.parse_punctuation(":")
        type_ = parser.parse_type()
        if not isinstance(type_, BufferType):
            parser.raise_error(f"rdu.buffer must have an !rdu.buffer type, got {type_}")
        op = cls(buffer_name, kind, type_)
        op.attributes |= extra
        return op


@irdl_op_definition
class OutputOp(target_ops.OutputBase):
    """The values a decode step produces (the sampled tokens)."""

    name = "rdu.output"
    values = var_operand_def(BufferType)
    traits = traits_def(HasParent(ProgramOp))


# ---------------------------------------------------------------------------------------------
# Kernels.


@irdl_op_definition
class KernelOp(df.FuncLikeBase):
    """A fused kernel: a spatial pipeline of stages and collectives on one socket, ended by `rdu.return`.

    Its body is `rdu.stage`s and collectives in pipeline order, or one `rdu.loop` holding
    them. `pcus`/`pmus` are the sums over its stages and must fit the program's chip budget.
    """

    name = "rdu.kernel"
    pcus = attr_def(IntegerAttr[I64])
    pmus = attr_def(IntegerAttr[I64])
    traits = traits_def(IsolatedFromAbove(), SymbolOpInterface())

    def __init__(self, name: str, inputs: Sequence[Attribute], outputs: Sequence[Attribute],
                 region: Region | None = None):
        super().__init__(name, inputs, outputs, region)
        self.set_units()

    @property
    def loop(self) -> LoopOp | None:
        first = self.body.block.first_op
        return first if isinstance(first, LoopOp) else None

    def pipeline(self) -> tuple[list[StageOp | CollectiveBase], int]:
        """The stages and collectives in pipeline order, and how often they run per call (the trip count)."""
        loop = self.loop
        block = loop.body.block if loop else self.body.block
        ops = [op for op in block.ops if isinstance(op, StageOp | CollectiveBase)]
        return ops, loop.trip_count.value.data if loop else 1

    def stages(self) -> list[StageOp]:
        return [op for op in self.pipeline()[0] if isinstance(op, StageOp)]

    def set_units(self) -> None:
        """Sets `pcus`/`pmus` to the sums over the stages (call after adding or resizing stages)."""
        stages = self.stages()
        self.attributes["pcus"] = IntegerAttr(sum(s.units("pcus") for s in stages), 64)
        self.attributes["pmus"] = IntegerAttr(sum(s.units("pmus") for s in stages), 64)

    def _program(self) -> ProgramOp | None:
        module = self.parent_op()
        if module is None:
            return None
        return next((op for op in module.regions[0].block.ops if isinstance(op, ProgramOp)), None)

    def verify_(self) -> None:
        super().verify_()
        name = f"rdu.kernel @{self.sym_name.data}"
        body = [op for op in self.body.block.ops if not isinstance(op, ReturnOp)]
        if any(isinstance(op, LoopOp) for op in body) and len(body) != 1:
            raise VerifyException(f"{name}: a looped kernel holds its rdu.loop and nothing else")
        stages = self.stages()
        for key, declared in (("pcus", self.pcus), ("pmus", self.pmus)):
            total = sum(s.units(key) for s in stages)
            if declared.value.data != total:
                raise VerifyException(f"{name}: {key} must be the sum over its stages, {total}")
        program = self._program()
        if program is None:
            return
        sram_bytes = sum(s.units("sram_bytes") for s in stages)
        for what, used, budget in (
            ("PCUs", self.pcus, "pcus_per_socket"),
            ("PMUs", self.pmus, "pmus_per_socket"),
        ):
            needed = used.value.data
            if needed > program.count(budget):
                raise VerifyException(
                    f"{name} needs {needed} {what} but a socket has {program.count(budget)}: "
                    "fuse fewer operators into it (fuse{mode=block})"
                )
        if sram_bytes > program.count("sram_bytes_per_socket"):
            raise VerifyException(
                f"{name} needs {sram_bytes} bytes of SRAM but a socket has "
                f"{program.count('sram_bytes_per_socket')}: fuse fewer operators into it"
            )


@irdl_op_definition
class ReturnOp(IRDLOperation):
    """The end of a kernel body."""

    name = "rdu.return"
    traits = traits_def(IsTerminator(), HasParent(KernelOp))
    assembly_format = "attr-dict"


@irdl_op_definition
class CallOp(df.CallBase):
    """One kernel call, a synchronization boundary: program load, argument load, execute.

    Its results are activation buffers in the tier the program keeps activations in.
    """

    name = "rdu.call"
    CALLEE: ClassVar[type[df.Callee]] = KernelOp
    args = var_operand_def(BufferType)
    res = var_result_def(BufferType)
    traits = traits_def(HasParent(ProgramOp))


def _print_list(printer: Printer, values: Sequence[int | str]) -> None:
    printer.print_string("[" + ", ".join(map(str, values)) + "]")


@irdl_op_definition
class LoopOp(IRDLOperation):
    """The pipelined outer loop of a looped kernel (one iteration per layer).

    `stacked` are the indices of the kernel's arguments stacked along a leading layer dimension
    of `trip_count`; `strides` the bytes one iteration advances in each (one layer's slice).
    `carried_bytes` is the activation handed from one iteration to the next, kept on chip in a
    double buffer. The body holds the stages and collectives of one iteration.

    `rdu.loop 32 stacked [1, 2] strides [1048576, 2048*B*S] carried_bytes #cost.work<128*B> { ... }`
    """

    name = "rdu.loop"
    trip_count = prop_def(IntegerAttr[I64])
    stacked = prop_def(DenseArrayBase.constr(i64))
    strides = prop_def(ArrayAttr[Work])
    carried_bytes = prop_def(Work)
    body = region_def("single_block")
    traits = traits_def(NoTerminator(), HasParent(KernelOp))

    def __init__(self, trip_count: int, stacked: Sequence[int], strides: Sequence[Work],
                 carried_bytes: Work, region: Region | None = None):
        super().__init__(
            properties={
                "trip_count": IntegerAttr(trip_count, 64),
                "stacked": DenseArrayBase.from_list(i64, stacked),
                "strides": ArrayAttr(strides),
                "carried_bytes": carried_bytes,
            },
            regions=[region or Region(Block())],
        )

    @property
    def stacked_indices(self) -> tuple[int, ...]:
        return self.stacked.get_values()

    def verify_(self) -> None:
        trips = self.trip_count.value.data
        if trips < 1:
            raise VerifyException("rdu.loop: the trip count must be positive")
        if len(self.strides.data) != len(self.stacked_indices):
            raise VerifyException("rdu.loop: give one stride per stacked argument")
        # HasParent, checked before this, makes the parent an rdu.kernel.
        args = cast(KernelOp, self.parent_op()).args
        for index, stride in zip(self.stacked_indices, self.strides.data):
            if not 0 <= index < len(args):
                raise VerifyException(f"rdu.loop: stacked index {index} is not a kernel argument")
            dims = args[index].type.dims
            if not dims or dims[0] != trips:
                raise VerifyException(
                    f"rdu.loop: stacked argument {index} of shape [{', '.join(map(str, dims))}] must "
                    f"have the trip count {trips} as its leading dimension"
                )
            try:
                slice_bytes = Work.of_bytes(args[index].type.with_dims(dims[1:]))
            except NotAffineError as err:
                raise VerifyException(f"rdu.loop: stacked argument {index}: {err}") from err
            if stride != slice_bytes:
                raise VerifyException(
                    f"rdu.loop: stacked argument {index} advances {slice_bytes.expression()} bytes "
                    f"per iteration, not {stride.expression()}"
                )

    def print(self, printer: Printer) -> None:
        printer.print_string(f" {self.trip_count.value.data} stacked ")
        _print_list(printer, self.stacked_indices)
        printer.print_string(" strides ")
        _print_list(printer, [w.expression() for w in self.strides.data])
        printer.print_string(" carried_bytes ")
        printer.print_attribute(self.carried_bytes)
        printer.print_op_attributes(self.attributes, print_keyword=True)
        printer.print_string(" ")
        printer.print_region(self.body, print_entry_block_args=False)

    @classmethod
    def parse(cls, parser: Parser) -> LoopOp:
        trips = parser.parse_integer(allow_boolean=False, allow_negative=False)
        parser.parse_keyword("stacked")
        stacked = parser.parse_comma_separated_list(
            parser.Delimiter.SQUARE, lambda: parser.parse_integer(allow_boolean=False)
        )
        parser.parse_keyword("strides")
        strides = parser.parse_comma_separated_list(
            parser.Delimiter.SQUARE, lambda: Work.make(*parse_work_terms(parser))
        )
        parser.parse_keyword("carried_bytes")
        carried = parser.parse_attribute()
        if not isinstance(carried, Work):
            parser.raise_error(f"rdu.loop: carried_bytes must be #cost.work, got {carried}")
        extra = parser.parse_optional_attr_dict_with_keyword()
        region = parser.parse_region()
        if not region.blocks:  # `{ }` is an empty body, which is still one block
            region.add_block(Block())
        op = cls(trips, stacked, strides, carried, region)
        if extra is not None:
            op.attributes |= extra.data
        return op


# ---------------------------------------------------------------------------------------------
# What runs inside a kernel.


@irdl_op_definition
class StageOp(target_ops.OperatorWorkBase):
    """One pipeline stage: operators mapped onto `pcus` PCUs and `pmus` PMUs, and their work per invocation.

    `flops` and the bytes read and written per memory tier are per invocation of the stage
    (once per call, or once per iteration inside an `rdu.loop`). A MoE experts stage also says
    `experts`, `top_k` and `expert_read`, the bytes of ONE expert's weights in `expert_tier`;
    its `hbm_read`/`ddr_read` hold only the bytes that do not depend on routing.
    """

    name = "rdu.stage"
    stage_name = prop_def(StringAttr)
    pcus = prop_def(IntegerAttr[I64])
    pmus = prop_def(IntegerAttr[I64])
    sram_bytes = prop_def(IntegerAttr[I64])
    traits = traits_def(HasParent(KernelOp, LoopOp))
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = "$stage_name attr-dict"

    def units(self, key: str) -> int:
        """`pcus`, `pmus` or `sram_bytes` as an int."""
        return cast(IntegerAttr, self.properties[key]).value.data

    def assign(self, *, pcus: int, pmus: int, sram_bytes: int) -> None:
        """Gives the stage its units (the enclosing kernel's totals then need `KernelOp.set_units`)."""
        for key, value in (("pcus", pcus), ("pmus", pmus), ("sram_bytes", sram_bytes)):
            self.properties[key] = IntegerAttr(value, 64)

    def memory_bytes(self, batch: int, context: int, prompt: int = 1) -> float:
        """Bytes this stage moves to and from HBM and DDR per invocation (of `prompt` tokens per
        sequence), experts at their expected count for the batch's tokens."""
        moved = sum(self.work(key).at(batch, context, prompt) for key in TRAFFIC)
        if self.experts is None or self.top_k is None:
            return moved
        touched = expected_experts(self.experts.value.data, self.top_k.value.data, batch * prompt)
        return moved + touched * self.work("expert_read").at(batch, context, prompt)

    def verify_(self) -> None:
        name = f"rdu.stage {self.stage_name.data!r}"
        if self.units("pcus") < 1 or self.units("pmus") < 1:
            raise VerifyException(f"{name} needs at least one PCU and one PMU")
        if self.units("sram_bytes") < 0:
            raise VerifyException(f"{name}: sram_bytes cannot be negative")
        self.verify_work(name)

class CollectiveBase(IRDLOperation):
    """An exchange between `sockets` sockets over the peer-to-peer network, inside a kernel.

    `bytes` is the message each socket contributes; the algorithm and link costs are the simulator's.
    """

    bytes = prop_def(Work)
    sockets = prop_def(IntegerAttr[I64])
    traits = traits_def(HasParent(KernelOp, LoopOp))
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = "attr-dict"

    def __init__(self, bytes_: Work, sockets: int):
        super().__init__(properties={"bytes": bytes_, "sockets": IntegerAttr(sockets, 64)})

    def verify_(self) -> None:
        sockets = self.sockets.value.data
        if sockets < 2:
            raise VerifyException(f"{self.name}: a collective needs at least 2 sockets")
        kernel = self.parent_op()
        if isinstance(kernel, LoopOp):
            kernel = kernel.parent_op()
        # HasParent makes `kernel` an rdu.kernel; a kernel outside a module has no program to match.
        program = cast(KernelOp, kernel)._program()
        if program is not None and sockets != program.count("sockets"):
            raise VerifyException(f"{self.name}: exchanges over {sockets} sockets in a program that runs on "
                                  f"{program.count('sockets')}")


@irdl_op_definition
class AllReduceOp(CollectiveBase):
    """A sum across the sockets, after a row-split projection."""

    name = "rdu.all_reduce"


@irdl_op_definition
class AllGatherOp(CollectiveBase):
    """Every socket's message to every socket (the sampling candidates of a vocabulary split)."""

    name = "rdu.all_gather"


def make_stage(stage_name: str, operators: Sequence[str], *, flops: Work, traffic: Mapping[str, Work],
               moe: target_ops.ExpertWork | None = None, pcus: int = 1, pmus: int = 1,
               sram_bytes: int = 0) -> StageOp:
    """Builds a stage; `traffic` maps keys of `TRAFFIC` to work (missing ones are zero);
    `moe` is (experts, top_k, expert_read, expert_tier) for a MoE experts stage."""
    properties: dict[str, Attribute] = {
        "stage_name": StringAttr(stage_name),
        "operators": ArrayAttr([StringAttr(o) for o in operators]),
        "pcus": IntegerAttr(pcus, 64),
        "pmus": IntegerAttr(pmus, 64),
        **target_ops.traffic_properties(flops, traffic),
        "sram_bytes": IntegerAttr(sram_bytes, 64),
        **target_ops.expert_properties(moe),
    }
    return StageOp.create(properties=properties)


Rdu = Dialect(
    "rdu",
    [ProgramOp, BufferOp, CallOp, OutputOp, KernelOp, ReturnOp, LoopOp, StageOp, AllReduceOp, AllGatherOp],
    [BufferType],
)
