// RUN: xdsl-opt %s | xdsl-opt | filecheck %s
// RUN: xdsl-opt %s --print-op-generic | xdsl-opt | filecheck %s

// The df dialect prints and parses back in custom and generic form.
builtin.module {
  df.layer @dec(%x: !df.tensor<[B, 64], bf16>, %w: !df.tensor<[64, 64], bf16, hbm>, %bias: !df.tensor<[64], bf16, hbm>, %kc: !df.tensor<[B, S, 2, 16], bf16, hbm>) -> !df.tensor<[B, 64], bf16> {
    %h0 = df.linear %x, %w : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 64], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    %h = df.linear %h0, %w, %bias : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 64], bf16, hbm>, !df.tensor<[64], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    %r = df.rope %h {head_dim = 16 : i64} : (!df.tensor<[B, 64], bf16>) -> !df.tensor<[B, 64], bf16>
    %y = df.add %x, %r : (!df.tensor<[B, 64], bf16>, !df.tensor<[B, 64], bf16>) -> !df.tensor<[B, 64], bf16>
    df.return %y : !df.tensor<[B, 64], bf16>
  }
  df.graph @m attributes {activations = "sram", batch = 1 : i64, context = 128 : i64, tokens = 4 : i64, sockets = 1 : i64, tp = 1 : i64, target = "sn40l", explicit_tiers = ["weights"], explicit_tensors = ["layers.*.w"]} {
    %t = df.input "tokens" : !df.tensor<[B], i32>
    %e = df.weight "embed" : !df.tensor<[100, 64], bf16, hbm>
    %w = df.weight "layers.0.w" : !df.tensor<[64, 64], bf16, hbm>
    %w2 = df.weight "layers.0.w2" : !df.tensor<[2, 64, 64], bf16, hbm>
    %bias = df.weight "layers.0.bias" : !df.tensor<[64], bf16, hbm>
    %kc = df.kv_cache "layers.0.k" : !df.tensor<[B, S, 2, 16], bf16, hbm>
    %x = df.embedding %t, %e : (!df.tensor<[B], i32>, !df.tensor<[100, 64], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    %y = df.call @dec(%x, %w, %bias, %kc) : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 64], bf16, hbm>, !df.tensor<[64], bf16, hbm>, !df.tensor<[B, S, 2, 16], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    %z = df.loop 2 carried(%y : !df.tensor<[B, 64], bf16>) stacked(%w2 : !df.tensor<[2, 64, 64], bf16, hbm>) -> !df.tensor<[B, 64], bf16> {
    ^bb0(%a: !df.tensor<[B, 64], bf16>, %b: !df.tensor<[64, 64], bf16, hbm>):
      %c = df.linear %a, %b : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 64], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
      df.yield %c : !df.tensor<[B, 64], bf16>
    }
    %s = df.sample %z : (!df.tensor<[B, 64], bf16>) -> !df.tensor<[B], i32>
    df.output %s : !df.tensor<[B], i32>
  }
}

// CHECK:      df.layer @dec(%{{.*}}: !df.tensor<[B, 64], bf16>, %{{.*}}: !df.tensor<[64, 64], bf16, hbm>, %{{.*}}: !df.tensor<[64], bf16, hbm>, %{{.*}}: !df.tensor<[B, S, 2, 16], bf16, hbm>) -> !df.tensor<[B, 64], bf16> {
// CHECK:        %[[H0:.*]] = df.linear %{{.*}}, %[[W:.*]] : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 64], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
// CHECK-NEXT:   df.linear %[[H0]], %[[W]], %{{.*}} : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 64], bf16, hbm>, !df.tensor<[64], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
// CHECK:        df.rope %{{.*}} {head_dim = 16 : i64}
// CHECK:      df.graph @m attributes {activations = "sram", batch = 1 : i64
// CHECK-SAME:   explicit_tiers = ["weights"], explicit_tensors = ["layers.*.w"]
// CHECK:        df.kv_cache "layers.0.k" : !df.tensor<[B, S, 2, 16], bf16, hbm>
// CHECK:        df.loop 2 carried(%{{.*}} : !df.tensor<[B, 64], bf16>) stacked(%{{.*}} : !df.tensor<[2, 64, 64], bf16, hbm>) -> !df.tensor<[B, 64], bf16> {
// CHECK:          df.yield
// CHECK:        df.output %{{.*}} : !df.tensor<[B], i32>
