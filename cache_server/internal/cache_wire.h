// The cache's wire translations: the store's types to and from the
// cluster2.v1 Cache protos, and a failed absl::Status to what a call
// returns (its grpc::Status, with its CacheError as trailing metadata).
//
// Thread-safe: pure functions (WireStatus writes only to the call's own
// context).
#ifndef CLUSTER2_CACHE_SERVER_INTERNAL_CACHE_WIRE_H_
#define CLUSTER2_CACHE_SERVER_INTERNAL_CACHE_WIRE_H_

#include "absl/status/status.h"
#include "cache_server/internal/cache_types.h"
#include "cluster2/v1/cache.pb.h"
#include "grpcpp/server_context.h"

namespace cluster2 {

// `status` as the call's grpc::Status; its CacheError, if any, is added to
// `context`'s trailing metadata (kCacheErrorTrailer).
grpc::Status WireStatus(grpc::ServerContextBase* context,
                        const absl::Status& status);
// `status` as one result of a Batch: its code, message and reason.
void ToProto(const absl::Status& status, v1::BatchResponse::Result* result);

void ToProto(const CacheGetResult& result, v1::GetResponse* response);
void ToProto(const CacheNamespaceOptions& options, v1::NamespaceOptions* proto);
CacheNamespaceOptions FromProto(const v1::NamespaceOptions& proto);
void ToProto(const CacheEvent& change, v1::WatchEvent* event);

}  // namespace cluster2

#endif  // CLUSTER2_CACHE_SERVER_INTERNAL_CACHE_WIRE_H_
