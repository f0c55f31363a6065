"""The DGX H100 baseline: its hardware file, the gpu-partition and df-to-nv passes, the `nv`
dialect, and the GPU timing interpreter against hand computation and invariants."""

from functools import cache
from importlib import resources
from pathlib import Path

import attrs

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
from dfdsl.driver import CompileOptions, Compiler, load_model, run_model
from dfdsl.lowering.stages import StageError
from dfdsl.sim import timing
from dfdsl.sim.gpu_interpreter import (
    GPU_TRACK,
    NotAGpuError,
    gemm_time_s,
    l2_hit_fraction,
    launch_timing,
    nccl_call,
    simulate_gpu,
    step,
    with_reuse,
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
    assert set(HW.sources) == {"gpu", "node", "memory.hbm", "memory.ddr", "gpu_software"}
    assert load_hardware("sn40l").kind == "rdu"


def test_the_bundled_gpu_nodes_have_their_published_numbers():
    a100, h200 = load_hardware("dgx_a100"), load_hardware("dgx_h200")
    assert isinstance(a100, GpuHardware) and isinstance(h200, GpuHardware)
    assert (a100.chip.peak_flops_per_s, a100.hbm.bandwidth_bytes_per_s, a100.hbm.capacity_bytes) == (312e12, 2.039e12, 80 * 10**9)
    assert a100.node.gpus == 8 and a100.node.link_bandwidth_bytes_per_s == 300e9  # NVLink 3: 600 GB/s both ways
    assert (h200.hbm.bandwidth_bytes_per_s, h200.hbm.capacity_bytes) == (4.8e12, 141 * 10**9)
    assert h200.chip == HW.chip and h200.node == HW.node


def test_the_paper_profile_differs_from_today_only_in_its_software():
    """`dgx_h100_nccl` is the DGX H100 with NCCL all-reduce and eager launches, nothing else."""
    paper = load_hardware("dgx_h100_nccl")
    assert isinstance(paper, GpuHardware)
    assert (paper.chip, paper.hbm, paper.ddr, paper.node, paper.assumptions) == (HW.chip, HW.hbm, HW.ddr, HW.node, HW.assumptions)
    assert (HW.software.cuda_graphs, HW.software.all_reduce) == (True, "custom")
    assert (paper.software.cuda_graphs, paper.software.all_reduce) == (False, "nccl-ring")
    assert attrs.evolve(paper.software, cuda_graphs=True, all_reduce="custom", framework=HW.software.framework) == HW.software


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
    moved = weight + 1792 * 2 + 4096 * 2
    # As a streaming kernel: the ramp, then the bytes at 90% of 3.35 TB/s.
    t = launch_timing(timing.KernelCall("gemm_w_down", 1, 0, 0, work), HW, batch=1, context=4096)
    assert t.total_s == pytest.approx(2.0e-6 + 1.0e-6 + moved / (0.9 * 3.35e12))
    assert t.first_interval[1] == "stream"
    # The ramp makes this 14.7 MB GEMV reach ~74% of peak bandwidth, not the 90% of a long stream.
    assert moved / (t.body_s * 3.35e12) == pytest.approx(0.9 * moved / (moved + 1e-6 * 0.9 * 3.35e12))
    # As the GEMM it is (4,096 output columns): the software's measured GEMM shape.
    s = HW.software
    gemm = launch_timing(timing.KernelCall("gemm_w_down", 1, 0, 0, work, kind="gemm", columns=4096), HW, 1, 4096)
    efficiency = s.gemm_efficiency * 4096 / (4096 + s.gemm_half_efficiency_columns)
    assert gemm.total_s == pytest.approx(2.0e-6 + s.gemm_ramp_s + moved / (efficiency * 3.35e12))
    # A narrower GEMM of the same bytes is slower: fewer tiles across the SMs.
    narrow = launch_timing(timing.KernelCall("g", 1, 0, 0, work, kind="gemm", columns=512), HW, 1, 4096)
    assert narrow.total_s > gemm.total_s


def _attention_s(kv_bytes_per_token: float, heads: int, batch: int, context: int) -> float:
    work = timing.IterationWork(hbm_read=timing.Affine(0, 0, kv_bytes_per_token))
    call = timing.KernelCall("attention", 1, 0, 0, work, kind="attention", heads=heads)
    return launch_timing(call, HW, batch, context).total_s


def test_attention_has_a_floor_then_streams_its_cache():
    s = HW.software
    assert _attention_s(1e3, 1, 1, 1000) == pytest.approx(2e-6 + s.attention_floor_s)
    # Without heads (a call built by hand), no split: the stream alone.
    assert _attention_s(5e5, 0, 1, 1000) == pytest.approx(2e-6 + s.attention_ramp_s + 500e6 / (s.attention_efficiency * 3.35e12))


def test_attention_pays_per_wave_of_xqas_split_by_hand():
    # Llama 3.1 70B at TP8, batch 8, context 4,096: 1 KV head of 128 per GPU, 4 KB of K and V per
    # token and sequence (head_dim 128, bf16). XQA's split: 8 x 1 x 4,096 / 128 = 256 CTAs over
    # 132 SMs, 1.94 waves; 32 sequences of 8 heads would be 64 waves: held to 8.
    s = HW.software
    kv = 8 * 4096 * 512.0
    waves = 8 * 4096 / 128 / 132
    want = s.attention_ramp_s + kv / (s.attention_efficiency * 3.35e12) + s.attention_wave_s * waves
    assert _attention_s(512, 1, 8, 4096) == pytest.approx(2e-6 + max(s.attention_floor_s, want))
    big = 32 * 8 * 4096 * 512.0
    want = s.attention_ramp_s + big / (s.attention_efficiency * 3.35e12) + s.attention_wave_s * 8
    assert _attention_s(8 * 512, 8, 32, 4096) == pytest.approx(2e-6 + want)


@pytest.mark.parametrize(("sockets", "heads"), [(1, 8), (2, 4), (8, 1)])
def test_an_attention_launch_knows_its_kv_heads_per_gpu(sockets, heads):
    from dfdsl.elaborate import check_file
    from dfdsl.irgen import generate
    from dfdsl.hardware import bundled_targets

    module = generate(check_file(EXAMPLES / "llama3_1_8b.dfl", {"target": "dgx_h100", "tokens": 1},
                                 targets=bundled_targets()))
    calls = simulate_gpu(_lowered(module, sockets), HW).calls
    assert {c.heads for c in calls if c.kind == "attention"} == {heads}
    assert {c.heads for c in calls if c.kind != "attention"} == {0}


def _all_reduce_s(hw: GpuHardware, gpus: int, message: int) -> float:
    op = nv.AllReduceOp(nv.BufferOp("x", "input", nv.BufferType.make(["B", 4096], "bf16", "hbm")).result,
                        cost.Work.make(0, message), gpus)
    return launch_timing(nccl_call(op), hw, batch=1, context=4096).total_s


def test_each_all_reduce_implementation_by_hand():
    s, a = HW.software, HW.assumptions
    b = 8192  # one token's hidden state of Llama 3.1 8B in BF16
    one = (s.custom_allreduce_latency_s + 7 * s.custom_allreduce_step_latency_s
           + 7 * b * (1 + 6 * s.custom_allreduce_contention_fraction) / s.custom_allreduce_bandwidth_bytes_per_s)
    two = (s.custom_allreduce_twoshot_latency_s + 14 * s.custom_allreduce_step_latency_s
           + 14 / 8 * b / s.custom_allreduce_bandwidth_bytes_per_s)
    ring = a.nccl_base_latency_s + 14 * a.nccl_step_latency_s + 14 / 8 * b / a.nccl_bus_bandwidth_bytes_per_s
    tree = a.nccl_base_latency_s + 2 * 3 * a.nccl_step_latency_s + 14 / 8 * b / a.nccl_bus_bandwidth_bytes_per_s
    expected = {"one-shot": one, "two-shot": two, "custom": min(one, two), "nccl-ring": ring, "nccl-tree": tree}
    for name, seconds in expected.items():
        hw = attrs.evolve(HW, software=attrs.evolve(s, all_reduce=name))
        assert _all_reduce_s(hw, 8, b) == pytest.approx(2e-6 + seconds), name
    # TensorRT-LLM's kernel at a decode message, 8 GPUs: ~3.5 us measured; NCCL without graphs ~16 us.
    assert 3e-6 < _all_reduce_s(HW, 8, b) < 4e-6
    assert 14e-6 < _all_reduce_s(load_hardware("dgx_h100_nccl"), 8, b) < 19e-6
    # `custom` takes two-shot for a large message, where one-shot's 7 reads per GPU cost more.
    one_shot = attrs.evolve(HW, software=attrs.evolve(s, all_reduce="one-shot"))
    assert _all_reduce_s(HW, 8, 64 * 2**20) < _all_reduce_s(one_shot, 8, 64 * 2**20)


def test_eager_launches_wait_for_the_host():
    """Without CUDA graphs a kernel shorter than the host's launch waits for it; a longer one does not."""
    eager = attrs.evolve(HW, software=attrs.evolve(HW.software, cuda_graphs=False))
    tiny = timing.KernelCall("silu_mul", 1, 0, 0, timing.IterationWork(hbm_read=timing.Affine(0, 1000)))
    long = timing.KernelCall("big", 1, 0, 0, timing.IterationWork(hbm_read=timing.Affine(100e6)))
    t = launch_timing(tiny, eager, 1, 1)
    assert t.total_s == pytest.approx(eager.software.host_launch_s) and t.first_interval[1] == "sync"
    assert launch_timing(tiny, HW, 1, 1).total_s < t.total_s
    assert launch_timing(long, eager, 1, 1) == launch_timing(long, HW, 1, 1)


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
    with pytest.raises(DiagnosticException, match="dgx-h100 has 8 GPUs per node"):
        run_model(EXAMPLES / "llama3_1_70b.dfl", {"target": "dgx_h100", "sockets": 16})


def test_the_sn40l_path_is_unchanged_by_default():
    report = run_model(EXAMPLES / "llama3_1_8b.dfl", {"tokens": 2})
    assert report["target"] == "sn40l" and report["kernel_looping"] is True
    assert report["kernel_calls_per_token"] == 4


# -- L2 reuse ------------------------------------------------------------------------------------


def test_the_l2_serves_all_of_a_reuse_distance_up_to_half_of_it_then_less_then_none():
    l2 = HW.chip.sram_bytes
    assert l2_hit_fraction(0.0, HW) == l2_hit_fraction(0.5 * l2, HW) == 1.0
    assert l2_hit_fraction(0.75 * l2, HW) == pytest.approx(0.5)
    assert l2_hit_fraction(l2, HW) == l2_hit_fraction(10 * l2, HW) == 0.0
    step_form = attrs.evolve(HW, assumptions=attrs.evolve(A, l2_full_reuse_fraction=1.0))
    assert l2_hit_fraction(0.99 * l2, step_form) == 1.0 and l2_hit_fraction(l2 + 1, step_form) == 0.0


def test_a_gemm_whose_weights_are_reused_within_the_l2_reads_them_from_there():
    # Llama 3.1 8B's O projection at TP8 (4 MB of weights): as aiconfigurator's collector replays
    # it (5 copies, a 21 MB reuse distance) it hits; inside a decode step (GBs in between) it does not.
    weight = 4096 * 512 * 2
    call = timing.KernelCall("gemm_wo", 1, 0, 0, timing.IterationWork(hbm_read=timing.Affine(weight)),
                             kind="gemm", columns=4096)
    s = HW.software
    stream = gemm_time_s(weight, weight, 4096, 16e9, HW)
    hit = gemm_time_s(weight, weight, 4096, 5 * weight, HW)
    from_hbm = weight / (s.gemm_efficiency * 3.35e12) * (1 + s.gemm_half_efficiency_columns / 4096)
    from_l2 = weight / s.gemm_efficiency * (1 / A.l2_bandwidth_bytes_per_s
                                            + s.gemm_l2_half_efficiency_columns / (4096 * 3.35e12))
    assert stream == pytest.approx(s.gemm_ramp_s + from_hbm)
    assert hit == pytest.approx(stream - (from_hbm - from_l2)) and from_l2 < from_hbm
    # A narrow deep GEMM (the tables: 512 x 4096 gains nothing from hits) is never slower for one.
    narrow = 512 * 4096 * 2
    assert gemm_time_s(narrow, narrow, 512, narrow, HW) == gemm_time_s(narrow, narrow, 512, 16e9, HW)
    # The interpreter finds the reuse distance in the step: this GEMM alone reuses within the L2...
    alone = launch_timing(with_reuse([call])[0], HW, 1, 1).body_s
    assert alone == pytest.approx(hit)
    # ...and behind an 8B model's step of streams it does not.
    big = timing.KernelCall("stream", 1, 0, 0, timing.IterationWork(hbm_read=timing.Affine(int(16e9))))
    assert launch_timing(with_reuse([call, big])[0], HW, 1, 1).body_s == pytest.approx(stream)


@cache
def _example_nv(model: str, gpus: int) -> ModuleOp:
    """A bundled example lowered to `nv` on `gpus` GPUs of the DGX H100."""
    m = load_model(EXAMPLES / f"{model}.dfl", {"target": "dgx_h100", "sockets": gpus, "tokens": 1})
    return Compiler().compile(m, m.settings, CompileOptions(kernel_looping=False))


def test_a_model_whose_step_fits_in_the_l2_is_faster_than_its_hbm_stream_and_a_large_one_is_not():
    def ms(module: ModuleOp, hw: GpuHardware) -> float:
        return simulate_gpu(module, hw, batch=1, context=64, tokens=1).ms_per_token

    no_l2 = attrs.evolve(HW, chip=attrs.evolve(HW.chip, sram_bytes=1000))  # nothing fits: no hits
    # One layer of 1,024-4,096-column GEMMs, 21 MB of weights: the step fits in half the L2.
    small = _lowered(tiny_llama(1, hidden=1024, ffn=2048, heads=8, kv_heads=8, head_dim=128, vocab=512), 1)
    assert ms(small, HW) < ms(small, no_l2)
    # Llama 3.1 8B at TP8 reads 2 GB per GPU per step: no GEMM hits, the L2's rate changes nothing.
    assert ms(_example_nv("llama3_1_8b", 8), HW) == ms(_example_nv("llama3_1_8b", 8), no_l2)
