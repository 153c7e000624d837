#include "cache_server/internal/cache_service.h"

#include <memory>

#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "common/proto_time.h"

namespace cluster2 {
namespace {

constexpr absl::Duration kDefaultWait = absl::Seconds(10);
constexpr absl::Duration kDefaultLeaseTtl = absl::Seconds(30);

void ToProto(const CacheGetResult& result, v1::GetResponse* response) {
  response->set_found(result.found);
  response->set_value(result.value);
  response->set_revision(result.revision);
  response->set_lease_token(result.lease_token);
  response->set_load_error(result.load_error);
  response->set_expires_unix_micros(ExpiryUnixMicros(result.expires_at));
}

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

void ToProto(const CacheNamespaceOptions& options,
             v1::NamespaceOptions* proto) {
  proto->set_persist(options.persist);
  cluster2::ToProto(options.expire, proto->mutable_expire());
  if (options.persist) proto->set_fsync(ToProto(options.fsync));
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

// Where a parked Get waits for its answer.
struct Parking {
  absl::Mutex mu;
  bool done ABSL_GUARDED_BY(mu) = false;
  CacheGetResult result ABSL_GUARDED_BY(mu);
};

}  // namespace

void CacheService::Count(const std::string& ns, uint64_t Counters::*counter) {
  absl::MutexLock lock(&mu_);
  ++(counters_[ns].*counter);
}

grpc::Status CacheService::Use(grpc::ServerContext*,
                               const v1::UseRequest* request,
                               v1::UseResponse* response) {
  CacheNamespaceOptions options;
  options.persist = request->options().persist();
  options.expire = FromProto(request->options().expire());
  options.fsync = FromProto(request->options().fsync());
  bool conflict = false;
  auto used = store_->Use(request->namespace_(), options, &conflict);
  if (!used.ok()) return ToGrpcStatus(used.status());
  ToProto(*used, response->mutable_options());
  response->set_conflict(conflict);
  return grpc::Status::OK;
}

absl::Status CacheService::DoGet(grpc::ServerContext* context,
                                 const v1::GetRequest& request,
                                 v1::GetResponse* response) {
  if (!request.lease()) {
    auto got = store_->Get(request.namespace_(), request.key());
    if (!got.ok()) return got.status();
    Count(request.namespace_(),
          got->found ? &Counters::hits : &Counters::misses);
    ToProto(*got, response);
    return absl::OkStatus();
  }
  auto parking = std::make_shared<Parking>();
  uint64_t waiter_id = 0;
  absl::Duration ttl = request.has_lease_ttl() ? FromProto(request.lease_ttl())
                                               : kDefaultLeaseTtl;
  absl::StatusOr<std::optional<CacheGetResult>> got;
  {
    // Under mu_ with the Hold check, so that the end of a Hold (which
    // releases the client's leases under mu_ too) cannot slip in between.
    absl::MutexLock lock(&mu_);
    if (holds_.count(request.client_id()) == 0) {
      return absl::FailedPreconditionError(
          "a lease needs a live Hold stream for client_id '" +
          request.client_id() + "'");
    }
    got = store_->GetOrLease(
        request.namespace_(), request.key(), request.client_id(), ttl,
        [parking](const CacheGetResult& result) {
          absl::MutexLock lock(&parking->mu);
          parking->result = result;
          parking->done = true;
        },
        &waiter_id);
  }
  if (!got.ok()) return got.status();
  if (got->has_value()) {
    const CacheGetResult& result = **got;
    Count(request.namespace_(),
          result.found ? &Counters::hits : &Counters::loads);
    ToProto(result, response);
    return absl::OkStatus();
  }
  // Parked: wait for the value, an error or a lease of our own. Give up a
  // little before the caller's own deadline, so that an answer (a lease
  // above all) still reaches it.
  absl::Duration wait =
      request.has_wait() ? FromProto(request.wait()) : kDefaultWait;
  absl::Time deadline =
      absl::Now() + wait - std::min(wait / 10, absl::Milliseconds(100));
  CacheGetResult result;
  {
    absl::MutexLock lock(&parking->mu);
    while (!parking->done) {
      if (context->IsCancelled() || absl::Now() >= deadline) {
        parking->mu.Unlock();
        bool cancelled = store_->CancelWaiter(waiter_id);
        parking->mu.Lock();
        if (!cancelled) {
          // Already answered: the answer is on its way to `parking`.
          parking->mu.Await(absl::Condition(&parking->done));
          break;
        }
        return context->IsCancelled()
                   ? absl::CancelledError("cancelled")
                   : absl::DeadlineExceededError(absl::StrCat(
                         "no value within ", absl::FormatDuration(wait),
                         " (the wait option)"));
      }
      parking->mu.AwaitWithTimeout(absl::Condition(&parking->done),
                                   absl::Milliseconds(50));
    }
    result = parking->result;
  }  // (the service's lock is taken before a parking's, never inside one)
  if (result.hold_lost) {
    return absl::FailedPreconditionError("the Hold stream of client_id '" +
                                         request.client_id() +
                                         "' ended while this call waited");
  }
  if (!result.lease_token.empty() && context->IsCancelled()) {
    // A lease for a caller that is gone: pass it on at once.
    store_
        ->ReleaseLease(request.namespace_(), request.key(), result.lease_token,
                       "", /*retry=*/true)
        .IgnoreError();
    return absl::CancelledError("cancelled");
  }
  Count(request.namespace_(), !result.lease_token.empty() ? &Counters::loads
                              : result.found              ? &Counters::hits
                                                          : &Counters::errors);
  ToProto(result, response);
  return absl::OkStatus();
}

grpc::Status CacheService::Get(grpc::ServerContext* context,
                               const v1::GetRequest* request,
                               v1::GetResponse* response) {
  return ToGrpcStatus(DoGet(context, *request, response));
}

absl::Status CacheService::DoSet(const v1::SetRequest& request,
                                 v1::SetResponse* response) {
  auto set = store_->Set(request.namespace_(), request.key(), request.value(),
                         FromProto(request.ttl()), request.leave_if_not_null(),
                         request.lease_token());
  if (!set.ok()) return set.status();
  response->set_written(set->written);
  response->set_current(set->current);
  response->set_revision(set->revision);
  response->set_expires_unix_micros(ExpiryUnixMicros(set->expires_at));
  return absl::OkStatus();
}

grpc::Status CacheService::Set(grpc::ServerContext*,
                               const v1::SetRequest* request,
                               v1::SetResponse* response) {
  return ToGrpcStatus(DoSet(*request, response));
}

grpc::Status CacheService::ReleaseLease(grpc::ServerContext*,
                                        const v1::ReleaseLeaseRequest* request,
                                        v1::ReleaseLeaseResponse*) {
  if (!request->retry()) Count(request->namespace_(), &Counters::errors);
  return ToGrpcStatus(store_->ReleaseLease(
      request->namespace_(), request->key(), request->lease_token(),
      request->error(), request->retry()));
}

absl::Status CacheService::DoDelete(const v1::DeleteRequest& request,
                                    v1::DeleteResponse* response) {
  auto deleted = store_->Delete(request.namespace_(), request.key());
  if (!deleted.ok()) return deleted.status();
  response->set_found(deleted->old_value.has_value());
  if (deleted->old_value.has_value())
    response->set_old_value(*deleted->old_value);
  response->set_revision(deleted->revision);
  return absl::OkStatus();
}

grpc::Status CacheService::Delete(grpc::ServerContext*,
                                  const v1::DeleteRequest* request,
                                  v1::DeleteResponse* response) {
  return ToGrpcStatus(DoDelete(*request, response));
}

grpc::Status CacheService::Keys(grpc::ServerContext*,
                                const v1::KeysRequest* request,
                                v1::KeysResponse* response) {
  size_t limit =
      request->limit() == 0 ? 1000 : std::min<size_t>(request->limit(), 10000);
  auto keys = store_->Keys(request->namespace_(), request->prefix(), limit,
                           request->page_token());
  if (!keys.ok()) return ToGrpcStatus(keys.status());
  for (const std::string& key : *keys) response->add_keys(key);
  if (keys->size() == limit) response->set_next_page_token(keys->back());
  return grpc::Status::OK;
}

grpc::Status CacheService::Stats(grpc::ServerContext*,
                                 const v1::StatsRequest* request,
                                 v1::StatsResponse* response) {
  std::vector<CacheNamespaceInfo> infos =
      store_->Namespaces(request->namespace_());
  if (infos.empty() && !request->namespace_().empty()) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND,
                        "no namespace '" + request->namespace_() + "'");
  }
  absl::MutexLock lock(&mu_);
  for (const CacheNamespaceInfo& info : infos) {
    v1::NamespaceStats* stats = response->add_namespaces();
    stats->set_namespace_(info.name);
    auto counters = counters_.find(info.name);
    if (counters != counters_.end()) {
      stats->set_hits(counters->second.hits);
      stats->set_misses(counters->second.misses);
      stats->set_loads(counters->second.loads);
      stats->set_errors(counters->second.errors);
    }
    stats->set_keys(info.keys);
    stats->set_bytes(info.bytes);
    stats->set_waiting(info.waiting);
    ToProto(info.options, stats->mutable_options());
  }
  return grpc::Status::OK;
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
                   : DoGet(nullptr, op.get(), result->mutable_get());
    } else if (op.has_set()) {
      status = DoSet(op.set(), result->mutable_set());
    } else if (op.has_delete_()) {
      status = DoDelete(op.delete_(), result->mutable_delete_());
    } else {
      status = absl::InvalidArgumentError("an empty op");
    }
    result->set_code(static_cast<int>(status.code()));
    result->set_message(std::string(status.message()));
  }
}

grpc::ServerUnaryReactor* CacheService::Batch(
    grpc::CallbackServerContext* context, const v1::BatchRequest* request,
    v1::BatchResponse* response) {
  RunBatch(*request, response);
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

namespace {

// One Pipeline stream: reads a batch, runs it, queues its answer; one write
// at a time, in order.
class PipelineReactor final
    : public grpc::ServerBidiReactor<v1::BatchRequest, v1::BatchResponse> {
 public:
  explicit PipelineReactor(CacheService* service) : service_(service) {
    StartRead(&request_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {  // the client closed its side, or the call ended
      absl::MutexLock lock(&mu_);
      reading_ = false;
      MaybeFinishLocked();
      return;
    }
    v1::BatchResponse response;
    service_->RunBatch(request_, &response);
    bool read_more;
    {
      absl::MutexLock lock(&mu_);
      pending_.push_back(std::move(response));
      if (!writing_) WriteNextLocked();
      // A client that writes without reading must not fill this memory:
      // read again once the answers drain.
      read_more = pending_.size() < kMaxPending;
      read_paused_ = !read_more;
    }
    if (read_more) StartRead(&request_);
  }

  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&mu_);
    writing_ = false;
    if (!ok) {
      pending_.clear();
      failed_ = true;
      if (read_paused_) reading_ = false;  // no read is outstanding
    }
    if (read_paused_ && pending_.size() < kMaxPending && !failed_) {
      read_paused_ = false;
      StartRead(&request_);
    }
    if (!pending_.empty()) {
      WriteNextLocked();
    } else {
      MaybeFinishLocked();
    }
  }

  void OnDone() override { delete this; }

 private:
  void WriteNextLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    writing_ = true;
    current_ = std::move(pending_.front());
    pending_.pop_front();
    StartWrite(&current_);
  }
  void MaybeFinishLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (reading_ || writing_ || finished_) return;
    if (!pending_.empty() && !failed_) return;
    finished_ = true;
    Finish(grpc::Status::OK);
  }

  static constexpr size_t kMaxPending = 16;
  CacheService* const service_;
  v1::BatchRequest request_;
  bool read_paused_ ABSL_GUARDED_BY(mu_) = false;
  absl::Mutex mu_;
  std::deque<v1::BatchResponse> pending_ ABSL_GUARDED_BY(mu_);
  v1::BatchResponse current_ ABSL_GUARDED_BY(mu_);
  bool reading_ ABSL_GUARDED_BY(mu_) = true;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool failed_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace

grpc::ServerBidiReactor<v1::BatchRequest, v1::BatchResponse>*
CacheService::Pipeline(grpc::CallbackServerContext*) {
  return new PipelineReactor(this);
}

namespace {

// A stream that ends at once with `status`.
template <typename T>
class FailedWriter final : public grpc::ServerWriteReactor<T> {
 public:
  explicit FailedWriter(const grpc::Status& status) { this->Finish(status); }
  void OnDone() override { delete this; }
};

// One Hold stream: says "registered", then stays open; its end (the client
// cancelled, or its process or connection is gone) releases the client's
// leases at once.
class HoldReactor final : public grpc::ServerWriteReactor<v1::HoldEvent> {
 public:
  HoldReactor(std::function<void()> on_end) : on_end_(std::move(on_end)) {
    StartWrite(&registered_);
  }
  void OnWriteDone(bool) override {}
  void OnCancel() override {
    on_end_();
    Finish(grpc::Status::OK);
  }
  void OnDone() override { delete this; }

 private:
  const std::function<void()> on_end_;
  const v1::HoldEvent registered_;
};

// One Watch stream: the store pushes changes (under its lock) into a
// bounded queue; one write at a time drains it. A consumer that lets
// kMaxQueuedEvents pile up is ended with RESOURCE_EXHAUSTED (it resumes).
class WatchReactor final : public grpc::ServerWriteReactor<v1::WatchEvent>,
                           public CacheWatcher {
 public:
  WatchReactor(CacheStore* store, uint64_t from_revision)
      : store_(store), last_(from_revision) {}

  // Registers with the store, or finishes with the store's error.
  void Start(grpc::CallbackServerContext* context,
             const v1::WatchRequest& request) {
    absl::StatusOr<bool> resync = store_->Watch(
        request.namespace_(), request.key(), request.from_revision(), this);
    if (!resync.ok()) {
      registered_ = false;
      absl::MutexLock lock(&mu_);
      FinishLocked(ToGrpcStatus(resync.status()));
      return;
    }
    // Registered: nothing after this is missed. The metadata key tells the
    // client so (an error would come without it).
    context->AddInitialMetadata("cluster2-watch", "live");
    absl::MutexLock lock(&mu_);
    if (*resync) {  // before any change queued since the registration
      v1::WatchEvent event;
      event.set_resync(true);
      queue_.push_front(std::move(event));
    }
    started_ = true;
    if (queue_.empty()) {
      StartSendInitialMetadata();
    } else {
      WriteNextLocked();
    }
  }

  void OnEvent(const CacheEvent& change) override {
    absl::MutexLock lock(&mu_);
    if (finished_ || overflow_) return;
    if (queue_.size() >= CacheService::kMaxQueuedEvents) {
      overflow_ = true;
      if (!writing_ && started_) EndSlowLocked();
      return;
    }
    v1::WatchEvent event;
    event.set_kind(ToProto(change.kind));
    event.set_key(change.key);
    event.set_value(change.value);
    event.set_revision(change.revision);
    event.set_expires_unix_micros(ExpiryUnixMicros(change.expires_at));
    queue_.push_back(std::move(event));
    if (!writing_ && started_) WriteNextLocked();
  }

  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&mu_);
    writing_ = false;
    if (!ok) return FinishLocked(grpc::Status::OK);  // the client is gone
    if (current_.revision() != 0) last_ = current_.revision();
    if (!queue_.empty()) return WriteNextLocked();
    if (overflow_) EndSlowLocked();
  }

  void OnCancel() override {
    absl::MutexLock lock(&mu_);
    FinishLocked(grpc::Status::CANCELLED);
  }

  void OnDone() override {
    if (registered_) store_->Unwatch(this);  // no OnEvent after this
    delete this;
  }

 private:
  void WriteNextLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finished_) return;
    current_ = std::move(queue_.front());
    queue_.pop_front();
    writing_ = true;
    StartWrite(&current_);
  }
  void EndSlowLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    FinishLocked(grpc::Status(
        grpc::StatusCode::RESOURCE_EXHAUSTED,
        absl::StrCat("slow consumer: more than ",
                     CacheService::kMaxQueuedEvents,
                     " changes queued; resume from revision ", last_)));
  }
  void FinishLocked(const grpc::Status& status)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finished_) return;
    finished_ = true;
    queue_.clear();
    Finish(status);
  }

  CacheStore* const store_;
  bool registered_ = true;  // set before any callback can run
  absl::Mutex mu_;
  std::deque<v1::WatchEvent> queue_ ABSL_GUARDED_BY(mu_);
  v1::WatchEvent current_ ABSL_GUARDED_BY(mu_);
  uint64_t last_ ABSL_GUARDED_BY(mu_);
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool overflow_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace

grpc::ServerWriteReactor<v1::HoldEvent>* CacheService::Hold(
    grpc::CallbackServerContext*, const v1::HoldRequest* request) {
  std::string client = request->client_id();
  if (client.empty()) {
    return new FailedWriter<v1::HoldEvent>(
        grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "client_id is empty"));
  }
  {
    absl::MutexLock lock(&mu_);
    if (!holds_.emplace(client, true).second) {
      return new FailedWriter<v1::HoldEvent>(
          grpc::Status(grpc::StatusCode::ALREADY_EXISTS,
                       "another Hold stream uses client_id '" + client + "'"));
    }
  }
  return new HoldReactor([this, client] {
    // Its leases pass on at once; a new Hold of the same client_id can only
    // register after that, so its own leases are never released by this one.
    absl::MutexLock lock(&mu_);
    store_->ReleaseClient(client);
    holds_.erase(client);
  });
}

grpc::ServerWriteReactor<v1::WatchEvent>* CacheService::Watch(
    grpc::CallbackServerContext* context, const v1::WatchRequest* request) {
  auto* reactor = new WatchReactor(store_, request->from_revision());
  reactor->Start(context, *request);
  return reactor;
}

}  // namespace cluster2
