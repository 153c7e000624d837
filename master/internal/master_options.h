// The configuration (v1::ClusterConfig, complete and validated) turned into
// the options of each of the master's parts. One place that knows which
// config field feeds which option; unit-tested without starting anything.
//
// Thread-safe: pure functions.
#ifndef CLUSTER2_MASTER_INTERNAL_MASTER_OPTIONS_H_
#define CLUSTER2_MASTER_INTERNAL_MASTER_OPTIONS_H_

#include <memory>
#include <string>
#include <vector>

#include "cluster2/v1/config.pb.h"
#include "master/internal/app_check.h"
#include "master/internal/cache_supervisor.h"
#include "master/internal/debug_session.h"
#include "master/internal/monitor_server.h"
#include "master/internal/supervisor.h"
#include "master/recycle_policy.h"

namespace cluster2 {

// What the master has set up by the time it starts its parts.
struct MasterEndpoints {
  std::string master_address;   // "unix:<run_dir>/master.sock"
  std::string cache_address;    // "unix:<run_dir>/cache.sock"; empty: no cache
  std::vector<int> listen_fds;  // one shared socket, or one per slot
  SlotSockets* slot_sockets = nullptr;  // balance=even; borrowed
};

// The name of the one group of a cluster configured with `command`.
inline constexpr char kDefaultGroupName[] = "default";

// The worker groups: the config's `groups`, or one group "default" of
// `command` and `noWorkers`. Each group's env is the config's `env` under
// its own.
std::vector<WorkerGroup> WorkerGroupsFromConfig(
    const v1::ClusterConfig& config);

// The Supervisor's options: the worker groups and environment (`base_env`
// plus the config's env), timing, backoff, policies (the configured ones,
// then `extra_policies` of an embedding app), budget and drain.
SupervisorOptions SupervisorOptionsFromConfig(
    const v1::ClusterConfig& config, const MasterEndpoints& endpoints,
    std::vector<std::string> base_env,
    const std::vector<std::shared_ptr<RecyclePolicy>>& extra_policies);

// The standalone cache server: `binary` serving `socket_path` with its files
// in `data_dir`, restarted with the workers' backoff and crash-loop limit.
CacheSupervisorOptions CacheSupervisorOptionsFromConfig(
    const v1::ClusterConfig& config, const std::string& binary,
    const std::string& socket_path, const std::string& data_dir,
    std::vector<std::string> env);

// The monitor port. `ip` and `hostname` are shown in the ECV body. The
// master sets `cache_stats` itself.
MonitorOptions MonitorOptionsFromConfig(const v1::ClusterConfig& config,
                                        std::string ip, std::string hostname);

// Debug sessions (debug.*): where debuggers listen, the fresh worker's
// prefix, and the worker's program `worker_executable`; heartbeat-scaled
// settle time.
DebugOptions DebugOptionsFromConfig(const v1::ClusterConfig& config,
                                    std::string worker_executable);

// ecv.mode "monitor": the check of the app through the service port.
AppCheckOptions AppCheckOptionsFromConfig(const v1::ClusterConfig& config);

}  // namespace cluster2

#endif  // CLUSTER2_MASTER_INTERNAL_MASTER_OPTIONS_H_
