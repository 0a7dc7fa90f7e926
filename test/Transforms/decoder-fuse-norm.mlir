// RUN: decc-opt %s --decoder-fuse-norm --split-input-file | FileCheck %s

// An RMSNorm read by two projections (q/k/v, gate/up) and the LM head: each
// normalizes its input in its prologue, the norm op disappears.
// CHECK-LABEL: func.func @rms
// CHECK-NOT: decoder.rms_norm
// CHECK: decoder.fused_linear %arg0, %{{.*}} norm(%[[G:.*]]) {norm = #decoder.norm<rms>, norm_epsilon = 1.000000e-05 : f64}
// CHECK: decoder.fused_linear %arg0, %{{.*}} norm(%[[G]]) {norm = #decoder.norm<rms>, norm_epsilon = 1.000000e-05 : f64} : (tensor<?x64xf32>, tensor<512x64xf32>, tensor<64xf32>) -> tensor<?x512xf32>
func.func @rms(%h: tensor<?x64xf32>) -> (tensor<?x64xf32>, tensor<?x512xf32>) {
  %g = decoder.weight "norm.weight" : tensor<64xf32>
  %n = decoder.rms_norm %h, %g {epsilon = 1.0e-05 : f64} : tensor<?x64xf32>, tensor<64xf32>
  %w = decoder.weight "w.weight" : tensor<64x64xf32>
  %y = decoder.linear %n, %w : tensor<?x64xf32>, tensor<64x64xf32> -> tensor<?x64xf32>
  %e = decoder.weight "lm_head.weight" : tensor<512x64xf32>
  %l = decoder.lm_head %n, %e : tensor<?x64xf32>, tensor<512x64xf32> -> tensor<?x512xf32>
  return %y, %l : tensor<?x64xf32>, tensor<?x512xf32>
}

// -----

// LayerNorm with a bias keeps it.
// CHECK-LABEL: func.func @layer
// CHECK: decoder.fused_linear %arg0, %{{.*}} norm(%{{.*}}, %{{.*}}) {norm = #decoder.norm<layer>
func.func @layer(%h: tensor<?x64xf32>) -> tensor<?x64xf32> {
  %g = decoder.weight "norm.weight" : tensor<64xf32>
  %b = decoder.weight "norm.bias" : tensor<64xf32>
  %n = decoder.layer_norm %h, %g, %b {epsilon = 1.0e-05 : f64} : tensor<?x64xf32>, tensor<64xf32>, tensor<64xf32>
  %w = decoder.weight "w.weight" : tensor<64x64xf32>
  %y = decoder.linear %n, %w : tensor<?x64xf32>, tensor<64x64xf32> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// -----

// A norm whose result is also used by something else stays.
// CHECK-LABEL: func.func @escapes
// CHECK: decoder.rms_norm
// CHECK: decoder.linear
func.func @escapes(%h: tensor<?x64xf32>) -> (tensor<?x64xf32>, tensor<?x64xf32>) {
  %g = decoder.weight "norm.weight" : tensor<64xf32>
  %n = decoder.rms_norm %h, %g {epsilon = 1.0e-05 : f64} : tensor<?x64xf32>, tensor<64xf32>
  %w = decoder.weight "w.weight" : tensor<64x64xf32>
  %y = decoder.linear %n, %w : tensor<?x64xf32>, tensor<64x64xf32> -> tensor<?x64xf32>
  return %y, %n : tensor<?x64xf32>, tensor<?x64xf32>
}
