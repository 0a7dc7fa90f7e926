//===- Driver.h - the stage pipeline behind decc ----------------*- C++ -*-===//

#ifndef DECC_DRIVER_DRIVER_H
#define DECC_DRIVER_DRIVER_H

#include "compiler/Frontend/ModelBuilder.h"

#include "mlir/Pass/PassManager.h"
#include "mlir/Support/Timing.h"

#include <string>

namespace decc {

/// The stages `--emit` can stop after, in pipeline order.
enum class Stage { Spec, Decoder, DecoderOpt };

struct DriverOptions {
  std::string configPath;
  Stage emit = Stage::Decoder;
  std::string outputPath = "-";
  FrontendOptions frontend;
  /// eager, flash (or a Hugging Face alias), or empty for the config's.
  std::string attention;
};

/// The decoder -> decoder pipeline decc runs (`--emit=decoder-opt`).
void buildDecoderPipeline(mlir::OpPassManager &pm,
                          const DriverOptions &options);

/// Runs config.json through the stages up to `options.emit` and writes that
/// stage. Errors go to stderr as "decc: error: ..."; returns the exit code.
int runDriver(const DriverOptions &options, mlir::MLIRContext &context,
              mlir::TimingScope &timing);

} // namespace decc

#endif // DECC_DRIVER_DRIVER_H
