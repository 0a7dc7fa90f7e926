//===- Nccl.h - a tensor-parallel CUDA build's collectives -----*- C++ -*-===//
//
// The ranks of a model compiled with --tensor-parallel N and --target cuda
// sum and gather their activations over NCCL: libnccl.so.2, loaded at run
// time like the driver (an executable of one rank needs no NCCL), its
// communicator set up once from the MPI job mpirun started (rank 0's
// ncclUniqueId shared over MPI). The collectives are enqueued on the
// step's stream, so a decode step's CUDA graph holds them between its
// kernels.
//
//===----------------------------------------------------------------------===//

#ifndef DECC_RUNTIME_NCCL_H
#define DECC_RUNTIME_NCCL_H

#include <cstdint>
#include <memory>

namespace decc::rt {

class Collectives;

class Nccl {
public:
  /// Loads NCCL and joins `job`'s ranks in a communicator on the current
  /// CUDA device; throws Error when NCCL cannot be loaded or set up.
  explicit Nccl(Collectives &job);
  ~Nccl();
  Nccl(const Nccl &) = delete;
  Nccl &operator=(const Nccl &) = delete;

  /// `count` floats at device address `buffer` summed over the ranks, in
  /// place, enqueued on `stream`.
  void allReduce(uint64_t buffer, int64_t count, void *stream);
  /// `count` floats at `part` from every rank into `whole` as [ranks][count],
  /// enqueued on `stream`.
  void allGather(uint64_t part, uint64_t whole, int64_t count, void *stream);
  /// Whether the communicator has failed (a rank died, a network error):
  /// its error message, or null while it is well.
  const char *asyncError();
  /// Stops the communicator's collectives that cannot finish (a rank that
  /// is gone), so that the stream waiting for them gets free.
  void abort();

private:
  struct Api;
  std::unique_ptr<Api> api;
  void *comm = nullptr;
};

} // namespace decc::rt

#endif // DECC_RUNTIME_NCCL_H
