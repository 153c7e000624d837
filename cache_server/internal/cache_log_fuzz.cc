// Fuzz target for the cache log reader (tools/fuzz.bzl): any bytes, read as
// a log and as a snapshot, must parse without crashing, and what comes
// back must be consistent: every record returned is an intact record of
// the input, a clean file is wholly records, a torn tail is only a log's
// and only at its end.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/strings/string_view.h"
#include "cache_server/internal/cache_log.h"

namespace cluster2 {
namespace {

void Require(bool condition, const char* what) {
  if (condition) return;
  std::fprintf(stderr, "cache_log_fuzz: invariant broken: %s\n", what);
  std::abort();
}

bool SameRecord(const CacheRecord& a, const CacheRecord& b) {
  return a.kind == b.kind && a.key == b.key && a.value == b.value &&
         a.revision == b.revision &&
         a.expires_unix_micros == b.expires_unix_micros &&
         a.expire_micros == b.expire_micros && a.fsync == b.fsync;
}

void Check(absl::string_view data, bool is_log) {
  ParsedLog parsed = ParseLogBytes(data, is_log);
  Require(parsed.records.size() == parsed.extents.size(),
          "one extent per record");
  size_t end = 0;
  for (size_t i = 0; i < parsed.records.size(); ++i) {
    const ParsedLog::Extent& extent = parsed.extents[i];
    Require(extent.offset >= end && extent.size <= data.size() &&
                extent.offset <= data.size() - extent.size,
            "records are in order, inside the input, not overlapping");
    if (parsed.damage == ParsedLog::Damage::kNone)
      Require(extent.offset == end, "a clean file is wholly records");
    end = extent.offset + extent.size;
    // The record's own bytes are exactly that one intact record.
    ParsedLog alone =
        ParseLogBytes(data.substr(extent.offset, extent.size), false);
    Require(alone.damage == ParsedLog::Damage::kNone &&
                alone.records.size() == 1 &&
                SameRecord(alone.records[0], parsed.records[i]),
            "a returned record is intact where it was found");
  }
  switch (parsed.damage) {
    case ParsedLog::Damage::kNone:
      Require(end == data.size() && parsed.intact_end == data.size() &&
                  parsed.problems.empty(),
              "a clean file ends with its last record");
      break;
    case ParsedLog::Damage::kTorn:
      Require(is_log, "only a log has a torn tail");
      Require(parsed.intact_end == end && end < data.size(),
              "a torn tail starts after the last record");
      Require(parsed.problems.size() == 1, "a torn tail is one problem");
      break;
    case ParsedLog::Damage::kCorrupt:
      Require(!parsed.problems.empty(), "corruption is reported");
      break;
  }
  // What was recovered, written out again, reads back the same and clean.
  std::string rewritten;
  for (const CacheRecord& record : parsed.records)
    rewritten += EncodeRecord(record);
  ParsedLog again = ParseLogBytes(rewritten, is_log);
  Require(again.damage == ParsedLog::Damage::kNone &&
              again.records.size() == parsed.records.size(),
          "recovered records round-trip");
  for (size_t i = 0; i < again.records.size(); ++i) {
    Require(SameRecord(again.records[i], parsed.records[i]),
            "recovered records round-trip unchanged");
  }
}

}  // namespace
}  // namespace cluster2

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::string_view bytes(reinterpret_cast<const char*>(data), size);
  cluster2::Check(bytes, /*is_log=*/true);
  cluster2::Check(bytes, /*is_log=*/false);
  return 0;
}
