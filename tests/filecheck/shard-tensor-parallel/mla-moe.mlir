// RUN: xdsl-opt %s -p 'shard-tensor-parallel{sockets=2}' | filecheck %s

// A DeepSeek-style layer (latent attention, 4 routed experts) on 2 sockets. Latent attention is
// split by heads: the query projection is column-split and the up-projection of the latent
// keeps 2 heads' columns, but the latent input (wkv_a) and the latent cache stay whole on every
// socket, since every head reads all of the latent. The experts are split along their FFN width
// (32 -> 16) and summed by an all-reduce; the router is replicated.

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
  df.graph @tiny_mla attributes {batch = 1 : i64, context = 128 : i64, tokens = 4 : i64, sockets = 1 : i64, tp = 1 : i64, target = "sn40l", activations = "sram"} {
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
// CHECK:      df.layer @mla_moe_decoder({{.*}}%wq: !df.tensor<[64, 48], bf16, hbm>, %wkv_a: !df.tensor<[64, 40], bf16, hbm>, %kv_up: !df.tensor<[32, 64], bf16, hbm>, %wo: !df.tensor<[32, 64], bf16, hbm>
// CHECK-SAME:   %router: !df.tensor<[64, 4], bf16, hbm>, %experts_gate: !df.tensor<[4, 64, 16], bf16, hbm>, %experts_up: !df.tensor<[4, 64, 16], bf16, hbm>, %experts_down: !df.tensor<[4, 16, 64], bf16, hbm>, %kv_cache: !df.tensor<[B, S, 40], bf16, hbm>)
// CHECK:        %[[ATTN:.*]] = df.mla_attention %{{.*}}, %{{.*}}, %kv_up, %kv_cache {heads = 2 : i64, rope_dim = 8 : i64, v_head = 16 : i64} : (!df.tensor<[B, 48], bf16>, !df.tensor<[B, 40], bf16>, !df.tensor<[32, 64], bf16, hbm>, !df.tensor<[B, S, 40], bf16, hbm>) -> !df.tensor<[B, 32], bf16>
// CHECK-NEXT:   %[[O:.*]] = df.linear %[[ATTN]], %wo
// CHECK-NEXT:   df.all_reduce %[[O]]
// CHECK:        df.moe_router {{.*}} -> !df.tensor<[B, 4], bf16>
// CHECK-NEXT:   %[[MIX:.*]] = df.moe_experts
// CHECK-NEXT:   %[[SUM:.*]] = df.all_reduce %[[MIX]]
// CHECK-NEXT:   df.add %{{.*}}, %[[SUM]]
// CHECK:      df.graph @tiny_mla
// CHECK:        df.weight "layers.0.kv_up" : !df.tensor<[32, 64], bf16, hbm>
// CHECK:        df.weight "layers.0.experts_down" : !df.tensor<[4, 16, 64], bf16, hbm>
// CHECK-NEXT:   df.kv_cache "layers.0.kv_cache" : !df.tensor<[B, S, 40], bf16, hbm>
