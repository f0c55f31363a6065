// RUN: xdsl-opt %s -p 'df-to-rdu{hardware="%S/Inputs/tiny_chip.toml"}' | filecheck %s
// RUN: xdsl-opt %s -p 'df-to-rdu{hardware="%S/Inputs/tiny_chip.toml"}' --print-op-generic | xdsl-opt | filecheck %s

// A fused SwiGLU MLP on 2 sockets becomes one rdu.kernel of three stages and an all-reduce.
// Light operators join the next heavy stage (rmsnorm -> w_gate; silu, mul -> w_down), or the
// previous one when none follows (the residual add -> w_down). Work per stage, bf16 (2 bytes):
//   w_gate: flops 4*64*B (rmsnorm) + 2*64*128*B = 16640*B; reads the scale 64*2 + w_gate 64*128*2 = 16512
//   w_up:   flops 2*64*128*B = 16384*B; reads 64*128*2 = 16384
//   w_down: flops 4*128*B (silu) + 128*B (mul) + 2*128*64*B + 64*B (add) = 17088*B; reads 16384
//   all_reduce: the [B, 64] bf16 partial sum, 128*B bytes, over tp = 2 sockets.
// Units at batch 2 (the chip has 90 usable PCUs and PMUs; one each, the other 87 by share):
//   PCUs by FLOPs 33280 : 32768 : 34176 -> 87 * share = 28.89, 28.44, 29.67 -> 29, 28, 30 -> 30, 29, 31
//   PMUs by bytes 16512 : 16384 : 16384 -> 29.15, 28.92, 28.92 -> 29, 29, 29 -> 30, 30, 30
//   sram_bytes = PMUs * 1000 bytes per PMU.
builtin.module {
  df.kernel @mlp(%x: !df.tensor<[B, 64], bf16>, %norm: !df.tensor<[64], bf16, hbm>, %wg: !df.tensor<[64, 128], bf16, hbm>, %wu: !df.tensor<[64, 128], bf16, hbm>, %wd: !df.tensor<[128, 64], bf16, hbm>) -> !df.tensor<[B, 64], bf16> {
    %h = df.rmsnorm %x, %norm : (!df.tensor<[B, 64], bf16>, !df.tensor<[64], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    %g = df.linear %h, %wg : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 128], bf16, hbm>) -> !df.tensor<[B, 128], bf16>
    %u = df.linear %h, %wu : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 128], bf16, hbm>) -> !df.tensor<[B, 128], bf16>
    %s = df.silu %g : (!df.tensor<[B, 128], bf16>) -> !df.tensor<[B, 128], bf16>
    %m = df.mul %s, %u : (!df.tensor<[B, 128], bf16>, !df.tensor<[B, 128], bf16>) -> !df.tensor<[B, 128], bf16>
    %d = df.linear %m, %wd : (!df.tensor<[B, 128], bf16>, !df.tensor<[128, 64], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    %r = df.all_reduce %d : (!df.tensor<[B, 64], bf16>) -> !df.tensor<[B, 64], bf16>
    %y = df.add %x, %r : (!df.tensor<[B, 64], bf16>, !df.tensor<[B, 64], bf16>) -> !df.tensor<[B, 64], bf16>
    df.return %y : !df.tensor<[B, 64], bf16>
  }
  df.graph @m attributes {activations = "sram", batch = 2 : i64, context = 100 : i64, tokens = 4 : i64, sockets = 2 : i64, tp = 2 : i64, target = "sn40l"} {
    %x = df.input "x" : !df.tensor<[B, 64], bf16>
    %norm = df.weight "norm" : !df.tensor<[64], bf16, hbm>
    %wg = df.weight "w_gate" : !df.tensor<[64, 128], bf16, hbm>
    %wu = df.weight "w_up" : !df.tensor<[64, 128], bf16, hbm>
    %wd = df.weight "w_down" : !df.tensor<[128, 64], bf16, hbm>
    %y = df.launch @mlp(%x, %norm, %wg, %wu, %wd) : (!df.tensor<[B, 64], bf16>, !df.tensor<[64], bf16, hbm>, !df.tensor<[64, 128], bf16, hbm>, !df.tensor<[64, 128], bf16, hbm>, !df.tensor<[128, 64], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    df.output %y : !df.tensor<[B, 64], bf16>
  }
}

// CHECK-NOT:  df.
// CHECK:      rdu.kernel @mlp(%{{.*}}: !rdu.buffer<[B, 64], bf16, sram>, %{{.*}}: !rdu.buffer<[64], bf16, hbm>, %{{.*}}: !rdu.buffer<[64, 128], bf16, hbm>, %{{.*}}: !rdu.buffer<[64, 128], bf16, hbm>, %{{.*}}: !rdu.buffer<[128, 64], bf16, hbm>) -> !rdu.buffer<[B, 64], bf16, sram> attributes {pcus = 90 : i64, pmus = 90 : i64} {
// CHECK-NEXT:   rdu.stage "linear" {operators = ["rmsnorm", "linear"], pcus = 30 : i64, pmus = 30 : i64, flops = #cost.work<16640*B>, hbm_read = #cost.work<16512>, sram_bytes = 30000 : i64}
// CHECK-NEXT:   rdu.stage "linear" {operators = ["linear"], pcus = 29 : i64, pmus = 30 : i64, flops = #cost.work<16384*B>, hbm_read = #cost.work<16384>, sram_bytes = 30000 : i64}
// CHECK-NEXT:   rdu.stage "linear" {operators = ["silu", "mul", "linear", "add"], pcus = 31 : i64, pmus = 30 : i64, flops = #cost.work<17088*B>, hbm_read = #cost.work<16384>, sram_bytes = 30000 : i64}
// CHECK-NEXT:   rdu.all_reduce {bytes = #cost.work<128*B>, sockets = 2 : i64}
// CHECK-NEXT:   rdu.return
// CHECK-NEXT: }
// CHECK:      rdu.program @m attributes {target = "sn40l", batch = 2 : i64, context = 100 : i64, tokens = 4 : i64, sockets = 2 : i64, pcus_per_socket = 100 : i64, pmus_per_socket = 100 : i64, sram_bytes_per_socket = 100000 : i64} {
// CHECK-NEXT:   %x = rdu.buffer "x" kind input : !rdu.buffer<[B, 64], bf16, sram>
// CHECK-NEXT:   %norm = rdu.buffer "norm" kind weight : !rdu.buffer<[64], bf16, hbm>
// CHECK:        %y = rdu.call @mlp(%x, %norm, %wg, %wu, %wd) : (!rdu.buffer<[B, 64], bf16, sram>, {{.*}}) -> !rdu.buffer<[B, 64], bf16, sram>
// CHECK-NEXT:   rdu.output %y : !rdu.buffer<[B, 64], bf16, sram>
// CHECK-NEXT: }
// CHECK-NOT:  df.
