"""The options several commands share, declared once: a run's settings and how to compile."""

from __future__ import annotations

import argparse

from dfdsl.driver import CompileOptions
from dfdsl.elaborate import RUN_SETTING_NAMES, RunValue
from dfdsl.hardware import bundled_targets, display_name, target_name
from dfdsl.lowering.pipeline import FUSION_MODES


def target_names() -> str:
    """The bundled targets as a user types them (`dgx-h100`)."""
    return ", ".join(display_name(name) for name in bundled_targets())


def hardware_help(use: str) -> str:
    """The help of a `--hardware` option: what the machine is for (`use`), and how to name one."""
    return (f"{use}: a hardware TOML file's path, or a bundled machine's name ({target_names()}; "
            "dgx-h100 or dgx_h100 alike)")


def add_run_settings(p: argparse.ArgumentParser, *, sockets: bool = True) -> None:
    g = p.add_argument_group("run settings (override the file's `run` block)")
    g.add_argument("--batch", type=int, metavar="B", help="sequences decoded together")
    g.add_argument("--context", type=int, metavar="C", help="tokens already in the KV cache")
    g.add_argument("--tokens", type=int, metavar="T", help="tokens to generate")
    if sockets:
        g.add_argument("--sockets", type=int, metavar="N",
                       help="sockets (tensor-parallel degree); with --pipeline, per stage")
    g.add_argument("--target", metavar="NAME", help=f"machine to run on: {target_names()}")
    g.add_argument("--prompt", type=int, metavar="P",
                   help="prompt tokens per sequence: time the whole request, its prefill then its decode")
    g.add_argument("--chunk", type=int, metavar="C", help="prefill the prompt in chunks of C tokens")
    g.add_argument("--draft-tokens", type=int, metavar="K",
                   help="tokens the draft model proposes per step (speculative decoding)")
    g.add_argument("--acceptance", type=float, metavar="A",
                   help="probability that the model accepts a drafted token (speculative decoding)")
    g.add_argument("--pipeline", type=int, metavar="N",
                   help="pipeline stages, each a node of --sockets sockets joined by the inter-node link: "
                        "the run uses N x sockets sockets (default 1, an RDU only)")
    g.add_argument("--micro-batches", type=int, metavar="M",
                   help="equal parts of the batch that flow through the pipeline stages (default 1)")
    add_split_options(g)


def add_split_options(g: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """`--parallel` and `--no-pad`: how the model is split over the sockets."""
    g.add_argument("--parallel", metavar="PART=SPLIT,...",
                   help="how each part is split over the sockets, replacing the file's `parallel` block: "
                        "attention=tensor|data, experts=tensor|expert|data, dense=tensor|data, "
                        "imbalance=X (expert parallelism's busiest socket over the mean), e.g. "
                        "attention=data,experts=expert")
    g.add_argument("--no-pad", action="store_true",
                   help="refuse a split that does not divide the sockets (E020) instead of padding it")


def add_lowering_options(p: argparse.ArgumentParser, *, fusion: bool = True) -> None:
    g = p.add_argument_group("lowering")
    if fusion:
        g.add_argument("--fusion", choices=FUSION_MODES, default="layer",
                       help="operators per kernel: one each, attention/MLP blocks, or whole layers (default)")
        g.add_argument("--no-kernel-looping", action="store_true",
                       help="keep one kernel call per layer instead of one looped call per run of layers "
                            "(kernel looping is on wherever the target can loop kernels)")
    g.add_argument("--hardware", metavar="FILE|NAME", help=hardware_help("the machine to use instead of the target's"))


def overrides(args: argparse.Namespace) -> dict[str, RunValue]:
    """The run settings given on the command line, by name."""
    values = {k: getattr(args, k) for k in RUN_SETTING_NAMES if getattr(args, k, None) is not None}
    if "target" in values:
        values["target"] = target_name(str(values["target"]))
    parallel = [getattr(args, "parallel", None) or "", "pad=off" if getattr(args, "no_pad", False) else ""]
    if any(parallel):
        values["parallel"] = ",".join(filter(None, parallel))
    return values


def compile_options(args: argparse.Namespace) -> CompileOptions:
    # Kernel looping is on unless turned off; None lets the target decide (a GPU cannot loop).
    return CompileOptions(fusion=getattr(args, "fusion", "layer"),
                          kernel_looping=False if getattr(args, "no_kernel_looping", False) else None,
                          hardware=args.hardware or "")
