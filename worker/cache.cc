#include "worker/cache.h"

#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <deque>
#include <map>
#include <random>
#include <thread>
#include <unordered_map>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "cluster2/v1/cache.grpc.pb.h"
#include "common/grpc_status.h"
#include "common/keepalive.h"
#include "common/proto_time.h"
#include "grpcpp/grpcpp.h"

namespace cluster2 {
namespace {

using Result = v1::BatchResponse::Result;
// An operation's outcome: the status of its Batch call, or its own; `op` is
// the operation itself, which the callback may take back to retry it.
using OpDone =
    std::function<void(absl::Status, const Result*, v1::BatchRequest::Op* op)>;

constexpr size_t kMaxOpsPerBatch = 512;
// Batches on the stream stay under ~2 MiB (the server accepts at least
// 8 MiB); a larger operation travels alone in a unary Batch call, so that an
// oversize one fails alone (RESOURCE_EXHAUSTED) instead of breaking the
// stream for everyone.
constexpr size_t kMaxBatchBytes = 1 << 20;
constexpr char kWatchLiveKey[] = "cluster2-watch";

// The status of one operation of a batch.
absl::Status ResultStatus(const Result& result) {
  return absl::Status(static_cast<absl::StatusCode>(result.code()),
                      result.message());
}

bool IsUnknownNamespace(const absl::Status& status) {
  return status.code() == absl::StatusCode::kNotFound &&
         absl::StartsWith(status.message(), "no namespace");
}

int64_t NowMicros() { return absl::ToUnixMicros(absl::Now()); }

bool Expired(int64_t expires_unix_micros) {
  return expires_unix_micros != 0 && expires_unix_micros <= NowMicros();
}

v1::NamespaceOptions OptionsProto(const CacheNamespaceConfig& config) {
  v1::NamespaceOptions options;
  options.set_persist(config.persist);
  ToProto(config.expire, options.mutable_expire());
  switch (config.fsync) {
    case CacheNamespaceConfig::Fsync::kAlways:
      options.set_fsync(v1::NamespaceOptions::FSYNC_ALWAYS);
      break;
    case CacheNamespaceConfig::Fsync::kNo:
      options.set_fsync(v1::NamespaceOptions::FSYNC_NO);
      break;
    case CacheNamespaceConfig::Fsync::kEverySec:
      options.set_fsync(v1::NamespaceOptions::FSYNC_EVERYSEC);
      break;
  }
  return options;
}

// Gathers operations into batches sent over one long-lived Pipeline stream:
// at most `max_in_flight` batches await their answer; operations submitted
// meanwhile wait and leave together in the next one. A stream that breaks
// (the server restarted) fails its unanswered batches with UNAVAILABLE and
// the next batch opens a new one (which waits for the server); a batch not
// answered by its deadline cancels the stream (DEADLINE_EXCEEDED).
class Batcher {
 public:
  Batcher(v1::Cache::Stub* stub, int max_in_flight)
      : stub_(stub), max_in_flight_(std::max(1, max_in_flight)) {
    watchdog_ = std::thread([this] { Watchdog(); });
  }
  ~Batcher() {
    std::deque<Pending> orphans;
    {
      absl::MutexLock lock(&mu_);
      stopping_ = true;
      if (stream_ != nullptr) stream_->context.TryCancel();
      mu_.Await(absl::Condition(
          +[](int* calls) { return *calls == 0; }, &live_calls_));
      orphans.swap(queue_);
    }
    watchdog_.join();
    for (Pending& pending : orphans) {
      pending.done(absl::CancelledError("the cache client is closing"), nullptr,
                   &pending.op);
    }
  }

  void Submit(v1::BatchRequest::Op op, absl::Time deadline, OpDone done) {
    if (op.ByteSizeLong() > kMaxBatchBytes) {
      SubmitAlone(std::move(op), deadline, std::move(done));
      return;
    }
    Actions actions;
    {
      absl::MutexLock lock(&mu_);
      queue_.push_back(Pending{std::move(op), deadline, std::move(done)});
      SendLocked(&actions);
    }
    Run(actions);
  }

 private:
  struct Pending {
    v1::BatchRequest::Op op;
    absl::Time deadline;
    OpDone done;
  };
  // A batch sent (or about to be), awaiting its answer.
  struct Sent {
    // Shared with the stream while it writes it (gRPC reads it until
    // OnWriteDone, even if the batch has failed meanwhile).
    std::shared_ptr<v1::BatchRequest> request;
    std::vector<OpDone> dones;
    absl::Time deadline;
  };

  // One Pipeline call. Writes are started from outside its reactions, so
  // it keeps a hold (no OnDone) until it is retired: broken and with no
  // write about to start.
  class Stream final
      : public grpc::ClientBidiReactor<v1::BatchRequest, v1::BatchResponse> {
   public:
    explicit Stream(Batcher* owner) : owner_(owner) {
      context.set_wait_for_ready(true);  // rides out a server restart
    }
    void Begin() {
      owner_->stub_->async()->Pipeline(&context, this);
      AddHold();
      StartRead(&response_);
      StartCall();
    }
    void OnReadDone(bool ok) override {
      if (!ok) {
        owner_->Broken(this);
        return;
      }
      owner_->Answered(this, &response_);
      response_.Clear();
      StartRead(&response_);
    }
    void OnWriteDone(bool ok) override { owner_->Written(this, ok); }
    void OnDone(const grpc::Status&) override {
      owner_->Done();
      delete this;
    }
    grpc::ClientContext context;
    // Guarded by the owner's mu_.
    int starts = 0;  // writes handed out, not yet started
    bool retired = false;
    std::shared_ptr<v1::BatchRequest> in_write;  // until OnWriteDone

   private:
    Batcher* const owner_;
    v1::BatchResponse response_;
  };

  // What to do once the lock is released (gRPC calls).
  struct Actions {
    Stream* begin = nullptr;
    Stream* write_on = nullptr;
    std::shared_ptr<v1::BatchRequest> write;
  };
  void Run(const Actions& actions) {
    if (actions.begin != nullptr) actions.begin->Begin();
    if (actions.write == nullptr) return;
    actions.write_on->StartWrite(actions.write.get());
    bool release;
    {
      absl::MutexLock lock(&mu_);
      release = --actions.write_on->starts == 0 && actions.write_on->retired;
    }
    if (release) actions.write_on->RemoveHold();
  }

  // Builds batches while there is room, opening a stream if there is none,
  // and starts the next write if none is under way.
  void SendLocked(Actions* actions) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (stopping_) return;
    while (!queue_.empty() && sent_.size() < max_in_flight_) {
      Sent sent;
      sent.request = std::make_shared<v1::BatchRequest>();
      sent.request->set_id(next_id_++);
      sent.deadline = absl::InfiniteFuture();
      size_t bytes = 0;
      while (!queue_.empty() && sent.dones.size() < kMaxOpsPerBatch &&
             bytes < kMaxBatchBytes) {
        Pending& next = queue_.front();
        bytes += next.op.ByteSizeLong();
        sent.deadline = std::min(sent.deadline, next.deadline);
        *sent.request->add_ops() = std::move(next.op);
        sent.dones.push_back(std::move(next.done));
        queue_.pop_front();
      }
      to_write_.push_back(sent.request);
      sent_.push_back(std::move(sent));
    }
    if (stream_ == nullptr && !to_write_.empty()) {
      stream_ = new Stream(this);
      ++live_calls_;
      actions->begin = stream_;
    }
    if (stream_ != nullptr && !writing_ && !to_write_.empty()) {
      writing_ = true;
      ++stream_->starts;
      actions->write_on = stream_;
      actions->write = to_write_.front();
      stream_->in_write = actions->write;
      to_write_.pop_front();
    }
  }

  void Written(Stream* stream, bool ok) {
    Actions actions;
    {
      absl::MutexLock lock(&mu_);
      stream->in_write.reset();
      if (stream != stream_) return;
      writing_ = false;
      if (ok) SendLocked(&actions);  // else the read fails too: Broken
    }
    Run(actions);
  }

  void Answered(Stream* stream, v1::BatchResponse* response) {
    Sent sent;
    {
      absl::MutexLock lock(&mu_);
      if (stream != stream_ || sent_.empty()) return;
      sent = std::move(sent_.front());
      sent_.pop_front();
    }
    for (size_t i = 0; i < sent.dones.size(); ++i) {
      int index = static_cast<int>(i);
      v1::BatchRequest::Op* op = sent.request->mutable_ops(index);
      if (response->id() != sent.request->id() ||
          index >= response->results_size()) {
        sent.dones[i](absl::InternalError("the cache answered out of order"),
                      nullptr, op);
        continue;
      }
      const Result& result = response->results(index);
      sent.dones[i](ResultStatus(result), &result, op);
    }
    // Operations submitted by the callbacks above leave now.
    Actions actions;
    {
      absl::MutexLock lock(&mu_);
      SendLocked(&actions);
    }
    Run(actions);
  }

  // The stream's read failed: it is over. Its unanswered batches fail; the
  // queued operations get a new stream.
  void Broken(Stream* stream) {
    std::deque<Sent> failed;
    absl::Status status;
    Actions actions;
    bool release;
    {
      absl::MutexLock lock(&mu_);
      stream->retired = true;
      release = stream->starts == 0;
      if (stream == stream_) {
        failed.swap(sent_);
        to_write_.clear();
        writing_ = false;
        stream_ = nullptr;
        status = timed_out_
                     ? absl::DeadlineExceededError(
                           "the cache server did not answer in time")
                     : absl::UnavailableError(
                           "the connection to the cache server broke (did it "
                           "restart?)");
        timed_out_ = false;
        SendLocked(&actions);
      }
    }
    if (release) stream->RemoveHold();
    for (Sent& sent : failed) {
      for (size_t i = 0; i < sent.dones.size(); ++i) {
        sent.dones[i](status, nullptr,
                      sent.request->mutable_ops(static_cast<int>(i)));
      }
    }
    Run(actions);
  }

  void Done() {
    absl::MutexLock lock(&mu_);
    --live_calls_;
  }

  void SubmitAlone(v1::BatchRequest::Op op, absl::Time deadline, OpDone done) {
    struct Call {
      grpc::ClientContext context;
      v1::BatchRequest request;
      v1::BatchResponse response;
      OpDone done;
    };
    auto* call = new Call;
    *call->request.add_ops() = std::move(op);
    call->done = std::move(done);
    call->context.set_wait_for_ready(true);
    call->context.set_deadline(absl::ToChronoTime(deadline));
    {
      absl::MutexLock lock(&mu_);
      ++live_calls_;  // the destructor waits for it too
    }
    stub_->async()->Batch(
        &call->context, &call->request, &call->response,
        [this, call](grpc::Status grpc_status) {
          absl::Status status = FromGrpcStatus(grpc_status);
          v1::BatchRequest::Op* op = call->request.mutable_ops(0);
          if (!status.ok() || call->response.results_size() != 1) {
            call->done(status.ok() ? absl::InternalError("no result") : status,
                       nullptr, op);
          } else {
            const Result& result = call->response.results(0);
            call->done(ResultStatus(result), &result, op);
          }
          delete call;
          Done();
        });
  }

  // Cancels the stream when its oldest batch is past its deadline.
  void Watchdog() {
    absl::MutexLock lock(&mu_);
    while (!mu_.AwaitWithTimeout(absl::Condition(&stopping_),
                                 absl::Milliseconds(50))) {
      if (stream_ != nullptr && !sent_.empty() && !timed_out_ &&
          sent_.front().deadline <= absl::Now()) {
        timed_out_ = true;
        stream_->context.TryCancel();
      }
    }
  }

  v1::Cache::Stub* const stub_;
  const size_t max_in_flight_;
  absl::Mutex mu_;
  std::deque<Pending> queue_ ABSL_GUARDED_BY(mu_);
  std::deque<Sent> sent_ ABSL_GUARDED_BY(mu_);
  std::deque<std::shared_ptr<v1::BatchRequest>> to_write_ ABSL_GUARDED_BY(mu_);
  Stream* stream_ ABSL_GUARDED_BY(mu_) = nullptr;  // the current one
  // Streams not yet OnDone, and unary calls (SubmitAlone) not yet answered.
  int live_calls_ ABSL_GUARDED_BY(mu_) = 0;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool timed_out_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  std::thread watchdog_;
};

class ClientImpl;

// A watch: a thread that keeps one Watch stream open, resuming it from the
// last revision after any break.
class WatchImpl final : public CacheWatch {
 public:
  using OnEvent = std::function<void(const CacheWatchEvent&)>;
  // `on_live` (optional) is told when the stream becomes live and when it
  // breaks. `reuse` re-creates the namespace after a server restart.
  WatchImpl(v1::Cache::Stub* stub, std::string ns, std::string key,
            uint64_t from_revision, OnEvent on_event,
            std::function<void(bool)> on_live, std::function<void()> reuse)
      : stub_(stub),
        ns_(std::move(ns)),
        key_(std::move(key)),
        on_event_(std::move(on_event)),
        on_live_(std::move(on_live)),
        reuse_(std::move(reuse)),
        last_(from_revision) {
    thread_ = std::thread([this] { Run(); });
  }
  ~WatchImpl() override {
    {
      absl::MutexLock lock(&mu_);
      stopping_ = true;
      if (context_ != nullptr) context_->TryCancel();
    }
    thread_.join();
  }

  bool WaitUntilLive(absl::Duration wait) override {
    absl::MutexLock lock(&mu_);
    return mu_.AwaitWithTimeout(absl::Condition(&live_), wait);
  }
  uint64_t last_revision() const override { return last_.load(); }

 private:
  void SetLive(bool live) {
    {
      absl::MutexLock lock(&mu_);
      live_ = live;
    }
    if (on_live_) on_live_(live);
  }

  void Run() {
    bool was_live = false;
    while (true) {
      grpc::ClientContext context;
      context.set_wait_for_ready(true);
      {
        absl::MutexLock lock(&mu_);
        if (stopping_) return;
        context_ = &context;
      }
      v1::WatchRequest request;
      request.set_namespace_(ns_);
      request.set_key(key_);
      request.set_from_revision(last_.load());
      std::unique_ptr<grpc::ClientReader<v1::WatchEvent>> reader =
          stub_->Watch(&context, request);
      reader->WaitForInitialMetadata();
      bool live = context.GetServerInitialMetadata().count(kWatchLiveKey) > 0;
      if (live) {
        SetLive(true);
        // Resumed from nothing after a break: changes may have been missed.
        if (was_live && last_.load() == 0) {
          CacheWatchEvent resync;
          resync.kind = CacheWatchEvent::Kind::kResync;
          on_event_(resync);
        }
        was_live = true;
      }
      v1::WatchEvent event;
      while (reader->Read(&event)) {
        CacheWatchEvent change;
        if (event.resync()) {
          change.kind = CacheWatchEvent::Kind::kResync;
        } else {
          change.kind = static_cast<CacheWatchEvent::Kind>(
              std::max(0, static_cast<int>(event.kind()) - 1));
          change.key = event.key();
          change.value = event.value();
          change.revision = event.revision();
          change.expires_unix_micros = event.expires_unix_micros();
          last_.store(event.revision());
        }
        on_event_(change);
      }
      grpc::Status status = reader->Finish();
      {
        absl::MutexLock lock(&mu_);
        context_ = nullptr;
      }
      if (live) SetLive(false);
      if (status.error_code() == grpc::StatusCode::NOT_FOUND) reuse_();
      absl::MutexLock lock(&mu_);
      // A short pause so that a persistent error cannot spin.
      if (mu_.AwaitWithTimeout(absl::Condition(&stopping_),
                               absl::Milliseconds(live ? 10 : 100)))
        return;
    }
  }

  v1::Cache::Stub* const stub_;
  const std::string ns_;
  const std::string key_;
  const OnEvent on_event_;
  const std::function<void(bool)> on_live_;
  const std::function<void()> reuse_;
  std::atomic<uint64_t> last_;
  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool live_ ABSL_GUARDED_BY(mu_) = false;
  grpc::ClientContext* context_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::thread thread_;
};

// The values of one namespace kept in this process (see cache.h).
class NearCache {
 public:
  explicit NearCache(size_t max_entries) : max_entries_(max_entries) {}

  std::optional<CacheValue> Lookup(const std::string& key) {
    absl::MutexLock lock(&mu_);
    if (!live_) return std::nullopt;
    auto it = entries_.find(key);
    if (it == entries_.end()) return std::nullopt;
    if (Expired(it->second.expires)) {
      entries_.erase(it);
      return std::nullopt;
    }
    return CacheValue{it->second.value, it->second.revision};
  }

  // A read from the server starts: returns its ticket for Fill.
  uint64_t BeginFetch() {
    absl::MutexLock lock(&mu_);
    ++fetches_;
    return epoch_;
  }
  // It ended: keeps the value unless a newer change of the key was seen
  // meanwhile or the watch broke.
  void EndFetch(uint64_t ticket, const std::string& key,
                const v1::GetResponse* found) {
    absl::MutexLock lock(&mu_);
    if (found != nullptr && live_ && ticket == epoch_ &&
        !Expired(found->expires_unix_micros())) {
      auto recent = recent_.find(key);
      if (recent == recent_.end() || recent->second <= found->revision())
        PutLocked(key, found->value(), found->revision(),
                  found->expires_unix_micros());
    }
    if (--fetches_ == 0) recent_.clear();
  }

  // This client's own write (read-your-writes), begun with BeginFetch's
  // ticket: `value` null for a delete. A change of the key newer than the
  // write, already received on the watch, wins.
  void EndWrite(uint64_t ticket, const std::string& key,
                const std::string* value, uint64_t revision, int64_t expires) {
    absl::MutexLock lock(&mu_);
    if (live_ && ticket == epoch_) {
      auto recent = recent_.find(key);
      bool superseded = recent != recent_.end() && recent->second > revision;
      if (value != nullptr && !superseded) {
        PutLocked(key, *value, revision, expires);
      } else if (value == nullptr) {
        auto it = entries_.find(key);
        if (it != entries_.end() && it->second.revision <= revision)
          entries_.erase(it);
      }
    }
    if (--fetches_ == 0) recent_.clear();
  }
  // The write failed: it changed nothing here.
  void AbandonWrite() {
    absl::MutexLock lock(&mu_);
    if (--fetches_ == 0) recent_.clear();
  }

  void OnEvent(const CacheWatchEvent& event) {
    absl::MutexLock lock(&mu_);
    if (event.kind == CacheWatchEvent::Kind::kResync) {
      entries_.clear();
      ++epoch_;
      return;
    }
    NoteLocked(event.key, event.revision);
    auto it = entries_.find(event.key);
    if (it == entries_.end() || it->second.revision >= event.revision) return;
    if (event.kind == CacheWatchEvent::Kind::kSet) {
      it->second =
          Entry{event.value, event.revision, event.expires_unix_micros};
    } else {
      entries_.erase(it);
    }
  }

  void SetLive(bool live) {
    absl::MutexLock lock(&mu_);
    live_ = live;
    entries_.clear();
    ++epoch_;
  }

 private:
  struct Entry {
    std::string value;
    uint64_t revision;
    int64_t expires;
  };
  void NoteLocked(const std::string& key, uint64_t revision)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (fetches_ == 0) return;
    if (recent_.size() >= max_entries_) {
      // Reads and writes never stop and the namespace changes fast: start
      // over rather than grow (what is in flight will not be kept).
      entries_.clear();
      recent_.clear();
      ++epoch_;
    }
    uint64_t& seen = recent_[key];
    seen = std::max(seen, revision);
  }
  void PutLocked(const std::string& key, const std::string& value,
                 uint64_t revision, int64_t expires)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    auto it = entries_.find(key);
    if (it != entries_.end()) {
      if (it->second.revision < revision)
        it->second = Entry{value, revision, expires};
      return;
    }
    if (entries_.size() >= max_entries_) entries_.clear();  // crude bound
    entries_.emplace(key, Entry{value, revision, expires});
  }

  const size_t max_entries_;
  absl::Mutex mu_;
  bool live_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t epoch_ ABSL_GUARDED_BY(mu_) = 0;
  int fetches_ ABSL_GUARDED_BY(mu_) = 0;
  std::unordered_map<std::string, Entry> entries_ ABSL_GUARDED_BY(mu_);
  // Changes seen while reads were in flight: key -> latest revision.
  std::unordered_map<std::string, uint64_t> recent_ ABSL_GUARDED_BY(mu_);
};

class NamespaceImpl final : public CacheNamespace,
                            public std::enable_shared_from_this<NamespaceImpl> {
 public:
  NamespaceImpl(ClientImpl* client, std::string name,
                CacheNamespaceConfig config);
  ~NamespaceImpl() override { near_watch_.reset(); }
  // Starts the near-cache's watch; false if it is not live within `wait`.
  bool StartNearCache(absl::Duration wait);

  const std::string& name() const override { return name_; }
  absl::StatusOr<std::optional<CacheValue>> Get(
      const std::string& key) override;
  void GetAsync(const std::string& key,
                Callback<std::optional<CacheValue>> done) override;
  absl::StatusOr<CacheValue> GetOrLoad(const std::string& key,
                                       const Loader& loader,
                                       CacheLoadOptions options) override;
  void GetOrLoadAsync(const std::string& key, AsyncLoader loader,
                      Callback<CacheValue> done,
                      CacheLoadOptions options) override;
  absl::StatusOr<CacheSetOutcome> Set(const std::string& key, std::string value,
                                      CacheSetOptions options) override;
  void SetAsync(const std::string& key, std::string value,
                CacheSetOptions options,
                Callback<CacheSetOutcome> done) override;
  absl::StatusOr<std::optional<std::string>> Delete(
      const std::string& key) override;
  void DeleteAsync(const std::string& key,
                   Callback<std::optional<std::string>> done) override;
  absl::StatusOr<std::vector<std::string>> Keys(
      const std::string& prefix) override;
  std::unique_ptr<CacheWatch> Watch(
      const std::string& key,
      std::function<void(const CacheWatchEvent&)> on_event,
      uint64_t from_revision) override;
  uint64_t near_hits() const override { return near_hits_.load(); }

 private:
  // Runs `op` in a batch; after a server restart lost the namespace, Uses
  // it again and retries once.
  using Done = std::function<void(absl::Status, const Result*)>;
  void Run(v1::BatchRequest::Op op, Done done, bool retried = false);
  void SetWithLease(const std::string& key, std::string value,
                    const std::string& token, const CacheLoadOptions& options,
                    Callback<CacheValue> done);
  void LoadAsync(const std::string& key, AsyncLoader loader,
                 Callback<CacheValue> done, CacheLoadOptions options,
                 absl::Time deadline, bool retried);
  template <typename T>
  absl::StatusOr<T> Wait(std::function<void(Callback<T>)> start);

  ClientImpl* const client_;
  const std::string name_;
  const CacheNamespaceConfig config_;
  std::unique_ptr<NearCache> near_;
  std::unique_ptr<CacheWatch> near_watch_;
  std::atomic<uint64_t> near_hits_{0};
};

class ClientImpl final : public CacheClient {
 public:
  explicit ClientImpl(Options options)
      : options_(std::move(options)),
        channel_(MakeChannel(options_.address)),
        stub_(v1::Cache::NewStub(channel_)),
        batcher_(std::make_unique<Batcher>(stub_.get(),
                                           options_.max_batches_in_flight)),
        client_id_(NewClientId()) {
    hold_thread_ = std::thread([this] { HoldLoop(); });
    timer_thread_ = std::thread([this] { ExpireHoldWaiters(); });
  }
  // Waits for the asynchronous calls and loaders under way; operations must
  // not be started while it runs.
  ~ClientImpl() override {
    std::vector<HoldWaiter> orphans;
    {
      absl::MutexLock lock(&mu_);
      stopping_ = true;
      if (hold_context_ != nullptr) hold_context_->TryCancel();
      orphans.swap(on_hold_);
    }
    hold_thread_.join();
    timer_thread_.join();
    for (HoldWaiter& waiter : orphans)
      waiter.then(absl::CancelledError("the cache client is closing"));
    auto idle = [this]()
                    ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return calls_ == 0; };
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(&idle));
    }
    batcher_.reset();  // fails what is still queued
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(&idle));
  }

  absl::StatusOr<std::shared_ptr<CacheNamespace>> Use(
      const std::string& name, CacheNamespaceConfig config) override {
    v1::UseRequest request;
    request.set_namespace_(name);
    *request.mutable_options() = OptionsProto(config);
    v1::UseResponse response;
    grpc::ClientContext context;
    Prepare(&context, Deadline());
    if (absl::Status status =
            FromGrpcStatus(stub_->Use(&context, request, &response));
        !status.ok()) {
      return status;
    }
    if (response.conflict()) {
      return absl::AlreadyExistsError(
          absl::StrCat("namespace '", name, "' exists with other options: ",
                       response.options().ShortDebugString()));
    }
    auto space = std::make_shared<NamespaceImpl>(this, name, config);
    if (config.near_cache && !space->StartNearCache(options_.wait)) {
      return absl::DeadlineExceededError(
          "the near-cache's watch did not start within the wait");
    }
    return space;
  }

  absl::StatusOr<std::vector<CacheNamespaceStats>> Stats(
      const std::string& name) override {
    v1::StatsRequest request;
    request.set_namespace_(name);
    v1::StatsResponse response;
    grpc::ClientContext context;
    Prepare(&context, Deadline());
    if (absl::Status status =
            FromGrpcStatus(stub_->Stats(&context, request, &response));
        !status.ok()) {
      return status;
    }
    std::vector<CacheNamespaceStats> stats;
    for (const v1::NamespaceStats& s : response.namespaces()) {
      stats.push_back({s.namespace_(), s.hits(), s.misses(), s.loads(),
                       s.errors(), s.keys(), s.bytes(), s.waiting()});
    }
    return stats;
  }

  const std::string& client_id() const override { return client_id_; }

  // Internals for the namespaces.
  v1::Cache::Stub* stub() { return stub_.get(); }
  Batcher* batcher() { return batcher_.get(); }
  absl::Time Deadline() const { return absl::Now() + options_.wait; }
  static void Prepare(grpc::ClientContext* context, absl::Time deadline) {
    context->set_wait_for_ready(true);
    context->set_deadline(absl::ToChronoTime(deadline));
  }

  // Uses `name` again (the server restarted and lost it); `done` gets the
  // outcome (a conflict is fine: the namespace exists).
  void UseAgain(const std::string& name, const CacheNamespaceConfig& config,
                std::function<void(absl::Status)> done) {
    struct Call {
      grpc::ClientContext context;
      v1::UseRequest request;
      v1::UseResponse response;
    };
    auto* call = new Call;
    call->request.set_namespace_(name);
    *call->request.mutable_options() = OptionsProto(config);
    Prepare(&call->context, Deadline());
    Track(+1);
    stub_->async()->Use(&call->context, &call->request, &call->response,
                        [this, call, done](grpc::Status status) {
                          done(FromGrpcStatus(status));
                          delete call;
                          Track(-1);
                        });
  }

  // UseAgain, blocking (from a thread of the caller's or a watch's own).
  void UseAgainAndWait(const std::string& name,
                       const CacheNamespaceConfig& config) {
    absl::Notification used;
    UseAgain(name, config, [&](absl::Status) { used.Notify(); });
    used.WaitForNotification();
  }

  // True once this client's Hold stream is registered; false if `deadline`
  // passes first.
  bool WaitForHold(absl::Time deadline) {
    absl::MutexLock lock(&mu_);
    return mu_.AwaitWithDeadline(absl::Condition(&hold_live_), deadline);
  }
  // Runs `then` with OK once the Hold stream is registered (at once if it
  // is), with DEADLINE_EXCEEDED if `deadline` passes first, or CANCELLED if
  // the client closes.
  void WhenHoldLive(absl::Time deadline,
                    std::function<void(absl::Status)> then) {
    {
      absl::MutexLock lock(&mu_);
      if (!hold_live_) {
        on_hold_.push_back(HoldWaiter{deadline, std::move(then)});
        return;
      }
    }
    then(absl::OkStatus());
  }

  void Track(int delta) {
    absl::MutexLock lock(&mu_);
    calls_ += delta;
  }

 private:
  // One channel per address for the whole process, never destroyed. gRPC
  // 1.51 runs callbacks on a thread pool that it tears down when the last
  // channel using it goes; if that happens on one of its own threads (the
  // last reference dropped by a callback), it crashes (grpc/grpc#32584: seen
  // here as "ref_counted.h: assertion failed: prior > 0" when clients came
  // and went). Clients of one process share the connection, which is also
  // what they should do.
  static std::shared_ptr<grpc::Channel> MakeChannel(
      const std::string& address) {
    static absl::Mutex mu;
    static auto* channels =
        new std::map<std::string, std::shared_ptr<grpc::Channel>>();
    absl::MutexLock lock(&mu);
    std::shared_ptr<grpc::Channel>& channel = (*channels)[address];
    if (channel == nullptr) channel = NewChannel(address);
    return channel;
  }

  static std::shared_ptr<grpc::Channel> NewChannel(const std::string& address) {
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(-1);
    args.SetMaxSendMessageSize(-1);
    // Reconnect quickly after a restart of the server (it is local).
    args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 50);
    args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 50);
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 500);
    SetClientKeepalive(&args);  // a frozen server ends the watch streams
    return grpc::CreateCustomChannel(address,
                                     grpc::InsecureChannelCredentials(), args);
  }

  static std::string NewClientId() {
    std::random_device random;
    return absl::StrFormat("%d-%08x%08x", getpid(), random(), random());
  }

  // Keeps the Hold stream open, re-opening it after a server restart.
  void HoldLoop() {
    while (true) {
      grpc::ClientContext context;
      context.set_wait_for_ready(true);
      {
        absl::MutexLock lock(&mu_);
        if (stopping_) return;
        hold_context_ = &context;
      }
      v1::HoldRequest request;
      request.set_client_id(client_id_);
      auto reader = stub_->Hold(&context, request);
      v1::HoldEvent event;
      if (reader->Read(&event)) {
        std::vector<HoldWaiter> ready;
        {
          absl::MutexLock lock(&mu_);
          hold_live_ = true;
          ready.swap(on_hold_);
        }
        for (HoldWaiter& waiter : ready) waiter.then(absl::OkStatus());
        while (reader->Read(&event)) {
        }
      }
      reader->Finish().error_code();
      absl::MutexLock lock(&mu_);
      hold_live_ = false;
      hold_context_ = nullptr;
      if (mu_.AwaitWithTimeout(absl::Condition(&stopping_),
                               absl::Milliseconds(20)))
        return;
    }
  }

  // Fails the hold waiters whose deadline passed (the Hold thread itself
  // is blocked in the stream).
  void ExpireHoldWaiters() {
    while (true) {
      std::vector<HoldWaiter> expired;
      {
        absl::MutexLock lock(&mu_);
        if (mu_.AwaitWithTimeout(absl::Condition(&stopping_),
                                 absl::Milliseconds(50)))
          return;
        absl::Time now = absl::Now();
        auto late = std::partition(
            on_hold_.begin(), on_hold_.end(),
            [now](const HoldWaiter& w) { return w.deadline > now; });
        std::move(late, on_hold_.end(), std::back_inserter(expired));
        on_hold_.erase(late, on_hold_.end());
      }
      for (HoldWaiter& waiter : expired) {
        waiter.then(absl::DeadlineExceededError(
            "no Hold stream to the cache server within the wait (is it up?)"));
      }
    }
  }

  const Options options_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Cache::Stub> stub_;
  std::unique_ptr<Batcher> batcher_;
  const std::string client_id_;
  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool hold_live_ ABSL_GUARDED_BY(mu_) = false;
  struct HoldWaiter {
    absl::Time deadline;
    std::function<void(absl::Status)> then;
  };
  std::vector<HoldWaiter> on_hold_ ABSL_GUARDED_BY(mu_);
  grpc::ClientContext* hold_context_ ABSL_GUARDED_BY(mu_) = nullptr;
  int calls_ ABSL_GUARDED_BY(mu_) = 0;
  std::thread hold_thread_;
  std::thread timer_thread_;
};

NamespaceImpl::NamespaceImpl(ClientImpl* client, std::string name,
                             CacheNamespaceConfig config)
    : client_(client), name_(std::move(name)), config_(config) {}

bool NamespaceImpl::StartNearCache(absl::Duration wait) {
  near_ = std::make_unique<NearCache>(config_.near_cache_max_entries);
  NearCache* near = near_.get();
  near_watch_ = std::make_unique<WatchImpl>(
      client_->stub(), name_, "", 0,
      [near](const CacheWatchEvent& event) { near->OnEvent(event); },
      [near](bool live) { near->SetLive(live); },
      [this] { client_->UseAgain(name_, config_, [](absl::Status) {}); });
  return near_watch_->WaitUntilLive(wait);
}

template <typename T>
absl::StatusOr<T> NamespaceImpl::Wait(std::function<void(Callback<T>)> start) {
  absl::Notification done;
  absl::StatusOr<T> result = absl::UnknownError("no answer");
  start([&](absl::StatusOr<T> answer) {
    result = std::move(answer);
    done.Notify();
  });
  done.WaitForNotification();  // every call has a deadline
  return result;
}

void NamespaceImpl::Run(v1::BatchRequest::Op op, Done done, bool retried) {
  auto self = shared_from_this();
  client_->batcher()->Submit(
      std::move(op), client_->Deadline(),
      [self, done = std::move(done), retried](
          absl::Status status, const Result* result,
          v1::BatchRequest::Op* op) mutable {
        if (retried || !IsUnknownNamespace(status)) {
          done(std::move(status), result);
          return;
        }
        auto again = std::make_shared<v1::BatchRequest::Op>(std::move(*op));
        self->client_->UseAgain(
            self->name_, self->config_,
            [self, again, done = std::move(done)](absl::Status used) mutable {
              if (!used.ok()) {
                done(std::move(used), nullptr);
                return;
              }
              self->Run(std::move(*again), std::move(done), true);
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
  v1::BatchRequest::Op op;
  op.mutable_get()->set_namespace_(name_);
  op.mutable_get()->set_key(key);
  uint64_t ticket = near_ != nullptr ? near_->BeginFetch() : 0;
  auto self = shared_from_this();
  Run(std::move(op), [self, key, ticket, done = std::move(done)](
                         absl::Status status, const Result* result) {
    const v1::GetResponse* got =
        status.ok() && result->get().found() ? &result->get() : nullptr;
    if (self->near_ != nullptr) self->near_->EndFetch(ticket, key, got);
    if (!status.ok()) return done(std::move(status));
    if (got == nullptr) return done(std::optional<CacheValue>());
    done(std::optional<CacheValue>(CacheValue{got->value(), got->revision()}));
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
  v1::BatchRequest::Op op;
  v1::SetRequest* set = op.mutable_set();
  set->set_namespace_(name_);
  set->set_key(key);
  set->set_value(std::move(value));
  set->set_leave_if_not_null(options.leave_if_not_null);
  if (options.ttl > absl::ZeroDuration())
    ToProto(options.ttl, set->mutable_ttl());
  auto self = shared_from_this();
  std::shared_ptr<const std::string> written =
      near_ != nullptr ? std::make_shared<const std::string>(set->value())
                       : nullptr;
  uint64_t ticket = near_ != nullptr ? near_->BeginFetch() : 0;
  Run(std::move(op), [self, key, written, ticket, done = std::move(done)](
                         absl::Status status, const Result* result) {
    if (self->near_ != nullptr) {
      if (status.ok() && result->set().written()) {
        self->near_->EndWrite(ticket, key, written.get(),
                              result->set().revision(),
                              result->set().expires_unix_micros());
      } else {
        self->near_->AbandonWrite();
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
  v1::BatchRequest::Op op;
  op.mutable_delete_()->set_namespace_(name_);
  op.mutable_delete_()->set_key(key);
  auto self = shared_from_this();
  uint64_t ticket = near_ != nullptr ? near_->BeginFetch() : 0;
  Run(std::move(op), [self, key, ticket, done = std::move(done)](
                         absl::Status status, const Result* result) {
    if (self->near_ != nullptr) {
      if (status.ok() && result->delete_().found()) {
        self->near_->EndWrite(ticket, key, nullptr,
                              result->delete_().revision(), 0);
      } else {
        self->near_->AbandonWrite();
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
  std::vector<std::string> keys;
  v1::KeysRequest request;
  request.set_namespace_(name_);
  request.set_prefix(prefix);
  request.set_limit(10000);
  absl::Time deadline = client_->Deadline();
  bool retried = false;
  while (true) {
    v1::KeysResponse response;
    grpc::ClientContext context;
    ClientImpl::Prepare(&context, deadline);
    absl::Status status =
        FromGrpcStatus(client_->stub()->Keys(&context, request, &response));
    if (IsUnknownNamespace(status) && !retried) {
      retried = true;
      client_->UseAgainAndWait(name_, config_);
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
  std::weak_ptr<NamespaceImpl> weak = weak_from_this();
  return std::make_unique<WatchImpl>(client_->stub(), name_, key, from_revision,
                                     std::move(on_event), nullptr, [weak] {
                                       if (auto self = weak.lock())
                                         self->client_->UseAgainAndWait(
                                             self->name_, self->config_);
                                     });
}

absl::StatusOr<CacheValue> NamespaceImpl::GetOrLoad(const std::string& key,
                                                    const Loader& loader,
                                                    CacheLoadOptions options) {
  if (!client_->WaitForHold(client_->Deadline())) {
    return absl::DeadlineExceededError(
        "no Hold stream to the cache server within the wait (is it up?)");
  }
  // The asynchronous path does the work; the loader itself runs here, on
  // the caller's thread, never on one of the client's.
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
  absl::Time deadline = client_->Deadline();
  auto self = shared_from_this();
  client_->WhenHoldLive(
      deadline, [self, key, loader = std::move(loader), done = std::move(done),
                 options, deadline](absl::Status live) mutable {
        if (!live.ok()) return done(std::move(live));
        self->LoadAsync(key, std::move(loader), std::move(done), options,
                        deadline, false);
      });
}

void NamespaceImpl::LoadAsync(const std::string& key, AsyncLoader loader,
                              Callback<CacheValue> done,
                              CacheLoadOptions options, absl::Time deadline,
                              bool retried) {
  struct Call {
    grpc::ClientContext context;
    v1::GetRequest request;
    v1::GetResponse response;
  };
  auto* call = new Call;
  call->request.set_namespace_(name_);
  call->request.set_key(key);
  call->request.set_lease(true);
  call->request.set_client_id(client_->client_id());
  ToProto(deadline - absl::Now(), call->request.mutable_wait());
  ToProto(options.lease_ttl, call->request.mutable_lease_ttl());
  ClientImpl::Prepare(&call->context, deadline);
  auto self = shared_from_this();
  client_->Track(+1);
  client_->stub()->async()->Get(
      &call->context, &call->request, &call->response,
      [self, call, key, loader = std::move(loader), done = std::move(done),
       options, deadline, retried](grpc::Status grpc_status) mutable {
        std::unique_ptr<Call> owned(call);
        ClientImpl* client = self->client_;
        absl::Status status = FromGrpcStatus(grpc_status);
        const v1::GetResponse& got = call->response;
        auto retry = [&](bool reuse) {
          auto again = [self, key, loader = std::move(loader),
                        done = std::move(done), options,
                        deadline](absl::Status ready) mutable {
            if (!ready.ok()) return done(std::move(ready));
            self->LoadAsync(key, std::move(loader), std::move(done), options,
                            deadline, true);
          };
          if (reuse) {
            client->UseAgain(self->name_, self->config_, std::move(again));
          } else {  // the Hold stream is being re-opened
            client->WhenHoldLive(deadline, std::move(again));
          }
        };
        if (!retried && IsUnknownNamespace(status)) {
          retry(true);
        } else if (!retried &&
                   status.code() == absl::StatusCode::kFailedPrecondition) {
          retry(false);
        } else if (!status.ok()) {
          done(std::move(status));
        } else if (got.found()) {
          done(CacheValue{got.value(), got.revision()});
        } else if (!got.load_error().empty()) {
          done(absl::AbortedError(absl::StrCat(
              "the loader failed in another process: ", got.load_error())));
        } else if (got.lease_token().empty()) {
          done(absl::InternalError("neither a value nor a lease"));
        } else {  // this process loads
          std::string token = got.lease_token();
          // The client's destruction waits for the loader and its write.
          client->Track(+1);
          Callback<CacheValue> tracked =
              [client, done = std::move(done)](absl::StatusOr<CacheValue> v) {
                done(std::move(v));
                client->Track(-1);
              };
          loader(key, [self, key, token, options, done = std::move(tracked)](
                          absl::StatusOr<std::string> loaded) mutable {
            if (loaded.ok()) {
              self->SetWithLease(key, *std::move(loaded), token, options,
                                 std::move(done));
              return;
            }
            // Waiters learn of the failure through ReleaseLease.
            auto* call = new grpc::ClientContext;
            auto* release = new v1::ReleaseLeaseRequest;
            auto* response = new v1::ReleaseLeaseResponse;
            release->set_namespace_(self->name_);
            release->set_key(key);
            release->set_lease_token(token);
            release->set_error(loaded.status().ToString());
            release->set_retry(options.retry_waiters);
            ClientImpl::Prepare(call, self->client_->Deadline());
            self->client_->Track(+1);
            self->client_->stub()->async()->ReleaseLease(
                call, release, response,
                [self, call, release, response](grpc::Status) {
                  delete call;
                  delete release;
                  delete response;
                  self->client_->Track(-1);
                });
            done(loaded.status());
          });
        }
        client->Track(-1);
      });
}

void NamespaceImpl::SetWithLease(const std::string& key, std::string value,
                                 const std::string& token,
                                 const CacheLoadOptions& options,
                                 Callback<CacheValue> done) {
  v1::BatchRequest::Op op;
  v1::SetRequest* set = op.mutable_set();
  set->set_namespace_(name_);
  set->set_key(key);
  set->set_value(value);
  set->set_lease_token(token);
  if (options.ttl > absl::ZeroDuration())
    ToProto(options.ttl, set->mutable_ttl());
  auto self = shared_from_this();
  uint64_t ticket = near_ != nullptr ? near_->BeginFetch() : 0;
  Run(std::move(op),
      [self, key, value = std::move(value), ticket, done = std::move(done)](
          absl::Status status, const Result* result) mutable {
        if (self->near_ != nullptr && !status.ok()) self->near_->AbandonWrite();
        if (status.code() == absl::StatusCode::kFailedPrecondition) {
          // The lease is no longer ours: another process wrote the key, or
          // deleted it (an invalidation: our load may predate it), or the
          // lease lapsed or the server restarted. Writing now could put a
          // stale value over a newer one: give the caller its value and
          // leave the cache alone.
          return done(CacheValue{std::move(value), 0});
        }
        if (!status.ok()) return done(std::move(status));
        if (self->near_ != nullptr) {
          self->near_->EndWrite(ticket, key, &value, result->set().revision(),
                                result->set().expires_unix_micros());
        }
        done(CacheValue{std::move(value), result->set().revision()});
      });
}

}  // namespace

absl::StatusOr<std::unique_ptr<CacheClient>> CacheClient::Connect(
    Options options) {
  if (options.address.empty()) {
    const char* env = getenv("CLUSTER2_CACHE");
    if (env == nullptr || *env == '\0') {
      return absl::FailedPreconditionError(
          "no cache server address: CLUSTER2_CACHE is not set (is the master "
          "running with cache.enable?)");
    }
    options.address = env;
  }
  if (!absl::StartsWith(options.address, "unix:"))
    options.address = "unix:" + options.address;
  return std::unique_ptr<CacheClient>(new ClientImpl(std::move(options)));
}

}  // namespace cluster2
