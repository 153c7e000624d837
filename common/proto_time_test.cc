#include "common/proto_time.h"

#include "gtest/gtest.h"

namespace cluster2 {
namespace {

TEST(ProtoTimeTest, TimestampsRoundTripIncludingBeforeTheEpoch) {
  for (absl::Time time :
       {absl::FromUnixMillis(1700000000123), absl::UnixEpoch(),
        absl::UnixEpoch() - absl::Milliseconds(1500)}) {
    google::protobuf::Timestamp proto;
    ToProto(time, &proto);
    EXPECT_GE(proto.nanos(), 0);
    EXPECT_EQ(FromProto(proto), time);
  }
  google::protobuf::Timestamp before;
  ToProto(absl::UnixEpoch() - absl::Milliseconds(1500), &before);
  EXPECT_EQ(before.seconds(), -2);
  EXPECT_EQ(before.nanos(), 500000000);
}

TEST(ProtoTimeTest, DurationsRoundTripWithOneSign) {
  for (absl::Duration duration :
       {absl::Milliseconds(2500), absl::ZeroDuration(),
        -absl::Milliseconds(2500)}) {
    google::protobuf::Duration proto;
    ToProto(duration, &proto);
    EXPECT_TRUE(proto.seconds() == 0 || proto.nanos() == 0 ||
                (proto.seconds() < 0) == (proto.nanos() < 0));
    EXPECT_EQ(FromProto(proto), duration);
  }
}

}  // namespace
}  // namespace cluster2
