// Helpers for absl::Status that abseil 20220623 does not ship.
//
// Thread-safe: everything here is a pure function.
#ifndef CLUSTER2_COMMON_STATUS_H_
#define CLUSTER2_COMMON_STATUS_H_

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace cluster2 {

// A status for a failed system call: the code follows errno (ENOENT ->
// NOT_FOUND, EACCES -> PERMISSION_DENIED, EADDRINUSE -> ALREADY_EXISTS, ...)
// and the message is "<what>: <strerror(errno_value)>".
absl::Status ErrnoStatus(int errno_value, absl::string_view what);

}  // namespace cluster2

// Returns from the enclosing function if `expr` (an absl::Status) is not OK.
#define CLUSTER2_RETURN_IF_ERROR(expr)                                  \
  do {                                                                  \
    if (::absl::Status _status = (expr); !_status.ok()) return _status; \
  } while (false)

#define CLUSTER2_CONCAT_INNER_(a, b) a##b
#define CLUSTER2_CONCAT_(a, b) CLUSTER2_CONCAT_INNER_(a, b)

// `CLUSTER2_ASSIGN_OR_RETURN(auto x, MakeX());` declares x from an OK
// StatusOr, or returns its status from the enclosing function.
#define CLUSTER2_ASSIGN_OR_RETURN(lhs, expr)                                   \
  CLUSTER2_ASSIGN_OR_RETURN_IMPL_(CLUSTER2_CONCAT_(_status_or, __LINE__), lhs, \
                                  expr)
#define CLUSTER2_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                    \
  if (!tmp.ok()) return tmp.status();                   \
  lhs = std::move(tmp).value()

#endif  // CLUSTER2_COMMON_STATUS_H_
