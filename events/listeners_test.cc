#include "events/listeners.h"

#include "gtest/gtest.h"

namespace cluster2 {
namespace {

v1::Event Named(const std::string& name) { return ToProto(name, {}, {}); }

TEST(ListenerSetTest, OnOnceRemoveAndRemoveAll) {
  ListenerSet listeners;
  int on = 0, once = 0, other = 0;
  uint64_t id = listeners.Add(
      "e", [&](const ClusterEvent&) { ++on; }, false);
  listeners.Add(
      "e", [&](const ClusterEvent&) { ++once; }, true);
  listeners.Add(
      "f", [&](const ClusterEvent&) { ++other; }, false);
  listeners.Dispatch(Named("e"));
  listeners.Dispatch(Named("e"));
  EXPECT_EQ(on, 2);
  EXPECT_EQ(once, 1);
  EXPECT_EQ(other, 0);
  EXPECT_TRUE(listeners.Remove(id));
  EXPECT_FALSE(listeners.Remove(id));
  listeners.Dispatch(Named("e"));
  EXPECT_EQ(on, 2);
  listeners.RemoveAll("");
  listeners.Dispatch(Named("f"));
  EXPECT_EQ(other, 0);
}

TEST(EventProtoTest, TargetsAndArgsRoundTrip) {
  google::protobuf::Value arg;
  arg.set_string_value("x");
  v1::Event event = ToProto("n",
                            {EmitTarget::Self(), EmitTarget::Master(),
                             EmitTarget::Workers(), EmitTarget::Pid(7)},
                            {arg});
  ASSERT_EQ(event.targets_size(), 4);
  EXPECT_TRUE(event.targets(0).self());
  EXPECT_TRUE(event.targets(1).master());
  EXPECT_TRUE(event.targets(2).workers());
  EXPECT_EQ(event.targets(3).pid(), 7);
  event.set_from_pid(3);
  event.set_sequence(9);
  ClusterEvent back = FromProto(event);
  EXPECT_EQ(back.name, "n");
  EXPECT_EQ(back.args[0].string_value(), "x");
  EXPECT_EQ(back.from_pid, 3);
  EXPECT_EQ(back.sequence, 9u);
}

}  // namespace
}  // namespace cluster2
