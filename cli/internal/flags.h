// Parsing of cluster2ctl's option values that CLI11 takes as text, so each
// verb words its own usage error. Thread-safe: pure functions.
#ifndef CLUSTER2_CLI_INTERNAL_FLAGS_H_
#define CLUSTER2_CLI_INTERNAL_FLAGS_H_

#include <optional>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace cluster2::ctl {

// The one duration syntax of every cluster2ctl option (--timeout, --ttl,
// --expire): "500ms", "5s", "2m", "1h30m" (absl::ParseDuration) or plain
// seconds ("90", "0.5"). nullopt unless finite and not negative.
std::optional<absl::Duration> ParseCliDuration(absl::string_view text);

}  // namespace cluster2::ctl

#endif  // CLUSTER2_CLI_INTERNAL_FLAGS_H_
