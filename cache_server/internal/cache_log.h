// Persistence of cache namespaces: a checksummed append-only log per
// namespace, compacted into a snapshot written to a temporary file, fsynced
// and renamed over the old one.
//
// Files, in the data directory:
//   <ns>.snapshot   the namespace at some revision (an options record, then
//                   one set record per live key)
//   <ns>.log        every change after the snapshot, in order
// Each record is [u32 payload length][u32 CRC-32C of the payload][payload],
// little-endian; the payload is a kind byte, then varints and
// length-prefixed bytes (see cache_log.cc).
//
// Recovery (RecoverAll) keeps every intact record. A record cut short at the
// end of the log (a torn write: the process died in the middle of it) is
// dropped and the file truncated to its last intact record. A damaged record
// anywhere else makes the file corrupt: recovery reports it, skips to the
// next intact record, keeps a copy of the file as <file>.corrupt-<unix time>
// and never fails the server.
//
// Durability: FsyncPolicy::kAlways syncs before a write is acknowledged
// (the caller calls Sync after Append, outside its own locks); kEverySec
// syncs from a once-a-second tick (a crash loses at most ~1 s of writes);
// kNo leaves it to the kernel.
#ifndef CLUSTER2_CACHE_SERVER_INTERNAL_CACHE_LOG_H_
#define CLUSTER2_CACHE_SERVER_INTERNAL_CACHE_LOG_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

namespace cluster2 {

enum class FsyncPolicy : uint8_t { kEverySec = 0, kAlways = 1, kNo = 2 };

struct CacheRecord {
  enum class Kind : uint8_t { kOptions = 1, kSet = 2, kDelete = 3 };
  Kind kind = Kind::kSet;
  std::string key;
  std::string value;
  uint64_t revision = 0;
  // kSet: when the key expires, microseconds since the Unix epoch; 0 = never.
  int64_t expires_unix_micros = 0;
  // kOptions: the namespace's default TTL (microseconds) and fsync policy.
  int64_t expire_micros = 0;
  FsyncPolicy fsync = FsyncPolicy::kEverySec;
};

// The bytes of `record` as written to a file (header included).
std::string EncodeRecord(const CacheRecord& record);

// CRC-32C (Castagnoli) of `data`.
uint32_t Crc32c(absl::string_view data);

// The log of one persisted namespace. Thread-safe; Append and Compact are
// meant to run under the store's lock (they order the records), Sync
// outside it.
class NamespaceLog {
 public:
  // Opens <dir>/<name>.log for appending (creating it with an options
  // record if it does not exist).
  static absl::StatusOr<std::unique_ptr<NamespaceLog>> Open(
      const std::string& dir, const std::string& name,
      const CacheRecord& options);
  ~NamespaceLog();

  // Writes `record` at the end of the log (a failed write is cut off again,
  // so no partial record stays behind).
  absl::Status Append(const CacheRecord& record) ABSL_LOCKS_EXCLUDED(mu_);
  // Returns once everything appended before the call is on disk: joins an
  // fdatasync under way if it covers it, else runs one (which covers every
  // append so far: concurrent callers share it).
  absl::Status Sync() ABSL_LOCKS_EXCLUDED(mu_);
  // Writes `live` (options record first) as the new snapshot and starts an
  // empty log. The old log stays valid until the new snapshot is renamed in
  // place, so a crash at any point recovers the same data.
  absl::Status Compact(const std::vector<CacheRecord>& live)
      ABSL_LOCKS_EXCLUDED(mu_);

  FsyncPolicy policy() const { return policy_; }
  // Bytes in the log since the last compaction.
  uint64_t log_bytes() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  // An open file, shared so that Sync can run outside the lock while
  // Compact swaps the file.
  struct File;
  NamespaceLog(std::string dir, std::string name, FsyncPolicy policy)
      : dir_(std::move(dir)), name_(std::move(name)), policy_(policy) {}

  const std::string dir_;
  const std::string name_;
  const FsyncPolicy policy_;
  mutable absl::Mutex mu_;
  std::shared_ptr<File> file_ ABSL_GUARDED_BY(mu_);
  uint64_t log_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  // Appends are numbered; `synced_` is the last one known on disk.
  uint64_t appended_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t synced_ ABSL_GUARDED_BY(mu_) = 0;
  bool syncing_ ABSL_GUARDED_BY(mu_) = false;
  // Set when a compaction swapped files but could not finish cleanly: the
  // log cannot be trusted, appends fail.
  absl::Status broken_ ABSL_GUARDED_BY(mu_);
};

struct RecoveredNamespace {
  std::string name;
  CacheRecord options;
  // The snapshot's records, then the log's, in order (options excluded).
  std::vector<CacheRecord> records;
  // How many of `records` came from the snapshot; the rest are changes, in
  // revision order, after `history_floor` (all of them, unless a file was
  // corrupt: then history_floor is the largest revision seen).
  size_t snapshot_records = 0;
  uint64_t history_floor = 0;
  // A file was corrupt and set aside: write the namespace out afresh.
  bool rewrite = false;
};

struct Recovery {
  std::vector<RecoveredNamespace> namespaces;
  // One line per problem found (torn tails dropped, corrupt files), for the
  // server's log. Recovery goes on regardless.
  std::vector<std::string> problems;
};

// Reads every namespace persisted in `dir` (creating `dir` if needed).
// Fails only if the directory cannot be created or listed.
absl::StatusOr<Recovery> RecoverAll(const std::string& dir);

}  // namespace cluster2

#endif  // CLUSTER2_CACHE_SERVER_INTERNAL_CACHE_LOG_H_
