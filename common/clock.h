// Time, injected so that the supervisor's backoff and deadlines and the
// cache's expiry and leases are tested with a fake clock in milliseconds.
#ifndef CLUSTER2_COMMON_CLOCK_H_
#define CLUSTER2_COMMON_CLOCK_H_

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace cluster2 {

// Implementations are thread-safe.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual absl::Time Now() = 0;
};

class RealClock final : public Clock {
 public:
  absl::Time Now() override { return absl::Now(); }
};

}  // namespace cluster2

#endif  // CLUSTER2_COMMON_CLOCK_H_
