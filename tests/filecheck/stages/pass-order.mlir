// RUN: not dfdsl opt %s -p kernel-looping 2>&1 | filecheck %s --check-prefix=LOOP
// RUN: not dfdsl opt %s -p fuse,fuse 2>&1 | filecheck %s --check-prefix=TWICE
// RUN: not dfdsl opt %s -p fuse,shard-tensor-parallel 2>&1 | filecheck %s --check-prefix=SHARD
// RUN: not dfdsl opt %s -p fuse,df-to-rdu,place-memory 2>&1 | filecheck %s --check-prefix=PLACE
// RUN: dfdsl opt %s -p shard-tensor-parallel,fuse,kernel-looping,place-memory,df-to-rdu | filecheck %s --check-prefix=OK

// Each pass takes the stages it is written for and names what is wrong with any other input:
// passes out of order stop with E024, never with an internal error.
builtin.module {
  df.layer @layer(%x: !df.tensor<[B, 64], bf16>, %w: !df.tensor<[64, 64], bf16, hbm>) -> !df.tensor<[B, 64], bf16> {
    %h = df.linear %x, %w : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 64], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    df.return %h : !df.tensor<[B, 64], bf16>
  }
  df.graph @g attributes {activations = "sram", batch = 1 : i64, context = 8 : i64, tokens = 1 : i64, sockets = 1 : i64, tp = 1 : i64, target = "sn40l"} {
    %x = df.input "x" : !df.tensor<[B, 64], bf16>
    %w0 = df.weight "layers.0.w" : !df.tensor<[64, 64], bf16, hbm>
    %y0 = df.call @layer(%x, %w0) : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 64], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    %w1 = df.weight "layers.1.w" : !df.tensor<[64, 64], bf16, hbm>
    %y1 = df.call @layer(%y0, %w1) : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 64], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    df.output %y1 : !df.tensor<[B, 64], bf16>
  }
}

// LOOP:  error: kernel-looping expects fused or looped IR, but df.layer @layer remains: run fuse first (gpu-partition for a GPU) [E024]
// TWICE: error: fuse expects df or sharded IR, but df.kernel @layer is defined, so the module is already fused: use the module from before fuse [E024]
// SHARD: error: shard-tensor-parallel expects df IR, but df.kernel @layer is defined, so the module is already fused: use the module from before fuse [E024]
// PLACE: error: place-memory expects df, sharded, fused or looped IR, but the module holds rdu.kernel @layer, so it is already lowered: use the module from before df-to-rdu [E024]
// OK:    rdu.call @layer_x2
