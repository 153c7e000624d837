#include "cache_server/internal/cache_service.h"

#include <atomic>

#include "cache_server/cache_errors.h"
#include "cache_server/internal/cache_wire.h"
#include "common/proto_time.h"

namespace cluster2 {
namespace {

constexpr absl::Duration kDefaultWait = absl::Seconds(10);
constexpr absl::Duration kDefaultLeaseTtl = absl::Seconds(30);

// Finishes a unary call at once with `status`.
grpc::ServerUnaryReactor* Finished(grpc::CallbackServerContext* context,
                                   const absl::Status& status) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(WireStatus(context, status));
  return reactor;
}

absl::Status PlainGet(CacheStore* store, const v1::GetRequest& request,
                      v1::GetResponse* response) {
  absl::StatusOr<CacheGetResult> got =
      store->Get(request.namespace_(), request.key());
  if (!got.ok()) return got.status();
  ToProto(*got, response);
  return absl::OkStatus();
}

// One get-or-load. Answered at once on a hit or a lease; otherwise parked
// in the store, holding no thread, until the store calls Answer (value,
// load error, lease, HOLD_LOST, WAIT_EXPIRED) or the client goes away
// (OnCancel). Exactly one of the two finishes the call: CancelWaiter
// returns true only when the waiter will never be called.
class GetOrLoadReactor final : public grpc::ServerUnaryReactor {
 public:
  GetOrLoadReactor(CacheStore* store, grpc::CallbackServerContext* context,
                   const v1::GetRequest* request, v1::GetResponse* response)
      : store_(store),
        context_(context),
        request_(request),
        response_(response) {}

  void Start() {
    absl::Duration ttl = request_->has_lease_ttl()
                             ? FromProto(request_->lease_ttl())
                             : kDefaultLeaseTtl;
    absl::Duration wait =
        request_->has_wait() ? FromProto(request_->wait()) : kDefaultWait;
    uint64_t waiter_id = 0;
    absl::StatusOr<std::optional<CacheGetResult>> got = store_->GetOrLease(
        request_->namespace_(), request_->key(), request_->client_id(), ttl,
        [this](absl::StatusOr<CacheGetResult> result) {
          Answer(std::move(result));
        },
        &waiter_id, wait);
    if (!got.ok()) return Finish(WireStatus(context_, got.status()));
    if (got->has_value()) {
      ToProto(**got, response_);
      return Finish(grpc::Status::OK);
    }
    waiter_id_.store(waiter_id);
  }

  void OnCancel() override {
    uint64_t waiter_id = waiter_id_.load();
    if (waiter_id != 0 && store_->CancelWaiter(waiter_id))
      Finish(grpc::Status::CANCELLED);
  }

  void OnDone() override { delete this; }

 private:
  void Answer(absl::StatusOr<CacheGetResult> result) {
    if (!result.ok()) return Finish(WireStatus(context_, result.status()));
    if (!result->lease_token.empty() && context_->IsCancelled()) {
      // A lease for a caller that is gone: pass it on at once.
      store_
          ->ReleaseLease(request_->namespace_(), request_->key(),
                         result->lease_token, "", /*retry=*/true)
          .IgnoreError();
      return Finish(grpc::Status::CANCELLED);
    }
    ToProto(*result, response_);
    Finish(grpc::Status::OK);
  }

  CacheStore* const store_;
  grpc::CallbackServerContext* const context_;
  const v1::GetRequest* const request_;
  v1::GetResponse* const response_;
  std::atomic<uint64_t> waiter_id_{0};
};

absl::Status DoSet(CacheStore* store, const v1::SetRequest& request,
                   v1::SetResponse* response) {
  auto set = store->Set(request.namespace_(), request.key(), request.value(),
                        FromProto(request.ttl()), request.leave_if_not_null(),
                        request.lease_token());
  if (!set.ok()) return set.status();
  response->set_written(set->written);
  response->set_current(set->current);
  response->set_revision(set->revision);
  response->set_expires_unix_micros(ExpiryUnixMicros(set->expires_at));
  return absl::OkStatus();
}

absl::Status DoDelete(CacheStore* store, const v1::DeleteRequest& request,
                      v1::DeleteResponse* response) {
  auto deleted = store->Delete(request.namespace_(), request.key());
  if (!deleted.ok()) return deleted.status();
  response->set_found(deleted->old_value.has_value());
  if (deleted->old_value.has_value())
    response->set_old_value(*deleted->old_value);
  response->set_revision(deleted->revision);
  return absl::OkStatus();
}

}  // namespace

grpc::ServerUnaryReactor* CacheService::Use(
    grpc::CallbackServerContext* context, const v1::UseRequest* request,
    v1::UseResponse* response) {
  bool conflict = false;
  auto used = store_->Use(request->namespace_(), FromProto(request->options()),
                          &conflict);
  if (used.ok()) {
    ToProto(*used, response->mutable_options());
    response->set_conflict(conflict);
  }
  return Finished(context, used.status());
}

grpc::ServerUnaryReactor* CacheService::Get(
    grpc::CallbackServerContext* context, const v1::GetRequest* request,
    v1::GetResponse* response) {
  if (!request->lease())
    return Finished(context, PlainGet(store_, *request, response));
  auto* reactor = new GetOrLoadReactor(store_, context, request, response);
  reactor->Start();
  return reactor;
}

grpc::ServerUnaryReactor* CacheService::Set(
    grpc::CallbackServerContext* context, const v1::SetRequest* request,
    v1::SetResponse* response) {
  return Finished(context, DoSet(store_, *request, response));
}

grpc::ServerUnaryReactor* CacheService::ReleaseLease(
    grpc::CallbackServerContext* context,
    const v1::ReleaseLeaseRequest* request, v1::ReleaseLeaseResponse*) {
  return Finished(context,
                  store_->ReleaseLease(request->namespace_(), request->key(),
                                       request->lease_token(), request->error(),
                                       request->retry()));
}

grpc::ServerUnaryReactor* CacheService::Delete(
    grpc::CallbackServerContext* context, const v1::DeleteRequest* request,
    v1::DeleteResponse* response) {
  return Finished(context, DoDelete(store_, *request, response));
}

grpc::ServerUnaryReactor* CacheService::Keys(
    grpc::CallbackServerContext* context, const v1::KeysRequest* request,
    v1::KeysResponse* response) {
  size_t limit =
      request->limit() == 0 ? 1000 : std::min<size_t>(request->limit(), 10000);
  auto keys = store_->Keys(request->namespace_(), request->prefix(), limit,
                           request->page_token());
  if (keys.ok()) {
    for (const std::string& key : *keys) response->add_keys(key);
    if (keys->size() == limit) response->set_next_page_token(keys->back());
  }
  return Finished(context, keys.status());
}

grpc::ServerUnaryReactor* CacheService::Stats(
    grpc::CallbackServerContext* context, const v1::StatsRequest* request,
    v1::StatsResponse* response) {
  std::vector<CacheNamespaceInfo> infos =
      store_->Namespaces(request->namespace_());
  if (infos.empty() && !request->namespace_().empty()) {
    return Finished(context, MakeCacheError(absl::StatusCode::kNotFound,
                                            CacheError::kNamespaceNotFound,
                                            "no namespace '" +
                                                request->namespace_() + "'"));
  }
  for (const CacheNamespaceInfo& info : infos) {
    v1::NamespaceStats* stats = response->add_namespaces();
    stats->set_namespace_(info.name);
    stats->set_hits(info.counters.hits);
    stats->set_misses(info.counters.misses);
    stats->set_loads(info.counters.loads);
    stats->set_errors(info.counters.errors);
    stats->set_keys(info.keys);
    stats->set_bytes(info.bytes);
    stats->set_waiting(info.waiting);
    ToProto(info.options, stats->mutable_options());
  }
  return Finished(context, absl::OkStatus());
}

void CacheService::RunBatch(const v1::BatchRequest& request,
                            v1::BatchResponse* response) {
  response->set_id(request.id());
  for (const v1::BatchRequest::Op& op : request.ops()) {
    v1::BatchResponse::Result* result = response->add_results();
    absl::Status status;
    if (op.has_get()) {
      status = op.get().lease()
                   ? absl::InvalidArgumentError(
                         "get-or-load is not allowed in a batch")
                   : PlainGet(store_, op.get(), result->mutable_get());
    } else if (op.has_set()) {
      status = DoSet(store_, op.set(), result->mutable_set());
    } else if (op.has_delete_()) {
      status = DoDelete(store_, op.delete_(), result->mutable_delete_());
    } else {
      status = absl::InvalidArgumentError("an empty op");
    }
    ToProto(status, result);
  }
}

grpc::ServerUnaryReactor* CacheService::Batch(
    grpc::CallbackServerContext* context, const v1::BatchRequest* request,
    v1::BatchResponse* response) {
  RunBatch(*request, response);
  return Finished(context, absl::OkStatus());
}

}  // namespace cluster2
