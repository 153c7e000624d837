// Figures of the current process read from /proc for heartbeats.
//
// Thread-safe: reads /proc on every call.
#ifndef CLUSTER2_WORKER_INTERNAL_PROCESS_STATS_H_
#define CLUSTER2_WORKER_INTERNAL_PROCESS_STATS_H_

#include <cstdint>

#include "absl/time/time.h"

namespace cluster2 {

struct ProcessStats {
  uint64_t rss_bytes = 0;
  absl::Duration cpu_time;
  uint32_t open_fds = 0;
  uint32_t threads = 0;
};

// Zero figures for what cannot be read (never fails).
ProcessStats ReadProcessStats();

}  // namespace cluster2

#endif  // CLUSTER2_WORKER_INTERNAL_PROCESS_STATS_H_
