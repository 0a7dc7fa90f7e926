//===- Driver.h - the stage pipeline behind decc ----------------*- C++ -*-===//

#ifndef DECC_DRIVER_DRIVER_H
#define DECC_DRIVER_DRIVER_H

#include "compiler/Config/ModelSpec.h"
#include "compiler/Frontend/ModelBuilder.h"

#include "mlir/Pass/PassManager.h"
#include "mlir/Support/Timing.h"

#include <string>

namespace decc {

/// The stages `--emit` can stop after, in pipeline order.
enum class Stage {
  Spec,
  Decoder,
  DecoderOpt,
  Lowered,
  PTX,
  LLVM,
  Object,
  Executable
};

struct DriverOptions {
  std::string configPath;
  Stage emit = Stage::Decoder;
  std::string outputPath = "-";
  FrontendOptions frontend;
  /// Whether --dtype was given: a quantized checkpoint's config decides
  /// the weights' format otherwise.
  bool dtypeGiven = false;
  /// eager, flash (or a Hugging Face alias), or empty for the config's.
  std::string attention;
  /// The CPU the object is generated for (`native`: this host).
  std::string cpu = "x86-64-v3";
  /// bf16 projections as AVX512-BF16 dot products where `cpu` has them
  /// (convert-decoder-to-cpu's bf16-dot): 1.7-1.9x the bf16 prefill on a
  /// Zen 4 EPYC, the bf16 goldens held to the reference's bf16 run.
  bool cpuBF16Dot = true;
  /// A prompt's bf16 projections as AMX tile matmuls where `cpu` has
  /// AMX-BF16 (convert-decoder-to-cpu's amx; with cpuBF16Dot).
  bool cpuAMX = true;
  /// convert-decoder-to-cpu's slice-input-bytes: a prompt's block of
  /// tokens' input bytes past which its projections go in slices of
  /// columns (tests set it low to run the sliced kernels on small models).
  int64_t cpuSliceInputBytes = 24576;
  /// convert-decoder-to-cpu's slice-tokens: the tokens a sliced projection
  /// keeps the sums of at a time.
  int64_t cpuSliceTokens = 512;
  /// Prompts of this many tokens or more run quantized projections on
  /// their weights dequantized to f32 (0: never).
  int64_t cpuDequantizePromptTokens = 32;
  /// int4 decode dot products on inputs rounded to int16 (vpmaddwd) where
  /// the CPU has them: convert-decoder-to-cpu's int16-dots.
  bool cpuInt16Dots = true;
  /// Where the model runs: cpu, or cuda (kernels for `gpuArch`).
  std::string target = "cpu";
  std::string gpuArch = "sm_90a";
  /// Prefill on tensor cores (convert-decoder-to-gpu's tensor-cores).
  bool gpuTensorCores = true;
  /// Blocks a cluster of the decode attention (convert-decoder-to-gpu's
  /// decode-cluster; sm_90 on). 1: the splits merge through global memory,
  /// the default: clusters of 8 and 16 lost to it on four of five shapes on
  /// an H200 (docs/PERF.md, 2026-12-03 ninth session).
  int64_t gpuDecodeCluster = 1;
  /// Kernels record when they start, wait and end (convert-decoder-to-gpu's
  /// trace); the executable prints the last step's records.
  bool gpuTrace = false;
  /// An int4 QKV decode GEMV rotates and appends itself
  /// (convert-decoder-to-gpu's fused-append): every quantized golden
  /// passes with it, InternLM2-chat-7B's int4 decode 3.5% faster on an H100
  /// (docs/PERF.md).
  bool gpuFusedQKV = true;
  /// Units a block of an int4 tensor-core decode GEMV whose units have
  /// several warps (convert-decoder-to-gpu's gemv-units-per-block; 0: the
  /// plan's choice).
  int64_t gpuGemvUnitsPerBlock = 0;
  /// Ranks the model is partitioned over (decoder-tensor-parallel; 1:
  /// none). CPU executables run as mpirun's ranks; CUDA has no lowering of
  /// the collectives yet (stages up to decoder-opt).
  int64_t tensorParallel = 1;
  /// If set, every stage is also written there.
  std::string dumpDir;
};

/// The decoder -> decoder pipeline decc runs (`--emit=decoder-opt`).
void buildDecoderPipeline(mlir::OpPassManager &pm,
                          const DriverOptions &options);

/// Everything after the decoder passes: decoder -> CPU kernels -> LLVM
/// dialect (`--emit=lowered` stops after the first).
void buildCPULoweringPipeline(mlir::OpPassManager &pm, bool toLLVM,
                              bool bf16Dot, int64_t quantizedLanes,
                              int64_t sliceInputBytes, int64_t sliceTokens,
                              bool amx, int64_t dequantizePromptTokens,
                              bool int16Dots);

/// Runs config.json through the stages up to `options.emit` and writes that
/// stage. Errors go to stderr as "decc: error: ..."; returns the exit code.
int runDriver(const DriverOptions &options, mlir::MLIRContext &context,
              mlir::TimingScope &timing);

} // namespace decc

#endif // DECC_DRIVER_DRIVER_H
