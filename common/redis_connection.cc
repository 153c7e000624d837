#include "common/redis_connection.h"

#include <hiredis/hiredis.h>
#include <signal.h>
#include <sys/time.h>

#include <mutex>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace cluster2 {
namespace {

timeval AsTimeval(absl::Duration duration) { return absl::ToTimeval(duration); }

RedisReply Copy(const redisReply* reply) {
  RedisReply out;
  switch (reply->type) {
    case REDIS_REPLY_STRING:
      out.type = RedisReply::Type::kString;
      out.text.assign(reply->str, reply->len);
      break;
    case REDIS_REPLY_STATUS:
      out.type = RedisReply::Type::kStatus;
      out.text.assign(reply->str, reply->len);
      break;
    case REDIS_REPLY_INTEGER:
      out.type = RedisReply::Type::kInteger;
      out.integer = reply->integer;
      break;
    case REDIS_REPLY_ARRAY:
      out.type = RedisReply::Type::kArray;
      for (size_t i = 0; i < reply->elements; ++i)
        out.elements.push_back(Copy(reply->element[i]));
      break;
    default:  // REDIS_REPLY_NIL (errors are handled by the caller)
      break;
  }
  return out;
}

}  // namespace

std::string RedisAddress::ToString() const {
  return unix_path.empty() ? absl::StrCat("redis://", host, ":", port)
                           : absl::StrCat("unix:", unix_path);
}

absl::StatusOr<RedisAddress> ParseRedisAddress(absl::string_view text) {
  RedisAddress address;
  if (absl::ConsumePrefix(&text, "unix:")) {
    if (text.empty() || text.size() > 107) {
      return absl::InvalidArgumentError(
          "a unix: Redis address needs a socket path of 1..107 bytes");
    }
    address.unix_path = std::string(text);
    return address;
  }
  if (!absl::ConsumePrefix(&text, "redis://")) {
    return absl::InvalidArgumentError(
        "a Redis address is redis://HOST[:PORT] or unix:/path/redis.sock");
  }
  const size_t colon = text.rfind(':');
  address.host = std::string(text.substr(0, colon));
  if (colon != absl::string_view::npos &&
      (!absl::SimpleAtoi(text.substr(colon + 1), &address.port) ||
       address.port < 1 || address.port > 65535)) {
    return absl::InvalidArgumentError(
        absl::StrCat("bad port in Redis address redis://", text));
  }
  if (address.host.empty()) {
    return absl::InvalidArgumentError("a Redis address needs a host");
  }
  return address;
}

RedisConnection::RedisConnection(RedisAddress address, absl::Duration timeout)
    : address_(std::move(address)), timeout_(timeout) {
  // hiredis writes with write(2): a server that died would kill the process
  // with SIGPIPE instead of failing the command.
  static std::once_flag ignore_sigpipe;
  std::call_once(ignore_sigpipe, [] { signal(SIGPIPE, SIG_IGN); });
}

RedisConnection::~RedisConnection() {
  absl::MutexLock lock(&mu_);
  if (context_ != nullptr) redisFree(context_);
}

absl::Status RedisConnection::Unavailable(absl::string_view what) {
  std::string message =
      absl::StrCat("redis at ", address_.ToString(), ": ", what);
  if (context_ != nullptr) {
    redisFree(context_);
    context_ = nullptr;
  }
  return absl::UnavailableError(message);
}

absl::Status RedisConnection::ConnectLocked() {
  if (context_ != nullptr) return absl::OkStatus();
  const timeval timeout = AsTimeval(timeout_);
  context_ =
      address_.unix_path.empty()
          ? redisConnectWithTimeout(address_.host.c_str(), address_.port,
                                    timeout)
          : redisConnectUnixWithTimeout(address_.unix_path.c_str(), timeout);
  if (context_ == nullptr) return Unavailable("cannot allocate a connection");
  if (context_->err != 0) return Unavailable(context_->errstr);
  redisSetTimeout(context_, timeout);
  return absl::OkStatus();
}

absl::StatusOr<RedisReply> RedisConnection::Command(
    const std::vector<std::string>& args) {
  return CommandWithTimeout(args, timeout_);
}

absl::StatusOr<RedisReply> RedisConnection::CommandWithTimeout(
    const std::vector<std::string>& args, absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  if (absl::Status connected = ConnectLocked(); !connected.ok())
    return connected;
  std::vector<const char*> argv;
  std::vector<size_t> lengths;
  for (const std::string& arg : args) {
    argv.push_back(arg.data());
    lengths.push_back(arg.size());
  }
  if (timeout != timeout_) redisSetTimeout(context_, AsTimeval(timeout));
  auto* reply = static_cast<redisReply*>(redisCommandArgv(
      context_, static_cast<int>(argv.size()), argv.data(), lengths.data()));
  if (reply == nullptr) {
    return Unavailable(context_->errstr[0] != '\0' ? context_->errstr
                                                   : "connection lost");
  }
  if (timeout != timeout_) redisSetTimeout(context_, AsTimeval(timeout_));
  if (reply->type == REDIS_REPLY_ERROR) {
    std::string message(reply->str, reply->len);
    freeReplyObject(reply);
    // A server that is loading or read-only is one that cannot serve.
    if (absl::StartsWith(message, "LOADING") ||
        absl::StartsWith(message, "READONLY") ||
        absl::StartsWith(message, "MASTERDOWN")) {
      return Unavailable(message);
    }
    return absl::InternalError(absl::StrCat("redis: ", message));
  }
  RedisReply out = Copy(reply);
  freeReplyObject(reply);
  return out;
}

}  // namespace cluster2
