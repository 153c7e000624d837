// The master's signals: which it handles, what each asks of it, and the
// wait for the next one between timer ticks.
//
//   SIGCHLD         reap children
//   SIGTERM SIGINT  graceful stop (a second one while stopping: fast stop)
//   SIGQUIT         fast stop
//   SIGHUP          rolling restart
//   SIGTTIN SIGTTOU one worker more / less
//   SIGUSR1         reopen the log file
//   SIGUSR2         wake the loop (sent by the master to itself)
//
// The master blocks these in every thread (RunMaster blocks them before any
// thread starts; threads inherit the mask) and takes them synchronously
// with sigtimedwait on its main thread: no handler runs at an arbitrary
// point, so gRPC is never called from a signal handler.
//
// Thread-safe: pure functions and a wait on the calling thread.
#ifndef CLUSTER2_MASTER_INTERNAL_SIGNALS_H_
#define CLUSTER2_MASTER_INTERNAL_SIGNALS_H_

#include <signal.h>

#include "absl/time/time.h"

namespace cluster2 {

enum class SignalAction {
  kReap,
  kGracefulStop,
  kFastStop,
  kRollingRestart,
  kScaleUp,
  kScaleDown,
  kReopenLog,
  kWake,
  kIgnore,
};

// What `signal` asks of the master; `stopping`: a graceful stop is under
// way.
SignalAction ActionFor(int signal, bool stopping);

// The signals listed above.
sigset_t HandledSignals();

// Waits until one of HandledSignals() is pending (and takes it) or
// `deadline` passes, but at most `max_wait`. Returns the signal, or 0.
int WaitForSignal(absl::Time deadline,
                  absl::Duration max_wait = absl::Milliseconds(100));

}  // namespace cluster2

#endif  // CLUSTER2_MASTER_INTERNAL_SIGNALS_H_
