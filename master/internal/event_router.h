// EventRouter: the master's switchboard for cross-process events.
//
// Workers reach it through their sessions, non-worker clients through the
// Emitter service, and the master's own listeners (Subscribe streams, an
// embedding app) are sinks like the workers. Route() resolves an event's
// targets to processes and hands the event to each process's sink once.
//
// Targets: `self` (the sender; the master for a non-worker client),
// `master`, `workers` (every attached worker), a worker's pid, or `cluster`
// (every process of every host: through the bridge when there is one, see
// SetBridge; else the master and every worker). Empty targets mean the
// sender's default: from a worker, itself and the master; from the master
// side, the master and every worker.
//
// Order: events from one sender are routed in the order Route() is called
// for them, and sinks keep that order, so per-sender order holds.
//
// Thread-safe. Sinks are called on the routing thread with the router's
// mutex held: Deliver must not block or call back into the router. In the
// master, sessions and Emitter calls route on the I/O loop (master-io), so
// their sinks write to the target sessions inline; a sink called from
// another thread (the control API, an embedding app, the monitor) hands
// the event to the loop itself (session_calls.h), in call order.
#ifndef CLUSTER2_MASTER_INTERNAL_EVENT_ROUTER_H_
#define CLUSTER2_MASTER_INTERNAL_EVENT_ROUTER_H_

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <map>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "cluster2/v1/emitter.pb.h"
#include "events/listeners.h"

namespace cluster2 {

// Where the events for one process (or one master listener) go.
class EventSink {
 public:
  virtual ~EventSink() = default;
  // Takes the event; must not block.
  virtual void Deliver(const v1::Event& event) = 0;
};

struct RouteResult {
  uint32_t delivered = 0;  // processes that received the event
  std::vector<int32_t> unknown_pids;
};

class EventRouter {
 public:
  // `master_pid` is stamped as the sender of master-side events.
  explicit EventRouter(pid_t master_pid) : master_pid_(master_pid) {}

  // A worker's session: events targeted at `pid` go to `sink` (borrowed
  // until RemoveWorker).
  void AddWorker(pid_t pid, EventSink* sink) ABSL_LOCKS_EXCLUDED(mu_);
  void RemoveWorker(pid_t pid) ABSL_LOCKS_EXCLUDED(mu_);
  // A listener in the master (a Subscribe stream, an embedding app): it
  // receives every event delivered to the master. Returns an id for removal.
  uint64_t AddMasterListener(EventSink* sink) ABSL_LOCKS_EXCLUDED(mu_);
  void RemoveMasterListener(uint64_t id) ABSL_LOCKS_EXCLUDED(mu_);

  // Validates and delivers `event` from `sender_pid` (a worker's pid, or 0
  // for the master side). Stamps from_pid, and sequence for the master
  // side. Errors as ValidateEvent.
  absl::StatusOr<RouteResult> Route(v1::Event event, pid_t sender_pid)
      ABSL_LOCKS_EXCLUDED(mu_);

  // With a bridge (EmitterBridge), an event with the target `cluster` is
  // handed to `publish` (which must not block) instead of being delivered
  // here: it comes back through DeliverFromBridge, as on every other host.
  // Call before routing starts.
  void SetBridge(std::function<void(const v1::Event&)> publish)
      ABSL_LOCKS_EXCLUDED(mu_);
  // An event from the bridge (this host's or another's): every process of
  // this host gets it once. Returns how many.
  uint32_t DeliverFromBridge(const v1::Event& event) ABSL_LOCKS_EXCLUDED(mu_);

  // Totals since start, for metrics: events routed, deliveries made, events
  // refused.
  struct Counters {
    uint64_t routed = 0;
    uint64_t delivered = 0;
    uint64_t refused = 0;
  };
  Counters counters() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  const pid_t master_pid_;
  mutable absl::Mutex mu_;
  Counters counters_ ABSL_GUARDED_BY(mu_);
  std::map<pid_t, EventSink*> workers_ ABSL_GUARDED_BY(mu_);
  std::map<uint64_t, EventSink*> master_listeners_ ABSL_GUARDED_BY(mu_);
  uint64_t next_listener_ ABSL_GUARDED_BY(mu_) = 1;
  uint64_t master_sequence_ ABSL_GUARDED_BY(mu_) = 0;
  std::function<void(const v1::Event&)> bridge_ ABSL_GUARDED_BY(mu_);
};

}  // namespace cluster2

#endif  // CLUSTER2_MASTER_INTERNAL_EVENT_ROUTER_H_
