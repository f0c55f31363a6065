// RUN: dfdsl opt %s -p 'shard-tensor-parallel{sockets=2}' | filecheck %s --check-prefix=SHARD
// RUN: dfdsl opt %s -p 'shard-tensor-parallel{sockets=2},fuse{mode=layer},kernel-looping' | filecheck %s --check-prefix=LOOP
// RUN: dfdsl opt %s -p 'shard-tensor-parallel{sockets=2},fuse{mode=layer},kernel-looping,place-memory,df-to-rdu' | filecheck %s --check-prefix=RDU
// RUN: dfdsl opt %s -p 'shard-tensor-parallel{sockets=2},fuse{mode=layer},kernel-looping,place-memory,df-to-rdu' --generic | dfdsl opt - | filecheck %s --check-prefix=RDU

// The prefill pass of a two-layer Llama (4 heads of 16, 2 KV heads, ffn 128, vocab 100), as
// `dfdsl lower --emit df --prefill` makes it for a prompt of 16 tokens: every activation carries
// the prompt dimension P after the batch B, the caches keep [B, S, ...], and the LM head
// classifies the last prompt position only ([B, P, 64] -> [B, 100]). The decode passes lower it
// unchanged.
//
// shard-tensor-parallel: the same Megatron split as in decode, with P carried through; each
// all-reduce sums a [B, P, 64] activation.
// SHARD:      df.layer @llama_decoder(%x: !df.tensor<[B, P, 64], bf16>
// SHARD:        %q = df.linear %h, %wq : (!df.tensor<[B, P, 64], bf16>, !df.tensor<[64, 32], bf16, hbm>) -> !df.tensor<[B, P, 32], bf16>
// SHARD:        %a = df.attention %q_rot, %k_rot, %v, %k_cache, %v_cache {heads = 2 : i64, kv_heads = 1 : i64} : (!df.tensor<[B, P, 32], bf16>, !df.tensor<[B, P, 16], bf16>, !df.tensor<[B, P, 16], bf16>, !df.tensor<[B, S, 1, 16], bf16, hbm>, !df.tensor<[B, S, 1, 16], bf16, hbm>) -> !df.tensor<[B, P, 32], bf16>
// SHARD:        %{{.*}} = df.all_reduce %o : (!df.tensor<[B, P, 64], bf16>) -> !df.tensor<[B, P, 64], bf16>
// SHARD:        %{{.*}} = df.all_reduce %d : (!df.tensor<[B, P, 64], bf16>) -> !df.tensor<[B, P, 64], bf16>
// SHARD:      df.graph @tiny attributes {{{.*}}tp = 2 : i64{{.*}}prompt = 16 : i64
// SHARD:        %logits = df.lm_head %h, %lm_head : (!df.tensor<[B, P, 64], bf16>, !df.tensor<[64, 50], bf16, hbm>) -> !df.tensor<[B, 50], bf16>
//
// fuse and kernel-looping: one decoder-layer kernel, looped over the two layers; the carried
// hidden state is the [B, P, 64] activation of the whole prompt.
// LOOP:       df.kernel @llama_decoder_x2(%x: !df.tensor<[B, P, 64], bf16>
// LOOP:         df.loop 2 carried(%x : !df.tensor<[B, P, 64], bf16>)
// LOOP:       df.launch @llama_decoder_x2(
//
// df-to-rdu: work in the prompt. Per socket (2 heads of 16, 1 KV head): the query projection
// 2*64*32 = 4096 FLOPs per token plus the norm's 4*64; attention 2*2*(16+16) = 128 FLOPs per
// (query, key) pair: 128*B*P*S with the cache, 64*(B*P*P + B*P) causally within the prompt (plus
// the rotary's 3*(32+16) = 144 per token); it reads the cache (2*16*B*S bytes per cache) and
// appends the prompt's keys and values (2*16*B*P bytes each); an all-reduce sends [B, P, 64] bf16.
// The LM head classifies one position per sequence: 2*64*50 = 6400*B.
// RDU:        rdu.loop 2 stacked
// RDU-SAME:     carried_bytes #cost.work<128*B*P>
// RDU-NEXT:     rdu.stage "linear" {operators = ["rmsnorm", "linear"], {{.*}}flops = #cost.work<4352*B*P>, hbm_read = #cost.work<4224>
// RDU:          rdu.stage "attention" {operators = ["rope", "rope", "attention"], {{.*}}flops = #cost.work<208*B*P + 128*B*P*S + 64*B*P*P>, hbm_read = #cost.work<64*B*S>, hbm_write = #cost.work<64*B*P>
// RDU:          rdu.all_reduce {bytes = #cost.work<128*B*P>, sockets = 2 : i64}
// RDU:        rdu.kernel @lm_head(%x: !rdu.buffer<[B, P, 64], bf16, sram>
// RDU-SAME:     -> !rdu.buffer<[B, 50], bf16, sram>
// RDU-NEXT:     rdu.stage "lm_head" {{{.*}}flops = #cost.work<6400*B + 256*B*P>
// RDU:        rdu.program @tiny attributes {{{.*}}prompt = 16 : i64} {
// RDU-NEXT:     %tokens = rdu.buffer "tokens" kind input : !rdu.buffer<[B, P], i32, hbm>

builtin.module {
  df.layer @llama_decoder(%x: !df.tensor<[B, P, 64], bf16>, %norm: !df.tensor<[64], bf16, hbm>, %wq: !df.tensor<[64, 64], bf16, hbm>, %wk: !df.tensor<[64, 32], bf16, hbm>, %wv: !df.tensor<[64, 32], bf16, hbm>, %wo: !df.tensor<[64, 64], bf16, hbm>, %norm_1: !df.tensor<[64], bf16, hbm>, %w_gate: !df.tensor<[64, 128], bf16, hbm>, %w_up: !df.tensor<[64, 128], bf16, hbm>, %w_down: !df.tensor<[128, 64], bf16, hbm>, %k_cache: !df.tensor<[B, S, 2, 16], bf16, hbm>, %v_cache: !df.tensor<[B, S, 2, 16], bf16, hbm>) -> !df.tensor<[B, P, 64], bf16> {
    %h = df.rmsnorm %x, %norm : (!df.tensor<[B, P, 64], bf16>, !df.tensor<[64], bf16, hbm>) -> !df.tensor<[B, P, 64], bf16>
    %q = df.linear %h, %wq : (!df.tensor<[B, P, 64], bf16>, !df.tensor<[64, 64], bf16, hbm>) -> !df.tensor<[B, P, 64], bf16>
    %k = df.linear %h, %wk : (!df.tensor<[B, P, 64], bf16>, !df.tensor<[64, 32], bf16, hbm>) -> !df.tensor<[B, P, 32], bf16>
    %v = df.linear %h, %wv : (!df.tensor<[B, P, 64], bf16>, !df.tensor<[64, 32], bf16, hbm>) -> !df.tensor<[B, P, 32], bf16>
    %q_rot = df.rope %q {head_dim = 16 : i64} : (!df.tensor<[B, P, 64], bf16>) -> !df.tensor<[B, P, 64], bf16>
    %k_rot = df.rope %k {head_dim = 16 : i64} : (!df.tensor<[B, P, 32], bf16>) -> !df.tensor<[B, P, 32], bf16>
    %a = df.attention %q_rot, %k_rot, %v, %k_cache, %v_cache {heads = 4 : i64, kv_heads = 2 : i64} : (!df.tensor<[B, P, 64], bf16>, !df.tensor<[B, P, 32], bf16>, !df.tensor<[B, P, 32], bf16>, !df.tensor<[B, S, 2, 16], bf16, hbm>, !df.tensor<[B, S, 2, 16], bf16, hbm>) -> !df.tensor<[B, P, 64], bf16>
    %o = df.linear %a, %wo : (!df.tensor<[B, P, 64], bf16>, !df.tensor<[64, 64], bf16, hbm>) -> !df.tensor<[B, P, 64], bf16>
    %y = df.add %x, %o : (!df.tensor<[B, P, 64], bf16>, !df.tensor<[B, P, 64], bf16>) -> !df.tensor<[B, P, 64], bf16>
    %h_1 = df.rmsnorm %y, %norm_1 : (!df.tensor<[B, P, 64], bf16>, !df.tensor<[64], bf16, hbm>) -> !df.tensor<[B, P, 64], bf16>
    %g = df.linear %h_1, %w_gate : (!df.tensor<[B, P, 64], bf16>, !df.tensor<[64, 128], bf16, hbm>) -> !df.tensor<[B, P, 128], bf16>
    %u = df.linear %h_1, %w_up : (!df.tensor<[B, P, 64], bf16>, !df.tensor<[64, 128], bf16, hbm>) -> !df.tensor<[B, P, 128], bf16>
    %act = df.silu %g : (!df.tensor<[B, P, 128], bf16>) -> !df.tensor<[B, P, 128], bf16>
    %m = df.mul %act, %u : (!df.tensor<[B, P, 128], bf16>, !df.tensor<[B, P, 128], bf16>) -> !df.tensor<[B, P, 128], bf16>
    %d = df.linear %m, %w_down : (!df.tensor<[B, P, 128], bf16>, !df.tensor<[128, 64], bf16, hbm>) -> !df.tensor<[B, P, 64], bf16>
    %y_1 = df.add %y, %d : (!df.tensor<[B, P, 64], bf16>, !df.tensor<[B, P, 64], bf16>) -> !df.tensor<[B, P, 64], bf16>
    df.return %y_1 : !df.tensor<[B, P, 64], bf16>
  }
  df.graph @tiny attributes {batch = 2 : i64, context = 16 : i64, tokens = 4 : i64, sockets = 2 : i64, tp = 1 : i64, target = "sn40l", activations = "sram", prompt = 16 : i64} {
    %tokens = df.input "tokens" : !df.tensor<[B, P], i32, hbm>
    %embed = df.weight "embed" : !df.tensor<[100, 64], bf16, hbm>
    %final_norm = df.weight "final_norm" : !df.tensor<[64], bf16, hbm>
    %lm_head = df.weight "lm_head" : !df.tensor<[64, 100], bf16, hbm>
    %x = df.embedding %tokens, %embed : (!df.tensor<[B, P], i32, hbm>, !df.tensor<[100, 64], bf16, hbm>) -> !df.tensor<[B, P, 64], bf16>
    %norm = df.weight "layers.0.self_attn.norm" : !df.tensor<[64], bf16, hbm>
    %wq = df.weight "layers.0.self_attn.wq" : !df.tensor<[64, 64], bf16, hbm>
    %wk = df.weight "layers.0.self_attn.wk" : !df.tensor<[64, 32], bf16, hbm>
    %wv = df.weight "layers.0.self_attn.wv" : !df.tensor<[64, 32], bf16, hbm>
    %wo = df.weight "layers.0.self_attn.wo" : !df.tensor<[64, 64], bf16, hbm>
    %norm_1 = df.weight "layers.0.mlp.norm" : !df.tensor<[64], bf16, hbm>
    %w_gate = df.weight "layers.0.mlp.w_gate" : !df.tensor<[64, 128], bf16, hbm>
    %w_up = df.weight "layers.0.mlp.w_up" : !df.tensor<[64, 128], bf16, hbm>
    %w_down = df.weight "layers.0.mlp.w_down" : !df.tensor<[128, 64], bf16, hbm>
    %k_cache = df.kv_cache "layers.0.self_attn.k_cache" : !df.tensor<[B, S, 2, 16], bf16, hbm>
    %v_cache = df.kv_cache "layers.0.self_attn.v_cache" : !df.tensor<[B, S, 2, 16], bf16, hbm>
    %x_1 = df.call @llama_decoder(%x, %norm, %wq, %wk, %wv, %wo, %norm_1, %w_gate, %w_up, %w_down, %k_cache, %v_cache) : (!df.tensor<[B, P, 64], bf16>, !df.tensor<[64], bf16, hbm>, !df.tensor<[64, 64], bf16, hbm>, !df.tensor<[64, 32], bf16, hbm>, !df.tensor<[64, 32], bf16, hbm>, !df.tensor<[64, 64], bf16, hbm>, !df.tensor<[64], bf16, hbm>, !df.tensor<[64, 128], bf16, hbm>, !df.tensor<[64, 128], bf16, hbm>, !df.tensor<[128, 64], bf16, hbm>, !df.tensor<[B, S, 2, 16], bf16, hbm>, !df.tensor<[B, S, 2, 16], bf16, hbm>) -> !df.tensor<[B, P, 64], bf16>
    %norm_2 = df.weight "layers.1.self_attn.norm" : !df.tensor<[64], bf16, hbm>
    %wq_1 = df.weight "layers.1.self_attn.wq" : !df.tensor<[64, 64], bf16, hbm>
    %wk_1 = df.weight "layers.1.self_attn.wk" : !df.tensor<[64, 32], bf16, hbm>
    %wv_1 = df.weight "layers.1.self_attn.wv" : !df.tensor<[64, 32], bf16, hbm>
    %wo_1 = df.weight "layers.1.self_attn.wo" : !df.tensor<[64, 64], bf16, hbm>
    %norm_3 = df.weight "layers.1.mlp.norm" : !df.tensor<[64], bf16, hbm>
    %w_gate_1 = df.weight "layers.1.mlp.w_gate" : !df.tensor<[64, 128], bf16, hbm>
    %w_up_1 = df.weight "layers.1.mlp.w_up" : !df.tensor<[64, 128], bf16, hbm>
    %w_down_1 = df.weight "layers.1.mlp.w_down" : !df.tensor<[128, 64], bf16, hbm>
    %k_cache_1 = df.kv_cache "layers.1.self_attn.k_cache" : !df.tensor<[B, S, 2, 16], bf16, hbm>
    %v_cache_1 = df.kv_cache "layers.1.self_attn.v_cache" : !df.tensor<[B, S, 2, 16], bf16, hbm>
    %x_2 = df.call @llama_decoder(%x_1, %norm_2, %wq_1, %wk_1, %wv_1, %wo_1, %norm_3, %w_gate_1, %w_up_1, %w_down_1, %k_cache_1, %v_cache_1) : (!df.tensor<[B, P, 64], bf16>, !df.tensor<[64], bf16, hbm>, !df.tensor<[64, 64], bf16, hbm>, !df.tensor<[64, 32], bf16, hbm>, !df.tensor<[64, 32], bf16, hbm>, !df.tensor<[64, 64], bf16, hbm>, !df.tensor<[64], bf16, hbm>, !df.tensor<[64, 128], bf16, hbm>, !df.tensor<[64, 128], bf16, hbm>, !df.tensor<[128, 64], bf16, hbm>, !df.tensor<[B, S, 2, 16], bf16, hbm>, !df.tensor<[B, S, 2, 16], bf16, hbm>) -> !df.tensor<[B, P, 64], bf16>
    %h = df.rmsnorm %x_2, %final_norm : (!df.tensor<[B, P, 64], bf16>, !df.tensor<[64], bf16, hbm>) -> !df.tensor<[B, P, 64], bf16>
    %logits = df.lm_head %h, %lm_head : (!df.tensor<[B, P, 64], bf16>, !df.tensor<[64, 100], bf16, hbm>) -> !df.tensor<[B, 100], bf16>
    %next = df.sample %logits : (!df.tensor<[B, 100], bf16>) -> !df.tensor<[B], i32>
    df.output %next : !df.tensor<[B], i32>
  }
}
