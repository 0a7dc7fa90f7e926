//===- GPUKernels.cpp - the lowered kernels to PTX and a cubin ------------===//

#include "compiler/Driver/GPUKernels.h"

#include "compiler/Conversion/Passes.h"
#include "compiler/Target/CudaToolkit.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"

using namespace mlir;

namespace decc {

namespace {

/// The PTX of the kernels, taken out of the module's gpu.binary (which is
/// then erased).
std::string takePTX(ModuleOp module) {
  std::string ptx;
  SmallVector<gpu::BinaryOp> binaries;
  module.walk([&](gpu::BinaryOp op) { binaries.push_back(op); });
  for (gpu::BinaryOp op : binaries) {
    for (Attribute object : op.getObjects())
      ptx += cast<gpu::ObjectAttr>(object).getObject().getValue().str();
    op.erase();
  }
  return ptx;
}

/// The kernels' occupancy requests, taken off their gpu.func (the
/// translation does not know the attribute).
std::vector<OccupancyRequest> takeOccupancyRequests(ModuleOp module) {
  std::vector<OccupancyRequest> requests;
  module.walk([&](gpu::GPUFuncOp func) {
    auto request = dyn_cast_or_null<DenseI32ArrayAttr>(
        func->removeAttr(kOccupancyRequestAttr));
    if (request && request.size() == 2)
      requests.push_back(
          {func.getName().str(), unsigned(request[0]), unsigned(request[1])});
  });
  return requests;
}

/// The launch bounds of `requests` on their kernels' gpu.func.
void addLaunchBounds(ModuleOp module,
                     const std::vector<OccupancyRequest> &requests) {
  MLIRContext *ctx = module.getContext();
  module.walk([&](gpu::GPUFuncOp func) {
    for (const OccupancyRequest &request : requests)
      if (func.getName() == request.kernel) {
        func->setAttr(
            "nvvm.maxntid",
            DenseI32ArrayAttr::get(ctx, {int32_t(request.threads), 1, 1}));
        func->setAttr("nvvm.minctasm",
                      IntegerAttr::get(IntegerType::get(ctx, 32),
                                       int32_t(request.blocks)));
      }
  });
}

} // namespace

std::optional<AssembledKernels> compileGPUKernels(ModuleOp module,
                                                  const std::string &arch,
                                                  RunPassesFn runPasses,
                                                  std::string &error) {
  std::vector<OccupancyRequest> requests = takeOccupancyRequests(module);
  OwningOpRef<ModuleOp> unbounded;
  if (!requests.empty())
    unbounded = module.clone();
  // The kernels of `kernels` as assembled: without the register caps that
  // ptxas could meet only by spilling.
  auto assemble = [&](ModuleOp kernels,
                      StringRef name) -> std::optional<AssembledKernels> {
    if (!runPasses(kernels, name, [&](OpPassManager &pm) {
          buildGPUToPTXPipeline(pm, arch, cudaToolkitRoot());
        })) {
      error.clear(); // the passes' diagnostics said why
      return std::nullopt;
    }
    return assembleWithoutSpills(takePTX(kernels), arch, error);
  };
  std::optional<AssembledKernels> assembled =
      assemble(module, "kernels to PTX");
  if (!assembled)
    return std::nullopt;
  // The requests the kernels fall short of, lowered again with launch
  // bounds: kept where every such kernel then holds the blocks it asked
  // for without spilling (under its cap, or under .maxntid alone where the
  // cap spilled and was dropped), else tried again without those that do
  // not. Launch bounds in the IR also let LLVM narrow the kernel's index
  // arithmetic, which is what lets ptxas meet some caps without spilling.
  std::vector<OccupancyRequest> tried =
      unmetRequests(assembled->report, requests);
  while (!tried.empty()) {
    OwningOpRef<ModuleOp> bounded = unbounded->clone();
    addLaunchBounds(*bounded, tried);
    std::optional<AssembledKernels> again =
        assemble(*bounded, "kernels to PTX with occupancy bounds");
    if (!again)
      return std::nullopt;
    std::vector<OccupancyRequest> unmet = unmetRequests(again->report, tried);
    if (unmet.empty())
      return again;
    llvm::erase_if(tried, [&](const OccupancyRequest &request) {
      return llvm::any_of(unmet, [&](const OccupancyRequest &u) {
        return u.kernel == request.kernel;
      });
    });
  }
  return assembled;
}

} // namespace decc
