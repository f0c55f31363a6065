// RUN: xdsl-opt %s -p 'df-to-rdu{hardware="%S/Inputs/tiny_chip.toml"}' | filecheck %s

// A looped kernel (two attention layers, as kernel-looping leaves them) becomes an rdu.kernel
// holding one rdu.loop. Arguments 1..6 are stacked along the layer dimension; each stride is one
// layer's slice in bytes (a KV cache slice [B, S, 1, 16] bf16 is 32*B*S); the carried hidden state
// [B, 64] bf16 is 128*B bytes. Work of one iteration (4 heads of 16, 1 KV head, bf16):
//   wq:   flops 4*64*B (rmsnorm) + 2*64*64*B = 8448*B; reads the scale 128 + wq 8192 = 8320
//   wk:   flops 2*64*16*B = 2048*B; reads 2048
//   wv:   the same
//   attention (+ the residual add, which has no heavy operator after it):
//         flops 2*4*(16+16)*B*(S+1) + 64*B = 320*B + 256*B*S;
//         reads both caches 2*32*B*S = 64*B*S; appends this step's key and value, 2*32*B = 64*B
// Units at batch 2, context 100 (90 usable PCUs and PMUs; one each, the other 86 by share):
//   PCUs by FLOPs 16896 : 4096 : 4096 : 51840 -> 18.89, 4.58, 4.58, 57.95 -> 19, 5, 4, 58 -> 20, 6, 5, 59
//   PMUs by bytes  8320 : 2048 : 2048 : 12928 -> 28.23, 6.95, 6.95, 43.87 -> 28, 7, 7, 44 -> 29, 8, 8, 45
builtin.module {
  df.kernel @layer_x2(%x: !df.tensor<[B, 64], bf16>, %norm: !df.tensor<[2, 64], bf16, hbm>, %wq: !df.tensor<[2, 64, 64], bf16, hbm>, %wk: !df.tensor<[2, 64, 16], bf16, hbm>, %wv: !df.tensor<[2, 64, 16], bf16, hbm>, %kc: !df.tensor<[2, B, S, 1, 16], bf16, hbm>, %vc: !df.tensor<[2, B, S, 1, 16], bf16, hbm>) -> !df.tensor<[B, 64], bf16> {
    %r = df.loop 2 carried(%x : !df.tensor<[B, 64], bf16>) stacked(%norm, %wq, %wk, %wv, %kc, %vc : !df.tensor<[2, 64], bf16, hbm>, !df.tensor<[2, 64, 64], bf16, hbm>, !df.tensor<[2, 64, 16], bf16, hbm>, !df.tensor<[2, 64, 16], bf16, hbm>, !df.tensor<[2, B, S, 1, 16], bf16, hbm>, !df.tensor<[2, B, S, 1, 16], bf16, hbm>) -> !df.tensor<[B, 64], bf16> {
    ^bb0(%xi: !df.tensor<[B, 64], bf16>, %normi: !df.tensor<[64], bf16, hbm>, %wqi: !df.tensor<[64, 64], bf16, hbm>, %wki: !df.tensor<[64, 16], bf16, hbm>, %wvi: !df.tensor<[64, 16], bf16, hbm>, %kci: !df.tensor<[B, S, 1, 16], bf16, hbm>, %vci: !df.tensor<[B, S, 1, 16], bf16, hbm>):
      %h = df.rmsnorm %xi, %normi : (!df.tensor<[B, 64], bf16>, !df.tensor<[64], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
      %q = df.linear %h, %wqi : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 64], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
      %k = df.linear %h, %wki : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 16], bf16, hbm>) -> !df.tensor<[B, 16], bf16>
      %v = df.linear %h, %wvi : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 16], bf16, hbm>) -> !df.tensor<[B, 16], bf16>
      %a = df.attention %q, %k, %v, %kci, %vci {heads = 4 : i64, kv_heads = 1 : i64} : (!df.tensor<[B, 64], bf16>, !df.tensor<[B, 16], bf16>, !df.tensor<[B, 16], bf16>, !df.tensor<[B, S, 1, 16], bf16, hbm>, !df.tensor<[B, S, 1, 16], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
      %y = df.add %xi, %a : (!df.tensor<[B, 64], bf16>, !df.tensor<[B, 64], bf16>) -> !df.tensor<[B, 64], bf16>
      df.yield %y : !df.tensor<[B, 64], bf16>
    }
    df.return %r : !df.tensor<[B, 64], bf16>
  }
  df.graph @m attributes {activations = "sram", batch = 2 : i64, context = 100 : i64, tokens = 4 : i64, sockets = 1 : i64, tp = 1 : i64, target = "sn40l"} {
    %x = df.input "x" : !df.tensor<[B, 64], bf16>
    %norm = df.weight "layers.{0..1}.norm" : !df.tensor<[2, 64], bf16, hbm>
    %wq = df.weight "layers.{0..1}.wq" : !df.tensor<[2, 64, 64], bf16, hbm>
    %wk = df.weight "layers.{0..1}.wk" : !df.tensor<[2, 64, 16], bf16, hbm>
    %wv = df.weight "layers.{0..1}.wv" : !df.tensor<[2, 64, 16], bf16, hbm>
    %kc = df.kv_cache "layers.{0..1}.k_cache" : !df.tensor<[2, B, S, 1, 16], bf16, hbm>
    %vc = df.kv_cache "layers.{0..1}.v_cache" : !df.tensor<[2, B, S, 1, 16], bf16, hbm>
    %y = df.launch @layer_x2(%x, %norm, %wq, %wk, %wv, %kc, %vc) : (!df.tensor<[B, 64], bf16>, !df.tensor<[2, 64], bf16, hbm>, !df.tensor<[2, 64, 64], bf16, hbm>, !df.tensor<[2, 64, 16], bf16, hbm>, !df.tensor<[2, 64, 16], bf16, hbm>, !df.tensor<[2, B, S, 1, 16], bf16, hbm>, !df.tensor<[2, B, S, 1, 16], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    df.output %y : !df.tensor<[B, 64], bf16>
  }
}

// CHECK-NOT:  df.
// CHECK:      rdu.kernel @layer_x2({{.*}}%{{.*}}: !rdu.buffer<[2, B, S, 1, 16], bf16, hbm>) -> !rdu.buffer<[B, 64], bf16, sram> attributes {pcus = 90 : i64, pmus = 90 : i64} {
// CHECK-NEXT:   rdu.loop 2 stacked [1, 2, 3, 4, 5, 6] strides [128, 8192, 2048, 2048, 32*B*S, 32*B*S] carried_bytes #cost.work<128*B> {
// CHECK-NEXT:     rdu.stage "linear" {operators = ["rmsnorm", "linear"], pcus = 20 : i64, pmus = 29 : i64, flops = #cost.work<8448*B>, hbm_read = #cost.work<8320>, sram_bytes = 29000 : i64}
// CHECK-NEXT:     rdu.stage "linear" {operators = ["linear"], pcus = 6 : i64, pmus = 8 : i64, flops = #cost.work<2048*B>, hbm_read = #cost.work<2048>, sram_bytes = 8000 : i64}
// CHECK-NEXT:     rdu.stage "linear" {operators = ["linear"], pcus = 5 : i64, pmus = 8 : i64, flops = #cost.work<2048*B>, hbm_read = #cost.work<2048>, sram_bytes = 8000 : i64}
// CHECK-NEXT:     rdu.stage "attention" {operators = ["attention", "add"], pcus = 59 : i64, pmus = 45 : i64, flops = #cost.work<320*B + 256*B*S>, hbm_read = #cost.work<64*B*S>, hbm_write = #cost.work<64*B>, sram_bytes = 45000 : i64}
// CHECK-NEXT:   }
// CHECK-NEXT:   rdu.return
// CHECK-NEXT: }
// CHECK:      rdu.program @m
// CHECK:        %kc = rdu.buffer "layers.{0..1}.k_cache" kind kv_cache : !rdu.buffer<[2, B, S, 1, 16], bf16, hbm>
// CHECK:        %y = rdu.call @layer_x2(%x, %norm, %wq, %wk, %wv, %kc, %vc)
// CHECK-NOT:  df.
