// RUN: xdsl-opt %s | xdsl-opt | filecheck %s
// RUN: xdsl-opt %s --print-op-generic | xdsl-opt | filecheck %s

// The three collectives print and parse back, in a kernel and in a looped kernel: an all-reduce,
// and a two-shot all-reduce spelled out as a reduce-scatter then an all-gather. `bytes` is what
// each socket contributes: the reduce-scatter's whole partial sum, the all-gather's 1/8 share.
builtin.module {
  rdu.program @m attributes {batch = 1 : i64, context = 100 : i64, tokens = 4 : i64, sockets = 8 : i64, target = "sn40l", pcus_per_socket = 1040 : i64, pmus_per_socket = 1040 : i64, sram_bytes_per_socket = 520000000 : i64} {
    %t = rdu.buffer "tokens" kind input : !rdu.buffer<[B], i32, sram>
    %y = rdu.call @k(%t) : (!rdu.buffer<[B], i32, sram>) -> !rdu.buffer<[B, 64], bf16, sram>
    %z = rdu.call @looped(%y) : (!rdu.buffer<[B, 64], bf16, sram>) -> !rdu.buffer<[B, 64], bf16, sram>
    rdu.output %z : !rdu.buffer<[B, 64], bf16, sram>
  }
  rdu.kernel @k(%x: !rdu.buffer<[B], i32, sram>) -> !rdu.buffer<[B, 64], bf16, sram> attributes {pcus = 1 : i64, pmus = 1 : i64} {
    rdu.stage "linear" {operators = ["linear"], pcus = 1 : i64, pmus = 1 : i64, flops = #cost.work<64*B>, hbm_read = #cost.work<8192>, sram_bytes = 0 : i64}
    rdu.all_reduce {bytes = #cost.work<128*B>, sockets = 8 : i64}
    rdu.return
  }
  rdu.kernel @looped(%x: !rdu.buffer<[B, 64], bf16, sram>) -> !rdu.buffer<[B, 64], bf16, sram> attributes {pcus = 1 : i64, pmus = 1 : i64} {
    rdu.loop 2 stacked [] strides [] carried_bytes #cost.work<128*B> {
      rdu.stage "linear" {operators = ["linear"], pcus = 1 : i64, pmus = 1 : i64, flops = #cost.work<64*B>, hbm_read = #cost.work<8192>, sram_bytes = 0 : i64}
      rdu.reduce_scatter {bytes = #cost.work<128*B>, sockets = 8 : i64}
      rdu.all_gather {bytes = #cost.work<16*B>, sockets = 8 : i64}
    }
    rdu.return
  }
}

// CHECK:      rdu.kernel @k
// CHECK:        rdu.all_reduce {bytes = #cost.work<128*B>, sockets = 8 : i64}
// CHECK-NEXT:   rdu.return
// CHECK:      rdu.kernel @looped
// CHECK-NEXT:   rdu.loop 2
// CHECK-NEXT:     rdu.stage "linear"
// CHECK-NEXT:     rdu.reduce_scatter {bytes = #cost.work<128*B>, sockets = 8 : i64}
// CHECK-NEXT:     rdu.all_gather {bytes = #cost.work<16*B>, sockets = 8 : i64}
// CHECK-NEXT:   }
