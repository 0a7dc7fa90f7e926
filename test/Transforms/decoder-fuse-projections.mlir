// RUN: decc-opt %s --decoder-fuse-projections --split-input-file | FileCheck %s

// q, k and v of one input become one projection over their packed weights;
// the biases are packed the same way.
// CHECK-LABEL: func.func @qkv
func.func @qkv(%h: tensor<?x128xf32>) -> (tensor<?x4x32xf32>, tensor<?x2x32xf32>, tensor<?x2x32xf32>) {
  // CHECK: %[[WQ:.*]] = decoder.weight "q.weight"
  // CHECK: %[[WK:.*]] = decoder.weight "k.weight"
  // CHECK: %[[WV:.*]] = decoder.weight "v.weight"
  // CHECK: %[[W:.*]] = decoder.concat_weights %[[WQ]], %[[WK]], %[[WV]] : tensor<128x128xf32>, tensor<64x128xf32>, tensor<64x128xf32> -> tensor<256x128xf32>
  // CHECK: %[[B:.*]] = decoder.concat_weights {{.*}} -> tensor<256xf32>
  // CHECK: %[[Q:.*]], %[[K:.*]], %[[V:.*]] = decoder.linear %arg0, %[[W]] bias %[[B]] : tensor<?x128xf32>, tensor<256x128xf32>, tensor<256xf32> -> tensor<?x4x32xf32>, tensor<?x2x32xf32>, tensor<?x2x32xf32>
  // CHECK-NOT: decoder.linear
  // CHECK: return %[[Q]], %[[K]], %[[V]]
  %wq = decoder.weight "q.weight" : tensor<128x128xf32>
  %bq = decoder.weight "q.bias" : tensor<128xf32>
  %q = decoder.linear %h, %wq bias %bq : tensor<?x128xf32>, tensor<128x128xf32>, tensor<128xf32> -> tensor<?x4x32xf32>
  %wk = decoder.weight "k.weight" : tensor<64x128xf32>
  %bk = decoder.weight "k.bias" : tensor<64xf32>
  %k = decoder.linear %h, %wk bias %bk : tensor<?x128xf32>, tensor<64x128xf32>, tensor<64xf32> -> tensor<?x2x32xf32>
  %wv = decoder.weight "v.weight" : tensor<64x128xf32>
  %bv = decoder.weight "v.bias" : tensor<64xf32>
  %v = decoder.linear %h, %wv bias %bv : tensor<?x128xf32>, tensor<64x128xf32>, tensor<64xf32> -> tensor<?x2x32xf32>
  return %q, %k, %v : tensor<?x4x32xf32>, tensor<?x2x32xf32>, tensor<?x2x32xf32>
}

// -----

// Siblings with and without a bias are left alone: a packed bias would
// need rows that do not exist.
// CHECK-LABEL: func.func @mixed_bias
// CHECK-COUNT-2: decoder.linear
// CHECK-NOT: concat_weights
func.func @mixed_bias(%h: tensor<?x64xf32>) -> (tensor<?x64xf32>, tensor<?x64xf32>) {
  %wa = decoder.weight "a.weight" : tensor<64x64xf32>
  %ba = decoder.weight "a.bias" : tensor<64xf32>
  %a = decoder.linear %h, %wa bias %ba : tensor<?x64xf32>, tensor<64x64xf32>, tensor<64xf32> -> tensor<?x64xf32>
  %wb = decoder.weight "b.weight" : tensor<64x64xf32>
  %b = decoder.linear %h, %wb : tensor<?x64xf32>, tensor<64x64xf32> -> tensor<?x64xf32>
  return %a, %b : tensor<?x64xf32>, tensor<?x64xf32>
}

// -----

// A projection of a different input is not a sibling.
// CHECK-LABEL: func.func @different_inputs
// CHECK-COUNT-2: decoder.linear
// CHECK-NOT: concat_weights
func.func @different_inputs(%h: tensor<?x64xf32>, %g: tensor<?x64xf32>) -> (tensor<?x64xf32>, tensor<?x64xf32>) {
  %wa = decoder.weight "a.weight" : tensor<64x64xf32>
  %a = decoder.linear %h, %wa : tensor<?x64xf32>, tensor<64x64xf32> -> tensor<?x64xf32>
  %wb = decoder.weight "b.weight" : tensor<64x64xf32>
  %b = decoder.linear %g, %wb : tensor<?x64xf32>, tensor<64x64xf32> -> tensor<?x64xf32>
  return %a, %b : tensor<?x64xf32>, tensor<?x64xf32>
}
