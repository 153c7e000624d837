#include "cache_client/internal/watch.h"

#include <algorithm>
#include <utility>

namespace cluster2::cache_internal {
namespace {

// Initial metadata the server sends once the watch is registered.
constexpr char kWatchLiveKey[] = "cluster2-watch";

}  // namespace

WatchStream::WatchStream(IoLoop& loop, v1::Cache::Stub& stub, Options options)
    : options_(std::move(options)),
      last_(options_.from_revision),
      stream_(loop, {[this, &stub](grpc::ClientContext* context,
                                   grpc::CompletionQueue* cq) {
                       v1::WatchRequest request;
                       request.set_namespace_(options_.ns);
                       request.set_key(options_.key);
                       request.set_from_revision(last_.load());
                       return stub.PrepareAsyncWatch(context, request, cq);
                     },
                     [this](const grpc::ClientContext& context) {
                       return OnMetadata(context);
                     },
                     [this](const v1::WatchEvent& event) { OnMessage(event); },
                     [this](const grpc::Status& status) { OnEnd(status); }}) {}

bool WatchStream::WaitUntilLive(absl::Duration wait) {
  absl::MutexLock lock(&mu_);
  return mu_.AwaitWithTimeout(absl::Condition(&live_), wait);
}

bool WatchStream::OnMetadata(const grpc::ClientContext& context) {
  bool live = context.GetServerInitialMetadata().count(kWatchLiveKey) > 0;
  if (!live) return false;
  SetLive(true);
  // Resumed from nothing after a break: changes may have been missed.
  if (was_live_ && last_.load() == 0) {
    CacheWatchEvent resync;
    resync.kind = CacheWatchEvent::Kind::kResync;
    options_.on_event(resync);
  }
  was_live_ = true;
  return true;
}

void WatchStream::OnMessage(const v1::WatchEvent& event) {
  CacheWatchEvent change;
  if (event.resync()) {
    change.kind = CacheWatchEvent::Kind::kResync;
  } else {
    change.kind = static_cast<CacheWatchEvent::Kind>(
        std::max(0, static_cast<int>(event.kind()) - 1));
    change.key = event.key();
    change.value = event.value();
    change.revision = event.revision();
    change.expires_unix_micros = event.expires_unix_micros();
    last_.store(event.revision());
  }
  options_.on_event(change);
}

void WatchStream::OnEnd(const grpc::Status& status) {
  bool was_live;
  {
    absl::MutexLock lock(&mu_);
    was_live = live_;
  }
  if (was_live) SetLive(false);
  if (status.error_code() == grpc::StatusCode::NOT_FOUND &&
      options_.on_namespace_lost) {
    options_.on_namespace_lost();
  }
}

void WatchStream::SetLive(bool live) {
  // The owner hears it first: a caller woken by WaitUntilLive must find
  // it (e.g. the near-cache) live already, or its first read is not kept.
  if (options_.on_live) options_.on_live(live);
  absl::MutexLock lock(&mu_);
  live_ = live;
}

}  // namespace cluster2::cache_internal
