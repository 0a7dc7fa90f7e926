//===- RegisterCaps.cpp - register caps kept only where ptxas meets them -===//

#include "compiler/Target/RegisterCaps.h"

#include "compiler/Target/CudaToolkit.h"

#include "llvm/ADT/StringRef.h"

namespace decc {

std::vector<std::string> spillingKernels(const std::string &report) {
  // ptxas -v writes, per kernel:
  //   ptxas info    : Function properties for NAME
  //       0 bytes stack frame, 20 bytes spill stores, 20 bytes spill loads
  std::vector<std::string> spilling;
  llvm::StringRef rest(report), kernel;
  constexpr llvm::StringLiteral header = "Function properties for ";
  while (!rest.empty()) {
    auto [line, next] = rest.split('\n');
    rest = next;
    if (size_t at = line.find(header); at != llvm::StringRef::npos) {
      kernel = line.substr(at + header.size()).trim();
      continue;
    }
    size_t at = line.find(" bytes spill stores");
    if (kernel.empty() || at == llvm::StringRef::npos)
      continue;
    llvm::StringRef count = line.take_front(at).rsplit(' ').second;
    unsigned bytes = 0;
    if (!count.getAsInteger(10, bytes) && bytes > 0)
      spilling.push_back(kernel.str());
    kernel = {};
  }
  return spilling;
}

std::string dropOccupancyCap(const std::string &ptx,
                             const std::string &kernel) {
  // An entry's directives stand between its parameter list and its body:
  //   .visible .entry NAME(
  //     .param ...
  //   )
  //   .maxntid 128, 1, 1
  //   .minnctapersm 4
  //   {
  size_t entry = ptx.find(".entry " + kernel + "(");
  if (entry == std::string::npos)
    return ptx;
  size_t body = ptx.find("\n{", entry);
  size_t cap = ptx.find(".minnctapersm", entry);
  if (cap == std::string::npos || cap > body)
    return ptx;
  size_t end = ptx.find('\n', cap);
  std::string out = ptx;
  out.erase(cap, end - cap + 1);
  return out;
}

std::optional<AssembledKernels> assembleWithoutSpills(const std::string &ptx,
                                                      const std::string &arch,
                                                      std::string &error) {
  AssembledKernels result{ptx, {}};
  std::string report;
  std::optional<std::string> cubin =
      assembleCubin(result.ptx, arch, error, &report);
  if (!cubin)
    return std::nullopt;
  // A kernel that spills without a cap leaves the PTX as it is.
  for (const std::string &kernel : spillingKernels(report))
    result.ptx = dropOccupancyCap(result.ptx, kernel);
  if (result.ptx != ptx) {
    cubin = assembleCubin(result.ptx, arch, error);
    if (!cubin)
      return std::nullopt;
  }
  result.cubin = std::move(*cubin);
  return result;
}

} // namespace decc
