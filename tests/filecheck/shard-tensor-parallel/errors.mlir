// RUN: xdsl-opt %s -p 'shard-tensor-parallel{sockets=3}' --verify-diagnostics | filecheck %s --check-prefix=HEADS
// RUN: xdsl-opt %s -p 'shard-tensor-parallel{sockets=4}' --verify-diagnostics | filecheck %s --check-prefix=FFN
// RUN: xdsl-opt %s -p 'shard-tensor-parallel{sockets=2}' --verify-diagnostics | filecheck %s --check-prefix=VOCAB

// Splits that cannot be made are errors naming the layer and the numbers, then the socket counts
// over which every split of the model divides at once. This layer has 4 heads, 2 KV heads and an
// MLP width of 6, and the vocabulary is 5: attention alone would take 1, 2 or 4 sockets, the MLP
// 1, 2, 3 or 6, the LM head 1 or 5, so only one socket takes them all.

builtin.module {
  df.layer @llama_decoder(%x: !df.tensor<[B, 64], bf16>, %attn_norm: !df.tensor<[64], bf16, hbm>, %wq: !df.tensor<[64, 64], bf16, hbm>, %wk: !df.tensor<[64, 32], bf16, hbm>, %wv: !df.tensor<[64, 32], bf16, hbm>, %wo: !df.tensor<[64, 64], bf16, hbm>, %ffn_norm: !df.tensor<[64], bf16, hbm>, %w_gate: !df.tensor<[64, 6], bf16, hbm>, %w_up: !df.tensor<[64, 6], bf16, hbm>, %w_down: !df.tensor<[6, 64], bf16, hbm>, %k_cache: !df.tensor<[B, S, 2, 16], bf16, hbm>, %v_cache: !df.tensor<[B, S, 2, 16], bf16, hbm>) -> !df.tensor<[B, 64], bf16> {
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
    %10 = df.linear %9, %w_gate : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 6], bf16, hbm>) -> !df.tensor<[B, 6], bf16>
    %11 = df.silu %10 : (!df.tensor<[B, 6], bf16>) -> !df.tensor<[B, 6], bf16>
    %12 = df.linear %9, %w_up : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 6], bf16, hbm>) -> !df.tensor<[B, 6], bf16>
    %13 = df.mul %11, %12 : (!df.tensor<[B, 6], bf16>, !df.tensor<[B, 6], bf16>) -> !df.tensor<[B, 6], bf16>
    %14 = df.linear %13, %w_down : (!df.tensor<[B, 6], bf16>, !df.tensor<[6, 64], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    %15 = df.add %8, %14 : (!df.tensor<[B, 64], bf16>, !df.tensor<[B, 64], bf16>) -> !df.tensor<[B, 64], bf16>
    df.return %15 : !df.tensor<[B, 64], bf16>
  }
  df.graph @tiny_llama attributes {batch = 1 : i64, context = 128 : i64, tokens = 4 : i64, sockets = 1 : i64, tp = 1 : i64, target = "sn40l", activations = "sram"} {
    %tokens = df.input "tokens" : !df.tensor<[B], i32>
    %embed = df.weight "embed" : !df.tensor<[5, 64], bf16, hbm>
    %0 = df.embedding %tokens, %embed : (!df.tensor<[B], i32>, !df.tensor<[5, 64], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    %layers.0.attn_norm = df.weight "layers.0.attn_norm" : !df.tensor<[64], bf16, hbm>
    %layers.0.wq = df.weight "layers.0.wq" : !df.tensor<[64, 64], bf16, hbm>
    %layers.0.wk = df.weight "layers.0.wk" : !df.tensor<[64, 32], bf16, hbm>
    %layers.0.wv = df.weight "layers.0.wv" : !df.tensor<[64, 32], bf16, hbm>
    %layers.0.wo = df.weight "layers.0.wo" : !df.tensor<[64, 64], bf16, hbm>
    %layers.0.ffn_norm = df.weight "layers.0.ffn_norm" : !df.tensor<[64], bf16, hbm>
    %layers.0.w_gate = df.weight "layers.0.w_gate" : !df.tensor<[64, 6], bf16, hbm>
    %layers.0.w_up = df.weight "layers.0.w_up" : !df.tensor<[64, 6], bf16, hbm>
    %layers.0.w_down = df.weight "layers.0.w_down" : !df.tensor<[6, 64], bf16, hbm>
    %layers.0.k_cache = df.kv_cache "layers.0.k_cache" : !df.tensor<[B, S, 2, 16], bf16, hbm>
    %layers.0.v_cache = df.kv_cache "layers.0.v_cache" : !df.tensor<[B, S, 2, 16], bf16, hbm>
    %1 = df.call @llama_decoder(%0, %layers.0.attn_norm, %layers.0.wq, %layers.0.wk, %layers.0.wv, %layers.0.wo, %layers.0.ffn_norm, %layers.0.w_gate, %layers.0.w_up, %layers.0.w_down, %layers.0.k_cache, %layers.0.v_cache) : (!df.tensor<[B, 64], bf16>, !df.tensor<[64], bf16, hbm>, !df.tensor<[64, 64], bf16, hbm>, !df.tensor<[64, 32], bf16, hbm>, !df.tensor<[64, 32], bf16, hbm>, !df.tensor<[64, 64], bf16, hbm>, !df.tensor<[64], bf16, hbm>, !df.tensor<[64, 6], bf16, hbm>, !df.tensor<[64, 6], bf16, hbm>, !df.tensor<[6, 64], bf16, hbm>, !df.tensor<[B, S, 2, 16], bf16, hbm>, !df.tensor<[B, S, 2, 16], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    %final_norm = df.weight "final_norm" : !df.tensor<[64], bf16, hbm>
    %2 = df.rmsnorm %1, %final_norm : (!df.tensor<[B, 64], bf16>, !df.tensor<[64], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    %lm_head = df.weight "lm_head" : !df.tensor<[64, 5], bf16, hbm>
    %3 = df.lm_head %2, %lm_head : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 5], bf16, hbm>) -> !df.tensor<[B, 5], bf16>
    %4 = df.sample %3 : (!df.tensor<[B, 5], bf16>) -> !df.tensor<[B], i32>
    df.output %4 : !df.tensor<[B], i32>
  }
}

// HEADS: shard-tensor-parallel: layer @llama_decoder: 3 sockets cannot split attention with 4 heads and 2 KV heads: {{.*}}; every split divides over 1 socket
// FFN:   shard-tensor-parallel: layer @llama_decoder: the MLP width (ffn) 6 does not divide over 4 sockets; every split divides over 1 socket
// VOCAB: shard-tensor-parallel: graph @tiny_llama: the LM head (vocab) has width 5, which does not divide over 2 sockets; every split divides over 1 socket
