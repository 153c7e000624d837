// Recovery time of the cache's persistence files (RecoverAll), each beside
// an anchor measured in the same run on the same bytes: reading the file
// and computing its CRC-32C (the least any recovery must do).
//
//   cache_recovery_bench [--dir=DIR] [--log-mb=100] [--garbage-mb=32]
//
// Files go to DIR (kept) or to a temporary directory (removed). Build with
// -c opt.
//
// Cases:
//   clean     a log of ~1 KiB records, log-mb MiB
//   garbage   a 1 MiB valid log followed by garbage-mb MiB of random bytes
//             (took 110 s before recovery was made linear)
//   crafted   garbage-mb MiB where every 64th byte starts a plausible
//             record claiming half the file: the worst case for the CRC
//             budget
// Output, one line per case:
//   case=clean bytes=... recover_ms=... anchor_ms=... ratio=...
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "cache_server/internal/cache_log.h"

namespace cluster2 {
namespace {

constexpr int kRuns = 3;  // each figure is the best of these

// Reads a file as recovery does: one buffer, read(2) in 64 KiB pieces.
std::string ReadFile(const std::string& path) {
  std::string data;
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) != 0) return data;
  data.reserve(static_cast<size_t>(st.st_size));
  char buffer[1 << 16];
  ssize_t n;
  while ((n = read(fd, buffer, sizeof buffer)) > 0)
    data.append(buffer, static_cast<size_t>(n));
  close(fd);
  return data;
}

void WriteFile(const std::string& path, const std::string& data) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << data;
}

std::string Record(uint64_t revision, size_t value_bytes) {
  CacheRecord record;
  record.kind =
      revision == 1 ? CacheRecord::Kind::kOptions : CacheRecord::Kind::kSet;
  record.revision = revision;
  record.key = absl::StrCat("key-", revision);
  record.value.assign(revision == 1 ? 0 : value_bytes,
                      static_cast<char>('a' + revision % 26));
  return EncodeRecord(record);
}

// A valid log of about `bytes` bytes.
std::string ValidLog(size_t bytes) {
  std::string log;
  for (uint64_t revision = 1; log.size() < bytes; ++revision)
    log += Record(revision, 1000);
  return log;
}

std::string Garbage(size_t bytes) {
  std::mt19937_64 random(42);
  std::string garbage(bytes, '\0');
  for (size_t i = 0; i + 8 <= bytes; i += 8) {
    uint64_t word = random();
    for (int b = 0; b < 8; ++b)
      garbage[i + b] = static_cast<char>(word >> 8 * b);
  }
  return garbage;
}

// Every 64th byte starts a record header whose length is half the data and
// whose payload's fields are well formed up to it: only its CRC is wrong.
std::string Crafted(size_t bytes) {
  std::string data(bytes, 'x');
  const uint32_t length =
      static_cast<uint32_t>(std::min<size_t>(bytes / 2, kMaxPayload));
  for (size_t at = 0; at + 64 <= bytes; at += 64) {
    std::string header;
    for (int i = 0; i < 4; ++i)
      header.push_back(static_cast<char>(length >> 8 * i));
    header.append(4, '\0');  // a CRC that never matches
    // kind set, revision 1, no expiry, no TTL, fsync 0, key "", then a
    // value running to the end of `length`.
    std::string payload = {2, 1, 0, 0, 0, 0};
    uint64_t value = length - payload.size() - 4;  // 4-byte varint
    for (int i = 0; i < 4; ++i) {
      uint8_t byte = (value >> 7 * i) & 0x7f;
      payload.push_back(static_cast<char>(i < 3 ? byte | 0x80 : byte));
    }
    header += payload;
    data.replace(at, header.size(), header);
  }
  return data;
}

double Millis(absl::Duration d) { return absl::ToDoubleMilliseconds(d); }

// Times RecoverAll of `dir` (holding one namespace, "ns") against reading
// and checksumming ns.log.
void Measure(const std::string& name, const std::string& dir) {
  std::string path = dir + "/ns.log";
  absl::Duration best_recover = absl::InfiniteDuration();
  absl::Duration best_anchor = absl::InfiniteDuration();
  size_t records = 0;
  for (int run = 0; run < kRuns; ++run) {
    absl::Time start = absl::Now();
    std::string data = ReadFile(path);
    volatile uint32_t crc = Crc32c(data);
    (void)crc;
    best_anchor = std::min(best_anchor, absl::Now() - start);

    auto directory = DataDirectory::Open(dir);
    if (!directory.ok()) {
      std::fprintf(stderr, "%s\n", directory.status().ToString().c_str());
      std::exit(1);
    }
    start = absl::Now();
    absl::StatusOr<Recovery> recovery = RecoverAll(**directory);
    best_recover = std::min(best_recover, absl::Now() - start);
    if (!recovery.ok() || recovery->namespaces.size() != 1) {
      std::fprintf(stderr, "recovery failed\n");
      std::exit(1);
    }
    records = recovery->namespaces[0].records.size();
  }
  struct stat st;
  stat(path.c_str(), &st);
  std::printf(
      "case=%s bytes=%lld records=%zu recover_ms=%.1f anchor_ms=%.1f "
      "ratio=%.2f\n",
      name.c_str(), static_cast<long long>(st.st_size), records,
      Millis(best_recover), Millis(best_anchor),
      Millis(best_recover) / Millis(best_anchor));
}

std::string CaseDir(const std::string& base, const std::string& name) {
  std::string dir = base + "/" + name;
  mkdir(dir.c_str(), 0700);
  return dir;
}

}  // namespace
}  // namespace cluster2

int main(int argc, char** argv) {
  std::string base;
  size_t log_mb = 100, garbage_mb = 32;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    bool ok = true;
    if (arg.rfind("--dir=", 0) == 0) {
      base = arg.substr(6);
    } else if (arg.rfind("--log-mb=", 0) == 0) {
      ok = absl::SimpleAtoi(arg.substr(9), &log_mb);
    } else if (arg.rfind("--garbage-mb=", 0) == 0) {
      ok = absl::SimpleAtoi(arg.substr(13), &garbage_mb);
    } else {
      ok = false;
    }
    if (!ok) {
      std::fprintf(stderr,
                   "usage: cache_recovery_bench [--dir=DIR] [--log-mb=N] "
                   "[--garbage-mb=N]\n");
      return 2;
    }
  }
  const bool own_dir = base.empty();
  if (own_dir) {
    char tmpl[] = "/tmp/cache-recovery-bench-XXXXXX";
    base = mkdtemp(tmpl);
  }
  using cluster2::CaseDir;
  std::string clean = CaseDir(base, "clean");
  cluster2::WriteFile(clean + "/ns.log", cluster2::ValidLog(log_mb << 20));
  cluster2::Measure("clean", clean);

  std::string garbage = CaseDir(base, "garbage");
  cluster2::WriteFile(
      garbage + "/ns.log",
      cluster2::ValidLog(1 << 20) + cluster2::Garbage(garbage_mb << 20));
  cluster2::Measure("garbage", garbage);

  std::string crafted = CaseDir(base, "crafted");
  cluster2::WriteFile(
      crafted + "/ns.log",
      cluster2::ValidLog(1 << 20) + cluster2::Crafted(garbage_mb << 20));
  cluster2::Measure("crafted", crafted);
  if (own_dir) {
    std::filesystem::remove_all(base);
  } else {
    std::printf("files left in %s\n", base.c_str());
  }
  return 0;
}
