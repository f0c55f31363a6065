// RUN: xdsl-opt %s -p 'shard-tensor-parallel{sockets=2}' --verify-diagnostics | filecheck %s

// A graph whose types are already per socket (tp = 2) is not split a second time.

builtin.module {
  df.graph @sharded attributes {activations = "sram", batch = 1 : i64, context = 128 : i64, sockets = 2 : i64, target = "sn40l", tokens = 4 : i64, tp = 2 : i64} {
    %tokens = df.input "tokens" : !df.tensor<[B], i32>
    df.output %tokens : !df.tensor<[B], i32>
  }
}

// CHECK: shard-tensor-parallel expects df IR, but graph @sharded is already sharded over 2 sockets (tp = 2): use the unsharded module
