// cluster2ctl's verbs: each resolves the master, calls one RPC and prints a
// table (default) or JSON (-o json).
//
// Exit codes scripts can rely on: 0 success; 1 the master answered with an
// error; 2 usage error; 3 no master is running (or it cannot be reached).
//
// Thread-compatible: one invocation per process.
#ifndef CLUSTER2_CLI_COMMANDS_H_
#define CLUSTER2_CLI_COMMANDS_H_

#include <iosfwd>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "cluster2/v1/cluster.pb.h"

namespace cluster2 {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;
inline constexpr int kExitUsage = 2;
inline constexpr int kExitNoMaster = 3;

// Runs cluster2ctl with `args` (without argv[0]); writes results to `out`,
// errors (one line, "cluster2ctl: ...") to `err`; returns the exit code.
int RunCtl(const std::vector<std::string>& args, std::ostream& out,
           std::ostream& err);

// The human table of `workers` at time `now`:
//   ID  PID    STATE   UPTIME  RESTARTS  RSS     HEARTBEAT
//   0   4242   ready   1m5s    0         12.3MiB 1.2s ago
std::string FormatWorkersTable(const v1::ListWorkersResponse& workers,
                               absl::Time now);

}  // namespace cluster2

#endif  // CLUSTER2_CLI_COMMANDS_H_
