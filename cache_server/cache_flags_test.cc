#include "cache_server/cache_flags.h"

#include "gtest/gtest.h"

namespace cluster2 {
namespace {

TEST(CacheFlagsTest, EveryOptionAndTheDefaults) {
  auto defaults = ParseCacheServerArgs({"--socket=/run/c.sock"});
  ASSERT_TRUE(defaults.ok());
  EXPECT_EQ(defaults->socket_path, "/run/c.sock");
  EXPECT_EQ(defaults->data_dir, "");
  EXPECT_EQ(defaults->max_value_bytes, size_t{4} << 20);
  EXPECT_EQ(defaults->max_memory_bytes, 0u);
  auto all = ParseCacheServerArgs({"--socket=s", "--data-dir=/d",
                                   "--max-value-bytes=64k", "--max-memory=1G"});
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->data_dir, "/d");
  EXPECT_EQ(all->max_value_bytes, size_t{64} << 10);
  EXPECT_EQ(all->max_memory_bytes, uint64_t{1} << 30);
  EXPECT_EQ(all->backend, "");
  auto redis = ParseCacheServerArgs(
      {"--socket=s", "--backend=unix:/run/redis/redis.sock"});
  ASSERT_TRUE(redis.ok());
  EXPECT_EQ(redis->backend, "unix:/run/redis/redis.sock");
  auto bad = ParseCacheServerArgs({"--socket=s", "--backend=10.0.0.1:6379"});
  EXPECT_EQ(bad.status().message(),
            "bad argument '--backend=10.0.0.1:6379': a Redis address is "
            "redis://HOST[:PORT], unix:/path/redis.sock or "
            "redis-sentinel://HOST[:PORT],.../MASTER_NAME");
}

TEST(CacheFlagsTest, ABadArgumentIsNamed) {
  for (const char* bad :
       {"--socket", "--sockets=x", "--max-memory=12q", "--max-value-bytes=0",
        "--max-memory=-1", "--data_dir=/d", "stray"}) {
    auto parsed = ParseCacheServerArgs({bad});
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument)
        << bad;
    EXPECT_EQ(parsed.status().message(),
              std::string("bad argument '") + bad + "'");
  }
}

TEST(CacheFlagsTest, ByteCounts) {
  uint64_t bytes = 0;
  ASSERT_TRUE(ParseByteCount("65536", &bytes));
  EXPECT_EQ(bytes, 65536u);
  ASSERT_TRUE(ParseByteCount("64m", &bytes));
  EXPECT_EQ(bytes, uint64_t{64} << 20);
  for (const char* bad :
       {"", "k", "+1", "1.5m", "1 m", "99999999999999999999", "17179869184g"}) {
    EXPECT_FALSE(ParseByteCount(bad, &bytes)) << bad;
  }
}

}  // namespace
}  // namespace cluster2
