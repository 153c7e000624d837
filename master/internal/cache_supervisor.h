// CacheServerSupervisor: the standalone cache server as a child of the
// master, kept alive and healthy.
//
// It starts the server, and
// - restarts it when it exits: at once after a stable run, else after a
//   backoff that doubles with each quick failure up to a maximum;
// - gives up after `give_up_after` quick failures in a row (a data
//   directory that cannot be written, a binary that cannot start), saying so
//   once in the log and in state(), instead of restarting it forever;
// - kills it when it stops answering its health check (a SIGSTOPped or
//   deadlocked server would otherwise be waited on forever by every
//   worker), and then restarts it as above.
//
// No gRPC and no processes here: the process is started and signalled by an
// injected ProcessLauncher, time comes from an injected Clock, and health
// answers arrive through HealthAnswered() from whoever probes the server
// (CacheHealthProbe in the master), so it is unit-tested with fakes.
//
// Thread-safe: every public method takes the one internal mutex; the
// launcher is called with it held.
#ifndef CLUSTER2_MASTER_INTERNAL_CACHE_SUPERVISOR_H_
#define CLUSTER2_MASTER_INTERNAL_CACHE_SUPERVISOR_H_

#include <sys/types.h>

#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "master/internal/spawn.h"

namespace cluster2 {

struct CacheSupervisorOptions {
  SpawnSpec spec;  // the cluster2-cache command
  // Restart delay after a quick failure: `backoff_initial`, doubling up to
  // `backoff_max`; a run of `stable_period` resets it. Defaults as workers'.
  absl::Duration backoff_initial = absl::Milliseconds(100);
  absl::Duration backoff_max = absl::Seconds(30);
  absl::Duration stable_period = absl::Seconds(10);
  // Quick failures in a row before giving up; 0 = never give up.
  unsigned give_up_after = 5;
  // A running server that has not answered a health check for this long is
  // killed (SIGKILL) and restarted; zero disables the check. A server that
  // has not answered since its start gets `start_timeout` from its start
  // (it may be recovering a large log).
  absl::Duration health_timeout = absl::Seconds(5);
  absl::Duration start_timeout = absl::Seconds(60);
};

class CacheServerSupervisor {
 public:
  enum class State {
    kRunning,  // a process is running (it may not answer yet)
    kWaiting,  // no process; a restart is due at next_start()
    kFailed,   // given up after repeated quick failures
    kStopped,  // Stop() was called
  };
  // `launcher` and `clock` are borrowed and must outlive the supervisor.
  CacheServerSupervisor(CacheSupervisorOptions options,
                        ProcessLauncher* launcher, Clock* clock);

  // Starts the server now (a failed launch counts as a quick failure).
  void Start() ABSL_LOCKS_EXCLUDED(mu_);
  // Restarts a waiting server when its backoff is over; kills a running one
  // whose health check is overdue. Returns when it next has work to do.
  absl::Time Tick() ABSL_LOCKS_EXCLUDED(mu_);
  // The reaper saw `pid` exit with wait status `status`. False if `pid` is
  // not the cache server's.
  bool ProcessExited(pid_t pid, int status) ABSL_LOCKS_EXCLUDED(mu_);
  // The server `pid` answered a health check (answers from an older
  // process are ignored).
  void HealthAnswered(pid_t pid) ABSL_LOCKS_EXCLUDED(mu_);
  // No more restarts; returns the running pid (0 if none) for the caller to
  // stop and reap.
  pid_t Stop() ABSL_LOCKS_EXCLUDED(mu_);

  State state() const ABSL_LOCKS_EXCLUDED(mu_);
  pid_t pid() const ABSL_LOCKS_EXCLUDED(mu_);
  // Processes started after the first.
  unsigned restarts() const ABSL_LOCKS_EXCLUDED(mu_);
  static const char* StateName(State state);

 private:
  void LaunchLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A process ended (or could not start): restart at once, later, or never.
  void FailedLocked(const std::string& why) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const CacheSupervisorOptions options_;
  ProcessLauncher* const launcher_;
  Clock* const clock_;
  mutable absl::Mutex mu_;
  State state_ ABSL_GUARDED_BY(mu_) = State::kWaiting;
  pid_t pid_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time started_at_ ABSL_GUARDED_BY(mu_);
  std::optional<absl::Time> last_healthy_ ABSL_GUARDED_BY(mu_);
  absl::Time next_start_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  bool killed_as_hung_ ABSL_GUARDED_BY(mu_) = false;
  unsigned quick_failures_ ABSL_GUARDED_BY(mu_) = 0;
  unsigned launches_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace cluster2

#endif  // CLUSTER2_MASTER_INTERNAL_CACHE_SUPERVISOR_H_
