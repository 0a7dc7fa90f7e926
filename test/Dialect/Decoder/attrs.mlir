// RUN: decc-opt %s | decc-opt | FileCheck %s
// Parameters equal to their defaults are elided; doubles print exactly.

// CHECK-LABEL: func.func @rope_kinds
func.func @rope_kinds() attributes {
  // CHECK-SAME: default = #decoder.rope<kind = default, theta = 10000.0, rotary_dim = 32>
  default = #decoder.rope<kind = default, theta = 10000.0, rotary_dim = 32, factor = 1.0>,
  // CHECK-SAME: dynamic = #decoder.rope<kind = dynamic, theta = 1.0e+06, rotary_dim = 32, factor = 2.0, max_positions = 64>
  dynamic = #decoder.rope<kind = dynamic, theta = 1.0e+06, rotary_dim = 32, factor = 2.0, max_positions = 64>,
  // CHECK-SAME: linear = #decoder.rope<kind = linear, theta = 1.0e+06, rotary_dim = 32, factor = 2.0>
  linear = #decoder.rope<kind = linear, theta = 1.0e6, rotary_dim = 32, factor = 2.0>,
  // CHECK-SAME: llama3 = #decoder.rope<kind = llama3, theta = 5.0e+05, rotary_dim = 128, factor = 8.0, original_max_positions = 8192>
  llama3 = #decoder.rope<kind = llama3, theta = 500000.0, rotary_dim = 128, factor = 8.0, original_max_positions = 8192,
                         low_freq_factor = 1.0, high_freq_factor = 4.0>,
  // CHECK-SAME: longrope = #decoder.rope<kind = longrope, theta = 10000.0, rotary_dim = 4, original_max_positions = 4096, short_factor = [1.1, 1.3000000000000003], long_factor = [1.0700000524520874, 64.76000213623047], attention_factor = 1.1902380714238083>
  longrope = #decoder.rope<kind = longrope, theta = 10000.0, rotary_dim = 4, original_max_positions = 4096,
                           short_factor = [1.1, 1.3000000000000003], long_factor = [1.0700000524520874, 64.76000213623047],
                           attention_factor = 1.1902380714238083>,
  // CHECK-SAME: yarn = #decoder.rope<kind = yarn, theta = 10000.0, rotary_dim = 32, factor = 4.0, original_max_positions = 32, attention_factor = 1.138629436111989, beta_fast = 16.0>
  yarn = #decoder.rope<kind = yarn, theta = 10000.0, rotary_dim = 32, factor = 4.0, original_max_positions = 32,
                       attention_factor = 1.1386294361119891, beta_fast = 16.0, beta_slow = 1.0>
} {
  return
}

// CHECK-LABEL: func.func @attention_configs
func.func @attention_configs() attributes {
  // CHECK-SAME: flash = #decoder.attention<num_heads = 32, num_kv_heads = 8, head_dim = 128, softmax_scale = 0.0883883476483184>
  flash = #decoder.attention<num_heads = 32, num_kv_heads = 8, head_dim = 128, softmax_scale = 0.088388347648318405, backend = flash>,
  // CHECK-SAME: windowed = #decoder.attention<num_heads = 4, num_kv_heads = 4, head_dim = 32, softmax_scale = 1.0, causal = false, sliding_window = 16, backend = eager>
  windowed = #decoder.attention<num_heads = 4, num_kv_heads = 4, head_dim = 32, softmax_scale = 1.0, causal = false, sliding_window = 16, backend = eager>
} {
  return
}

// CHECK-LABEL: func.func @cache
// CHECK-SAME: !decoder.kv_cache<layers = 24, kv_heads = 8, head_dim = 128, element = bf16>
func.func @cache(%c: !decoder.kv_cache<layers = 24, kv_heads = 8, head_dim = 128, element = bf16>) {
  return
}
