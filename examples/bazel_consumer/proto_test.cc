// cluster2's protos as a C++ library of another workspace.
#include "cluster2/v1/cluster.grpc.pb.h"
#include "gtest/gtest.h"

TEST(ProtoTest, MessagesAndStubsOfTheClusterApiAreThere) {
  cluster2::v1::ScaleRequest request;
  request.set_workers(4);
  request.set_group("web");
  std::string wire = request.SerializeAsString();
  cluster2::v1::ScaleRequest back;
  ASSERT_TRUE(back.ParseFromString(wire));
  EXPECT_EQ(back.workers(), 4u);
  EXPECT_EQ(back.group(), "web");
  EXPECT_STREQ(cluster2::v1::Cluster::service_full_name(),
               "cluster2.v1.Cluster");
}
