#include "master/internal/ecv.h"

#include <vector>

#include "gtest/gtest.h"

namespace cluster2 {
namespace {

class FixedClock final : public Clock {
 public:
  absl::Time Now() override { return absl::FromUnixSeconds(1700000000); }
};

class EcvTest : public ::testing::Test {
 protected:
  Ecv Make(const std::string& mode, bool marked_down = false) {
    return Ecv(
        mode, marked_down, &clock_, [this] { return ready_; },
        [this] { return started_; },
        [this](const Ecv::State& state) { changes_.push_back(state.health); });
  }
  FixedClock clock_;
  unsigned ready_ = 0;
  bool started_ = false;
  std::vector<Ecv::Health> changes_;
};

TEST_F(EcvTest, DownUntilEveryInitialWorkerIsReadyThenUp) {
  Ecv ecv = Make("control");
  ready_ = 2;
  EXPECT_EQ(ecv.Get().health, Ecv::Health::kDown) << "not started";
  started_ = true;
  EXPECT_EQ(ecv.Get().health, Ecv::Health::kUp);
  EXPECT_TRUE(changes_.empty()) << "Get must not swallow the change";
  ecv.Refresh();
  EXPECT_EQ(ecv.Get().changed_by, "workers: 2 ready");
  EXPECT_EQ(ecv.Get().health, Ecv::Health::kUp);
  EXPECT_EQ(changes_, std::vector<Ecv::Health>{Ecv::Health::kUp});
  ready_ = 0;
  ecv.Refresh();
  EXPECT_EQ(ecv.Get().health, Ecv::Health::kDown) << "no ready worker";
}

TEST_F(EcvTest, MarkDownDrainsAndMarkUpRestores) {
  Ecv ecv = Make("control");
  ready_ = 1;
  started_ = true;
  auto down = ecv.MarkDown("test");
  ASSERT_TRUE(down.ok());
  EXPECT_EQ(down->health, Ecv::Health::kMarkedDown);
  EXPECT_EQ(down->changed_by, "test");
  EXPECT_EQ(Ecv::HttpStatus(*down), 404);
  EXPECT_EQ(
      Ecv::Body(*down, "10.0.0.1", "host", 8080, clock_.Now()),
      "status=DISABLED&ServeTraffic=false&ip=10.0.0.1&hostname=host&port=8080"
      "&time=1700000000000\n");
  auto up = ecv.MarkUp("test2");
  EXPECT_EQ(up->health, Ecv::Health::kUp);
  EXPECT_EQ(Ecv::HttpStatus(*up), 200);
  EXPECT_EQ(Ecv::Body(*up, "i", "h", 1, clock_.Now()).substr(0, 37),
            "status=AVAILABLE&ServeTraffic=true&ip");
  ready_ = 0;
  EXPECT_EQ(Ecv::HttpStatus(ecv.Get()), 503);
}

TEST_F(EcvTest, StartsMarkedDownWhenConfigured) {
  Ecv ecv = Make("control", /*marked_down=*/true);
  ready_ = 1;
  started_ = true;
  EXPECT_EQ(ecv.Get().health, Ecv::Health::kMarkedDown);
}

TEST_F(EcvTest, MonitorModeFollowsTheCheckAndRefusesMarks) {
  Ecv ecv = Make("monitor");
  ready_ = 1;
  started_ = true;
  EXPECT_EQ(ecv.Get().health, Ecv::Health::kDown) << "no check yet";
  ecv.SetMonitorResult(true, "200");
  EXPECT_EQ(ecv.Get().health, Ecv::Health::kUp);
  EXPECT_EQ(changes_, std::vector<Ecv::Health>{Ecv::Health::kUp});
  ecv.SetMonitorResult(false, "500");
  EXPECT_EQ(ecv.Get().health, Ecv::Health::kDown);
  EXPECT_EQ(ecv.Get().changed_by, "monitor: 500");
  EXPECT_EQ(ecv.MarkDown("x").status().code(),
            absl::StatusCode::kFailedPrecondition);
}

// The reason follows the latest check even when the health does not flip:
// a first check that beat the workers' start-up ("no answer") was stuck as
// the reason while the app went on answering 404 (a flaky monitor_test).
TEST_F(EcvTest, MonitorReasonFollowsTheLatestCheck) {
  Ecv ecv = Make("monitor");
  ready_ = 1;
  started_ = true;
  ecv.SetMonitorResult(false, "connect: Connection refused");
  EXPECT_EQ(ecv.Get().changed_by, "monitor: connect: Connection refused");
  ecv.SetMonitorResult(false, "status 404, expected 200");
  EXPECT_EQ(ecv.Get().health, Ecv::Health::kDown);
  EXPECT_EQ(ecv.Get().changed_by, "monitor: status 404, expected 200");
  EXPECT_TRUE(changes_.empty()) << "down all along: no change published";
}

TEST_F(EcvTest, AReloadSwitchesTheModeWithoutDroppingTheHealth) {
  Ecv ecv = Make("control");
  ready_ = 2;
  started_ = true;
  ecv.Refresh();
  ecv.SetMode("monitor", /*first_check=*/"");
  EXPECT_EQ(ecv.Get().health, Ecv::Health::kUp) << "the first check passed";
  EXPECT_EQ(ecv.Get().mode, "monitor");
  EXPECT_EQ(ecv.MarkDown("op").status().code(),
            absl::StatusCode::kFailedPrecondition);
  ecv.SetMonitorResult(false, "status 500");
  EXPECT_EQ(ecv.Get().health, Ecv::Health::kDown);
  ecv.SetMode("control", "");
  EXPECT_EQ(ecv.Get().health, Ecv::Health::kUp);
  EXPECT_EQ(ecv.Get().changed_by, "reload: mode control");
  ASSERT_TRUE(ecv.MarkDown("op").ok());
  ecv.SetMode("monitor", "connect: Connection refused");
  EXPECT_EQ(ecv.Get().health, Ecv::Health::kDown) << "the first check failed";
}

}  // namespace
}  // namespace cluster2
