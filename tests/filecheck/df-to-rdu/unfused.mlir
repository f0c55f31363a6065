// RUN: not xdsl-opt %s -p 'df-to-rdu{hardware="%S/Inputs/tiny_chip.toml"}' 2>&1 | filecheck %s

// df-to-rdu needs every operator inside a kernel: an operator left in the graph is an error
// that says which pass to run first.
builtin.module {
  df.graph @m attributes {activations = "sram", batch = 1 : i64, context = 8 : i64, tokens = 1 : i64, sockets = 1 : i64, tp = 1 : i64, target = "sn40l"} {
    %x = df.input "x" : !df.tensor<[B, 64], bf16>
    %s = df.sample %x : (!df.tensor<[B, 64], bf16>) -> !df.tensor<[B], i32>
    df.output %s : !df.tensor<[B], i32>
  }
}

// CHECK: df-to-rdu expects placed IR, but df.sample is outside a kernel: run fuse first
