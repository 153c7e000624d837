// Fuzz target: the config parser (ParseConfigJson, ApplyConfigFlag,
// defaults and validation) on any bytes. It must return a status, never
// crash; a config it accepts must survive defaults and validation, and a
// rejection is one line.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "absl/strings/string_view.h"
#include "master/internal/config.h"

namespace {

void CheckOneLine(const absl::Status& status) {
  if (!status.ok() && status.message().find('\n') != absl::string_view::npos)
    std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::string_view input(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<cluster2::v1::ClusterConfig> config =
      cluster2::ParseConfigJson(input);
  CheckOneLine(config.status());
  cluster2::v1::ClusterConfig merged;
  if (config.ok()) merged = *config;
  // Each line "key=value" as a flag on top.
  size_t start = 0;
  while (start < input.size()) {
    size_t end = input.find('\n', start);
    if (end == absl::string_view::npos) end = input.size();
    absl::string_view line = input.substr(start, end - start);
    size_t equals = line.find('=');
    if (equals != absl::string_view::npos) {
      CheckOneLine(cluster2::ApplyConfigFlag(line.substr(0, equals),
                                             line.substr(equals + 1), &merged));
    }
    start = end + 1;
  }
  merged.add_command("/bin/true");
  cluster2::ApplyConfigDefaults(2, &merged);
  CheckOneLine(cluster2::ValidateConfig(merged));
  return 0;
}
