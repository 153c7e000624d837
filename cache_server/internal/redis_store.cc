#include "cache_server/internal/redis_store.h"

#include <pthread.h>

#include <algorithm>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "cache_server/cache_errors.h"
#include "common/log.h"

namespace cluster2 {
namespace {

// The keys of namespace `ns` (redis_store.h).
std::string Tag(const std::string& ns) {
  return absl::StrCat("c2:{", ns, "}:");
}
std::string OptsKey(const std::string& ns) { return Tag(ns) + "opts"; }
std::string RevKey(const std::string& ns) { return Tag(ns) + "rev"; }
std::string LogKey(const std::string& ns) { return Tag(ns) + "log"; }
std::string ValueKey(const std::string& ns, const std::string& key) {
  return Tag(ns) + "k:" + key;
}
std::string LeaseKey(const std::string& ns, const std::string& key) {
  return Tag(ns) + "l:" + key;
}

// Options as stored in c2:{NS}:opts: "PERSIST EXPIRE_MS FSYNC".
std::string EncodeOptions(const CacheNamespaceOptions& options) {
  return absl::StrCat(options.persist ? 1 : 0, " ",
                      absl::ToInt64Milliseconds(options.expire), " ",
                      static_cast<int>(options.fsync));
}

CacheNamespaceOptions DecodeOptions(const std::string& text) {
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

absl::Status NoNamespace(const std::string& ns) {
  return MakeCacheError(absl::StatusCode::kNotFound,
                        CacheError::kNamespaceNotFound,
                        absl::StrCat("no namespace '", ns, "' (Use it first)"));
}

absl::Status LeaseNotHeld() {
  return MakeCacheError(absl::StatusCode::kFailedPrecondition,
                        CacheError::kLeaseNotHeld,
                        "the lease is no longer held by this token");
}

int64_t NowMicros() { return absl::ToUnixMicros(absl::Now()); }

std::optional<absl::Time> ExpiresFromPttl(int64_t pttl_ms) {
  if (pttl_ms < 0) return std::nullopt;
  return absl::Now() + absl::Milliseconds(pttl_ms);
}

// Stream ids "MS-SEQ", compared as numbers.
std::pair<uint64_t, uint64_t> IdParts(const std::string& id) {
  std::pair<uint64_t, uint64_t> parts{0, 0};
  size_t dash = id.find('-');
  (void)absl::SimpleAtoi(id.substr(0, dash), &parts.first);
  if (dash != std::string::npos)
    (void)absl::SimpleAtoi(id.substr(dash + 1), &parts.second);
  return parts;
}

bool IdAfter(const std::string& a, const std::string& b) {
  return IdParts(a) > IdParts(b);
}

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

std::vector<std::string> Eval(const char* script, std::vector<std::string> keys,
                              std::vector<std::string> args) {
  std::vector<std::string> command = {"EVAL", script,
                                      absl::StrCat(keys.size())};
  for (std::string& key : keys) command.push_back(std::move(key));
  for (std::string& arg : args) command.push_back(std::move(arg));
  return command;
}

int64_t Int(const RedisReply& reply, size_t i) {
  return i < reply.elements.size() ? reply.elements[i].integer : 0;
}
std::string Text(const RedisReply& reply, size_t i) {
  return i < reply.elements.size() ? reply.elements[i].text : "";
}

// A stream entry's fields.
std::map<std::string, std::string> Fields(const RedisReply& pairs) {
  std::map<std::string, std::string> fields;
  for (size_t i = 0; i + 1 < pairs.elements.size(); i += 2)
    fields[pairs.elements[i].text] = pairs.elements[i + 1].text;
  return fields;
}

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
  if (Int(*reply, 0) == -2) return NoNamespace(ns);
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
      return NoNamespace(ns);
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
      return NoNamespace(ns);
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
  if (Int(*reply, 0) == -2) return NoNamespace(ns);
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
  if (exists->integer == 0) return NoNamespace(ns);
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

absl::StatusOr<std::string> RedisStore::LastLogId(const std::string& ns) {
  absl::StatusOr<RedisReply> last =
      commands_.Command({"XREVRANGE", LogKey(ns), "+", "-", "COUNT", "1"});
  if (!last.ok()) return last.status();
  if (last->elements.empty() || last->elements[0].elements.empty())
    return std::string("0-0");
  return last->elements[0].elements[0].text;
}

absl::StatusOr<bool> RedisStore::Watch(const std::string& ns,
                                       const std::string& key,
                                       uint64_t from_revision,
                                       CacheWatcher* watcher) {
  absl::StatusOr<RedisReply> exists =
      commands_.Command({"EXISTS", OptsKey(ns)});
  if (!exists.ok()) return exists.status();
  if (exists->integer == 0) return NoNamespace(ns);
  if (absl::Status followed = Follow(ns); !followed.ok()) return followed;
  // Under mu_, so that "redis-events" delivers nothing in between: the
  // kept changes up to the cursor now, then the followed ones.
  absl::MutexLock lock(&mu_);
  const std::string cursor = cursors_[ns];
  bool resync = false;
  if (from_revision > 0) {
    absl::StatusOr<RedisReply> kept =
        commands_.Command({"XRANGE", LogKey(ns), "-", cursor});
    if (!kept.ok()) return kept.status();
    std::vector<CacheEvent> replay;
    uint64_t oldest = 0;
    for (const RedisReply& entry : kept->elements) {
      if (entry.elements.size() != 2) continue;
      std::map<std::string, std::string> fields = Fields(entry.elements[1]);
      uint64_t revision = 0;
      if (!absl::SimpleAtoi(fields["r"], &revision)) continue;  // a release
      if (oldest == 0) oldest = revision;
      if (revision <= from_revision) continue;
      if (!key.empty() && fields["k"] != key) continue;
      CacheEvent event;
      event.kind = fields["t"] == "s" ? CacheEvent::Kind::kSet
                                      : CacheEvent::Kind::kDelete;
      event.key = fields["k"];
      event.value = fields["v"];
      event.revision = revision;
      int64_t expires = 0;
      if (absl::SimpleAtoi(fields["x"], &expires) && expires > 0)
        event.expires_at = absl::FromUnixMicros(expires);
      replay.push_back(std::move(event));
    }
    // The changes right after from_revision are gone (trimmed, or a Redis
    // that lost its data): the watcher must re-read.
    absl::StatusOr<RedisReply> current = commands_.Command({"GET", RevKey(ns)});
    uint64_t now_revision = 0;
    if (current.ok()) (void)absl::SimpleAtoi(current->text, &now_revision);
    resync = (oldest == 0 ? now_revision > from_revision
                          : oldest > from_revision + 1) ||
             from_revision > now_revision;
    if (!resync) {
      for (const CacheEvent& event : replay) watcher->OnEvent(event);
    }
  }
  watchers_[watcher] = Watching{ns, key};
  return resync;
}

void RedisStore::Unwatch(CacheWatcher* watcher) {
  absl::MutexLock lock(&mu_);
  watchers_.erase(watcher);
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

absl::Status RedisStore::Follow(const std::string& ns) {
  {
    absl::MutexLock lock(&mu_);
    if (cursors_.count(ns) > 0) return absl::OkStatus();
  }
  absl::StatusOr<std::string> last = LastLogId(ns);
  if (!last.ok()) return last.status();
  {
    absl::MutexLock lock(&mu_);
    if (!cursors_.emplace(ns, *last).second) return absl::OkStatus();
  }
  WakeEvents();
  return absl::OkStatus();
}

void RedisStore::WakeEvents() {
  const int64_t id = events_client_id_.load();
  if (id != 0) (void)commands_.Command({"CLIENT", "UNBLOCK", absl::StrCat(id)});
}

void RedisStore::EventLoop() {
  pthread_setname_np(pthread_self(), "redis-events");
  absl::Duration backoff = absl::Milliseconds(50);
  for (;;) {
    std::vector<std::pair<std::string, std::string>> streams;
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return;
      // A namespace once followed stays followed: its parked calls and
      // watchers come and go, and a cursor placed late could miss a release.
      for (const auto& [ns, cursor] : cursors_)
        streams.emplace_back(ns, cursor);
    }
    if (events_client_id_.load() == 0) {
      absl::StatusOr<RedisReply> id = events_.Command({"CLIENT", "ID"});
      if (id.ok()) events_client_id_.store(id->integer);
    }
    if (streams.empty()) {
      absl::MutexLock lock(&mu_);
      auto wake = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stopping_ || !cursors_.empty();
      };
      mu_.AwaitWithTimeout(absl::Condition(&wake), absl::Seconds(1));
      continue;
    }
    std::vector<std::string> command = {"XREAD", "COUNT", "1000",
                                        "BLOCK", "1000",  "STREAMS"};
    for (const auto& [ns, cursor] : streams) command.push_back(LogKey(ns));
    for (const auto& [ns, cursor] : streams) command.push_back(cursor);
    absl::StatusOr<RedisReply> read =
        events_.CommandWithTimeout(command, absl::Seconds(3));
    if (!read.ok()) {
      events_client_id_.store(0);  // a new connection has a new id
      absl::MutexLock lock(&mu_);
      mu_.AwaitWithTimeout(absl::Condition(&stopping_), backoff);
      backoff = std::min(backoff * 2, absl::Seconds(1));
      continue;
    }
    backoff = absl::Milliseconds(50);
    for (const RedisReply& stream : read->elements) {
      if (stream.elements.size() != 2) continue;
      const std::string& name = stream.elements[0].text;  // c2:{NS}:log
      const std::string ns = name.substr(4, name.size() - 4 - 5);
      std::vector<LogEntry> entries;
      for (const RedisReply& entry : stream.elements[1].elements) {
        if (entry.elements.size() != 2) continue;
        std::map<std::string, std::string> fields = Fields(entry.elements[1]);
        LogEntry out;
        out.id = entry.elements[0].text;
        out.type = fields["t"].empty() ? 0 : fields["t"][0];
        (void)absl::SimpleAtoi(fields["r"], &out.revision);
        out.key = fields["k"];
        out.value = fields["v"];
        out.error = fields["e"];
        out.retry = fields["y"] == "1";
        (void)absl::SimpleAtoi(fields["x"], &out.expires_micros);
        entries.push_back(std::move(out));
      }
      Deliver(ns, entries);
    }
  }
}

void RedisStore::Deliver(const std::string& ns,
                         const std::vector<LogEntry>& entries) {
  std::vector<std::pair<Waiter, absl::StatusOr<CacheGetResult>>> done;
  std::set<std::string> retry;
  {
    absl::MutexLock lock(&mu_);
    auto cursor = cursors_.find(ns);
    if (cursor == cursors_.end()) return;
    for (const LogEntry& entry : entries) {
      // Watch() may have replayed up to a later cursor meanwhile.
      if (!IdAfter(entry.id, cursor->second)) continue;
      cursor->second = entry.id;
      if (entry.type == 's' || entry.type == 'd') {
        CacheEvent event;
        event.kind = entry.type == 's' ? CacheEvent::Kind::kSet
                                       : CacheEvent::Kind::kDelete;
        event.key = entry.key;
        event.value = entry.value;
        event.revision = entry.revision;
        if (entry.expires_micros > 0)
          event.expires_at = absl::FromUnixMicros(entry.expires_micros);
        for (const auto& [watcher, watching] : watchers_) {
          if (watching.ns == ns &&
              (watching.key.empty() || watching.key == entry.key)) {
            watcher->OnEvent(event);
          }
        }
      }
      // Parked calls of the key: a value is everyone's; a delete or a
      // release for retry lets one of them try; a failed load is told.
      for (auto it = parked_.begin(); it != parked_.end();) {
        Parked& parked = it->second;
        // What happened before it found the lease held is not news to it.
        if (parked.ns != ns || parked.key != entry.key ||
            !IdAfter(entry.id, parked.after)) {
          ++it;
          continue;
        }
        if (entry.type == 's') {
          CacheGetResult result;
          result.found = true;
          result.value = entry.value;
          result.revision = entry.revision;
          if (entry.expires_micros > 0)
            result.expires_at = absl::FromUnixMicros(entry.expires_micros);
          ++CountersLocked(ns).hits;
          timers_.Cancel(parked.timer);
          done.emplace_back(std::move(parked.waiter), std::move(result));
          it = parked_.erase(it);
        } else if (entry.type == 'l' && !entry.retry) {
          CacheGetResult result;
          result.load_error = entry.error;
          ++CountersLocked(ns).errors;
          timers_.Cancel(parked.timer);
          done.emplace_back(std::move(parked.waiter), std::move(result));
          it = parked_.erase(it);
        } else {
          retry.insert(entry.key);
          ++it;
        }
      }
    }
  }
  for (auto& [waiter, result] : done) waiter(std::move(result));
  for (const std::string& key : retry) Retry(ns, key);
}

}  // namespace cluster2
