//===- RegisterCaps.cpp - register caps kept only where ptxas meets them -===//

#include "compiler/Target/RegisterCaps.h"

#include "compiler/Target/CudaToolkit.h"

#include "llvm/ADT/StringRef.h"

namespace decc {

std::map<std::string, KernelReport> readReport(const std::string &report) {
  // ptxas -v writes, per kernel:
  //   ptxas info    : Compiling entry function 'NAME' for 'sm_90a'
  //   ptxas info    : Function properties for NAME
  //       0 bytes stack frame, 20 bytes spill stores, 20 bytes spill loads
  //   ptxas info    : Used 128 registers, used 1 barriers, 12288 bytes smem
  constexpr llvm::StringLiteral entry = "Compiling entry function '";
  constexpr llvm::StringLiteral properties = "Function properties for ";
  constexpr llvm::StringLiteral used = "Used ";
  std::map<std::string, KernelReport> kernels;
  llvm::StringRef rest(report), kernel;
  while (!rest.empty()) {
    auto [line, next] = rest.split('\n');
    rest = next;
    if (size_t at = line.find(entry); at != llvm::StringRef::npos) {
      kernel = line.substr(at + entry.size()).split('\'').first;
      continue;
    }
    if (size_t at = line.find(properties); at != llvm::StringRef::npos) {
      kernel = line.substr(at + properties.size()).trim();
      continue;
    }
    if (kernel.empty())
      continue;
    unsigned count = 0;
    if (size_t at = line.find(" bytes spill stores");
        at != llvm::StringRef::npos) {
      if (!line.take_front(at).rsplit(' ').second.getAsInteger(10, count))
        kernels[kernel.str()].spillBytes = count;
    } else if (size_t at = line.find(used);
               at != llvm::StringRef::npos && line.contains(" registers")) {
      if (!line.substr(at + used.size())
               .split(' ')
               .first.getAsInteger(10, count))
        kernels[kernel.str()].registers = count;
    }
  }
  return kernels;
}

std::vector<std::string> spillingKernels(const std::string &report) {
  std::vector<std::string> spilling;
  for (const auto &[kernel, seen] : readReport(report))
    if (seen.spillBytes > 0)
      spilling.push_back(kernel);
  return spilling;
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
  std::map<std::string, KernelReport> kernels = readReport(report);
  std::vector<OccupancyRequest> unmet;
  for (const OccupancyRequest &request : requests) {
    auto it = kernels.find(request.kernel);
    if (it == kernels.end() || it->second.registers == 0 ||
        it->second.spillBytes > 0 ||
        blocksPerSM(it->second.registers, request.threads) < request.blocks)
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
