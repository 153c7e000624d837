#include "cache_server/internal/timer_queue.h"

#include <vector>

#include "absl/synchronization/notification.h"
#include "common/fake_clock.h"
#include "gtest/gtest.h"

namespace cluster2 {
namespace {

TEST(TimerQueueTest, RunsDueCallbacksInDeadlineOrder) {
  FakeClock clock;
  TimerQueue timers(&clock);
  std::vector<int> ran;
  absl::Time now = clock.Now();
  timers.Schedule(now + absl::Seconds(2), [&] { ran.push_back(2); });
  timers.Schedule(now + absl::Seconds(1), [&] { ran.push_back(1); });
  uint64_t cancelled =
      timers.Schedule(now + absl::Seconds(1), [&] { ran.push_back(-1); });
  EXPECT_TRUE(timers.Cancel(cancelled));
  EXPECT_FALSE(timers.Cancel(cancelled));
  EXPECT_EQ(timers.RunDue(), 0u);
  clock.Advance(absl::Seconds(2));
  EXPECT_EQ(timers.RunDue(), 2u);
  EXPECT_EQ(ran, (std::vector<int>{1, 2}));
  EXPECT_EQ(timers.size(), 0u);
}

TEST(TimerQueueTest, ItsThreadRunsADueCallbackWithoutBeingAsked) {
  RealClock clock;
  TimerQueue timers(&clock);
  absl::Notification later, sooner;
  timers.Schedule(clock.Now() + absl::Hours(1), [&] { later.Notify(); });
  // An earlier deadline wakes the thread, which sleeps until the later one.
  timers.Schedule(clock.Now() + absl::Milliseconds(20),
                  [&] { sooner.Notify(); });
  EXPECT_TRUE(sooner.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_FALSE(later.HasBeenNotified());
}

TEST(TimerQueueTest, ACallbackMayScheduleAnother) {
  RealClock clock;
  TimerQueue timers(&clock);
  absl::Notification second;
  timers.Schedule(clock.Now(), [&] {
    timers.Schedule(clock.Now(), [&] { second.Notify(); });
  });
  EXPECT_TRUE(second.WaitForNotificationWithTimeout(absl::Seconds(10)));
}

}  // namespace
}  // namespace cluster2
