#include "cache_server/internal/cache_store.h"

#include <algorithm>
#include <random>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace cluster2 {
namespace {

// A failed write to a namespace's files: "<what>: <the log's message>" with
// the log's code (RESOURCE_EXHAUSTED for a full disk), except UNAVAILABLE,
// which a client reads as "no server answered": INTERNAL instead.
absl::Status PersistError(const absl::Status& status, absl::string_view what) {
  absl::StatusCode code = status.code() == absl::StatusCode::kUnavailable
                              ? absl::StatusCode::kInternal
                              : status.code();
  return absl::Status(code, absl::StrCat(what, ": ", status.message()));
}

}  // namespace

absl::Status ValidateNamespaceName(const std::string& name) {
  bool valid = !name.empty() && name.size() <= 128;
  for (char c : name) {
    valid =
        valid && (absl::ascii_isalnum(c) || c == '.' || c == '_' || c == '-');
  }
  if (!valid) {
    return absl::InvalidArgumentError(
        "namespace names are 1-128 characters of [A-Za-z0-9._-]");
  }
  return absl::OkStatus();
}

CacheStore::CacheStore(Limits limits, Clock* clock, std::string data_dir)
    : limits_(limits), clock_(clock), data_dir_(std::move(data_dir)) {
  absl::MutexLock lock(&mu_);
  revision_ = static_cast<uint64_t>(absl::ToUnixMicros(clock_->Now()));
}

CacheStore::~CacheStore() = default;

int64_t ExpiryUnixMicros(const std::optional<absl::Time>& expires_at) {
  return expires_at ? absl::ToUnixMicros(*expires_at) : 0;
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
  auto [it, created] = namespaces_.try_emplace(name);
  Namespace& space = it->second;
  if (created) {
    if (options.persist && data_dir_.empty()) {
      namespaces_.erase(it);
      return absl::FailedPreconditionError(
          "this cache server keeps no files (start it with --data-dir) so "
          "it cannot persist a namespace");
    }
    space.name = name;
    space.options = options;
    space.history_floor = revision_;
    if (options.persist) {
      if (absl::Status status = OpenLogLocked(space); !status.ok()) {
        namespaces_.erase(it);
        return PersistError(
            status, absl::StrCat("cannot persist namespace '", name, "'"));
      }
    }
  }
  *conflict = !created && !(space.options == options);
  return space.options;
}

absl::StatusOr<const DataDirectory*> CacheStore::DirectoryLocked() {
  if (dir_ == nullptr) {
    absl::StatusOr<std::unique_ptr<DataDirectory>> dir =
        DataDirectory::Open(data_dir_);
    if (!dir.ok()) return dir.status();
    dir_ = std::move(*dir);
  }
  return dir_.get();
}

absl::Status CacheStore::OpenLogLocked(Namespace& ns) {
  absl::StatusOr<const DataDirectory*> dir = DirectoryLocked();
  if (!dir.ok()) return dir.status();
  CacheRecord options;
  options.kind = CacheRecord::Kind::kOptions;
  options.revision = revision_;
  options.expire_micros = absl::ToInt64Microseconds(ns.options.expire);
  options.fsync = ns.options.fsync;
  absl::StatusOr<std::unique_ptr<NamespaceLog>> log =
      NamespaceLog::Open(*dir, ns.name, options);
  if (!log.ok()) return log.status();
  ns.log = std::move(*log);
  return absl::OkStatus();
}

absl::Status CacheStore::Recover(std::vector<std::string>* problems) {
  if (data_dir_.empty()) return absl::OkStatus();
  absl::StatusOr<const DataDirectory*> dir;
  {
    absl::MutexLock lock(&mu_);
    dir = DirectoryLocked();
  }
  if (!dir.ok()) return dir.status();
  absl::StatusOr<Recovery> recovery = RecoverAll(**dir);  // never reset
  if (!recovery.ok()) return recovery.status();
  problems->insert(problems->end(), recovery->problems.begin(),
                   recovery->problems.end());
  absl::MutexLock lock(&mu_);
  absl::Time now = clock_->Now();
  for (RecoveredNamespace& recovered : recovery->namespaces) {
    if (!ValidateNamespaceName(recovered.name).ok()) {
      problems->push_back(absl::StrCat(data_dir_, "/", recovered.name,
                                       ": not a namespace name; ignored"));
      continue;
    }
    Namespace& space = namespaces_[recovered.name];
    space.name = recovered.name;
    space.options.persist = true;
    space.options.expire = absl::Microseconds(recovered.options.expire_micros);
    space.options.fsync = recovered.options.fsync;
    space.history_floor = recovered.history_floor;
    space.lost_after = recovered.history_floor;
    revision_ = std::max(revision_, recovered.history_floor);
    for (size_t i = 0; i < recovered.records.size(); ++i) {
      CacheRecord& record = recovered.records[i];
      revision_ = std::max(revision_, record.revision);
      space.lost_after = std::max(space.lost_after, record.revision);
      CacheEvent event;
      event.key = record.key;
      event.revision = record.revision;
      if (record.kind == CacheRecord::Kind::kSet) {
        Entry& entry = space.entries[record.key];
        entry.value = std::move(record.value);
        entry.revision = record.revision;
        entry.expires_at = record.expires_unix_micros != 0
                               ? std::optional<absl::Time>(absl::FromUnixMicros(
                                     record.expires_unix_micros))
                               : std::nullopt;
        event.value = entry.value;
        event.expires_at = entry.expires_at;
      } else {
        space.entries.erase(record.key);
        event.kind = CacheEvent::Kind::kDelete;
      }
      if (i >= recovered.snapshot_records) EmitLocked(space, std::move(event));
    }
    for (auto it = space.entries.begin(); it != space.entries.end();) {
      if (it->second.expires_at && *it->second.expires_at <= now) {
        it = space.entries.erase(it);
        continue;
      }
      AccountLocked(space, static_cast<int64_t>(it->first.size() +
                                                it->second.value.size() +
                                                kEntryOverhead));
      if (it->second.expires_at)
        space.expiry.insert({*it->second.expires_at, &it->first});
      ++it;
    }
    if (recovered.refused) continue;  // read-only: its files stay as they are
    if (absl::Status status = OpenLogLocked(space); !status.ok()) {
      problems->push_back(
          absl::StrCat("namespace '", space.name,
                       "' cannot log changes: ", status.message()));
      continue;
    }
    if (recovered.rewrite) {
      if (absl::Status status = CompactLocked(space); !status.ok()) {
        // Its log still holds the damage: appending after it would bury
        // the new records in it. Read-only until the next start.
        space.log.reset();
        problems->push_back(absl::StrCat(
            "namespace '", space.name,
            "' cannot be rewritten: ", status.message(), "; it is read-only"));
      }
    }
  }
  // Revisions up to here may have been handed out by the previous run and
  // lost with it (an unsynced tail): nobody can resume from them.
  for (auto& [name, space] : namespaces_) {
    if (space.options.persist) space.lost_until = revision_;
  }
  return absl::OkStatus();
}

absl::StatusOr<CacheStore::Namespace*> CacheStore::FindLocked(
    const std::string& ns, const std::string& key) {
  auto it = namespaces_.find(ns);
  if (it == namespaces_.end()) {
    return absl::NotFoundError(
        absl::StrCat("no namespace '", ns, "' (Use it first)"));
  }
  if (key.empty()) return absl::InvalidArgumentError("the key is empty");
  if (key.size() > limits_.max_key) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the key is ", key.size(), " bytes; the limit is ", limits_.max_key));
  }
  return &it->second;
}

const CacheStore::Entry* CacheStore::LiveLocked(Namespace& ns,
                                                const std::string& key) {
  auto it = ns.entries.find(key);
  if (it == ns.entries.end()) return nullptr;
  if (it->second.expires_at && *it->second.expires_at <= clock_->Now()) {
    EraseLocked(ns, it, CacheEvent::Kind::kExpire);  // invisible at once
    return nullptr;
  }
  if (it->second.in_lru) lru_.splice(lru_.begin(), lru_, it->second.lru);
  return &it->second;
}

void CacheStore::AccountLocked(Namespace& ns, int64_t delta) {
  ns.bytes += delta;
  bytes_ += delta;
  if (!ns.options.persist) evictable_bytes_ += delta;
}

void CacheStore::EmitLocked(Namespace& ns, CacheEvent event) {
  for (const Subscription& watch : ns.watches) {
    if (watch.key.empty() || watch.key == event.key)
      watch.watcher->OnEvent(event);
  }
  ns.history_bytes += event.key.size() + event.value.size();
  ns.history.push_back(std::move(event));
  while (ns.history.size() > limits_.history ||
         (ns.history_bytes > limits_.history_bytes && ns.history.size() > 1)) {
    const CacheEvent& oldest = ns.history.front();
    ns.history_floor = oldest.revision;
    ns.history_bytes -= oldest.key.size() + oldest.value.size();
    ns.history.pop_front();
  }
}

void CacheStore::SetExpiryLocked(Namespace& ns,
                                 std::map<std::string, Entry>::iterator it,
                                 std::optional<absl::Time> when) {
  if (it->second.expires_at)
    ns.expiry.erase({*it->second.expires_at, &it->first});
  it->second.expires_at = when;
  if (when) ns.expiry.insert({*when, &it->first});
}

void CacheStore::EraseLocked(Namespace& ns,
                             std::map<std::string, Entry>::iterator it,
                             CacheEvent::Kind kind) {
  SetExpiryLocked(ns, it, std::nullopt);
  AccountLocked(
      ns, -static_cast<int64_t>(it->first.size() + it->second.value.size() +
                                kEntryOverhead));
  if (it->second.in_lru) lru_.erase(it->second.lru);
  CacheEvent event;
  event.kind = kind;
  event.key = it->first;
  // A delete's revision was taken (and logged) by the caller.
  event.revision = kind == CacheEvent::Kind::kDelete ? revision_ : ++revision_;
  ns.entries.erase(it);
  EmitLocked(ns, std::move(event));
}

bool CacheStore::MakeRoomLocked(uint64_t incoming, const Entry* keep) {
  if (limits_.max_bytes == 0) return true;
  // Fail before evicting anything if evicting everything would not do.
  uint64_t kept =
      keep != nullptr && keep->in_lru
          ? keep->value.size() + keep->lru->key->size() + kEntryOverhead
          : 0;
  if (bytes_ - (evictable_bytes_ - kept) + incoming > limits_.max_bytes)
    return false;
  auto victim = lru_.end();
  while (bytes_ + incoming > limits_.max_bytes) {
    if (victim == lru_.begin()) return false;
    --victim;
    auto it = victim->ns->entries.find(*victim->key);
    if (&it->second == keep) continue;
    Namespace* ns = victim->ns;
    victim = std::next(victim);  // erasing invalidates the node itself
    EraseLocked(*ns, it, CacheEvent::Kind::kEvict);
  }
  return true;
}

std::string CacheStore::NewTokenLocked() {
  std::random_device random;
  return absl::StrFormat("%08x%08x-%d", random(), random(), next_id_++);
}

CacheGetResult CacheStore::Hit(const Entry& entry) {
  CacheGetResult result;
  result.found = true;
  result.value = entry.value;
  result.revision = entry.revision;
  result.expires_at = entry.expires_at;
  return result;
}

absl::StatusOr<CacheGetResult> CacheStore::Get(const std::string& ns,
                                               const std::string& key) {
  absl::MutexLock lock(&mu_);
  absl::StatusOr<Namespace*> space = FindLocked(ns, key);
  if (!space.ok()) return space.status();
  const Entry* entry = LiveLocked(**space, key);
  return entry != nullptr ? Hit(*entry) : CacheGetResult();
}

absl::StatusOr<std::optional<CacheGetResult>> CacheStore::GetOrLease(
    const std::string& ns, const std::string& key, const std::string& client_id,
    absl::Duration lease_ttl, Waiter waiter, uint64_t* waiter_id) {
  if (client_id.empty())
    return absl::InvalidArgumentError("a lease needs a client id");
  absl::MutexLock lock(&mu_);
  absl::StatusOr<Namespace*> space = FindLocked(ns, key);
  if (!space.ok()) return space.status();
  if (const Entry* entry = LiveLocked(**space, key)) {
    return std::optional<CacheGetResult>(Hit(*entry));
  }
  CacheGetResult result;
  auto [it, created] = (*space)->leases.try_emplace(key);
  Lease& lease = it->second;
  if (created) {  // the first caller of this miss loads
    lease.token = NewTokenLocked();
    lease.client_id = client_id;
    lease.expires_at = clock_->Now() + lease_ttl;
    result.lease_token = lease.token;
    return std::optional<CacheGetResult>(result);
  }
  uint64_t id = next_id_++;
  if (waiter_id != nullptr) *waiter_id = id;
  lease.parked.push_back(Parked{id, client_id, lease_ttl, std::move(waiter)});
  return std::optional<CacheGetResult>();
}

bool CacheStore::CancelWaiter(uint64_t waiter_id) {
  absl::MutexLock lock(&mu_);
  for (auto& [name, space] : namespaces_) {
    for (auto& [key, lease] : space.leases) {
      for (auto it = lease.parked.begin(); it != lease.parked.end(); ++it) {
        if (it->id == waiter_id) {
          lease.parked.erase(it);
          return true;
        }
      }
    }
  }
  return false;
}

void CacheStore::PassLeaseLocked(Namespace& ns, const std::string& key,
                                 std::vector<Completion>* done) {
  auto it = ns.leases.find(key);
  if (it == ns.leases.end()) return;
  Lease& lease = it->second;
  if (lease.parked.empty()) {
    ns.leases.erase(it);
    return;
  }
  Parked next = std::move(lease.parked.front());
  lease.parked.erase(lease.parked.begin());
  lease.token = NewTokenLocked();
  lease.client_id = next.client_id;
  lease.expires_at = clock_->Now() + next.lease_ttl;
  CacheGetResult granted;
  granted.lease_token = lease.token;
  done->emplace_back(std::move(next.waiter), granted);
}

void CacheStore::Complete(std::vector<Completion>& done) {
  for (auto& [waiter, result] : done) waiter(result);
}

absl::StatusOr<CacheSetResult> CacheStore::Set(const std::string& ns,
                                               const std::string& key,
                                               std::string value,
                                               absl::Duration ttl,
                                               bool leave_if_not_null,
                                               const std::string& lease_token) {
  if (value.size() > limits_.max_value) {
    return absl::ResourceExhaustedError(
        absl::StrCat("the value is ", value.size(), " bytes; the limit is ",
                     limits_.max_value));
  }
  if (ttl < absl::ZeroDuration())
    return absl::InvalidArgumentError("ttl must not be negative");
  std::vector<Completion> done;
  CacheSetResult result;
  NamespaceLog* sync = nullptr;
  {
    absl::MutexLock lock(&mu_);
    absl::StatusOr<Namespace*> space = FindLocked(ns, key);
    if (!space.ok()) return space.status();
    Namespace& n = **space;
    auto lease = n.leases.find(key);
    if (!lease_token.empty() &&
        (lease == n.leases.end() || lease->second.token != lease_token)) {
      return absl::FailedPreconditionError(
          "the lease is no longer held by this token");
    }
    const Entry* old = LiveLocked(n, key);
    if (old != nullptr && leave_if_not_null) {
      result.current = old->value;
      result.revision = old->revision;
      result.expires_at = old->expires_at;
      return result;
    }
    uint64_t size = key.size() + value.size() + kEntryOverhead;
    uint64_t old_size =
        old != nullptr ? key.size() + old->value.size() + kEntryOverhead : 0;
    if (size > old_size && !MakeRoomLocked(size - old_size, old)) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "the cache is full: ", bytes_, " of ", limits_.max_bytes,
          " bytes are used and only persistent keys are left, which are "
          "never evicted"));
    }
    absl::Duration life = ttl > absl::ZeroDuration() ? ttl : n.options.expire;
    std::optional<absl::Time> expires_at;
    if (life > absl::ZeroDuration()) expires_at = clock_->Now() + life;
    if (n.options.persist && n.log == nullptr) return Unpersistable(n);
    if (n.log != nullptr) {  // logged before it is applied
      CacheRecord record;
      record.kind = CacheRecord::Kind::kSet;
      record.key = key;
      record.value = value;
      record.revision = revision_ + 1;
      record.expires_unix_micros = ExpiryUnixMicros(expires_at);
      if (absl::Status status = n.log->Append(record); !status.ok()) {
        return PersistError(
            status,
            absl::StrCat("cannot persist the write to namespace '", ns, "'"));
      }
      if (n.options.fsync == FsyncPolicy::kAlways) sync = n.log.get();
    }
    auto [it, created] = n.entries.try_emplace(key);
    Entry& entry = it->second;
    AccountLocked(n, static_cast<int64_t>(size) -
                         static_cast<int64_t>(created ? 0 : old_size));
    entry.value = std::move(value);
    entry.revision = ++revision_;
    SetExpiryLocked(n, it, expires_at);
    if (!n.options.persist) {
      if (entry.in_lru) lru_.erase(entry.lru);
      entry.lru = lru_.insert(lru_.begin(), LruNode{&n, &it->first});
      entry.in_lru = true;
    }
    result.written = true;
    result.revision = entry.revision;
    result.expires_at = entry.expires_at;
    CacheEvent event;
    event.key = key;
    event.value = entry.value;
    event.revision = entry.revision;
    event.expires_at = entry.expires_at;
    EmitLocked(n, std::move(event));
    // A value for a key being loaded ends its lease, whoever wrote it: every
    // parked caller gets it.
    if (lease != n.leases.end()) {
      CacheGetResult ready = Hit(entry);
      for (Parked& parked : lease->second.parked)
        done.emplace_back(std::move(parked.waiter), ready);
      n.leases.erase(lease);
    }
  }
  Complete(done);  // the value is applied either way
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
  std::vector<Completion> done;
  {
    absl::MutexLock lock(&mu_);
    absl::StatusOr<Namespace*> space = FindLocked(ns, key);
    if (!space.ok()) return space.status();
    auto lease = (*space)->leases.find(key);
    if (lease == (*space)->leases.end() || lease->second.token != lease_token) {
      return absl::FailedPreconditionError(
          "the lease is no longer held by this token");
    }
    if (retry) {
      PassLeaseLocked(**space, key, &done);
    } else {
      CacheGetResult failed;
      failed.load_error = error.empty() ? "the loader failed" : error;
      for (Parked& parked : lease->second.parked)
        done.emplace_back(std::move(parked.waiter), failed);
      (*space)->leases.erase(lease);
    }
  }
  Complete(done);
  return absl::OkStatus();
}

void CacheStore::ReleaseClient(const std::string& client_id) {
  std::vector<Completion> done;
  {
    absl::MutexLock lock(&mu_);
    CacheGetResult lost;
    lost.hold_lost = true;
    for (auto& [name, space] : namespaces_) {
      // First its parked calls (never hand its lease to one of them)...
      for (auto& [key, lease] : space.leases) {
        auto gone = std::stable_partition(
            lease.parked.begin(), lease.parked.end(),
            [&](const Parked& p) { return p.client_id != client_id; });
        for (auto it = gone; it != lease.parked.end(); ++it)
          done.emplace_back(std::move(it->waiter), lost);
        lease.parked.erase(gone, lease.parked.end());
      }
      // ...then its leases, to the next caller of another process.
      std::vector<std::string> held;
      for (const auto& [key, lease] : space.leases) {
        if (lease.client_id == client_id) held.push_back(key);
      }
      for (const std::string& key : held) PassLeaseLocked(space, key, &done);
    }
  }
  Complete(done);
}

absl::StatusOr<CacheDeleteResult> CacheStore::Delete(const std::string& ns,
                                                     const std::string& key) {
  NamespaceLog* sync = nullptr;
  CacheDeleteResult result;
  std::vector<Completion> done;
  {
    absl::MutexLock lock(&mu_);
    absl::StatusOr<Namespace*> space = FindLocked(ns, key);
    if (!space.ok()) return space.status();
    Namespace& n = **space;
    // An invalidation: a load under way may have read the old data.
    PassLeaseLocked(n, key, &done);
    if (LiveLocked(n, key) != nullptr) {
      if (n.options.persist && n.log == nullptr) return Unpersistable(n);
      auto it = n.entries.find(key);
      if (n.log != nullptr) {
        CacheRecord record;
        record.kind = CacheRecord::Kind::kDelete;
        record.key = key;
        record.revision = revision_ + 1;
        if (absl::Status status = n.log->Append(record); !status.ok()) {
          return PersistError(
              status, absl::StrCat("cannot persist the delete in namespace '",
                                   ns, "'"));
        }
        if (n.options.fsync == FsyncPolicy::kAlways) sync = n.log.get();
      }
      result.old_value = it->second.value;  // EraseLocked counts its bytes
      result.revision = ++revision_;
      EraseLocked(n, it, CacheEvent::Kind::kDelete);
    }
  }
  Complete(done);
  if (sync != nullptr) {
    if (absl::Status status = sync->Sync(); !status.ok()) {
      return PersistError(status, absl::StrCat("deleted in namespace '", ns,
                                               "' but not synced to disk"));
    }
  }
  return result;
}

absl::Status CacheStore::Unpersistable(const Namespace& ns) {
  return absl::FailedPreconditionError(absl::StrCat(
      "namespace '", ns.name,
      "' is persistent but its log could not be opened or rewritten (see the "
      "cache server's log): writes are refused rather than not persisted"));
}

absl::StatusOr<std::vector<std::string>> CacheStore::Keys(
    const std::string& ns, const std::string& prefix, size_t limit,
    const std::string& after) {
  absl::MutexLock lock(&mu_);
  auto it = namespaces_.find(ns);
  if (it == namespaces_.end()) {
    return absl::NotFoundError(
        absl::StrCat("no namespace '", ns, "' (Use it first)"));
  }
  std::vector<std::string> keys;
  absl::Time now = clock_->Now();
  auto entry = after.empty() ? it->second.entries.lower_bound(prefix)
                             : it->second.entries.upper_bound(after);
  for (; entry != it->second.entries.end() && keys.size() < limit; ++entry) {
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
  auto it = namespaces_.find(ns);
  if (it == namespaces_.end()) {
    return absl::NotFoundError(
        absl::StrCat("no namespace '", ns, "' (Use it first)"));
  }
  Namespace& space = it->second;
  bool resync = false;
  if (from_revision > 0) {
    resync =
        from_revision < space.history_floor || from_revision > revision_ ||
        (from_revision > space.lost_after && from_revision <= space.lost_until);
    if (!resync) {
      auto event = std::upper_bound(
          space.history.begin(), space.history.end(), from_revision,
          [](uint64_t r, const CacheEvent& e) { return r < e.revision; });
      for (; event != space.history.end(); ++event) {
        if (key.empty() || event->key == key) watcher->OnEvent(*event);
      }
    }
  }
  space.watches.push_back(Subscription{key, watcher});
  return resync;
}

void CacheStore::Unwatch(CacheWatcher* watcher) {
  absl::MutexLock lock(&mu_);
  for (auto& [name, space] : namespaces_) {
    space.watches.erase(
        std::remove_if(
            space.watches.begin(), space.watches.end(),
            [&](const Subscription& w) { return w.watcher == watcher; }),
        space.watches.end());
  }
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
    for (const auto& [key, lease] : space.leases)
      info.waiting += lease.parked.size();
    infos.push_back(std::move(info));
  }
  return infos;
}

uint64_t CacheStore::bytes() {
  absl::MutexLock lock(&mu_);
  return bytes_;
}

size_t CacheStore::Sweep() {
  std::vector<Completion> done;
  size_t reclaimed = 0;
  {
    absl::MutexLock lock(&mu_);
    absl::Time now = clock_->Now();
    for (auto& [name, space] : namespaces_) {
      while (!space.expiry.empty() && space.expiry.begin()->first <= now) {
        auto it = space.entries.find(*space.expiry.begin()->second);
        if (it == space.entries.end()) {  // cannot happen; never loop on it
          space.expiry.erase(space.expiry.begin());
          continue;
        }
        EraseLocked(space, it, CacheEvent::Kind::kExpire);
        ++reclaimed;
      }
      std::vector<std::string> lapsed;
      for (const auto& [key, lease] : space.leases) {
        if (lease.expires_at <= now) lapsed.push_back(key);
      }
      for (const std::string& key : lapsed) PassLeaseLocked(space, key, &done);
    }
  }
  Complete(done);
  return reclaimed;
}

absl::Status CacheStore::CompactLocked(Namespace& ns) {
  std::vector<CacheRecord> live;
  live.reserve(ns.entries.size() + 1);
  CacheRecord options;
  options.kind = CacheRecord::Kind::kOptions;
  options.revision = revision_;
  options.expire_micros = absl::ToInt64Microseconds(ns.options.expire);
  options.fsync = ns.options.fsync;
  live.push_back(std::move(options));
  for (const auto& [key, entry] : ns.entries) {
    CacheRecord record;
    record.key = key;
    record.value = entry.value;
    record.revision = entry.revision;
    record.expires_unix_micros = ExpiryUnixMicros(entry.expires_at);
    live.push_back(std::move(record));
  }
  if (absl::Status status = ns.log->Compact(live); !status.ok()) return status;
  ns.snapshot_bytes = ns.bytes;
  return absl::OkStatus();
}

void CacheStore::Maintain() {
  Sweep();
  std::vector<NamespaceLog*> to_sync;
  {
    absl::MutexLock lock(&mu_);
    for (auto& [name, space] : namespaces_) {
      if (space.log == nullptr) continue;
      // Compaction holds the lock while it writes the snapshot: a pause
      // proportional to the namespace's size, once its log doubled.
      uint64_t threshold = std::max<uint64_t>(1 << 20, 2 * space.bytes);
      if (space.log->log_bytes() > threshold) {
        CompactLocked(space).IgnoreError();  // the log reports its failures
      }
      if (space.options.fsync == FsyncPolicy::kEverySec)
        to_sync.push_back(space.log.get());
    }
  }
  // A failed sync is reported by the log itself, once.
  for (NamespaceLog* log : to_sync) log->Sync().IgnoreError();
}

void CacheStore::SyncAll() {
  std::vector<NamespaceLog*> logs;
  {
    absl::MutexLock lock(&mu_);
    for (auto& [name, space] : namespaces_) {
      if (space.log != nullptr) logs.push_back(space.log.get());
    }
  }
  for (NamespaceLog* log : logs) log->Sync().IgnoreError();
}

}  // namespace cluster2
