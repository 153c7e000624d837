// LeaseTable: the single-flight part of get-or-load. Who may load a missing
// key (its lease: a token, a holder and a TTL), which calls are parked
// waiting for that key, and which client processes are alive (their Hold).
//
//   Acquire on a key without a lease grants the caller one; later callers
//   are parked with a Waiter. The key being set (Complete) answers every
//   parked call with the value; a failed load (Fail) answers them with its
//   error; PassOn gives the lease to the next parked call of another
//   process, at once. EndHold (the client's Hold stream ended) tells that
//   client's parked calls HOLD_LOST, then passes each of its leases on.
//
// A waiter is never called by the table: every change returns the calls to
// make as Completions, which the owner runs once its lock is released.
//
// Thread-compatible: the owner (CacheStore) guards it with its lock.
#ifndef CLUSTER2_CACHE_SERVER_INTERNAL_LEASE_TABLE_H_
#define CLUSTER2_CACHE_SERVER_INTERNAL_LEASE_TABLE_H_

#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "cache_server/internal/cache_types.h"

namespace cluster2 {

class LeaseTable {
 public:
  // A parked call's answer: a value, a load error, a lease of its own, or
  // an error status (HOLD_LOST, WAIT_EXPIRED). Called exactly once, unless
  // the call is cancelled first.
  using Waiter = std::function<void(absl::StatusOr<CacheGetResult> result)>;
  // A waiter call to make once the owner's lock is released.
  struct Completion {
    std::string ns;  // for the owner's counters
    Waiter waiter;
    absl::StatusOr<CacheGetResult> result;
    uint64_t timer = 0;  // the parked call's deadline timer, to cancel
  };
  using Completions = std::vector<Completion>;
  // A key of a namespace.
  using Key = std::pair<std::string, std::string>;

  // Registers the live Hold of `client_id`. INVALID_ARGUMENT if empty,
  // ALREADY_EXISTS (HOLD_IN_USE) if it is already held.
  absl::Status OpenHold(const std::string& client_id);
  bool HoldLive(const std::string& client_id) const;
  // The Hold of `client_id` ended: its parked calls get HOLD_LOST, then each
  // of its leases passes to the next parked call of another process.
  void EndHold(const std::string& client_id, absl::Time now, Completions* done);

  // On a key without a lease: grants `client_id` a lease for `ttl` and
  // returns its token. Otherwise parks `waiter`, returns "" and sets
  // `*waiter_id` (never 0).
  std::string Acquire(const Key& key, const std::string& client_id,
                      absl::Duration ttl, absl::Time now, Waiter waiter,
                      uint64_t* waiter_id);
  // Sets the deadline timer of a parked call (kept for its Completion).
  void SetTimer(uint64_t waiter_id, uint64_t timer);
  // Whether `token` holds the lease of `key`.
  bool Holds(const Key& key, const std::string& token) const;

  // `key` got a value: every parked call gets `value`; the lease ends.
  void Complete(const Key& key, const CacheGetResult& value, Completions* done);
  // The load failed: every parked call gets `error` as its load_error; the
  // lease ends.
  void Fail(const Key& key, const std::string& error, Completions* done);
  // The next parked call gets a fresh lease, or the lease ends if none.
  void PassOn(const Key& key, absl::Time now, Completions* done);
  // Passes on every lease whose TTL ran out by `now`.
  void PassOnLapsed(absl::Time now, Completions* done);

  // Takes a parked call out (it gave up). Returns its waiter, or an empty
  // function if it is no longer parked (its answer is on its way).
  Waiter Cancel(uint64_t waiter_id);

  // Calls parked on the leases of namespace `ns`.
  size_t ParkedIn(const std::string& ns) const;
  // Leases held right now.
  size_t size() const { return leases_.size(); }

 private:
  struct Parked {
    uint64_t id = 0;
    std::string client_id;
    absl::Duration lease_ttl;
    Waiter waiter;
    uint64_t timer = 0;
  };
  struct Lease {
    std::string token;
    std::string client_id;
    absl::Time expires_at;
    std::vector<Parked> parked;
  };
  using Leases = std::map<Key, Lease>;

  std::string NewToken();
  // Grants `lease` to `client_id`; returns the new token.
  std::string GrantTo(Lease& lease, const std::string& client_id,
                      absl::Duration ttl, absl::Time now);
  void PassOn(Leases::iterator it, absl::Time now, Completions* done);
  // Every parked call of `it` gets `result`; the lease ends.
  void AnswerAll(Leases::iterator it,
                 const absl::StatusOr<CacheGetResult>& result,
                 Completions* done);

  std::set<std::string> holds_;  // live Hold client ids
  Leases leases_;
  std::map<uint64_t, Key> parked_keys_;  // waiter id -> its lease
  uint64_t next_id_ = 1;
};

}  // namespace cluster2

#endif  // CLUSTER2_CACHE_SERVER_INTERNAL_LEASE_TABLE_H_
