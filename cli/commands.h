// cluster2ctl's verbs: each resolves the master, calls one RPC and prints a
// table (default) or JSON (-o json). The `cache` verbs resolve the cache
// server instead (--cache-socket, $CLUSTER2_CACHE or <run dir>/cache.sock).
//
// Exit codes scripts can rely on: 0 success; 1 the master or cache server
// answered with an error, or a cache key was absent (get, del) or present
// (set --nx); 2 usage error; 3 no master or cache server is running (or it
// cannot be reached).
//
// Thread-safe: RunCtl keeps no state between calls, so calls on several
// threads are independent (tests run a blocking `cache watch` on a thread).
#ifndef CLUSTER2_CLI_COMMANDS_H_
#define CLUSTER2_CLI_COMMANDS_H_

#include <iosfwd>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "cluster2/v1/cache.pb.h"
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

// The human table of `cache stats`, columns two spaces apart:
//   NAMESPACE  HITS  MISSES  LOADS  ERRORS  KEYS  BYTES
//   sessions   10    2       1      0       3     120
std::string FormatCacheStatsTable(const v1::StatsResponse& stats);

// What `cache watch` prints for one message: "REVISION KIND KEY VALUE\n"
// (KIND set, delete, expire or evict; no " VALUE" when it is empty), after
// "resync\n" when the server says the asked-for revision is gone. Keys and
// values are printed raw.
std::string FormatWatchEvent(const v1::WatchEvent& event);

}  // namespace cluster2

#endif  // CLUSTER2_CLI_COMMANDS_H_
