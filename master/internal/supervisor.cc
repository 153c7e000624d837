#include "master/internal/supervisor.h"

#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <cstring>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/log.h"
#include "common/status.h"

namespace cluster2 {
namespace {

constexpr unsigned kMaxWorkers = 1024;
// How long a worker asked to pause may take to confirm before it is routed
// connections again (the Pause call itself gives up after 5 s).
constexpr absl::Duration kPauseConfirmTimeout = absl::Seconds(10);

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

std::string Supervisor::WorkerName(unsigned slot, pid_t pid) {
  return absl::StrCat("worker ", slot, " pid ", pid);
}

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
    case WorkerState::kFailed:
      return "failed";
    case WorkerState::kDebugging:
      return "debugging";
  }
  return "unknown";
}

Supervisor::Supervisor(SupervisorOptions options, ProcessLauncher* launcher,
                       Clock* clock)
    : launcher_(launcher), clock_(clock), options_(std::move(options)) {
  for (unsigned g = 0; g < options_.groups.size(); ++g) {
    groups_.push_back(LiveGroup{options_.groups[g], false});
    for (unsigned i = 0; i < options_.groups[g].workers; ++i) {
      Slot& slot = slots_.emplace_back();
      slot.id = static_cast<unsigned>(slots_.size() - 1);
      slot.group = g;
    }
  }
}

absl::Status Supervisor::Start() {
  absl::MutexLock lock(&mu_);
  if (groups_.empty()) return absl::InvalidArgumentError("no worker group");
  // Fail before starting anything if a command cannot run at all.
  for (const LiveGroup& group : groups_) {
    if (group.spec.command.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("group '", group.spec.name, "': no worker command"));
    }
    auto resolved = ResolveExecutable(group.spec.command[0], group.spec.cwd);
    if (!resolved.ok()) return resolved.status();
  }
  for (Slot& slot : slots_) {
    absl::StatusOr<pid_t> pid = SpawnLocked(slot);
    if (pid.ok()) {
      slot.pid = *pid;
    } else {
      LogError(absl::StrCat("worker ", slot.id, ": ", pid.status().message()));
      ScheduleRespawnLocked(slot, absl::ZeroDuration());
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<pid_t> Supervisor::SpawnLocked(Slot& slot) {
  slot.respawn_at.reset();
  absl::StatusOr<pid_t> pid = LaunchLocked(slot.id, slot.id, slot.group, {});
  if (!pid.ok()) return pid.status();
  if (slot.ever_started) ++slot.restarts;
  slot.ever_started = true;
  LogInfo(absl::StrCat(WorkerName(slot.id, *pid), " started"));
  NotifyLocked(
      WorkerEvent::Kind::kStarted, processes_[*pid],
      slot.restarts == 0 ? "" : absl::StrCat("restart ", slot.restarts));
  return *pid;
}

absl::StatusOr<pid_t> Supervisor::LaunchLocked(
    unsigned id, unsigned slot, unsigned group,
    const std::vector<std::string>& prefix) {
  const WorkerGroup& group_spec = groups_[group].spec;
  WorkerEnvironment environment = options_.environment;
  environment.worker_id = id;
  environment.token = absl::StrCat(RandomToken(), "-", ++spawn_counter_);
  environment.heartbeat_interval_ms = static_cast<unsigned>(
      absl::ToInt64Milliseconds(options_.heartbeat_interval));
  SpawnSpec spec;
  spec.argv = prefix;
  spec.argv.insert(spec.argv.end(), group_spec.command.begin(),
                   group_spec.command.end());
  spec.env = BuildWorkerEnvironment(options_.base_env, group_spec.extra_env,
                                    environment);
  spec.env.push_back(absl::StrCat("CLUSTER2_WORKER_GROUP=", group_spec.name));
  // A worker run by a debugger gets fd 3 through it: LISTEN_PID names the
  // debugger, its parent (see Worker::Connect).
  if (!prefix.empty()) spec.env.push_back("CLUSTER2_UNDER_DEBUGGER=1");
  spec.cwd = group_spec.cwd;
  spec.log_component = absl::StrCat("worker ", id);
  if (options_.slot_sockets != nullptr) {
    absl::StatusOr<int> socket = options_.slot_sockets->SocketOf(id);
    if (!socket.ok()) return socket.status();
    spec.listen_fd = *socket;
  } else if (!options_.listen_fds.empty()) {
    spec.listen_fd = options_.listen_fds[id % options_.listen_fds.size()];
  }
  absl::StatusOr<pid_t> pid = launcher_->Launch(spec);
  if (!pid.ok()) return pid.status();

  Process& process = processes_[*pid];
  process.pid = *pid;
  process.slot = slot;
  process.id = id;
  process.group = group;
  process.token = environment.token;
  process.started_at = clock_->Now();
  return *pid;
}

void Supervisor::ScheduleRespawnLocked(Slot& slot, absl::Duration ran) {
  if (ran >= options_.stable_period) slot.quick_failures = 0;
  ++slot.quick_failures;
  if (options_.crash_loop_limit > 0 &&
      slot.quick_failures >= options_.crash_loop_limit) {
    slot.failed = true;
    slot.respawn_at.reset();
    if (observer_ != nullptr) {
      WorkerEvent event;
      event.at = clock_->Now();
      event.kind = WorkerEvent::Kind::kGaveUp;
      event.slot = slot.id;
      event.group = groups_[slot.group].spec.name;
      event.detail = absl::StrCat(slot.quick_failures,
                                  " failures in a row, last: ", slot.last_exit);
      observer_->OnWorkerEvent(event);
    }
    LogError(
        absl::StrCat("worker ", slot.id, " failed ", slot.quick_failures,
                     " times in a row (last: ", slot.last_exit,
                     "): slot given up; `cluster2ctl restart` tries again"));
    return;
  }
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

void Supervisor::KillLocked(Process& process, WorkerEvent::Kind kind,
                            absl::string_view reason) {
  LogWarning(absl::StrCat(WorkerName(process.id, process.pid), " ", reason,
                          ": killing it"));
  NotifyLocked(kind, process, std::string(reason));
  process.end_told = true;
  process.state = WorkerState::kDraining;
  process.reason = std::string(reason);
  process.kill_at = clock_->Now();
}

absl::Status Supervisor::StartReplacementLocked(Slot& slot,
                                                absl::string_view reason,
                                                WorkerEvent::Kind kind) {
  if (slot.pid == 0 || slot.successor != 0 || slot.retired) {
    return absl::FailedPreconditionError(
        absl::StrCat("worker ", slot.id, " is not replaceable now"));
  }
  absl::StatusOr<pid_t> pid = SpawnLocked(slot);
  if (!pid.ok()) {
    LogError(absl::StrCat("replacement for worker ", slot.id, ": ",
                          pid.status().message()));
    return pid.status();
  }
  slot.successor = *pid;
  slot.replace_reason = std::string(reason);
  processes_[*pid].reason =
      absl::StrCat("replacing pid ", slot.pid, ": ", reason);
  LogInfo(absl::StrCat("replacing ", WorkerName(slot.id, slot.pid), " (",
                       reason, "): successor pid ", *pid));
  auto current = processes_.find(slot.pid);
  if (current != processes_.end())
    NotifyLocked(kind, current->second, std::string(reason));
  return absl::OkStatus();
}

Supervisor::Process* Supervisor::FindByTokenLocked(absl::string_view token) {
  for (auto& [pid, process] : processes_) {
    if (process.token == token) return &process;
  }
  return nullptr;
}

Supervisor::Slot* Supervisor::SlotOfPidLocked(pid_t pid) {
  for (Slot& slot : slots_) {
    if (!slot.retired && slot.pid == pid && pid != 0) return &slot;
  }
  return nullptr;
}

absl::StatusOr<AttachedWorker> Supervisor::Attach(absl::string_view token,
                                                  WorkerChannel* channel,
                                                  SessionHello hello) {
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
  process->hello = std::move(hello);
  channel->SendWelcome(options_.heartbeat_interval);
  if (process->state == WorkerState::kDraining) {
    channel->SendDrain(
        std::max(*process->kill_at - clock_->Now(), absl::ZeroDuration()),
        process->reason);
  }
  return AttachedWorker{process->id, process->pid};
}

void Supervisor::Ready(absl::string_view token) {
  absl::MutexLock lock(&mu_);
  Process* process = FindByTokenLocked(token);
  if (process != nullptr && process->state == WorkerState::kDebugging &&
      !process->ready_at) {  // a fresh debug worker the debugger let run
    process->ready_at = clock_->Now();
    LogInfo(absl::StrCat(WorkerName(process->id, process->pid),
                         " (debug session) ready"));
    RouteLocked();
    return;
  }
  if (process == nullptr || process->state != WorkerState::kStarting) return;
  process->state = WorkerState::kReady;
  process->ready_at = clock_->Now();
  Slot& slot = slots_[process->slot];
  if (slot.successor == process->pid) {
    // The successor serves: only now does the worker it replaces drain.
    pid_t old = slot.pid;
    slot.pid = process->pid;
    slot.successor = 0;
    process->reason.clear();
    auto it = processes_.find(old);
    if (it != processes_.end()) {
      DrainLocked(it->second, options_.stop_timeout,
                  absl::StrCat("replaced: ", slot.replace_reason));
    }
    LogInfo(absl::StrCat("worker ", slot.id, " replaced: pid ", old, " -> pid ",
                         process->pid, " (", slot.replace_reason, ")"));
    NotifyLocked(WorkerEvent::Kind::kReady, *process,
                 absl::StrCat("replaces pid ", old));
  } else {
    LogInfo(absl::StrCat(WorkerName(process->id, process->pid), " ready"));
    NotifyLocked(WorkerEvent::Kind::kReady, *process, "");
  }
  UpdateAllReadyLocked();
  RouteLocked();
}

void Supervisor::RouteLocked() {
  if (options_.slot_sockets == nullptr) return;
  auto serving = [&](pid_t pid) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    auto it = processes_.find(pid);
    return pid != 0 && it != processes_.end() &&
           it->second.state == WorkerState::kReady &&
           !it->second.pause_requested_at;
  };
  std::vector<unsigned> ids;
  for (const Slot& slot : slots_) {
    if (!slot.retired && serving(slot.pid)) ids.push_back(slot.id);
  }
  for (const auto& [pid, process] : processes_) {
    // A fresh debug worker the debugger let run serves like a slot.
    if (process.slot == kNoSlot && process.state == WorkerState::kDebugging &&
        process.ready_at) {
      ids.push_back(process.id);
    }
  }
  std::sort(ids.begin(), ids.end());
  if (routed_ == ids) return;
  options_.slot_sockets->Route(ids);
  routed_ = std::move(ids);
}

unsigned Supervisor::ActiveSlotsLocked() const {
  unsigned active = 0;
  for (const Slot& slot : slots_) active += slot.retired ? 0 : 1;
  return active;
}

void Supervisor::UpdateAllReadyLocked() {
  if (all_ready_) return;
  for (const Slot& slot : slots_) {
    if (slot.retired) continue;
    auto it = processes_.find(slot.pid);
    if (slot.pid == 0 || it == processes_.end() ||
        it->second.state != WorkerState::kReady) {
      return;
    }
  }
  all_ready_ = true;
  LogInfo(absl::StrCat("all ", ActiveSlotsLocked(), " workers ready"));
}

void Supervisor::Heartbeat(absl::string_view token,
                           const HeartbeatFigures& figures) {
  absl::MutexLock lock(&mu_);
  Process* process = FindByTokenLocked(token);
  if (process == nullptr) return;
  process->heartbeat = figures;
  process->heartbeat_at = clock_->Now();
  if (observer_ != nullptr && process->slot != kNoSlot &&
      process->state != WorkerState::kDebugging) {
    const Slot& slot = slots_[process->slot];
    observer_->OnHeartbeat(slot.id, groups_[slot.group].spec.name, process->pid,
                           slot.pid == process->pid, figures);
  }
  EvaluatePoliciesLocked(*process);
}

void Supervisor::EvaluatePoliciesLocked(Process& process) {
  if (process.state != WorkerState::kReady) return;
  Slot& slot = slots_[process.slot];
  if (options_.policies.empty() || stopping_ || slot.pid != process.pid ||
      slot.successor != 0 || slot.retired) {
    return;
  }
  WorkerView view;
  view.id = process.slot;
  view.pid = process.pid;
  view.started_at = process.started_at;
  view.now = clock_->Now();
  view.heartbeat = *process.heartbeat;
  for (const std::shared_ptr<RecyclePolicy>& policy : options_.policies) {
    std::optional<std::string> reason = policy->Evaluate(view);
    if (!reason) continue;
    // The budget: at most recycle_budget policy recycles per window.
    while (!recycles_.empty() &&
           recycles_.front() <= view.now - options_.recycle_window) {
      recycles_.pop_front();
      budget_warned_ = false;
    }
    if (recycles_.size() >= options_.recycle_budget) {
      if (!budget_warned_) {
        LogWarning(absl::StrCat(
            "recycle of ", WorkerName(slot.id, process.pid), " (", *reason,
            ") deferred: budget of ", options_.recycle_budget, " per ",
            absl::FormatDuration(options_.recycle_window), " used"));
        budget_warned_ = true;
      }
      return;
    }
    if (StartReplacementLocked(slot, absl::StrCat("recycle: ", *reason),
                               WorkerEvent::Kind::kRecycled)
            .ok()) {
      recycles_.push_back(view.now);
    }
    return;
  }
}

void Supervisor::Detach(absl::string_view token) {
  absl::MutexLock lock(&mu_);
  Process* process = FindByTokenLocked(token);
  if (process == nullptr) return;
  process->channel = nullptr;
  if (process->state == WorkerState::kDraining ||
      process->state == WorkerState::kDebugging) {
    return;
  }
  // The end of the session means the worker is gone (worker_session.proto):
  // it gets no more connections, and a process still running is asked to
  // stop (SIGTERM), killed after the drain grace, and replaced. Its exit is
  // not counted as an expected one.
  LogWarning(absl::StrCat(WorkerName(process->id, process->pid),
                          " ended its session without being drained: "
                          "taken out of service"));
  process->session_lost = true;
  NotifyLocked(WorkerEvent::Kind::kSessionLost, *process, "");
  process->end_told = true;
  DrainLocked(*process, options_.stop_timeout, "session ended");
  RouteLocked();
}

void Supervisor::ProcessExited(pid_t pid, int wait_status) {
  absl::MutexLock lock(&mu_);
  auto it = processes_.find(pid);
  if (it == processes_.end()) return;
  Process process = std::move(it->second);
  processes_.erase(it);
  // Whatever happens below, the routing follows.
  struct RouteOnReturn {
    Supervisor* supervisor;
    ~RouteOnReturn() ABSL_NO_THREAD_SAFETY_ANALYSIS {
      supervisor->RouteLocked();
    }
  } route_on_return{this};
  for (const std::shared_ptr<RecyclePolicy>& policy : options_.policies)
    policy->Forget(pid);
  if (process.slot == kNoSlot || process.state == WorkerState::kDebugging) {
    // A debug session's process: it had left its slot, if it had one.
    LogInfo(
        absl::StrCat(WorkerName(process.id, pid),
                     " (debug session) ended: ", DescribeExit(wait_status)));
    return;
  }
  Slot& slot = slots_[process.slot];
  std::string how = DescribeExit(wait_status);
  bool expected =
      process.state == WorkerState::kDraining && !process.session_lost;
  // A kill (hung, start timeout) and a lost session were told already.
  if (!process.end_told) {
    NotifyLocked(
        expected ? WorkerEvent::Kind::kExited : WorkerEvent::Kind::kCrashed,
        process, how);
  }
  (expected ? LogInfo : LogWarning)(
      absl::StrCat(WorkerName(slot.id, pid), " ended: ", how,
                   expected ? "" : " (unexpected)"));
  if (slot.successor == pid) {
    // A replacement that never got ready: the old worker keeps serving and
    // the rolling restart stops, rather than replacing more good workers by
    // a version that does not start.
    slot.successor = 0;
    slot.last_exit = how;
    if (!stopping_) {
      LogError(absl::StrCat(
          "replacement for worker ", slot.id, " failed (", how, "); pid ",
          slot.pid, " keeps serving",
          restart_queue_.empty() ? "" : "; rolling restart stopped"));
    }
    restart_queue_.clear();
    return;
  }
  if (slot.pid != pid) return;  // a process that had already left its slot
  slot.pid = 0;
  slot.last_exit = how;
  if (slot.successor != 0) {  // its successor, still starting, takes over
    slot.pid = slot.successor;
    slot.successor = 0;
    return;
  }
  if (stopping_ || slot.retired) return;
  ScheduleRespawnLocked(slot, clock_->Now() - process.started_at);
}

absl::Time Supervisor::Tick() {
  absl::MutexLock lock(&mu_);
  absl::Time now = clock_->Now();
  absl::Time next = absl::InfiniteFuture();
  if (!stopping_) {
    for (Slot& slot : slots_) {
      if (slot.pid != 0 || !slot.respawn_at || slot.failed || slot.retired)
        continue;
      if (*slot.respawn_at <= now) {
        absl::StatusOr<pid_t> pid = SpawnLocked(slot);
        if (pid.ok()) {
          slot.pid = *pid;
        } else {
          LogError(
              absl::StrCat("worker ", slot.id, ": ", pid.status().message()));
          ScheduleRespawnLocked(slot, absl::ZeroDuration());
        }
      }
      if (slot.respawn_at) next = std::min(next, *slot.respawn_at);
    }
    // The rolling restart: `restart_surge_` replacements at a time.
    unsigned in_progress = 0;
    for (const Slot& slot : slots_) in_progress += slot.successor != 0 ? 1 : 0;
    while (in_progress < restart_surge_ && !restart_queue_.empty()) {
      auto [id, reason] = restart_queue_.front();
      restart_queue_.pop_front();
      Slot& slot = slots_[id];
      // A slot without a process gets a fresh one anyway.
      if (slot.pid == 0 || slot.successor != 0 || slot.retired) continue;
      if (StartReplacementLocked(slot, reason).ok()) ++in_progress;
    }
  }
  for (auto& [pid, process] : processes_) {
    if (process.state == WorkerState::kStarting && !stopping_) {
      absl::Time deadline = process.started_at + options_.start_timeout;
      if (deadline <= now) {
        KillLocked(process, WorkerEvent::Kind::kStartTimeout,
                   absl::StrCat("not ready after ",
                                absl::FormatDuration(options_.start_timeout)));
      } else {
        next = std::min(next, deadline);
      }
    }
    if (process.pause_requested_at && process.state == WorkerState::kReady) {
      // A worker that never confirms its pause gets connections again.
      absl::Time deadline = *process.pause_requested_at + kPauseConfirmTimeout;
      if (deadline <= now) {
        LogWarning(absl::StrCat(WorkerName(process.id, pid),
                                " did not confirm its pause; it serves again"));
        process.pause_requested_at.reset();
      } else {
        next = std::min(next, deadline);
      }
    }
    bool serving = process.state == WorkerState::kReady ||
                   process.state == WorkerState::kPaused;
    if (serving && options_.hung_tolerance > absl::ZeroDuration()) {
      // Counted from the ready at the earliest: a beat sent while starting
      // must not make a worker hung the moment it is ready.
      absl::Time last = *process.ready_at;
      if (process.heartbeat_at) last = std::max(last, *process.heartbeat_at);
      if (process.excused_until) last = std::max(last, *process.excused_until);
      absl::Time deadline = last + options_.hung_tolerance;
      if (deadline <= now) {
        KillLocked(process, WorkerEvent::Kind::kHung,
                   absl::StrCat("hung: no heartbeat for ",
                                absl::FormatDuration(now - last)));
      } else {
        next = std::min(next, deadline);
      }
    }
    if (process.kill_at && !process.killed) {
      if (*process.kill_at <= now) {
        launcher_->Signal(pid, SIGKILL);
        process.killed = true;
      } else {
        next = std::min(next, *process.kill_at);
      }
    }
  }
  RouteLocked();
  return next;
}

absl::StatusOr<std::vector<pid_t>> Supervisor::Restart(
    pid_t pid, unsigned surge, absl::string_view group) {
  absl::MutexLock lock(&mu_);
  if (stopping_)
    return absl::FailedPreconditionError("the cluster is stopping");
  if (pid != 0) {
    Slot* slot = SlotOfPidLocked(pid);
    if (slot == nullptr)
      return absl::NotFoundError(absl::StrCat("no worker with pid ", pid));
    if (slot->successor != 0) {
      return absl::FailedPreconditionError(
          absl::StrCat("worker pid ", pid, " is already being replaced"));
    }
    CLUSTER2_RETURN_IF_ERROR(StartReplacementLocked(*slot, "restart"));
    return std::vector<pid_t>{pid};
  }
  std::optional<unsigned> only;
  if (!group.empty()) {
    CLUSTER2_ASSIGN_OR_RETURN(only, GroupIndexLocked(group));
  }
  if (RestartRunningLocked())
    return absl::FailedPreconditionError("a restart is already running");
  restart_surge_ = surge > 0 ? surge : std::max(options_.surge, 1u);
  std::vector<pid_t> pids = QueueRestartLocked(only, "restart");
  LogInfo(absl::StrCat("rolling restart of ", pids.size(), " workers",
                       only ? absl::StrCat(" of group '", group, "'") : "",
                       ", ", restart_surge_, " at a time"));
  return pids;
}

bool Supervisor::RestartRunningLocked() const {
  bool running = !restart_queue_.empty();
  for (const Slot& slot : slots_) running = running || slot.successor != 0;
  return running;
}

std::vector<pid_t> Supervisor::QueueRestartLocked(std::optional<unsigned> group,
                                                  absl::string_view reason) {
  std::vector<pid_t> pids;
  for (Slot& slot : slots_) {
    if (slot.retired || (group && slot.group != *group)) continue;
    if (slot.failed) {  // a given-up slot gets a fresh start
      slot.failed = false;
      slot.quick_failures = 0;
      slot.respawn_at = clock_->Now();
      continue;
    }
    if (slot.pid == 0) continue;
    restart_queue_.emplace_back(slot.id, std::string(reason));
    pids.push_back(slot.pid);
  }
  return pids;
}

absl::Status Supervisor::Recycle(pid_t pid, absl::string_view reason) {
  absl::MutexLock lock(&mu_);
  if (stopping_)
    return absl::FailedPreconditionError("the cluster is stopping");
  Slot* slot = SlotOfPidLocked(pid);
  if (slot == nullptr) {
    if (processes_.count(pid) > 0) {
      return absl::FailedPreconditionError(absl::StrCat(
          "pid ", pid, " is a successor or draining, not a current worker"));
    }
    return absl::NotFoundError(absl::StrCat("no worker with pid ", pid));
  }
  if (slot->successor != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("worker pid ", pid, " is already being replaced"));
  }
  return StartReplacementLocked(*slot, reason.empty() ? "manual" : reason,
                                WorkerEvent::Kind::kRecycled);
}

void Supervisor::Stop(bool fast, absl::Duration grace,
                      absl::string_view reason) {
  absl::MutexLock lock(&mu_);
  if (!stopping_) {
    LogInfo(absl::StrCat(fast ? "fast" : "graceful", " stop: ", reason));
  }
  stopping_ = true;
  restart_queue_.clear();
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
  RouteLocked();
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

unsigned Supervisor::desired_workers(absl::string_view group) const {
  absl::MutexLock lock(&mu_);
  if (group.empty()) return ActiveSlotsLocked();
  absl::StatusOr<unsigned> index = GroupIndexLocked(group);
  return index.ok() ? GroupSlotsLocked(*index) : 0;
}

WorkerSnapshot Supervisor::SnapshotLocked(const Process& process) const {
  WorkerSnapshot snapshot;
  snapshot.id = process.id;
  snapshot.group = groups_[process.group].spec.name;
  snapshot.pid = process.pid;
  snapshot.state = process.state;
  snapshot.started_at = process.started_at;
  snapshot.ready_at = process.ready_at;
  if (process.slot != kNoSlot) {
    snapshot.restarts = slots_[process.slot].restarts;
    snapshot.last_exit = slots_[process.slot].last_exit;
  }
  snapshot.attached = process.channel != nullptr;
  snapshot.session_pid = process.hello.pid;
  snapshot.debug_protocols = process.hello.debug_protocols;
  snapshot.reason = process.reason;
  snapshot.heartbeat = process.heartbeat;
  snapshot.heartbeat_at = process.heartbeat_at;
  return snapshot;
}

std::vector<WorkerSnapshot> Supervisor::Workers() const {
  absl::MutexLock lock(&mu_);
  std::vector<WorkerSnapshot> workers;
  for (const Slot& slot : slots_) {
    if (slot.retired) continue;
    auto it = processes_.find(slot.pid);
    if (slot.pid != 0 && it != processes_.end()) {
      workers.push_back(SnapshotLocked(it->second));
      continue;
    }
    WorkerSnapshot empty;  // waiting for a restart, or given up
    empty.id = slot.id;
    empty.group = groups_[slot.group].spec.name;
    empty.state = slot.failed ? WorkerState::kFailed : WorkerState::kExited;
    empty.restarts = slot.restarts;
    empty.last_exit = slot.last_exit;
    if (slot.failed) {
      empty.reason = "crash loop: restart with `cluster2ctl restart`";
    } else if (slot.respawn_at) {
      empty.reason = absl::StrCat(
          "restarting in ",
          absl::FormatDuration(std::max(*slot.respawn_at - clock_->Now(),
                                        absl::ZeroDuration())));
    }
    workers.push_back(std::move(empty));
  }
  for (const auto& [pid, process] : processes_) {
    if (process.slot == kNoSlot || slots_[process.slot].retired ||
        slots_[process.slot].pid != pid) {
      workers.push_back(SnapshotLocked(process));
    }
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
