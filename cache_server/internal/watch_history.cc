#include "cache_server/internal/watch_history.h"

#include <algorithm>

namespace cluster2 {

void WatchHistory::Record(CacheEvent event) {
  for (const Subscription& subscription : subscriptions_) {
    if (subscription.key.empty() || subscription.key == event.key)
      subscription.watcher->OnEvent(event);
  }
  kept_bytes_ += event.key.size() + event.value.size();
  kept_.push_back(std::move(event));
  while (kept_.size() > limits_.max_events ||
         (kept_bytes_ > limits_.max_bytes && kept_.size() > 1)) {
    const CacheEvent& oldest = kept_.front();
    floor_ = oldest.revision;
    kept_bytes_ -= oldest.key.size() + oldest.value.size();
    kept_.pop_front();
  }
}

bool WatchHistory::Subscribe(const std::string& key, uint64_t from_revision,
                             uint64_t current, CacheWatcher* watcher) {
  bool resync = false;
  if (from_revision > 0) {
    resync = from_revision < floor_ || from_revision > current ||
             (from_revision > lost_after_ && from_revision <= lost_until_);
    if (!resync) {
      auto event = std::upper_bound(
          kept_.begin(), kept_.end(), from_revision,
          [](uint64_t r, const CacheEvent& e) { return r < e.revision; });
      for (; event != kept_.end(); ++event) {
        if (key.empty() || event->key == key) watcher->OnEvent(*event);
      }
    }
  }
  subscriptions_.push_back(Subscription{key, watcher});
  return resync;
}

void WatchHistory::Unsubscribe(CacheWatcher* watcher) {
  subscriptions_.erase(
      std::remove_if(
          subscriptions_.begin(), subscriptions_.end(),
          [&](const Subscription& s) { return s.watcher == watcher; }),
      subscriptions_.end());
}

}  // namespace cluster2
