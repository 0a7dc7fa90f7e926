//===- TensorParallel.cpp - the model partitioned over ranks --------------===//
//
// Megatron's split, decided at compile time on the model as built (before
// the fusions): attention heads and the MLP's intermediate features are
// divided over the ranks; the projections that produce them are
// column-parallel (each rank loads the rows of its heads or features), the
// ones that consume them (O, down) row-parallel (each rank loads the
// matching columns) and followed by a decoder.all_reduce; the LM head is
// split over the vocabulary and its logits gathered (decoder.all_gather)
// when the vocabulary divides, else every rank computes all of it.
// Quantized weights split too: by rows freely, by columns on their groups.
// Embeddings, norms and the residual stream are replicated: the stream is
// what every rank needs whole after each all-reduce, and the embedding is a
// gather of one row a token, too little to split.
//
// The code is the same for every rank; only the weights' `shard_ranges`
// (per rank) say what each loads. Key/value heads are split when the ranks
// divide them, else (fewer KV heads than ranks) each rank keeps the one KV
// head its query heads read, and the ranks that share a KV head hold it
// alike. ALiBi's heads keep the model's slopes: a rank's attention says
// how many heads the model has (alibi_heads), and the lowering offsets its
// heads' slopes by the rank, known when it runs.
//
//===----------------------------------------------------------------------===//

#include "compiler/Transforms/Passes.h"

#include "Decoder/DecoderOps.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"

#include "llvm/ADT/DenseSet.h"
#include "llvm/ADT/TypeSwitch.h"

namespace decc {
#define GEN_PASS_DEF_TENSORPARALLEL
#include "compiler/Transforms/Passes.h.inc"
} // namespace decc

using namespace mlir;
using namespace mlir::decoder;

namespace {

/// Per rank, the [begin, end) ranges of a weight's dimension it loads.
using RankRanges =
    llvm::function_ref<SmallVector<std::pair<int64_t, int64_t>>(int64_t rank)>;

class Partitioner {
public:
  Partitioner(ModuleOp module, int64_t ranks) : module(module), n(ranks) {}

  LogicalResult run();

private:
  /// A new weight op beside `w` holding each rank's `ranges` of dimension
  /// `dim`.
  Value shard(Value weight, int64_t dim, RankRanges ranges);
  /// `v`'s type with dimension `dim` set to `size`.
  static Type resized(Value v, int64_t dim, int64_t size);
  LogicalResult attention(AttentionOp op);
  LogicalResult mlp(Operation *activation);
  LogicalResult lmHead(LMHeadOp op);
  /// The row-parallel projection `linear` (columns `ranges` of its weight)
  /// followed by an all-reduce that takes its place.
  LogicalResult rowParallel(LinearOp linear, RankRanges ranges);

  ModuleOp module;
  int64_t n;
  llvm::DenseSet<Operation *> done;
  /// The KV cache's heads a rank (0: not set yet).
  int64_t cacheKVHeads = 0;
};

Type Partitioner::resized(Value v, int64_t dim, int64_t size) {
  auto type = cast<RankedTensorType>(v.getType());
  SmallVector<int64_t> shape(type.getShape());
  shape[dim] = size;
  return RankedTensorType::get(shape, type.getElementType(),
                               type.getEncoding());
}

Value Partitioner::shard(Value weight, int64_t dim, RankRanges ranges) {
  auto w = weight.getDefiningOp<WeightOp>();
  SmallVector<int64_t> flat;
  int64_t size = 0;
  for (int64_t r = 0; r < n; ++r) {
    int64_t sum = 0;
    for (auto [b, e] : ranges(r)) {
      flat.append({b, e});
      sum += e - b;
    }
    size = sum;
  }
  OpBuilder b(w);
  auto sharded = WeightOp::create(b, w.getLoc(), resized(weight, dim, size),
                                  w.getNameAttr(), b.getI64IntegerAttr(dim),
                                  b.getDenseI64ArrayAttr(flat));
  return sharded.getResult();
}

LogicalResult Partitioner::rowParallel(LinearOp linear, RankRanges ranges) {
  if (linear.getBias())
    return linear.emitOpError()
           << "has a bias: a row-parallel projection's bias would be added "
              "once a rank (not supported yet)";
  if (linear.getNumResults() != 1)
    return linear.emitOpError() << "is row-parallel and must have one result";
  // A quantized weight's columns split on its groups: each rank's groups
  // are then the stored ones, the scales and zero points sliced alike.
  auto type = cast<RankedTensorType>(linear.getWeight().getType());
  if (auto quantized = dyn_cast_or_null<QuantizedAttr>(type.getEncoding()))
    for (int64_t r = 0; r < n; ++r)
      for (auto [b, e] : ranges(r))
        if (b % quantized.getGroupSize() ||
            (e % quantized.getGroupSize() && e != type.getDimSize(1)))
          return linear.emitOpError()
                 << "is row-parallel over columns [" << b << ", " << e
                 << "), which do not fall on its quantization groups of "
                 << quantized.getGroupSize();
  Value weight = shard(linear.getWeight(), 1, ranges);
  linear.getWeightMutable().assign(weight);
  done.insert(linear);
  OpBuilder b(linear->getContext());
  b.setInsertionPointAfter(linear);
  Value partial = linear.getResult(0);
  auto reduced = AllReduceOp::create(b, linear.getLoc(), partial.getType(),
                                     partial, b.getI64IntegerAttr(n));
  partial.replaceAllUsesExcept(reduced.getResult(), reduced);
  return success();
}

/// The projection and result index that `v` comes from, through a RoPE.
static std::pair<LinearOp, unsigned> producer(Value v) {
  if (auto rope = v.getDefiningOp<RoPEOp>())
    v = rope.getInput();
  auto result = dyn_cast<OpResult>(v);
  if (!result)
    return {};
  return {dyn_cast<LinearOp>(result.getOwner()), result.getResultNumber()};
}

LogicalResult Partitioner::attention(AttentionOp op) {
  AttentionConfigAttr cfg = op.getConfig();
  int64_t heads = cfg.getNumHeads(), kvHeads = cfg.getNumKvHeads(),
          d = cfg.getHeadDim();
  if (heads % n)
    return op.emitOpError() << "has " << heads << " attention heads, which "
                            << n << " ranks do not divide";
  bool splitKV = kvHeads % n == 0;
  if (!splitKV && n % kvHeads)
    return op.emitOpError() << "has " << kvHeads << " key/value heads: " << n
                            << " ranks must divide them or be a multiple";
  int64_t qPer = heads / n, kvPer = splitKV ? kvHeads / n : 1;
  auto qFirst = [&](int64_t r) { return r * qPer; };
  auto kvFirst = [&](int64_t r) {
    return splitKV ? r * kvPer : r * kvHeads / n;
  };
  auto [qLinear, qIndex] = producer(op.getQuery());
  auto [kLinear, kIndex] = producer(op.getKey());
  auto [vLinear, vIndex] = producer(op.getValue());
  if (!qLinear || !kLinear || !vLinear)
    return op.emitOpError() << "has a query, key or value that is not a "
                               "projection's (through RoPE)";
  using Ranges = SmallVector<std::pair<int64_t, int64_t>>;
  auto headRows = [&](int64_t first, int64_t count) {
    return std::pair(first * d, (first + count) * d);
  };
  if (qLinear == kLinear && kLinear == vLinear) {
    // One packed projection.
    if (qIndex != 0 || kIndex != 1 || vIndex != 2)
      return op.emitOpError() << "reads its packed projection's results out "
                                 "of q, k, v order";
    std::function<Ranges(int64_t)> ranges;
    if (qLinear.getPacking() == Packing::KVGrouped) {
      // Per KV head g: its heads / kvHeads query heads, its key, its value.
      int64_t group = heads / kvHeads, rows = (group + 2) * d;
      ranges = [&, group, rows](int64_t r) -> Ranges {
        if (splitKV)
          return {{kvFirst(r) * rows, (kvFirst(r) + kvPer) * rows}};
        int64_t g = kvFirst(r), local = qFirst(r) - g * group;
        return {{g * rows + local * d, g * rows + (local + qPer) * d},
                {g * rows + group * d, (g + 1) * rows}};
      };
    } else {
      ranges = [&](int64_t r) -> Ranges {
        auto [q0, q1] = headRows(qFirst(r), qPer);
        auto [k0, k1] = headRows(kvFirst(r), kvPer);
        return {{q0, q1},
                {heads * d + k0, heads * d + k1},
                {(heads + kvHeads) * d + k0, (heads + kvHeads) * d + k1}};
      };
    }
    qLinear.getWeightMutable().assign(shard(qLinear.getWeight(), 0, ranges));
    if (Value bias = qLinear.getBias())
      qLinear.getBiasMutable().assign(shard(bias, 0, ranges));
  } else if (qLinear != kLinear && kLinear != vLinear && qLinear != vLinear) {
    auto one = [&](LinearOp linear, auto first, int64_t count) {
      auto ranges = [&](int64_t r) -> Ranges {
        return {headRows(first(r), count)};
      };
      linear.getWeightMutable().assign(shard(linear.getWeight(), 0, ranges));
      if (Value bias = linear.getBias())
        linear.getBiasMutable().assign(shard(bias, 0, ranges));
    };
    one(qLinear, qFirst, qPer);
    one(kLinear, kvFirst, kvPer);
    one(vLinear, kvFirst, kvPer);
  } else {
    return op.emitOpError() << "reads q, k and v from a mix of packed and "
                               "separate projections";
  }
  // The new shapes: q heads, KV heads a rank.
  for (auto [linear, index, count] :
       {std::tuple(qLinear, qIndex, qPer), std::tuple(kLinear, kIndex, kvPer),
        std::tuple(vLinear, vIndex, kvPer)}) {
    Value result = linear.getResult(index);
    result.setType(resized(result, 1, count));
    done.insert(linear);
    for (Operation *user : result.getUsers())
      if (auto rope = dyn_cast<RoPEOp>(user))
        Value(rope.getResult()).setType(result.getType());
  }
  op.setConfigAttr(AttentionConfigAttr::get(
      op.getContext(), qPer, kvPer, d, cfg.getSoftmaxScale(), cfg.getCausal(),
      cfg.getSlidingWindow(), cfg.getAlibiBiasMax(),
      cfg.getAlibiBiasMax() > 0 ? heads : 0, cfg.getClipQkv(),
      cfg.getBackend()));
  Value(op.getResult()).setType(resized(op.getResult(), 1, qPer));
  if (cacheKVHeads && cacheKVHeads != kvPer)
    return op.emitOpError() << "layers disagree on key/value heads a rank";
  cacheKVHeads = kvPer;
  // O: the columns of this rank's heads.
  for (Operation *user : op.getResult().getUsers()) {
    auto o = dyn_cast<LinearOp>(user);
    if (!o || o.getInput() != op.getResult())
      return user->emitOpError()
             << "reads attention output but is not its O projection";
    if (failed(rowParallel(o, [&](int64_t r) -> Ranges {
          return {headRows(qFirst(r), qPer)};
        })))
      return failure();
  }
  return success();
}

LogicalResult Partitioner::mlp(Operation *activation) {
  using Ranges = SmallVector<std::pair<int64_t, int64_t>>;
  Value out = activation->getResult(0);
  int64_t width = cast<RankedTensorType>(out.getType()).getDimSize(1);
  if (width % n)
    return activation->emitOpError()
           << "has " << width << " intermediate features, which " << n
           << " ranks do not divide";
  int64_t per = width / n;
  auto mine = [&](int64_t r) { return std::pair(r * per, (r + 1) * per); };
  // The column-parallel projections of its operands (gate and up: separate
  // or one packed projection's two results).
  SmallVector<std::pair<LinearOp, unsigned>> sources;
  for (Value operand : activation->getOperands())
    sources.push_back(producer(operand));
  for (auto [linear, index] : sources)
    if (!linear)
      return activation->emitOpError()
             << "has an operand that is not a projection's";
  LinearOp first = sources.front().first;
  bool packed = sources.size() == 2 && sources[1].first == first;
  if (packed) {
    auto ranges = [&](int64_t r) -> Ranges {
      auto [b, e] = mine(r);
      return {{b, e}, {width + b, width + e}};
    };
    first.getWeightMutable().assign(shard(first.getWeight(), 0, ranges));
    if (Value bias = first.getBias())
      first.getBiasMutable().assign(shard(bias, 0, ranges));
  } else {
    for (auto [linear, index] : sources) {
      if (linear.getNumResults() != 1)
        return linear.emitOpError()
               << "feeds an activation with one of several results";
      auto ranges = [&](int64_t r) -> Ranges { return {mine(r)}; };
      linear.getWeightMutable().assign(shard(linear.getWeight(), 0, ranges));
      if (Value bias = linear.getBias())
        linear.getBiasMutable().assign(shard(bias, 0, ranges));
    }
  }
  for (auto [linear, index] : sources) {
    Value result = linear.getResult(index);
    result.setType(resized(result, 1, per));
    done.insert(linear);
  }
  out.setType(resized(out, 1, per));
  // down: the columns of this rank's features.
  for (Operation *user : out.getUsers()) {
    auto down = dyn_cast<LinearOp>(user);
    if (!down)
      return user->emitOpError()
             << "reads the MLP's activation but is not its down projection";
    if (failed(
            rowParallel(down, [&](int64_t r) -> Ranges { return {mine(r)}; })))
      return failure();
  }
  return success();
}

LogicalResult Partitioner::lmHead(LMHeadOp op) {
  int64_t vocab =
      cast<RankedTensorType>(op.getWeight().getType()).getDimSize(0);
  // A vocabulary the ranks do not divide (InternVL2-2B's 92553) stays whole
  // on every rank: the gather takes equal shares.
  if (vocab % n)
    return success();
  int64_t per = vocab / n;
  op.getWeightMutable().assign(
      shard(op.getWeight(), 0,
            [&](int64_t r) -> SmallVector<std::pair<int64_t, int64_t>> {
              return {{r * per, (r + 1) * per}};
            }));
  Value logits = op.getResult();
  Type whole = logits.getType();
  logits.setType(resized(logits, 1, per));
  OpBuilder b(op->getContext());
  b.setInsertionPointAfter(op);
  auto gathered = AllGatherOp::create(b, op.getLoc(), whole, logits,
                                      b.getI64IntegerAttr(n));
  logits.replaceAllUsesExcept(gathered.getResult(), gathered);
  return success();
}

LogicalResult Partitioner::run() {
  SmallVector<Operation *> work;
  module.walk([&](Operation *op) {
    if (isa<AttentionOp, SwiGLUOp, GeluOp, LMHeadOp>(op))
      work.push_back(op);
  });
  for (Operation *op : work) {
    LogicalResult result =
        llvm::TypeSwitch<Operation *, LogicalResult>(op)
            .Case([&](AttentionOp a) { return attention(a); })
            .Case([&](LMHeadOp h) { return lmHead(h); })
            .Default([&](Operation *act) { return mlp(act); });
    if (failed(result))
      return failure();
  }
  // Every other projection would compute on a replicated input with a
  // whole weight, which is right but wastes the ranks: refuse what the
  // pass does not know.
  WalkResult unknown = module.walk([&](LinearOp linear) {
    if (!done.contains(linear)) {
      linear.emitOpError() << "is not a projection tensor parallelism "
                              "partitions (q/k/v, O, gate/up, down)";
      return WalkResult::interrupt();
    }
    return WalkResult::advance();
  });
  if (unknown.wasInterrupted())
    return failure();
  // The KV cache: KV heads a rank, in the function's signature.
  if (cacheKVHeads)
    module.walk([&](func::FuncOp f) {
      SmallVector<Type> inputs(f.getFunctionType().getInputs());
      for (auto [i, arg] : llvm::enumerate(f.getArguments()))
        if (auto cache = dyn_cast<KVCacheType>(arg.getType())) {
          auto type =
              KVCacheType::get(f.getContext(), cache.getLayers(), cacheKVHeads,
                               cache.getHeadDim(), cache.getElement());
          arg.setType(type);
          inputs[i] = type;
        }
      f.setType(FunctionType::get(f.getContext(), inputs,
                                  f.getFunctionType().getResults()));
    });
  // The whole weights nothing reads any more.
  module.walk([&](WeightOp w) {
    if (w.use_empty())
      w.erase();
  });
  return success();
}

struct TensorParallelPass : decc::impl::TensorParallelBase<TensorParallelPass> {
  using TensorParallelBase::TensorParallelBase;
  void runOnOperation() override {
    if (ranks < 2) {
      getOperation().emitError()
          << "decoder-tensor-parallel needs 2 ranks or more, got " << ranks;
      return signalPassFailure();
    }
    if (failed(Partitioner(getOperation(), ranks).run()))
      signalPassFailure();
  }
};

} // namespace
