// RUN: xdsl-opt %s | xdsl-opt | filecheck %s
// RUN: xdsl-opt %s --print-op-generic | xdsl-opt | filecheck %s

// The all-to-all of expert parallelism prints and parses back, inside a program whose batch is
// split over its sockets (batch_shards), around a stage that holds 2 of 8 experts and runs the
// tokens of 4 sockets (all-to-all-errors.mlir has its verifier's errors).
builtin.module {
  rdu.program @m attributes {batch = 8 : i64, context = 100 : i64, tokens = 4 : i64, sockets = 4 : i64, target = "sn40l", pcus_per_socket = 1040 : i64, pmus_per_socket = 1040 : i64, sram_bytes_per_socket = 520000000 : i64, batch_shards = 4 : i64} {
    %t = rdu.buffer "tokens" kind input : !rdu.buffer<[B], i32, sram>
    %y = rdu.call @moe(%t) : (!rdu.buffer<[B], i32, sram>) -> !rdu.buffer<[B, 64], bf16, sram>
    rdu.output %y : !rdu.buffer<[B, 64], bf16, sram>
  }
  rdu.kernel @moe(%x: !rdu.buffer<[B], i32, sram>) -> !rdu.buffer<[B, 64], bf16, sram> attributes {pcus = 1 : i64, pmus = 1 : i64} {
    rdu.all_to_all {phase = "dispatch", bytes = #cost.work<256*B>, sockets = 4 : i64, imbalance = 1.5 : f64}
    rdu.stage "moe_experts" {operators = ["moe_experts"], pcus = 1 : i64, pmus = 1 : i64, flops = #cost.work<0>, sram_bytes = 512 : i64, experts = 8 : i64, top_k = 2 : i64, expert_read = #cost.work<1024>, expert_tier = "hbm", experts_held = 2 : i64, token_shards = 4 : i64}
    rdu.all_to_all {phase = "combine", bytes = #cost.work<256*B>, sockets = 4 : i64, imbalance = 1.5 : f64}
    rdu.return
  }
}

// CHECK:      rdu.program @m attributes {{{.*}}sockets = 4 : i64{{.*}}batch_shards = 4 : i64}
// CHECK:        rdu.all_to_all {phase = "dispatch", bytes = #cost.work<256*B>, sockets = 4 : i64, imbalance = 1.500000e+00 : f64}
// CHECK-NEXT:   rdu.stage "moe_experts" {{{.*}}experts = 8 : i64, top_k = 2 : i64, expert_read = #cost.work<1024>, expert_tier = "hbm", experts_held = 2 : i64, token_shards = 4 : i64}
// CHECK-NEXT:   rdu.all_to_all {phase = "combine", bytes = #cost.work<256*B>, sockets = 4 : i64, imbalance = 1.500000e+00 : f64}

