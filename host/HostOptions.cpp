//===- HostOptions.cpp - the command line of an emitted executable --------===//

#include "host/HostOptions.h"

#include "contract/Contract.h"
#include "runtime/Error.h"
#include "runtime/Safetensors.h"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>

namespace decc::host {

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
  --threads N            OpenMP threads (default: $OMP_NUM_THREADS, else one
                         per physical core the process may run on)
  --temperature T        0 = greedy (default); else sample
  --top-k K, --top-p P   sampling filters
  --seed S               sampling seed
  --ignore-eos           keep generating after EOS
  --chat                 a conversation on stdin (one user message a line),
                         in the model's chat format; a line /image FILE
                         shows an InternVL model a picture
  --print-prompt         show the prompt (text and ids) and exit
  --tokenizer DIR        where the tokenizer files are (default: --weights)
  --print-ids            print token ids instead of text
  --dump-logits FILE     write prompt_ids, prefill_logits, generated_ids,
                         decode_logits as safetensors
  --benchmark            report prefill and decode tokens/s
  --benchmark-prefill L,...  time a prefill of each length (median of 3)
  --benchmark-decode C,...   time --benchmark-steps decode steps (default
                         256) after a prompt of each length
  --benchmark-batch B,...    time --benchmark-steps batched decode steps of
                         B sequences each, every one after a prompt of the
                         first --benchmark-decode length (default 128), in
                         the paged KV cache a server uses
  --batch-beside N       generate as --serve does, in batched decode steps
                         beside N other sequences (the prompt rotated and
                         shortened): the same answer and logits as alone,
                         which the golden tests check
  --perplexity FILE      perplexity over the text of FILE, in windows of
                         --context tokens (default 512), the second half of
                         each scored, as llama.cpp's perplexity tool does
  --context N            the --perplexity window
  --write-dequantized F  (--dtype int8/int4 builds) write the weights as loaded
                         and quantized, dequantized to f32, as safetensors
                         file F, and exit
  --image F              (InternVL models) the prompt's image, a JPEG or
                         PNG, cut into tiles as InternVL does; --prompt TEXT
                         gets its image tokens where TEXT says <image>, else
                         before TEXT
  --max-tiles N          --image and --chat's /image FILE lines: at most N
                         tiles (default: the model's max_dynamic_patch)
  --pixel-values F       (InternVL models) the prompt's image: the
                         pixel_values of safetensors file F (decc-image
                         --pixel-values) through the vision encoder, one row
                         for each image token of the prompt, in order
  --image-token-id N     the image token (default: the tokenizer's
                         <IMG_CONTEXT>)
  --dump-image-embeddings F  with --pixel-values: write the encoder's output
                         as vit_embeds [tiles, tokens, hidden], and exit
  --serve                an OpenAI-compatible HTTP server: POST
                         /v1/completions and /v1/chat/completions (streamed
                         with "stream": true), GET /v1/models and /health;
                         requests batched as they come (CPU; CUDA: one at
                         a time)
  --host H, --port P     where --serve listens (default 127.0.0.1:8080)
  --api-key KEY          --serve: requests need "Authorization: Bearer KEY"
  --max-queue N          --serve: requests that may wait for the model
                         (default 64); one more gets 503 at once
  --queue-timeout S      --serve: seconds a request may wait for the model
                         before it gets 503 (default 60)
  --max-batch N          --serve: sequences decoded together, one batched
                         forward call a step (default 16)
  --max-step-tokens N    --serve and --batch-beside: the most tokens one
                         batched step takes: every running sequence's next
                         token, then new prompts, a long one in parts
                         (default 256)
  --kv-cache-tokens N    --serve: positions of the paged KV cache the
                         sequences share (at least --max-context;
                         default --max-batch x --max-context, at most 2 GiB
                         of cache unless one context takes more); a
                         request waits until its prompt and max_tokens fit
  --info                 print the model's manifest summary and exit
)";

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
  if (!std::isfinite(x))
    throw Error(flag + " expects a finite number, got '" + v + "'");
  return x;
}

/// An integer flag within [lo, hi].
int64_t parseIntIn(const std::string &flag, const std::string &v, int64_t lo,
                   int64_t hi) {
  int64_t x = parseInt(flag, v);
  if (x < lo || x > hi)
    throw Error(flag + " must be between " + std::to_string(lo) + " and " +
                std::to_string(hi) + ", got " + v);
  return x;
}

/// More threads than this only make libomp spend its memory on stacks.
constexpr int64_t kMaxThreads = 1024;

std::vector<int64_t> parseIds(const std::string &v,
                              const std::string &flag = "--prompt-ids") {
  std::vector<int64_t> ids;
  size_t start = 0;
  while (start <= v.size()) {
    size_t comma = v.find(',', start);
    std::string item = v.substr(
        start, comma == std::string::npos ? std::string::npos : comma - start);
    ids.push_back(parseInt(flag, item));
    if (comma == std::string::npos)
      break;
    start = comma + 1;
  }
  return ids;
}

} // namespace

std::string readTextFile(const std::string &flag, const std::string &path) {
  std::error_code ec;
  // A directory opens as a stream and reads as an empty text.
  if (std::filesystem::is_directory(path, ec))
    throw Error(flag + " '" + path + "' is a directory");
  std::ifstream in(path, std::ios::binary);
  if (!in)
    throw Error("cannot read " + flag + " '" + path + "'");
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

Options parseOptions(int argc, char **argv) {
  Options o;
  bool hostGiven = false, portGiven = false, queueGiven = false;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i], value;
    size_t eq = arg.find('=');
    bool hasInline = arg.rfind("--", 0) == 0 && eq != std::string::npos;
    if (hasInline) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
    }
    bool tookValue = false;
    auto next = [&]() -> std::string {
      tookValue = true;
      if (hasInline)
        return value;
      if (i + 1 >= argc)
        throw Error(arg + " needs a value");
      return argv[++i];
    };
    // A switch given a value (`--chat=no`) used to be the switch, its
    // value ignored (found by decc-fuzz-command-line on `--help=...`).
    auto noValue = [&] {
      if (hasInline)
        throw Error(arg + " takes no value, got '" + arg + "=" + value + "'");
    };
    if (arg == "--help" || arg == "-h") {
      noValue();
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
    else if (arg == "--prompt-file")
      o.promptText = readTextFile(arg, next());
    else if (arg == "--tokenizer")
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
      o.maxContext = parseIntIn(arg, next(), 1, contract::kMaxContext);
    else if (arg == "--threads")
      o.threads = int(parseIntIn(arg, next(), 1, kMaxThreads));
    else if (arg == "--temperature") {
      o.sampling.temperature = parseFloat(arg, next());
      if (o.sampling.temperature < 0)
        throw Error("--temperature must not be negative");
    } else if (arg == "--top-k") {
      o.sampling.topK = parseInt(arg, next());
      if (o.sampling.topK < 0)
        throw Error("--top-k must not be negative");
    } else if (arg == "--top-p") {
      std::string v = next();
      o.sampling.topP = parseFloat(arg, v);
      if (o.sampling.topP < 0 || o.sampling.topP > 1)
        throw Error("--top-p must be between 0 and 1, got " + v);
    } else if (arg == "--seed")
      o.sampling.seed = uint64_t(parseInt(arg, next()));
    else if (arg == "--ignore-eos")
      o.ignoreEos = true;
    else if (arg == "--dump-logits")
      o.dumpLogits = next();
    else if (arg == "--benchmark")
      o.benchmark = true;
    else if (arg == "--benchmark-prefill" || arg == "--benchmark-decode" ||
             arg == "--benchmark-steps" || arg == "--benchmark-batch") {
      if (!o.sweep)
        o.sweep.emplace();
      o.benchmark = true;
      if (arg == "--benchmark-steps") {
        o.sweep->decodeSteps = parseInt(arg, next());
        continue;
      }
      std::vector<int64_t> &list =
          arg == "--benchmark-prefill" ? o.sweep->prefillLengths
          : arg == "--benchmark-batch" ? o.sweep->batchSizes
                                       : o.sweep->decodeContexts;
      for (int64_t v : parseIds(next(), arg)) {
        if (v <= 0)
          throw Error(arg + " lengths must be positive, got " +
                      std::to_string(v));
        list.push_back(v);
      }
    } else if (arg == "--max-step-tokens")
      o.serveOptions.maxStepTokens = parseIntIn(arg, next(), 1, 1 << 20);
    else if (arg == "--batch-beside")
      o.batchBeside = parseIntIn(arg, next(), 1, 256);
    else if (arg == "--info")
      o.info = true;
    else if (arg == "--perplexity") {
      o.perplexityFile = next();
      if (o.perplexityFile.empty())
        throw Error("--perplexity needs a file");
    } else if (arg == "--write-dequantized")
      o.writeDequantized = next();
    else if (arg == "--pixel-values")
      o.pixelValues = next();
    else if (arg == "--dump-image-embeddings")
      o.dumpImageEmbeddings = next();
    else if (arg == "--image")
      o.image = next();
    else if (arg == "--max-tiles")
      o.maxTiles = parseIntIn(arg, next(), 1, 64);
    else if (arg == "--image-token-id")
      o.imageTokenId =
          parseIntIn(arg, next(), 0, std::numeric_limits<int32_t>::max());
    else if (arg == "--context")
      o.perplexityWindow = parseIntIn(arg, next(), 2, contract::kMaxContext);
    else if (arg == "--serve")
      o.serve = true;
    else if (arg == "--host") {
      o.serveOptions.host = next();
      hostGiven = true;
    } else if (arg == "--port") {
      o.serveOptions.port = int(parseIntIn(arg, next(), 1, 65535));
      portGiven = true;
    } else if (arg == "--api-key")
      o.serveOptions.apiKey = next();
    else if (arg == "--max-queue") {
      o.serveOptions.maxQueue = parseIntIn(arg, next(), 1, 1 << 20);
      queueGiven = true;
    } else if (arg == "--queue-timeout") {
      float s = parseFloat(arg, next());
      if (s <= 0 || s > 86400)
        throw Error("--queue-timeout must be more than 0 and at most 86400 "
                    "seconds");
      o.serveOptions.queueTimeout = s;
      queueGiven = true;
    } else if (arg == "--max-batch") {
      o.serveOptions.maxBatch = parseIntIn(arg, next(), 1, 1024);
      queueGiven = true;
    } else if (arg == "--kv-cache-tokens") {
      o.kvCacheTokens =
          parseIntIn(arg, next(), 1, contract::kMaxContext * 1024);
      queueGiven = true;
    } else
      throw Error("unknown option '" + arg + "' (see --help)");
    if (!tookValue)
      noValue();
  }
  if (o.maxNewTokens < 0)
    throw Error("--max-new-tokens must not be negative");
  if (o.sweep && o.sweep->decodeSteps <= 0)
    throw Error("--benchmark-steps must be positive");
  if (o.perplexityWindow && o.perplexityFile.empty())
    throw Error("--context is the window of --perplexity FILE");
  if (!o.serve &&
      (hostGiven || portGiven || queueGiven || !o.serveOptions.apiKey.empty()))
    throw Error("--host, --port, --api-key, --max-queue, --queue-timeout, "
                "--max-batch and --kv-cache-tokens are options of --serve");
  if (!o.image.empty() && !o.pixelValues.empty())
    throw Error("--image and --pixel-values are two ways to give one image; "
                "pass one");
  if (o.image.empty() && !o.chat && o.maxTiles)
    throw Error("--max-tiles goes with --image or --chat");
  if (!o.dumpImageEmbeddings.empty() && o.pixelValues.empty() &&
      o.image.empty())
    throw Error("--dump-image-embeddings needs --image or --pixel-values");
  if (o.imageTokenId >= 0 && o.pixelValues.empty() && o.image.empty())
    throw Error("--image-token-id goes with --image or --pixel-values");
  if (const char *env = std::getenv("DECC_PREFETCH_BYTES"))
    o.prefetchBytes = parseIntIn("DECC_PREFETCH_BYTES", env, 0, 1 << 20);
  return o;
}

} // namespace decc::host
