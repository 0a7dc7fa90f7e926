//===- CudaToolkit.cpp - where the CUDA toolkit is, and ptxas -------------===//

#include "compiler/Target/CudaToolkit.h"

#include "llvm/ADT/SmallString.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Program.h"
#include "llvm/Support/raw_ostream.h"

#include <cstdlib>
#include <vector>

namespace decc {

std::string cudaToolkitRoot() {
  for (const char *env : {"CUDA_HOME", "CUDA_PATH"})
    if (const char *dir = std::getenv(env))
      if (llvm::sys::fs::is_directory(dir))
        return dir;
  return "/usr/local/cuda";
}

std::optional<std::string> findPtxas() {
  std::string path = cudaToolkitRoot() + "/bin/ptxas";
  if (llvm::sys::fs::can_execute(path))
    return path;
  if (auto found = llvm::sys::findProgramByName("ptxas"))
    return *found;
  return std::nullopt;
}

std::optional<std::string> assembleCubin(const std::string &ptx,
                                         const std::string &arch,
                                         std::string &error,
                                         std::string *report) {
  std::optional<std::string> ptxas = findPtxas();
  if (!ptxas) {
    error = "ptxas not found (set CUDA_HOME to the CUDA toolkit)";
    return std::nullopt;
  }
  llvm::SmallString<128> in, out, log;
  llvm::sys::fs::createTemporaryFile("decc-kernels", "ptx", in);
  llvm::sys::fs::createTemporaryFile("decc-kernels", "cubin", out);
  llvm::sys::fs::createTemporaryFile("decc-kernels", "log", log);
  {
    std::error_code ec;
    llvm::raw_fd_ostream os(in, ec);
    os << ptx;
  }
  std::string archFlag = "-arch=" + arch;
  std::vector<llvm::StringRef> args = {*ptxas, archFlag, "-O3", in, "-o", out};
  if (report)
    args.push_back("-v");
  // ptxas's notes (where it adds wgmma fences, say) are kept out of decc's
  // output; they come with the error when it fails.
  std::optional<llvm::StringRef> redirects[] = {std::nullopt, log.str(),
                                                log.str()};
  std::string message;
  int rc = llvm::sys::ExecuteAndWait(*ptxas, args, std::nullopt, redirects, 0,
                                     0, &message);
  std::string cubin, notes;
  if (auto buffer = llvm::MemoryBuffer::getFile(log))
    notes = (*buffer)->getBuffer().str();
  if (report)
    *report = notes;
  if (rc == 0) {
    auto buffer = llvm::MemoryBuffer::getFile(out);
    if (buffer)
      cubin = (*buffer)->getBuffer().str();
  }
  llvm::sys::fs::remove(in);
  llvm::sys::fs::remove(out);
  llvm::sys::fs::remove(log);
  if (rc != 0 || cubin.empty()) {
    error = "ptxas rejected the kernels (" + *ptxas + " " + archFlag + ")" +
            (message.empty() ? "" : ": " + message) +
            (notes.empty() ? "" : "\n" + notes);
    return std::nullopt;
  }
  return cubin;
}

} // namespace decc
