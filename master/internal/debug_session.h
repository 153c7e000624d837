// DebugSession: the cluster's one debug session (`cluster2ctl debug`) and
// stack dumps of workers (`cluster2ctl stacks`).
//
// A live session takes a worker out of rotation (Supervisor::Pause, then a
// wait for its in-flight requests), moves it out of its slot so a
// replacement keeps N workers serving (Supervisor::BeginDebug) and gives it
// a debugger: gdbserver attached to it, or the runtime's own debugger the
// worker offered in its Hello (Supervisor::OpenDebugger; the worker answers
// through DebuggerOpened). A fresh session starts a worker outside the slots
// under `fresh_prefix` (gdbserver HOST:PORT), which waits for the debugger
// before it runs and serves once it says ready. A session ends on End(), or
// when its process or gdbserver exits (ProcessExited): what is left of them
// is killed, which frees the port.
//
// Every process (gdbserver, gdb) is started through the injected
// ProcessLauncher, so it runs on the launcher's spawner thread and dies with
// the master; the probes of the host (is a port listening, which program
// does a pid run) are injected too, so all of it is unit-tested without
// processes.
//
// Thread-safe. Open, OpenFresh and Stacks block their caller (an RPC
// thread) for at most their timeouts, without holding the mutex while they
// wait, so Current() and ProcessExited() never wait on them. Lock order:
// this class's mutex, then the supervisor's.
#ifndef CLUSTER2_MASTER_INTERNAL_DEBUG_SESSION_H_
#define CLUSTER2_MASTER_INTERNAL_DEBUG_SESSION_H_

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "master/internal/spawn.h"
#include "master/internal/supervisor.h"

namespace cluster2 {

// One debug session: where its debugger listens and how to connect.
struct DebugInfo {
  // The debugged process: the worker (for a fresh session, the worker
  // gdbserver runs; 0 until gdbserver has started it).
  pid_t pid = 0;
  // The supervisor's process of the session: `pid`, or gdbserver for a
  // fresh session.
  pid_t supervised_pid = 0;
  pid_t gdbserver_pid = 0;  // 0 for a runtime's own debugger
  std::string protocol;     // "gdb", "debugpy", ...
  std::string address;      // "127.0.0.1:8082"
  std::string url;          // "tcp://127.0.0.1:8082"
  std::string executable;   // the debugged program, for gdb's symbols
  bool fresh = false;
  absl::Time started_at;

  // How to connect, for people (one or more lines).
  std::string Instructions() const;
  // "pid N on ADDRESS": how refusals and logs name the session.
  std::string Name() const;
};

// One thread of a stack dump.
struct ThreadStack {
  unsigned number = 0;  // gdb's
  pid_t lwp = 0;
  std::string name;
  std::vector<std::string>
      frames;  // "#0  0x... in poll () ...", innermost first
};

struct StackDump {
  std::vector<ThreadStack> threads;
  std::string text;         // gdb's output
  absl::Duration gdb_time;  // an upper bound of the worker's pause
};

// Parses `gdb -batch -ex 'thread apply all bt'` output.
std::vector<ThreadStack> ParseGdbThreads(const std::string& text);

struct DebugOptions {
  // Where debuggers listen (debug.host, debug.webPort).
  std::string host = "127.0.0.1";
  uint16_t port = 8082;
  // The fresh worker's prefix; "{address}" becomes host:port.
  std::vector<std::string> fresh_prefix = {"gdbserver", "{address}"};
  std::string gdbserver = "gdbserver";
  std::string gdb = "gdb";
  // The worker's program (for a fresh session's instructions).
  std::string worker_executable;
  // The environment of gdbserver and gdb ("K=V").
  std::vector<std::string> env;
  // How long a worker may take to confirm its pause. Default 5 s.
  absl::Duration pause_timeout = absl::Seconds(5);
  // How long to wait for a paused worker's in-flight requests (seen in a
  // heartbeat after the pause) before attaching anyway. Default 2 s.
  absl::Duration settle_timeout = absl::Seconds(2);
  // How long a debugger may take to listen. Default 10 s.
  absl::Duration open_timeout = absl::Seconds(10);
  // How long gdb may take to dump the stacks. Default 30 s.
  absl::Duration stacks_timeout = absl::Seconds(30);
};

// What DebugSession asks of the host; RealDebugProbes() reads the real one.
struct DebugProbes {
  // True if something listens on host:port.
  std::function<bool(const std::string& host, uint16_t port)> listening;
  // The program `pid` runs (/proc/<pid>/exe), "" if unknown.
  std::function<std::string(pid_t pid)> executable;
  // A child process of `pid` (gdbserver's inferior), 0 if none.
  std::function<pid_t(pid_t pid)> child;
};
DebugProbes RealDebugProbes();

class DebugSession {
 public:
  // Borrows `supervisor`, `launcher` and `clock`, which must outlive it.
  DebugSession(DebugOptions options, DebugProbes probes, Supervisor* supervisor,
               ProcessLauncher* launcher, Clock* clock);
  DebugSession(const DebugSession&) = delete;
  DebugSession& operator=(const DebugSession&) = delete;

  // Opens a live session on worker `pid` with `protocol` ("gdb" or one the
  // worker offered; "" = its first offered, else "gdb"). NOT_FOUND for an
  // unknown pid; FAILED_PRECONDITION naming the open session if one is
  // open, or if the worker cannot be paused; INVALID_ARGUMENT for a protocol
  // it does not offer or the debug port is taken; DEADLINE_EXCEEDED if it
  // does not confirm its pause; INTERNAL if the debugger does not start.
  // (Not UNAVAILABLE: clients read that as "no master".)
  absl::StatusOr<DebugInfo> Open(pid_t pid, const std::string& protocol)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Opens a fresh session: a new worker waiting under the fresh prefix.
  // FAILED_PRECONDITION (a session is open, the cluster stops, the port is
  // taken); INTERNAL if the debugger does not start.
  absl::StatusOr<DebugInfo> OpenFresh() ABSL_LOCKS_EXCLUDED(mu_);
  // Ends the open session, killing its process and gdbserver; returns it.
  // NOT_FOUND if none is open; FAILED_PRECONDITION while one is opening.
  absl::StatusOr<DebugInfo> End() ABSL_LOCKS_EXCLUDED(mu_);
  // The open session, if any.
  std::optional<DebugInfo> Current() const ABSL_LOCKS_EXCLUDED(mu_);

  // A child process ended (from waitpid): ends the session if it was its
  // process or gdbserver.
  void ProcessExited(pid_t pid) ABSL_LOCKS_EXCLUDED(mu_);
  // The worker `pid` (the supervisor's pid) answered OpenDebugger.
  void DebuggerOpened(pid_t pid, const std::string& url,
                      const std::string& error) ABSL_LOCKS_EXCLUDED(mu_);

  // Every thread's stack of worker `pid`, from gdb attached for a moment;
  // also written to the log. NOT_FOUND for an unknown pid;
  // FAILED_PRECONDITION for the debug session's process (its debugger has
  // it); INTERNAL if gdb cannot run; DEADLINE_EXCEEDED after
  // stacks_timeout.
  absl::StatusOr<StackDump> Stacks(pid_t pid) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  enum class State { kClosed, kOpening, kOpen };

  // Moves kClosed -> kOpening for `what`, or says why not.
  absl::Status ReserveLocked(const std::string& what)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<DebugInfo> OpenLive(pid_t pid, const std::string& protocol)
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<DebugInfo> StartFresh() ABSL_LOCKS_EXCLUDED(mu_);
  // kOpening -> kOpen with `info`, or -> kClosed on an error.
  absl::StatusOr<DebugInfo> Finish(absl::StatusOr<DebugInfo> info)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Waits until the port is free; FAILED_PRECONDITION if it stays taken.
  absl::Status AwaitPortFree();
  // Waits until the debugger listens; INTERNAL if `process` exits first
  // or open_timeout passes.
  absl::Status AwaitListening(pid_t process) ABSL_LOCKS_EXCLUDED(mu_);
  // Kills what is left of `info`'s processes.
  void KillLocked(const DebugInfo& info) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::string address() const;

  const DebugOptions options_;
  const DebugProbes probes_;
  Supervisor* const supervisor_;
  ProcessLauncher* const launcher_;
  Clock* const clock_;

  mutable absl::Mutex mu_;
  State state_ ABSL_GUARDED_BY(mu_) = State::kClosed;
  std::string opening_ ABSL_GUARDED_BY(mu_);  // what is opening, for refusals
  std::optional<DebugInfo> session_ ABSL_GUARDED_BY(mu_);
  // While opening: pids that exited, and the worker's DebuggerOpened.
  std::set<pid_t> exited_ ABSL_GUARDED_BY(mu_);
  pid_t awaiting_answer_ ABSL_GUARDED_BY(mu_) = 0;
  std::optional<std::pair<std::string, std::string>> answer_
      ABSL_GUARDED_BY(mu_);  // url, error
};

}  // namespace cluster2

#endif  // CLUSTER2_MASTER_INTERNAL_DEBUG_SESSION_H_
