#include "cache_server/cache_errors.h"

#include "cluster2/v1/cache.pb.h"
#include "gtest/gtest.h"

namespace cluster2 {
namespace {

TEST(CacheErrorsTest, ThePayloadRoundTripsAndOkStaysOk) {
  absl::Status status = MakeCacheError(absl::StatusCode::kNotFound,
                                       CacheError::kNamespaceNotFound, "gone");
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(status.message(), "gone");
  EXPECT_EQ(GetCacheError(status), CacheError::kNamespaceNotFound);
  EXPECT_EQ(std::string(*status.GetPayload(kCacheErrorTypeUrl)),
            "NAMESPACE_NOT_FOUND");
  EXPECT_FALSE(GetCacheError(absl::NotFoundError("gone")).has_value());
  EXPECT_TRUE(WithCacheError(absl::OkStatus(), CacheError::kHoldLost).ok());
  EXPECT_FALSE(GetCacheError(absl::OkStatus()).has_value());
  EXPECT_FALSE(ParseCacheError("SOMETHING_NEWER").has_value());
}

// The names and numbers are those of cluster2.v1.CacheErrorReason, which a
// client in any language reads.
TEST(CacheErrorsTest, NamesAndNumbersMatchTheProto) {
  const google::protobuf::EnumDescriptor* reasons =
      v1::CacheErrorReason_descriptor();
  for (int i = 0; i < reasons->value_count(); ++i) {
    const google::protobuf::EnumValueDescriptor* value = reasons->value(i);
    if (value->number() == 0) continue;
    std::optional<CacheError> error = ParseCacheError(value->name());
    ASSERT_TRUE(error.has_value()) << value->name();
    EXPECT_EQ(static_cast<int>(*error), value->number()) << value->name();
    EXPECT_EQ(CacheErrorName(*error), value->name());
  }
  EXPECT_EQ(reasons->value_count(), 13) << "a reason missing on either side";
}

}  // namespace
}  // namespace cluster2
