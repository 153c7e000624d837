// The main of a fuzz target's replay test (tools/fuzz.bzl): feeds every
// corpus file given as an argument to LLVMFuzzerTestOneInput, then
// deterministic mutations of them, so `bazel test` (and --config=asan)
// exercises the target without libFuzzer. Fails if no corpus file is given
// or one cannot be read; a crash in the target fails the test by itself.
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

constexpr int kMutationsPerInput = 300;

int Run(const std::string& input) {
  return LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(input.data()),
                                input.size());
}

// One deterministic variation of `input`: flipped bits, a cut, a repeated
// slice or a splice with `other`.
std::string Mutate(std::string input, const std::string& other,
                   std::mt19937_64& random) {
  auto pick = [&random](size_t bound) {
    return bound == 0 ? size_t{0} : static_cast<size_t>(random() % bound);
  };
  switch (random() % 4) {
    case 0:
      for (int i = 0, n = 1 + static_cast<int>(pick(8)); i < n; ++i) {
        if (input.empty()) break;
        input[pick(input.size())] ^= static_cast<char>(1u << pick(8));
      }
      break;
    case 1:
      input.resize(pick(input.size() + 1));
      break;
    case 2: {
      size_t from = pick(input.size() + 1);
      input.insert(from, input.substr(from, pick(64)));
      break;
    }
    default:
      input = input.substr(0, pick(input.size() + 1)) +
              other.substr(pick(other.size() + 1));
      break;
  }
  return input;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> corpus;
  for (int i = 1; i < argc; ++i) {
    std::ifstream file(argv[i], std::ios::binary);
    if (!file) {
      std::fprintf(stderr, "cannot read corpus file %s\n", argv[i]);
      return 1;
    }
    corpus.emplace_back(std::istreambuf_iterator<char>(file),
                        std::istreambuf_iterator<char>());
  }
  if (corpus.empty()) {
    std::fprintf(stderr, "usage: %s CORPUS_FILE...\n", argv[0]);
    return 1;
  }
  std::mt19937_64 random(20261201);
  size_t runs = 0;
  for (const std::string& input : corpus) {
    Run(input);
    ++runs;
  }
  Run(std::string());
  for (size_t i = 0; i < corpus.size(); ++i) {
    for (int m = 0; m < kMutationsPerInput; ++m) {
      Run(Mutate(corpus[i], corpus[(i + m) % corpus.size()], random));
      ++runs;
    }
  }
  std::printf("%zu corpus files, %zu inputs run\n", corpus.size(), runs + 1);
  return 0;
}
