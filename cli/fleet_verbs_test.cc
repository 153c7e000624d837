// --hosts, the TLS flags and rollout: their usage errors, which come before
// any connection (exit 2), and what a host that cannot be reached gives.
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "cli/exit_codes.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace cluster2 {
namespace {

using ::testing::HasSubstr;

struct Result {
  int code;
  std::string out;
  std::string err;
};

Result Ctl(std::vector<std::string> args) {
  std::ostringstream out, err;
  int code = RunCtl(args, out, err);
  return {code, out.str(), err.str()};
}

// A hosts file with `text`, removed at the end of the test.
class HostsFile {
 public:
  explicit HostsFile(const std::string& text)
      : path_(std::string(std::getenv("TEST_TMPDIR") != nullptr
                              ? std::getenv("TEST_TMPDIR")
                              : "/tmp") +
              "/hosts-" + std::to_string(getpid()) + "-" +
              std::to_string(counter_++)) {
    std::ofstream(path_) << text;
  }
  ~HostsFile() { std::remove(path_.c_str()); }
  const std::string& path() const { return path_; }

 private:
  static inline int counter_ = 0;
  std::string path_;
};

TEST(FleetVerbsTest, ABrokenHostsFileIsAUsageErrorNamingTheLine) {
  Result missing = Ctl({"--hosts", "/nonexistent-c2/hosts", "workers"});
  EXPECT_EQ(missing.code, kExitUsage);
  EXPECT_EQ(missing.err,
            "cluster2ctl: --hosts: cannot read /nonexistent-c2/hosts\n");
  HostsFile bad("# fleet\nweb1 unix:/x/master.sock\nweb2\n");
  Result line = Ctl({"--hosts", bad.path(), "workers"});
  EXPECT_EQ(line.code, kExitUsage);
  EXPECT_THAT(line.err, HasSubstr(" line 3: expected \"NAME ADDRESS\""));
  HostsFile twice("web1 unix:/x/m.sock\nweb1 10.0.0.2:7070\n");
  EXPECT_THAT(Ctl({"--hosts", twice.path(), "workers"}).err,
              HasSubstr("line 2: 'web1' is named twice"));
  HostsFile port("web1 10.0.0.2\n");
  EXPECT_THAT(Ctl({"--hosts", port.path(), "workers"}).err,
              HasSubstr("line 1: an address is unix:PATH or HOST:PORT"));
  HostsFile empty("# nobody\n\n");
  EXPECT_THAT(Ctl({"--hosts", empty.path(), "workers"}).err,
              HasSubstr(": no hosts"));
}

TEST(FleetVerbsTest, HostsGoWithWorkersStatusAndRolloutOnly) {
  HostsFile hosts("web1 unix:/nonexistent-c2/master.sock\n");
  Result restart = Ctl({"--hosts", hosts.path(), "restart"});
  EXPECT_EQ(restart.code, kExitUsage);
  EXPECT_EQ(restart.err,
            "cluster2ctl: --hosts works with workers, status NAME and "
            "rollout (see cluster2ctl --help)\n");
  EXPECT_EQ(Ctl({"--hosts", hosts.path(), "status"}).code, kExitUsage);
  Result alone = Ctl({"rollout"});
  EXPECT_EQ(alone.code, kExitUsage);
  EXPECT_THAT(alone.err, HasSubstr("rollout needs --hosts FILE"));
  Result quiet = Ctl({"--hosts", hosts.path(), "rollout", "--quiet", "soon"});
  EXPECT_EQ(quiet.code, kExitUsage);
  EXPECT_THAT(quiet.err,
              HasSubstr("--quiet takes a positive duration, not 'soon'"));
}

TEST(FleetVerbsTest, AnUnreachableHostIsReportedAndTheOthersStillListed) {
  HostsFile hosts(
      "web1 unix:/nonexistent-c2/master.sock\n"
      "web2 127.0.0.1:1\n");
  Result workers = Ctl({"--hosts", hosts.path(), "-o", "json", "workers"});
  EXPECT_EQ(workers.code, kExitFailed);
  EXPECT_THAT(workers.out, HasSubstr("{\"hosts\":[{\"host\":\"web1\""));
  EXPECT_THAT(workers.out, HasSubstr("\"error\":"));
  // A TCP master needs its CA: said before any connection.
  EXPECT_THAT(workers.out, HasSubstr("is on TCP: give its CA with --tls-ca"));
  // A rollout takes no host out unless every host answers.
  Result rollout = Ctl({"--hosts", hosts.path(), "rollout"});
  EXPECT_EQ(rollout.code, kExitFailed);
  EXPECT_THAT(rollout.err, HasSubstr("rollout not started: web1: "));
  EXPECT_EQ(rollout.out, "");
}

TEST(FleetVerbsTest, TlsFilesMustBePem) {
  HostsFile not_pem("hello\n");
  Result result =
      Ctl({"--master", "127.0.0.1:1", "--tls-ca", not_pem.path(), "workers"});
  EXPECT_EQ(result.code, kExitFailed);
  EXPECT_EQ(result.err, "cluster2ctl: cannot read a PEM file at '" +
                            not_pem.path() + "'\n");
}

}  // namespace
}  // namespace cluster2
