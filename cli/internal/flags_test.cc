#include "cli/internal/flags.h"

#include "gtest/gtest.h"

namespace cluster2::ctl {
namespace {

TEST(ParseCliDurationTest, UnitsAndPlainSeconds) {
  EXPECT_EQ(ParseCliDuration("500ms"), absl::Milliseconds(500));
  EXPECT_EQ(ParseCliDuration("5s"), absl::Seconds(5));
  EXPECT_EQ(ParseCliDuration("2m"), absl::Minutes(2));
  EXPECT_EQ(ParseCliDuration("1h30m"), absl::Minutes(90));
  EXPECT_EQ(ParseCliDuration("2"), absl::Seconds(2));
  EXPECT_EQ(ParseCliDuration("0.5"), absl::Milliseconds(500));
  EXPECT_EQ(ParseCliDuration("0"), absl::ZeroDuration());
}

TEST(ParseCliDurationTest, RefusesNegativeInfiniteAndText) {
  for (const char* text :
       {"", "soon", "-5s", "-1", "inf", "nan", "5 s", "5x", "1e400"}) {
    EXPECT_EQ(ParseCliDuration(text), std::nullopt) << text;
  }
}

}  // namespace
}  // namespace cluster2::ctl
