// RUN: not xdsl-opt %s 2>&1 | filecheck %s

// A stacked argument's stride must be the bytes of one slice: a [B, S, 2, 16] bf16 cache slice
// is 64*B*S bytes, not 64.
builtin.module {
  rdu.kernel @layers(%x: !rdu.buffer<[B, 64], bf16, sram>, %k: !rdu.buffer<[2, B, S, 2, 16], bf16, hbm>) -> !rdu.buffer<[B, 64], bf16, sram> attributes {pcus = 1 : i64, pmus = 1 : i64} {
    rdu.loop 2 stacked [1] strides [64] carried_bytes #cost.work<128*B> {
      rdu.stage "attention" {operators = ["attention"], pcus = 1 : i64, pmus = 1 : i64, flops = #cost.work<B*S>, sram_bytes = 0 : i64}
    }
    rdu.return
  }
}

// CHECK: rdu.loop: stacked argument 1 advances 64*B*S bytes per iteration, not 64
