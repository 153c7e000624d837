// CacheHealthProbe: the master's liveness check of the cache server.
//
// One thread ("cache-health") asks the server for its Stats once per
// `interval`, each call with `interval` as its deadline, and reports every
// answer with the pid of the server it asked (CacheServerSupervisor ignores
// answers from an older process). A stopped (SIGSTOP) or deadlocked server
// simply stops answering; the supervisor decides what that means.
//
// Each answer is also kept (Latest): the monitor port's /metrics shows the
// cache's figures from it, so a scrape never calls the cache server.
//
// Thread-safe; the callbacks run on the probe's thread and must not block.
#ifndef CLUSTER2_MASTER_INTERNAL_CACHE_HEALTH_PROBE_H_
#define CLUSTER2_MASTER_INTERNAL_CACHE_HEALTH_PROBE_H_

#include <sys/types.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "cluster2/v1/cache.pb.h"

namespace cluster2 {

// The cache server's latest Stats answer and when it came.
struct CacheStatsSample {
  v1::StatsResponse stats;
  absl::Time at;
};

class CacheHealthProbe {
 public:
  // Probes `address` ("unix:..."); `current_pid` says which process serves
  // it now (0: none, no call is made), `answered` (may be null) hears each
  // answer.
  CacheHealthProbe(std::string address, absl::Duration interval,
                   std::function<pid_t()> current_pid,
                   std::function<void(pid_t)> answered);
  // Stops the thread (within one call's deadline).
  ~CacheHealthProbe();

  // The latest answer; none before the first.
  std::optional<CacheStatsSample> Latest() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  void Loop();

  const std::string address_;
  const absl::Duration interval_;
  const std::function<pid_t()> current_pid_;
  const std::function<void(pid_t)> answered_;
  mutable absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::optional<CacheStatsSample> latest_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

}  // namespace cluster2

#endif  // CLUSTER2_MASTER_INTERNAL_CACHE_HEALTH_PROBE_H_
