// EventTimeline: the latest things that happened to the workers and the
// cluster (started, ready, recycled and why, crashed with its exit status,
// hung, marked down, debug), for the monitor page (MonitorState.timeline).
// A SupervisorObserver that passes every call on to `next` too (the
// metrics), so the supervisor has one observer.
//
// Thread-safe; never blocks beyond its own short lock.
#ifndef CLUSTER2_MASTER_INTERNAL_EVENT_TIMELINE_H_
#define CLUSTER2_MASTER_INTERNAL_EVENT_TIMELINE_H_

#include <deque>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "cluster2/v1/monitor.pb.h"
#include "master/internal/supervisor.h"

namespace cluster2 {

class EventTimeline final : public SupervisorObserver {
 public:
  static constexpr size_t kCapacity = 200;

  // `next` (borrowed, may be null) hears every call as well.
  explicit EventTimeline(SupervisorObserver* next) : next_(next) {}

  void OnWorkerEvent(const WorkerEvent& event) override;
  void OnHeartbeat(unsigned slot, const std::string& group, pid_t pid,
                   bool current, const HeartbeatFigures& figures) override {
    if (next_ != nullptr)
      next_->OnHeartbeat(slot, group, pid, current, figures);
  }

  // An event of the whole cluster ("marked_down", "debug_ended", ...).
  void AddClusterEvent(absl::Time at, const std::string& kind,
                       const std::string& detail);

  // The latest events, oldest first.
  std::vector<v1::MonitorEvent> Recent() const;

 private:
  void Add(v1::MonitorEvent event);

  SupervisorObserver* const next_;
  mutable absl::Mutex mu_;
  std::deque<v1::MonitorEvent> events_ ABSL_GUARDED_BY(mu_);
};

}  // namespace cluster2

#endif  // CLUSTER2_MASTER_INTERNAL_EVENT_TIMELINE_H_
