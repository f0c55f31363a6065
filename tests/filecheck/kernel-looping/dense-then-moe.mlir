// RUN: xdsl-opt %s -p kernel-looping | filecheck %s

// Three dense layers then four mixture-of-experts layers (two different kernels, as in
// DeepSeek's 3 dense + 58 MoE) give two loops, one per run of launches of one kernel.
builtin.module {
  df.kernel @dense(%x: !df.tensor<[B, 64], bf16>, %w_up: !df.tensor<[64, 128], bf16, hbm>, %w_down: !df.tensor<[128, 64], bf16, hbm>) -> !df.tensor<[B, 64], bf16> {
    %u = df.linear %x, %w_up : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 128], bf16, hbm>) -> !df.tensor<[B, 128], bf16>
    %s = df.silu %u : (!df.tensor<[B, 128], bf16>) -> !df.tensor<[B, 128], bf16>
    %d = df.linear %s, %w_down : (!df.tensor<[B, 128], bf16>, !df.tensor<[128, 64], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    %y = df.add %x, %d : (!df.tensor<[B, 64], bf16>, !df.tensor<[B, 64], bf16>) -> !df.tensor<[B, 64], bf16>
    df.return %y : !df.tensor<[B, 64], bf16>
  }
  df.kernel @moe(%x: !df.tensor<[B, 64], bf16>, %router: !df.tensor<[64, 4], bf16, hbm>, %gate: !df.tensor<[4, 64, 32], bf16, hbm>, %up: !df.tensor<[4, 64, 32], bf16, hbm>, %down: !df.tensor<[4, 32, 64], bf16, hbm>) -> !df.tensor<[B, 64], bf16> {
    %scores = df.moe_router %x, %router {top_k = 2 : i64} : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 4], bf16, hbm>) -> !df.tensor<[B, 4], bf16>
    %e = df.moe_experts %x, %scores, %gate, %up, %down {top_k = 2 : i64} : (!df.tensor<[B, 64], bf16>, !df.tensor<[B, 4], bf16>, !df.tensor<[4, 64, 32], bf16, hbm>, !df.tensor<[4, 64, 32], bf16, hbm>, !df.tensor<[4, 32, 64], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    %y = df.add %x, %e : (!df.tensor<[B, 64], bf16>, !df.tensor<[B, 64], bf16>) -> !df.tensor<[B, 64], bf16>
    df.return %y : !df.tensor<[B, 64], bf16>
  }
  df.graph @deepseek_like attributes {activations = "sram", batch = 1 : i64, context = 128 : i64, tokens = 4 : i64, sockets = 1 : i64, tp = 1 : i64, target = "sn40l"} {
    %x_0 = df.input "hidden" : !df.tensor<[B, 64], bf16>
    %w_up_0 = df.weight "layers.0.w_up" : !df.tensor<[64, 128], bf16, hbm>
    %w_down_0 = df.weight "layers.0.w_down" : !df.tensor<[128, 64], bf16, hbm>
    %x_1 = df.launch @dense(%x_0, %w_up_0, %w_down_0) : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 128], bf16, hbm>, !df.tensor<[128, 64], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    %w_up_1 = df.weight "layers.1.w_up" : !df.tensor<[64, 128], bf16, hbm>
    %w_down_1 = df.weight "layers.1.w_down" : !df.tensor<[128, 64], bf16, hbm>
    %x_2 = df.launch @dense(%x_1, %w_up_1, %w_down_1) : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 128], bf16, hbm>, !df.tensor<[128, 64], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    %w_up_2 = df.weight "layers.2.w_up" : !df.tensor<[64, 128], bf16, hbm>
    %w_down_2 = df.weight "layers.2.w_down" : !df.tensor<[128, 64], bf16, hbm>
    %x_3 = df.launch @dense(%x_2, %w_up_2, %w_down_2) : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 128], bf16, hbm>, !df.tensor<[128, 64], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    %router_3 = df.weight "layers.3.router" : !df.tensor<[64, 4], bf16, hbm>
    %gate_3 = df.weight "layers.3.gate" : !df.tensor<[4, 64, 32], bf16, hbm>
    %up_3 = df.weight "layers.3.up" : !df.tensor<[4, 64, 32], bf16, hbm>
    %down_3 = df.weight "layers.3.down" : !df.tensor<[4, 32, 64], bf16, hbm>
    %x_4 = df.launch @moe(%x_3, %router_3, %gate_3, %up_3, %down_3) : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 4], bf16, hbm>, !df.tensor<[4, 64, 32], bf16, hbm>, !df.tensor<[4, 64, 32], bf16, hbm>, !df.tensor<[4, 32, 64], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    %router_4 = df.weight "layers.4.router" : !df.tensor<[64, 4], bf16, hbm>
    %gate_4 = df.weight "layers.4.gate" : !df.tensor<[4, 64, 32], bf16, hbm>
    %up_4 = df.weight "layers.4.up" : !df.tensor<[4, 64, 32], bf16, hbm>
    %down_4 = df.weight "layers.4.down" : !df.tensor<[4, 32, 64], bf16, hbm>
    %x_5 = df.launch @moe(%x_4, %router_4, %gate_4, %up_4, %down_4) : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 4], bf16, hbm>, !df.tensor<[4, 64, 32], bf16, hbm>, !df.tensor<[4, 64, 32], bf16, hbm>, !df.tensor<[4, 32, 64], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    %router_5 = df.weight "layers.5.router" : !df.tensor<[64, 4], bf16, hbm>
    %gate_5 = df.weight "layers.5.gate" : !df.tensor<[4, 64, 32], bf16, hbm>
    %up_5 = df.weight "layers.5.up" : !df.tensor<[4, 64, 32], bf16, hbm>
    %down_5 = df.weight "layers.5.down" : !df.tensor<[4, 32, 64], bf16, hbm>
    %x_6 = df.launch @moe(%x_5, %router_5, %gate_5, %up_5, %down_5) : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 4], bf16, hbm>, !df.tensor<[4, 64, 32], bf16, hbm>, !df.tensor<[4, 64, 32], bf16, hbm>, !df.tensor<[4, 32, 64], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    %router_6 = df.weight "layers.6.router" : !df.tensor<[64, 4], bf16, hbm>
    %gate_6 = df.weight "layers.6.gate" : !df.tensor<[4, 64, 32], bf16, hbm>
    %up_6 = df.weight "layers.6.up" : !df.tensor<[4, 64, 32], bf16, hbm>
    %down_6 = df.weight "layers.6.down" : !df.tensor<[4, 32, 64], bf16, hbm>
    %x_7 = df.launch @moe(%x_6, %router_6, %gate_6, %up_6, %down_6) : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 4], bf16, hbm>, !df.tensor<[4, 64, 32], bf16, hbm>, !df.tensor<[4, 64, 32], bf16, hbm>, !df.tensor<[4, 32, 64], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    df.output %x_7 : !df.tensor<[B, 64], bf16>
  }
}

// CHECK:      df.kernel @dense_x3(%x: !df.tensor<[B, 64], bf16>, %w_up: !df.tensor<[3, 64, 128], bf16, hbm>, %w_down: !df.tensor<[3, 128, 64], bf16, hbm>) -> !df.tensor<[B, 64], bf16> {
// CHECK-NEXT:   df.loop 3 carried(%x : !df.tensor<[B, 64], bf16>) stacked(%w_up, %w_down : {{.*}}) -> !df.tensor<[B, 64], bf16> {
// CHECK:          df.yield
// CHECK:      df.kernel @moe_x4(%x: !df.tensor<[B, 64], bf16>, %router: !df.tensor<[4, 64, 4], bf16, hbm>, %gate: !df.tensor<[4, 4, 64, 32], bf16, hbm>, %up: !df.tensor<[4, 4, 64, 32], bf16, hbm>, %down: !df.tensor<[4, 4, 32, 64], bf16, hbm>) -> !df.tensor<[B, 64], bf16> {
// CHECK-NEXT:   df.loop 4 carried(%x : !df.tensor<[B, 64], bf16>) stacked(%router, %gate, %up, %down : {{.*}}) -> !df.tensor<[B, 64], bf16> {
// CHECK:          df.moe_experts
// CHECK:          df.yield
// CHECK-NOT:  df.kernel @dense(
// CHECK-NOT:  df.kernel @moe(

// The MoE loop takes the dense loop's result; the stacked names keep the layer numbers 3..6.
// CHECK:      %[[X:.*]] = df.input "hidden"
// CHECK-NEXT: %[[UP:.*]] = df.weight "layers.{0..2}.w_up" : !df.tensor<[3, 64, 128], bf16, hbm>
// CHECK-NEXT: %[[DOWN:.*]] = df.weight "layers.{0..2}.w_down" : !df.tensor<[3, 128, 64], bf16, hbm>
// CHECK-NEXT: %[[D:.*]] = df.launch @dense_x3(%[[X]], %[[UP]], %[[DOWN]])
// CHECK-NEXT: df.weight "layers.{3..6}.router" : !df.tensor<[4, 64, 4], bf16, hbm>
// CHECK-NEXT: df.weight "layers.{3..6}.gate" : !df.tensor<[4, 4, 64, 32], bf16, hbm>
// CHECK-NEXT: df.weight "layers.{3..6}.up"
// CHECK-NEXT: df.weight "layers.{3..6}.down"
// CHECK-NEXT: %[[M:.*]] = df.launch @moe_x4(%[[D]], %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}})
// CHECK-NEXT: df.output %[[M]]
