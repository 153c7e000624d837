// RedisConnection: one synchronous connection to a Redis server (hiredis),
// reconnected on the next command after any failure. Commands are argument
// vectors (binary-safe); replies are copied into RedisReply trees, so no
// hiredis type leaks out.
//
// A command waits at most the connection's timeout (connect and I/O); a
// server that cannot be reached, refuses or stalls gives UNAVAILABLE naming
// its address, and the connection is dropped (the next command reconnects).
// A Redis error reply (-ERR ..., a script's error) is an INTERNAL status
// with Redis's message.
//
// Thread-safe: commands are serialized by the connection's own lock. The
// first connection made sets SIGPIPE to be ignored in the process (hiredis
// writes with write(2)).
#ifndef CLUSTER2_COMMON_REDIS_CONNECTION_H_
#define CLUSTER2_COMMON_REDIS_CONNECTION_H_

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

struct redisContext;

namespace cluster2 {

// Where a Redis server listens: "redis://HOST:PORT" (PORT default 6379),
// "unix:/path/redis.sock", or the Sentinels that know it:
// "redis-sentinel://HOST:PORT,HOST:PORT,.../MASTER_NAME" (PORT default
// 26379): each connection asks them for the master of MASTER_NAME, and asks
// again after any failure (a failover: the old master answers READONLY).
struct RedisAddress {
  std::string host;
  int port = 6379;
  std::string unix_path;
  std::vector<std::pair<std::string, int>> sentinels;
  std::string master_name;  // with sentinels
  std::string ToString() const;
};

// INVALID_ARGUMENT with a one-line reason for anything else.
absl::StatusOr<RedisAddress> ParseRedisAddress(absl::string_view text);

struct RedisReply {
  enum class Type { kNil, kString, kInteger, kArray, kStatus };
  Type type = Type::kNil;
  std::string text;  // kString, kStatus
  int64_t integer = 0;
  std::vector<RedisReply> elements;  // kArray

  bool nil() const { return type == Type::kNil; }
};

class RedisConnection {
 public:
  RedisConnection(RedisAddress address, absl::Duration timeout);
  ~RedisConnection();
  RedisConnection(const RedisConnection&) = delete;
  RedisConnection& operator=(const RedisConnection&) = delete;

  absl::StatusOr<RedisReply> Command(const std::vector<std::string>& args)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Like Command with another I/O timeout for this one (a blocking XREAD).
  absl::StatusOr<RedisReply> CommandWithTimeout(
      const std::vector<std::string>& args, absl::Duration timeout)
      ABSL_LOCKS_EXCLUDED(mu_);

  const RedisAddress& address() const { return address_; }

 private:
  absl::Status ConnectLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The master's host and port, from the first Sentinel that knows it.
  absl::StatusOr<std::pair<std::string, int>> AskSentinels()
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status Unavailable(absl::string_view what)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const RedisAddress address_;
  const absl::Duration timeout_;
  absl::Mutex mu_;
  redisContext* context_ ABSL_GUARDED_BY(mu_) = nullptr;
};

}  // namespace cluster2

#endif  // CLUSTER2_COMMON_REDIS_CONNECTION_H_
