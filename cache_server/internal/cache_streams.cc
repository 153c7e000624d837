// The Cache service's streams: Pipeline (batches over one stream), Hold (a
// client process's liveness for its leases) and Watch (changes). Each is a
// state machine on the service's loop thread (cache_calls.h): no thread per
// open stream, no hand-off between a read and the store.
#include <deque>
#include <functional>
#include <optional>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "cache_server/internal/cache_calls.h"
#include "cache_server/internal/cache_service.h"
#include "cache_server/internal/cache_wire.h"
#include "cache_server/internal/watch_queue.h"

namespace cluster2 {
namespace {

using cache_calls::Call;
using v1::Cache;

// One Pipeline stream: reads a batch, runs it, queues its answer; one write
// at a time, in order. A client that writes without reading is not read
// from while kMaxPending answers wait, so it cannot fill this memory.
class PipelineCall final : public Call {
 public:
  static void Post(const CacheService::Env& env) { new PipelineCall(env); }

 private:
  explicit PipelineCall(const CacheService::Env& env)
      : Call(env),
        stream_(&context_),
        accept_(loop(), On([this](bool ok) { OnAccepted(ok); })),
        read_(loop(), On([this](bool ok) { OnRead(ok); })),
        write_(loop(), On([this](bool ok) { OnWritten(ok); })),
        finish_(loop(), On([](bool) {})) {
    env_.async->RequestPipeline(&context_, &stream_, env_.cq, env_.cq,
                                Arm(accept_));
  }

  void OnAccepted(bool ok) {
    if (!ok) return;
    Post(env_);
    Read();
  }

  void Read() {
    reading_ = true;
    stream_.Read(&request_, Arm(read_));
  }

  void OnRead(bool ok) {
    reading_ = false;
    if (!ok || failed_) {  // the client closed its side, left, or broke
      read_ended_ = true;
      return MaybeFinish();
    }
    pending_.emplace_back();
    env_.service->RunBatch(request_, &pending_.back());
    if (!writing_) WriteNext();
    MaybeRead();
  }

  void OnWritten(bool ok) {
    writing_ = false;
    pending_.pop_front();
    if (!ok) {  // the client is gone: nothing more to send
      pending_.clear();
      failed_ = true;
    }
    if (!pending_.empty()) WriteNext();
    MaybeRead();
    MaybeFinish();
  }

  void WriteNext() {
    writing_ = true;
    stream_.Write(pending_.front(), Arm(write_));
  }

  // Reads the next batch unless one is being read, the reading is over, or
  // too many answers wait.
  void MaybeRead() {
    if (!reading_ && !read_ended_ && !failed_ && pending_.size() < kMaxPending)
      Read();
  }

  // Ends the call once every answer is written (or cannot be) and the
  // reading is over.
  void MaybeFinish() {
    if (finished_ || reading_ || writing_ || !pending_.empty()) return;
    if (!read_ended_ && !failed_) return;
    finished_ = true;
    stream_.Finish(grpc::Status::OK, Arm(finish_));
  }

  static constexpr size_t kMaxPending = 16;
  grpc::ServerContext context_;
  grpc::ServerAsyncReaderWriter<v1::BatchResponse, v1::BatchRequest> stream_;
  IoLoop::Tag accept_, read_, write_, finish_;
  v1::BatchRequest request_;
  std::deque<v1::BatchResponse> pending_;  // the front one is being written
  bool reading_ = false;
  bool read_ended_ = false;
  bool writing_ = false;
  bool failed_ = false;
  bool finished_ = false;
};

// One Hold stream, registered with the store: says "registered", then
// stays open; its end (the client cancelled, or its process or connection
// is gone) ends the Hold in the store at once, which passes its leases on.
class HoldCall final : public Call {
 public:
  static void Post(const CacheService::Env& env) { new HoldCall(env); }

 private:
  explicit HoldCall(const CacheService::Env& env)
      : Call(env),
        writer_(&context_),
        accept_(loop(), On([this](bool ok) { OnAccepted(ok); })),
        done_(loop(), On([this](bool) { OnDone(); })),
        sent_(loop(), On([](bool) {})) {
    context_.AsyncNotifyWhenDone(&done_);
    env_.async->RequestHold(&context_, &request_, &writer_, env_.cq, env_.cq,
                            Arm(accept_));
  }

  void OnAccepted(bool ok) {
    if (!ok) return;
    Post(env_);
    Arm(done_);
    if (absl::Status status = env_.store->OpenHold(request_.client_id());
        !status.ok()) {
      writer_.Finish(WireStatus(&context_, status), Arm(sent_));
      return;
    }
    open_ = true;
    writer_.Write(registered_, Arm(sent_));
  }

  void OnDone() {
    // A new Hold of the same client_id can only register after this, so
    // its own leases are never released by this one.
    if (open_) env_.store->EndHold(request_.client_id());
  }

  grpc::ServerContext context_;
  v1::HoldRequest request_;
  grpc::ServerAsyncWriter<v1::HoldEvent> writer_;
  IoLoop::Tag accept_, done_, sent_;
  const v1::HoldEvent registered_;
  bool open_ = false;
};

// One Watch stream. The store pushes changes (under its lock, from the
// thread of the change: this loop, or the maintenance thread's expiry
// sweep) into a WatchQueue and posts a drain to the loop; the loop writes
// one change at a time. A slow consumer is ended with the queue's
// RESOURCE_EXHAUSTED (SLOW_CONSUMER): it resumes.
class WatchCall final : public Call, public CacheWatcher {
 public:
  static void Post(const CacheService::Env& env) { new WatchCall(env); }

  void OnEvent(const CacheEvent& change) override {
    absl::MutexLock lock(&mu_);
    queue_->Push(change);  // or the watcher is now a slow consumer
    if (drain_posted_) return;
    drain_posted_ = true;
    // Alive until the drain: Unwatch (before the call can end) waits for
    // the store's lock, which the caller holds.
    Retain();
    PostAndRelease([this] { Drain(); });
  }

 private:
  explicit WatchCall(const CacheService::Env& env)
      : Call(env),
        writer_(&context_),
        accept_(loop(), On([this](bool ok) { OnAccepted(ok); })),
        done_(loop(), On([this](bool) { OnDone(); })),
        write_(loop(), On([this](bool ok) { OnWritten(ok); })),
        finish_(loop(), On([](bool) {})) {
    context_.AsyncNotifyWhenDone(&done_);
    env_.async->RequestWatch(&context_, &request_, &writer_, env_.cq, env_.cq,
                             Arm(accept_));
  }

  void OnAccepted(bool ok) {
    if (!ok) return;
    Post(env_);
    Arm(done_);
    {
      absl::MutexLock lock(&mu_);
      queue_.emplace(request_.from_revision());
    }
    absl::StatusOr<bool> resync = env_.store->Watch(
        request_.namespace_(), request_.key(), request_.from_revision(), this);
    if (!resync.ok()) return Finish(WireStatus(&context_, resync.status()));
    registered_ = true;
    // Registered: nothing after this is missed. The metadata key tells the
    // client so (an error would come without it).
    context_.AddInitialMetadata("cluster2-watch", "live");
    resync_ = *resync;  // sent before any change queued since
    started_ = true;
    bool empty;
    {
      absl::MutexLock lock(&mu_);
      empty = queue_->empty();
    }
    if (!resync_ && empty) {
      writing_ = true;
      writer_.SendInitialMetadata(Arm(write_));
      metadata_only_ = true;
    } else {
      Drain();
    }
  }

  // Writes the next change if none is being written.
  void Drain() {
    if (!started_ || writing_ || finished_) return;
    std::optional<CacheEvent> next;
    bool ended_slow = false;
    {
      absl::MutexLock lock(&mu_);
      drain_posted_ = false;
      if (!resync_) {
        next = queue_->Pop();
        ended_slow = !next.has_value() && queue_->overflowed();
      }
    }
    if (ended_slow) return EndSlow();
    current_.Clear();
    if (resync_) {
      resync_ = false;
      current_.set_resync(true);
    } else if (next.has_value()) {
      ToProto(*next, &current_);
    } else {
      return;
    }
    writing_ = true;
    writer_.Write(current_, Arm(write_));
  }

  void OnWritten(bool ok) {
    writing_ = false;
    if (!ok) {  // the client is gone; the done notification follows
      finished_ = true;
      return;
    }
    if (metadata_only_) {
      metadata_only_ = false;
    } else if (current_.revision() != 0) {
      absl::MutexLock lock(&mu_);
      queue_->Delivered(current_.revision());
    }
    Drain();
  }

  void EndSlow() {
    absl::Status slow;
    {
      absl::MutexLock lock(&mu_);
      slow = queue_->SlowConsumerError();
    }
    Finish(WireStatus(&context_, slow));
  }

  void Finish(const grpc::Status& status) {
    if (finished_) return;
    finished_ = true;
    {
      absl::MutexLock lock(&mu_);
      if (queue_.has_value()) queue_->Clear();
    }
    writer_.Finish(status, Arm(finish_));
  }

  void OnDone() {
    finished_ = true;
    if (registered_) env_.store->Unwatch(this);  // no OnEvent after this
  }

  grpc::ServerContext context_;
  v1::WatchRequest request_;
  grpc::ServerAsyncWriter<v1::WatchEvent> writer_;
  IoLoop::Tag accept_, done_, write_, finish_;
  absl::Mutex mu_;
  // Made once the request (its from_revision) is known.
  std::optional<WatchQueue> queue_ ABSL_GUARDED_BY(mu_);
  bool drain_posted_ ABSL_GUARDED_BY(mu_) = false;
  // Loop thread only.
  v1::WatchEvent current_;
  bool registered_ = false;
  bool resync_ = false;
  bool started_ = false;
  bool writing_ = false;
  bool metadata_only_ = false;
  bool finished_ = false;
};

}  // namespace

void CacheService::PostStreamCalls() {
  for (int i = 0; i < 4; ++i) {
    PipelineCall::Post(env_);
    HoldCall::Post(env_);
    WatchCall::Post(env_);
  }
}

}  // namespace cluster2
