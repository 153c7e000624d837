// Helpers for end-to-end tests that start the real cluster2 binaries.
//
// Everything a test starts is killed and reaped when its handle goes out of
// scope; sockets live under short /tmp paths (Bazel's TEST_TMPDIR is longer
// than sun_path allows); waits are for a condition with a deadline, never a
// bare sleep.
#ifndef CLUSTER2_TESTS_TESTING_HARNESS_H_
#define CLUSTER2_TESTS_TESTING_HARNESS_H_

#include <sys/types.h>

#include <atomic>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/time.h"

namespace cluster2::testing {

// Path of a binary built by Bazel, from the test's runfiles
// ("master/cluster2-master").
std::string BinaryPath(const std::string& workspace_relative);

// A fresh directory under /tmp, removed (recursively) at destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// A TCP port on 127.0.0.1 that was free a moment ago.
int FreePort();

// The same, below the kernel's ephemeral range (ip_local_port_range), for
// a server that binds it only later (a debugger): an ephemeral port can be
// taken in the meantime by any outgoing connection of a concurrent test.
int FreePortBelowEphemeral();

// A child process with stdout and stderr captured to files.
class Process {
 public:
  // Starts argv (argv[0] an absolute path) with the current environment plus
  // `env` ("K=V").
  Process(std::vector<std::string> argv, std::vector<std::string> env = {});
  ~Process();  // SIGKILL and reap if still running

  pid_t pid() const { return pid_; }
  // Waits up to `timeout` for the exit; returns the wait status, or nullopt.
  std::optional<int> Wait(absl::Duration timeout);
  void Signal(int signal);
  std::string Stdout() const;
  std::string Stderr() const;

 private:
  pid_t pid_ = -1;
  bool reaped_ = false;
  std::string out_path_;
  std::string err_path_;
};

// The lines of `text` that start with `prefix` (a child's output).
std::vector<std::string> Lines(const std::string& text,
                               const std::string& prefix);

// True once `condition` holds, checking every 20 ms up to `timeout`.
bool WaitUntil(const std::function<bool()>& condition, absl::Duration timeout);

// True if `pid` exists and is not a zombie.
bool ProcessAlive(pid_t pid);

struct HttpResult {
  int status = 0;  // 0 if the request failed at the socket level
  std::string body;
  std::string error;  // why, when status is 0
};
// One GET on a new connection to 127.0.0.1:port (Connection: close).
HttpResult HttpGet(int port, const std::string& path,
                   absl::Duration timeout = absl::Seconds(5));

// HTTP GETs in a loop from `threads` threads until Stop(), counting
// successes (2xx) and failures (socket errors, incomplete responses,
// non-2xx). With keep_alive, each thread reuses its connection and
// reconnects when the server answers "Connection: close"; a connection the
// server closes without answering is a failure, as wrk counts it.
class LoadGenerator {
 public:
  LoadGenerator(int port, int threads, bool keep_alive);
  ~LoadGenerator();  // stops
  void Stop();
  uint64_t ok() const { return ok_.load(); }
  uint64_t failed() const { return failed_.load(); }
  // The first few failure descriptions.
  std::vector<std::string> errors() const;

 private:
  void Run(bool keep_alive);
  int port_;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> ok_{0};
  std::atomic<uint64_t> failed_{0};
  mutable std::mutex mu_;
  std::vector<std::string> errors_;
  std::vector<std::thread> threads_;
};

struct CommandResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};
// Runs a command to completion (at most `timeout`, then SIGKILL).
CommandResult RunCommand(std::vector<std::string> argv,
                         absl::Duration timeout = absl::Seconds(20));

}  // namespace cluster2::testing

#endif  // CLUSTER2_TESTS_TESTING_HARNESS_H_
