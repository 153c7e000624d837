#include "cli/internal/flags.h"

#include <cmath>

#include "absl/strings/numbers.h"

namespace cluster2::ctl {

std::optional<absl::Duration> ParseCliDuration(absl::string_view text) {
  double seconds = 0;
  if (absl::SimpleAtod(text, &seconds)) {
    if (!std::isfinite(seconds) || seconds < 0) return std::nullopt;
    return absl::Seconds(seconds);
  }
  absl::Duration duration;
  if (!absl::ParseDuration(text, &duration) ||
      duration < absl::ZeroDuration() || duration == absl::InfiniteDuration()) {
    return std::nullopt;
  }
  return duration;
}

}  // namespace cluster2::ctl
