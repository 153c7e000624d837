// ExpiryIndex: the keys of one namespace that have a time to live, soonest
// first, so that the expiry sweep touches only what expired.
//
// The index keeps pointers to the keys, not copies: the owner stores each
// key at a stable address (a std::map's key) and removes it from the index
// (Update to nullopt) before it erases the key.
//
// Thread-compatible: the owner (CacheStore) guards it with its lock.
#ifndef CLUSTER2_CACHE_SERVER_INTERNAL_EXPIRY_INDEX_H_
#define CLUSTER2_CACHE_SERVER_INTERNAL_EXPIRY_INDEX_H_

#include <optional>
#include <set>
#include <string>
#include <utility>

#include "absl/time/time.h"

namespace cluster2 {

class ExpiryIndex {
 public:
  // Moves `key` from expiring at `old_when` to `new_when` (either may be
  // nullopt: no expiry).
  void Update(const std::string* key, std::optional<absl::Time> old_when,
              std::optional<absl::Time> new_when);
  // The key that expires first if it expired by `now`; nullptr otherwise.
  const std::string* FirstDue(absl::Time now) const;
  size_t size() const { return by_time_.size(); }

 private:
  std::set<std::pair<absl::Time, const std::string*>> by_time_;
};

}  // namespace cluster2

#endif  // CLUSTER2_CACHE_SERVER_INTERNAL_EXPIRY_INDEX_H_
