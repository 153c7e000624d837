#include "cache_client/internal/batcher.h"

#include <algorithm>
#include <utility>

#include "absl/time/clock.h"
#include "cache_client/internal/errors.h"

namespace cluster2::cache_internal {

// One Pipeline call and the tags of its operations. It is freed once its
// stream has ended and every operation started on it is back.
struct Batcher::Stream {
  explicit Stream(Batcher* owner)
      : start(owner->loop_,
              [owner, this](bool ok) { owner->OnStarted(this, ok); }),
        read(owner->loop_, [owner, this](bool ok) { owner->OnRead(this, ok); }),
        write(owner->loop_,
              [owner, this](bool ok) { owner->OnWritten(this, ok); }),
        finish(owner->loop_, [owner, this](bool) { owner->OnFinished(this); }) {
  }
  void* Arm(IoLoop::Tag& tag) {
    ++outstanding;
    return tag.Arm();
  }
  // The stream failed (or its start did): collect its status.
  void Finish() { call->Finish(&status, Arm(finish)); }

  grpc::ClientContext context;
  std::unique_ptr<
      grpc::ClientAsyncReaderWriter<v1::BatchRequest, v1::BatchResponse>>
      call;
  v1::BatchResponse response;
  grpc::Status status;
  IoLoop::Tag start, read, write, finish;
  bool started = false;
  bool writing = false;
  bool finished = false;
  int outstanding = 0;
};

Batcher::Batcher(IoLoop& loop, v1::Cache::Stub& stub, UnaryCalls& unary,
                 int max_in_flight)
    : loop_(loop),
      stub_(stub),
      unary_(unary),
      max_in_flight_(std::max(1, max_in_flight)),
      watchdog_(loop, [this](bool fired) {
        if (!fired) return;
        if (!sent_.empty() && sent_.front().deadline <= absl::Now() &&
            stream_ != nullptr && !timed_out_) {
          timed_out_ = true;
          stream_->context.TryCancel();
        }
        ArmWatchdog();
      }) {}

Batcher::~Batcher() = default;

void Batcher::Submit(Op op, absl::Time deadline, OpDone done) {
  if (op.ByteSizeLong() > kMaxBatchBytes) {
    loop_.Post(
        [this, op = std::move(op), deadline, done = std::move(done)]() mutable {
          SubmitAlone(std::move(op), deadline, std::move(done));
        });
    return;
  }
  bool wake = false;
  {
    absl::MutexLock lock(&mu_);
    if (!stopped_) {
      queue_.push_back(Pending{std::move(op), deadline, std::move(done)});
      wake = !flush_due_;
      flush_due_ = true;
      done = nullptr;
    }
  }
  if (done != nullptr) {
    done(absl::CancelledError("the cache client is closing"), nullptr, &op);
    return;
  }
  if (wake) loop_.Post([this] { Flush(); });
}

void Batcher::Stop() {
  std::deque<Pending> orphans;
  {
    absl::MutexLock lock(&mu_);
    stopped_ = true;
    orphans.swap(queue_);
  }
  if (stream_ != nullptr) stream_->context.TryCancel();
  watchdog_.Cancel();
  for (Pending& pending : orphans) {
    pending.done(absl::CancelledError("the cache client is closing"), nullptr,
                 &pending.op);
  }
}

uint64_t Batcher::batches_sent() const {
  absl::MutexLock lock(&mu_);
  return batches_sent_;
}

void Batcher::Flush() {
  {
    absl::MutexLock lock(&mu_);
    if (stopped_) return;
    while (!queue_.empty() && sent_.size() < max_in_flight_) {
      Sent sent;
      sent.request = std::make_unique<v1::BatchRequest>();
      sent.request->set_id(next_id_++);
      sent.deadline = absl::InfiniteFuture();
      size_t bytes = 0;
      while (!queue_.empty() && sent.dones.size() < kMaxOpsPerBatch &&
             bytes < kMaxBatchBytes) {
        Pending& next = queue_.front();
        bytes += next.op.ByteSizeLong();
        sent.deadline = std::min(sent.deadline, next.deadline);
        *sent.request->add_ops() = std::move(next.op);
        sent.dones.push_back(std::move(next.done));
        queue_.pop_front();
      }
      sent_.push_back(std::move(sent));
      ++batches_sent_;
    }
    // With every batch in flight, the next answer flushes what queues
    // meanwhile; with room left, the next Submit wakes the loop.
    flush_due_ = sent_.size() >= max_in_flight_;
  }
  if (sent_.empty()) return;
  if (stream_ == nullptr) OpenStream();
  WriteNext();
  ArmWatchdog();
}

void Batcher::OpenStream() {
  stream_ = std::make_unique<Stream>(this);
  stream_->context.set_wait_for_ready(true);  // rides out a server restart
  stream_->call = stub_.PrepareAsyncPipeline(&stream_->context, loop_.cq());
  stream_->call->StartCall(stream_->Arm(stream_->start));
}

void Batcher::WriteNext() {
  Stream* stream = stream_.get();
  if (stream == nullptr || !stream->started || stream->writing ||
      written_ >= sent_.size()) {
    return;
  }
  stream->writing = true;
  // Write serializes the request at once: the batch may be answered (and
  // freed) before the write's tag comes back.
  stream->call->Write(*sent_[written_].request, stream->Arm(stream->write));
  ++written_;
}

void Batcher::OnStarted(Stream* stream, bool ok) {
  --stream->outstanding;
  if (!ok) {
    stream->Finish();
  } else {
    stream->started = true;
    stream->call->Read(&stream->response, stream->Arm(stream->read));
    if (stream == stream_.get()) WriteNext();
  }
  Returned(stream);
}

void Batcher::OnRead(Stream* stream, bool ok) {
  --stream->outstanding;
  if (!ok) {
    stream->Finish();
    return;
  }
  if (stream != stream_.get() || sent_.empty() || written_ == 0) {
    stream->context.TryCancel();  // an answer to nothing: start over
    stream->Finish();
    return;
  }
  Sent sent = std::move(sent_.front());
  sent_.pop_front();
  --written_;
  const v1::BatchResponse& response = stream->response;
  for (size_t i = 0; i < sent.dones.size(); ++i) {
    int index = static_cast<int>(i);
    Op* op = sent.request->mutable_ops(index);
    if (response.id() != sent.request->id() ||
        index >= response.results_size()) {
      sent.dones[i](absl::InternalError("the cache answered out of order"),
                    nullptr, op);
      continue;
    }
    const Result& result = response.results(index);
    sent.dones[i](StatusOfResult(result), &result, op);
  }
  stream->response.Clear();
  stream->call->Read(&stream->response, stream->Arm(stream->read));
  // Operations submitted meanwhile (by the callbacks above too) leave now.
  Flush();
}

void Batcher::OnWritten(Stream* stream, bool ok) {
  --stream->outstanding;
  stream->writing = false;
  if (stream == stream_.get()) {
    if (ok) {
      WriteNext();
    } else {
      stream->context.TryCancel();  // the read fails too, then Finish
    }
  }
  Returned(stream);
}

void Batcher::OnFinished(Stream* stream) {
  --stream->outstanding;
  stream->finished = true;
  if (stream == stream_.get()) {
    bool stopped;
    {
      absl::MutexLock lock(&mu_);
      stopped = stopped_;
    }
    absl::Status status =
        stopped      ? absl::CancelledError("the cache client is closing")
        : timed_out_ ? absl::DeadlineExceededError(
                           "the cache server did not answer in time")
                     : absl::UnavailableError(
                           "the connection to the cache server broke (did it "
                           "restart?)");
    std::deque<Sent> failed;
    failed.swap(sent_);
    written_ = 0;
    timed_out_ = false;
    ended_.push_back(std::move(stream_));
    for (Sent& sent : failed) {
      for (size_t i = 0; i < sent.dones.size(); ++i) {
        sent.dones[i](status, nullptr,
                      sent.request->mutable_ops(static_cast<int>(i)));
      }
    }
    Flush();  // what queued meanwhile gets a new stream
  }
  Returned(stream);
}

void Batcher::Returned(Stream* stream) {
  if (!stream->finished || stream->outstanding > 0) return;
  // Freed after the running tag handler (a member of the stream) returns.
  loop_.Post([this, stream] {
    ended_.erase(std::remove_if(ended_.begin(), ended_.end(),
                                [stream](const std::unique_ptr<Stream>& s) {
                                  return s.get() == stream;
                                }),
                 ended_.end());
  });
}

void Batcher::ArmWatchdog() {
  if (sent_.empty() || watchdog_.set()) return;
  {
    absl::MutexLock lock(&mu_);
    if (stopped_) return;
  }
  watchdog_.Set(sent_.front().deadline);
}

void Batcher::SubmitAlone(Op op, absl::Time deadline, OpDone done) {
  auto request = std::make_shared<v1::BatchRequest>();
  *request->add_ops() = std::move(op);
  unary_.Start<v1::BatchResponse>(
      deadline,
      [this, request](grpc::ClientContext* context, grpc::CompletionQueue* cq) {
        return stub_.PrepareAsyncBatch(context, *request, cq);
      },
      [request, done = std::move(done)](absl::Status status,
                                        v1::BatchResponse* response) {
        Op* op = request->mutable_ops(0);
        if (!status.ok()) return done(std::move(status), nullptr, op);
        if (response->results_size() != 1)
          return done(absl::InternalError("no result"), nullptr, op);
        const Result& result = response->results(0);
        done(StatusOfResult(result), &result, op);
      });
}

}  // namespace cluster2::cache_internal
