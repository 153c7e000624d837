#include "master/internal/master_events.h"

#include <utility>

namespace cluster2 {
namespace {

std::vector<StatusEntry> ToEntries(std::vector<StatusEntryValue> values) {
  std::vector<StatusEntry> entries;
  for (StatusEntryValue& value : values) {
    StatusEntry entry;
    entry.pid = value.pid;
    entry.worker_id = value.worker_id;
    entry.value = std::move(value.value);
    entry.error = std::move(value.error);
    entries.push_back(std::move(entry));
  }
  return entries;
}

}  // namespace

MasterEvents::MasterEvents(EventRouter* router, StatusRegistry* registry)
    : router_(router),
      registry_(registry),
      dispatcher_([this] { DispatchLoop(); }) {
  router_id_ = router_->AddMasterListener(this);
}

MasterEvents::~MasterEvents() {
  router_->RemoveMasterListener(router_id_);
  {
    absl::MutexLock lock(&mu_);
    closing_ = true;
  }
  dispatcher_.join();
}

uint64_t MasterEvents::On(const std::string& event, EventHandler handler) {
  return listeners_.Add(event, std::move(handler), /*once=*/false);
}

uint64_t MasterEvents::Once(const std::string& event, EventHandler handler) {
  return listeners_.Add(event, std::move(handler), /*once=*/true);
}

bool MasterEvents::RemoveListener(uint64_t id) { return listeners_.Remove(id); }

void MasterEvents::RemoveAllListeners(const std::string& event) {
  listeners_.RemoveAll(event);
}

absl::StatusOr<EmitResult> MasterEvents::Emit(
    const std::string& name, std::vector<EmitTarget> targets,
    std::vector<google::protobuf::Value> args) {
  v1::Event event = ToProto(name, targets, std::move(args));
  absl::StatusOr<RouteResult> routed = router_->Route(std::move(event), 0);
  if (!routed.ok()) return routed.status();
  EmitResult result;
  result.delivered = routed->delivered;
  result.unknown_pids.assign(routed->unknown_pids.begin(),
                             routed->unknown_pids.end());
  return result;
}

void MasterEvents::RegisterStatus(const std::string& name, StatusView view,
                                  StatusUpdate update) {
  StatusRegistry::Update wrapped;
  if (update) {
    wrapped = [update](const google::protobuf::Value& value)
        -> absl::StatusOr<google::protobuf::Value> { return update(value); };
  }
  registry_->RegisterLocal(name, std::move(view), std::move(wrapped));
}

absl::StatusOr<std::vector<StatusEntry>> MasterEvents::GetStatus(
    const std::string& name, absl::Duration deadline) {
  auto values = registry_->Get(name, deadline);
  if (!values.ok()) return values.status();
  return ToEntries(std::move(*values));
}

absl::StatusOr<std::vector<StatusEntry>> MasterEvents::SetStatus(
    const std::string& name, const google::protobuf::Value& value,
    absl::Duration deadline) {
  auto values = registry_->Set(name, value, deadline);
  if (!values.ok()) return values.status();
  return ToEntries(std::move(*values));
}

std::vector<std::string> MasterEvents::Statuses() { return registry_->Names(); }

void MasterEvents::Deliver(const v1::Event& event) {
  absl::MutexLock lock(&mu_);
  queue_.push_back(event);
}

void MasterEvents::DispatchLoop() {
  while (true) {
    std::deque<v1::Event> batch;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return closing_ || !queue_.empty();
      };
      mu_.Await(absl::Condition(&ready));
      if (closing_) return;
      batch.swap(queue_);
    }
    for (const v1::Event& event : batch) listeners_.Dispatch(event);
  }
}

}  // namespace cluster2
