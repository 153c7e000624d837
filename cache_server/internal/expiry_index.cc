#include "cache_server/internal/expiry_index.h"

namespace cluster2 {

void ExpiryIndex::Update(const std::string* key,
                         std::optional<absl::Time> old_when,
                         std::optional<absl::Time> new_when) {
  if (old_when) by_time_.erase({*old_when, key});
  if (new_when) by_time_.insert({*new_when, key});
}

const std::string* ExpiryIndex::FirstDue(absl::Time now) const {
  if (by_time_.empty() || by_time_.begin()->first > now) return nullptr;
  return by_time_.begin()->second;
}

}  // namespace cluster2
