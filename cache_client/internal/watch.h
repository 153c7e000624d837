// WatchStream: one Watch of a namespace (or one key of it) kept open on the
// IoLoop through a ResumableStream, resumed after a break from the last
// revision delivered (or reported kResync when the server no longer has
// it). Delivers CacheWatchEvents to its owner's callback, on the loop.
//
// Thread-safe: WaitUntilLive and last_revision from any thread; Start and
// Stop on the loop thread.
#ifndef CLUSTER2_CACHE_CLIENT_INTERNAL_WATCH_H_
#define CLUSTER2_CACHE_CLIENT_INTERNAL_WATCH_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "cache_client/cache.h"
#include "cache_client/internal/resumable_stream.h"
#include "cluster2/v1/cache.grpc.pb.h"
#include "common/io_loop.h"

namespace cluster2::cache_internal {

class WatchStream {
 public:
  struct Options {
    std::string ns;
    std::string key;  // empty: the whole namespace
    uint64_t from_revision = 0;
    std::function<void(const CacheWatchEvent&)> on_event;
    // Told when the watch becomes live and when it breaks (optional).
    std::function<void(bool live)> on_live;
    // The namespace is gone (the server restarted without it): Use it
    // again; the watch retries after its pause.
    std::function<void()> on_namespace_lost;
  };

  // `loop` and `stub` are borrowed.
  WatchStream(IoLoop& loop, v1::Cache::Stub& stub, Options options);

  void Start() { stream_.Start(); }
  // See ResumableStream::Stop: no event is delivered after it.
  void Stop(std::function<void()> stopped) { stream_.Stop(std::move(stopped)); }

  // True once the watch is registered on the server (every change after
  // that is delivered); false if `wait` passes first.
  bool WaitUntilLive(absl::Duration wait);
  uint64_t last_revision() const { return last_.load(); }

 private:
  bool OnMetadata(const grpc::ClientContext& context);
  void OnMessage(const v1::WatchEvent& event);
  void OnEnd(const grpc::Status& status);
  void SetLive(bool live);

  const Options options_;
  std::atomic<uint64_t> last_;
  bool was_live_ = false;  // loop thread
  absl::Mutex mu_;
  bool live_ ABSL_GUARDED_BY(mu_) = false;
  ResumableStream<v1::WatchEvent> stream_;
};

}  // namespace cluster2::cache_internal

#endif  // CLUSTER2_CACHE_CLIENT_INTERNAL_WATCH_H_
