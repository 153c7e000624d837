// UnaryCalls: unary calls started on the IoLoop, each owned here from its
// start to its completion, so that a closing client can cancel them all.
//
// Loop thread only.
#ifndef CLUSTER2_CACHE_CLIENT_INTERNAL_UNARY_CALLS_H_
#define CLUSTER2_CACHE_CLIENT_INTERNAL_UNARY_CALLS_H_

#include <functional>
#include <memory>
#include <unordered_map>
#include <utility>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "cache_client/internal/errors.h"
#include "common/io_loop.h"
#include "grpcpp/grpcpp.h"

namespace cluster2::cache_internal {

class UnaryCalls {
 public:
  template <typename Response>
  using Reader = grpc::ClientAsyncResponseReader<Response>;
  // Prepares the call (e.g. stub.PrepareAsyncGet(context, request, cq)).
  template <typename Response>
  using Prepare = std::function<std::unique_ptr<Reader<Response>>(
      grpc::ClientContext*, grpc::CompletionQueue*)>;
  template <typename Response>
  using Done = std::function<void(absl::Status, Response*)>;

  explicit UnaryCalls(IoLoop& loop) : loop_(loop) {}

  // Starts a call bounded by `deadline` (waiting for the server if it is
  // restarting); `done` runs on the loop with its status and response.
  // After CancelAll, fails at once with CANCELLED.
  template <typename Response>
  void Start(absl::Time deadline, Prepare<Response> prepare,
             Done<Response> done) {
    if (closed_) {
      done(absl::CancelledError("the cache client is closing"), nullptr);
      return;
    }
    auto call = std::make_unique<Call<Response>>(loop_);
    Call<Response>* raw = call.get();
    raw->context.set_wait_for_ready(true);
    raw->context.set_deadline(absl::ToChronoTime(deadline));
    raw->done = std::move(done);
    raw->ended = [this, raw] { Ended(raw); };
    raw->reader = prepare(&raw->context, loop_.cq());
    raw->reader->StartCall();
    raw->reader->Finish(&raw->response, &raw->status, raw->tag.Arm());
    calls_.emplace(raw, std::move(call));
  }

  // Cancels every call under way (their `done` get CANCELLED).
  void CancelAll() {
    closed_ = true;
    for (auto& [raw, call] : calls_) call->context.TryCancel();
  }

 private:
  struct CallBase {
    virtual ~CallBase() = default;
    grpc::ClientContext context;
  };
  template <typename Response>
  struct Call final : CallBase {
    explicit Call(IoLoop& loop)
        : tag(loop, [this](bool) {
            done(StatusOfCall(status, context), &response);
            ended();
          }) {}
    IoLoop::Tag tag;
    Response response;
    grpc::Status status;
    std::unique_ptr<Reader<Response>> reader;
    Done<Response> done;
    std::function<void()> ended;
  };

  void Ended(CallBase* call) {
    // After the tag's handler has returned.
    loop_.Post([this, call] { calls_.erase(call); });
  }

  IoLoop& loop_;
  bool closed_ = false;
  std::unordered_map<CallBase*, std::unique_ptr<CallBase>> calls_;
};

}  // namespace cluster2::cache_internal

#endif  // CLUSTER2_CACHE_CLIENT_INTERNAL_UNARY_CALLS_H_
