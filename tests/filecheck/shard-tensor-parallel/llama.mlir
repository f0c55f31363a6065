// RUN: xdsl-opt %s -p 'shard-tensor-parallel{sockets=2}' | filecheck %s
// RUN: xdsl-opt %s -p 'shard-tensor-parallel{sockets=4}' | filecheck %s --check-prefix=FOUR

// A one-layer Llama (4 heads, 2 KV heads, ffn 128, vocab 100) split Megatron-style. On 2 sockets:
// q/k/v and gate/up are column-split, o and down row-split and followed by an all-reduce, each
// socket keeps 2 heads and 1 KV head, the declarations the call passes get the same per-socket
// types, the LM head is split over the vocabulary, and the graph records tp = 2.
// On 4 sockets there are fewer KV heads than sockets: each socket keeps 1 KV head (replicated).

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
// CHECK:      df.layer @llama_decoder(%x: !df.tensor<[B, 64], bf16>, %attn_norm: !df.tensor<[64], bf16, hbm>, %wq: !df.tensor<[64, 32], bf16, hbm>, %wk: !df.tensor<[64, 16], bf16, hbm>, %wv: !df.tensor<[64, 16], bf16, hbm>, %wo: !df.tensor<[32, 64], bf16, hbm>, %ffn_norm: !df.tensor<[64], bf16, hbm>, %w_gate: !df.tensor<[64, 64], bf16, hbm>, %w_up: !df.tensor<[64, 64], bf16, hbm>, %w_down: !df.tensor<[64, 64], bf16, hbm>, %k_cache: !df.tensor<[B, S, 1, 16], bf16, hbm>, %v_cache: !df.tensor<[B, S, 1, 16], bf16, hbm>) -> !df.tensor<[B, 64], bf16> {
// CHECK:        %[[Q:.*]] = df.linear %{{.*}}, %wq : {{.*}} -> !df.tensor<[B, 32], bf16>
// CHECK:        %[[ATTN:.*]] = df.attention {{.*}} {heads = 2 : i64, kv_heads = 1 : i64} : {{.*}} -> !df.tensor<[B, 32], bf16>
// CHECK-NEXT:   %[[O:.*]] = df.linear %[[ATTN]], %wo : (!df.tensor<[B, 32], bf16>, !df.tensor<[32, 64], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
// CHECK-NEXT:   %[[OSUM:.*]] = df.all_reduce %[[O]] : (!df.tensor<[B, 64], bf16>) -> !df.tensor<[B, 64], bf16>
// CHECK-NEXT:   %{{.*}} = df.add %x, %[[OSUM]]
// CHECK:        df.mul {{.*}} -> !df.tensor<[B, 64], bf16>
// CHECK-NEXT:   %[[DOWN:.*]] = df.linear %{{.*}}, %w_down : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 64], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
// CHECK-NEXT:   %[[DSUM:.*]] = df.all_reduce %[[DOWN]]
// CHECK-NEXT:   df.add %{{.*}}, %[[DSUM]]
// CHECK:      df.graph @tiny_llama attributes {{.*}}tp = 2 : i64
// CHECK:        df.weight "embed" : !df.tensor<[100, 64], bf16, hbm>
// CHECK:        df.weight "layers.0.wq" : !df.tensor<[64, 32], bf16, hbm>
// CHECK:        df.weight "layers.0.wo" : !df.tensor<[32, 64], bf16, hbm>
// CHECK:        df.kv_cache "layers.0.k_cache" : !df.tensor<[B, S, 1, 16], bf16, hbm>
// CHECK:        df.call @llama_decoder({{.*}}) : ({{.*}}!df.tensor<[64, 32], bf16, hbm>{{.*}}) -> !df.tensor<[B, 64], bf16>
// CHECK:        df.weight "lm_head" : !df.tensor<[64, 50], bf16, hbm>
// CHECK-NEXT:   %[[LOGITS:.*]] = df.lm_head {{.*}} -> !df.tensor<[B, 50], bf16>
// Each socket samples from half of the vocabulary only through its best candidate (logit and
// index, two int32 words), gathered from both sockets; the sample picks among the two.
// CHECK-NEXT:   %[[CAND:.*]] = df.top_k %[[LOGITS]] {k = 1 : i64} : (!df.tensor<[B, 50], bf16>) -> !df.tensor<[B, 2], i32>
// CHECK-NEXT:   %[[ALL:.*]] = df.all_gather %[[CAND]] {sockets = 2 : i64} : (!df.tensor<[B, 2], i32>) -> !df.tensor<[B, 4], i32>
// CHECK-NEXT:   df.sample %[[ALL]] : (!df.tensor<[B, 4], i32>) -> !df.tensor<[B], i32>

// FOUR:       df.layer @llama_decoder({{.*}}%wq: !df.tensor<[64, 16], bf16, hbm>, %wk: !df.tensor<[64, 16], bf16, hbm>, %wv: !df.tensor<[64, 16], bf16, hbm>, %wo: !df.tensor<[16, 64], bf16, hbm>
// FOUR-SAME:    %k_cache: !df.tensor<[B, S, 1, 16], bf16, hbm>, %v_cache: !df.tensor<[B, S, 1, 16], bf16, hbm>)
// FOUR:         df.attention {{.*}} {heads = 1 : i64, kv_heads = 1 : i64}
// FOUR:       df.graph @tiny_llama attributes {{.*}}tp = 4 : i64
// FOUR:         df.weight "lm_head" : !df.tensor<[64, 25], bf16, hbm>
// FOUR:         df.all_gather %{{.*}} {sockets = 4 : i64} : (!df.tensor<[B, 2], i32>) -> !df.tensor<[B, 8], i32>
