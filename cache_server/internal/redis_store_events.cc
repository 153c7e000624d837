// RedisStore's watchers and the follower of the namespaces' streams
// ("redis-events"): redis_store.h.
#include <pthread.h>

#include <set>
#include <utility>

#include "cache_server/internal/redis_keys.h"
#include "cache_server/internal/redis_store.h"

namespace cluster2 {

using namespace redis_keys;  // NOLINT: this file's own layout helpers

absl::StatusOr<std::string> RedisStore::LastLogId(const std::string& ns) {
  absl::StatusOr<RedisReply> last =
      commands_.Command({"XREVRANGE", LogKey(ns), "+", "-", "COUNT", "1"});
  if (!last.ok()) return last.status();
  if (last->elements.empty() || last->elements[0].elements.empty())
    return std::string("0-0");
  return last->elements[0].elements[0].text;
}

absl::StatusOr<bool> RedisStore::Watch(const std::string& ns,
                                       const std::string& key,
                                       uint64_t from_revision,
                                       CacheWatcher* watcher) {
  absl::StatusOr<RedisReply> exists =
      commands_.Command({"EXISTS", OptsKey(ns)});
  if (!exists.ok()) return exists.status();
  if (exists->integer == 0) return NamespaceNotFound(ns);
  if (absl::Status followed = Follow(ns); !followed.ok()) return followed;
  // Under mu_, so that "redis-events" delivers nothing in between: the
  // kept changes up to the cursor now, then the followed ones.
  absl::MutexLock lock(&mu_);
  const std::string cursor = cursors_[ns];
  bool resync = false;
  if (from_revision > 0) {
    absl::StatusOr<RedisReply> kept =
        commands_.Command({"XRANGE", LogKey(ns), "-", cursor});
    if (!kept.ok()) return kept.status();
    std::vector<CacheEvent> replay;
    uint64_t oldest = 0;
    for (const RedisReply& entry : kept->elements) {
      if (entry.elements.size() != 2) continue;
      std::map<std::string, std::string> fields = Fields(entry.elements[1]);
      uint64_t revision = 0;
      if (!absl::SimpleAtoi(fields["r"], &revision)) continue;  // a release
      if (oldest == 0) oldest = revision;
      if (revision <= from_revision) continue;
      if (!key.empty() && fields["k"] != key) continue;
      CacheEvent event;
      event.kind = fields["t"] == "s" ? CacheEvent::Kind::kSet
                                      : CacheEvent::Kind::kDelete;
      event.key = fields["k"];
      event.value = fields["v"];
      event.revision = revision;
      int64_t expires = 0;
      if (absl::SimpleAtoi(fields["x"], &expires) && expires > 0)
        event.expires_at = absl::FromUnixMicros(expires);
      replay.push_back(std::move(event));
    }
    // The changes right after from_revision are gone (trimmed, or a Redis
    // that lost its data): the watcher must re-read.
    absl::StatusOr<RedisReply> current = commands_.Command({"GET", RevKey(ns)});
    uint64_t now_revision = 0;
    if (current.ok()) (void)absl::SimpleAtoi(current->text, &now_revision);
    resync = (oldest == 0 ? now_revision > from_revision
                          : oldest > from_revision + 1) ||
             from_revision > now_revision;
    if (!resync) {
      for (const CacheEvent& event : replay) watcher->OnEvent(event);
    }
  }
  watchers_[watcher] = Watching{ns, key};
  return resync;
}

void RedisStore::Unwatch(CacheWatcher* watcher) {
  absl::MutexLock lock(&mu_);
  watchers_.erase(watcher);
}

absl::Status RedisStore::Follow(const std::string& ns) {
  {
    absl::MutexLock lock(&mu_);
    if (cursors_.count(ns) > 0) return absl::OkStatus();
  }
  absl::StatusOr<std::string> last = LastLogId(ns);
  if (!last.ok()) return last.status();
  {
    absl::MutexLock lock(&mu_);
    if (!cursors_.emplace(ns, *last).second) return absl::OkStatus();
  }
  WakeEvents();
  return absl::OkStatus();
}

void RedisStore::WakeEvents() {
  const int64_t id = events_client_id_.load();
  if (id != 0) (void)commands_.Command({"CLIENT", "UNBLOCK", absl::StrCat(id)});
}

void RedisStore::EventLoop() {
  pthread_setname_np(pthread_self(), "redis-events");
  absl::Duration backoff = absl::Milliseconds(50);
  for (;;) {
    std::vector<std::pair<std::string, std::string>> streams;
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return;
      // A namespace once followed stays followed: its parked calls and
      // watchers come and go, and a cursor placed late could miss a release.
      for (const auto& [ns, cursor] : cursors_)
        streams.emplace_back(ns, cursor);
    }
    if (events_client_id_.load() == 0) {
      absl::StatusOr<RedisReply> id = events_.Command({"CLIENT", "ID"});
      if (id.ok()) events_client_id_.store(id->integer);
    }
    if (streams.empty()) {
      absl::MutexLock lock(&mu_);
      auto wake = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stopping_ || !cursors_.empty();
      };
      mu_.AwaitWithTimeout(absl::Condition(&wake), absl::Seconds(1));
      continue;
    }
    std::vector<std::string> command = {"XREAD", "COUNT", "1000",
                                        "BLOCK", "1000",  "STREAMS"};
    for (const auto& [ns, cursor] : streams) command.push_back(LogKey(ns));
    for (const auto& [ns, cursor] : streams) command.push_back(cursor);
    absl::StatusOr<RedisReply> read =
        events_.CommandWithTimeout(command, absl::Seconds(3));
    if (!read.ok()) {
      events_client_id_.store(0);  // a new connection has a new id
      absl::MutexLock lock(&mu_);
      mu_.AwaitWithTimeout(absl::Condition(&stopping_), backoff);
      backoff = std::min(backoff * 2, absl::Seconds(1));
      continue;
    }
    backoff = absl::Milliseconds(50);
    for (const RedisReply& stream : read->elements) {
      if (stream.elements.size() != 2) continue;
      const std::string& name = stream.elements[0].text;  // c2:{NS}:log
      const std::string ns = name.substr(4, name.size() - 4 - 5);
      std::vector<LogEntry> entries;
      for (const RedisReply& entry : stream.elements[1].elements) {
        if (entry.elements.size() != 2) continue;
        std::map<std::string, std::string> fields = Fields(entry.elements[1]);
        LogEntry out;
        out.id = entry.elements[0].text;
        out.type = fields["t"].empty() ? 0 : fields["t"][0];
        (void)absl::SimpleAtoi(fields["r"], &out.revision);
        out.key = fields["k"];
        out.value = fields["v"];
        out.error = fields["e"];
        out.retry = fields["y"] == "1";
        (void)absl::SimpleAtoi(fields["x"], &out.expires_micros);
        entries.push_back(std::move(out));
      }
      Deliver(ns, entries);
    }
  }
}

void RedisStore::Deliver(const std::string& ns,
                         const std::vector<LogEntry>& entries) {
  std::vector<std::pair<Waiter, absl::StatusOr<CacheGetResult>>> done;
  std::set<std::string> retry;
  {
    absl::MutexLock lock(&mu_);
    auto cursor = cursors_.find(ns);
    if (cursor == cursors_.end()) return;
    for (const LogEntry& entry : entries) {
      // Watch() may have replayed up to a later cursor meanwhile.
      if (!IdAfter(entry.id, cursor->second)) continue;
      cursor->second = entry.id;
      if (entry.type == 's' || entry.type == 'd') {
        CacheEvent event;
        event.kind = entry.type == 's' ? CacheEvent::Kind::kSet
                                       : CacheEvent::Kind::kDelete;
        event.key = entry.key;
        event.value = entry.value;
        event.revision = entry.revision;
        if (entry.expires_micros > 0)
          event.expires_at = absl::FromUnixMicros(entry.expires_micros);
        for (const auto& [watcher, watching] : watchers_) {
          if (watching.ns == ns &&
              (watching.key.empty() || watching.key == entry.key)) {
            watcher->OnEvent(event);
          }
        }
      }
      // Parked calls of the key: a value is everyone's; a delete or a
      // release for retry lets one of them try; a failed load is told.
      for (auto it = parked_.begin(); it != parked_.end();) {
        Parked& parked = it->second;
        // What happened before it found the lease held is not news to it.
        if (parked.ns != ns || parked.key != entry.key ||
            !IdAfter(entry.id, parked.after)) {
          ++it;
          continue;
        }
        if (entry.type == 's') {
          CacheGetResult result;
          result.found = true;
          result.value = entry.value;
          result.revision = entry.revision;
          if (entry.expires_micros > 0)
            result.expires_at = absl::FromUnixMicros(entry.expires_micros);
          ++CountersLocked(ns).hits;
          timers_.Cancel(parked.timer);
          done.emplace_back(std::move(parked.waiter), std::move(result));
          it = parked_.erase(it);
        } else if (entry.type == 'l' && !entry.retry) {
          CacheGetResult result;
          result.load_error = entry.error;
          ++CountersLocked(ns).errors;
          timers_.Cancel(parked.timer);
          done.emplace_back(std::move(parked.waiter), std::move(result));
          it = parked_.erase(it);
        } else {
          retry.insert(entry.key);
          ++it;
        }
      }
    }
  }
  for (auto& [waiter, result] : done) waiter(std::move(result));
  for (const std::string& key : retry) Retry(ns, key);
}

}  // namespace cluster2
