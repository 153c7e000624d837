#include "cache_server/internal/expiry_index.h"

#include "gtest/gtest.h"

namespace cluster2 {
namespace {

TEST(ExpiryIndexTest, TheSoonestDueKeyFirstAndMovesAreTracked) {
  ExpiryIndex index;
  std::string a = "a", b = "b";
  absl::Time t0 = absl::FromUnixSeconds(100);
  index.Update(&a, std::nullopt, t0 + absl::Seconds(5));
  index.Update(&b, std::nullopt, t0 + absl::Seconds(1));
  EXPECT_EQ(index.FirstDue(t0), nullptr);
  EXPECT_EQ(index.FirstDue(t0 + absl::Seconds(1)), &b) << "due at its time";
  // b's TTL was renewed: a is first now.
  index.Update(&b, t0 + absl::Seconds(1), t0 + absl::Seconds(9));
  EXPECT_EQ(index.FirstDue(t0 + absl::Seconds(6)), &a);
  index.Update(&a, t0 + absl::Seconds(5), std::nullopt);  // no TTL any more
  EXPECT_EQ(index.FirstDue(t0 + absl::Seconds(6)), nullptr);
  EXPECT_EQ(index.size(), 1u);
}

}  // namespace
}  // namespace cluster2
