// RUN: xdsl-opt %s -p 'shard-tensor-parallel' | filecheck %s
// RUN: xdsl-opt %s -p 'shard-tensor-parallel{sockets=2}' | filecheck %s --check-prefix=TWO

// A gated MLP with a GELU. Without `sockets`, the pass uses the graph's own `sockets`; on one
// socket nothing is split and no all-reduce is added, only `tp = 1` is recorded. On two, gate
// and up are column-split, down is row-split and its partial sums are all-reduced.

builtin.module {
  df.layer @mlp(%x: !df.tensor<[B, 8], bf16>, %w_gate: !df.tensor<[8, 16], bf16, hbm>, %w_up: !df.tensor<[8, 16], bf16, hbm>, %w_down: !df.tensor<[16, 8], bf16, hbm>) -> !df.tensor<[B, 8], bf16> {
    %g = df.linear %x, %w_gate : (!df.tensor<[B, 8], bf16>, !df.tensor<[8, 16], bf16, hbm>) -> !df.tensor<[B, 16], bf16>
    %u = df.linear %x, %w_up : (!df.tensor<[B, 8], bf16>, !df.tensor<[8, 16], bf16, hbm>) -> !df.tensor<[B, 16], bf16>
    %a = df.gelu %g : (!df.tensor<[B, 16], bf16>) -> !df.tensor<[B, 16], bf16>
    %m = df.mul %a, %u : (!df.tensor<[B, 16], bf16>, !df.tensor<[B, 16], bf16>) -> !df.tensor<[B, 16], bf16>
    %d = df.linear %m, %w_down : (!df.tensor<[B, 16], bf16>, !df.tensor<[16, 8], bf16, hbm>) -> !df.tensor<[B, 8], bf16>
    df.return %d : !df.tensor<[B, 8], bf16>
  }
  df.graph @one attributes {activations = "sram", batch = 1 : i64, context = 128 : i64, sockets = 1 : i64, target = "sn40l", tokens = 4 : i64, tp = 1 : i64} {
    %t = df.input "tokens" : !df.tensor<[B], i32>
    %e = df.weight "embed" : !df.tensor<[10, 8], bf16, hbm>
    %x = df.embedding %t, %e : (!df.tensor<[B], i32>, !df.tensor<[10, 8], bf16, hbm>) -> !df.tensor<[B, 8], bf16>
    %wg = df.weight "layers.0.w_gate" : !df.tensor<[8, 16], bf16, hbm>
    %wu = df.weight "layers.0.w_up" : !df.tensor<[8, 16], bf16, hbm>
    %wd = df.weight "layers.0.w_down" : !df.tensor<[16, 8], bf16, hbm>
    %y = df.call @mlp(%x, %wg, %wu, %wd) : (!df.tensor<[B, 8], bf16>, !df.tensor<[8, 16], bf16, hbm>, !df.tensor<[8, 16], bf16, hbm>, !df.tensor<[16, 8], bf16, hbm>) -> !df.tensor<[B, 8], bf16>
    %s = df.sample %y : (!df.tensor<[B, 8], bf16>) -> !df.tensor<[B], i32>
    df.output %s : !df.tensor<[B], i32>
  }
}

// CHECK:     df.layer @mlp(%x: !df.tensor<[B, 8], bf16>, %w_gate: !df.tensor<[8, 16], bf16, hbm>, %w_up: !df.tensor<[8, 16], bf16, hbm>, %w_down: !df.tensor<[16, 8], bf16, hbm>)
// CHECK-NOT: df.all_reduce
// CHECK:     df.graph @one attributes {{.*}}tp = 1 : i64
// CHECK:       df.weight "layers.0.w_gate" : !df.tensor<[8, 16], bf16, hbm>

// TWO:      df.layer @mlp(%x: !df.tensor<[B, 8], bf16>, %w_gate: !df.tensor<[8, 8], bf16, hbm>, %w_up: !df.tensor<[8, 8], bf16, hbm>, %w_down: !df.tensor<[8, 8], bf16, hbm>)
// TWO:        %[[D:.*]] = df.linear %m, %w_down : (!df.tensor<[B, 8], bf16>, !df.tensor<[8, 8], bf16, hbm>) -> !df.tensor<[B, 8], bf16>
// TWO-NEXT:   %[[SUM:.*]] = df.all_reduce %[[D]]
// TWO-NEXT:   df.return %[[SUM]]
// TWO:      df.graph @one attributes {{.*}}tp = 2 : i64
// TWO:        df.weight "layers.0.w_gate" : !df.tensor<[8, 8], bf16, hbm>
