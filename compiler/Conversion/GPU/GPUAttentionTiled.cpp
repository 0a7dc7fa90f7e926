//===- GPUAttentionTiled.cpp - long prompts' flash attention, K/V shared --===//
//
// The attention of a long prompt in a half-precision build, in the
// FlashAttention-2 structure: a block per 64 queries of one head, a warp per
// 16 of them, and the keys in tiles of 64 that the whole block copies into
// shared memory once (16-byte loads) and every warp reads from there. The
// short-prompt kernel (flashPrefillMma) gives a block 16 queries and lets
// each lane fetch its own fragments from the cache: an H200 ran it at 47
// TFLOP/s, the keys and values read again by every 16 queries and V's
// fragments gathered two bytes at a time. Here a warp owns its rows over all
// keys, so no merge of partial softmaxes is needed either.
//
// Fragments (GPUMma.h): S = Q.K^T takes Q's A fragments and K's B fragments
// with the same permuted k (features 4t .. 4t+3 of each 16, one 8-byte
// shared load a fragment); P.V takes S's C fragments as A as they are, and
// V's B fragments come from `ldmatrix.trans` (four 8x8 tiles: keys 16m ..
// 16m+15 of two feature tiles), the transpose being exactly the
// key-pairs-of-one-feature layout mma wants.
//
// Shared rows are padded so that neither access conflicts on banks: K's 8
// rows g of a half-warp's 8-byte loads start 8 banks apart (16 elements of
// padding), V's 8 rows of an ldmatrix phase 4 banks apart (8 elements).
//
//===----------------------------------------------------------------------===//

#include "compiler/Conversion/GPU/GPULowering.h"

#include "compiler/Conversion/Common/LoweringCommon.h"
#include "compiler/Conversion/GPU/FlashFragments.h"
#include "compiler/Conversion/GPU/GPUMma.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

#include <array>
#include <functional>

namespace decc::gpulowering {

namespace {
constexpr int64_t kQueriesPerBlock = 16 * kWarpsPerBlock;
constexpr int64_t kTileKeys = 64;
constexpr int64_t kStaticSharedBytes = 48 * 1024;

int64_t kStride(int64_t d) { return d + 16; }
int64_t vStride(int64_t d) { return d + 8; }
int64_t tileBytes(int64_t d, int64_t elementBytes) {
  return kTileKeys * (kStride(d) + vStride(d)) * elementBytes;
}
} // namespace

bool GPULowering::canTileEncoderAttention(int64_t headDim) const {
  return tensorCores && halfPrecision && headDim % 16 == 0 &&
         tileBytes(headDim, 2) <= kStaticSharedBytes;
}

bool GPULowering::canTileAttention(int64_t headDim) const {
  return tensorCores && halfPrecision && headDim % 16 == 0 &&
         cacheElement == halfElement &&
         tileBytes(headDim, 2) <= kStaticSharedBytes;
}

namespace {

/// What the steps of flashPrefillTiled share: the operand type, this
/// lane's mma position, the shared K and V tiles and where the head's
/// cache rows are.
struct TiledFlashWarp {
  Type element;
  int64_t d, featureTiles, steps;
  MmaLane ml;
  Value lane, tid, twoT, fourT, kTile, vTile, cacheRow0, lastKey, kCache,
      vCache;
  /// The cache row of key position `key` (through the block table).
  std::function<Value(KernelBuilder &, Value)> cacheRowOf;

  /// The block's copy of the K and V rows of keys k0 .. k0 + 63 into
  /// shared memory: 16-byte chunks, consecutive threads along a row.
  void copyTile(KernelBuilder &lb, Value k0) const {
    int64_t chunksPerRow = d / 8, chunks = kTileKeys * chunksPerRow;
    auto chunkType = VectorType::get({8}, element);
    // The encoder's keys and values are f32 rows, rounded here.
    Type source = cast<MemRefType>(kCache.getType()).getElementType();
    for (int64_t c0 = 0; c0 < chunks; c0 += 32 * kWarpsPerBlock) {
      Value chunk = lb.add(tid, lb.index(c0));
      Value row = lb.div(chunk, lb.index(chunksPerRow));
      Value col = lb.mul(
          arith::RemUIOp::create(lb.builder(), chunk, lb.index(chunksPerRow)),
          lb.index(8));
      Value key = lb.umin(lb.add(k0, row), lastKey);
      Value from = lb.add(
          lb.mul(lb.add(cacheRow0, cacheRowOf(lb, key)), lb.index(d)), col);
      for (auto [cache, tile, stride] :
           {std::tuple{kCache, kTile, kStride(d)},
            std::tuple{vCache, vTile, vStride(d)}}) {
        Value v = vector::LoadOp::create(
            lb.builder(), VectorType::get({8}, source), cache, ValueRange{from},
            false, llvm::MaybeAlign(16));
        if (source != element)
          v = arith::TruncFOp::create(lb.builder(), chunkType, v);
        vector::StoreOp::create(
            lb.builder(), v, tile,
            ValueRange{lb.add(lb.mul(row, lb.index(stride)), col)}, false,
            llvm::MaybeAlign(16));
      }
    }
  }

  /// S = Q.K^T for the tile from k0 (8 tiles of 8 keys, key g of each as
  /// the B column), scored: row 0's and row 1's scores, two per 8-key tile.
  std::array<SmallVector<Value>, 2> scores(KernelBuilder &lb,
                                           ArrayRef<SmallVector<Value>> qa,
                                           const FlashRows &rows,
                                           Value k0) const {
    constexpr int64_t kKeyTiles = kTileKeys / 8;
    std::array<SmallVector<Value>, 2> score;
    for (int64_t n = 0; n < kKeyTiles; ++n) {
      Value row = lb.mul(lb.add(lb.index(8 * n), ml.g), lb.index(kStride(d)));
      SmallVector<Value> c4(4, lb.f32(0.0));
      for (int64_t s = 0; s < steps; ++s) {
        Value quad = vector::LoadOp::create(
            lb.builder(), VectorType::get({4}, element), kTile,
            ValueRange{lb.add(row, lb.add(fourT, lb.index(16 * s)))}, false,
            llvm::MaybeAlign(8));
        auto [b0, b1] = packQuad(lb, quad, element);
        c4 = mmaHalf(lb, qa[s], {b0, b1}, c4, element);
      }
      // Element i: row g + 8 (i / 2), key k0 + 8n + 2t + i % 2.
      for (int64_t i = 0; i < 4; ++i) {
        Value key = lb.add(k0, lb.add(twoT, lb.index(8 * n + i % 2)));
        score[i / 2].push_back(flashScore(lb, rows, int(i / 2), c4[i], key));
      }
    }
    return score;
  }

  /// o += P.V over the tile's keys.
  void addPV(KernelBuilder &lb, const FlashStep &fs,
             SmallVector<SmallVector<Value>> &o) const {
    constexpr int64_t kKeyTiles = kTileKeys / 8;
    // O += P.V, 16 keys a step: S tiles 2m and 2m + 1 are the A
    // fragment; one ldmatrix.trans gives two feature tiles' B.
    Value matrix = lb.div(lane, lb.index(8));
    Value matrixRow = arith::RemUIOp::create(lb.builder(), lane, lb.index(8));
    Value keyOfLane =
        lb.add(matrixRow,
               lb.mul(arith::RemUIOp::create(lb.builder(), matrix, lb.index(2)),
                      lb.index(8)));
    Value tileOfLane = lb.div(matrix, lb.index(2));
    for (int64_t m = 0; m < kKeyTiles / 2; ++m) {
      SmallVector<Value> a = flashPFragment(lb, fs, m, element);
      Value rowBase =
          lb.mul(lb.add(lb.index(16 * m), keyOfLane), lb.index(vStride(d)));
      for (int64_t f = 0; f < featureTiles; f += 2) {
        Value at = lb.add(rowBase,
                          lb.mul(lb.add(tileOfLane, lb.index(f)), lb.index(8)));
        Value frag = nvgpu::LdMatrixOp::create(
            lb.builder(), VectorType::get({4, 2}, element), vTile,
            ValueRange{at}, /*transpose=*/true, /*numTiles=*/4);
        Value reg[4];
        for (int64_t j = 0; j < 4; ++j)
          reg[j] =
              pairRegister(lb, vector::ExtractOp::create(lb.builder(), frag,
                                                         ArrayRef<int64_t>{j}));
        o[f] = mmaHalf(lb, a, {reg[0], reg[1]}, o[f], element);
        o[f + 1] = mmaHalf(lb, a, {reg[2], reg[3]}, o[f + 1], element);
      }
    }
  }
};

} // namespace

/// What a block of flashPrefillTiled's structure works on: its warp's two
/// query rows, their masks, the keys lo .. hi (the last one `lastKey`), the
/// head's K/V rows (cacheRow0 + cacheRowOf(key), rows of d), the warp's
/// first row and the end of the rows it may store.
struct TiledFlashRows {
  Value token[2];
  FlashRows rows;
  Value lo, hi, lastKey, cacheRow0;
  std::function<Value(KernelBuilder &, Value)> cacheRowOf;
  Value m0, rowEnd;
};

/// The block's scan over its keys' tiles and its warps' stores: queries
/// from `q`, outputs to `out` (rows of heads x d, head h).
static void tiledFlashScan(KernelBuilder &kb, Kernel &k,
                           const TiledFlashRows &tr, Value kCache, Value vCache,
                           Value q, Value out, Value kTile, Value vTile,
                           int64_t heads, Value h, int64_t d) {
  Type element = cast<MemRefType>(kTile.getType()).getElementType();
  int64_t featureTiles = d / 8, steps = d / 16;
  Value tid = gpu::ThreadIdOp::create(kb.builder(), gpu::Dimension::x);
  Value lane = arith::RemUIOp::create(kb.builder(), tid, kb.index(32));
  MmaLane ml = mmaLane(kb, lane);
  auto quadReduce = [](KernelBuilder &lb, Value v, bool isMax) {
    return shuffleReduce(lb, v, kQuad, isMax);
  };
  Value twoT = kb.mul(ml.t, kb.index(2));
  Value fourT = kb.mul(ml.t, kb.index(4));
  // Q's A fragments, 16 permuted features a step (GPUMma.h).
  SmallVector<SmallVector<Value>> qa(steps, SmallVector<Value>(4));
  for (int r = 0; r < 2; ++r) {
    Value base =
        kb.mul(kb.add(kb.mul(tr.token[r], kb.index(heads)), h), kb.index(d));
    for (int64_t s = 0; s < steps; ++s) {
      auto [lo2, hi2] = packQuad(
          kb,
          kb.loadVector(q, {kb.add(base, kb.add(fourT, kb.index(16 * s)))}, 4,
                        16),
          element);
      qa[s][r] = lo2;
      qa[s][2 + r] = hi2;
    }
  }

  TiledFlashWarp w{element,    d,      featureTiles, steps,
                   ml,         lane,   tid,          twoT,
                   fourT,      kTile,  vTile,        tr.cacheRow0,
                   tr.lastKey, kCache, vCache,       tr.cacheRowOf};

  SmallVector<Value> init = {kb.f32(-INFINITY), kb.f32(-INFINITY), kb.f32(0.0),
                             kb.f32(0.0)};
  for (int64_t f = 0; f < featureTiles; ++f)
    init.push_back(zeroAccumulator(kb));
  SmallVector<Value> st = kb.forLoop(
      tr.lo, tr.hi, kTileKeys, init,
      [&](KernelBuilder &lb, Value k0, ValueRange in) {
        gpu::BarrierOp::create(lb.builder()); // the last tile is read
        w.copyTile(lb, k0);
        gpu::BarrierOp::create(lb.builder());
        // S = Q.K^T: 8 tiles of 8 keys, key g of each as the B column.
        std::array<SmallVector<Value>, 2> score = w.scores(lb, qa, tr.rows, k0);
        FlashStep fs =
            flashSoftmaxStep(lb, in.take_front(4), score[0], score[1]);
        SmallVector<Value> next = fs.stats;
        SmallVector<SmallVector<Value>> o;
        for (int64_t f = 0; f < featureTiles; ++f) {
          Value scaled =
              scaleRows(lb, in[4 + f], fs.correction[0], fs.correction[1]);
          o.emplace_back();
          for (int64_t i = 0; i < 4; ++i)
            o.back().push_back(accElement(lb, scaled, i));
        }
        w.addPV(lb, fs, o);
        for (auto &acc : o)
          next.push_back(accumulatorOf(lb, acc));
        return next;
      });

  // Normalize and store this warp's rows.
  Value inv[2];
  for (int r = 0; r < 2; ++r)
    inv[r] = kb.div(kb.f32(1.0), quadReduce(kb, st[2 + r], /*isMax=*/false));
  for (int r = 0; r < 2; ++r) {
    Value row = kb.add(tr.m0, kb.add(ml.g, kb.index(8 * r)));
    kb.ifThen(less(kb, row, tr.rowEnd), [&](KernelBuilder &sb) {
      Value base = sb.mul(sb.add(sb.mul(row, sb.index(heads)), h), sb.index(d));
      for (int64_t f = 0; f < featureTiles; ++f)
        for (int64_t i = 0; i < 2; ++i)
          sb.store(sb.mul(accElement(sb, st[4 + f], 2 * r + i), inv[r]), out,
                   {sb.add(base, sb.add(twoT, sb.index(8 * f + i)))});
    });
  }
}

void GPULowering::flashPrefillTiled(CachedAttentionOp op,
                                    ArrayRef<Binding> bindings,
                                    const std::string &q,
                                    const std::string &out,
                                    int64_t slopesOffset) {
  AttentionConfigAttr c = op.getConfig();
  Type f32 = Float32Type::get(ctx);
  Type element = halfElement;
  int64_t heads = c.getNumHeads(), d = c.getHeadDim();
  int64_t group = heads / c.getNumKvHeads();
  Kernel &k = beginKernel("attention_flash_tiled", bindings);
  k.skipInBatched = true;
  KernelBuilder &kb = *k.kb;
  ImplicitLocOpBuilder &b = *k.b;
  Value kTile = sharedBuffer(k, element, kTileKeys * kStride(d));
  Value vTile = sharedBuffer(k, element, kTileKeys * vStride(d));
  Value tid = gpu::ThreadIdOp::create(b, gpu::Dimension::x);
  Value lane = arith::RemUIOp::create(b, tid, kb.index(32));
  Value warp = kb.div(tid, kb.index(32));
  MmaLane ml = mmaLane(kb, lane);
  Value h = gpu::BlockIdOp::create(b, gpu::Dimension::x);
  Value blockRow0 = latestFirstBlockRow(kb, kQueriesPerBlock);
  Value nTokens = step(k, kStepTokens);
  Value last = kb.sub(nTokens, kb.index(1));
  Value m0 = kb.add(blockRow0, kb.mul(warp, kb.index(16)));

  auto positionOf = [&](KernelBuilder &lb, Value token) {
    return tokenPosition(lb, k.args["positions"], token);
  };
  auto firstKey = [&](KernelBuilder &lb, Value pos) {
    return windowBegin(lb, c, lb.add(pos, lb.index(1)));
  };

  // Every block has real rows (the grid is ceil(tokens / 64)); rows past
  // the last token are clamped to it and never stored.
  Value token[2], pos[2], begin[2];
  for (int r = 0; r < 2; ++r) {
    token[r] = kb.umin(kb.add(m0, kb.add(ml.g, kb.index(8 * r))), last);
    pos[r] = positionOf(kb, token[r]);
    begin[r] = firstKey(kb, pos[r]);
  }
  // The block's keys: from the first row's window to the last row.
  Value lo = firstKey(kb, positionOf(kb, blockRow0));
  Value hi = kb.add(
      positionOf(
          kb, kb.umin(kb.add(blockRow0, kb.index(kQueriesPerBlock - 1)), last)),
      kb.index(1));
  Value lastKey = kb.sub(hi, kb.index(1));
  Value cacheRow0 = kvHeadRow0(kb, k, op.getLayer(), kb.div(h, kb.index(group)),
                               step(k, kStepContext));
  FlashRows rows{
      {pos[0], pos[1]}, {begin[0], begin[1]}, Value(), c.getSoftmaxScale()};
  if (slopesOffset >= 0)
    rows.slope = kb.loadF32(arenaView(kb, k, f32, slopesOffset), {h});
  TiledFlashRows tr{{token[0], token[1]},
                    rows,
                    lo,
                    hi,
                    lastKey,
                    cacheRow0,
                    // The block's queries are one sequence's (a prompt).
                    [this, &k, pages = pageRow(kb, k, blockRow0)](
                        KernelBuilder &lb, Value key) {
                      return cacheRowOf(lb, k, pages, key);
                    },
                    m0,
                    nTokens};
  tiledFlashScan(kb, k, tr, k.args["k_cache"], k.args["v_cache"], k.args[q],
                 k.args[out], kTile, vTile, heads, h, d);
  endKernel(
      k, grid(heads, 1, GridScale::One, 1, GridScale::Tokens, kQueriesPerBlock),
      LaunchWhen::PrefillLarge);
}

/// The vision encoder's attention in the same structure: a block per 64
/// query rows of one tile and head, every key of the tile (no mask but the
/// tile's end), the keys and values read from the QKV projection's f32
/// rows (heads x d) and rounded into the shared tiles. The 16-row kernel
/// (encoderAttentionMma) read each tile's keys and values again for every
/// 16 queries: 24 ms of a 13-tile encode on an H100 (docs/PERF.md).
void GPULowering::encoderAttentionTiled(EncoderAttentionOp op,
                                        const std::string &q,
                                        const std::string &keys,
                                        const std::string &values,
                                        const std::string &out) {
  Type f32 = Float32Type::get(ctx);
  auto type = op.getQuery().getType();
  int64_t heads = type.getDimSize(1), d = type.getDimSize(2);
  int64_t sequence = op.getSequence();
  int64_t chunks = llvm::divideCeil(sequence, kQueriesPerBlock);
  Kernel &k = beginKernel("encoder_attention_tiled",
                          {{q, f32}, {keys, f32}, {values, f32}, {out, f32}});
  KernelBuilder &kb = *k.kb;
  ImplicitLocOpBuilder &b = *k.b;
  Value kTile = sharedBuffer(k, halfElement, kTileKeys * kStride(d));
  Value vTile = sharedBuffer(k, halfElement, kTileKeys * vStride(d));
  Value tid = gpu::ThreadIdOp::create(b, gpu::Dimension::x);
  MmaLane ml = mmaLane(kb, arith::RemUIOp::create(b, tid, kb.index(32)));
  Value warp = kb.div(tid, kb.index(32));
  Value h = gpu::BlockIdOp::create(b, gpu::Dimension::x);
  Value by = gpu::BlockIdOp::create(b, gpu::Dimension::y);
  // Block row `by`: 64 query rows of tile by / chunks.
  Value first = kb.mul(kb.div(by, kb.index(chunks)), kb.index(sequence));
  Value m0 = kb.add(
      first, kb.add(kb.mul(arith::RemUIOp::create(b, by, kb.index(chunks)),
                           kb.index(kQueriesPerBlock)),
                    kb.mul(warp, kb.index(16))));
  Value end = kb.add(first, kb.index(sequence));
  Value last = kb.sub(end, kb.index(1));
  Value lastKey = kb.index(sequence - 1);
  TiledFlashRows tr{{kb.umin(kb.add(m0, ml.g), last),
                     kb.umin(kb.add(m0, kb.add(ml.g, kb.index(8))), last)},
                    FlashRows{{lastKey, lastKey},
                              {kb.index(0), kb.index(0)},
                              Value(),
                              op.getSoftmaxScale().convertToDouble()},
                    kb.index(0),
                    kb.index(sequence),
                    lastKey,
                    kb.index(0),
                    // Key j of the tile: row first + j, head h's features.
                    [first, h, heads](KernelBuilder &lb, Value key) {
                      return lb.add(lb.mul(lb.add(first, key), lb.index(heads)),
                                    h);
                    },
                    m0,
                    end};
  tiledFlashScan(kb, k, tr, k.args[keys], k.args[values], k.args[q],
                 k.args[out], kTile, vTile, heads, h, d);
  // Blocks in y: chunks a tile (the tokens are tiles x sequence).
  endKernel(
      k, grid(heads, 1, GridScale::One, chunks, GridScale::Tokens, sequence));
}

} // namespace decc::gpulowering
