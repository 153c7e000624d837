#include "cache_client/internal/namespace.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "cache_client/internal/errors.h"
#include "common/proto_time.h"

namespace cluster2::cache_internal {

NamespaceImpl::NamespaceImpl(ClientImpl& client, std::string name,
                             CacheNamespaceConfig config)
    : client_(client), name_(std::move(name)), config_(config) {}

NamespaceImpl::~NamespaceImpl() { near_watch_.reset(); }

bool NamespaceImpl::StartNearCache(absl::Duration wait) {
  near_ = std::make_unique<NearCache>(config_.near_cache_max_entries,
                                      client_.clock());
  NearCache* near = near_.get();
  WatchStream::Options watch;
  watch.ns = name_;
  watch.on_event = [near](const CacheWatchEvent& event) {
    near->OnEvent(event);
  };
  watch.on_live = [near](bool live) { near->SetLive(live); };
  watch.on_namespace_lost = [this] {
    client_.UseAgain(name_, config_, [](absl::Status) {});
  };
  near_watch_ = client_.StartWatch(std::move(watch));
  return near_watch_->WaitUntilLive(wait);
}

template <typename T>
absl::StatusOr<T> NamespaceImpl::Wait(
    const std::function<void(Callback<T>)>& start) {
  if (absl::Status status = client_.CheckMayBlock(); !status.ok())
    return status;
  absl::Notification done;
  absl::StatusOr<T> result = absl::UnknownError("no answer");
  start([&](absl::StatusOr<T> answer) {
    result = std::move(answer);
    done.Notify();
  });
  done.WaitForNotification();  // every call has a deadline
  return result;
}

void NamespaceImpl::Run(Batcher::Op op, Done done, bool retried) {
  auto self = shared_from_this();
  client_.batcher().Submit(
      std::move(op), client_.Deadline(),
      [self, done = std::move(done), retried](
          absl::Status status, const Result* result, Batcher::Op* op) mutable {
        if (retried || !IsNamespaceNotFound(status)) {
          done(std::move(status), result);
          return;
        }
        self->client_.UseAgain(
            self->name_, self->config_,
            [self, again = std::move(*op),
             done = std::move(done)](absl::Status used) mutable {
              if (!used.ok()) return done(std::move(used), nullptr);
              self->Run(std::move(again), std::move(done), true);
            });
      });
}

void NamespaceImpl::GetAsync(const std::string& key,
                             Callback<std::optional<CacheValue>> done) {
  if (near_ != nullptr) {
    if (std::optional<CacheValue> hit = near_->Lookup(key)) {
      ++near_hits_;
      done(std::move(hit));
      return;
    }
  }
  Batcher::Op op;
  op.mutable_get()->set_namespace_(name_);
  op.mutable_get()->set_key(key);
  uint64_t ticket = near_ != nullptr ? near_->Begin() : 0;
  Run(std::move(op), [this, key, ticket, done = std::move(done)](
                         absl::Status status, const Result* result) {
    const v1::GetResponse* got =
        status.ok() && result->get().found() ? &result->get() : nullptr;
    std::optional<CacheValue> value;
    if (got != nullptr) value = CacheValue{got->value(), got->revision()};
    if (near_ != nullptr) {
      near_->EndRead(ticket, key, value ? &*value : nullptr,
                     got != nullptr ? got->expires_unix_micros() : 0);
    }
    if (!status.ok()) return done(std::move(status));
    done(std::move(value));
  });
}

absl::StatusOr<std::optional<CacheValue>> NamespaceImpl::Get(
    const std::string& key) {
  return Wait<std::optional<CacheValue>>(
      [&](Callback<std::optional<CacheValue>> done) {
        GetAsync(key, std::move(done));
      });
}

void NamespaceImpl::SetAsync(const std::string& key, std::string value,
                             CacheSetOptions options,
                             Callback<CacheSetOutcome> done) {
  Batcher::Op op;
  v1::SetRequest* set = op.mutable_set();
  set->set_namespace_(name_);
  set->set_key(key);
  set->set_value(std::move(value));
  set->set_leave_if_not_null(options.leave_if_not_null);
  if (options.ttl > absl::ZeroDuration())
    ToProto(options.ttl, set->mutable_ttl());
  uint64_t ticket = near_ != nullptr ? near_->Begin() : 0;
  // Read-your-writes: the near-cache keeps what this client wrote.
  std::string written = near_ != nullptr ? set->value() : std::string();
  Run(std::move(op),
      [this, key, ticket, written = std::move(written), done = std::move(done)](
          absl::Status status, const Result* result) {
        if (near_ != nullptr) {
          if (status.ok() && result->set().written()) {
            near_->EndWrite(ticket, key, &written, result->set().revision(),
                            result->set().expires_unix_micros());
          } else {
            near_->Abandon();
          }
        }
        if (!status.ok()) return done(std::move(status));
        const v1::SetResponse& set = result->set();
        done(CacheSetOutcome{set.written(), set.current(), set.revision()});
      });
}

absl::StatusOr<CacheSetOutcome> NamespaceImpl::Set(const std::string& key,
                                                   std::string value,
                                                   CacheSetOptions options) {
  return Wait<CacheSetOutcome>([&](Callback<CacheSetOutcome> done) {
    SetAsync(key, std::move(value), options, std::move(done));
  });
}

void NamespaceImpl::DeleteAsync(const std::string& key,
                                Callback<std::optional<std::string>> done) {
  Batcher::Op op;
  op.mutable_delete_()->set_namespace_(name_);
  op.mutable_delete_()->set_key(key);
  uint64_t ticket = near_ != nullptr ? near_->Begin() : 0;
  Run(std::move(op), [this, key, ticket, done = std::move(done)](
                         absl::Status status, const Result* result) {
    if (near_ != nullptr) {
      if (status.ok() && result->delete_().found()) {
        near_->EndWrite(ticket, key, nullptr, result->delete_().revision(), 0);
      } else {
        near_->Abandon();
      }
    }
    if (!status.ok()) return done(std::move(status));
    const v1::DeleteResponse& deleted = result->delete_();
    done(deleted.found() ? std::optional<std::string>(deleted.old_value())
                         : std::nullopt);
  });
}

absl::StatusOr<std::optional<std::string>> NamespaceImpl::Delete(
    const std::string& key) {
  return Wait<std::optional<std::string>>(
      [&](Callback<std::optional<std::string>> done) {
        DeleteAsync(key, std::move(done));
      });
}

absl::StatusOr<std::vector<std::string>> NamespaceImpl::Keys(
    const std::string& prefix) {
  if (absl::Status status = client_.CheckMayBlock(); !status.ok())
    return status;
  std::vector<std::string> keys;
  v1::KeysRequest request;
  request.set_namespace_(name_);
  request.set_prefix(prefix);
  request.set_limit(10000);
  absl::Time deadline = client_.Deadline();
  bool retried = false;
  while (true) {
    v1::KeysResponse response;
    grpc::ClientContext context;
    context.set_wait_for_ready(true);
    context.set_deadline(absl::ToChronoTime(deadline));
    absl::Status status = StatusOfCall(
        client_.stub().Keys(&context, request, &response), context);
    if (IsNamespaceNotFound(status) && !retried) {
      retried = true;
      client_.UseAgainAndWait(name_, config_).IgnoreError();
      continue;
    }
    if (!status.ok()) return status;
    keys.insert(keys.end(), response.keys().begin(), response.keys().end());
    if (response.next_page_token().empty()) return keys;
    request.set_page_token(response.next_page_token());
  }
}

std::unique_ptr<CacheWatch> NamespaceImpl::Watch(
    const std::string& key,
    std::function<void(const CacheWatchEvent&)> on_event,
    uint64_t from_revision) {
  WatchStream::Options watch;
  watch.ns = name_;
  watch.key = key;
  watch.from_revision = from_revision;
  watch.on_event = std::move(on_event);
  watch.on_namespace_lost = [client = &client_, name = name_,
                             config = config_] {
    client->UseAgain(name, config, [](absl::Status) {});
  };
  return client_.StartWatch(std::move(watch));
}

absl::StatusOr<CacheValue> NamespaceImpl::GetOrLoad(const std::string& key,
                                                    const Loader& loader,
                                                    CacheLoadOptions options) {
  if (absl::Status status = client_.CheckMayBlock(); !status.ok())
    return status;
  if (!client_.WaitForHold(client_.Deadline())) {
    return absl::DeadlineExceededError(
        "no Hold stream to the cache server within the wait (is it up?)");
  }
  // The asynchronous path does the work; the loader itself runs here, on
  // the caller's thread, never on the client's.
  struct Shared {
    absl::Mutex mu;
    std::optional<Callback<std::string>> load ABSL_GUARDED_BY(mu);
    std::optional<absl::StatusOr<CacheValue>> result ABSL_GUARDED_BY(mu);
  };
  auto shared = std::make_shared<Shared>();
  GetOrLoadAsync(
      key,
      [shared](const std::string&, Callback<std::string> loaded) {
        absl::MutexLock lock(&shared->mu);
        shared->load = std::move(loaded);
      },
      [shared](absl::StatusOr<CacheValue> result) {
        absl::MutexLock lock(&shared->mu);
        shared->result = std::move(result);
      },
      options);
  absl::MutexLock lock(&shared->mu);
  while (true) {
    auto ready = [&shared]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(shared->mu) {
      return shared->load.has_value() || shared->result.has_value();
    };
    shared->mu.Await(absl::Condition(&ready));
    if (shared->result.has_value()) return *std::move(shared->result);
    Callback<std::string> loaded = *std::move(shared->load);
    shared->load.reset();
    shared->mu.Unlock();
    loaded(loader(key));
    shared->mu.Lock();
  }
}

void NamespaceImpl::GetOrLoadAsync(const std::string& key, AsyncLoader loader,
                                   Callback<CacheValue> done,
                                   CacheLoadOptions options) {
  absl::Time deadline = client_.Deadline();
  auto self = shared_from_this();
  client_.loop().Post([self, key, loader = std::move(loader),
                       done = std::move(done), options, deadline]() mutable {
    self->client_.WhenHoldLive(deadline, [self, key, loader = std::move(loader),
                                          done = std::move(done), options,
                                          deadline](absl::Status live) mutable {
      if (!live.ok()) return done(std::move(live));
      self->LoadAsync(key, std::move(loader), std::move(done), options,
                      deadline, false);
    });
  });
}

void NamespaceImpl::LoadAsync(const std::string& key, AsyncLoader loader,
                              Callback<CacheValue> done,
                              CacheLoadOptions options, absl::Time deadline,
                              bool retried) {
  v1::GetRequest request;
  request.set_namespace_(name_);
  request.set_key(key);
  request.set_lease(true);
  request.set_client_id(client_.client_id());
  ToProto(deadline - absl::Now(), request.mutable_wait());
  ToProto(options.lease_ttl, request.mutable_lease_ttl());
  auto self = shared_from_this();
  client_.unary().Start<v1::GetResponse>(
      deadline,
      [self, request](grpc::ClientContext* context, grpc::CompletionQueue* cq) {
        return self->client_.stub().PrepareAsyncGet(context, request, cq);
      },
      [self, key, loader = std::move(loader), done = std::move(done), options,
       deadline, retried](absl::Status status, v1::GetResponse* got) mutable {
        ClientImpl& client = self->client_;
        auto again = [self, key, loader, done, options,
                      deadline](absl::Status ready) mutable {
          if (!ready.ok()) return done(std::move(ready));
          self->LoadAsync(key, std::move(loader), std::move(done), options,
                          deadline, true);
        };
        if (!retried && IsNamespaceNotFound(status)) {
          client.UseAgain(self->name_, self->config_, std::move(again));
        } else if (!retried && IsHoldMissing(status)) {
          client.WhenHoldLive(deadline, std::move(again));  // reopening
        } else if (!status.ok()) {
          done(std::move(status));
        } else if (got->found()) {
          done(CacheValue{got->value(), got->revision()});
        } else if (!got->load_error().empty()) {
          done(absl::AbortedError(absl::StrCat(
              "the loader failed in another process: ", got->load_error())));
        } else if (got->lease_token().empty()) {
          done(absl::InternalError("neither a value nor a lease"));
        } else {  // this process loads
          std::string token = got->lease_token();
          // The client's destruction waits for the loader and its write.
          client.Track(+1);
          Callback<CacheValue> tracked =
              [&client, done = std::move(done)](absl::StatusOr<CacheValue> v) {
                done(std::move(v));
                client.Track(-1);
              };
          loader(key, [self, key, token, options, done = std::move(tracked)](
                          absl::StatusOr<std::string> loaded) mutable {
            if (loaded.ok()) {
              self->SetWithLease(key, *std::move(loaded), token, options,
                                 std::move(done));
              return;
            }
            // Waiters learn of the failure through ReleaseLease.
            self->ReleaseLease(key, token, loaded.status(),
                               options.retry_waiters);
            done(loaded.status());
          });
        }
      });
}

void NamespaceImpl::ReleaseLease(const std::string& key,
                                 const std::string& token,
                                 const absl::Status& error, bool retry) {
  v1::ReleaseLeaseRequest request;
  request.set_namespace_(name_);
  request.set_key(key);
  request.set_lease_token(token);
  request.set_error(error.ToString());
  request.set_retry(retry);
  auto self = shared_from_this();
  // From the loader's thread, whichever it is.
  client_.loop().Post([self, request] {
    self->client_.unary().Start<v1::ReleaseLeaseResponse>(
        self->client_.Deadline(),
        [self, request](grpc::ClientContext* context,
                        grpc::CompletionQueue* cq) {
          return self->client_.stub().PrepareAsyncReleaseLease(context, request,
                                                               cq);
        },
        [](absl::Status, v1::ReleaseLeaseResponse*) {});
  });
}

void NamespaceImpl::SetWithLease(const std::string& key, std::string value,
                                 const std::string& token,
                                 const CacheLoadOptions& options,
                                 Callback<CacheValue> done) {
  Batcher::Op op;
  v1::SetRequest* set = op.mutable_set();
  set->set_namespace_(name_);
  set->set_key(key);
  set->set_value(value);
  set->set_lease_token(token);
  if (options.ttl > absl::ZeroDuration())
    ToProto(options.ttl, set->mutable_ttl());
  uint64_t ticket = near_ != nullptr ? near_->Begin() : 0;
  Run(std::move(op),
      [this, key, value = std::move(value), ticket, done = std::move(done)](
          absl::Status status, const Result* result) mutable {
        if (near_ != nullptr && !status.ok()) near_->Abandon();
        if (IsLeaseNotHeld(status)) {
          // The lease is no longer ours: another process wrote the key, or
          // deleted it (an invalidation: our load may predate it), or the
          // lease lapsed or the server restarted. Writing now could put a
          // stale value over a newer one: give the caller its value and
          // leave the cache alone.
          return done(CacheValue{std::move(value), 0});
        }
        if (!status.ok()) return done(std::move(status));
        if (near_ != nullptr) {
          near_->EndWrite(ticket, key, &value, result->set().revision(),
                          result->set().expires_unix_micros());
        }
        done(CacheValue{std::move(value), result->set().revision()});
      });
}

}  // namespace cluster2::cache_internal
