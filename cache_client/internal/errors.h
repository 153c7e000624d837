// How the cache client reads the cache server's errors: by code and reason,
// never by message text, in this one place.
//
// Thread-safe: pure functions.
#ifndef CLUSTER2_CACHE_CLIENT_INTERNAL_ERRORS_H_
#define CLUSTER2_CACHE_CLIENT_INTERNAL_ERRORS_H_

#include "absl/status/status.h"
#include "cluster2/v1/cache.pb.h"
#include "grpcpp/grpcpp.h"

namespace cluster2::cache_internal {

// The status of a finished call, with the server's error reason attached.
absl::Status StatusOfCall(const grpc::Status& status,
                          const grpc::ClientContext& context);
// The status of one operation of a batch.
absl::Status StatusOfResult(const v1::BatchResponse::Result& result);

// The namespace does not exist on the server (it restarted without it):
// Use it again, then retry.
bool IsNamespaceNotFound(const absl::Status& status);
// Of a lease Get: no live Hold stream for this client (or its Hold ended
// while it was parked): wait for the Hold, then retry.
bool IsHoldMissing(const absl::Status& status);
// Of a lease Set: the token no longer holds the key's lease.
bool IsLeaseNotHeld(const absl::Status& status);

}  // namespace cluster2::cache_internal

#endif  // CLUSTER2_CACHE_CLIENT_INTERNAL_ERRORS_H_
