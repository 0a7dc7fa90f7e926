//===- Driver.cpp - the stage pipeline behind decc ------------------------===//

#include "compiler/Driver/Driver.h"
#include "compiler/Config/ConfigLoader.h"
#include "compiler/Transforms/Passes.h"

#include "mlir/IR/Verifier.h"
#include "mlir/Support/FileUtilities.h"
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
  select.backend = options.attention.empty() ? "config" : options.attention;
  pm.addPass(createSelectAttentionBackend(select));
}

int runDriver(const DriverOptions &options, MLIRContext &context,
              TimingScope &timing) {
  TimingScope configTiming = timing.nest("config");
  SpecOrError spec = loadModelSpec(options.configPath);
  configTiming.stop();
  if (!spec)
    return fail(spec.error);

  std::string error;
  std::unique_ptr<llvm::ToolOutputFile> output =
      openOutputFile(options.outputPath, &error);
  if (!output)
    return fail(error);

  if (options.emit == Stage::Spec) {
    output->os() << specToJson(*spec.spec);
    output->keep();
    return 0;
  }

  TimingScope frontendTiming = timing.nest("frontend");
  OwningOpRef<ModuleOp> module =
      buildDecoderModule(context, *spec.spec, options.frontend);
  frontendTiming.stop();
  TimingScope verifyTiming = timing.nest("verify");
  if (failed(verify(*module)))
    return fail("internal error: the decoder IR built for '" +
                options.configPath + "' does not verify");
  verifyTiming.stop();

  if (options.emit >= Stage::DecoderOpt) {
    PassManager pm(&context);
    if (failed(applyPassManagerCLOptions(pm)))
      return fail("invalid pass manager options");
    TimingScope passTiming = timing.nest("decoder passes");
    pm.enableTiming(passTiming);
    buildDecoderPipeline(pm, options);
    if (failed(pm.run(*module)))
      return fail("the decoder passes failed on '" + options.configPath + "'");
  }

  TimingScope printTiming = timing.nest("print");
  module->print(output->os());
  output->keep();
  return 0;
}

} // namespace decc
