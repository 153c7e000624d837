// Loading and validation of ClusterConfig (proto/cluster2/v1/config.proto).
//
// The sources, lowest precedence first: built-in defaults, the JSON file (the
// original cluster2's option object is valid as written), `--key=value` flags
// (dotted keys reach nested fields: `--ecv.mode=monitor`), and the worker
// command after `--`. Every error is one line that names the field.
//
// Thread-safe: pure functions.
#ifndef CLUSTER2_MASTER_INTERNAL_CONFIG_H_
#define CLUSTER2_MASTER_INTERNAL_CONFIG_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "cluster2/v1/config.pb.h"

namespace cluster2 {

// Parses config JSON. Unknown fields and wrong types are INVALID_ARGUMENT
// with a message such as "unknown field 'ecv.foo'" or
// "field 'noWorkers': invalid value \"x\" for type TYPE_UINT32".
absl::StatusOr<v1::ClusterConfig> ParseConfigJson(absl::string_view json);

// Reads and parses a config file; NOT_FOUND etc. name the path.
absl::StatusOr<v1::ClusterConfig> LoadConfigFile(const std::string& path);

// Sets one field from a flag: `key` is a JSON field path ("port",
// "ecv.mode", "heartbeatInterval" or "heartbeat_interval"). Values that read
// as a JSON number or boolean are used as such, anything else as a string.
absl::Status ApplyConfigFlag(absl::string_view key, absl::string_view value,
                             v1::ClusterConfig* config);

// Fills every unset field with its default (see config.proto); `cpu_count`
// is the default number of workers.
void ApplyConfigDefaults(unsigned cpu_count, v1::ClusterConfig* config);

// Checks a config after defaults: ports, counts, the name's charset, ECV and
// cache modes, a worker command. INVALID_ARGUMENT naming the field.
absl::Status ValidateConfig(const v1::ClusterConfig& config);

// The JSON name of a proto field path ("ecv.mark_up" -> "ecv.markUp").
std::string JsonFieldPath(absl::string_view proto_path);

// Reload. A running master applies changes to the workers (groups,
// command, env, cwd, noWorkers), their timing (heartbeatInterval, timeout,
// stopTimeout, nanny, restartBackoff, crashLoopLimit, surge) and recycling
// (maxAge, recycle); every other field is fixed until the master restarts.
//
// The JSON names of the fixed fields that differ between the running
// master's configuration and `next`.
std::vector<std::string> FieldsNeedingRestart(const v1::ClusterConfig& running,
                                              const v1::ClusterConfig& next);
// `next` with every fixed field taken from `running`: what the master runs
// after a reload.
v1::ClusterConfig AppliedConfig(const v1::ClusterConfig& running,
                                v1::ClusterConfig next);

}  // namespace cluster2

#endif  // CLUSTER2_MASTER_INTERNAL_CONFIG_H_
