// RUN: not dfdsl opt %s -p fuse 2>&1 | filecheck %s

// The parser accepts a use written before its definition; the verifier does not.
builtin.module {
  df.graph @g attributes {activations = "sram", batch = 1 : i64, context = 8 : i64, tokens = 1 : i64, sockets = 1 : i64, tp = 1 : i64, target = "sn40l"} {
    %x = df.input "x" : !df.tensor<[B, 64], bf16>
    %w = df.weight "w" : !df.tensor<[64, 64], bf16, hbm>
    %z = df.add %y, %x : (!df.tensor<[B, 64], bf16>, !df.tensor<[B, 64], bf16>) -> !df.tensor<[B, 64], bf16>
    %y = df.linear %x, %w : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 64], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    df.output %z : !df.tensor<[B, 64], bf16>
  }
}

// CHECK: error: df.graph @g: df.add uses a result of df.linear before it is defined [E025]
