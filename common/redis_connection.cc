#include "common/redis_connection.h"

#include <hiredis/hiredis.h>
#include <signal.h>
#include <sys/time.h>

#include <mutex>
#include <optional>
#include <tuple>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
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
  if (!sentinels.empty()) {
    std::string text = "redis-sentinel://";
    for (size_t i = 0; i < sentinels.size(); ++i) {
      absl::StrAppend(&text, i == 0 ? "" : ",", sentinels[i].first, ":",
                      sentinels[i].second);
    }
    return absl::StrCat(text, "/", master_name);
  }
  return unix_path.empty() ? absl::StrCat("redis://", host, ":", port)
                           : absl::StrCat("unix:", unix_path);
}

absl::StatusOr<RedisAddress> ParseRedisAddress(absl::string_view text) {
  RedisAddress address;
  if (absl::ConsumePrefix(&text, "redis-sentinel://")) {
    const size_t slash = text.find('/');
    if (slash == absl::string_view::npos || slash + 1 == text.size()) {
      return absl::InvalidArgumentError(
          "a Sentinel address is redis-sentinel://HOST[:PORT],.../MASTER_NAME");
    }
    address.master_name = std::string(text.substr(slash + 1));
    for (absl::string_view one :
         absl::StrSplit(text.substr(0, slash), ',', absl::SkipEmpty())) {
      const size_t colon = one.rfind(':');
      int port = 26379;
      std::string host(one.substr(0, colon));
      if ((colon != absl::string_view::npos &&
           (!absl::SimpleAtoi(one.substr(colon + 1), &port) || port < 1 ||
            port > 65535)) ||
          host.empty()) {
        return absl::InvalidArgumentError(
            absl::StrCat("bad Sentinel address '", one, "'"));
      }
      address.sentinels.emplace_back(std::move(host), port);
    }
    if (address.sentinels.empty()) {
      return absl::InvalidArgumentError(
          "a Sentinel address names at least one Sentinel");
    }
    return address;
  }
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
        "a Redis address is redis://HOST[:PORT], unix:/path/redis.sock or "
        "redis-sentinel://HOST[:PORT],.../MASTER_NAME");
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

absl::StatusOr<std::pair<std::string, int>> RedisConnection::AskSentinels() {
  const timeval timeout = AsTimeval(timeout_);
  std::string why = "no Sentinel answered";
  for (const auto& [host, port] : address_.sentinels) {
    redisContext* sentinel =
        redisConnectWithTimeout(host.c_str(), port, timeout);
    if (sentinel == nullptr) continue;
    if (sentinel->err != 0) {
      why = absl::StrCat("Sentinel ", host, ":", port, ": ", sentinel->errstr);
      redisFree(sentinel);
      continue;
    }
    redisSetTimeout(sentinel, timeout);
    auto* reply = static_cast<redisReply*>(
        redisCommand(sentinel, "SENTINEL get-master-addr-by-name %s",
                     address_.master_name.c_str()));
    std::optional<std::pair<std::string, int>> master;
    if (reply != nullptr && reply->type == REDIS_REPLY_ARRAY &&
        reply->elements == 2) {
      int master_port = 0;
      if (absl::SimpleAtoi(
              absl::string_view(reply->element[1]->str, reply->element[1]->len),
              &master_port)) {
        master.emplace(
            std::string(reply->element[0]->str, reply->element[0]->len),
            master_port);
      }
    } else {
      why = absl::StrCat("Sentinel ", host, ":", port, " knows no master '",
                         address_.master_name, "'");
    }
    if (reply != nullptr) freeReplyObject(reply);
    redisFree(sentinel);
    if (master) return *master;
  }
  return absl::UnavailableError(why);
}

absl::Status RedisConnection::ConnectLocked() {
  if (context_ != nullptr) return absl::OkStatus();
  const timeval timeout = AsTimeval(timeout_);
  std::string host = address_.host;
  int port = address_.port;
  if (!address_.sentinels.empty()) {
    absl::StatusOr<std::pair<std::string, int>> master = AskSentinels();
    if (!master.ok()) return Unavailable(master.status().message());
    std::tie(host, port) = *master;
  }
  context_ =
      address_.unix_path.empty()
          ? redisConnectWithTimeout(host.c_str(), port, timeout)
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
