//===- CPUTileMatmul.cpp - a prompt's bf16 projections on AMX tiles -------===//
//
// tdpbf16ps multiplies a 16 x 32 bf16 tile by a 32 x 16 one held as 16
// rows of 16 pairs (k, k + 1), into a 16 x 16 f32 tile. A weight's rows
// are the left tiles as they lie in the arena (16 features x 32 columns,
// the row stride the width); the inputs are the right tiles, stored a
// chunk of tokens at a time as [column pair][token] 32-bit pairs, so that
// 16 tokens' pair k / 2 are one 64-byte tile row. The sums come out as
// [feature][token].
//
// A thread takes 32 features (two left tiles) against 32 tokens (two right
// tiles) at a time: four accumulators, the eight tile registers full. The
// columns go in blocks of kTileDepth, each block's left tiles (32 x
// kTileDepth bf16) serving every pair of token tiles of the chunk before
// the next block; the accumulators go back to the sums between blocks.
//
//===----------------------------------------------------------------------===//

#include "compiler/Conversion/CPU/CPULowering.h"

#include "mlir/Dialect/AMX/AMXDialect.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

namespace decc::cpulowering {

namespace {

/// Columns a block of a weight's rows takes: 32 x 1024 bf16 (64 KiB) of
/// left tiles, and 1024 columns of the chunk's inputs (2 KiB a token: 1
/// MiB for a chunk of 512), in a core's L2 together. Blocks of 256 (the
/// left tiles in L1) and 512 measured level with 1024 (docs/PERF.md).
constexpr int64_t kTileDepth = 1024;

} // namespace

bool tileMatmulFits(Value weight, Value x, int64_t inWidth) {
  auto w = cast<MemRefType>(weight.getType());
  auto in = cast<MemRefType>(x.getType());
  return w.getRank() == 2 && w.getElementType().isBF16() &&
         in.getElementType().isBF16() && inWidth % 32 == 0 &&
         w.getDimSize(0) % 32 == 0 && w.getDimSize(1) == inWidth;
}

int64_t tileRowStride(int64_t chunk) { return chunk + 16; }

TilePairs allocTilePairs(KernelBuilder &kb, int64_t inWidth, int64_t chunk) {
  ImplicitLocOpBuilder &b = kb.builder();
  int64_t stride = tileRowStride(chunk);
  TilePairs p;
  p.raw = memref::AllocOp::create(
      b, MemRefType::get({inWidth / 2 * stride * 4}, b.getI8Type()),
      ValueRange{}, b.getI64IntegerAttr(64));
  Value zero = kb.index(0);
  p.pairs = memref::ViewOp::create(
      b, MemRefType::get({inWidth / 2, stride}, b.getI32Type()), p.raw, zero,
      ValueRange{});
  p.tiles = memref::ViewOp::create(
      b, MemRefType::get({inWidth / 2, 2 * stride}, b.getBF16Type()), p.raw,
      zero, ValueRange{});
  return p;
}

void packTilePairs(KernelBuilder &kb, const TilePairs &p, Value x, Value from,
                   Value end, int64_t inWidth) {
  ImplicitLocOpBuilder &b = kb.builder();
  auto chunk = VectorType::get({32}, b.getBF16Type());
  auto asPairs = VectorType::get({16}, b.getI32Type());
  kb.parallel({kb.sub(end, from)}, [&](KernelBuilder &lb, ValueRange i) {
    Value t = lb.add(i[0], from);
    lb.forLoop(lb.index(0), lb.index(inWidth), 32,
               [&](KernelBuilder &cb, ValueRange k) {
                 ImplicitLocOpBuilder &ib = cb.builder();
                 Value v = vector::BitCastOp::create(
                     ib, asPairs,
                     vector::LoadOp::create(ib, chunk, x, ValueRange{t, k[0]}));
                 Value pair0 = cb.div(k[0], cb.index(2));
                 for (int64_t j = 0; j < 16; ++j)
                   memref::StoreOp::create(
                       ib, vector::ExtractOp::create(ib, v, j), p.pairs,
                       ValueRange{cb.add(pair0, cb.index(j)), i[0]});
               });
  });
}

void emitTileMatmul(KernelBuilder &kb, Value weight, const TilePairs &inputs,
                    Value sums, Value from, Value end, int64_t inWidth) {
  ImplicitLocOpBuilder &b = kb.builder();
  int64_t rows = cast<MemRefType>(weight.getType()).getDimSize(0);
  auto left = amx::TileType::get({16, 32}, b.getBF16Type());
  auto acc = amx::TileType::get({16, 16}, b.getF32Type());
  // Pairs of token tiles covering [from, end).
  Value spans =
      kb.mul(kb.ceilDiv(kb.sub(end, from), kb.index(32)), kb.index(32));
  kb.parallel({kb.index(rows / 32)}, [&](KernelBuilder &lb, ValueRange p) {
    Value n0 = lb.mul(p[0], lb.index(32));
    Value n1 = lb.add(n0, lb.index(16));
    for (int64_t k0 = 0; k0 < inWidth; k0 += kTileDepth) {
      int64_t k1 = std::min(inWidth, k0 + kTileDepth);
      lb.forLoop(lb.index(0), spans, 32, [&](KernelBuilder &tb, ValueRange s) {
        ImplicitLocOpBuilder &ib = tb.builder();
        Value s0 = s[0], s1 = tb.add(s[0], tb.index(16));
        // Columns of the right tiles: the chunk's tokens' pairs, two bf16
        // a token.
        Value t0 = tb.mul(s0, tb.index(2));
        Value t1 = tb.add(t0, tb.index(32));
        SmallVector<std::pair<Value, Value>> at = {
            {n0, s0}, {n0, s1}, {n1, s0}, {n1, s1}};
        SmallVector<Value> c;
        for (auto [n, column] : at)
          c.push_back(k0 == 0 ? amx::TileZeroOp::create(ib, acc).getResult()
                              : amx::TileLoadOp::create(ib, acc, sums,
                                                        ValueRange{n, column})
                                    .getResult());
        // The block's steps unrolled: a tile carried by a loop would be a
        // block argument that the LLVM lowering of cf (run after AMX's)
        // has no type for. Tiles are not renamed, so a load into an
        // operand tile waits for the products still reading it: each
        // operand of the next step is loaded right after its last use in
        // this one, under the products that follow.
        auto loadA = [&](Value n, int64_t k) -> Value {
          return amx::TileLoadOp::create(ib, left, weight,
                                         ValueRange{n, tb.index(k)});
        };
        auto loadB = [&](Value t, int64_t k) -> Value {
          return amx::TileLoadOp::create(ib, left, inputs.tiles,
                                         ValueRange{tb.index(k / 2), t});
        };
        Value a0 = loadA(n0, k0), b0 = loadB(t0, k0);
        Value a1 = loadA(n1, k0), b1 = loadB(t1, k0);
        for (int64_t k = k0; k < k1; k += 32) {
          bool next = k + 32 < k1;
          c[0] = amx::TileMulFOp::create(ib, acc, a0, b0, c[0]);
          c[1] = amx::TileMulFOp::create(ib, acc, a0, b1, c[1]);
          if (next)
            a0 = loadA(n0, k + 32);
          c[2] = amx::TileMulFOp::create(ib, acc, a1, b0, c[2]);
          if (next)
            b0 = loadB(t0, k + 32);
          c[3] = amx::TileMulFOp::create(ib, acc, a1, b1, c[3]);
          if (next) {
            a1 = loadA(n1, k + 32);
            b1 = loadB(t1, k + 32);
          }
        }
        for (auto [tile, where] : llvm::zip(c, at))
          amx::TileStoreOp::create(ib, sums,
                                   ValueRange{where.first, where.second}, tile);
      });
    }
  });
}

} // namespace decc::cpulowering
