// RUN: decc-opt %s --decoder-fuse-rope-kv-append --split-input-file | FileCheck %s

!cache = !decoder.kv_cache<layers = 2, kv_heads = 2, head_dim = 32, element = f32>

// q and k rotated, then attention: the projection rotates q and k and
// appends k and v to the cache itself; attention reads only the cache.
// CHECK-LABEL: func.func @rope_append
// CHECK: %[[Q:.*]] = decoder.fused_linear %arg0, %{{.*}} append(%arg1, %arg2) {layer = 1 : i64, rope = #decoder.rope<kind = default, theta = 10000.0, rotary_dim = 32>} : (tensor<?x128xf32>, tensor<256x128xf32>, tensor<?xi64>, !decoder.kv_cache<layers = 2, kv_heads = 2, head_dim = 32, element = f32>) -> tensor<?x4x32xf32>
// CHECK-NOT: decoder.rope
// CHECK: %[[A:.*]] = decoder.cached_attention %[[Q]], %arg1, %arg2 {config = #decoder.attention<num_heads = 4, num_kv_heads = 2, head_dim = 32, softmax_scale = 0.1767766952966369>, layer = 1 : i64}
// CHECK: return %[[A]]
func.func @rope_append(%h: tensor<?x128xf32>, %pos: tensor<?xi64>, %c: !cache) -> tensor<?x4x32xf32> {
  %w = decoder.weight "qkv.weight" : tensor<256x128xf32>
  %q, %k, %v = decoder.linear %h, %w : tensor<?x128xf32>, tensor<256x128xf32> -> tensor<?x4x32xf32>, tensor<?x2x32xf32>, tensor<?x2x32xf32>
  %qr = decoder.rope %q, %pos {rope = #decoder.rope<kind = default, theta = 10000.0, rotary_dim = 32>} : tensor<?x4x32xf32>, tensor<?xi64>
  %kr = decoder.rope %k, %pos {rope = #decoder.rope<kind = default, theta = 10000.0, rotary_dim = 32>} : tensor<?x2x32xf32>, tensor<?xi64>
  %a = decoder.attention %qr, %kr, %v, %pos, %c {layer = 1 : i64, config = #decoder.attention<num_heads = 4, num_kv_heads = 2, head_dim = 32, softmax_scale = 0.1767766952966369>} : tensor<?x4x32xf32>, tensor<?x2x32xf32>, tensor<?x2x32xf32>, tensor<?xi64>, !cache -> tensor<?x4x32xf32>
  return %a : tensor<?x4x32xf32>
}

// -----

!cache = !decoder.kv_cache<layers = 1, kv_heads = 4, head_dim = 32, element = f32>

// Without RoPE (MPT's ALiBi) the append is fused all the same.
// CHECK-LABEL: func.func @alibi
// CHECK: decoder.fused_linear %arg0, %{{.*}} append(%arg1, %arg2) {layer = 0 : i64} :
// CHECK: decoder.cached_attention
func.func @alibi(%h: tensor<?x128xf32>, %pos: tensor<?xi64>, %c: !cache) -> tensor<?x4x32xf32> {
  %w = decoder.weight "Wqkv.weight" : tensor<384x128xf32>
  %q, %k, %v = decoder.linear %h, %w : tensor<?x128xf32>, tensor<384x128xf32> -> tensor<?x4x32xf32>, tensor<?x4x32xf32>, tensor<?x4x32xf32>
  %a = decoder.attention %q, %k, %v, %pos, %c {layer = 0 : i64, config = #decoder.attention<num_heads = 4, num_kv_heads = 4, head_dim = 32, softmax_scale = 0.1767766952966369, alibi_bias_max = 8.0>} : tensor<?x4x32xf32>, tensor<?x4x32xf32>, tensor<?x4x32xf32>, tensor<?xi64>, !cache -> tensor<?x4x32xf32>
  return %a : tensor<?x4x32xf32>
}

// -----

!cache = !decoder.kv_cache<layers = 1, kv_heads = 2, head_dim = 32, element = f32>

// Keys that are also used elsewhere must exist as a tensor: no fusion.
// CHECK-LABEL: func.func @key_escapes
// CHECK: decoder.attention
// CHECK-NOT: decoder.cached_attention
func.func @key_escapes(%h: tensor<?x128xf32>, %pos: tensor<?xi64>, %c: !cache) -> (tensor<?x4x32xf32>, tensor<?x2x32xf32>) {
  %w = decoder.weight "qkv.weight" : tensor<256x128xf32>
  %q, %k, %v = decoder.linear %h, %w : tensor<?x128xf32>, tensor<256x128xf32> -> tensor<?x4x32xf32>, tensor<?x2x32xf32>, tensor<?x2x32xf32>
  %a = decoder.attention %q, %k, %v, %pos, %c {layer = 0 : i64, config = #decoder.attention<num_heads = 4, num_kv_heads = 2, head_dim = 32, softmax_scale = 0.1767766952966369>} : tensor<?x4x32xf32>, tensor<?x2x32xf32>, tensor<?x2x32xf32>, tensor<?xi64>, !cache -> tensor<?x4x32xf32>
  return %a, %k : tensor<?x4x32xf32>, tensor<?x2x32xf32>
}
