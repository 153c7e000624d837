#include "master/internal/hello_gate.h"

#include <atomic>

#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"

namespace cluster2 {
namespace {

TEST(HelloGateTest, ALateHelloIsCancelledAndAnOnTimeOneIsNot) {
  HelloGate gate(10, absl::Milliseconds(50));
  absl::Notification late_cancelled;
  std::atomic<int> on_time_cancels{0};
  std::optional<uint64_t> on_time = gate.Admit([&] { ++on_time_cancels; });
  std::optional<uint64_t> late = gate.Admit([&] { late_cancelled.Notify(); });
  ASSERT_TRUE(on_time && late);
  gate.Release(*on_time);
  EXPECT_TRUE(late_cancelled.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_EQ(gate.pending(), 0u);
  EXPECT_EQ(on_time_cancels.load(), 0);
}

TEST(HelloGateTest, AdmitsAtMostMaxPending) {
  HelloGate gate(2, absl::Hours(1));
  std::optional<uint64_t> a = gate.Admit([] {});
  std::optional<uint64_t> b = gate.Admit([] {});
  ASSERT_TRUE(a && b);
  EXPECT_FALSE(gate.Admit([] {}).has_value());
  gate.Release(*a);
  EXPECT_TRUE(gate.Admit([] {}).has_value());
}

TEST(HelloGateTest, ReleasingAfterTheCancelIsHarmless) {
  HelloGate gate(1, absl::Milliseconds(1));
  absl::Notification cancelled;
  std::optional<uint64_t> ticket = gate.Admit([&] { cancelled.Notify(); });
  ASSERT_TRUE(cancelled.WaitForNotificationWithTimeout(absl::Seconds(10)));
  gate.Release(*ticket);
  EXPECT_EQ(gate.pending(), 0u);
}

}  // namespace
}  // namespace cluster2
