#include "master/internal/output_collector.h"

#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "common/log.h"
#include "gtest/gtest.h"

namespace cluster2 {
namespace {

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

TEST(OutputCollectorTest, LogsWholeLinesTaggedWithTheWorker) {
  char path[] = "/tmp/c2log-XXXXXX";
  close(mkstemp(path));
  ASSERT_TRUE(OpenLogFile(path).ok());
  {
    auto collector = OutputCollector::Create();
    ASSERT_TRUE(collector.ok()) << collector.status();
    int first[2], second[2];
    ASSERT_EQ(pipe(first), 0);
    ASSERT_EQ(pipe(second), 0);
    (*collector)->Watch(first[0], "worker 0", 100);
    (*collector)->Watch(second[0], "worker 1", 101);
    std::string a = "hello from ze";
    std::string b = "ro\nsecond line\nno newline at the end";
    ASSERT_EQ(write(first[1], a.data(), a.size()),
              static_cast<ssize_t>(a.size()));
    ASSERT_EQ(write(second[1], "one\n", 4), 4);
    ASSERT_EQ(write(first[1], b.data(), b.size()),
              static_cast<ssize_t>(b.size()));
    std::string long_line(20000, 'x');
    long_line += "\n";
    ASSERT_EQ(write(second[1], long_line.data(), long_line.size()),
              static_cast<ssize_t>(long_line.size()));
    close(first[1]);
    close(second[1]);
  }  // the destructor writes what is left
  std::string log = ReadFile(path);
  unlink(path);
  EXPECT_NE(log.find(" OUT worker 0[100] hello from zero\n"), std::string::npos)
      << log;
  EXPECT_NE(log.find(" OUT worker 0[100] second line\n"), std::string::npos)
      << log;
  EXPECT_NE(log.find(" OUT worker 0[100] no newline at the end\n"),
            std::string::npos)
      << log;
  EXPECT_NE(log.find(" OUT worker 1[101] one\n"), std::string::npos) << log;
  EXPECT_NE(log.find(" OUT worker 1[101] " + std::string(16384, 'x') + "\n"),
            std::string::npos);
  EXPECT_NE(
      log.find(" OUT worker 1[101] " + std::string(20000 - 16384, 'x') + "\n"),
      std::string::npos);
}

TEST(LogFileTest, ReopenFollowsARotation) {
  char path[] = "/tmp/c2log-XXXXXX";
  close(mkstemp(path));
  std::string rotated = std::string(path) + ".1";
  ASSERT_TRUE(OpenLogFile(path).ok());
  LogInfo("before rotation");
  ASSERT_EQ(rename(path, rotated.c_str()), 0);
  LogInfo("still the old file");
  ASSERT_TRUE(ReopenLogFile().ok());
  LogInfo("after reopen");
  std::string old_file = ReadFile(rotated);
  std::string new_file = ReadFile(path);
  unlink(path);
  unlink(rotated.c_str());
  EXPECT_NE(old_file.find("before rotation"), std::string::npos);
  EXPECT_NE(old_file.find("still the old file"), std::string::npos);
  EXPECT_EQ(new_file.find("still the old file"), std::string::npos);
  EXPECT_NE(new_file.find("after reopen"), std::string::npos);
  EXPECT_EQ(OpenLogFile("/nonexistent-dir/x.log").code(),
            absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace cluster2
