#include "master/internal/spawn.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace cluster2 {
namespace {

bool Contains(const std::vector<std::string>& env, const std::string& entry) {
  return std::find(env.begin(), env.end(), entry) != env.end();
}

TEST(BuildWorkerEnvironmentTest,
     ReplacesInheritedActivationAndClusterVariables) {
  WorkerEnvironment worker;
  worker.cluster_name = "web";
  worker.master_address = "unix:/run/c/master.sock";
  worker.cache_address = "unix:/run/c/cache.sock";
  worker.worker_id = 3;
  worker.token = "t0k";
  worker.heartbeat_interval_ms = 250;
  std::vector<std::string> env = BuildWorkerEnvironment(
      {"PATH=/bin", "LISTEN_PID=1", "LISTEN_FDS=4", "LISTEN_FDNAMES=x",
       "CLUSTER2_WORKER_ID=9", "CLUSTER2_PROTO_DIR=/p", "HOME=/root"},
      {"APP_MODE=prod", "CLUSTER2_NAME=evil"}, worker);
  EXPECT_TRUE(Contains(env, "PATH=/bin"));
  EXPECT_TRUE(Contains(env, "HOME=/root"));
  EXPECT_TRUE(Contains(env, "APP_MODE=prod"));
  EXPECT_TRUE(Contains(env, "CLUSTER2_NAME=web"));
  EXPECT_TRUE(Contains(env, "CLUSTER2_MASTER=unix:/run/c/master.sock"));
  EXPECT_TRUE(Contains(env, "CLUSTER2_CACHE=unix:/run/c/cache.sock"));
  EXPECT_TRUE(Contains(env, "CLUSTER2_WORKER_ID=3"));
  EXPECT_TRUE(Contains(env, "CLUSTER2_WORKER_TOKEN=t0k"));
  EXPECT_TRUE(Contains(env, "CLUSTER2_HEARTBEAT_INTERVAL_MS=250"));
  EXPECT_TRUE(Contains(env, "LISTEN_FDS=1"));
  EXPECT_TRUE(Contains(env, "LISTEN_FDNAMES=app"));
  EXPECT_FALSE(Contains(env, "LISTEN_PID=1"));
  EXPECT_FALSE(Contains(env, "LISTEN_FDS=4"));
  EXPECT_FALSE(Contains(env, "CLUSTER2_WORKER_ID=9"));
  EXPECT_FALSE(Contains(env, "CLUSTER2_NAME=evil"));
  EXPECT_TRUE(Contains(env, "CLUSTER2_PROTO_DIR=/p"))
      << "a CLUSTER2_ name the master does not set passes through";
}

TEST(ResolveExecutableTest, SearchesPathAndChecksExplicitPaths) {
  auto sh = ResolveExecutable("sh", "");
  ASSERT_TRUE(sh.ok()) << sh.status();
  EXPECT_EQ(sh->front(), '/');
  EXPECT_EQ(ResolveExecutable("no-such-command-c2", "").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(ResolveExecutable("/no/such/file", "").status().code(),
            absl::StatusCode::kNotFound);
  char path[] = "/tmp/c2x-XXXXXX";
  close(mkstemp(path));  // mode 0600: not executable, even for root
  EXPECT_EQ(ResolveExecutable(path, "").status().code(),
            absl::StatusCode::kPermissionDenied);
  unlink(path);
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// The real launcher: the child sees the socket on fd 3, LISTEN_PID is its
// own pid, it runs in its own process group, and no other descriptor leaks.
TEST(PosixProcessLauncherTest, PassesTheSocketAsFd3AndNothingElse) {
  char dir_pattern[] = "/tmp/c2sp-XXXXXX";
  std::string dir = mkdtemp(dir_pattern);
  std::string out = dir + "/out";
  int sockets[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sockets), 0);
  // A descriptor without O_CLOEXEC, at a number no shell uses for itself:
  // the launcher must not leak it anyway.
  constexpr int kLeaky = 57;
  int null_fd = open("/dev/null", O_RDONLY);
  ASSERT_GE(null_fd, 0);
  ASSERT_EQ(dup2(null_fd, kLeaky), kLeaky);
  close(null_fd);

  SpawnSpec spec;
  spec.argv = {
      "sh", "-c",
      "echo \"$LISTEN_PID $$ $LISTEN_FDS $(cut -d' ' -f5 /proc/$$/stat)\" > " +
          out + "; readlink /proc/$$/fd/3 >> " + out +
          "; if [ -e /proc/$$/fd/" + std::to_string(kLeaky) +
          " ]; then echo leaked >> " + out + "; else echo closed >> " + out +
          "; fi"};
  spec.env = {"PATH=/usr/bin:/bin", "LISTEN_FDS=1"};
  spec.cwd = dir;
  spec.listen_fd = sockets[0];
  PosixProcessLauncher launcher;
  auto pid = launcher.Launch(spec);
  ASSERT_TRUE(pid.ok()) << pid.status();
  int status = 0;
  ASSERT_EQ(waitpid(*pid, &status, 0), *pid);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;

  std::string text = ReadFile(out);
  std::string p = std::to_string(*pid);
  EXPECT_EQ(text.substr(0, text.find('\n')), p + " " + p + " 1 " + p) << text;
  EXPECT_NE(text.find("\nsocket:["), std::string::npos)
      << "fd 3 is not the socket: " << text;
  EXPECT_NE(text.find("\nclosed\n"), std::string::npos) << text;
  close(kLeaky);
  close(sockets[0]);
  close(sockets[1]);
  std::system(("rm -rf " + dir).c_str());
}

TEST(PosixProcessLauncherTest, MissingCommandFailsBeforeFork) {
  PosixProcessLauncher launcher;
  SpawnSpec spec;
  spec.argv = {"/no/such/worker"};
  EXPECT_EQ(launcher.Launch(spec).status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace cluster2
