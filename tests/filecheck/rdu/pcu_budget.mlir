// RUN: not xdsl-opt %s 2>&1 | filecheck %s

// A kernel must fit one socket: its stages' PCUs (600 + 500) exceed the program's 1040.
builtin.module {
  rdu.program @m attributes {batch = 1 : i64, context = 8 : i64, tokens = 1 : i64, sockets = 1 : i64, target = "sn40l", pcus_per_socket = 1040 : i64, pmus_per_socket = 1040 : i64, sram_bytes_per_socket = 520000000 : i64} {
    %x = rdu.buffer "x" kind input : !rdu.buffer<[B, 64], bf16, sram>
    %y = rdu.call @big(%x) : (!rdu.buffer<[B, 64], bf16, sram>) -> !rdu.buffer<[B, 64], bf16, sram>
    rdu.output %y : !rdu.buffer<[B, 64], bf16, sram>
  }
  rdu.kernel @big(%x: !rdu.buffer<[B, 64], bf16, sram>) -> !rdu.buffer<[B, 64], bf16, sram> attributes {pcus = 1100 : i64, pmus = 2 : i64} {
    rdu.stage "linear" {operators = ["linear"], pcus = 600 : i64, pmus = 1 : i64, flops = #cost.work<8192*B>, sram_bytes = 0 : i64}
    rdu.stage "linear" {operators = ["linear"], pcus = 500 : i64, pmus = 1 : i64, flops = #cost.work<8192*B>, sram_bytes = 0 : i64}
    rdu.return
  }
}

// CHECK: rdu.kernel @big needs 1100 PCUs but a socket has 1040: fuse fewer operators into it (fuse{mode=block})
