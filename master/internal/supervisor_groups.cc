// Supervisor: worker groups, scaling and a reloaded configuration.
#include <algorithm>
#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/log.h"
#include "common/status.h"
#include "master/internal/supervisor.h"

namespace cluster2 {
namespace {

constexpr unsigned kMaxWorkers = 1024;

std::string DescribeDuration(absl::Duration before, absl::Duration after) {
  return absl::StrCat(absl::FormatDuration(before), " -> ",
                      absl::FormatDuration(after));
}

}  // namespace

absl::StatusOr<unsigned> Supervisor::GroupIndexLocked(
    absl::string_view name) const {
  if (name.empty()) {
    std::optional<unsigned> only;
    for (unsigned g = 0; g < groups_.size(); ++g) {
      if (groups_[g].removed) continue;
      if (only) {
        return absl::FailedPreconditionError(
            "the cluster has several worker groups: name one");
      }
      only = g;
    }
    if (!only) return absl::NotFoundError("the cluster has no worker group");
    return *only;
  }
  for (unsigned g = 0; g < groups_.size(); ++g) {
    if (!groups_[g].removed && groups_[g].spec.name == name) return g;
  }
  std::vector<std::string> names;
  for (const LiveGroup& group : groups_) {
    if (!group.removed) names.push_back(group.spec.name);
  }
  return absl::NotFoundError(
      absl::StrCat("no worker group '", name,
                   "' (groups: ", absl::StrJoin(names, ", "), ")"));
}

unsigned Supervisor::GroupSlotsLocked(unsigned group) const {
  unsigned count = 0;
  for (const Slot& slot : slots_) {
    count += !slot.retired && slot.group == group ? 1 : 0;
  }
  return count;
}

std::vector<std::string> Supervisor::group_names() const {
  absl::MutexLock lock(&mu_);
  std::vector<std::string> names;
  for (const LiveGroup& group : groups_) {
    if (!group.removed) names.push_back(group.spec.name);
  }
  return names;
}

absl::StatusOr<unsigned> Supervisor::Scale(unsigned workers,
                                           absl::string_view group) {
  absl::MutexLock lock(&mu_);
  if (stopping_)
    return absl::FailedPreconditionError("the cluster is stopping");
  CLUSTER2_ASSIGN_OR_RETURN(unsigned index, GroupIndexLocked(group));
  const unsigned previous = GroupSlotsLocked(index);
  const unsigned total = ActiveSlotsLocked() - previous + workers;
  if (workers == 0 || total > kMaxWorkers) {
    return absl::InvalidArgumentError(
        absl::StrCat("workers must be 1..", kMaxWorkers - (total - workers),
                     ", not ", workers));
  }
  if (options_.listen_fds.size() > 1 && total < options_.listen_fds.size()) {
    // Each socket of a SO_REUSEPORT group gets its share of connections:
    // one without a worker would leave them waiting.
    return absl::FailedPreconditionError(absl::StrCat(
        "with balance=reuseport the cluster cannot shrink below its ",
        options_.listen_fds.size(), " sockets"));
  }
  std::vector<pid_t> to_drain;
  ScaleGroupLocked(index, workers, &to_drain);
  DrainRetiredLocked(to_drain);
  if (workers > previous) all_ready_ = false;
  LogInfo(
      absl::StrCat("scaled ",
                   groups_.size() > 1
                       ? absl::StrCat("group '", groups_[index].spec.name, "' ")
                       : "",
                   "from ", previous, " to ", workers, " workers"));
  return previous;
}

void Supervisor::ScaleGroupLocked(unsigned group, unsigned workers,
                                  std::vector<pid_t>* to_drain) {
  groups_[group].spec.workers = workers;
  unsigned active = GroupSlotsLocked(group);
  auto start = [&](Slot& slot) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    absl::StatusOr<pid_t> pid = SpawnLocked(slot);
    if (pid.ok()) {
      slot.pid = *pid;
    } else {
      ScheduleRespawnLocked(slot, absl::ZeroDuration());
    }
    ++active;
  };
  // Growing: the group's retired slots come back first (lowest id first),
  // then new slots are appended; shrinking retires its highest slots.
  for (Slot& slot : slots_) {
    if (active >= workers) break;
    if (!slot.retired || slot.group != group) continue;
    slot.retired = false;
    slot.failed = false;
    slot.quick_failures = 0;
    start(slot);
  }
  while (active < workers) {
    Slot& slot = slots_.emplace_back();
    slot.id = static_cast<unsigned>(slots_.size() - 1);
    slot.group = group;
    start(slot);
  }
  std::vector<Slot*> retiring;  // highest first
  for (auto it = slots_.rbegin(); it != slots_.rend() && active > workers;
       ++it) {
    if (it->retired || it->group != group) continue;
    retiring.push_back(&*it);
    --active;
  }
  for (auto it = retiring.rbegin(); it != retiring.rend(); ++it) {
    Slot& slot = **it;
    slot.retired = true;
    slot.respawn_at.reset();
    for (pid_t pid : {slot.pid, slot.successor}) {
      if (pid != 0) to_drain->push_back(pid);
    }
    slot.pid = 0;
    slot.successor = 0;
  }
}

void Supervisor::DrainRetiredLocked(const std::vector<pid_t>& to_drain) {
  // The retired slots get no new connections before their workers drain.
  RouteLocked();
  for (pid_t pid : to_drain) {
    auto it = processes_.find(pid);
    if (it != processes_.end()) {
      NotifyLocked(WorkerEvent::Kind::kScaledDown, it->second, "");
      DrainLocked(it->second, options_.stop_timeout, "scale down");
    }
  }
  restart_queue_.erase(
      std::remove_if(restart_queue_.begin(), restart_queue_.end(),
                     [&](const auto& entry) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
                       return slots_[entry.first].retired;
                     }),
      restart_queue_.end());
}

absl::StatusOr<Supervisor::Reconfigured> Supervisor::Reconfigure(
    SupervisorOptions next, bool restart_all) {
  absl::MutexLock lock(&mu_);
  if (stopping_)
    return absl::FailedPreconditionError("the cluster is stopping");
  if (next.groups.empty()) return absl::InvalidArgumentError("no worker group");
  unsigned total = 0;
  for (const WorkerGroup& group : next.groups) total += group.workers;
  if (total == 0 || total > kMaxWorkers) {
    return absl::InvalidArgumentError(
        absl::StrCat("workers must be 1..", kMaxWorkers, ", not ", total));
  }
  if (options_.listen_fds.size() > 1 && total < options_.listen_fds.size()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "with balance=reuseport the cluster cannot shrink below its ",
        options_.listen_fds.size(), " sockets"));
  }
  if (RestartRunningLocked()) {
    return absl::FailedPreconditionError(
        "a rolling restart is running: reload once it has finished");
  }
  for (const WorkerGroup& group : next.groups) {
    if (group.command.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("group '", group.name, "': no worker command"));
    }
    auto resolved = ResolveExecutable(group.command[0], group.cwd);
    if (!resolved.ok()) {
      return absl::Status(resolved.status().code(),
                          absl::StrCat("group '", group.name,
                                       "': ", resolved.status().message()));
    }
  }

  Reconfigured result;
  auto changed = [&](absl::string_view what, const std::string& how) {
    result.changes.push_back(absl::StrCat(what, ": ", how));
  };
  const SupervisorOptions& now = options_;
  if (now.heartbeat_interval != next.heartbeat_interval) {
    changed("heartbeatInterval",
            DescribeDuration(now.heartbeat_interval, next.heartbeat_interval));
  }
  if (now.hung_tolerance != next.hung_tolerance) {
    changed("nanny.tolerance",
            DescribeDuration(now.hung_tolerance, next.hung_tolerance));
  }
  if (now.start_timeout != next.start_timeout) {
    changed("timeout", DescribeDuration(now.start_timeout, next.start_timeout));
  }
  if (now.stop_timeout != next.stop_timeout) {
    changed("stopTimeout",
            DescribeDuration(now.stop_timeout, next.stop_timeout));
  }
  if (now.backoff_initial != next.backoff_initial ||
      now.backoff_max != next.backoff_max ||
      now.stable_period != next.stable_period) {
    changed("restartBackoff", "updated");
  }
  if (now.crash_loop_limit != next.crash_loop_limit) {
    changed("crashLoopLimit",
            absl::StrCat(now.crash_loop_limit, " -> ", next.crash_loop_limit));
  }
  if (now.surge != next.surge) {
    changed("surge", absl::StrCat(now.surge, " -> ", next.surge));
  }
  if (now.recycle_budget != next.recycle_budget ||
      now.recycle_window != next.recycle_window) {
    changed("recycle.budget", "updated");
  }
  // Policies are objects: the caller rebuilt them from the new file, so
  // they start afresh whatever changed.
  if (!now.policies.empty() || !next.policies.empty()) {
    changed("recycle policies",
            absl::StrCat(now.policies.size(), " -> ", next.policies.size()));
  }
  next.listen_fds = options_.listen_fds;
  next.slot_sockets = options_.slot_sockets;
  next.base_env = options_.base_env;
  next.environment = options_.environment;
  next.pause_supported = options_.pause_supported;

  // Groups: by name.
  std::vector<pid_t> to_drain;
  std::set<unsigned> restart;  // group indexes
  std::set<unsigned> kept;
  for (const WorkerGroup& spec : next.groups) {
    std::optional<unsigned> index;
    for (unsigned g = 0; g < groups_.size(); ++g) {
      if (groups_[g].spec.name == spec.name) index = g;
    }
    if (!index) {
      groups_.push_back(LiveGroup{spec, false});
      groups_.back().spec.workers = 0;
      index = static_cast<unsigned>(groups_.size() - 1);
      changed(absl::StrCat("group '", spec.name, "'"),
              absl::StrCat("added with ", spec.workers, " workers"));
    } else if (groups_[*index].removed) {
      groups_[*index].removed = false;
      groups_[*index].spec = spec;
      groups_[*index].spec.workers = 0;
      changed(absl::StrCat("group '", spec.name, "'"),
              absl::StrCat("added with ", spec.workers, " workers"));
    } else {
      LiveGroup& live = groups_[*index];
      if (!live.spec.SameProgram(spec)) {
        restart.insert(*index);
        changed(absl::StrCat("group '", spec.name, "'"),
                "command, env or cwd changed: rolling restart");
      }
      if (live.spec.workers != spec.workers) {
        changed(absl::StrCat("group '", spec.name, "' workers"),
                absl::StrCat(live.spec.workers, " -> ", spec.workers));
      }
      const unsigned workers = live.spec.workers;
      live.spec = spec;
      live.spec.workers = workers;  // ScaleGroupLocked sets it
    }
    kept.insert(*index);
  }
  // Restarts are queued before scaling: slots a scale-up adds run the new
  // program already; the slots a scale-down retires are dropped from the
  // queue again.
  if (restart_all) {
    for (unsigned g : kept) restart.insert(g);
  }
  for (unsigned g : restart) {
    QueueRestartLocked(g, "reload");
    result.replaced_groups.push_back(groups_[g].spec.name);
  }
  for (unsigned g = 0; g < groups_.size(); ++g) {
    if (kept.count(g) > 0) {
      unsigned workers = 0;
      for (const WorkerGroup& spec : next.groups) {
        if (spec.name == groups_[g].spec.name) workers = spec.workers;
      }
      if (workers != GroupSlotsLocked(g)) {
        if (workers > GroupSlotsLocked(g)) all_ready_ = false;
        ScaleGroupLocked(g, workers, &to_drain);
      }
    } else if (!groups_[g].removed) {
      changed(absl::StrCat("group '", groups_[g].spec.name, "'"),
              "removed: its workers drain");
      ScaleGroupLocked(g, 0, &to_drain);
      groups_[g].removed = true;
    }
  }
  DrainRetiredLocked(to_drain);
  restart_surge_ = std::max(next.surge, 1u);
  options_ = std::move(next);
  LogInfo(absl::StrCat("configuration reloaded: ",
                       result.changes.empty()
                           ? "nothing changed"
                           : absl::StrJoin(result.changes, "; ")));
  return result;
}

}  // namespace cluster2
