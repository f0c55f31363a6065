// RUN: xdsl-opt %s -p 'df-to-rdu{hardware="%S/Inputs/tiny_chip.toml"}' | filecheck %s
// RUN: xdsl-opt %s -p 'df-to-rdu{hardware="%S/Inputs/tiny_chip.toml"}' --print-op-generic | xdsl-opt | filecheck %s

// The sampler of a model whose LM head is split over 4 sockets (what shard-tensor-parallel and
// fuse make of `sample(lm_head(...))`): each socket's best candidate of its 25 logits, gathered
// from the 4 sockets, then the sample among the 4. The top-k stage passes once over the share
// (25*B FLOPs), the gather sends each socket's candidate, a logit and an index, 2 int32 words
// (8*B bytes), to the others; the sample passes once over the 4 candidates (8 words, 8*B FLOPs).
// Units at batch 1 (90 usable, one each first, 88 shared): PCUs by FLOPs 25 : 8 -> 66.67, 21.33
// -> 66, 21, and the larger remainder takes the spare one -> 67, 21 -> 68, 22; PMUs by bytes
// 0 : 0, so evenly -> 45, 45.
builtin.module {
  df.kernel @sample(%logits: !df.tensor<[B, 25], bf16, hbm>) -> !df.tensor<[B], i32> {
    %c = df.top_k %logits {k = 1 : i64} : (!df.tensor<[B, 25], bf16, hbm>) -> !df.tensor<[B, 2], i32>
    %all = df.all_gather %c {sockets = 4 : i64} : (!df.tensor<[B, 2], i32>) -> !df.tensor<[B, 8], i32>
    %next = df.sample %all : (!df.tensor<[B, 8], i32>) -> !df.tensor<[B], i32>
    df.return %next : !df.tensor<[B], i32>
  }
  df.graph @m attributes {activations = "sram", batch = 1 : i64, context = 100 : i64, tokens = 4 : i64, sockets = 4 : i64, tp = 4 : i64, target = "sn40l"} {
    %logits = df.input "logits" : !df.tensor<[B, 25], bf16, hbm>
    %next = df.launch @sample(%logits) : (!df.tensor<[B, 25], bf16, hbm>) -> !df.tensor<[B], i32>
    df.output %next : !df.tensor<[B], i32>
  }
}

// CHECK-NOT:  df.
// CHECK:      rdu.kernel @sample(%{{.*}}: !rdu.buffer<[B, 25], bf16, hbm>) -> !rdu.buffer<[B], i32, sram>
// CHECK-NEXT:   rdu.stage "top_k" {operators = ["top_k"], pcus = 68 : i64, pmus = 45 : i64, flops = #cost.work<25*B>, sram_bytes = 45000 : i64}
// CHECK-NEXT:   rdu.all_gather {bytes = #cost.work<8*B>, sockets = 4 : i64}
// CHECK-NEXT:   rdu.stage "sample" {operators = ["sample"], pcus = 22 : i64, pmus = 45 : i64, flops = #cost.work<8*B>, sram_bytes = 45000 : i64}
// CHECK-NEXT:   rdu.return
