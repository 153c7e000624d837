#include "cache_server/internal/redis_store.h"

#include <pthread.h>

#include <algorithm>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "cache_server/cache_errors.h"
#include "cache_server/internal/redis_keys.h"
#include "common/log.h"

namespace cluster2 {

using namespace redis_keys;  // NOLINT: this file's own layout helpers

namespace {

// The scripts: each one atomic in Redis. Errors are returned as negative
// first elements: -2 no namespace, -1 lease not held.
constexpr char kUse[] = R"lua(
redis.call('SET', KEYS[2], ARGV[2], 'NX')
redis.call('SET', KEYS[1], ARGV[1], 'NX')
return redis.call('GET', KEYS[1])
)lua";

constexpr char kGet[] = R"lua(
if redis.call('EXISTS', KEYS[1]) == 0 then return {-2} end
local v = redis.call('HMGET', KEYS[2], 'v', 'r')
if not v[1] then return {0} end
return {1, v[1], tonumber(v[2]), redis.call('PTTL', KEYS[2])}
)lua";

// KEYS: opts, value, lease, log. ARGV: token, lease ttl ms. A caller that
// must wait learns the log's position: what it waits for comes after.
constexpr char kGetOrLease[] = R"lua(
if redis.call('EXISTS', KEYS[1]) == 0 then return {-2} end
local v = redis.call('HMGET', KEYS[2], 'v', 'r')
if v[1] then return {1, v[1], tonumber(v[2]), redis.call('PTTL', KEYS[2])} end
if redis.call('SET', KEYS[3], ARGV[1], 'NX', 'PX', ARGV[2]) then return {2} end
local last = redis.call('XREVRANGE', KEYS[4], '+', '-', 'COUNT', 1)
local at = '0-0'
if last[1] then at = last[1][1] end
return {0, redis.call('PTTL', KEYS[3]), at}
)lua";

// KEYS: opts, value, lease, rev, log. ARGV: value, ttl ms (0: the
// namespace's), nx, token, history, key, now us.
constexpr char kSet[] = R"lua(
local opts = redis.call('GET', KEYS[1])
if not opts then return {-2} end
if ARGV[4] ~= '' and redis.call('GET', KEYS[3]) ~= ARGV[4] then return {-1} end
if ARGV[3] == '1' then
  local cur = redis.call('HMGET', KEYS[2], 'v', 'r')
  if cur[1] then return {0, cur[1], tonumber(cur[2]), redis.call('PTTL', KEYS[2])} end
end
local ttl = tonumber(ARGV[2])
if ttl == 0 then ttl = tonumber(string.match(opts, '^%d+ (%d+)')) or 0 end
local r = redis.call('INCR', KEYS[4])
local rs = string.format('%d', r)
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[2], 'v', ARGV[1], 'r', rs)
local x = '0'
if ttl > 0 then
  redis.call('PEXPIRE', KEYS[2], ttl)
  x = string.format('%d', tonumber(ARGV[7]) + ttl * 1000)
end
redis.call('DEL', KEYS[3])
redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[5], '*', 't', 's', 'r', rs,
           'k', ARGV[6], 'v', ARGV[1], 'x', x)
return {1, r, ttl}
)lua";

// KEYS: opts, value, lease, rev, log. ARGV: key, history.
constexpr char kDelete[] = R"lua(
if redis.call('EXISTS', KEYS[1]) == 0 then return {-2} end
local old = redis.call('HGET', KEYS[2], 'v')
local leased = redis.call('DEL', KEYS[3])
if not old and leased == 0 then return {0} end
redis.call('DEL', KEYS[2])
local r = redis.call('INCR', KEYS[4])
redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[2], '*', 't', 'd',
           'r', string.format('%d', r), 'k', ARGV[1])
if old then return {1, r, old} end
return {0, r}
)lua";

// KEYS: lease, log. ARGV: token, key, error, retry, history.
constexpr char kRelease[] = R"lua(
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[5], '*', 't', 'l', 'k', ARGV[2],
           'e', ARGV[3], 'y', ARGV[4])
return 1
)lua";

}  // namespace

RedisStore::RedisStore(Options options, Clock* clock)
    : options_(std::move(options)),
      clock_(clock),
      commands_(options_.address, options_.timeout),
      events_(options_.address, options_.timeout),
      timers_(clock),
      events_thread_([this] { EventLoop(); }) {}

RedisStore::~RedisStore() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  WakeEvents();
  events_thread_.join();
}

absl::Status RedisStore::Recover(std::vector<std::string>* problems) {
  absl::StatusOr<RedisReply> pong = commands_.Command({"PING"});
  if (!pong.ok()) {
    problems->push_back(
        absl::StrCat(pong.status().message(),
                     ": cache calls fail with UNAVAILABLE until it answers"));
  }
  return absl::OkStatus();
}

absl::Status RedisStore::CheckKey(const std::string& key) const {
  if (key.empty()) return absl::InvalidArgumentError("the key is empty");
  if (key.size() > options_.max_key) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the key is ", key.size(), " bytes; the limit is ", options_.max_key));
  }
  return absl::OkStatus();
}

absl::StatusOr<CacheNamespaceOptions> RedisStore::Use(
    const std::string& name, const CacheNamespaceOptions& options,
    bool* conflict) {
  if (absl::Status status = ValidateNamespaceName(name); !status.ok())
    return status;
  if (options.expire < absl::ZeroDuration())
    return absl::InvalidArgumentError("expire must not be negative");
  absl::StatusOr<RedisReply> reply = commands_.Command(
      Eval(kUse, {OptsKey(name), RevKey(name)},
           {EncodeOptions(options), absl::StrCat(NowMicros())}));
  if (!reply.ok()) return reply.status();
  CacheNamespaceOptions kept = DecodeOptions(reply->text);
  *conflict = !(kept == options);
  return kept;
}

absl::StatusOr<CacheGetResult> RedisStore::Get(const std::string& ns,
                                               const std::string& key) {
  if (absl::Status status = CheckKey(key); !status.ok()) return status;
  absl::StatusOr<RedisReply> reply =
      commands_.Command(Eval(kGet, {OptsKey(ns), ValueKey(ns, key)}, {}));
  if (!reply.ok()) return reply.status();
  if (Int(*reply, 0) == -2) return NamespaceNotFound(ns);
  CacheGetResult result;
  result.found = Int(*reply, 0) == 1;
  if (result.found) {
    result.value = Text(*reply, 1);
    result.revision = static_cast<uint64_t>(Int(*reply, 2));
    result.expires_at = ExpiresFromPttl(Int(*reply, 3));
  }
  absl::MutexLock lock(&mu_);
  ++(result.found ? CountersLocked(ns).hits : CountersLocked(ns).misses);
  return result;
}

absl::Status RedisStore::OpenHold(const std::string& client_id) {
  if (client_id.empty())
    return absl::InvalidArgumentError("a Hold needs a client id");
  absl::MutexLock lock(&mu_);
  if (!holds_.insert(client_id).second) {
    return MakeCacheError(
        absl::StatusCode::kAlreadyExists, CacheError::kHoldInUse,
        absl::StrCat("client_id '", client_id, "' already holds a Hold"));
  }
  return absl::OkStatus();
}

void RedisStore::EndHold(const std::string& client_id) {
  std::vector<Waiter> lost;
  std::map<std::pair<std::string, std::string>, std::string> held;
  {
    absl::MutexLock lock(&mu_);
    holds_.erase(client_id);
    for (auto it = parked_.begin(); it != parked_.end();) {
      if (it->second.client_id != client_id) {
        ++it;
        continue;
      }
      timers_.Cancel(it->second.timer);
      lost.push_back(std::move(it->second.waiter));
      it = parked_.erase(it);
    }
    if (auto it = leases_.find(client_id); it != leases_.end()) {
      held = std::move(it->second);
      leases_.erase(it);
    }
  }
  for (Waiter& waiter : lost) {
    waiter(MakeCacheError(
        absl::StatusCode::kFailedPrecondition, CacheError::kHoldLost,
        "the Hold stream of this client ended while it waited"));
  }
  // Its loads will never finish: the next caller, on any host, loads now.
  for (const auto& [where, token] : held) {
    absl::Status released =
        ReleaseLease(where.first, where.second, token, "", /*retry=*/true);
    if (!released.ok() &&
        released.code() != absl::StatusCode::kFailedPrecondition) {
      LogWarning(absl::StrCat("lease of ", where.first, "/", where.second,
                              " of a gone client not released (",
                              released.message(),
                              "): it passes on at its TTL"));
    }
  }
}

absl::StatusOr<RedisStore::Attempt> RedisStore::TryGetOrLease(
    const std::string& ns, const std::string& key, const std::string& client_id,
    absl::Duration lease_ttl) {
  const std::string token =
      absl::StrCat(client_id, "/", next_id_.fetch_add(1), "/", NowMicros());
  absl::StatusOr<RedisReply> reply = commands_.Command(
      Eval(kGetOrLease,
           {OptsKey(ns), ValueKey(ns, key), LeaseKey(ns, key), LogKey(ns)},
           {token, absl::StrCat(std::max<int64_t>(
                       1, absl::ToInt64Milliseconds(lease_ttl)))}));
  if (!reply.ok()) return reply.status();
  Attempt attempt;
  switch (Int(*reply, 0)) {
    case -2:
      return NamespaceNotFound(ns);
    case 1:
      attempt.outcome = Attempt::Outcome::kHit;
      attempt.result.found = true;
      attempt.result.value = Text(*reply, 1);
      attempt.result.revision = static_cast<uint64_t>(Int(*reply, 2));
      attempt.result.expires_at = ExpiresFromPttl(Int(*reply, 3));
      return attempt;
    case 2: {
      attempt.outcome = Attempt::Outcome::kLease;
      attempt.result.lease_token = token;
      absl::MutexLock lock(&mu_);
      leases_[client_id][{ns, key}] = token;
      return attempt;
    }
    default:
      attempt.outcome = Attempt::Outcome::kLeased;
      attempt.lease_left =
          absl::Milliseconds(std::max<int64_t>(0, Int(*reply, 1)));
      attempt.log_position = Text(*reply, 2);
      return attempt;
  }
}

absl::StatusOr<std::optional<CacheGetResult>> RedisStore::GetOrLease(
    const std::string& ns, const std::string& key, const std::string& client_id,
    absl::Duration lease_ttl, Waiter waiter, uint64_t* waiter_id,
    absl::Duration wait) {
  if (client_id.empty())
    return absl::InvalidArgumentError("a lease needs a client id");
  if (absl::Status status = CheckKey(key); !status.ok()) return status;
  {
    absl::MutexLock lock(&mu_);
    if (holds_.count(client_id) == 0) {
      return MakeCacheError(
          absl::StatusCode::kFailedPrecondition, CacheError::kHoldMissing,
          absl::StrCat("a lease needs a live Hold stream for client_id '",
                       client_id, "'"));
    }
  }
  // Followed from before the attempt: a release right after it is seen.
  if (absl::Status followed = Follow(ns); !followed.ok()) return followed;
  absl::StatusOr<Attempt> attempt =
      TryGetOrLease(ns, key, client_id, lease_ttl);
  if (!attempt.ok()) return attempt.status();
  absl::MutexLock lock(&mu_);
  if (attempt->outcome == Attempt::Outcome::kHit) {
    ++CountersLocked(ns).hits;
    return std::optional<CacheGetResult>(attempt->result);
  }
  if (attempt->outcome == Attempt::Outcome::kLease) {
    ++CountersLocked(ns).loads;
    return std::optional<CacheGetResult>(attempt->result);
  }
  const uint64_t id = next_id_.fetch_add(1);
  if (waiter_id != nullptr) *waiter_id = id;
  Parked parked{
      ns, key, client_id, lease_ttl, std::move(waiter), absl::InfiniteFuture()};
  parked.after = attempt->log_position;
  if (wait != absl::InfiniteDuration()) {
    // A little before the caller's own deadline (as CacheStore does).
    parked.deadline =
        clock_->Now() + wait - std::min(wait / 10, absl::Milliseconds(100));
  }
  ParkLocked(id, std::move(parked), attempt->lease_left);
  return std::optional<CacheGetResult>();
}

void RedisStore::ParkLocked(uint64_t id, Parked parked,
                            absl::Duration lease_left) {
  // The lease's end, a little after: a holder whose host died releases
  // nothing, and Redis tells no one when the lease key expires.
  const absl::Time lease_end =
      clock_->Now() + lease_left + absl::Milliseconds(20);
  parked.timer = timers_.Schedule(std::min(parked.deadline, lease_end),
                                  [this, id] { OnTimer(id); });
  parked_[id] = std::move(parked);
}

bool RedisStore::CancelWaiter(uint64_t waiter_id) {
  absl::MutexLock lock(&mu_);
  auto it = parked_.find(waiter_id);
  if (it == parked_.end()) return false;
  timers_.Cancel(it->second.timer);
  parked_.erase(it);
  return true;
}

void RedisStore::OnTimer(uint64_t id) {
  Waiter expired;
  std::string ns, key;
  {
    absl::MutexLock lock(&mu_);
    auto it = parked_.find(id);
    if (it == parked_.end()) return;
    if (clock_->Now() >= it->second.deadline) {
      expired = std::move(it->second.waiter);
      parked_.erase(it);
    } else {
      ns = it->second.ns;
      key = it->second.key;
    }
  }
  if (expired) {
    expired(MakeCacheError(absl::StatusCode::kDeadlineExceeded,
                           CacheError::kWaitExpired,
                           "no value within the wait option"));
    return;
  }
  Retry(ns, key);
}

void RedisStore::Retry(const std::string& ns, const std::string& key) {
  // The parked calls of (ns, key), oldest first: one attempt each until
  // one gets the lease or a value (then the value is everyone's).
  std::vector<uint64_t> ids;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [id, parked] : parked_) {
      if (parked.ns == ns && parked.key == key) ids.push_back(id);
    }
  }
  std::vector<std::pair<Waiter, absl::StatusOr<CacheGetResult>>> done;
  for (uint64_t id : ids) {
    std::string client_id;
    absl::Duration lease_ttl;
    {
      absl::MutexLock lock(&mu_);
      auto it = parked_.find(id);
      if (it == parked_.end()) continue;
      client_id = it->second.client_id;
      lease_ttl = it->second.lease_ttl;
    }
    absl::StatusOr<Attempt> attempt =
        TryGetOrLease(ns, key, client_id, lease_ttl);
    absl::MutexLock lock(&mu_);
    auto it = parked_.find(id);
    if (it == parked_.end()) {
      // Cancelled meanwhile: a lease it got is released by its Hold's end
      // or passes on at its TTL; give it back now if we can.
      if (attempt.ok() && attempt->outcome == Attempt::Outcome::kLease) {
        leases_[client_id].erase({ns, key});
        (void)commands_.Command(Eval(kRelease, {LeaseKey(ns, key), LogKey(ns)},
                                     {attempt->result.lease_token, key, "", "1",
                                      absl::StrCat(options_.history)}));
      }
      continue;
    }
    if (!attempt.ok()) {
      timers_.Cancel(it->second.timer);
      done.emplace_back(std::move(it->second.waiter), attempt.status());
      parked_.erase(it);
      continue;
    }
    if (attempt->outcome == Attempt::Outcome::kLeased) {
      // Still someone else's: wait for its release or its end.
      timers_.Cancel(it->second.timer);
      Parked parked = std::move(it->second);
      parked.after = attempt->log_position;
      parked_.erase(it);
      ParkLocked(id, std::move(parked), attempt->lease_left);
      break;
    }
    timers_.Cancel(it->second.timer);
    ++(attempt->outcome == Attempt::Outcome::kHit ? CountersLocked(ns).hits
                                                  : CountersLocked(ns).loads);
    done.emplace_back(std::move(it->second.waiter), attempt->result);
    parked_.erase(it);
    if (attempt->outcome == Attempt::Outcome::kLease) break;
  }
  for (auto& [waiter, result] : done) waiter(std::move(result));
}

absl::StatusOr<CacheSetResult> RedisStore::Set(const std::string& ns,
                                               const std::string& key,
                                               std::string value,
                                               absl::Duration ttl,
                                               bool leave_if_not_null,
                                               const std::string& lease_token) {
  if (absl::Status status = CheckKey(key); !status.ok()) return status;
  if (value.size() > options_.max_value) {
    return MakeCacheError(
        absl::StatusCode::kResourceExhausted, CacheError::kValueTooLarge,
        absl::StrCat("the value is ", value.size(), " bytes; the limit is ",
                     options_.max_value));
  }
  if (ttl < absl::ZeroDuration())
    return absl::InvalidArgumentError("ttl must not be negative");
  const int64_t now = NowMicros();
  absl::StatusOr<RedisReply> reply = commands_.Command(
      Eval(kSet,
           {OptsKey(ns), ValueKey(ns, key), LeaseKey(ns, key), RevKey(ns),
            LogKey(ns)},
           {std::move(value), absl::StrCat(absl::ToInt64Milliseconds(ttl)),
            leave_if_not_null ? "1" : "0", lease_token,
            absl::StrCat(options_.history), key, absl::StrCat(now)}));
  if (!reply.ok()) return reply.status();
  CacheSetResult result;
  switch (Int(*reply, 0)) {
    case -2:
      return NamespaceNotFound(ns);
    case -1:
      return LeaseNotHeld();
    case 0:  // leave_if_not_null found a value
      result.current = Text(*reply, 1);
      result.revision = static_cast<uint64_t>(Int(*reply, 2));
      result.expires_at = ExpiresFromPttl(Int(*reply, 3));
      return result;
    default:
      result.written = true;
      result.revision = static_cast<uint64_t>(Int(*reply, 1));
      if (Int(*reply, 2) > 0)
        result.expires_at =
            absl::FromUnixMicros(now) + absl::Milliseconds(Int(*reply, 2));
  }
  if (!lease_token.empty()) {
    absl::MutexLock lock(&mu_);
    for (auto& [client, held] : leases_) held.erase({ns, key});
  }
  return result;
}

absl::Status RedisStore::ReleaseLease(const std::string& ns,
                                      const std::string& key,
                                      const std::string& lease_token,
                                      const std::string& error, bool retry) {
  absl::StatusOr<RedisReply> reply =
      commands_.Command(Eval(kRelease, {LeaseKey(ns, key), LogKey(ns)},
                             {lease_token, key, error, retry ? "1" : "0",
                              absl::StrCat(options_.history)}));
  if (!reply.ok()) return reply.status();
  {
    absl::MutexLock lock(&mu_);
    for (auto& [client, held] : leases_) {
      auto it = held.find({ns, key});
      if (it != held.end() && it->second == lease_token) held.erase(it);
    }
    if (reply->integer == 1 && !retry) ++CountersLocked(ns).errors;
  }
  return reply->integer == 1 ? absl::OkStatus() : LeaseNotHeld();
}

absl::StatusOr<CacheDeleteResult> RedisStore::Delete(const std::string& ns,
                                                     const std::string& key) {
  if (absl::Status status = CheckKey(key); !status.ok()) return status;
  absl::StatusOr<RedisReply> reply =
      commands_.Command(Eval(kDelete,
                             {OptsKey(ns), ValueKey(ns, key), LeaseKey(ns, key),
                              RevKey(ns), LogKey(ns)},
                             {key, absl::StrCat(options_.history)}));
  if (!reply.ok()) return reply.status();
  if (Int(*reply, 0) == -2) return NamespaceNotFound(ns);
  CacheDeleteResult result;
  result.revision = static_cast<uint64_t>(Int(*reply, 1));
  if (Int(*reply, 0) == 1) result.old_value = Text(*reply, 2);
  return result;
}

absl::StatusOr<std::vector<std::string>> RedisStore::Keys(
    const std::string& ns, const std::string& prefix, size_t limit,
    const std::string& after) {
  absl::StatusOr<RedisReply> exists =
      commands_.Command({"EXISTS", OptsKey(ns)});
  if (!exists.ok()) return exists.status();
  if (exists->integer == 0) return NamespaceNotFound(ns);
  // SCAN's pattern is a glob: escape the prefix's special characters.
  std::string pattern = ValueKey(ns, "");
  for (char c : prefix) {
    if (c == '*' || c == '?' || c == '[' || c == ']' || c == '\\')
      pattern.push_back('\\');
    pattern.push_back(c);
  }
  pattern.push_back('*');
  const size_t strip = ValueKey(ns, "").size();
  std::vector<std::string> keys;
  std::string cursor = "0";
  do {
    absl::StatusOr<RedisReply> page =
        commands_.Command({"SCAN", cursor, "MATCH", pattern, "COUNT", "1000"});
    if (!page.ok()) return page.status();
    if (page->elements.size() != 2)
      return absl::InternalError("redis: unexpected SCAN answer");
    cursor = page->elements[0].text;
    for (const RedisReply& name : page->elements[1].elements) {
      std::string key = name.text.substr(strip);
      if (key > after) keys.push_back(std::move(key));
    }
  } while (cursor != "0");
  std::sort(keys.begin(), keys.end());
  keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
  if (limit > 0 && keys.size() > limit) keys.resize(limit);
  return keys;
}

std::vector<CacheNamespaceInfo> RedisStore::Namespaces(const std::string& ns) {
  std::vector<std::string> names;
  if (!ns.empty()) {
    names.push_back(ns);
  } else {
    std::string cursor = "0";
    do {
      absl::StatusOr<RedisReply> page = commands_.Command(
          {"SCAN", cursor, "MATCH", "c2:{*}:opts", "COUNT", "1000"});
      if (!page.ok() || page->elements.size() != 2) return {};
      cursor = page->elements[0].text;
      for (const RedisReply& key : page->elements[1].elements) {
        // c2:{NAME}:opts
        names.push_back(key.text.substr(4, key.text.size() - 4 - 6));
      }
    } while (cursor != "0");
    std::sort(names.begin(), names.end());
    names.erase(std::unique(names.begin(), names.end()), names.end());
  }
  std::vector<CacheNamespaceInfo> infos;
  for (const std::string& name : names) {
    absl::StatusOr<RedisReply> opts = commands_.Command({"GET", OptsKey(name)});
    if (!opts.ok() || opts->nil()) continue;
    CacheNamespaceInfo info;
    info.name = name;
    info.options = DecodeOptions(opts->text);
    std::string cursor = "0";
    do {
      absl::StatusOr<RedisReply> page = commands_.Command(
          {"SCAN", cursor, "MATCH", ValueKey(name, "*"), "COUNT", "1000"});
      if (!page.ok() || page->elements.size() != 2) break;
      cursor = page->elements[0].text;
      info.keys += page->elements[1].elements.size();
    } while (cursor != "0");
    absl::MutexLock lock(&mu_);
    info.counters = CountersLocked(name);
    for (const auto& [id, parked] : parked_)
      info.waiting += parked.ns == name ? 1 : 0;
    infos.push_back(std::move(info));
  }
  return infos;
}

}  // namespace cluster2
