// RUN: xdsl-opt %s -p 'shard-tensor-parallel{sockets=2},gpu-partition' | filecheck %s

// One Llama decoder layer on 2 GPUs, partitioned as TensorRT-LLM runs it (docs/gpu-baseline.md):
// RMS norm; one GEMM for q, k and v (sibling projections of one input); rotary of q and k in one
// kernel; attention; the O projection; an NCCL all-reduce (a graph-level df.all_reduce, not a
// kernel); residual add + RMS norm in one kernel; one GEMM for gate and up; silu * mul; the down
// projection; an NCCL all-reduce. The layer's last residual add is folded into the next norm, here
// the final one. Weights are declared just before their first launch.

builtin.module {
  df.layer @llama_decoder(%x: !df.tensor<[B, 64], bf16>, %attn_norm: !df.tensor<[64], bf16, hbm>, %wq: !df.tensor<[64, 64], bf16, hbm>, %wk: !df.tensor<[64, 32], bf16, hbm>, %wv: !df.tensor<[64, 32], bf16, hbm>, %wo: !df.tensor<[64, 64], bf16, hbm>, %ffn_norm: !df.tensor<[64], bf16, hbm>, %w_gate: !df.tensor<[64, 128], bf16, hbm>, %w_up: !df.tensor<[64, 128], bf16, hbm>, %w_down: !df.tensor<[128, 64], bf16, hbm>, %k_cache: !df.tensor<[B, S, 2, 16], bf16, hbm>, %v_cache: !df.tensor<[B, S, 2, 16], bf16, hbm>) -> !df.tensor<[B, 64], bf16> {
    %0 = df.rmsnorm %x, %attn_norm : (!df.tensor<[B, 64], bf16>, !df.tensor<[64], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    %1 = df.linear %0, %wq : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 64], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    %2 = df.rope %1 {head_dim = 16 : i64} : (!df.tensor<[B, 64], bf16>) -> !df.tensor<[B, 64], bf16>
    %3 = df.linear %0, %wk : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 32], bf16, hbm>) -> !df.tensor<[B, 32], bf16>
    %4 = df.rope %3 {head_dim = 16 : i64} : (!df.tensor<[B, 32], bf16>) -> !df.tensor<[B, 32], bf16>
    %5 = df.linear %0, %wv : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 32], bf16, hbm>) -> !df.tensor<[B, 32], bf16>
    %6 = df.attention %2, %4, %5, %k_cache, %v_cache {heads = 4 : i64, kv_heads = 2 : i64} : (!df.tensor<[B, 64], bf16>, !df.tensor<[B, 32], bf16>, !df.tensor<[B, 32], bf16>, !df.tensor<[B, S, 2, 16], bf16, hbm>, !df.tensor<[B, S, 2, 16], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    %7 = df.linear %6, %wo : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 64], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    %8 = df.add %x, %7 : (!df.tensor<[B, 64], bf16>, !df.tensor<[B, 64], bf16>) -> !df.tensor<[B, 64], bf16>
    %9 = df.rmsnorm %8, %ffn_norm : (!df.tensor<[B, 64], bf16>, !df.tensor<[64], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    %10 = df.linear %9, %w_gate : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 128], bf16, hbm>) -> !df.tensor<[B, 128], bf16>
    %11 = df.silu %10 : (!df.tensor<[B, 128], bf16>) -> !df.tensor<[B, 128], bf16>
    %12 = df.linear %9, %w_up : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 128], bf16, hbm>) -> !df.tensor<[B, 128], bf16>
    %13 = df.mul %11, %12 : (!df.tensor<[B, 128], bf16>, !df.tensor<[B, 128], bf16>) -> !df.tensor<[B, 128], bf16>
    %14 = df.linear %13, %w_down : (!df.tensor<[B, 128], bf16>, !df.tensor<[128, 64], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    %15 = df.add %8, %14 : (!df.tensor<[B, 64], bf16>, !df.tensor<[B, 64], bf16>) -> !df.tensor<[B, 64], bf16>
    df.return %15 : !df.tensor<[B, 64], bf16>
  }
  df.graph @tiny_llama attributes {batch = 1 : i64, context = 128 : i64, tokens = 4 : i64, sockets = 1 : i64, tp = 1 : i64, target = "sn40l", activations = "sram"} {
    %tokens = df.input "tokens" : !df.tensor<[B], i32>
    %embed = df.weight "embed" : !df.tensor<[100, 64], bf16, hbm>
    %0 = df.embedding %tokens, %embed : (!df.tensor<[B], i32>, !df.tensor<[100, 64], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    %layers.0.attn_norm = df.weight "layers.0.attn_norm" : !df.tensor<[64], bf16, hbm>
    %layers.0.wq = df.weight "layers.0.wq" : !df.tensor<[64, 64], bf16, hbm>
    %layers.0.wk = df.weight "layers.0.wk" : !df.tensor<[64, 32], bf16, hbm>
    %layers.0.wv = df.weight "layers.0.wv" : !df.tensor<[64, 32], bf16, hbm>
    %layers.0.wo = df.weight "layers.0.wo" : !df.tensor<[64, 64], bf16, hbm>
    %layers.0.ffn_norm = df.weight "layers.0.ffn_norm" : !df.tensor<[64], bf16, hbm>
    %layers.0.w_gate = df.weight "layers.0.w_gate" : !df.tensor<[64, 128], bf16, hbm>
    %layers.0.w_up = df.weight "layers.0.w_up" : !df.tensor<[64, 128], bf16, hbm>
    %layers.0.w_down = df.weight "layers.0.w_down" : !df.tensor<[128, 64], bf16, hbm>
    %layers.0.k_cache = df.kv_cache "layers.0.k_cache" : !df.tensor<[B, S, 2, 16], bf16, hbm>
    %layers.0.v_cache = df.kv_cache "layers.0.v_cache" : !df.tensor<[B, S, 2, 16], bf16, hbm>
    %1 = df.call @llama_decoder(%0, %layers.0.attn_norm, %layers.0.wq, %layers.0.wk, %layers.0.wv, %layers.0.wo, %layers.0.ffn_norm, %layers.0.w_gate, %layers.0.w_up, %layers.0.w_down, %layers.0.k_cache, %layers.0.v_cache) : (!df.tensor<[B, 64], bf16>, !df.tensor<[64], bf16, hbm>, !df.tensor<[64, 64], bf16, hbm>, !df.tensor<[64, 32], bf16, hbm>, !df.tensor<[64, 32], bf16, hbm>, !df.tensor<[64, 64], bf16, hbm>, !df.tensor<[64], bf16, hbm>, !df.tensor<[64, 128], bf16, hbm>, !df.tensor<[64, 128], bf16, hbm>, !df.tensor<[128, 64], bf16, hbm>, !df.tensor<[B, S, 2, 16], bf16, hbm>, !df.tensor<[B, S, 2, 16], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    %final_norm = df.weight "final_norm" : !df.tensor<[64], bf16, hbm>
    %2 = df.rmsnorm %1, %final_norm : (!df.tensor<[B, 64], bf16>, !df.tensor<[64], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    %lm_head = df.weight "lm_head" : !df.tensor<[64, 100], bf16, hbm>
    %3 = df.lm_head %2, %lm_head : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 100], bf16, hbm>) -> !df.tensor<[B, 100], bf16>
    %4 = df.sample %3 : (!df.tensor<[B, 100], bf16>) -> !df.tensor<[B], i32>
    df.output %4 : !df.tensor<[B], i32>
  }
}

// CHECK:      df.kernel @gemm_wq_wk_wv(%{{.*}}: !df.tensor<[B, 64], bf16>, %{{.*}}: !df.tensor<[64, 32], bf16, hbm>, %{{.*}}: !df.tensor<[64, 16], bf16, hbm>, %{{.*}}: !df.tensor<[64, 16], bf16, hbm>)
// CHECK-NEXT:   df.linear
// CHECK-NEXT:   df.linear
// CHECK-NEXT:   df.linear
// CHECK-NEXT:   df.return
// CHECK:      df.kernel @add_rmsnorm(
// CHECK-NEXT:   %[[SUM:.*]] = df.add
// CHECK-NEXT:   %[[NORM:.*]] = df.rmsnorm %[[SUM]]
// CHECK-NEXT:   df.return %[[SUM]], %[[NORM]]
// CHECK:      df.kernel @silu_mul(
// CHECK-NEXT:   df.silu
// CHECK-NEXT:   df.mul
// CHECK-NEXT:   df.return
// CHECK-NOT:  df.layer
// CHECK:      df.graph @tiny_llama
// CHECK:        df.launch @embedding(%tokens, %embed)
// CHECK:        df.launch @rmsnorm(
// CHECK:        df.weight "layers.0.wq"
// CHECK:        df.launch @gemm_wq_wk_wv(
// CHECK-NEXT:   df.launch @rope(
// CHECK-NEXT:   df.kv_cache "layers.0.k_cache"
// CHECK-NEXT:   df.kv_cache "layers.0.v_cache"
// CHECK-NEXT:   df.launch @attention(
// CHECK-NEXT:   df.weight "layers.0.wo"
// CHECK-NEXT:   %[[O:.*]] = df.launch @gemm_wo(
// CHECK-NEXT:   %[[R1:.*]] = df.all_reduce %[[O]]
// CHECK-NEXT:   df.weight "layers.0.ffn_norm"
// CHECK-NEXT:   df.launch @add_rmsnorm(%{{.*}}, %[[R1]], %layers.0.ffn_norm)
// CHECK:        df.launch @gemm_w_gate_w_up(
// CHECK-NEXT:   df.launch @silu_mul(
// CHECK-NEXT:   df.weight "layers.0.w_down"
// CHECK-NEXT:   %[[D:.*]] = df.launch @gemm_w_down(
// CHECK-NEXT:   %[[R2:.*]] = df.all_reduce %[[D]]
// CHECK-NEXT:   df.weight "final_norm"
// CHECK-NEXT:   df.launch @add_rmsnorm_1(%{{.*}}, %[[R2]], %final_norm)
// CHECK:        df.launch @lm_head(
// CHECK-NEXT:   %[[CAND:.*]] = df.launch @top_k(
// CHECK-NEXT:   %[[ALL:.*]] = df.all_gather %[[CAND]] {sockets = 2 : i64} : (!df.tensor<[B, 2], i32>) -> !df.tensor<[B, 4], i32>
// CHECK-NEXT:   df.launch @sample(%[[ALL]])
// CHECK-NEXT:   df.output
