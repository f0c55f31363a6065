// RUN: dfdsl opt %s -p 'shard-tensor-parallel{sockets=2},gpu-partition,place-memory{target=dgx_h100},df-to-nv{target=dgx_h100}' | filecheck %s

// The same prefill pass as rdu-pipeline.mlir (a two-layer Llama, a prompt of 16 tokens) lowered
// for a GPU by the GPU's passes: TensorRT-LLM's kernels over [B, P, ...] activations, each kernel
// reading its activations from and writing its results to HBM, and an NCCL all-reduce of a
// [B, P, 64] activation after each row-split projection.
// CHECK:      nv.kernel @gemm_wq_wk_wv : (!nv.buffer<[B, P, 64], bf16, hbm>
// CHECK-SAME:   {operators = ["linear", "linear", "linear"], flops = #cost.work<8192*B*P>, hbm_read = #cost.work<8192 + 128*B*P>, hbm_write = #cost.work<128*B*P>}
// CHECK:      nv.kernel @attention
// CHECK-SAME:   flops = #cost.work<64*B*P + 128*B*P*S + 64*B*P*P>, hbm_read = #cost.work<64*B*S + 128*B*P>, hbm_write = #cost.work<128*B*P>}
// CHECK:      nv.kernel @lm_head : (!nv.buffer<[B, P, 64], bf16, hbm>, !nv.buffer<[64, 50], bf16, hbm>) -> !nv.buffer<[B, 50], bf16, hbm> {operators = ["lm_head"], flops = #cost.work<6400*B>
// CHECK:      nv.program @tiny attributes {{{.*}}gpus = 2 : i64, prompt = 16 : i64} {
// CHECK:        nv.all_reduce %o {bytes = #cost.work<128*B*P>, gpus = 2 : i64} : (!nv.buffer<[B, P, 64], bf16, hbm>) -> !nv.buffer<[B, P, 64], bf16, hbm>

builtin.module {
  df.layer @llama_decoder(%x: !df.tensor<[B, P, 64], bf16>, %norm: !df.tensor<[64], bf16, hbm>, %wq: !df.tensor<[64, 64], bf16, hbm>, %wk: !df.tensor<[64, 32], bf16, hbm>, %wv: !df.tensor<[64, 32], bf16, hbm>, %wo: !df.tensor<[64, 64], bf16, hbm>, %norm_1: !df.tensor<[64], bf16, hbm>, %w_gate: !df.tensor<[64, 128], bf16, hbm>, %w_up: !df.tensor<[64, 128], bf16, hbm>, %w_down: !df.tensor<[128, 64], bf16, hbm>, %k_cache: !df.tensor<[B, S, 2, 16], bf16, hbm>, %v_cache: !df.tensor<[B, S, 2, 16], bf16, hbm>) -> !df.tensor<[B, P, 64], bf16> {
    %h = df.rmsnorm %x, %norm : (!df.tensor<[B, P, 64], bf16>, !df.tensor<[64], bf16, hbm>) -> !df.tensor<[B, P, 64], bf16>
    %q = df.linear %h, %wq : (!df.tensor<[B, P, 64], bf16>, !df.tensor<[64, 64], bf16, hbm>) -> !df.tensor<[B, P, 64], bf16>
    %k = df.linear %h, %wk : (!df.tensor<[B, P, 64], bf16>, !df.tensor<[64, 32], bf16, hbm>) -> !df.tensor<[B, P, 32], bf16>
    %v = df.linear %h, %wv : (!df.tensor<[B, P, 64], bf16>, !df.tensor<[64, 32], bf16, hbm>) -> !df.tensor<[B, P, 32], bf16>
    %q_rot = df.rope %q {head_dim = 16 : i64} : (!df.tensor<[B, P, 64], bf16>) -> !df.tensor<[B, P, 64], bf16>
    %k_rot = df.rope %k {head_dim = 16 : i64} : (!df.tensor<[B, P, 32], bf16>) -> !df.tensor<[B, P, 32], bf16>
    %a = df.attention %q_rot, %k_rot, %v, %k_cache, %v_cache {heads = 4 : i64, kv_heads = 2 : i64} : (!df.tensor<[B, P, 64], bf16>, !df.tensor<[B, P, 32], bf16>, !df.tensor<[B, P, 32], bf16>, !df.tensor<[B, S, 2, 16], bf16, hbm>, !df.tensor<[B, S, 2, 16], bf16, hbm>) -> !df.tensor<[B, P, 64], bf16>
    %o = df.linear %a, %wo : (!df.tensor<[B, P, 64], bf16>, !df.tensor<[64, 64], bf16, hbm>) -> !df.tensor<[B, P, 64], bf16>
    %y = df.add %x, %o : (!df.tensor<[B, P, 64], bf16>, !df.tensor<[B, P, 64], bf16>) -> !df.tensor<[B, P, 64], bf16>
    %h_1 = df.rmsnorm %y, %norm_1 : (!df.tensor<[B, P, 64], bf16>, !df.tensor<[64], bf16, hbm>) -> !df.tensor<[B, P, 64], bf16>
    %g = df.linear %h_1, %w_gate : (!df.tensor<[B, P, 64], bf16>, !df.tensor<[64, 128], bf16, hbm>) -> !df.tensor<[B, P, 128], bf16>
    %u = df.linear %h_1, %w_up : (!df.tensor<[B, P, 64], bf16>, !df.tensor<[64, 128], bf16, hbm>) -> !df.tensor<[B, P, 128], bf16>
    %act = df.silu %g : (!df.tensor<[B, P, 128], bf16>) -> !df.tensor<[B, P, 128], bf16>
    %m = df.mul %act, %u : (!df.tensor<[B, P, 128], bf16>, !df.tensor<[B, P, 128], bf16>) -> !df.tensor<[B, P, 128], bf16>
    %d = df.linear %m, %w_down : (!df.tensor<[B, P, 128], bf16>, !df.tensor<[128, 64], bf16, hbm>) -> !df.tensor<[B, P, 64], bf16>
    %y_1 = df.add %y, %d : (!df.tensor<[B, P, 64], bf16>, !df.tensor<[B, P, 64], bf16>) -> !df.tensor<[B, P, 64], bf16>
    df.return %y_1 : !df.tensor<[B, P, 64], bf16>
  }
  df.graph @tiny attributes {batch = 2 : i64, context = 16 : i64, tokens = 4 : i64, sockets = 2 : i64, tp = 1 : i64, target = "sn40l", activations = "sram", prompt = 16 : i64} {
    %tokens = df.input "tokens" : !df.tensor<[B, P], i32, hbm>
    %embed = df.weight "embed" : !df.tensor<[100, 64], bf16, hbm>
    %final_norm = df.weight "final_norm" : !df.tensor<[64], bf16, hbm>
    %lm_head = df.weight "lm_head" : !df.tensor<[64, 100], bf16, hbm>
    %x = df.embedding %tokens, %embed : (!df.tensor<[B, P], i32, hbm>, !df.tensor<[100, 64], bf16, hbm>) -> !df.tensor<[B, P, 64], bf16>
    %norm = df.weight "layers.0.self_attn.norm" : !df.tensor<[64], bf16, hbm>
    %wq = df.weight "layers.0.self_attn.wq" : !df.tensor<[64, 64], bf16, hbm>
    %wk = df.weight "layers.0.self_attn.wk" : !df.tensor<[64, 32], bf16, hbm>
    %wv = df.weight "layers.0.self_attn.wv" : !df.tensor<[64, 32], bf16, hbm>
    %wo = df.weight "layers.0.self_attn.wo" : !df.tensor<[64, 64], bf16, hbm>
    %norm_1 = df.weight "layers.0.mlp.norm" : !df.tensor<[64], bf16, hbm>
    %w_gate = df.weight "layers.0.mlp.w_gate" : !df.tensor<[64, 128], bf16, hbm>
    %w_up = df.weight "layers.0.mlp.w_up" : !df.tensor<[64, 128], bf16, hbm>
    %w_down = df.weight "layers.0.mlp.w_down" : !df.tensor<[128, 64], bf16, hbm>
    %k_cache = df.kv_cache "layers.0.self_attn.k_cache" : !df.tensor<[B, S, 2, 16], bf16, hbm>
    %v_cache = df.kv_cache "layers.0.self_attn.v_cache" : !df.tensor<[B, S, 2, 16], bf16, hbm>
    %x_1 = df.call @llama_decoder(%x, %norm, %wq, %wk, %wv, %wo, %norm_1, %w_gate, %w_up, %w_down, %k_cache, %v_cache) : (!df.tensor<[B, P, 64], bf16>, !df.tensor<[64], bf16, hbm>, !df.tensor<[64, 64], bf16, hbm>, !df.tensor<[64, 32], bf16, hbm>, !df.tensor<[64, 32], bf16, hbm>, !df.tensor<[64, 64], bf16, hbm>, !df.tensor<[64], bf16, hbm>, !df.tensor<[64, 128], bf16, hbm>, !df.tensor<[64, 128], bf16, hbm>, !df.tensor<[128, 64], bf16, hbm>, !df.tensor<[B, S, 2, 16], bf16, hbm>, !df.tensor<[B, S, 2, 16], bf16, hbm>) -> !df.tensor<[B, P, 64], bf16>
    %norm_2 = df.weight "layers.1.self_attn.norm" : !df.tensor<[64], bf16, hbm>
    %wq_1 = df.weight "layers.1.self_attn.wq" : !df.tensor<[64, 64], bf16, hbm>
    %wk_1 = df.weight "layers.1.self_attn.wk" : !df.tensor<[64, 32], bf16, hbm>
    %wv_1 = df.weight "layers.1.self_attn.wv" : !df.tensor<[64, 32], bf16, hbm>
    %wo_1 = df.weight "layers.1.self_attn.wo" : !df.tensor<[64, 64], bf16, hbm>
    %norm_3 = df.weight "layers.1.mlp.norm" : !df.tensor<[64], bf16, hbm>
    %w_gate_1 = df.weight "layers.1.mlp.w_gate" : !df.tensor<[64, 128], bf16, hbm>
    %w_up_1 = df.weight "layers.1.mlp.w_up" : !df.tensor<[64, 128], bf16, hbm>
    %w_down_1 = df.weight "layers.1.mlp.w_down" : !df.tensor<[128, 64], bf16, hbm>
    %k_cache_1 = df.kv_cache "layers.1.self_attn.k_cache" : !df.tensor<[B, S, 2, 16], bf16, hbm>
    %v_cache_1 = df.kv_cache "layers.1.self_attn.v_cache" : !df.tensor<[B, S, 2, 16], bf16, hbm>
    %x_2 = df.call @llama_decoder(%x_1, %norm_2, %wq_1, %wk_1, %wv_1, %wo_1, %norm_3, %w_gate_1, %w_up_1, %w_down_1, %k_cache_1, %v_cache_1) : (!df.tensor<[B, P, 64], bf16>, !df.tensor<[64], bf16, hbm>, !df.tensor<[64, 64], bf16, hbm>, !df.tensor<[64, 32], bf16, hbm>, !df.tensor<[64, 32], bf16, hbm>, !df.tensor<[64, 64], bf16, hbm>, !df.tensor<[64], bf16, hbm>, !df.tensor<[64, 128], bf16, hbm>, !df.tensor<[64, 128], bf16, hbm>, !df.tensor<[128, 64], bf16, hbm>, !df.tensor<[B, S, 2, 16], bf16, hbm>, !df.tensor<[B, S, 2, 16], bf16, hbm>) -> !df.tensor<[B, P, 64], bf16>
    %h = df.rmsnorm %x_2, %final_norm : (!df.tensor<[B, P, 64], bf16>, !df.tensor<[64], bf16, hbm>) -> !df.tensor<[B, P, 64], bf16>
    %logits = df.lm_head %h, %lm_head : (!df.tensor<[B, P, 64], bf16>, !df.tensor<[64, 100], bf16, hbm>) -> !df.tensor<[B, 100], bf16>
    %next = df.sample %logits : (!df.tensor<[B, 100], bf16>) -> !df.tensor<[B], i32>
    df.output %next : !df.tensor<[B], i32>
  }
}
