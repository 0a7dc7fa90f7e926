// RUN: decc-opt %s --approximate-vector-exp | FileCheck %s

// An exp of an f32 vector becomes MLIR's polynomial (no math.exp left to
// become a libm call a lane); a scalar exp stays a math.exp.
// CHECK-LABEL: func.func @vector_exp(
// CHECK-NOT: math.exp
// CHECK: math.fma
// CHECK: arith.shli
// CHECK-NOT: math.exp
// CHECK: return
func.func @vector_exp(%x: vector<8xf32>) -> vector<8xf32> {
  %e = math.exp %x : vector<8xf32>
  return %e : vector<8xf32>
}

// CHECK-LABEL: func.func @scalar_exp(
// CHECK: math.exp %{{.*}} : f32
func.func @scalar_exp(%x: f32) -> f32 {
  %e = math.exp %x : f32
  return %e : f32
}

// Other element types are left to the LLVM lowering.
// CHECK-LABEL: func.func @f64_vector_exp(
// CHECK: math.exp %{{.*}} : vector<4xf64>
func.func @f64_vector_exp(%x: vector<4xf64>) -> vector<4xf64> {
  %e = math.exp %x : vector<4xf64>
  return %e : vector<4xf64>
}
