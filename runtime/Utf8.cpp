//===- Utf8.cpp - UTF-8 checks for text in and text out -------------------===//

#include "runtime/Utf8.h"

namespace decc::rt {

int utf8SequenceLength(const std::string &s, size_t i) {
  unsigned char c = static_cast<unsigned char>(s[i]);
  int n;
  unsigned min;
  if (c < 0x80)
    return 1;
  if ((c & 0xE0) == 0xC0) {
    n = 2;
    min = 0x80;
  } else if ((c & 0xF0) == 0xE0) {
    n = 3;
    min = 0x800;
  } else if ((c & 0xF8) == 0xF0) {
    n = 4;
    min = 0x10000;
  } else {
    return 0;
  }
  unsigned cp = c & (0x7F >> n);
  for (int k = 1; k < n; ++k) {
    if (i + k >= s.size())
      return -1;
    unsigned char d = static_cast<unsigned char>(s[i + k]);
    if ((d & 0xC0) != 0x80)
      return 0;
    cp = (cp << 6) | (d & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
    return 0;
  return n;
}

size_t firstInvalidUtf8(const std::string &s) {
  for (size_t i = 0; i < s.size();) {
    int n = utf8SequenceLength(s, i);
    if (n <= 0)
      return i;
    i += size_t(n);
  }
  return std::string::npos;
}

std::string takePrintableUtf8(std::string &pending, bool flush) {
  static const char kReplacement[] = "\xEF\xBF\xBD";
  std::string out;
  size_t i = 0;
  while (i < pending.size()) {
    int n = utf8SequenceLength(pending, i);
    if (n > 0) {
      out.append(pending, i, size_t(n));
      i += size_t(n);
    } else if (n == 0) {
      out += kReplacement;
      ++i;
    } else if (flush) {
      out += kReplacement;
      i = pending.size();
    } else {
      break; // wait for the rest of the character
    }
  }
  pending.erase(0, i);
  return out;
}

} // namespace decc::rt
