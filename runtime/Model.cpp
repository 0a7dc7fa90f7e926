//===- Model.cpp - a compiled model with its weights and KV cache ---------===//

#include "runtime/Model.h"

#include "runtime/Error.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <numeric>

namespace decc::rt {

namespace {

double now() {
  using namespace std::chrono;
  return duration<double>(steady_clock::now().time_since_epoch()).count();
}

} // namespace

Model::Model(Manifest manifest, int64_t maxContext,
             const std::function<std::unique_ptr<Backend>(const Manifest &)>
                 &makeBackend)
    : m(std::move(manifest)), context(maxContext) {
  if (context <= 0)
    throw Error("--max-context must be positive, got " +
                std::to_string(context));
  // Every size the backends allocate from the manifest and the context,
  // checked once here so that no product later wraps.
  if (!m.cache.checkedBytes(context))
    throw Error("the KV cache for --max-context " + std::to_string(context) +
                " would take more than 2^63 bytes");
  if (m.plan)
    for (const contract::PlanBuffer &b : m.plan->buffers)
      if (!b.checkedBytes(context))
        throw Error("the buffer '" + b.name + "' for --max-context " +
                    std::to_string(context) +
                    " would take more than 2^63 bytes");
  backend = makeBackend(m);
}

void Model::forward(const std::vector<int64_t> &tokens, int64_t start,
                    int64_t rows, float *logits) {
  if (imageToken < 0) {
    backend->forward(tokens, start, rows, logits);
    return;
  }
  // The decc_forward contract: id vocab + j embeds as image row j. Calls
  // come in sequence order, a new sequence (or a re-encode) from 0.
  if (start == 0)
    nextImageRow = 0;
  std::vector<int64_t> ids(tokens);
  for (int64_t &id : ids)
    if (id == imageToken && nextImageRow < imageRowCount)
      id = m.vocab + nextImageRow++;
  backend->forward(ids, start, rows, logits);
}

void Model::forwardPaged(const PagedCall &call, float *logits) {
  if (!call.greedy || backend->greedyOnDevice()) {
    if (call.rows && !logits && !call.greedy)
      throw Error("a paged forward call asks for neither logits nor tokens");
    backend->forwardPaged(call, logits);
    return;
  }
  // The backend gives only logits: the greedy tokens from them.
  std::vector<float> own;
  if (!logits) {
    own.resize(size_t(call.rows * m.vocab));
    logits = own.data();
  }
  PagedCall plain = call;
  plain.greedy = nullptr;
  backend->forwardPaged(plain, logits);
  argmaxRows(logits, call.rows, m.vocab, call.greedy);
}

void Model::addImage(int64_t token, const std::vector<float> &rows) {
  if (!m.vision)
    throw Error("this model has no vision encoder");
  if (token < 0 || token >= m.vocab)
    throw Error("the image token " + std::to_string(token) +
                " is outside the vocabulary (" + std::to_string(m.vocab) +
                " tokens)");
  imageToken = token;
  image.insert(image.end(), rows.begin(), rows.end());
  imageRowCount = int64_t(image.size()) / m.vision->hidden;
  backend->setImageRows(image.data(), imageRowCount);
}

void Model::checkPrompt(const std::vector<int64_t> &prompt,
                        int64_t maxNewTokens) const {
  if (prompt.empty())
    throw Error("the prompt is empty");
  for (size_t i = 0; i < prompt.size(); ++i)
    if (prompt[i] < 0 || prompt[i] >= m.vocab)
      throw Error("token id " + std::to_string(prompt[i]) + " at position " +
                  std::to_string(i) + " is outside the vocabulary (" +
                  std::to_string(m.vocab) + " tokens)");
  if (int64_t(prompt.size()) > context)
    throw Error("the prompt has " + std::to_string(prompt.size()) +
                " tokens but --max-context is " + std::to_string(context));
  if (imageToken >= 0) {
    int64_t n = std::count(prompt.begin(), prompt.end(), imageToken);
    if (n != imageRowCount)
      throw Error("the prompt has " + std::to_string(n) + " image tokens (id " +
                  std::to_string(imageToken) + ") but the image gives " +
                  std::to_string(imageRowCount) + " rows");
  }
  // Compared without the sum, which a huge --max-new-tokens overflows.
  if (maxNewTokens - 1 > context - int64_t(prompt.size())) {
    bool overflows = maxNewTokens - 1 > std::numeric_limits<int64_t>::max() -
                                            int64_t(prompt.size());
    std::string needed =
        overflows
            ? "more than " + std::to_string(std::numeric_limits<int64_t>::max())
            : std::to_string(int64_t(prompt.size()) + maxNewTokens - 1);
    throw Error("the prompt (" + std::to_string(prompt.size()) +
                " tokens) and " + std::to_string(maxNewTokens) +
                " new tokens need " + needed +
                " positions but --max-context is " + std::to_string(context));
  }
}

std::vector<float> Model::prefillLogits(const std::vector<int64_t> &prompt) {
  backend->reset();
  std::vector<float> logits(prompt.size() * m.vocab);
  forward(prompt, 0, int64_t(prompt.size()), logits.data());
  return logits;
}

std::vector<int64_t>
Model::generate(const std::vector<int64_t> &prompt, int64_t maxNewTokens,
                Sampler &sampler, const std::vector<int64_t> &stopIds,
                const std::function<void(int64_t, const float *)> &onToken,
                GenerationStats *stats) {
  checkPrompt(prompt, maxNewTokens);
  backend->reset();
  std::vector<int64_t> sequence = prompt, generated;
  std::vector<float> logits(m.vocab);
  double t0 = now();
  forward(prompt, 0, 1, logits.data());
  double t1 = now();
  if (stats) {
    stats->prefillSeconds += t1 - t0;
    stats->prefillTokens += int64_t(prompt.size());
  }
  int64_t cached = int64_t(prompt.size());
  for (int64_t i = 0; i < maxNewTokens; ++i) {
    int64_t token = sampler.next(logits.data(), m.vocab);
    generated.push_back(token);
    if (onToken)
      onToken(token, logits.data());
    bool stop =
        std::find(stopIds.begin(), stopIds.end(), token) != stopIds.end();
    if (i + 1 == maxNewTokens || stop)
      break;
    sequence.push_back(token);
    double s0 = now();
    int64_t length = int64_t(sequence.size());
    if (m.reencodeAtLength && length == m.reencodeAtLength &&
        cached < m.reencodeAtLength) {
      // Phi-3 longrope: the cached keys were rotated with the short
      // factors; the whole sequence is encoded again with the long ones.
      forward(sequence, 0, 1, logits.data());
    } else {
      forward({token}, length - 1, 1, logits.data());
    }
    cached = length;
    if (stats) {
      stats->decodeSeconds += now() - s0;
      stats->decodeTokens += 1;
    }
  }
  return generated;
}

} // namespace decc::rt
