//===- ManifestJson.cpp - the manifest's JSON, written and read -----------===//
//
// The only code that knows the manifest's keys. Reading is strict: every
// field the runtime uses must be there with its type, and an unknown
// enumerator is an error, so an executable whose manifest was damaged or
// written by another version of decc is refused with the path of what is
// wrong instead of run on a guess.
//
//===----------------------------------------------------------------------===//

#include "contract/Manifest.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include <stdexcept>

namespace decc::contract {

using nlohmann::json;

int64_t WeightShard::ranks(int64_t partSize) const {
  int64_t total = 0;
  for (size_t i = 0; i + 1 < ranges.size(); i += 2)
    total += ranges[i + 1] - ranges[i];
  return partSize > 0 ? total / partSize : 0;
}

std::vector<int64_t> WeightShard::rankRanges(int64_t rank,
                                             int64_t partSize) const {
  int64_t n = ranks(partSize);
  if (n < 1 || rank < 0 || rank >= n)
    return {};
  size_t perRank = ranges.size() / size_t(n);
  return {ranges.begin() + rank * perRank,
          ranges.begin() + (rank + 1) * perRank};
}

int64_t WeightShard::storedSize() const {
  int64_t most = 0;
  for (size_t i = 1; i < ranges.size(); i += 2)
    most = std::max(most, ranges[i]);
  return most;
}

int64_t WeightSlot::numElements() const {
  int64_t n = 1;
  for (int64_t d : shape)
    n *= d;
  return n;
}

int64_t WeightSlot::groups() const {
  int64_t cols = shape.empty() ? 0 : shape.back();
  return groupSize > 0 ? (cols + groupSize - 1) / groupSize : 0;
}

int64_t WeightSlot::rowBytes() const {
  int64_t cols = shape.empty() ? 0 : shape.back();
  // 4 bits: whole runs of 16 columns (8 bytes), the last one padded.
  return quantBits == 4 ? (cols + 15) / 16 * 8 : cols * quantBits / 8;
}

int64_t WeightSlot::scalesOffset() const {
  // The scales start on a 64-byte boundary, as every slot does.
  int64_t rows = shape.empty() ? 0 : shape.front();
  return (rows * rowBytes() + 63) / 64 * 64;
}

int64_t WeightSlot::zerosOffset() const {
  int64_t rows = shape.empty() ? 0 : shape.front();
  return scalesOffset() + rows * groups() * scaleBytes();
}

int64_t WeightSlot::bytes() const {
  if (!quantBits)
    return numElements() * byteSize(dtype);
  int64_t rows = shape.empty() ? 0 : shape.front();
  return zerosOffset() + (quantBits == 4 ? rows * groups() * zeroBytes() : 0);
}

int64_t CacheShape::bytes(int64_t context) const {
  return 2 * layers * kvHeads * context * headDim * byteSize(dtype);
}

std::optional<int64_t> CacheShape::checkedBytes(int64_t context) const {
  return checkedProduct(
      {2, layers, kvHeads, context, headDim, byteSize(dtype)});
}

std::optional<int64_t> PlanBuffer::checkedBytes(int64_t context) const {
  switch (size) {
  case Size::PerToken:
    return checkedProduct({floats, context, 4});
  case Size::PerTokenKey:
    return checkedProduct({floats, context, context, 4});
  case Size::Fixed:
    return checkedProduct({floats, 4});
  }
  return std::nullopt;
}

int64_t PlanBuffer::bytes(int64_t context) const {
  switch (size) {
  case Size::PerToken:
    return floats * context * 4;
  case Size::PerTokenKey:
    return floats * context * context * 4;
  case Size::Fixed:
    return floats * 4;
  }
  return 0;
}

namespace {

//===----------------------------------------------------------------------===//
// Enumerator spellings
//===----------------------------------------------------------------------===//

template <typename E> struct Spellings;
template <> struct Spellings<Target> {
  static constexpr std::pair<Target, const char *> table[] = {
      {Target::CPU, "cpu"}, {Target::CUDA, "cuda"}};
};
template <> struct Spellings<LaunchWhen> {
  static constexpr std::pair<LaunchWhen, const char *> table[] = {
      {LaunchWhen::Always, "always"},
      {LaunchWhen::Decode, "decode"},
      {LaunchWhen::Prefill, "prefill"},
      {LaunchWhen::PrefillSmall, "prefill_small"},
      {LaunchWhen::PrefillLarge, "prefill_large"},
      {LaunchWhen::Batched, "batched"}};
};
template <> struct Spellings<Collective> {
  static constexpr std::pair<Collective, const char *> table[] = {
      {Collective::None, "none"},
      {Collective::AllReduce, "all_reduce"},
      {Collective::AllGather, "all_gather"}};
};
template <> struct Spellings<GridScale> {
  static constexpr std::pair<GridScale, const char *> table[] = {
      {GridScale::One, "one"},
      {GridScale::Tokens, "tokens"},
      {GridScale::Rows, "rows"},
      {GridScale::Splits, "splits"}};
};
template <> struct Spellings<PlanBuffer::Size> {
  // The key that holds the buffer's floats says how they scale.
  static constexpr std::pair<PlanBuffer::Size, const char *> table[] = {
      {PlanBuffer::Size::PerToken, "floats_per_token"},
      {PlanBuffer::Size::PerTokenKey, "floats_per_token_key"},
      {PlanBuffer::Size::Fixed, "floats"}};
};

template <typename E> const char *spell(E e) {
  for (auto [value, text] : Spellings<E>::table)
    if (value == e)
      return text;
  return "?";
}

//===----------------------------------------------------------------------===//
// Writing
//===----------------------------------------------------------------------===//

json toJson(const WeightSlot &w) {
  json parts = json::array();
  for (const WeightPart &p : w.parts) {
    json part{{"tensor", p.tensor}, {"shape", p.shape}};
    if (p.kvGrouped)
      part["layout"] = {{"kind", "kv_grouped"},
                        {"q_heads", p.kvGrouped->qHeads},
                        {"kv_heads", p.kvGrouped->kvHeads},
                        {"head_dim", p.kvGrouped->headDim}};
    if (p.shard)
      part["shard"] = {{"dim", p.shard->dim}, {"ranges", p.shard->ranges}};
    parts.push_back(std::move(part));
  }
  json slot{{"offset", w.offset},
            {"shape", w.shape},
            {"dtype", spelling(w.dtype)},
            {"parts", std::move(parts)}};
  if (!w.values.empty())
    slot["values"] = w.values;
  if (w.quantBits) {
    slot["quantized"] = {{"bits", w.quantBits}, {"group_size", w.groupSize}};
    if (w.f32GroupTerms)
      slot["quantized"]["group_terms"] = "f32";
  }
  return slot;
}

json toJson(const Plan &p) {
  json buffers = json::array(), maps = json::array(), launches = json::array();
  for (const PlanBuffer &b : p.buffers)
    buffers.push_back({{"name", b.name}, {spell(b.size), b.floats}});
  for (const TensorMapSpec &t : p.tensorMaps) {
    json map{{"name", t.name},
             {"buffer", t.buffer},
             {"offset", t.offset},
             {"dtype", spelling(t.dtype)},
             {"dims", {t.inner, t.outer}},
             {"box", {t.boxInner, t.boxOuter}}};
    if (t.cacheLayer >= 0)
      map["cache_layer"] = t.cacheLayer;
    maps.push_back(std::move(map));
  }
  for (const Launch &l : p.launches) {
    const Grid &g = l.grid;
    json launch{{"kernel", l.kernel},
                {"grid",
                 {{"units", g.units},
                  {"per_block", g.perBlock},
                  {"times", spell(g.times)},
                  {"y", g.y},
                  {"y_times", spell(g.yTimes)},
                  {"y_tile", g.yTile}}},
                {"block", l.block},
                {"args", l.args},
                {"when", spell(l.when)}};
    if (l.sharedBytes)
      launch["shared_bytes"] = l.sharedBytes;
    if (l.arenaOffset)
      launch["arena_offset"] = l.arenaOffset;
    if (l.cacheLayer)
      launch["cache_layer"] = l.cacheLayer;
    if (l.cluster != 1)
      launch["cluster"] = l.cluster;
    if (l.skipInBatched)
      launch["skip_in_batched"] = true;
    if (l.collective != Collective::None) {
      launch["collective"] = spell(l.collective);
      launch["floats"] = l.floats;
    }
    if (g.resident)
      launch["grid"]["resident"] = true;
    launches.push_back(std::move(launch));
  }
  return {{"buffers", std::move(buffers)},
          {"tensor_maps", std::move(maps)},
          {"launches", std::move(launches)},
          {"large_prefill_tokens", p.largePrefillTokens},
          {"programmatic_launch", p.programmaticLaunch}};
}

//===----------------------------------------------------------------------===//
// Reading
//===----------------------------------------------------------------------===//

struct Malformed : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// A JSON object and where it is in the manifest, for messages.
class Node {
public:
  Node(const json &j, std::string path) : j(j), path(std::move(path)) {
    if (!j.is_object())
      fail("not an object");
  }

  bool has(const char *key) const { return j.contains(key); }
  const json &at(const char *key) const {
    auto it = j.find(key);
    if (it == j.end())
      fail(std::string("no '") + key + "'");
    return *it;
  }
  Node object(const char *key) const { return Node(at(key), where(key)); }
  int64_t integer(const char *key) const {
    const json &v = at(key);
    if (!v.is_number_integer())
      fail(where(key) + " is not an integer", false);
    return v.get<int64_t>();
  }
  bool boolean(const char *key) const {
    const json &v = at(key);
    if (!v.is_boolean())
      fail(where(key) + " is not true or false", false);
    return v.get<bool>();
  }
  std::string string(const char *key) const {
    const json &v = at(key);
    if (!v.is_string())
      fail(where(key) + " is not a string", false);
    return v.get<std::string>();
  }
  std::vector<int64_t> integers(const char *key) const {
    const json &v = array(key);
    std::vector<int64_t> out;
    for (const json &e : v) {
      if (!e.is_number_integer())
        fail(where(key) + " holds a non-integer", false);
      out.push_back(e.get<int64_t>());
    }
    return out;
  }
  std::vector<float> numbers(const char *key) const {
    std::vector<float> out;
    for (const json &e : array(key)) {
      if (!e.is_number())
        fail(where(key) + " holds a non-number", false);
      out.push_back(e.get<float>());
    }
    return out;
  }
  /// The objects of array `key`, each with its path.
  std::vector<Node> objects(const char *key) const {
    std::vector<Node> out;
    const json &v = array(key);
    for (size_t i = 0; i < v.size(); ++i)
      out.emplace_back(v[i], where(key) + "[" + std::to_string(i) + "]");
    return out;
  }
  template <typename E> E enumerator(const char *key) const {
    std::string text = string(key);
    for (auto [value, spelled] : Spellings<E>::table)
      if (text == spelled)
        return value;
    fail(where(key) + " '" + text + "' is unknown", false);
  }
  DType dtype(const char *key) const {
    std::string text = string(key);
    if (std::optional<DType> d = parseDType(text))
      return *d;
    fail(where(key) + " '" + text + "' is not f32, bf16 or f16", false);
  }
  /// Throws "PATH: what" (what alone at the top, or with prefix false).
  [[noreturn]] void fail(const std::string &what, bool prefix = true) const {
    throw Malformed(prefix && !path.empty() ? path + ": " + what : what);
  }

private:
  const json &array(const char *key) const {
    const json &v = at(key);
    if (!v.is_array())
      fail(where(key) + " is not an array", false);
    return v;
  }
  std::string where(const char *key) const {
    return path.empty() ? key : path + "." + key;
  }

  const json &j;
  std::string path;
};

WeightSlot readSlot(const Node &n) {
  WeightSlot w;
  w.offset = n.integer("offset");
  w.shape = n.integers("shape");
  w.dtype = n.dtype("dtype");
  if (n.has("values"))
    w.values = n.numbers("values");
  if (n.has("quantized")) {
    Node q = n.object("quantized");
    w.quantBits = q.integer("bits");
    w.groupSize = q.integer("group_size");
    if (w.quantBits != 8 && w.quantBits != 4)
      q.fail("bits " + std::to_string(w.quantBits) + " (8 and 4 are read)");
    if (w.groupSize <= 0)
      q.fail("group_size " + std::to_string(w.groupSize) + " must be positive");
    if (w.shape.size() != 2)
      q.fail("a quantized weight is a matrix");
    if (q.has("group_terms")) {
      std::string terms = q.string("group_terms");
      if (terms != "f32")
        q.fail("group_terms '" + terms + "' is unknown (f32 is read)");
      w.f32GroupTerms = true;
    }
  }
  for (const Node &p : n.objects("parts")) {
    WeightPart part;
    part.tensor = p.string("tensor");
    part.shape = p.integers("shape");
    if (p.has("layout")) {
      Node l = p.object("layout");
      if (l.string("kind") != "kv_grouped")
        l.fail("layout kind '" + l.string("kind") + "' is unknown");
      part.kvGrouped = KVGroupedLayout{
          l.integer("q_heads"), l.integer("kv_heads"), l.integer("head_dim")};
    }
    if (p.has("shard")) {
      Node sh = p.object("shard");
      WeightShard shard{sh.integer("dim"), sh.integers("ranges")};
      int64_t rank = int64_t(part.shape.size());
      if (shard.dim < 0 || shard.dim >= rank)
        sh.fail("dim " + std::to_string(shard.dim) +
                " is not a dimension of "
                "the part");
      // Pairs, each non-empty, adding up to a whole number of ranks.
      int64_t total = 0;
      if (shard.ranges.empty() || shard.ranges.size() % 2)
        sh.fail("ranges must be [begin, end) pairs");
      for (size_t i = 0; i < shard.ranges.size(); i += 2) {
        if (shard.ranges[i] < 0 || shard.ranges[i] >= shard.ranges[i + 1])
          sh.fail("range [" + std::to_string(shard.ranges[i]) + ", " +
                  std::to_string(shard.ranges[i + 1]) + ") is empty");
        total += shard.ranges[i + 1] - shard.ranges[i];
      }
      int64_t size = part.shape[size_t(shard.dim)];
      int64_t pairs = int64_t(shard.ranges.size()) / 2;
      bool whole = size > 0 && total % size == 0 && pairs % (total / size) == 0;
      for (int64_t r = 0; whole && r < total / size; ++r) {
        std::vector<int64_t> mine = shard.rankRanges(r, size);
        int64_t sum = 0;
        for (size_t i = 0; i < mine.size(); i += 2)
          sum += mine[i + 1] - mine[i];
        whole = sum == size;
      }
      if (!whole)
        sh.fail("ranges do not give every rank the part's " +
                std::to_string(size) + " along dim " +
                std::to_string(shard.dim));
      part.shard = std::move(shard);
    }
    w.parts.push_back(std::move(part));
  }
  return w;
}

ModelFacts readModel(const Node &n) {
  ModelFacts m;
  m.modelType = n.string("model_type");
  m.config = n.string("config");
  m.dtype = n.dtype("dtype");
  std::string attention = n.string("attention");
  std::optional<AttentionBackend> backend = parseAttentionBackend(attention);
  if (!backend)
    n.fail("attention '" + attention + "' is unknown");
  m.attention = *backend;
  m.cpu = n.string("cpu");
  m.amx = n.has("amx") && n.boolean("amx");
  m.gpuArch = n.string("gpu_arch");
  m.maxPositions = n.integer("max_positions");
  m.bos = n.integer("bos");
  m.eos = n.integers("eos");
  if (n.has("quantized")) {
    Node q = n.object("quantized");
    m.quantBits = q.integer("bits");
    m.groupSize = q.integer("group_size");
  }
  return m;
}

Plan readPlan(const Node &n) {
  Plan p;
  for (const Node &b : n.objects("buffers")) {
    PlanBuffer buffer;
    buffer.name = b.string("name");
    bool sized = false;
    for (auto [size, key] : Spellings<PlanBuffer::Size>::table)
      if (b.has(key)) {
        buffer.size = size;
        buffer.floats = b.integer(key);
        sized = true;
      }
    if (!sized)
      b.fail("no size (floats_per_token, floats_per_token_key or floats)");
    p.buffers.push_back(std::move(buffer));
  }
  for (const Node &t : n.objects("tensor_maps")) {
    TensorMapSpec map;
    map.name = t.string("name");
    map.buffer = t.string("buffer");
    map.offset = t.integer("offset");
    map.dtype = t.dtype("dtype");
    std::vector<int64_t> dims = t.integers("dims"), box = t.integers("box");
    if (dims.size() != 2 || box.size() != 2)
      t.fail("dims and box need two entries each");
    map.inner = dims[0];
    map.outer = dims[1];
    map.boxInner = box[0];
    map.boxOuter = box[1];
    if (t.has("cache_layer")) {
      map.cacheLayer = t.integer("cache_layer");
      if (map.cacheLayer < 0 ||
          (map.buffer != "k_cache" && map.buffer != "v_cache"))
        t.fail("cache_layer is a layer of k_cache or v_cache");
    }
    p.tensorMaps.push_back(std::move(map));
  }
  for (const Node &l : n.objects("launches")) {
    Launch launch;
    launch.kernel = l.string("kernel");
    launch.block = l.integer("block");
    Node g = l.object("grid");
    launch.grid = Grid{g.integer("units"),
                       g.integer("per_block"),
                       g.enumerator<GridScale>("times"),
                       g.integer("y"),
                       g.enumerator<GridScale>("y_times"),
                       g.integer("y_tile")};
    if (launch.grid.perBlock <= 0 || launch.grid.yTile <= 0)
      g.fail("per_block and y_tile must be positive");
    if (g.has("resident"))
      launch.grid.resident = g.boolean("resident");
    if (launch.block <= 0)
      l.fail("block must be positive");
    const json &args = l.at("args");
    if (!args.is_array())
      l.fail("args: not an array");
    for (const json &a : args) {
      if (!a.is_string())
        l.fail("args: holds a non-string");
      launch.args.push_back(a.get<std::string>());
    }
    launch.when = l.enumerator<LaunchWhen>("when");
    if (l.has("shared_bytes"))
      launch.sharedBytes = l.integer("shared_bytes");
    if (l.has("arena_offset"))
      launch.arenaOffset = l.integer("arena_offset");
    if (l.has("cache_layer"))
      launch.cacheLayer = l.integer("cache_layer");
    if (launch.arenaOffset < 0 || launch.cacheLayer < 0)
      l.fail("arena_offset and cache_layer must not be negative");
    if (l.has("cluster"))
      launch.cluster = l.integer("cluster");
    if (l.has("skip_in_batched"))
      launch.skipInBatched = l.boolean("skip_in_batched");
    if (l.has("collective")) {
      launch.collective = l.enumerator<Collective>("collective");
      launch.floats = l.integer("floats");
      size_t arity = launch.collective == Collective::AllGather ? 2 : 1;
      if (launch.floats < 1 || launch.args.size() != arity ||
          !launch.kernel.empty())
        l.fail("a collective has no kernel, " + std::to_string(arity) +
               " args and floats of at least 1");
    }
    if (!isClusterSize(launch.cluster))
      l.fail("cluster must be a power of two from 1 to " +
             std::to_string(kMaxClusterBlocks));
    p.launches.push_back(std::move(launch));
  }
  p.largePrefillTokens = n.integer("large_prefill_tokens");
  p.programmaticLaunch = n.boolean("programmatic_launch");
  return p;
}

/// The elements of `shape`; an error on `n` when a dimension is negative or
/// the count absurd (2^48).
int64_t product(const std::vector<int64_t> &shape, const Node &n) {
  int64_t elements = 1;
  for (int64_t d : shape) {
    if (d < 0 || (d > 0 && elements > (int64_t(1) << 48) / d))
      n.fail("a shape is negative or too large");
    elements *= d;
  }
  return elements;
}

Manifest readManifest(const Node &n) {
  Manifest m;
  if (!n.has("version"))
    n.fail("no version (written by a decc older than this runtime); "
           "compile the model again");
  m.version = n.integer("version");
  if (m.version != kManifestVersion)
    n.fail("version " + std::to_string(m.version) +
           ", and this runtime reads version " +
           std::to_string(kManifestVersion) +
           "; compile the model again with the decc of this runtime");
  m.target = n.enumerator<Target>("target");
  m.arenaBytes = n.integer("arena_bytes");
  m.streamedBytesPerToken = n.integer("streamed_bytes_per_token");
  for (const Node &w : n.objects("weights")) {
    m.weights.push_back(readSlot(w));
    // The runtime writes every slot into the arena: it must lie inside.
    const WeightSlot &slot = m.weights.back();
    int64_t elements = product(slot.shape, w);
    int64_t bytes = slot.bytes();
    if (slot.offset < 0 || slot.offset > m.arenaBytes - bytes)
      w.fail("offset " + std::to_string(slot.offset) + " and " +
             std::to_string(bytes) + " bytes lie outside the arena of " +
             std::to_string(m.arenaBytes) + " bytes");
    if (!slot.values.empty() && int64_t(slot.values.size()) != elements)
      w.fail("values do not fill the shape");
    int64_t inParts = 0;
    for (const WeightPart &part : slot.parts)
      inParts += product(part.shape, w);
    if (!slot.parts.empty() && inParts != elements)
      w.fail("parts hold " + std::to_string(inParts) + " elements, the shape " +
             std::to_string(elements));
  }
  Node c = n.object("cache");
  m.cache = CacheShape{c.integer("layers"), c.integer("kv_heads"),
                       c.integer("head_dim"), c.dtype("dtype")};
  m.vocab = n.integer("vocab");
  m.reencodeAtLength = n.integer("reencode_at_length");
  m.batchedLength = n.integer("batched_length");
  if (n.has("model"))
    m.model = readModel(n.object("model"));
  if (m.target == Target::CUDA)
    m.plan = readPlan(n.object("plan"));
  if (n.has("vision")) {
    Node v = n.object("vision");
    m.vision =
        VisionShape{v.integer("channels"),        v.integer("image_size"),
                    v.integer("tokens_per_tile"), v.integer("hidden"),
                    v.integer("min_tiles"),       v.integer("max_tiles"),
                    v.boolean("thumbnail")};
    if (m.vision->channels < 1 || m.vision->imageSize < 1 ||
        m.vision->tokensPerTile < 1 || m.vision->hidden < 1 ||
        m.vision->minTiles < 1 || m.vision->maxTiles < m.vision->minTiles)
      v.fail("every size must be positive, min_tiles at most max_tiles");
  }
  if (n.has("vision_plan")) {
    if (m.target != Target::CUDA || !m.vision)
      n.fail("vision_plan: only CUDA models with a vision encoder have one");
    Node v = n.object("vision_plan");
    VisionPlan vp;
    vp.plan = readPlan(v);
    vp.projectorFrom = v.integer("projector_from");
    vp.sequence = v.integer("sequence");
    vp.output = v.string("output");
    if (vp.projectorFrom < 0 ||
        vp.projectorFrom > int64_t(vp.plan.launches.size()) ||
        vp.sequence < m.vision->tokensPerTile)
      v.fail("projector_from must index its launches, sequence be at least "
             "the tokens a tile");
    if (std::none_of(vp.plan.buffers.begin(), vp.plan.buffers.end(),
                     [&](const PlanBuffer &b) { return b.name == vp.output; }))
      v.fail("output " + vp.output + " is none of its buffers");
    for (const Launch &l : vp.plan.launches)
      if (l.arenaOffset > m.arenaBytes)
        v.fail("launch of " + l.kernel + ": arena_offset outside the model");
    // Its descriptors are encoded over its own buffers (it has no cache).
    for (const TensorMapSpec &t : vp.plan.tensorMaps)
      if (t.cacheLayer >= 0 ||
          (t.buffer != "arena" &&
           std::none_of(
               vp.plan.buffers.begin(), vp.plan.buffers.end(),
               [&](const PlanBuffer &b) { return b.name == t.buffer; })))
        v.fail("tensor map " + t.name + " maps " + t.buffer +
               ", neither the arena nor one of its buffers");
    m.visionPlan = std::move(vp);
  }
  if (m.plan)
    for (const Launch &l : m.plan->launches)
      if (l.arenaOffset > m.arenaBytes ||
          (l.cacheLayer > 0 && l.cacheLayer >= m.cache.layers))
        n.fail("launch of " + l.kernel +
               ": arena_offset or cache_layer outside the model");
  if (m.plan)
    for (const TensorMapSpec &t : m.plan->tensorMaps)
      if (t.cacheLayer >= m.cache.layers)
        n.fail("tensor map " + t.name + ": cache_layer outside the model");
  return m;
}

} // namespace

std::string toJson(const Manifest &m) {
  json weights = json::array();
  for (const WeightSlot &w : m.weights)
    weights.push_back(toJson(w));
  json j{{"version", m.version},
         {"target", spell(m.target)},
         {"arena_bytes", m.arenaBytes},
         {"streamed_bytes_per_token", m.streamedBytesPerToken},
         {"weights", std::move(weights)},
         {"cache",
          {{"layers", m.cache.layers},
           {"kv_heads", m.cache.kvHeads},
           {"head_dim", m.cache.headDim},
           {"dtype", spelling(m.cache.dtype)}}},
         {"vocab", m.vocab},
         {"reencode_at_length", m.reencodeAtLength},
         {"batched_length", m.batchedLength}};
  if (m.model) {
    const ModelFacts &f = *m.model;
    j["model"] = {{"model_type", f.modelType},
                  {"config", f.config},
                  {"dtype", spelling(f.dtype)},
                  {"attention", spelling(f.attention)},
                  {"cpu", f.cpu},
                  {"gpu_arch", f.gpuArch},
                  {"max_positions", f.maxPositions},
                  {"bos", f.bos},
                  {"eos", f.eos}};
    if (f.amx)
      j["model"]["amx"] = true;
    if (f.quantBits)
      j["model"]["quantized"] = {{"bits", f.quantBits},
                                 {"group_size", f.groupSize}};
  }
  if (m.plan)
    j["plan"] = toJson(*m.plan);
  if (m.visionPlan) {
    json v = toJson(m.visionPlan->plan);
    v["projector_from"] = m.visionPlan->projectorFrom;
    v["sequence"] = m.visionPlan->sequence;
    v["output"] = m.visionPlan->output;
    j["vision_plan"] = std::move(v);
  }
  if (m.vision)
    j["vision"] = {{"channels", m.vision->channels},
                   {"image_size", m.vision->imageSize},
                   {"tokens_per_tile", m.vision->tokensPerTile},
                   {"hidden", m.vision->hidden},
                   {"min_tiles", m.vision->minTiles},
                   {"max_tiles", m.vision->maxTiles},
                   {"thumbnail", m.vision->thumbnail}};
  return j.dump();
}

bool parseManifest(std::string_view text, Manifest &manifest,
                   std::string &error) {
  json j = json::parse(text.begin(), text.end(), nullptr,
                       /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    error = "manifest: not valid JSON";
    return false;
  }
  try {
    manifest = readManifest(Node(j, ""));
    return true;
  } catch (const Malformed &e) {
    error = std::string("manifest: ") + e.what();
  } catch (const json::exception &e) {
    error = std::string("manifest: ") + e.what();
  }
  return false;
}

} // namespace decc::contract
