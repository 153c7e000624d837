#include "master/internal/event_router.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace cluster2 {
namespace {

class RecordingSink final : public EventSink {
 public:
  void Deliver(const v1::Event& event) override { events.push_back(event); }
  std::vector<v1::Event> events;
};

v1::Event Event(const std::string& name, std::vector<v1::Target> targets = {}) {
  v1::Event event;
  event.set_name(name);
  event.add_args()->set_number_value(42);
  for (const v1::Target& target : targets) *event.add_targets() = target;
  return event;
}

v1::Target Self() {
  v1::Target target;
  target.set_self(true);
  return target;
}
v1::Target Master() {
  v1::Target target;
  target.set_master(true);
  return target;
}
v1::Target Workers() {
  v1::Target target;
  target.set_workers(true);
  return target;
}
v1::Target Pid(int pid) {
  v1::Target target;
  target.set_pid(pid);
  return target;
}

class EventRouterTest : public ::testing::Test {
 protected:
  EventRouterTest() {
    router_.AddWorker(10, &w10_);
    router_.AddWorker(11, &w11_);
    router_.AddWorker(12, &w12_);
    router_.AddMasterListener(&master_);
  }
  EventRouter router_{1};
  RecordingSink w10_, w11_, w12_, master_;
};

TEST_F(EventRouterTest, MasterSideDefaultReachesTheMasterAndEveryWorker) {
  auto result = router_.Route(Event("hello"), 0);
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(result->delivered, 4u);
  for (RecordingSink* sink : {&w10_, &w11_, &w12_, &master_}) {
    ASSERT_EQ(sink->events.size(), 1u);
    EXPECT_EQ(sink->events[0].from_pid(), 1);
    EXPECT_EQ(sink->events[0].sequence(), 1u);
    EXPECT_EQ(sink->events[0].args(0).number_value(), 42);
  }
}

TEST_F(EventRouterTest, WorkerDefaultReachesItselfAndTheMaster) {
  auto result = router_.Route(Event("hi"), 11);
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(result->delivered, 2u);
  EXPECT_EQ(w11_.events.size(), 1u);
  EXPECT_EQ(master_.events.size(), 1u);
  EXPECT_TRUE(w10_.events.empty());
  EXPECT_EQ(master_.events[0].from_pid(), 11);
}

TEST_F(EventRouterTest, ExplicitTargetsAreDeliveredOncePerProcess) {
  auto result = router_.Route(
      Event("x", {Self(), Pid(11), Workers(), Master(), Pid(99)}), 11);
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(result->delivered, 4u);  // 10, 11, 12 and the master, each once
  EXPECT_EQ(w11_.events.size(), 1u);
  EXPECT_EQ(result->unknown_pids, std::vector<int32_t>{99});
  auto only = router_.Route(Event("y", {Pid(12)}), 0);
  EXPECT_EQ(only->delivered, 1u);
  EXPECT_EQ(w12_.events.size(), 2u);
  EXPECT_EQ(w10_.events.size(), 1u);
  auto to_master_pid = router_.Route(Event("z", {Pid(1)}), 10);
  EXPECT_EQ(to_master_pid->delivered, 1u);
  EXPECT_EQ(master_.events.back().name(), "z");
}

TEST_F(EventRouterTest, RemovedSinksReceiveNothing) {
  router_.RemoveWorker(12);
  auto result = router_.Route(Event("x", {Pid(12)}), 0);
  EXPECT_EQ(result->delivered, 0u);
  EXPECT_EQ(result->unknown_pids, std::vector<int32_t>{12});
}

TEST_F(EventRouterTest, PerSenderOrderIsKept) {
  for (int i = 0; i < 1000; ++i) {
    v1::Event event = Event("n", {Master()});
    event.set_sequence(i + 1);
    ASSERT_TRUE(router_.Route(event, 10).ok());
  }
  ASSERT_EQ(master_.events.size(), 1000u);
  for (int i = 0; i < 1000; ++i)
    EXPECT_EQ(master_.events[i].sequence(), i + 1u);
}

TEST(ValidateEventTest, RefusesBadNamesAndHugeArgs) {
  EXPECT_EQ(ValidateEvent(Event("")).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ValidateEvent(Event(std::string(257, 'x'))).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ValidateEvent(Event("cluster2:ready")).code(),
            absl::StatusCode::kInvalidArgument);
  v1::Event big = Event("big");
  big.add_args()->set_string_value(std::string(2 << 20, 'x'));
  EXPECT_EQ(ValidateEvent(big).code(), absl::StatusCode::kResourceExhausted);
  v1::Event empty_target = Event("t");
  empty_target.add_targets();
  EXPECT_EQ(ValidateEvent(empty_target).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(ValidateEvent(Event("fine")).ok());
}

}  // namespace
}  // namespace cluster2
