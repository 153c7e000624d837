// Supervisor, part 2: the debug-session bookkeeping (a worker leaving its
// slot for a debugger, a fresh worker under one, the end of the session).
// The class and its locking are described in supervisor.h.
#include <signal.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/log.h"
#include "master/internal/supervisor.h"

namespace cluster2 {

bool Supervisor::AwaitIdle(pid_t pid, absl::Time deadline) {
  absl::MutexLock lock(&mu_);
  auto idle = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    auto it = processes_.find(pid);
    if (it == processes_.end()) return true;
    const Process& process = it->second;
    return process.paused_at && process.heartbeat_at &&
           *process.heartbeat_at >= *process.paused_at &&
           process.heartbeat->requests_in_flight == 0;
  };
  return mu_.AwaitWithDeadline(absl::Condition(&idle), deadline) &&
         processes_.count(pid) > 0;
}

absl::Status Supervisor::BeginDebug(pid_t pid, absl::string_view reason) {
  absl::MutexLock lock(&mu_);
  if (stopping_)
    return absl::FailedPreconditionError("the cluster is stopping");
  auto it = processes_.find(pid);
  if (it == processes_.end())
    return absl::NotFoundError(absl::StrCat("no worker with pid ", pid));
  Process& process = it->second;
  Slot* slot = SlotOfPidLocked(pid);
  if (process.state != WorkerState::kPaused || slot == nullptr ||
      slot->successor != 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "worker pid ", pid, " is ", WorkerStateName(process.state),
        slot == nullptr ? ", not a slot's current worker"
                        : (slot->successor != 0 ? ", being replaced" : "")));
  }
  // The replacement takes the slot at once: the paused worker no longer
  // accepts, so the slot's capacity is back as soon as it is ready.
  absl::StatusOr<pid_t> replacement = SpawnLocked(*slot);
  if (!replacement.ok()) return replacement.status();
  slot->pid = *replacement;
  process.state = WorkerState::kDebugging;
  process.reason = std::string(reason);
  NotifyLocked(WorkerEvent::Kind::kDebugOpened, process, std::string(reason));
  LogInfo(absl::StrCat(WorkerName(process.id, pid),
                       " left its slot for a debug session: pid ", *replacement,
                       " replaces it"));
  RouteLocked();
  return absl::OkStatus();
}

absl::StatusOr<pid_t> Supervisor::StartDebugWorker(
    const std::vector<std::string>& prefix, absl::string_view reason) {
  absl::MutexLock lock(&mu_);
  if (stopping_)
    return absl::FailedPreconditionError("the cluster is stopping");
  const unsigned id = static_cast<unsigned>(slots_.size());
  // A fresh debug worker runs the first group's command.
  unsigned group = 0;
  while (group + 1 < groups_.size() && groups_[group].removed) ++group;
  absl::StatusOr<pid_t> pid = LaunchLocked(id, kNoSlot, group, prefix);
  if (!pid.ok()) return pid.status();
  Process& process = processes_[*pid];
  process.state = WorkerState::kDebugging;
  process.reason = std::string(reason);
  NotifyLocked(WorkerEvent::Kind::kDebugOpened, process,
               absl::StrCat("fresh: ", reason));
  LogInfo(absl::StrCat(WorkerName(id, *pid), " started for a debug session: ",
                       absl::StrJoin(prefix, " ")));
  return *pid;
}

absl::Status Supervisor::OpenDebugger(pid_t pid, absl::string_view protocol,
                                      absl::string_view host, uint16_t port) {
  absl::MutexLock lock(&mu_);
  auto it = processes_.find(pid);
  if (it == processes_.end())
    return absl::NotFoundError(absl::StrCat("no worker with pid ", pid));
  if (it->second.state != WorkerState::kDebugging ||
      it->second.channel == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat(
        "worker pid ", pid, " is not a debug session's attached worker"));
  }
  it->second.channel->SendOpenDebugger(protocol, host, port);
  return absl::OkStatus();
}

void Supervisor::ExcuseHeartbeats(pid_t pid, absl::Time from) {
  absl::MutexLock lock(&mu_);
  auto it = processes_.find(pid);
  if (it != processes_.end()) it->second.excused_until = from;
}

absl::Status Supervisor::EndDebug(pid_t pid) {
  absl::MutexLock lock(&mu_);
  auto it = processes_.find(pid);
  if (it == processes_.end())
    return absl::NotFoundError(absl::StrCat("no worker with pid ", pid));
  Process& process = it->second;
  if (process.state != WorkerState::kDebugging) {
    return absl::FailedPreconditionError(
        absl::StrCat("worker pid ", pid, " is not debugging"));
  }
  if (!process.killed) {
    launcher_->Signal(pid, SIGKILL);
    process.killed = true;
    process.kill_at = clock_->Now();
    process.reason = "debug session ended";
  }
  return absl::OkStatus();
}

}  // namespace cluster2
