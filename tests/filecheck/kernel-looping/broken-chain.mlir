// RUN: xdsl-opt %s -p 'kernel-looping{remarks=true}' 2>&1 >/dev/null | filecheck %s --check-prefix=REMARK
// RUN: xdsl-opt %s -p kernel-looping | filecheck %s

// The result of launch 1 is also an output of the graph, so the chain breaks after it: launches
// 0..1 and 2..3 loop separately, both as launches of the one kernel @layer_x2.
builtin.module {
  df.kernel @layer(%x: !df.tensor<[B, 64], bf16>, %w: !df.tensor<[64, 64], bf16, hbm>) -> !df.tensor<[B, 64], bf16> {
    %h = df.linear %x, %w : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 64], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    %y = df.add %x, %h : (!df.tensor<[B, 64], bf16>, !df.tensor<[B, 64], bf16>) -> !df.tensor<[B, 64], bf16>
    df.return %y : !df.tensor<[B, 64], bf16>
  }
  df.graph @g attributes {activations = "sram", batch = 1 : i64, context = 128 : i64, tokens = 4 : i64, sockets = 1 : i64, tp = 1 : i64, target = "sn40l"} {
    %x0 = df.input "hidden" : !df.tensor<[B, 64], bf16>
    %w0 = df.weight "layers.0.w" : !df.tensor<[64, 64], bf16, hbm>
    %x1 = df.launch @layer(%x0, %w0) : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 64], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    %w1 = df.weight "layers.1.w" : !df.tensor<[64, 64], bf16, hbm>
    %x2 = df.launch @layer(%x1, %w1) : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 64], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    %w2 = df.weight "layers.2.w" : !df.tensor<[64, 64], bf16, hbm>
    %x3 = df.launch @layer(%x2, %w2) : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 64], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    %w3 = df.weight "layers.3.w" : !df.tensor<[64, 64], bf16, hbm>
    %x4 = df.launch @layer(%x3, %w3) : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 64], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    df.output %x4, %x2 : !df.tensor<[B, 64], bf16>, !df.tensor<[B, 64], bf16>
  }
}

// REMARK:      remark: kernel-looping: looped launches 0..1 of @layer into one launch of @layer_x2
// REMARK-NEXT: remark: kernel-looping: launches 1 and 2 of @layer not looped together: the result of launch 1 is also used by df.output
// REMARK-NEXT: remark: kernel-looping: looped launches 2..3 of @layer into one launch of @layer_x2
// REMARK-NOT:  remark

// CHECK:      df.kernel @layer_x2(%x: !df.tensor<[B, 64], bf16>, %w: !df.tensor<[2, 64, 64], bf16, hbm>) -> !df.tensor<[B, 64], bf16> {
// CHECK-NEXT:   df.loop 2 carried
// CHECK-NOT:  df.kernel
// CHECK:      %[[X0:.*]] = df.input "hidden"
// CHECK-NEXT: %[[W01:.*]] = df.weight "layers.{0..1}.w" : !df.tensor<[2, 64, 64], bf16, hbm>
// CHECK-NEXT: %[[X2:.*]] = df.launch @layer_x2(%[[X0]], %[[W01]])
// CHECK-NEXT: %[[W23:.*]] = df.weight "layers.{2..3}.w" : !df.tensor<[2, 64, 64], bf16, hbm>
// CHECK-NEXT: %[[X4:.*]] = df.launch @layer_x2(%[[X2]], %[[W23]])
// CHECK-NEXT: df.output %[[X4]], %[[X2]]
