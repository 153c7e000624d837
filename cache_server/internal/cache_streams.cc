// The Cache service's streams: Pipeline (batches over one stream), Hold (a
// client process's liveness for its leases) and Watch (changes). Each is a
// callback reactor: no thread per open stream.
#include <deque>
#include <functional>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "cache_server/internal/cache_service.h"
#include "cache_server/internal/cache_wire.h"
#include "cache_server/internal/watch_queue.h"

namespace cluster2 {
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

// A stream that ends at once with `status`.
template <typename T>
class FailedWriter final : public grpc::ServerWriteReactor<T> {
 public:
  explicit FailedWriter(const grpc::Status& status) { this->Finish(status); }
  void OnDone() override { delete this; }
};

// One Hold stream, registered with the store: says "registered", then
// stays open; its end (the client cancelled, or its process or connection
// is gone) ends the Hold in the store at once, which passes its leases on.
class HoldReactor final : public grpc::ServerWriteReactor<v1::HoldEvent> {
 public:
  HoldReactor(CacheStore* store, std::string client_id)
      : store_(store), client_id_(std::move(client_id)) {
    StartWrite(&registered_);
  }
  void OnWriteDone(bool) override {}
  void OnCancel() override {
    // A new Hold of the same client_id can only register after this, so
    // its own leases are never released by this one.
    store_->EndHold(client_id_);
    Finish(grpc::Status::OK);
  }
  void OnDone() override { delete this; }

 private:
  CacheStore* const store_;
  const std::string client_id_;
  const v1::HoldEvent registered_;
};

// One Watch stream: the store pushes changes (under its lock) into a
// WatchQueue; one write at a time drains it. A slow consumer is ended with
// the queue's RESOURCE_EXHAUSTED (SLOW_CONSUMER): it resumes.
class WatchReactor final : public grpc::ServerWriteReactor<v1::WatchEvent>,
                           public CacheWatcher {
 public:
  WatchReactor(CacheStore* store, grpc::CallbackServerContext* context,
               uint64_t from_revision)
      : store_(store), context_(context), queue_(from_revision) {}

  // Registers with the store, or finishes with the store's error.
  void Start(const v1::WatchRequest& request) {
    absl::StatusOr<bool> resync = store_->Watch(
        request.namespace_(), request.key(), request.from_revision(), this);
    if (!resync.ok()) {
      registered_ = false;
      absl::MutexLock lock(&mu_);
      FinishLocked(WireStatus(context_, resync.status()));
      return;
    }
    // Registered: nothing after this is missed. The metadata key tells the
    // client so (an error would come without it).
    context_->AddInitialMetadata("cluster2-watch", "live");
    absl::MutexLock lock(&mu_);
    resync_ = *resync;  // sent before any change queued since
    started_ = true;
    if (!resync_ && queue_.empty()) {
      StartSendInitialMetadata();
    } else {
      WriteNextLocked();
    }
  }

  void OnEvent(const CacheEvent& change) override {
    absl::MutexLock lock(&mu_);
    if (finished_) return;
    if (!queue_.Push(change)) {
      if (!writing_ && started_) EndSlowLocked();
      return;
    }
    if (!writing_ && started_) WriteNextLocked();
  }

  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&mu_);
    writing_ = false;
    if (!ok) return FinishLocked(grpc::Status::OK);  // the client is gone
    queue_.Delivered(current_.revision());
    if (!queue_.empty()) return WriteNextLocked();
    if (queue_.overflowed()) EndSlowLocked();
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
    current_.Clear();
    if (resync_) {
      resync_ = false;
      current_.set_resync(true);
    } else {
      ToProto(*queue_.Pop(), &current_);
    }
    writing_ = true;
    StartWrite(&current_);
  }
  void EndSlowLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    FinishLocked(WireStatus(context_, queue_.SlowConsumerError()));
  }
  void FinishLocked(const grpc::Status& status)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finished_) return;
    finished_ = true;
    queue_.Clear();
    Finish(status);
  }

  CacheStore* const store_;
  grpc::CallbackServerContext* const context_;
  bool registered_ = true;  // set before any callback can run
  absl::Mutex mu_;
  WatchQueue queue_ ABSL_GUARDED_BY(mu_);
  v1::WatchEvent current_ ABSL_GUARDED_BY(mu_);
  bool resync_ ABSL_GUARDED_BY(mu_) = false;
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace

grpc::ServerBidiReactor<v1::BatchRequest, v1::BatchResponse>*
CacheService::Pipeline(grpc::CallbackServerContext*) {
  return new PipelineReactor(this);
}

grpc::ServerWriteReactor<v1::HoldEvent>* CacheService::Hold(
    grpc::CallbackServerContext* context, const v1::HoldRequest* request) {
  if (absl::Status status = store_->OpenHold(request->client_id());
      !status.ok()) {
    return new FailedWriter<v1::HoldEvent>(WireStatus(context, status));
  }
  return new HoldReactor(store_, request->client_id());
}

grpc::ServerWriteReactor<v1::WatchEvent>* CacheService::Watch(
    grpc::CallbackServerContext* context, const v1::WatchRequest* request) {
  auto* reactor = new WatchReactor(store_, context, request->from_revision());
  reactor->Start(*request);
  return reactor;
}

}  // namespace cluster2
