#include "common/run_paths.h"

#include <map>
#include <string>

#include "gtest/gtest.h"

namespace cluster2 {
namespace {

TEST(DefaultRunDirTest, PrefersXdgRuntimeDir) {
  std::map<std::string, const char*> env = {
      {"XDG_RUNTIME_DIR", "/run/user/1000"}};
  auto getenv = [&env](const char* name) -> const char* {
    auto it = env.find(name);
    return it == env.end() ? nullptr : it->second;
  };
  EXPECT_EQ(DefaultRunDir("web", getenv, 1000), "/run/user/1000/cluster2/web");
  env.clear();
  EXPECT_EQ(DefaultRunDir("web", getenv, 1000), "/tmp/cluster2-1000/web");
  env["XDG_RUNTIME_DIR"] = "relative";  // not a usable runtime dir
  EXPECT_EQ(DefaultRunDir("web", getenv, 0), "/tmp/cluster2-0/web");
}

TEST(DefaultCacheDataDirTest, SurvivesRebootsAndFollowsXdg) {
  std::map<std::string, const char*> env = {{"HOME", "/home/ada"}};
  auto getenv = [&env](const char* name) -> const char* {
    auto it = env.find(name);
    return it == env.end() ? nullptr : it->second;
  };
  EXPECT_EQ(DefaultCacheDataDir("web", getenv, 1000),
            "/home/ada/.local/state/cluster2/web");
  EXPECT_EQ(DefaultCacheDataDir("web", getenv, 0), "/var/lib/cluster2/web");
  env["XDG_STATE_HOME"] = "/srv/state";
  EXPECT_EQ(DefaultCacheDataDir("web", getenv, 1000),
            "/srv/state/cluster2/web");
  EXPECT_EQ(DefaultCacheDataDir("web", getenv, 0), "/srv/state/cluster2/web");
}

TEST(OnTmpfsTest, DevShmIsTmpfsAndAMissingPathIsJudgedByItsParent) {
  if (!OnTmpfs("/dev/shm")) GTEST_SKIP() << "no tmpfs at /dev/shm here";
  EXPECT_TRUE(OnTmpfs("/dev/shm/not/yet/created"));
  EXPECT_FALSE(OnTmpfs("/proc/self"));
}

}  // namespace
}  // namespace cluster2
