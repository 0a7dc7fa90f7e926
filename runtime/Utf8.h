//===- Utf8.h - UTF-8 checks for text in and text out -----------*- C++ -*-===//

#ifndef DECC_RUNTIME_UTF8_H
#define DECC_RUNTIME_UTF8_H

#include <cstddef>
#include <string>

namespace decc::rt {

/// Length of the UTF-8 sequence starting at `s[i]` if it is complete and
/// valid; 0 if it is invalid; -1 if it is a valid but incomplete prefix that
/// ends the string.
int utf8SequenceLength(const std::string &s, size_t i);

/// Offset of the first byte that is not valid UTF-8, or npos.
size_t firstInvalidUtf8(const std::string &s);

/// Splits `pending` into the text that can be printed now and the bytes
/// that may still become a character: complete characters are moved to the
/// result, invalid bytes become U+FFFD, an incomplete tail stays in
/// `pending` (all of it when `flush`, as U+FFFD).
std::string takePrintableUtf8(std::string &pending, bool flush);

} // namespace decc::rt

#endif // DECC_RUNTIME_UTF8_H
