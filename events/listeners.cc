#include "events/listeners.h"

#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace cluster2 {

absl::Status ValidateEvent(const v1::Event& event) {
  if (event.name().empty())
    return absl::InvalidArgumentError("event name is empty");
  if (event.name().size() > kMaxEventName) {
    return absl::InvalidArgumentError(
        absl::StrCat("event name is ", event.name().size(),
                     " bytes; the limit is ", kMaxEventName));
  }
  if (absl::StartsWith(event.name(), kReservedEventPrefix)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "event names starting with '", kReservedEventPrefix, "' are reserved"));
  }
  size_t bytes = 0;
  for (const google::protobuf::Value& arg : event.args())
    bytes += arg.ByteSizeLong();
  if (bytes > kMaxEventArgsBytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "event args are ", bytes, " bytes; the limit is ", kMaxEventArgsBytes));
  }
  for (const v1::Target& target : event.targets()) {
    if (target.kind_case() == v1::Target::KIND_NOT_SET) {
      return absl::InvalidArgumentError("a target names nothing");
    }
  }
  return absl::OkStatus();
}

v1::Event ToProto(const std::string& name,
                  const std::vector<EmitTarget>& targets,
                  std::vector<google::protobuf::Value> args) {
  v1::Event event;
  event.set_name(name);
  for (google::protobuf::Value& arg : args) *event.add_args() = std::move(arg);
  for (const EmitTarget& target : targets) {
    v1::Target* out = event.add_targets();
    switch (target.kind) {
      case EmitTarget::Kind::kSelf:
        out->set_self(true);
        break;
      case EmitTarget::Kind::kMaster:
        out->set_master(true);
        break;
      case EmitTarget::Kind::kWorkers:
        out->set_workers(true);
        break;
      case EmitTarget::Kind::kPid:
        out->set_pid(target.pid);
        break;
      case EmitTarget::Kind::kCluster:
        out->set_cluster(true);
        break;
    }
  }
  return event;
}

ClusterEvent FromProto(const v1::Event& proto) {
  ClusterEvent event;
  event.name = proto.name();
  event.args.assign(proto.args().begin(), proto.args().end());
  event.from_pid = proto.from_pid();
  event.sequence = proto.sequence();
  return event;
}

uint64_t ListenerSet::Add(const std::string& event, EventHandler handler,
                          bool once) {
  absl::MutexLock lock(&mu_);
  uint64_t id = next_id_++;
  listeners_[id] = Listener{event, std::move(handler), once};
  return id;
}

bool ListenerSet::Remove(uint64_t id) {
  absl::MutexLock lock(&mu_);
  return listeners_.erase(id) > 0;
}

void ListenerSet::RemoveAll(const std::string& event) {
  absl::MutexLock lock(&mu_);
  for (auto it = listeners_.begin(); it != listeners_.end();) {
    it = event.empty() || it->second.event == event ? listeners_.erase(it)
                                                    : std::next(it);
  }
}

void ListenerSet::Dispatch(const v1::Event& proto) {
  std::vector<EventHandler> handlers;
  {
    absl::MutexLock lock(&mu_);
    for (auto it = listeners_.begin(); it != listeners_.end();) {
      if (it->second.event != proto.name()) {
        ++it;
        continue;
      }
      handlers.push_back(it->second.handler);
      it = it->second.once ? listeners_.erase(it) : std::next(it);
    }
  }
  if (handlers.empty()) return;
  ClusterEvent event = FromProto(proto);
  for (const EventHandler& handler : handlers) handler(event);
}

}  // namespace cluster2
