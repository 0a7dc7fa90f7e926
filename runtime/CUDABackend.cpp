//===- CUDABackend.cpp - run decc's GPU kernels through the driver API ----===//
//
// Loads libcuda.so.1 at run time (an executable built without a GPU in
// sight runs wherever a driver is), loads the kernels' cubin, allocates
// device memory for the weights, the KV cache and the plan's buffers, and
// runs the launch plan decc compiled in order on one stream.
//
//===----------------------------------------------------------------------===//

#include "runtime/Backend.h"

#include "runtime/Collectives.h"
#include "runtime/Error.h"
#include "runtime/LaunchPlan.h"
#include "runtime/Nccl.h"
#include "runtime/Sampler.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dlfcn.h>
#include <iterator>
#include <map>
#include <numeric>
#include <set>
#include <string>
#include <thread>

namespace decc::rt {

namespace {

// The few driver API types and entry points used, as the driver exports
// them (cuda.h is not needed to build the runtime).
using CUresult = int;
using CUdevice = int;
using CUdeviceptr = unsigned long long;
struct CUctx_st;
struct CUmod_st;
struct CUfunc_st;
using CUcontext = CUctx_st *;
using CUmodule = CUmod_st *;
using CUfunction = CUfunc_st *;
struct CUstream_st;
struct CUgraph_st;
struct CUgraphExec_st;
using CUstream = CUstream_st *;
using CUgraph = CUgraph_st *;
using CUgraphExec = CUgraphExec_st *;
constexpr unsigned kStreamNonBlocking = 1;
// cuLaunchKernelEx's configuration, laid out as cuda.h has it.
constexpr int kLaunchAttributeClusterDimension = 4;
constexpr int kLaunchAttributeProgrammaticStreamSerialization = 6;
struct CUlaunchAttribute {
  int id;
  char pad[4];
  union {
    char bytes[64];
    int value;
    struct {
      unsigned x, y, z;
    } clusterDim;
    void *align;
  } value;
};
struct CUlaunchConfig {
  unsigned gridDimX, gridDimY, gridDimZ, blockDimX, blockDimY, blockDimZ;
  unsigned sharedMemBytes;
  CUstream hStream;
  CUlaunchAttribute *attrs;
  unsigned numAttrs;
};
constexpr int kCaptureModeGlobal = 0;
constexpr int kFuncAttributeMaxDynamicSharedBytes = 8;
constexpr int kFuncAttributeNonPortableClusterSizeAllowed = 14;
constexpr int kDeviceAttributeMultiprocessorCount = 16;
constexpr CUresult kErrorNotReady = 600;
// A CUtensorMap: 128 opaque bytes, 64-byte aligned; and the enumerators of
// cuTensorMapEncodeTiled's arguments that the plan's maps use.
struct alignas(64) TensorMap {
  unsigned long long opaque[16];
};
constexpr int kTensorMapFloat16 = 6, kTensorMapBFloat16 = 9;
constexpr int kTensorMapInterleaveNone = 0, kTensorMapSwizzle128B = 3,
              kTensorMapL2Promotion256B = 3, kTensorMapOobFillZeros = 0;

struct Driver {
  void *handle = nullptr;
  CUresult (*cuInit)(unsigned);
  CUresult (*cuDeviceGet)(CUdevice *, int);
  CUresult (*cuDeviceGetCount)(int *);
  CUresult (*cuDeviceGetName)(char *, int, CUdevice);
  CUresult (*cuDeviceGetAttribute)(int *, int, CUdevice);
  CUresult (*cuDevicePrimaryCtxRetain)(CUcontext *, CUdevice);
  CUresult (*cuCtxSetCurrent)(CUcontext);
  CUresult (*cuModuleLoadData)(CUmodule *, const void *);
  CUresult (*cuModuleGetFunction)(CUfunction *, CUmodule, const char *);
  CUresult (*cuMemAlloc)(CUdeviceptr *, size_t);
  CUresult (*cuMemFree)(CUdeviceptr);
  CUresult (*cuMemAllocHost)(void **, size_t);
  CUresult (*cuMemFreeHost)(void *);
  CUresult (*cuMemcpyHtoD)(CUdeviceptr, const void *, size_t);
  CUresult (*cuMemcpyDtoH)(void *, CUdeviceptr, size_t);
  CUresult (*cuMemsetD8)(CUdeviceptr, unsigned char, size_t);
  CUresult (*cuMemGetInfo)(size_t *, size_t *);
  CUresult (*cuLaunchKernel)(CUfunction, unsigned, unsigned, unsigned, unsigned,
                             unsigned, unsigned, unsigned, CUstream, void **,
                             void **);
  CUresult (*cuLaunchKernelEx)(const CUlaunchConfig *, CUfunction, void **,
                               void **) = nullptr;
  CUresult (*cuFuncSetAttribute)(CUfunction, int, int);
  CUresult (*cuOccupancyMaxActiveBlocksPerMultiprocessor)(int *, CUfunction,
                                                          int, size_t);
  CUresult (*cuOccupancyMaxActiveClusters)(int *, CUfunction,
                                           const CUlaunchConfig *) = nullptr;
  CUresult (*cuTensorMapEncodeTiled)(TensorMap *, int, unsigned, void *,
                                     const unsigned long long *,
                                     const unsigned long long *,
                                     const unsigned *, const unsigned *, int,
                                     int, int, int) = nullptr;
  CUresult (*cuStreamCreate)(CUstream *, unsigned);
  CUresult (*cuStreamSynchronize)(CUstream);
  CUresult (*cuStreamQuery)(CUstream);
  CUresult (*cuStreamBeginCapture)(CUstream, int);
  CUresult (*cuStreamEndCapture)(CUstream, CUgraph *);
  CUresult (*cuGraphInstantiateWithFlags)(CUgraphExec *, CUgraph,
                                          unsigned long long);
  CUresult (*cuGraphLaunch)(CUgraphExec, CUstream);
  CUresult (*cuMemcpyHtoDAsync)(CUdeviceptr, const void *, size_t, CUstream);
  CUresult (*cuMemcpyDtoHAsync)(void *, CUdeviceptr, size_t, CUstream);
  CUresult (*cuMemsetD8Async)(CUdeviceptr, unsigned char, size_t, CUstream);
  CUresult (*cuCtxSynchronize)();
  CUresult (*cuGetErrorString)(CUresult, const char **);

  template <typename F> void bind(F &fn, const char *name) {
    fn = reinterpret_cast<F>(dlsym(handle, name));
    if (!fn)
      throw Error(std::string("the CUDA driver has no ") + name);
  }

  Driver() {
    handle = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!handle)
      throw Error("this model was compiled for CUDA, but no CUDA driver is "
                  "installed (libcuda.so.1: " +
                  std::string(dlerror()) + ")");
    bind(cuInit, "cuInit");
    bind(cuDeviceGet, "cuDeviceGet");
    bind(cuDeviceGetCount, "cuDeviceGetCount");
    bind(cuDeviceGetName, "cuDeviceGetName");
    bind(cuDeviceGetAttribute, "cuDeviceGetAttribute");
    bind(cuDevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain");
    bind(cuCtxSetCurrent, "cuCtxSetCurrent");
    bind(cuModuleLoadData, "cuModuleLoadData");
    bind(cuModuleGetFunction, "cuModuleGetFunction");
    bind(cuMemAlloc, "cuMemAlloc_v2");
    bind(cuMemFree, "cuMemFree_v2");
    bind(cuMemAllocHost, "cuMemAllocHost_v2");
    bind(cuMemFreeHost, "cuMemFreeHost");
    bind(cuMemcpyHtoD, "cuMemcpyHtoD_v2");
    bind(cuMemcpyDtoH, "cuMemcpyDtoH_v2");
    bind(cuMemsetD8, "cuMemsetD8_v2");
    bind(cuMemGetInfo, "cuMemGetInfo_v2");
    bind(cuLaunchKernel, "cuLaunchKernel");
    bind(cuCtxSynchronize, "cuCtxSynchronize");
    bind(cuStreamCreate, "cuStreamCreate");
    bind(cuStreamSynchronize, "cuStreamSynchronize");
    bind(cuStreamQuery, "cuStreamQuery");
    bind(cuStreamBeginCapture, "cuStreamBeginCapture_v2");
    bind(cuStreamEndCapture, "cuStreamEndCapture");
    bind(cuGraphInstantiateWithFlags, "cuGraphInstantiateWithFlags");
    bind(cuGraphLaunch, "cuGraphLaunch");
    bind(cuMemcpyHtoDAsync, "cuMemcpyHtoDAsync_v2");
    bind(cuMemcpyDtoHAsync, "cuMemcpyDtoHAsync_v2");
    bind(cuMemsetD8Async, "cuMemsetD8Async");
    bind(cuGetErrorString, "cuGetErrorString");
    bind(cuFuncSetAttribute, "cuFuncSetAttribute");
    bind(cuOccupancyMaxActiveBlocksPerMultiprocessor,
         "cuOccupancyMaxActiveBlocksPerMultiprocessor");
    // Optional (CUDA 11.8+): programmatic dependent launch.
    cuLaunchKernelEx = reinterpret_cast<decltype(cuLaunchKernelEx)>(
        dlsym(handle, "cuLaunchKernelEx"));
    // Optional (CUDA 12+): thread-block clusters.
    cuOccupancyMaxActiveClusters =
        reinterpret_cast<decltype(cuOccupancyMaxActiveClusters)>(
            dlsym(handle, "cuOccupancyMaxActiveClusters"));
    // Optional (CUDA 12+): TMA descriptors, for kernels built for sm_90a.
    cuTensorMapEncodeTiled = reinterpret_cast<decltype(cuTensorMapEncodeTiled)>(
        dlsym(handle, "cuTensorMapEncodeTiled"));
  }

  void check(CUresult r, const std::string &what) const {
    if (r == 0)
      return;
    const char *message = nullptr;
    cuGetErrorString(r, &message);
    throw Error("CUDA: " + what + " failed: " +
                (message ? message : "error " + std::to_string(r)));
  }
};

/// A positive integer from the environment, or `fallback`.
int64_t envCount(const char *name, int64_t fallback) {
  const char *env = std::getenv(name);
  long long v = env ? std::atoll(env) : 0;
  return v > 0 && v < (1LL << 30) ? int64_t(v) : fallback;
}

/// How a decode step's attention splits its keys on this card: one wave of
/// blocks (kv heads x splits), as many as the card keeps resident
/// (`resident`, from the occupancy calculator: the kernel's registers
/// decide it, 2-4 blocks an SM, and with clusters how whole clusters fit
/// the GPCs), or DECC_SPLIT_BLOCKS_PER_SM an SM; each split with at least
/// DECC_SPLIT_KEYS keys: 32 when the splits merge through a fence, an
/// atomic and a reread of their partials, so a split has keys enough to
/// pay for it; 64 when clusters of `cluster` blocks merge in distributed
/// shared memory, so that a 512-key step is one cluster a kv head and
/// needs no global merge. A second wave waits for the first's slowest
/// block and the merge of more splits costs more: measured on an H200, one
/// wave was at or near the best of 2, 4 and 8 blocks an SM on five shapes
/// at 8k keys (docs/PERF.md). At most kMergedSplits (DECC_MAX_SPLITS) a kv
/// head: the last block merges the splits 8 at a time, one more round of
/// loads each, and a model of few kv heads whose one wave would be 128
/// splits (Qwen2.5-0.5B's 2) was 6% slower at 8k keys than with 64 (H200,
/// docs/PERF.md).
SplitPolicy splitPolicy(int64_t multiprocessors, int64_t kvHeads,
                        int64_t resident, int64_t cluster) {
  constexpr int64_t kMergedSplits = 64;
  int64_t blocks = resident;
  if (std::getenv("DECC_SPLIT_BLOCKS_PER_SM"))
    blocks = multiprocessors * envCount("DECC_SPLIT_BLOCKS_PER_SM", 1);
  int64_t wave = std::max<int64_t>(1, blocks / std::max<int64_t>(1, kvHeads));
  return SplitPolicy{envCount("DECC_SPLIT_KEYS", cluster > 1 ? 64 : 32),
                     std::min(wave, envCount("DECC_MAX_SPLITS", kMergedSplits)),
                     cluster};
}

/// Prompts of at least this many tokens take the plan's "prefill_large"
/// launches: the plan's value, or DECC_LARGE_PREFILL_TOKENS (a tuning knob).
int64_t largePrefillTokens(int64_t planned) {
  const char *env = std::getenv("DECC_LARGE_PREFILL_TOKENS");
  long long v = env ? std::atoll(env) : 0;
  return v > 0 ? int64_t(v) : planned;
}

/// A plan launch with its kernel.
struct Launch {
  const contract::Launch *spec;
  CUfunction function = nullptr;
  /// The device address each argument binds to (its layer's part of the
  /// arena and caches included): fixed once the buffers exist.
  std::vector<CUdeviceptr> values;
  /// A resident grid's blocks in x at most (0: no cap; gridBlocks).
  int64_t residentCap = 0;
};

/// Rows of logits a call copies back through page-locked memory.
constexpr int64_t kPinnedLogitRows = 32;

class CUDABackend : public Backend {
public:
  CUDABackend(const Manifest &m, const void *image, int64_t context,
              int64_t cachePositions)
      : m(m), context(context),
        // A paged pool (a server's, --batch-beside) of whole blocks that
        // holds at least one context; else one sequence's context.
        pool(cachePositions
                 ? contract::cacheBlocksFor(std::max(cachePositions, context)) *
                       contract::kCacheBlock
                 : context),
        paged(cachePositions > 0) {
    driver.check(driver.cuInit(0), "cuInit");
    if (!m.plan)
      throw Error("manifest: a CUDA build without a launch plan");
    const contract::Plan &plan = *m.plan;
    // A tensor-parallel build's ranks each take a GPU of their host.
    Collectives *job = nullptr;
    if (std::any_of(plan.launches.begin(), plan.launches.end(),
                    [](const contract::Launch &l) {
                      return l.collective != contract::Collective::None;
                    })) {
      job = Collectives::current();
      if (!job)
        throw Error("this model is split over ranks (decc --tensor-parallel): "
                    "start it with mpirun -n N");
    }
    CUdevice gpu;
    driver.check(driver.cuDeviceGet(&gpu, job ? gpuOfRank(*job) : 0),
                 "finding a GPU (cuDeviceGet)");
    char name[256] = {0};
    driver.cuDeviceGetName(name, sizeof(name), gpu);
    deviceName = name;
    CUcontext ctx;
    int multiprocessors = 0;
    driver.check(
        driver.cuDeviceGetAttribute(&multiprocessors,
                                    kDeviceAttributeMultiprocessorCount, gpu),
        "counting the GPU's multiprocessors");
    driver.check(driver.cuDevicePrimaryCtxRetain(&ctx, gpu),
                 "cuDevicePrimaryCtxRetain");
    driver.check(driver.cuCtxSetCurrent(ctx), "cuCtxSetCurrent");
    CUmodule module;
    driver.check(driver.cuModuleLoadData(&module, image),
                 "loading the kernels (cuModuleLoadData)");

    if (job)
      nccl = std::make_unique<Nccl>(*job);
    // The kernels wait on their predecessor themselves (griddepcontrol), so
    // each may be launched before the last one finishes.
    // (DECC_PROGRAMMATIC_LAUNCH=0 turns it off, to measure what it buys.)
    const char *env = std::getenv("DECC_PROGRAMMATIC_LAUNCH");
    programmatic = plan.programmaticLaunch &&
                   driver.cuLaunchKernelEx != nullptr &&
                   !(env && std::string(env) == "0");
    largePrefill = largePrefillTokens(plan.largePrefillTokens);
    // Short prompts join the batched steps (pagedParts): 32 clients'
    // tokens/s 1.4x, their first token 2.8x sooner (H100, docs/PERF.md).
    // DECC_BATCHED_PROMPTS=0 runs them as calls of their own, to measure.
    const char *join = std::getenv("DECC_BATCHED_PROMPTS");
    joinPrompts = !(join && std::string(join) == "0");
    // Whether the plan finds greedy tokens itself (logits_argmax).
    argmaxKernel = std::any_of(plan.launches.begin(), plan.launches.end(),
                               [](const contract::Launch &l) {
                                 return std::find(l.args.begin(), l.args.end(),
                                                  "argmax") != l.args.end();
                               });
    // DECC_DECODE_SKIP=k1,k2: a decode step leaves out the launches of those
    // kernels. Its results are wrong; its time is the step's without them,
    // which is how much each kernel costs inside the replayed graph, where
    // programmatic launch overlaps its neighbours (Nsight Systems is not on
    // the GPU machine, and ncu times kernels one by one).
    if (const char *skip = std::getenv("DECC_DECODE_SKIP")) {
      std::string list = skip;
      for (size_t at = 0; at <= list.size();) {
        size_t comma = std::min(list.find(',', at), list.size());
        if (comma > at)
          skippedInDecode.insert(list.substr(at, comma - at));
        at = comma + 1;
      }
    }
    for (const contract::Launch &spec : plan.launches)
      launches.push_back(spec.collective == contract::Collective::None
                             ? kernelOf(module, spec)
                             : Launch{&spec, nullptr, {}});
    // Blocks of the decode attention the card holds at once (4 an SM if
    // the plan has none).
    int64_t resident = 4 * int64_t(multiprocessors), cluster = 1;
    for (Launch &launch : launches)
      if (launch.spec->kernel.rfind("attention_decode", 0) == 0) {
        cluster = launch.spec->cluster;
        resident = residentBlocks(launch, multiprocessors);
        break;
      }
    splits = splitPolicy(multiprocessors, m.cache.kvHeads, resident, cluster);
    splitRows = splitBlocks(splits, context);
    // Kernels shared by layers are one function: one occupancy query each.
    std::map<CUfunction, int64_t> residentCaps;
    for (Launch &launch : launches) {
      if (!launch.spec->grid.resident)
        continue;
      auto [cap, fresh] = residentCaps.try_emplace(launch.function, 0);
      if (fresh)
        cap->second =
            residentGridBlocks(multiprocessors, residentBlocks(launch, 1),
                               std::getenv("DECC_GEMV_BLOCKS_PER_SM"));
      launch.residentCap = cap->second;
    }

    // Every buffer sized for a whole context of tokens, so a prompt of any
    // length that fits the cache fits them.
    std::map<std::string, int64_t> sizes = deviceAllocations(m, context, pool);
    size_t total = 0;
    for (auto &[_, bytes] : sizes)
      total += size_t(bytes);
    size_t freeBytes = 0, totalBytes = 0;
    driver.cuMemGetInfo(&freeBytes, &totalBytes);
    if (total > freeBytes)
      throw Error("the model needs " + std::to_string(total >> 20) +
                  " MiB of GPU memory (weights " +
                  std::to_string(m.arenaBytes >> 20) + " MiB, KV cache " +
                  std::to_string(m.cache.bytes(pool) >> 20) + " MiB for " +
                  std::to_string(pool) + " positions) but " + deviceName +
                  " has " + std::to_string(freeBytes >> 20) + " MiB free");
    for (auto &[bufferName, bytes] : sizes) {
      CUdeviceptr p = 0;
      size_t size = std::max<size_t>(size_t(bytes), 64);
      driver.check(driver.cuMemAlloc(&p, size), "allocating " + bufferName);
      driver.check(driver.cuMemsetD8(p, 0, size), "clearing " + bufferName);
      device[bufferName] = p;
    }
    writeIdentityTable();
    if (CUdeviceptr maps = encodeTensorMaps(
            plan.tensorMaps, context,
            [&](const std::string &b) { return device.at(b); }, inside))
      device["tensor_maps"] = maps;
    for (size_t i = 0; i < launches.size(); ++i)
      for (const std::string &a : launches[i].spec->args) {
        auto it = device.find(a);
        launches[i].values.push_back(
            it != device.end()
                ? it->second + CUdeviceptr(argumentOffset(
                                   *launches[i].spec, int64_t(i), a, m, pool))
                : inside.at(a));
      }
    if (device.count("trace"))
      traceRecords = int64_t(launches.size()) * contract::kTraceBlocks;
    if (m.visionPlan)
      for (const contract::Launch &spec : m.visionPlan->plan.launches)
        visionLaunches.push_back(kernelOf(module, spec));
    hostArena.assign(size_t(m.arenaBytes), 0);
    driver.check(driver.cuStreamCreate(&stream, kStreamNonBlocking),
                 "cuStreamCreate");
    // A step's logits come back into page-locked memory: a copy into the
    // caller's pageable buffer goes through the driver's staging, ~35 us a
    // step more (H100, decode after 512: InternVL2-2B int4 0.814 -> 0.781
    // ms a token, Qwen2.5-0.5B bf16 0.767 -> 0.713; docs/PERF.md).
    // DECC_PINNED_LOGITS=0 copies as before, to measure what it buys.
    const char *pin = std::getenv("DECC_PINNED_LOGITS");
    if (!(pin && std::string(pin) == "0")) {
      // Where the host will not lock that much, the pageable copy serves.
      void *host = nullptr;
      if (driver.cuMemAllocHost(&host, size_t(kPinnedLogitRows * m.vocab) *
                                           sizeof(float)) == 0)
        pinnedLogits = static_cast<float *>(host);
    }
  }

  ~CUDABackend() override {
    try {
      printTrace();
    } catch (const Error &e) {
      std::fprintf(stderr, "trace: %s\n", e.what());
    }
    for (auto &[_, p] : device)
      driver.cuMemFree(p);
    for (auto &[_, p] : visionDevice)
      driver.cuMemFree(p);
    if (pinnedLogits)
      driver.cuMemFreeHost(pinnedLogits);
  }

  void setImageRows(const float *rows, int64_t count) override {
    if (!m.vision)
      Backend::setImageRows(rows, count);
    if (count > context)
      throw Error("the pictures' " + std::to_string(count) +
                  " image rows do not fit the context of " +
                  std::to_string(context) + " tokens");
    driver.check(driver.cuStreamSynchronize(stream), "finishing the last step");
    if (count)
      driver.check(
          driver.cuMemcpyHtoD(device.at("image"), rows,
                              size_t(count * m.vision->hidden) * sizeof(float)),
          "copying the image rows to the GPU");
  }

  std::vector<float> encodeTiles(const std::vector<float> &pixels,
                                 int64_t tiles) override {
    if (!m.visionPlan || !m.vision)
      return Backend::encodeTiles(pixels, tiles);
    const contract::VisionPlan &vp = *m.visionPlan;
    const contract::VisionShape &v = *m.vision;
    int64_t rows = tiles * vp.sequence, shuffled = tiles * v.tokensPerTile;
    if (tiles < 1 || int64_t(pixels.size()) !=
                         tiles * v.channels * v.imageSize * v.imageSize)
      throw Error("the vision encoder: " + std::to_string(pixels.size()) +
                  " pixel values are not " + std::to_string(tiles) +
                  " tiles of the model's");
    reserveVision(rows, int64_t(pixels.size()));
    // The encoder's launches see its rows, the projector's (from the
    // pixel shuffle on) the shuffled rows: a step record each.
    Call encoder{rows, 0, rows}, projector{shuffled, 0, shuffled};
    auto encoderStep = stepRecord(encoder, rows, splits);
    auto projectorStep = stepRecord(projector, rows, splits);
    copyIn(visionDevice.at("step"), encoderStep.data(), sizeof(encoderStep));
    copyIn(visionDevice.at("step_projector"), projectorStep.data(),
           sizeof(projectorStep));
    copyIn(visionDevice.at("pixels"), pixels.data(),
           pixels.size() * sizeof(float));
    for (size_t i = 0; i < visionLaunches.size(); ++i) {
      const contract::Launch &l = *visionLaunches[i].spec;
      bool projecting = int64_t(i) >= vp.projectorFrom;
      const Call &call = projecting ? projector : encoder;
      if (!launchRuns(l, call, largePrefillTokens(vp.plan.largePrefillTokens)))
        continue;
      auto [x, y] = gridBlocks(l.grid, call);
      if (x == 0 || y == 0)
        continue;
      std::vector<CUdeviceptr> values;
      for (const std::string &a : l.args) {
        if (a == "arena")
          values.push_back(device.at("arena") + CUdeviceptr(l.arenaOffset));
        else if (a == "step")
          values.push_back(
              visionDevice.at(projecting ? "step_projector" : "step"));
        else if (auto it = visionDevice.find(a); it != visionDevice.end())
          values.push_back(it->second);
        else if (auto map = visionMaps.find(a); map != visionMaps.end())
          values.push_back(map->second);
        else
          throw Error("manifest: the vision plan's " + l.kernel + " binds " +
                      a + ", which it does not have");
      }
      std::vector<void *> params;
      for (CUdeviceptr &value : values)
        params.push_back(&value);
      driver.check(driver.cuLaunchKernel(
                       visionLaunches[i].function, unsigned(x), unsigned(y), 1,
                       unsigned(l.block), 1, 1, unsigned(l.sharedBytes), stream,
                       params.data(), nullptr),
                   "launching " + l.kernel);
    }
    std::vector<float> out(size_t(shuffled * v.hidden));
    driver.check(driver.cuMemcpyDtoHAsync(out.data(),
                                          visionDevice.at(vp.output),
                                          out.size() * sizeof(float), stream),
                 "copying the image embeddings back");
    driver.check(driver.cuStreamSynchronize(stream),
                 "running the vision encoder");
    return out;
  }

  uint8_t *arena() override { return hostArena.data(); }

  void weightsLoaded() override {
    driver.check(driver.cuMemcpyHtoD(device["arena"], hostArena.data(),
                                     hostArena.size()),
                 "copying the weights to the GPU");
    hostArena.clear();
    hostArena.shrink_to_fit();
  }

  void reset() override {
    driver.check(driver.cuStreamSynchronize(stream), "finishing the last step");
    driver.check(driver.cuMemsetD8(device["state"], 0,
                                   contract::kStateWords * sizeof(int64_t)),
                 "resetting the RoPE state");
  }

  void forward(const std::vector<int64_t> &tokens, int64_t start, int64_t rows,
               float *logits) override {
    if (!identityTable)
      writeIdentityTable();
    run(Call{int64_t(tokens.size()), start, rows}, tokens, {}, logits);
  }

  bool greedyOnDevice() const override { return argmaxKernel; }

  int64_t cacheBlocks() const override {
    return paged ? pool / contract::kCacheBlock : 0;
  }

  /// The call's sequences with one token (a decode step each) run
  /// together as batched steps of at most kMaxSplits tokens: the weights
  /// read once for all of them, each token's attention over its own blocks.
  /// A sequence with several tokens (a prompt, or a part of one) joins the
  /// batched steps where it fits one (pagedParts), else runs as a call of
  /// its own (always with DECC_BATCHED_PROMPTS=0).
  void forwardPaged(const PagedCall &call, float *logits) override {
    pagedTableRows(call);
    int64_t n = int64_t(call.tokens.size()), width = call.width;
    int64_t blocks = pool / contract::kCacheBlock;
    if (width > blocks)
      throw Error("a paged forward call's block table is wider than the "
                  "cache's " +
                  std::to_string(blocks) + " blocks");
    for (int32_t e : call.table)
      if (e < 0 || e >= blocks)
        throw Error("a paged forward call's block table names block " +
                    std::to_string(e) + " of " + std::to_string(blocks));
    auto rowOf = [&](int64_t t) { return tableRow(call.table, width, t); };
    // A step's tokens are at most the context the device buffers hold.
    int64_t most = std::min(contract::kMaxSplits, context);
    for (const PagedPart &part :
         pagedParts(call.positions, call.table, width, most, joinPrompts)) {
      int64_t b = int64_t(part.tokens.size());
      std::vector<int64_t> tokens, positions;
      std::vector<int32_t> table;
      for (int64_t t : part.tokens) {
        tokens.push_back(call.tokens[size_t(t)]);
        positions.push_back(call.positions[size_t(t)]);
        if (part.batched || table.empty())
          table.insert(table.end(), rowOf(t), rowOf(t) + width);
      }
      // A batched step padded to its bucket's size with copies of its last
      // token: each copy writes the same key and value to the same slot
      // and attends as it does; their logits rows are not copied back.
      int64_t padded = part.batched && b > 1 ? batchBucket(b, most) : b;
      for (int64_t i = b; i < padded; ++i) {
        tokens.push_back(tokens[size_t(b - 1)]);
        positions.push_back(positions[size_t(b - 1)]);
        table.insert(table.end(), table.end() - width, table.end());
      }
      useTable(table.data(), int64_t(table.size()) / width, width, call.state);
      // The call's logits row of part token i (negative: none).
      auto rowFor = [&](int64_t i) {
        return part.tokens[size_t(i)] - (n - call.rows);
      };
      if (!part.batched) {
        // A sequence's tokens from its first position; the logits of its
        // last, if that is one of the call's last rows.
        int64_t row = rowFor(b - 1);
        run(Call{b, positions[0], row >= 0 ? 1 : 0}, tokens, {},
            row >= 0 && logits ? logits + row * m.vocab : nullptr,
            row >= 0 && call.greedy ? call.greedy + row : nullptr);
      } else {
        // A decode step of each (one alone is an ordinary decode step).
        Call step{padded, *std::max_element(positions.begin(), positions.end()),
                  padded, b > 1, b > 1 ? width : 0};
        step.joined = part.joined;
        // The batch engine puts the steps' tokens last, in order: their
        // logits rows are the call's, consecutive, and go there directly.
        bool direct = rowFor(0) >= 0 && rowFor(b - 1) == rowFor(0) + b - 1;
        std::vector<float> rows(direct || !logits ? 0 : size_t(b * m.vocab));
        std::vector<int64_t> tokenRows(direct || !call.greedy ? 0 : size_t(b));
        run(step, tokens, positions,
            !logits  ? nullptr
            : direct ? logits + rowFor(0) * m.vocab
                     : rows.data(),
            !call.greedy ? nullptr
            : direct     ? call.greedy + rowFor(0)
                         : tokenRows.data(),
            b);
        for (int64_t i = 0; i < b && !direct; ++i) {
          if (rowFor(i) < 0)
            continue;
          if (logits)
            std::copy_n(rows.begin() + i * m.vocab, m.vocab,
                        logits + rowFor(i) * m.vocab);
          if (call.greedy)
            call.greedy[rowFor(i)] = tokenRows[size_t(i)];
        }
      }
      copyStateBack(call.state);
    }
  }

private:
  void writeIdentityTable() {
    // One generation's sequence owns the cache's blocks in order (the
    // step record's table stride stays 0: every token reads row 0).
    std::vector<int32_t> identity(size_t(pool / contract::kCacheBlock));
    std::iota(identity.begin(), identity.end(), 0);
    driver.check(driver.cuMemcpyHtoD(device.at("block_table"), identity.data(),
                                     identity.size() * sizeof(int32_t)),
                 "writing the block table");
    identityTable = true;
  }

  /// `rows` rows of the block table (`width` blocks each) for the next
  /// call, and its sequences' RoPE state.
  void useTable(const int32_t *rows, int64_t count, int64_t width,
                const int64_t *state) {
    driver.check(driver.cuStreamSynchronize(stream), "finishing the last step");
    driver.check(driver.cuMemcpyHtoD(device.at("block_table"), rows,
                                     size_t(count * width) * sizeof(int32_t)),
                 "writing the block table");
    identityTable = false;
    driver.check(driver.cuMemcpyHtoD(device.at("state"), state,
                                     contract::kStateWords * sizeof(int64_t)),
                 "copying the RoPE state");
  }

  void copyStateBack(int64_t *state) {
    driver.check(driver.cuMemcpyDtoH(state, device.at("state"),
                                     contract::kStateWords * sizeof(int64_t)),
                 "copying the RoPE state back");
  }

  /// `call`'s `tokens`: one sequence's at positions `start...` through the
  /// block table's row 0, or a batched step's at `positions` through a row
  /// each; the logits of the last `rows` into `logits`. A decode step, and
  /// a batched step of each size, is captured once as a CUDA graph and
  /// replayed (what changes from step to step is in the step record, the
  /// tokens, the positions and the table). The rows' greedy tokens into
  /// `greedy` when that is not null. Only the first `copied` of the rows
  /// come back when that is not negative.
  void run(const Call &call, const std::vector<int64_t> &tokens,
           std::vector<int64_t> positions, float *logits,
           int64_t *greedy = nullptr, int64_t copied = -1) {
    int64_t n = int64_t(tokens.size());
    int64_t rows = copied >= 0 ? std::min(copied, call.rows) : call.rows;
    if (positions.empty()) {
      positions.resize(size_t(n));
      std::iota(positions.begin(), positions.end(), call.start);
    }
    auto step = stepRecord(call, pool, splits);
    copyIn(device["step"], step.data(), sizeof(step));
    copyIn(device["tokens"], tokens.data(), n * sizeof(int64_t));
    copyIn(device["positions"], positions.data(), n * sizeof(int64_t));
    if (traceRecords)
      driver.check(driver.cuMemsetD8Async(device["trace"], 0,
                                          size_t(traceRecords) *
                                              contract::kTraceWords * 8,
                                          stream),
                   "clearing the kernel trace");
    // The splits' grid: the context's most, or a batched step's own (its
    // graph is its size's, and its splits depend on its keys).
    int64_t splitGrid = call.batched ? step[contract::kStepSplits] : splitRows;
    if (call.isDecode() || call.batched) {
      CUgraphExec &exec =
          call.batched ? batchedGraphs[{n, splitGrid}] : decodeGraph;
      if (!exec) {
        CUgraph graph;
        driver.check(driver.cuStreamBeginCapture(stream, kCaptureModeGlobal),
                     "capturing a decode step");
        launchAll(call, splitGrid);
        driver.check(driver.cuStreamEndCapture(stream, &graph),
                     "capturing a decode step");
        driver.check(driver.cuGraphInstantiateWithFlags(&exec, graph, 0),
                     "instantiating the decode graph");
      }
      driver.check(driver.cuGraphLaunch(exec, stream),
                   "replaying the decode graph");
    } else {
      launchAll(call, splitGrid);
    }
    // logits_argmax runs in batched steps only: another call's greedy
    // tokens are the host's argmax of its logits (a row or a prompt's
    // last, where a decode step would pay the kernel on every token).
    bool hostGreedy = rows && greedy && !call.batched;
    bool pinned =
        pinnedLogits && rows <= kPinnedLogitRows && (logits || hostGreedy);
    float *into = pinned ? pinnedLogits : logits;
    std::vector<float> own;
    if (hostGreedy && !into) {
      own.resize(size_t(rows * m.vocab));
      into = own.data();
    }
    if (rows && into)
      driver.check(driver.cuMemcpyDtoHAsync(
                       into, device["logits"],
                       size_t(rows) * m.vocab * sizeof(float), stream),
                   "copying the logits back");
    if (rows && greedy && call.batched)
      driver.check(driver.cuMemcpyDtoHAsync(greedy, device["argmax"],
                                            size_t(rows) * sizeof(int64_t),
                                            stream),
                   "copying the greedy tokens back");
    finish("running the model");
    if (pinned && logits)
      std::memcpy(logits, pinnedLogits, size_t(rows * m.vocab) * sizeof(float));
    if (hostGreedy)
      argmaxRows(into, rows, m.vocab, greedy);
  }

  /// The TMA descriptors of `maps`, encoded for the buffers' device
  /// addresses, in one new allocation (returned) where the kernels read
  /// them; each map's address in it goes into `names` (it binds as its
  /// name, "tmap:N"). A map's outer extent of -k is k
  /// rows of `rows` (the context, or the vision encoder's rows), or of the
  /// cache's positions for a map of a cache layer; `address` gives a
  /// buffer's base.
  template <typename Address>
  CUdeviceptr encodeTensorMaps(const std::vector<contract::TensorMapSpec> &maps,
                               int64_t rows, Address address,
                               std::map<std::string, CUdeviceptr> &names) {
    if (maps.empty())
      return 0;
    if (!driver.cuTensorMapEncodeTiled)
      throw Error("the kernels use TMA, and this CUDA driver has no "
                  "cuTensorMapEncodeTiled");
    std::vector<TensorMap> encoded(maps.size());
    for (size_t i = 0; i < maps.size(); ++i) {
      const contract::TensorMapSpec &t = maps[i];
      unsigned long long globalDim[2] = {
          (unsigned long long)t.inner,
          (unsigned long long)(t.outer < 0
                                   ? -t.outer *
                                         (t.cacheLayer >= 0 ? pool : rows)
                                   : t.outer)};
      unsigned long long strides[1] = {globalDim[0] * 2};
      unsigned boxDim[2] = {unsigned(t.boxInner), unsigned(t.boxOuter)};
      unsigned elementStrides[2] = {1, 1};
      CUdeviceptr at = address(t.buffer) + t.offset;
      if (t.cacheLayer >= 0)
        at += CUdeviceptr(cacheSlabOffset(m, t.cacheLayer, pool));
      driver.check(driver.cuTensorMapEncodeTiled(
                       &encoded[i],
                       t.dtype == contract::DType::BF16 ? kTensorMapBFloat16
                                                        : kTensorMapFloat16,
                       2, reinterpret_cast<void *>(at), globalDim, strides,
                       boxDim, elementStrides, kTensorMapInterleaveNone,
                       kTensorMapSwizzle128B, kTensorMapL2Promotion256B,
                       kTensorMapOobFillZeros),
                   "encoding TMA descriptor " + t.name);
    }
    CUdeviceptr p = 0;
    size_t bytes = encoded.size() * sizeof(TensorMap);
    driver.check(driver.cuMemAlloc(&p, bytes), "allocating TMA descriptors");
    driver.check(driver.cuMemcpyHtoD(p, encoded.data(), bytes),
                 "copying TMA descriptors");
    for (size_t i = 0; i < maps.size(); ++i)
      names[maps[i].name] = p + i * sizeof(TensorMap);
    return p;
  }

  /// Blocks of `launch` the card holds at once: whole clusters of them
  /// when it has clusters.
  int64_t residentBlocks(Launch &launch, int multiprocessors) {
    const contract::Launch &l = *launch.spec;
    if (l.cluster <= 1) {
      int perSM = 0;
      driver.check(
          driver.cuOccupancyMaxActiveBlocksPerMultiprocessor(
              &perSM, launch.function, int(l.block), size_t(l.sharedBytes)),
          "the occupancy of " + l.kernel);
      return int64_t(perSM) * multiprocessors;
    }
    if (!driver.cuLaunchKernelEx || !driver.cuOccupancyMaxActiveClusters)
      throw Error("this model's " + l.kernel +
                  " runs in thread-block clusters, which this CUDA driver "
                  "cannot launch (CUDA 12 or later is needed)");
    if (l.cluster > 8)
      driver.check(
          driver.cuFuncSetAttribute(
              launch.function, kFuncAttributeNonPortableClusterSizeAllowed, 1),
          "allowing " + l.kernel + " clusters of " + std::to_string(l.cluster) +
              " blocks");
    CUlaunchAttribute attribute = clusterAttribute(l);
    CUlaunchConfig config{
        1, unsigned(l.cluster),     1,       unsigned(l.block), 1,
        1, unsigned(l.sharedBytes), nullptr, &attribute,        1};
    int clusters = 0;
    driver.check(driver.cuOccupancyMaxActiveClusters(&clusters, launch.function,
                                                     &config),
                 "the cluster occupancy of " + l.kernel);
    if (clusters < 1)
      throw Error("CUDA: the card cannot hold one cluster of " +
                  std::to_string(l.cluster) + " blocks of " + l.kernel);
    return int64_t(clusters) * l.cluster;
  }

  static CUlaunchAttribute clusterAttribute(const contract::Launch &l) {
    CUlaunchAttribute attribute{};
    attribute.id = kLaunchAttributeClusterDimension;
    attribute.value.clusterDim = {1, unsigned(l.cluster), 1};
    return attribute;
  }

  /// The last forward call's kernel trace (decc --gpu-trace), on stderr: a
  /// line a launch that ran, in us from the step's first block start: its
  /// first and last blocks' start, its wait's first release, its first and
  /// last blocks' end, the blocks recorded, and the first and last block at
  /// each of the kernel's own points (`phase P first last`). Where a step's
  /// time goes between kernels shows there: how early a kernel's blocks start,
  /// how long after its predecessor's last block its wait returns, how long its
  /// own blocks take to drain.
  void printTrace() {
    if (!traceRecords)
      return;
    std::vector<uint64_t> r(size_t(traceRecords) * contract::kTraceWords);
    driver.check(driver.cuStreamSynchronize(stream), "finishing the last step");
    driver.check(driver.cuMemcpyDtoH(r.data(), device["trace"],
                                     r.size() * sizeof(uint64_t)),
                 "copying the kernel trace back");
    struct Span {
      uint64_t firstStart = ~uint64_t(0), lastStart = 0, wait = ~uint64_t(0),
               firstEnd = ~uint64_t(0), lastEnd = 0;
      int64_t blocks = 0;
      /// The kernel's own points: the first and last block there.
      uint64_t phaseFirst[contract::kTracePhases],
          phaseLast[contract::kTracePhases];
      Span() {
        std::fill(std::begin(phaseFirst), std::end(phaseFirst), ~uint64_t(0));
        std::fill(std::begin(phaseLast), std::end(phaseLast), 0);
      }
    };
    std::vector<Span> spans(launches.size());
    uint64_t origin = ~uint64_t(0);
    for (size_t i = 0; i < launches.size(); ++i) {
      Span &s = spans[i];
      for (int64_t b = 0; b < contract::kTraceBlocks; ++b) {
        const uint64_t *w =
            &r[(i * contract::kTraceBlocks + b) * contract::kTraceWords];
        if (!w[contract::kTraceStart])
          continue;
        uint64_t start = ~w[contract::kTraceStart];
        ++s.blocks;
        s.firstStart = std::min(s.firstStart, start);
        s.lastStart = std::max(s.lastStart, start);
        if (w[contract::kTraceWait])
          s.wait = std::min(s.wait, ~w[contract::kTraceWait]);
        s.firstEnd = std::min(s.firstEnd, w[contract::kTraceEnd]);
        s.lastEnd = std::max(s.lastEnd, w[contract::kTraceEnd]);
        for (int64_t p = 0; p < contract::kTracePhases; ++p) {
          uint64_t t = w[contract::kTraceFirstPhase + p];
          if (!t)
            continue;
          s.phaseFirst[p] = std::min(s.phaseFirst[p], t);
          s.phaseLast[p] = std::max(s.phaseLast[p], t);
        }
      }
      if (s.blocks)
        origin = std::min(origin, s.firstStart);
    }
    auto us = [&](uint64_t ns) { return double(int64_t(ns - origin)) / 1e3; };
    std::fprintf(stderr, "trace: launch kernel: start first last | wait first "
                         "| end first last (us) | blocks\n");
    for (size_t i = 0; i < launches.size(); ++i) {
      const Span &s = spans[i];
      if (!s.blocks)
        continue;
      std::fprintf(stderr, "trace: %4zu %-24s %9.2f %9.2f | ", i,
                   launches[i].spec->kernel.c_str(), us(s.firstStart),
                   us(s.lastStart));
      if (s.wait != ~uint64_t(0))
        std::fprintf(stderr, "%9.2f", us(s.wait));
      else
        std::fprintf(stderr, "%9s", "-");
      std::fprintf(stderr, " | %9.2f %9.2f | %lld", us(s.firstEnd),
                   us(s.lastEnd), (long long)s.blocks);
      for (int64_t p = 0; p < contract::kTracePhases; ++p)
        if (s.phaseLast[p])
          std::fprintf(stderr, " | phase %lld %.2f %.2f", (long long)p,
                       us(s.phaseFirst[p]), us(s.phaseLast[p]));
      std::fprintf(stderr, "\n");
    }
  }

  /// `spec`'s kernel in `module`, given the shared memory it asks for.
  Launch kernelOf(CUmodule module, const contract::Launch &spec) {
    Launch launch{&spec, nullptr, {}};
    const std::string &name = spec.kernel;
    driver.check(
        driver.cuModuleGetFunction(&launch.function, module, name.c_str()),
        "finding kernel " + name);
    if (spec.sharedBytes > 0)
      driver.check(driver.cuFuncSetAttribute(
                       launch.function, kFuncAttributeMaxDynamicSharedBytes,
                       int(spec.sharedBytes)),
                   "giving " + name + " " + std::to_string(spec.sharedBytes) +
                       " bytes of shared memory");
    return launch;
  }

  /// The vision plan's buffers for `rows` encoder rows and `pixelFloats`
  /// pixels, kept for the pictures after (grown when one has more tiles).
  void reserveVision(int64_t rows, int64_t pixelFloats) {
    if (rows <= visionRows && pixelFloats <= visionPixels)
      return;
    driver.check(driver.cuStreamSynchronize(stream), "finishing the last step");
    for (auto &[_, p] : visionDevice)
      driver.cuMemFree(p);
    visionDevice.clear();
    std::map<std::string, int64_t> sizes = {
        {"step", contract::kStepWords * 8},
        {"step_projector", contract::kStepWords * 8},
        {"pixels", pixelFloats * 4}};
    size_t total = 0;
    for (const contract::PlanBuffer &b : m.visionPlan->plan.buffers) {
      std::optional<int64_t> bytes = b.checkedBytes(rows);
      if (!bytes)
        throw Error("the vision encoder's buffers for " + std::to_string(rows) +
                    " rows overflow");
      sizes[b.name] = *bytes;
    }
    for (auto &[_, bytes] : sizes)
      total += size_t(bytes);
    size_t freeBytes = 0, totalBytes = 0;
    driver.cuMemGetInfo(&freeBytes, &totalBytes);
    if (total > freeBytes)
      throw Error("the vision encoder needs " + std::to_string(total >> 20) +
                  " MiB of GPU memory for " + std::to_string(rows) +
                  " rows but " + deviceName + " has " +
                  std::to_string(freeBytes >> 20) + " MiB free");
    for (auto &[bufferName, bytes] : sizes) {
      CUdeviceptr p = 0;
      driver.check(driver.cuMemAlloc(&p, std::max<size_t>(size_t(bytes), 64)),
                   "allocating the vision encoder's " + bufferName);
      visionDevice[bufferName] = p;
    }
    // The projections' TMA descriptors address these buffers: encoded anew
    // with them, over all the rows they hold.
    visionMaps.clear();
    if (CUdeviceptr maps = encodeTensorMaps(
            m.visionPlan->plan.tensorMaps, rows,
            [&](const std::string &b) {
              return b == "arena" ? device.at("arena") : visionDevice.at(b);
            },
            visionMaps))
      visionDevice["tensor_maps"] = maps;
    visionRows = rows;
    visionPixels = pixelFloats;
  }

  void copyIn(CUdeviceptr to, const void *from, size_t bytes) {
    driver.check(driver.cuMemcpyHtoDAsync(to, from, bytes, stream),
                 "copying to the GPU");
  }

  /// The GPU `job`'s rank runs on: its place among the ranks of its host
  /// (Open MPI's local rank), one GPU each.
  int gpuOfRank(const Collectives &job) {
    auto env = [](const char *name, int64_t fallback) {
      const char *v = std::getenv(name);
      return v && *v ? int64_t(std::atoll(v)) : fallback;
    };
    int64_t local = env("OMPI_COMM_WORLD_LOCAL_RANK", job.rank());
    int64_t here = env("OMPI_COMM_WORLD_LOCAL_SIZE", job.size());
    int count = 0;
    driver.check(driver.cuDeviceGetCount(&count), "counting the GPUs");
    if (here > count)
      throw Error(std::to_string(here) + " ranks run on this host but it has " +
                  std::to_string(count) +
                  " GPUs: a tensor-parallel rank needs a GPU of its own");
    return int(local);
  }

  /// Waits for the stream. A tensor-parallel step polls it, so that a rank
  /// whose peers stopped (their collectives never come) says so and stops
  /// the job after DECC_COLLECTIVE_TIMEOUT seconds instead of hanging.
  void finish(const char *what) {
    if (!nccl) {
      driver.check(driver.cuStreamSynchronize(stream), what);
      return;
    }
    using Clock = std::chrono::steady_clock;
    Clock::time_point start = Clock::now();
    double limit = Collectives::timeoutSeconds();
    for (;;) {
      CUresult r = driver.cuStreamQuery(stream);
      if (r != kErrorNotReady) {
        driver.check(r, what);
        return;
      }
      const char *failed = nccl->asyncError();
      double waited =
          std::chrono::duration<double>(Clock::now() - start).count();
      if (failed || waited > limit) {
        nccl->abort();
        throw Error(std::string(what) + ": " +
                    (failed ? std::string("NCCL failed: ") + failed
                            : "the step's collectives waited " +
                                  std::to_string(int64_t(waited)) +
                                  " s for the other ranks "
                                  "(DECC_COLLECTIVE_TIMEOUT): one stopped or "
                                  "runs another step"));
      }
      // Spin while a step is short; past a millisecond let the core go.
      if (waited > 1e-3)
        std::this_thread::sleep_for(std::chrono::microseconds(20));
    }
  }

  void launchAll(const Call &call, int64_t splitGrid) {
    for (Launch &launch : launches) {
      const contract::Launch &l = *launch.spec;
      if (!launchRuns(l, call, largePrefill))
        continue;
      if (l.collective == contract::Collective::AllReduce) {
        nccl->allReduce(launch.values[0], call.tokens * l.floats, stream);
        continue;
      }
      if (l.collective == contract::Collective::AllGather) {
        // The step's logits rows, its last.
        CUdeviceptr part =
            launch.values[0] +
            CUdeviceptr((call.tokens - call.rows) * l.floats * sizeof(float));
        nccl->allGather(part, launch.values[1], call.rows * l.floats, stream);
        continue;
      }
      if (call.isDecode() && skippedInDecode.count(l.kernel))
        continue;
      auto [x, y] = gridBlocks(l.grid, call, splitGrid, launch.residentCap);
      if (x == 0 || y == 0)
        continue;
      // The driver reads each argument through a pointer to it.
      std::vector<void *> params;
      for (CUdeviceptr &v : launch.values)
        params.push_back(&v);
      if (programmatic || l.cluster > 1) {
        CUlaunchAttribute attributes[2];
        unsigned count = 0;
        if (programmatic) {
          attributes[count] = {};
          attributes[count].id =
              kLaunchAttributeProgrammaticStreamSerialization;
          attributes[count++].value.value = 1;
        }
        if (l.cluster > 1)
          attributes[count++] = clusterAttribute(l);
        CUlaunchConfig config{unsigned(x),
                              unsigned(y),
                              1,
                              unsigned(l.block),
                              1,
                              1,
                              unsigned(l.sharedBytes),
                              stream,
                              attributes,
                              count};
        driver.check(driver.cuLaunchKernelEx(&config, launch.function,
                                             params.data(), nullptr),
                     "launching " + l.kernel);
        continue;
      }
      driver.check(driver.cuLaunchKernel(launch.function, unsigned(x),
                                         unsigned(y), 1, unsigned(l.block), 1,
                                         1, unsigned(l.sharedBytes), stream,
                                         params.data(), nullptr),
                   "launching " + l.kernel);
    }
  }
  const Manifest &m;
  /// Tokens a call holds at most, and the positions the caches hold (a
  /// context, or a paged pool of whole blocks).
  int64_t context, pool;
  bool paged;
  /// Whether the block table holds the identity (forward's), or a paged
  /// call's row.
  bool identityTable = false;
  Driver driver;
  /// The ranks' communicator, in a tensor-parallel build.
  std::unique_ptr<Nccl> nccl;
  std::string deviceName;
  std::vector<Launch> launches;
  int64_t largePrefill = int64_t(1) << 40;
  bool programmatic = false, joinPrompts = false, argmaxKernel = false;
  std::set<std::string> skippedInDecode;
  SplitPolicy splits;
  /// The decode attention grid's rows of splits (splitBlocks).
  int64_t splitRows = contract::kMaxSplits;
  std::map<std::string, CUdeviceptr> device;
  /// Addresses inside an allocation of `device` (the TMA descriptors).
  std::map<std::string, CUdeviceptr> inside;
  std::vector<uint8_t> hostArena;
  CUstream stream = nullptr;
  /// Page-locked host memory the logits come back into (kPinnedLogitRows
  /// rows), then copied to the caller.
  float *pinnedLogits = nullptr;
  CUgraphExec decodeGraph = nullptr;
  /// Batched steps' graphs by (tokens, splits).
  std::map<std::pair<int64_t, int64_t>, CUgraphExec> batchedGraphs;
  /// The vision plan's launches and device memory, allocated for
  /// `visionRows` encoder rows and `visionPixels` pixel values at the first
  /// picture.
  std::vector<Launch> visionLaunches;
  std::map<std::string, CUdeviceptr> visionDevice;
  int64_t visionRows = 0, visionPixels = 0;
  /// The vision plan's TMA descriptors, inside visionDevice["tensor_maps"].
  std::map<std::string, CUdeviceptr> visionMaps;
  /// Block records of the kernel trace (0: a build without --gpu-trace),
  /// contract::kTraceBlocks a launch.
  int64_t traceRecords = 0;
};

} // namespace

std::unique_ptr<Backend> createCUDABackend(const Manifest &manifest,
                                           const void *image,
                                           int64_t maxContext,
                                           int64_t cachePositions) {
  return std::make_unique<CUDABackend>(manifest, image, maxContext,
                                       cachePositions);
}

} // namespace decc::rt
