//===- GPUMma.cpp - f32-accurate tensor-core steps ------------------------===//

#include "compiler/Conversion/GPU/GPUMma.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

using namespace mlir;

namespace decc::gpulowering {

MmaLane mmaLane(KernelBuilder &kb, Value lane) {
  return {kb.div(lane, kb.index(4)),
          arith::RemUIOp::create(kb.builder(), lane, kb.index(4))};
}

/// The value with its low 13 mantissa bits cleared: exactly TF32.
static Value truncateTF32(KernelBuilder &kb, Value v) {
  ImplicitLocOpBuilder &b = kb.builder();
  Value bits = arith::BitcastOp::create(b, b.getI32Type(), v);
  Value mask = arith::ConstantOp::create(b, b.getI32IntegerAttr(~0x1fff));
  return arith::BitcastOp::create(b, b.getF32Type(),
                                  arith::AndIOp::create(b, bits, mask));
}

SplitTF32 splitTF32(KernelBuilder &kb, ArrayRef<Value> values, bool exact) {
  SplitTF32 s;
  for (Value v : values) {
    if (exact) {
      s.hi.push_back(v);
      continue;
    }
    Value hi = truncateTF32(kb, v);
    s.hi.push_back(hi);
    // v - hi is exact in f32; its own truncation loses 2^-10 of it.
    s.lo.push_back(truncateTF32(kb, kb.sub(v, hi)));
  }
  return s;
}

Value zeroAccumulator(KernelBuilder &kb) {
  auto type = VectorType::get({2, 2}, kb.builder().getF32Type());
  return arith::ConstantOp::create(
      kb.builder(),
      DenseElementsAttr::get(type, kb.builder().getF32FloatAttr(0.0)));
}

static Value mmaStep(KernelBuilder &kb, ArrayRef<Value> a, ArrayRef<Value> b,
                     Value c) {
  ImplicitLocOpBuilder &bd = kb.builder();
  Type f32 = bd.getF32Type();
  Value av =
      vector::FromElementsOp::create(bd, VectorType::get({4, 1}, f32), a);
  Value bv =
      vector::FromElementsOp::create(bd, VectorType::get({2, 1}, f32), b);
  return nvgpu::MmaSyncOp::create(bd, av, bv, c, ArrayRef<int64_t>{16, 8, 8},
                                  /*tf32Enabled=*/true);
}

Value mmaF32(KernelBuilder &kb, const SplitTF32 &a, const SplitTF32 &b,
             Value c) {
  // Small terms first, so they are not lost against the large one.
  if (!a.lo.empty())
    c = mmaStep(kb, a.lo, b.hi, c);
  if (!b.lo.empty())
    c = mmaStep(kb, a.hi, b.lo, c);
  return mmaStep(kb, a.hi, b.hi, c);
}

Value accElement(KernelBuilder &kb, Value c, int64_t i) {
  return vector::ExtractOp::create(kb.builder(), c,
                                   ArrayRef<int64_t>{i / 2, i % 2});
}

Value scaleRows(KernelBuilder &kb, Value c, Value scale0, Value scale1) {
  ImplicitLocOpBuilder &b = kb.builder();
  Type f32 = b.getF32Type();
  Value s = vector::FromElementsOp::create(
      b, VectorType::get({2, 2}, f32),
      ValueRange{scale0, scale0, scale1, scale1});
  return arith::MulFOp::create(b, c, s);
}

SmallVector<Value> mmaHalf(KernelBuilder &kb, ArrayRef<Value> a,
                           ArrayRef<Value> b, ArrayRef<Value> c, Type element) {
  ImplicitLocOpBuilder &bd = kb.builder();
  Type f32 = bd.getF32Type();
  auto result =
      LLVM::LLVMStructType::getLiteral(bd.getContext(), {f32, f32, f32, f32});
  NVVM::MMATypes t =
      element.isBF16() ? NVVM::MMATypes::bf16 : NVVM::MMATypes::f16;
  // f16 operands go as <2 x half> registers, bf16 ones as i32.
  SmallVector<Value> av(a), bv(b);
  if (t == NVVM::MMATypes::f16) {
    auto pair = VectorType::get({2}, bd.getF16Type());
    for (Value &v : av)
      v = LLVM::BitcastOp::create(bd, pair, v);
    for (Value &v : bv)
      v = LLVM::BitcastOp::create(bd, pair, v);
  }
  Value d = NVVM::MmaOp::create(
      bd, result, av, bv, c, ArrayRef<int64_t>{16, 8, 16}, std::nullopt,
      std::nullopt, std::array<NVVM::MMATypes, 2>{t, t},
      std::array<NVVM::MMALayout, 2>{NVVM::MMALayout::row,
                                     NVVM::MMALayout::col});
  SmallVector<Value> out;
  for (int64_t i = 0; i < 4; ++i)
    out.push_back(LLVM::ExtractValueOp::create(bd, d, i));
  return out;
}

Value packPair(KernelBuilder &kb, Value lo, Value hi, Type element) {
  ImplicitLocOpBuilder &b = kb.builder();
  Value pair = vector::FromElementsOp::create(
      b, VectorType::get({2}, lo.getType()), ValueRange{lo, hi});
  if (lo.getType() != element)
    pair = arith::TruncFOp::create(b, VectorType::get({2}, element), pair);
  return pairRegister(kb, pair);
}

void storePair(KernelBuilder &kb, Value pair, Value memref, Value index) {
  Type element = cast<MemRefType>(memref.getType()).getElementType();
  if (!element.isF32())
    pair = arith::TruncFOp::create(kb.builder(), VectorType::get({2}, element),
                                   pair);
  vector::StoreOp::create(
      kb.builder(), pair, memref, ValueRange{index}, false,
      llvm::MaybeAlign(2 * element.getIntOrFloatBitWidth() / 8));
}

Value pairRegister(KernelBuilder &kb, Value pair) {
  ImplicitLocOpBuilder &b = kb.builder();
  Value word =
      vector::BitCastOp::create(b, VectorType::get({1}, b.getI32Type()), pair);
  return vector::ExtractOp::create(b, word, ArrayRef<int64_t>{0});
}

std::pair<Value, Value> packQuad(KernelBuilder &kb, Value quad, Type element) {
  ImplicitLocOpBuilder &b = kb.builder();
  if (cast<VectorType>(quad.getType()).getElementType() != element)
    quad = arith::TruncFOp::create(b, VectorType::get({4}, element), quad);
  Value words =
      vector::BitCastOp::create(b, VectorType::get({2}, b.getI32Type()), quad);
  return {vector::ExtractOp::create(b, words, ArrayRef<int64_t>{0}),
          vector::ExtractOp::create(b, words, ArrayRef<int64_t>{1})};
}

Value accumulatorOf(KernelBuilder &kb, ArrayRef<Value> c) {
  return vector::FromElementsOp::create(
      kb.builder(), VectorType::get({2, 2}, kb.builder().getF32Type()), c);
}

} // namespace decc::gpulowering
