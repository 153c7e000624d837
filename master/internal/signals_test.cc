#include "master/internal/signals.h"

#include <pthread.h>

#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace cluster2 {
namespace {

TEST(SignalsTest, EachSignalAsksForItsAction) {
  EXPECT_EQ(ActionFor(SIGCHLD, false), SignalAction::kReap);
  EXPECT_EQ(ActionFor(SIGTERM, false), SignalAction::kGracefulStop);
  EXPECT_EQ(ActionFor(SIGINT, false), SignalAction::kGracefulStop);
  // A second TERM or INT while draining: stop now.
  EXPECT_EQ(ActionFor(SIGTERM, true), SignalAction::kFastStop);
  EXPECT_EQ(ActionFor(SIGINT, true), SignalAction::kFastStop);
  EXPECT_EQ(ActionFor(SIGQUIT, false), SignalAction::kFastStop);
  EXPECT_EQ(ActionFor(SIGHUP, false), SignalAction::kRollingRestart);
  EXPECT_EQ(ActionFor(SIGTTIN, false), SignalAction::kScaleUp);
  EXPECT_EQ(ActionFor(SIGTTOU, false), SignalAction::kScaleDown);
  EXPECT_EQ(ActionFor(SIGUSR1, false), SignalAction::kReopenLog);
  EXPECT_EQ(ActionFor(SIGUSR2, false), SignalAction::kWake);
  EXPECT_EQ(ActionFor(SIGWINCH, false), SignalAction::kIgnore);
  // Every handled signal has an action.
  sigset_t handled = HandledSignals();
  for (int signal = 1; signal < NSIG; ++signal) {
    if (sigismember(&handled, signal) == 1) {
      EXPECT_NE(ActionFor(signal, false), SignalAction::kIgnore) << signal;
    }
  }
}

TEST(SignalsTest, WaitTakesAPendingSignalOrTimesOut) {
  sigset_t handled = HandledSignals();
  ASSERT_EQ(pthread_sigmask(SIG_BLOCK, &handled, nullptr), 0);
  EXPECT_EQ(WaitForSignal(absl::Now(), absl::Milliseconds(100)), 0);
  ASSERT_EQ(pthread_kill(pthread_self(), SIGUSR2), 0);  // stays pending
  EXPECT_EQ(WaitForSignal(absl::InfiniteFuture(), absl::Seconds(10)), SIGUSR2);
  // Never longer than max_wait, whatever the deadline.
  absl::Time start = absl::Now();
  EXPECT_EQ(WaitForSignal(absl::InfiniteFuture(), absl::Milliseconds(20)), 0);
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
}

}  // namespace
}  // namespace cluster2
