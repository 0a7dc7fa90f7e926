//===- ObjectEmitter.cpp - LLVM dialect -> LLVM IR -> object file ---------===//

#include "compiler/Target/ObjectEmitter.h"

#include "contract/Contract.h"

#include "mlir/ExecutionEngine/OptUtils.h"
#include "mlir/Target/LLVMIR/Dialect/Builtin/BuiltinToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Dialect/LLVMIR/LLVMToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Dialect/OpenMP/OpenMPToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Export.h"

#include "llvm/IR/IRBuilder.h"
#include "llvm/IR/LegacyPassManager.h"
#include "llvm/MC/MCSubtargetInfo.h"
#include "llvm/MC/TargetRegistry.h"
#include "llvm/Passes/PassBuilder.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/TargetSelect.h"
#include "llvm/Support/raw_ostream.h"
#include "llvm/TargetParser/Host.h"
#include "llvm/TargetParser/SubtargetFeature.h"
#include "llvm/Transforms/Instrumentation/AddressSanitizer.h"

namespace decc {

std::unique_ptr<llvm::TargetMachine>
createTargetMachine(const CPUTarget &target, std::string &error) {
  llvm::InitializeNativeTarget();
  llvm::InitializeNativeTargetAsmPrinter();
  llvm::Triple triple(llvm::sys::getDefaultTargetTriple());
  const llvm::Target *t = llvm::TargetRegistry::lookupTarget(triple, error);
  if (!t)
    return nullptr;
  std::string cpu = target.cpu;
  std::string features;
  if (cpu == "native") {
    // Everything this host has; the object will not run on older CPUs.
    cpu = llvm::sys::getHostCPUName().str();
    llvm::SubtargetFeatures f;
    for (auto &feature : llvm::sys::getHostCPUFeatures())
      f.AddFeature(feature.first(), feature.second);
    features = f.getString();
  } else if (!std::unique_ptr<llvm::MCSubtargetInfo>(
                  t->createMCSubtargetInfo(triple, cpu, ""))
                  ->isCPUStringValid(cpu)) {
    error = "unknown CPU '" + cpu + "' for " + triple.str() +
            " (try x86-64-v3, x86-64-v4, native or an LLVM CPU name)";
    return nullptr;
  }
  llvm::TargetOptions options;
  std::unique_ptr<llvm::TargetMachine> machine(
      t->createTargetMachine(triple, cpu, features, options, llvm::Reloc::PIC_,
                             std::nullopt, llvm::CodeGenOptLevel::Aggressive));
  if (!machine)
    error = "cannot create a target machine for " + cpu;
  return machine;
}

bool cpuHasFeature(const CPUTarget &target, llvm::StringRef feature) {
  std::string error;
  std::unique_ptr<llvm::TargetMachine> machine =
      createTargetMachine(target, error);
  return machine &&
         machine->getMCSubtargetInfo()->checkFeatures(("+" + feature).str());
}

/// Where clang puts it (the end of the optimization pipeline): ASan's
/// checks on the optimized accesses, every defined function marked
/// sanitize_address.
static void instrumentForAddressSanitizer(llvm::Module &module,
                                          llvm::TargetMachine &machine) {
  for (llvm::Function &f : module)
    if (!f.isDeclaration())
      f.addFnAttr(llvm::Attribute::SanitizeAddress);
  llvm::LoopAnalysisManager lam;
  llvm::FunctionAnalysisManager fam;
  llvm::CGSCCAnalysisManager cgam;
  llvm::ModuleAnalysisManager mam;
  llvm::PassBuilder pb(&machine);
  pb.registerModuleAnalyses(mam);
  pb.registerCGSCCAnalyses(cgam);
  pb.registerFunctionAnalyses(fam);
  pb.registerLoopAnalyses(lam);
  pb.crossRegisterProxies(lam, fam, cgam, mam);
  llvm::ModulePassManager mpm;
  mpm.addPass(llvm::AddressSanitizerPass(llvm::AddressSanitizerOptions{}));
  mpm.run(module, mam);
}

std::unique_ptr<llvm::Module>
translateToLLVMIR(mlir::ModuleOp module, llvm::LLVMContext &context,
                  llvm::TargetMachine &machine, const std::string &manifest,
                  const std::string *gpuImage, std::string &error,
                  bool addressSanitizer) {
  mlir::DialectRegistry registry;
  mlir::registerBuiltinDialectTranslation(registry);
  mlir::registerLLVMDialectTranslation(registry);
  mlir::registerOpenMPDialectTranslation(registry);
  module->getContext()->appendDialectRegistry(registry);

  std::unique_ptr<llvm::Module> llvmModule =
      mlir::translateModuleToLLVMIR(module, context, "decc");
  if (!llvmModule) {
    error = "translation to LLVM IR failed";
    return nullptr;
  }
  llvmModule->setTargetTriple(machine.getTargetTriple());
  llvmModule->setDataLayout(machine.createDataLayout());

  // const char *decc_manifest(void): the runtime reads the weight layout
  // and the model's constants from here.
  llvm::Constant *text =
      llvm::ConstantDataArray::getString(context, manifest, true);
  auto *global = new llvm::GlobalVariable(*llvmModule, text->getType(), true,
                                          llvm::GlobalValue::PrivateLinkage,
                                          text, "decc_manifest_text");
  auto *fn = llvm::Function::Create(
      llvm::FunctionType::get(llvm::PointerType::getUnqual(context), false),
      llvm::GlobalValue::ExternalLinkage, contract::kManifestFunction,
      *llvmModule);
  llvm::IRBuilder<> ir(llvm::BasicBlock::Create(context, "entry", fn));
  ir.CreateRet(global);

  if (gpuImage) {
    // const void *decc_gpu_image(unsigned long *size): the kernels' cubin
    // (or PTX), NUL-terminated as cuModuleLoadData wants PTX.
    llvm::Constant *bytes = llvm::ConstantDataArray::getString(
        context, *gpuImage, /*AddNull=*/true);
    auto *image = new llvm::GlobalVariable(*llvmModule, bytes->getType(), true,
                                           llvm::GlobalValue::PrivateLinkage,
                                           bytes, "decc_gpu_image_bytes");
    image->setAlignment(llvm::Align(64));
    auto *sizeType = llvm::Type::getInt64Ty(context);
    auto *ptrType = llvm::PointerType::getUnqual(context);
    auto *get = llvm::Function::Create(
        llvm::FunctionType::get(ptrType, {ptrType}, false),
        llvm::GlobalValue::ExternalLinkage, contract::kGPUImageFunction,
        *llvmModule);
    llvm::IRBuilder<> b(llvm::BasicBlock::Create(context, "entry", get));
    b.CreateStore(llvm::ConstantInt::get(sizeType, gpuImage->size()),
                  get->getArg(0));
    b.CreateRet(image);
  }

  // Attach the CPU to every function so the optimizer sees its vector width.
  for (llvm::Function &f : *llvmModule) {
    if (f.isDeclaration())
      continue;
    f.addFnAttr("target-cpu", machine.getTargetCPU());
    if (!machine.getTargetFeatureString().empty())
      f.addFnAttr("target-features", machine.getTargetFeatureString());
  }
  if (llvm::Error e =
          mlir::makeOptimizingTransformer(3, 0, &machine)(llvmModule.get())) {
    error = llvm::toString(std::move(e));
    return nullptr;
  }
  if (addressSanitizer)
    instrumentForAddressSanitizer(*llvmModule, machine);
  return llvmModule;
}

bool emitObjectFile(llvm::Module &module, llvm::TargetMachine &machine,
                    const std::string &path, std::string &error) {
  std::error_code ec;
  llvm::raw_fd_ostream os(path, ec, llvm::sys::fs::OF_None);
  if (ec) {
    error = "cannot write '" + path + "': " + ec.message();
    return false;
  }
  llvm::legacy::PassManager codegen;
  if (machine.addPassesToEmitFile(codegen, os, nullptr,
                                  llvm::CodeGenFileType::ObjectFile)) {
    error = "the target cannot emit object files";
    return false;
  }
  codegen.run(module);
  return true;
}

} // namespace decc
