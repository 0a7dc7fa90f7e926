//===- FuzzInput.h - a fuzz input as a file the readers can open -*- C++
//-*-===//
//
// The checkpoint and tokenizer readers take paths (they mmap or stream);
// an anonymous in-memory file gives them one without touching the disk.
//
//===----------------------------------------------------------------------===//

#ifndef DECC_FUZZ_FUZZINPUT_H
#define DECC_FUZZ_FUZZINPUT_H

#include <cstddef>
#include <cstdint>
#include <string>
#include <sys/mman.h>
#include <unistd.h>

namespace decc::fuzz {

/// `data` as an unlinked file; `path()` names it while this lives.
class MemoryFile {
public:
  MemoryFile(const uint8_t *data, size_t size)
      : fd(memfd_create("decc-fuzz", 0)) {
    for (size_t done = 0; fd >= 0 && done < size;) {
      ssize_t n = write(fd, data + done, size - done);
      if (n <= 0)
        break;
      done += size_t(n);
    }
  }
  ~MemoryFile() {
    if (fd >= 0)
      close(fd);
  }
  MemoryFile(const MemoryFile &) = delete;
  MemoryFile &operator=(const MemoryFile &) = delete;
  bool ok() const { return fd >= 0; }
  std::string path() const { return "/proc/self/fd/" + std::to_string(fd); }

private:
  int fd;
};

} // namespace decc::fuzz

#endif // DECC_FUZZ_FUZZINPUT_H
