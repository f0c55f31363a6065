// RUN: xdsl-opt %s -p 'shard-tensor-parallel{sockets=2}' | filecheck %s

// The DeepSeek-style layer of mla-moe.mlir on 2 sockets with `attention = data` and `experts =
// expert`: each socket runs the step for its own sequences, so the latent attention, its
// projections and the latent cache keep their whole per-sequence shapes (B is now one socket's
// sequences) and need no all-reduce; the 4 routed experts are spread 2 per socket, and the
// socket's tokens go to the experts' sockets and back through an all-to-all dispatch and combine
// carrying the routing's imbalance. `dense = data` keeps the LM head whole.

builtin.module {
  df.layer @mla_moe_decoder(%x: !df.tensor<[B, 64], bf16>, %attn_norm: !df.tensor<[64], bf16, hbm>, %wq: !df.tensor<[64, 96], bf16, hbm>, %wkv_a: !df.tensor<[64, 40], bf16, hbm>, %kv_up: !df.tensor<[32, 128], bf16, hbm>, %wo: !df.tensor<[64, 64], bf16, hbm>, %ffn_norm: !df.tensor<[64], bf16, hbm>, %router: !df.tensor<[64, 4], bf16, hbm>, %experts_gate: !df.tensor<[4, 64, 32], bf16, hbm>, %experts_up: !df.tensor<[4, 64, 32], bf16, hbm>, %experts_down: !df.tensor<[4, 32, 64], bf16, hbm>, %kv_cache: !df.tensor<[B, S, 40], bf16, hbm>) -> !df.tensor<[B, 64], bf16> {
    %0 = df.rmsnorm %x, %attn_norm : (!df.tensor<[B, 64], bf16>, !df.tensor<[64], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    %1 = df.linear %0, %wq : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 96], bf16, hbm>) -> !df.tensor<[B, 96], bf16>
    %2 = df.rope %1 {head_dim = 24 : i64} : (!df.tensor<[B, 96], bf16>) -> !df.tensor<[B, 96], bf16>
    %3 = df.linear %0, %wkv_a : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 40], bf16, hbm>) -> !df.tensor<[B, 40], bf16>
    %4 = df.mla_attention %2, %3, %kv_up, %kv_cache {heads = 4 : i64, rope_dim = 8 : i64, v_head = 16 : i64} : (!df.tensor<[B, 96], bf16>, !df.tensor<[B, 40], bf16>, !df.tensor<[32, 128], bf16, hbm>, !df.tensor<[B, S, 40], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    %5 = df.linear %4, %wo : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 64], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    %6 = df.add %x, %5 : (!df.tensor<[B, 64], bf16>, !df.tensor<[B, 64], bf16>) -> !df.tensor<[B, 64], bf16>
    %7 = df.rmsnorm %6, %ffn_norm : (!df.tensor<[B, 64], bf16>, !df.tensor<[64], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    %8 = df.moe_router %7, %router {top_k = 2 : i64} : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 4], bf16, hbm>) -> !df.tensor<[B, 4], bf16>
    %9 = df.moe_experts %7, %8, %experts_gate, %experts_up, %experts_down {top_k = 2 : i64} : (!df.tensor<[B, 64], bf16>, !df.tensor<[B, 4], bf16>, !df.tensor<[4, 64, 32], bf16, hbm>, !df.tensor<[4, 64, 32], bf16, hbm>, !df.tensor<[4, 32, 64], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    %10 = df.add %6, %9 : (!df.tensor<[B, 64], bf16>, !df.tensor<[B, 64], bf16>) -> !df.tensor<[B, 64], bf16>
    df.return %10 : !df.tensor<[B, 64], bf16>
  }
  df.graph @tiny_mla attributes {batch = 1 : i64, context = 128 : i64, tokens = 4 : i64, sockets = 1 : i64, tp = 1 : i64, target = "sn40l", activations = "sram", parallel = "attention=data,experts=expert,dense=data,imbalance=1.5,pad=on"} {
    %tokens = df.input "tokens" : !df.tensor<[B], i32>
    %embed = df.weight "embed" : !df.tensor<[100, 64], bf16, hbm>
    %0 = df.embedding %tokens, %embed : (!df.tensor<[B], i32>, !df.tensor<[100, 64], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    %layers.0.attn_norm = df.weight "layers.0.attn_norm" : !df.tensor<[64], bf16, hbm>
    %layers.0.wq = df.weight "layers.0.wq" : !df.tensor<[64, 96], bf16, hbm>
    %layers.0.wkv_a = df.weight "layers.0.wkv_a" : !df.tensor<[64, 40], bf16, hbm>
    %layers.0.kv_up = df.weight "layers.0.kv_up" : !df.tensor<[32, 128], bf16, hbm>
    %layers.0.wo = df.weight "layers.0.wo" : !df.tensor<[64, 64], bf16, hbm>
    %layers.0.ffn_norm = df.weight "layers.0.ffn_norm" : !df.tensor<[64], bf16, hbm>
    %layers.0.router = df.weight "layers.0.router" : !df.tensor<[64, 4], bf16, hbm>
    %layers.0.experts_gate = df.weight "layers.0.experts_gate" : !df.tensor<[4, 64, 32], bf16, hbm>
    %layers.0.experts_up = df.weight "layers.0.experts_up" : !df.tensor<[4, 64, 32], bf16, hbm>
    %layers.0.experts_down = df.weight "layers.0.experts_down" : !df.tensor<[4, 32, 64], bf16, hbm>
    %layers.0.kv_cache = df.kv_cache "layers.0.kv_cache" : !df.tensor<[B, S, 40], bf16, hbm>
    %1 = df.call @mla_moe_decoder(%0, %layers.0.attn_norm, %layers.0.wq, %layers.0.wkv_a, %layers.0.kv_up, %layers.0.wo, %layers.0.ffn_norm, %layers.0.router, %layers.0.experts_gate, %layers.0.experts_up, %layers.0.experts_down, %layers.0.kv_cache) : (!df.tensor<[B, 64], bf16>, !df.tensor<[64], bf16, hbm>, !df.tensor<[64, 96], bf16, hbm>, !df.tensor<[64, 40], bf16, hbm>, !df.tensor<[32, 128], bf16, hbm>, !df.tensor<[64, 64], bf16, hbm>, !df.tensor<[64], bf16, hbm>, !df.tensor<[64, 4], bf16, hbm>, !df.tensor<[4, 64, 32], bf16, hbm>, !df.tensor<[4, 64, 32], bf16, hbm>, !df.tensor<[4, 32, 64], bf16, hbm>, !df.tensor<[B, S, 40], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    %final_norm = df.weight "final_norm" : !df.tensor<[64], bf16, hbm>
    %2 = df.rmsnorm %1, %final_norm : (!df.tensor<[B, 64], bf16>, !df.tensor<[64], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    %lm_head = df.weight "lm_head" : !df.tensor<[64, 100], bf16, hbm>
    %3 = df.lm_head %2, %lm_head : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 100], bf16, hbm>) -> !df.tensor<[B, 100], bf16>
    %4 = df.sample %3 : (!df.tensor<[B, 100], bf16>) -> !df.tensor<[B], i32>
    df.output %4 : !df.tensor<[B], i32>
  }
}
// CHECK:      df.layer @mla_moe_decoder({{.*}}%wq: !df.tensor<[64, 96], bf16, hbm>, %wkv_a: !df.tensor<[64, 40], bf16, hbm>, %kv_up: !df.tensor<[32, 128], bf16, hbm>, %wo: !df.tensor<[64, 64], bf16, hbm>
// CHECK-SAME:   %experts_gate: !df.tensor<[2, 64, 32], bf16, hbm>, %experts_up: !df.tensor<[2, 64, 32], bf16, hbm>, %experts_down: !df.tensor<[2, 32, 64], bf16, hbm>, %kv_cache: !df.tensor<[B, S, 40], bf16, hbm>)
// CHECK-NOT:    df.all_reduce
// CHECK:        df.mla_attention {{.*}} {heads = 4 : i64
// CHECK:        %[[SCORES:.*]] = df.moe_router
// CHECK-NEXT:   %[[SENT:.*]] = df.all_to_all %[[H:.*]] {top_k = 2 : i64, phase = "dispatch", imbalance = 1.500000e+00 : f64}
// CHECK-NEXT:   %[[MIX:.*]] = df.moe_experts %[[SENT]], %[[SCORES]], %experts_gate, %experts_up, %experts_down {top_k = 2 : i64, expert_shards = 2 : i64, token_shards = 2 : i64, imbalance = 1.500000e+00 : f64}
// CHECK-NEXT:   %[[BACK:.*]] = df.all_to_all %[[MIX]] {top_k = 2 : i64, phase = "combine", imbalance = 1.500000e+00 : f64}
// CHECK-NEXT:   df.add %{{.*}}, %[[BACK]]
// CHECK-NOT:    df.all_reduce
// CHECK:      df.graph @tiny_mla attributes {{{.*}}tp = 2 : i64{{.*}}parallel = "attention=data,experts=expert,dense=data,imbalance=1.5,pad=on"}
// CHECK:        df.kv_cache "layers.0.kv_cache" : !df.tensor<[B, S, 40], bf16, hbm>
// CHECK:        df.lm_head %{{.*}}, %lm_head : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 100], bf16, hbm>)
