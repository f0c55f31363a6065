// RUN: xdsl-opt %s -p 'kernel-looping{remarks=true}' 2>&1 >/dev/null | filecheck %s --check-prefix=REMARK
// RUN: xdsl-opt %s -p kernel-looping | filecheck %s

// Launches 0 and 1 share one weight, and launch 2 reads a graph input where a per-layer weight
// belongs: none of them can take a slice of a stacked tensor. Only launches 3..4 are looped.
builtin.module {
  df.kernel @layer(%x: !df.tensor<[B, 64], bf16>, %w: !df.tensor<[64, 64], bf16, hbm>) -> !df.tensor<[B, 64], bf16> {
    %h = df.linear %x, %w : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 64], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    %y = df.add %x, %h : (!df.tensor<[B, 64], bf16>, !df.tensor<[B, 64], bf16>) -> !df.tensor<[B, 64], bf16>
    df.return %y : !df.tensor<[B, 64], bf16>
  }
  df.graph @g attributes {activations = "sram", batch = 1 : i64, context = 128 : i64, tokens = 4 : i64, sockets = 1 : i64, tp = 1 : i64, target = "sn40l"} {
    %x0 = df.input "hidden" : !df.tensor<[B, 64], bf16>
    %shared = df.weight "shared.w" : !df.tensor<[64, 64], bf16, hbm>
    %x1 = df.launch @layer(%x0, %shared) : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 64], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    %x2 = df.launch @layer(%x1, %shared) : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 64], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    %w2 = df.input "w" : !df.tensor<[64, 64], bf16, hbm>
    %x3 = df.launch @layer(%x2, %w2) : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 64], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    %w3 = df.weight "layers.3.w" : !df.tensor<[64, 64], bf16, hbm>
    %x4 = df.launch @layer(%x3, %w3) : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 64], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    %w4 = df.weight "layers.4.w" : !df.tensor<[64, 64], bf16, hbm>
    %x5 = df.launch @layer(%x4, %w4) : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 64], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    df.output %x5 : !df.tensor<[B, 64], bf16>
  }
}

// REMARK:      remark: kernel-looping: launch 0 of @layer not looped: operand 1 (df.weight "shared.w") is also used by launch 1 (@layer); a per-layer weight or cache must feed one launch only
// REMARK-NEXT: remark: kernel-looping: launch 1 of @layer not looped: operand 1 (df.weight "shared.w") is also used by launch 0 (@layer); a per-layer weight or cache must feed one launch only
// REMARK-NEXT: remark: kernel-looping: launch 2 of @layer not looped: operand 1 is df.input "w", not a per-layer df.weight or df.kv_cache
// REMARK-NEXT: remark: kernel-looping: looped launches 3..4 of @layer into one launch of @layer_x2
// REMARK-NOT:  remark

// CHECK:      %[[SHARED:.*]] = df.weight "shared.w"
// CHECK-NEXT: %[[X1:.*]] = df.launch @layer(%{{.*}}, %[[SHARED]])
// CHECK-NEXT: %[[X2:.*]] = df.launch @layer(%[[X1]], %[[SHARED]])
// CHECK-NEXT: %[[W2:.*]] = df.input "w"
// CHECK-NEXT: %[[X3:.*]] = df.launch @layer(%[[X2]], %[[W2]])
// CHECK-NEXT: %[[W34:.*]] = df.weight "layers.{3..4}.w" : !df.tensor<[2, 64, 64], bf16, hbm>
// CHECK-NEXT: df.launch @layer_x2(%[[X3]], %[[W34]])
