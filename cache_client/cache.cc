#include "cache_client/cache.h"

#include <cstdlib>
#include <utility>

#include "absl/strings/match.h"
#include "cache_client/internal/client.h"

namespace cluster2 {

absl::StatusOr<std::unique_ptr<CacheClient>> CacheClient::Connect(
    Options options) {
  if (options.address.empty()) {
    const char* env = getenv("CLUSTER2_CACHE");
    if (env == nullptr || *env == '\0') {
      return absl::FailedPreconditionError(
          "no cache server address: CLUSTER2_CACHE is not set (is the master "
          "running with cache.enable?)");
    }
    options.address = env;
  }
  if (!absl::StartsWith(options.address, "unix:"))
    options.address = "unix:" + options.address;
  return std::make_unique<cache_internal::ClientImpl>(std::move(options));
}

}  // namespace cluster2
