// IoLoop: one I/O thread and the gRPC completion queue it drives. Every
// gRPC operation of its owner (the cache client's streams, the cache
// server's calls, the master's worker sessions) is started on this thread
// and its completion is handled inline on it: no hand-off to another thread
// between the socket and the code that acts on a message, and no locks for
// state only the loop touches.
//
// Work reaches the thread through Post: from the thread itself it runs after
// the current event, without a wake-up; from another thread it is queued
// and one grpc::Alarm wakes the thread for everything posted before it runs.
//
// Thread-safe: Post and InLoop from any thread; everything else (Tag and
// Timer operations, the completion queue) on the loop thread only.
#ifndef CLUSTER2_COMMON_IO_LOOP_H_
#define CLUSTER2_COMMON_IO_LOOP_H_

#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "grpcpp/alarm.h"
#include "grpcpp/completion_queue.h"

namespace cluster2 {

class IoLoop {
 public:
  // A completion-queue tag: runs its handler with the operation's `ok` on
  // the loop thread. The owner keeps it alive while an operation using it
  // is outstanding; one operation at a time per tag.
  class Tag {
   public:
    Tag(IoLoop& loop, std::function<void(bool ok)> handler)
        : loop_(loop), handler_(std::move(handler)) {}
    Tag(const Tag&) = delete;
    Tag& operator=(const Tag&) = delete;
    // The tag for one operation about to start (counted until it is back).
    void* Arm() {
      ++loop_.outstanding_;
      return this;
    }

   private:
    friend class IoLoop;
    IoLoop& loop_;
    std::function<void(bool)> handler_;
  };

  // A one-shot timer on the loop: `handler` runs with true when it fires,
  // false when cancelled. Loop thread only; must not be destroyed while set.
  class Timer {
   public:
    Timer(IoLoop& loop, std::function<void(bool fired)> handler);
    bool set() const { return set_; }
    void Set(absl::Time when);
    void Cancel();

   private:
    IoLoop& loop_;
    grpc::Alarm alarm_;
    Tag tag_;
    bool set_ = false;
  };

  // Starts the thread, named `thread_name`, on `cq` (a server's
  // ServerCompletionQueue) or on a queue of its own.
  explicit IoLoop(std::string thread_name,
                  std::unique_ptr<grpc::CompletionQueue> cq = nullptr);
  // Shuts the queue down and joins the thread, which first handles every
  // event still due. Operations started on the queue must come back by
  // then: a client's are cancelled by their owner, a server's by
  // grpc::Server::Shutdown, which must come first.
  ~IoLoop();

  grpc::CompletionQueue* cq() { return cq_.get(); }
  bool InLoop() const { return std::this_thread::get_id() == thread_.get_id(); }

  // Runs `work` on the loop thread (see the file comment).
  void Post(std::function<void()> work);
  // Post, then waits for `work` to have run (runs it inline on the loop).
  void RunAndWait(std::function<void()> work);
  // Waits (not on the loop thread) until no operation is outstanding. The
  // caller must have stopped everything that starts new ones.
  void WaitIdle();

 private:
  void Run();
  void RunPosted();

  const std::string thread_name_;
  std::unique_ptr<grpc::CompletionQueue> cq_;
  // Loop thread only: work posted from the loop itself, and the number of
  // operations started with a Tag and not yet back.
  std::vector<std::function<void()>> local_;
  int outstanding_ = 0;
  absl::Mutex mu_;
  std::vector<std::function<void()>> posted_ ABSL_GUARDED_BY(mu_);
  // The wake alarm is set and has not fired yet.
  bool waking_ ABSL_GUARDED_BY(mu_) = false;
  // Set when outstanding_ reaches zero (for WaitIdle).
  bool idle_ ABSL_GUARDED_BY(mu_) = true;
  grpc::Alarm wake_;
  Tag wake_tag_;
  std::thread thread_;
};

}  // namespace cluster2

#endif  // CLUSTER2_COMMON_IO_LOOP_H_
