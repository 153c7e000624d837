#include "cache_client/internal/errors.h"

#include <optional>
#include <string>

#include "cache_server/cache_errors.h"
#include "common/grpc_status.h"

namespace cluster2::cache_internal {
namespace {

bool Is(const absl::Status& status, CacheError error) {
  std::optional<CacheError> reason = GetCacheError(status);
  return reason.has_value() && *reason == error;
}

}  // namespace

absl::Status StatusOfCall(const grpc::Status& status,
                          const grpc::ClientContext& context) {
  absl::Status result = FromGrpcStatus(status);
  if (result.ok()) return result;
  const auto& trailers = context.GetServerTrailingMetadata();
  auto it = trailers.find(std::string(kCacheErrorTrailer));
  if (it == trailers.end()) return result;
  std::optional<CacheError> reason =
      ParseCacheError(absl::string_view(it->second.data(), it->second.size()));
  return reason ? WithCacheError(std::move(result), *reason) : result;
}

absl::Status StatusOfResult(const v1::BatchResponse::Result& result) {
  absl::Status status(static_cast<absl::StatusCode>(result.code()),
                      result.message());
  if (status.ok() || result.reason() == v1::CACHE_ERROR_REASON_UNSPECIFIED)
    return status;
  return WithCacheError(std::move(status),
                        static_cast<CacheError>(result.reason()));
}

bool IsNamespaceNotFound(const absl::Status& status) {
  return Is(status, CacheError::kNamespaceNotFound);
}

bool IsHoldMissing(const absl::Status& status) {
  return Is(status, CacheError::kHoldMissing) ||
         Is(status, CacheError::kHoldLost);
}

bool IsLeaseNotHeld(const absl::Status& status) {
  return Is(status, CacheError::kLeaseNotHeld);
}

}  // namespace cluster2::cache_internal
