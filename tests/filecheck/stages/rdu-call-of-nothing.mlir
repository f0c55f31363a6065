// RUN: not dfdsl opt %s 2>&1 | filecheck %s

// An rdu.call must name an rdu.kernel of the module.
builtin.module {
  rdu.program @m attributes {target = "sn40l", batch = 1 : i64, context = 8 : i64, tokens = 1 : i64, sockets = 1 : i64, pcus_per_socket = 1040 : i64, pmus_per_socket = 1040 : i64, sram_bytes_per_socket = 520000000 : i64} {
    %x = rdu.buffer "x" kind input : !rdu.buffer<[B, 64], bf16, sram>
    %y = rdu.call @nope(%x) : (!rdu.buffer<[B, 64], bf16, sram>) -> !rdu.buffer<[B, 64], bf16, sram>
    rdu.output %y : !rdu.buffer<[B, 64], bf16, sram>
  }
}

// CHECK: error: rdu.call @nope: the module has no rdu.kernel @nope [E025]
