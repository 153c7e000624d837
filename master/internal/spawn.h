// Starting worker processes: the environment they get and the launcher that
// fork+execs them.
//
// A worker receives the shared listening socket as fd 3 under the systemd
// socket-activation convention (LISTEN_FDS=1, LISTEN_PID=<its pid>,
// LISTEN_FDNAMES=app), so an sd_listen_fds() program works unchanged, and the
// CLUSTER2_* variables that locate the master and name its slot.
#ifndef CLUSTER2_MASTER_INTERNAL_SPAWN_H_
#define CLUSTER2_MASTER_INTERNAL_SPAWN_H_

#include <sys/resource.h>
#include <sys/types.h>

#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "master/internal/output_collector.h"

namespace cluster2 {

// What a worker needs to know, exported as CLUSTER2_* variables.
struct WorkerEnvironment {
  std::string cluster_name;    // CLUSTER2_NAME
  std::string master_address;  // CLUSTER2_MASTER, "unix:<run_dir>/master.sock"
  std::string cache_address;   // CLUSTER2_CACHE, empty if the cache is off
  unsigned worker_id = 0;      // CLUSTER2_WORKER_ID, the slot
  std::string token;           // CLUSTER2_WORKER_TOKEN, identifies the spawn
  unsigned heartbeat_interval_ms = 0;  // CLUSTER2_HEARTBEAT_INTERVAL_MS
};

// Whether the master sets the variable `name` for each worker itself
// (CLUSTER2_MASTER, CLUSTER2_WORKER_ID, ..., LISTEN_FDS, LISTEN_PID,
// LISTEN_FDNAMES): an inherited or configured value would mislead the
// worker. Other CLUSTER2_* names (CLUSTER2_PROTO_DIR) pass through.
bool IsWorkerVariable(absl::string_view name);

// The environment of a worker: `base` ("K=V" entries, normally the master's
// own) without the variables the master sets (IsWorkerVariable), plus `extra`
// ("K=V", from the config), plus the CLUSTER2_* variables, plus LISTEN_FDS=1
// and LISTEN_FDNAMES=app. LISTEN_PID is added by the launcher in the child,
// where the pid is known.
std::vector<std::string> BuildWorkerEnvironment(
    const std::vector<std::string>& base, const std::vector<std::string>& extra,
    const WorkerEnvironment& worker);

// The absolute path `name` executes: as given if it holds a '/' (relative to
// `cwd` if set), else the first executable match in $PATH. NOT_FOUND or
// PERMISSION_DENIED naming the command.
absl::StatusOr<std::string> ResolveExecutable(const std::string& name,
                                              const std::string& cwd);

// The current process's environment as "K=V" entries.
std::vector<std::string> CurrentEnvironment();

// What to start.
struct SpawnSpec {
  std::vector<std::string> argv;  // argv[0] is resolved by ResolveExecutable
  std::vector<std::string> env;   // complete environment, "K=V"
  std::string cwd;                // empty = inherit
  int listen_fd = -1;             // becomes fd 3; -1 = none
  // With an OutputCollector, stdout and stderr go to it under this name
  // ("worker 2"); empty = inherit the master's.
  std::string log_component;
  // If set (>= 0), stdout and stderr go to this descriptor instead (the
  // caller keeps and closes it): for a short command whose output the
  // master reads, like gdb's stack dump. Not with `listen_fd`.
  int output_fd = -1;
};

// Starts and signals processes. Implementations are thread-safe.
class ProcessLauncher {
 public:
  virtual ~ProcessLauncher() = default;
  // Starts a process; returns its pid. The child dies with its parent
  // (PR_SET_PDEATHSIG) and runs in its own process group, so a terminal's
  // Ctrl-C reaches only the master, which drains the workers.
  virtual absl::StatusOr<pid_t> Launch(const SpawnSpec& spec) = 0;
  // Sends `signal` to `pid`; a process that is already gone is not an error.
  virtual void Signal(pid_t pid, int signal) = 0;
};

// fork + exec. Everything the child needs is prepared before fork(), and
// between fork() and exec() only async-signal-safe calls are made, so it is
// safe in a process running gRPC threads. exec failures are reported by the
// child on stderr and as exit status 127.
//
// Every fork happens on one long-lived thread the launcher owns ("spawner"):
// the parent-death signal (PR_SET_PDEATHSIG) fires when the *thread* that
// forked exits, so a child forked on a short-lived thread (an HTTP
// connection's, a gRPC handler's) would be killed with it. Launch() hands
// the request to that thread and waits for the pid; the spawner takes no
// other lock, so Launch() may be called under any of the caller's locks.
class PosixProcessLauncher final : public ProcessLauncher {
 public:
  // `output`, if not null, receives the children's output (borrowed).
  // `child_descriptor_limit`, if not zero, is the soft RLIMIT_NOFILE the
  // children start with (the master raises its own; see RunMaster).
  explicit PosixProcessLauncher(OutputCollector* output = nullptr,
                                rlim_t child_descriptor_limit = 0);
  // Joins the spawner thread. Children already started are unaffected.
  ~PosixProcessLauncher() override;

  absl::StatusOr<pid_t> Launch(const SpawnSpec& spec) override;
  void Signal(pid_t pid, int signal) override;

 private:
  struct Request;
  void SpawnerLoop();
  absl::StatusOr<pid_t> ForkExec(const SpawnSpec& spec);

  OutputCollector* const output_;
  const rlim_t child_descriptor_limit_;
  absl::Mutex mu_;
  Request* pending_ ABSL_GUARDED_BY(mu_) = nullptr;  // at most one at a time
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread spawner_;
};

}  // namespace cluster2

#endif  // CLUSTER2_MASTER_INTERNAL_SPAWN_H_
