#include "master/internal/supervisor.h"

#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/log.h"

namespace cluster2 {
namespace {

std::string RandomToken() {
  std::random_device random;
  return absl::StrFormat("%08x%08x%08x%08x", random(), random(), random(),
                         random());
}

std::string DescribeExit(int wait_status) {
  if (WIFEXITED(wait_status))
    return absl::StrCat("exit ", WEXITSTATUS(wait_status));
  if (WIFSIGNALED(wait_status)) {
    return absl::StrCat("signal ", WTERMSIG(wait_status), " (",
                        strsignal(WTERMSIG(wait_status)), ")");
  }
  return absl::StrCat("status ", wait_status);
}

}  // namespace

absl::string_view WorkerStateName(WorkerState state) {
  switch (state) {
    case WorkerState::kStarting:
      return "starting";
    case WorkerState::kReady:
      return "ready";
    case WorkerState::kPaused:
      return "paused";
    case WorkerState::kDraining:
      return "draining";
    case WorkerState::kExited:
      return "exited";
  }
  return "unknown";
}

Supervisor::Supervisor(SupervisorOptions options, ProcessLauncher* launcher,
                       Clock* clock)
    : options_(std::move(options)), launcher_(launcher), clock_(clock) {
  slots_.resize(options_.workers);
  for (unsigned i = 0; i < slots_.size(); ++i) slots_[i].id = i;
}

absl::Status Supervisor::Start() {
  absl::MutexLock lock(&mu_);
  if (options_.command.empty())
    return absl::InvalidArgumentError("no worker command");
  // Fail before starting anything if the command cannot run at all.
  auto resolved = ResolveExecutable(options_.command[0], options_.cwd);
  if (!resolved.ok()) return resolved.status();
  for (Slot& slot : slots_) {
    if (absl::Status status = SpawnLocked(slot); !status.ok()) {
      LogError(absl::StrCat("worker ", slot.id, ": ", status.message()));
      ScheduleRespawnLocked(slot, absl::ZeroDuration());
    }
  }
  return absl::OkStatus();
}

absl::Status Supervisor::SpawnLocked(Slot& slot) {
  WorkerEnvironment environment = options_.environment;
  environment.worker_id = slot.id;
  environment.token = absl::StrCat(RandomToken(), "-", ++spawn_counter_);
  environment.heartbeat_interval_ms = static_cast<unsigned>(
      absl::ToInt64Milliseconds(options_.heartbeat_interval));
  SpawnSpec spec;
  spec.argv = options_.command;
  spec.env = BuildWorkerEnvironment(options_.base_env, options_.extra_env,
                                    environment);
  spec.cwd = options_.cwd;
  if (!options_.listen_fds.empty()) {
    spec.listen_fd = options_.listen_fds[slot.id % options_.listen_fds.size()];
  }
  absl::StatusOr<pid_t> pid = launcher_->Launch(spec);
  slot.respawn_at.reset();
  if (!pid.ok()) return pid.status();

  Process& process = processes_[*pid];
  process.pid = *pid;
  process.slot = slot.id;
  process.token = environment.token;
  process.started_at = clock_->Now();
  if (slot.ever_started) ++slot.restarts;
  slot.ever_started = true;
  slot.pid = *pid;
  LogInfo(absl::StrCat("worker ", slot.id, " started: pid ", *pid));
  return absl::OkStatus();
}

void Supervisor::ScheduleRespawnLocked(Slot& slot, absl::Duration ran) {
  if (ran >= options_.stable_period) slot.quick_failures = 0;
  ++slot.quick_failures;
  absl::Duration delay = absl::ZeroDuration();
  if (slot.quick_failures > 1) {
    delay = options_.backoff_initial;
    for (unsigned i = 2;
         i < slot.quick_failures && delay < options_.backoff_max; ++i) {
      delay *= 2;
    }
    delay = std::min(delay, options_.backoff_max);
  }
  slot.respawn_at = clock_->Now() + delay;
  if (delay > absl::ZeroDuration()) {
    LogWarning(absl::StrCat("worker ", slot.id, " keeps failing (",
                            slot.quick_failures, " in a row): restart in ",
                            absl::FormatDuration(delay)));
  }
}

void Supervisor::DrainLocked(Process& process, absl::Duration grace,
                             absl::string_view reason) {
  if (process.state == WorkerState::kDraining) return;
  process.state = WorkerState::kDraining;
  process.reason = std::string(reason);
  process.kill_at = clock_->Now() + grace;
  if (process.channel != nullptr) {
    process.channel->SendDrain(grace, reason);
  } else {
    // No session (not attached yet, or not a cluster2 worker): the signal
    // every service understands as "stop gracefully".
    launcher_->Signal(process.pid, SIGTERM);
  }
}

Supervisor::Process* Supervisor::FindByTokenLocked(absl::string_view token) {
  for (auto& [pid, process] : processes_) {
    if (process.token == token) return &process;
  }
  return nullptr;
}

absl::StatusOr<AttachedWorker> Supervisor::Attach(absl::string_view token,
                                                  WorkerChannel* channel) {
  absl::MutexLock lock(&mu_);
  Process* process = FindByTokenLocked(token);
  if (process == nullptr) {
    return absl::FailedPreconditionError(
        "unknown worker token: only processes started by this master can "
        "attach");
  }
  if (process->channel != nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("worker pid ", process->pid, " already has a session"));
  }
  process->channel = channel;
  channel->SendWelcome(options_.heartbeat_interval);
  if (process->state == WorkerState::kDraining) {
    channel->SendDrain(
        std::max(*process->kill_at - clock_->Now(), absl::ZeroDuration()),
        process->reason);
  }
  return AttachedWorker{process->slot, process->pid};
}

void Supervisor::Ready(absl::string_view token) {
  absl::MutexLock lock(&mu_);
  Process* process = FindByTokenLocked(token);
  if (process == nullptr || process->state != WorkerState::kStarting) return;
  process->state = WorkerState::kReady;
  process->ready_at = clock_->Now();
  LogInfo(absl::StrCat("worker ", process->slot, " ready: pid ", process->pid));
  UpdateAllReadyLocked();
}

void Supervisor::UpdateAllReadyLocked() {
  if (all_ready_) return;
  for (const Slot& slot : slots_) {
    auto it = processes_.find(slot.pid);
    if (slot.pid == 0 || it == processes_.end() ||
        it->second.state != WorkerState::kReady) {
      return;
    }
  }
  all_ready_ = true;
  LogInfo(absl::StrCat("all ", slots_.size(), " workers ready"));
}

void Supervisor::Heartbeat(absl::string_view token,
                           const HeartbeatFigures& figures) {
  absl::MutexLock lock(&mu_);
  Process* process = FindByTokenLocked(token);
  if (process == nullptr) return;
  process->heartbeat = figures;
  process->heartbeat_at = clock_->Now();
}

void Supervisor::Detach(absl::string_view token) {
  absl::MutexLock lock(&mu_);
  Process* process = FindByTokenLocked(token);
  if (process != nullptr) process->channel = nullptr;
}

void Supervisor::ProcessExited(pid_t pid, int wait_status) {
  absl::MutexLock lock(&mu_);
  auto it = processes_.find(pid);
  if (it == processes_.end()) return;
  Process process = std::move(it->second);
  processes_.erase(it);
  Slot& slot = slots_[process.slot];
  std::string how = DescribeExit(wait_status);
  bool expected = process.state == WorkerState::kDraining;
  (expected ? LogInfo : LogWarning)(
      absl::StrCat("worker ", slot.id, " pid ", pid, " ended: ", how,
                   expected ? "" : " (unexpected)"));
  if (slot.pid != pid) return;  // a process that had already left its slot
  slot.pid = 0;
  slot.last_exit = how;
  if (stopping_) return;
  ScheduleRespawnLocked(slot, clock_->Now() - process.started_at);
}

absl::Time Supervisor::Tick() {
  absl::MutexLock lock(&mu_);
  absl::Time now = clock_->Now();
  absl::Time next = absl::InfiniteFuture();
  if (!stopping_) {
    for (Slot& slot : slots_) {
      if (slot.pid != 0 || !slot.respawn_at) continue;
      if (*slot.respawn_at <= now) {
        if (absl::Status status = SpawnLocked(slot); !status.ok()) {
          LogError(absl::StrCat("worker ", slot.id, ": ", status.message()));
          ScheduleRespawnLocked(slot, absl::ZeroDuration());
        }
      }
      if (slot.respawn_at) next = std::min(next, *slot.respawn_at);
    }
  }
  for (auto& [pid, process] : processes_) {
    if (process.state == WorkerState::kStarting && !stopping_) {
      absl::Time deadline = process.started_at + options_.start_timeout;
      if (deadline <= now) {
        LogWarning(absl::StrCat(
            "worker ", process.slot, " pid ", pid, " not ready after ",
            absl::FormatDuration(options_.start_timeout), ": killing it"));
        process.reason = "start timeout";
        process.state = WorkerState::kDraining;
        process.kill_at = now;
      } else {
        next = std::min(next, deadline);
      }
    }
    if (process.kill_at && !process.killed) {
      if (*process.kill_at <= now) {
        if (process.reason != "start timeout") {
          LogWarning(
              absl::StrCat("worker ", process.slot, " pid ", pid,
                           " still running after its drain grace: SIGKILL"));
        }
        launcher_->Signal(pid, SIGKILL);
        process.killed = true;
      } else {
        next = std::min(next, *process.kill_at);
      }
    }
  }
  return next;
}

void Supervisor::Stop(bool fast, absl::Duration grace,
                      absl::string_view reason) {
  absl::MutexLock lock(&mu_);
  if (!stopping_) {
    LogInfo(absl::StrCat(fast ? "fast" : "graceful", " stop: ", reason));
  }
  stopping_ = true;
  for (Slot& slot : slots_) slot.respawn_at.reset();
  for (auto& [pid, process] : processes_) {
    if (fast) {
      process.state = WorkerState::kDraining;
      process.reason = std::string(reason);
      process.kill_at = clock_->Now();
    } else {
      DrainLocked(process, grace, reason);
    }
  }
}

bool Supervisor::Stopped() const {
  absl::MutexLock lock(&mu_);
  return stopping_ && processes_.empty();
}

bool Supervisor::Stopping() const {
  absl::MutexLock lock(&mu_);
  return stopping_;
}

bool Supervisor::AllReady() const {
  absl::MutexLock lock(&mu_);
  return all_ready_;
}

WorkerSnapshot Supervisor::SnapshotLocked(const Process& process) const {
  const Slot& slot = slots_[process.slot];
  WorkerSnapshot snapshot;
  snapshot.id = process.slot;
  snapshot.pid = process.pid;
  snapshot.state = process.state;
  snapshot.started_at = process.started_at;
  snapshot.ready_at = process.ready_at;
  snapshot.restarts = slot.restarts;
  snapshot.attached = process.channel != nullptr;
  snapshot.last_exit = slot.last_exit;
  snapshot.reason = process.reason;
  snapshot.heartbeat = process.heartbeat;
  snapshot.heartbeat_at = process.heartbeat_at;
  return snapshot;
}

std::vector<WorkerSnapshot> Supervisor::Workers() const {
  absl::MutexLock lock(&mu_);
  std::vector<WorkerSnapshot> workers;
  for (const Slot& slot : slots_) {
    auto it = processes_.find(slot.pid);
    if (slot.pid != 0 && it != processes_.end()) {
      workers.push_back(SnapshotLocked(it->second));
    }
  }
  for (const auto& [pid, process] : processes_) {
    if (slots_[process.slot].pid != pid)
      workers.push_back(SnapshotLocked(process));
  }
  return workers;
}

absl::StatusOr<WorkerSnapshot> Supervisor::WorkerByPid(pid_t pid) const {
  absl::MutexLock lock(&mu_);
  auto it = processes_.find(pid);
  if (it == processes_.end()) {
    return absl::NotFoundError(absl::StrCat("no worker with pid ", pid));
  }
  return SnapshotLocked(it->second);
}

}  // namespace cluster2
