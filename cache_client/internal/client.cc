#include "cache_client/internal/client.h"

#include <unistd.h>

#include <algorithm>
#include <map>
#include <random>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "cache_client/internal/errors.h"
#include "cache_client/internal/namespace.h"
#include "common/keepalive.h"
#include "common/proto_time.h"

namespace cluster2::cache_internal {
namespace {

std::shared_ptr<grpc::Channel> NewChannel(const std::string& address) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(-1);
  args.SetMaxSendMessageSize(-1);
  // Reconnect quickly after a restart of the server (it is local).
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 50);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 50);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 500);
  SetClientKeepalive(&args);  // a frozen server ends the watch streams
  return grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(),
                                   args);
}

// One channel per address for the whole process, never destroyed. gRPC
// 1.51 tears down a thread pool when the last channel using it goes; if
// that happens on one of its own threads (the last reference dropped by a
// callback), it crashes (grpc/grpc#32584: "ref_counted.h: assertion failed:
// prior > 0" when clients came and went). Clients of one process share the
// connection, which is also what they should do.
std::shared_ptr<grpc::Channel> SharedChannel(const std::string& address) {
  static absl::Mutex mu;
  static auto* channels =
      new std::map<std::string, std::shared_ptr<grpc::Channel>>();
  absl::MutexLock lock(&mu);
  std::shared_ptr<grpc::Channel>& channel = (*channels)[address];
  if (channel == nullptr) channel = NewChannel(address);
  return channel;
}

std::string NewClientId() {
  std::random_device random;
  return absl::StrFormat("%d-%08x%08x", getpid(), random(), random());
}

v1::NamespaceOptions OptionsProto(const CacheNamespaceConfig& config) {
  v1::NamespaceOptions options;
  options.set_persist(config.persist);
  ToProto(config.expire, options.mutable_expire());
  switch (config.fsync) {
    case CacheNamespaceConfig::Fsync::kAlways:
      options.set_fsync(v1::NamespaceOptions::FSYNC_ALWAYS);
      break;
    case CacheNamespaceConfig::Fsync::kNo:
      options.set_fsync(v1::NamespaceOptions::FSYNC_NO);
      break;
    case CacheNamespaceConfig::Fsync::kEverySec:
      options.set_fsync(v1::NamespaceOptions::FSYNC_EVERYSEC);
      break;
  }
  return options;
}

void Prepare(grpc::ClientContext* context, absl::Time deadline) {
  context->set_wait_for_ready(true);
  context->set_deadline(absl::ToChronoTime(deadline));
}

// What a user holds of a watch: stopping it is the client's business.
class WatchHandle final : public CacheWatch {
 public:
  WatchHandle(ClientImpl& client, WatchStream& stream)
      : client_(client), stream_(stream) {}
  ~WatchHandle() override { client_.StopWatch(&stream_); }
  bool WaitUntilLive(absl::Duration wait) override {
    return stream_.WaitUntilLive(wait);
  }
  uint64_t last_revision() const override { return stream_.last_revision(); }

 private:
  ClientImpl& client_;
  WatchStream& stream_;  // alive until StopWatch
};

}  // namespace

ClientImpl::ClientImpl(CacheClientOptions options)
    : options_(std::move(options)),
      client_id_(NewClientId()),
      channel_(SharedChannel(options_.address)),
      stub_(v1::Cache::NewStub(channel_)),
      loop_("cache-io"),
      unary_(loop_),
      batcher_(loop_, *stub_, unary_, options_.max_batches_in_flight),
      hold_(loop_,
            {[this](grpc::ClientContext* context, grpc::CompletionQueue* cq) {
               v1::HoldRequest request;
               request.set_client_id(client_id_);
               return stub_->PrepareAsyncHold(context, request, cq);
             },
             nullptr,
             // The one message: the client_id is registered.
             [this](const v1::HoldEvent&) { OnHoldLive(true); },
             [this](const grpc::Status&) { OnHoldLive(false); }}),
      hold_timer_(loop_, [this](bool fired) {
        if (fired) ExpireHoldWaiters();
      }) {
  loop_.Post([this] { hold_.Start(); });
}

ClientImpl::~ClientImpl() {
  {
    absl::MutexLock lock(&mu_);
    auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return loaders_ == 0;
    };
    mu_.Await(absl::Condition(&idle));
  }
  loop_.RunAndWait([this] {
    stopping_ = true;
    batcher_.Stop();
    hold_.Stop([] {});
    hold_timer_.Cancel();
    for (auto& [raw, watch] : watches_) {
      raw->Stop([this, raw = raw] { watches_.erase(raw); });
    }
    unary_.CancelAll();
    std::vector<HoldWaiter> orphans;
    orphans.swap(hold_waiters_);
    for (HoldWaiter& waiter : orphans)
      waiter.then(absl::CancelledError("the cache client is closing"));
  });
  loop_.WaitIdle();
}

absl::Status ClientImpl::CheckMayBlock() const {
  if (loop_.InLoop()) {
    return absl::FailedPreconditionError(
        "a blocking cache call on the cache client's I/O thread (from a "
        "callback) would deadlock: use the asynchronous form");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<CacheNamespace>> ClientImpl::Use(
    const std::string& name, CacheNamespaceConfig config) {
  if (absl::Status status = CheckMayBlock(); !status.ok()) return status;
  v1::UseRequest request;
  request.set_namespace_(name);
  *request.mutable_options() = OptionsProto(config);
  v1::UseResponse response;
  grpc::ClientContext context;
  Prepare(&context, Deadline());
  grpc::Status status = stub_->Use(&context, request, &response);
  if (!status.ok()) return StatusOfCall(status, context);
  if (response.conflict()) {
    return absl::AlreadyExistsError(
        absl::StrCat("namespace '", name, "' exists with other options: ",
                     response.options().ShortDebugString()));
  }
  auto space = std::make_shared<NamespaceImpl>(*this, name, config);
  if (config.near_cache && !space->StartNearCache(options_.wait)) {
    return absl::DeadlineExceededError(
        "the near-cache's watch did not start within the wait");
  }
  return space;
}

absl::StatusOr<std::vector<CacheNamespaceStats>> ClientImpl::Stats(
    const std::string& name) {
  if (absl::Status status = CheckMayBlock(); !status.ok()) return status;
  v1::StatsRequest request;
  request.set_namespace_(name);
  v1::StatsResponse response;
  grpc::ClientContext context;
  Prepare(&context, Deadline());
  grpc::Status status = stub_->Stats(&context, request, &response);
  if (!status.ok()) return StatusOfCall(status, context);
  std::vector<CacheNamespaceStats> stats;
  for (const v1::NamespaceStats& s : response.namespaces()) {
    stats.push_back({s.namespace_(), s.hits(), s.misses(), s.loads(),
                     s.errors(), s.keys(), s.bytes(), s.waiting()});
  }
  return stats;
}

void ClientImpl::UseAgain(const std::string& name,
                          const CacheNamespaceConfig& config,
                          std::function<void(absl::Status)> done) {
  v1::UseRequest request;
  request.set_namespace_(name);
  *request.mutable_options() = OptionsProto(config);
  unary_.Start<v1::UseResponse>(
      Deadline(),
      [this, request](grpc::ClientContext* context, grpc::CompletionQueue* cq) {
        return stub_->PrepareAsyncUse(context, request, cq);
      },
      [done = std::move(done)](absl::Status status, v1::UseResponse*) {
        done(std::move(status));
      });
}

absl::Status ClientImpl::UseAgainAndWait(const std::string& name,
                                         const CacheNamespaceConfig& config) {
  v1::UseRequest request;
  request.set_namespace_(name);
  *request.mutable_options() = OptionsProto(config);
  v1::UseResponse response;
  grpc::ClientContext context;
  Prepare(&context, Deadline());
  grpc::Status status = stub_->Use(&context, request, &response);
  return StatusOfCall(status, context);
}

bool ClientImpl::WaitForHold(absl::Time deadline) {
  absl::MutexLock lock(&mu_);
  return mu_.AwaitWithDeadline(absl::Condition(&hold_live_), deadline);
}

void ClientImpl::WhenHoldLive(absl::Time deadline,
                              std::function<void(absl::Status)> then) {
  if (stopping_) {
    then(absl::CancelledError("the cache client is closing"));
    return;
  }
  bool live;
  {
    absl::MutexLock lock(&mu_);
    live = hold_live_;  // written on this thread only: still true below
  }
  if (live) {
    then(absl::OkStatus());
    return;
  }
  hold_waiters_.push_back(HoldWaiter{deadline, std::move(then)});
  if (!hold_timer_.set()) hold_timer_.Set(deadline);
}

void ClientImpl::OnHoldLive(bool live) {
  {
    absl::MutexLock lock(&mu_);
    hold_live_ = live;
  }
  if (!live) return;
  std::vector<HoldWaiter> ready;
  ready.swap(hold_waiters_);
  hold_timer_.Cancel();
  for (HoldWaiter& waiter : ready) waiter.then(absl::OkStatus());
}

void ClientImpl::ExpireHoldWaiters() {
  absl::Time now = absl::Now();
  auto late = std::partition(
      hold_waiters_.begin(), hold_waiters_.end(),
      [now](const HoldWaiter& waiter) { return waiter.deadline > now; });
  std::vector<HoldWaiter> expired;
  std::move(late, hold_waiters_.end(), std::back_inserter(expired));
  hold_waiters_.erase(late, hold_waiters_.end());
  if (!hold_waiters_.empty() && !stopping_) {
    absl::Time next = absl::InfiniteFuture();
    for (const HoldWaiter& waiter : hold_waiters_)
      next = std::min(next, waiter.deadline);
    hold_timer_.Set(next);
  }
  for (HoldWaiter& waiter : expired) {
    waiter.then(absl::DeadlineExceededError(
        "no Hold stream to the cache server within the wait (is it up?)"));
  }
}

void ClientImpl::Track(int delta) {
  absl::MutexLock lock(&mu_);
  loaders_ += delta;
}

std::unique_ptr<CacheWatch> ClientImpl::StartWatch(
    WatchStream::Options options) {
  auto watch = std::make_unique<WatchStream>(loop_, *stub_, std::move(options));
  WatchStream& stream = *watch;
  loop_.RunAndWait([&] {
    watches_.emplace(&stream, std::move(watch));
    stream.Start();
  });
  return std::make_unique<WatchHandle>(*this, stream);
}

void ClientImpl::StopWatch(WatchStream* watch) {
  loop_.RunAndWait([this, watch] {
    if (watches_.count(watch) == 0) return;  // the client stopped it
    watch->Stop([this, watch] { watches_.erase(watch); });
  });
}

}  // namespace cluster2::cache_internal
