// cluster2's master: binds the service port once, runs N workers on it and
// supervises them, and serves the control API (Cluster, WorkerSession,
// grpc.health.v1, reflection) on unix:<run_dir>/master.sock.
//
// This is the public entry point; cluster2-master's main and the embedded
// cluster2::Listen() both call it.
#ifndef CLUSTER2_MASTER_MASTER_H_
#define CLUSTER2_MASTER_MASTER_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "cluster2/v1/config.pb.h"
#include "master/master_context.h"
#include "master/recycle_policy.h"

namespace cluster2 {

// Builds the configuration from cluster2-master's arguments (without
// argv[0]): `--config FILE` (JSON), `--key=value` or `--key value` flags that
// override file values (`--port=9090`, `--ecv.mode=monitor`; dashes may stand
// for underscores: `--stop-timeout`), and the worker command after `--`.
// Applies defaults and validates. INVALID_ARGUMENT with one line naming the
// problem; a "--help" argument gives FAILED_PRECONDITION with the usage text.
absl::StatusOr<v1::ClusterConfig> ConfigFromArgs(
    const std::vector<std::string>& args);

// Applies defaults to the unset fields of `config` and validates it, as
// ConfigFromArgs does. INVALID_ARGUMENT naming the field.
absl::StatusOr<v1::ClusterConfig> CompleteConfig(v1::ClusterConfig config);

// The usage text of cluster2-master.
std::string MasterUsage();

// Where a reload gets the configuration again (cluster2-master: the same
// arguments through ConfigFromArgs, so the file is read afresh).
using ConfigSource = std::function<absl::StatusOr<v1::ClusterConfig>()>;

// Runs the cluster described by `config` (complete and validated, as from
// ConfigFromArgs) until SIGTERM/SIGINT (graceful), SIGQUIT (fast) or
// Cluster.Shutdown. SIGHUP reloads the configuration from `reload` and
// replaces every worker by a rolling restart (without `reload`: the rolling
// restart only); Cluster.Reload (`cluster2ctl reload`) applies a reloaded
// configuration, replacing only the groups that changed. SIGTTIN/SIGTTOU
// scale the first worker group up and down by one worker. Returns the process
// exit code: 0 after a clean stop, 1 when the cluster cannot start (busy port,
// a master already running, a worker command that cannot run), after printing
// one line on stderr.
//
// Call it before the process starts any thread: it blocks the signals it
// handles in the calling thread, and threads inherit that mask.
//
// `policies` are recycle policies of the embedding app, evaluated after the
// configured ones (master/recycle_policy.h).
//
// `on_start`, if set, runs once the master serves (before its workers are
// ready), with the master's side of the emitter and status; the context
// stays valid until RunMaster returns.
int RunMaster(const v1::ClusterConfig& config,
              std::vector<std::shared_ptr<RecyclePolicy>> policies = {},
              std::function<void(MasterContext&)> on_start = nullptr,
              ConfigSource reload = nullptr);

}  // namespace cluster2

#endif  // CLUSTER2_MASTER_MASTER_H_
