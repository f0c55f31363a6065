// RUN: xdsl-opt %s --split-input-file --verify-diagnostics | filecheck %s

// rdu.pipeline_send prints and parses back; its verifier: a send keeps the buffer's type, the
// sends of a program enter stages 1, 2, ... in order and agree on `stages` and `micro_batches`.

rdu.kernel @k(%x: !rdu.buffer<[B, 64], bf16, sram>) -> !rdu.buffer<[B, 64], bf16, sram> attributes {pcus = 1 : i64, pmus = 1 : i64} {
  rdu.stage "linear" {operators = ["linear"], pcus = 1 : i64, pmus = 1 : i64, flops = #cost.work<0>, sram_bytes = 0 : i64}
  rdu.return
}
rdu.program @p attributes {target = "sn40l", batch = 1 : i64, context = 8 : i64, tokens = 1 : i64, sockets = 1 : i64, pcus_per_socket = 1040 : i64, pmus_per_socket = 1040 : i64, sram_bytes_per_socket = 520000000 : i64} {
  %x = rdu.buffer "x" kind input : !rdu.buffer<[B, 64], bf16, sram>
  %a = rdu.call @k(%x) : (!rdu.buffer<[B, 64], bf16, sram>) -> !rdu.buffer<[B, 64], bf16, sram>
  %s = rdu.pipeline_send %a {stage = 1 : i64, stages = 3 : i64, micro_batches = 2 : i64} : (!rdu.buffer<[B, 64], bf16, sram>) -> !rdu.buffer<[B, 64], bf16, sram>
  %b = rdu.call @k(%s) : (!rdu.buffer<[B, 64], bf16, sram>) -> !rdu.buffer<[B, 64], bf16, sram>
  %t = rdu.pipeline_send %b {stage = 2 : i64, stages = 3 : i64, micro_batches = 2 : i64} : (!rdu.buffer<[B, 64], bf16, sram>) -> !rdu.buffer<[B, 64], bf16, sram>
  %c = rdu.call @k(%t) : (!rdu.buffer<[B, 64], bf16, sram>) -> !rdu.buffer<[B, 64], bf16, sram>
  rdu.output %c : !rdu.buffer<[B, 64], bf16, sram>
}
// CHECK:      %s = rdu.pipeline_send %a {stage = 1 : i64, stages = 3 : i64, micro_batches = 2 : i64} : (!rdu.buffer<[B, 64], bf16, sram>) -> !rdu.buffer<[B, 64], bf16, sram>
// CHECK:      %t = rdu.pipeline_send %b {stage = 2 : i64, stages = 3 : i64, micro_batches = 2 : i64}

// -----

rdu.program @p attributes {target = "sn40l", batch = 1 : i64, context = 8 : i64, tokens = 1 : i64, sockets = 1 : i64, pcus_per_socket = 1040 : i64, pmus_per_socket = 1040 : i64, sram_bytes_per_socket = 520000000 : i64} {
  %x = rdu.buffer "x" kind input : !rdu.buffer<[B, 64], bf16, sram>
  %s = rdu.pipeline_send %x {stage = 2 : i64, stages = 2 : i64, micro_batches = 1 : i64} : (!rdu.buffer<[B, 64], bf16, sram>) -> !rdu.buffer<[B, 64], bf16, sram>
  rdu.output %s : !rdu.buffer<[B, 64], bf16, sram>
}
// CHECK: rdu.pipeline_send: stage 2 of 2: a send enters stage 1 to 1

// -----

rdu.program @p attributes {target = "sn40l", batch = 1 : i64, context = 8 : i64, tokens = 1 : i64, sockets = 1 : i64, pcus_per_socket = 1040 : i64, pmus_per_socket = 1040 : i64, sram_bytes_per_socket = 520000000 : i64} {
  %x = rdu.buffer "x" kind input : !rdu.buffer<[B, 64], bf16, sram>
  %s = rdu.pipeline_send %x {stage = 1 : i64, stages = 2 : i64, micro_batches = 1 : i64} : (!rdu.buffer<[B, 64], bf16, sram>) -> !rdu.buffer<[B, 64], bf16, hbm>
  rdu.output %s : !rdu.buffer<[B, 64], bf16, hbm>
}
// CHECK: rdu.pipeline_send: the activation keeps its type across the link

// -----

rdu.program @p attributes {target = "sn40l", batch = 1 : i64, context = 8 : i64, tokens = 1 : i64, sockets = 1 : i64, pcus_per_socket = 1040 : i64, pmus_per_socket = 1040 : i64, sram_bytes_per_socket = 520000000 : i64} {
  %x = rdu.buffer "x" kind input : !rdu.buffer<[B, 64], bf16, sram>
  %s = rdu.pipeline_send %x {stage = 1 : i64, stages = 3 : i64, micro_batches = 1 : i64} : (!rdu.buffer<[B, 64], bf16, sram>) -> !rdu.buffer<[B, 64], bf16, sram>
  rdu.output %s : !rdu.buffer<[B, 64], bf16, sram>
}
// CHECK: rdu.pipeline_send: a pipeline of 3 stages has 2 sends, this step has 1

// -----

rdu.program @p attributes {target = "sn40l", batch = 1 : i64, context = 8 : i64, tokens = 1 : i64, sockets = 1 : i64, pcus_per_socket = 1040 : i64, pmus_per_socket = 1040 : i64, sram_bytes_per_socket = 520000000 : i64} {
  %x = rdu.buffer "x" kind input : !rdu.buffer<[B, 64], bf16, sram>
  %s = rdu.pipeline_send %x {stage = 2 : i64, stages = 3 : i64, micro_batches = 1 : i64} : (!rdu.buffer<[B, 64], bf16, sram>) -> !rdu.buffer<[B, 64], bf16, sram>
  %t = rdu.pipeline_send %s {stage = 1 : i64, stages = 3 : i64, micro_batches = 1 : i64} : (!rdu.buffer<[B, 64], bf16, sram>) -> !rdu.buffer<[B, 64], bf16, sram>
  rdu.output %t : !rdu.buffer<[B, 64], bf16, sram>
}
// CHECK: rdu.pipeline_send: send 1 of the step enters stage 2; sends enter stages 1, 2, ... in order
