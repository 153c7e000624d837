#include "master/internal/config.h"

#include <unistd.h>

#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "master/master.h"

namespace cluster2 {
namespace {

TEST(ParseConfigJsonTest, AcceptsTheOriginalOptionsAsWritten) {
  auto config = ParseConfigJson(
      R"({"noWorkers": 2, "port": 9090, "monPort": 9091, "heartbeatInterval": 5000,
          "ecv": {"root": "/ecv", "mode": "control", "markUp": "/ecv/markUp",
                  "markDown": "/ecv/markDown", "disable": true},
          "cache": {"enable": true, "mode": "standalone"},
          "debug": {"webPort": 9092, "saveLiveEdit": true},
          "nanny": {"enable": true, "tolerance": 180000},
          "gc": {"monitor": true, "idleNotification": false},
          "warmUpPort": 9093, "stopTimeout": 60000, "maxAge": 3600,
          "skipCheckBusyPorts": false, "pids": "./pids"})");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->no_workers(), 2u);
  EXPECT_EQ(config->port(), 9090u);
  EXPECT_EQ(config->mon_port(), 9091u);
  EXPECT_EQ(config->heartbeat_interval(), 5000u);
  EXPECT_EQ(config->ecv().mark_up(), "/ecv/markUp");
  EXPECT_TRUE(config->ecv().disable());
  EXPECT_EQ(config->debug().web_port(), 9092u);
  EXPECT_EQ(config->nanny().tolerance(), 180000u);
  EXPECT_EQ(config->max_age(), 3600u);
}

TEST(ParseConfigJsonTest, NamesAnUnknownFieldByItsJsonPath) {
  auto config = ParseConfigJson(R"({"port": 1, "ecv": {"markup": "/x"}})");
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(config.status().message(), "unknown field 'ecv.markup'");
  EXPECT_EQ(ParseConfigJson(R"({"workers": 2})").status().message(),
            "unknown field 'workers'");
}

TEST(ParseConfigJsonTest, NamesAFieldWithTheWrongType) {
  auto config = ParseConfigJson(R"({"noWorkers": "many"})");
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(config.status().message(),
            "field 'noWorkers': invalid value \"many\" for type TYPE_UINT32");
  EXPECT_EQ(ParseConfigJson(R"({"port": -1})").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseConfigJson(R"({"ecv": {"mode": 3}})").status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(ParseConfigJsonTest, RefusesNumbersThatAreNotWholeNumbers) {
  auto config = ParseConfigJson(R"({"noWorkers": 1e3})");
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(config.status().message(),
            "field 'noWorkers': must be a whole number, not 1e3");
  EXPECT_EQ(
      ParseConfigJson(R"({"name": "a.5", "ecv": {"monitorInterval": 2.5}})")
          .status()
          .message(),
      "field 'ecv.monitorInterval': must be a whole number, not 2.5");
  EXPECT_EQ(ParseConfigJson(R"({"cache": {"maxMemory": 1E9}, "port": 1})")
                .status()
                .message(),
            "field 'cache.maxMemory': must be a whole number, not 1E9");
  // Strings with dots and exponents, and plain integers, are fine.
  auto fine = ParseConfigJson(
      R"({"name": "v1.0e3", "command": ["w", "2.5"], "noWorkers": 12})");
  ASSERT_TRUE(fine.ok()) << fine.status();
  EXPECT_EQ(fine->no_workers(), 12u);
  // A key with a raw newline (found by libFuzzer): still one line.
  absl::Status odd = ParseConfigJson("{\"a\nb\": 1.5}").status();
  EXPECT_EQ(odd.message(), "field 'a\\nb': must be a whole number, not 1.5");
  v1::ClusterConfig flags;
  absl::Status flag = ApplyConfigFlag("noWorkers", "1e3", &flags);
  EXPECT_EQ(flag.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(flag.message().find("must be a whole number"), std::string::npos)
      << flag;
}

TEST(ParseConfigJsonTest, MalformedJsonIsOneLine) {
  auto config = ParseConfigJson("{\"port\": 9090,\n");
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(std::string(config.status().message()).find('\n'),
            std::string::npos)
      << config.status();
  EXPECT_EQ(config.status().message().substr(0, 13), "invalid JSON:");
}

TEST(ApplyConfigFlagTest, OverridesTopLevelAndNestedFields) {
  v1::ClusterConfig config =
      *ParseConfigJson(R"({"port": 9090, "ecv": {"root": "/e"}})");
  ASSERT_TRUE(ApplyConfigFlag("port", "7070", &config).ok());
  ASSERT_TRUE(ApplyConfigFlag("ecv.mode", "monitor", &config).ok());
  ASSERT_TRUE(ApplyConfigFlag("heartbeat_interval", "250", &config).ok());
  ASSERT_TRUE(ApplyConfigFlag("name", "1234", &config).ok());  // a string field
  ASSERT_TRUE(ApplyConfigFlag("cache.enable", "false", &config).ok());
  EXPECT_EQ(config.port(), 7070u);
  EXPECT_EQ(config.ecv().mode(), "monitor");
  EXPECT_EQ(config.ecv().root(), "/e");
  EXPECT_EQ(config.heartbeat_interval(), 250u);
  EXPECT_EQ(config.name(), "1234");
  EXPECT_FALSE(config.cache().enable());
  absl::Status bad = ApplyConfigFlag("prot", "1", &config);
  EXPECT_EQ(bad.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(bad.message(), "flag --prot: unknown field 'prot'");
}

TEST(ApplyConfigDefaultsTest, FillsUnsetFieldsOnly) {
  v1::ClusterConfig config;
  config.set_port(0);  // explicitly "any free port"
  ApplyConfigDefaults(6, &config);
  EXPECT_EQ(config.no_workers(), 6u);
  EXPECT_EQ(config.port(), 0u);
  EXPECT_EQ(config.mon_port(), 8081u);
  EXPECT_EQ(config.name(), "default");
  EXPECT_EQ(config.heartbeat_interval(), 5000u);
  EXPECT_EQ(config.ecv().mode(), "control");
  EXPECT_TRUE(config.cache().enable());
  EXPECT_EQ(config.cache().mode(), "standalone");
  EXPECT_EQ(config.nanny().tolerance(), 15000u);

  v1::ClusterConfig unset;
  ApplyConfigDefaults(0, &unset);
  EXPECT_EQ(unset.port(), 8080u);
  EXPECT_EQ(unset.no_workers(), 1u);
}

v1::ClusterConfig Valid() {
  v1::ClusterConfig config;
  config.add_command("/bin/true");
  ApplyConfigDefaults(2, &config);
  return config;
}

TEST(ValidateConfigTest, AcceptsDefaults) {
  EXPECT_TRUE(ValidateConfig(Valid()).ok());
}

TEST(ValidateConfigTest, RejectsEqualPorts) {
  v1::ClusterConfig config = Valid();
  config.set_port(9090);
  config.set_mon_port(9090);
  absl::Status status = ValidateConfig(config);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(),
            "field 'monPort': equals 'port' (9090): the monitor and "
            "application ports must "
            "differ");
  config.set_port(0);
  config.set_mon_port(0);  // two free ports are not equal
  EXPECT_TRUE(ValidateConfig(config).ok());
}

TEST(ValidateConfigTest, NamesEachBadField) {
  struct Case {
    std::function<void(v1::ClusterConfig&)> change;
    std::string field;
  };
  std::vector<Case> cases = {
      {[](auto& c) { c.set_port(70000); }, "'port'"},
      {[](auto& c) { c.set_no_workers(5000); }, "'noWorkers'"},
      {[](auto& c) { c.set_name("a/b"); }, "'name'"},
      {[](auto& c) { c.mutable_ecv()->set_mode("both"); }, "'ecv.mode'"},
      {[](auto& c) { c.mutable_ecv()->set_root("ecv"); }, "'ecv.root'"},
      {[](auto& c) { c.mutable_cache()->set_mode("cluster"); }, "'cache.mode'"},
      {[](auto& c) { c.set_heartbeat_interval(1); }, "'heartbeatInterval'"},
      {[](auto& c) { c.clear_command(); }, "'command'"},
      {[](auto& c) { c.mutable_debug()->set_web_port(c.mon_port()); },
       "'debug.webPort'"},
  };
  for (const Case& test : cases) {
    v1::ClusterConfig config = Valid();
    test.change(config);
    absl::Status status = ValidateConfig(config);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << test.field;
    EXPECT_NE(status.message().find(test.field), absl::string_view::npos)
        << status;
  }
}

TEST(ConfigFromArgsTest, FileThenFlagsThenCommand) {
  char path[] = "/tmp/c2cfg-XXXXXX";
  int fd = mkstemp(path);
  std::string json = R"({"noWorkers": 2, "port": 9090, "command": ["old"]})";
  ASSERT_EQ(write(fd, json.data(), json.size()),
            static_cast<ssize_t>(json.size()));
  close(fd);
  auto config =
      ConfigFromArgs({"--config", path, "--port=7000", "--stop-timeout", "100",
                      "--", "./worker", "--flag"});
  unlink(path);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->no_workers(), 2u);
  EXPECT_EQ(config->port(), 7000u);
  EXPECT_EQ(config->stop_timeout(), 100u);
  ASSERT_EQ(config->command_size(), 2);
  EXPECT_EQ(config->command(0), "./worker");
  EXPECT_EQ(config->command(1), "--flag");
}

TEST(ConfigFromArgsTest, RejectsStrayArgumentsAndMissingValues) {
  EXPECT_EQ(
      ConfigFromArgs({"worker"}).status().message(),
      "unexpected argument 'worker' (the worker command goes after '--')");
  EXPECT_EQ(ConfigFromArgs({"--port"}).status().message(),
            "flag --port needs a value");
  EXPECT_EQ(ConfigFromArgs({"--help"}).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ConfigFromArgs({"--port=1"}).status().message(),
            "field 'command': no worker command: give one in the config or "
            "after '--'");
}

// Parses, completes and validates `json`; the error message if any.
std::string Check(const std::string& json, v1::ClusterConfig* out = nullptr) {
  auto config = ParseConfigJson(json);
  if (!config.ok()) return std::string(config.status().message());
  ApplyConfigDefaults(4, &*config);
  absl::Status status = ValidateConfig(*config);
  if (out != nullptr) *out = *config;
  return std::string(status.message());
}

TEST(ConfigGroupsTest, GroupsReplaceCommandAndAddUpToNoWorkers) {
  v1::ClusterConfig config;
  EXPECT_EQ(Check(R"({"env": {"A": "1"}, "cwd": "/srv", "groups": [
                     {"name": "cpp", "command": ["/bin/sh"], "noWorkers": 2},
                     {"name": "node", "command": ["node", "w.js"]}]})",
                  &config),
            "");
  EXPECT_EQ(config.no_workers(), 3u) << "node defaults to 1 worker";
  EXPECT_EQ(config.groups(1).cwd(), "/srv");
}

TEST(ConfigGroupsTest, RefusesAmbiguousOrBrokenGroupsWithOneLine) {
  EXPECT_EQ(Check(R"({"command": ["/bin/sh"], "groups": [
                     {"name": "a", "command": ["/bin/sh"]}]})"),
            "field 'command': give either 'command' (or a command after "
            "'--') or 'groups', not both");
  EXPECT_EQ(Check(R"({"groups": [{"name": "a", "command": ["/bin/sh"]},
                                 {"name": "a", "command": ["/bin/sh"]}]})"),
            "field 'groups[1].name': 'a' is used twice");
  EXPECT_EQ(Check(R"({"groups": [{"name": "a b", "command": ["/bin/sh"]}]})"),
            "field 'groups[0].name': must be 1-64 characters of "
            "[A-Za-z0-9._-]");
  EXPECT_EQ(Check(R"({"groups": [{"name": "a"}]})"),
            "field 'groups[0].command': group 'a' has no worker command");
  EXPECT_EQ(Check(R"({"noWorkers": 5, "groups": [
                     {"name": "a", "command": ["/bin/sh"], "noWorkers": 2}]})"),
            "field 'noWorkers': is 5 but the groups' workers add up to 2: "
            "with 'groups', give each group's noWorkers");
  EXPECT_EQ(Check(R"({"groups": [{"name": "a", "command": ["/bin/sh"],
                                  "env": {"CLUSTER2_MASTER": "x"}}]})"),
            "field 'groups[0].env': 'CLUSTER2_MASTER' is set by the master "
            "for each worker");
  EXPECT_EQ(Check(R"({"command": ["/bin/sh"], "env": {"LISTEN_FDS": "2"}})"),
            "field 'env': 'LISTEN_FDS' is set by the master for each worker");
  EXPECT_EQ(Check(R"({"command": ["/bin/sh"],
                      "env": {"CLUSTER2_PROTO_DIR": "/p"}})"),
            "")
      << "other CLUSTER2_ names reach the workers";
  EXPECT_EQ(Check(R"({"groups": [{"name": "a", "command": ["/bin/sh"],
                                  "nWorkers": 2}]})"),
            "unknown field 'groups[0].nWorkers'");
}

TEST(ConfigControlTest, TcpControlIsMutualTlsOnly) {
  EXPECT_EQ(Check(R"({"command": ["/bin/sh"], "control": {
                     "tcp": "0.0.0.0:7070", "cert": "s.pem", "key": "s.key",
                     "clientCa": "ca.pem"}})"),
            "");
  EXPECT_EQ(Check(R"({"command": ["/bin/sh"], "control": {
                     "tcp": "0.0.0.0:7070", "cert": "s.pem", "key": "s.key"}})"),
            "field 'control.clientCa': is required with control.tcp (the "
            "control API on TCP is mutual TLS only)");
  EXPECT_EQ(Check(R"({"command": ["/bin/sh"], "control": {"tcp": "7070",
                     "cert": "s.pem", "key": "s.key", "clientCa": "c"}})"),
            "field 'control.tcp': must be HOST:PORT, e.g. 0.0.0.0:7070");
  EXPECT_EQ(Check(R"({"command": ["/bin/sh"], "control": {"cert": "s.pem"}})"),
            "field 'control.tcp': is required with control.cert, key and "
            "clientCa");
}

TEST(ConfigReloadTest, FixedFieldsAreListedAndKeptReloadableOnesApplied) {
  v1::ClusterConfig running;
  ASSERT_EQ(
      Check(R"({"port": 9000, "command": ["/bin/sh"], "surge": 1})", &running),
      "");
  v1::ClusterConfig next;
  ASSERT_EQ(Check(R"({"port": 9001, "monPort": 9002, "command": ["/bin/ls"],
                      "surge": 2, "noWorkers": 3})",
                  &next),
            "");
  EXPECT_EQ(FieldsNeedingRestart(running, next),
            (std::vector<std::string>{"port", "monPort"}));
  v1::ClusterConfig applied = AppliedConfig(running, next);
  EXPECT_EQ(applied.port(), 9000u);
  EXPECT_EQ(applied.mon_port(), running.mon_port());
  EXPECT_EQ(applied.surge(), 2u);
  EXPECT_EQ(applied.no_workers(), 3u);
  ASSERT_EQ(applied.command_size(), 1);
  EXPECT_EQ(applied.command(0), "/bin/ls");
  EXPECT_TRUE(FieldsNeedingRestart(running, running).empty());

  // The ECV's mode and monitor check apply; its paths do not.
  next = running;
  next.mutable_ecv()->set_mode("monitor");
  next.mutable_ecv()->set_monitor("/health");
  next.mutable_ecv()->set_root("/lb");
  EXPECT_EQ(FieldsNeedingRestart(running, next),
            std::vector<std::string>{"ecv.root"});
  applied = AppliedConfig(running, next);
  EXPECT_EQ(applied.ecv().mode(), "monitor");
  EXPECT_EQ(applied.ecv().monitor(), "/health");
  EXPECT_EQ(applied.ecv().root(), running.ecv().root());
}

}  // namespace
}  // namespace cluster2
