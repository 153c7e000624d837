#include "cache_client/internal/near_cache.h"

#include <algorithm>

namespace cluster2::cache_internal {

bool NearCache::ExpiredLocked(int64_t expires) {
  return expires != 0 && expires <= absl::ToUnixMicros(clock_.Now());
}

std::optional<CacheValue> NearCache::Lookup(const std::string& key) {
  absl::MutexLock lock(&mu_);
  if (!live_) return std::nullopt;
  auto it = entries_.find(key);
  if (it == entries_.end()) return std::nullopt;
  if (ExpiredLocked(it->second.expires)) {
    entries_.erase(it);
    return std::nullopt;
  }
  return CacheValue{it->second.value, it->second.revision};
}

uint64_t NearCache::Begin() {
  absl::MutexLock lock(&mu_);
  ++in_flight_;
  return epoch_;
}

void NearCache::EndRead(uint64_t ticket, const std::string& key,
                        const CacheValue* found, int64_t expires_unix_micros) {
  absl::MutexLock lock(&mu_);
  if (found != nullptr && live_ && ticket == epoch_ &&
      !ExpiredLocked(expires_unix_micros)) {
    auto recent = recent_.find(key);
    if (recent == recent_.end() || recent->second <= found->revision)
      PutLocked(key, found->value, found->revision, expires_unix_micros);
  }
  EndLocked();
}

void NearCache::EndWrite(uint64_t ticket, const std::string& key,
                         const std::string* value, uint64_t revision,
                         int64_t expires_unix_micros) {
  absl::MutexLock lock(&mu_);
  if (live_ && ticket == epoch_) {
    auto recent = recent_.find(key);
    bool superseded = recent != recent_.end() && recent->second > revision;
    if (value != nullptr && !superseded) {
      PutLocked(key, *value, revision, expires_unix_micros);
    } else if (value == nullptr) {
      auto it = entries_.find(key);
      if (it != entries_.end() && it->second.revision <= revision)
        entries_.erase(it);
    }
  }
  EndLocked();
}

void NearCache::Abandon() {
  absl::MutexLock lock(&mu_);
  EndLocked();
}

void NearCache::EndLocked() {
  if (--in_flight_ == 0) recent_.clear();
}

void NearCache::OnEvent(const CacheWatchEvent& event) {
  absl::MutexLock lock(&mu_);
  if (event.kind == CacheWatchEvent::Kind::kResync) {
    entries_.clear();
    ++epoch_;
    return;
  }
  NoteLocked(event.key, event.revision);
  auto it = entries_.find(event.key);
  if (it == entries_.end() || it->second.revision >= event.revision) return;
  if (event.kind == CacheWatchEvent::Kind::kSet) {
    it->second = Entry{event.value, event.revision, event.expires_unix_micros};
  } else {
    entries_.erase(it);
  }
}

void NearCache::SetLive(bool live) {
  absl::MutexLock lock(&mu_);
  live_ = live;
  entries_.clear();
  ++epoch_;
}

size_t NearCache::size() const {
  absl::MutexLock lock(&mu_);
  return entries_.size();
}

void NearCache::NoteLocked(const std::string& key, uint64_t revision) {
  if (in_flight_ == 0) return;
  if (recent_.size() >= max_entries_) {
    // Reads and writes never stop and the namespace changes fast: start
    // over rather than grow (what is in flight will not be kept).
    entries_.clear();
    recent_.clear();
    ++epoch_;
  }
  uint64_t& seen = recent_[key];
  seen = std::max(seen, revision);
}

void NearCache::PutLocked(const std::string& key, const std::string& value,
                          uint64_t revision, int64_t expires) {
  auto it = entries_.find(key);
  if (it != entries_.end()) {
    if (it->second.revision < revision)
      it->second = Entry{value, revision, expires};
    return;
  }
  if (entries_.size() >= max_entries_) entries_.clear();  // crude bound
  entries_.emplace(key, Entry{value, revision, expires});
}

}  // namespace cluster2::cache_internal
