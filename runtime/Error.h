//===- Error.h - runtime errors ---------------------------------*- C++ -*-===//
//
// The runtime reports bad input (files, checkpoints, prompts) by throwing
// Error with a complete message; the executable's main prints it and exits 1.
//
//===----------------------------------------------------------------------===//

#ifndef DECC_RUNTIME_ERROR_H
#define DECC_RUNTIME_ERROR_H

#include <stdexcept>
#include <string>

namespace decc::rt {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

} // namespace decc::rt

#endif // DECC_RUNTIME_ERROR_H
