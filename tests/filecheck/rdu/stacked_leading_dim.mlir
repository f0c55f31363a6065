// RUN: not xdsl-opt %s 2>&1 | filecheck %s

// A loop's stacked argument must have the trip count as its leading dimension: here the loop
// runs 3 iterations over a weight stacked for 2 layers.
builtin.module {
  rdu.kernel @layers(%x: !rdu.buffer<[B, 64], bf16, sram>, %w: !rdu.buffer<[2, 64, 64], bf16, hbm>) -> !rdu.buffer<[B, 64], bf16, sram> attributes {pcus = 1 : i64, pmus = 1 : i64} {
    rdu.loop 3 stacked [1] strides [8192] carried_bytes #cost.work<128*B> {
      rdu.stage "linear" {operators = ["linear"], pcus = 1 : i64, pmus = 1 : i64, flops = #cost.work<8192*B>, hbm_read = #cost.work<8192>, sram_bytes = 0 : i64}
    }
    rdu.return
  }
}

// CHECK: rdu.loop: stacked argument 1 of shape [2, 64, 64] must have the trip count 3 as its leading dimension
