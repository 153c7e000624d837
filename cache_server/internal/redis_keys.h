// The Redis layout and helpers shared by RedisStore's files
// (redis_store.cc: the data calls; redis_store_events.cc: watch and the
// streams' follower). Not for other users.
#ifndef CLUSTER2_CACHE_SERVER_INTERNAL_REDIS_KEYS_H_
#define CLUSTER2_CACHE_SERVER_INTERNAL_REDIS_KEYS_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "cache_server/internal/cache_types.h"
#include "common/redis_connection.h"

namespace cluster2::redis_keys {

// The keys of namespace `ns` (redis_store.h).
inline std::string Tag(const std::string& ns) {
  return absl::StrCat("c2:{", ns, "}:");
}
inline std::string OptsKey(const std::string& ns) { return Tag(ns) + "opts"; }
inline std::string RevKey(const std::string& ns) { return Tag(ns) + "rev"; }
inline std::string LogKey(const std::string& ns) { return Tag(ns) + "log"; }
inline std::string ValueKey(const std::string& ns, const std::string& key) {
  return Tag(ns) + "k:" + key;
}
inline std::string LeaseKey(const std::string& ns, const std::string& key) {
  return Tag(ns) + "l:" + key;
}

// Options as stored in c2:{NS}:opts: "PERSIST EXPIRE_MS FSYNC".
inline std::string EncodeOptions(const CacheNamespaceOptions& options) {
  return absl::StrCat(options.persist ? 1 : 0, " ",
                      absl::ToInt64Milliseconds(options.expire), " ",
                      static_cast<int>(options.fsync));
}

inline CacheNamespaceOptions DecodeOptions(const std::string& text) {
  CacheNamespaceOptions options;
  std::vector<std::string> parts = absl::StrSplit(text, ' ');
  int64_t value = 0;
  if (parts.size() == 3) {
    options.persist = parts[0] == "1";
    if (absl::SimpleAtoi(parts[1], &value))
      options.expire = absl::Milliseconds(value);
    if (absl::SimpleAtoi(parts[2], &value))
      options.fsync = static_cast<FsyncPolicy>(value);
  }
  return options;
}

inline int64_t NowMicros() { return absl::ToUnixMicros(absl::Now()); }

inline std::optional<absl::Time> ExpiresFromPttl(int64_t pttl_ms) {
  if (pttl_ms < 0) return std::nullopt;
  return absl::Now() + absl::Milliseconds(pttl_ms);
}

// Stream ids "MS-SEQ", compared as numbers.
inline std::pair<uint64_t, uint64_t> IdParts(const std::string& id) {
  std::pair<uint64_t, uint64_t> parts{0, 0};
  size_t dash = id.find('-');
  (void)absl::SimpleAtoi(id.substr(0, dash), &parts.first);
  if (dash != std::string::npos)
    (void)absl::SimpleAtoi(id.substr(dash + 1), &parts.second);
  return parts;
}

inline bool IdAfter(const std::string& a, const std::string& b) {
  return IdParts(a) > IdParts(b);
}

inline std::vector<std::string> Eval(const char* script,
                                     std::vector<std::string> keys,
                                     std::vector<std::string> args) {
  std::vector<std::string> command = {"EVAL", script,
                                      absl::StrCat(keys.size())};
  for (std::string& key : keys) command.push_back(std::move(key));
  for (std::string& arg : args) command.push_back(std::move(arg));
  return command;
}

inline int64_t Int(const RedisReply& reply, size_t i) {
  return i < reply.elements.size() ? reply.elements[i].integer : 0;
}
inline std::string Text(const RedisReply& reply, size_t i) {
  return i < reply.elements.size() ? reply.elements[i].text : "";
}

// A stream entry's fields.
inline std::map<std::string, std::string> Fields(const RedisReply& pairs) {
  std::map<std::string, std::string> fields;
  for (size_t i = 0; i + 1 < pairs.elements.size(); i += 2)
    fields[pairs.elements[i].text] = pairs.elements[i + 1].text;
  return fields;
}

}  // namespace cluster2::redis_keys

#endif  // CLUSTER2_CACHE_SERVER_INTERNAL_REDIS_KEYS_H_
