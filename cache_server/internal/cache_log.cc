#include "cache_server/internal/cache_log.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <map>
#include <optional>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "common/log.h"
#include "common/status.h"

namespace cluster2 {
namespace {

constexpr size_t kHeaderBytes = 8;
constexpr char kLogSuffix[] = ".log";
constexpr char kSnapshotSuffix[] = ".snapshot";
constexpr char kTmpSuffix[] = ".tmp";

std::array<uint32_t, 256> MakeCrcTable() {
  std::array<uint32_t, 256> table{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t crc = i;
    for (int bit = 0; bit < 8; ++bit)
      crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1)));
    table[i] = crc;
  }
  return table;
}

void PutU32(std::string* out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out->push_back(static_cast<char>(v >> (8 * i)));
}

uint32_t GetU32(const char* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i)
    v |= static_cast<uint32_t>(static_cast<unsigned char>(p[i])) << (8 * i);
  return v;
}

void PutVarint(std::string* out, uint64_t v) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>(v | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

void PutBytes(std::string* out, absl::string_view bytes) {
  PutVarint(out, bytes.size());
  out->append(bytes.data(), bytes.size());
}

// Reads the payload fields back; false on any malformed byte.
class Reader {
 public:
  explicit Reader(absl::string_view data) : data_(data) {}
  bool Varint(uint64_t* v) {
    *v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (data_.empty()) return false;
      auto byte = static_cast<unsigned char>(data_[0]);
      data_.remove_prefix(1);
      *v |= static_cast<uint64_t>(byte & 0x7f) << shift;
      if ((byte & 0x80) == 0) return true;
    }
    return false;
  }
  // Length-prefixed bytes; `out` may be null to skip them.
  bool Bytes(std::string* out) {
    uint64_t size = 0;
    if (!Varint(&size) || size > data_.size()) return false;
    if (out != nullptr) out->assign(data_.data(), size);
    data_.remove_prefix(size);
    return true;
  }
  bool done() const { return data_.empty(); }

 private:
  absl::string_view data_;
};

bool KnownKind(unsigned char kind) { return kind >= 1 && kind <= 3; }

// Decodes `payload` into `record` (or, with a null `record`, only checks
// its shape: a few bytes of work, whatever its length).
bool DecodePayload(absl::string_view payload, CacheRecord* record) {
  if (payload.empty()) return false;
  auto kind = static_cast<unsigned char>(payload[0]);
  if (!KnownKind(kind)) return false;
  Reader reader(payload.substr(1));
  uint64_t revision, expires, expire, fsync;
  if (!reader.Varint(&revision) || !reader.Varint(&expires) ||
      !reader.Varint(&expire) || !reader.Varint(&fsync) || fsync > 2 ||
      !reader.Bytes(record != nullptr ? &record->key : nullptr) ||
      !reader.Bytes(record != nullptr ? &record->value : nullptr) ||
      !reader.done()) {
    return false;
  }
  if (record != nullptr) {
    record->kind = static_cast<CacheRecord::Kind>(kind);
    record->revision = revision;
    record->expires_unix_micros = static_cast<int64_t>(expires);
    record->expire_micros = static_cast<int64_t>(expire);
    record->fsync = static_cast<FsyncPolicy>(fsync);
  }
  return true;
}

// Finds records in a file's bytes, charging the CRCs that fail to a budget
// (see the header comment).
class RecordScanner {
 public:
  explicit RecordScanner(absl::string_view data)
      : data_(data),
        budget_(2 * static_cast<uint64_t>(data.size()) + (1 << 20)) {}

  // The record starting at `pos`, if an intact one does (`*size` set).
  // Everything cheap is checked before the CRC.
  std::optional<CacheRecord> At(size_t pos, size_t* size) {
    if (data_.size() - pos < kHeaderBytes) return std::nullopt;
    uint32_t length = GetU32(data_.data() + pos);
    if (length == 0 || length > kMaxPayload ||
        length > data_.size() - pos - kHeaderBytes) {
      return std::nullopt;
    }
    absl::string_view payload = data_.substr(pos + kHeaderBytes, length);
    if (!DecodePayload(payload, nullptr)) return std::nullopt;
    if (length > budget_) {
      out_of_budget_ = true;
      return std::nullopt;
    }
    if (Crc32c(payload) != GetU32(data_.data() + pos + 4)) {
      budget_ -= length;
      return std::nullopt;
    }
    CacheRecord record;
    DecodePayload(payload, &record);
    *size = kHeaderBytes + length;
    return record;
  }

  // The first offset after `pos` where an intact record starts, or the
  // file's size.
  size_t Next(size_t pos) {
    size_t size;
    for (size_t next = pos + 1; next < data_.size(); ++next) {
      if (At(next, &size)) return next;
    }
    return data_.size();
  }

  // True if the bytes from `pos` to the end can be one record cut short by
  // the end of the file (see "torn" in the header comment). `previous` is
  // the last intact record before it, if any.
  bool TornTail(size_t pos, const CacheRecord* previous) const {
    size_t left = data_.size() - pos;
    if (left < kHeaderBytes) return true;
    uint32_t length = GetU32(data_.data() + pos);
    if (length == 0 || length > kMaxPayload || length <= left - kHeaderBytes)
      return false;
    absl::string_view partial = data_.substr(pos + kHeaderBytes);
    if (partial.empty()) return true;
    auto kind = static_cast<unsigned char>(partial[0]);
    if (!KnownKind(kind)) return false;
    if (previous == nullptr &&
        kind != static_cast<unsigned char>(CacheRecord::Kind::kOptions)) {
      return false;  // a log starts with its options
    }
    uint64_t revision;
    if (previous != nullptr && Reader(partial.substr(1)).Varint(&revision) &&
        revision <= previous->revision) {
      return false;  // a log's revisions increase
    }
    return true;
  }

  // A candidate was skipped because its CRC would have overdrawn the
  // budget.
  bool out_of_budget() const { return out_of_budget_; }

 private:
  const absl::string_view data_;
  uint64_t budget_;
  bool out_of_budget_ = false;
};

// A file error: the errno's code (common/status.h), except that every way
// of running out of room is RESOURCE_EXHAUSTED.
absl::Status FileError(int error, absl::string_view what) {
  if (error == ENOSPC || error == EDQUOT || error == EFBIG) {
    return absl::ResourceExhaustedError(
        absl::StrCat(what, ": ", std::strerror(error)));
  }
  return ErrnoStatus(error, what);
}

// Writes all of `data` (`what` names the file in errors).
absl::Status WriteAll(int fd, absl::string_view data, absl::string_view what) {
  while (!data.empty()) {
    ssize_t n = write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return FileError(errno, absl::StrCat("write ", what));
    data.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

// Opens `name` in `dir` without following a symbolic link, and only if it
// is a regular file owned by this process's user. O_NONBLOCK: a planted
// FIFO must not block the open (it does nothing for regular files).
absl::StatusOr<int> OpenIn(const DataDirectory& dir, const std::string& name,
                           int flags) {
  std::string path = absl::StrCat(dir.path(), "/", name);
  int fd = openat(dir.fd(), name.c_str(),
                  flags | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0600);
  if (fd < 0 && errno == ELOOP) {
    return absl::FailedPreconditionError(absl::StrCat(
        path, " is a symbolic link: refused (never followed, left alone)"));
  }
  if (fd < 0) return FileError(errno, absl::StrCat("open ", path));
  struct stat st;
  std::string refused;
  if (fstat(fd, &st) != 0) {
    int error = errno;
    close(fd);
    return FileError(error, absl::StrCat("fstat ", path));
  }
  if (!S_ISREG(st.st_mode)) {
    refused = absl::StrCat(path, " is not a regular file: refused");
  } else if (st.st_uid != geteuid()) {
    refused =
        absl::StrCat(path, " is owned by uid ", st.st_uid,
                     ", not by this process's uid ", geteuid(), ": refused");
  }
  if (!refused.empty()) {
    close(fd);
    return absl::FailedPreconditionError(refused);
  }
  return fd;
}

absl::Status SyncDir(const DataDirectory& dir) {
  if (fsync(dir.fd()) != 0) return FileError(errno, "fsync " + dir.path());
  return absl::OkStatus();
}

// Writes `data` to <dir>/<name>.tmp and fdatasyncs it; returns the file,
// open (with `flags`). Removes it on failure.
absl::StatusOr<int> WriteTemporary(const DataDirectory& dir,
                                   const std::string& name,
                                   absl::string_view data, int flags) {
  std::string tmp = name + kTmpSuffix;
  unlinkat(dir.fd(), tmp.c_str(), 0);  // a leftover (never followed)
  absl::StatusOr<int> fd =
      OpenIn(dir, tmp, O_WRONLY | O_CREAT | O_EXCL | flags);
  if (!fd.ok()) return fd.status();
  absl::Status status = WriteAll(*fd, data, tmp);
  if (status.ok() && fdatasync(*fd) != 0)
    status = FileError(errno, "fdatasync " + tmp);
  if (!status.ok()) {
    close(*fd);
    unlinkat(dir.fd(), tmp.c_str(), 0);
    return status;
  }
  return fd;
}

// Renames <name>.tmp over <name> (a symbolic link there is replaced, never
// followed).
absl::Status RenameTemporary(const DataDirectory& dir,
                             const std::string& name) {
  std::string tmp = name + kTmpSuffix;
  if (renameat(dir.fd(), tmp.c_str(), dir.fd(), name.c_str()) != 0) {
    absl::Status status = FileError(errno, "rename " + tmp);
    unlinkat(dir.fd(), tmp.c_str(), 0);
    return status;
  }
  return absl::OkStatus();
}

absl::Status ReadAll(int fd, const std::string& what, std::string* out) {
  out->clear();
  struct stat st;
  if (fstat(fd, &st) == 0) out->reserve(static_cast<size_t>(st.st_size));
  char buffer[1 << 16];
  while (true) {
    ssize_t n = read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return FileError(errno, "read " + what);
    if (n == 0) return absl::OkStatus();
    out->append(buffer, static_cast<size_t>(n));
  }
}

// Keeps <name> as <name>.corrupt-<unix time> (a hard link: no copy, and
// the file itself stays in place until the namespace is rewritten).
absl::StatusOr<std::string> KeepCorruptCopy(const DataDirectory& dir,
                                            const std::string& name) {
  std::string base =
      absl::StrCat(name, ".corrupt-", absl::ToUnixSeconds(absl::Now()));
  std::string aside = base;
  for (int n = 2;
       linkat(dir.fd(), name.c_str(), dir.fd(), aside.c_str(), 0) != 0; ++n) {
    if (errno != EEXIST || n > 100)
      return FileError(errno, absl::StrCat("link ", name, " to ", aside));
    aside = absl::StrCat(base, "-", n);
  }
  return absl::StrCat(dir.path(), "/", aside);
}

}  // namespace

uint32_t Crc32c(absl::string_view data) {
  static const std::array<uint32_t, 256> table = MakeCrcTable();
  uint32_t crc = 0xFFFFFFFFu;
  for (char c : data)
    crc = table[(crc ^ static_cast<unsigned char>(c)) & 0xff] ^ (crc >> 8);
  return crc ^ 0xFFFFFFFFu;
}

std::string EncodeRecord(const CacheRecord& record) {
  std::string payload;
  payload.reserve(record.key.size() + record.value.size() + 24);
  payload.push_back(static_cast<char>(record.kind));
  PutVarint(&payload, record.revision);
  PutVarint(&payload, static_cast<uint64_t>(record.expires_unix_micros));
  PutVarint(&payload, static_cast<uint64_t>(record.expire_micros));
  PutVarint(&payload, static_cast<uint64_t>(record.fsync));
  PutBytes(&payload, record.key);
  PutBytes(&payload, record.value);
  std::string out;
  out.reserve(kHeaderBytes + payload.size());
  PutU32(&out, static_cast<uint32_t>(payload.size()));
  PutU32(&out, Crc32c(payload));
  out += payload;
  return out;
}

ParsedLog ParseLogBytes(absl::string_view data, bool is_log) {
  ParsedLog parsed;
  RecordScanner scanner(data);
  size_t pos = 0;
  while (pos < data.size()) {
    size_t size = 0;
    if (std::optional<CacheRecord> record = scanner.At(pos, &size)) {
      parsed.records.push_back(std::move(*record));
      parsed.extents.push_back({pos, size});
      pos += size;
      continue;
    }
    size_t next = scanner.Next(pos);
    // Torn only if nothing else was damaged: a corrupt file is rewritten
    // whole anyway.
    if (is_log && parsed.damage == ParsedLog::Damage::kNone &&
        next == data.size() && !scanner.out_of_budget() &&
        scanner.TornTail(
            pos, parsed.records.empty() ? nullptr : &parsed.records.back())) {
      parsed.damage = ParsedLog::Damage::kTorn;
      parsed.problems.push_back(absl::StrCat(
          "dropped a torn last record (", data.size() - pos,
          " bytes at offset ", pos, "); every record before it is kept"));
      parsed.intact_end = pos;
      return parsed;
    }
    parsed.damage = ParsedLog::Damage::kCorrupt;
    parsed.problems.push_back(absl::StrCat("corrupt: skipped ", next - pos,
                                           " damaged bytes at offset ", pos));
    pos = next;
  }
  if (scanner.out_of_budget()) {
    parsed.problems.push_back(
        "gave up checking some records after the damage (too many damaged "
        "candidates); they are in the kept copy");
  }
  parsed.intact_end = data.size();
  return parsed;
}

absl::StatusOr<std::unique_ptr<DataDirectory>> DataDirectory::Open(
    const std::string& path) {
  if (path.empty()) return absl::InvalidArgumentError("no data directory");
  // Missing parents too (the master's default is under the user's state
  // directory), each private.
  for (size_t slash = path.find('/', 1); slash != std::string::npos;
       slash = path.find('/', slash + 1)) {
    mkdir(path.substr(0, slash).c_str(), 0700);
  }
  if (mkdir(path.c_str(), 0700) != 0 && errno != EEXIST)
    return FileError(errno, "cannot create the data directory " + path);
  int fd = open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return FileError(errno, "cannot open the data directory " + path);
  auto dir = std::unique_ptr<DataDirectory>(new DataDirectory(path, fd));
  struct stat st;
  if (fstat(fd, &st) != 0) return FileError(errno, "fstat " + path);
  if (st.st_uid != geteuid()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the data directory ", path, " is owned by uid ", st.st_uid,
        ", not by this process's uid ", geteuid(), ": refused"));
  }
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "the data directory %s is writable by others (mode %04o): refused "
        "(chmod 700 it)",
        path, st.st_mode & 07777));
  }
  return dir;
}

DataDirectory::~DataDirectory() { close(fd_); }

struct NamespaceLog::File {
  explicit File(int fd) : fd(fd) {}
  ~File() { close(fd); }
  const int fd;
};

absl::StatusOr<std::unique_ptr<NamespaceLog>> NamespaceLog::Open(
    const DataDirectory* dir, const std::string& name,
    const CacheRecord& options) {
  std::string file = name + kLogSuffix;
  absl::StatusOr<int> fd = OpenIn(*dir, file, O_WRONLY | O_APPEND | O_CREAT);
  if (!fd.ok()) return fd.status();
  std::unique_ptr<NamespaceLog> log(new NamespaceLog(dir, name, options.fsync));
  absl::MutexLock lock(&log->mu_);
  log->file_ = std::make_shared<File>(*fd);
  struct stat st;
  if (fstat(*fd, &st) != 0) return FileError(errno, "fstat " + file);
  if (st.st_size == 0) {
    absl::Status status = WriteAll(*fd, EncodeRecord(options), file);
    if (status.ok() && fdatasync(*fd) != 0)
      status = FileError(errno, "fdatasync " + file);
    if (status.ok()) status = SyncDir(*dir);
    if (!status.ok()) {
      // Not even its options fit (a full disk): leave no log behind.
      unlinkat(dir->fd(), file.c_str(), 0);
      return status;
    }
  }
  // The exact end of the file, options record included: a failed append
  // is cut back to it.
  off_t end = lseek(*fd, 0, SEEK_END);
  if (end < 0) return FileError(errno, "lseek " + file);
  log->log_bytes_ = static_cast<uint64_t>(end);
  return log;
}

NamespaceLog::~NamespaceLog() = default;

absl::Status NamespaceLog::Report(absl::Status status) {
  if (status.ok() && failing_) {
    failing_ = false;
    LogInfo(absl::StrCat("cache namespace '", name_,
                         "': its log is written again"));
  } else if (!status.ok() && !failing_) {
    failing_ = true;
    LogError(absl::StrCat("cache namespace '", name_, "' in ", dir_->path(),
                          ": ", status.message(),
                          "; its writes fail until this is fixed"));
  }
  return status;
}

absl::Status NamespaceLog::Append(const CacheRecord& record) {
  std::string bytes = EncodeRecord(record);
  absl::MutexLock lock(&mu_);
  if (!broken_.ok()) return Report(broken_);
  absl::Status status = WriteAll(file_->fd, bytes, name_ + kLogSuffix);
  if (!status.ok()) {
    // Cut off what was written of it (ENOSPC midway): a partial record in
    // the middle of the log would read as corruption at the next start.
    struct stat st;
    if (ftruncate(file_->fd, static_cast<off_t>(log_bytes_)) != 0 ||
        fstat(file_->fd, &st) != 0 ||
        static_cast<uint64_t>(st.st_size) != log_bytes_) {
      broken_ = FileError(
          errno, absl::StrCat("the log ", name_, kLogSuffix,
                              " cannot be repaired after a failed write"));
    }
    return Report(status);
  }
  log_bytes_ += bytes.size();
  ++appended_;
  return Report(absl::OkStatus());
}

absl::Status NamespaceLog::Sync() {
  absl::MutexLock lock(&mu_);
  const uint64_t target = appended_;
  auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !syncing_; };
  while (synced_ < target) {
    if (syncing_) {  // one under way: it may cover us, or we go next
      mu_.Await(absl::Condition(&idle));
      continue;
    }
    syncing_ = true;
    const uint64_t covers = appended_;
    std::shared_ptr<File> file = file_;
    mu_.Unlock();
    int rc = fdatasync(file->fd);
    int error = errno;
    mu_.Lock();
    syncing_ = false;
    if (rc != 0) {
      // Not Report(OK) on success: a sync says nothing about room for the
      // next append.
      return Report(FileError(error, "fdatasync " + name_ + kLogSuffix));
    }
    synced_ = std::max(synced_, covers);
  }
  return absl::OkStatus();
}

absl::Status NamespaceLog::Compact(const std::vector<CacheRecord>& live) {
  std::string snapshot;
  for (const CacheRecord& record : live) snapshot += EncodeRecord(record);
  std::string options = live.empty() ? std::string() : EncodeRecord(live[0]);
  const std::string snapshot_name = name_ + kSnapshotSuffix;
  const std::string log_name = name_ + kLogSuffix;
  absl::MutexLock lock(&mu_);
  auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !syncing_; };
  mu_.Await(absl::Condition(&idle));
  // Once the snapshot is in place the old log is redundant (recovery skips
  // its records up to the snapshot's revision); then the log restarts. Any
  // failure before the new log is renamed in place leaves the old one
  // current and valid.
  absl::StatusOr<int> written =
      WriteTemporary(*dir_, snapshot_name, snapshot, 0);
  if (!written.ok()) return Report(written.status());
  close(*written);
  if (absl::Status status = RenameTemporary(*dir_, snapshot_name);
      !status.ok()) {
    return Report(status);
  }
  if (absl::Status status = SyncDir(*dir_); !status.ok()) return Report(status);
  absl::StatusOr<int> fd = WriteTemporary(*dir_, log_name, options, O_APPEND);
  if (!fd.ok()) return Report(fd.status());
  if (absl::Status status = RenameTemporary(*dir_, log_name); !status.ok()) {
    close(*fd);
    return Report(status);
  }
  // Renamed: the new file is the log now, whatever happens next.
  file_ = std::make_shared<File>(*fd);
  log_bytes_ = options.size();
  synced_ = appended_;  // everything before is in the snapshot, on disk
  return Report(SyncDir(*dir_));
}

uint64_t NamespaceLog::log_bytes() const {
  absl::MutexLock lock(&mu_);
  return log_bytes_;
}

absl::StatusOr<Recovery> RecoverAll(const DataDirectory& dir) {
  // A descriptor of its own, so that listing never moves dir.fd()'s offset.
  int listing_fd = openat(dir.fd(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (listing_fd < 0) return FileError(errno, "open " + dir.path());
  DIR* listing = fdopendir(listing_fd);
  if (listing == nullptr) {
    close(listing_fd);
    return FileError(errno, "opendir " + dir.path());
  }
  std::map<std::string, int> names;  // namespace -> 1 log, 2 snapshot, 3 both
  while (dirent* entry = readdir(listing)) {
    std::string file = entry->d_name;
    if (absl::EndsWith(file, kTmpSuffix)) {
      unlinkat(dir.fd(), file.c_str(), 0);  // an interrupted compaction
    } else if (absl::EndsWith(file, kLogSuffix)) {
      names[file.substr(0, file.size() - strlen(kLogSuffix))] |= 1;
    } else if (absl::EndsWith(file, kSnapshotSuffix)) {
      names[file.substr(0, file.size() - strlen(kSnapshotSuffix))] |= 2;
    }
  }
  closedir(listing);

  Recovery recovery;
  for (const auto& [name, files] : names) {
    RecoveredNamespace space;
    space.name = name;
    bool have_options = false;
    uint64_t snapshot_revision = 0;
    uint64_t max_revision = 0;
    for (int which : {2, 1}) {
      if ((files & which) == 0) continue;
      const bool is_log = which == 1;
      std::string file = name + (is_log ? kLogSuffix : kSnapshotSuffix);
      std::string path = absl::StrCat(dir.path(), "/", file);
      absl::StatusOr<int> fd = OpenIn(dir, file, is_log ? O_RDWR : O_RDONLY);
      std::string data;
      absl::Status read = fd.ok() ? ReadAll(*fd, path, &data) : fd.status();
      if (!read.ok()) {
        if (fd.ok()) close(*fd);
        space.refused = true;
        recovery.problems.push_back(absl::StrCat(
            read.message(), "; namespace '", name, "' is read-only"));
        continue;
      }
      ParsedLog parsed = ParseLogBytes(data, is_log);
      for (const std::string& problem : parsed.problems)
        recovery.problems.push_back(absl::StrCat(path, ": ", problem));
      if (parsed.damage == ParsedLog::Damage::kCorrupt) {
        // A copy first, before anything changes.
        absl::StatusOr<std::string> aside = KeepCorruptCopy(dir, file);
        if (aside.ok()) {
          space.rewrite = true;
          recovery.problems.push_back(absl::StrCat(
              path, ": kept every intact record; the damaged file is kept as ",
              *aside, " and the namespace is rewritten"));
        } else {
          space.refused = true;
          recovery.problems.push_back(absl::StrCat(
              path, ": cannot keep a copy of the damaged file (",
              aside.status().message(), "): left as it is; namespace '", name,
              "' is read-only"));
        }
      } else if (parsed.damage == ParsedLog::Damage::kTorn) {
        if (ftruncate(*fd, static_cast<off_t>(parsed.intact_end)) != 0) {
          recovery.problems.push_back(absl::StrCat(
              path, ": cannot truncate the torn record: ", strerror(errno)));
        }
      }
      close(*fd);
      for (CacheRecord& record : parsed.records) {
        if (record.kind == CacheRecord::Kind::kOptions) {
          if (!is_log) snapshot_revision = record.revision;
          if (!have_options) space.options = record;
          have_options = true;
          if (!is_log || space.history_floor == 0)
            space.history_floor = record.revision;
        } else if (!is_log || record.revision > snapshot_revision) {
          max_revision = std::max(max_revision, record.revision);
          space.records.push_back(std::move(record));
        }
      }
      if (!is_log) space.snapshot_records = space.records.size();
    }
    if (space.rewrite || space.refused) {  // changes may be missing
      space.history_floor = std::max(space.history_floor, max_revision);
    }
    if (!have_options) {
      recovery.problems.push_back(
          absl::StrCat(dir.path(), "/", name,
                       ": no intact options record; using the defaults"));
      space.options.kind = CacheRecord::Kind::kOptions;
    }
    recovery.namespaces.push_back(std::move(space));
  }
  return recovery;
}

}  // namespace cluster2
