#include "master/internal/debug_session.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <fstream>
#include <regex>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "common/log.h"
#include "common/status.h"

namespace cluster2 {
namespace {

// How often a wait with no event to wake it (a port that starts listening)
// looks again.
constexpr absl::Duration kProbeInterval = absl::Milliseconds(20);

bool PortListening(const std::string& host, uint16_t port) {
  // A bind with SO_REUSEADDR fails only if a socket listens on the port (a
  // connection in TIME_WAIT does not count), and unlike a connect it does
  // not take gdbserver's one connection.
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in address = {};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  if (inet_pton(AF_INET, host.c_str(), &address.sin_addr) != 1) {
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  }
  bool taken =
      bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 &&
      errno == EADDRINUSE;
  close(fd);
  return taken;
}

std::string ExecutableOf(pid_t pid) {
  char path[4096];
  std::string link = absl::StrCat("/proc/", pid, "/exe");
  ssize_t length = readlink(link.c_str(), path, sizeof(path) - 1);
  return length > 0 ? std::string(path, static_cast<size_t>(length)) : "";
}

pid_t ChildOf(pid_t pid) {
  std::ifstream children(
      absl::StrCat("/proc/", pid, "/task/", pid, "/children"));
  pid_t child = 0;
  children >> child;
  return child;
}

bool Contains(const std::vector<std::string>& list, const std::string& item) {
  return std::find(list.begin(), list.end(), item) != list.end();
}

}  // namespace

DebugProbes RealDebugProbes() { return {PortListening, ExecutableOf, ChildOf}; }

std::string DebugInfo::Name() const {
  return absl::StrCat("pid ", pid != 0 ? pid : supervised_pid, " on ", address);
}

std::string DebugInfo::Instructions() const {
  if (protocol == "gdb") {
    std::string program =
        executable.empty() ? absl::StrCat("/proc/", pid, "/exe") : executable;
    std::string text =
        absl::StrCat("gdb -ex 'target remote ", address, "' ", program, "\n");
    if (fresh) {
      absl::StrAppend(&text,
                      "The new worker waits for the debugger: `continue` in "
                      "gdb lets it start; it serves once ready.\n");
    } else {
      absl::StrAppend(&text,
                      "The worker is stopped while gdb is attached and out of "
                      "rotation: the others serve.\n");
    }
    absl::StrAppend(&text,
                    "`detach` in gdb or `cluster2ctl debug --end` ends the "
                    "session (the process is killed).\n");
    return text;
  }
  return absl::StrCat("Attach a ", protocol, " client to ", url,
                      protocol == "debugpy"
                          ? " (VS Code: \"Python: Remote Attach\", host and "
                            "port above)"
                          : "",
                      ".\n`cluster2ctl debug --end` ends the session (the "
                      "process is killed).\n");
}

std::vector<ThreadStack> ParseGdbThreads(const std::string& text) {
  static const std::regex kThreadLine(
      R"re(^Thread (\d+) \(.*\(LWP (\d+)\)(?: "([^"]*)")?\):)re");
  std::vector<ThreadStack> threads;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    std::string current(line);
    std::smatch match;
    if (std::regex_search(current, match, kThreadLine)) {
      ThreadStack thread;
      (void)absl::SimpleAtoi(match[1].str(), &thread.number);
      (void)absl::SimpleAtoi(match[2].str(), &thread.lwp);
      thread.name = match[3].str();
      threads.push_back(std::move(thread));
    } else if (!threads.empty() && !current.empty() && current[0] == '#') {
      threads.back().frames.push_back(std::move(current));
    }
  }
  return threads;
}

DebugSession::DebugSession(DebugOptions options, DebugProbes probes,
                           Supervisor* supervisor, ProcessLauncher* launcher,
                           Clock* clock)
    : options_(std::move(options)),
      probes_(std::move(probes)),
      supervisor_(supervisor),
      launcher_(launcher),
      clock_(clock) {}

std::string DebugSession::address() const {
  return absl::StrCat(options_.host, ":", options_.port);
}

absl::Status DebugSession::ReserveLocked(const std::string& what) {
  if (state_ == State::kOpen) {
    return absl::FailedPreconditionError(
        absl::StrCat("a debug session is open: ", session_->Name(),
                     " (end it with cluster2ctl debug --end)"));
  }
  if (state_ == State::kOpening) {
    return absl::FailedPreconditionError(
        absl::StrCat("a debug session is opening: ", opening_));
  }
  state_ = State::kOpening;
  opening_ = what;
  exited_.clear();
  awaiting_answer_ = 0;
  answer_.reset();
  return absl::OkStatus();
}

absl::StatusOr<DebugInfo> DebugSession::Open(pid_t pid,
                                             const std::string& protocol) {
  {
    absl::MutexLock lock(&mu_);
    CLUSTER2_RETURN_IF_ERROR(
        ReserveLocked(absl::StrCat("pid ", pid, " on ", address())));
  }
  return Finish(OpenLive(pid, protocol));
}

absl::StatusOr<DebugInfo> DebugSession::OpenFresh() {
  {
    absl::MutexLock lock(&mu_);
    CLUSTER2_RETURN_IF_ERROR(
        ReserveLocked(absl::StrCat("a fresh worker on ", address())));
  }
  return Finish(StartFresh());
}

absl::StatusOr<DebugInfo> DebugSession::Finish(absl::StatusOr<DebugInfo> info) {
  absl::MutexLock lock(&mu_);
  if (!info.ok()) {
    state_ = State::kClosed;
    return info.status();
  }
  // The process or gdbserver may have exited while the session opened.
  for (pid_t pid : {info->supervised_pid, info->gdbserver_pid, info->pid}) {
    if (pid != 0 && exited_.count(pid) > 0) {
      KillLocked(*info);
      state_ = State::kClosed;
      return absl::InternalError(
          absl::StrCat("pid ", pid, " exited while the debug session opened"));
    }
  }
  state_ = State::kOpen;
  session_ = *info;
  LogInfo(absl::StrCat("debug session open: ", info->Name(), " (",
                       info->protocol, info->fresh ? ", fresh worker" : "",
                       ")"));
  return info;
}

absl::Status DebugSession::AwaitPortFree() {
  // A session that just ended may still hold the port for a moment.
  absl::Time deadline = absl::Now() + absl::Seconds(2);
  while (probes_.listening(options_.host, options_.port)) {
    if (absl::Now() >= deadline) {
      return absl::FailedPreconditionError(absl::StrCat(
          "the debug port ", address(), " is in use (debug.webPort)"));
    }
    absl::SleepFor(kProbeInterval);
  }
  return absl::OkStatus();
}

absl::Status DebugSession::AwaitListening(pid_t process) {
  absl::Time deadline = absl::Now() + options_.open_timeout;
  while (!probes_.listening(options_.host, options_.port)) {
    absl::MutexLock lock(&mu_);
    // Woken early by the process's exit; else looks at the port again.
    auto exited = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return exited_.count(process) > 0;
    };
    if (mu_.AwaitWithTimeout(absl::Condition(&exited), kProbeInterval)) {
      return absl::InternalError(absl::StrCat(
          "the debugger (pid ", process, ") exited before listening on ",
          address(), "; the master's log has its output"));
    }
    if (absl::Now() >= deadline) {
      return absl::InternalError(
          absl::StrCat("the debugger does not listen on ", address(), " after ",
                       absl::FormatDuration(options_.open_timeout)));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<DebugInfo> DebugSession::OpenLive(pid_t pid,
                                                 const std::string& requested) {
  CLUSTER2_ASSIGN_OR_RETURN(WorkerSnapshot worker,
                            supervisor_->WorkerByPid(pid));
  std::string protocol = requested;
  if (protocol.empty()) {
    protocol =
        worker.debug_protocols.empty() ? "gdb" : worker.debug_protocols.front();
  }
  if (protocol != "gdb" && !Contains(worker.debug_protocols, protocol)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "worker pid ", pid, " does not offer ", protocol,
        " (it offers: ", absl::StrJoin(worker.debug_protocols, ", "),
        worker.debug_protocols.empty() ? "gdb only" : ", gdb", ")"));
  }
  CLUSTER2_RETURN_IF_ERROR(AwaitPortFree());

  // Out of rotation first: the others take its new connections.
  CLUSTER2_RETURN_IF_ERROR(supervisor_->Pause(pid));
  if (absl::Status paused =
          supervisor_->AwaitPause(pid, absl::Now() + options_.pause_timeout);
      !paused.ok()) {
    if (paused.code() != absl::StatusCode::kDeadlineExceeded) return paused;
    return absl::DeadlineExceededError(
        absl::StrCat("worker pid ", pid, " did not confirm its pause within ",
                     absl::FormatDuration(options_.pause_timeout)));
  }
  if (!supervisor_->AwaitIdle(pid, absl::Now() + options_.settle_timeout)) {
    LogWarning(absl::StrCat("worker pid ", pid,
                            " has not reported its requests finished within ",
                            absl::FormatDuration(options_.settle_timeout),
                            ": debugging it anyway"));
  }
  if (absl::Status left = supervisor_->BeginDebug(
          pid, absl::StrCat("debug session (", protocol, ") on ", address()));
      !left.ok()) {
    (void)supervisor_->Resume(pid);
    return left;
  }

  DebugInfo info;
  info.pid = pid;
  info.supervised_pid = pid;
  info.protocol = protocol;
  info.address = address();
  info.url = absl::StrCat("tcp://", address());
  info.executable = probes_.executable(pid);
  info.started_at = clock_->Now();
  absl::Status opened;
  if (protocol == "gdb") {
    SpawnSpec spec;
    spec.argv = {options_.gdbserver, "--attach", address(), absl::StrCat(pid)};
    spec.env = options_.env;
    spec.log_component = "gdbserver";
    absl::StatusOr<pid_t> gdbserver = launcher_->Launch(spec);
    if (gdbserver.ok()) {
      info.gdbserver_pid = *gdbserver;
      opened = AwaitListening(*gdbserver);
    } else {
      opened = absl::InternalError(absl::StrCat("cannot start gdbserver: ",
                                                gdbserver.status().message()));
    }
  } else {
    {
      absl::MutexLock lock(&mu_);
      awaiting_answer_ = pid;
    }
    opened =
        supervisor_->OpenDebugger(pid, protocol, options_.host, options_.port);
    if (opened.ok()) {
      absl::MutexLock lock(&mu_);
      auto answered = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return answer_.has_value() || exited_.count(pid) > 0;
      };
      if (!mu_.AwaitWithTimeout(absl::Condition(&answered),
                                options_.open_timeout)) {
        opened = absl::InternalError(absl::StrCat(
            "worker pid ", pid, " did not open ", protocol, " within ",
            absl::FormatDuration(options_.open_timeout)));
      } else if (!answer_) {
        opened =
            absl::InternalError(absl::StrCat("worker pid ", pid, " exited"));
      } else if (!answer_->second.empty()) {
        opened = absl::InternalError(absl::StrCat("worker pid ", pid,
                                                  " could not open ", protocol,
                                                  ": ", answer_->second));
      } else {
        info.url = answer_->first;
      }
      awaiting_answer_ = 0;
    }
  }
  if (!opened.ok()) {
    absl::MutexLock lock(&mu_);
    KillLocked(info);
    return opened;
  }
  return info;
}

absl::StatusOr<DebugInfo> DebugSession::StartFresh() {
  CLUSTER2_RETURN_IF_ERROR(AwaitPortFree());
  std::vector<std::string> prefix;
  for (const std::string& arg : options_.fresh_prefix)
    prefix.push_back(absl::StrReplaceAll(arg, {{"{address}", address()}}));
  CLUSTER2_ASSIGN_OR_RETURN(
      pid_t gdbserver,
      supervisor_->StartDebugWorker(
          prefix, absl::StrCat("debug session (fresh) on ", address(),
                               ": serves once the debugger lets it run")));
  DebugInfo info;
  info.supervised_pid = gdbserver;
  info.gdbserver_pid = gdbserver;
  info.protocol = "gdb";
  info.address = address();
  info.url = absl::StrCat("tcp://", address());
  info.fresh = true;
  info.started_at = clock_->Now();
  if (absl::Status listening = AwaitListening(gdbserver); !listening.ok()) {
    absl::MutexLock lock(&mu_);
    KillLocked(info);
    return listening;
  }
  // gdbserver has forked the worker (stopped at its first instruction)
  // before it listens.
  info.pid = probes_.child(gdbserver);
  for (absl::Time deadline = absl::Now() + absl::Seconds(1);
       info.pid == 0 && absl::Now() < deadline;) {
    absl::SleepFor(kProbeInterval);  // /proc shows the child a moment late
    info.pid = probes_.child(gdbserver);
  }
  info.executable =
      info.pid != 0 ? probes_.executable(info.pid) : options_.worker_executable;
  return info;
}

void DebugSession::KillLocked(const DebugInfo& info) {
  // The supervisor's process first (recorded as an end it expected), then
  // gdbserver and a fresh session's worker, which are not its processes.
  if (absl::Status ended = supervisor_->EndDebug(info.supervised_pid);
      !ended.ok() && !absl::IsNotFound(ended)) {
    LogWarning(absl::StrCat("ending the debug session: ", ended.message()));
  }
  if (info.gdbserver_pid != 0 && info.gdbserver_pid != info.supervised_pid)
    launcher_->Signal(info.gdbserver_pid, SIGKILL);
  if (info.pid != 0 && info.pid != info.supervised_pid)
    launcher_->Signal(info.pid, SIGKILL);
}

absl::StatusOr<DebugInfo> DebugSession::End() {
  absl::MutexLock lock(&mu_);
  if (state_ == State::kOpening) {
    return absl::FailedPreconditionError(
        absl::StrCat("a debug session is opening: ", opening_));
  }
  if (state_ == State::kClosed)
    return absl::NotFoundError("no debug session is open");
  DebugInfo info = *session_;
  KillLocked(info);
  session_.reset();
  state_ = State::kClosed;
  LogInfo(absl::StrCat("debug session ended: ", info.Name()));
  return info;
}

std::optional<DebugInfo> DebugSession::Current() const {
  absl::MutexLock lock(&mu_);
  return session_;
}

void DebugSession::ProcessExited(pid_t pid) {
  absl::MutexLock lock(&mu_);
  if (state_ == State::kOpening) {
    exited_.insert(pid);
    return;
  }
  if (state_ != State::kOpen) return;
  const DebugInfo& info = *session_;
  if (pid != info.supervised_pid && pid != info.gdbserver_pid &&
      pid != info.pid) {
    return;
  }
  LogInfo(absl::StrCat("debug session ended: pid ", pid, " exited (",
                       info.Name(), ")"));
  KillLocked(info);
  session_.reset();
  state_ = State::kClosed;
}

void DebugSession::DebuggerOpened(pid_t pid, const std::string& url,
                                  const std::string& error) {
  absl::MutexLock lock(&mu_);
  if (state_ != State::kOpening || awaiting_answer_ != pid) return;
  answer_.emplace(url, error);
}

absl::StatusOr<StackDump> DebugSession::Stacks(pid_t pid) {
  CLUSTER2_ASSIGN_OR_RETURN(WorkerSnapshot worker,
                            supervisor_->WorkerByPid(pid));
  {
    absl::MutexLock lock(&mu_);
    if (session_ && (session_->supervised_pid == pid || session_->pid == pid)) {
      return absl::FailedPreconditionError(absl::StrCat(
          "pid ", pid, " is in the debug session: ask its debugger"));
    }
  }
  int output[2];
  if (pipe2(output, O_CLOEXEC) != 0) return ErrnoStatus(errno, "pipe2");
  SpawnSpec spec;
  // The program's symbols load before gdb attaches, so the worker is
  // stopped only for the shared libraries' and the backtraces.
  std::string program = probes_.executable(pid);
  spec.argv = {options_.gdb, "-batch", "-nx", "-iex",
               "set debuginfod enabled off",
               // The worker shares the master's file system: gdb reads its
               // libraries directly, not through /proc/<pid>/ns (which some
               // sandboxes lack).
               "-iex", "set sysroot /", "-ex", "set pagination off"};
  if (!program.empty()) spec.argv.push_back(program);
  spec.argv.insert(spec.argv.end(),
                   {"-p", absl::StrCat(pid), "-ex", "thread apply all bt"});
  spec.env = options_.env;
  spec.output_fd = output[1];
  absl::Time started = clock_->Now();
  // The worker sends no heartbeat while gdb holds it: not hung.
  supervisor_->ExcuseHeartbeats(pid, started + options_.stacks_timeout);
  absl::StatusOr<pid_t> gdb = launcher_->Launch(spec);
  close(output[1]);
  if (!gdb.ok()) {
    close(output[0]);
    return absl::InternalError(
        absl::StrCat("cannot run gdb: ", gdb.status().message()));
  }
  // gdb is done when its output ends (the master's reaper collects it).
  std::string text;
  absl::Time deadline = absl::Now() + options_.stacks_timeout;
  bool timed_out = false;
  while (true) {
    absl::Duration left = deadline - absl::Now();
    pollfd readable = {output[0], POLLIN, 0};
    int ready = poll(&readable, 1,
                     static_cast<int>(std::max<int64_t>(
                         0, absl::ToInt64Milliseconds(left))));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) {
      timed_out = true;
      break;
    }
    char buffer[8192];
    ssize_t n = read(output[0], buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    text.append(buffer, static_cast<size_t>(n));
  }
  close(output[0]);
  supervisor_->ExcuseHeartbeats(pid, clock_->Now());
  if (timed_out) {
    launcher_->Signal(*gdb, SIGKILL);
    launcher_->Signal(pid, SIGCONT);  // in case gdb left it stopped
    return absl::DeadlineExceededError(
        absl::StrCat("gdb did not dump the stacks of pid ", pid, " within ",
                     absl::FormatDuration(options_.stacks_timeout)));
  }
  StackDump dump;
  dump.gdb_time = clock_->Now() - started;
  dump.text = std::move(text);
  dump.threads = ParseGdbThreads(dump.text);
  if (dump.threads.empty()) {
    return absl::InternalError(absl::StrCat("gdb found no threads in pid ", pid,
                                            ": ", dump.text.substr(0, 1000)));
  }
  LogInfo(absl::StrCat("stacks of worker ", worker.id, " pid ", pid, " (",
                       dump.threads.size(), " threads, gdb ran ",
                       absl::FormatDuration(dump.gdb_time), "):\n", dump.text));
  return dump;
}

}  // namespace cluster2
