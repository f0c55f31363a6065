// RUN: dfdsl opt %s -p 'kernel-looping{remarks=true}' 2>&1 >/dev/null | filecheck %s --check-prefix=REMARK
// RUN: dfdsl opt %s -p kernel-looping | filecheck %s

// Two chained launches of a looped kernel (kernel looping run on what it made, after launches
// between them went away) stay two launches: a df.loop does not go inside another, so the looped
// stage keeps one loop per kernel.
builtin.module {
  df.kernel @a_x2(%x: !df.tensor<[B, 64], bf16>, %w: !df.tensor<[2, 64, 64], bf16, hbm>) -> !df.tensor<[B, 64], bf16> {
    %0 = df.loop 2 carried(%x : !df.tensor<[B, 64], bf16>) stacked(%w : !df.tensor<[2, 64, 64], bf16, hbm>) -> !df.tensor<[B, 64], bf16> {
    ^bb0(%x_1: !df.tensor<[B, 64], bf16>, %w_1: !df.tensor<[64, 64], bf16, hbm>):
      %h = df.linear %x_1, %w_1 : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 64], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
      df.yield %h : !df.tensor<[B, 64], bf16>
    }
    df.return %0 : !df.tensor<[B, 64], bf16>
  }
  df.graph @g attributes {activations = "sram", batch = 1 : i64, context = 8 : i64, tokens = 1 : i64, sockets = 1 : i64, tp = 1 : i64, target = "sn40l"} {
    %x0 = df.input "hidden" : !df.tensor<[B, 64], bf16>
    %w = df.weight "layers.{0..1}.w" : !df.tensor<[2, 64, 64], bf16, hbm>
    %x2 = df.launch @a_x2(%x0, %w) : (!df.tensor<[B, 64], bf16>, !df.tensor<[2, 64, 64], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    %w_1 = df.weight "layers.{2..3}.w" : !df.tensor<[2, 64, 64], bf16, hbm>
    %x5 = df.launch @a_x2(%x2, %w_1) : (!df.tensor<[B, 64], bf16>, !df.tensor<[2, 64, 64], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    df.output %x5 : !df.tensor<[B, 64], bf16>
  }
}

// REMARK:     remark: kernel-looping: launches 0..1 of @a_x2 not looped: @a_x2 already holds a df.loop, and loops do not nest
// REMARK-NOT: remark

// CHECK:      df.kernel @a_x2(
// CHECK-NEXT:   df.loop 2 carried
// CHECK-NOT:  df.loop
// CHECK:      df.launch @a_x2
// CHECK-NEXT: df.weight "layers.{2..3}.w"
// CHECK-NEXT: df.launch @a_x2
