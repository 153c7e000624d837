// Supervisor: worker groups, per-group scale and restart, Reconfigure.
#include <algorithm>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "master/internal/supervisor.h"
#include "master/internal/supervisor_test_fixture.h"

namespace cluster2 {
namespace {

TEST_F(SupervisorTest, GroupsRunTheirOwnCommandsInConsecutiveSlots) {
  options_.groups = {{"cpp", 2, {"/bin/sh"}, {"KIND=cpp"}, ""},
                     {"node", 1, {"/bin/true"}, {"KIND=node"}, ""}};
  Supervisor& supervisor = Start();
  ASSERT_EQ(launcher_.launched_.size(), 3u);
  EXPECT_EQ(launcher_.specs_[100].argv, std::vector<std::string>{"/bin/sh"});
  EXPECT_EQ(launcher_.specs_[102].argv, std::vector<std::string>{"/bin/true"});
  EXPECT_EQ(launcher_.ids_[102], "2");
  auto has = [&](pid_t pid, const std::string& entry) {
    const std::vector<std::string>& env = launcher_.specs_[pid].env;
    return std::find(env.begin(), env.end(), entry) != env.end();
  };
  EXPECT_TRUE(has(100, "KIND=cpp"));
  EXPECT_TRUE(has(102, "KIND=node"));
  EXPECT_TRUE(has(102, "CLUSTER2_WORKER_GROUP=node"));
  EXPECT_EQ(Slot(2).group, "node");
  EXPECT_EQ(supervisor.desired_workers("cpp"), 2u);
  EXPECT_EQ(supervisor.desired_workers(), 3u);
  EXPECT_EQ(supervisor.group_names(),
            (std::vector<std::string>{"cpp", "node"}));
}

TEST_F(SupervisorTest, ScaleAndRestartNameAGroupWhenThereAreSeveral) {
  options_.groups = {{"cpp", 2, {"/bin/sh"}, {}, ""},
                     {"node", 1, {"/bin/true"}, {}, ""}};
  Supervisor& supervisor = Start();
  FakeChannel a, b, c;
  MakeReady(100, &a);
  MakeReady(101, &b);
  MakeReady(102, &c);
  EXPECT_EQ(supervisor.Scale(3).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(supervisor.Scale(3, "go").status().code(),
            absl::StatusCode::kNotFound);
  // The node group grows in a new slot (3) and shrinks from its highest.
  EXPECT_EQ(*supervisor.Scale(2, "node"), 1u);
  EXPECT_EQ(launcher_.ids_[103], "3");
  EXPECT_EQ(launcher_.specs_[103].argv, std::vector<std::string>{"/bin/true"});
  EXPECT_EQ(*supervisor.Scale(1, "cpp"), 2u);
  EXPECT_EQ(b.messages_.back(), "drain 1m scale down");
  EXPECT_EQ(supervisor.desired_workers(), 3u);
  // A restart of one group replaces only its workers.
  FakeChannel d;
  MakeReady(103, &d);
  absl::StatusOr<std::vector<pid_t>> pids = supervisor.Restart(0, 0, "node");
  ASSERT_TRUE(pids.ok()) << pids.status();
  EXPECT_EQ(*pids, (std::vector<pid_t>{102, 103}));
  EXPECT_EQ(supervisor.Restart(0, 0, "go").status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(SupervisorTest, ReconfigureReplacesOnlyChangedGroupsAndScalesOthers) {
  options_.groups = {{"cpp", 2, {"/bin/sh"}, {}, ""},
                     {"node", 1, {"/bin/true"}, {}, ""}};
  Supervisor& supervisor = Start();
  FakeChannel a, b, c;
  MakeReady(100, &a);
  MakeReady(101, &b);
  MakeReady(102, &c);
  SupervisorOptions next = options_;
  next.groups[0].command = {"/bin/sh", "-c", "exec new"};  // changed
  next.groups[1].workers = 2;                              // scaled
  next.surge = 2;
  absl::StatusOr<Supervisor::Reconfigured> done = supervisor.Reconfigure(next);
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_EQ(done->replaced_groups, std::vector<std::string>{"cpp"});
  // The node group's new slot starts at once with its (same) command.
  EXPECT_EQ(launcher_.specs_[103].argv, std::vector<std::string>{"/bin/true"});
  // The cpp slots are replaced by the rolling restart, 2 at a time, with
  // the new command; the old workers drain only once successors are ready.
  supervisor.Tick();
  ASSERT_EQ(launcher_.launched_.size(), 6u);
  EXPECT_EQ(launcher_.specs_[104].argv,
            (std::vector<std::string>{"/bin/sh", "-c", "exec new"}));
  EXPECT_EQ(launcher_.specs_[105].argv,
            (std::vector<std::string>{"/bin/sh", "-c", "exec new"}));
  EXPECT_NE(a.messages_.back().rfind("drain", 0), 0u) << a.messages_.back();
  FakeChannel e, f;
  MakeReady(104, &e);
  MakeReady(105, &f);
  EXPECT_EQ(a.messages_.back(), "drain 1m replaced: reload");
  EXPECT_EQ(c.messages_.back().rfind("drain", 0), std::string::npos)
      << "the node worker runs on";
  // While that restart runs, another reload is refused and changes nothing.
  ASSERT_TRUE(supervisor.Restart(0, 0, "node").ok());
  next.groups[1].workers = 5;
  EXPECT_EQ(supervisor.Reconfigure(next).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(supervisor.desired_workers("node"), 2u);
}

TEST_F(SupervisorTest, ReconfigureAddsAndRemovesGroups) {
  Supervisor& supervisor = Start();
  FakeChannel a, b;
  MakeReady(100, &a);
  MakeReady(101, &b);
  SupervisorOptions next = options_;
  next.groups = {{"node", 1, {"/bin/true"}, {}, ""}};
  absl::StatusOr<Supervisor::Reconfigured> done = supervisor.Reconfigure(next);
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_TRUE(done->replaced_groups.empty());
  EXPECT_EQ(launcher_.specs_[102].argv, std::vector<std::string>{"/bin/true"});
  EXPECT_EQ(launcher_.ids_[102], "2") << "new slots after the old ones";
  EXPECT_EQ(a.messages_.back(), "drain 1m scale down");
  EXPECT_EQ(b.messages_.back(), "drain 1m scale down");
  EXPECT_EQ(supervisor.group_names(), std::vector<std::string>{"node"});
  EXPECT_EQ(supervisor.desired_workers(), 1u);
  // A command that cannot run is refused before anything changes.
  next.groups[0].command = {"/no/such/worker"};
  next.groups[0].workers = 3;
  EXPECT_FALSE(supervisor.Reconfigure(next).ok());
  EXPECT_EQ(supervisor.desired_workers(), 1u);
}

}  // namespace
}  // namespace cluster2
