//===- Collectives.cpp - a tensor-parallel executable's ranks -------------===//

#include "runtime/Collectives.h"

#include "runtime/Error.h"

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dlfcn.h>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace decc::rt {

int64_t tensorParallelRanks(const contract::Manifest &manifest) {
  for (const contract::WeightSlot &slot : manifest.weights)
    for (const contract::WeightPart &part : slot.parts)
      if (part.shard)
        return part.shard->ranks(part.shape[size_t(part.shard->dim)]);
  return 1;
}

/// Open MPI's entry points and the handles its mpi.h names as macros
/// (MPI_COMM_WORLD is &ompi_mpi_comm_world, ...): its ABI, which Debian's
/// libmpi.so.40 keeps.
struct Collectives::Api {
  void *library = nullptr;
  using Handle = void *;
  int (*init)(int *, char ***) = nullptr;
  int (*initialized)(int *) = nullptr;
  int (*finalize)() = nullptr;
  int (*commRank)(Handle, int *) = nullptr;
  int (*commSize)(Handle, int *) = nullptr;
  int (*iallreduce)(const void *, void *, int, Handle, Handle, Handle,
                    Handle *) = nullptr;
  int (*iallgather)(const void *, int, Handle, void *, int, Handle, Handle,
                    Handle *) = nullptr;
  int (*test)(Handle *, int *, void *) = nullptr;
  int (*abort)(Handle, int) = nullptr;
  Handle world = nullptr, floatType = nullptr, byteType = nullptr,
         sum = nullptr;
  /// MPI_IN_PLACE in Open MPI.
  static void *inPlace() { return reinterpret_cast<void *>(1); }

  template <typename F> void bind(F &f, const char *name) {
    f = reinterpret_cast<F>(symbol(name));
  }
  Handle symbol(const char *name) {
    Handle h = dlsym(library, name);
    if (!h)
      throw Error(std::string("Open MPI's ") + name + " is missing from " +
                  "libmpi.so.40");
    return h;
  }
  void check(int code, const char *what) {
    if (code != 0)
      throw Error(std::string(what) + " failed (MPI error " +
                  std::to_string(code) + ")");
  }
};

namespace {
/// The job's, once joined; finalized at exit.
std::unique_ptr<Collectives> theJob;
} // namespace

Collectives *Collectives::current() { return theJob.get(); }

Collectives &Collectives::join() {
  if (!theJob)
    theJob.reset(new Collectives());
  return *theJob;
}

Collectives::Collectives() : api(std::make_unique<Api>()) {
  // RTLD_GLOBAL: Open MPI loads its components as plugins that resolve
  // against libmpi's symbols.
  api->library = dlopen("libmpi.so.40", RTLD_NOW | RTLD_GLOBAL);
  if (!api->library)
    throw Error("this executable is tensor-parallel and runs its ranks over "
                "Open MPI, which could not be loaded (libmpi.so.40: " +
                std::string(dlerror()) +
                "); install openmpi-bin and start it with mpirun -n N");
  api->bind(api->init, "MPI_Init");
  api->bind(api->initialized, "MPI_Initialized");
  api->bind(api->finalize, "MPI_Finalize");
  api->bind(api->commRank, "MPI_Comm_rank");
  api->bind(api->commSize, "MPI_Comm_size");
  api->bind(api->iallreduce, "MPI_Iallreduce");
  api->bind(api->iallgather, "MPI_Iallgather");
  api->bind(api->test, "MPI_Test");
  api->bind(api->abort, "MPI_Abort");
  api->world = api->symbol("ompi_mpi_comm_world");
  api->floatType = api->symbol("ompi_mpi_float");
  api->byteType = api->symbol("ompi_mpi_byte");
  api->sum = api->symbol("ompi_mpi_op_sum");
  int done = 0;
  api->check(api->initialized(&done), "MPI_Initialized");
  if (!done)
    api->check(api->init(nullptr, nullptr), "MPI_Init");
  int r = 0, n = 1;
  api->check(api->commRank(api->world, &r), "MPI_Comm_rank");
  api->check(api->commSize(api->world, &n), "MPI_Comm_size");
  rankValue = r;
  sizeValue = n;
}

Collectives::~Collectives() {
  if (api->finalize)
    api->finalize();
}

double Collectives::timeoutSeconds() {
  const char *env = std::getenv("DECC_COLLECTIVE_TIMEOUT");
  double v = env ? std::atof(env) : 0;
  return v > 0 ? v : 600;
}

void Collectives::wait(void *request, const char *what) {
  using Clock = std::chrono::steady_clock;
  Clock::time_point start = Clock::now();
  double limit = timeoutSeconds();
  for (;;) {
    int done = 0;
    api->check(api->test(&request, &done, nullptr), "MPI_Test");
    if (done)
      return;
    double waited = std::chrono::duration<double>(Clock::now() - start).count();
    if (waited > limit) {
      std::fprintf(stderr,
                   "error: rank %lld: %s waited %.3g s for the other ranks "
                   "(DECC_COLLECTIVE_TIMEOUT): one stopped or runs another "
                   "step; stopping the job\n",
                   (long long)rankValue, what, waited);
      api->abort(api->world, 1);
      std::_Exit(1);
    }
    // Spin while a step's collectives come microseconds apart; past a
    // millisecond the others are busy, so let the cores go.
    if (waited > 1e-3)
      std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
}

void Collectives::allReduce(const float *in, float *out, int64_t count) {
  // MPI counts are ints: a larger buffer goes in pieces.
  for (int64_t at = 0; at < count; at += INT_MAX) {
    int n = int(std::min<int64_t>(count - at, INT_MAX));
    const void *src = in == out ? Api::inPlace() : in + at;
    Api::Handle request = nullptr;
    api->check(api->iallreduce(src, out + at, n, api->floatType, api->sum,
                               api->world, &request),
               "MPI_Iallreduce");
    wait(request, "an all-reduce");
  }
}

void Collectives::allGather(const float *part, float *whole, int64_t rows,
                            int64_t cols) {
  int64_t each = rows * cols;
  if (each > INT_MAX)
    throw Error("a gather of " + std::to_string(each) +
                " floats a rank is more than MPI counts");
  std::vector<float> ranks(size_t(each * sizeValue));
  Api::Handle request = nullptr;
  api->check(api->iallgather(part, int(each), api->floatType, ranks.data(),
                             int(each), api->floatType, api->world, &request),
             "MPI_Iallgather");
  wait(request, "an all-gather");
  for (int64_t r = 0; r < sizeValue; ++r)
    for (int64_t i = 0; i < rows; ++i)
      std::memcpy(whole + i * sizeValue * cols + r * cols,
                  ranks.data() + (r * rows + i) * cols,
                  size_t(cols) * sizeof(float));
}

std::vector<char> Collectives::gatherBytes(const void *data, int64_t bytes,
                                           const char *what) {
  if (bytes > INT_MAX / sizeValue)
    throw Error(std::string(what) + ": " + std::to_string(bytes) +
                " bytes a rank are more than MPI counts");
  std::vector<char> all(size_t(bytes * sizeValue));
  Api::Handle request = nullptr;
  api->check(api->iallgather(data, int(bytes), api->byteType, all.data(),
                             int(bytes), api->byteType, api->world, &request),
             "MPI_Iallgather");
  wait(request, what);
  return all;
}

void Collectives::broadcast(void *data, int64_t bytes) {
  // A gather of every rank's bytes, of which rank 0's are kept: the few
  // bytes this is for (a communicator's id) do not need MPI_Bcast too.
  std::vector<char> all = gatherBytes(data, bytes, "a broadcast from rank 0");
  std::memcpy(data, all.data(), size_t(bytes));
}

bool Collectives::agree(uint64_t value) {
  std::vector<char> all =
      gatherBytes(&value, sizeof(value), "the ranks' check of what they run");
  for (int64_t r = 0; r < sizeValue; ++r)
    if (std::memcmp(all.data() + r * sizeof(value), &value, sizeof(value)))
      return false;
  return true;
}

} // namespace decc::rt
