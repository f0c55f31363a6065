// RUN: xdsl-opt %s -p 'place-memory{hardware="%S/Inputs/small_hbm.toml"}' 2>%t.err | filecheck %s
// RUN: filecheck %s --check-prefix=WARN < %t.err

// Two layers need 0.63 GB of HBM per socket on a target with 0.5 GB: the KV caches (the default
// placement, so they may move) spill to DDR before any weight does. The declaration, the calls
// and the layer's signature all get the new tier; the weights stay in HBM.

builtin.module {
  df.layer @dec(%x: !df.tensor<[B, 4096], bf16>, %w: !df.tensor<[4096, 14336], bf16, hbm>, %kc: !df.tensor<[B, S, 8, 128], bf16, hbm>) -> !df.tensor<[B, 14336], bf16> {
    %y = df.linear %x, %w : (!df.tensor<[B, 4096], bf16>, !df.tensor<[4096, 14336], bf16, hbm>) -> !df.tensor<[B, 14336], bf16>
    df.return %y : !df.tensor<[B, 14336], bf16>
  }
  df.graph @m attributes {activations = "sram", batch = 4 : i64, context = 8064 : i64, tokens = 128 : i64, sockets = 1 : i64, tp = 1 : i64, target = "sn40l"} {
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

// CHECK:      df.layer @dec(%{{.*}}: !df.tensor<[B, 4096], bf16>, %{{.*}}: !df.tensor<[4096, 14336], bf16, hbm>, %{{.*}}: !df.tensor<[B, S, 8, 128], bf16, ddr>)
// CHECK:      df.weight "embed" : !df.tensor<[32000, 4096], bf16, hbm>
// CHECK:      df.weight "layers.0.w" : !df.tensor<[4096, 14336], bf16, hbm>
// CHECK-NEXT: df.kv_cache "layers.0.k_cache" : !df.tensor<[B, S, 8, 128], bf16, ddr>
// CHECK-NEXT: df.call @dec({{.*}}) : ({{.*}}, !df.tensor<[B, S, 8, 128], bf16, ddr>)
// CHECK:      df.kv_cache "layers.1.k_cache" : !df.tensor<[B, S, 8, 128], bf16, ddr>
// CHECK-NEXT: df.call @dec(

// WARN: warning: place-memory: hbm overflows: 0.6 GB per socket, capacity 0.5 GB (GB = 10^9 bytes); moved kv_cache layers.*.k_cache (0.1 GB per socket) to ddr
// WARN-NOT: moved weights
