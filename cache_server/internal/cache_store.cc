#include "cache_server/internal/cache_store.h"

#include <algorithm>
#include <random>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace cluster2 {

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

absl::StatusOr<CacheNamespaceOptions> CacheStore::Use(
    const std::string& name, const CacheNamespaceOptions& options,
    bool* conflict) {
  if (absl::Status status = ValidateNamespaceName(name); !status.ok())
    return status;
  if (options.expire < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("expire must not be negative");
  }
  absl::MutexLock lock(&mu_);
  auto [it, created] = namespaces_.try_emplace(name);
  if (created) it->second.options = options;
  *conflict = !created && !(it->second.options == options);
  return it->second.options;
}

absl::StatusOr<CacheStore::Namespace*> CacheStore::FindLocked(
    const std::string& ns, const std::string& key) {
  auto it = namespaces_.find(ns);
  if (it == namespaces_.end()) {
    return absl::NotFoundError(
        absl::StrCat("no namespace '", ns, "' (Use it first)"));
  }
  if (key.empty()) return absl::InvalidArgumentError("the key is empty");
  if (key.size() > limits_.max_key) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the key is ", key.size(), " bytes; the limit is ", limits_.max_key));
  }
  return &it->second;
}

const CacheStore::Entry* CacheStore::LiveLocked(Namespace& ns,
                                                const std::string& key) {
  auto it = ns.entries.find(key);
  if (it == ns.entries.end()) return nullptr;
  if (it->second.expires_at && *it->second.expires_at <= clock_->Now()) {
    ns.entries.erase(it);  // invisible at once; reclaimed here
    return nullptr;
  }
  return &it->second;
}

std::string CacheStore::NewTokenLocked() {
  std::random_device random;
  return absl::StrFormat("%08x%08x-%d", random(), random(), next_id_++);
}

CacheGetResult CacheStore::Hit(const Entry& entry) {
  CacheGetResult result;
  result.found = true;
  result.value = entry.value;
  result.revision = entry.revision;
  return result;
}

absl::StatusOr<CacheGetResult> CacheStore::Get(const std::string& ns,
                                               const std::string& key) {
  absl::MutexLock lock(&mu_);
  absl::StatusOr<Namespace*> space = FindLocked(ns, key);
  if (!space.ok()) return space.status();
  const Entry* entry = LiveLocked(**space, key);
  return entry != nullptr ? Hit(*entry) : CacheGetResult();
}

absl::StatusOr<std::optional<CacheGetResult>> CacheStore::GetOrLease(
    const std::string& ns, const std::string& key, const std::string& client_id,
    absl::Duration lease_ttl, Waiter waiter, uint64_t* waiter_id) {
  if (client_id.empty())
    return absl::InvalidArgumentError("a lease needs a client id");
  absl::MutexLock lock(&mu_);
  absl::StatusOr<Namespace*> space = FindLocked(ns, key);
  if (!space.ok()) return space.status();
  if (const Entry* entry = LiveLocked(**space, key)) {
    return std::optional<CacheGetResult>(Hit(*entry));
  }
  CacheGetResult result;
  auto [it, created] = (*space)->leases.try_emplace(key);
  Lease& lease = it->second;
  if (created) {  // the first caller of this miss loads
    lease.token = NewTokenLocked();
    lease.client_id = client_id;
    lease.expires_at = clock_->Now() + lease_ttl;
    result.lease_token = lease.token;
    return std::optional<CacheGetResult>(result);
  }
  *waiter_id = next_id_++;
  lease.parked.push_back(
      Parked{*waiter_id, client_id, lease_ttl, std::move(waiter)});
  return std::optional<CacheGetResult>();
}

void CacheStore::CancelWaiter(uint64_t waiter_id) {
  absl::MutexLock lock(&mu_);
  for (auto& [name, space] : namespaces_) {
    for (auto& [key, lease] : space.leases) {
      for (auto it = lease.parked.begin(); it != lease.parked.end(); ++it) {
        if (it->id == waiter_id) {
          lease.parked.erase(it);
          return;
        }
      }
    }
  }
}

void CacheStore::PassLeaseLocked(Namespace& ns, const std::string& key,
                                 std::vector<Completion>* done) {
  auto it = ns.leases.find(key);
  if (it == ns.leases.end()) return;
  Lease& lease = it->second;
  if (lease.parked.empty()) {
    ns.leases.erase(it);
    return;
  }
  Parked next = std::move(lease.parked.front());
  lease.parked.erase(lease.parked.begin());
  lease.token = NewTokenLocked();
  lease.client_id = next.client_id;
  lease.expires_at = clock_->Now() + next.lease_ttl;
  CacheGetResult granted;
  granted.lease_token = lease.token;
  done->emplace_back(std::move(next.waiter), granted);
}

void CacheStore::Complete(std::vector<Completion>& done) {
  for (auto& [waiter, result] : done) waiter(result);
}

absl::StatusOr<CacheSetResult> CacheStore::Set(const std::string& ns,
                                               const std::string& key,
                                               std::string value,
                                               absl::Duration ttl,
                                               bool leave_if_not_null,
                                               const std::string& lease_token) {
  if (value.size() > limits_.max_value) {
    return absl::ResourceExhaustedError(
        absl::StrCat("the value is ", value.size(), " bytes; the limit is ",
                     limits_.max_value));
  }
  if (ttl < absl::ZeroDuration())
    return absl::InvalidArgumentError("ttl must not be negative");
  std::vector<Completion> done;
  CacheSetResult result;
  {
    absl::MutexLock lock(&mu_);
    absl::StatusOr<Namespace*> space = FindLocked(ns, key);
    if (!space.ok()) return space.status();
    Namespace& n = **space;
    auto lease = n.leases.find(key);
    if (!lease_token.empty() &&
        (lease == n.leases.end() || lease->second.token != lease_token)) {
      return absl::FailedPreconditionError(
          "the lease is no longer held by this token");
    }
    if (const Entry* entry = LiveLocked(n, key);
        entry != nullptr && leave_if_not_null) {
      result.current = entry->value;
      result.revision = entry->revision;
      return result;
    }
    absl::Duration life = ttl > absl::ZeroDuration() ? ttl : n.options.expire;
    Entry& entry = n.entries[key];
    entry.value = std::move(value);
    entry.revision = ++revision_;
    entry.expires_at = life > absl::ZeroDuration()
                           ? std::optional<absl::Time>(clock_->Now() + life)
                           : std::nullopt;
    result.written = true;
    result.revision = entry.revision;
    // A value for a key being loaded ends its lease, whoever wrote it: every
    // parked caller gets it.
    if (lease != n.leases.end()) {
      CacheGetResult ready = Hit(entry);
      for (Parked& parked : lease->second.parked)
        done.emplace_back(std::move(parked.waiter), ready);
      n.leases.erase(lease);
    }
  }
  Complete(done);
  return result;
}

absl::Status CacheStore::ReleaseLease(const std::string& ns,
                                      const std::string& key,
                                      const std::string& lease_token,
                                      const std::string& error, bool retry) {
  std::vector<Completion> done;
  {
    absl::MutexLock lock(&mu_);
    absl::StatusOr<Namespace*> space = FindLocked(ns, key);
    if (!space.ok()) return space.status();
    auto lease = (*space)->leases.find(key);
    if (lease == (*space)->leases.end() || lease->second.token != lease_token) {
      return absl::FailedPreconditionError(
          "the lease is no longer held by this token");
    }
    if (retry) {
      PassLeaseLocked(**space, key, &done);
    } else {
      CacheGetResult failed;
      failed.load_error = error.empty() ? "the loader failed" : error;
      for (Parked& parked : lease->second.parked)
        done.emplace_back(std::move(parked.waiter), failed);
      (*space)->leases.erase(lease);
    }
  }
  Complete(done);
  return absl::OkStatus();
}

void CacheStore::ReleaseClient(const std::string& client_id) {
  std::vector<Completion> done;
  {
    absl::MutexLock lock(&mu_);
    for (auto& [name, space] : namespaces_) {
      std::vector<std::string> held;
      for (const auto& [key, lease] : space.leases) {
        if (lease.client_id == client_id) held.push_back(key);
      }
      for (const std::string& key : held) PassLeaseLocked(space, key, &done);
      // Its parked calls are gone too.
      for (auto& [key, lease] : space.leases) {
        lease.parked.erase(
            std::remove_if(
                lease.parked.begin(), lease.parked.end(),
                [&](const Parked& p) { return p.client_id == client_id; }),
            lease.parked.end());
      }
    }
  }
  Complete(done);
}

absl::StatusOr<std::optional<std::string>> CacheStore::Delete(
    const std::string& ns, const std::string& key) {
  absl::MutexLock lock(&mu_);
  absl::StatusOr<Namespace*> space = FindLocked(ns, key);
  if (!space.ok()) return space.status();
  if (LiveLocked(**space, key) == nullptr) return std::optional<std::string>();
  auto it = (*space)->entries.find(key);
  std::optional<std::string> old = std::move(it->second.value);
  (*space)->entries.erase(it);
  ++revision_;
  return old;
}

absl::StatusOr<std::vector<std::string>> CacheStore::Keys(
    const std::string& ns, const std::string& prefix, size_t limit,
    const std::string& after) {
  absl::MutexLock lock(&mu_);
  auto it = namespaces_.find(ns);
  if (it == namespaces_.end()) {
    return absl::NotFoundError(
        absl::StrCat("no namespace '", ns, "' (Use it first)"));
  }
  std::vector<std::string> keys;
  absl::Time now = clock_->Now();
  auto entry = after.empty() ? it->second.entries.lower_bound(prefix)
                             : it->second.entries.upper_bound(after);
  for (; entry != it->second.entries.end() && keys.size() < limit; ++entry) {
    if (!absl::StartsWith(entry->first, prefix)) {
      if (entry->first > prefix) break;
      continue;
    }
    if (entry->second.expires_at && *entry->second.expires_at <= now) continue;
    keys.push_back(entry->first);
  }
  return keys;
}

size_t CacheStore::Sweep() {
  std::vector<Completion> done;
  size_t reclaimed = 0;
  {
    absl::MutexLock lock(&mu_);
    absl::Time now = clock_->Now();
    for (auto& [name, space] : namespaces_) {
      for (auto it = space.entries.begin(); it != space.entries.end();) {
        bool expired = it->second.expires_at && *it->second.expires_at <= now;
        reclaimed += expired ? 1 : 0;
        it = expired ? space.entries.erase(it) : std::next(it);
      }
      std::vector<std::string> lapsed;
      for (const auto& [key, lease] : space.leases) {
        if (lease.expires_at <= now) lapsed.push_back(key);
      }
      for (const std::string& key : lapsed) PassLeaseLocked(space, key, &done);
    }
  }
  Complete(done);
  return reclaimed;
}

}  // namespace cluster2
