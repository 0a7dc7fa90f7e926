//===- GPUAttentionWgmma.cpp - long prompts' flash attention on sm_90a ----===//
//
// The attention of a long prompt in a half-precision sm_90a build, in the
// FlashAttention-3 structure:
//
// - a block per 128 queries of one head and three warpgroups: a producer
//   whose elected thread streams 128-key tiles of K and V into a ring of
//   shared-memory stages with TMA (the cache's per-layer tensor maps, boxes
//   of 64 features x 128 keys, 128-byte swizzle), each stage completing on
//   a `full` mbarrier; two consumers of 64 queries each, releasing a stage
//   through its `empty` mbarrier once both products that read it retired;
// - S = Q.K^T is a chain of m64n128k16 wgmmas over the head's features,
//   Q (rounded once to the cache's type and written by the consumers in the
//   swizzled layout) and K both K-major in shared memory;
// - the online softmax runs on S where it is, in registers (the wgmma
//   accumulator's layout is mma.sync's C layout per warp, so FlashFragments
//   serves both kernels), and its P is the A operand of O += P.V straight
//   from registers; V is the MN-major B operand (keys are its k, features
//   its n, as they lie in the cache), read with the transpose bit;
// - only the tiles that cross a row's causal or sliding-window bound pay
//   for the mask (one test per tile, uniform over the block).
//
// The keys a tile reads past the block's last one are the cache's other
// rows: finite (the cache is cleared when allocated), and their P is 0;
// past the layer's slab TMA fills zeros.
//
//===----------------------------------------------------------------------===//

#include "compiler/Conversion/GPU/GPULowering.h"

#include "compiler/Conversion/Common/LoweringCommon.h"
#include "compiler/Conversion/GPU/FlashFragments.h"
#include "compiler/Conversion/GPU/GPUHopper.h"
#include "compiler/Conversion/GPU/GPUMma.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

#include <array>

namespace decc::gpulowering {

namespace {
constexpr int64_t kGroupThreads = 128;
constexpr int64_t kRowsPerConsumer = 64;
constexpr int64_t kConsumers = 2;
constexpr int64_t kBlockQueries = kConsumers * kRowsPerConsumer;
constexpr int64_t kTileKeys = 128;
/// The named barrier of the first consumer's turns; the second's is the
/// next (1 and 2 are the consumers' own, 0 the block's).
constexpr int64_t kFirstTurnBarrier = 3;
/// Features of a TMA box: one 128-byte swizzled row.
constexpr int64_t kBoxFeatures = kSwizzleRowBytes / 2;
// A block's dynamic shared memory on sm_90 (227 KB): three stages of
// 128 keys when a head has 128 features.
constexpr int64_t kSharedBudget = 232448;
constexpr int64_t kMaxStages = 4;
// 24 registers for the producer, 240 for each consumer thread: 128 * 24 +
// 256 * 240 fits the 64K of a multiprocessor.
constexpr uint32_t kProducerRegisters = 24, kConsumerRegisters = 240;

int64_t boxesOf(int64_t d) { return (d + kBoxFeatures - 1) / kBoxFeatures; }

/// The shared memory of a head of `d` features: Q's boxes (the block's
/// 128 rows of 64 features each), then stages of K's boxes and V's (128
/// keys each), as many as fit beside Q, the ring's mbarriers and the
/// alignment slack.
struct WgmmaFlashLayout {
  int64_t boxes, qBoxBytes, kvBoxBytes, qBytes, stageBytes, stages;

  explicit WgmmaFlashLayout(int64_t d)
      : boxes(boxesOf(d)), qBoxBytes(kBlockQueries * kSwizzleRowBytes),
        kvBoxBytes(kTileKeys * kSwizzleRowBytes), qBytes(boxes * qBoxBytes),
        stageBytes(2 * boxes * kvBoxBytes),
        stages(std::min(kMaxStages, (kSharedBudget - qBytes -
                                     kSwizzleAtomBytes - 16 * kMaxStages) /
                                        stageBytes)) {}
};
} // namespace

bool GPULowering::canWgmmaAttention(int64_t headDim) const {
  return warpgroupMma && halfPrecision && cacheElement == halfElement &&
         headDim % 16 == 0 && headDim <= 2 * kBoxFeatures;
}

void GPULowering::flashPrefillWgmma(CachedAttentionOp op,
                                    ArrayRef<Binding> bindings,
                                    const std::string &q,
                                    const std::string &out,
                                    int64_t slopesOffset) {
  AttentionConfigAttr c = op.getConfig();
  Type f32 = Float32Type::get(ctx), i8 = IntegerType::get(ctx, 8);
  Type element = halfElement;
  int64_t heads = c.getNumHeads(), d = c.getHeadDim();
  int64_t group = heads / c.getNumKvHeads();
  WgmmaFlashLayout lay(d);
  int64_t layer = op.getLayer();

  // The caches are read through TMA only: the maps of this layer's slabs
  // (kv heads x context rows of d) take their place among the arguments.
  // A box is one block of the paged cache (contract::kCacheBlock rows); a
  // tile's blocks go to consecutive rows of its stage, which the 128-byte
  // swizzle lays out as one box of the tile would (a block's rows are a
  // whole number of 1024-byte swizzle periods).
  static_assert(
      kTileKeys % contract::kCacheBlock == 0 &&
          contract::kCacheBlock * kSwizzleRowBytes % kSwizzleAtomBytes == 0,
      "a tile is whole blocks, a block whole swizzle periods");
  std::string mapK = tensorMap("k_cache", 0, element, d, -cacheKVHeads,
                               contract::kCacheBlock, layer);
  std::string mapV = tensorMap("v_cache", 0, element, d, -cacheKVHeads,
                               contract::kCacheBlock, layer);
  SmallVector<Binding> binds;
  for (const Binding &bd : bindings)
    if (bd.name != "k_cache" && bd.name != "v_cache")
      binds.push_back(bd);
  binds.push_back({mapK, i8});
  binds.push_back({mapV, i8});
  Kernel &k = beginKernel("attention_flash_wgmma", binds);
  k.skipInBatched = true;
  k.threads = (1 + kConsumers) * kGroupThreads;
  requestOccupancy(k, 1);
  KernelBuilder &kb = *k.kb;
  ImplicitLocOpBuilder &b = *k.b;

  // Shared memory on the swizzle's 1024-byte period: Q's boxes, then the
  // ring of stages (K's boxes, then V's) and its mbarriers.
  SharedRing ring =
      sharedRing(kb, kernels, lay.qBytes, lay.stageBytes, lay.stages);
  k.sharedBytes = ring.sharedBytes();
  Value base = ring.base;
  Value tid = gpu::ThreadIdOp::create(b, gpu::Dimension::x);
  Value role = kb.div(tid, kb.index(kGroupThreads));
  ring.init(kb, tid, kConsumers * kGroupThreads);

  Value h = gpu::BlockIdOp::create(b, gpu::Dimension::x);
  Value blockRow0 = latestFirstBlockRow(kb, kBlockQueries);
  Value nTokens = step(k, kStepTokens);
  Value last = kb.sub(nTokens, kb.index(1));
  auto positionOf = [&](KernelBuilder &lb, Value token) {
    return tokenPosition(lb, k.args["positions"], token);
  };
  auto firstKey = [&](KernelBuilder &lb, Value pos) {
    return windowBegin(lb, c, lb.add(pos, lb.index(1)));
  };
  // The block's keys: from the first row's window to the last row; the
  // tiles inside every row's window need no mask.
  Value firstPos = positionOf(kb, blockRow0);
  Value lastPos = positionOf(
      kb, kb.umin(kb.add(blockRow0, kb.index(kBlockQueries - 1)), last));
  // Tiles start on a block (their keys before a row's window are masked).
  Value blockMask = kb.index(~(contract::kCacheBlock - 1));
  Value lo = arith::AndIOp::create(b, firstKey(kb, firstPos), blockMask);
  Value hi = kb.add(lastPos, kb.index(1));
  Value lastBlock = arith::AndIOp::create(b, lastPos, blockMask);
  Value lastBegin = firstKey(kb, lastPos);
  Value tiles = kb.div(kb.add(kb.sub(hi, lo), kb.index(kTileKeys - 1)),
                       kb.index(kTileKeys));
  // The maps start at the layer's slab: no cache argument to move. The
  // block's queries are one sequence's (a prompt): its table row.
  Value cacheRow0 = kb.mul(kb.div(h, kb.index(group)), step(k, kStepContext));
  Value pages = pageRow(kb, k, blockRow0);

  WarpRoles roles = specializeWarps(kb, isZero(kb, role), kProducerRegisters,
                                    kConsumerRegisters);
  {
    // Producer: one thread walks the tiles, refilling each stage once both
    // consumers have released it.
    KernelBuilder pk(*roles.producer);
    Value mapKPtr = genericPointer(pk, k.args[mapK]);
    Value mapVPtr = genericPointer(pk, k.args[mapV]);
    ring.produceRounds(
        pk, tid, tiles,
        [&](KernelBuilder &lb, Value i, Value stage, Value bar) {
          Value k0 = lb.add(lo, lb.mul(i, lb.index(kTileKeys)));
          // Blocks past the last key repeat the last one (masked).
          for (int64_t piece = 0; piece < kTileKeys / contract::kCacheBlock;
               ++piece) {
            Value key = lb.umin(
                lb.add(k0, lb.index(piece * contract::kCacheBlock)), lastBlock);
            Value row = lb.add(cacheRow0, cacheRowOf(lb, k, pages, key));
            int64_t rows = piece * contract::kCacheBlock * kSwizzleRowBytes;
            for (int64_t box = 0; box < lay.boxes; ++box) {
              Value x = lb.index(box * kBoxFeatures);
              tmaLoad2D(lb, sharedAt(lb, stage, box * lay.kvBoxBytes + rows),
                        mapKPtr, bar, x, row);
              tmaLoad2D(lb,
                        sharedAt(lb, stage,
                                 (lay.boxes + box) * lay.kvBoxBytes + rows),
                        mapVPtr, bar, x, row);
            }
          }
        });
  }

  ImplicitLocOpBuilder &cb = *roles.consumer;
  KernelBuilder ck(cb);
  Value t = ck.sub(tid, ck.index(kGroupThreads));
  Value consumer = ck.div(t, ck.index(kGroupThreads));
  Value inGroup = arith::RemUIOp::create(cb, t, ck.index(kGroupThreads));
  Value warp = ck.div(inGroup, ck.index(32));
  Value lane = arith::RemUIOp::create(cb, inGroup, ck.index(32));
  MmaLane ml = mmaLane(ck, lane);
  Value rowBase =
      ck.add(blockRow0, ck.mul(consumer, ck.index(kRowsPerConsumer)));

  // Q's 64 rows of this consumer, rounded to `element` and written as TMA
  // would: 16-byte chunk j of a 128-byte row r at chunk j ^ (r mod 8).
  {
    int64_t chunksPerRow = d / 8;
    auto f32x8 = VectorType::get({8}, f32);
    auto halfx8 = VectorType::get({8}, element);
    for (int64_t p = 0; p < kRowsPerConsumer * chunksPerRow / kGroupThreads;
         ++p) {
      Value piece = ck.add(inGroup, ck.index(p * kGroupThreads));
      Value r = ck.div(piece, ck.index(chunksPerRow));
      Value chunk = arith::RemUIOp::create(cb, piece, ck.index(chunksPerRow));
      Value token = ck.umin(ck.add(rowBase, r), last);
      Value from =
          ck.add(ck.mul(ck.add(ck.mul(token, ck.index(heads)), h), ck.index(d)),
                 ck.mul(chunk, ck.index(8)));
      Value v = vector::LoadOp::create(cb, f32x8, k.args[q], ValueRange{from},
                                       false, llvm::MaybeAlign(16));
      v = arith::TruncFOp::create(cb, halfx8, v);
      Value box = ck.div(chunk, ck.index(8));
      Value swizzled = arith::XOrIOp::create(
          cb, arith::RemUIOp::create(cb, chunk, ck.index(8)),
          arith::RemUIOp::create(cb, r, ck.index(8)));
      Value at = ck.add(
          ck.add(ck.mul(box, ck.index(lay.qBoxBytes)),
                 ck.mul(ck.add(ck.mul(consumer, ck.index(kRowsPerConsumer)), r),
                        ck.index(kSwizzleRowBytes))),
          ck.mul(swizzled, ck.index(16)));
      LLVM::StoreOp::create(cb, v, sharedAt(ck, base, at), /*alignment=*/16);
    }
    // Every thread's writes, then the async proxy's reads: a fence each,
    // then a barrier of the warpgroup (ids 1 and 2; 0 is the block's).
    fenceProxyAsyncShared(ck);
    namedBarrier(ck, ck.add(consumer, ck.index(1)), kGroupThreads);
  }

  // This lane's two rows (g and g + 8 of its warp's 16), clamped to the
  // last token: rows past it are computed and never stored.
  Value warpRow0 = ck.add(rowBase, ck.mul(warp, ck.index(16)));
  FlashRows rows;
  rows.scale = c.getSoftmaxScale();
  for (int r = 0; r < 2; ++r) {
    Value token =
        ck.umin(ck.add(warpRow0, ck.add(ml.g, ck.index(8 * r))), last);
    rows.pos[r] = positionOf(ck, token);
    rows.begin[r] = firstKey(ck, rows.pos[r]);
  }
  if (slopesOffset >= 0)
    rows.slope = ck.loadF32(arenaView(ck, k, f32, slopesOffset), {h});
  Value twoT = ck.mul(ml.t, ck.index(2));
  Value qDesc = wgmmaDescriptor(
      ck, sharedAt(
              ck, base,
              ck.mul(consumer, ck.index(kRowsPerConsumer * kSwizzleRowBytes))));
  int64_t keySteps = kTileKeys / 16;

  // Each step issues S_i = Q.K_i^T and O += P_(i-1).V_(i-1) together, and
  // runs tile i's softmax while the second product is on the tensor cores.
  // The two consumers take turns to issue (named barriers 3 and 4, the
  // second consumer letting the first go first): one's products run
  // while the other's softmax does (FlashAttention-3's ping-pong).
  Value turn = ck.add(consumer, ck.index(kFirstTurnBarrier));
  Value otherTurn = ck.sub(ck.index(kFirstTurnBarrier + 1), consumer);
  auto awaitTurn = [&](KernelBuilder &lb) {
    namedBarrier(lb, turn, kConsumers * kGroupThreads);
  };
  // The second consumer's last turn has no successor to hand over to.
  auto passTurn = [&](KernelBuilder &lb, Value last) {
    Value skip = arith::AndIOp::create(
        lb.builder(), last,
        arith::CmpIOp::create(lb.builder(), arith::CmpIPredicate::eq, consumer,
                              lb.index(1)));
    lb.ifThen(negate(lb, skip), [&](KernelBuilder &ab) {
      namedBarrierArrive(ab, otherTurn, kConsumers * kGroupThreads);
    });
  };
  // S = Q.K^T over the head's features, 16 a step; one wgmma group.
  auto issueScores = [&](KernelBuilder &lb, Value stage) {
    ImplicitLocOpBuilder &l = lb.builder();
    Value kDesc = wgmmaDescriptor(lb, stage);
    Value acc = LLVM::UndefOp::create(
        l, wgmmaAccumulatorType(l.getContext(), kTileKeys));
    for (int64_t f = 0; f < d; f += 16) {
      int64_t box = f / kBoxFeatures, inBox = (f % kBoxFeatures) * 2;
      acc = wgmma(lb, advanceDescriptor(lb, qDesc, box * lay.qBoxBytes + inBox),
                  advanceDescriptor(lb, kDesc, box * lay.kvBoxBytes + inBox),
                  acc, kTileKeys, element, /*accumulate=*/f > 0);
    }
    NVVM::WgmmaGroupSyncAlignedOp::create(l);
    return acc;
  };
  // O += P.V, P from registers 16 keys a step; one wgmma group.
  auto issueValues = [&](KernelBuilder &lb, Value stage, ValueRange p,
                         Value o) {
    Value vDesc = wgmmaDescriptor(
        lb, sharedAt(lb, stage, lay.boxes * lay.kvBoxBytes), lay.kvBoxBytes);
    for (int64_t m = 0; m < keySteps; ++m)
      o = wgmmaRegisterA(
          lb, SmallVector<Value>(p.slice(4 * m, 4)),
          advanceDescriptor(lb, vDesc, m * 16 * kSwizzleRowBytes), o, d,
          element, /*transposeB=*/true);
    NVVM::WgmmaGroupSyncAlignedOp::create(lb.builder());
    return o;
  };
  // Tile i's online softmax: element 4j + 2r + e of S is row r's key
  // k0 + 8j + 2t + e; the tiles inside every row's window skip the mask.
  auto softmax = [&](KernelBuilder &lb, Value i, Value sAcc, ValueRange stats) {
    ImplicitLocOpBuilder &l = lb.builder();
    Value k0 = lb.add(lo, lb.mul(i, lb.index(kTileKeys)));
    Value crosses = arith::OrIOp::create(
        l, less(lb, firstPos, lb.add(k0, lb.index(kTileKeys - 1))),
        less(lb, k0, lastBegin));
    SmallVector<Type> scoreTypes(kTileKeys / 2, l.getF32Type());
    auto choose =
        scf::IfOp::create(l, scoreTypes, crosses, /*withElseRegion=*/true);
    for (bool bounded : {true, false}) {
      ImplicitLocOpBuilder sb(l.getLoc(), bounded
                                              ? choose.getThenBodyBuilder()
                                              : choose.getElseBodyBuilder());
      KernelBuilder sk(sb);
      SmallVector<Value> scored;
      for (int64_t e = 0; e < kTileKeys / 2; ++e) {
        int64_t j = e / 4, r = (e / 2) % 2;
        Value key = sk.add(k0, sk.add(twoT, sk.index(8 * j + e % 2)));
        scored.push_back(flashScore(sk, rows, int(r), wgmmaElement(sk, sAcc, e),
                                    key, bounded));
      }
      scf::YieldOp::create(sb, scored);
    }
    std::array<SmallVector<Value>, 2> score;
    for (int64_t e = 0; e < kTileKeys / 2; ++e)
      score[(e / 2) % 2].push_back(choose.getResult(e));
    return flashSoftmaxStep(lb, stats, score[0], score[1]);
  };
  auto packP = [&](KernelBuilder &lb, const FlashStep &fs) {
    SmallVector<Value> p;
    for (int64_t m = 0; m < keySteps; ++m)
      llvm::append_range(p, flashPFragment(lb, fs, m, element));
    return p;
  };
  Value lastTile = ck.sub(tiles, ck.index(1));

  // The second consumer hands the first its first turn.
  ck.ifThen(arith::CmpIOp::create(cb, arith::CmpIPredicate::eq, consumer,
                                  ck.index(1)),
            [&](KernelBuilder &ab) {
              namedBarrierArrive(ab, ab.index(kFirstTurnBarrier),
                                 kConsumers * kGroupThreads);
            });

  // Tile 0: its scores and softmax.
  mbarrierWait(ck, ring.full(ck, ck.index(0)), ck.index(0));
  awaitTurn(ck);
  NVVM::WgmmaFenceAlignedOp::create(cb);
  Value s0 = issueScores(ck, ring.stage(ck, ck.index(0)));
  passTurn(ck, isZero(ck, lastTile));
  NVVM::WgmmaWaitGroupSyncOp::create(cb, 0);
  SmallVector<Value> stats0 = {ck.f32(-INFINITY), ck.f32(-INFINITY),
                               ck.f32(0.0), ck.f32(0.0)};
  FlashStep fs0 = softmax(ck, ck.index(0), s0, stats0);
  SmallVector<Value> init = fs0.stats;
  init.push_back(wgmmaZero(ck, d));
  llvm::append_range(init, packP(ck, fs0));

  SmallVector<Value> st = ck.forLoop(
      ck.index(1), tiles, 1, init,
      [&](KernelBuilder &lb, Value i, ValueRange in) {
        ImplicitLocOpBuilder &l = lb.builder();
        Value s = ring.slot(lb, i);
        Value before = ring.slot(lb, lb.sub(i, lb.index(1)));
        mbarrierWait(lb, ring.full(lb, s), ring.parity(lb, i));
        awaitTurn(lb);
        NVVM::WgmmaFenceAlignedOp::create(l);
        Value sAcc = issueScores(lb, ring.stage(lb, s));
        Value o =
            issueValues(lb, ring.stage(lb, before), in.drop_front(5), in[4]);
        passTurn(lb, arith::CmpIOp::create(l, arith::CmpIPredicate::eq, i,
                                           lastTile));
        NVVM::WgmmaWaitGroupSyncOp::create(l, 1);
        FlashStep fs = softmax(lb, i, sAcc, in.take_front(4));
        // P.V of the tile before has retired: its stage is free, and O
        // takes this tile's correction before this tile's P.V.
        NVVM::WgmmaWaitGroupSyncOp::create(l, 0);
        mbarrierArrive(lb, ring.empty(lb, before));
        for (int64_t e = 0; e < d / 2; ++e)
          o = LLVM::InsertValueOp::create(
              l, o, lb.mul(wgmmaElement(lb, o, e), fs.correction[(e / 2) % 2]),
              e);
        SmallVector<Value> next = fs.stats;
        next.push_back(o);
        llvm::append_range(next, packP(lb, fs));
        return next;
      });

  // The last tile's P.V.
  NVVM::WgmmaFenceAlignedOp::create(cb);
  Value lastStage = ring.slot(ck, lastTile);
  Value o = issueValues(ck, ring.stage(ck, lastStage),
                        ValueRange(st).drop_front(5), st[4]);
  NVVM::WgmmaWaitGroupSyncOp::create(cb, 0);
  mbarrierArrive(ck, ring.empty(ck, lastStage));
  // Normalize and store this lane's rows.
  for (int r = 0; r < 2; ++r) {
    Value inv = ck.div(ck.f32(1.0), shuffleReduce(ck, st[2 + r], kQuad,
                                                  /*isMax=*/false));
    Value row = ck.add(warpRow0, ck.add(ml.g, ck.index(8 * r)));
    ck.ifThen(less(ck, row, nTokens), [&](KernelBuilder &sb) {
      Value at = sb.add(
          sb.mul(sb.add(sb.mul(row, sb.index(heads)), h), sb.index(d)), twoT);
      auto v2 = VectorType::get({2}, f32);
      for (int64_t j = 0; j < d / 8; ++j) {
        Value pair = vector::FromElementsOp::create(
            sb.builder(), v2,
            ValueRange{sb.mul(wgmmaElement(sb, o, 4 * j + 2 * r), inv),
                       sb.mul(wgmmaElement(sb, o, 4 * j + 2 * r + 1), inv)});
        storePair(sb, pair, k.args[out], sb.add(at, sb.index(8 * j)));
      }
    });
  }
  endKernel(k,
            grid(heads, 1, GridScale::One, 1, GridScale::Tokens, kBlockQueries),
            LaunchWhen::PrefillLarge);
}

} // namespace decc::gpulowering
