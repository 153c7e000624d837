// cluster2-cache --socket PATH [--max-value-bytes N]: the cache server.
#include <cstring>
#include <iostream>
#include <string>

#include "absl/strings/numbers.h"
#include "cache_server/cache_server.h"

int main(int argc, char** argv) {
  cluster2::CacheServerOptions options;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg.rfind("--socket=", 0) == 0) {
      options.socket_path = arg.substr(9);
    } else if (arg.rfind("--max-value-bytes=", 0) == 0 &&
               absl::SimpleAtoi(arg.substr(18), &options.max_value_bytes)) {
    } else {
      std::cerr
          << "usage: cluster2-cache --socket=PATH [--max-value-bytes=N]\n";
      return 2;
    }
  }
  return cluster2::RunCacheServer(options);
}
