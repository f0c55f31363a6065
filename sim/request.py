"""Whole requests and speculative decoding, timed from the kernel calls of a target's programs.

A request is a prompt of P tokens per sequence, then T output tokens. Its prefill runs the
model's prefill program (a graph whose activations carry the prompt dimension `P`) once over the
whole prompt, or once per chunk of it; the pass that ends the prompt samples the first output
token, so the time to first token (TTFT) is the prefill. Each later output token is a decode step
with the context growing by one. A prefill pass is timed with the same skeleton as a decode step
(`timing.step`, each call by the target's `CallTimer`): its calls' work is fixed at the pass's
prompt tokens (`at_prompt`), and its GEMMs, whose rows are the pass's batch x prompt tokens,
reach the shape-dependent `prefill_efficiency` of the hardware file instead of a decode step's.

Speculative decoding (Leviathan et al., 2023) replaces each decode step by a round: the draft
model decodes k tokens, one step each, and the model verifies them in one pass of k + 1 tokens (a
short prefill over the cache); with each drafted token accepted with probability α, a round
yields (1 - α^(k+1)) / (1 - α) tokens on average. Both targets use these functions unchanged:
only the calls and the call timer differ.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import attrs

from dfdsl.hardware import GpuHardware, Hardware
from dfdsl.sim import timing
from dfdsl.sim.interpreter import SimResult

Machine = Hardware | GpuHardware


def at_prompt(call: timing.KernelCall, prompt: int) -> timing.KernelCall:
    """`call` in a pass of `prompt` tokens per sequence: its work as a function of B and S alone,
    its experts routed for `prompt` tokens per sequence."""
    work = call.work
    return attrs.evolve(call, work=timing.IterationWork(
        flops=work.flops.at_prompt(prompt),
        hbm_read=work.hbm_read.at_prompt(prompt),
        hbm_write=work.hbm_write.at_prompt(prompt),
        ddr_read=work.ddr_read.at_prompt(prompt),
        ddr_write=work.ddr_write.at_prompt(prompt),
        experts=tuple(attrs.evolve(e, bytes_per_expert=e.bytes_per_expert.at_prompt(prompt),
                                   tokens_per_sequence=prompt) for e in work.experts),
        all_reduces=tuple(attrs.evolve(r, message_bytes=r.message_bytes.at_prompt(prompt))
                          for r in work.all_reduces),
        all_to_alls=tuple(attrs.evolve(x, message_bytes=x.message_bytes.at_prompt(prompt))
                          for x in work.all_to_alls),
    ))


def prefill_efficiency(hw: Machine, tokens: int) -> float:
    """The fraction of peak a pass over `tokens` tokens (batch x prompt, its GEMMs' rows) reaches:
    `prefill_compute_efficiency` x tokens / (tokens + `prefill_half_efficiency_tokens`)."""
    a = hw.assumptions
    return a.prefill_compute_efficiency * tokens / (tokens + a.prefill_half_efficiency_tokens)


def _computing_at(hw: Machine, efficiency: float) -> Machine:
    """`hw` with its calls' compute at `efficiency` of peak."""
    assumptions = attrs.evolve(hw.assumptions, compute_efficiency=efficiency)
    # Either machine's `assumptions` takes its own kind, which attrs' typing of a union cannot say.
    changed: Machine = attrs.evolve(cast(Any, hw), assumptions=assumptions)
    return changed


def prefill_pass(calls: Sequence[timing.KernelCall], hw: Machine, time_call: timing.CallTimer, *,
                 batch: int, prompt: int, context: int) -> timing.Step:
    """One pass of the prefill program: `prompt` tokens of each of `batch` sequences, over
    `context` tokens already cached; its compute at the efficiency of its `batch x prompt` rows."""
    pass_hw = _computing_at(hw, prefill_efficiency(hw, batch * prompt))
    return timing.step([at_prompt(c, prompt) for c in calls], pass_hw, batch, context, time_call)


@attrs.frozen
class Prefill:
    """The passes of one prefill, in order (one, or one per chunk); figures per socket."""

    passes: tuple[timing.Step, ...]

    @property
    def total_s(self) -> float:
        return sum(p.total_s for p in self.passes)

    @property
    def flops(self) -> float:
        return sum(p.flops for p in self.passes)


def prefill(calls: Sequence[timing.KernelCall], hw: Machine, time_call: timing.CallTimer, *,
            batch: int, prompt: int, chunk: int = 0) -> Prefill:
    """The prefill of a `prompt` of tokens per sequence: one pass, or passes of `chunk` tokens
    (the last one shorter), each over the chunks before it. Chunking does the same attention
    FLOPs in all, and pays per pass its calls' fixed costs and another stream of the weights."""
    step = chunk or prompt
    return Prefill(tuple(
        prefill_pass(calls, hw, time_call, batch=batch, prompt=min(step, prompt - done), context=done)
        for done in range(0, prompt, step)
    ))


def tokens_per_round(draft_tokens: int, acceptance: float) -> float:
    """Tokens a round of speculative decoding yields on average: (1 - α^(k+1)) / (1 - α), each of
    the k drafted tokens accepted with probability α until the first rejection, plus the model's
    own token after the last accepted one (k + 1 when α = 1)."""
    if acceptance >= 1.0:
        return draft_tokens + 1.0
    return (1.0 - acceptance ** (draft_tokens + 1)) / (1.0 - acceptance)


@attrs.frozen
class Round:
    """One round of speculative decoding: the draft's k decode steps, then the verification."""

    drafts: tuple[timing.Step, ...]
    verify: timing.Step

    @property
    def draft_s(self) -> float:
        return sum(s.total_s for s in self.drafts)

    @property
    def total_s(self) -> float:
        return self.draft_s + self.verify.total_s

    def per_token(self, tokens: float) -> timing.Step:
        """The round's time, bytes and FLOPs shared among the `tokens` it yields."""
        return timing.run_of((*self.drafts, self.verify)).total.shared(tokens)


@attrs.frozen
class Speculation:
    """Speculative decoding of a run: its settings, rounds, and the per-token figures they give."""

    draft_tokens: int
    acceptance: float
    rounds: tuple[Round, ...]
    result: SimResult
    """The run's figures per output token, speculation included (the plain run's, otherwise)."""
    plain: SimResult
    """The same run decoded by the model alone."""

    @property
    def tokens_per_round(self) -> float:
        return tokens_per_round(self.draft_tokens, self.acceptance)

    @property
    def draft_time_fraction(self) -> float:
        """The share of the rounds' time spent in the draft model."""
        return sum(r.draft_s for r in self.rounds) / sum(r.total_s for r in self.rounds)


def speculate(plain: SimResult, verify_calls: Sequence[timing.KernelCall], draft_calls: Sequence[timing.KernelCall],
              hw: Machine, time_call: timing.CallTimer, *, draft_tokens: int, acceptance: float) -> Speculation:
    """Speculative decoding of the run `plain` times: its `plain.tokens` output tokens from context
    `plain.context` come from rounds of `draft_tokens` draft decode steps (`draft_calls`) and one
    verification pass of `draft_tokens + 1` tokens (the model's prefill program, `verify_calls`),
    each round starting where the tokens of the rounds before it leave the context (rounded to a
    whole token); the run's figures are the rounds' mean per token yielded."""
    batch = plain.sequences_per_socket
    per_round = tokens_per_round(draft_tokens, acceptance)
    count = max(1, round(plain.tokens / per_round))
    rounds = []
    for r in range(count):
        context = plain.context + round(r * per_round)
        drafts = tuple(timing.step(draft_calls, hw, batch, context + j, time_call) for j in range(draft_tokens))
        verify = prefill_pass(verify_calls, hw, time_call, batch=batch, prompt=draft_tokens + 1, context=context)
        rounds.append(Round(drafts, verify))
    run = timing.run_of([r.per_token(per_round) for r in rounds])
    result = attrs.evolve(
        plain.with_run(run),
        kernel_calls_per_token=(draft_tokens * len(draft_calls) + len(verify_calls)) / per_round,
        calls=(*(at_prompt(c, draft_tokens + 1) for c in verify_calls), *draft_calls),
    )
    return Speculation(draft_tokens, acceptance, tuple(rounds), result, plain)
