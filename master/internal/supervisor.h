// Supervisor: the worker slots of a cluster and the processes in them.
//
// It starts one process per slot, follows each through its states
// (starting -> ready -> draining -> exited), restarts a slot whose process
// dies (at once after a stable run, with exponential backoff while it keeps
// crashing) and stops the cluster by draining every worker and killing those
// that outlive the grace period.
//
// It knows nothing of gRPC: sessions reach it through Attach/Ready/Heartbeat/
// Detach with a WorkerChannel to talk back; process exits arrive through
// ProcessExited; time-driven work happens in Tick(). Processes are started
// and signalled through an injected ProcessLauncher and time comes from an
// injected Clock, so all of it is unit-tested without processes or sleeps.
//
// Thread-safe: every public method takes the one internal mutex. Channel
// methods are called with that mutex held and must not block or call back.
#ifndef CLUSTER2_MASTER_INTERNAL_SUPERVISOR_H_
#define CLUSTER2_MASTER_INTERNAL_SUPERVISOR_H_

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "master/internal/clock.h"
#include "master/internal/spawn.h"

namespace cluster2 {

enum class WorkerState { kStarting, kReady, kPaused, kDraining, kExited };

absl::string_view WorkerStateName(WorkerState state);

// What a worker reports with each heartbeat.
struct HeartbeatFigures {
  uint64_t rss_bytes = 0;
  absl::Duration cpu_time;
  uint32_t open_fds = 0;
  uint32_t threads = 0;
  absl::Duration uptime;
  uint64_t requests_total = 0;
  uint32_t requests_in_flight = 0;
  absl::Duration latency_p50;
  absl::Duration latency_p99;
  absl::Duration lag;
};

// A copy of one worker's state, for listings.
struct WorkerSnapshot {
  unsigned id = 0;
  pid_t pid = 0;
  WorkerState state = WorkerState::kStarting;
  absl::Time started_at;
  std::optional<absl::Time> ready_at;
  unsigned restarts = 0;
  bool attached = false;
  std::string last_exit;
  std::string reason;
  std::optional<HeartbeatFigures> heartbeat;
  std::optional<absl::Time> heartbeat_at;
};

// How the supervisor talks to an attached worker. Sends are queued, never
// block, and are delivered in call order.
class WorkerChannel {
 public:
  virtual ~WorkerChannel() = default;
  // First message of every session.
  virtual void SendWelcome(absl::Duration heartbeat_interval) = 0;
  // Stop accepting, finish in-flight work and exit within `grace`.
  virtual void SendDrain(absl::Duration grace, absl::string_view reason) = 0;
};

struct SupervisorOptions {
  // Number of slots. Required, >= 1.
  unsigned workers = 1;
  // The worker command and its environment: `environment.worker_id` and
  // `.token` are filled per spawn.
  std::vector<std::string> command;
  std::vector<std::string> base_env;   // normally the master's environment
  std::vector<std::string> extra_env;  // "K=V" from the config
  std::string cwd;
  WorkerEnvironment environment;
  // The listening sockets, passed as fd 3: slot i gets
  // listen_fds[i % size] (one shared socket, or one per slot). Empty = none.
  std::vector<int> listen_fds;
  // Heartbeat period announced to workers. Default 5 s.
  absl::Duration heartbeat_interval = absl::Seconds(5);
  // A worker not ready by then is killed (and restarted). Default 60 s.
  absl::Duration start_timeout = absl::Seconds(60);
  // Drain grace at stop before SIGKILL. Default 60 s.
  absl::Duration stop_timeout = absl::Seconds(60);
  // Restart backoff: the first restart after a run of at least
  // `stable_period` is immediate; each further crash before `stable_period`
  // waits backoff_initial, doubling up to backoff_max.
  absl::Duration backoff_initial = absl::Milliseconds(100);
  absl::Duration backoff_max = absl::Seconds(30);
  absl::Duration stable_period = absl::Seconds(10);
};

// What Attach tells the session.
struct AttachedWorker {
  unsigned id = 0;
  pid_t pid = 0;
};

class Supervisor {
 public:
  // `launcher` and `clock` are borrowed and must outlive the supervisor.
  Supervisor(SupervisorOptions options, ProcessLauncher* launcher,
             Clock* clock);
  Supervisor(const Supervisor&) = delete;
  Supervisor& operator=(const Supervisor&) = delete;

  // Starts a process in every slot. Fails (starting nothing) if the command
  // cannot be executed at all; a slot whose spawn fails later is retried
  // with backoff.
  absl::Status Start() ABSL_LOCKS_EXCLUDED(mu_);

  // A worker opened its session with the token of its spawn. Sends Welcome
  // (and Drain at once if the worker is already being stopped) on `channel`,
  // which stays registered until Detach. FAILED_PRECONDITION for an unknown
  // token or a worker that already has a session.
  absl::StatusOr<AttachedWorker> Attach(absl::string_view token,
                                        WorkerChannel* channel)
      ABSL_LOCKS_EXCLUDED(mu_);
  // The worker of `token` serves. Unknown tokens are ignored.
  void Ready(absl::string_view token) ABSL_LOCKS_EXCLUDED(mu_);
  void Heartbeat(absl::string_view token, const HeartbeatFigures& figures)
      ABSL_LOCKS_EXCLUDED(mu_);
  // The session of `token` ended; its channel is no longer used.
  void Detach(absl::string_view token) ABSL_LOCKS_EXCLUDED(mu_);

  // A child process ended (from waitpid). Unknown pids are ignored.
  void ProcessExited(pid_t pid, int wait_status) ABSL_LOCKS_EXCLUDED(mu_);

  // Does the time-driven work that is due: respawns, start deadlines, kills
  // after a drain grace. Returns when it next has something to do.
  absl::Time Tick() ABSL_LOCKS_EXCLUDED(mu_);

  // Stops the cluster: no more restarts; every worker drains within
  // `grace` (or is killed at once if `fast`).
  void Stop(bool fast, absl::Duration grace, absl::string_view reason)
      ABSL_LOCKS_EXCLUDED(mu_);
  // True once Stop was called and every process has exited.
  bool Stopped() const ABSL_LOCKS_EXCLUDED(mu_);
  bool Stopping() const ABSL_LOCKS_EXCLUDED(mu_);

  // True once every slot has had a ready worker at the same time since Start.
  bool AllReady() const ABSL_LOCKS_EXCLUDED(mu_);

  // Every slot's current process, by slot id, followed by processes that are
  // draining out of their slot.
  std::vector<WorkerSnapshot> Workers() const ABSL_LOCKS_EXCLUDED(mu_);
  // NOT_FOUND if no process has `pid`.
  absl::StatusOr<WorkerSnapshot> WorkerByPid(pid_t pid) const
      ABSL_LOCKS_EXCLUDED(mu_);
  unsigned desired_workers() const { return options_.workers; }

 private:
  struct Process {
    pid_t pid = 0;
    unsigned slot = 0;
    std::string token;
    WorkerState state = WorkerState::kStarting;
    absl::Time started_at;
    std::optional<absl::Time> ready_at;
    WorkerChannel* channel = nullptr;
    std::optional<HeartbeatFigures> heartbeat;
    std::optional<absl::Time> heartbeat_at;
    std::string reason;
    std::optional<absl::Time> kill_at;  // while draining
    bool killed = false;
  };
  struct Slot {
    unsigned id = 0;
    pid_t pid = 0;  // 0 = no process
    unsigned restarts = 0;
    unsigned quick_failures = 0;
    std::optional<absl::Time> respawn_at;
    std::string last_exit;
    bool ever_started = false;
  };

  absl::Status SpawnLocked(Slot& slot) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ScheduleRespawnLocked(Slot& slot, absl::Duration ran)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void DrainLocked(Process& process, absl::Duration grace,
                   absl::string_view reason) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Process* FindByTokenLocked(absl::string_view token)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  WorkerSnapshot SnapshotLocked(const Process& process) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void UpdateAllReadyLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const SupervisorOptions options_;
  ProcessLauncher* const launcher_;
  Clock* const clock_;

  mutable absl::Mutex mu_;
  std::vector<Slot> slots_ ABSL_GUARDED_BY(mu_);
  std::map<pid_t, Process> processes_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool all_ready_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t spawn_counter_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace cluster2

#endif  // CLUSTER2_MASTER_INTERNAL_SUPERVISOR_H_
