// Supervisor: the worker slots of a cluster and the processes in them.
//
// It starts one process per slot and follows each through its states
// (starting -> ready -> draining -> exited). It
// - restarts a slot whose process dies: at once after a stable run, with
//   exponential backoff while it keeps crashing, and gives the slot up
//   (state failed, reported) after `crash_loop_limit` quick failures;
// - replaces workers without losing capacity: a successor starts in the
//   same slot and only once it is ready is the old worker drained; rolling
//   restarts do this `surge` slots at a time, and stop if a successor fails;
// - kills workers whose heartbeats stop (hung) and workers not ready by the
//   start deadline, and recycles workers its RecyclePolicy objects flag,
//   within a budget of recycles per window;
// - scales the number of slots, and stops the cluster by draining every
//   worker and killing those that outlive the grace period.
//
// - lends a worker to a debug session (BeginDebug: it leaves its slot for
//   a replacement) or starts one outside the slots (StartDebugWorker); a
//   debugging process is never counted, recycled, hang-killed or
//   restarted, and is killed by EndDebug. DebugSession drives these.
//
// It knows nothing of gRPC: sessions reach it through Attach/Ready/Heartbeat/
// Detach with a WorkerChannel to talk back; process exits arrive through
// ProcessExited; time-driven work happens in Tick(). Processes are started
// and signalled through an injected ProcessLauncher and time comes from an
// injected Clock, so all of it is unit-tested without processes or sleeps.
//
// Thread-safe: every public method takes the one internal mutex. Channel
// methods and policies are called with that mutex held; they must not block
// or call back.
#ifndef CLUSTER2_MASTER_INTERNAL_SUPERVISOR_H_
#define CLUSTER2_MASTER_INTERNAL_SUPERVISOR_H_

#include <sys/types.h>

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "master/internal/spawn.h"
#include "master/recycle_policy.h"

namespace cluster2 {

// kFailed is a slot that gave up after a crash loop; kExited a slot waiting
// to be restarted (both have no process). kDebugging is a debug session's
// process, outside the slots.
enum class WorkerState {
  kStarting,
  kReady,
  kPaused,
  kDraining,
  kExited,
  kFailed,
  kDebugging
};

absl::string_view WorkerStateName(WorkerState state);

// A copy of one worker's (or empty slot's) state, for listings.
struct WorkerSnapshot {
  unsigned id = 0;
  std::string group;  // the name of its worker group
  pid_t pid = 0;      // 0 for a slot without a process
  WorkerState state = WorkerState::kStarting;
  absl::Time started_at;
  std::optional<absl::Time> ready_at;
  unsigned restarts = 0;
  bool attached = false;
  std::string last_exit;
  std::string reason;
  std::optional<HeartbeatFigures> heartbeat;
  std::optional<absl::Time> heartbeat_at;
  // From the worker's Hello: the pid that attached (a wrapper's child, or
  // the worker gdbserver runs; 0 before the hello) and the debuggers of its
  // runtime it offers.
  pid_t session_pid = 0;
  std::vector<std::string> debug_protocols;
};

// What a worker's Hello says beyond its token.
struct SessionHello {
  pid_t pid = 0;
  std::vector<std::string> debug_protocols;
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
  // Stop accepting new connections but keep running / accept again; the
  // worker confirms with Paused/Resumed.
  virtual void SendPause() = 0;
  virtual void SendResume() = 0;
  // Open the runtime's debugger `protocol` on host:port; the worker answers
  // with DebuggerOpened (to DebugSession, not the supervisor).
  virtual void SendOpenDebugger(absl::string_view protocol,
                                absl::string_view host, uint16_t port) = 0;
};

// balance=even: one listening socket per worker id, and which of them get
// new connections (docs/adr/0003-connection-balancing.md). The supervisor
// routes connections only to slots whose worker is ready and not being
// paused (and to a fresh debug worker once it is ready), and updates the
// routing before it asks a worker to pause or drain. Called with the
// supervisor's lock held: must not block or call back.
class SlotSockets {
 public:
  virtual ~SlotSockets() = default;
  // Worker `id`'s listening socket, opened on first use (a slot added by
  // Scale, a fresh debug worker) and kept while the master runs.
  virtual absl::StatusOr<int> SocketOf(unsigned id) = 0;
  // From now on new connections go only to the sockets of `ids` (sorted);
  // none: the kernel spreads them over all.
  virtual void Route(const std::vector<unsigned>& ids) = 0;
};

// Something that happened to a worker, for the monitor page's timeline and
// the per-slot counters (cluster2_worker_lifecycle_events_total).
struct WorkerEvent {
  enum class Kind {
    kStarted,
    kReady,
    kReplacing,     // a rolling restart or reload replaces it
    kRecycled,      // a recycle policy or `cluster2ctl recycle` replaces it
    kScaledDown,    // drained because its slot was scaled away
    kExited,        // ended as asked (drained, stopped)
    kCrashed,       // ended when nobody asked it to
    kHung,          // killed: no heartbeat
    kStartTimeout,  // killed: not ready in time
    kSessionLost,   // its session ended without a drain
    kGaveUp,        // the slot was given up after a crash loop
    kDebugOpened,   // it left its slot for a debug session
  };
  absl::Time at;
  Kind kind = Kind::kStarted;
  unsigned slot = 0;
  std::string group;
  pid_t pid = 0;
  std::string detail;  // why: the policy's reason, the exit status
};

// The lowercase name of `kind` ("started", "start_timeout", ...): the
// `event` label and the timeline's kind.
absl::string_view WorkerEventName(WorkerEvent::Kind kind);

// Who learns what happens to workers as it happens. Called with the
// supervisor's lock held: must not block or call back into the supervisor.
class SupervisorObserver {
 public:
  virtual ~SupervisorObserver() = default;
  virtual void OnWorkerEvent(const WorkerEvent& event) = 0;
  // A heartbeat of the process `pid` in `slot`; `current` if it is the
  // slot's current process (not a successor still starting or a process
  // draining out of the slot).
  virtual void OnHeartbeat(unsigned slot, const std::string& group, pid_t pid,
                           bool current, const HeartbeatFigures& figures) = 0;
};

// One kind of worker: its command, environment and number of slots. A
// cluster runs one group or several (a service being replaced by another,
// slot by slot; a sidecar kind of worker).
struct WorkerGroup {
  std::string name;
  // Number of slots, >= 0 (0 only for a group scaled away).
  unsigned workers = 1;
  std::vector<std::string> command;
  std::vector<std::string> extra_env;  // "K=V", added to base_env
  std::string cwd;

  // Whether a worker started from `other` runs the same program: a change
  // of command, environment or directory needs new processes.
  bool SameProgram(const WorkerGroup& other) const {
    return command == other.command && extra_env == other.extra_env &&
           cwd == other.cwd;
  }
};

struct SupervisorOptions {
  // The worker groups, at least one, with distinct names. Slots are
  // numbered across them in order: the first group has ids 0..n-1.
  std::vector<WorkerGroup> groups;
  // The workers' environment: `environment.worker_id` and `.token` are
  // filled per spawn.
  std::vector<std::string> base_env;  // normally the master's environment
  WorkerEnvironment environment;
  // The listening sockets, passed as fd 3: slot i gets
  // listen_fds[i % size] (one shared socket, or one per slot). Empty = none.
  std::vector<int> listen_fds;
  // Instead of listen_fds: a socket per worker id and the routing of new
  // connections among them. Borrowed; null = none.
  SlotSockets* slot_sockets = nullptr;
  // Heartbeat period announced to workers. Default 5 s.
  absl::Duration heartbeat_interval = absl::Seconds(5);
  // A ready worker without a heartbeat for this long is hung: killed and
  // restarted. Zero disables the check. Default 15 s.
  absl::Duration hung_tolerance = absl::Seconds(15);
  // A worker not ready by then is killed (and restarted). Default 60 s.
  absl::Duration start_timeout = absl::Seconds(60);
  // Drain grace (at stop, replacement, scale-down) before SIGKILL. Default 60
  // s.
  absl::Duration stop_timeout = absl::Seconds(60);
  // Restart backoff: the first restart after a run of at least
  // `stable_period` is immediate; each further crash before `stable_period`
  // waits backoff_initial, doubling up to backoff_max.
  absl::Duration backoff_initial = absl::Milliseconds(100);
  absl::Duration backoff_max = absl::Seconds(30);
  absl::Duration stable_period = absl::Seconds(10);
  // Quick failures in a row after which a slot is given up. 0 = never.
  unsigned crash_loop_limit = 10;
  // Replacements in progress at once during a rolling restart. Default 1.
  unsigned surge = 1;
  // Whether workers can be paused: not when each slot has its own
  // SO_REUSEPORT socket, whose connections would wait for a paused worker.
  bool pause_supported = true;
  // Policies evaluated on each heartbeat of a ready worker.
  std::vector<std::shared_ptr<RecyclePolicy>> policies;
  // At most `recycle_budget` policy recycles per `recycle_window`; 0 = none.
  unsigned recycle_budget = 1;
  absl::Duration recycle_window = absl::Minutes(1);
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

  // Tells `observer` (borrowed; null = nobody) of every worker event and
  // heartbeat from now on. Call before Start.
  void SetObserver(SupervisorObserver* observer) ABSL_LOCKS_EXCLUDED(mu_);

  // Starts a process in every slot. Fails (starting nothing) if the command
  // cannot be executed at all; a slot whose spawn fails later is retried
  // with backoff.
  absl::Status Start() ABSL_LOCKS_EXCLUDED(mu_);

  // A worker opened its session with the token of its spawn. Sends Welcome
  // (and Drain at once if the worker is already being stopped) on `channel`,
  // which stays registered until Detach. FAILED_PRECONDITION for an unknown
  // token or a worker that already has a session.
  absl::StatusOr<AttachedWorker> Attach(absl::string_view token,
                                        WorkerChannel* channel,
                                        SessionHello hello = {})
      ABSL_LOCKS_EXCLUDED(mu_);
  // The worker of `token` serves. A successor that gets ready takes its
  // slot and the worker it replaces drains. Unknown tokens are ignored.
  void Ready(absl::string_view token) ABSL_LOCKS_EXCLUDED(mu_);
  // Records a heartbeat and evaluates the recycle policies on it.
  void Heartbeat(absl::string_view token, const HeartbeatFigures& figures)
      ABSL_LOCKS_EXCLUDED(mu_);
  // The worker of `token` confirmed a Pause (paused = true) or a Resume.
  void Acknowledge(absl::string_view token, bool paused)
      ABSL_LOCKS_EXCLUDED(mu_);
  // The session of `token` ended; its channel is no longer used. A worker
  // not draining is gone as far as the cluster is concerned: routed away,
  // SIGTERM, killed after stop_timeout, and its slot restarted.
  void Detach(absl::string_view token) ABSL_LOCKS_EXCLUDED(mu_);

  // A child process ended (from waitpid). Unknown pids are ignored.
  void ProcessExited(pid_t pid, int wait_status) ABSL_LOCKS_EXCLUDED(mu_);

  // Does the time-driven work that is due: respawns, replacements, start
  // deadlines, hung workers, kills after a drain grace. Returns when it next
  // has something to do.
  absl::Time Tick() ABSL_LOCKS_EXCLUDED(mu_);

  // Rolling restart of every slot (pid 0), of the slots of `group` (pid 0,
  // a group named) or of the worker `pid`: each worker is replaced by a
  // successor that is ready before it drains. `surge` (0 = the configured
  // one) replacements run at once. Slots given up after a crash loop start
  // again. Returns the pids to be replaced. NOT_FOUND for an unknown pid or
  // group; FAILED_PRECONDITION while stopping or while a rolling restart
  // runs.
  absl::StatusOr<std::vector<pid_t>> Restart(pid_t pid, unsigned surge,
                                             absl::string_view group = "")
      ABSL_LOCKS_EXCLUDED(mu_);
  // Replaces the worker `pid` now, recording `reason`. NOT_FOUND;
  // FAILED_PRECONDITION if it is not ready or already being replaced.
  absl::Status Recycle(pid_t pid, absl::string_view reason)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Asks the worker `pid` to stop accepting (the others keep serving), or to
  // accept again; the state changes when the worker confirms (Acknowledge).
  // NOT_FOUND; FAILED_PRECONDITION if it is not ready (Pause) / paused
  // (Resume), has no session, or pausing is not supported.
  absl::Status Pause(pid_t pid) ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status Resume(pid_t pid) ABSL_LOCKS_EXCLUDED(mu_);
  // The worker of `token` answered a Pause with WHAT_REFUSED: it gets
  // connections again at once, and AwaitPause reports `reason`.
  void RefusePause(absl::string_view token, absl::string_view reason)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Waits for the outcome of Pause(pid): OK once paused; FAILED_PRECONDITION
  // with the worker's reason if it refused; NOT_FOUND if it is gone;
  // DEADLINE_EXCEEDED at `deadline`.
  absl::Status AwaitPause(pid_t pid, absl::Time deadline)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Waits until the worker `pid` is in `state` (true) or `deadline` passes.
  bool AwaitState(pid_t pid, WorkerState state, absl::Time deadline)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Debug sessions. AwaitIdle waits until the paused worker `pid` has sent
  // a heartbeat since its pause with no request in flight (true), or until
  // `deadline` (false; also for an unknown pid).
  bool AwaitIdle(pid_t pid, absl::Time deadline) ABSL_LOCKS_EXCLUDED(mu_);
  // The paused worker `pid` leaves its slot for a debug session (state
  // kDebugging, `reason` shown) and a replacement starts in the slot at
  // once. NOT_FOUND; FAILED_PRECONDITION while stopping, or unless it is
  // paused and the current worker of a slot that has no successor; the
  // launcher's error if the replacement cannot start (then nothing
  // changed).
  absl::Status BeginDebug(pid_t pid, absl::string_view reason)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Starts a worker outside the slots, with `prefix` before the worker
  // command (a debugger that runs it), in state kDebugging: not counted,
  // never restarted; it serves once it says ready. Its id is the number of
  // slots. Returns its pid. FAILED_PRECONDITION while stopping.
  absl::StatusOr<pid_t> StartDebugWorker(const std::vector<std::string>& prefix,
                                         absl::string_view reason)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Asks the debugging worker `pid` to open its runtime's debugger.
  // NOT_FOUND; FAILED_PRECONDITION if it is not debugging or has no session.
  absl::Status OpenDebugger(pid_t pid, absl::string_view protocol,
                            absl::string_view host, uint16_t port)
      ABSL_LOCKS_EXCLUDED(mu_);
  // The hung check of worker `pid` counts from `from` at the earliest: a
  // worker a debugger stops for a moment (a stack dump) sends no
  // heartbeats. Unknown pids are ignored.
  void ExcuseHeartbeats(pid_t pid, absl::Time from) ABSL_LOCKS_EXCLUDED(mu_);
  // Kills the debugging process `pid` now (SIGKILL: it may be stopped by a
  // debugger). NOT_FOUND; FAILED_PRECONDITION if it is not debugging.
  absl::Status EndDebug(pid_t pid) ABSL_LOCKS_EXCLUDED(mu_);

  // Sets the number of slots of `group` (empty: the only group): new slots
  // start at once, the group's highest slots drain (with slot_sockets,
  // after they stop getting connections). INVALID_ARGUMENT for 0 or a
  // cluster of more than 1024; NOT_FOUND for an unknown group;
  // FAILED_PRECONDITION while stopping, without a group name in a cluster
  // of several, or below the number of listen_fds when there is one per
  // slot (balance=reuseport). Returns the group's previous number.
  absl::StatusOr<unsigned> Scale(unsigned workers, absl::string_view group = "")
      ABSL_LOCKS_EXCLUDED(mu_);

  // What Reconfigure did, in words, for the log and the caller.
  struct Reconfigured {
    std::vector<std::string> replaced_groups;  // by a rolling restart
    std::vector<std::string> changes;          // one line each
  };
  // Applies a reloaded configuration: timings, policies and surge at once;
  // a group whose command, environment or directory changed has its
  // workers replaced by a rolling restart (a successor ready before each
  // old worker drains; the restart stops if a successor fails); a group
  // whose size changed is scaled; a new group starts; a group no longer
  // named drains away. `next` must keep listen_fds, slot_sockets, base_env
  // and environment. With `restart_all`, every other group is restarted
  // too (SIGHUP). Changes nothing and fails with FAILED_PRECONDITION while
  // stopping or while a rolling restart runs, INVALID_ARGUMENT for a
  // configuration without groups or past 1024 workers.
  absl::StatusOr<Reconfigured> Reconfigure(SupervisorOptions next,
                                           bool restart_all = false)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Stops the cluster: no more restarts; every worker drains within
  // `grace` (or is killed at once if `fast`).
  void Stop(bool fast, absl::Duration grace, absl::string_view reason)
      ABSL_LOCKS_EXCLUDED(mu_);
  // True once Stop was called and every process has exited.
  bool Stopped() const ABSL_LOCKS_EXCLUDED(mu_);
  bool Stopping() const ABSL_LOCKS_EXCLUDED(mu_);

  // True once every slot has had a ready worker at the same time since Start.
  bool AllReady() const ABSL_LOCKS_EXCLUDED(mu_);

  // Every slot's current process (or the empty slot), by slot id, followed
  // by successors still starting and processes draining out of their slot.
  std::vector<WorkerSnapshot> Workers() const ABSL_LOCKS_EXCLUDED(mu_);
  // NOT_FOUND if no process has `pid`.
  absl::StatusOr<WorkerSnapshot> WorkerByPid(pid_t pid) const
      ABSL_LOCKS_EXCLUDED(mu_);
  // The number of slots of the cluster, or of `group` (0 if unknown).
  unsigned desired_workers(absl::string_view group = "") const
      ABSL_LOCKS_EXCLUDED(mu_);
  // The names of the worker groups, in order (without groups scaled away
  // by a reload).
  std::vector<std::string> group_names() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  // Process::slot of a fresh debug worker.
  static constexpr unsigned kNoSlot = ~0u;
  // "worker <slot> pid <pid>", as the log names a worker.
  static std::string WorkerName(unsigned slot, pid_t pid);

  struct Process {
    pid_t pid = 0;
    unsigned slot = 0;   // kNoSlot outside the slots
    unsigned id = 0;     // CLUSTER2_WORKER_ID: the slot, or past the slots
    unsigned group = 0;  // index in groups_ of the command it runs
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
    // Its session ended while it served (Detach): it is drained as gone.
    bool session_lost = false;
    // Its end was told to the observer already (hung, start timeout, lost
    // session): its exit is not told again.
    bool end_told = false;
    std::optional<absl::Time> paused_at;
    // Pause sent, not confirmed: no new connections are routed to it.
    std::optional<absl::Time> pause_requested_at;
    // Why the worker refused its last Pause (empty: it did not).
    std::string pause_refused;
    std::optional<absl::Time> excused_until;  // see ExcuseHeartbeats
    SessionHello hello;
  };
  struct Slot {
    unsigned id = 0;
    unsigned group = 0;   // index in groups_
    pid_t pid = 0;        // current process; 0 = none
    pid_t successor = 0;  // a replacement starting; 0 = none
    std::string replace_reason;
    unsigned restarts = 0;
    unsigned quick_failures = 0;
    std::optional<absl::Time> respawn_at;
    std::string last_exit;
    bool ever_started = false;
    bool failed = false;   // gave up after a crash loop
    bool retired = false;  // scaled away: never restarted
  };

  absl::StatusOr<pid_t> SpawnLocked(Slot& slot)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Launches `prefix` + the command of `group` as worker `id` in `slot`.
  absl::StatusOr<pid_t> LaunchLocked(unsigned id, unsigned slot, unsigned group,
                                     const std::vector<std::string>& prefix)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The index of `name` in groups_ (empty: the only live group), or an
  // error as Scale describes.
  absl::StatusOr<unsigned> GroupIndexLocked(absl::string_view name) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Scale of one group, after the checks; appends the pids to drain.
  void ScaleGroupLocked(unsigned group, unsigned workers,
                        std::vector<pid_t>* to_drain)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  unsigned GroupSlotsLocked(unsigned group) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Drains `to_drain` after routing connections away from retired slots.
  void DrainRetiredLocked(const std::vector<pid_t>& to_drain)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Queues the slots of `group` (all groups if nullopt) for a rolling
  // restart; returns the pids to be replaced.
  std::vector<pid_t> QueueRestartLocked(std::optional<unsigned> group,
                                        absl::string_view reason)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool RestartRunningLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ScheduleRespawnLocked(Slot& slot, absl::Duration ran)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void DrainLocked(Process& process, absl::Duration grace,
                   absl::string_view reason) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Kills `process` now; `kind` says why (kHung, kStartTimeout).
  void KillLocked(Process& process, WorkerEvent::Kind kind,
                  absl::string_view reason) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Starts a successor for `slot`; `kind` is kReplacing or kRecycled.
  absl::Status StartReplacementLocked(
      Slot& slot, absl::string_view reason,
      WorkerEvent::Kind kind = WorkerEvent::Kind::kReplacing)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Tells the observer, if any, of `kind` for `process`.
  void NotifyLocked(WorkerEvent::Kind kind, const Process& process,
                    std::string detail) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void EvaluatePoliciesLocked(Process& process)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Process* FindByTokenLocked(absl::string_view token)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Slot* SlotOfPidLocked(pid_t pid) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  WorkerSnapshot SnapshotLocked(const Process& process) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void UpdateAllReadyLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  unsigned ActiveSlotsLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Tells slot_sockets which workers get new connections, if that changed.
  void RouteLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  ProcessLauncher* const launcher_;
  Clock* const clock_;
  SupervisorObserver* observer_ ABSL_GUARDED_BY(mu_) = nullptr;

  mutable absl::Mutex mu_;
  // Changed only by Reconfigure. Its `groups` are the configured ones;
  // groups_ below are the live ones.
  SupervisorOptions options_ ABSL_GUARDED_BY(mu_);
  // Every group the cluster has run, by index; one a reload dropped stays
  // with 0 workers (its `removed` set), as its slots keep their index.
  struct LiveGroup {
    WorkerGroup spec;
    bool removed = false;
  };
  std::vector<LiveGroup> groups_ ABSL_GUARDED_BY(mu_);
  std::vector<Slot> slots_ ABSL_GUARDED_BY(mu_);
  std::map<pid_t, Process> processes_ ABSL_GUARDED_BY(mu_);
  // Slots waiting for their turn in a rolling restart, with the reason.
  std::deque<std::pair<unsigned, std::string>> restart_queue_
      ABSL_GUARDED_BY(mu_);
  unsigned restart_surge_ ABSL_GUARDED_BY(mu_) = 1;
  // When policy recycles happened, for the budget.
  std::deque<absl::Time> recycles_ ABSL_GUARDED_BY(mu_);
  bool budget_warned_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool all_ready_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t spawn_counter_ ABSL_GUARDED_BY(mu_) = 0;
  // What RouteLocked last told slot_sockets.
  std::optional<std::vector<unsigned>> routed_ ABSL_GUARDED_BY(mu_);
};

}  // namespace cluster2

#endif  // CLUSTER2_MASTER_INTERNAL_SUPERVISOR_H_
