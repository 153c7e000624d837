// Fakes of the supervisor's environment for unit tests: a ProcessLauncher
// that records instead of starting processes and a WorkerChannel that
// records what the supervisor sends.
//
// Not thread-safe beyond Signal/Signalled: a test drives them from one
// thread (hand-offs to other threads go through the on_* hooks).
#ifndef CLUSTER2_MASTER_INTERNAL_SUPERVISOR_FAKES_H_
#define CLUSTER2_MASTER_INTERNAL_SUPERVISOR_FAKES_H_

#include <unistd.h>

#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "master/internal/spawn.h"
#include "master/internal/supervisor.h"

namespace cluster2 {

// Records launches and signals instead of touching processes.
class FakeLauncher final : public ProcessLauncher {
 public:
  absl::StatusOr<pid_t> Launch(const SpawnSpec& spec) override {
    if (fail_next_) {
      fail_next_ = false;
      return absl::ResourceExhaustedError("fork: out of processes");
    }
    pid_t pid = next_pid_++;
    specs_[pid] = spec;
    if (spec.output_fd >= 0 && !output_.empty()) {
      (void)!write(spec.output_fd, output_.data(), output_.size());
    }
    for (const std::string& entry : spec.env) {
      if (absl::StartsWith(entry, "CLUSTER2_WORKER_TOKEN="))
        tokens_[pid] = entry.substr(22);
      if (absl::StartsWith(entry, "CLUSTER2_WORKER_ID="))
        ids_[pid] = entry.substr(19);
    }
    launched_.push_back(pid);
    return pid;
  }
  void Signal(pid_t pid, int signal) override {
    absl::MutexLock lock(&mu_);
    signals_.emplace_back(pid, signal);
  }
  // Whether `pid` got `signal`.
  bool Signalled(pid_t pid, int signal) {
    absl::MutexLock lock(&mu_);
    for (const auto& [to, sent] : signals_) {
      if (to == pid && sent == signal) return true;
    }
    return false;
  }

  std::vector<pid_t> launched_;
  std::vector<std::pair<pid_t, int>> signals_;  // under mu_ while shared
  std::map<pid_t, std::string> tokens_;
  std::map<pid_t, std::string> ids_;
  std::map<pid_t, SpawnSpec> specs_;
  bool fail_next_ = false;
  // Written to a spawn's output_fd (a canned gdb dump).
  std::string output_;
  absl::Mutex mu_;

 private:
  pid_t next_pid_ = 100;
};

class FakeChannel final : public WorkerChannel {
 public:
  void SendWelcome(absl::Duration interval) override {
    messages_.push_back("welcome " + absl::FormatDuration(interval));
  }
  void SendPause() override {
    messages_.push_back("pause");
    if (on_pause_) on_pause_();
  }
  void SendResume() override { messages_.push_back("resume"); }
  void SendDrain(absl::Duration grace, absl::string_view reason) override {
    messages_.push_back("drain " + absl::FormatDuration(grace) + " " +
                        std::string(reason));
  }
  void SendOpenDebugger(absl::string_view protocol, absl::string_view host,
                        uint16_t port) override {
    messages_.push_back(absl::StrCat("open ", protocol, " ", host, ":", port));
    if (on_open_debugger_) on_open_debugger_();
  }
  // Called when SendPause/SendOpenDebugger are (with the supervisor's lock
  // held: it may only hand work to another thread).
  std::function<void()> on_pause_;
  std::function<void()> on_open_debugger_;
  std::vector<std::string> messages_;
};

// Sockets numbered 1000 + id; each routing is logged as "route 0,2" (or
// "route -" for none) to `log`, which may be a FakeChannel's messages_ so
// the order of routing and messages shows.
class FakeSlotSockets final : public SlotSockets {
 public:
  absl::StatusOr<int> SocketOf(unsigned id) override {
    return 1000 + static_cast<int>(id);
  }
  void Route(const std::vector<unsigned>& ids) override {
    routed_ = ids;
    if (log_ != nullptr) {
      log_->push_back(ids.empty() ? "route -"
                                  : "route " + absl::StrJoin(ids, ","));
    }
  }
  std::vector<unsigned> routed_;
  std::vector<std::string>* log_ = nullptr;
};

}  // namespace cluster2

#endif  // CLUSTER2_MASTER_INTERNAL_SUPERVISOR_FAKES_H_
