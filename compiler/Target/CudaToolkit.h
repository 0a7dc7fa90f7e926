//===- CudaToolkit.h - where the CUDA toolkit is, and ptxas ----*- C++ -*-===//
//
// The one place decc looks for the CUDA toolkit: gpu-module-to-binary links
// its libdevice, ptxas assembles the kernels.
//
//===----------------------------------------------------------------------===//

#ifndef DECC_TARGET_CUDATOOLKIT_H
#define DECC_TARGET_CUDATOOLKIT_H

#include <optional>
#include <string>

namespace decc {

/// $CUDA_HOME or $CUDA_PATH when it is a directory, else /usr/local/cuda.
std::string cudaToolkitRoot();

/// The toolkit's ptxas, else the first on PATH.
std::optional<std::string> findPtxas();

/// The cubin of `ptx` for `arch` (sm_90a, ...), assembled by ptxas;
/// nullopt with `error` set (ptxas's own messages included) when it fails.
/// With `report`, ptxas runs with -v and its notes (registers, spills, per
/// kernel) are stored there.
std::optional<std::string> assembleCubin(const std::string &ptx,
                                         const std::string &arch,
                                         std::string &error,
                                         std::string *report = nullptr);

} // namespace decc

#endif // DECC_TARGET_CUDATOOLKIT_H
