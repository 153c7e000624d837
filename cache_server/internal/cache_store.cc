#include "cache_server/internal/cache_store.h"

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "cache_server/cache_errors.h"

namespace cluster2 {

absl::Status PersistError(const absl::Status& status, absl::string_view what) {
  absl::StatusCode code = status.code() == absl::StatusCode::kUnavailable
                              ? absl::StatusCode::kInternal
                              : status.code();
  return MakeCacheError(code, CacheError::kPersistenceFailed,
                        absl::StrCat(what, ": ", status.message()));
}

CacheStore::CacheStore(Limits limits, Clock* clock, std::string data_dir)
    : limits_(limits),
      clock_(clock),
      data_dir_(std::move(data_dir)),
      budget_(limits.max_bytes),
      timers_(clock) {
  absl::MutexLock lock(&mu_);
  revision_ = static_cast<uint64_t>(absl::ToUnixMicros(clock_->Now()));
}

CacheStore::~CacheStore() = default;

CacheStore::Namespace& CacheStore::AddNamespaceLocked(const std::string& name) {
  WatchHistory::Limits history{limits_.history, limits_.history_bytes};
  return namespaces_.try_emplace(name, name, history, revision_).first->second;
}

absl::StatusOr<CacheNamespaceOptions> CacheStore::Use(
    const std::string& name, const CacheNamespaceOptions& options,
    bool* conflict) {
  if (absl::Status status = ValidateNamespaceName(name); !status.ok())
    return status;
  if (options.expire < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("expire must not be negative");
  }
  absl::MutexLock lock(&mu_);
  if (auto it = namespaces_.find(name); it != namespaces_.end()) {
    *conflict = !(it->second.options == options);
    return it->second.options;
  }
  if (options.persist && data_dir_.empty()) {
    return MakeCacheError(
        absl::StatusCode::kFailedPrecondition,
        CacheError::kPersistenceUnavailable,
        "this cache server keeps no files (start it with --data-dir) so "
        "it cannot persist a namespace");
  }
  Namespace& space = AddNamespaceLocked(name);
  space.options = options;
  if (options.persist) {
    if (absl::Status status = OpenLogLocked(space); !status.ok()) {
      namespaces_.erase(name);
      return PersistError(
          status, absl::StrCat("cannot persist namespace '", name, "'"));
    }
  }
  *conflict = false;
  return space.options;
}

absl::StatusOr<CacheStore::Namespace*> CacheStore::FindLocked(
    const std::string& ns) {
  auto it = namespaces_.find(ns);
  if (it == namespaces_.end()) return NamespaceNotFound(ns);
  return &it->second;
}

absl::StatusOr<CacheStore::Namespace*> CacheStore::FindKeyLocked(
    const std::string& ns, const std::string& key) {
  absl::StatusOr<Namespace*> space = FindLocked(ns);
  if (!space.ok()) return space;
  if (key.empty()) return absl::InvalidArgumentError("the key is empty");
  if (key.size() > limits_.max_key) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the key is ", key.size(), " bytes; the limit is ", limits_.max_key));
  }
  return space;
}

const CacheStore::Entry* CacheStore::LiveLocked(Namespace& ns,
                                                const std::string& key) {
  auto it = ns.entries.find(key);
  if (it == ns.entries.end()) return nullptr;
  if (it->second.expires_at && *it->second.expires_at <= clock_->Now()) {
    EraseLocked(ns, it, CacheEvent::Kind::kExpire);  // invisible at once
    return nullptr;
  }
  if (it->second.lru) budget_.Touch(*it->second.lru);
  return &it->second;
}

void CacheStore::AccountLocked(Namespace& ns, int64_t delta) {
  ns.bytes += delta;
  budget_.Charge(delta, !ns.options.persist);
}

void CacheStore::SetExpiryLocked(Namespace& ns, Entries::iterator it,
                                 std::optional<absl::Time> when) {
  ns.expiry.Update(&it->first, it->second.expires_at, when);
  it->second.expires_at = when;
}

void CacheStore::EraseLocked(Namespace& ns, Entries::iterator it,
                             CacheEvent::Kind kind) {
  SetExpiryLocked(ns, it, std::nullopt);
  AccountLocked(ns, -static_cast<int64_t>(
                        MemoryBudget::EntryBytes(it->first, it->second.value)));
  if (it->second.lru) budget_.Remove(*it->second.lru);
  CacheEvent event;
  event.kind = kind;
  event.key = it->first;
  // A delete's revision was taken (and logged) by the caller.
  event.revision = kind == CacheEvent::Kind::kDelete ? revision_ : ++revision_;
  ns.entries.erase(it);
  ns.history.Record(std::move(event));
}

bool CacheStore::MakeRoomLocked(uint64_t incoming, const Entry* keep) {
  const MemoryBudget::Node* kept =
      keep != nullptr && keep->lru ? &**keep->lru : nullptr;
  // Fail before evicting anything if evicting everything would not do.
  if (!budget_.CanFit(incoming, kept != nullptr ? kept->bytes : 0))
    return false;
  while (!budget_.Fits(incoming)) {
    const MemoryBudget::Node* victim = budget_.Oldest(kept);
    if (victim == nullptr) return false;
    // The budget's nodes point at namespaces of this store.
    Namespace* ns = static_cast<Namespace*>(const_cast<void*>(victim->ns));
    EraseLocked(*ns, ns->entries.find(*victim->key), CacheEvent::Kind::kEvict);
  }
  return true;
}

CacheGetResult CacheStore::Hit(const Entry& entry) {
  CacheGetResult result;
  result.found = true;
  result.value = entry.value;
  result.revision = entry.revision;
  result.expires_at = entry.expires_at;
  return result;
}

void CacheStore::Run(LeaseTable::Completions& done) {
  if (done.empty()) return;
  {
    absl::MutexLock lock(&mu_);
    for (const LeaseTable::Completion& completion : done) {
      auto space = namespaces_.find(completion.ns);
      if (space == namespaces_.end() || !completion.result.ok()) continue;
      CacheCounters& counters = space->second.counters;
      const CacheGetResult& result = *completion.result;
      if (!result.lease_token.empty()) {
        ++counters.loads;
      } else if (result.found) {
        ++counters.hits;
      } else {
        ++counters.errors;
      }
    }
  }
  for (LeaseTable::Completion& completion : done) {
    if (completion.timer != 0) timers_.Cancel(completion.timer);
    if (completion.waiter) completion.waiter(std::move(completion.result));
  }
}

absl::StatusOr<CacheGetResult> CacheStore::Get(const std::string& ns,
                                               const std::string& key) {
  absl::MutexLock lock(&mu_);
  absl::StatusOr<Namespace*> space = FindKeyLocked(ns, key);
  if (!space.ok()) return space.status();
  const Entry* entry = LiveLocked(**space, key);
  ++(entry != nullptr ? (*space)->counters.hits : (*space)->counters.misses);
  return entry != nullptr ? Hit(*entry) : CacheGetResult();
}

absl::Status CacheStore::OpenHold(const std::string& client_id) {
  absl::MutexLock lock(&mu_);
  return leases_.OpenHold(client_id);
}

void CacheStore::EndHold(const std::string& client_id) {
  LeaseTable::Completions done;
  {
    absl::MutexLock lock(&mu_);
    leases_.EndHold(client_id, clock_->Now(), &done);
  }
  Run(done);
}

absl::StatusOr<std::optional<CacheGetResult>> CacheStore::GetOrLease(
    const std::string& ns, const std::string& key, const std::string& client_id,
    absl::Duration lease_ttl, Waiter waiter, uint64_t* waiter_id,
    absl::Duration wait) {
  if (client_id.empty())
    return absl::InvalidArgumentError("a lease needs a client id");
  absl::MutexLock lock(&mu_);
  if (!leases_.HoldLive(client_id)) {
    return MakeCacheError(
        absl::StatusCode::kFailedPrecondition, CacheError::kHoldMissing,
        absl::StrCat("a lease needs a live Hold stream for client_id '",
                     client_id, "'"));
  }
  absl::StatusOr<Namespace*> space = FindKeyLocked(ns, key);
  if (!space.ok()) return space.status();
  if (const Entry* entry = LiveLocked(**space, key)) {
    ++(*space)->counters.hits;
    return std::optional<CacheGetResult>(Hit(*entry));
  }
  uint64_t id = 0;
  absl::Time now = clock_->Now();
  std::string token = leases_.Acquire({ns, key}, client_id, lease_ttl, now,
                                      std::move(waiter), &id);
  if (!token.empty()) {  // the first caller of this miss loads
    ++(*space)->counters.loads;
    CacheGetResult result;
    result.lease_token = std::move(token);
    return std::optional<CacheGetResult>(result);
  }
  if (waiter_id != nullptr) *waiter_id = id;
  if (wait != absl::InfiniteDuration()) {
    // A little before the caller's own deadline, so that the answer still
    // reaches it.
    absl::Time deadline =
        now + wait - std::min(wait / 10, absl::Milliseconds(100));
    leases_.SetTimer(id, timers_.Schedule(deadline, [this, id, wait] {
      ExpireWaiter(id, wait);
    }));
  }
  return std::optional<CacheGetResult>();
}

void CacheStore::ExpireWaiter(uint64_t waiter_id, absl::Duration wait) {
  Waiter waiter;
  {
    absl::MutexLock lock(&mu_);
    waiter = leases_.Cancel(waiter_id);
  }
  if (!waiter) return;  // answered meanwhile
  waiter(MakeCacheError(
      absl::StatusCode::kDeadlineExceeded, CacheError::kWaitExpired,
      absl::StrCat("no value within ", absl::FormatDuration(wait),
                   " (the wait option)")));
}

bool CacheStore::CancelWaiter(uint64_t waiter_id) {
  absl::MutexLock lock(&mu_);
  // Its timer stays queued and finds nothing parked.
  return static_cast<bool>(leases_.Cancel(waiter_id));
}

absl::Status CacheStore::LogLocked(Namespace& ns, const CacheRecord& record,
                                   NamespaceLog** sync) {
  if (ns.options.persist && ns.log == nullptr) return Unpersistable(ns);
  if (ns.log == nullptr) return absl::OkStatus();
  if (absl::Status status = ns.log->Append(record); !status.ok()) {
    return PersistError(
        status, absl::StrCat(record.kind == CacheRecord::Kind::kDelete
                                 ? "cannot persist the delete in namespace '"
                                 : "cannot persist the write to namespace '",
                             ns.name, "'"));
  }
  if (ns.options.fsync == FsyncPolicy::kAlways) *sync = ns.log.get();
  return absl::OkStatus();
}

absl::StatusOr<CacheSetResult> CacheStore::Set(const std::string& ns,
                                               const std::string& key,
                                               std::string value,
                                               absl::Duration ttl,
                                               bool leave_if_not_null,
                                               const std::string& lease_token) {
  if (value.size() > limits_.max_value) {
    return MakeCacheError(
        absl::StatusCode::kResourceExhausted, CacheError::kValueTooLarge,
        absl::StrCat("the value is ", value.size(), " bytes; the limit is ",
                     limits_.max_value));
  }
  if (ttl < absl::ZeroDuration())
    return absl::InvalidArgumentError("ttl must not be negative");
  LeaseTable::Completions done;
  CacheSetResult result;
  NamespaceLog* sync = nullptr;
  {
    absl::MutexLock lock(&mu_);
    absl::StatusOr<Namespace*> space = FindKeyLocked(ns, key);
    if (!space.ok()) return space.status();
    Namespace& n = **space;
    if (!lease_token.empty() && !leases_.Holds({ns, key}, lease_token))
      return LeaseNotHeld();
    const Entry* old = LiveLocked(n, key);
    if (old != nullptr && leave_if_not_null) {
      result.current = old->value;
      result.revision = old->revision;
      result.expires_at = old->expires_at;
      return result;
    }
    uint64_t size = MemoryBudget::EntryBytes(key, value);
    uint64_t old_size =
        old != nullptr ? MemoryBudget::EntryBytes(key, old->value) : 0;
    if (size > old_size && !MakeRoomLocked(size - old_size, old)) {
      return MakeCacheError(
          absl::StatusCode::kResourceExhausted, CacheError::kMemoryFull,
          absl::StrCat("the cache is full: ", budget_.bytes(), " of ",
                       budget_.max_bytes(),
                       " bytes are used and only persistent keys are left, "
                       "which are never evicted"));
    }
    absl::Duration life = ttl > absl::ZeroDuration() ? ttl : n.options.expire;
    std::optional<absl::Time> expires_at;
    if (life > absl::ZeroDuration()) expires_at = clock_->Now() + life;
    CacheRecord record;
    record.kind = CacheRecord::Kind::kSet;
    record.key = key;
    record.value = value;
    record.revision = revision_ + 1;
    record.expires_unix_micros = ExpiryUnixMicros(expires_at);
    if (absl::Status status = LogLocked(n, record, &sync); !status.ok())
      return status;  // logged before it is applied, or not applied
    auto [it, created] = n.entries.try_emplace(key);
    Entry& entry = it->second;
    AccountLocked(n, static_cast<int64_t>(size) -
                         static_cast<int64_t>(created ? 0 : old_size));
    entry.value = std::move(value);
    entry.revision = ++revision_;
    SetExpiryLocked(n, it, expires_at);
    if (!n.options.persist) {
      if (entry.lru) budget_.Remove(*entry.lru);
      entry.lru = budget_.Insert({&n, &it->first, size});
    }
    result.written = true;
    result.revision = entry.revision;
    result.expires_at = entry.expires_at;
    CacheEvent event;
    event.key = key;
    event.value = entry.value;
    event.revision = entry.revision;
    event.expires_at = entry.expires_at;
    n.history.Record(std::move(event));
    leases_.Complete({ns, key}, Hit(entry), &done);
  }
  Run(done);  // the value is applied either way
  if (sync != nullptr) {
    if (absl::Status status = sync->Sync(); !status.ok()) {
      return PersistError(status, absl::StrCat("written to namespace '", ns,
                                               "' but not synced to disk"));
    }
  }
  return result;
}

absl::Status CacheStore::ReleaseLease(const std::string& ns,
                                      const std::string& key,
                                      const std::string& lease_token,
                                      const std::string& error, bool retry) {
  LeaseTable::Completions done;
  {
    absl::MutexLock lock(&mu_);
    absl::StatusOr<Namespace*> space = FindKeyLocked(ns, key);
    if (!space.ok()) return space.status();
    if (!leases_.Holds({ns, key}, lease_token)) return LeaseNotHeld();
    if (retry) {
      leases_.PassOn({ns, key}, clock_->Now(), &done);
    } else {
      ++(*space)->counters.errors;  // the holder's own failed load
      leases_.Fail({ns, key}, error, &done);
    }
  }
  Run(done);
  return absl::OkStatus();
}

absl::StatusOr<CacheDeleteResult> CacheStore::Delete(const std::string& ns,
                                                     const std::string& key) {
  NamespaceLog* sync = nullptr;
  CacheDeleteResult result;
  LeaseTable::Completions done;
  absl::Status failed;
  {
    absl::MutexLock lock(&mu_);
    absl::StatusOr<Namespace*> space = FindKeyLocked(ns, key);
    if (!space.ok()) return space.status();
    Namespace& n = **space;
    // An invalidation: a load under way may have read the old data.
    leases_.PassOn({ns, key}, clock_->Now(), &done);
    if (LiveLocked(n, key) != nullptr) {
      CacheRecord record;
      record.kind = CacheRecord::Kind::kDelete;
      record.key = key;
      record.revision = revision_ + 1;
      failed = LogLocked(n, record, &sync);
      if (failed.ok()) {
        auto it = n.entries.find(key);
        result.old_value = it->second.value;  // EraseLocked counts its bytes
        result.revision = ++revision_;
        EraseLocked(n, it, CacheEvent::Kind::kDelete);
      }
    }
  }
  Run(done);  // the lease hand-off stands even if the delete failed
  if (!failed.ok()) return failed;
  if (sync != nullptr) {
    if (absl::Status status = sync->Sync(); !status.ok()) {
      return PersistError(status, absl::StrCat("deleted in namespace '", ns,
                                               "' but not synced to disk"));
    }
  }
  return result;
}

absl::Status CacheStore::Unpersistable(const Namespace& ns) {
  return MakeCacheError(
      absl::StatusCode::kFailedPrecondition, CacheError::kNamespaceReadOnly,
      absl::StrCat("namespace '", ns.name,
                   "' is persistent but its log could not be opened or "
                   "rewritten (see the cache server's log): writes are "
                   "refused rather than not persisted"));
}

absl::StatusOr<std::vector<std::string>> CacheStore::Keys(
    const std::string& ns, const std::string& prefix, size_t limit,
    const std::string& after) {
  absl::MutexLock lock(&mu_);
  absl::StatusOr<Namespace*> space = FindLocked(ns);
  if (!space.ok()) return space.status();
  const Entries& entries = (*space)->entries;
  std::vector<std::string> keys;
  absl::Time now = clock_->Now();
  auto entry =
      after.empty() ? entries.lower_bound(prefix) : entries.upper_bound(after);
  for (; entry != entries.end() && keys.size() < limit; ++entry) {
    if (!absl::StartsWith(entry->first, prefix)) {
      if (entry->first > prefix) break;
      continue;
    }
    if (entry->second.expires_at && *entry->second.expires_at <= now) continue;
    keys.push_back(entry->first);
  }
  return keys;
}

absl::StatusOr<bool> CacheStore::Watch(const std::string& ns,
                                       const std::string& key,
                                       uint64_t from_revision,
                                       CacheWatcher* watcher) {
  if (key.size() > limits_.max_key) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the key is ", key.size(), " bytes; the limit is ", limits_.max_key));
  }
  absl::MutexLock lock(&mu_);
  absl::StatusOr<Namespace*> space = FindLocked(ns);
  if (!space.ok()) return space.status();
  return (*space)->history.Subscribe(key, from_revision, revision_, watcher);
}

void CacheStore::Unwatch(CacheWatcher* watcher) {
  absl::MutexLock lock(&mu_);
  for (auto& [name, space] : namespaces_) space.history.Unsubscribe(watcher);
}

std::vector<CacheNamespaceInfo> CacheStore::Namespaces(const std::string& ns) {
  absl::MutexLock lock(&mu_);
  std::vector<CacheNamespaceInfo> infos;
  for (const auto& [name, space] : namespaces_) {
    if (!ns.empty() && ns != name) continue;
    CacheNamespaceInfo info;
    info.name = name;
    info.options = space.options;
    info.keys = space.entries.size();
    info.bytes = space.bytes;
    info.waiting = leases_.ParkedIn(name);
    info.counters = space.counters;
    infos.push_back(std::move(info));
  }
  return infos;
}

uint64_t CacheStore::bytes() {
  absl::MutexLock lock(&mu_);
  return budget_.bytes();
}

size_t CacheStore::Sweep() {
  LeaseTable::Completions done;
  size_t reclaimed = 0;
  {
    absl::MutexLock lock(&mu_);
    absl::Time now = clock_->Now();
    for (auto& [name, space] : namespaces_) {
      while (const std::string* key = space.expiry.FirstDue(now)) {
        auto it = space.entries.find(*key);
        if (it == space.entries.end()) break;  // cannot happen; never loop
        EraseLocked(space, it, CacheEvent::Kind::kExpire);
        ++reclaimed;
      }
    }
    leases_.PassOnLapsed(now, &done);
  }
  Run(done);
  return reclaimed;
}

}  // namespace cluster2
