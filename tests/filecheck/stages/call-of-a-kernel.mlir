// RUN: not dfdsl opt %s 2>&1 | filecheck %s

// df.call calls layers; a kernel is launched.
builtin.module {
  df.kernel @k(%x: !df.tensor<[B, 64], bf16>, %w: !df.tensor<[64, 64], bf16, hbm>) -> !df.tensor<[B, 64], bf16> {
    %h = df.linear %x, %w : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 64], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    df.return %h : !df.tensor<[B, 64], bf16>
  }
  df.graph @g attributes {activations = "sram", batch = 1 : i64, context = 8 : i64, tokens = 1 : i64, sockets = 1 : i64, tp = 1 : i64, target = "sn40l"} {
    %x = df.input "x" : !df.tensor<[B, 64], bf16>
    %w = df.weight "w" : !df.tensor<[64, 64], bf16, hbm>
    %y = df.call @k(%x, %w) : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 64], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    df.output %y : !df.tensor<[B, 64], bf16>
  }
}

// CHECK: error: df.call @k: @k is a df.kernel, not a df.layer [E025]
