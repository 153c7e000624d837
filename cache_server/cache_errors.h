// The cache's typed errors: what a failed cache call means, so that callers
// never read it from the message text.
//
// A failure of the cache server's domain carries, besides its code, a
// CacheError reason as an absl::Status payload (type URL kCacheErrorTypeUrl,
// the payload being the reason's name, e.g. "NAMESPACE_NOT_FOUND"). On the
// wire the same name travels as the trailing metadata kCacheErrorTrailer of
// the call and, for each operation of a Batch or Pipeline, in
// BatchResponse.Result.reason (cluster2.v1.CacheErrorReason, the same names
// and numbers). A client turns what it received back into a status with
// WithCacheError and tests it with GetCacheError, never with the message.
//
// Thread-safe: pure functions and constants.
#ifndef CLUSTER2_CACHE_SERVER_CACHE_ERRORS_H_
#define CLUSTER2_CACHE_SERVER_CACHE_ERRORS_H_

#include <optional>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace cluster2 {

// Why a cache call failed. The numbers and names are those of
// cluster2.v1.CacheErrorReason in proto/cluster2/v1/cache.proto.
enum class CacheError {
  // NOT_FOUND: the namespace does not exist (never Used, or the server
  // restarted without it): Use it again, then retry.
  kNamespaceNotFound = 1,
  // FAILED_PRECONDITION: the lease token no longer holds the key's lease
  // (it passed on, the key was set or deleted): drop the loaded value.
  kLeaseNotHeld = 2,
  // FAILED_PRECONDITION: a get-or-load named a client_id without a live Hold
  // stream: open the Hold, then retry.
  kHoldMissing = 3,
  // FAILED_PRECONDITION: the caller's own Hold stream ended while its
  // get-or-load was parked: reopen the Hold, then retry.
  kHoldLost = 4,
  // ALREADY_EXISTS: another live Hold stream uses this client_id.
  kHoldInUse = 5,
  // FAILED_PRECONDITION: a persistent namespace whose files could not be
  // opened or rewritten: it is read-only until the server restarts.
  kNamespaceReadOnly = 6,
  // FAILED_PRECONDITION: persist was asked of a server without a data
  // directory.
  kPersistenceUnavailable = 7,
  // RESOURCE_EXHAUSTED: the value is larger than the server accepts.
  kValueTooLarge = 8,
  // RESOURCE_EXHAUSTED: the memory budget is full of persistent keys,
  // which are never evicted.
  kMemoryFull = 9,
  // RESOURCE_EXHAUSTED (full disk) or another code: writing the
  // namespace's files failed; the change was not applied, or (after
  // "not synced") applied but not synced.
  kPersistenceFailed = 10,
  // DEADLINE_EXCEEDED: a parked get-or-load got no value within its `wait`.
  kWaitExpired = 11,
  // RESOURCE_EXHAUSTED: a Watch stream fell too far behind and was ended:
  // resume from the last revision received.
  kSlowConsumer = 12,
};

// The payload's type URL: "cluster2.io/cache-error".
inline constexpr absl::string_view kCacheErrorTypeUrl =
    "cluster2.io/cache-error";
// The trailing metadata key that carries the reason of a failed call.
inline constexpr absl::string_view kCacheErrorTrailer = "cluster2-cache-error";

// "NAMESPACE_NOT_FOUND" for kNamespaceNotFound, and so on.
absl::string_view CacheErrorName(CacheError error);
// The reason named `name`; nullopt for an unknown name (a newer server).
std::optional<CacheError> ParseCacheError(absl::string_view name);

// A status of `code` and `message` that carries `error`.
absl::Status MakeCacheError(absl::StatusCode code, CacheError error,
                            absl::string_view message);
// `status` (not OK) with `error` attached; OK stays OK.
absl::Status WithCacheError(absl::Status status, CacheError error);
// The reason `status` carries, if any.
std::optional<CacheError> GetCacheError(const absl::Status& status);

}  // namespace cluster2

#endif  // CLUSTER2_CACHE_SERVER_CACHE_ERRORS_H_
