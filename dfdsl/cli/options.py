"""The options several commands share, declared once: a run's settings and how to compile."""

from __future__ import annotations

import argparse

from dfdsl.driver import CompileOptions
from dfdsl.elaborate import RunValue
from dfdsl.hardware import bundled_targets, display_name, target_name
from dfdsl.lowering.pipeline import FUSION_MODES

RUN_SETTINGS = ("batch", "context", "tokens", "sockets", "target", "prompt", "chunk", "draft_tokens", "acceptance")


def target_names() -> str:
    """The bundled targets as a user types them (`dgx-h100`)."""
    return ", ".join(display_name(name) for name in bundled_targets())


def add_run_settings(p: argparse.ArgumentParser, *, sockets: bool = True) -> None:
    g = p.add_argument_group("run settings (override the file's `run` block)")
    g.add_argument("--batch", type=int, metavar="B", help="sequences decoded together")
    g.add_argument("--context", type=int, metavar="C", help="tokens already in the KV cache")
    g.add_argument("--tokens", type=int, metavar="T", help="tokens to generate")
    if sockets:
        g.add_argument("--sockets", type=int, metavar="N", help="sockets (tensor-parallel degree)")
    g.add_argument("--target", metavar="NAME", help=f"machine to run on: {target_names()}")
    g.add_argument("--prompt", type=int, metavar="P",
                   help="prompt tokens per sequence: time the whole request, its prefill then its decode")
    g.add_argument("--chunk", type=int, metavar="C", help="prefill the prompt in chunks of C tokens")
    g.add_argument("--draft-tokens", type=int, metavar="K",
                   help="tokens the draft model proposes per step (speculative decoding)")
    g.add_argument("--acceptance", type=float, metavar="A",
                   help="probability that the model accepts a drafted token (speculative decoding)")


def add_lowering_options(p: argparse.ArgumentParser, *, fusion: bool = True) -> None:
    g = p.add_argument_group("lowering")
    if fusion:
        g.add_argument("--fusion", choices=FUSION_MODES, default="layer",
                       help="operators per kernel: one each, attention/MLP blocks, or whole layers (default)")
        g.add_argument("--no-kernel-looping", action="store_true",
                       help="keep one kernel call per layer instead of one looped call per run of layers "
                            "(kernel looping is on wherever the target can loop kernels)")
    g.add_argument("--hardware", metavar="FILE", help="a hardware TOML file to use instead of the target's")


def overrides(args: argparse.Namespace) -> dict[str, RunValue]:
    """The run settings given on the command line, by name."""
    values = {k: getattr(args, k) for k in RUN_SETTINGS if getattr(args, k, None) is not None}
    if "target" in values:
        values["target"] = target_name(str(values["target"]))
    return values


def compile_options(args: argparse.Namespace) -> CompileOptions:
    # Kernel looping is on unless turned off; None lets the target decide (a GPU cannot loop).
    return CompileOptions(fusion=getattr(args, "fusion", "layer"),
                          kernel_looping=False if getattr(args, "no_kernel_looping", False) else None,
                          hardware=args.hardware or "")
