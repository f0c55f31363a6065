// RUN: xdsl-opt %s --split-input-file --verify-diagnostics | filecheck %s

// The verifiers of a stage and a collective: a stage has at least one PCU and one PMU and some
// operators, and a MoE stage gives its expert fields all together; an all-reduce spans 2+ sockets.

rdu.kernel @k() attributes {pcus = 0 : i64, pmus = 1 : i64} {
  rdu.stage "linear" {operators = ["linear"], pcus = 0 : i64, pmus = 1 : i64, flops = #cost.work<0>, sram_bytes = 0 : i64}
  rdu.return
}
// CHECK: rdu.stage 'linear' needs at least one PCU and one PMU

// -----

rdu.kernel @k() attributes {pcus = 1 : i64, pmus = 1 : i64} {
  rdu.stage "empty" {operators = [], pcus = 1 : i64, pmus = 1 : i64, flops = #cost.work<0>, sram_bytes = 0 : i64}
  rdu.return
}
// CHECK: rdu.stage 'empty' runs no operators

// -----

rdu.kernel @k() attributes {pcus = 1 : i64, pmus = 1 : i64} {
  rdu.stage "moe_experts" {operators = ["moe_experts"], pcus = 1 : i64, pmus = 1 : i64, flops = #cost.work<0>, sram_bytes = 0 : i64, experts = 8 : i64}
  rdu.return
}
// CHECK: rdu.stage 'moe_experts': a MoE stage gives all of experts, top_k, expert_read, expert_tier

// -----

rdu.kernel @k() attributes {pcus = 0 : i64, pmus = 0 : i64} {
  rdu.all_reduce {bytes = #cost.work<128*B>, sockets = 1 : i64}
  rdu.return
}
// CHECK: rdu.all_reduce: a collective needs at least 2 sockets

// -----

rdu.kernel @k() attributes {pcus = 5 : i64, pmus = 1 : i64} {
  rdu.stage "linear" {operators = ["linear"], pcus = 1 : i64, pmus = 1 : i64, flops = #cost.work<0>, sram_bytes = 0 : i64}
  rdu.return
}
// CHECK: rdu.kernel @k: pcus must be the sum over its stages, 1
