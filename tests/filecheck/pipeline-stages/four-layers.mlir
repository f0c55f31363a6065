// RUN: xdsl-opt %s -p 'pipeline-stages{stages=2 micro_batches=2}' | filecheck %s
// RUN: xdsl-opt %s -p 'pipeline-stages{stages=2},kernel-looping' | filecheck %s --check-prefix=LOOP
// RUN: xdsl-opt %s -p 'pipeline-stages{stages=2},kernel-looping{remarks=true}' 2>&1 >/dev/null | filecheck %s --check-prefix=REMARK
// RUN: xdsl-opt %s -p 'pipeline-stages{stages=4}' | filecheck %s --check-prefix=FOUR
// RUN: xdsl-opt %s -p 'pipeline-stages{stages=2},kernel-looping,place-memory,df-to-rdu' | filecheck %s --check-prefix=RDU
// RUN: xdsl-opt %s -p 'pipeline-stages{stages=6}' --verify-diagnostics | filecheck %s --check-prefix=TOOMANY

// Four layers of equal weights: two stages cut after launch 1 (two layers each), a send at the
// cut carries the activation; each stage's layers then loop on their own, in one kernel @layer_x2
// called twice. Four stages cut after every layer; six stages are more than the four places an
// activation passes from one call to the next.
builtin.module {
  df.kernel @layer(%x: !df.tensor<[B, 64], bf16>, %w: !df.tensor<[64, 64], bf16, hbm>) -> !df.tensor<[B, 64], bf16> {
    %h = df.linear %x, %w : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 64], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    %y = df.add %x, %h : (!df.tensor<[B, 64], bf16>, !df.tensor<[B, 64], bf16>) -> !df.tensor<[B, 64], bf16>
    df.return %y : !df.tensor<[B, 64], bf16>
  }
  df.graph @g attributes {activations = "sram", batch = 1 : i64, context = 128 : i64, tokens = 4 : i64, sockets = 1 : i64, tp = 1 : i64, target = "sn40l"} {
    %x0 = df.input "hidden" : !df.tensor<[B, 64], bf16>
    %w0 = df.weight "layers.0.w" : !df.tensor<[64, 64], bf16, hbm>
    %x1 = df.launch @layer(%x0, %w0) : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 64], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    %w1 = df.weight "layers.1.w" : !df.tensor<[64, 64], bf16, hbm>
    %x2 = df.launch @layer(%x1, %w1) : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 64], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    %w2 = df.weight "layers.2.w" : !df.tensor<[64, 64], bf16, hbm>
    %x3 = df.launch @layer(%x2, %w2) : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 64], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    %w3 = df.weight "layers.3.w" : !df.tensor<[64, 64], bf16, hbm>
    %x4 = df.launch @layer(%x3, %w3) : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 64], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    df.output %x4 : !df.tensor<[B, 64], bf16>
  }
}

// CHECK:      %x2 = df.launch @layer(%x1, %w1)
// CHECK-NEXT: %x2_1 = df.pipeline_send %x2 {stage = 1 : i64, stages = 2 : i64, micro_batches = 2 : i64} : (!df.tensor<[B, 64], bf16>) -> !df.tensor<[B, 64], bf16>
// CHECK:      %x3 = df.launch @layer(%x2_1, %w2)
// CHECK-NOT:  df.pipeline_send

// LOOP:      df.kernel @layer_x2(
// LOOP-NOT:  df.kernel
// LOOP:      df.launch @layer_x2(%x0,
// LOOP-NEXT: df.pipeline_send
// LOOP:      df.launch @layer_x2(%x2_1,

// REMARK:      remark: kernel-looping: looped launches 0..1 of @layer into one launch of @layer_x2
// REMARK-NEXT: remark: kernel-looping: launches 1 and 2 of @layer not looped together: a pipeline stage boundary (df.pipeline_send) follows launch 1: each stage loops its own
// REMARK-NEXT: remark: kernel-looping: looped launches 2..3 of @layer into one launch of @layer_x2
// REMARK-NOT:  remark

// FOUR-COUNT-3: df.pipeline_send
// FOUR-NOT:     df.pipeline_send
// FOUR:         {stage = 3 : i64, stages = 4 : i64, micro_batches = 1 : i64}

// RDU:      rdu.call @layer_x2(
// RDU-NEXT: rdu.pipeline_send %{{.*}} {stage = 1 : i64, stages = 2 : i64, micro_batches = 1 : i64} : (!rdu.buffer<[B, 64], bf16, sram>) -> !rdu.buffer<[B, 64], bf16, sram>
// RDU-NEXT: rdu.buffer
// RDU:      rdu.call @layer_x2(

// TOOMANY: pipeline-stages: graph @g cannot run on 6 pipeline stages: its 4 kernel calls have 3 places where one activation passes from a call to the next; use at most 4 stages
