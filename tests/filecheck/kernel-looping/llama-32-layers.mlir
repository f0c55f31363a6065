// RUN: xdsl-opt %s -p kernel-looping | filecheck %s
// RUN: xdsl-opt %s -p kernel-looping --print-op-generic | xdsl-opt | filecheck %s

// Thirty-two launches of one decoder kernel, each with its own weights and KV caches and the
// activation chained from one launch to the next, become one launch of @decoder_x32: a df.loop
// of 32 iterations over weights and caches stacked along a leading layer dimension.
// (Generated once by a short script: embed, 32 x decoder, head.)
builtin.module {
  df.kernel @embed(%tokens: !df.tensor<[B], i32>, %table: !df.tensor<[100, 64], bf16, hbm>) -> !df.tensor<[B, 64], bf16> {
    %x = df.embedding %tokens, %table : (!df.tensor<[B], i32>, !df.tensor<[100, 64], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    df.return %x : !df.tensor<[B, 64], bf16>
  }
  df.kernel @decoder(%x: !df.tensor<[B, 64], bf16>, %wq: !df.tensor<[64, 64], bf16, hbm>, %wk: !df.tensor<[64, 32], bf16, hbm>, %wv: !df.tensor<[64, 32], bf16, hbm>, %k_cache: !df.tensor<[B, S, 2, 16], bf16, hbm>, %v_cache: !df.tensor<[B, S, 2, 16], bf16, hbm>) -> !df.tensor<[B, 64], bf16> {
    %q = df.linear %x, %wq : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 64], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    %k = df.linear %x, %wk : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 32], bf16, hbm>) -> !df.tensor<[B, 32], bf16>
    %v = df.linear %x, %wv : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 32], bf16, hbm>) -> !df.tensor<[B, 32], bf16>
    %a = df.attention %q, %k, %v, %k_cache, %v_cache {heads = 4 : i64, kv_heads = 2 : i64} : (!df.tensor<[B, 64], bf16>, !df.tensor<[B, 32], bf16>, !df.tensor<[B, 32], bf16>, !df.tensor<[B, S, 2, 16], bf16, hbm>, !df.tensor<[B, S, 2, 16], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    %y = df.add %x, %a : (!df.tensor<[B, 64], bf16>, !df.tensor<[B, 64], bf16>) -> !df.tensor<[B, 64], bf16>
    df.return %y : !df.tensor<[B, 64], bf16>
  }
  df.kernel @head(%x: !df.tensor<[B, 64], bf16>, %lm: !df.tensor<[64, 100], bf16, hbm>) -> !df.tensor<[B], i32> {
    %logits = df.lm_head %x, %lm : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 100], bf16, hbm>) -> !df.tensor<[B, 100], bf16>
    %next = df.sample %logits : (!df.tensor<[B, 100], bf16>) -> !df.tensor<[B], i32>
    df.return %next : !df.tensor<[B], i32>
  }
  df.graph @llama attributes {activations = "sram", batch = 1 : i64, context = 128 : i64, tokens = 4 : i64, sockets = 1 : i64, tp = 1 : i64, target = "sn40l"} {
    %tokens = df.input "tokens" : !df.tensor<[B], i32>
    %table = df.weight "embed" : !df.tensor<[100, 64], bf16, hbm>
    %x_0 = df.launch @embed(%tokens, %table) : (!df.tensor<[B], i32>, !df.tensor<[100, 64], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    %wq_0 = df.weight "layers.0.wq" : !df.tensor<[64, 64], bf16, hbm>
    %wk_0 = df.weight "layers.0.wk" : !df.tensor<[64, 32], bf16, hbm>
    %wv_0 = df.weight "layers.0.wv" : !df.tensor<[64, 32], bf16, hbm>
    %k_cache_0 = df.kv_cache "layers.0.k_cache" : !df.tensor<[B, S, 2, 16], bf16, hbm>
    %v_cache_0 = df.kv_cache "layers.0.v_cache" : !df.tensor<[B, S, 2, 16], bf16, hbm>
    %x_1 = df.launch @decoder(%x_0, %wq_0, %wk_0, %wv_0, %k_cache_0, %v_cache_0) : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 64], bf16, hbm>, !df.tensor<[64, 32], bf16, hbm>, !df.tensor<[64, 32], bf16, hbm>, !df.tensor<[B, S, 2, 16], bf16, hbm>, !df.tensor<[B, S, 2, 16], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    %wq_1 = df.weight "layers.1.wq" : !df.tensor<[64, 64], bf16, hbm>
    %wk_1 = df.weight "layers.1.wk" : !df.tensor<[64, 32], bf16, hbm>
    %wv_1 = df.weight "layers.1.wv" : !df.tensor<[64, 32], bf16, hbm>
    %k_cache_1 = df.kv_cache "layers.1.k_cache" : !df.tensor<[B, S, 2, 16], bf16, hbm>
    %v_cache_1 = df.kv_cache "layers.1.v_cache" : !df.tensor<[B, S, 2, 16], bf16, hbm>
    %x_2 = df.launch @decoder(%x_1, %wq_1, %wk_1, %wv_1, %k_cache_1, %v_cache_1) : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 64], bf16, hbm>, !df.tensor<[64, 32], bf16, hbm>, !df.tensor<[64, 32], bf16, hbm>, !df.tensor<[B, S, 2, 16], bf16, hbm>, !df.tensor<[B, S, 2, 16], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    %wq_2 = df.weight "layers.2.wq" : !df.tensor<[64, 64], bf16, hbm>
    %wk_2 = df.weight "layers.2.wk" : !df.tensor<[64, 32], bf16, hbm>
    %wv_2 = df.weight "layers.2.wv" : !df.tensor<[64, 32], bf16, hbm>
    %k_cache_2 = df.kv_cache "layers.2.k_cache" : !df.tensor<[B, S, 2, 16], bf16, hbm>
    %v_cache_2 = df.kv_cache "layers.2.v_cache" : !df.tensor<[B, S, 2, 16], bf16, hbm>
    %x_3 = df.launch @decoder(%x_2, %wq_2, %wk_2, %wv_2, %k_cache_2, %v_cache_2) : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 64], bf16, hbm>, !df.tensor<[64, 32], bf16, hbm>, !df.tensor<[64, 32], bf16, hbm>, !df.tensor<[B, S, 2, 16], bf16, hbm>, !df.tensor<[B, S, 2, 16], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    %wq_3 = df.weight "layers.3.wq" : !df.tensor<[64, 64], bf16, hbm>
    %wk_3 = df.weight "layers.3.wk" : !df.tensor<[64, 32], bf16, hbm>
    %wv_3 = df.weight "layers.3.wv" : !df.tensor<[64, 32], bf16, hbm>
    %k_cache_3 = df.kv_cache "layers.3.k_cache" : !df.tensor<[B, S, 2, 16], bf16, hbm>
    %v_cache_3 = df.kv_cache "layers.3.v_cache" : !df.tensor<[B, S, 2, 16], bf16, hbm>
    %x_4 = df.launch @decoder(%x_3, %wq_3, %wk_3, %wv_3, %k_cache_3, %v_cache_3) : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 64], bf16, hbm>, !df.tensor<[64, 32], bf16, hbm>, !df.tensor<[64, 32], bf16, hbm>, !df.tensor<[B, S, 2, 16], bf16, hbm>, !df.tensor<[B, S, 2, 16], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    %wq_4 = df.weight "layers.4.wq" : !df.tensor<[64, 64], bf16, hbm>
    %wk_4 = df.weight "layers.4.wk" : !df.tensor<[64, 32], bf16, hbm>
    %wv_4 = df.weight "layers.4.wv" : !df.tensor<[64, 32], bf16, hbm>
    %k_cache_4 = df.kv_cache "layers.4.k_cache" : !df.tensor<[B, S, 2, 16], bf16, hbm>
    %v_cache_4 = df.kv_cache "layers.4.v_cache" : !df.tensor<[B, S, 2, 16], bf16, hbm>
    %x_5 = df.launch @decoder(%x_4, %wq_4, %wk_4, %wv_4, %k_cache_4, %v_cache_4) : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 64], bf16, hbm>, !df.tensor<[64, 32], bf16, hbm>, !df.tensor<[64, 32], bf16, hbm>, !df.tensor<[B, S, 2, 16], bf16, hbm>, !df.tensor<[B, S, 2, 16], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    %wq_5 = df.weight "layers.5.wq" : !df.tensor<[64, 64], bf16, hbm>
    %wk_5 = df.weight "layers.5.wk" : !df.tensor<[64, 32], bf16, hbm>
    %wv_5 = df.weight "layers.5.wv" : !df.tensor<[64, 32], bf16, hbm>
    %k_cache_5 = df.kv_cache "layers.5.k_cache" : !df.tensor<[B, S, 2, 16], bf16, hbm>
    %v_cache_5 = df.kv_cache "layers.5.v_cache" : !df.tensor<[B, S, 2, 16], bf16, hbm>
    %x_6 = df.launch @decoder(%x_5, %wq_5, %wk_5, %wv_5, %k_cache_5, %v_cache_5) : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 64], bf16, hbm>, !df.tensor<[64, 32], bf16, hbm>, !df.tensor<[64, 32], bf16, hbm>, !df.tensor<[B, S, 2, 16], bf16, hbm>, !df.tensor<[B, S, 2, 16], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    %wq_6 = df.weight "layers.6.wq" : !df.tensor<[64, 64], bf16, hbm>
    %wk_6 = df.weight "layers.6.wk" : !df.tensor<[64, 32], bf16, hbm>
    %wv_6 = df.weight "layers.6.wv" : !df.tensor<[64, 32], bf16, hbm>
    %k_cache_6 = df.kv_cache "layers.6.k_cache" : !df.tensor<[B, S, 2, 16], bf16, hbm>
    %v_cache_6 = df.kv_cache "layers.6.v_cache" : !df.tensor<[B, S, 2, 16], bf16, hbm>
    %x_7 = df.launch @decoder(%x_6, %wq_6, %wk_6, %wv_6, %k_cache_6, %v_cache_6) : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 64], bf16, hbm>, !df.tensor<[64, 32], bf16, hbm>, !df.tensor<[64, 32], bf16, hbm>, !df.tensor<[B, S, 2, 16], bf16, hbm>, !df.tensor<[B, S, 2, 16], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    %wq_7 = df.weight "layers.7.wq" : !df.tensor<[64, 64], bf16, hbm>
    %wk_7 = df.weight "layers.7.wk" : !df.tensor<[64, 32], bf16, hbm>
    %wv_7 = df.weight "layers.7.wv" : !df.tensor<[64, 32], bf16, hbm>
    %k_cache_7 = df.kv_cache "layers.7.k_cache" : !df.tensor<[B, S, 2, 16], bf16, hbm>
    %v_cache_7 = df.kv_cache "layers.7.v_cache" : !df.tensor<[B, S, 2, 16], bf16, hbm>
    %x_8 = df.launch @decoder(%x_7, %wq_7, %wk_7, %wv_7, %k_cache_7, %v_cache_7) : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 64], bf16, hbm>, !df.tensor<[64, 32], bf16, hbm>, !df.tensor<[64, 32], bf16, hbm>, !df.tensor<[B, S, 2, 16], bf16, hbm>, !df.tensor<[B, S, 2, 16], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    %wq_8 = df.weight "layers.8.wq" : !df.tensor<[64, 64], bf16, hbm>
    %wk_8 = df.weight "layers.8.wk" : !df.tensor<[64, 32], bf16, hbm>
    %wv_8 = df.weight "layers.8.wv" : !df.tensor<[64, 32], bf16, hbm>
    %k_cache_8 = df.kv_cache "layers.8.k_cache" : !df.tensor<[B, S, 2, 16], bf16, hbm>
    %v_cache_8 = df.kv_cache "layers.8.v_cache" : !df.tensor<[B, S, 2, 16], bf16, hbm>
    %x_9 = df.launch @decoder(%x_8, %wq_8, %wk_8, %wv_8, %k_cache_8, %v_cache_8) : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 64], bf16, hbm>, !df.tensor<[64, 32], bf16, hbm>, !df.tensor<[64, 32], bf16, hbm>, !df.tensor<[B, S, 2, 16], bf16, hbm>, !df.tensor<[B, S, 2, 16], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    %wq_9 = df.weight "layers.9.wq" : !df.tensor<[64, 64], bf16, hbm>
    %wk_9 = df.weight "layers.9.wk" : !df.tensor<[64, 32], bf16, hbm>
    %wv_9 = df.weight "layers.9.wv" : !df.tensor<[64, 32], bf16, hbm>
    %k_cache_9 = df.kv_cache "layers.9.k_cache" : !df.tensor<[B, S, 2, 16], bf16, hbm>
    %v_cache_9 = df.kv_cache "layers.9.v_cache" : !df.tensor<[B, S, 2, 16], bf16, hbm>
    %x_10 = df.launch @decoder(%x_9, %wq_9, %wk_9, %wv_9, %k_cache_9, %v_cache_9) : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 64], bf16, hbm>, !df.tensor<[64, 32], bf16, hbm>, !df.tensor<[64, 32], bf16, hbm>, !df.tensor<[B, S, 2, 16], bf16, hbm>, !df.tensor<[B, S, 2, 16], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    %wq_10 = df.weight "layers.10.wq" : !df.tensor<[64, 64], bf16, hbm>
    %wk_10 = df.weight "layers.10.wk" : !df.tensor<[64, 32], bf16, hbm>
    %wv_10 = df.weight "layers.10.wv" : !df.tensor<[64, 32], bf16, hbm>
    %k_cache_10 = df.kv_cache "layers.10.k_cache" : !df.tensor<[B, S, 2, 16], bf16, hbm>
    %v_cache_10 = df.kv_cache "layers.10.v_cache" : !df.tensor<[B, S, 2, 16], bf16, hbm>
    %x_11 = df.launch @decoder(%x_10, %wq_10, %wk_10, %wv_10, %k_cache_10, %v_cache_10) : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 64], bf16, hbm>, !df.tensor<[64, 32], bf16, hbm>, !df.tensor<[64, 32], bf16, hbm>, !df.tensor<[B, S, 2, 16], bf16, hbm>, !df.tensor<[B, S, 2, 16], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    %wq_11 = df.weight "layers.11.wq" : !df.tensor<[64, 64], bf16, hbm>
    %wk_11 = df.weight "layers.11.wk" : !df.tensor<[64, 32], bf16, hbm>
    %wv_11 = df.weight "layers.11.wv" : !df.tensor<[64, 32], bf16, hbm>
    %k_cache_11 = df.kv_cache "layers.11.k_cache" : !df.tensor<[B, S, 2, 16], bf16, hbm>
    %v_cache_11 = df.kv_cache "layers.11.v_cache" : !df.tensor<[B, S, 2, 16], bf16, hbm>
    %x_12 = df.launch @decoder(%x_11, %wq_11, %wk_11, %wv_11, %k_cache_11, %v_cache_11) : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 64], bf16, hbm>, !df.tensor<[64, 32], bf16, hbm>, !df.tensor<[64, 32], bf16, hbm>, !df.tensor<[B, S, 2, 16], bf16, hbm>, !df.tensor<[B, S, 2, 16], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    %wq_12 = df.weight "layers.12.wq" : !df.tensor<[64, 64], bf16, hbm>
    %wk_12 = df.weight "layers.12.wk" : !df.tensor<[64, 32], bf16, hbm>
    %wv_12 = df.weight "layers.12.wv" : !df.tensor<[64, 32], bf16, hbm>
    %k_cache_12 = df.kv_cache "layers.12.k_cache" : !df.tensor<[B, S, 2, 16], bf16, hbm>
    %v_cache_12 = df.kv_cache "layers.12.v_cache" : !df.tensor<[B, S, 2, 16], bf16, hbm>
    %x_13 = df.launch @decoder(%x_12, %wq_12, %wk_12, %wv_12, %k_cache_12, %v_cache_12) : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 64], bf16, hbm>, !df.tensor<[64, 32], bf16, hbm>, !df.tensor<[64, 32], bf16, hbm>, !df.tensor<[B, S, 2, 16], bf16, hbm>, !df.tensor<[B, S, 2, 16], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    %wq_13 = df.weight "layers.13.wq" : !df.tensor<[64, 64], bf16, hbm>
    %wk_13 = df.weight "layers.13.wk" : !df.tensor<[64, 32], bf16, hbm>
    %wv_13 = df.weight "layers.13.wv" : !df.tensor<[64, 32], bf16, hbm>
    %k_cache_13 = df.kv_cache "layers.13.k_cache" : !df.tensor<[B, S, 2, 16], bf16, hbm>
    %v_cache_13 = df.kv_cache "layers.13.v_cache" : !df.tensor<[B, S, 2, 16], bf16, hbm>
    %x_14 = df.launch @decoder(%x_13, %wq_13, %wk_13, %wv_13, %k_cache_13, %v_cache_13) : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 64], bf16, hbm>, !df.tensor<[64, 32], bf16, hbm>, !df.tensor<[64, 32], bf16, hbm>, !df.tensor<[B, S, 2, 16], bf16, hbm>, !df.tensor<[B, S, 2, 16], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    %wq_14 = df.weight "layers.14.wq" : !df.tensor<[64, 64], bf16, hbm>
    %wk_14 = df.weight "layers.14.wk" : !df.tensor<[64, 32], bf16, hbm>
    %wv_14 = df.weight "layers.14.wv" : !df.tensor<[64, 32], bf16, hbm>
    %k_cache_14 = df.kv_cache "layers.14.k_cache" : !df.tensor<[B, S, 2, 16], bf16, hbm>
    %v_cache_14 = df.kv_cache "layers.14.v_cache" : !df.tensor<[B, S, 2, 16], bf16, hbm>
    %x_15 = df.launch @decoder(%x_14, %wq_14, %wk_14, %wv_14, %k_cache_14, %v_cache_14) : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 64], bf16, hbm>, !df.tensor<[64, 32], bf16, hbm>, !df.tensor<[64, 32], bf16, hbm>, !df.tensor<[B, S, 2, 16], bf16, hbm>, !df.tensor<[B, S, 2, 16], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    %wq_15 = df.weight "layers.15.wq" : !df.tensor<[64, 64], bf16, hbm>
    %wk_15 = df.weight "layers.15.wk" : !df.tensor<[64, 32], bf16, hbm>
    %wv_15 = df.weight "layers.15.wv" : !df.tensor<[64, 32], bf16, hbm>
    %k_cache_15 = df.kv_cache "layers.15.k_cache" : !df.tensor<[B, S, 2, 16], bf16, hbm>
    %v_cache_15 = df.kv_cache "layers.15.v_cache" : !df.tensor<[B, S, 2, 16], bf16, hbm>
    %x_16 = df.launch @decoder(%x_15, %wq_15, %wk_15, %wv_15, %k_cache_15, %v_cache_15) : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 64], bf16, hbm>, !df.tensor<[64, 32], bf16, hbm>, !df.tensor<[64, 32], bf16, hbm>, !df.tensor<[B, S, 2, 16], bf16, hbm>, !df.tensor<[B, S, 2, 16], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    %wq_16 = df.weight "layers.16.wq" : !df.tensor<[64, 64], bf16, hbm>
    %wk_16 = df.weight "layers.16.wk" : !df.tensor<[64, 32], bf16, hbm>
    %wv_16 = df.weight "layers.16.wv" : !df.tensor<[64, 32], bf16, hbm>
    %k_cache_16 = df.kv_cache "layers.16.k_cache" : !df.tensor<[B, S, 2, 16], bf16, hbm>
    %v_cache_16 = df.kv_cache "layers.16.v_cache" : !df.tensor<[B, S, 2, 16], bf16, hbm>
    %x_17 = df.launch @decoder(%x_16, %wq_16, %wk_16, %wv_16, %k_cache_16, %v_cache_16) : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 64], bf16, hbm>, !df.tensor<[64, 32], bf16, hbm>, !df.tensor<[64, 32], bf16, hbm>, !df.tensor<[B, S, 2, 16], bf16, hbm>, !df.tensor<[B, S, 2, 16], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    %wq_17 = df.weight "layers.17.wq" : !df.tensor<[64, 64], bf16, hbm>
    %wk_17 = df.weight "layers.17.wk" : !df.tensor<[64, 32], bf16, hbm>
    %wv_17 = df.weight "layers.17.wv" : !df.tensor<[64, 32], bf16, hbm>
    %k_cache_17 = df.kv_cache "layers.17.k_cache" : !df.tensor<[B, S, 2, 16], bf16, hbm>
    %v_cache_17 = df.kv_cache "layers.17.v_cache" : !df.tensor<[B, S, 2, 16], bf16, hbm>
    %x_18 = df.launch @decoder(%x_17, %wq_17, %wk_17, %wv_17, %k_cache_17, %v_cache_17) : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 64], bf16, hbm>, !df.tensor<[64, 32], bf16, hbm>, !df.tensor<[64, 32], bf16, hbm>, !df.tensor<[B, S, 2, 16], bf16, hbm>, !df.tensor<[B, S, 2, 16], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    %wq_18 = df.weight "layers.18.wq" : !df.tensor<[64, 64], bf16, hbm>
    %wk_18 = df.weight "layers.18.wk" : !df.tensor<[64, 32], bf16, hbm>
    %wv_18 = df.weight "layers.18.wv" : !df.tensor<[64, 32], bf16, hbm>
    %k_cache_18 = df.kv_cache "layers.18.k_cache" : !df.tensor<[B, S, 2, 16], bf16, hbm>
    %v_cache_18 = df.kv_cache "layers.18.v_cache" : !df.tensor<[B, S, 2, 16], bf16, hbm>
    %x_19 = df.launch @decoder(%x_18, %wq_18, %wk_18, %wv_18, %k_cache_18, %v_cache_18) : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 64], bf16, hbm>, !df.tensor<[64, 32], bf16, hbm>, !df.tensor<[64, 32], bf16, hbm>, !df.tensor<[B, S, 2, 16], bf16, hbm>, !df.tensor<[B, S, 2, 16], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    %wq_19 = df.weight "layers.19.wq" : !df.tensor<[64, 64], bf16, hbm>
    %wk_19 = df.weight "layers.19.wk" : !df.tensor<[64, 32], bf16, hbm>
    %wv_19 = df.weight "layers.19.wv" : !df.tensor<[64, 32], bf16, hbm>
    %k_cache_19 = df.kv_cache "layers.19.k_cache" : !df.tensor<[B, S, 2, 16], bf16, hbm>
    %v_cache_19 = df.kv_cache "layers.19.v_cache" : !df.tensor<[B, S, 2, 16], bf16, hbm>
    %x_20 = df.launch @decoder(%x_19, %wq_19, %wk_19, %wv_19, %k_cache_19, %v_cache_19) : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 64], bf16, hbm>, !df.tensor<[64, 32], bf16, hbm>, !df.tensor<[64, 32], bf16, hbm>, !df.tensor<[B, S, 2, 16], bf16, hbm>, !df.tensor<[B, S, 2, 16], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    %wq_20 = df.weight "layers.20.wq" : !df.tensor<[64, 64], bf16, hbm>
    %wk_20 = df.weight "layers.20.wk" : !df.tensor<[64, 32], bf16, hbm>
    %wv_20 = df.weight "layers.20.wv" : !df.tensor<[64, 32], bf16, hbm>
    %k_cache_20 = df.kv_cache "layers.20.k_cache" : !df.tensor<[B, S, 2, 16], bf16, hbm>
    %v_cache_20 = df.kv_cache "layers.20.v_cache" : !df.tensor<[B, S, 2, 16], bf16, hbm>
    %x_21 = df.launch @decoder(%x_20, %wq_20, %wk_20, %wv_20, %k_cache_20, %v_cache_20) : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 64], bf16, hbm>, !df.tensor<[64, 32], bf16, hbm>, !df.tensor<[64, 32], bf16, hbm>, !df.tensor<[B, S, 2, 16], bf16, hbm>, !df.tensor<[B, S, 2, 16], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    %wq_21 = df.weight "layers.21.wq" : !df.tensor<[64, 64], bf16, hbm>
    %wk_21 = df.weight "layers.21.wk" : !df.tensor<[64, 32], bf16, hbm>
    %wv_21 = df.weight "layers.21.wv" : !df.tensor<[64, 32], bf16, hbm>
    %k_cache_21 = df.kv_cache "layers.21.k_cache" : !df.tensor<[B, S, 2, 16], bf16, hbm>
    %v_cache_21 = df.kv_cache "layers.21.v_cache" : !df.tensor<[B, S, 2, 16], bf16, hbm>
    %x_22 = df.launch @decoder(%x_21, %wq_21, %wk_21, %wv_21, %k_cache_21, %v_cache_21) : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 64], bf16, hbm>, !df.tensor<[64, 32], bf16, hbm>, !df.tensor<[64, 32], bf16, hbm>, !df.tensor<[B, S, 2, 16], bf16, hbm>, !df.tensor<[B, S, 2, 16], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    %wq_22 = df.weight "layers.22.wq" : !df.tensor<[64, 64], bf16, hbm>
    %wk_22 = df.weight "layers.22.wk" : !df.tensor<[64, 32], bf16, hbm>
    %wv_22 = df.weight "layers.22.wv" : !df.tensor<[64, 32], bf16, hbm>
    %k_cache_22 = df.kv_cache "layers.22.k_cache" : !df.tensor<[B, S, 2, 16], bf16, hbm>
    %v_cache_22 = df.kv_cache "layers.22.v_cache" : !df.tensor<[B, S, 2, 16], bf16, hbm>
    %x_23 = df.launch @decoder(%x_22, %wq_22, %wk_22, %wv_22, %k_cache_22, %v_cache_22) : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 64], bf16, hbm>, !df.tensor<[64, 32], bf16, hbm>, !df.tensor<[64, 32], bf16, hbm>, !df.tensor<[B, S, 2, 16], bf16, hbm>, !df.tensor<[B, S, 2, 16], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    %wq_23 = df.weight "layers.23.wq" : !df.tensor<[64, 64], bf16, hbm>
    %wk_23 = df.weight "layers.23.wk" : !df.tensor<[64, 32], bf16, hbm>
    %wv_23 = df.weight "layers.23.wv" : !df.tensor<[64, 32], bf16, hbm>
    %k_cache_23 = df.kv_cache "layers.23.k_cache" : !df.tensor<[B, S, 2, 16], bf16, hbm>
    %v_cache_23 = df.kv_cache "layers.23.v_cache" : !df.tensor<[B, S, 2, 16], bf16, hbm>
    %x_24 = df.launch @decoder(%x_23, %wq_23, %wk_23, %wv_23, %k_cache_23, %v_cache_23) : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 64], bf16, hbm>, !df.tensor<[64, 32], bf16, hbm>, !df.tensor<[64, 32], bf16, hbm>, !df.tensor<[B, S, 2, 16], bf16, hbm>, !df.tensor<[B, S, 2, 16], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    %wq_24 = df.weight "layers.24.wq" : !df.tensor<[64, 64], bf16, hbm>
    %wk_24 = df.weight "layers.24.wk" : !df.tensor<[64, 32], bf16, hbm>
    %wv_24 = df.weight "layers.24.wv" : !df.tensor<[64, 32], bf16, hbm>
    %k_cache_24 = df.kv_cache "layers.24.k_cache" : !df.tensor<[B, S, 2, 16], bf16, hbm>
    %v_cache_24 = df.kv_cache "layers.24.v_cache" : !df.tensor<[B, S, 2, 16], bf16, hbm>
    %x_25 = df.launch @decoder(%x_24, %wq_24, %wk_24, %wv_24, %k_cache_24, %v_cache_24) : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 64], bf16, hbm>, !df.tensor<[64, 32], bf16, hbm>, !df.tensor<[64, 32], bf16, hbm>, !df.tensor<[B, S, 2, 16], bf16, hbm>, !df.tensor<[B, S, 2, 16], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    %wq_25 = df.weight "layers.25.wq" : !df.tensor<[64, 64], bf16, hbm>
    %wk_25 = df.weight "layers.25.wk" : !df.tensor<[64, 32], bf16, hbm>
    %wv_25 = df.weight "layers.25.wv" : !df.tensor<[64, 32], bf16, hbm>
    %k_cache_25 = df.kv_cache "layers.25.k_cache" : !df.tensor<[B, S, 2, 16], bf16, hbm>
    %v_cache_25 = df.kv_cache "layers.25.v_cache" : !df.tensor<[B, S, 2, 16], bf16, hbm>
    %x_26 = df.launch @decoder(%x_25, %wq_25, %wk_25, %wv_25, %k_cache_25, %v_cache_25) : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 64], bf16, hbm>, !df.tensor<[64, 32], bf16, hbm>, !df.tensor<[64, 32], bf16, hbm>, !df.tensor<[B, S, 2, 16], bf16, hbm>, !df.tensor<[B, S, 2, 16], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    %wq_26 = df.weight "layers.26.wq" : !df.tensor<[64, 64], bf16, hbm>
    %wk_26 = df.weight "layers.26.wk" : !df.tensor<[64, 32], bf16, hbm>
    %wv_26 = df.weight "layers.26.wv" : !df.tensor<[64, 32], bf16, hbm>
    %k_cache_26 = df.kv_cache "layers.26.k_cache" : !df.tensor<[B, S, 2, 16], bf16, hbm>
    %v_cache_26 = df.kv_cache "layers.26.v_cache" : !df.tensor<[B, S, 2, 16], bf16, hbm>
    %x_27 = df.launch @decoder(%x_26, %wq_26, %wk_26, %wv_26, %k_cache_26, %v_cache_26) : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 64], bf16, hbm>, !df.tensor<[64, 32], bf16, hbm>, !df.tensor<[64, 32], bf16, hbm>, !df.tensor<[B, S, 2, 16], bf16, hbm>, !df.tensor<[B, S, 2, 16], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    %wq_27 = df.weight "layers.27.wq" : !df.tensor<[64, 64], bf16, hbm>
    %wk_27 = df.weight "layers.27.wk" : !df.tensor<[64, 32], bf16, hbm>
    %wv_27 = df.weight "layers.27.wv" : !df.tensor<[64, 32], bf16, hbm>
    %k_cache_27 = df.kv_cache "layers.27.k_cache" : !df.tensor<[B, S, 2, 16], bf16, hbm>
    %v_cache_27 = df.kv_cache "layers.27.v_cache" : !df.tensor<[B, S, 2, 16], bf16, hbm>
    %x_28 = df.launch @decoder(%x_27, %wq_27, %wk_27, %wv_27, %k_cache_27, %v_cache_27) : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 64], bf16, hbm>, !df.tensor<[64, 32], bf16, hbm>, !df.tensor<[64, 32], bf16, hbm>, !df.tensor<[B, S, 2, 16], bf16, hbm>, !df.tensor<[B, S, 2, 16], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    %wq_28 = df.weight "layers.28.wq" : !df.tensor<[64, 64], bf16, hbm>
    %wk_28 = df.weight "layers.28.wk" : !df.tensor<[64, 32], bf16, hbm>
    %wv_28 = df.weight "layers.28.wv" : !df.tensor<[64, 32], bf16, hbm>
    %k_cache_28 = df.kv_cache "layers.28.k_cache" : !df.tensor<[B, S, 2, 16], bf16, hbm>
    %v_cache_28 = df.kv_cache "layers.28.v_cache" : !df.tensor<[B, S, 2, 16], bf16, hbm>
    %x_29 = df.launch @decoder(%x_28, %wq_28, %wk_28, %wv_28, %k_cache_28, %v_cache_28) : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 64], bf16, hbm>, !df.tensor<[64, 32], bf16, hbm>, !df.tensor<[64, 32], bf16, hbm>, !df.tensor<[B, S, 2, 16], bf16, hbm>, !df.tensor<[B, S, 2, 16], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    %wq_29 = df.weight "layers.29.wq" : !df.tensor<[64, 64], bf16, hbm>
    %wk_29 = df.weight "layers.29.wk" : !df.tensor<[64, 32], bf16, hbm>
    %wv_29 = df.weight "layers.29.wv" : !df.tensor<[64, 32], bf16, hbm>
    %k_cache_29 = df.kv_cache "layers.29.k_cache" : !df.tensor<[B, S, 2, 16], bf16, hbm>
    %v_cache_29 = df.kv_cache "layers.29.v_cache" : !df.tensor<[B, S, 2, 16], bf16, hbm>
    %x_30 = df.launch @decoder(%x_29, %wq_29, %wk_29, %wv_29, %k_cache_29, %v_cache_29) : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 64], bf16, hbm>, !df.tensor<[64, 32], bf16, hbm>, !df.tensor<[64, 32], bf16, hbm>, !df.tensor<[B, S, 2, 16], bf16, hbm>, !df.tensor<[B, S, 2, 16], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    %wq_30 = df.weight "layers.30.wq" : !df.tensor<[64, 64], bf16, hbm>
    %wk_30 = df.weight "layers.30.wk" : !df.tensor<[64, 32], bf16, hbm>
    %wv_30 = df.weight "layers.30.wv" : !df.tensor<[64, 32], bf16, hbm>
    %k_cache_30 = df.kv_cache "layers.30.k_cache" : !df.tensor<[B, S, 2, 16], bf16, hbm>
    %v_cache_30 = df.kv_cache "layers.30.v_cache" : !df.tensor<[B, S, 2, 16], bf16, hbm>
    %x_31 = df.launch @decoder(%x_30, %wq_30, %wk_30, %wv_30, %k_cache_30, %v_cache_30) : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 64], bf16, hbm>, !df.tensor<[64, 32], bf16, hbm>, !df.tensor<[64, 32], bf16, hbm>, !df.tensor<[B, S, 2, 16], bf16, hbm>, !df.tensor<[B, S, 2, 16], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    %wq_31 = df.weight "layers.31.wq" : !df.tensor<[64, 64], bf16, hbm>
    %wk_31 = df.weight "layers.31.wk" : !df.tensor<[64, 32], bf16, hbm>
    %wv_31 = df.weight "layers.31.wv" : !df.tensor<[64, 32], bf16, hbm>
    %k_cache_31 = df.kv_cache "layers.31.k_cache" : !df.tensor<[B, S, 2, 16], bf16, hbm>
    %v_cache_31 = df.kv_cache "layers.31.v_cache" : !df.tensor<[B, S, 2, 16], bf16, hbm>
    %x_32 = df.launch @decoder(%x_31, %wq_31, %wk_31, %wv_31, %k_cache_31, %v_cache_31) : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 64], bf16, hbm>, !df.tensor<[64, 32], bf16, hbm>, !df.tensor<[64, 32], bf16, hbm>, !df.tensor<[B, S, 2, 16], bf16, hbm>, !df.tensor<[B, S, 2, 16], bf16, hbm>) -> !df.tensor<[B, 64], bf16>
    %lm = df.weight "lm_head" : !df.tensor<[64, 100], bf16, hbm>
    %next = df.launch @head(%x_32, %lm) : (!df.tensor<[B, 64], bf16>, !df.tensor<[64, 100], bf16, hbm>) -> !df.tensor<[B], i32>
    df.output %next : !df.tensor<[B], i32>
  }
}

// The looped kernel takes the stacked tensors; the loop hands one layer's slice to each iteration.
// CHECK:      df.kernel @embed(
// CHECK:      df.kernel @decoder_x32(%x: !df.tensor<[B, 64], bf16>, %wq: !df.tensor<[32, 64, 64], bf16, hbm>, %wk: !df.tensor<[32, 64, 32], bf16, hbm>, %wv: !df.tensor<[32, 64, 32], bf16, hbm>, %k_cache: !df.tensor<[32, B, S, 2, 16], bf16, hbm>, %v_cache: !df.tensor<[32, B, S, 2, 16], bf16, hbm>) -> !df.tensor<[B, 64], bf16> {
// CHECK-NEXT:   %[[R:.*]] = df.loop 32 carried(%x : !df.tensor<[B, 64], bf16>) stacked(%wq, %wk, %wv, %k_cache, %v_cache : !df.tensor<[32, 64, 64], bf16, hbm>, !df.tensor<[32, 64, 32], bf16, hbm>, !df.tensor<[32, 64, 32], bf16, hbm>, !df.tensor<[32, B, S, 2, 16], bf16, hbm>, !df.tensor<[32, B, S, 2, 16], bf16, hbm>) -> !df.tensor<[B, 64], bf16> {
// CHECK-NEXT:   ^bb0(%[[XI:.*]]: !df.tensor<[B, 64], bf16>, %[[WQI:.*]]: !df.tensor<[64, 64], bf16, hbm>, %{{.*}}: !df.tensor<[64, 32], bf16, hbm>, %{{.*}}: !df.tensor<[64, 32], bf16, hbm>, %[[KI:.*]]: !df.tensor<[B, S, 2, 16], bf16, hbm>, %[[VI:.*]]: !df.tensor<[B, S, 2, 16], bf16, hbm>):
// CHECK-NEXT:     %{{.*}} = df.linear %[[XI]], %[[WQI]]
// CHECK:          df.attention %{{.*}}, %{{.*}}, %{{.*}}, %[[KI]], %[[VI]]
// CHECK-NEXT:     %[[Y:.*]] = df.add %[[XI]], %{{.*}}
// CHECK-NEXT:     df.yield %[[Y]] : !df.tensor<[B, 64], bf16>
// CHECK-NEXT:   }
// CHECK-NEXT:   df.return %[[R]] : !df.tensor<[B, 64], bf16>
// CHECK-NEXT: }

// The per-layer kernel is gone: nothing launches it any more.
// CHECK-NOT:  df.kernel @decoder(
// CHECK:      df.kernel @head(

// Each position's 32 declarations become one, named for the layers it stacks, where layer 0's stood.
// CHECK:      %[[X:.*]] = df.launch @embed(
// CHECK-NEXT: %[[WQ:.*]] = df.weight "layers.{0..31}.wq" : !df.tensor<[32, 64, 64], bf16, hbm>
// CHECK-NEXT: %[[WK:.*]] = df.weight "layers.{0..31}.wk" : !df.tensor<[32, 64, 32], bf16, hbm>
// CHECK-NEXT: %[[WV:.*]] = df.weight "layers.{0..31}.wv" : !df.tensor<[32, 64, 32], bf16, hbm>
// CHECK-NEXT: %[[KC:.*]] = df.kv_cache "layers.{0..31}.k_cache" : !df.tensor<[32, B, S, 2, 16], bf16, hbm>
// CHECK-NEXT: %[[VC:.*]] = df.kv_cache "layers.{0..31}.v_cache" : !df.tensor<[32, B, S, 2, 16], bf16, hbm>
// CHECK-NEXT: %[[H:.*]] = df.launch @decoder_x32(%[[X]], %[[WQ]], %[[WK]], %[[WV]], %[[KC]], %[[VC]])
// CHECK-NOT:  df.launch @decoder
// CHECK-NOT:  "layers.
// CHECK:      df.launch @head(%[[H]], %{{.*}})
// CHECK-NEXT: df.output
