//===- HostMain.cpp - main() of every executable decc emits ---------------===//
//
// The host program: parses the command line, loads the weights the manifest
// names, and drives the generated `decc_forward` through prefill and decode.
// It knows nothing about the model beyond the manifest decc embedded.
//
//   ./model --weights DIR --prompt-ids 1,2,3 [--max-new-tokens N]
//           [--max-context C] [--threads T] [--temperature T --top-k K
//           --top-p P --seed S] [--dump-logits FILE] [--benchmark]
//           [--random-weights SEED]
//
//===----------------------------------------------------------------------===//

#include "host/HostBatched.h"
#include "host/HostBenchmark.h"
#include "runtime/Backend.h"
#include "runtime/ChatFormat.h"
#include "runtime/Collectives.h"
#include "runtime/CpuTopology.h"
#include "runtime/Error.h"
#include "runtime/Fnv1a.h"
#include "runtime/LaunchPlan.h"
#include "runtime/Model.h"
#include "runtime/Safetensors.h"
#include "runtime/Tokenizer.h"
#include "runtime/WeightLoader.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <optional>
#include <string>
#include <sys/stat.h>

namespace {
/// The job a tensor-parallel model's collectives go to: only such a model
/// calls them, after Collectives::join().
decc::rt::Collectives &theJob() {
  decc::rt::Collectives *job = decc::rt::Collectives::current();
  if (!job)
    std::abort();
  return *job;
}
} // namespace

// What the model's object file defines: the manifest always; the CPU
// forward pass or the GPU kernels' image, depending on --target. The other
// is left undefined, hence weak.
extern "C" {
const char *decc_manifest(void);
__attribute__((weak))
decc::contract::ForwardSignature _mlir_ciface_decc_forward;
__attribute__((weak)) const void *decc_gpu_image(unsigned long *size);
// InternVL models' vision encoder (CPU objects only).
__attribute__((weak)) decc::contract::VisionSignature _mlir_ciface_decc_vision;
void omp_set_num_threads(int);

// A tensor-parallel model's collectives (contract/Contract.h), answered
// with the job's ranks.
void decc_all_reduce(int64_t in, int64_t out, int64_t count) {
  theJob().allReduce(reinterpret_cast<const float *>(in),
                     reinterpret_cast<float *>(out), count);
}
int64_t decc_rank() { return theJob().rank(); }
// How far ahead the decode step prefetches its weight rows
// (contract::kPrefetchFunction), decided once in main.
static int64_t prefetchBytes = 0;
int64_t decc_prefetch_bytes() { return prefetchBytes; }
void decc_all_gather(int64_t part, int64_t whole, int64_t rows, int64_t cols) {
  theJob().allGather(reinterpret_cast<const float *>(part),
                     reinterpret_cast<float *>(whole), rows, cols);
}
}

using namespace decc::rt;

#include "host/HostImage.h"
#include "host/HostOptions.h"
#include "host/HostPerplexity.h"
#include "host/HostVision.h"

using decc::host::Options;
using decc::host::parseOptions;
using decc::host::perplexity;
using decc::host::PerplexityResult;
using decc::host::readTextFile;
using decc::host::serve;
using decc::host::ServedModel;

namespace {

/// The image token: --image-token-id, else the tokenizer's <IMG_CONTEXT>.
int64_t imageTokenOf(const Options &o, const Tokenizer *tokenizer) {
  if (o.imageTokenId >= 0)
    return o.imageTokenId;
  std::optional<int64_t> named;
  if (tokenizer)
    named = tokenizer->addedToken("<IMG_CONTEXT>");
  if (!named)
    throw Error("the tokenizer has no <IMG_CONTEXT> token; pass "
                "--image-token-id N");
  return *named;
}

template <typename T>
OwnedTensor tensor(const std::string &name, DType dtype,
                   std::vector<int64_t> shape, const std::vector<T> &data) {
  OwnedTensor t{name, dtype, std::move(shape), {}};
  t.bytes.resize(data.size() * sizeof(T));
  std::memcpy(t.bytes.data(), data.data(), t.bytes.size());
  return t;
}

double seconds() {
  using namespace std::chrono;
  return duration<double>(steady_clock::now().time_since_epoch()).count();
}

bool fileExists(const std::string &path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

/// The tokenizer of the model folder, checked against the vocabulary the
/// model was compiled for.
std::unique_ptr<Tokenizer> loadTokenizer(const std::string &dir,
                                         const Manifest &manifest) {
  std::unique_ptr<Tokenizer> t = Tokenizer::load(dir);
  if (t->size() > manifest.vocab)
    throw Error("the tokenizer " + t->source() + " has " +
                std::to_string(t->size()) +
                " tokens but the model's vocabulary is " +
                std::to_string(manifest.vocab));
  return t;
}

/// "bf16", or "int8 (groups of 32), arithmetic f32", or "int4 (groups of
/// 128, zero points), arithmetic f32".
std::string weightsSpelling(const decc::contract::ModelFacts &facts) {
  std::string s = spelling(facts.dtype);
  if (facts.quantBits)
    s = "int" + std::to_string(facts.quantBits) + " (groups of " +
        std::to_string(facts.groupSize) +
        (facts.quantBits == 4 ? ", zero points" : "") + "), arithmetic " + s;
  return s;
}

void printIdsLine(const std::vector<int64_t> &ids) {
  for (size_t i = 0; i < ids.size(); ++i)
    std::printf("%s%lld", i ? "," : "", (long long)ids[i]);
  std::printf("\n");
}

void writeOut(const std::string &text) {
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fflush(stdout);
}

/// FNV-1a of the embedded manifest and the command line's arguments: what
/// every rank of a tensor-parallel job must agree on.
uint64_t commandFingerprint(int argc, char **argv) {
  // Each string with its terminator: ("ab", "c") is not ("a", "bc").
  auto mix = [](const char *text, uint64_t h) {
    return decc::rt::fnv1a(std::string_view(text, std::strlen(text) + 1), h);
  };
  uint64_t h = mix(decc_manifest(), decc::rt::kFnv1aBasis);
  for (int i = 1; i < argc; ++i)
    h = mix(argv[i], h);
  return h;
}

int run(int argc, char **argv) {
  Options o = parseOptions(argc, argv);
  Manifest manifest = readManifest(decc_manifest());
  const decc::contract::ModelFacts &facts = *manifest.model;
  // A tensor-parallel model runs as mpirun's ranks, each loading its
  // shards; every rank computes the same steps (the collectives keep them
  // in step) and only rank 0 prints and writes files.
  int64_t ranks = decc::rt::tensorParallelRanks(manifest), rank = 0;
  if (ranks > 1 && !o.info) {
    decc::rt::Collectives &job = decc::rt::Collectives::join();
    // Every rank must run the same executable with the same options, or
    // their collectives would not meet.
    if (!job.agree(commandFingerprint(argc, argv)))
      throw Error("the ranks run different executables or options; every "
                  "rank must run the same command");
    if (job.size() != ranks)
      throw Error("this model is split over " + std::to_string(ranks) +
                  " ranks (--tensor-parallel " + std::to_string(ranks) +
                  ") but runs as " + std::to_string(job.size()) +
                  "; start it with mpirun -n " + std::to_string(ranks));
    rank = job.rank();
    if (rank != 0 && !std::freopen("/dev/null", "w", stdout))
      throw Error("rank " + std::to_string(rank) +
                  " could not quiet its output");
  }
  if (o.info) {
    std::string weights = weightsSpelling(facts);
    std::printf("model %s (%s), weights %s, attention %s, cpu %s%s\n",
                facts.modelType.c_str(), facts.config.c_str(), weights.c_str(),
                spelling(facts.attention), facts.cpu.c_str(),
                facts.amx ? " (prompts on AMX tiles)" : "");
    std::printf("%zu weight tensors, %.1f MiB; KV cache %lld bytes per "
                "position (%s)\n",
                manifest.weights.size(), manifest.arenaBytes / 1048576.0,
                (long long)manifest.cache.bytes(1),
                spelling(manifest.cache.dtype));
    if (ranks > 1)
      std::printf("split over %lld ranks, a rank's shards above; run it as "
                  "mpirun -n %lld\n",
                  (long long)ranks, (long long)ranks);
    if (manifest.plan) {
      // The kernels a decode step launches, in order, each with its count
      // (the names DECC_DECODE_SKIP takes).
      std::vector<std::pair<std::string, int>> kernels;
      size_t launches = 0;
      for (const decc::contract::Launch &l : manifest.plan->launches) {
        if (!decc::rt::launchRuns(l, decc::rt::Call{1, 1, 1},
                                  std::numeric_limits<int64_t>::max()))
          continue;
        ++launches;
        auto it = std::find_if(kernels.begin(), kernels.end(),
                               [&](auto &k) { return k.first == l.kernel; });
        if (it == kernels.end())
          kernels.push_back({l.kernel, 1});
        else
          ++it->second;
      }
      std::printf("decode step: %zu launches:", launches);
      for (auto &[name, count] : kernels)
        std::printf(" %s x%d", name.c_str(), count);
      std::printf("\n");
    }
    return 0;
  }

  // Text in or out needs the tokenizer; ids alone do not.
  std::string tokenizerDir = o.tokenizer.empty() ? o.weights : o.tokenizer;
  bool wantsText =
      o.promptText || o.chat || o.serve || !o.perplexityFile.empty();
  std::unique_ptr<Tokenizer> tokenizer;
  if (wantsText) {
    if (tokenizerDir.empty())
      throw Error("--prompt, --chat, --serve and --perplexity need the "
                  "model's tokenizer: pass "
                  "--weights DIR or --tokenizer DIR");
    tokenizer = loadTokenizer(tokenizerDir, manifest);
  } else if (!o.printIds && !o.benchmark && o.dumpLogits.empty() &&
             !tokenizerDir.empty() &&
             (fileExists(tokenizerDir + "/tokenizer.model") ||
              fileExists(tokenizerDir + "/tokenizer.json"))) {
    tokenizer = loadTokenizer(tokenizerDir, manifest);
  }
  std::vector<int64_t> stopIds = facts.eos;
  if (tokenizer)
    stopIds.insert(stopIds.end(), tokenizer->eos.begin(), tokenizer->eos.end());
  int64_t bos = tokenizer && tokenizer->bos >= 0 ? tokenizer->bos : facts.bos;

  std::optional<ChatFormat> chat;
  if (o.chat)
    chat = ChatFormat::load(tokenizerDir);
  // A server without a chat template still completes text.
  std::optional<ChatFormat> serveChat;
  if (o.serve) {
    try {
      serveChat = ChatFormat::load(tokenizerDir);
    } catch (const Error &) {
    }
  }
  // A prompt's ids: BOS first where the tokenizer adds one, except in a
  // chat turn, whose template writes its own.
  auto encodePrompt = [&](const std::string &text, bool chatTurn) {
    std::vector<int64_t> ids;
    if (!chatTurn && tokenizer->addBos && bos >= 0)
      ids.push_back(bos);
    std::vector<int64_t> body = tokenizer->encode(text);
    ids.insert(ids.end(), body.begin(), body.end());
    return ids;
  };
  auto promptOf = [&](const std::string &text) {
    return encodePrompt(text, bool(chat));
  };
  // --image: the picture's tiles now (the prompt needs their count), their
  // rows from the encoder once the weights are in.
  std::optional<decc::host::ImageTiles> image;
  if (!o.image.empty())
    image = decc::host::readImage(manifest, o.image, o.maxTiles, "--image");
  if (o.promptText) {
    std::string question = *o.promptText, shown = question;
    int64_t imageTokens = 0;
    if (image) {
      imageTokens = decc::host::imageTokens(manifest, image->tiles);
      question = decc::host::withImageTokens(question, imageTokens, false);
      shown = decc::host::withImageTokens(shown, imageTokens, true);
    }
    auto render = [&](const std::string &q) {
      return chat ? chat->render({{"user", q}}) : q;
    };
    o.prompt = promptOf(render(question));
    if (o.printPrompt) {
      if (image)
        std::printf("%s, %lld image tokens\n", image->summary.c_str(),
                    (long long)imageTokens);
      std::printf("%s", render(shown).c_str());
      std::printf("\n--- %zu tokens:\n", o.prompt.size());
      printIdsLine(o.prompt);
      return 0;
    }
  } else if (o.printPrompt) {
    throw Error("--print-prompt needs --prompt TEXT");
  }

  if (o.weights.empty() && !o.randomWeights)
    throw Error("no weights: pass --weights DIR or --random-weights SEED");
  // --threads, else OMP_NUM_THREADS as libomp reads it, else a thread per
  // physical core (libomp's own default is one per hardware thread).
  if (o.threads > 0)
    omp_set_num_threads(o.threads);
  else if (!std::getenv("OMP_NUM_THREADS"))
    omp_set_num_threads(defaultThreads());
  prefetchBytes = o.prefetchBytes >= 0 ? o.prefetchBytes
                                       : weightPrefetchBytesFor(cpuVendor());
  if (o.prompt.empty() && !o.benchmark && !o.chat && !o.serve &&
      o.writeDequantized.empty() && o.perplexityFile.empty() &&
      o.dumpImageEmbeddings.empty()) {
    if (bos < 0)
      throw Error("the model has no BOS token; pass --prompt or --prompt-ids");
    o.prompt = {bos};
  }
  std::string perplexityText;
  if (!o.perplexityFile.empty()) {
    perplexityText = readTextFile("--perplexity", o.perplexityFile);
    if (!o.perplexityWindow)
      o.perplexityWindow =
          std::min<int64_t>(512, o.maxContext > 0         ? o.maxContext
                                 : facts.maxPositions > 0 ? facts.maxPositions
                                                          : 512);
  }
  int64_t context = o.maxContext;
  if (context < 0 && o.perplexityWindow)
    context = o.perplexityWindow;
  if (context < 0 && o.sweep)
    context = o.sweep->contextNeeded();
  if (context < 0)
    context = std::min<int64_t>(
        facts.maxPositions > 0 ? facts.maxPositions : 4096, 4096);
  if (o.benchmark && o.prompt.empty()) {
    int64_t length = std::min<int64_t>(128, context / 2);
    for (int64_t i = 0; i < length; ++i)
      o.prompt.push_back((i * 7919 + 13) % manifest.vocab);
  }

  // A server's sequences share a paged KV cache; one generation's is its
  // context.
  int64_t cachePositions = o.sweep ? o.sweep->batchPositions() : 0;
  if (o.batchBeside)
    cachePositions = (o.batchBeside + 1) * context;
  if (o.serve) {
    if (o.kvCacheTokens && o.kvCacheTokens < context)
      throw Error("--kv-cache-tokens (" + std::to_string(o.kvCacheTokens) +
                  ") must hold at least --max-context (" +
                  std::to_string(context) + ") positions");
    cachePositions = o.kvCacheTokens;
    if (!cachePositions) {
      // --max-batch full contexts, but no more than 2 GiB of cache unless
      // one context needs more: a 7B model's 16 x 4096 positions would
      // take 8 GiB, and few requests fill their context.
      int64_t budget = (int64_t(2) << 30) / manifest.cache.bytes(1);
      cachePositions = std::max(
          context, std::min(budget, o.serveOptions.maxBatch * context));
    }
  }
  Model model(manifest, context, [&](const Manifest &m) {
    if (m.target == decc::contract::Target::CUDA) {
      unsigned long size = 0;
      return createCUDABackend(m, decc_gpu_image(&size), context,
                               cachePositions);
    }
    return createCPUBackend(m, _mlir_ciface_decc_forward, context,
                            cachePositions);
  });
  if (o.sweep) {
    if (o.sweep->contextNeeded() > context)
      throw Error("the benchmark needs a KV cache of " +
                  std::to_string(o.sweep->contextNeeded()) +
                  " positions but --max-context is " + std::to_string(context));
  } else if (!o.chat && !o.serve && o.perplexityFile.empty() &&
             o.writeDequantized.empty() && o.dumpImageEmbeddings.empty()) {
    model.checkPrompt(o.prompt, o.maxNewTokens);
  }
  double t0 = seconds();
  if (o.randomWeights)
    randomWeights(manifest, o.weightSeed, model.arena(), rank);
  else
    loadWeights(manifest, o.weights, model.arena(), rank);
  double loadSeconds = seconds() - t0;
  if (!o.writeDequantized.empty()) {
    writeDequantized(manifest, model.arena(), o.writeDequantized);
    return 0;
  }
  // The weights where the kernels read them (CUDA: copied to the GPU),
  // before the vision encoder's kernels run on them.
  model.weightsLoaded();
  // The image's rows: from --image's tiles or --pixel-values' file.
  int64_t encodedTiles = 0;
  double encodeSeconds = 0, firstEncodeSeconds = 0;
  if (image || !o.pixelValues.empty()) {
    int64_t tiles = image ? image->tiles : 0;
    std::vector<float> pixels =
        image ? std::move(image->pixels)
              : decc::host::readPixelFile(manifest, o.pixelValues, tiles);
    double e0 = seconds();
    std::vector<float> rows = decc::host::encodeTiles(
        manifest, _mlir_ciface_decc_vision, model, pixels, tiles);
    encodeSeconds = firstEncodeSeconds = seconds() - e0;
    // --benchmark: the encoder once more, its buffers and kernels ready (a
    // CUDA build's first picture also allocates them and loads the
    // kernels).
    if (o.benchmark) {
      e0 = seconds();
      rows = decc::host::encodeTiles(manifest, _mlir_ciface_decc_vision, model,
                                     pixels, tiles);
      encodeSeconds = seconds() - e0;
    }
    encodedTiles = tiles;
    if (!o.dumpImageEmbeddings.empty()) {
      decc::host::dumpImageEmbeddings(manifest, rows, tiles,
                                      o.dumpImageEmbeddings);
      return 0;
    }
    model.addImage(imageTokenOf(o, tokenizer.get()), rows);
  }
  // A tensor-parallel job's ranks run the same steps: rank 0 reports them.
  bool reports = rank == 0;
  auto printLoad = [&] {
    if (!reports)
      return;
    std::fprintf(stderr,
                 "benchmark: weights %.1f MiB (%s) loaded in %.2f s; KV cache "
                 "%.1f MiB for %lld positions\n",
                 manifest.arenaBytes / 1048576.0,
                 weightsSpelling(facts).c_str(), loadSeconds,
                 manifest.cache.bytes(context) / 1048576.0, (long long)context);
  };

  if (o.sweep) {
    printLoad();
    runBenchmarkSweep(model, *o.sweep, reports);
    return 0;
  }
  if (o.serve) {
    std::string name = o.weights.empty() ? facts.modelType : o.weights;
    while (name.size() > 1 && name.back() == '/')
      name.pop_back();
    name = name.substr(name.find_last_of('/') + 1);
    ServedModel served{model,   *tokenizer,   serveChat ? &*serveChat : nullptr,
                       stopIds, encodePrompt, name};
    return serve(served, o.serveOptions);
  }
  if (!o.perplexityFile.empty()) {
    std::vector<int64_t> tokens = tokenizer->encode(perplexityText);
    double p0 = seconds();
    PerplexityResult r =
        perplexity(model, tokens, o.perplexityWindow,
                   tokenizer->addBos ? bos : -1, /*progress=*/true);
    std::printf("perplexity: %.4f over %lld tokens (%lld windows of %lld, "
                "the second half of each scored; %lld tokens in the text)\n",
                r.perplexity, (long long)r.scored, (long long)r.windows,
                (long long)o.perplexityWindow, (long long)tokens.size());
    std::fprintf(stderr, "decc: perplexity in %.2f s\n", seconds() - p0);
    return 0;
  }

  Sampler sampler(o.sampling);
  GenerationStats stats;
  bool stopAtEos = !o.ignoreEos && !o.benchmark && o.dumpLogits.empty();
  std::vector<int64_t> noStop;

  if (o.chat) {
    // One user message a line; the conversation so far is the prompt of
    // every answer. A line `/image FILE` shows the model a picture: the
    // next message carries its image tokens (InternVL's <image>\n before
    // the question), the rows of every picture so far stay set in order.
    std::vector<ChatMessage> messages;
    std::vector<int64_t> pendingImages; // image tokens of each new picture
    if (image)
      pendingImages.push_back(decc::host::imageTokens(manifest, image->tiles));
    std::string line;
    char buffer[1 << 16];
    while (std::fgets(buffer, sizeof(buffer), stdin)) {
      line = buffer;
      while (!line.empty() && (line.back() == '\n' || line.back() == '\r'))
        line.pop_back();
      if (line.empty())
        continue;
      if (line.rfind("/image ", 0) == 0) {
        try {
          decc::host::ImageTiles tiles = decc::host::readImage(
              manifest, line.substr(7), o.maxTiles, "/image");
          std::vector<float> rows =
              decc::host::encodeTiles(manifest, _mlir_ciface_decc_vision, model,
                                      tiles.pixels, tiles.tiles);
          model.addImage(imageTokenOf(o, tokenizer.get()), rows);
          pendingImages.push_back(
              decc::host::imageTokens(manifest, tiles.tiles));
          std::fprintf(stderr, "%s, %lld image tokens\n", tiles.summary.c_str(),
                       (long long)pendingImages.back());
        } catch (const Error &e) {
          std::fprintf(stderr, "error: %s\n", e.what());
        }
        continue;
      }
      // The pictures shown since the last message, first one first.
      for (auto n = pendingImages.rbegin(); n != pendingImages.rend(); ++n)
        line = decc::host::withImageTokens(line, *n, false);
      pendingImages.clear();
      messages.push_back({"user", line});
      std::vector<int64_t> prompt = promptOf(chat->render(messages));
      model.checkPrompt(prompt, o.maxNewTokens);
      TextStream stream(*tokenizer);
      std::vector<int64_t> answer = model.generate(
          prompt, o.maxNewTokens, sampler, stopAtEos ? stopIds : noStop,
          [&](int64_t token, const float *) {
            if (std::find(stopIds.begin(), stopIds.end(), token) ==
                stopIds.end())
              writeOut(stream.push(token));
          },
          &stats);
      writeOut(stream.flush() + "\n");
      std::vector<int64_t> spoken;
      for (int64_t t : answer)
        if (std::find(stopIds.begin(), stopIds.end(), t) == stopIds.end())
          spoken.push_back(t);
      messages.push_back({"assistant", tokenizer->decode(spoken)});
    }
  } else {
    std::vector<float> decodeLogits;
    std::optional<TextStream> stream;
    if (tokenizer) {
      // Like llama2.c: the prompt's text, then the answer as it comes.
      stream.emplace(*tokenizer);
      for (int64_t id : o.prompt)
        writeOut(stream->push(id));
    }
    if (o.benchmark) {
      // Warm up (first launches load the kernels, the decode graph is
      // captured) as the baselines do, so the timings are steady state.
      Sampler warmSampler(o.sampling);
      model.generate(o.prompt, std::min<int64_t>(o.maxNewTokens, 2),
                     warmSampler, noStop, [](int64_t, const float *) {});
    }
    auto onToken = [&](int64_t token, const float *logits) {
      if (!o.dumpLogits.empty())
        decodeLogits.insert(decodeLogits.end(), logits,
                            logits + manifest.vocab);
      if (stream)
        writeOut(stream->push(token));
    };
    std::vector<int64_t> generated =
        o.batchBeside
            ? decc::host::generateBeside(
                  model, o.prompt, o.maxNewTokens, o.sampling,
                  stopAtEos ? stopIds : noStop, onToken, o.batchBeside,
                  o.serveOptions.maxStepTokens, &stats)
            : model.generate(o.prompt, o.maxNewTokens, sampler,
                             stopAtEos ? stopIds : noStop, onToken, &stats);
    if (stream)
      writeOut(stream->flush() + "\n");
    else
      printIdsLine(generated);

    if (!o.dumpLogits.empty()) {
      std::vector<float> prefill = model.prefillLogits(o.prompt);
      int64_t p = int64_t(o.prompt.size()), g = int64_t(generated.size());
      if (rank == 0)
        writeSafetensors(
            o.dumpLogits,
            {tensor("prompt_ids", DType::I64, {p}, o.prompt),
             tensor("prefill_logits", DType::F32, {p, manifest.vocab}, prefill),
             tensor("generated_ids", DType::I64, {g}, generated),
             tensor("decode_logits", DType::F32, {g, manifest.vocab},
                    decodeLogits)});
    }
  }

  if (reports && o.benchmark) {
    printLoad();
    if (encodedTiles)
      std::fprintf(stderr,
                   "benchmark: image of %lld tiles encoded in %.3f s: %.2f "
                   "tiles/s (the first time %.3f s); first token %.3f s "
                   "after it came in (encoding and prefill)\n",
                   (long long)encodedTiles, encodeSeconds,
                   encodedTiles / encodeSeconds, firstEncodeSeconds,
                   encodeSeconds + stats.prefillSeconds);
    std::fprintf(stderr,
                 "benchmark: prefill %lld tokens in %.3f s: %.1f tokens/s\n",
                 (long long)stats.prefillTokens, stats.prefillSeconds,
                 stats.prefillTokens / stats.prefillSeconds);
    if (stats.decodeTokens) {
      double perToken = stats.decodeSeconds / stats.decodeTokens;
      std::fprintf(stderr,
                   "benchmark: decode %lld tokens in %.3f s: %.2f tokens/s "
                   "(%.2f ms/token), streaming %.1f MiB of weights per token: "
                   "%.1f GB/s\n",
                   (long long)stats.decodeTokens, stats.decodeSeconds,
                   1 / perToken, 1000 * perToken,
                   manifest.streamedBytesPerToken / 1048576.0,
                   manifest.streamedBytesPerToken / perToken / 1e9);
    }
  } else if (reports) {
    std::fprintf(stderr,
                 "decc: %lld prompt tokens, %lld generated; prefill %.1f "
                 "tokens/s, decode %.1f tokens/s\n",
                 (long long)stats.prefillTokens,
                 (long long)(stats.decodeTokens + (stats.prefillTokens > 0)),
                 stats.prefillTokens / std::max(stats.prefillSeconds, 1e-9),
                 stats.decodeTokens / std::max(stats.decodeSeconds, 1e-9));
  }
  return 0;
}

} // namespace

int main(int argc, char **argv) {
  try {
    return run(argc, argv);
  } catch (const Error &e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  } catch (const std::exception &e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
