// Batcher: gathers the Get, Set and Delete operations of a client into
// BatchRequests on one long-lived Pipeline stream, driven by the client's
// IoLoop.
//
// At most `max_in_flight` batches await their answer; operations submitted
// meanwhile queue and leave together in the next batch, at the next
// completion (an answer), without waking the loop. Only an operation that
// finds nothing in flight wakes the loop, once for every operation queued
// until it runs. An operation larger than kMaxBatchBytes travels alone in a
// unary Batch call, so that an oversize one fails alone
// (RESOURCE_EXHAUSTED) instead of breaking the stream for everyone.
//
// A stream that breaks (the server restarted) fails its unanswered batches
// with UNAVAILABLE; the next batch opens a new stream, which waits for the
// server. When the oldest batch passes its deadline, the stream is
// cancelled and its batches fail with DEADLINE_EXCEEDED.
//
// Thread-safe: Submit from any thread; Stop on the loop thread.
#ifndef CLUSTER2_CACHE_CLIENT_INTERNAL_BATCHER_H_
#define CLUSTER2_CACHE_CLIENT_INTERNAL_BATCHER_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "cache_client/internal/unary_calls.h"
#include "cluster2/v1/cache.grpc.pb.h"
#include "common/io_loop.h"

namespace cluster2::cache_internal {

inline constexpr size_t kMaxOpsPerBatch = 512;
// Batches on the stream stay under ~2 MiB (the server accepts 8 MiB).
inline constexpr size_t kMaxBatchBytes = 1 << 20;

class Batcher {
 public:
  using Op = v1::BatchRequest::Op;
  using Result = v1::BatchResponse::Result;
  // An operation's outcome, on the loop thread: the status of its batch, or
  // its own with its result; `op` is the operation itself, which the
  // callback may take back to submit it again.
  using OpDone = std::function<void(absl::Status, const Result*, Op* op)>;

  // `loop`, `stub` and `unary` are borrowed and outlive the batcher.
  Batcher(IoLoop& loop, v1::Cache::Stub& stub, UnaryCalls& unary,
          int max_in_flight);
  // After Stop and IoLoop::WaitIdle.
  ~Batcher();
  Batcher(const Batcher&) = delete;
  Batcher& operator=(const Batcher&) = delete;

  // Runs `op` before `deadline`; `done` runs exactly once.
  void Submit(Op op, absl::Time deadline, OpDone done);

  // Loop thread: cancels the stream and fails every operation not answered
  // (CANCELLED), and those submitted later. The stream's operations come
  // back to the loop afterwards (IoLoop::WaitIdle).
  void Stop();

  // Batches sent so far (for tests of the batching).
  uint64_t batches_sent() const;

 private:
  struct Pending {
    Op op;
    absl::Time deadline;
    OpDone done;
  };
  // A batch written (or about to be) on the current stream, unanswered.
  struct Sent {
    std::unique_ptr<v1::BatchRequest> request;
    std::vector<OpDone> dones;
    absl::Time deadline;
  };
  struct Stream;

  // Loop thread: moves queued operations into batches while there is room,
  // opens a stream if there is none and writes what is not yet written.
  void Flush();
  void OpenStream();
  void WriteNext();
  void OnStarted(Stream* stream, bool ok);
  void OnRead(Stream* stream, bool ok);
  void OnWritten(Stream* stream, bool ok);
  void OnFinished(Stream* stream);
  // An operation of `stream` came back; frees it once all have.
  void Returned(Stream* stream);
  void ArmWatchdog();
  void SubmitAlone(Op op, absl::Time deadline, OpDone done);

  IoLoop& loop_;
  v1::Cache::Stub& stub_;
  UnaryCalls& unary_;
  const size_t max_in_flight_;

  mutable absl::Mutex mu_;
  std::deque<Pending> queue_ ABSL_GUARDED_BY(mu_);
  // The loop will run Flush without being woken (a completion is due, or
  // a wake-up was posted).
  bool flush_due_ ABSL_GUARDED_BY(mu_) = false;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t batches_sent_ ABSL_GUARDED_BY(mu_) = 0;

  // Loop thread only.
  std::unique_ptr<Stream> stream_;              // the current one
  std::vector<std::unique_ptr<Stream>> ended_;  // until their ops are back
  std::deque<Sent> sent_;
  size_t written_ = 0;  // batches of sent_ already written
  uint64_t next_id_ = 1;
  bool timed_out_ = false;
  IoLoop::Timer watchdog_;
};

}  // namespace cluster2::cache_internal

#endif  // CLUSTER2_CACHE_CLIENT_INTERNAL_BATCHER_H_
