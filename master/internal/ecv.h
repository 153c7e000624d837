// Ecv: the cluster's health as load balancers see it ("extended content
// verification", after the original cluster2).
//
//   up           200  status=AVAILABLE&ServeTraffic=true&...
//   marked down  404  status=DISABLED&ServeTraffic=false&...  (drain: HAProxy
//                     `http-check disable-on-404` puts the server in NOLB)
//   down         503  status=UNAVAILABLE&ServeTraffic=false&... (no ready
//                     worker, still starting, or the monitor check fails)
//
// In "control" mode operators mark the cluster up and down; in "monitor"
// mode a check of the app decides (SetMonitorResult). The cluster is down
// until every initial worker has been ready. grpc.health follows: SERVING
// only when up.
//
// Thread-safe.
#ifndef CLUSTER2_MASTER_INTERNAL_ECV_H_
#define CLUSTER2_MASTER_INTERNAL_ECV_H_

#include <functional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"

namespace cluster2 {

class Ecv {
 public:
  enum class Health { kUp, kMarkedDown, kDown };

  struct State {
    Health health = Health::kDown;
    std::string mode;
    bool marked_down = false;
    unsigned ready_workers = 0;
    absl::Time changed_at;
    std::string changed_by;
  };

  // `ready_workers` counts the ready workers now; `started` tells whether
  // every initial worker has been ready. `on_change` (may be null) is called,
  // without the lock, with the new state when the health changes.
  Ecv(std::string mode, bool start_marked_down, Clock* clock,
      std::function<unsigned()> ready_workers, std::function<bool()> started,
      std::function<void(const State&)> on_change);

  // The state now. Does not record changes: Refresh does (the master calls
  // it on every tick), so that every change reaches `on_change`.
  State Get() ABSL_LOCKS_EXCLUDED(mu_);
  // FAILED_PRECONDITION in monitor mode. `who` is logged with the change.
  absl::StatusOr<State> MarkUp(const std::string& who) ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<State> MarkDown(const std::string& who)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Monitor mode: the result of the latest check of the app.
  void SetMonitorResult(bool ok, const std::string& detail)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Re-evaluates the health (workers came or went); calls on_change if it
  // changed.
  void Refresh() ABSL_LOCKS_EXCLUDED(mu_);
  // A reload changed the mode ("control" or "monitor"). Switching to
  // monitor takes `first_check` (empty: passed, else why not) as the app
  // check's result, so the health does not drop while the first periodic
  // check is pending. A mark down made in control mode is kept.
  void SetMode(const std::string& mode, const std::string& first_check)
      ABSL_LOCKS_EXCLUDED(mu_);

  // The HTTP status and body for `state` (see above).
  static int HttpStatus(const State& state);
  static std::string Body(const State& state, const std::string& ip,
                          const std::string& hostname, unsigned port,
                          absl::Time now);
  static const char* HealthName(Health health);

 private:
  // The state now, without recording anything.
  State ComputeLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Computes the state and records a health change (who: `why`, or the
  // workers when empty). Returns whether the health changed.
  bool UpdateLocked(State* state, const std::string& why)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<State> Mark(bool down, const std::string& who)
      ABSL_LOCKS_EXCLUDED(mu_);
  void Publish(State state) ABSL_LOCKS_EXCLUDED(mu_);

  Clock* const clock_;
  const std::function<unsigned()> ready_workers_;
  const std::function<bool()> started_;
  const std::function<void(const State&)> on_change_;
  absl::Mutex mu_;
  std::string mode_ ABSL_GUARDED_BY(mu_);
  bool marked_down_ ABSL_GUARDED_BY(mu_);
  bool monitor_ok_ ABSL_GUARDED_BY(mu_) = false;
  bool monitor_checked_ ABSL_GUARDED_BY(mu_) = false;
  std::string monitor_detail_ ABSL_GUARDED_BY(mu_);  // of the last check
  Health last_health_ ABSL_GUARDED_BY(mu_) = Health::kDown;
  absl::Time changed_at_ ABSL_GUARDED_BY(mu_);
  std::string changed_by_ ABSL_GUARDED_BY(mu_) = "startup";
};

}  // namespace cluster2

#endif  // CLUSTER2_MASTER_INTERNAL_ECV_H_
