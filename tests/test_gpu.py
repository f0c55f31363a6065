"""The DGX H100 baseline: its hardware file, the gpu-partition and df-to-nv passes, the `nv`
dialect, and the GPU timing interpreter against hand computation and invariants."""

from functools import cache
from importlib import resources
from pathlib import Path

import pytest
from df_models import tiny_llama, tiny_moe
from xdsl.context import Context
from xdsl.dialects.builtin import Builtin, ModuleOp
from xdsl.parser import Parser
from xdsl.utils.exceptions import DiagnosticException

from dfdsl.dialects import cost, df, nv, rdu
from dfdsl.lowering.df_to_nv import DfToNv
from dfdsl.lowering.gpu_partition import GpuPartition, KernelLoopingOnGpuError
from dfdsl.lowering.kernel_looping import KernelLooping
from dfdsl.lowering.fuse import Fuse
from dfdsl.lowering.pipeline import GPU_PIPELINE, LoweringOptions, run_passes
from dfdsl.lowering.place_memory import PlaceMemory
from dfdsl.lowering.shard_tensor_parallel import ShardTensorParallel
from dfdsl.driver import CompileOptions, run_model
from dfdsl.lowering.stages import StageError
from dfdsl.sim import timing
from dfdsl.sim.gpu_interpreter import (
    GPU_TRACK,
    NotAGpuError,
    launch_timing,
    nccl_call,
    simulate_gpu,
    step,
)
from dfdsl.hardware import GpuHardware, HardwareError, load_hardware, parse_hardware

HW = load_hardware("dgx_h100")
A = HW.assumptions
EXAMPLES = Path(__file__).parent.parent / "examples"
KERNELS_PER_LAYER = 11
"""9 kernels and 2 NCCL all-reduces per Llama decoder layer (docs/gpu-baseline.md)."""
NON_LAYER_CALLS = 6
"""Embedding, the last residual add + final norm, the LM head, and the sampler over the GPUs'
shares of the vocabulary: each GPU's top-k, the NCCL all-gather of the candidates, the sample."""


def _context() -> Context:
    ctx = Context()
    ctx.load_dialect(Builtin)
    for dialect in (df.Df, cost.Cost, rdu.Rdu, nv.Nv):
        ctx.load_dialect(dialect)
    return ctx


def _lowered(module: ModuleOp, sockets: int) -> ModuleOp:
    run_passes(module, GPU_PIPELINE.passes_to("nv", LoweringOptions(sockets=sockets, kernel_looping=False, target="dgx_h100")))
    return module


@cache
def _report(model: str, **overrides):
    return run_model(EXAMPLES / f"{model}.dfl", {"target": "dgx_h100", **overrides})


def test_the_bundled_dgx_h100_has_the_published_numbers():
    assert isinstance(HW, GpuHardware) and HW.kind == "gpu"
    assert HW.chip.peak_flops_per_s == 989e12 and HW.chip.sms == 132
    assert (HW.hbm.capacity_bytes, HW.hbm.bandwidth_bytes_per_s) == (80 * 10**9, 3.35e12)
    assert HW.node.gpus == 8 and HW.node.link_bandwidth_bytes_per_s == 450e9
    assert set(HW.sources) == {"gpu", "node", "memory.hbm", "memory.ddr"}
    assert load_hardware("sn40l").kind == "rdu"


def test_a_missing_gpu_key_is_named():
    source = (resources.files("dfdsl.hardware") / "dgx_h100.toml").read_text(encoding="utf-8")
    broken = source.replace("stream_ramp_s = 1.0e-6", "")
    with pytest.raises(HardwareError, match=r"my\.toml: \[gpu_assumptions\] stream_ramp_s is missing"):
        parse_hardware(broken, "my.toml")
    with pytest.raises(HardwareError, match=r"kind = 'tpu'; it must be 'rdu' or 'gpu'"):
        parse_hardware(source.replace('kind = "gpu"', 'kind = "tpu"'), "my.toml")


def test_one_gemv_kernel_by_hand():
    # A TP-8 down projection of Llama 3.1 8B: a 1792 x 4096 BF16 weight, batch 1.
    weight = 1792 * 4096 * 2
    work = timing.IterationWork(flops=timing.Affine(0, 2 * 1792 * 4096),
                                hbm_read=timing.Affine(weight, 1792 * 2), hbm_write=timing.Affine(0, 4096 * 2))
    call = timing.KernelCall("gemm_w_down", 1, 0, 0, work)
    moved = weight + 1792 * 2 + 4096 * 2
    expected = 2.0e-6 + 1.0e-6 + moved / (0.9 * 3.35e12)
    t = launch_timing(call, HW, batch=1, context=4096)
    assert t.total_s == pytest.approx(expected)
    assert t.first_interval[1] == "stream"
    # The ramp makes this 14.7 MB GEMV reach ~74% of peak bandwidth, not the 90% of a long stream.
    assert moved / (t.body_s * 3.35e12) == pytest.approx(0.9 * moved / (moved + 1e-6 * 0.9 * 3.35e12))


def test_one_nccl_all_reduce_by_hand():
    op = nv.AllReduceOp(nv.BufferOp("x", "input", nv.BufferType.make(["B", 4096], "bf16", "hbm")).result,
                        cost.Work.make(0, 8192), 8)
    t = launch_timing(nccl_call(op), HW, batch=1, context=4096)
    # launch 2 us + NCCL base 1.6 us + 14 ring steps of 0.47 us + 14/8 of 8 KB over 370 GB/s
    expected = 2.0e-6 + 1.6e-6 + 14 * 0.47e-6 + 14 / 8 * 8192 / 370e9
    assert t.total_s == pytest.approx(expected)
    assert t.first_interval[1] == "collective"
    assert 5e-6 < t.total_s < 12e-6  # NCCL's small-message range at 8 GPUs


def test_a_step_is_the_sum_of_its_launches_and_the_host():
    result = _report("llama3_1_8b", tokens=1)
    calls = result_calls("llama3_1_8b")
    by_hand = sum(launch_timing(c, HW, 1, 4096).total_s for c in calls) + A.host_per_token_s
    assert step(calls, HW, 1, 4096).total_s == pytest.approx(by_hand)
    assert result["ms_per_token"] == pytest.approx(by_hand * 1e3)


@cache
def result_calls(model: str) -> tuple[timing.KernelCall, ...]:
    from dfdsl.elaborate import check_file
    from dfdsl.irgen import generate
    from dfdsl.hardware import bundled_targets

    module = generate(check_file(EXAMPLES / f"{model}.dfl", {"target": "dgx_h100", "tokens": 1},
                                 targets=bundled_targets()))
    return simulate_gpu(_lowered(module, 8), HW).calls


@pytest.mark.parametrize(("model", "layers"), [("llama3_1_8b", 32), ("llama3_1_70b", 80)])
def test_kernel_calls_per_token_are_layers_times_kernels_per_layer_plus_the_rest(model, layers):
    report = _report(model)
    assert report["kernel_calls_per_token"] == layers * KERNELS_PER_LAYER + NON_LAYER_CALLS
    assert report["fusion"] == "gpu-partition" and report["kernel_looping"] is False


@pytest.mark.parametrize("model", ["llama3_1_8b", "llama3_1_70b"])
def test_never_above_the_roofline_and_the_breakdown_sums_to_the_step(model):
    report = _report(model)
    assert 0 < report["peak_fraction"] < 1
    assert sum(report["breakdown_ms"].values()) == pytest.approx(report["ms_per_token"])
    assert report["breakdown_ms"]["fill_drain"] == 0.0
    assert report["hbm_bandwidth_bytes_per_s"] == 8 * 3.35e12


def test_the_timeline_tiles_the_step():
    result = simulate_gpu(_lowered(tiny_llama(layers=2), 2), HW)
    line = result.timeline
    scheduled = sum(e.duration_s for e in line.events if e.track in (GPU_TRACK, "host"))
    assert scheduled == pytest.approx(line.step_s) == pytest.approx(result.first_step_ms / 1e3)
    # Two all-reduces per layer, and the gather of the sampling candidates.
    assert [e.kernel for e in line.on("NVLink")] == ["nccl_all_reduce"] * 4 + ["nccl_all_gather"]


def test_a_layer_is_partitioned_as_tensorrt_llm_runs_it():
    module = _lowered(tiny_llama(layers=2), 2)
    program = next(op for op in module.ops if isinstance(op, nv.ProgramOp))
    steps = [op.callee.string_value() if isinstance(op, nv.LaunchOp) else op.name
             for op in program.body.block.ops if isinstance(op, nv.LaunchOp | nv.CollectiveBase)]
    layer = ["gemm_wq_wk_wv", "rope", "attention", "gemm_wo", "nv.all_reduce", "add_rmsnorm",
             "gemm_w_gate_w_up", "silu_mul", "gemm_w_down", "nv.all_reduce"]
    sampler = ["top_k", "nv.all_gather", "sample"]
    assert steps == ["embedding", "rmsnorm", *layer, "add_rmsnorm", *layer, "add_rmsnorm_1", "lm_head", *sampler]


def test_partitioning_keeps_every_weight_byte():
    unfused = tiny_llama(layers=2)
    run_passes(unfused, [ShardTensorParallel(sockets=2), Fuse(mode="none"), PlaceMemory(target="dgx_h100")])
    # Every weight is read once per step, except the embedding table, of which a step gathers B rows.
    weights = sum(op.result.type.num_bytes() for op in unfused.walk()
                  if isinstance(op, df.WeightOp) and op.tensor_name.data != "embed")
    module = _lowered(tiny_llama(layers=2), 2)
    read = sum(k.work("hbm_read").const.data for k in module.ops if isinstance(k, nv.KernelOp)
               for _ in range(_launches(module, k.sym_name.data)))
    assert read == weights


def _launches(module: ModuleOp, kernel: str) -> int:
    return sum(1 for op in module.walk() if isinstance(op, nv.LaunchOp) and op.callee.string_value() == kernel)


def test_moe_models_partition_and_simulate():
    result = simulate_gpu(_lowered(tiny_moe(layers=2), 2), HW)
    assert result.ms_per_token > 0 and any(c.work.experts for c in result.calls)


def test_the_nv_program_round_trips_in_custom_and_generic_form():
    module = _lowered(tiny_llama(layers=2), 2)
    module.verify()
    text = str(module)
    assert str(Parser(_context(), text).parse_module()) == text
    from io import StringIO

    from xdsl.printer import Printer

    generic = StringIO()
    Printer(stream=generic, print_generic_format=True).print_op(module)
    assert str(Parser(_context(), generic.getvalue()).parse_module()) == text


def test_nv_verifiers_name_the_problem():
    bad = """
    builtin.module {
      nv.program @m attributes {batch = 1 : i64, context = 8 : i64, tokens = 1 : i64, gpus = 1 : i64, target = "dgx_h100"} {
        %x = nv.buffer "x" {kind = "input"} : !nv.buffer<[B, 8], bf16, hbm>
        %y = nv.all_reduce %x {bytes = #cost.work<16*B>, gpus = 1 : i64} : (!nv.buffer<[B, 8], bf16, hbm>) -> !nv.buffer<[B, 8], bf16, hbm>
      }
    }
    """
    with pytest.raises(Exception, match="a collective needs at least 2 GPUs"):
        Parser(_context(), bad).parse_module().verify()


def test_kernel_looping_is_an_error_on_a_gpu():
    with pytest.raises(KernelLoopingOnGpuError, match="kernel looping is not possible on a GPU"):
        run_model(EXAMPLES / "llama3_1_8b.dfl", {"target": "dgx_h100"}, CompileOptions(kernel_looping=True))
    looped = tiny_llama(layers=2)
    run_passes(looped, [ShardTensorParallel(sockets=2), Fuse(mode="layer"), KernelLooping()])
    with pytest.raises(KernelLoopingOnGpuError):
        GpuPartition().apply(_context(), looped)


def test_df_to_nv_wants_a_partitioned_module():
    with pytest.raises(StageError, match=r"df-to-nv expects placed IR, but df.layer @\w+ remains: .*gpu-partition"):
        DfToNv().apply(_context(), tiny_llama(layers=1))


def test_the_gpu_interpreter_refuses_other_hardware_and_more_gpus_than_a_node():
    module = _lowered(tiny_llama(layers=1), 2)
    with pytest.raises(NotAGpuError, match='kind = "gpu"'):
        simulate_gpu(module, "sn40l")
    with pytest.raises(DiagnosticException, match="8 GPUs per node"):
        run_model(EXAMPLES / "llama3_1_70b.dfl", {"target": "dgx_h100", "sockets": 16})


def test_the_sn40l_path_is_unchanged_by_default():
    report = run_model(EXAMPLES / "llama3_1_8b.dfl", {"tokens": 2})
    assert report["target"] == "sn40l" and report["kernel_looping"] is True
    assert report["kernel_calls_per_token"] == 4
