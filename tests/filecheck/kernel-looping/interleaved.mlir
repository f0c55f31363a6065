// RUN: xdsl-opt %s -p 'kernel-looping{remarks=true}' 2>&1 >/dev/null | filecheck %s --check-prefix=REMARK
// RUN: xdsl-opt %s -p kernel-looping | filecheck %s

// Fusion `none` launches one kernel per operator, so two kernels alternate layer after layer:
// no kernel is launched twice in a row and nothing is looped. The remark says so.
builtin.module {
  df.kernel @linear_2(%x: !df.tensor<[B, 64], bf16>, %w: !df.tensor<[64, 64], bf16, hbm>) -> !df.tensor<[B, 64], bf16> {
    %y = df.linear %x, %w : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 64], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    df.return %y : !df.tensor<[B, 64], bf16>
  }
  df.kernel @rope_3(%x: !df.tensor<[B, 64], bf16>) -> !df.tensor<[B, 64], bf16> {
    %y = df.rope %x {head_dim = 16 : i64} : (!df.tensor<[B, 64], bf16>) -> !df.tensor<[B, 64], bf16>
    df.return %y : !df.tensor<[B, 64], bf16>
  }
  df.graph @none_fused attributes {activations = "sram", batch = 1 : i64, context = 128 : i64, tokens = 4 : i64, sockets = 1 : i64, tp = 1 : i64, target = "sn40l"} {
    %x0 = df.input "hidden" : !df.tensor<[B, 64], bf16>
    %w0 = df.weight "layers.0.w" : !df.tensor<[64, 64], bf16, hbm>
    %h0 = df.launch @linear_2(%x0, %w0) : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 64], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    %x1 = df.launch @rope_3(%h0) : (!df.tensor<[B, 64], bf16>) -> !df.tensor<[B, 64], bf16>
    %w1 = df.weight "layers.1.w" : !df.tensor<[64, 64], bf16, hbm>
    %h1 = df.launch @linear_2(%x1, %w1) : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 64], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    %x2 = df.launch @rope_3(%h1) : (!df.tensor<[B, 64], bf16>) -> !df.tensor<[B, 64], bf16>
    %w2 = df.weight "layers.2.w" : !df.tensor<[64, 64], bf16, hbm>
    %h2 = df.launch @linear_2(%x2, %w2) : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 64], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    %x3 = df.launch @rope_3(%h2) : (!df.tensor<[B, 64], bf16>) -> !df.tensor<[B, 64], bf16>
    df.output %x3 : !df.tensor<[B, 64], bf16>
  }
}

// REMARK:     remark: kernel-looping: @linear_2 and @rope_3 alternate over launches 0..5; no consecutive launches of one kernel
// REMARK-NOT: remark

// CHECK-NOT:  df.loop
// CHECK:      df.kernel @linear_2(
// CHECK:      df.kernel @rope_3(
// CHECK:      df.weight "layers.0.w" : !df.tensor<[64, 64], bf16, hbm>
// CHECK-NEXT: df.launch @linear_2
// CHECK-NEXT: df.launch @rope_3
// CHECK-NEXT: df.weight "layers.1.w"
// CHECK-NEXT: df.launch @linear_2
// CHECK-NEXT: df.launch @rope_3
// CHECK-NEXT: df.weight "layers.2.w"
// CHECK-NEXT: df.launch @linear_2
// CHECK-NEXT: df.launch @rope_3
