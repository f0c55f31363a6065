// RUN: xdsl-opt %s -p 'fuse' | filecheck %s
// RUN: xdsl-opt %s -p 'shard-tensor-parallel{sockets=2},fuse{mode=layer}' | filecheck %s --check-prefix=TP

// Layer fusion (the default): each decoder layer is one kernel, and the two layers, whose
// bodies are identical, launch the same kernel with their own weights and caches, arguments in
// the layer's order. At graph level the embedding and the sampling are kernels of their own and
// the final norm and LM head form one kernel named after the LM head: 2 + 3 launches. No layer,
// call or graph-level operator is left. After sharding, the all-reduces sit inside the layer
// kernel (SN40L runs the collectives inside the fused layer).

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
    %layers.1.attn_norm = df.weight "layers.1.attn_norm" : !df.tensor<[64], bf16, hbm>
    %layers.1.wq = df.weight "layers.1.wq" : !df.tensor<[64, 64], bf16, hbm>
    %layers.1.wk = df.weight "layers.1.wk" : !df.tensor<[64, 32], bf16, hbm>
    %layers.1.wv = df.weight "layers.1.wv" : !df.tensor<[64, 32], bf16, hbm>
    %layers.1.wo = df.weight "layers.1.wo" : !df.tensor<[64, 64], bf16, hbm>
    %layers.1.ffn_norm = df.weight "layers.1.ffn_norm" : !df.tensor<[64], bf16, hbm>
    %layers.1.w_gate = df.weight "layers.1.w_gate" : !df.tensor<[64, 128], bf16, hbm>
    %layers.1.w_up = df.weight "layers.1.w_up" : !df.tensor<[64, 128], bf16, hbm>
    %layers.1.w_down = df.weight "layers.1.w_down" : !df.tensor<[128, 64], bf16, hbm>
    %layers.1.k_cache = df.kv_cache "layers.1.k_cache" : !df.tensor<[B, S, 2, 16], bf16, hbm>
    %layers.1.v_cache = df.kv_cache "layers.1.v_cache" : !df.tensor<[B, S, 2, 16], bf16, hbm>
    %2 = df.call @llama_decoder(%1, %layers.1.attn_norm, %layers.1.wq, %layers.1.wk, %layers.1.wv, %layers.1.wo, %layers.1.ffn_norm, %layers.1.w_gate, %layers.1.w_up, %layers.1.w_down, %layers.1.k_cache, %layers.1.v_cache) : (!df.tensor<[B, 64], bf16>, !df.tensor<[64], bf16, hbm>, !df.tensor<[64, 64], bf16, hbm>, !df.tensor<[64, 32], bf16, hbm>, !df.tensor<[64, 32], bf16, hbm>, !df.tensor<[64, 64], bf16, hbm>, !df.tensor<[64], bf16, hbm>, !df.tensor<[64, 128], bf16, hbm>, !df.tensor<[64, 128], bf16, hbm>, !df.tensor<[128, 64], bf16, hbm>, !df.tensor<[B, S, 2, 16], bf16, hbm>, !df.tensor<[B, S, 2, 16], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    %final_norm = df.weight "final_norm" : !df.tensor<[64], bf16, hbm>
    %3 = df.rmsnorm %2, %final_norm : (!df.tensor<[B, 64], bf16>, !df.tensor<[64], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    %lm_head = df.weight "lm_head" : !df.tensor<[64, 100], bf16, hbm>
    %4 = df.lm_head %3, %lm_head : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 100], bf16, hbm>) -> !df.tensor<[B, 100], bf16>
    %5 = df.sample %4 : (!df.tensor<[B, 100], bf16>) -> !df.tensor<[B], i32>
    df.output %5 : !df.tensor<[B], i32>
  }
}
// CHECK-NOT:  df.layer
// CHECK:      df.kernel @llama_decoder(%x: !df.tensor<[B, 64], bf16>, %attn_norm: !df.tensor<[64], bf16, hbm>, %wq: !df.tensor<[64, 64], bf16, hbm>, {{.*}}, %v_cache: !df.tensor<[B, S, 2, 16], bf16, hbm>) -> !df.tensor<[B, 64], bf16> {
// CHECK:        df.attention
// CHECK:        df.return
// CHECK-NEXT: }
// CHECK-NEXT: df.kernel @embedding(%tokens: !df.tensor<[B], i32>, %embed: !df.tensor<[100, 64], bf16, hbm>) -> !df.tensor<[B, 64], bf16> {
// CHECK-NEXT:   %[[E:.*]] = df.embedding %tokens, %embed
// CHECK-NEXT:   df.return %[[E]]
// CHECK-NEXT: }
// CHECK-NEXT: df.kernel @lm_head(%{{.*}}: !df.tensor<[B, 64], bf16>, %final_norm: !df.tensor<[64], bf16, hbm>, %lm_head: !df.tensor<[64, 100], bf16, hbm>) -> !df.tensor<[B, 100], bf16> {
// CHECK-NEXT:   df.rmsnorm
// CHECK-NEXT:   df.lm_head
// CHECK-NEXT:   df.return
// CHECK-NEXT: }
// CHECK-NEXT: df.kernel @sample(
// CHECK:      df.graph @tiny_llama
// CHECK:        %[[X:.*]] = df.launch @embedding(%tokens, %embed)
// CHECK:        %[[X1:.*]] = df.launch @llama_decoder(%[[X]], %layers.0.attn_norm, %layers.0.wq, {{.*}}, %layers.0.v_cache)
// CHECK:        %[[X2:.*]] = df.launch @llama_decoder(%[[X1]], %layers.1.attn_norm, %layers.1.wq, {{.*}}, %layers.1.v_cache)
// CHECK:        %[[L:.*]] = df.launch @lm_head(%[[X2]], %final_norm, %lm_head)
// CHECK-NEXT:   %[[T:.*]] = df.launch @sample(%[[L]])
// CHECK-NEXT:   df.output %[[T]]
// CHECK-NOT:    df.call

// TP:         df.kernel @llama_decoder(
// TP:           df.all_reduce
// TP:           df.all_reduce
// TP:           df.return
// TP:         df.graph @tiny_llama attributes {{.*}}tp = 2
// TP-COUNT-2:   df.launch @llama_decoder(
