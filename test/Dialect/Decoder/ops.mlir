// RUN: decc-opt %s | decc-opt | FileCheck %s
// RUN: decc-opt %s --mlir-print-op-generic | decc-opt | FileCheck %s

// CHECK-LABEL: func.func @weight
func.func @weight() -> tensor<512x256xbf16> {
  // CHECK: %layers.0.attention.wqkv = decoder.weight "model.layers.0.attention.wqkv.weight" : tensor<512x256xbf16>
  %w = decoder.weight "model.layers.0.attention.wqkv.weight" : tensor<512x256xbf16>
  return %w : tensor<512x256xbf16>
}

// CHECK-LABEL: func.func @embedding
func.func @embedding(%ids: tensor<?xi64>, %table: tensor<1024x256xf32>) -> tensor<?x256xf32> {
  // CHECK: %embed = decoder.embedding %{{.*}}, %{{.*}} : tensor<?xi64>, tensor<1024x256xf32> -> tensor<?x256xf32>
  %h = decoder.embedding %ids, %table : tensor<?xi64>, tensor<1024x256xf32> -> tensor<?x256xf32>
  return %h : tensor<?x256xf32>
}

// CHECK-LABEL: func.func @rms_norm
func.func @rms_norm(%x: tensor<?x256xf32>, %w: tensor<256xbf16>) -> tensor<?x256xf32> {
  // CHECK: decoder.rms_norm %{{.*}}, %{{.*}} {epsilon = 1.000000e-05 : f64} : tensor<?x256xf32>, tensor<256xbf16>
  %n = decoder.rms_norm %x, %w {epsilon = 1.0e-05 : f64} : tensor<?x256xf32>, tensor<256xbf16>
  return %n : tensor<?x256xf32>
}

// Per head: every head of a token together (InternViT-6B's q/k norm).
// CHECK-LABEL: func.func @rms_norm_heads
func.func @rms_norm_heads(%q: tensor<?x4x16xf32>, %w: tensor<64xf32>) -> tensor<?x4x16xf32> {
  // CHECK: decoder.rms_norm %{{.*}}, %{{.*}} {epsilon = 9.9999999999999995E-7 : f64} : tensor<?x4x16xf32>, tensor<64xf32>
  %n = decoder.rms_norm %q, %w {epsilon = 1.0e-06 : f64} : tensor<?x4x16xf32>, tensor<64xf32>
  return %n : tensor<?x4x16xf32>
}

// CHECK-LABEL: func.func @layer_norm
func.func @layer_norm(%x: tensor<4x128xf32>, %w: tensor<128xf32>, %b: tensor<128xf32>) -> (tensor<4x128xf32>, tensor<4x128xf32>) {
  // CHECK: decoder.layer_norm %{{.*}}, %{{.*}} {epsilon = 1.000000e-05 : f64} : tensor<4x128xf32>, tensor<128xf32>
  %n = decoder.layer_norm %x, %w {epsilon = 1.0e-05 : f64} : tensor<4x128xf32>, tensor<128xf32>
  // CHECK: decoder.layer_norm %{{.*}}, %{{.*}}, %{{.*}} {epsilon = 1.000000e-05 : f64} : tensor<4x128xf32>, tensor<128xf32>, tensor<128xf32>
  %m = decoder.layer_norm %x, %w, %b {epsilon = 1.0e-05 : f64} : tensor<4x128xf32>, tensor<128xf32>, tensor<128xf32>
  return %n, %m : tensor<4x128xf32>, tensor<4x128xf32>
}

// CHECK-LABEL: func.func @linear
func.func @linear(%x: tensor<?x256xf32>, %a: tensor<?x8x32xf32>, %wqkv: tensor<384x256xf32>,
                  %bqkv: tensor<384xf32>, %wo: tensor<256x256xf16>, %gu: tensor<1376x256xf32>) {
  // CHECK: %q, %k, %v = decoder.linear %{{.*}}, %{{.*}} {packing = #decoder.packing<kv_grouped>} : tensor<?x256xf32>, tensor<384x256xf32> -> tensor<?x8x32xf32>, tensor<?x2x32xf32>, tensor<?x2x32xf32>
  %q, %k, %v = decoder.linear %x, %wqkv {packing = #decoder.packing<kv_grouped>}
      : tensor<?x256xf32>, tensor<384x256xf32> -> tensor<?x8x32xf32>, tensor<?x2x32xf32>, tensor<?x2x32xf32>
  // CHECK: decoder.linear %{{.*}}, %{{.*}} bias %{{.*}} : tensor<?x256xf32>, tensor<384x256xf32>, tensor<384xf32> -> tensor<?x256xf32>, tensor<?x2x32xf32>, tensor<?x2x32xf32>
  %q2, %k2, %v2 = decoder.linear %x, %wqkv bias %bqkv
      : tensor<?x256xf32>, tensor<384x256xf32>, tensor<384xf32> -> tensor<?x256xf32>, tensor<?x2x32xf32>, tensor<?x2x32xf32>
  // CHECK: decoder.linear %{{.*}}, %{{.*}} : tensor<?x8x32xf32>, tensor<256x256xf16> -> tensor<?x256xf32>
  %o = decoder.linear %a, %wo : tensor<?x8x32xf32>, tensor<256x256xf16> -> tensor<?x256xf32>
  // CHECK: %gate, %up = decoder.linear
  %g, %u = decoder.linear %x, %gu : tensor<?x256xf32>, tensor<1376x256xf32> -> tensor<?x688xf32>, tensor<?x688xf32>
  return
}

// CHECK-LABEL: func.func @lm_head
func.func @lm_head(%h: tensor<?x256xf32>, %w: tensor<1024x256xbf16>) -> tensor<?x1024xf32> {
  // CHECK: %logits = decoder.lm_head %{{.*}}, %{{.*}} : tensor<?x256xf32>, tensor<1024x256xbf16> -> tensor<?x1024xf32>
  %l = decoder.lm_head %h, %w : tensor<?x256xf32>, tensor<1024x256xbf16> -> tensor<?x1024xf32>
  return %l : tensor<?x1024xf32>
}

// CHECK-LABEL: func.func @rope
func.func @rope(%q: tensor<?x4x32xf32>, %pos: tensor<?xi64>) -> tensor<?x4x32xf32> {
  // CHECK: decoder.rope %{{.*}}, %{{.*}} {rope = #decoder.rope<kind = default, theta = 10000.0, rotary_dim = 16>} : tensor<?x4x32xf32>, tensor<?xi64>
  %r = decoder.rope %q, %pos {rope = #decoder.rope<kind = default, theta = 10000.0, rotary_dim = 16>} : tensor<?x4x32xf32>, tensor<?xi64>
  return %r : tensor<?x4x32xf32>
}

!cache = !decoder.kv_cache<layers = 2, kv_heads = 1, head_dim = 32, element = f32>

// CHECK-LABEL: func.func @attention
func.func @attention(%q: tensor<?x4x32xf32>, %k: tensor<?x1x32xf32>, %v: tensor<?x1x32xf32>,
                     %pos: tensor<?xi64>, %cache: !cache) -> tensor<?x4x32xf32> {
  // CHECK: %attn = decoder.attention %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} {config = #decoder.attention<num_heads = 4, num_kv_heads = 1, head_dim = 32, softmax_scale = 0.17677669529663687, alibi_bias_max = 8.0, clip_qkv = 6.0, backend = eager>, layer = 1 : i64} : tensor<?x4x32xf32>, tensor<?x1x32xf32>, tensor<?x1x32xf32>, tensor<?xi64>, !decoder.kv_cache<layers = 2, kv_heads = 1, head_dim = 32, element = f32> -> tensor<?x4x32xf32>
  %a = decoder.attention %q, %k, %v, %pos, %cache {layer = 1 : i64,
         config = #decoder.attention<num_heads = 4, num_kv_heads = 1, head_dim = 32,
                                     softmax_scale = 0.17677669529663687, causal = true,
                                     alibi_bias_max = 8.0, clip_qkv = 6.0, backend = eager>}
      : tensor<?x4x32xf32>, tensor<?x1x32xf32>, tensor<?x1x32xf32>, tensor<?xi64>, !cache -> tensor<?x4x32xf32>
  return %a : tensor<?x4x32xf32>
}

// CHECK-LABEL: func.func @elementwise
func.func @elementwise(%a: tensor<?x688xf32>, %b: tensor<?x688xf32>) -> (tensor<?x688xf32>, tensor<?x688xf32>, tensor<?x688xf32>, tensor<?x688xf32>) {
  // CHECK: %act = decoder.swiglu %{{.*}}, %{{.*}} : tensor<?x688xf32>
  %s = decoder.swiglu %a, %b : tensor<?x688xf32>
  // CHECK: decoder.gelu %{{.*}} : tensor<?x688xf32>
  %g = decoder.gelu %a : tensor<?x688xf32>
  // CHECK: decoder.gelu %{{.*}} {approximate = #decoder.gelu_approximation<tanh>} : tensor<?x688xf32>
  %t = decoder.gelu %a {approximate = #decoder.gelu_approximation<tanh>} : tensor<?x688xf32>
  // CHECK: %residual = decoder.add %{{.*}}, %{{.*}} : tensor<?x688xf32>
  %r = decoder.add %a, %b : tensor<?x688xf32>
  return %s, %g, %t, %r : tensor<?x688xf32>, tensor<?x688xf32>, tensor<?x688xf32>, tensor<?x688xf32>
}

// A quantized projection: int8 weights with their encoding, f32 activations.
// CHECK-LABEL: func.func @quantized_linear
// CHECK: decoder.weight "w" : tensor<64x172xi8, #decoder.quantized<bits = 8, group_size = 32>>
// CHECK: decoder.linear %{{.*}}, %{{.*}} : tensor<?x172xf32>, tensor<64x172xi8, #decoder.quantized<bits = 8, group_size = 32>> -> tensor<?x64xf32>
func.func @quantized_linear(%x: tensor<?x172xf32>) -> tensor<?x64xf32> {
  %w = decoder.weight "w" : tensor<64x172xi8, #decoder.quantized<bits = 8, group_size = 32>>
  %y = decoder.linear %x, %w : tensor<?x172xf32>, tensor<64x172xi8, #decoder.quantized<bits = 8, group_size = 32>> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// int4 weights (asymmetric, AWQ's groups of 128) are i4 tensors.
// CHECK-LABEL: func.func @int4_linear
// CHECK: decoder.weight "w" : tensor<64x172xi4, #decoder.quantized<bits = 4, group_size = 128>>
func.func @int4_linear(%x: tensor<?x172xf32>) -> tensor<?x64xf32> {
  %w = decoder.weight "w" : tensor<64x172xi4, #decoder.quantized<bits = 4, group_size = 128>>
  %y = decoder.linear %x, %w : tensor<?x172xf32>, tensor<64x172xi4, #decoder.quantized<bits = 4, group_size = 128>> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// The vision encoder's ops (InternViT, InternVL's projector).
// CHECK-LABEL: func.func @vision_ops
func.func @vision_ops(%pixels: tensor<?x3x28x28xf32>, %w: tensor<8x3x14x14xbf16>, %b: tensor<8xbf16>, %cls: tensor<1x1x8xbf16>, %pos: tensor<1x5x8xbf16>, %ls: tensor<8xbf16>) -> tensor<?x32xf32> {
  // CHECK: %embed = decoder.patch_embedding %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} : tensor<?x3x28x28xf32>, tensor<8x3x14x14xbf16>, tensor<8xbf16>, tensor<1x1x8xbf16>, tensor<1x5x8xbf16> -> tensor<?x8xf32>
  %x = decoder.patch_embedding %pixels, %w, %b, %cls, %pos : tensor<?x3x28x28xf32>, tensor<8x3x14x14xbf16>, tensor<8xbf16>, tensor<1x1x8xbf16>, tensor<1x5x8xbf16> -> tensor<?x8xf32>
  // CHECK: %scaled = decoder.layer_scale %embed, %{{.*}} : tensor<?x8xf32>, tensor<8xbf16>
  %s = decoder.layer_scale %x, %ls : tensor<?x8xf32>, tensor<8xbf16>
  // CHECK: %shuffled = decoder.pixel_shuffle %scaled {ratio = 5.000000e-01 : f64, sequence = 5 : i64, skip = 1 : i64} : tensor<?x8xf32> -> tensor<?x32xf32>
  %p = decoder.pixel_shuffle %s {sequence = 5 : i64, skip = 1 : i64, ratio = 0.5 : f64} : tensor<?x8xf32> -> tensor<?x32xf32>
  return %p : tensor<?x32xf32>
}

// CHECK-LABEL: func.func @encoder_attention
func.func @encoder_attention(%q: tensor<?x2x4xf32>, %k: tensor<?x2x4xf32>, %v: tensor<?x2x4xf32>) -> tensor<?x2x4xf32> {
  // CHECK: %attn = decoder.encoder_attention %{{.*}}, %{{.*}}, %{{.*}} {sequence = 5 : i64, softmax_scale = 5.000000e-01 : f64} : tensor<?x2x4xf32>
  %a = decoder.encoder_attention %q, %k, %v {sequence = 5 : i64, softmax_scale = 0.5 : f64} : tensor<?x2x4xf32>
  return %a : tensor<?x2x4xf32>
}

// CHECK-LABEL: func.func @embedding_with_image_rows
func.func @embedding_with_image_rows(%ids: tensor<?xi64>, %table: tensor<1024x256xf32>, %image: tensor<?x256xf32>) -> tensor<?x256xf32> {
  // CHECK: %embed = decoder.embedding %{{.*}}, %{{.*}}, %{{.*}} : tensor<?xi64>, tensor<1024x256xf32>, tensor<?x256xf32> -> tensor<?x256xf32>
  %h = decoder.embedding %ids, %table, %image : tensor<?xi64>, tensor<1024x256xf32>, tensor<?x256xf32> -> tensor<?x256xf32>
  return %h : tensor<?x256xf32>
}

// A tensor-parallel shard and the collectives.
// CHECK-LABEL: func.func @collectives
func.func @collectives(%x: tensor<?x64xf32>) -> tensor<?x128xf32> {
  // CHECK: decoder.weight "o.weight" {shard_dim = 1 : i64, shard_ranges = array<i64: 0, 32, 32, 64>} : tensor<64x32xf32>
  %w = decoder.weight "o.weight" {shard_dim = 1 : i64, shard_ranges = array<i64: 0, 32, 32, 64>} : tensor<64x32xf32>
  // CHECK: %reduced = decoder.all_reduce %{{.*}} {ranks = 2 : i64} : tensor<?x64xf32>
  %r = decoder.all_reduce %x {ranks = 2 : i64} : tensor<?x64xf32>
  // CHECK: %gathered = decoder.all_gather %{{.*}} {ranks = 2 : i64} : tensor<?x64xf32> -> tensor<?x128xf32>
  %g = decoder.all_gather %r {ranks = 2 : i64} : tensor<?x64xf32> -> tensor<?x128xf32>
  return %g : tensor<?x128xf32>
}
