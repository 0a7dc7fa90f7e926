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

#include "runtime/Backend.h"
#include "runtime/ChatFormat.h"
#include "runtime/Error.h"
#include "runtime/Manifest.h"
#include "runtime/Model.h"
#include "runtime/Safetensors.h"
#include "runtime/Tokenizer.h"
#include "runtime/WeightLoader.h"

#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <sys/stat.h>

// What the model's object file defines: the manifest always; the CPU
// forward pass or the GPU kernels' image, depending on --target. The other
// is left undefined, hence weak.
extern "C" {
const char *decc_manifest(void);
__attribute__((weak)) void
_mlir_ciface_decc_forward(decc::rt::MemRefDescriptor<uint8_t, 1> *,
                          decc::rt::MemRefDescriptor<int64_t, 1> *,
                          decc::rt::MemRefDescriptor<int64_t, 1> *,
                          decc::rt::MemRefDescriptor<float, 4> *,
                          decc::rt::MemRefDescriptor<float, 4> *,
                          decc::rt::MemRefDescriptor<int64_t, 1> *,
                          decc::rt::MemRefDescriptor<float, 2> *);
__attribute__((weak)) const void *decc_gpu_image(unsigned long *size);
void omp_set_num_threads(int);
}

using namespace decc::rt;

namespace {

const char *const kUsage = R"(usage: %s [options]
  --weights DIR          checkpoint folder (safetensors, sharded or not)
  --random-weights SEED  random weights instead of a checkpoint
  --prompt TEXT          the prompt as text (needs the model's tokenizer)
  --prompt-file FILE     the prompt as text, read from FILE
  --prompt-ids A,B,...   prompt token ids (default: BOS)
  --prompt-ids-from F    the prompt_ids tensor of safetensors file F
  --max-new-tokens N     tokens to generate (default 16)
  --max-context N        KV-cache length (default: the model's, at most 4096)
  --threads N            OpenMP threads (default: all cores)
  --temperature T        0 = greedy (default); else sample
  --top-k K, --top-p P   sampling filters
  --seed S               sampling seed
  --ignore-eos           keep generating after EOS
  --chat                 a conversation on stdin (one user message a line),
                         in the model's chat format
  --print-prompt         show the prompt (text and ids) and exit
  --tokenizer DIR        where the tokenizer files are (default: --weights)
  --print-ids            print token ids instead of text
  --dump-logits FILE     write prompt_ids, prefill_logits, generated_ids,
                         decode_logits as safetensors
  --benchmark            report prefill and decode tokens/s
  --info                 print the model's manifest summary and exit
)";

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
  SamplingOptions sampling;
  bool ignoreEos = false;
  std::string dumpLogits;
  bool benchmark = false;
  bool info = false;
};

int64_t parseInt(const std::string &flag, const std::string &v) {
  char *end = nullptr;
  errno = 0;
  long long x = std::strtoll(v.c_str(), &end, 10);
  if (v.empty() || *end || errno)
    throw Error(flag + " expects an integer, got '" + v + "'");
  return x;
}

float parseFloat(const std::string &flag, const std::string &v) {
  char *end = nullptr;
  float x = std::strtof(v.c_str(), &end);
  if (v.empty() || *end)
    throw Error(flag + " expects a number, got '" + v + "'");
  return x;
}

std::vector<int64_t> parseIds(const std::string &v) {
  std::vector<int64_t> ids;
  size_t start = 0;
  while (start <= v.size()) {
    size_t comma = v.find(',', start);
    std::string item = v.substr(
        start, comma == std::string::npos ? std::string::npos : comma - start);
    ids.push_back(parseInt("--prompt-ids", item));
    if (comma == std::string::npos)
      break;
    start = comma + 1;
  }
  return ids;
}

Options parseOptions(int argc, char **argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i], value;
    size_t eq = arg.find('=');
    bool hasInline = arg.rfind("--", 0) == 0 && eq != std::string::npos;
    if (hasInline) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
    }
    auto next = [&]() -> std::string {
      if (hasInline)
        return value;
      if (i + 1 >= argc)
        throw Error(arg + " needs a value");
      return argv[++i];
    };
    if (arg == "--help" || arg == "-h") {
      std::printf(kUsage, argv[0]);
      std::exit(0);
    } else if (arg == "--weights")
      o.weights = next();
    else if (arg == "--random-weights") {
      o.randomWeights = true;
      o.weightSeed = uint64_t(parseInt(arg, next()));
    } else if (arg == "--prompt-ids")
      o.prompt = parseIds(next());
    else if (arg == "--prompt")
      o.promptText = next();
    else if (arg == "--prompt-file") {
      std::string path = next();
      std::ifstream in(path, std::ios::binary);
      if (!in)
        throw Error("cannot read --prompt-file '" + path + "'");
      std::stringstream text;
      text << in.rdbuf();
      o.promptText = text.str();
    } else if (arg == "--tokenizer")
      o.tokenizer = next();
    else if (arg == "--chat")
      o.chat = true;
    else if (arg == "--print-prompt")
      o.printPrompt = true;
    else if (arg == "--print-ids")
      o.printIds = true;
    else if (arg == "--prompt-ids-from") {
      std::unique_ptr<SafetensorsFile> file = SafetensorsFile::open(next());
      o.prompt = readIntegers(file->get("prompt_ids"));
    } else if (arg == "--max-new-tokens")
      o.maxNewTokens = parseInt(arg, next());
    else if (arg == "--max-context")
      o.maxContext = parseInt(arg, next());
    else if (arg == "--threads")
      o.threads = int(parseInt(arg, next()));
    else if (arg == "--temperature")
      o.sampling.temperature = parseFloat(arg, next());
    else if (arg == "--top-k")
      o.sampling.topK = parseInt(arg, next());
    else if (arg == "--top-p")
      o.sampling.topP = parseFloat(arg, next());
    else if (arg == "--seed")
      o.sampling.seed = uint64_t(parseInt(arg, next()));
    else if (arg == "--ignore-eos")
      o.ignoreEos = true;
    else if (arg == "--dump-logits")
      o.dumpLogits = next();
    else if (arg == "--benchmark")
      o.benchmark = true;
    else if (arg == "--info")
      o.info = true;
    else
      throw Error("unknown option '" + arg + "' (see --help)");
  }
  if (o.maxNewTokens < 0)
    throw Error("--max-new-tokens must not be negative");
  return o;
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

void printIdsLine(const std::vector<int64_t> &ids) {
  for (size_t i = 0; i < ids.size(); ++i)
    std::printf("%s%lld", i ? "," : "", (long long)ids[i]);
  std::printf("\n");
}

void writeOut(const std::string &text) {
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fflush(stdout);
}

int run(int argc, char **argv) {
  Options o = parseOptions(argc, argv);
  Manifest manifest = Manifest::parse(decc_manifest());
  if (o.info) {
    std::printf("model %s (%s), weights %s, attention %s, cpu %s\n",
                manifest.modelType.c_str(), manifest.config.c_str(),
                manifest.dtype.c_str(), manifest.attention.c_str(),
                manifest.cpu.c_str());
    std::printf("%zu weight tensors, %.1f MiB; KV cache %.3f MiB per "
                "position\n",
                manifest.weights.size(), manifest.arenaBytes / 1048576.0,
                manifest.cacheBytes(1) / 1048576.0);
    return 0;
  }

  // Text in or out needs the tokenizer; ids alone do not.
  std::string tokenizerDir = o.tokenizer.empty() ? o.weights : o.tokenizer;
  bool wantsText = o.promptText || o.chat;
  std::unique_ptr<Tokenizer> tokenizer;
  if (wantsText) {
    if (tokenizerDir.empty())
      throw Error("--prompt and --chat need the model's tokenizer: pass "
                  "--weights DIR or --tokenizer DIR");
    tokenizer = loadTokenizer(tokenizerDir, manifest);
  } else if (!o.printIds && !o.benchmark && o.dumpLogits.empty() &&
             !tokenizerDir.empty() &&
             (fileExists(tokenizerDir + "/tokenizer.model") ||
              fileExists(tokenizerDir + "/tokenizer.json"))) {
    tokenizer = loadTokenizer(tokenizerDir, manifest);
  }
  std::vector<int64_t> stopIds = manifest.eos;
  if (tokenizer)
    stopIds.insert(stopIds.end(), tokenizer->eos.begin(), tokenizer->eos.end());
  int64_t bos =
      tokenizer && tokenizer->bos >= 0 ? tokenizer->bos : manifest.bos;

  std::optional<ChatFormat> chat;
  if (o.chat)
    chat = ChatFormat::load(tokenizerDir);
  auto promptOf = [&](const std::string &text) {
    std::vector<int64_t> ids;
    if (!chat && tokenizer->addBos && bos >= 0)
      ids.push_back(bos);
    std::vector<int64_t> body = tokenizer->encode(text);
    ids.insert(ids.end(), body.begin(), body.end());
    return ids;
  };
  if (o.promptText) {
    std::string text =
        chat ? chat->render({{"user", *o.promptText}}) : *o.promptText;
    o.prompt = promptOf(text);
    if (o.printPrompt) {
      std::printf("%s", text.c_str());
      std::printf("\n--- %zu tokens:\n", o.prompt.size());
      printIdsLine(o.prompt);
      return 0;
    }
  } else if (o.printPrompt) {
    throw Error("--print-prompt needs --prompt TEXT");
  }

  if (o.weights.empty() && !o.randomWeights)
    throw Error("no weights: pass --weights DIR or --random-weights SEED");
  if (o.threads > 0)
    omp_set_num_threads(o.threads);
  if (o.prompt.empty() && !o.benchmark && !o.chat) {
    if (bos < 0)
      throw Error("the model has no BOS token; pass --prompt or --prompt-ids");
    o.prompt = {bos};
  }
  int64_t context = o.maxContext;
  if (context < 0)
    context = std::min<int64_t>(
        manifest.maxPositions > 0 ? manifest.maxPositions : 4096, 4096);
  if (context <= 0)
    throw Error("--max-context must be positive, got " +
                std::to_string(context));
  if (o.benchmark && o.prompt.empty()) {
    int64_t length = std::min<int64_t>(128, context / 2);
    for (int64_t i = 0; i < length; ++i)
      o.prompt.push_back((i * 7919 + 13) % manifest.vocab);
  }

  Model model(manifest, context, [context](const Manifest &m) {
    if (m.target == "cuda") {
      unsigned long size = 0;
      return createCUDABackend(m, decc_gpu_image(&size), context);
    }
    return createCPUBackend(m, _mlir_ciface_decc_forward, context);
  });
  if (!o.chat)
    model.checkPrompt(o.prompt, o.maxNewTokens);
  double t0 = seconds();
  if (o.randomWeights)
    randomWeights(manifest, o.weightSeed, model.arena());
  else
    loadWeights(manifest, o.weights, model.arena());
  model.weightsLoaded();
  double loadSeconds = seconds() - t0;

  Sampler sampler(o.sampling);
  GenerationStats stats;
  bool stopAtEos = !o.ignoreEos && !o.benchmark && o.dumpLogits.empty();
  std::vector<int64_t> noStop;

  if (o.chat) {
    // One user message a line; the conversation so far is the prompt of
    // every answer.
    std::vector<ChatMessage> messages;
    std::string line;
    char buffer[1 << 16];
    while (std::fgets(buffer, sizeof(buffer), stdin)) {
      line = buffer;
      while (!line.empty() && (line.back() == '\n' || line.back() == '\r'))
        line.pop_back();
      if (line.empty())
        continue;
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
    std::vector<int64_t> generated = model.generate(
        o.prompt, o.maxNewTokens, sampler, stopAtEos ? stopIds : noStop,
        [&](int64_t token, const float *logits) {
          if (!o.dumpLogits.empty())
            decodeLogits.insert(decodeLogits.end(), logits,
                                logits + manifest.vocab);
          if (stream)
            writeOut(stream->push(token));
        },
        &stats);
    if (stream)
      writeOut(stream->flush() + "\n");
    else
      printIdsLine(generated);

    if (!o.dumpLogits.empty()) {
      std::vector<float> prefill = model.prefillLogits(o.prompt);
      int64_t p = int64_t(o.prompt.size()), g = int64_t(generated.size());
      writeSafetensors(
          o.dumpLogits,
          {tensor("prompt_ids", DType::I64, {p}, o.prompt),
           tensor("prefill_logits", DType::F32, {p, manifest.vocab}, prefill),
           tensor("generated_ids", DType::I64, {g}, generated),
           tensor("decode_logits", DType::F32, {g, manifest.vocab},
                  decodeLogits)});
    }
  }

  if (o.benchmark) {
    std::fprintf(stderr,
                 "benchmark: weights %.1f MiB (%s) loaded in %.2f s; KV cache "
                 "%.1f MiB for %lld positions\n",
                 manifest.arenaBytes / 1048576.0, manifest.dtype.c_str(),
                 loadSeconds, manifest.cacheBytes(context) / 1048576.0,
                 (long long)context);
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
  } else {
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
