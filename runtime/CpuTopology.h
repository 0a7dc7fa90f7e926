//===- CpuTopology.h - how many cores the process may use -------*- C++ -*-===//
//
// The default thread count of a CPU build: one thread per physical core the
// process may run on. Decode is bound by memory and prefill by the FMA units
// a core's SMT siblings share, so a second thread per core only adds
// barrier work.
//
//===----------------------------------------------------------------------===//

#ifndef DECC_RUNTIME_CPUTOPOLOGY_H
#define DECC_RUNTIME_CPUTOPOLOGY_H

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

} // namespace decc::rt

#endif // DECC_RUNTIME_CPUTOPOLOGY_H
