// RUN: xdsl-opt %s --split-input-file --verify-diagnostics | filecheck %s

// In a prefill the query, the new keys and the new values carry the same prompt rows: attention
// refuses a key of one token per sequence beside a query of P.

df.layer @attn(%q: !df.tensor<[B, P, 64], bf16>, %k: !df.tensor<[B, 32], bf16>, %v: !df.tensor<[B, P, 32], bf16>, %kc: !df.tensor<[B, S, 2, 16], bf16, hbm>, %vc: !df.tensor<[B, S, 2, 16], bf16, hbm>) -> !df.tensor<[B, P, 64], bf16> {
  %a = df.attention %q, %k, %v, %kc, %vc {heads = 4 : i64, kv_heads = 2 : i64} : (!df.tensor<[B, P, 64], bf16>, !df.tensor<[B, 32], bf16>, !df.tensor<[B, P, 32], bf16>, !df.tensor<[B, S, 2, 16], bf16, hbm>, !df.tensor<[B, S, 2, 16], bf16, hbm>) -> !df.tensor<[B, P, 64], bf16>
  df.return %a : !df.tensor<[B, P, 64], bf16>
}

// CHECK: df.attention: attention: the new key must be [B, P, 32] (2 heads of 16), got [B, 32]

// -----

// A prefill graph's tokens per pass are positive, and a dimension is B, S, P or a number.

df.graph @g attributes {activations = "sram", batch = 1 : i64, context = 8 : i64, tokens = 1 : i64, sockets = 1 : i64, tp = 1 : i64, target = "sn40l", prompt = 0 : i64} {
  %x = df.input "x" : !df.tensor<[B, P, 64], bf16>
}

// CHECK: df.graph: prompt must be positive

// -----

df.graph @g attributes {activations = "sram", batch = 1 : i64, context = 8 : i64, tokens = 1 : i64, sockets = 1 : i64, tp = 1 : i64, target = "sn40l"} {
  %x = df.input "x" : !df.tensor<[B, Q, 64], bf16>
}

// CHECK: unknown symbolic dimension 'Q'; only B, S and P are open

// -----

// A decode step (a graph without `prompt`) processes one token per sequence: no tensor of it
// carries P.

df.graph @g attributes {activations = "sram", batch = 1 : i64, context = 8 : i64, tokens = 1 : i64, sockets = 1 : i64, tp = 1 : i64, target = "sn40l"} {
  %x = df.input "x" : !df.tensor<[B, P], i32>
}

// CHECK: df.graph @g: df.input gives !df.tensor<[B, P], i32>, a prompt's tensor, and the graph has no `prompt` (a decode step processes one token per sequence)
