//===- Activations.cpp - the MLP activations, for both lowerings ----------===//

#include "compiler/Conversion/Common/Activations.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/IR/BuiltinAttributes.h"

#include <cmath>

namespace decc {

using namespace mlir;

Value constantLike(KernelBuilder &kb, Value like, double v) {
  if (auto vector = dyn_cast<VectorType>(like.getType()))
    return arith::ConstantOp::create(kb.builder(),
                                     DenseElementsAttr::get(vector, float(v)));
  return kb.f32(v);
}

Value gelu(KernelBuilder &kb, Value x, bool tanhApprox) {
  ImplicitLocOpBuilder &b = kb.builder();
  Value half = constantLike(kb, x, 0.5), one = constantLike(kb, x, 1.0);
  if (!tanhApprox)
    return kb.mul(
        kb.mul(half, x),
        kb.add(one, math::ErfOp::create(
                        b, kb.mul(x, constantLike(kb, x, M_SQRT1_2)))));
  Value cube = kb.mul(kb.mul(x, x), x);
  Value inner = kb.mul(constantLike(kb, x, std::sqrt(2.0 / M_PI)),
                       kb.add(x, kb.mul(constantLike(kb, x, 0.044715), cube)));
  return kb.mul(kb.mul(half, x), kb.add(one, math::TanhOp::create(b, inner)));
}

Value siluTimes(KernelBuilder &kb, Value gate, Value up) {
  Value silu =
      kb.div(gate, kb.add(constantLike(kb, gate, 1.0),
                          kb.exp(arith::NegFOp::create(kb.builder(), gate))));
  return kb.mul(silu, up);
}

Value biasAndClip(KernelBuilder &kb, Value sum, Value bias, Value row,
                  double clip) {
  if (bias)
    sum = kb.add(sum, kb.loadF32(bias, {row}));
  if (clip > 0)
    sum = arith::MinimumFOp::create(
        kb.builder(),
        arith::MaximumFOp::create(kb.builder(), sum, kb.f32(-clip)),
        kb.f32(clip));
  return sum;
}

} // namespace decc
