#include "cache_client/internal/errors.h"

#include "absl/strings/match.h"
#include "common/grpc_status.h"

// TODO(cache server): the server does not mark its errors yet. The client
// needs, per failed unary call, the trailing metadata "cluster2-cache-error"
// and, per failed op of a Batch/Pipeline, BatchResponse.Result.reason
// (cluster2.v1.CacheErrorReason), naming NAMESPACE_NOT_FOUND, HOLD_MISSING,
// HOLD_LOST and LEASE_NOT_HELD (cache_server/cache_errors.h, in progress).
// Once they are on the wire, attach them here with WithCacheError and test
// GetCacheError below; until then NOT_FOUND and FAILED_PRECONDITION are
// told apart by the only other thing they carry, their message, and only in
// this file.

namespace cluster2::cache_internal {

absl::Status StatusOfCall(const grpc::Status& status,
                          const grpc::ClientContext&) {
  return FromGrpcStatus(status);
}

absl::Status StatusOfResult(const v1::BatchResponse::Result& result) {
  return absl::Status(static_cast<absl::StatusCode>(result.code()),
                      result.message());
}

bool IsNamespaceNotFound(const absl::Status& status) {
  return status.code() == absl::StatusCode::kNotFound &&
         absl::StartsWith(status.message(), "no namespace");
}

// Until the reasons are on the wire, these two rely on the only
// FAILED_PRECONDITION a lease Get and a lease Set can get.
bool IsHoldMissing(const absl::Status& status) {
  return status.code() == absl::StatusCode::kFailedPrecondition;
}

bool IsLeaseNotHeld(const absl::Status& status) {
  return status.code() == absl::StatusCode::kFailedPrecondition;
}

}  // namespace cluster2::cache_internal
