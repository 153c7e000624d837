// ListenerSet: the event listeners of one process (a worker or the master),
// and the conversions between the public event types (events/events.h) and
// the protos. Used by cluster2::Worker and the master's MasterContext.
//
// Thread-safe.
#ifndef CLUSTER2_EVENTS_LISTENERS_H_
#define CLUSTER2_EVENTS_LISTENERS_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "cluster2/v1/emitter.pb.h"
#include "events/events.h"

namespace cluster2 {

// Names starting with this are cluster2's own events; users cannot emit them.
inline constexpr absl::string_view kReservedEventPrefix = "cluster2:";
inline constexpr size_t kMaxEventName = 256;
inline constexpr size_t kMaxEventArgsBytes = 1 << 20;

// INVALID_ARGUMENT for an empty, too long or reserved name or an empty
// target; RESOURCE_EXHAUSTED for args over 1 MiB. The master checks every
// event; the worker library checks before sending.
absl::Status ValidateEvent(const v1::Event& event);

// An event named `name` with `args` to `targets`, as a proto.
v1::Event ToProto(const std::string& name,
                  const std::vector<EmitTarget>& targets,
                  std::vector<google::protobuf::Value> args);
ClusterEvent FromProto(const v1::Event& event);

class ListenerSet {
 public:
  // Returns the listener's id.
  uint64_t Add(const std::string& event, EventHandler handler, bool once)
      ABSL_LOCKS_EXCLUDED(mu_);
  bool Remove(uint64_t id) ABSL_LOCKS_EXCLUDED(mu_);
  // Removes the listeners of `event`, or all if it is empty.
  void RemoveAll(const std::string& event) ABSL_LOCKS_EXCLUDED(mu_);
  // Calls the listeners of `event.name` (without the lock), dropping the
  // `once` ones first.
  void Dispatch(const v1::Event& event) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Listener {
    std::string event;
    EventHandler handler;
    bool once = false;
  };
  absl::Mutex mu_;
  std::map<uint64_t, Listener> listeners_ ABSL_GUARDED_BY(mu_);
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
};

}  // namespace cluster2

#endif  // CLUSTER2_EVENTS_LISTENERS_H_
