// cluster2-cache --socket=PATH [--data-dir=DIR] [--max-value-bytes=N]
//                [--max-memory=N[k|m|g]]: the cache server.
#include <iostream>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "cache_server/cache_server.h"

namespace {

// "64m" -> 67108864; false if malformed.
bool ParseBytes(std::string text, uint64_t* bytes) {
  uint64_t scale = 1;
  if (!text.empty()) {
    switch (absl::ascii_tolower(text.back())) {
      case 'k':
        scale = 1ull << 10;
        break;
      case 'm':
        scale = 1ull << 20;
        break;
      case 'g':
        scale = 1ull << 30;
        break;
    }
    if (scale != 1) text.pop_back();
  }
  return absl::SimpleAtoi(text, bytes) && (*bytes *= scale, true);
}

bool Flag(const std::string& arg, const std::string& name, std::string* value) {
  if (arg.rfind(name + "=", 0) != 0) return false;
  *value = arg.substr(name.size() + 1);
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  cluster2::CacheServerOptions options;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i], value;
    uint64_t bytes = 0;
    bool ok = true;
    if (Flag(arg, "--socket", &value)) {
      options.socket_path = value;
    } else if (Flag(arg, "--data-dir", &value)) {
      options.data_dir = value;
    } else if (Flag(arg, "--max-value-bytes", &value)) {
      ok = ParseBytes(value, &bytes) && bytes > 0;
      options.max_value_bytes = bytes;
    } else if (Flag(arg, "--max-memory", &value)) {
      ok = ParseBytes(value, &bytes);
      options.max_memory_bytes = bytes;
    } else {
      ok = false;
    }
    if (!ok) {
      std::cerr << "cluster2-cache: bad argument '" << arg
                << "'\nusage: cluster2-cache --socket=PATH [--data-dir=DIR] "
                   "[--max-value-bytes=N] [--max-memory=N[k|m|g]]\n";
      return 2;
    }
  }
  return cluster2::RunCacheServer(options);
}
