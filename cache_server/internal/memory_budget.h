// MemoryBudget: the bytes the cache's keys and values use, against an
// optional budget, and the least-recently-used order of the keys that may
// be evicted (those of non-persistent namespaces).
//
// Each key costs its key, its value and kEntryOverhead. The owner charges
// every change (Charge), keeps an LRU node per evictable key (Insert,
// Touch, Remove) and, before a write that does not fit, asks CanFit and
// then evicts Oldest() until Fits. Persistent keys are charged but never
// in the LRU order: they are never evicted.
//
// Thread-compatible: the owner (CacheStore) guards it with its lock.
#ifndef CLUSTER2_CACHE_SERVER_INTERNAL_MEMORY_BUDGET_H_
#define CLUSTER2_CACHE_SERVER_INTERNAL_MEMORY_BUDGET_H_

#include <cstdint>
#include <list>
#include <string>

namespace cluster2 {

class MemoryBudget {
 public:
  // Bytes counted for each key besides its key and value.
  static constexpr uint64_t kEntryOverhead = 96;
  static uint64_t EntryBytes(const std::string& key, const std::string& value) {
    return key.size() + value.size() + kEntryOverhead;
  }

  // An evictable key: its namespace (opaque to the budget) and its key,
  // both owned by the caller and stable until Remove.
  struct Node {
    const void* ns;
    const std::string* key;
    uint64_t bytes;
  };
  using Handle = std::list<Node>::iterator;

  // `max_bytes` 0 = no budget: everything fits.
  explicit MemoryBudget(uint64_t max_bytes) : max_bytes_(max_bytes) {}

  // Adds `delta` (negative: frees) to the bytes used; `evictable` for keys
  // of non-persistent namespaces.
  void Charge(int64_t delta, bool evictable);
  // Puts an evictable key first in the LRU order.
  Handle Insert(Node node);
  // Marks `handle` as the most recently used.
  void Touch(Handle handle);
  void Remove(Handle handle);
  // The least recently used evictable key other than `keep` (which may be
  // nullptr); nullptr if there is none.
  const Node* Oldest(const Node* keep) const;

  // Whether `incoming` more bytes fit without evicting.
  bool Fits(uint64_t incoming) const;
  // Whether `incoming` more bytes could fit by evicting every evictable key
  // but `kept_bytes` of them (the key being overwritten).
  bool CanFit(uint64_t incoming, uint64_t kept_bytes) const;

  uint64_t bytes() const { return bytes_; }
  uint64_t max_bytes() const { return max_bytes_; }

 private:
  const uint64_t max_bytes_;
  uint64_t bytes_ = 0;
  uint64_t evictable_bytes_ = 0;
  std::list<Node> lru_;  // most recent first
};

}  // namespace cluster2

#endif  // CLUSTER2_CACHE_SERVER_INTERNAL_MEMORY_BUDGET_H_
