#include "master/internal/master_options.h"

#include <map>
#include <utility>

#include "absl/strings/str_cat.h"
#include "master/internal/recycle_policies.h"

namespace cluster2 {

std::vector<WorkerGroup> WorkerGroupsFromConfig(
    const v1::ClusterConfig& config) {
  std::vector<WorkerGroup> groups;
  if (config.groups().empty()) {
    WorkerGroup& group = groups.emplace_back();
    group.name = kDefaultGroupName;
    group.workers = config.no_workers();
    group.command.assign(config.command().begin(), config.command().end());
    for (const auto& [key, value] : config.env()) {
      group.extra_env.push_back(absl::StrCat(key, "=", value));
    }
    group.cwd = config.cwd();
    return groups;
  }
  for (const v1::ClusterConfig::Group& from : config.groups()) {
    WorkerGroup& group = groups.emplace_back();
    group.name = from.name();
    group.workers = from.no_workers();
    group.command.assign(from.command().begin(), from.command().end());
    // The cluster's env under the group's, sorted by key (the maps are
    // unordered): the same config gives the same list.
    std::map<std::string, std::string> env(config.env().begin(),
                                           config.env().end());
    for (const auto& [key, value] : from.env()) env[key] = value;
    for (const auto& [key, value] : env) {
      group.extra_env.push_back(absl::StrCat(key, "=", value));
    }
    group.cwd = from.cwd().empty() ? config.cwd() : from.cwd();
  }
  return groups;
}

SupervisorOptions SupervisorOptionsFromConfig(
    const v1::ClusterConfig& config, const MasterEndpoints& endpoints,
    std::vector<std::string> base_env,
    const std::vector<std::shared_ptr<RecyclePolicy>>& extra_policies) {
  SupervisorOptions options;
  options.groups = WorkerGroupsFromConfig(config);
  options.base_env = std::move(base_env);
  options.environment.cluster_name = config.name();
  options.environment.master_address = endpoints.master_address;
  options.environment.cache_address = endpoints.cache_address;
  options.listen_fds = endpoints.listen_fds;
  options.slot_sockets = endpoints.slot_sockets;
  options.heartbeat_interval = absl::Milliseconds(config.heartbeat_interval());
  options.start_timeout = absl::Milliseconds(config.timeout());
  options.hung_tolerance = config.nanny().enable()
                               ? absl::Milliseconds(config.nanny().tolerance())
                               : absl::ZeroDuration();
  options.crash_loop_limit = config.crash_loop_limit();
  const auto& backoff = config.restart_backoff();
  options.backoff_initial = absl::Milliseconds(backoff.backoff_initial());
  options.backoff_max = absl::Milliseconds(backoff.backoff_max());
  options.stable_period = absl::Milliseconds(backoff.stable_period());
  options.surge = config.surge();
  // Pausing stops accepting on the one shared socket, or routes new
  // connections away first (even); with reuseport's hash the kernel would
  // keep queueing on a paused worker's socket.
  options.pause_supported = config.balance() != "reuseport";
  options.policies = PoliciesFromConfig(config);
  options.policies.insert(options.policies.end(), extra_policies.begin(),
                          extra_policies.end());
  options.recycle_budget = config.recycle().budget();
  options.recycle_window = absl::Milliseconds(config.recycle().budget_window());
  options.stop_timeout = absl::Milliseconds(config.stop_timeout());
  return options;
}

CacheSupervisorOptions CacheSupervisorOptionsFromConfig(
    const v1::ClusterConfig& config, const std::string& binary,
    const std::string& socket_path, const std::string& data_dir,
    std::vector<std::string> env) {
  CacheSupervisorOptions options;
  options.spec.argv = {binary, "--socket=" + socket_path,
                       "--data-dir=" + data_dir};
  if (config.cache().max_memory() > 0) {
    options.spec.argv.push_back(
        absl::StrCat("--max-memory=", config.cache().max_memory()));
  }
  if (!config.cache().backend().empty())
    options.spec.argv.push_back("--backend=" + config.cache().backend());
  options.spec.env = std::move(env);
  options.spec.log_component = "cache";
  const auto& backoff = config.restart_backoff();
  options.backoff_initial = absl::Milliseconds(backoff.backoff_initial());
  options.backoff_max = absl::Milliseconds(backoff.backoff_max());
  options.stable_period = absl::Milliseconds(backoff.stable_period());
  options.give_up_after = config.crash_loop_limit();
  options.health_timeout = absl::Milliseconds(config.cache().health_timeout());
  options.start_timeout = absl::Milliseconds(config.cache().start_timeout());
  return options;
}

MonitorOptions MonitorOptionsFromConfig(const v1::ClusterConfig& config,
                                        std::string ip, std::string hostname) {
  MonitorOptions options;
  options.ecv_root = config.ecv().root();
  options.mark_up = config.ecv().mark_up();
  options.mark_down = config.ecv().mark_down();
  options.allow_remote_control = config.ecv().allow_remote_control();
  options.ip = std::move(ip);
  options.hostname = std::move(hostname);
  options.port = config.port();
  options.cluster_name = config.name();
  return options;
}

AppCheckOptions AppCheckOptionsFromConfig(const v1::ClusterConfig& config) {
  AppCheckOptions check;
  check.host = config.host();
  check.port = config.port();
  check.path = config.ecv().monitor();
  check.expected_status = static_cast<int>(config.ecv().monitor_status());
  check.body_contains = config.ecv().monitor_body();
  check.interval = absl::Milliseconds(config.ecv().monitor_interval());
  return check;
}

DebugOptions DebugOptionsFromConfig(const v1::ClusterConfig& config,
                                    std::string worker_executable) {
  DebugOptions options;
  options.host = config.debug().host();
  options.port = static_cast<uint16_t>(config.debug().web_port());
  options.fresh_prefix.assign(config.debug().fresh_prefix().begin(),
                              config.debug().fresh_prefix().end());
  options.worker_executable = std::move(worker_executable);
  options.env = CurrentEnvironment();
  // The paused worker's in-flight requests show in its next heartbeat.
  options.settle_timeout =
      2 * absl::Milliseconds(config.heartbeat_interval()) + absl::Seconds(1);
  return options;
}

}  // namespace cluster2
