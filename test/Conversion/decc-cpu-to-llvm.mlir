// RUN: decc-opt %s --convert-decoder-to-cpu --decc-cpu-to-llvm | FileCheck %s

// The whole lowering reaches the LLVM dialect; parallel loops are OpenMP
// worksharing loops in the kernels (never inlined into the entry point),
// and every iteration's scratch is released per iteration.
// CHECK-LABEL: llvm.func @decc_kernel_0(
// CHECK-SAME: passthrough = ["noinline"]
// CHECK: omp.parallel
// CHECK: omp.wsloop
// CHECK: llvm.intr.stacksave
// CHECK: llvm.intr.stackrestore
// CHECK-LABEL: llvm.func @decc_forward(
// CHECK: llvm.call @decc_kernel_0(
// CHECK-LABEL: llvm.func @_mlir_ciface_decc_forward(
// CHECK-NOT: scf.
// CHECK-NOT: memref.
// CHECK-NOT: vector.

!cache = !decoder.kv_cache<layers = 1, kv_heads = 1, head_dim = 16, element = f32>

func.func @forward(%tokens: tensor<?xi64>, %pos: tensor<?xi64>, %c: !cache) -> tensor<?x64xf32> {
  %e = decoder.weight "embed.weight" : tensor<64x16xf32>
  %h = decoder.embedding %tokens, %e : tensor<?xi64>, tensor<64x16xf32> -> tensor<?x16xf32>
  %w = decoder.weight "qkv.weight" : tensor<48x16xf32>
  %q, %k, %v = decoder.linear %h, %w : tensor<?x16xf32>, tensor<48x16xf32> -> tensor<?x1x16xf32>, tensor<?x1x16xf32>, tensor<?x1x16xf32>
  %a = decoder.attention %q, %k, %v, %pos, %c {layer = 0 : i64, config = #decoder.attention<num_heads = 1, num_kv_heads = 1, head_dim = 16, softmax_scale = 0.25, alibi_bias_max = 8.0, backend = eager>} : tensor<?x1x16xf32>, tensor<?x1x16xf32>, tensor<?x1x16xf32>, tensor<?xi64>, !cache -> tensor<?x1x16xf32>
  %wo = decoder.weight "o.weight" : tensor<16x16xf32>
  %o = decoder.linear %a, %wo : tensor<?x1x16xf32>, tensor<16x16xf32> -> tensor<?x16xf32>
  %l = decoder.lm_head %o, %e : tensor<?x16xf32>, tensor<64x16xf32> -> tensor<?x64xf32>
  return %l : tensor<?x64xf32>
}
