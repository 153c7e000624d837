// The calls SessionServer serves, as completion-queue state machines on its
// loop (see session_server.h). Each Listen* asks gRPC for one call of its
// method; once a call arrives it asks for the next one, then serves its own
// until it ends and frees itself.
//
// Loop thread only, except CrossThreadInbox::Push and the EventSink /
// WorkerChannel / StatusChannel methods of the calls, which any thread may
// use.
#ifndef CLUSTER2_MASTER_INTERNAL_SESSION_CALLS_H_
#define CLUSTER2_MASTER_INTERNAL_SESSION_CALLS_H_

#include <atomic>
#include <cstddef>
#include <deque>
#include <set>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "cluster2/v1/emitter.grpc.pb.h"
#include "cluster2/v1/worker_session.grpc.pb.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "master/internal/session_server.h"

namespace cluster2 {

class HealthWatchCall;

struct SessionServer::Shared {
  SessionServerOptions options;
  Supervisor* supervisor = nullptr;
  EventRouter* router = nullptr;
  StatusRegistry* registry = nullptr;
  DebugSession* debug = nullptr;
  v1::WorkerSession::AsyncService sessions;
  v1::Emitter::AsyncService emitter;
  grpc::health::v1::Health::AsyncService health;
  grpc::ServerCompletionQueue* cq = nullptr;  // the loop's
  IoLoop* loop = nullptr;
  // Loop thread only: sessions admitted that have not said hello yet.
  size_t waiting_for_hello = 0;
  // What grpc.health.v1 answers for the server (""); any thread writes it.
  std::atomic<bool> serving{false};
  // Loop thread only: the open Health.Watch calls.
  std::set<HealthWatchCall*> health_watchers;
};

// What other threads send to one call, in call order, handed to the loop
// with one Post per batch: the caller Posts a Take when Push says so.
template <typename T>
class CrossThreadInbox {
 public:
  // Any thread. True if the caller must Post work that calls Take.
  bool Push(T item) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    items_.push_back(std::move(item));
    if (scheduled_) return false;
    scheduled_ = true;
    nonempty_.store(true, std::memory_order_release);
    return true;
  }
  // Loop thread: everything pushed so far (cheap when nothing was).
  std::deque<T> Take() ABSL_LOCKS_EXCLUDED(mu_) {
    std::deque<T> taken;
    if (!nonempty_.load(std::memory_order_acquire)) return taken;
    absl::MutexLock lock(&mu_);
    taken.swap(items_);
    scheduled_ = false;
    nonempty_.store(false, std::memory_order_relaxed);
    return taken;
  }

 private:
  absl::Mutex mu_;
  std::deque<T> items_ ABSL_GUARDED_BY(mu_);
  bool scheduled_ ABSL_GUARDED_BY(mu_) = false;
  std::atomic<bool> nonempty_{false};
};

// WorkerSession.Attach (session_calls.cc).
void ListenForSession(SessionServer::Shared* shared);
// Emitter.Emit, Emitter.EmitStream and Emitter.Subscribe (emitter_calls.cc).
void ListenForEmit(SessionServer::Shared* shared);
void ListenForEmitStream(SessionServer::Shared* shared);
void ListenForSubscribe(SessionServer::Shared* shared);
// grpc.health.v1.Health Check and Watch (health_calls.cc); HealthChanged
// tells the watchers that `serving` may have changed.
void ListenForHealth(SessionServer::Shared* shared);
void HealthChanged(SessionServer::Shared* shared);

}  // namespace cluster2

#endif  // CLUSTER2_MASTER_INTERNAL_SESSION_CALLS_H_
