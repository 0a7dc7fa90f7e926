//===- Driver.cpp - the stage pipeline behind decc ------------------------===//

#include "compiler/Driver/Driver.h"
#include "compiler/Config/ConfigLoader.h"
#include "compiler/Conversion/Common/ManifestAttr.h"
#include "compiler/Conversion/Passes.h"
#include "compiler/Driver/GPUKernels.h"
#include "compiler/Frontend/VisionBuilder.h"
#include "compiler/Target/CudaToolkit.h"
#include "compiler/Target/ObjectEmitter.h"
#include "compiler/Target/RegisterCaps.h"
#include "compiler/Transforms/Passes.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/IR/Verifier.h"
#include "mlir/InitAllExtensions.h"
#include "mlir/Support/FileUtilities.h"
#include "mlir/Target/LLVM/NVVM/Target.h"
#include "mlir/Target/LLVMIR/Dialect/Builtin/BuiltinToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Dialect/GPU/GPUToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Dialect/LLVMIR/LLVMToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Dialect/NVVM/NVVMToLLVMIRTranslation.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Program.h"
#include "llvm/Support/ToolOutputFile.h"
#include "llvm/Support/WithColor.h"

using namespace mlir;

namespace decc {

namespace {
int fail(const llvm::Twine &message) {
  llvm::WithColor::error(llvm::errs(), "decc") << message << "\n";
  return 1;
}
} // namespace

void buildDecoderPipeline(OpPassManager &pm, const DriverOptions &options) {
  SelectAttentionBackendOptions select;
  // decc checked the name (contract::parseAttentionBackend).
  select.backend =
      options.attention.empty()
          ? AttentionChoice::Config
          : AttentionChoice(
                int(*contract::parseAttentionBackend(options.attention)));
  pm.addPass(createSelectAttentionBackend(select));
  // The partition sees the model as built: one projection an input, before
  // the packing.
  if (options.tensorParallel > 1) {
    TensorParallelOptions tp;
    tp.ranks = options.tensorParallel;
    pm.addPass(createTensorParallel(tp));
  }
  // Packing first gives the later fusions one projection per input; the
  // epilogue fusions run before the norm is folded into the prologue.
  pm.addPass(createFuseProjections());
  pm.addPass(createFuseActivation());
  pm.addPass(createFuseRoPEKVAppend());
  pm.addPass(createFuseNorm());
  pm.addPass(createFuseResidual());
}

namespace {

/// griddepcontrol (programmatic dependent launch) exists from sm_90 on.
bool hasProgrammaticLaunch(llvm::StringRef gpuArch) {
  unsigned version = 0;
  return gpuArch.consume_front("sm_") &&
         !gpuArch.take_while(llvm::isDigit).getAsInteger(10, version) &&
         version >= 90;
}

/// wgmma exists on sm_90a alone (not on sm_90, nor on later chips).
bool hasWarpgroupMma(llvm::StringRef gpuArch) { return gpuArch == "sm_90a"; }

/// bf16 projections as AVX512-BF16 dot products (convert-decoder-to-cpu's
/// bf16-dot).
bool cpuBF16Dots(const DriverOptions &options) {
  return options.cpuBF16Dot &&
         cpuHasFeature(CPUTarget{options.cpu}, "avx512bf16");
}

/// A prompt's bf16 projections as AMX tile matmuls (convert-decoder-to-cpu's
/// amx): they take the bf16 inputs of the bf16 dot products.
bool cpuAMXTiles(const DriverOptions &options) {
  CPUTarget target{options.cpu};
  return options.cpuAMX && cpuBF16Dots(options) &&
         cpuHasFeature(target, "amx-tile") && cpuHasFeature(target, "amx-bf16");
}

const char *stageFileName(Stage stage) {
  switch (stage) {
  case Stage::Spec:
    return "0-spec.json";
  case Stage::Decoder:
    return "1-decoder.mlir";
  case Stage::DecoderOpt:
    return "2-decoder-opt.mlir";
  case Stage::Lowered:
    return "3-lowered.mlir";
  case Stage::PTX:
    return "4-kernels.ptx";
  case Stage::LLVM:
    return "5-model.ll";
  case Stage::Object:
    return "6-model.o";
  case Stage::Executable:
    return "model";
  }
  return "stage";
}

/// Writes `print` into `path`; "-" is stdout.
bool writeText(const std::string &path,
               llvm::function_ref<void(llvm::raw_ostream &)> print,
               std::string &error) {
  std::unique_ptr<llvm::ToolOutputFile> out = openOutputFile(path, &error);
  if (!out)
    return false;
  print(out->os());
  out->keep();
  return true;
}

/// The compiler that links: $DECC_CXX, else the first C++ driver on PATH.
std::string findLinker(std::string &error) {
  if (const char *env = std::getenv("DECC_CXX"))
    return env;
  for (const char *name : {"clang++-22", "clang++", "c++", "g++"})
    if (auto path = llvm::sys::findProgramByName(name))
      return *path;
  error = "no C++ compiler to link with (set DECC_CXX)";
  return "";
}

/// Where libDeccHost.a, libDeccRuntime.a and libDeccContract.a are: next
/// to decc's lib dir.
std::string runtimeLibraryDir() {
  if (const char *env = std::getenv("DECC_RUNTIME_DIR"))
    return env;
  std::string exe = llvm::sys::fs::getMainExecutable(nullptr, nullptr);
  llvm::SmallString<256> dir(
      llvm::sys::path::parent_path(llvm::sys::path::parent_path(exe)));
  llvm::sys::path::append(dir, "lib");
  return std::string(dir);
}

bool link(const std::string &object, const std::string &output, bool images,
          std::string &error) {
  std::string cxx = findLinker(error);
  if (cxx.empty())
    return false;
  std::string libs = runtimeLibraryDir();
  std::vector<std::string> args = {cxx, "-o", output, object};
  // A model with a vision encoder reads pictures (--image): the host's
  // loadImageTiles, which the host refers to weakly (so the whole archive),
  // and the JPEG and PNG decoders.
  if (images)
    args.insert(args.end(),
                {"-Wl,--whole-archive", libs + "/libDeccHostImage.a",
                 "-Wl,--no-whole-archive", libs + "/libDeccImage.a", "-ljpeg",
                 "-lpng"});
  args.insert(args.end(),
              {libs + "/libDeccHost.a", libs + "/libDeccRuntime.a",
               libs + "/libDeccContract.a", "-L" DECC_OPENMP_LIBRARY_DIR,
               "-Wl,-rpath," DECC_OPENMP_LIBRARY_DIR, "-lomp",
               // The runtime's tokenizers, and --serve's HTTP.
               "-lsentencepiece", "-lpcre2-8", "-lutf8proc", "-lcpp-httplib",
               "-ldl", "-lm", "-pthread"});
  // $DECC_LINK_FLAGS: more link flags, space separated (the sanitizer
  // build's runtime needs -fsanitize=address,undefined at the link).
  if (const char *extra = std::getenv("DECC_LINK_FLAGS")) {
    llvm::SmallVector<llvm::StringRef> flags;
    llvm::StringRef(extra).split(flags, ' ', -1, /*KeepEmpty=*/false);
    for (llvm::StringRef f : flags)
      args.push_back(f.str());
  }
  std::vector<llvm::StringRef> refs(args.begin(), args.end());
  std::string message;
  int rc =
      llvm::sys::ExecuteAndWait(cxx, refs, std::nullopt, {}, 0, 0, &message);
  if (rc != 0) {
    error = "linking '" + output + "' failed (" + cxx + ")" +
            (message.empty() ? "" : ": " + message);
    return false;
  }
  return true;
}

/// The manifest the lowering recorded, completed with what the driver
/// knows of the build.
FailureOr<contract::Manifest> finishManifest(ModuleOp module,
                                             const ModelSpec &spec,
                                             const DriverOptions &options) {
  FailureOr<contract::Manifest> manifest = getManifestAttr(module);
  if (failed(manifest))
    return failure();
  contract::ModelFacts facts;
  facts.modelType = spec.modelType;
  facts.config = options.configPath;
  facts.dtype = options.frontend.dtype;
  if (options.frontend.quantBits) {
    facts.quantBits = options.frontend.quantBits;
    facts.groupSize = options.frontend.groupSize;
  }
  facts.attention = options.attention.empty()
                        ? spec.backend
                        : *contract::parseAttentionBackend(options.attention);
  facts.cpu = options.cpu;
  // Whether a kernel multiplies on tiles (bf16 weights of whole tiles).
  facts.amx = module
                  .walk([](Operation *op) {
                    return isa<amx::AMXDialect>(op->getDialect())
                               ? WalkResult::interrupt()
                               : WalkResult::advance();
                  })
                  .wasInterrupted();
  facts.gpuArch = options.gpuArch;
  facts.maxPositions = spec.maxPositions;
  facts.bos = spec.bosTokenId;
  facts.eos = spec.eosTokenIds;
  manifest->model = std::move(facts);
  // How --image cuts a picture: the config's budget and thumbnail.
  if (manifest->vision && spec.vision) {
    manifest->vision->minTiles =
        spec.vision->dynamicTiles ? spec.vision->minTiles : 1;
    manifest->vision->maxTiles =
        spec.vision->dynamicTiles ? spec.vision->maxTiles : 1;
    manifest->vision->thumbnail = spec.vision->useThumbnail;
  }
  module->removeAttr(kManifestAttrName);
  return manifest;
}

} // namespace

void buildCPULoweringPipeline(OpPassManager &pm, bool toLLVM, bool bf16Dot,
                              int64_t quantizedLanes, int64_t sliceInputBytes,
                              int64_t sliceTokens, bool amx,
                              int64_t dequantizePromptTokens, bool int16Dots) {
  pm.addPass(createConvertDecoderToCPU({bf16Dot, quantizedLanes,
                                        sliceInputBytes, sliceTokens, amx,
                                        dequantizePromptTokens, int16Dots}));
  if (toLLVM)
    buildCPUToLLVMPipeline(pm);
}

int runDriver(const DriverOptions &requested, MLIRContext &context,
              TimingScope &timing) {
  TimingScope configTiming = timing.nest("config");
  SpecOrError spec = loadModelSpec(requested.configPath);
  configTiming.stop();
  if (!spec)
    return fail(spec.error);
  DriverOptions options = requested;
  FrontendOptions &f = options.frontend;
  // A checkpoint published quantized (AWQ) is read as it is stored: the
  // build is int4 in its groups, whatever --dtype would default to.
  if (const auto &q = spec.spec->checkpointQuantization) {
    if (!requested.dtypeGiven) {
      f.dtype = contract::DType::F32;
      f.quantBits = q->bits;
      f.groupSize = q->groupSize;
    } else if (f.quantBits != q->bits || f.groupSize != q->groupSize) {
      return fail("the checkpoint of " + requested.configPath + " is " +
                  q->method + "-quantized (" + std::to_string(q->bits) +
                  " bits, groups of " + std::to_string(q->groupSize) +
                  "); compile it with --dtype int" + std::to_string(q->bits) +
                  " --group-size " + std::to_string(q->groupSize) +
                  ", or without --dtype");
    }
  }

  std::string error;
  bool dump = !options.dumpDir.empty();
  if (dump) {
    if (std::error_code ec = llvm::sys::fs::create_directories(options.dumpDir))
      return fail("cannot create --dump-dir '" + options.dumpDir +
                  "': " + ec.message());
  }
  auto dumpPath = [&](Stage stage) {
    llvm::SmallString<256> path(options.dumpDir);
    llvm::sys::path::append(path, stageFileName(stage));
    return std::string(path);
  };
  // Writes a stage to the dump dir, and to -o when it is the last one.
  auto emitStage = [&](Stage stage,
                       llvm::function_ref<void(llvm::raw_ostream &)> print) {
    if (dump && !writeText(dumpPath(stage), print, error))
      return false;
    if (options.emit == stage && !writeText(options.outputPath, print, error))
      return false;
    return true;
  };

  if (!emitStage(Stage::Spec,
                 [&](llvm::raw_ostream &os) { os << specToJson(*spec.spec); }))
    return fail(error);
  if (options.emit == Stage::Spec)
    return 0;

  TimingScope frontendTiming = timing.nest("frontend");
  FrontendOptions frontend = options.frontend;
  // Tensor parallelism partitions the language model only.
  frontend.vision = options.tensorParallel == 1;
  if (spec.spec->vision && options.emit > Stage::DecoderOpt) {
    if (!frontend.vision)
      llvm::errs() << "decc: note: a tensor-parallel build has no vision "
                      "encoder; the executable takes text prompts only\n";
    else if (std::optional<std::string> why = visionUnsupported(*spec.spec))
      llvm::errs() << "decc: note: no vision encoder built: " << *why
                   << "; the executable takes text prompts only\n";
  }
  OwningOpRef<ModuleOp> module =
      buildDecoderModule(context, *spec.spec, frontend);
  frontendTiming.stop();
  TimingScope verifyTiming = timing.nest("verify");
  if (failed(verify(*module)))
    return fail("internal error: the decoder IR built for '" +
                options.configPath + "' does not verify");
  verifyTiming.stop();
  auto printModule = [&](llvm::raw_ostream &os) { module->print(os); };
  if (!emitStage(Stage::Decoder, printModule))
    return fail(error);
  if (options.emit == Stage::Decoder)
    return 0;

  auto runPassesOn = [&](ModuleOp target, StringRef name,
                         llvm::function_ref<void(OpPassManager &)> build,
                         TimingScope *parent = nullptr) {
    PassManager pm(&context);
    if (failed(applyPassManagerCLOptions(pm)))
      return false;
    TimingScope passTiming = (parent ? *parent : timing).nest(name);
    pm.enableTiming(passTiming);
    build(pm);
    return succeeded(pm.run(target));
  };
  auto runPasses = [&](StringRef name,
                       llvm::function_ref<void(OpPassManager &)> build) {
    return runPassesOn(*module, name, build);
  };
  if (!runPasses("decoder passes",
                 [&](OpPassManager &pm) { buildDecoderPipeline(pm, options); }))
    return fail("the decoder passes failed on '" + options.configPath + "'");
  if (!emitStage(Stage::DecoderOpt, printModule))
    return fail(error);
  if (options.emit == Stage::DecoderOpt)
    return 0;

  bool cuda = options.target == "cuda";
  bool avx512 = !cuda && cpuHasFeature(CPUTarget{options.cpu}, "avx512f");
  if (cuda && options.gpuDecodeCluster > 1 &&
      !hasProgrammaticLaunch(options.gpuArch))
    return fail(
        "--gpu-decode-cluster " + std::to_string(options.gpuDecodeCluster) +
        ": thread-block clusters need sm_90 or later, not " + options.gpuArch);
  if (!runPasses(cuda ? "lowering to GPU kernels" : "lowering to CPU kernels",
                 [&](OpPassManager &pm) {
                   if (cuda)
                     pm.addPass(createConvertDecoderToGPU(
                         {/*tensorCores=*/options.gpuTensorCores,
                          /*programmaticLaunch=*/
                          hasProgrammaticLaunch(options.gpuArch),
                          /*warpgroupMma=*/options.gpuTensorCores &&
                              hasWarpgroupMma(options.gpuArch),
                          /*decodeCluster=*/options.gpuDecodeCluster,
                          /*fusedAppend=*/options.gpuFusedQKV,
                          /*gemvUnitsPerBlock=*/options.gpuGemvUnitsPerBlock,
                          /*trace=*/options.gpuTrace}));
                   else
                     buildCPULoweringPipeline(
                         pm, /*toLLVM=*/false, cpuBF16Dots(options),
                         /*quantizedLanes=*/avx512 ? 16 : 8,
                         options.cpuSliceInputBytes, options.cpuSliceTokens,
                         cpuAMXTiles(options),
                         options.cpuDequantizePromptTokens,
                         /*int16Dots=*/options.cpuInt16Dots &&
                             (!avx512 || cpuHasFeature(CPUTarget{options.cpu},
                                                       "avx512bw")));
                 }))
    return fail("lowering '" + options.configPath + "' to " +
                (cuda ? "GPU" : "CPU") + " kernels failed");
  if (!emitStage(Stage::Lowered, printModule))
    return fail(error);
  if (options.emit == Stage::Lowered)
    return 0;
  FailureOr<contract::Manifest> manifest =
      finishManifest(*module, *spec.spec, options);
  if (failed(manifest))
    return fail("the lowering of '" + options.configPath +
                "' left no readable manifest");

  std::optional<std::string> gpuImage;
  if (cuda) {
    // gpu-module-to-binary translates the kernels to LLVM IR and PTX
    // in-process through the NVVM target.
    DialectRegistry registry;
    // convert-gpu-to-nvvm finds the LLVM lowering of arith, cf, memref, math
    // and the rest through these dialect extensions.
    registerAllExtensions(registry);
    NVVM::registerNVVMTargetInterfaceExternalModels(registry);
    registerBuiltinDialectTranslation(registry);
    registerLLVMDialectTranslation(registry);
    registerGPUDialectTranslation(registry);
    registerNVVMDialectTranslation(registry);
    context.appendDialectRegistry(registry);
    TimingScope kernelTiming = timing.nest("GPU kernels");
    std::optional<AssembledKernels> assembled = compileGPUKernels(
        *module, options.gpuArch,
        [&](ModuleOp kernels, StringRef name,
            llvm::function_ref<void(OpPassManager &)> build) {
          return runPassesOn(kernels, name, build, &kernelTiming);
        },
        error);
    kernelTiming.stop();
    if (!assembled)
      return fail(error.empty() ? "compiling the kernels of '" +
                                      options.configPath + "' to PTX failed"
                                : error);
    if (!emitStage(Stage::PTX,
                   [&](llvm::raw_ostream &os) { os << assembled->ptx; }))
      return fail(error);
    if (options.emit == Stage::PTX)
      return 0;
    gpuImage = std::move(assembled->cubin);
  } else {
    if (options.emit == Stage::PTX)
      return fail("--emit=ptx needs --target=cuda");
    if (!runPasses("lowering to the LLVM dialect",
                   [&](OpPassManager &pm) { buildCPUToLLVMPipeline(pm); }))
      return fail("lowering '" + options.configPath +
                  "' to the LLVM dialect failed");
    if (dump && !writeText(options.dumpDir + "/4-llvm-dialect.mlir",
                           printModule, error))
      return fail(error);
  }

  TimingScope llvmTiming = timing.nest("LLVM IR (O3)");
  std::unique_ptr<llvm::TargetMachine> machine =
      createTargetMachine(CPUTarget{options.cpu}, error);
  if (!machine)
    return fail(error);
  llvm::LLVMContext llvmContext;
  // $DECC_SANITIZE=address: the model's own code instrumented too (`make
  // check-sanitize`, which also links it with the sanitizer's runtime).
  const char *sanitize = std::getenv("DECC_SANITIZE");
  std::unique_ptr<llvm::Module> llvmModule = translateToLLVMIR(
      *module, llvmContext, *machine, contract::toJson(*manifest),
      gpuImage ? &*gpuImage : nullptr, error,
      sanitize && llvm::StringRef(sanitize) == "address");
  if (!llvmModule)
    return fail(error);
  llvmTiming.stop();
  if (!emitStage(Stage::LLVM, [&](llvm::raw_ostream &os) {
        llvmModule->print(os, nullptr);
      }))
    return fail(error);
  if (options.emit == Stage::LLVM)
    return 0;

  TimingScope objectTiming = timing.nest("object file");
  std::string objectPath;
  llvm::SmallString<128> tempObject;
  if (options.emit == Stage::Object && options.outputPath != "-") {
    objectPath = options.outputPath;
  } else if (dump) {
    objectPath = dumpPath(Stage::Object);
  } else {
    if (std::error_code ec =
            llvm::sys::fs::createTemporaryFile("decc", "o", tempObject))
      return fail("cannot create a temporary object file: " + ec.message());
    objectPath = std::string(tempObject);
  }
  if (!emitObjectFile(*llvmModule, *machine, objectPath, error))
    return fail(error);
  if (dump && objectPath != dumpPath(Stage::Object))
    llvm::sys::fs::copy_file(objectPath, dumpPath(Stage::Object));
  objectTiming.stop();
  if (options.emit == Stage::Object) {
    if (options.outputPath == "-")
      return fail("--emit=obj needs -o FILE");
    return 0;
  }

  TimingScope linkTiming = timing.nest("link");
  bool linked =
      link(objectPath, options.outputPath, manifest->vision.has_value(), error);
  if (!tempObject.empty())
    llvm::sys::fs::remove(tempObject);
  if (!linked)
    return fail(error);
  const contract::CacheShape &cache = manifest->cache;
  llvm::outs() << "decc: wrote " << options.outputPath << "; KV cache "
               << cache.bytes(1) << " bytes per position (" << cache.layers
               << " layers x " << cache.kvHeads << " kv heads x "
               << cache.headDim << " x K,V " << contract::spelling(cache.dtype)
               << ")\n";
  return 0;
}

} // namespace decc
