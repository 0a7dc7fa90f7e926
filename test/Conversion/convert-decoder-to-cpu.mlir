// RUN: decc-opt %s --convert-decoder-to-cpu | FileCheck %s

!cache = !decoder.kv_cache<layers = 1, kv_heads = 2, head_dim = 32, element = f32>

// The manifest records each weight's place in the arena and its parts.
// CHECK: module attributes {decc.manifest = "{\22arena_bytes\22:
// CHECK-SAME: \22tensor\22:\22qkv.weight\22

// The entry point the runtime calls: weight arena, tokens, positions, K and
// V caches, RoPE state, logits of the last rows.
// CHECK-LABEL: func.func @decc_forward(
// CHECK-SAME: %[[ARENA:[a-z0-9]+]]: memref<?xi8>, %[[TOK:[a-z0-9]+]]: memref<?xi64>, %[[POS:[a-z0-9]+]]: memref<?xi64>,
// CHECK-SAME: %[[K:[a-z0-9]+]]: memref<1x2x?x32xf32>, %[[V:[a-z0-9]+]]: memref<1x2x?x32xf32>, %{{.*}}: memref<?xi64>,
// CHECK-SAME: %[[LOGITS:[a-z0-9]+]]: memref<?x512xf32>) attributes {llvm.emit_c_interface}
//
// Weights are views at fixed offsets of the arena (64-byte aligned).
// CHECK-DAG: memref.view %[[ARENA]][%{{.*}}][] : memref<?xi8> to memref<512x128xbf16>
// CHECK-DAG: memref.view %[[ARENA]][%{{.*}}][] : memref<?xi8> to memref<256x128xbf16>
// CHECK-DAG: memref.view %[[ARENA]][%{{.*}}][] : memref<?xi8> to memref<128xbf16>
//
// RoPE angles once per call, from a constant table of inverse frequencies.
// CHECK-DAG: memref.get_global @rope_inv_freq_{{[0-9]+}} : memref<16xf32>
// CHECK-DAG: math.cos
// CHECK-DAG: math.sin
//
// The embedding gathers rows in parallel; bf16 is widened in vector
// registers.
// CHECK: scf.parallel
// CHECK: vector.load %{{.*}} : memref<512x128xbf16>, vector<16xbf16>
// CHECK: arith.extf %{{.*}} : vector<16xbf16> to vector<16xf32>
//
// The QKV projection with its RMSNorm prologue, dot products with vector FMAs,
// q stored and k / v written into the caches.
// CHECK: math.rsqrt
// CHECK: vector.fma
// CHECK: vector.reduction <add>
// CHECK: memref.store %{{.*}}, %[[K]]
// CHECK: memref.store %{{.*}}, %[[V]]
//
// Flash attention: the decode step (one token) splits the keys; a prompt
// takes the row-parallel path.
// CHECK: scf.if
// CHECK: scf.parallel
// CHECK: math.exp
// CHECK: } else {
// CHECK: scf.parallel
//
// The output projection adds the residual; the LM head writes %logits.
// CHECK: memref.store %{{.*}}, %[[LOGITS]]
// CHECK: return
func.func @forward(%tokens: tensor<?xi64>, %pos: tensor<?xi64>, %c: !cache) -> tensor<?x512xf32> {
  %e = decoder.weight "embed.weight" : tensor<512x128xbf16>
  %h = decoder.embedding %tokens, %e : tensor<?xi64>, tensor<512x128xbf16> -> tensor<?x128xf32>
  %g = decoder.weight "norm.weight" : tensor<128xbf16>
  %w = decoder.weight "qkv.weight" : tensor<256x128xbf16>
  %q = decoder.fused_linear %h, %w norm(%g) append(%pos, %c) {norm = #decoder.norm<rms>, norm_epsilon = 1.0e-05 : f64, layer = 0 : i64, rope = #decoder.rope<kind = default, theta = 10000.0, rotary_dim = 32>} : (tensor<?x128xf32>, tensor<256x128xbf16>, tensor<128xbf16>, tensor<?xi64>, !cache) -> tensor<?x4x32xf32>
  %a = decoder.cached_attention %q, %pos, %c {layer = 0 : i64, config = #decoder.attention<num_heads = 4, num_kv_heads = 2, head_dim = 32, softmax_scale = 0.1767766952966369>} : tensor<?x4x32xf32>, tensor<?xi64>, !cache -> tensor<?x4x32xf32>
  %wo = decoder.weight "o.weight" : tensor<128x128xbf16>
  %r = decoder.fused_linear %a, %wo residual %h : (tensor<?x4x32xf32>, tensor<128x128xbf16>, tensor<?x128xf32>) -> tensor<?x128xf32>
  %l = decoder.lm_head %r, %e : tensor<?x128xf32>, tensor<512x128xbf16> -> tensor<?x512xf32>
  return %l : tensor<?x512xf32>
}
