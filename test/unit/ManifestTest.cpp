//===- ManifestTest.cpp - the manifest's JSON, both ways ------------------===//

#include "contract/Manifest.h"

#include <gtest/gtest.h>

#include <functional>

#include <nlohmann/json.hpp>

using namespace decc::contract;

namespace {

Manifest cudaManifest() {
  Manifest m;
  m.target = Target::CUDA;
  m.arenaBytes = 4096;
  m.streamedBytesPerToken = 2048;
  WeightSlot w;
  w.offset = 0;
  w.shape = {8, 64};
  w.dtype = DType::BF16;
  w.parts = {{"wqkv", {8, 64}, KVGroupedLayout{4, 2, 1}, std::nullopt}};
  m.weights.push_back(w);
  WeightSlot table;
  table.offset = 1024;
  table.shape = {3};
  table.values = {1.0f, 0.1f, 1e-4f};
  m.weights.push_back(table);
  m.cache = {2, 2, 16, DType::BF16};
  m.vocab = 100;
  m.reencodeAtLength = 4097;
  ModelFacts f;
  f.modelType = "internlm2";
  f.config = "c.json";
  f.dtype = DType::BF16;
  f.attention = AttentionBackend::Eager;
  f.cpu = "x86-64-v3";
  f.gpuArch = "sm_90a";
  f.maxPositions = 2048;
  f.bos = 1;
  f.eos = {2, 92542};
  m.model = f;
  Plan p;
  p.buffers = {{"buf:0", PlanBuffer::Size::PerToken, 64},
               {"scores:1", PlanBuffer::Size::PerTokenKey, 4},
               {"partials:2", PlanBuffer::Size::Fixed, 99}};
  p.tensorMaps = {{"tmap:0", "arena", 128, DType::BF16, 64, -1, 64, 128},
                  {"tmap:1", "k_cache", 0, DType::BF16, 16, -2, 64, 128, 1}};
  Launch l;
  l.kernel = "matmul_wgmma_3";
  l.grid = {1, 128, GridScale::Tokens, 4, GridScale::One, 1};
  l.block = 384;
  l.args = {"arena", "step", "tmap:0", "buf:0"};
  l.when = LaunchWhen::PrefillLarge;
  l.sharedBytes = 197760;
  l.arenaOffset = 1024;
  l.cacheLayer = 1;
  l.cluster = 8;
  p.launches.push_back(l);
  Launch gemv;
  gemv.kernel = "projection_4";
  gemv.grid = {2048, 8};
  gemv.grid.resident = true;
  gemv.args = {"arena", "step"};
  gemv.when = LaunchWhen::Decode;
  p.launches.push_back(gemv);
  p.programmaticLaunch = true;
  p.largePrefillTokens = 300;
  m.plan = p;
  return m;
}

std::string errorOf(const std::string &text) {
  Manifest m;
  std::string error;
  EXPECT_FALSE(parseManifest(text, m, error)) << text;
  return error;
}

/// The manifest's JSON with `edit` applied.
std::string edited(const std::function<void(nlohmann::json &)> &edit) {
  nlohmann::json j = nlohmann::json::parse(toJson(cudaManifest()));
  edit(j);
  return j.dump();
}

TEST(Manifest, RoundTripsEveryField) {
  Manifest in = cudaManifest();
  Manifest out;
  std::string error;
  ASSERT_TRUE(parseManifest(toJson(in), out, error)) << error;
  EXPECT_EQ(out.version, kManifestVersion);
  EXPECT_EQ(out.target, Target::CUDA);
  EXPECT_EQ(out.arenaBytes, 4096);
  ASSERT_EQ(out.weights.size(), 2u);
  ASSERT_TRUE(out.weights[0].parts[0].kvGrouped);
  EXPECT_EQ(out.weights[0].parts[0].kvGrouped->kvHeads, 2);
  EXPECT_EQ(out.weights[0].dtype, DType::BF16);
  EXPECT_EQ(out.weights[1].values, in.weights[1].values); // exact floats
  EXPECT_EQ(out.cache.bytes(10), 2 * 2 * 2 * 10 * 16 * 2);
  EXPECT_EQ(out.reencodeAtLength, 4097);
  ASSERT_TRUE(out.model);
  EXPECT_EQ(out.model->attention, AttentionBackend::Eager);
  EXPECT_EQ(out.model->eos, (std::vector<int64_t>{2, 92542}));
  ASSERT_TRUE(out.plan);
  EXPECT_EQ(out.plan->buffers[1].size, PlanBuffer::Size::PerTokenKey);
  EXPECT_EQ(out.plan->buffers[1].bytes(10), 4 * 10 * 10 * 4);
  EXPECT_EQ(out.plan->tensorMaps[0].outer, -1);
  EXPECT_EQ(out.plan->tensorMaps[0].cacheLayer, -1);
  EXPECT_EQ(out.plan->tensorMaps[1].outer, -2);
  EXPECT_EQ(out.plan->tensorMaps[1].cacheLayer, 1);
  const Launch &l = out.plan->launches[0];
  EXPECT_EQ(l.when, LaunchWhen::PrefillLarge);
  EXPECT_EQ(l.grid.times, GridScale::Tokens);
  EXPECT_EQ(l.grid.y, 4);
  EXPECT_EQ(l.sharedBytes, 197760);
  EXPECT_EQ(l.arenaOffset, 1024);
  EXPECT_EQ(l.cacheLayer, 1);
  EXPECT_EQ(l.cluster, 8);
  EXPECT_EQ(l.args.size(), 4u);
  EXPECT_FALSE(l.grid.resident);
  EXPECT_TRUE(out.plan->launches[1].grid.resident);
  EXPECT_TRUE(out.plan->programmaticLaunch);
  EXPECT_EQ(out.plan->largePrefillTokens, 300);
  // Written again, the same text.
  EXPECT_EQ(toJson(out), toJson(in));
}

TEST(Manifest, ACPUBuildHasNoPlanAndTheModelIsOptional) {
  Manifest in = cudaManifest();
  in.target = Target::CPU;
  in.plan.reset();
  in.model.reset();
  Manifest out;
  std::string error;
  ASSERT_TRUE(parseManifest(toJson(in), out, error)) << error;
  EXPECT_FALSE(out.plan);
  EXPECT_FALSE(out.model);
}

TEST(Manifest, ALaunchStaysInsideTheModel) {
  auto launchError = [](const char *key, int64_t value) {
    return errorOf(edited(
        [&](nlohmann::json &j) { j["plan"]["launches"][0][key] = value; }));
  };
  EXPECT_EQ(launchError("cache_layer", 2),
            "manifest: launch of matmul_wgmma_3: arena_offset or cache_layer "
            "outside the model");
  EXPECT_EQ(launchError("arena_offset", 4097),
            "manifest: launch of matmul_wgmma_3: arena_offset or cache_layer "
            "outside the model");
  EXPECT_EQ(launchError("arena_offset", -64),
            "manifest: plan.launches[0]: arena_offset and cache_layer must "
            "not be negative");
  // A cluster the runtime could not launch, or whose blocks would not
  // divide a split grid.
  for (int64_t cluster : {0, 3, 32})
    EXPECT_EQ(launchError("cluster", cluster),
              "manifest: plan.launches[0]: cluster must be a power of two "
              "from 1 to 16");
}

TEST(Manifest, ATensorMapsCacheLayerIsACacheLayer) {
  auto mapError = [](const char *buffer, int64_t layer) {
    return errorOf(edited([&](nlohmann::json &j) {
      j["plan"]["tensor_maps"][1]["buffer"] = buffer;
      j["plan"]["tensor_maps"][1]["cache_layer"] = layer;
    }));
  };
  EXPECT_EQ(mapError("k_cache", 2),
            "manifest: tensor map tmap:1: cache_layer outside the model");
  EXPECT_EQ(mapError("v_cache", -1), "manifest: plan.tensor_maps[1]: "
                                     "cache_layer is a layer of k_cache or "
                                     "v_cache");
  EXPECT_EQ(mapError("arena", 0), "manifest: plan.tensor_maps[1]: "
                                  "cache_layer is a layer of k_cache or "
                                  "v_cache");
}

/// cudaManifest() with a vision encoder of 2 launches, the second on the
/// pixel-shuffled rows.
Manifest visionManifest() {
  Manifest m = cudaManifest();
  m.vision = VisionShape{3, 448, 256, 64, 1, 6, true};
  VisionPlan v;
  v.plan.buffers = {{"buf:0", PlanBuffer::Size::PerToken, 1024},
                    {"buf:1", PlanBuffer::Size::PerToken, 4096}};
  Launch embed;
  embed.kernel = "patch_embedding_7";
  embed.grid = {1024, 128, GridScale::One, 1, GridScale::Tokens, 1};
  embed.args = {"arena", "pixels", "buf:0"};
  embed.arenaOffset = 2048;
  Launch shuffle = embed;
  shuffle.kernel = "pixel_shuffle_9";
  shuffle.args = {"buf:0", "buf:1"};
  shuffle.arenaOffset = 0;
  v.plan.launches = {embed, shuffle};
  TensorMapSpec rows;
  rows.name = "tmap:0";
  rows.buffer = "buf:0";
  rows.dtype = DType::BF16;
  rows.inner = 1024;
  rows.outer = -1;
  rows.boxInner = 64;
  rows.boxOuter = 128;
  TensorMapSpec weights = rows;
  weights.name = "tmap:1";
  weights.buffer = "arena";
  weights.outer = 4096;
  v.plan.tensorMaps = {rows, weights};
  v.projectorFrom = 1;
  v.sequence = 1025;
  v.output = "buf:1";
  m.visionPlan = v;
  return m;
}

TEST(Manifest, AVisionPlanRoundTrips) {
  Manifest in = visionManifest();
  Manifest out;
  std::string error;
  ASSERT_TRUE(parseManifest(toJson(in), out, error)) << error;
  ASSERT_TRUE(out.visionPlan);
  EXPECT_EQ(out.visionPlan->projectorFrom, 1);
  EXPECT_EQ(out.visionPlan->sequence, 1025);
  EXPECT_EQ(out.visionPlan->output, "buf:1");
  EXPECT_EQ(out.visionPlan->plan.launches[0].arenaOffset, 2048);
  EXPECT_EQ(out.visionPlan->plan.buffers[1].bytes(2050), 2050 * 4096 * 4);
  ASSERT_EQ(out.visionPlan->plan.tensorMaps.size(), 2u);
  EXPECT_EQ(out.visionPlan->plan.tensorMaps[0].outer, -1);
  EXPECT_EQ(toJson(out), toJson(in));
}

TEST(Manifest, AVisionPlanIsCheckedAgainstTheModel) {
  auto visionError = [](const std::function<void(nlohmann::json &)> &edit) {
    nlohmann::json j = nlohmann::json::parse(toJson(visionManifest()));
    edit(j);
    return errorOf(j.dump());
  };
  EXPECT_EQ(visionError([](nlohmann::json &j) { j.erase("vision"); }),
            "manifest: vision_plan: only CUDA models with a vision encoder "
            "have one");
  EXPECT_EQ(visionError([](nlohmann::json &j) {
              j["vision_plan"]["projector_from"] = 3;
            }),
            "manifest: vision_plan: projector_from must index its launches, "
            "sequence be at least the tokens a tile");
  EXPECT_EQ(visionError(
                [](nlohmann::json &j) { j["vision_plan"]["sequence"] = 255; }),
            "manifest: vision_plan: projector_from must index its launches, "
            "sequence be at least the tokens a tile");
  EXPECT_EQ(
      visionError([](nlohmann::json &j) { j["vision_plan"]["output"] = "x"; }),
      "manifest: vision_plan: output x is none of its buffers");
  EXPECT_EQ(visionError([](nlohmann::json &j) {
              j["vision_plan"]["launches"][0]["arena_offset"] = 8192;
            }),
            "manifest: vision_plan: launch of patch_embedding_7: "
            "arena_offset outside the model");
  EXPECT_EQ(visionError([](nlohmann::json &j) {
              j["vision_plan"]["tensor_maps"][0]["buffer"] = "x";
            }),
            "manifest: vision_plan: tensor map tmap:0 maps x, neither the "
            "arena nor one of its buffers");
  EXPECT_EQ(visionError([](nlohmann::json &j) {
              j["vision_plan"]["tensor_maps"][1]["buffer"] = "k_cache";
              j["vision_plan"]["tensor_maps"][1]["cache_layer"] = 0;
            }),
            "manifest: vision_plan: tensor map tmap:1 maps k_cache, neither "
            "the arena nor one of its buffers");
}

TEST(Manifest, ACollectiveHasNoKernel) {
  Manifest in = cudaManifest();
  Launch reduce;
  reduce.collective = Collective::AllReduce;
  reduce.floats = 64;
  reduce.args = {"buf:0"};
  Launch gather = reduce;
  gather.collective = Collective::AllGather;
  gather.args = {"buf:0", "buf:1"};
  in.plan->launches.push_back(reduce);
  in.plan->launches.push_back(gather);
  Manifest out;
  std::string error;
  ASSERT_TRUE(parseManifest(toJson(in), out, error)) << error;
  EXPECT_EQ(out.plan->launches[2].collective, Collective::AllReduce);
  EXPECT_EQ(out.plan->launches[3].collective, Collective::AllGather);
  EXPECT_EQ(out.plan->launches[3].floats, 64);
  EXPECT_EQ(out.plan->launches[0].collective, Collective::None);
  EXPECT_EQ(toJson(out), toJson(in));
  // A kernel beside it, the wrong arguments or no floats.
  nlohmann::json j = nlohmann::json::parse(toJson(in));
  for (auto edit : std::vector<std::function<void(nlohmann::json &)>>{
           [](nlohmann::json &l) { l["kernel"] = "add_3"; },
           [](nlohmann::json &l) { l["args"] = {"buf:0"}; },
           [](nlohmann::json &l) { l["floats"] = 0; }}) {
    nlohmann::json bad = j;
    edit(bad["plan"]["launches"][3]);
    EXPECT_EQ(errorOf(bad.dump()),
              "manifest: plan.launches[3]: a collective has no kernel, 2 args "
              "and floats of at least 1");
  }
}

TEST(Manifest, RefusesAnotherVersion) {
  EXPECT_EQ(errorOf(edited([](nlohmann::json &j) { j["version"] = 7; })),
            "manifest: version 7, and this runtime reads version 2; compile "
            "the model again with the decc of this runtime");
  EXPECT_EQ(errorOf(edited([](nlohmann::json &j) { j.erase("version"); })),
            "manifest: no version (written by a decc older than this "
            "runtime); compile the model again");
}

TEST(Manifest, SaysWhereAFieldIsWrong) {
  EXPECT_EQ(errorOf("{nope"), "manifest: not valid JSON");
  EXPECT_EQ(errorOf("[]"), "manifest: not an object");
  EXPECT_EQ(errorOf(edited([](nlohmann::json &j) {
              j["plan"]["launches"][0]["grid"].erase("units");
            })),
            "manifest: plan.launches[0].grid: no 'units'");
  EXPECT_EQ(errorOf(edited([](nlohmann::json &j) {
              j["plan"]["launches"][0]["when"] = "sometimes";
            })),
            "manifest: plan.launches[0].when 'sometimes' is unknown");
  EXPECT_EQ(
      errorOf(edited([](nlohmann::json &j) { j["cache"]["dtype"] = "f8"; })),
      "manifest: cache.dtype 'f8' is not f32, bf16 or f16");
  EXPECT_EQ(errorOf(edited([](nlohmann::json &j) { j["vocab"] = "many"; })),
            "manifest: vocab is not an integer");
  EXPECT_EQ(errorOf(edited([](nlohmann::json &j) { j.erase("plan"); })),
            "manifest: no 'plan'");
}

TEST(Manifest, AQuantizedSlotSaysHowItsGroupsAreStored) {
  // A CPU build's int4 slot keeps f32 scales and offsets, a CUDA build's
  // f16 scales and u8 zero points: the manifest says which, and the slot's
  // size follows.
  Manifest in = cudaManifest();
  WeightSlot &w = in.weights[0];
  w.dtype = DType::F32;
  w.quantBits = 4;
  w.groupSize = 32;
  ASSERT_EQ(w.bytes(), 256 + 8 * 2 * 2 + 8 * 2); // 8 rows of 32 bytes
  w.f32GroupTerms = true;
  ASSERT_EQ(w.bytes(), 256 + 8 * 2 * 4 + 8 * 2 * 4);
  Manifest out;
  std::string error;
  ASSERT_TRUE(parseManifest(toJson(in), out, error)) << error;
  EXPECT_TRUE(out.weights[0].f32GroupTerms);
  EXPECT_EQ(out.weights[0].bytes(), w.bytes());
  w.f32GroupTerms = false;
  ASSERT_TRUE(parseManifest(toJson(in), out, error)) << error;
  EXPECT_FALSE(out.weights[0].f32GroupTerms);
  EXPECT_EQ(errorOf(edited([](nlohmann::json &j) {
              j["weights"][0]["quantized"] = {
                  {"bits", 4}, {"group_size", 32}, {"group_terms", "f8"}};
            })),
            "manifest: weights[0].quantized: group_terms 'f8' is unknown "
            "(f32 is read)");
}

TEST(Manifest, RefusesSlotsOutsideTheArena) {
  // The runtime writes each slot at its offset: a lying manifest must not
  // make it write past the arena.
  EXPECT_EQ(errorOf(edited(
                [](nlohmann::json &j) { j["weights"][1]["offset"] = 4090; })),
            "manifest: weights[1]: offset 4090 and 12 bytes lie outside the "
            "arena of 4096 bytes");
  EXPECT_EQ(errorOf(edited(
                [](nlohmann::json &j) { j["weights"][0]["offset"] = -2; })),
            "manifest: weights[0]: offset -2 and 1024 bytes lie outside the "
            "arena of 4096 bytes");
  EXPECT_EQ(errorOf(edited([](nlohmann::json &j) {
              j["weights"][0]["parts"][0]["shape"] = {9, 64};
            })),
            "manifest: weights[0]: parts hold 576 elements, the shape 512");
  EXPECT_EQ(errorOf(edited([](nlohmann::json &j) {
              j["weights"][0]["shape"] = {-8, 64};
            })),
            "manifest: weights[0]: a shape is negative or too large");
}

/// cudaManifest with its first slot's part a shard of rows of an [8, 64]
/// tensor: two ranks of 4 rows.
std::string shardedEdit(const std::function<void(nlohmann::json &)> &edit) {
  return edited([&](nlohmann::json &j) {
    j["weights"][0]["shape"] = {4, 64};
    j["weights"][0]["parts"][0] = {
        {"tensor", "wq"},
        {"shape", {4, 64}},
        {"shard", {{"dim", 0}, {"ranges", {0, 2, 4, 6, 2, 4, 6, 8}}}}};
    edit(j);
  });
}

TEST(Manifest, AShardRoundTrips) {
  Manifest m;
  std::string error;
  ASSERT_TRUE(parseManifest(shardedEdit([](nlohmann::json &) {}), m, error))
      << error;
  const WeightPart &p = m.weights[0].parts[0];
  ASSERT_TRUE(p.shard);
  EXPECT_EQ(p.shard->dim, 0);
  EXPECT_EQ(p.shard->ranks(4), 2);
  EXPECT_EQ(p.shard->rankRanges(1, 4), (std::vector<int64_t>{2, 4, 6, 8}));
  EXPECT_TRUE(p.shard->rankRanges(2, 4).empty());
  EXPECT_EQ(p.shard->storedSize(), 8);
  Manifest again;
  ASSERT_TRUE(parseManifest(toJson(m), again, error)) << error;
  EXPECT_EQ(toJson(again), toJson(m));
}

TEST(Manifest, RefusesShardsThatDoNotSplitIntoRanks) {
  EXPECT_EQ(errorOf(shardedEdit([](nlohmann::json &j) {
              j["weights"][0]["parts"][0]["shard"]["dim"] = 2;
            })),
            "manifest: weights[0].parts[0].shard: dim 2 is not a dimension "
            "of the part");
  EXPECT_EQ(errorOf(shardedEdit([](nlohmann::json &j) {
              j["weights"][0]["parts"][0]["shard"]["ranges"] = {0, 4, 4};
            })),
            "manifest: weights[0].parts[0].shard: ranges must be [begin, "
            "end) pairs");
  EXPECT_EQ(errorOf(shardedEdit([](nlohmann::json &j) {
              j["weights"][0]["parts"][0]["shard"]["ranges"] = {0, 4, 5, 5};
            })),
            "manifest: weights[0].parts[0].shard: range [5, 5) is empty");
  // Rank 0 would load 3 rows, rank 1 5.
  EXPECT_EQ(errorOf(shardedEdit([](nlohmann::json &j) {
              j["weights"][0]["parts"][0]["shard"]["ranges"] = {0, 3, 3, 8};
            })),
            "manifest: weights[0].parts[0].shard: ranges do not give every "
            "rank the part's 4 along dim 0");
}

TEST(Contract, SpellingsParseBack) {
  for (DType d : {DType::F32, DType::BF16, DType::F16})
    EXPECT_EQ(parseDType(spelling(d)), d);
  EXPECT_FALSE(parseDType("F32"));
  for (const char *flash : {"flash", "sdpa", "flash_attention_2",
                            "flash_attention_3", "flex_attention"})
    EXPECT_EQ(parseAttentionBackend(flash), AttentionBackend::Flash) << flash;
  EXPECT_EQ(parseAttentionBackend("eager"), AttentionBackend::Eager);
  EXPECT_FALSE(parseAttentionBackend("paged"));
}

} // namespace

namespace {
using namespace decc::contract;

TEST(Contract, CheckedProductRefusesOverflowAndNegatives) {
  EXPECT_EQ(checkedProduct({2, 3, 7}), 42);
  EXPECT_EQ(checkedProduct({}), 1);
  EXPECT_EQ(checkedProduct({int64_t(1) << 31, int64_t(1) << 31}), int64_t(1)
                                                                      << 62);
  EXPECT_FALSE(checkedProduct({int64_t(1) << 32, int64_t(1) << 31}));
  EXPECT_FALSE(checkedProduct({3, -1}));
}

TEST(Contract, CacheAndBufferSizesAreChecked) {
  CacheShape cache{1 << 20, 1 << 10, 128, DType::F32};
  // 2 x 2^20 x 2^10 x 2^24 x 128 x 4 bytes: more than 2^63.
  EXPECT_FALSE(cache.checkedBytes(kMaxContext));
  EXPECT_EQ(cache.checkedBytes(1), cache.bytes(1));
  PlanBuffer scores{"scores", PlanBuffer::Size::PerTokenKey, 64};
  EXPECT_FALSE(scores.checkedBytes(int64_t(1) << 30));
  EXPECT_EQ(scores.checkedBytes(kMaxContext), scores.bytes(kMaxContext));
}
} // namespace
