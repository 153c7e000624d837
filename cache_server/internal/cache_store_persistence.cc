// CacheStore's persistence: recovery at start, the logs of persistent
// namespaces, compaction and syncing. The files themselves are NamespaceLog's
// (cache_log.h); this part only decides when to write and what.
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "cache_server/internal/cache_store.h"

namespace cluster2 {

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
    RecoverLocked(recovered, now, problems);
  }
  // Revisions up to here may have been handed out by the previous run and
  // lost with it (an unsynced tail): nobody can resume from them.
  for (RecoveredNamespace& recovered : recovery->namespaces) {
    auto it = namespaces_.find(recovered.name);
    if (it == namespaces_.end()) continue;
    uint64_t lost_after = recovered.history_floor;
    for (const CacheRecord& record : recovered.records)
      lost_after = std::max(lost_after, record.revision);
    it->second.history.MarkLost(lost_after, revision_);
  }
  return absl::OkStatus();
}

void CacheStore::RecoverLocked(RecoveredNamespace& recovered, absl::Time now,
                               std::vector<std::string>* problems) {
  Namespace& space = AddNamespaceLocked(recovered.name);
  space.options.persist = true;
  space.options.expire = absl::Microseconds(recovered.options.expire_micros);
  space.options.fsync = recovered.options.fsync;
  space.history.set_floor(recovered.history_floor);
  revision_ = std::max(revision_, recovered.history_floor);
  for (size_t i = 0; i < recovered.records.size(); ++i) {
    CacheRecord& record = recovered.records[i];
    revision_ = std::max(revision_, record.revision);
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
    if (i >= recovered.snapshot_records) space.history.Record(std::move(event));
  }
  for (auto it = space.entries.begin(); it != space.entries.end();) {
    if (it->second.expires_at && *it->second.expires_at <= now) {
      it = space.entries.erase(it);
      continue;
    }
    AccountLocked(space, static_cast<int64_t>(MemoryBudget::EntryBytes(
                             it->first, it->second.value)));
    space.expiry.Update(&it->first, std::nullopt, it->second.expires_at);
    ++it;
  }
  if (recovered.refused) return;  // read-only: its files stay as they are
  if (absl::Status status = OpenLogLocked(space); !status.ok()) {
    problems->push_back(absl::StrCat(
        "namespace '", space.name, "' cannot log changes: ", status.message()));
    return;
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
