//===- RegisterCaps.cpp - register caps kept only where ptxas meets them -===//

#include "compiler/Target/RegisterCaps.h"

#include "compiler/Target/CudaToolkit.h"

#include "llvm/ADT/STLExtras.h"
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

std::map<std::string, unsigned> kernelRegisters(const std::string &report) {
  std::map<std::string, unsigned> registers;
  llvm::StringRef rest(report), kernel;
  constexpr llvm::StringLiteral header = "Compiling entry function '";
  constexpr llvm::StringLiteral used = "Used ";
  while (!rest.empty()) {
    auto [line, next] = rest.split('\n');
    rest = next;
    if (size_t at = line.find(header); at != llvm::StringRef::npos) {
      kernel = line.substr(at + header.size()).split('\'').first;
      continue;
    }
    size_t at = line.find(used);
    if (kernel.empty() || at == llvm::StringRef::npos ||
        !line.contains(" registers"))
      continue;
    unsigned count = 0;
    if (!line.substr(at + used.size()).split(' ').first.getAsInteger(10, count))
      registers[kernel.str()] = count;
    kernel = {};
  }
  return registers;
}

unsigned blocksPerSM(unsigned registers, unsigned threads) {
  constexpr unsigned kRegisters = 65536, kUnit = 256, kMostBlocks = 32;
  unsigned warps = (threads + 31) / 32;
  unsigned perWarp = (registers * 32 + kUnit - 1) / kUnit * kUnit;
  if (warps == 0 || perWarp == 0)
    return kMostBlocks;
  return std::min(kMostBlocks, kRegisters / (perWarp * warps));
}

std::vector<OccupancyRequest>
unmetRequests(const std::string &report,
              const std::vector<OccupancyRequest> &requests) {
  std::map<std::string, unsigned> registers = kernelRegisters(report);
  std::vector<std::string> spilling = spillingKernels(report);
  std::vector<OccupancyRequest> unmet;
  for (const OccupancyRequest &request : requests) {
    auto it = registers.find(request.kernel);
    if (it == registers.end() ||
        blocksPerSM(it->second, request.threads) < request.blocks ||
        llvm::is_contained(spilling, request.kernel))
      unmet.push_back(request);
  }
  return unmet;
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
  AssembledKernels result{ptx, {}, {}};
  std::optional<std::string> cubin =
      assembleCubin(result.ptx, arch, error, &result.report);
  if (!cubin)
    return std::nullopt;
  // A kernel that spills without a cap leaves the PTX as it is.
  for (const std::string &kernel : spillingKernels(result.report))
    result.ptx = dropOccupancyCap(result.ptx, kernel);
  if (result.ptx != ptx) {
    cubin = assembleCubin(result.ptx, arch, error, &result.report);
    if (!cubin)
      return std::nullopt;
  }
  result.cubin = std::move(*cubin);
  return result;
}

} // namespace decc
