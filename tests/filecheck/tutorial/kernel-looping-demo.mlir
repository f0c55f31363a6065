// RUN: dfdsl opt %s -p kernel-looping | filecheck %s
// RUN: dfdsl opt %s -p 'kernel-looping{min-calls=4 remarks=true}' 2>&1 >/dev/null | filecheck %s --check-prefix=SHORT

// The tutorial's test (docs/tutorial.md, step 7): the three decoder launches of micro_llama
// (from `dfdsl lower docs/tutorial/mymodels/micro_llama.dfl --emit fused`, trimmed to the
// decoder layers) become one launch of a looped kernel over stacked weights; with
// min-calls=4 they are too few, and the pass says so.
builtin.module {
  df.kernel @parallel_decoder(%x: !df.tensor<[B, 64], bf16>, %norm: !df.tensor<[64], bf16, hbm>, %wq: !df.tensor<[64, 64], bf16, hbm>, %wk: !df.tensor<[64, 32], bf16, hbm>, %wv: !df.tensor<[64, 32], bf16, hbm>, %wo: !df.tensor<[64, 64], bf16, hbm>, %w_gate: !df.tensor<[64, 128], bf16, hbm>, %w_up: !df.tensor<[64, 128], bf16, hbm>, %w_down: !df.tensor<[128, 64], bf16, hbm>, %k_cache: !df.tensor<[B, S, 2, 16], bf16, hbm>, %v_cache: !df.tensor<[B, S, 2, 16], bf16, hbm>) -> !df.tensor<[B, 64], bf16> {
    %h = df.rmsnorm %x, %norm : (!df.tensor<[B, 64], bf16>, !df.tensor<[64], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    %q = df.linear %h, %wq : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 64], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    %k = df.linear %h, %wk : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 32], bf16, hbm>) -> !df.tensor<[B, 32], bf16>
    %v = df.linear %h, %wv : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 32], bf16, hbm>) -> !df.tensor<[B, 32], bf16>
    %q_rot = df.rope %q {head_dim = 16 : i64} : (!df.tensor<[B, 64], bf16>) -> !df.tensor<[B, 64], bf16>
    %k_rot = df.rope %k {head_dim = 16 : i64} : (!df.tensor<[B, 32], bf16>) -> !df.tensor<[B, 32], bf16>
    %a = df.attention %q_rot, %k_rot, %v, %k_cache, %v_cache {heads = 4 : i64, kv_heads = 2 : i64} : (!df.tensor<[B, 64], bf16>, !df.tensor<[B, 32], bf16>, !df.tensor<[B, 32], bf16>, !df.tensor<[B, S, 2, 16], bf16, hbm>, !df.tensor<[B, S, 2, 16], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    %o = df.linear %a, %wo : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 64], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    %g = df.linear %h, %w_gate : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 128], bf16, hbm>) -> !df.tensor<[B, 128], bf16>
    %u = df.linear %h, %w_up : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 128], bf16, hbm>) -> !df.tensor<[B, 128], bf16>
    %act = df.silu %g : (!df.tensor<[B, 128], bf16>) -> !df.tensor<[B, 128], bf16>
    %m = df.mul %act, %u : (!df.tensor<[B, 128], bf16>, !df.tensor<[B, 128], bf16>) -> !df.tensor<[B, 128], bf16>
    %d = df.linear %m, %w_down : (!df.tensor<[B, 128], bf16>, !df.tensor<[128, 64], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    %r = df.add %x, %o : (!df.tensor<[B, 64], bf16>, !df.tensor<[B, 64], bf16>) -> !df.tensor<[B, 64], bf16>
    %y = df.add %r, %d : (!df.tensor<[B, 64], bf16>, !df.tensor<[B, 64], bf16>) -> !df.tensor<[B, 64], bf16>
    df.return %y : !df.tensor<[B, 64], bf16>
  }
  df.graph @micro_llama attributes {batch = 1 : i64, context = 4096 : i64, tokens = 128 : i64, sockets = 1 : i64, tp = 1 : i64, target = "sn40l", activations = "sram"} {
    %x = df.input "x" : !df.tensor<[B, 64], bf16>
    %norm = df.weight "layers.0.norm" : !df.tensor<[64], bf16, hbm>
    %wq = df.weight "layers.0.wq" : !df.tensor<[64, 64], bf16, hbm>
    %wk = df.weight "layers.0.wk" : !df.tensor<[64, 32], bf16, hbm>
    %wv = df.weight "layers.0.wv" : !df.tensor<[64, 32], bf16, hbm>
    %wo = df.weight "layers.0.wo" : !df.tensor<[64, 64], bf16, hbm>
    %w_gate = df.weight "layers.0.w_gate" : !df.tensor<[64, 128], bf16, hbm>
    %w_up = df.weight "layers.0.w_up" : !df.tensor<[64, 128], bf16, hbm>
    %w_down = df.weight "layers.0.w_down" : !df.tensor<[128, 64], bf16, hbm>
    %k_cache = df.kv_cache "layers.0.k_cache" : !df.tensor<[B, S, 2, 16], bf16, hbm>
    %v_cache = df.kv_cache "layers.0.v_cache" : !df.tensor<[B, S, 2, 16], bf16, hbm>
    %x_1 = df.launch @parallel_decoder(%x, %norm, %wq, %wk, %wv, %wo, %w_gate, %w_up, %w_down, %k_cache, %v_cache) : (!df.tensor<[B, 64], bf16>, !df.tensor<[64], bf16, hbm>, !df.tensor<[64, 64], bf16, hbm>, !df.tensor<[64, 32], bf16, hbm>, !df.tensor<[64, 32], bf16, hbm>, !df.tensor<[64, 64], bf16, hbm>, !df.tensor<[64, 128], bf16, hbm>, !df.tensor<[64, 128], bf16, hbm>, !df.tensor<[128, 64], bf16, hbm>, !df.tensor<[B, S, 2, 16], bf16, hbm>, !df.tensor<[B, S, 2, 16], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    %norm_1 = df.weight "layers.1.norm" : !df.tensor<[64], bf16, hbm>
    %wq_1 = df.weight "layers.1.wq" : !df.tensor<[64, 64], bf16, hbm>
    %wk_1 = df.weight "layers.1.wk" : !df.tensor<[64, 32], bf16, hbm>
    %wv_1 = df.weight "layers.1.wv" : !df.tensor<[64, 32], bf16, hbm>
    %wo_1 = df.weight "layers.1.wo" : !df.tensor<[64, 64], bf16, hbm>
    %w_gate_1 = df.weight "layers.1.w_gate" : !df.tensor<[64, 128], bf16, hbm>
    %w_up_1 = df.weight "layers.1.w_up" : !df.tensor<[64, 128], bf16, hbm>
    %w_down_1 = df.weight "layers.1.w_down" : !df.tensor<[128, 64], bf16, hbm>
    %k_cache_1 = df.kv_cache "layers.1.k_cache" : !df.tensor<[B, S, 2, 16], bf16, hbm>
    %v_cache_1 = df.kv_cache "layers.1.v_cache" : !df.tensor<[B, S, 2, 16], bf16, hbm>
    %x_2 = df.launch @parallel_decoder(%x_1, %norm_1, %wq_1, %wk_1, %wv_1, %wo_1, %w_gate_1, %w_up_1, %w_down_1, %k_cache_1, %v_cache_1) : (!df.tensor<[B, 64], bf16>, !df.tensor<[64], bf16, hbm>, !df.tensor<[64, 64], bf16, hbm>, !df.tensor<[64, 32], bf16, hbm>, !df.tensor<[64, 32], bf16, hbm>, !df.tensor<[64, 64], bf16, hbm>, !df.tensor<[64, 128], bf16, hbm>, !df.tensor<[64, 128], bf16, hbm>, !df.tensor<[128, 64], bf16, hbm>, !df.tensor<[B, S, 2, 16], bf16, hbm>, !df.tensor<[B, S, 2, 16], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    %norm_2 = df.weight "layers.2.norm" : !df.tensor<[64], bf16, hbm>
    %wq_2 = df.weight "layers.2.wq" : !df.tensor<[64, 64], bf16, hbm>
    %wk_2 = df.weight "layers.2.wk" : !df.tensor<[64, 32], bf16, hbm>
    %wv_2 = df.weight "layers.2.wv" : !df.tensor<[64, 32], bf16, hbm>
    %wo_2 = df.weight "layers.2.wo" : !df.tensor<[64, 64], bf16, hbm>
    %w_gate_2 = df.weight "layers.2.w_gate" : !df.tensor<[64, 128], bf16, hbm>
    %w_up_2 = df.weight "layers.2.w_up" : !df.tensor<[64, 128], bf16, hbm>
    %w_down_2 = df.weight "layers.2.w_down" : !df.tensor<[128, 64], bf16, hbm>
    %k_cache_2 = df.kv_cache "layers.2.k_cache" : !df.tensor<[B, S, 2, 16], bf16, hbm>
    %v_cache_2 = df.kv_cache "layers.2.v_cache" : !df.tensor<[B, S, 2, 16], bf16, hbm>
    %x_3 = df.launch @parallel_decoder(%x_2, %norm_2, %wq_2, %wk_2, %wv_2, %wo_2, %w_gate_2, %w_up_2, %w_down_2, %k_cache_2, %v_cache_2) : (!df.tensor<[B, 64], bf16>, !df.tensor<[64], bf16, hbm>, !df.tensor<[64, 64], bf16, hbm>, !df.tensor<[64, 32], bf16, hbm>, !df.tensor<[64, 32], bf16, hbm>, !df.tensor<[64, 64], bf16, hbm>, !df.tensor<[64, 128], bf16, hbm>, !df.tensor<[64, 128], bf16, hbm>, !df.tensor<[128, 64], bf16, hbm>, !df.tensor<[B, S, 2, 16], bf16, hbm>, !df.tensor<[B, S, 2, 16], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    df.output %x_3 : !df.tensor<[B, 64], bf16>
  }
}

// CHECK:      df.kernel @parallel_decoder_x3(%x: !df.tensor<[B, 64], bf16>, %norm: !df.tensor<[3, 64], bf16, hbm>, %wq: !df.tensor<[3, 64, 64], bf16, hbm>
// CHECK-NEXT:   %{{.*}} = df.loop 3 carried(%x : !df.tensor<[B, 64], bf16>) stacked(%norm, %wq, %wk, %wv, %wo, %w_gate, %w_up, %w_down, %k_cache, %v_cache :
// CHECK:          df.yield %y : !df.tensor<[B, 64], bf16>
// CHECK-NOT:  df.kernel @parallel_decoder(

// CHECK:      df.graph @micro_llama
// CHECK-NEXT:   %x = df.input "x" : !df.tensor<[B, 64], bf16>
// CHECK-NEXT:   %[[NORM:.*]] = df.weight "layers.{0..2}.norm" : !df.tensor<[3, 64], bf16, hbm>
// CHECK:        %[[KC:.*]] = df.kv_cache "layers.{0..2}.k_cache" : !df.tensor<[3, B, S, 2, 16], bf16, hbm>
// CHECK:        %[[Y:.*]] = df.launch @parallel_decoder_x3(%x, %[[NORM]],
// CHECK-NOT:    df.launch
// CHECK:        df.output %[[Y]]

// SHORT: remark: kernel-looping: launches 0..2 of @parallel_decoder not looped: a run of 3 launches is shorter than min-calls=4
