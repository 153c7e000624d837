// MasterEvents: the MasterContext implementation over the EventRouter and
// the StatusRegistry. It is a master listener of the router; delivered
// events are queued and handed to the app's listeners on one thread.
//
// Thread-safe.
#ifndef CLUSTER2_MASTER_INTERNAL_MASTER_EVENTS_H_
#define CLUSTER2_MASTER_INTERNAL_MASTER_EVENTS_H_

#include <deque>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "events/listeners.h"
#include "master/internal/event_router.h"
#include "master/internal/status_registry.h"
#include "master/master_context.h"

namespace cluster2 {

class MasterEvents final : public MasterContext, public EventSink {
 public:
  // Borrows `router` and `registry`, which must outlive this object.
  MasterEvents(EventRouter* router, StatusRegistry* registry);
  // Stops listening and joins the listeners' thread.
  ~MasterEvents() override;

  uint64_t On(const std::string& event, EventHandler handler) override;
  uint64_t Once(const std::string& event, EventHandler handler) override;
  bool RemoveListener(uint64_t id) override;
  void RemoveAllListeners(const std::string& event) override;
  absl::StatusOr<EmitResult> Emit(
      const std::string& event, std::vector<EmitTarget> targets,
      std::vector<google::protobuf::Value> args) override;
  void RegisterStatus(const std::string& name, StatusView view,
                      StatusUpdate update) override;
  absl::StatusOr<std::vector<StatusEntry>> GetStatus(
      const std::string& name, absl::Duration deadline) override;
  absl::StatusOr<std::vector<StatusEntry>> SetStatus(
      const std::string& name, const google::protobuf::Value& value,
      absl::Duration deadline) override;
  std::vector<std::string> Statuses() override;

  // EventSink: called by the router.
  void Deliver(const v1::Event& event) override;

 private:
  void DispatchLoop();

  EventRouter* const router_;
  StatusRegistry* const registry_;
  uint64_t router_id_ = 0;
  absl::Mutex mu_;
  ListenerSet listeners_;
  std::deque<v1::Event> queue_ ABSL_GUARDED_BY(mu_);
  bool closing_ ABSL_GUARDED_BY(mu_) = false;
  std::thread dispatcher_;
};

}  // namespace cluster2

#endif  // CLUSTER2_MASTER_INTERNAL_MASTER_EVENTS_H_
