#include "master/internal/signals.h"

#include <algorithm>

#include "absl/time/clock.h"

namespace cluster2 {

SignalAction ActionFor(int signal, bool stopping) {
  switch (signal) {
    case SIGCHLD:
      return SignalAction::kReap;
    case SIGTERM:
    case SIGINT:
      return stopping ? SignalAction::kFastStop : SignalAction::kGracefulStop;
    case SIGQUIT:
      return SignalAction::kFastStop;
    case SIGHUP:
      return SignalAction::kRollingRestart;
    case SIGTTIN:
      return SignalAction::kScaleUp;
    case SIGTTOU:
      return SignalAction::kScaleDown;
    case SIGUSR1:
      return SignalAction::kReopenLog;
    case SIGUSR2:
      return SignalAction::kWake;
    default:
      return SignalAction::kIgnore;
  }
}

sigset_t HandledSignals() {
  sigset_t set;
  sigemptyset(&set);
  for (int signal : {SIGCHLD, SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1,
                     SIGUSR2, SIGTTIN, SIGTTOU}) {
    sigaddset(&set, signal);
  }
  return set;
}

int WaitForSignal(absl::Time deadline, absl::Duration max_wait) {
  const sigset_t signals = HandledSignals();
  absl::Duration wait =
      std::clamp(deadline - absl::Now(), absl::ZeroDuration(), max_wait);
  timespec timeout = absl::ToTimespec(wait);
  siginfo_t info;
  int signal = sigtimedwait(&signals, &info, &timeout);
  return signal < 0 ? 0 : signal;  // a timeout, or EINTR
}

}  // namespace cluster2
