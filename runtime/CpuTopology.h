//===- CpuTopology.h - the host CPU's cores and vendor ----------*- C++ -*-===//
//
// The default thread count of a CPU build: one thread per physical core the
// process may run on. Decode is bound by memory and prefill by the FMA units
// a core's SMT siblings share, so a second thread per core only adds
// barrier work. And what a build compiled for any x86-64-v3 CPU decides
// when it runs: how far ahead it prefetches its weights.
//
//===----------------------------------------------------------------------===//

#ifndef DECC_RUNTIME_CPUTOPOLOGY_H
#define DECC_RUNTIME_CPUTOPOLOGY_H

#include <cstdint>
#include <string>
#include <vector>

namespace decc::rt {

/// Distinct (package, core) pairs among `cpus`, read from
/// `cpuDir`/cpuN/topology/{physical_package_id,core_id}; a CPU whose
/// topology cannot be read counts as a core of its own. 0 for no CPUs.
int physicalCores(const std::string &cpuDir, const std::vector<int> &cpus);

/// physicalCores of the CPUs this process may run on (its affinity mask),
/// from /sys/devices/system/cpu; at least 1.
int defaultThreads();

/// The vendor CPUID names ("GenuineIntel", "AuthenticAMD"); empty off
/// x86.
std::string cpuVendor();

/// How far ahead of its loads a decode step prefetches its float and
/// half-precision weight rows on a CPU of `vendor` (contract::
/// kPrefetchFunction): 4096 bytes on Intel, whose hardware prefetchers stop
/// at every 4 KiB boundary even on the 2 MiB pages the weights sit on; 0
/// elsewhere (the rows being loaded), where AMD's streamed them faster
/// alone (docs/PERF.md).
int64_t weightPrefetchBytesFor(const std::string &vendor);

} // namespace decc::rt

#endif // DECC_RUNTIME_CPUTOPOLOGY_H
