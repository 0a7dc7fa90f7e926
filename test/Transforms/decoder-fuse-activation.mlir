// RUN: decc-opt %s --decoder-fuse-activation --split-input-file | FileCheck %s

// silu(gate) * up of one packed [gate | up] projection.
// CHECK-LABEL: func.func @swiglu
// CHECK: %[[ACT:.*]] = decoder.fused_linear %arg0, %{{.*}} {activation = #decoder.activation<swiglu>} : (tensor<?x64xf32>, tensor<344x64xf32>) -> tensor<?x172xf32>
// CHECK-NOT: decoder.swiglu
// CHECK: return %[[ACT]]
func.func @swiglu(%h: tensor<?x64xf32>) -> tensor<?x172xf32> {
  %w = decoder.weight "gate_up.weight" : tensor<344x64xf32>
  %gate, %up = decoder.linear %h, %w : tensor<?x64xf32>, tensor<344x64xf32> -> tensor<?x172xf32>, tensor<?x172xf32>
  %a = decoder.swiglu %gate, %up : tensor<?x172xf32>
  return %a : tensor<?x172xf32>
}

// -----

// Exact and tanh GELU.
// CHECK-LABEL: func.func @gelu
// CHECK: decoder.fused_linear {{.*}}activation = #decoder.activation<gelu>
// CHECK: decoder.fused_linear {{.*}}activation = #decoder.activation<gelu_tanh>
// CHECK-NOT: decoder.gelu
func.func @gelu(%h: tensor<?x64xf32>) -> (tensor<?x256xf32>, tensor<?x256xf32>) {
  %w = decoder.weight "up.weight" : tensor<256x64xf32>
  %u = decoder.linear %h, %w : tensor<?x64xf32>, tensor<256x64xf32> -> tensor<?x256xf32>
  %a = decoder.gelu %u : tensor<?x256xf32>
  %v = decoder.linear %h, %w : tensor<?x64xf32>, tensor<256x64xf32> -> tensor<?x256xf32>
  %b = decoder.gelu %v {approximate = #decoder.gelu_approximation<tanh>} : tensor<?x256xf32>
  return %a, %b : tensor<?x256xf32>, tensor<?x256xf32>
}

// -----

// Gate and up from two separate projections are not fused here (packing
// them is decoder-fuse-projections' job); nor is a projection whose output
// is also used elsewhere.
// CHECK-LABEL: func.func @not_fused
// CHECK: decoder.swiglu
// CHECK: decoder.gelu
func.func @not_fused(%h: tensor<?x64xf32>) -> (tensor<?x64xf32>, tensor<?x64xf32>, tensor<?x64xf32>) {
  %w = decoder.weight "w.weight" : tensor<64x64xf32>
  %g = decoder.linear %h, %w : tensor<?x64xf32>, tensor<64x64xf32> -> tensor<?x64xf32>
  %u = decoder.linear %h, %w : tensor<?x64xf32>, tensor<64x64xf32> -> tensor<?x64xf32>
  %a = decoder.swiglu %g, %u : tensor<?x64xf32>
  %b = decoder.gelu %g : tensor<?x64xf32>
  return %a, %b, %g : tensor<?x64xf32>, tensor<?x64xf32>, tensor<?x64xf32>
}
