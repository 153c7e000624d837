#include "master/internal/event_timeline.h"

#include <utility>

#include "common/proto_time.h"

namespace cluster2 {

void EventTimeline::OnWorkerEvent(const WorkerEvent& event) {
  v1::MonitorEvent entry;
  ToProto(event.at, entry.mutable_at());
  entry.set_kind(std::string(WorkerEventName(event.kind)));
  entry.set_slot(static_cast<int32_t>(event.slot));
  entry.set_pid(event.pid);
  entry.set_group(event.group);
  entry.set_detail(event.detail);
  Add(std::move(entry));
  if (next_ != nullptr) next_->OnWorkerEvent(event);
}

void EventTimeline::AddClusterEvent(absl::Time at, const std::string& kind,
                                    const std::string& detail) {
  v1::MonitorEvent entry;
  ToProto(at, entry.mutable_at());
  entry.set_kind(kind);
  entry.set_slot(-1);
  entry.set_detail(detail);
  Add(std::move(entry));
}

void EventTimeline::Add(v1::MonitorEvent event) {
  absl::MutexLock lock(&mu_);
  events_.push_back(std::move(event));
  while (events_.size() > kCapacity) events_.pop_front();
}

std::vector<v1::MonitorEvent> EventTimeline::Recent() const {
  absl::MutexLock lock(&mu_);
  return {events_.begin(), events_.end()};
}

}  // namespace cluster2
