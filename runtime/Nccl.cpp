//===- Nccl.cpp - a tensor-parallel CUDA build's collectives --------------===//

#include "runtime/Nccl.h"

#include "runtime/Collectives.h"
#include "runtime/Error.h"

#include <dlfcn.h>
#include <string>

namespace decc::rt {

/// NCCL's entry points and the few values of nccl.h they take (its ABI,
/// stable over NCCL 2): nccl.h is not needed to build the runtime.
struct Nccl::Api {
  using Result = int;
  using Comm = void *;
  struct UniqueId {
    char internal[128];
  };
  static constexpr int kFloat = 7, kSum = 0, kInProgress = 7;
  void *library = nullptr;
  Result (*getUniqueId)(UniqueId *) = nullptr;
  Result (*commInitRank)(Comm *, int, UniqueId, int) = nullptr;
  Result (*commDestroy)(Comm) = nullptr;
  Result (*commAbort)(Comm) = nullptr;
  Result (*commGetAsyncError)(Comm, Result *) = nullptr;
  Result (*allReduce)(const void *, void *, size_t, int, int, Comm,
                      void *) = nullptr;
  Result (*allGather)(const void *, void *, size_t, int, Comm,
                      void *) = nullptr;
  const char *(*getErrorString)(Result) = nullptr;

  template <typename F> void bind(F &f, const char *name) {
    f = reinterpret_cast<F>(dlsym(library, name));
    if (!f)
      throw Error(std::string("NCCL's ") + name + " is missing from " +
                  "libnccl.so.2");
  }
  /// Called only once every entry point is bound (getErrorString too).
  void check(Result r, const char *what) const {
    if (r != 0)
      throw Error(std::string("NCCL: ") + what +
                  " failed: " + getErrorString(r));
  }
};

Nccl::Nccl(Collectives &job) : api(std::make_unique<Api>()) {
  // The toolkit puts NCCL beside the CUDA runtime, which is not on every
  // loader path: that directory is tried after the loader's own.
  api->library = dlopen("libnccl.so.2", RTLD_NOW | RTLD_LOCAL);
  if (!api->library)
    api->library =
        dlopen("/usr/local/cuda/lib/libnccl.so.2", RTLD_NOW | RTLD_LOCAL);
  if (!api->library)
    throw Error("this model is split over GPUs (--tensor-parallel) and sums "
                "its activations over NCCL, which could not be loaded "
                "(libnccl.so.2: " +
                std::string(dlerror()) +
                "); put the directory holding it on LD_LIBRARY_PATH");
  api->bind(api->getUniqueId, "ncclGetUniqueId");
  api->bind(api->commInitRank, "ncclCommInitRank");
  api->bind(api->commDestroy, "ncclCommDestroy");
  api->bind(api->commAbort, "ncclCommAbort");
  api->bind(api->commGetAsyncError, "ncclCommGetAsyncError");
  api->bind(api->allReduce, "ncclAllReduce");
  api->bind(api->allGather, "ncclAllGather");
  api->bind(api->getErrorString, "ncclGetErrorString");
  Api::UniqueId id{};
  if (job.rank() == 0)
    api->check(api->getUniqueId(&id), "ncclGetUniqueId");
  job.broadcast(&id, sizeof(id));
  Api::Comm c = nullptr;
  api->check(api->commInitRank(&c, int(job.size()), id, int(job.rank())),
             "joining the ranks (ncclCommInitRank)");
  comm = c;
}

Nccl::~Nccl() {
  if (comm)
    api->commDestroy(comm);
}

void Nccl::allReduce(uint64_t buffer, int64_t count, void *stream) {
  void *p = reinterpret_cast<void *>(buffer);
  api->check(
      api->allReduce(p, p, size_t(count), Api::kFloat, Api::kSum, comm, stream),
      "an all-reduce (ncclAllReduce)");
}

void Nccl::allGather(uint64_t part, uint64_t whole, int64_t count,
                     void *stream) {
  api->check(api->allGather(reinterpret_cast<void *>(part),
                            reinterpret_cast<void *>(whole), size_t(count),
                            Api::kFloat, comm, stream),
             "an all-gather (ncclAllGather)");
}

const char *Nccl::asyncError() {
  Api::Result state = 0;
  if (api->commGetAsyncError(comm, &state) != 0)
    return "the communicator's state could not be read";
  if (state == 0 || state == Api::kInProgress)
    return nullptr;
  return api->getErrorString(state);
}

void Nccl::abort() {
  if (comm)
    api->commAbort(comm);
  comm = nullptr;
}

} // namespace decc::rt
