#include "cache_server/internal/memory_budget.h"

#include "gtest/gtest.h"

namespace cluster2 {
namespace {

TEST(MemoryBudgetTest, NoBudgetFitsEverything) {
  MemoryBudget budget(0);
  budget.Charge(1 << 30, true);
  EXPECT_TRUE(budget.Fits(1 << 30));
  EXPECT_TRUE(budget.CanFit(1 << 30, 0));
}

TEST(MemoryBudgetTest, OldestFirstSkippingTheKeptKey) {
  MemoryBudget budget(300);
  std::string a = "a", b = "b", c = "c";
  auto ha = budget.Insert({nullptr, &a, 100});
  auto hb = budget.Insert({nullptr, &b, 100});
  budget.Insert({nullptr, &c, 100});
  budget.Charge(300, true);
  EXPECT_FALSE(budget.Fits(1));
  EXPECT_EQ(budget.Oldest(nullptr)->key, &a);
  budget.Touch(ha);  // a is now the most recent
  EXPECT_EQ(budget.Oldest(nullptr)->key, &b);
  EXPECT_EQ(budget.Oldest(&*hb)->key, &c) << "never the kept key";
  budget.Remove(hb);
  budget.Charge(-100, true);
  EXPECT_TRUE(budget.Fits(100));
  EXPECT_EQ(budget.bytes(), 200u);
}

TEST(MemoryBudgetTest, PersistentBytesCannotBeEvicted) {
  MemoryBudget budget(300);
  budget.Charge(200, /*evictable=*/false);
  budget.Charge(100, /*evictable=*/true);
  EXPECT_TRUE(budget.CanFit(100, 0)) << "by evicting the 100 evictable";
  EXPECT_FALSE(budget.CanFit(101, 0));
  EXPECT_FALSE(budget.CanFit(100, 100)) << "the kept key stays";
}

}  // namespace
}  // namespace cluster2
