// RUN: xdsl-opt %s -p 'kernel-looping{min-calls=5 remarks=true}' 2>&1 >/dev/null | filecheck %s --check-prefix=REMARK
// RUN: xdsl-opt %s -p 'kernel-looping{min-calls=5}' | filecheck %s
// RUN: xdsl-opt %s -p kernel-looping | filecheck %s --check-prefix=DEFAULT

// With min-calls=5, a run of four launches of @a stays as it is and the run of five launches
// of @b becomes a loop; with the default (2) both are looped.
builtin.module {
  df.kernel @a(%x: !df.tensor<[B, 64], bf16>, %w: !df.tensor<[64, 64], bf16, hbm>) -> !df.tensor<[B, 64], bf16> {
    %h = df.linear %x, %w : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 64], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    %y = df.add %x, %h : (!df.tensor<[B, 64], bf16>, !df.tensor<[B, 64], bf16>) -> !df.tensor<[B, 64], bf16>
    df.return %y : !df.tensor<[B, 64], bf16>
  }
  df.kernel @b(%x: !df.tensor<[B, 64], bf16>, %w: !df.tensor<[64, 64], bf16, hbm>) -> !df.tensor<[B, 64], bf16> {
    %h = df.linear %x, %w : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 64], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    %y = df.add %h, %x : (!df.tensor<[B, 64], bf16>, !df.tensor<[B, 64], bf16>) -> !df.tensor<[B, 64], bf16>
    df.return %y : !df.tensor<[B, 64], bf16>
  }
  df.graph @g attributes {activations = "sram", batch = 1 : i64, context = 128 : i64, tokens = 4 : i64, sockets = 1 : i64, tp = 1 : i64, target = "sn40l"} {
    %x0 = df.input "hidden" : !df.tensor<[B, 64], bf16>
    %w0 = df.weight "a.0.w" : !df.tensor<[64, 64], bf16, hbm>
    %x1 = df.launch @a(%x0, %w0) : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 64], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    %w1 = df.weight "a.1.w" : !df.tensor<[64, 64], bf16, hbm>
    %x2 = df.launch @a(%x1, %w1) : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 64], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    %w2 = df.weight "a.2.w" : !df.tensor<[64, 64], bf16, hbm>
    %x3 = df.launch @a(%x2, %w2) : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 64], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    %w3 = df.weight "a.3.w" : !df.tensor<[64, 64], bf16, hbm>
    %x4 = df.launch @a(%x3, %w3) : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 64], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    %w4 = df.weight "b.0.w" : !df.tensor<[64, 64], bf16, hbm>
    %x5 = df.launch @b(%x4, %w4) : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 64], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    %w5 = df.weight "b.1.w" : !df.tensor<[64, 64], bf16, hbm>
    %x6 = df.launch @b(%x5, %w5) : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 64], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    %w6 = df.weight "b.2.w" : !df.tensor<[64, 64], bf16, hbm>
    %x7 = df.launch @b(%x6, %w6) : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 64], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    %w7 = df.weight "b.3.w" : !df.tensor<[64, 64], bf16, hbm>
    %x8 = df.launch @b(%x7, %w7) : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 64], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    %w8 = df.weight "b.4.w" : !df.tensor<[64, 64], bf16, hbm>
    %x9 = df.launch @b(%x8, %w8) : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 64], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    df.output %x9 : !df.tensor<[B, 64], bf16>
  }
}

// REMARK:      remark: kernel-looping: launches 0..3 of @a not looped: a run of 4 launches is shorter than min-calls=5
// REMARK-NEXT: remark: kernel-looping: looped launches 4..8 of @b into one launch of @b_x5
// REMARK-NOT:  remark

// CHECK:      df.kernel @a(
// CHECK:      df.kernel @b_x5(
// CHECK-NEXT:   df.loop 5
// CHECK-NOT:  df.kernel @b(
// CHECK:      df.weight "a.3.w"
// CHECK-NEXT: %[[X4:.*]] = df.launch @a(
// CHECK-NEXT: %[[W:.*]] = df.weight "b.{0..4}.w" : !df.tensor<[5, 64, 64], bf16, hbm>
// CHECK-NEXT: df.launch @b_x5(%[[X4]], %[[W]])

// DEFAULT:      df.kernel @a_x4(
// DEFAULT:      df.kernel @b_x5(
// DEFAULT:      df.weight "a.{0..3}.w" : !df.tensor<[4, 64, 64], bf16, hbm>
// DEFAULT-NEXT: df.launch @a_x4(
// DEFAULT-NEXT: df.weight "b.{0..4}.w" : !df.tensor<[5, 64, 64], bf16, hbm>
// DEFAULT-NEXT: df.launch @b_x5(
