//===- RegisterCaps.h - caps kept only where ptxas meets them -*- C++ -*-===//
//
// A kernel may ask ptxas for an occupancy (`.minnctapersm`, from
// nvvm.minctasm) that buys more blocks an SM only when ptxas fits the
// kernel in the registers without spilling; whether it does is known only
// after ptxas has run. The kernels are assembled once with every cap, and
// a kernel that spilled under its cap is assembled again without it.
//
// A kernel may also ask for an occupancy only where it raises its own (an
// OccupancyRequest): a cap above what a kernel needs makes ptxas spend the
// registers it allows (a decode GEMV of 96 registers, 5 blocks an SM, took
// 128 and 4 blocks under a cap of 4). The driver lowers such kernels
// without bounds, and again with them where the first assembly holds
// fewer blocks than asked (launch bounds in the IR also let LLVM narrow
// the kernel's index arithmetic, which is what lets ptxas meet some caps
// without spilling); the second is kept where ptxas met every cap.
//
//===----------------------------------------------------------------------===//

#ifndef DECC_TARGET_REGISTERCAPS_H
#define DECC_TARGET_REGISTERCAPS_H

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace decc {

/// The kernels that ptxas's -v report says spill registers (a non-zero
/// "bytes spill stores" in the kernel's function properties).
std::vector<std::string> spillingKernels(const std::string &report);

/// `ptx` with the `.minnctapersm` directive of `kernel`'s entry removed
/// (unchanged when the entry has none).
std::string dropOccupancyCap(const std::string &ptx, const std::string &kernel);

/// What ptxas's -v report says of a kernel.
struct KernelReport {
  unsigned registers = 0;  // a thread ("Used N registers")
  unsigned spillBytes = 0; // "N bytes spill stores"
};
/// Every kernel of ptxas's -v report, by name.
std::map<std::string, KernelReport> readReport(const std::string &report);

/// The blocks of `threads` threads that an sm_80/sm_90 SM's 64K registers
/// hold at `registers` a thread (allocated a warp at a time, in units of
/// 256 registers).
unsigned blocksPerSM(unsigned registers, unsigned threads);

/// `blocks` blocks of `threads` threads an SM for `kernel`.
struct OccupancyRequest {
  std::string kernel;
  unsigned threads, blocks;
};

/// The `requests` that the assembly `report` describes does not meet: the
/// kernel holds fewer blocks an SM, or spills.
std::vector<OccupancyRequest>
unmetRequests(const std::string &report,
              const std::vector<OccupancyRequest> &requests);

struct AssembledKernels {
  std::string ptx; // as assembled: without the caps that spilled
  std::string cubin;
  std::string report; // ptxas -v on `ptx`
};

/// `ptx` assembled for `arch`, every `.minnctapersm` that makes its kernel
/// spill dropped; nullopt with `error` set when ptxas fails.
std::optional<AssembledKernels> assembleWithoutSpills(const std::string &ptx,
                                                      const std::string &arch,
                                                      std::string &error);

} // namespace decc

#endif // DECC_TARGET_REGISTERCAPS_H
