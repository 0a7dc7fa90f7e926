//===- HostPerplexity.cpp - perplexity of a model over a text -------------===//

#include "host/HostPerplexity.h"

#include "runtime/Error.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>

namespace decc::host {

PerplexityResult perplexity(rt::Model &model,
                            const std::vector<int64_t> &tokens, int64_t window,
                            int64_t bos, bool progress) {
  // The first scored logit needs a context of window / 2 tokens, the last
  // predicts the window's last token: windows of 1 token score nothing.
  if (window < 2)
    throw rt::Error("--context must be at least 2 for --perplexity, got " +
                    std::to_string(window));
  if (window > model.maxContext())
    throw rt::Error("--context " + std::to_string(window) +
                    " is longer than the KV cache (" +
                    std::to_string(model.maxContext()) + " positions)");
  int64_t windows = int64_t(tokens.size()) / window;
  if (windows == 0)
    throw rt::Error("the text has " + std::to_string(tokens.size()) +
                    " tokens, fewer than one window of " +
                    std::to_string(window));
  int64_t vocab = model.manifest().vocab;
  int64_t first = window / 2;
  PerplexityResult r;
  double nll = 0;
  for (int64_t w = 0; w < windows; ++w) {
    std::vector<int64_t> ids(tokens.begin() + w * window,
                             tokens.begin() + (w + 1) * window);
    if (bos >= 0)
      ids[0] = bos;
    std::vector<float> logits = model.prefillLogits(ids);
    for (int64_t j = first; j + 1 < window; ++j) {
      const float *row = logits.data() + j * vocab;
      // log softmax in double: the sum of exp over a 92k vocabulary.
      double most = *std::max_element(row, row + vocab), sum = 0;
      for (int64_t v = 0; v < vocab; ++v)
        sum += std::exp(double(row[v]) - most);
      nll += most + std::log(sum) - double(row[ids[j + 1]]);
      ++r.scored;
    }
    if (progress)
      std::fprintf(stderr, "[%lld]%.4f,", (long long)(w + 1),
                   std::exp(nll / double(r.scored)));
  }
  if (progress)
    std::fprintf(stderr, "\n");
  r.windows = windows;
  r.meanNll = nll / double(r.scored);
  r.perplexity = std::exp(r.meanNll);
  return r;
}

} // namespace decc::host
