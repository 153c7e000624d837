// The cluster's shared cache, from a worker (or any process): a client of
// cluster2-cache (proto/cluster2/v1/cache.proto) over its Unix socket.
//
//   auto cache = cluster2::CacheClient::Connect();          // $CLUSTER2_CACHE
//   cluster2::CacheNamespaceConfig config;
//   config.expire = absl::Minutes(5);
//   auto users = (*cache)->Use("users", config);
//   auto user = (*users)->GetOrLoad("42", [](const std::string& key) {
//     return LoadUserFromDatabase(key);  // runs in one process per miss
//   });
//
// Every operation comes in two forms: blocking, bounded by `wait` (then
// DEADLINE_EXCEEDED), and asynchronous, with a callback that runs exactly
// once on the client's I/O thread (it must not block), or on the calling
// thread when the near-cache answers. A blocking call made on the I/O
// thread (from a callback) fails at once with FAILED_PRECONDITION instead
// of deadlocking. An asynchronous get-or-load issued while the client's
// Hold stream is not (yet) open waits for it. Namespaces and watches must
// not outlive their client. Get, Set and Delete from all threads of a
// process are gathered into batches on one Pipeline stream while earlier
// ones are in flight, so many concurrent operations cost few round trips;
// an operation started from a callback joins the next batch.
//
// Threads: one per client, "cache-io", which drives every gRPC call of the
// client (the Pipeline, the Hold and every watch) and runs the callbacks.
//
// Get-or-load is single-flight across the cluster: the first caller of a
// missing key gets a lease and runs the loader; every other caller, in any
// process, waits on the server and gets the loaded value. If the loader
// fails, the waiters get its error (or, with `retry_waiters`, the next one
// loads). If the loading process dies, the next waiter loads at once: the
// lease is tied to this client's Hold stream. If the lease is lost while
// loading (the key was deleted, i.e. invalidated, or written by another
// process, or the server restarted), the loaded value is returned to this
// caller but not stored: it may predate the invalidation.
//
// Restarts of the cache server: operations in flight when it dies fail
// with UNAVAILABLE (a write may or may not have been applied); later ones
// wait for it (up to their `wait`), namespaces are Used again, watches
// resume from their last revision (or report kResync if the server no
// longer has it).
//
// Near-cache (CacheNamespaceConfig::near_cache): the namespace's values are
// kept in this process after a read and updated or dropped from a watch of
// the whole namespace, so a hot read costs no round trip. Guarantee:
//   - A near-cached read returns a value the server held at some revision no
//     older than the last change of that key this client has received on
//     its watch; a change made by another process becomes visible here when
//     its watch event arrives (see docs/BENCHMARKS.md for the measured
//     delay), never later than the next read after it arrived.
//   - Read-your-writes: this client's own Set and Delete update the
//     near-cache before they return.
//   - Values past their expiry are never returned.
//   - While the watch is down (server restarting), the near-cache is empty
//     and bypassed: reads go to the server.
// It is not linearizable: two processes may briefly see different values.
//
// Thread-safe.
#ifndef CLUSTER2_CACHE_CLIENT_CACHE_H_
#define CLUSTER2_CACHE_CLIENT_CACHE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace cluster2 {

struct CacheNamespaceConfig {
  // Server side (the first Use of a namespace fixes these).
  bool persist = false;
  absl::Duration expire = absl::ZeroDuration();  // default TTL; 0 = none
  enum class Fsync { kEverySec, kAlways, kNo };
  Fsync fsync = Fsync::kEverySec;
  // Client side: keep read values in this process (see above).
  bool near_cache = false;
  size_t near_cache_max_entries = 100000;
};

struct CacheValue {
  std::string value;
  uint64_t revision = 0;
};

struct CacheSetOptions {
  absl::Duration ttl = absl::ZeroDuration();  // 0 = the namespace's
  // Write only if the key has no value (atomically).
  bool leave_if_not_null = false;
};

struct CacheSetOutcome {
  bool written = false;
  std::string current;  // the value kept when leave_if_not_null found one
  uint64_t revision = 0;
};

struct CacheLoadOptions {
  absl::Duration ttl = absl::ZeroDuration();  // of the loaded value
  // How long a lease lasts if its holder neither sets nor fails.
  absl::Duration lease_ttl = absl::Seconds(30);
  // On a loader error, hand the lease to the next waiter instead of giving
  // the waiters the error.
  bool retry_waiters = false;
};

struct CacheWatchEvent {
  enum class Kind { kSet, kDelete, kExpire, kEvict, kResync };
  Kind kind = Kind::kSet;
  std::string key;
  std::string value;  // kSet
  uint64_t revision = 0;
  int64_t expires_unix_micros = 0;  // kSet; 0 = never
};

struct CacheNamespaceStats {
  std::string name;
  uint64_t hits = 0, misses = 0, loads = 0, errors = 0;
  uint64_t keys = 0, bytes = 0, waiting = 0;
};

// A running watch; destroying it stops it: no event is delivered after the
// destructor returns (it may also be destroyed from its own callback).
class CacheWatch {
 public:
  virtual ~CacheWatch() = default;
  // Blocks until the watch is registered on the server (every change after
  // that is delivered); false if `wait` passes first.
  virtual bool WaitUntilLive(absl::Duration wait) = 0;
  // The revision of the last change delivered.
  virtual uint64_t last_revision() const = 0;
};

class CacheNamespace {
 public:
  template <typename T>
  using Callback = std::function<void(absl::StatusOr<T>)>;
  using Loader = std::function<absl::StatusOr<std::string>(const std::string&)>;
  // Loads `key` and calls `done` with the value or an error, on any thread.
  using AsyncLoader =
      std::function<void(const std::string& key, Callback<std::string> done)>;

  virtual ~CacheNamespace() = default;
  virtual const std::string& name() const = 0;

  // nullopt on a miss.
  virtual absl::StatusOr<std::optional<CacheValue>> Get(
      const std::string& key) = 0;
  virtual void GetAsync(const std::string& key,
                        Callback<std::optional<CacheValue>> done) = 0;

  virtual absl::StatusOr<CacheValue> GetOrLoad(
      const std::string& key, const Loader& loader,
      CacheLoadOptions options = {}) = 0;
  virtual void GetOrLoadAsync(const std::string& key, AsyncLoader loader,
                              Callback<CacheValue> done,
                              CacheLoadOptions options = {}) = 0;

  virtual absl::StatusOr<CacheSetOutcome> Set(const std::string& key,
                                              std::string value,
                                              CacheSetOptions options = {}) = 0;
  virtual void SetAsync(const std::string& key, std::string value,
                        CacheSetOptions options,
                        Callback<CacheSetOutcome> done) = 0;

  // The old value, nullopt if there was none.
  virtual absl::StatusOr<std::optional<std::string>> Delete(
      const std::string& key) = 0;
  virtual void DeleteAsync(const std::string& key,
                           Callback<std::optional<std::string>> done) = 0;

  // Live keys with `prefix`, sorted (all pages).
  virtual absl::StatusOr<std::vector<std::string>> Keys(
      const std::string& prefix = "") = 0;

  // Calls `on_event` (on the client's I/O thread, in revision order; it must
  // not block) for each change of `key` (empty: every key) after
  // `from_revision` (0: from now).
  virtual std::unique_ptr<CacheWatch> Watch(
      const std::string& key,
      std::function<void(const CacheWatchEvent&)> on_event,
      uint64_t from_revision = 0) = 0;

  // Near-cache counters (zero without a near-cache).
  virtual uint64_t near_hits() const = 0;
};

struct CacheClientOptions {
  // "unix:/path"; empty = $CLUSTER2_CACHE (set by the master).
  std::string address;
  // Bound of every blocking call and of each asynchronous one.
  absl::Duration wait = absl::Seconds(10);
  // Batch calls in flight at once; more operations wait to join the next.
  int max_batches_in_flight = 2;
};

class CacheClient {
 public:
  using Options = CacheClientOptions;

  // FAILED_PRECONDITION without an address. Connecting itself is lazy.
  static absl::StatusOr<std::unique_ptr<CacheClient>> Connect(
      Options options = {});
  virtual ~CacheClient() = default;

  // Creates the namespace or joins it. ALREADY_EXISTS if it exists with
  // different server-side options (its message says which).
  virtual absl::StatusOr<std::shared_ptr<CacheNamespace>> Use(
      const std::string& name, CacheNamespaceConfig config = {}) = 0;

  // Per-namespace statistics (empty `name`: all).
  virtual absl::StatusOr<std::vector<CacheNamespaceStats>> Stats(
      const std::string& name = "") = 0;

  // This process's id for its leases.
  virtual const std::string& client_id() const = 0;
};

}  // namespace cluster2

#endif  // CLUSTER2_CACHE_CLIENT_CACHE_H_
