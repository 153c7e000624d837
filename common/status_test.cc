#include "common/status.h"

#include <cerrno>

#include "absl/status/statusor.h"
#include "common/grpc_status.h"
#include "gtest/gtest.h"

namespace cluster2 {
namespace {

TEST(ErrnoStatusTest, MapsCommonErrnoValues) {
  EXPECT_EQ(ErrnoStatus(ENOENT, "open x").code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(ErrnoStatus(EADDRINUSE, "bind").code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(ErrnoStatus(EACCES, "open").code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(ErrnoStatus(EIO, "read").code(), absl::StatusCode::kInternal);
  EXPECT_EQ(ErrnoStatus(ENOENT, "open x").message(),
            "open x: No such file or directory");
}

absl::StatusOr<int> Half(int n) {
  if (n % 2 != 0) return absl::InvalidArgumentError("odd");
  return n / 2;
}

absl::StatusOr<int> Quarter(int n) {
  CLUSTER2_ASSIGN_OR_RETURN(int half, Half(n));
  CLUSTER2_ASSIGN_OR_RETURN(int quarter, Half(half));
  return quarter;
}

absl::Status CheckEven(int n) {
  CLUSTER2_RETURN_IF_ERROR(Half(n).status());
  return absl::OkStatus();
}

TEST(StatusMacrosTest, PropagateErrorsAndValues) {
  EXPECT_EQ(*Quarter(8), 2);
  EXPECT_EQ(Quarter(6).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(CheckEven(4).ok());
  EXPECT_EQ(CheckEven(3).message(), "odd");
}

TEST(GrpcStatusTest, RoundTripsCodeAndMessage) {
  absl::Status status = absl::ResourceExhaustedError("too big");
  grpc::Status grpc_status = ToGrpcStatus(status);
  EXPECT_EQ(grpc_status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(grpc_status.error_message(), "too big");
  EXPECT_EQ(FromGrpcStatus(grpc_status), status);
  EXPECT_TRUE(ToGrpcStatus(absl::OkStatus()).ok());
}

}  // namespace
}  // namespace cluster2
