#include "master/internal/event_router.h"

#include <algorithm>
#include <set>

namespace cluster2 {

void EventRouter::AddWorker(pid_t pid, EventSink* sink) {
  absl::MutexLock lock(&mu_);
  workers_[pid] = sink;
}

void EventRouter::RemoveWorker(pid_t pid) {
  absl::MutexLock lock(&mu_);
  workers_.erase(pid);
}

uint64_t EventRouter::AddMasterListener(EventSink* sink) {
  absl::MutexLock lock(&mu_);
  uint64_t id = next_listener_++;
  master_listeners_[id] = sink;
  return id;
}

void EventRouter::RemoveMasterListener(uint64_t id) {
  absl::MutexLock lock(&mu_);
  master_listeners_.erase(id);
}

void EventRouter::SetBridge(std::function<void(const v1::Event&)> publish) {
  absl::MutexLock lock(&mu_);
  bridge_ = std::move(publish);
}

uint32_t EventRouter::DeliverFromBridge(const v1::Event& event) {
  absl::MutexLock lock(&mu_);
  uint32_t delivered = 0;
  if (!master_listeners_.empty()) {
    for (const auto& [id, sink] : master_listeners_) sink->Deliver(event);
  }
  ++delivered;  // the master
  for (const auto& [pid, sink] : workers_) {
    sink->Deliver(event);
    ++delivered;
  }
  counters_.delivered += delivered;
  return delivered;
}

EventRouter::Counters EventRouter::counters() const {
  absl::MutexLock lock(&mu_);
  return counters_;
}

absl::StatusOr<RouteResult> EventRouter::Route(v1::Event event,
                                               pid_t sender_pid) {
  if (absl::Status status = ValidateEvent(event); !status.ok()) {
    absl::MutexLock lock(&mu_);
    ++counters_.refused;
    return status;
  }
  absl::MutexLock lock(&mu_);
  ++counters_.routed;
  bool from_worker = sender_pid != 0;
  event.set_from_pid(from_worker ? sender_pid : master_pid_);
  if (!from_worker) event.set_sequence(++master_sequence_);

  // Resolve the targets to a set of processes (0 = the master).
  std::set<pid_t> processes;
  RouteResult result;
  auto add_worker = [&](pid_t pid) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (workers_.count(pid) > 0) {
      processes.insert(pid);
    } else {
      result.unknown_pids.push_back(pid);
    }
  };
  if (event.targets().empty()) {
    processes.insert(0);
    if (from_worker) {
      processes.insert(sender_pid);
    } else {
      for (const auto& [pid, sink] : workers_) processes.insert(pid);
    }
  }
  // To every host: the bridge delivers it here too, in its order.
  const bool cluster =
      std::any_of(event.targets().begin(), event.targets().end(),
                  [](const v1::Target& target) { return target.cluster(); });
  if (cluster && bridge_) {
    event.clear_from_host();
    bridge_(event);
    result.delivered = 1 + static_cast<uint32_t>(workers_.size());
    return result;
  }
  for (const v1::Target& target : event.targets()) {
    switch (target.kind_case()) {
      case v1::Target::kSelf:
        processes.insert(from_worker ? sender_pid : 0);
        break;
      case v1::Target::kMaster:
        processes.insert(0);
        break;
      case v1::Target::kWorkers:
        for (const auto& [pid, sink] : workers_) processes.insert(pid);
        break;
      case v1::Target::kCluster:  // without a bridge: this host
        processes.insert(0);
        for (const auto& [pid, sink] : workers_) processes.insert(pid);
        break;
      case v1::Target::kPid:
        if (target.pid() == master_pid_) {
          processes.insert(0);
        } else {
          add_worker(target.pid());
        }
        break;
      case v1::Target::KIND_NOT_SET:
        break;
    }
  }
  for (pid_t pid : processes) {
    if (pid == 0) {
      for (const auto& [id, sink] : master_listeners_) sink->Deliver(event);
    } else {
      auto it = workers_.find(pid);
      if (it == workers_.end()) continue;  // a sender without a session
      it->second->Deliver(event);
    }
    ++result.delivered;
  }
  counters_.delivered += result.delivered;
  return result;
}

}  // namespace cluster2
