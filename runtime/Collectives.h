//===- Collectives.h - a tensor-parallel executable's ranks ----*- C++ -*-===//
//
// The ranks mpirun starts for a model compiled with --tensor-parallel N,
// over Open MPI (Debian's libmpi.so.40, loaded at run time like the CUDA
// driver: an executable of one rank needs no MPI installed). The generated
// code calls the collectives through contract::kAllReduceFunction and
// kAllGatherFunction, which the host answers with the job's Collectives.
//
//===----------------------------------------------------------------------===//

#ifndef DECC_RUNTIME_COLLECTIVES_H
#define DECC_RUNTIME_COLLECTIVES_H

#include "contract/Manifest.h"

#include <cstdint>
#include <memory>
#include <vector>

namespace decc::rt {

/// The ranks a manifest's shards are split over (1: no tensor
/// parallelism).
int64_t tensorParallelRanks(const contract::Manifest &manifest);

class Collectives {
public:
  /// Joins the job mpirun started (MPI_Init), once a process; throws Error
  /// when Open MPI cannot be loaded.
  static Collectives &join();
  /// The job's, or null before join().
  static Collectives *current();
  ~Collectives();

  int64_t rank() const { return rankValue; }
  int64_t size() const { return sizeValue; }
  /// out = the sum over ranks of `count` floats at `in` (in == out allowed).
  void allReduce(const float *in, float *out, int64_t count);
  /// Rank r's [rows, cols] `part` becomes columns [r cols, (r + 1) cols) of
  /// every rank's [rows, size x cols] `whole`.
  void allGather(const float *part, float *whole, int64_t rows, int64_t cols);
  /// Rank 0's `bytes` bytes at `data` into every rank's `data`.
  void broadcast(void *data, int64_t bytes);
  /// Whether every rank passed the same `value` (a fingerprint of what it
  /// runs).
  bool agree(uint64_t value);

  /// Seconds a collective waits for the other ranks before it stops the
  /// job (DECC_COLLECTIVE_TIMEOUT, default 600): a rank that died or took
  /// another path must not leave the others waiting for ever.
  static double timeoutSeconds();

private:
  Collectives();
  struct Api;
  /// Waits for the non-blocking collective `request`, up to timeoutSeconds;
  /// past it, says so and aborts every rank (MPI_Abort).
  void wait(void *request, const char *what);
  /// Every rank's `bytes` bytes at `data`, in rank order (`what` names the
  /// exchange in errors).
  std::vector<char> gatherBytes(const void *data, int64_t bytes,
                                const char *what);
  std::unique_ptr<Api> api;
  int64_t rankValue = 0, sizeValue = 1;
};

} // namespace decc::rt

#endif // DECC_RUNTIME_COLLECTIVES_H
