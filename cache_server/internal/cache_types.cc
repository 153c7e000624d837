#include "cache_server/internal/cache_types.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "cache_server/cache_errors.h"

namespace cluster2 {

int64_t ExpiryUnixMicros(const std::optional<absl::Time>& expires_at) {
  return expires_at ? absl::ToUnixMicros(*expires_at) : 0;
}

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

absl::Status NamespaceNotFound(const std::string& ns) {
  return MakeCacheError(absl::StatusCode::kNotFound,
                        CacheError::kNamespaceNotFound,
                        absl::StrCat("no namespace '", ns, "' (Use it first)"));
}

absl::Status LeaseNotHeld() {
  return MakeCacheError(absl::StatusCode::kFailedPrecondition,
                        CacheError::kLeaseNotHeld,
                        "the lease is no longer held by this token");
}

}  // namespace cluster2
