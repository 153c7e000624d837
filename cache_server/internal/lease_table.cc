#include "cache_server/internal/lease_table.h"

#include <algorithm>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "cache_server/cache_errors.h"

namespace cluster2 {

absl::Status LeaseTable::OpenHold(const std::string& client_id) {
  if (client_id.empty())
    return absl::InvalidArgumentError("client_id is empty");
  if (!holds_.insert(client_id).second) {
    return MakeCacheError(
        absl::StatusCode::kAlreadyExists, CacheError::kHoldInUse,
        absl::StrCat("another Hold stream uses client_id '", client_id, "'"));
  }
  return absl::OkStatus();
}

bool LeaseTable::HoldLive(const std::string& client_id) const {
  return holds_.count(client_id) > 0;
}

void LeaseTable::EndHold(const std::string& client_id, absl::Time now,
                         Completions* done) {
  holds_.erase(client_id);
  absl::Status lost = MakeCacheError(
      absl::StatusCode::kFailedPrecondition, CacheError::kHoldLost,
      absl::StrCat("the Hold stream of client_id '", client_id,
                   "' ended while this call waited"));
  // First its parked calls (never hand its lease to one of them)...
  for (auto& [key, lease] : leases_) {
    auto gone = std::stable_partition(
        lease.parked.begin(), lease.parked.end(),
        [&](const Parked& p) { return p.client_id != client_id; });
    for (auto it = gone; it != lease.parked.end(); ++it) {
      parked_keys_.erase(it->id);
      done->push_back({key.first, std::move(it->waiter), lost, it->timer});
    }
    lease.parked.erase(gone, lease.parked.end());
  }
  // ...then its leases, to the next caller of another process.
  for (auto it = leases_.begin(); it != leases_.end();) {
    auto next = std::next(it);
    if (it->second.client_id == client_id) PassOn(it, now, done);
    it = next;
  }
}

std::string LeaseTable::NewToken() {
  std::random_device random;
  return absl::StrFormat("%08x%08x-%d", random(), random(), next_id_++);
}

std::string LeaseTable::GrantTo(Lease& lease, const std::string& client_id,
                                absl::Duration ttl, absl::Time now) {
  lease.token = NewToken();
  lease.client_id = client_id;
  lease.expires_at = now + ttl;
  return lease.token;
}

std::string LeaseTable::Acquire(const Key& key, const std::string& client_id,
                                absl::Duration ttl, absl::Time now,
                                Waiter waiter, uint64_t* waiter_id) {
  auto [it, created] = leases_.try_emplace(key);
  if (created) return GrantTo(it->second, client_id, ttl, now);
  uint64_t id = next_id_++;
  if (waiter_id != nullptr) *waiter_id = id;
  it->second.parked.push_back(Parked{id, client_id, ttl, std::move(waiter)});
  parked_keys_.emplace(id, key);
  return "";
}

void LeaseTable::SetTimer(uint64_t waiter_id, uint64_t timer) {
  auto key = parked_keys_.find(waiter_id);
  if (key == parked_keys_.end()) return;
  for (Parked& parked : leases_[key->second].parked) {
    if (parked.id == waiter_id) parked.timer = timer;
  }
}

bool LeaseTable::Holds(const Key& key, const std::string& token) const {
  auto it = leases_.find(key);
  return it != leases_.end() && it->second.token == token;
}

void LeaseTable::AnswerAll(Leases::iterator it,
                           const absl::StatusOr<CacheGetResult>& result,
                           Completions* done) {
  for (Parked& parked : it->second.parked) {
    parked_keys_.erase(parked.id);
    done->push_back(
        {it->first.first, std::move(parked.waiter), result, parked.timer});
  }
  leases_.erase(it);
}

void LeaseTable::Complete(const Key& key, const CacheGetResult& value,
                          Completions* done) {
  auto it = leases_.find(key);
  if (it != leases_.end()) AnswerAll(it, value, done);
}

void LeaseTable::Fail(const Key& key, const std::string& error,
                      Completions* done) {
  auto it = leases_.find(key);
  if (it == leases_.end()) return;
  CacheGetResult failed;
  failed.load_error = error.empty() ? "the loader failed" : error;
  AnswerAll(it, failed, done);
}

void LeaseTable::PassOn(const Key& key, absl::Time now, Completions* done) {
  auto it = leases_.find(key);
  if (it != leases_.end()) PassOn(it, now, done);
}

void LeaseTable::PassOn(Leases::iterator it, absl::Time now,
                        Completions* done) {
  Lease& lease = it->second;
  if (lease.parked.empty()) {
    leases_.erase(it);
    return;
  }
  Parked next = std::move(lease.parked.front());
  lease.parked.erase(lease.parked.begin());
  parked_keys_.erase(next.id);
  CacheGetResult granted;
  granted.lease_token = GrantTo(lease, next.client_id, next.lease_ttl, now);
  done->push_back(
      {it->first.first, std::move(next.waiter), granted, next.timer});
}

void LeaseTable::PassOnLapsed(absl::Time now, Completions* done) {
  for (auto it = leases_.begin(); it != leases_.end();) {
    auto next = std::next(it);
    if (it->second.expires_at <= now) PassOn(it, now, done);
    it = next;
  }
}

LeaseTable::Waiter LeaseTable::Cancel(uint64_t waiter_id) {
  auto key = parked_keys_.find(waiter_id);
  if (key == parked_keys_.end()) return Waiter();
  std::vector<Parked>& parked = leases_[key->second].parked;
  parked_keys_.erase(key);
  for (auto it = parked.begin(); it != parked.end(); ++it) {
    if (it->id == waiter_id) {
      Waiter waiter = std::move(it->waiter);
      parked.erase(it);
      // A cancelled call with a null waiter still counts as parked.
      return waiter ? waiter : Waiter([](absl::StatusOr<CacheGetResult>) {});
    }
  }
  return Waiter();
}

size_t LeaseTable::ParkedIn(const std::string& ns) const {
  size_t parked = 0;
  for (auto it = leases_.lower_bound(Key{ns, ""});
       it != leases_.end() && it->first.first == ns; ++it) {
    parked += it->second.parked.size();
  }
  return parked;
}

}  // namespace cluster2
