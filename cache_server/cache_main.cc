// cluster2-cache: the cache server. Its options: cache_flags.h.
#include <iostream>
#include <string>
#include <vector>

#include "cache_server/cache_flags.h"
#include "cache_server/cache_server.h"

int main(int argc, char** argv) {
  absl::StatusOr<cluster2::CacheServerOptions> options =
      cluster2::ParseCacheServerArgs(
          std::vector<std::string>(argv + 1, argv + argc));
  if (!options.ok()) {
    std::cerr << "cluster2-cache: " << options.status().message() << "\n"
              << cluster2::kCacheServerUsage << "\n";
    return 2;
  }
  return cluster2::RunCacheServer(*options);
}
