// RUN: not xdsl-opt %s -p 'place-memory{hardware="%S/Inputs/small_hbm.toml"}' 2>&1 | filecheck %s

// The same two layers, but the .dfl named HBM for weights and KV caches explicitly (the front
// end lists those classes in `explicit_tiers`): nothing may spill, so the pass fails with the
// numbers and what to do.

builtin.module {
  df.layer @dec(%x: !df.tensor<[B, 4096], bf16>, %w: !df.tensor<[4096, 14336], bf16, hbm>, %kc: !df.tensor<[B, S, 8, 128], bf16, hbm>) -> !df.tensor<[B, 14336], bf16> {
    %y = df.linear %x, %w : (!df.tensor<[B, 4096], bf16>, !df.tensor<[4096, 14336], bf16, hbm>) -> !df.tensor<[B, 14336], bf16>
    df.return %y : !df.tensor<[B, 14336], bf16>
  }
  df.graph @m attributes {activations = "sram", batch = 4 : i64, context = 8064 : i64, tokens = 128 : i64, sockets = 1 : i64, tp = 1 : i64, target = "sn40l", explicit_tiers = ["weights", "kv_cache"]} {
    %t = df.input "tokens" : !df.tensor<[B], i32>
    %e = df.weight "embed" : !df.tensor<[32000, 4096], bf16, hbm>
    %x = df.embedding %t, %e : (!df.tensor<[B], i32>, !df.tensor<[32000, 4096], bf16, hbm>) -> !df.tensor<[B, 4096], bf16>
    %w0 = df.weight "layers.0.w" : !df.tensor<[4096, 14336], bf16, hbm>
    %k0 = df.kv_cache "layers.0.k_cache" : !df.tensor<[B, S, 8, 128], bf16, hbm>
    %y0 = df.call @dec(%x, %w0, %k0) : (!df.tensor<[B, 4096], bf16>, !df.tensor<[4096, 14336], bf16, hbm>, !df.tensor<[B, S, 8, 128], bf16, hbm>) -> !df.tensor<[B, 14336], bf16>
    %w1 = df.weight "layers.1.w" : !df.tensor<[4096, 14336], bf16, hbm>
    %k1 = df.kv_cache "layers.1.k_cache" : !df.tensor<[B, S, 8, 128], bf16, hbm>
    %y1 = df.call @dec(%x, %w1, %k1) : (!df.tensor<[B, 4096], bf16>, !df.tensor<[4096, 14336], bf16, hbm>, !df.tensor<[B, S, 8, 128], bf16, hbm>) -> !df.tensor<[B, 14336], bf16>
    %s = df.sample %y1 : (!df.tensor<[B, 14336], bf16>) -> !df.tensor<[B], i32>
    df.output %s : !df.tensor<[B], i32>
  }
}

// CHECK: place-memory: m in BF16 does not fit in hbm: its socket must hold 0.6 GB there (0.5 GB of weights, 0.1 GB of KV cache; its share of each split tensor, the whole of each replicated one) and has 0.5 GB (GB = 10^9 bytes); place weights in ddr
