#include "cache_server/internal/memory_budget.h"

namespace cluster2 {

void MemoryBudget::Charge(int64_t delta, bool evictable) {
  bytes_ += delta;
  if (evictable) evictable_bytes_ += delta;
}

MemoryBudget::Handle MemoryBudget::Insert(Node node) {
  return lru_.insert(lru_.begin(), node);
}

void MemoryBudget::Touch(Handle handle) {
  lru_.splice(lru_.begin(), lru_, handle);
}

void MemoryBudget::Remove(Handle handle) { lru_.erase(handle); }

const MemoryBudget::Node* MemoryBudget::Oldest(const Node* keep) const {
  for (auto it = lru_.rbegin(); it != lru_.rend(); ++it) {
    if (&*it != keep) return &*it;
  }
  return nullptr;
}

bool MemoryBudget::Fits(uint64_t incoming) const {
  return max_bytes_ == 0 || bytes_ + incoming <= max_bytes_;
}

bool MemoryBudget::CanFit(uint64_t incoming, uint64_t kept_bytes) const {
  return max_bytes_ == 0 ||
         bytes_ - (evictable_bytes_ - kept_bytes) + incoming <= max_bytes_;
}

}  // namespace cluster2
