// RUN: decc-opt %s --convert-decoder-to-gpu | FileCheck %s
// RUN: decc-opt %s --pass-pipeline='builtin.module(convert-decoder-to-gpu,gpu.module(convert-scf-to-cf,convert-gpu-to-nvvm{use-bare-ptr-memref-call-conv=1}))' | FileCheck %s --check-prefix=NVVM

!cache = !decoder.kv_cache<layers = 1, kv_heads = 2, head_dim = 32, element = f32>

// The launch plan: buffers, then every launch with its grid and the
// buffers bound to its arguments, in order; the arena's layout beside it.
// CHECK: module attributes {decc.manifest = "{\22arena_bytes\22:
// CHECK-SAME: \22kernel\22:\22embedding_0\22
// CHECK-SAME: \22kernel\22:\22rope_table_1\22
// CHECK-SAME: \22kernel\22:\22projection_2\22
// CHECK-SAME: \22kernel\22:\22attention_flash_3\22
// CHECK-SAME: \22when\22:\22prefill\22
// CHECK-SAME: \22kernel\22:\22attention_split_4\22
// CHECK-SAME: \22when\22:\22decode\22
// CHECK-SAME: \22target\22:\22cuda\22
// CHECK-SAME: gpu.container_module

// Kernels take bare pointers to flat buffers; weights are views of the arena.
// CHECK-LABEL: gpu.module @decc_kernels
// CHECK: gpu.func @embedding_0(%{{.*}}: memref<1099511627776xi8>, %{{.*}}: memref<1099511627776xi64>, %{{.*}}: memref<1099511627776xf32>) kernel
// CHECK: memref.view %{{.*}} : memref<1099511627776xi8> to memref<1099511627776xbf16>
// CHECK: arith.extf %{{.*}} : bf16 to f32

// The RoPE angles of this call, once.
// CHECK: gpu.func @rope_table_1(
// CHECK: math.cos

// The QKV projection with its RMSNorm fused: 128-bit loads of the weight
// (8 bf16), x.x gathered in the same loop, a shuffle tree per sum, then
// 1/sqrt(mean + eps); no separate norm kernel, no normalized copy of x.
// CHECK-NOT: gpu.func @norm
// CHECK: gpu.func @projection_2(
// CHECK: vector.load %{{.*}} {alignment = 16 : i64} : memref<1099511627776xbf16>, vector<8xbf16>
// CHECK: vector.fma
// CHECK: gpu.shuffle  xor %{{.*}}, %c16_i32, %c32_i32 : f32
// CHECK: math.rsqrt

// Flash attention for a prompt, split-KV for a decode step and its merge.
// CHECK: gpu.func @attention_flash_3(
// CHECK: math.exp
// CHECK: gpu.func @attention_split_4(
// CHECK: gpu.func @attention_merge_5(

// NVVM: gpu.module @decc_kernels
// NVVM: llvm.func @projection_2(
// NVVM-SAME: nvvm.kernel
// NVVM: nvvm.shfl.sync  bfly
func.func @forward(%tokens: tensor<?xi64>, %pos: tensor<?xi64>, %c: !cache) -> tensor<?x512xf32> {
  %e = decoder.weight "embed.weight" : tensor<512x256xbf16>
  %h = decoder.embedding %tokens, %e : tensor<?xi64>, tensor<512x256xbf16> -> tensor<?x256xf32>
  %g = decoder.weight "norm.weight" : tensor<256xbf16>
  %w = decoder.weight "qkv.weight" : tensor<256x256xbf16>
  %q = decoder.fused_linear %h, %w norm(%g) append(%pos, %c) {norm = #decoder.norm<rms>, norm_epsilon = 1.0e-05 : f64, layer = 0 : i64, rope = #decoder.rope<kind = default, theta = 10000.0, rotary_dim = 32>} : (tensor<?x256xf32>, tensor<256x256xbf16>, tensor<256xbf16>, tensor<?xi64>, !cache) -> tensor<?x4x32xf32>
  %a = decoder.cached_attention %q, %pos, %c {layer = 0 : i64, config = #decoder.attention<num_heads = 4, num_kv_heads = 2, head_dim = 32, softmax_scale = 0.1767766952966369>} : tensor<?x4x32xf32>, tensor<?xi64>, !cache -> tensor<?x4x32xf32>
  %wo = decoder.weight "o.weight" : tensor<256x128xbf16>
  %r = decoder.fused_linear %a, %wo residual %h : (tensor<?x4x32xf32>, tensor<256x128xbf16>, tensor<?x256xf32>) -> tensor<?x256xf32>
  %l = decoder.fused_linear %r, %e norm(%g) {norm = #decoder.norm<rms>, norm_epsilon = 1.0e-05 : f64} : (tensor<?x256xf32>, tensor<512x256xbf16>, tensor<256xbf16>) -> tensor<?x512xf32>
  return %l : tensor<?x512xf32>
}
