// RUN: not xdsl-opt %s -p gpu-partition 2>&1 | filecheck %s

// A kernel-looped module cannot run on a GPU: every kernel launch there is a synchronization
// boundary, so there is no pipelined outer loop in which the next layer's weights could stream.
// gpu-partition refuses it and says what to do.

builtin.module {
  df.kernel @linear_x2(%x: !df.tensor<[B, 8], bf16>, %w: !df.tensor<[2, 8, 8], bf16, hbm>) -> !df.tensor<[B, 8], bf16> {
    %r = df.loop 2 carried(%x : !df.tensor<[B, 8], bf16>) stacked(%w : !df.tensor<[2, 8, 8], bf16, hbm>) -> !df.tensor<[B, 8], bf16> {
    ^bb0(%xi: !df.tensor<[B, 8], bf16>, %wi: !df.tensor<[8, 8], bf16, hbm>):
      %y = df.linear %xi, %wi : (!df.tensor<[B, 8], bf16>, !df.tensor<[8, 8], bf16, hbm>) -> !df.tensor<[B, 8], bf16>
      df.yield %y : !df.tensor<[B, 8], bf16>
    }
    df.return %r : !df.tensor<[B, 8], bf16>
  }
  df.graph @looped attributes {batch = 1 : i64, context = 8 : i64, tokens = 1 : i64, sockets = 1 : i64, tp = 1 : i64, target = "dgx_h100", activations = "sram"} {
    %x = df.input "x" : !df.tensor<[B, 8], bf16>
    %w = df.weight "layers.{0..1}.w" : !df.tensor<[2, 8, 8], bf16, hbm>
    %y = df.launch @linear_x2(%x, %w) : (!df.tensor<[B, 8], bf16>, !df.tensor<[2, 8, 8], bf16, hbm>) -> !df.tensor<[B, 8], bf16>
    df.output %y : !df.tensor<[B, 8], bf16>
  }
}

// CHECK: kernel looping is not possible on a GPU: each kernel launch is a synchronization boundary
// CHECK-SAME: Run without kernel looping (--no-kernel-looping) on GPU targets
