//===- HostPerplexity.h - perplexity of a model over a text -----*- C++ -*-===//
//
// `--perplexity FILE [--context N]`, scored as llama.cpp's perplexity tool
// scores it: the text's tokens cut into whole windows of N (the rest
// dropped), each window run from an empty cache with its first token
// replaced by BOS, and only the second half of each window scored (every
// token from N/2 + 1 on, predicted from at least N/2 tokens of context).
//
//===----------------------------------------------------------------------===//

#ifndef DECC_HOST_HOSTPERPLEXITY_H
#define DECC_HOST_HOSTPERPLEXITY_H

#include "runtime/Model.h"

#include <cstdint>
#include <vector>

namespace decc::host {

struct PerplexityResult {
  double perplexity = 0, meanNll = 0;
  int64_t windows = 0, scored = 0;
};

/// Scores `tokens` (the whole text, no BOS) in windows of `window` tokens;
/// `bos` < 0 keeps each window's first token. Prints the running
/// perplexity after each window on stderr as llama.cpp does
/// ("[1]46.2,[2]...") when `progress`.
PerplexityResult perplexity(rt::Model &model,
                            const std::vector<int64_t> &tokens, int64_t window,
                            int64_t bos, bool progress);

} // namespace decc::host

#endif // DECC_HOST_HOSTPERPLEXITY_H
