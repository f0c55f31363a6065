// RUN: not xdsl-opt %s -p df-to-nv 2>&1 | filecheck %s

// df-to-nv lowers what gpu-partition made: an operator still at graph level (other than an
// all-reduce, which becomes an NCCL call) means the partition was not run.

builtin.module {
  df.graph @unpartitioned attributes {batch = 1 : i64, context = 8 : i64, tokens = 1 : i64, sockets = 1 : i64, tp = 1 : i64, target = "dgx_h100", activations = "sram"} {
    %x = df.input "x" : !df.tensor<[B, 8], bf16>
    %w = df.weight "w" : !df.tensor<[8, 8], bf16, hbm>
    %y = df.linear %x, %w : (!df.tensor<[B, 8], bf16>, !df.tensor<[8, 8], bf16, hbm>) -> !df.tensor<[B, 8], bf16>
    df.output %y : !df.tensor<[B, 8], bf16>
  }
}

// CHECK: df-to-nv expects placed IR, but df.linear is outside a kernel: run fuse first (gpu-partition for a GPU)
