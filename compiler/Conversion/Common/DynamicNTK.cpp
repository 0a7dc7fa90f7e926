//===- DynamicNTK.cpp - InternLM2's dynamic NTK RoPE, in kernels ----------===//

#include "compiler/Conversion/Common/DynamicNTK.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"

namespace decc {

using namespace mlir;

Value updateNTKLength(KernelBuilder &kb, decoder::RoPEAttr rope, Value state,
                      Value seen) {
  ImplicitLocOpBuilder &b = kb.builder();
  Value zero = kb.index(0);
  Value previous =
      kb.toIndex(memref::LoadOp::create(b, state, ValueRange{zero}));
  Value grows = arith::CmpIOp::create(b, arith::CmpIPredicate::ugt, seen,
                                      kb.index(rope.getMaxPositions()));
  Value current = arith::SelectOp::create(b, grows, seen, previous);
  kb.store(arith::IndexCastOp::create(b, b.getI64Type(), current), state,
           {zero});
  return current;
}

Value dynamicNTKBase(KernelBuilder &kb, decoder::RoPEAttr rope, Value length) {
  ImplicitLocOpBuilder &b = kb.builder();
  Value scaled = arith::CmpIOp::create(b, arith::CmpIPredicate::ugt, length,
                                       kb.index(rope.getMaxPositions()));
  double factor = rope.getFactor(), d = double(rope.getRotaryDim());
  Value ratio = kb.sub(kb.div(kb.mul(kb.f32(factor), kb.indexToF32(length)),
                              kb.f32(double(rope.getMaxPositions()))),
                       kb.f32(factor - 1));
  Value base = kb.mul(kb.f32(rope.getTheta()),
                      math::PowFOp::create(b, ratio, kb.f32(d / (d - 2))));
  return arith::SelectOp::create(b, scaled, base, kb.f32(rope.getTheta()));
}

Value inverseFrequency(KernelBuilder &kb, decoder::RoPEAttr rope, Value base,
                       Value i) {
  Value exponent = kb.div(kb.mul(kb.f32(2.0), kb.indexToF32(i)),
                          kb.f32(double(rope.getRotaryDim())));
  return kb.div(kb.f32(1.0),
                math::PowFOp::create(kb.builder(), base, exponent));
}

} // namespace decc
