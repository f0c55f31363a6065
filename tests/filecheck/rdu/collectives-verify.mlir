// RUN: xdsl-opt %s --split-input-file --verify-diagnostics | filecheck %s

// A collective runs over as many sockets as its program, at least two, inside a kernel.

builtin.module {
  rdu.program @m attributes {batch = 1 : i64, context = 100 : i64, tokens = 4 : i64, sockets = 8 : i64, target = "sn40l", pcus_per_socket = 1040 : i64, pmus_per_socket = 1040 : i64, sram_bytes_per_socket = 520000000 : i64} {
    %t = rdu.buffer "tokens" kind input : !rdu.buffer<[B], i32, sram>
    %y = rdu.call @k(%t) : (!rdu.buffer<[B], i32, sram>) -> !rdu.buffer<[B, 64], bf16, sram>
    rdu.output %y : !rdu.buffer<[B, 64], bf16, sram>
  }
  rdu.kernel @k(%x: !rdu.buffer<[B], i32, sram>) -> !rdu.buffer<[B, 64], bf16, sram> attributes {pcus = 0 : i64, pmus = 0 : i64} {
    rdu.reduce_scatter {bytes = #cost.work<128*B>, sockets = 16 : i64}
    rdu.return
  }
}

// CHECK: rdu.reduce_scatter: exchanges over 16 sockets in a program that runs on 8

// -----

rdu.kernel @k() -> () attributes {pcus = 0 : i64, pmus = 0 : i64} {
  rdu.all_gather {bytes = #cost.work<128*B>, sockets = 1 : i64}
  rdu.return
}

// CHECK: rdu.all_gather: a collective needs at least 2 sockets

// -----

rdu.all_gather {bytes = #cost.work<128*B>, sockets = 2 : i64}

// CHECK: 'rdu.all_gather' expects parent op to be one of 'rdu.kernel', 'rdu.loop'
