// RUN: xdsl-opt %s | xdsl-opt | filecheck %s
// RUN: xdsl-opt %s --print-op-generic | xdsl-opt | filecheck %s

// The rdu dialect prints and parses back in custom and generic form: a program that calls a
// looped kernel (stacked weights and a stacked KV cache, whose stride depends on B and S) with a
// stage, a collective and a MoE stage. Work terms may come in any order and with a coefficient
// of 1 spelled out; they print in the order constant, B, B*S, zero terms left out.
builtin.module {
  rdu.program @m attributes {batch = 2 : i64, context = 100 : i64, tokens = 4 : i64, sockets = 2 : i64, target = "sn40l", pcus_per_socket = 1040 : i64, pmus_per_socket = 1040 : i64, sram_bytes_per_socket = 520000000 : i64} {
    %t = rdu.buffer "tokens" kind input : !rdu.buffer<[B], i32, sram>
    %w = rdu.buffer "layers.{0..1}.w" kind weight : !rdu.buffer<[2, 64, 64], bf16, hbm>
    %k = rdu.buffer "layers.{0..1}.k" kind kv_cache : !rdu.buffer<[2, B, S, 2, 16], bf16, ddr>
    %y = rdu.call @layers(%t, %w, %k) : (!rdu.buffer<[B], i32, sram>, !rdu.buffer<[2, 64, 64], bf16, hbm>, !rdu.buffer<[2, B, S, 2, 16], bf16, ddr>) -> !rdu.buffer<[B, 64], bf16, sram>
    rdu.output %y : !rdu.buffer<[B, 64], bf16, sram>
  }
  rdu.kernel @layers(%x: !rdu.buffer<[B], i32, sram>, %w: !rdu.buffer<[2, 64, 64], bf16, hbm>, %k: !rdu.buffer<[2, B, S, 2, 16], bf16, ddr>) -> !rdu.buffer<[B, 64], bf16, sram> attributes {pcus = 10 : i64, pmus = 4 : i64} {
    rdu.loop 2 stacked [1, 2] strides [8192, 64*B*S] carried_bytes #cost.work<128*B> {
      rdu.stage "linear" {operators = ["rmsnorm", "linear"], pcus = 9 : i64, pmus = 3 : i64, flops = #cost.work<1*B + 8192*B>, hbm_read = #cost.work<8320>, ddr_read = #cost.work<2*B*S + 7 + B*S>, ddr_write = #cost.work<B>, sram_bytes = 1536 : i64}
      rdu.all_reduce {bytes = #cost.work<128*B>, sockets = 2 : i64}
      rdu.stage "moe_experts" {operators = ["moe_experts"], pcus = 1 : i64, pmus = 1 : i64, flops = #cost.work<0>, sram_bytes = 512 : i64, experts = 8 : i64, top_k = 2 : i64, expert_read = #cost.work<1024>, expert_tier = "hbm"}
    }
    rdu.return
  }
}

// CHECK:      rdu.program @m attributes {batch = 2 : i64, context = 100 : i64, tokens = 4 : i64, sockets = 2 : i64, target = "sn40l", pcus_per_socket = 1040 : i64, pmus_per_socket = 1040 : i64, sram_bytes_per_socket = 520000000 : i64} {
// CHECK-NEXT:   %t = rdu.buffer "tokens" kind input : !rdu.buffer<[B], i32, sram>
// CHECK-NEXT:   %w = rdu.buffer "layers.{0..1}.w" kind weight : !rdu.buffer<[2, 64, 64], bf16, hbm>
// CHECK-NEXT:   %k = rdu.buffer "layers.{0..1}.k" kind kv_cache : !rdu.buffer<[2, B, S, 2, 16], bf16, ddr>
// CHECK-NEXT:   %y = rdu.call @layers(%t, %w, %k) : (!rdu.buffer<[B], i32, sram>, !rdu.buffer<[2, 64, 64], bf16, hbm>, !rdu.buffer<[2, B, S, 2, 16], bf16, ddr>) -> !rdu.buffer<[B, 64], bf16, sram>
// CHECK-NEXT:   rdu.output %y : !rdu.buffer<[B, 64], bf16, sram>
// CHECK-NEXT: }
// CHECK-NEXT: rdu.kernel @layers(%{{.*}}: !rdu.buffer<[B], i32, sram>, %{{.*}}: !rdu.buffer<[2, 64, 64], bf16, hbm>, %{{.*}}: !rdu.buffer<[2, B, S, 2, 16], bf16, ddr>) -> !rdu.buffer<[B, 64], bf16, sram> attributes {pcus = 10 : i64, pmus = 4 : i64} {
// CHECK-NEXT:   rdu.loop 2 stacked [1, 2] strides [8192, 64*B*S] carried_bytes #cost.work<128*B> {
// CHECK-NEXT:     rdu.stage "linear" {operators = ["rmsnorm", "linear"], pcus = 9 : i64, pmus = 3 : i64, flops = #cost.work<8193*B>, hbm_read = #cost.work<8320>, ddr_read = #cost.work<7 + 3*B*S>, ddr_write = #cost.work<B>, sram_bytes = 1536 : i64}
// CHECK-NEXT:     rdu.all_reduce {bytes = #cost.work<128*B>, sockets = 2 : i64}
// CHECK-NEXT:     rdu.stage "moe_experts" {operators = ["moe_experts"], pcus = 1 : i64, pmus = 1 : i64, flops = #cost.work<0>, sram_bytes = 512 : i64, experts = 8 : i64, top_k = 2 : i64, expert_read = #cost.work<1024>, expert_tier = "hbm"}
// CHECK-NEXT:   }
// CHECK-NEXT:   rdu.return
// CHECK-NEXT: }
