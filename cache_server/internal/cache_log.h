// Persistence of cache namespaces: a checksummed append-only log per
// namespace, compacted into a snapshot written to a temporary file, fsynced
// and renamed over the old one.
//
// Files, in the data directory:
//   <ns>.snapshot   the namespace at some revision (an options record, then
//                   one set record per live key)
//   <ns>.log        every change after the snapshot, in order (an options
//                   record first; revisions increase)
// Each record is [u32 payload length][u32 CRC-32C of the payload][payload],
// little-endian; the payload is a kind byte, then varints and
// length-prefixed bytes (see cache_log.cc). A payload is at most
// kMaxPayload bytes.
//
// The data directory (DataDirectory) must belong to this process's user and
// be writable by nobody else; it is opened once and every file is opened
// relative to it without following symbolic links (O_NOFOLLOW), so a file
// planted by another user is never written through. A namespace file that
// is a symbolic link, not a regular file or not ours is refused and left
// alone: the namespace is recovered from its other file (if any) and stays
// read-only (RecoveredNamespace::refused).
//
// Recovery (RecoverAll, ParseLogBytes) keeps every intact record. Damage is
// one of two kinds:
//   torn     only at the end of a log, and at most one record's worth: fewer
//            bytes than a header, or a plausible header (length at most
//            kMaxPayload, a known kind, the first record an options record,
//            a revision above the previous record's) whose payload runs
//            past the end of the file, with no intact record after it. The
//            process died in the middle of an append: the tail is dropped
//            and the log truncated to its last intact record.
//   corrupt  anything else (any damage in a snapshot). The file is first
//            kept as <file>.corrupt-<unix time> (a hard link, made before
//            anything changes), every intact record is kept, and the
//            namespace is rewritten (RecoveredNamespace::rewrite).
// Recovery never fails the server for a damaged file.
//
// Resynchronisation after damage is linear in the file's size: each offset
// is first checked for a plausible record without reading its payload (a
// length that fits, a known kind byte, then a walk of the payload's fields,
// which must end exactly at its length: a few bytes of work); only a
// candidate that passes gets its CRC computed. Found records are consumed,
// so their CRCs cost one pass; CRCs of candidates that fail are charged to
// a budget of twice the file's size (plus 1 MiB), past which the rest of
// the file is given up as damaged (it is still in the .corrupt copy).
//
// Full disk: an append that fails (ENOSPC midway) is cut off the log again,
// at the exact end of the last acknowledged record, and the call fails
// with RESOURCE_EXHAUSTED (no space left, quota, file size limit); other
// errors keep their errno's code (common/status.h). Each change between
// "writing" and "failing" (and back) of a namespace's log is logged once,
// with the namespace and the errno's text.
//
// Durability: FsyncPolicy::kAlways syncs before a write is acknowledged
// (the caller calls Sync after Append, outside its own locks); kEverySec
// syncs from a once-a-second tick (a crash loses at most ~1 s of writes);
// kNo leaves it to the kernel.
#ifndef CLUSTER2_CACHE_SERVER_INTERNAL_CACHE_LOG_H_
#define CLUSTER2_CACHE_SERVER_INTERNAL_CACHE_LOG_H_

#include <cstddef>
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

// Largest payload a record may have: a 64 MiB value (the server's limit)
// plus room for its key and fields. Longer lengths are damage.
inline constexpr uint32_t kMaxPayload = (64u << 20) + (1u << 20);

// The bytes of `record` as written to a file (header included).
std::string EncodeRecord(const CacheRecord& record);

// CRC-32C (Castagnoli) of `data`.
uint32_t Crc32c(absl::string_view data);

// The records of one file's bytes, as recovery reads them.
struct ParsedLog {
  enum class Damage { kNone, kTorn, kCorrupt };
  struct Extent {
    size_t offset = 0;
    size_t size = 0;
  };
  std::vector<CacheRecord> records;
  std::vector<Extent> extents;  // where each of `records` lies in the bytes
  Damage damage = Damage::kNone;
  // Where the intact part ends: the start of a torn tail, else the size.
  size_t intact_end = 0;
  // One line per damaged region (without the file's name).
  std::vector<std::string> problems;
};

// Parses the bytes of a log (`is_log`: a short tail may be torn, see the
// header comment) or of a snapshot (any damage is corruption). Pure; time
// linear in data.size().
ParsedLog ParseLogBytes(absl::string_view data, bool is_log);

// The data directory, opened once: the directory every persistence file is
// opened relative to. Thread-safe (immutable).
class DataDirectory {
 public:
  // Opens `path`, creating it and its missing parents (mode 0700) if it
  // does not exist. Fails with
  // FAILED_PRECONDITION if it is not a directory, not owned by this
  // process's effective uid, or writable by its group or others; with the
  // errno's code if it cannot be created or opened.
  static absl::StatusOr<std::unique_ptr<DataDirectory>> Open(
      const std::string& path);
  ~DataDirectory();
  DataDirectory(const DataDirectory&) = delete;
  DataDirectory& operator=(const DataDirectory&) = delete;

  const std::string& path() const { return path_; }
  int fd() const { return fd_; }

 private:
  DataDirectory(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}
  const std::string path_;
  const int fd_;
};

// The log of one persisted namespace. Thread-safe; Append and Compact are
// meant to run under the store's lock (they order the records), Sync
// outside it.
class NamespaceLog {
 public:
  // Opens <dir>/<name>.log for appending (creating it with an options
  // record if it does not exist). FAILED_PRECONDITION if it is a symbolic
  // link, not a regular file or not ours. `dir` must outlive the log.
  static absl::StatusOr<std::unique_ptr<NamespaceLog>> Open(
      const DataDirectory* dir, const std::string& name,
      const CacheRecord& options);
  ~NamespaceLog();

  // Writes `record` at the end of the log. A failed write is cut off again
  // (the log ends with the last acknowledged record) and returned:
  // RESOURCE_EXHAUSTED when the disk is full.
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
  NamespaceLog(const DataDirectory* dir, std::string name, FsyncPolicy policy)
      : dir_(dir), name_(std::move(name)), policy_(policy) {}
  // Logs `status` if it changes the log's state (writing <-> failing), so a
  // full disk is reported once, not once per write; returns it.
  absl::Status Report(absl::Status status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const DataDirectory* const dir_;
  const std::string name_;
  const FsyncPolicy policy_;
  mutable absl::Mutex mu_;
  std::shared_ptr<File> file_ ABSL_GUARDED_BY(mu_);
  // The file's size: the end of the last acknowledged record, where a
  // failed append is cut off.
  uint64_t log_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  // Appends are numbered; `synced_` is the last one known on disk.
  uint64_t appended_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t synced_ ABSL_GUARDED_BY(mu_) = 0;
  bool syncing_ ABSL_GUARDED_BY(mu_) = false;
  // Set when a compaction swapped files but could not finish cleanly, or a
  // failed append could not be cut off: the log cannot be trusted, appends
  // fail.
  absl::Status broken_ ABSL_GUARDED_BY(mu_);
  bool failing_ ABSL_GUARDED_BY(mu_) = false;  // the last operation failed
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
  // A file was corrupt (a copy is kept): write the namespace out afresh.
  bool rewrite = false;
  // A file of the namespace was refused (a symbolic link, not a regular
  // file, not ours) and left alone: the namespace must not be written.
  bool refused = false;
};

struct Recovery {
  std::vector<RecoveredNamespace> namespaces;
  // One line per problem found (torn tails dropped, corrupt files, refused
  // files), for the server's log. Recovery goes on regardless.
  std::vector<std::string> problems;
};

// Reads every namespace persisted in `dir`, truncating torn tails and
// keeping copies of corrupt files. Fails only if the directory cannot be
// listed.
absl::StatusOr<Recovery> RecoverAll(const DataDirectory& dir);

}  // namespace cluster2

#endif  // CLUSTER2_CACHE_SERVER_INTERNAL_CACHE_LOG_H_
