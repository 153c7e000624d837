#include "master/internal/cache_supervisor.h"

#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/log.h"

namespace cluster2 {
namespace {

std::string DescribeExit(int status) {
  if (WIFEXITED(status)) return absl::StrCat("exit ", WEXITSTATUS(status));
  if (WIFSIGNALED(status))
    return absl::StrCat("signal ", WTERMSIG(status), " (",
                        strsignal(WTERMSIG(status)), ")");
  return absl::StrCat("status ", status);
}

}  // namespace

CacheServerSupervisor::CacheServerSupervisor(CacheSupervisorOptions options,
                                             ProcessLauncher* launcher,
                                             Clock* clock)
    : options_(std::move(options)), launcher_(launcher), clock_(clock) {}

const char* CacheServerSupervisor::StateName(State state) {
  switch (state) {
    case State::kRunning:
      return "running";
    case State::kWaiting:
      return "waiting";
    case State::kFailed:
      return "failed";
    case State::kStopped:
      return "stopped";
  }
  return "unknown";
}

void CacheServerSupervisor::Start() {
  absl::MutexLock lock(&mu_);
  if (state_ == State::kWaiting) LaunchLocked();
}

void CacheServerSupervisor::LaunchLocked() {
  absl::StatusOr<pid_t> pid = launcher_->Launch(options_.spec);
  if (!pid.ok()) {
    FailedLocked(absl::StrCat("cannot start: ", pid.status().message()));
    return;
  }
  ++launches_;
  pid_ = *pid;
  state_ = State::kRunning;
  started_at_ = clock_->Now();
  last_healthy_.reset();
  killed_as_hung_ = false;
  LogInfo(absl::StrCat("cache server started: pid ", pid_));
}

void CacheServerSupervisor::FailedLocked(const std::string& why) {
  const absl::Time now = clock_->Now();
  const bool stable =
      state_ == State::kRunning && now - started_at_ >= options_.stable_period;
  pid_ = 0;
  if (stable) {
    quick_failures_ = 0;
    state_ = State::kWaiting;
    next_start_ = now;
    LogWarning(absl::StrCat("cache server ", why, ": restarting"));
    LaunchLocked();
    return;
  }
  ++quick_failures_;
  if (options_.give_up_after > 0 && quick_failures_ >= options_.give_up_after) {
    state_ = State::kFailed;
    LogError(absl::StrCat(
        "cache server ", why, ": it failed ", quick_failures_,
        " times in a row, each within ",
        absl::FormatDuration(options_.stable_period),
        " of its start: given up (the cache stays off until the master "
        "restarts; see the lines above for the cause)"));
    return;
  }
  absl::Duration delay = options_.backoff_initial;
  for (unsigned i = 1; i < quick_failures_ && delay < options_.backoff_max; ++i)
    delay *= 2;
  delay = std::min(delay, options_.backoff_max);
  state_ = State::kWaiting;
  next_start_ = now + delay;
  LogWarning(absl::StrCat("cache server ", why, ": restarting in ",
                          absl::FormatDuration(delay)));
}

absl::Time CacheServerSupervisor::Tick() {
  absl::MutexLock lock(&mu_);
  const absl::Time now = clock_->Now();
  if (state_ == State::kWaiting && now >= next_start_) LaunchLocked();
  if (state_ == State::kWaiting) return next_start_;
  if (state_ != State::kRunning ||
      options_.health_timeout <= absl::ZeroDuration())
    return absl::InfiniteFuture();
  const absl::Time overdue = last_healthy_
                                 ? *last_healthy_ + options_.health_timeout
                                 : started_at_ + options_.start_timeout;
  if (now >= overdue && !killed_as_hung_) {
    LogError(absl::StrCat(
        "cache server pid ", pid_, " has not answered a health check for ",
        absl::FormatDuration(now - last_healthy_.value_or(started_at_)),
        last_healthy_ ? "" : " since its start",
        ": killing it (SIGKILL) to restart it"));
    killed_as_hung_ = true;
    launcher_->Signal(pid_, SIGKILL);
    return absl::InfiniteFuture();  // its exit comes through ProcessExited
  }
  return killed_as_hung_ ? absl::InfiniteFuture() : overdue;
}

bool CacheServerSupervisor::ProcessExited(pid_t pid, int status) {
  absl::MutexLock lock(&mu_);
  if (pid <= 0 || pid != pid_) return false;
  if (state_ == State::kStopped) {
    pid_ = 0;
    return true;
  }
  std::string why = absl::StrCat("pid ", pid, " ended (", DescribeExit(status),
                                 killed_as_hung_ ? ", killed as hung)" : ")");
  FailedLocked(why);
  return true;
}

void CacheServerSupervisor::HealthAnswered(pid_t pid) {
  absl::MutexLock lock(&mu_);
  if (state_ != State::kRunning || pid != pid_ || killed_as_hung_) return;
  if (!last_healthy_) {
    LogInfo(absl::StrCat("cache server pid ", pid_, " is serving (after ",
                         absl::FormatDuration(clock_->Now() - started_at_),
                         ")"));
  }
  last_healthy_ = clock_->Now();
}

pid_t CacheServerSupervisor::Stop() {
  absl::MutexLock lock(&mu_);
  state_ = State::kStopped;
  return pid_;
}

CacheServerSupervisor::State CacheServerSupervisor::state() const {
  absl::MutexLock lock(&mu_);
  return state_;
}

pid_t CacheServerSupervisor::pid() const {
  absl::MutexLock lock(&mu_);
  return pid_;
}

unsigned CacheServerSupervisor::restarts() const {
  absl::MutexLock lock(&mu_);
  return launches_ > 0 ? launches_ - 1 : 0;
}

}  // namespace cluster2
