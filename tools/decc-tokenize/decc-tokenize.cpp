//===- decc-tokenize.cpp - run a model folder's tokenizer -----------------===//
//
// decc-tokenize DIR TEXT...           ids of each TEXT, one line each
// decc-tokenize DIR --vocab-test INP  llama.cpp's test format: the strings of
//                                     INP (separated by __ggml_vocab_test__
//                                     lines), their ids one line each as in
//                                     the matching .out; every string must
//                                     decode back to itself (else exit 1)
// decc-tokenize DIR --decode 1,2,3    the text of ids
// decc-tokenize DIR --file PATH       ids of the whole file's text, one line
//                                     (texts longer than an argument can be)
//
//===----------------------------------------------------------------------===//

#include "runtime/Error.h"
#include "runtime/Tokenizer.h"

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

using namespace decc::rt;

namespace {

std::string readFile(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    throw Error("cannot read " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::string> readVocabTest(const std::string &path) {
  std::string all = readFile(path);
  const std::string separator = "\n__ggml_vocab_test__\n";
  std::vector<std::string> strings;
  size_t start = 0;
  for (size_t at; (at = all.find(separator, start)) != std::string::npos;
       start = at + separator.size())
    strings.push_back(all.substr(start, at - start));
  return strings;
}

void printIds(const std::vector<int64_t> &ids) {
  for (int64_t id : ids)
    std::printf(" %lld", (long long)id);
  std::printf("\n");
}

int run(int argc, char **argv) {
  if (argc < 3)
    throw Error("usage: decc-tokenize DIR (TEXT... | --vocab-test INP | "
                "--decode IDS | --file PATH)");
  std::unique_ptr<Tokenizer> tokenizer = Tokenizer::load(argv[1]);
  std::string mode = argv[2];
  if (mode == "--vocab-test" && argc == 4) {
    int failures = 0, count = 0;
    for (const std::string &s : readVocabTest(argv[3])) {
      std::vector<int64_t> ids = tokenizer->encode(s);
      printIds(ids);
      ++count;
      std::string back = tokenizer->decode(ids);
      if (back != s) {
        std::fprintf(stderr, "decode of string %d gives '%s', not '%s'\n",
                     count - 1, back.c_str(), s.c_str());
        ++failures;
      }
    }
    std::fprintf(stderr, "%d strings, %d decode back to themselves\n", count,
                 count - failures);
    return failures ? 1 : 0;
  }
  if (mode == "--file" && argc == 4) {
    printIds(tokenizer->encode(readFile(argv[3])));
    return 0;
  }
  if (mode == "--decode" && argc == 4) {
    std::vector<int64_t> ids;
    std::stringstream list(argv[3]);
    for (std::string item; std::getline(list, item, ',');)
      ids.push_back(std::stoll(item));
    std::printf("%s\n", tokenizer->decode(ids).c_str());
    return 0;
  }
  for (int i = 2; i < argc; ++i)
    printIds(tokenizer->encode(argv[i]));
  return 0;
}

} // namespace

int main(int argc, char **argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception &e) {
    std::fprintf(stderr, "decc-tokenize: error: %s\n", e.what());
    return 1;
  }
}
