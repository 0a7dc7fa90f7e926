// RUN: decc-opt %s -split-input-file -verify-diagnostics

// expected-error @+1 {{longrope short_factor has 1 and long_factor 2 entries; rotary_dim 4 needs 2}}
func.func @longrope_length() attributes {r = #decoder.rope<kind = longrope, theta = 10000.0, rotary_dim = 4, original_max_positions = 32, short_factor = [1.0], long_factor = [1.0, 2.0]>} {
  return
}

// -----

// expected-error @+1 {{rope kind 'longrope' needs original_max_positions}}
func.func @longrope_original() attributes {r = #decoder.rope<kind = longrope, theta = 10000.0, rotary_dim = 2, short_factor = [1.0], long_factor = [1.0]>} {
  return
}

// -----

// expected-error @+1 {{longrope factors must be positive, got -1}}
func.func @longrope_sign() attributes {r = #decoder.rope<kind = longrope, theta = 10000.0, rotary_dim = 2, original_max_positions = 8, short_factor = [-1.0], long_factor = [1.0]>} {
  return
}

// -----

// expected-error @+1 {{rope kind 'linear' takes no short_factor/long_factor}}
func.func @factors_on_linear() attributes {r = #decoder.rope<kind = linear, theta = 10000.0, rotary_dim = 2, factor = 2.0, short_factor = [1.0]>} {
  return
}

// -----

// expected-error @+1 {{rope rotary_dim must be positive and even, got 7}}
func.func @rotary_odd() attributes {r = #decoder.rope<kind = default, theta = 10000.0, rotary_dim = 7>} {
  return
}

// -----

// expected-error @+1 {{rope rotary_dim must be positive and even, got 0}}
func.func @rotary_zero() attributes {r = #decoder.rope<kind = default, theta = 10000.0, rotary_dim = 0>} {
  return
}

// -----

// expected-error @+1 {{rope theta must be positive, got -1}}
func.func @theta() attributes {r = #decoder.rope<kind = default, theta = -1.0, rotary_dim = 8>} {
  return
}

// -----

// expected-error @+1 {{rope factor must be positive, got 0}}
func.func @factor() attributes {r = #decoder.rope<kind = linear, theta = 10.0, rotary_dim = 8, factor = 0.0>} {
  return
}

// -----

// expected-error @+1 {{rope kind 'dynamic' needs max_positions}}
func.func @dynamic() attributes {r = #decoder.rope<kind = dynamic, theta = 10.0, rotary_dim = 8, factor = 2.0>} {
  return
}

// -----

// expected-error @+1 {{yarn beta_fast (1) must exceed beta_slow (32)}}
func.func @yarn_beta() attributes {r = #decoder.rope<kind = yarn, theta = 10.0, rotary_dim = 8, factor = 2.0, original_max_positions = 8, beta_fast = 1.0, beta_slow = 32.0>} {
  return
}

// -----

// expected-error @+1 {{llama3 high_freq_factor (1) must exceed low_freq_factor (4) > 0}}
func.func @llama3_band() attributes {r = #decoder.rope<kind = llama3, theta = 10.0, rotary_dim = 8, factor = 8.0, original_max_positions = 8192, low_freq_factor = 4.0, high_freq_factor = 1.0>} {
  return
}

// -----

// expected-error @+3 {{unexpected decimal integer literal for a floating point value}}
// expected-note @+2 {{add a trailing dot to make the literal a float}}
// expected-error @+1 {{failed to parse Decoder_RoPEAttr parameter 'theta'}}
func.func @theta_integer() attributes {r = #decoder.rope<kind = default, theta = 10000, rotary_dim = 8>} {
  return
}

// -----

// expected-error @+2 {{expected ::mlir::decoder::RoPEKind to be one of: default, linear, dynamic, longrope, yarn, llama3}}
// expected-error @+1 {{failed to parse Decoder_RoPEAttr parameter 'kind'}}
func.func @rope_kind() attributes {r = #decoder.rope<kind = ntk, theta = 10.0, rotary_dim = 8>} {
  return
}

// -----

// expected-error @+1 {{attention num_heads 8 is not divisible by num_kv_heads 3}}
func.func @heads() attributes {a = #decoder.attention<num_heads = 8, num_kv_heads = 3, head_dim = 32, softmax_scale = 0.1>} {
  return
}

// -----

// expected-error @+1 {{attention num_heads (0), num_kv_heads (1) and head_dim (32) must be positive}}
func.func @zero_heads() attributes {a = #decoder.attention<num_heads = 0, num_kv_heads = 1, head_dim = 32, softmax_scale = 0.1>} {
  return
}

// -----

// expected-error @+1 {{attention softmax_scale must be positive, got -0.1}}
func.func @scale() attributes {a = #decoder.attention<num_heads = 1, num_kv_heads = 1, head_dim = 32, softmax_scale = -0.1>} {
  return
}

// -----

// expected-error @+1 {{attention alibi_bias_max (-8) and clip_qkv (0) must not be negative}}
func.func @alibi() attributes {a = #decoder.attention<num_heads = 1, num_kv_heads = 1, head_dim = 32, softmax_scale = 0.1, alibi_bias_max = -8.0>} {
  return
}

// -----

// A rank's heads take their ALiBi slopes from whole multiples of them.
// expected-error @+1 {{attention alibi_heads 6 must be a multiple of num_heads 4, with ALiBi}}
func.func @alibiHeads() attributes {a = #decoder.attention<num_heads = 4, num_kv_heads = 4, head_dim = 32, softmax_scale = 0.1, alibi_bias_max = 8.0, alibi_heads = 6>} {
  return
}

// -----

// expected-error @+1 {{attention alibi_heads 8 must be a multiple of num_heads 4, with ALiBi}}
func.func @alibiHeadsWithoutAlibi() attributes {a = #decoder.attention<num_heads = 4, num_kv_heads = 4, head_dim = 32, softmax_scale = 0.1, alibi_heads = 8>} {
  return
}

// -----

// expected-error @+1 {{attention sliding_window must not be negative, got -4}}
func.func @window() attributes {a = #decoder.attention<num_heads = 1, num_kv_heads = 1, head_dim = 32, softmax_scale = 0.1, sliding_window = -4>} {
  return
}

// -----

// expected-error @+2 {{expected 'true' or 'false'}}
// expected-error @+1 {{failed to parse Decoder_AttentionConfigAttr parameter 'causal'}}
func.func @causal() attributes {a = #decoder.attention<num_heads = 1, num_kv_heads = 1, head_dim = 32, softmax_scale = 0.1, causal = 1>} {
  return
}

// -----

// expected-error @+2 {{expected one of [eager, flash] for how attention is computed, got: sdpa}}
// expected-error @+1 {{failed to parse Decoder_AttentionConfigAttr parameter 'backend'}}
func.func @backend() attributes {a = #decoder.attention<num_heads = 1, num_kv_heads = 1, head_dim = 32, softmax_scale = 0.1, backend = sdpa>} {
  return
}

// -----

// expected-error @+1 {{quantized weights have 8 or 4 bits a value, got 2}}
func.func @quantized_bits() attributes {q = #decoder.quantized<bits = 2, group_size = 128>} {
  return
}

// -----

// expected-error @+1 {{quantization group_size must be positive, got 0}}
func.func @quantized_group() attributes {q = #decoder.quantized<bits = 8, group_size = 0>} {
  return
}
