#include "master/internal/status_registry.h"

#include "absl/strings/str_cat.h"

namespace cluster2 {

void StatusRegistry::Register(pid_t pid, unsigned worker_id,
                              const std::string& name, StatusChannel* channel) {
  absl::MutexLock lock(&mu_);
  workers_[name][pid] = Registrant{worker_id, channel};
}

void StatusRegistry::Unregister(pid_t pid, const std::string& name) {
  absl::MutexLock lock(&mu_);
  auto it = workers_.find(name);
  if (it == workers_.end()) return;
  it->second.erase(pid);
  if (it->second.empty()) workers_.erase(it);
}

void StatusRegistry::RemoveProcess(pid_t pid) {
  absl::MutexLock lock(&mu_);
  for (auto it = workers_.begin(); it != workers_.end();) {
    it->second.erase(pid);
    it = it->second.empty() ? workers_.erase(it) : std::next(it);
  }
  for (auto& [id, pending] : pending_) {
    if (pending.pid == pid && !pending.answered) {
      pending.answered = true;
      pending.error = "the worker is gone";
    }
  }
}

void StatusRegistry::RegisterLocal(const std::string& name, View view,
                                   Update update) {
  absl::MutexLock lock(&mu_);
  locals_[name] = Local{std::move(view), std::move(update)};
}

std::vector<std::string> StatusRegistry::Names() const {
  absl::MutexLock lock(&mu_);
  std::set<std::string> names;
  for (const auto& [name, registrants] : workers_) names.insert(name);
  for (const auto& [name, local] : locals_) names.insert(name);
  return {names.begin(), names.end()};
}

std::map<std::string, size_t> StatusRegistry::Registrants() const {
  absl::MutexLock lock(&mu_);
  std::map<std::string, size_t> counts;
  for (const auto& [name, registrants] : workers_)
    counts[name] += registrants.size();
  for (const auto& [name, local] : locals_) ++counts[name];
  return counts;
}

absl::StatusOr<std::vector<StatusEntryValue>> StatusRegistry::Get(
    const std::string& name, absl::Duration timeout) {
  return Ask(name, nullptr, timeout);
}

absl::StatusOr<std::vector<StatusEntryValue>> StatusRegistry::Set(
    const std::string& name, const google::protobuf::Value& value,
    absl::Duration timeout) {
  return Ask(name, &value, timeout);
}

absl::StatusOr<std::vector<StatusEntryValue>> StatusRegistry::Ask(
    const std::string& name, const google::protobuf::Value* update,
    absl::Duration timeout) {
  std::optional<Local> local;
  std::map<uint64_t, unsigned> asked;  // query id -> worker id
  {
    absl::MutexLock lock(&mu_);
    auto local_it = locals_.find(name);
    auto workers_it = workers_.find(name);
    if (local_it == locals_.end() && workers_it == workers_.end()) {
      return absl::NotFoundError(
          absl::StrCat("no process registered status '", name, "'"));
    }
    if (local_it != locals_.end()) local = local_it->second;
    if (workers_it != workers_.end()) {
      for (const auto& [pid, registrant] : workers_it->second) {
        uint64_t id = next_id_++;
        pending_[id].pid = pid;
        asked[id] = registrant.worker_id;
        if (update != nullptr) {
          registrant.channel->SendUpdate(id, name, *update);
        } else {
          registrant.channel->SendQuery(id, name);
        }
      }
    }
  }

  std::vector<StatusEntryValue> entries;
  if (local) {  // the master's own registration, answered here
    StatusEntryValue entry;
    entry.pid = master_pid_;
    if (update == nullptr) {
      entry.value = local->view();
    } else if (!local->update) {
      entry.error = "read-only in the master";
    } else {
      absl::StatusOr<google::protobuf::Value> updated = local->update(*update);
      if (updated.ok()) {
        entry.value = *updated;
      } else {
        entry.error = std::string(updated.status().message());
      }
    }
    entries.push_back(std::move(entry));
  }

  absl::MutexLock lock(&mu_);
  auto all_answered = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    for (const auto& [id, worker_id] : asked) {
      if (!pending_[id].answered) return false;
    }
    return true;
  };
  mu_.AwaitWithTimeout(absl::Condition(&all_answered), timeout);
  for (const auto& [id, worker_id] : asked) {
    Pending& pending = pending_[id];
    StatusEntryValue entry;
    entry.pid = pending.pid;
    entry.worker_id = worker_id;
    if (!pending.answered) {
      entry.error =
          absl::StrCat("no answer within ", absl::FormatDuration(timeout));
    } else {
      entry.value = std::move(pending.value);
      entry.error = std::move(pending.error);
    }
    entries.push_back(std::move(entry));
    pending_.erase(id);
  }
  return entries;
}

void StatusRegistry::Answer(pid_t pid, uint64_t id,
                            const google::protobuf::Value& value,
                            const std::string& error) {
  absl::MutexLock lock(&mu_);
  auto it = pending_.find(id);
  if (it == pending_.end() || it->second.pid != pid || it->second.answered)
    return;
  it->second.answered = true;
  it->second.value = value;
  it->second.error = error;
}

}  // namespace cluster2
