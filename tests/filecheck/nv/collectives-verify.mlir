// RUN: xdsl-opt %s --split-input-file --verify-diagnostics | filecheck %s

// A reduce-scatter's result is its input with the last dimension divided by the GPUs.

nv.program @m attributes {target = "dgx_h100", batch = 1 : i64, context = 128 : i64, tokens = 4 : i64, gpus = 2 : i64} {
  %x = nv.buffer "x" {kind = "input"} : !nv.buffer<[B, 64], bf16, hbm>
  %r = nv.reduce_scatter %x {bytes = #cost.work<128*B>, gpus = 2 : i64} : (!nv.buffer<[B, 64], bf16, hbm>) -> !nv.buffer<[B, 64], bf16, hbm>
  nv.output %r : !nv.buffer<[B, 64], bf16, hbm>
}

// CHECK: nv.reduce_scatter: the result must be !nv.buffer<[B, 32], bf16, hbm> (the input's last dimension divided by the GPUs), got !nv.buffer<[B, 64], bf16, hbm>

// -----

// An all-gather's is the input's last dimension times the GPUs.

nv.program @m attributes {target = "dgx_h100", batch = 1 : i64, context = 128 : i64, tokens = 4 : i64, gpus = 2 : i64} {
  %x = nv.buffer "x" {kind = "input"} : !nv.buffer<[B, 32], bf16, hbm>
  %g = nv.all_gather %x {bytes = #cost.work<128*B>, gpus = 2 : i64} : (!nv.buffer<[B, 32], bf16, hbm>) -> !nv.buffer<[B, 32], bf16, hbm>
  nv.output %g : !nv.buffer<[B, 32], bf16, hbm>
}

// CHECK: nv.all_gather: the result must be !nv.buffer<[B, 64], bf16, hbm> (the input's last dimension multiplied by the GPUs), got !nv.buffer<[B, 32], bf16, hbm>

// -----

// A collective runs on the program's GPUs.

nv.program @m attributes {target = "dgx_h100", batch = 1 : i64, context = 128 : i64, tokens = 4 : i64, gpus = 2 : i64} {
  %x = nv.buffer "x" {kind = "input"} : !nv.buffer<[B, 64], bf16, hbm>
  %r = nv.reduce_scatter %x {bytes = #cost.work<128*B>, gpus = 4 : i64} : (!nv.buffer<[B, 64], bf16, hbm>) -> !nv.buffer<[B, 16], bf16, hbm>
  nv.output %r : !nv.buffer<[B, 16], bf16, hbm>
}

// CHECK: nv.reduce_scatter: exchanges over 4 GPUs in a program that runs on 2

// -----

// A reduce-scatter's last dimension must divide over the GPUs.

nv.program @m attributes {target = "dgx_h100", batch = 1 : i64, context = 128 : i64, tokens = 4 : i64, gpus = 2 : i64} {
  %x = nv.buffer "x" {kind = "input"} : !nv.buffer<[B, 63], bf16, hbm>
  %r = nv.reduce_scatter %x {bytes = #cost.work<126*B>, gpus = 2 : i64} : (!nv.buffer<[B, 63], bf16, hbm>) -> !nv.buffer<[B, 31], bf16, hbm>
  nv.output %r : !nv.buffer<[B, 31], bf16, hbm>
}

// CHECK: nv.reduce_scatter: the last dimension 63 does not divide over 2 GPUs
