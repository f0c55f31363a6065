// RUN: xdsl-opt %s | xdsl-opt | filecheck %s
// RUN: xdsl-opt %s --print-op-generic | xdsl-opt | filecheck %s

// NCCL's three collectives print and parse back: an all-reduce keeps its input's type, a
// reduce-scatter leaves each GPU 1/gpus of the last dimension, an all-gather puts it back.
// `bytes` is what each GPU contributes (the all-gather's: its share).
builtin.module {
  nv.program @m attributes {target = "dgx_h100", batch = 1 : i64, context = 128 : i64, tokens = 4 : i64, gpus = 2 : i64} {
    %x = nv.buffer "x" {kind = "input"} : !nv.buffer<[B, 64], bf16, hbm>
    %s = nv.all_reduce %x {bytes = #cost.work<128*B>, gpus = 2 : i64} : (!nv.buffer<[B, 64], bf16, hbm>) -> !nv.buffer<[B, 64], bf16, hbm>
    %r = nv.reduce_scatter %s {bytes = #cost.work<128*B>, gpus = 2 : i64} : (!nv.buffer<[B, 64], bf16, hbm>) -> !nv.buffer<[B, 32], bf16, hbm>
    %g = nv.all_gather %r {bytes = #cost.work<64*B>, gpus = 2 : i64} : (!nv.buffer<[B, 32], bf16, hbm>) -> !nv.buffer<[B, 64], bf16, hbm>
    nv.output %g : !nv.buffer<[B, 64], bf16, hbm>
  }
}

// CHECK:      %s = nv.all_reduce %x {bytes = #cost.work<128*B>, gpus = 2 : i64} : (!nv.buffer<[B, 64], bf16, hbm>) -> !nv.buffer<[B, 64], bf16, hbm>
// CHECK-NEXT: %r = nv.reduce_scatter %s {bytes = #cost.work<128*B>, gpus = 2 : i64} : (!nv.buffer<[B, 64], bf16, hbm>) -> !nv.buffer<[B, 32], bf16, hbm>
// CHECK-NEXT: %g = nv.all_gather %r {bytes = #cost.work<64*B>, gpus = 2 : i64} : (!nv.buffer<[B, 32], bf16, hbm>) -> !nv.buffer<[B, 64], bf16, hbm>
