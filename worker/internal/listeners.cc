#include "worker/internal/listeners.h"

#include <utility>

namespace cluster2 {

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
