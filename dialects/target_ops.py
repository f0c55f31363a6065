"""Ops every target dialect shares: a program of one decode step, declared buffers, calls, the output.

`rdu` (the SN40L) and `nv` (a GPU node) both lower a `df` graph to one program that declares its
buffers, calls kernels in order and ends with its output. The classes here are undecorated IRDL
bases, as `df.FuncLikeBase` is for func-like ops: each dialect's op subclasses one, names itself,
its buffer type and its parent, and keeps its own syntax. Calls reuse `df.CallBase`. Also here is
the base of the ops that run `df` operators and state their work in `#cost.work` (an SN40L stage,
a GPU kernel).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar, cast

from xdsl.dialects.builtin import I64, ArrayAttr, IntegerAttr, StringAttr, SymbolNameConstraint
from xdsl.ir import Attribute, Block, Region, SSAValue
from xdsl.irdl import (
    IRDLOperation,
    ParsePropInAttrDict,
    opt_prop_def,
    prop_def,
    region_def,
    result_def,
    traits_def,
)
from xdsl.traits import NoTerminator, SymbolOpInterface
from xdsl.utils.exceptions import VerifyException

from dfdsl.dialects import df
from dfdsl.dialects.cost import ZERO, Work
from dfdsl.dialects.shapes import TIERS
from dfdsl.hardware import bundled_kind, bundled_targets

BUFFER_KINDS = tuple(decl.BUFFER_KIND for decl in df.DECLS)
"""What a declared buffer holds, as its `df` declaration says: a step's input, a parameter, or a KV cache."""


class BufferTypeBase(df.ShapedTypeBase):
    """A buffer type of a target: a shaped type whose memory tier is required."""

    def verify(self) -> None:
        super().verify()
        if not self.tier.data:
            raise VerifyException(f"!{self.name} needs a memory tier ({', '.join(TIERS)})")


# ---------------------------------------------------------------------------------------------
# Ops that run `df` operators, and their work.


TRAFFIC = ("hbm_read", "hbm_write", "ddr_read", "ddr_write")
"""Memory traffic per invocation, by tier and direction (SRAM traffic is on chip)."""

EXPERT_FIELDS = ("experts", "top_k", "expert_read", "expert_tier")
"""What a MoE experts op gives, all or none: experts, top_k, ONE expert's bytes and their tier."""

ExpertWork = tuple[int, int, Work, str, int, int]
"""(experts, top_k, expert_read, expert_tier, experts_held, token_shards) of a MoE experts op, as
the builders take it; `experts_held` is 0 and `token_shards` 1 without expert parallelism."""


class OperatorWorkBase(IRDLOperation):
    """An op that runs `df` operators and states their work per invocation.

    `flops` and the bytes read and written per memory tier (`TRAFFIC`) are per invocation. A MoE
    experts op also says `experts`, `top_k` and `expert_read`, the bytes of ONE expert in
    `expert_tier`. The concrete op calls `verify_work` from its `verify_`.
    """

    operators = prop_def(ArrayAttr[StringAttr])
    flops = prop_def(Work)
    hbm_read = prop_def(Work, default_value=ZERO)
    hbm_write = prop_def(Work, default_value=ZERO)
    ddr_read = prop_def(Work, default_value=ZERO)
    ddr_write = prop_def(Work, default_value=ZERO)
    experts = opt_prop_def(IntegerAttr[I64])
    top_k = opt_prop_def(IntegerAttr[I64])
    expert_read = opt_prop_def(Work)
    expert_tier = opt_prop_def(StringAttr)
    experts_held = opt_prop_def(IntegerAttr[I64])
    """Expert parallelism: the experts (of `experts`) this socket holds."""
    token_shards = opt_prop_def(IntegerAttr[I64])
    """Expert parallelism: how many sockets' tokens (as many as this one's) are routed."""

    def expert_shares(self) -> tuple[int, int]:
        """(experts_held, token_shards): (0, 1) when every socket holds every expert."""
        return (self.experts_held.value.data if self.experts_held else 0,
                self.token_shards.value.data if self.token_shards else 1)

    def work(self, key: str) -> Work:
        """`flops`, one of `TRAFFIC`, or `expert_read` (zero when absent)."""
        return cast(Work, self.properties.get(key, ZERO))

    def verify_work(self, label: str) -> None:
        """Checks the operators and the MoE fields; `label` names this op in the messages."""
        if not self.operators.data:
            raise VerifyException(f"{label} runs no operators")
        given = [key for key in EXPERT_FIELDS if key in self.properties]
        if given and len(given) != len(EXPERT_FIELDS):
            kind = self.name.partition(".")[2]
            raise VerifyException(f"{label}: a MoE {kind} gives all of {', '.join(EXPERT_FIELDS)}")
        if self.expert_tier is not None and self.expert_tier.data not in TIERS:
            raise VerifyException(f"{label}: unknown expert tier {self.expert_tier.data!r}")
        if self.experts is not None and self.top_k is not None:
            if not 1 <= self.top_k.value.data <= self.experts.value.data:
                raise VerifyException(f"{label}: top_k must be between 1 and the number of experts")
        held, shards = self.expert_shares()
        if (held or shards != 1) and self.experts is None:
            raise VerifyException(f"{label}: experts_held and token_shards describe a MoE experts op")
        if self.experts is not None and not (0 <= held <= self.experts.value.data and shards >= 1):
            raise VerifyException(f"{label}: experts_held is at most the experts, token_shards at least 1")


def traffic_properties(flops: Work, traffic: Mapping[str, Work]) -> dict[str, Attribute]:
    """`flops` and every key of `TRAFFIC`, from `traffic` or zero, as properties."""
    return {"flops": flops, **{key: traffic.get(key, ZERO) for key in TRAFFIC}}


def expert_properties(moe: ExpertWork | None) -> dict[str, Attribute]:
    """The MoE properties of an experts op, none for any other."""
    if moe is None:
        return {}
    experts, top_k, expert_read, expert_tier, held, token_shards = moe
    shares = {"experts_held": IntegerAttr(held, 64), "token_shards": IntegerAttr(token_shards, 64)}
    return {
        "experts": IntegerAttr(experts, 64),
        "top_k": IntegerAttr(top_k, 64),
        "expert_read": expert_read,
        "expert_tier": StringAttr(expert_tier),
        **(shares if held else {}),
    }


# ---------------------------------------------------------------------------------------------
# The program and what it declares and produces.


class ProgramBase(IRDLOperation):
    """One decode step of a target: declared buffers, calls in order, the output. With a
    `prompt`, one prefill pass of that many tokens per sequence instead (its work has `P` terms).

    `COUNTS` are the integer properties the program requires, all positive; the concrete op
    defines those beyond `batch`, `context` and `tokens`.
    """

    COUNTS: ClassVar[tuple[str, ...]]
    KIND: ClassVar[str]
    """The kind of machine (`dfdsl.hardware`: `rdu`, `gpu`) whose bundled targets `target` may name."""

    sym_name = prop_def(SymbolNameConstraint())
    batch = prop_def(IntegerAttr[I64])
    context = prop_def(IntegerAttr[I64])
    tokens = prop_def(IntegerAttr[I64])
    target = prop_def(StringAttr)
    prompt = opt_prop_def(IntegerAttr[I64])
    batch_shards = opt_prop_def(IntegerAttr[I64])
    """Data-parallel attention: the batch's sequences are split over this many sockets, and the
    program is one socket's step for its own ceil(batch / batch_shards) of them."""
    body = region_def("single_block")
    traits = traits_def(NoTerminator(), SymbolOpInterface())
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = "$sym_name attr-dict-with-keyword $body"

    def __init__(self, name: str, *, target: str, region: Region | None = None, prompt: int | None = None,
                 **counts: int):
        super().__init__(
            properties={
                "sym_name": StringAttr(name),
                "target": StringAttr(target),
                **{key: IntegerAttr(counts[key], 64) for key in self.COUNTS},
                **({} if prompt is None else {"prompt": IntegerAttr(prompt, 64)}),
            },
            regions=[region or Region(Block())],
        )

    def sequences_per_socket(self, batch: int) -> int:
        """The sequences of a run of `batch` that the busiest socket runs the program for."""
        return -(-batch // (self.batch_shards.value.data if self.batch_shards else 1))

    def count(self, key: str) -> int:
        """One of the integer properties (`COUNTS`) as an int."""
        return cast(IntegerAttr, self.properties[key]).value.data

    def verify_(self) -> None:
        df.verify_defined_before_use(self.body.block, f"{self.name} @{self.sym_name.data}")
        for key in self.COUNTS:
            if self.count(key) <= 0:
                raise VerifyException(f"{self.name}: {key} must be positive")
        if self.prompt is not None and self.prompt.value.data <= 0:
            raise VerifyException(f"{self.name}: prompt must be positive")
        target, kind = self.target.data, bundled_kind(self.target.data)
        if kind != self.KIND:
            problem = f"unknown target {target!r}" if kind is None else \
                f"target {target!r} is a {kind} machine, not a {self.KIND} one"
            machines = ", ".join(name for name in bundled_targets() if bundled_kind(name) == self.KIND)
            raise VerifyException(f"{self.name}: {problem}; targets are {machines}")
        df.verify_unique_names(((op.buffer_name.data, op) for op in self.body.block.ops if isinstance(op, BufferBase)),
                               f"{self.name} @{self.sym_name.data}", "declares the buffer")
        outputs = [op for op in self.body.block.ops if isinstance(op, OutputBase)]
        if outputs and outputs[-1] is not self.body.block.last_op:
            raise VerifyException(f"{self.name}: {outputs[-1].name} must be the last op of the program")


class BufferBase(IRDLOperation):
    """A declared buffer: the step's input, a weight, or a KV cache (`BUFFER_KINDS`).

    The concrete op narrows `result` to its dialect's buffer type.
    """

    buffer_name = prop_def(StringAttr)
    kind = prop_def(StringAttr)
    result = result_def(BufferTypeBase)

    def __init__(self, buffer_name: str, kind: str, type_: BufferTypeBase):
        super().__init__(
            properties={"buffer_name": StringAttr(buffer_name), "kind": StringAttr(kind)},
            result_types=[type_],
        )

    def verify_(self) -> None:
        if self.kind.data not in BUFFER_KINDS:
            raise VerifyException(
                f"{self.name} {self.buffer_name.data!r}: kind {self.kind.data!r} is not one of "
                + ", ".join(BUFFER_KINDS)
            )


class OutputBase(IRDLOperation):
    """The values a decode step produces (the sampled tokens); the concrete op defines `values`."""

    assembly_format = "attr-dict ($values^ `:` type($values))?"

    def __init__(self, *values: SSAValue):
        super().__init__(operands=[values])
