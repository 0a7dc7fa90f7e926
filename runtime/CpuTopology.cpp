//===- CpuTopology.cpp - how many cores the process may use --------------===//

#include "runtime/CpuTopology.h"

#include <fstream>
#include <set>
#include <utility>

#include <sched.h>

namespace decc::rt {

namespace {

/// The integer in `path`, or -1.
long readNumber(const std::string &path) {
  std::ifstream in(path);
  long v = -1;
  if (!(in >> v))
    return -1;
  return v;
}

} // namespace

int physicalCores(const std::string &cpuDir, const std::vector<int> &cpus) {
  std::set<std::pair<long, long>> cores;
  for (int cpu : cpus) {
    std::string topology = cpuDir + "/cpu" + std::to_string(cpu) + "/topology/";
    long package = readNumber(topology + "physical_package_id");
    long core = readNumber(topology + "core_id");
    if (package < 0 || core < 0) {
      // Unknown: its own core (a negative key no real pair has).
      cores.insert({-1, -1 - long(cpu)});
      continue;
    }
    cores.insert({package, core});
  }
  return int(cores.size());
}

int defaultThreads() {
  cpu_set_t mask;
  CPU_ZERO(&mask);
  if (sched_getaffinity(0, sizeof(mask), &mask) != 0)
    return 1;
  std::vector<int> cpus;
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu)
    if (CPU_ISSET(cpu, &mask))
      cpus.push_back(cpu);
  int cores = physicalCores("/sys/devices/system/cpu", cpus);
  return cores > 0 ? cores : 1;
}

} // namespace decc::rt
