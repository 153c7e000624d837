// What the supervisor tells its observer (supervisor.h: WorkerEvent,
// SupervisorObserver): the events' names and how they are sent.
#include <string>
#include <utility>

#include "master/internal/supervisor.h"

namespace cluster2 {

absl::string_view WorkerEventName(WorkerEvent::Kind kind) {
  using Kind = WorkerEvent::Kind;
  switch (kind) {
    case Kind::kStarted:
      return "started";
    case Kind::kReady:
      return "ready";
    case Kind::kReplacing:
      return "replacing";
    case Kind::kRecycled:
      return "recycled";
    case Kind::kScaledDown:
      return "scaled_down";
    case Kind::kExited:
      return "exited";
    case Kind::kCrashed:
      return "crashed";
    case Kind::kHung:
      return "hung";
    case Kind::kStartTimeout:
      return "start_timeout";
    case Kind::kSessionLost:
      return "session_lost";
    case Kind::kGaveUp:
      return "gave_up";
    case Kind::kDebugOpened:
      return "debug_opened";
  }
  return "unknown";
}

void Supervisor::SetObserver(SupervisorObserver* observer) {
  absl::MutexLock lock(&mu_);
  observer_ = observer;
}

void Supervisor::NotifyLocked(WorkerEvent::Kind kind, const Process& process,
                              std::string detail) {
  if (observer_ == nullptr) return;
  WorkerEvent event;
  event.at = clock_->Now();
  event.kind = kind;
  event.slot = process.id;
  event.group = groups_[process.group].spec.name;
  event.pid = process.pid;
  event.detail = std::move(detail);
  observer_->OnWorkerEvent(event);
}

}  // namespace cluster2
