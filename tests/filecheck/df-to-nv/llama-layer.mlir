// RUN: xdsl-opt %s -p df-to-nv | filecheck %s
// RUN: xdsl-opt %s -p df-to-nv --print-op-generic | xdsl-opt | filecheck %s

// A GPU-partitioned Llama layer on 2 GPUs (the output of gpu-partition) becomes an nv.program of
// launches and NCCL all-reduces, and one nv.kernel per distinct kernel carrying its work per
// launch: each GEMM reads its weights in full (gate+up: 2 x 64 x 64 x 2 bytes), and every kernel
// reads its activation inputs from and writes its results to HBM, since a GPU keeps nothing on
// chip across a kernel boundary. The generic form parses back to the same IR.

builtin.module {
  df.kernel @embedding(%tokens: !df.tensor<[B], i32>, %embed: !df.tensor<[100, 64], bf16, hbm>) -> !df.tensor<[B, 64], bf16> {
    %0 = df.embedding %tokens, %embed : (!df.tensor<[B], i32>, !df.tensor<[100, 64], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    df.return %0 : !df.tensor<[B, 64], bf16>
  }
  df.kernel @rmsnorm(%0: !df.tensor<[B, 64], bf16>, %layers.0.attn_norm: !df.tensor<[64], bf16, hbm>) -> !df.tensor<[B, 64], bf16> {
    %1 = df.rmsnorm %0, %layers.0.attn_norm : (!df.tensor<[B, 64], bf16>, !df.tensor<[64], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    df.return %1 : !df.tensor<[B, 64], bf16>
  }
  df.kernel @gemm_wq_wk_wv(%0: !df.tensor<[B, 64], bf16>, %layers.0.wq: !df.tensor<[64, 32], bf16, hbm>, %layers.0.wk: !df.tensor<[64, 16], bf16, hbm>, %layers.0.wv: !df.tensor<[64, 16], bf16, hbm>) -> (!df.tensor<[B, 32], bf16>, !df.tensor<[B, 16], bf16>, !df.tensor<[B, 16], bf16>) {
    %1 = df.linear %0, %layers.0.wq : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 32], bf16, hbm>) -> !df.tensor<[B, 32], bf16>
    %2 = df.linear %0, %layers.0.wk : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 16], bf16, hbm>) -> !df.tensor<[B, 16], bf16>
    %3 = df.linear %0, %layers.0.wv : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 16], bf16, hbm>) -> !df.tensor<[B, 16], bf16>
    df.return %1, %2, %3 : !df.tensor<[B, 32], bf16>, !df.tensor<[B, 16], bf16>, !df.tensor<[B, 16], bf16>
  }
  df.kernel @rope(%0: !df.tensor<[B, 32], bf16>, %1: !df.tensor<[B, 16], bf16>) -> (!df.tensor<[B, 32], bf16>, !df.tensor<[B, 16], bf16>) {
    %2 = df.rope %0 {head_dim = 16 : i64} : (!df.tensor<[B, 32], bf16>) -> !df.tensor<[B, 32], bf16>
    %3 = df.rope %1 {head_dim = 16 : i64} : (!df.tensor<[B, 16], bf16>) -> !df.tensor<[B, 16], bf16>
    df.return %2, %3 : !df.tensor<[B, 32], bf16>, !df.tensor<[B, 16], bf16>
  }
  df.kernel @attention(%0: !df.tensor<[B, 32], bf16>, %1: !df.tensor<[B, 16], bf16>, %2: !df.tensor<[B, 16], bf16>, %layers.0.k_cache: !df.tensor<[B, S, 1, 16], bf16, hbm>, %layers.0.v_cache: !df.tensor<[B, S, 1, 16], bf16, hbm>) -> !df.tensor<[B, 32], bf16> {
    %3 = df.attention %0, %1, %2, %layers.0.k_cache, %layers.0.v_cache {heads = 2 : i64, kv_heads = 1 : i64} : (!df.tensor<[B, 32], bf16>, !df.tensor<[B, 16], bf16>, !df.tensor<[B, 16], bf16>, !df.tensor<[B, S, 1, 16], bf16, hbm>, !df.tensor<[B, S, 1, 16], bf16, hbm>) -> !df.tensor<[B, 32], bf16>
    df.return %3 : !df.tensor<[B, 32], bf16>
  }
  df.kernel @gemm_wo(%0: !df.tensor<[B, 32], bf16>, %layers.0.wo: !df.tensor<[32, 64], bf16, hbm>) -> !df.tensor<[B, 64], bf16> {
    %1 = df.linear %0, %layers.0.wo : (!df.tensor<[B, 32], bf16>, !df.tensor<[32, 64], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    df.return %1 : !df.tensor<[B, 64], bf16>
  }
  df.kernel @add_rmsnorm(%0: !df.tensor<[B, 64], bf16>, %1: !df.tensor<[B, 64], bf16>, %layers.0.ffn_norm: !df.tensor<[64], bf16, hbm>) -> (!df.tensor<[B, 64], bf16>, !df.tensor<[B, 64], bf16>) {
    %2 = df.add %0, %1 : (!df.tensor<[B, 64], bf16>, !df.tensor<[B, 64], bf16>) -> !df.tensor<[B, 64], bf16>
    %3 = df.rmsnorm %2, %layers.0.ffn_norm : (!df.tensor<[B, 64], bf16>, !df.tensor<[64], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    df.return %2, %3 : !df.tensor<[B, 64], bf16>, !df.tensor<[B, 64], bf16>
  }
  df.kernel @gemm_w_gate_w_up(%0: !df.tensor<[B, 64], bf16>, %layers.0.w_gate: !df.tensor<[64, 64], bf16, hbm>, %layers.0.w_up: !df.tensor<[64, 64], bf16, hbm>) -> (!df.tensor<[B, 64], bf16>, !df.tensor<[B, 64], bf16>) {
    %1 = df.linear %0, %layers.0.w_gate : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 64], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    %2 = df.linear %0, %layers.0.w_up : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 64], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    df.return %1, %2 : !df.tensor<[B, 64], bf16>, !df.tensor<[B, 64], bf16>
  }
  df.kernel @silu_mul(%0: !df.tensor<[B, 64], bf16>, %1: !df.tensor<[B, 64], bf16>) -> !df.tensor<[B, 64], bf16> {
    %2 = df.silu %0 : (!df.tensor<[B, 64], bf16>) -> !df.tensor<[B, 64], bf16>
    %3 = df.mul %2, %1 : (!df.tensor<[B, 64], bf16>, !df.tensor<[B, 64], bf16>) -> !df.tensor<[B, 64], bf16>
    df.return %3 : !df.tensor<[B, 64], bf16>
  }
  df.kernel @gemm_w_down(%0: !df.tensor<[B, 64], bf16>, %layers.0.w_down: !df.tensor<[64, 64], bf16, hbm>) -> !df.tensor<[B, 64], bf16> {
    %1 = df.linear %0, %layers.0.w_down : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 64], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    df.return %1 : !df.tensor<[B, 64], bf16>
  }
  df.kernel @add_rmsnorm_1(%0: !df.tensor<[B, 64], bf16>, %1: !df.tensor<[B, 64], bf16>, %final_norm: !df.tensor<[64], bf16, hbm>) -> !df.tensor<[B, 64], bf16> {
    %2 = df.add %0, %1 : (!df.tensor<[B, 64], bf16>, !df.tensor<[B, 64], bf16>) -> !df.tensor<[B, 64], bf16>
    %3 = df.rmsnorm %2, %final_norm : (!df.tensor<[B, 64], bf16>, !df.tensor<[64], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    df.return %3 : !df.tensor<[B, 64], bf16>
  }
  df.kernel @lm_head(%0: !df.tensor<[B, 64], bf16>, %lm_head: !df.tensor<[64, 50], bf16, hbm>) -> !df.tensor<[B, 50], bf16> {
    %1 = df.lm_head %0, %lm_head : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 50], bf16, hbm>) -> !df.tensor<[B, 50], bf16>
    df.return %1 : !df.tensor<[B, 50], bf16>
  }
  df.kernel @sample(%0: !df.tensor<[B, 50], bf16>) -> !df.tensor<[B], i32> {
    %1 = df.sample %0 : (!df.tensor<[B, 50], bf16>) -> !df.tensor<[B], i32>
    df.return %1 : !df.tensor<[B], i32>
  }
  df.graph @tiny_llama attributes {batch = 1 : i64, context = 128 : i64, tokens = 4 : i64, sockets = 2 : i64, tp = 2 : i64, target = "sn40l", activations = "sram"} {
    %tokens = df.input "tokens" : !df.tensor<[B], i32>
    %embed = df.weight "embed" : !df.tensor<[100, 64], bf16, hbm>
    %0 = df.launch @embedding(%tokens, %embed) : (!df.tensor<[B], i32>, !df.tensor<[100, 64], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    %layers.0.attn_norm = df.weight "layers.0.attn_norm" : !df.tensor<[64], bf16, hbm>
    %1 = df.launch @rmsnorm(%0, %layers.0.attn_norm) : (!df.tensor<[B, 64], bf16>, !df.tensor<[64], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    %layers.0.wq = df.weight "layers.0.wq" : !df.tensor<[64, 32], bf16, hbm>
    %layers.0.wk = df.weight "layers.0.wk" : !df.tensor<[64, 16], bf16, hbm>
    %layers.0.wv = df.weight "layers.0.wv" : !df.tensor<[64, 16], bf16, hbm>
    %2, %3, %4 = df.launch @gemm_wq_wk_wv(%1, %layers.0.wq, %layers.0.wk, %layers.0.wv) : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 32], bf16, hbm>, !df.tensor<[64, 16], bf16, hbm>, !df.tensor<[64, 16], bf16, hbm>) -> (!df.tensor<[B, 32], bf16>, !df.tensor<[B, 16], bf16>, !df.tensor<[B, 16], bf16>)
    %5, %6 = df.launch @rope(%2, %3) : (!df.tensor<[B, 32], bf16>, !df.tensor<[B, 16], bf16>) -> (!df.tensor<[B, 32], bf16>, !df.tensor<[B, 16], bf16>)
    %layers.0.k_cache = df.kv_cache "layers.0.k_cache" : !df.tensor<[B, S, 1, 16], bf16, hbm>
    %layers.0.v_cache = df.kv_cache "layers.0.v_cache" : !df.tensor<[B, S, 1, 16], bf16, hbm>
    %7 = df.launch @attention(%5, %6, %4, %layers.0.k_cache, %layers.0.v_cache) : (!df.tensor<[B, 32], bf16>, !df.tensor<[B, 16], bf16>, !df.tensor<[B, 16], bf16>, !df.tensor<[B, S, 1, 16], bf16, hbm>, !df.tensor<[B, S, 1, 16], bf16, hbm>) -> !df.tensor<[B, 32], bf16>
    %layers.0.wo = df.weight "layers.0.wo" : !df.tensor<[32, 64], bf16, hbm>
    %8 = df.launch @gemm_wo(%7, %layers.0.wo) : (!df.tensor<[B, 32], bf16>, !df.tensor<[32, 64], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    %9 = df.all_reduce %8 : (!df.tensor<[B, 64], bf16>) -> !df.tensor<[B, 64], bf16>
    %layers.0.ffn_norm = df.weight "layers.0.ffn_norm" : !df.tensor<[64], bf16, hbm>
    %10, %11 = df.launch @add_rmsnorm(%0, %9, %layers.0.ffn_norm) : (!df.tensor<[B, 64], bf16>, !df.tensor<[B, 64], bf16>, !df.tensor<[64], bf16, hbm>) -> (!df.tensor<[B, 64], bf16>, !df.tensor<[B, 64], bf16>)
    %layers.0.w_gate = df.weight "layers.0.w_gate" : !df.tensor<[64, 64], bf16, hbm>
    %layers.0.w_up = df.weight "layers.0.w_up" : !df.tensor<[64, 64], bf16, hbm>
    %12, %13 = df.launch @gemm_w_gate_w_up(%11, %layers.0.w_gate, %layers.0.w_up) : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 64], bf16, hbm>, !df.tensor<[64, 64], bf16, hbm>) -> (!df.tensor<[B, 64], bf16>, !df.tensor<[B, 64], bf16>)
    %14 = df.launch @silu_mul(%12, %13) : (!df.tensor<[B, 64], bf16>, !df.tensor<[B, 64], bf16>) -> !df.tensor<[B, 64], bf16>
    %layers.0.w_down = df.weight "layers.0.w_down" : !df.tensor<[64, 64], bf16, hbm>
    %15 = df.launch @gemm_w_down(%14, %layers.0.w_down) : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 64], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    %16 = df.all_reduce %15 : (!df.tensor<[B, 64], bf16>) -> !df.tensor<[B, 64], bf16>
    %final_norm = df.weight "final_norm" : !df.tensor<[64], bf16, hbm>
    %17 = df.launch @add_rmsnorm_1(%10, %16, %final_norm) : (!df.tensor<[B, 64], bf16>, !df.tensor<[B, 64], bf16>, !df.tensor<[64], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    %lm_head = df.weight "lm_head" : !df.tensor<[64, 50], bf16, hbm>
    %18 = df.launch @lm_head(%17, %lm_head) : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 50], bf16, hbm>) -> !df.tensor<[B, 50], bf16>
    %19 = df.launch @sample(%18) : (!df.tensor<[B, 50], bf16>) -> !df.tensor<[B], i32>
    df.output %19 : !df.tensor<[B], i32>
  }
}


// CHECK:      nv.kernel @embedding : (!nv.buffer<[B], i32, hbm>, !nv.buffer<[100, 64], bf16, hbm>) -> !nv.buffer<[B, 64], bf16, hbm> {operators = ["embedding"], flops = #cost.work<0>, hbm_read = #cost.work<132*B>, hbm_write = #cost.work<128*B>}
// CHECK:      nv.kernel @gemm_w_gate_w_up : {{.*}} {operators = ["linear", "linear"], flops = #cost.work<16384*B>, hbm_read = #cost.work<16384 + 128*B>, hbm_write = #cost.work<256*B>}
// CHECK:      nv.kernel @silu_mul : {{.*}} {operators = ["silu", "mul"], flops = #cost.work<320*B>, hbm_read = #cost.work<256*B>, hbm_write = #cost.work<128*B>}
// CHECK:      nv.program @tiny_llama attributes {target = "dgx_h100", batch = 1 : i64, context = 128 : i64, tokens = 4 : i64, gpus = 2 : i64} {
// CHECK-NEXT:   %tokens = nv.buffer "tokens" {kind = "input"} : !nv.buffer<[B], i32, hbm>
// CHECK-NEXT:   %embed = nv.buffer "embed" {kind = "weight"} : !nv.buffer<[100, 64], bf16, hbm>
// CHECK-NEXT:   nv.launch @embedding(%tokens, %embed)
// CHECK:        %[[O:.*]] = nv.launch @gemm_wo(
// CHECK-NEXT:   %{{.*}} = nv.all_reduce %[[O]] {bytes = #cost.work<128*B>, gpus = 2 : i64} : (!nv.buffer<[B, 64], bf16, hbm>) -> !nv.buffer<[B, 64], bf16, hbm>
// CHECK:        %[[S:.*]] = nv.launch @sample(
// CHECK-NEXT:   nv.output %[[S]] : !nv.buffer<[B], i32, hbm>
// CHECK-NOT:  df.
