// The human tables cluster2ctl prints that people and scripts read: each a
// pure function of a response, so tests check them without a server.
// Thread-safe: pure functions.
#ifndef CLUSTER2_CLI_TABLES_H_
#define CLUSTER2_CLI_TABLES_H_

#include <string>

#include "absl/time/time.h"
#include "cluster2/v1/cache.pb.h"
#include "cluster2/v1/cluster.pb.h"

namespace cluster2 {

// The human table of `workers` at time `now`:
//   ID  PID    STATE   UPTIME  RESTARTS  RSS     HEARTBEAT
//   0   4242   ready   1m5s    0         12.3MiB 1.2s ago
// One worker in detail (`cluster2ctl worker PID`): the table row, then its
// group, session and last heartbeat, including when the worker sent it and
// how long it took to reach the master.
std::string FormatWorkerDetail(const v1::Worker& worker, absl::Time now);

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

#endif  // CLUSTER2_CLI_TABLES_H_
