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
#include "absl/time/clock.h"

namespace cluster2 {
namespace {

constexpr size_t kHeaderBytes = 8;
// Larger than any record the store writes (values are at most 64 MiB, the
// server's limit on --max-value-bytes).
constexpr uint32_t kMaxPayload = 256u << 20;
constexpr char kLogSuffix[] = ".log";
constexpr char kSnapshotSuffix[] = ".snapshot";

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
  bool Bytes(std::string* out) {
    uint64_t size = 0;
    if (!Varint(&size) || size > data_.size()) return false;
    out->assign(data_.data(), size);
    data_.remove_prefix(size);
    return true;
  }
  bool done() const { return data_.empty(); }

 private:
  absl::string_view data_;
};

std::optional<CacheRecord> DecodePayload(absl::string_view payload) {
  if (payload.empty()) return std::nullopt;
  CacheRecord record;
  auto kind = static_cast<uint8_t>(payload[0]);
  if (kind < 1 || kind > 3) return std::nullopt;
  record.kind = static_cast<CacheRecord::Kind>(kind);
  Reader reader(payload.substr(1));
  uint64_t revision, expires, expire, fsync;
  if (!reader.Varint(&revision) || !reader.Varint(&expires) ||
      !reader.Varint(&expire) || !reader.Varint(&fsync) || fsync > 2 ||
      !reader.Bytes(&record.key) || !reader.Bytes(&record.value) ||
      !reader.done()) {
    return std::nullopt;
  }
  record.revision = revision;
  record.expires_unix_micros = static_cast<int64_t>(expires);
  record.expire_micros = static_cast<int64_t>(expire);
  record.fsync = static_cast<FsyncPolicy>(fsync);
  return record;
}

// The record starting at `pos` of `data`, if an intact one does.
std::optional<CacheRecord> RecordAt(absl::string_view data, size_t pos,
                                    size_t* size) {
  if (data.size() - pos < kHeaderBytes) return std::nullopt;
  uint32_t length = GetU32(data.data() + pos);
  if (length == 0 || length > kMaxPayload ||
      length > data.size() - pos - kHeaderBytes) {
    return std::nullopt;
  }
  absl::string_view payload = data.substr(pos + kHeaderBytes, length);
  if (static_cast<uint8_t>(payload[0]) - 1u > 2u) return std::nullopt;
  if (Crc32c(payload) != GetU32(data.data() + pos + 4)) return std::nullopt;
  *size = kHeaderBytes + length;
  return DecodePayload(payload);
}

absl::Status ErrnoError(const std::string& what) {
  return absl::InternalError(absl::StrCat(what, ": ", std::strerror(errno)));
}

absl::Status WriteAll(int fd, absl::string_view data) {
  while (!data.empty()) {
    ssize_t n = write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError("write");
    data.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

absl::Status SyncDir(const std::string& dir) {
  int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ErrnoError("open " + dir);
  int rc = fsync(fd);
  close(fd);
  return rc == 0 ? absl::OkStatus() : ErrnoError("fsync " + dir);
}

// Writes `data` to `path` durably: temporary file, fsync, rename, fsync of
// the directory.
absl::Status ReplaceFile(const std::string& dir, const std::string& path,
                         absl::string_view data) {
  std::string tmp = path + ".tmp";
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return ErrnoError("open " + tmp);
  absl::Status status = WriteAll(fd, data);
  if (status.ok() && fdatasync(fd) != 0) status = ErrnoError("fdatasync");
  close(fd);
  if (status.ok() && rename(tmp.c_str(), path.c_str()) != 0)
    status = ErrnoError("rename " + tmp);
  if (!status.ok()) {
    unlink(tmp.c_str());
    return status;
  }
  return SyncDir(dir);
}

bool ReadFile(const std::string& path, std::string* out) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  out->clear();
  char buffer[1 << 16];
  ssize_t n;
  while ((n = read(fd, buffer, sizeof buffer)) > 0 ||
         (n < 0 && errno == EINTR)) {
    if (n > 0) out->append(buffer, static_cast<size_t>(n));
  }
  close(fd);
  return n == 0;
}

// Parses one file. `torn_ok`: a damaged tail is a torn write (logs), not
// corruption (snapshots are written whole, so any damage is corruption).
struct ParsedFile {
  std::vector<CacheRecord> records;
  bool corrupt = false;
  size_t intact_end = 0;  // end of the last intact record
};

ParsedFile ParseFile(const std::string& path, absl::string_view data,
                     bool torn_ok, std::vector<std::string>* problems) {
  ParsedFile parsed;
  size_t pos = 0;
  while (pos < data.size()) {
    size_t size = 0;
    if (std::optional<CacheRecord> record = RecordAt(data, pos, &size)) {
      parsed.records.push_back(std::move(*record));
      pos += size;
      parsed.intact_end = pos;
      continue;
    }
    // Damage at `pos`: find the next intact record, if any.
    size_t next = pos + 1;
    for (; next < data.size(); ++next) {
      if (RecordAt(data, next, &size)) break;
    }
    if (next >= data.size() && torn_ok) {
      problems->push_back(absl::StrCat(
          path, ": dropped a torn last record (", data.size() - pos,
          " bytes at offset ", pos, "); every record before it is kept"));
      break;
    }
    parsed.corrupt = true;
    problems->push_back(absl::StrCat(path, ": corrupt: skipped ", next - pos,
                                     " damaged bytes at offset ", pos));
    pos = next;
  }
  return parsed;
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

struct NamespaceLog::File {
  explicit File(int fd) : fd(fd) {}
  ~File() { close(fd); }
  const int fd;
};

absl::StatusOr<std::unique_ptr<NamespaceLog>> NamespaceLog::Open(
    const std::string& dir, const std::string& name,
    const CacheRecord& options) {
  std::string path = absl::StrCat(dir, "/", name, kLogSuffix);
  int fd = open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return ErrnoError("open " + path);
  std::unique_ptr<NamespaceLog> log(new NamespaceLog(dir, name, options.fsync));
  absl::MutexLock lock(&log->mu_);
  log->file_ = std::make_shared<File>(fd);
  struct stat st;
  if (fstat(fd, &st) != 0) return ErrnoError("fstat " + path);
  log->log_bytes_ = static_cast<uint64_t>(st.st_size);
  if (st.st_size == 0) {
    if (absl::Status status = WriteAll(fd, EncodeRecord(options));
        !status.ok()) {
      return status;
    }
    if (fdatasync(fd) != 0) return ErrnoError("fdatasync " + path);
    if (absl::Status status = SyncDir(dir); !status.ok()) return status;
  }
  return log;
}

NamespaceLog::~NamespaceLog() = default;

absl::Status NamespaceLog::Append(const CacheRecord& record) {
  std::string bytes = EncodeRecord(record);
  absl::MutexLock lock(&mu_);
  if (!broken_.ok()) return broken_;
  if (absl::Status status = WriteAll(file_->fd, bytes); !status.ok()) {
    // Cut off what was written of it (ENOSPC midway): a partial record in
    // the middle of the log would read as corruption at the next start.
    if (ftruncate(file_->fd, static_cast<off_t>(log_bytes_)) != 0) {
      broken_ = ErrnoError("the log cannot be repaired after a failed write");
    }
    return status;
  }
  log_bytes_ += bytes.size();
  ++appended_;
  return absl::OkStatus();
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
      errno = error;
      return ErrnoError("fdatasync " + name_ + kLogSuffix);
    }
    synced_ = std::max(synced_, covers);
  }
  return absl::OkStatus();
}

absl::Status NamespaceLog::Compact(const std::vector<CacheRecord>& live) {
  std::string snapshot;
  for (const CacheRecord& record : live) snapshot += EncodeRecord(record);
  std::string base = absl::StrCat(dir_, "/", name_);
  absl::MutexLock lock(&mu_);
  auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !syncing_; };
  mu_.Await(absl::Condition(&idle));
  // Once the snapshot is in place the old log is redundant (recovery skips
  // its records up to the snapshot's revision); then the log restarts. Any
  // failure before the new log is renamed in place leaves the old one
  // current and valid.
  if (absl::Status status = ReplaceFile(dir_, base + kSnapshotSuffix, snapshot);
      !status.ok()) {
    return status;
  }
  std::string log_path = base + kLogSuffix;
  std::string tmp = log_path + ".tmp";
  std::string options = live.empty() ? std::string() : EncodeRecord(live[0]);
  int fd = open(tmp.c_str(),
                O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0) return ErrnoError("open " + tmp);
  absl::Status status = WriteAll(fd, options);
  if (status.ok() && fdatasync(fd) != 0) status = ErrnoError("fdatasync");
  if (status.ok() && rename(tmp.c_str(), log_path.c_str()) != 0)
    status = ErrnoError("rename " + tmp);
  if (!status.ok()) {
    close(fd);
    unlink(tmp.c_str());
    return status;
  }
  // Renamed: the new file is the log now, whatever happens next.
  file_ = std::make_shared<File>(fd);
  log_bytes_ = options.size();
  synced_ = appended_;  // everything before is in the snapshot, on disk
  return SyncDir(dir_);
}

uint64_t NamespaceLog::log_bytes() const {
  absl::MutexLock lock(&mu_);
  return log_bytes_;
}

absl::StatusOr<Recovery> RecoverAll(const std::string& dir) {
  if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
    return ErrnoError("mkdir " + dir);
  DIR* listing = opendir(dir.c_str());
  if (listing == nullptr) return ErrnoError("opendir " + dir);
  std::map<std::string, int> names;  // namespace -> 1 log, 2 snapshot, 3 both
  while (dirent* entry = readdir(listing)) {
    std::string file = entry->d_name;
    if (absl::EndsWith(file, ".tmp")) {
      unlink((dir + "/" + file).c_str());  // an interrupted compaction
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
      std::string path = absl::StrCat(
          dir, "/", name, which == 2 ? kSnapshotSuffix : kLogSuffix);
      std::string data;
      if (!ReadFile(path, &data)) {
        recovery.problems.push_back(
            absl::StrCat(path, ": unreadable: ", std::strerror(errno)));
        continue;
      }
      ParsedFile parsed =
          ParseFile(path, data, /*torn_ok=*/which == 1, &recovery.problems);
      for (CacheRecord& record : parsed.records) {
        if (record.kind == CacheRecord::Kind::kOptions) {
          if (which == 2) snapshot_revision = record.revision;
          if (!have_options) space.options = record;
          have_options = true;
          if (which == 2 || space.history_floor == 0)
            space.history_floor = record.revision;
        } else if (which == 2 || record.revision > snapshot_revision) {
          max_revision = std::max(max_revision, record.revision);
          space.records.push_back(std::move(record));
        }
      }
      if (which == 2) space.snapshot_records = space.records.size();
      if (parsed.corrupt) {
        space.rewrite = true;
        std::string aside =
            absl::StrCat(path, ".corrupt-", absl::ToUnixSeconds(absl::Now()));
        rename(path.c_str(), aside.c_str());
        recovery.problems.push_back(absl::StrCat(
            path, ": kept every intact record; the damaged file is kept as ",
            aside, " and the namespace is rewritten"));
      } else if (parsed.intact_end < data.size()) {
        if (truncate(path.c_str(), static_cast<off_t>(parsed.intact_end)) != 0)
          recovery.problems.push_back(absl::StrCat(
              path,
              ": cannot truncate the torn record: ", std::strerror(errno)));
      }
    }
    if (space.rewrite) {  // changes may be missing: resuming is unsafe
      space.history_floor = std::max(space.history_floor, max_revision);
    }
    if (!have_options) {
      recovery.problems.push_back(absl::StrCat(
          dir, "/", name, ": no intact options record; using the defaults"));
      space.options.kind = CacheRecord::Kind::kOptions;
    }
    recovery.namespaces.push_back(std::move(space));
  }
  return recovery;
}

}  // namespace cluster2
