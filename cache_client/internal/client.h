// ClientImpl: the CacheClient (cache_client/cache.h). It owns the client's
// one thread, "cache-io" (IoLoop), and everything that thread drives: the
// Pipeline stream (Batcher), the Hold stream (a ResumableStream), every
// watch (WatchStream) and the unary calls of get-or-load (UnaryCalls).
//
// The loop thread alone touches the streams, the watches, the unary calls
// and the Hold's waiters; callers' threads reach them through
// IoLoop::Post. Use, Keys and Stats are synchronous calls on the caller's
// thread. Lock order: mu_ is a leaf (never held while calling out).
//
// Thread-safe.
#ifndef CLUSTER2_CACHE_CLIENT_INTERNAL_CLIENT_H_
#define CLUSTER2_CACHE_CLIENT_INTERNAL_CLIENT_H_

#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "cache_client/cache.h"
#include "cache_client/internal/batcher.h"
#include "cache_client/internal/resumable_stream.h"
#include "cache_client/internal/unary_calls.h"
#include "cache_client/internal/watch.h"
#include "cluster2/v1/cache.grpc.pb.h"
#include "common/clock.h"
#include "common/io_loop.h"

namespace cluster2::cache_internal {

class ClientImpl final : public CacheClient {
 public:
  // `options.address` is "unix:/path".
  explicit ClientImpl(CacheClientOptions options);
  // Waits for the loaders under way; cancels the calls and streams.
  // Operations must not be started while it runs.
  ~ClientImpl() override;

  absl::StatusOr<std::shared_ptr<CacheNamespace>> Use(
      const std::string& name, CacheNamespaceConfig config) override;
  absl::StatusOr<std::vector<CacheNamespaceStats>> Stats(
      const std::string& name) override;
  const std::string& client_id() const override { return client_id_; }

  // For the namespaces and watches.
  IoLoop& loop() { return loop_; }
  v1::Cache::Stub& stub() { return *stub_; }
  Batcher& batcher() { return batcher_; }
  Clock& clock() { return clock_; }
  absl::Time Deadline() const { return absl::Now() + options_.wait; }
  absl::Duration wait() const { return options_.wait; }
  // Loop thread: unary calls of get-or-load.
  UnaryCalls& unary() { return unary_; }
  // Batches sent on the Pipeline so far.
  uint64_t batches_sent() const { return batcher_.batches_sent(); }

  // FAILED_PRECONDITION when called on the loop thread, where blocking
  // would deadlock the client.
  absl::Status CheckMayBlock() const;

  // Loop thread: Uses `name` again (the server restarted and lost it);
  // `done` gets the outcome (a conflict is fine: the namespace exists).
  void UseAgain(const std::string& name, const CacheNamespaceConfig& config,
                std::function<void(absl::Status)> done);
  // The same, blocking (a caller's thread).
  absl::Status UseAgainAndWait(const std::string& name,
                               const CacheNamespaceConfig& config);

  // True once this client's Hold stream is registered; false if `deadline`
  // passes first. Not on the loop thread.
  bool WaitForHold(absl::Time deadline);
  // Loop thread: runs `then` (on the loop) with OK once the Hold stream is
  // registered (at once if it is), DEADLINE_EXCEEDED if `deadline` passes
  // first, or CANCELLED if the client closes.
  void WhenHoldLive(absl::Time deadline,
                    std::function<void(absl::Status)> then);

  // Loaders under way (+1 when one starts, -1 when its result is handled):
  // the destructor waits for them.
  void Track(int delta);

  // Starts a watch owned by this client; the handle stops it.
  std::unique_ptr<CacheWatch> StartWatch(WatchStream::Options options);
  // Loop thread or not: stops `watch` (no event after it returns).
  void StopWatch(WatchStream* watch);

 private:
  struct HoldWaiter {
    absl::Time deadline;
    std::function<void(absl::Status)> then;
  };
  void OnHoldLive(bool live);
  void ExpireHoldWaiters();

  const CacheClientOptions options_;
  const std::string client_id_;
  RealClock clock_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Cache::Stub> stub_;
  // Destroyed after the members below, which hold tags of its queue.
  IoLoop loop_;
  UnaryCalls unary_;
  Batcher batcher_;
  ResumableStream<v1::HoldEvent> hold_;

  // Loop thread only.
  bool stopping_ = false;
  std::vector<HoldWaiter> hold_waiters_;
  IoLoop::Timer hold_timer_;  // the earliest waiter's deadline
  std::unordered_map<WatchStream*, std::unique_ptr<WatchStream>> watches_;

  absl::Mutex mu_;
  bool hold_live_ ABSL_GUARDED_BY(mu_) = false;
  int loaders_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace cluster2::cache_internal

#endif  // CLUSTER2_CACHE_CLIENT_INTERNAL_CLIENT_H_
