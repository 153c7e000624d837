// MasterContext: the master's side of the emitter and status, for an app
// that embeds the master (cluster2::Listen's on_master).
//
// Listeners run in order on one thread of the master (they may call Emit
// and GetStatus); status views and updates run on gRPC threads.
//
// Thread-safe: every method may be called from any thread.
#ifndef CLUSTER2_MASTER_MASTER_CONTEXT_H_
#define CLUSTER2_MASTER_MASTER_CONTEXT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "events/events.h"

namespace cluster2 {

class MasterContext {
 public:
  virtual ~MasterContext() = default;

  // Listeners of events delivered to the master (see Worker::On).
  virtual uint64_t On(const std::string& event, EventHandler handler) = 0;
  virtual uint64_t Once(const std::string& event, EventHandler handler) = 0;
  virtual bool RemoveListener(uint64_t id) = 0;
  // Removes the listeners of `event`, or of every event if it is empty.
  virtual void RemoveAllListeners(const std::string& event) = 0;
  // Routes an event from the master. Empty targets = the master and every
  // worker; `self` is the master. Errors: INVALID_ARGUMENT (empty or
  // reserved name), RESOURCE_EXHAUSTED (args over 1 MiB).
  virtual absl::StatusOr<EmitResult> Emit(
      const std::string& event, std::vector<EmitTarget> targets,
      std::vector<google::protobuf::Value> args) = 0;

  // A status of the master process; `update` may be null (read-only).
  virtual void RegisterStatus(const std::string& name, StatusView view,
                              StatusUpdate update) = 0;
  // Every process's value of `name`, gathered within `deadline`.
  virtual absl::StatusOr<std::vector<StatusEntry>> GetStatus(
      const std::string& name, absl::Duration deadline) = 0;
  virtual absl::StatusOr<std::vector<StatusEntry>> SetStatus(
      const std::string& name, const google::protobuf::Value& value,
      absl::Duration deadline) = 0;
  // Names registered anywhere in the cluster.
  virtual std::vector<std::string> Statuses() = 0;
};

}  // namespace cluster2

#endif  // CLUSTER2_MASTER_MASTER_CONTEXT_H_
