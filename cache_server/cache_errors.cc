#include "cache_server/cache_errors.h"

#include <string>
#include <utility>

#include "absl/strings/cord.h"

namespace cluster2 {
namespace {

struct Named {
  CacheError error;
  absl::string_view name;
};

constexpr Named kNames[] = {
    {CacheError::kNamespaceNotFound, "NAMESPACE_NOT_FOUND"},
    {CacheError::kLeaseNotHeld, "LEASE_NOT_HELD"},
    {CacheError::kHoldMissing, "HOLD_MISSING"},
    {CacheError::kHoldLost, "HOLD_LOST"},
    {CacheError::kHoldInUse, "HOLD_IN_USE"},
    {CacheError::kNamespaceReadOnly, "NAMESPACE_READ_ONLY"},
    {CacheError::kPersistenceUnavailable, "PERSISTENCE_UNAVAILABLE"},
    {CacheError::kValueTooLarge, "VALUE_TOO_LARGE"},
    {CacheError::kMemoryFull, "MEMORY_FULL"},
    {CacheError::kPersistenceFailed, "PERSISTENCE_FAILED"},
    {CacheError::kWaitExpired, "WAIT_EXPIRED"},
    {CacheError::kSlowConsumer, "SLOW_CONSUMER"},
};

}  // namespace

absl::string_view CacheErrorName(CacheError error) {
  for (const Named& named : kNames) {
    if (named.error == error) return named.name;
  }
  return "CACHE_ERROR_REASON_UNSPECIFIED";
}

std::optional<CacheError> ParseCacheError(absl::string_view name) {
  for (const Named& named : kNames) {
    if (named.name == name) return named.error;
  }
  return std::nullopt;
}

absl::Status MakeCacheError(absl::StatusCode code, CacheError error,
                            absl::string_view message) {
  return WithCacheError(absl::Status(code, message), error);
}

absl::Status WithCacheError(absl::Status status, CacheError error) {
  if (!status.ok()) {
    status.SetPayload(kCacheErrorTypeUrl, absl::Cord(CacheErrorName(error)));
  }
  return status;
}

std::optional<CacheError> GetCacheError(const absl::Status& status) {
  auto payload = status.GetPayload(kCacheErrorTypeUrl);
  if (!payload.has_value()) return std::nullopt;
  return ParseCacheError(std::string(*payload));
}

}  // namespace cluster2
