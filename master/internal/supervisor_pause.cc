// Supervisor: pausing and resuming workers (balance and debug sessions take
// a worker out of rotation this way).
#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "master/internal/supervisor.h"

namespace cluster2 {

absl::Status Supervisor::Pause(pid_t pid) {
  absl::MutexLock lock(&mu_);
  if (!options_.pause_supported && options_.slot_sockets == nullptr) {
    return absl::FailedPreconditionError(
        "pause needs balance=even or shared: with balance=reuseport, "
        "connections would wait in the paused worker's own socket");
  }
  auto it = processes_.find(pid);
  if (it == processes_.end())
    return absl::NotFoundError(absl::StrCat("no worker with pid ", pid));
  Process& process = it->second;
  if (process.state != WorkerState::kReady) {
    return absl::FailedPreconditionError(
        absl::StrCat("worker pid ", pid, " is ", WorkerStateName(process.state),
                     ", not ready"));
  }
  if (process.channel == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("worker pid ", pid, " has no session"));
  }
  // New connections go elsewhere before the worker stops accepting.
  process.pause_requested_at = clock_->Now();
  process.pause_refused.clear();
  RouteLocked();
  process.channel->SendPause();
  return absl::OkStatus();
}

absl::Status Supervisor::Resume(pid_t pid) {
  absl::MutexLock lock(&mu_);
  auto it = processes_.find(pid);
  if (it == processes_.end())
    return absl::NotFoundError(absl::StrCat("no worker with pid ", pid));
  Process& process = it->second;
  if (process.state != WorkerState::kPaused) {
    return absl::FailedPreconditionError(
        absl::StrCat("worker pid ", pid, " is ", WorkerStateName(process.state),
                     ", not paused"));
  }
  if (process.channel == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("worker pid ", pid, " has no session"));
  }
  process.pause_requested_at.reset();
  process.channel->SendResume();
  return absl::OkStatus();
}

void Supervisor::Acknowledge(absl::string_view token, bool paused) {
  absl::MutexLock lock(&mu_);
  Process* process = FindByTokenLocked(token);
  if (process == nullptr) return;
  WorkerState from = paused ? WorkerState::kReady : WorkerState::kPaused;
  if (process->state != from) return;  // draining meanwhile, or a stale ack
  process->state = paused ? WorkerState::kPaused : WorkerState::kReady;
  process->reason = paused ? "paused" : "";
  if (paused) {
    process->paused_at = clock_->Now();
  } else {
    process->paused_at.reset();
  }
  process->pause_requested_at.reset();
  RouteLocked();
  LogInfo(absl::StrCat(WorkerName(process->id, process->pid),
                       paused ? " paused" : " resumed"));
}

void Supervisor::RefusePause(absl::string_view token,
                             absl::string_view reason) {
  absl::MutexLock lock(&mu_);
  Process* process = FindByTokenLocked(token);
  if (process == nullptr || !process->pause_requested_at ||
      process->state != WorkerState::kReady) {
    return;  // a stale answer
  }
  process->pause_requested_at.reset();
  process->pause_refused =
      reason.empty() ? "the worker cannot pause" : std::string(reason);
  RouteLocked();
  LogWarning(absl::StrCat(WorkerName(process->id, process->pid),
                          " refused to pause (", process->pause_refused,
                          "): it serves on"));
}

absl::Status Supervisor::AwaitPause(pid_t pid, absl::Time deadline) {
  absl::MutexLock lock(&mu_);
  auto settled = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    auto it = processes_.find(pid);
    return it == processes_.end() || it->second.state == WorkerState::kPaused ||
           !it->second.pause_refused.empty();
  };
  mu_.AwaitWithDeadline(absl::Condition(&settled), deadline);
  auto it = processes_.find(pid);
  if (it == processes_.end())
    return absl::NotFoundError(absl::StrCat("worker pid ", pid, " is gone"));
  if (it->second.state == WorkerState::kPaused) return absl::OkStatus();
  if (!it->second.pause_refused.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "worker pid ", pid, " cannot pause: ", it->second.pause_refused));
  }
  return absl::DeadlineExceededError(
      absl::StrCat("worker pid ", pid, " did not confirm the pause"));
}

bool Supervisor::AwaitState(pid_t pid, WorkerState state, absl::Time deadline) {
  absl::MutexLock lock(&mu_);
  auto reached = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    auto it = processes_.find(pid);
    return it == processes_.end() || it->second.state == state;
  };
  mu_.AwaitWithDeadline(absl::Condition(&reached), deadline);
  auto it = processes_.find(pid);
  return it != processes_.end() && it->second.state == state;
}

}  // namespace cluster2
