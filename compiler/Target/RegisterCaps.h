//===- RegisterCaps.h - caps kept only where ptxas meets them -*- C++ -*-===//
//
// A kernel may ask ptxas for an occupancy (`.minnctapersm`, from
// nvvm.minctasm) that buys more blocks an SM only when ptxas fits the
// kernel in the registers without spilling; whether it does is known only
// after ptxas has run. The kernels are assembled once with every cap, and
// a kernel that spilled under its cap is assembled again without it.
//
//===----------------------------------------------------------------------===//

#ifndef DECC_TARGET_REGISTERCAPS_H
#define DECC_TARGET_REGISTERCAPS_H

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

struct AssembledKernels {
  std::string ptx; // as assembled: without the caps that spilled
  std::string cubin;
};

/// `ptx` assembled for `arch`, every `.minnctapersm` that makes its kernel
/// spill dropped; nullopt with `error` set when ptxas fails.
std::optional<AssembledKernels> assembleWithoutSpills(const std::string &ptx,
                                                      const std::string &arch,
                                                      std::string &error);

} // namespace decc

#endif // DECC_TARGET_REGISTERCAPS_H
