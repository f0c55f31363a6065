// RUN: xdsl-opt %s -p 'fuse{mode=fast}' --verify-diagnostics | filecheck %s

// Only the three fusion modes exist; any other is an error that lists them.

builtin.module {
  df.graph @g attributes {activations = "sram", batch = 1 : i64, context = 128 : i64, sockets = 1 : i64, target = "sn40l", tokens = 4 : i64, tp = 1 : i64} {
    %tokens = df.input "tokens" : !df.tensor<[B], i32>
    df.output %tokens : !df.tensor<[B], i32>
  }
}

// CHECK: fuse: unknown mode 'fast'; use mode=none, mode=block or mode=layer
