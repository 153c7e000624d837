#include "cache_server/cache_flags.h"

#include <limits>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/redis_connection.h"

namespace cluster2 {
namespace {

// `arg` is "<name>=<value>": sets `value`.
bool Option(absl::string_view arg, absl::string_view name,
            absl::string_view* value) {
  if (!absl::StartsWith(arg, name) || arg.size() <= name.size() ||
      arg[name.size()] != '=') {
    return false;
  }
  *value = arg.substr(name.size() + 1);
  return true;
}

}  // namespace

bool ParseByteCount(absl::string_view text, uint64_t* bytes) {
  uint64_t scale = 1;
  if (!text.empty()) {
    switch (absl::ascii_tolower(text.back())) {
      case 'k':
        scale = uint64_t{1} << 10;
        break;
      case 'm':
        scale = uint64_t{1} << 20;
        break;
      case 'g':
        scale = uint64_t{1} << 30;
        break;
    }
    if (scale != 1) text.remove_suffix(1);
  }
  uint64_t number = 0;
  bool digits = !text.empty();
  for (char c : text) digits = digits && absl::ascii_isdigit(c);
  if (!digits || !absl::SimpleAtoi(text, &number) ||
      number > std::numeric_limits<uint64_t>::max() / scale) {
    return false;
  }
  *bytes = number * scale;
  return true;
}

absl::StatusOr<CacheServerOptions> ParseCacheServerArgs(
    const std::vector<std::string>& args) {
  CacheServerOptions options;
  for (const std::string& arg : args) {
    absl::string_view value;
    uint64_t bytes = 0;
    bool ok = true;
    if (Option(arg, "--socket", &value)) {
      options.socket_path = std::string(value);
    } else if (Option(arg, "--data-dir", &value)) {
      options.data_dir = std::string(value);
    } else if (Option(arg, "--max-value-bytes", &value)) {
      ok = ParseByteCount(value, &bytes) && bytes > 0;
      options.max_value_bytes = bytes;
    } else if (Option(arg, "--max-memory", &value)) {
      ok = ParseByteCount(value, &bytes);
      options.max_memory_bytes = bytes;
    } else if (Option(arg, "--backend", &value)) {
      if (absl::StatusOr<RedisAddress> address = ParseRedisAddress(value);
          !address.ok()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "bad argument '", arg, "': ", address.status().message()));
      }
      options.backend = std::string(value);
    } else {
      ok = false;
    }
    if (!ok) {
      return absl::InvalidArgumentError(
          absl::StrCat("bad argument '", arg, "'"));
    }
  }
  return options;
}

}  // namespace cluster2
