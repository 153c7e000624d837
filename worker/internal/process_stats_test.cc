#include "worker/internal/process_stats.h"

#include <fcntl.h>
#include <unistd.h>

#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace cluster2 {
namespace {

TEST(ProcessStatsTest, CountsThreadsFdsAndMemory) {
  ProcessStats before = ReadProcessStats();
  EXPECT_GT(before.rss_bytes, 0u);
  EXPECT_GE(before.threads, 1u);
  EXPECT_GE(before.open_fds, 3u);

  int fd = open("/dev/null", O_RDONLY);
  ASSERT_GE(fd, 0);
  std::vector<char> memory(64 << 20, 1);  // touched: counts in RSS
  std::thread thread([] {});
  ProcessStats during = ReadProcessStats();
  thread.join();
  close(fd);

  EXPECT_EQ(during.open_fds, before.open_fds + 1);
  EXPECT_GE(during.rss_bytes, before.rss_bytes + (60u << 20));
  EXPECT_GE(during.cpu_time, before.cpu_time);
  EXPECT_EQ(memory[12345], 1);
}

}  // namespace
}  // namespace cluster2
