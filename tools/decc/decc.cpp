//===- decc.cpp - the decoder model compiler ------------------------------===//
//
// decc CONFIG [--emit=STAGE] [-o FILE] [--dtype=...] [--attention=...]
//
//===----------------------------------------------------------------------===//

#include "compiler/Config/ConfigLoader.h"
#include "compiler/Driver/Driver.h"

#include "mlir/IR/AsmState.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Support/Timing.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/WithColor.h"

using namespace llvm;

namespace {
cl::OptionCategory deccCategory("decc options");

cl::opt<std::string> configPath(cl::Positional, cl::Required,
                                cl::desc("<config.json>"),
                                cl::cat(deccCategory));

cl::opt<decc::Stage>
    emit("emit",
         cl::desc("the stage to write (default: the executable with -o FILE, "
                  "else decoder-opt)"),
         cl::init(decc::Stage::DecoderOpt),
         cl::values(clEnumValN(decc::Stage::Spec, "spec",
                               "the validated, normalized config (JSON)"),
                    clEnumValN(decc::Stage::Decoder, "decoder",
                               "the model in the decoder dialect, as built"),
                    clEnumValN(decc::Stage::DecoderOpt, "decoder-opt",
                               "after the decoder passes (fusions)"),
                    clEnumValN(decc::Stage::Lowered, "lowered",
                               "CPU kernels: scf / vector / memref"),
                    clEnumValN(decc::Stage::PTX, "ptx",
                               "the GPU kernels as PTX (--target=cuda)"),
                    clEnumValN(decc::Stage::LLVM, "llvm",
                               "LLVM IR after O3, with the manifest"),
                    clEnumValN(decc::Stage::Object, "obj",
                               "the object file (needs -o)"),
                    clEnumValN(decc::Stage::Executable, "exe",
                               "the linked executable (needs -o)")),
         cl::cat(deccCategory));

cl::opt<std::string> outputPath("o", cl::desc("output file ('-' for stdout)"),
                                cl::value_desc("file"), cl::init("-"),
                                cl::cat(deccCategory));

/// --dtype: a float type, or weight-only integers over f32 arithmetic.
enum class WeightFormat { F32, BF16, F16, Int8, Int4 };

cl::opt<WeightFormat> dtype(
    "dtype", cl::desc("element type of the weights"),
    cl::init(WeightFormat::F32),
    cl::values(clEnumValN(WeightFormat::F32, "f32", "float32"),
               clEnumValN(WeightFormat::BF16, "bf16", "bfloat16"),
               clEnumValN(WeightFormat::F16, "f16", "float16"),
               clEnumValN(WeightFormat::Int8, "int8",
                          "8-bit integers, a scale a group of columns, for "
                          "every projection and the LM head (--target cpu); "
                          "activations f32"),
               clEnumValN(WeightFormat::Int4, "int4",
                          "4-bit integers, a scale and a zero point a group "
                          "of columns (AWQ's format), for every projection "
                          "and the LM head (--target cpu); activations f32")),
    cl::cat(deccCategory));

cl::opt<int64_t> groupSize(
    "group-size",
    cl::desc("--dtype int8/int4: columns of a weight row that share a "
             "scale (default 32 for int8, 128 for int4)"),
    cl::init(0), cl::cat(deccCategory));

cl::opt<std::string> attention(
    "attention",
    cl::desc("attention backend: eager or flash (Hugging Face's sdpa, "
             "flash_attention_2/3 and flex_attention mean flash); default: "
             "the config's, else flash"),
    cl::value_desc("backend"), cl::cat(deccCategory));
cl::opt<std::string>
    cpu("cpu",
        cl::desc("CPU the code is generated for: an LLVM CPU name, or native "
                 "for this host (default x86-64-v3: any AVX2 machine)"),
        cl::init("x86-64-v3"), cl::cat(deccCategory));

cl::opt<bool> cpuBF16Dot(
    "cpu-bf16-dot",
    cl::desc("bf16 weights: round the inputs to bf16 and multiply with "
             "AVX512-BF16 dot products where --cpu has them (default true; "
             "=false widens the weights to f32 for FMAs)"),
    cl::init(true), cl::cat(deccCategory));

cl::opt<bool> cpuAMX(
    "cpu-amx",
    cl::desc("bf16 weights: a prompt's projections as AMX tile matmuls "
             "where --cpu has AMX-BF16 (default true, with --cpu-bf16-dot; "
             "=false keeps the AVX512-BF16 dot products)"),
    cl::init(decc::DriverOptions().cpuAMX), cl::cat(deccCategory));

cl::opt<int64_t> cpuSliceBytes(
    "cpu-slice-bytes",
    cl::desc("a prompt's projection whose block of tokens' input rows holds "
             "more bytes than this goes over its columns in slices (default "
             "24576: what stays in L1 beside the weights)"),
    cl::init(decc::DriverOptions().cpuSliceInputBytes), cl::Hidden,
    cl::cat(deccCategory));

cl::opt<int64_t> cpuSliceTokens(
    "cpu-slice-tokens",
    cl::desc("tokens whose sums a sliced prompt projection keeps at a time "
             "(default 512)"),
    cl::init(decc::DriverOptions().cpuSliceTokens), cl::Hidden,
    cl::cat(deccCategory));

cl::opt<int64_t> cpuDequantizePromptTokens(
    "cpu-dequantize-prompt-tokens",
    cl::desc("a call of at least this many tokens runs each quantized "
             "projection on its weights dequantized to f32 once (default "
             "32; 0: never)"),
    cl::init(decc::DriverOptions().cpuDequantizePromptTokens), cl::Hidden,
    cl::cat(deccCategory));

cl::opt<bool> cpuInt16Dots(
    "cpu-int16-dots",
    cl::desc("int4 decode dot products on inputs rounded to int16, one "
             "scale a group (vpmaddwd; default true; false: f32 products "
             "of the widened weights)"),
    cl::init(decc::DriverOptions().cpuInt16Dots), cl::cat(deccCategory));

cl::opt<int64_t> tensorParallel(
    "tensor-parallel",
    cl::desc("ranks to partition the model over (default 1); the "
             "executable runs as that many ranks under mpirun (CPU; a CUDA "
             "build's collectives are compiled, not yet run)"),
    cl::init(1), cl::cat(deccCategory));

cl::opt<std::string> target("target",
                            cl::desc("where the model runs: cpu (default) or "
                                     "cuda"),
                            cl::init("cpu"), cl::cat(deccCategory));

cl::opt<std::string> gpuArch("gpu-arch",
                             cl::desc("the GPU the kernels are built for "
                                      "(--target=cuda; default sm_90a)"),
                             cl::init("sm_90a"), cl::cat(deccCategory));

cl::opt<bool> gpuTensorCores(
    "gpu-tensor-cores",
    cl::desc("run prefill projections and flash attention on tensor cores "
             "(--target=cuda; default true; false: the decode kernels)"),
    cl::init(true), cl::cat(deccCategory));

cl::opt<int> gpuDecodeCluster(
    "gpu-decode-cluster",
    cl::desc("blocks of a thread-block cluster that merge a decode step's "
             "attention splits in distributed shared memory (--target=cuda; "
             "sm_90 or later; default 1: through global memory)"),
    cl::init(1), cl::cat(deccCategory));

cl::opt<int> gpuGemvUnitsPerBlock(
    "gpu-gemv-units-per-block",
    cl::desc("units of several warps a block of an int4 decode GEMV on tensor "
             "cores, which build its x fragments once (--target=cuda; a power "
             "of two; default 0: as many as leave a thread at most two runs "
             "of 16 columns to build)"),
    cl::init(0), cl::cat(deccCategory));

cl::opt<bool> gpuFusedQKV(
    "gpu-fused-qkv",
    cl::desc("an int4 QKV decode GEMV on tensor cores rotates and appends "
             "its results itself, without the epilogue kernel "
             "(--target=cuda; default true; false: the epilogue kernel "
             "rotates and appends)"),
    cl::init(true), cl::cat(deccCategory));

cl::opt<bool>
    gpuTrace("gpu-trace",
             cl::desc("every kernel records when its blocks start, wait on the "
                      "previous kernel and end; the executable prints the last "
                      "step's timeline (--target=cuda)"),
             cl::init(false), cl::cat(deccCategory));

cl::opt<std::string> dumpDir("dump-dir",
                             cl::desc("also write every stage into DIR"),
                             cl::value_desc("dir"), cl::cat(deccCategory));
} // namespace

int main(int argc, char **argv) {
  InitLLVM init(argc, argv);
  mlir::registerAsmPrinterCLOptions();
  mlir::registerMLIRContextCLOptions();
  mlir::registerPassManagerCLOptions();
  mlir::registerDefaultTimingManagerCLOptions();
  cl::ParseCommandLineOptions(argc, argv,
                              "decc: compile a decoder-only language model\n");

  decc::DriverOptions options;
  options.configPath = configPath;
  options.emit = emit;
  // `decc config.json -o model` builds the executable.
  if (emit.getNumOccurrences() == 0 && outputPath != "-")
    options.emit = decc::Stage::Executable;
  if (options.emit == decc::Stage::Executable && outputPath == "-") {
    WithColor::error(errs(), "decc") << "--emit=exe needs -o FILE\n";
    return 1;
  }
  options.cpu = cpu;
  options.cpuBF16Dot = cpuBF16Dot;
  options.cpuAMX = cpuAMX;
  options.cpuSliceInputBytes = cpuSliceBytes;
  options.cpuSliceTokens = cpuSliceTokens;
  options.cpuDequantizePromptTokens = cpuDequantizePromptTokens;
  options.cpuInt16Dots = cpuInt16Dots;
  if (tensorParallel < 1) {
    WithColor::error(errs(), "decc")
        << "--tensor-parallel must be 1 or more, got " << tensorParallel
        << "\n";
    return 1;
  }
  options.tensorParallel = tensorParallel;
  // The CPU lowering turns the collectives into calls of the runtime's,
  // which mpirun's ranks answer over Open MPI; the CUDA lowering into
  // collective launches of the plan, which the runtime does not run yet.
  if (target != "cpu" && target != "cuda") {
    WithColor::error(errs(), "decc")
        << "unknown --target '" << target << "'; accepted: cpu, cuda\n";
    return 1;
  }
  options.target = target;
  options.gpuArch = gpuArch;
  options.gpuTensorCores = gpuTensorCores;
  options.gpuDecodeCluster = gpuDecodeCluster;
  options.gpuTrace = gpuTrace;
  options.gpuFusedQKV = gpuFusedQKV;
  options.gpuGemvUnitsPerBlock = gpuGemvUnitsPerBlock;
  options.dumpDir = dumpDir;
  options.outputPath = outputPath;
  options.dtypeGiven = dtype.getNumOccurrences() > 0;
  switch (dtype) {
  case WeightFormat::F32:
  case WeightFormat::Int8:
  case WeightFormat::Int4:
    options.frontend.dtype = decc::contract::DType::F32;
    break;
  case WeightFormat::BF16:
    options.frontend.dtype = decc::contract::DType::BF16;
    break;
  case WeightFormat::F16:
    options.frontend.dtype = decc::contract::DType::F16;
    break;
  }
  if (cpuSliceBytes <= 0) {
    WithColor::error(errs(), "decc")
        << "--cpu-slice-bytes must be positive, got " << cpuSliceBytes << "\n";
    return 1;
  }
  if (cpuSliceTokens <= 0) {
    WithColor::error(errs(), "decc")
        << "--cpu-slice-tokens must be positive, got " << cpuSliceTokens
        << "\n";
    return 1;
  }
  if (cpuDequantizePromptTokens < 0) {
    WithColor::error(errs(), "decc")
        << "--cpu-dequantize-prompt-tokens must not be negative, got "
        << cpuDequantizePromptTokens << "\n";
    return 1;
  }
  bool quantized = dtype == WeightFormat::Int8 || dtype == WeightFormat::Int4;
  if (groupSize.getNumOccurrences() && !quantized) {
    WithColor::error(errs(), "decc")
        << "--group-size is for quantized weights (--dtype int8 or int4)\n";
    return 1;
  }
  if (quantized) {
    int64_t bits = dtype == WeightFormat::Int8 ? 8 : 4;
    if (groupSize.getNumOccurrences() && groupSize <= 0) {
      WithColor::error(errs(), "decc")
          << "--group-size must be positive, got " << groupSize << "\n";
      return 1;
    }
    options.frontend.quantBits = bits;
    options.frontend.groupSize =
        groupSize ? int64_t(groupSize) : (bits == 8 ? 32 : 128);
  }
  if (!attention.empty()) {
    options.attention = attention;
    if (!decc::contract::parseAttentionBackend(attention)) {
      WithColor::error(errs(), "decc")
          << "unknown --attention '" << attention
          << "'; accepted: " << decc::contract::attentionBackendSpellings()
          << "\n";
      return 1;
    }
  }

  mlir::MLIRContext context;
  mlir::DefaultTimingManager timing;
  mlir::applyDefaultTimingManagerCLOptions(timing);
  mlir::TimingScope root = timing.getRootScope();
  return decc::runDriver(options, context, root);
}
