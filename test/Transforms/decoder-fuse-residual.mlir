// RUN: decc-opt %s --decoder-fuse-residual --split-input-file | FileCheck %s

// h + x W^T: the projection adds the residual stream in its epilogue.
// CHECK-LABEL: func.func @residual
// CHECK: %[[R:.*]] = decoder.fused_linear %arg1, %{{.*}} residual %arg0 : (tensor<?x64xf32>, tensor<64x64xf32>, tensor<?x64xf32>) -> tensor<?x64xf32>
// CHECK-NOT: decoder.add
// CHECK: return %[[R]]
func.func @residual(%h: tensor<?x64xf32>, %a: tensor<?x64xf32>) -> tensor<?x64xf32> {
  %w = decoder.weight "o.weight" : tensor<64x64xf32>
  %o = decoder.linear %a, %w : tensor<?x64xf32>, tensor<64x64xf32> -> tensor<?x64xf32>
  %r = decoder.add %h, %o : tensor<?x64xf32>
  return %r : tensor<?x64xf32>
}

// -----

// The projection may be either operand of the add.
// CHECK-LABEL: func.func @commuted
// CHECK: decoder.fused_linear %arg1, %{{.*}} residual %arg0
func.func @commuted(%h: tensor<?x64xf32>, %a: tensor<?x64xf32>) -> tensor<?x64xf32> {
  %w = decoder.weight "o.weight" : tensor<64x64xf32>
  %o = decoder.linear %a, %w : tensor<?x64xf32>, tensor<64x64xf32> -> tensor<?x64xf32>
  %r = decoder.add %o, %h : tensor<?x64xf32>
  return %r : tensor<?x64xf32>
}

// -----

// A projection whose output is used twice, or one that already has an
// epilogue (SwiGLU), keeps the add.
// CHECK-LABEL: func.func @not_fused
// CHECK: decoder.add
// CHECK: decoder.add
func.func @not_fused(%h: tensor<?x64xf32>, %a: tensor<?x64xf32>) -> (tensor<?x64xf32>, tensor<?x64xf32>, tensor<?x64xf32>) {
  %w = decoder.weight "o.weight" : tensor<64x64xf32>
  %o = decoder.linear %a, %w : tensor<?x64xf32>, tensor<64x64xf32> -> tensor<?x64xf32>
  %r = decoder.add %h, %o : tensor<?x64xf32>
  %w2 = decoder.weight "gu.weight" : tensor<128x64xf32>
  %s = decoder.fused_linear %a, %w2 {activation = #decoder.activation<swiglu>} : (tensor<?x64xf32>, tensor<128x64xf32>) -> tensor<?x64xf32>
  %r2 = decoder.add %h, %s : tensor<?x64xf32>
  return %r, %r2, %o : tensor<?x64xf32>, tensor<?x64xf32>, tensor<?x64xf32>
}
