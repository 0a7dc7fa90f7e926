//===- Driver.h - the stage pipeline behind decc ----------------*- C++ -*-===//

#ifndef DECC_DRIVER_DRIVER_H
#define DECC_DRIVER_DRIVER_H

#include "compiler/Frontend/ModelBuilder.h"

#include "mlir/Support/Timing.h"

#include <string>

namespace decc {

/// The stages `--emit` can stop after, in pipeline order.
enum class Stage { Spec, Decoder };

struct DriverOptions {
  std::string configPath;
  Stage emit = Stage::Decoder;
  std::string outputPath = "-";
  FrontendOptions frontend;
};

/// Runs config.json through the stages up to `options.emit` and writes that
/// stage. Errors go to stderr as "decc: error: ..."; returns the exit code.
int runDriver(const DriverOptions &options, mlir::MLIRContext &context,
              mlir::TimingScope &timing);

} // namespace decc

#endif // DECC_DRIVER_DRIVER_H
