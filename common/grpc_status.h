// The one place where absl::Status and grpc::Status are converted. The two
// code spaces are the same numbers (both follow google.rpc.Code).
//
// Thread-safe: pure functions.
#ifndef CLUSTER2_COMMON_GRPC_STATUS_H_
#define CLUSTER2_COMMON_GRPC_STATUS_H_

#include "absl/status/status.h"
#include "grpcpp/support/status.h"

namespace cluster2 {

grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status FromGrpcStatus(const grpc::Status& status);

}  // namespace cluster2

#endif  // CLUSTER2_COMMON_GRPC_STATUS_H_
