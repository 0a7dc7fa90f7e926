//===- HostOptions.h - the command line of an emitted executable -*- C++
//-*-===//

#ifndef DECC_HOST_HOSTOPTIONS_H
#define DECC_HOST_HOSTOPTIONS_H

#include "host/HostBenchmark.h"
#include "host/HostServe.h"
#include "runtime/Sampler.h"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace decc::host {

using decc::rt::SamplingOptions;

struct Options {
  std::string weights;
  std::string tokenizer;
  std::optional<std::string> promptText;
  bool chat = false;
  bool printPrompt = false;
  bool printIds = false;
  bool randomWeights = false;
  uint64_t weightSeed = 0;
  std::vector<int64_t> prompt;
  int64_t maxNewTokens = 16;
  int64_t maxContext = -1; // unset: the model's own, at most 4096
  int threads = 0;
  /// DECC_PREFETCH_BYTES, the decode's prefetch distance; -1: the CPU's
  /// (decc::rt::weightPrefetchBytesFor).
  int64_t prefetchBytes = -1;
  SamplingOptions sampling;
  bool ignoreEos = false;
  std::string dumpLogits;
  bool benchmark = false;
  /// --benchmark-prefill / --benchmark-decode: the sweep instead of one
  /// generation.
  std::optional<BenchmarkSweep> sweep;
  bool info = false;
  /// --perplexity FILE: score the text instead of generating; --context N
  /// its window (0: 512, or the KV cache if shorter).
  std::string perplexityFile;
  /// --write-dequantized FILE: a quantized build's weights as f32.
  std::string writeDequantized;
  /// --pixel-values FILE (decc-image's): the image of the prompt, whose
  /// image tokens (--image-token-id, else the tokenizer's <IMG_CONTEXT>)
  /// take its rows; with --dump-image-embeddings FILE the encoder alone.
  std::string pixelValues, dumpImageEmbeddings;
  int64_t imageTokenId = -1;
  /// --image FILE: a JPEG or PNG cut into the model's tiles (at most
  /// --max-tiles N), the prompt's image.
  std::string image;
  int64_t maxTiles = 0;
  int64_t perplexityWindow = 0;
  /// --serve: the HTTP server instead of one generation.
  bool serve = false;
  ServeOptions serveOptions;
  /// --kv-cache-tokens N: the paged cache's positions (0: --max-batch x
  /// --max-context).
  int64_t kvCacheTokens = 0;
  /// --batch-beside N: the answer generated in batches beside N other
  /// sequences (HostBatched.h).
  int64_t batchBeside = 0;
};

/// The whole of file `path`, named by option `flag` in errors.
std::string readTextFile(const std::string &flag, const std::string &path);

/// Parses argv; throws decc::rt::Error with a message for a bad option.
/// `--help` prints the usage and exits.
Options parseOptions(int argc, char **argv);

} // namespace decc::host

#endif // DECC_HOST_HOSTOPTIONS_H
