// RUN: not dfdsl opt %s 2>&1 | filecheck %s
// RUN: not dfdsl opt %s -p place-memory 2>&1 | filecheck %s

// A launch must name a df.kernel of the module: the verifier refuses it before any pass runs,
// so no pass lowers it to an rdu.call of nothing.
builtin.module {
  df.graph @g attributes {activations = "sram", batch = 1 : i64, context = 8 : i64, tokens = 1 : i64, sockets = 1 : i64, tp = 1 : i64, target = "sn40l"} {
    %x = df.input "x" : !df.tensor<[B, 64], bf16>
    %y = df.launch @nope(%x) : (!df.tensor<[B, 64], bf16>) -> !df.tensor<[B, 64], bf16>
    df.output %y : !df.tensor<[B, 64], bf16>
  }
}

// CHECK: launch-of-nothing.mlir: error: df.launch @nope: the module has no df.kernel @nope [E025]
// CHECK-NOT: internal error
