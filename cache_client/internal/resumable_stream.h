// ResumableStream: a server-streaming call (Watch, Hold) kept open on the
// IoLoop: when it ends (the server restarted, a keepalive ping went
// unanswered, the server ended a slow consumer), the next call starts after
// a short pause, from wherever the owner's `open` says. The one reconnect
// loop of the client.
//
// Loop thread only. Handlers run on the loop thread.
#ifndef CLUSTER2_CACHE_CLIENT_INTERNAL_RESUMABLE_STREAM_H_
#define CLUSTER2_CACHE_CLIENT_INTERNAL_RESUMABLE_STREAM_H_

#include <functional>
#include <memory>
#include <utility>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/io_loop.h"
#include "grpcpp/grpcpp.h"

namespace cluster2::cache_internal {

template <typename Message>
class ResumableStream {
 public:
  using Reader = grpc::ClientAsyncReader<Message>;
  struct Handlers {
    // Prepares the next call (its request from the current resume point).
    std::function<std::unique_ptr<Reader>(grpc::ClientContext*,
                                          grpc::CompletionQueue*)>
        open;
    // The server's initial metadata arrived (optional); true if it says
    // the call is live (as a message does).
    std::function<bool(const grpc::ClientContext&)> on_metadata;
    // A message arrived.
    std::function<void(const Message&)> on_message;
    // The call ended with `status`; the next starts after the pause unless
    // the stream is stopped (optional).
    std::function<void(const grpc::Status&)> on_end;
  };

  // Pause before the next call after one that was live, and after one
  // that was not (so that a persistent error cannot spin).
  static constexpr absl::Duration kPauseAfterLive = absl::Milliseconds(10);
  static constexpr absl::Duration kPauseAfterFailure = absl::Milliseconds(100);

  ResumableStream(IoLoop& loop, Handlers handlers)
      : loop_(loop),
        handlers_(std::move(handlers)),
        start_(loop, [this](bool ok) { OnStarted(ok); }),
        metadata_(loop, [this](bool ok) { OnMetadata(ok); }),
        read_(loop, [this](bool ok) { OnRead(ok); }),
        finish_(loop, [this](bool) { OnFinished(); }),
        pause_(loop, [this](bool fired) {
          --outstanding_;
          if (fired && !stopping_) Open();
          Returned();
        }) {}
  ResumableStream(const ResumableStream&) = delete;
  ResumableStream& operator=(const ResumableStream&) = delete;

  void Start() { Open(); }

  // Ends the current call; no handler runs after this. `stopped` runs on
  // the loop once every operation is back; then the stream may be freed.
  void Stop(std::function<void()> stopped) {
    stopping_ = true;
    stopped_ = std::move(stopped);
    if (call_ != nullptr) context_->TryCancel();
    pause_.Cancel();
    Returned();
  }

 private:
  void* Arm(IoLoop::Tag& tag) {
    ++outstanding_;
    return tag.Arm();
  }

  void Open() {
    delivered_ = false;
    context_ = std::make_unique<grpc::ClientContext>();
    context_->set_wait_for_ready(true);  // rides out a server restart
    call_ = handlers_.open(context_.get(), loop_.cq());
    call_->StartCall(Arm(start_));
  }

  void OnStarted(bool ok) {
    --outstanding_;
    if (ok && !stopping_) {
      call_->ReadInitialMetadata(Arm(metadata_));
    } else {
      call_->Finish(&status_, Arm(finish_));
    }
  }

  void OnMetadata(bool ok) {
    --outstanding_;
    if (ok && !stopping_) {
      if (handlers_.on_metadata && handlers_.on_metadata(*context_))
        delivered_ = true;
      call_->Read(&message_, Arm(read_));
    } else {
      call_->Finish(&status_, Arm(finish_));
    }
  }

  void OnRead(bool ok) {
    --outstanding_;
    if (ok && !stopping_) {
      delivered_ = true;
      handlers_.on_message(message_);
      message_.Clear();
      call_->Read(&message_, Arm(read_));
    } else {
      call_->Finish(&status_, Arm(finish_));
    }
  }

  void OnFinished() {
    --outstanding_;
    call_.reset();
    if (!stopping_) {
      if (handlers_.on_end) handlers_.on_end(status_);
      // on_end may have stopped the stream.
      if (!stopping_) {
        pause_.Set(absl::Now() +
                   (delivered_ ? kPauseAfterLive : kPauseAfterFailure));
        ++outstanding_;
      }
    }
    Returned();
  }

  void Returned() {
    if (!stopping_ || outstanding_ > 0 || stopped_ == nullptr) return;
    // After the running handler (a member of this stream) returns.
    loop_.Post(std::move(stopped_));
    stopped_ = nullptr;
  }

  IoLoop& loop_;
  const Handlers handlers_;
  IoLoop::Tag start_, metadata_, read_, finish_;
  IoLoop::Timer pause_;
  std::unique_ptr<grpc::ClientContext> context_;
  std::unique_ptr<Reader> call_;
  Message message_;
  grpc::Status status_;
  bool delivered_ = false;
  bool stopping_ = false;
  int outstanding_ = 0;  // operations and the pause under way
  std::function<void()> stopped_;
};

}  // namespace cluster2::cache_internal

#endif  // CLUSTER2_CACHE_CLIENT_INTERNAL_RESUMABLE_STREAM_H_
