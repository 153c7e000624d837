#include "cache_server/internal/cache_wire.h"

#include <string>

#include "cache_server/cache_errors.h"
#include "common/grpc_status.h"
#include "common/proto_time.h"

namespace cluster2 {
namespace {

FsyncPolicy FromProto(v1::NamespaceOptions::Fsync fsync) {
  switch (fsync) {
    case v1::NamespaceOptions::FSYNC_ALWAYS:
      return FsyncPolicy::kAlways;
    case v1::NamespaceOptions::FSYNC_NO:
      return FsyncPolicy::kNo;
    default:
      return FsyncPolicy::kEverySec;
  }
}

v1::NamespaceOptions::Fsync ToProto(FsyncPolicy fsync) {
  switch (fsync) {
    case FsyncPolicy::kAlways:
      return v1::NamespaceOptions::FSYNC_ALWAYS;
    case FsyncPolicy::kNo:
      return v1::NamespaceOptions::FSYNC_NO;
    default:
      return v1::NamespaceOptions::FSYNC_EVERYSEC;
  }
}

v1::WatchEvent::Kind ToProto(CacheEvent::Kind kind) {
  switch (kind) {
    case CacheEvent::Kind::kSet:
      return v1::WatchEvent::KIND_SET;
    case CacheEvent::Kind::kDelete:
      return v1::WatchEvent::KIND_DELETE;
    case CacheEvent::Kind::kExpire:
      return v1::WatchEvent::KIND_EXPIRE;
    case CacheEvent::Kind::kEvict:
      return v1::WatchEvent::KIND_EVICT;
  }
  return v1::WatchEvent::KIND_UNSPECIFIED;
}

}  // namespace

grpc::Status WireStatus(grpc::ServerContextBase* context,
                        const absl::Status& status) {
  if (std::optional<CacheError> error = GetCacheError(status)) {
    context->AddTrailingMetadata(std::string(kCacheErrorTrailer),
                                 std::string(CacheErrorName(*error)));
  }
  return ToGrpcStatus(status);
}

void ToProto(const absl::Status& status, v1::BatchResponse::Result* result) {
  result->set_code(static_cast<int>(status.code()));
  result->set_message(std::string(status.message()));
  if (std::optional<CacheError> error = GetCacheError(status))
    result->set_reason(static_cast<v1::CacheErrorReason>(*error));
}

void ToProto(const CacheGetResult& result, v1::GetResponse* response) {
  response->set_found(result.found);
  response->set_value(result.value);
  response->set_revision(result.revision);
  response->set_lease_token(result.lease_token);
  response->set_load_error(result.load_error);
  response->set_expires_unix_micros(ExpiryUnixMicros(result.expires_at));
}

void ToProto(const CacheNamespaceOptions& options,
             v1::NamespaceOptions* proto) {
  proto->set_persist(options.persist);
  cluster2::ToProto(options.expire, proto->mutable_expire());
  if (options.persist) proto->set_fsync(ToProto(options.fsync));
}

CacheNamespaceOptions FromProto(const v1::NamespaceOptions& proto) {
  CacheNamespaceOptions options;
  options.persist = proto.persist();
  options.expire = cluster2::FromProto(proto.expire());
  options.fsync = FromProto(proto.fsync());
  return options;
}

void ToProto(const CacheEvent& change, v1::WatchEvent* event) {
  event->set_kind(ToProto(change.kind));
  event->set_key(change.key);
  event->set_value(change.value);
  event->set_revision(change.revision);
  event->set_expires_unix_micros(ExpiryUnixMicros(change.expires_at));
}

}  // namespace cluster2
