#include "worker/worker.h"

#include <pthread.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <deque>
#include <iostream>
#include <iterator>
#include <map>
#include <set>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "cluster2/v1/status.grpc.pb.h"
#include "cluster2/v1/worker_session.grpc.pb.h"
#include "common/grpc_status.h"
#include "common/proto_time.h"
#include "events/listeners.h"
#include "grpcpp/grpcpp.h"
#include "worker/internal/process_stats.h"

namespace cluster2 {
namespace {

// Grace assumed when the session is lost without a Drain from the master.
constexpr absl::Duration kLostSessionGrace = absl::Seconds(10);
// Latency samples kept per heartbeat window.
constexpr size_t kMaxLatencySamples = 8192;
// Heartbeat.latency's bounds, in seconds: LatencyHistogram's recommended
// ones, which the master exports without remapping.
constexpr double kLatencyBounds[] = {
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
constexpr size_t kLatencyBuckets = std::size(kLatencyBounds) + 1;

absl::Duration Percentile(std::vector<absl::Duration>& samples,
                          double fraction) {
  if (samples.empty()) return absl::ZeroDuration();
  size_t index = std::min(samples.size() - 1,
                          static_cast<size_t>(fraction * samples.size()));
  std::nth_element(samples.begin(), samples.begin() + index, samples.end());
  return samples[index];
}

}  // namespace

class Worker::Impl {
 public:
  Impl(unsigned id, std::string cluster_name, std::string token)
      : id_(id),
        cluster_name_(std::move(cluster_name)),
        token_(std::move(token)),
        started_(absl::Now()) {}

  ~Impl() {
    {
      absl::MutexLock lock(&mu_);
      closing_ = true;
    }
    {
      absl::MutexLock lock(&write_mu_);
      if (stream_ != nullptr) stream_->WritesDone();
    }
    context_.TryCancel();
    if (reader_.joinable()) reader_.join();
    if (heartbeat_.joinable()) heartbeat_.join();
    {
      absl::MutexLock lock(&dispatch_mu_);
      dispatch_closed_ = true;
    }
    if (dispatcher_.joinable()) dispatcher_.join();
  }

  absl::Status Connect(const std::string& address,
                       const WorkerOptions& options) {
    channel_ = grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
    stub_ = v1::WorkerSession::NewStub(channel_);
    stream_ = stub_->Attach(&context_);
    v1::WorkerMessage hello;
    hello.mutable_hello()->set_worker_id(id_);
    hello.mutable_hello()->set_token(token_);
    hello.mutable_hello()->set_pid(getpid());
    hello.mutable_hello()->set_client(options.client);
    Write(hello);
    reader_ = std::thread([this] { ReadLoop(); });
    dispatcher_ = std::thread([this] { DispatchLoop(); });
    // Named for stack dumps (cluster2ctl stacks) and top -H.
    pthread_setname_np(reader_.native_handle(), "c2-reader");
    pthread_setname_np(dispatcher_.native_handle(), "c2-dispatcher");

    absl::MutexLock lock(&mu_);
    auto settled = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return welcomed_ || session_ended_;
    };
    if (!mu_.AwaitWithTimeout(absl::Condition(&settled),
                              options.attach_timeout)) {
      return absl::UnavailableError(
          absl::StrCat("no welcome from the master at ", address, " within ",
                       absl::FormatDuration(options.attach_timeout)));
    }
    if (!welcomed_) {
      return absl::UnavailableError(absl::StrCat(
          "the master at ", address, " ended the session: ", session_error_));
    }
    heartbeat_ = std::thread([this] { HeartbeatLoop(); });
    pthread_setname_np(heartbeat_.native_handle(), "c2-heartbeat");
    return absl::OkStatus();
  }

  void SetReady() {
    {
      absl::MutexLock lock(&mu_);
      if (ready_sent_) return;
      ready_sent_ = true;
    }
    v1::WorkerMessage message;
    message.mutable_ready();
    Write(message);
  }

  void OnDrain(std::function<void(absl::Duration)> callback) {
    absl::Duration grace;
    {
      absl::MutexLock lock(&mu_);
      if (!draining_) {
        drain_callback_ = std::move(callback);
        return;
      }
      grace = drain_grace_;
    }
    callback(grace);
  }

  void OnPause(std::function<void()> pause, std::function<void()> resume) {
    absl::MutexLock lock(&mu_);
    pause_callback_ = std::move(pause);
    resume_callback_ = std::move(resume);
  }

  absl::Duration WaitForDrain() {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(&draining_));
    return drain_grace_;
  }

  bool draining() const {
    absl::MutexLock lock(&mu_);
    return draining_;
  }

  void RecordRequest(absl::Duration latency) {
    absl::MutexLock lock(&stats_mu_);
    ++requests_total_;
    if (latencies_.size() < kMaxLatencySamples) latencies_.push_back(latency);
    const double seconds = absl::ToDoubleSeconds(latency);
    // The first bound at or above it; past the last: the last bucket.
    ++latency_counts_[std::lower_bound(std::begin(kLatencyBounds),
                                       std::end(kLatencyBounds), seconds) -
                      std::begin(kLatencyBounds)];
    latency_sum_ += seconds;
  }

  void SetRequestsInFlight(uint32_t count) {
    absl::MutexLock lock(&stats_mu_);
    in_flight_ = count;
  }

  unsigned id() const { return id_; }
  const std::string& cluster_name() const { return cluster_name_; }

 private:
  bool Write(const v1::WorkerMessage& message) {
    absl::MutexLock lock(&write_mu_);
    return stream_->Write(message);
  }

  void StartDrain(absl::Duration grace) {
    std::function<void(absl::Duration)> callback;
    {
      absl::MutexLock lock(&mu_);
      if (draining_) return;
      draining_ = true;
      drain_grace_ = grace;
      callback = std::move(drain_callback_);
    }
    if (callback) callback(grace);
  }

  // Runs the app's pause or resume callback, then confirms it.
  void ChangePause(bool pause) {
    std::function<void()> callback;
    {
      absl::MutexLock lock(&mu_);
      if (draining_) return;
      callback = pause ? pause_callback_ : resume_callback_;
    }
    if (!callback) return;  // not pausable: the master times out
    callback();
    v1::WorkerMessage ack;
    ack.mutable_ack()->set_what(pause ? v1::Ack::WHAT_PAUSED
                                      : v1::Ack::WHAT_RESUMED);
    Write(ack);
  }

  // Runs listeners and status callbacks, in arrival order, off the
  // session's thread (they may emit and wait for the reply).
  void DispatchLoop() {
    while (true) {
      std::deque<v1::MasterMessage> batch;
      {
        absl::MutexLock lock(&dispatch_mu_);
        auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(dispatch_mu_) {
          return dispatch_closed_ || !dispatch_queue_.empty();
        };
        dispatch_mu_.Await(absl::Condition(&ready));
        if (dispatch_queue_.empty()) return;
        batch.swap(dispatch_queue_);
      }
      for (v1::MasterMessage& message : batch) {
        if (message.has_event()) {
          listeners_.Dispatch(message.event());
        } else if (message.has_status_query()) {
          AnswerStatus(message.status_query().id(),
                       message.status_query().name(), nullptr);
        } else if (message.has_status_update()) {
          AnswerStatus(message.status_update().id(),
                       message.status_update().name(),
                       &message.status_update().value());
        }
      }
    }
  }

  void AnswerStatus(uint64_t id, const std::string& name,
                    const google::protobuf::Value* update) {
    Worker::StatusView view;
    Worker::StatusUpdate updater;
    {
      absl::MutexLock lock(&mu_);
      auto it = statuses_.find(name);
      if (it != statuses_.end()) {
        view = it->second.first;
        updater = it->second.second;
      }
    }
    v1::WorkerMessage answer;
    answer.mutable_status_answer()->set_id(id);
    if (!view) {
      answer.mutable_status_answer()->set_error("not registered here");
    } else if (update != nullptr && !updater) {
      answer.mutable_status_answer()->set_error("read-only");
    } else {
      *answer.mutable_status_answer()->mutable_value() =
          update != nullptr ? updater(*update) : view();
    }
    Write(answer);
  }

 public:
  uint64_t AddListener(const std::string& event, Worker::EventHandler handler,
                       bool once) {
    return listeners_.Add(event, std::move(handler), once);
  }

  bool RemoveListener(uint64_t id) { return listeners_.Remove(id); }

  void RemoveAllListeners(const std::string& event) {
    listeners_.RemoveAll(event);
  }

  absl::StatusOr<Worker::EmitResult> Emit(
      const std::string& name, const std::vector<Worker::Target>& targets,
      std::vector<google::protobuf::Value> args) {
    absl::StatusOr<uint64_t> sent =
        Send(name, targets, std::move(args), /*await=*/true);
    if (!sent.ok()) return sent.status();
    const uint64_t sequence = *sent;
    absl::MutexLock lock(&mu_);
    auto answered = [this, sequence]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return replies_.count(sequence) > 0 || session_ended_;
    };
    if (!mu_.AwaitWithTimeout(absl::Condition(&answered), absl::Seconds(5))) {
      awaited_.erase(sequence);
      return absl::DeadlineExceededError(
          "the master did not answer the emit within 5s");
    }
    auto it = replies_.find(sequence);
    if (it == replies_.end())
      return absl::UnavailableError("the session with the master ended");
    v1::EmitReply reply = std::move(it->second);
    replies_.erase(it);
    awaited_.erase(sequence);
    if (!reply.error().empty()) {
      return absl::Status(
          reply.error_code() == 0
              ? absl::StatusCode::kInvalidArgument
              : static_cast<absl::StatusCode>(reply.error_code()),
          reply.error());
    }
    Worker::EmitResult result;
    result.delivered = reply.delivered();
    result.unknown_pids.assign(reply.unknown_pids().begin(),
                               reply.unknown_pids().end());
    return result;
  }

  absl::Status EmitAsync(const std::string& name,
                         const std::vector<Worker::Target>& targets,
                         std::vector<google::protobuf::Value> args) {
    return Send(name, targets, std::move(args), /*await=*/false).status();
  }

  // Numbers and writes an event; with `await`, Emit waits for its reply.
  absl::StatusOr<uint64_t> Send(const std::string& name,
                                const std::vector<Worker::Target>& targets,
                                std::vector<google::protobuf::Value> args,
                                bool await) {
    v1::WorkerMessage message;
    *message.mutable_event() = ToProto(name, targets, std::move(args));
    if (absl::Status valid = ValidateEvent(message.event()); !valid.ok())
      return valid;
    // Numbering and writing under one lock keeps the wire order.
    absl::MutexLock lock(&emit_mu_);
    uint64_t sequence = ++emit_sequence_;
    message.mutable_event()->set_sequence(sequence);
    if (await) {
      absl::MutexLock state(&mu_);
      awaited_.insert(sequence);
    }
    if (!Write(message))
      return absl::UnavailableError("no session with the master");
    return sequence;
  }

  void RegisterStatus(const std::string& name, Worker::StatusView view,
                      Worker::StatusUpdate update) {
    {
      absl::MutexLock lock(&mu_);
      statuses_[name] = {std::move(view), std::move(update)};
    }
    v1::WorkerMessage message;
    message.mutable_status_registration()->set_name(name);
    message.mutable_status_registration()->set_registered(true);
    Write(message);
  }

  void UnregisterStatus(const std::string& name) {
    {
      absl::MutexLock lock(&mu_);
      statuses_.erase(name);
    }
    v1::WorkerMessage message;
    message.mutable_status_registration()->set_name(name);
    message.mutable_status_registration()->set_registered(false);
    Write(message);
  }

  absl::StatusOr<std::vector<Worker::StatusEntry>> AskStatus(
      const std::string& name, const google::protobuf::Value* value,
      absl::Duration deadline) {
    auto stub = v1::Status::NewStub(channel_);
    grpc::ClientContext context;
    context.set_deadline(
        absl::ToChronoTime(absl::Now() + deadline + absl::Seconds(5)));
    v1::GetStatusResponse response;
    grpc::Status status;
    if (value == nullptr) {
      v1::GetStatusRequest request;
      request.set_name(name);
      ToProto(deadline, request.mutable_deadline());
      status = stub->GetStatus(&context, request, &response);
    } else {
      v1::SetStatusRequest request;
      request.set_name(name);
      *request.mutable_value() = *value;
      ToProto(deadline, request.mutable_deadline());
      status = stub->SetStatus(&context, request, &response);
    }
    if (!status.ok()) return FromGrpcStatus(status);
    std::vector<Worker::StatusEntry> entries;
    for (const v1::StatusEntry& entry : response.entries()) {
      Worker::StatusEntry out;
      out.pid = entry.pid();
      if (entry.has_worker_id()) out.worker_id = entry.worker_id();
      out.value = entry.value();
      out.error = entry.error();
      entries.push_back(std::move(out));
    }
    return entries;
  }

  absl::StatusOr<std::vector<std::string>> Statuses() {
    auto stub = v1::Status::NewStub(channel_);
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
    v1::ListStatusesResponse response;
    grpc::Status status = stub->ListStatuses(&context, {}, &response);
    if (!status.ok()) return FromGrpcStatus(status);
    return std::vector<std::string>(response.names().begin(),
                                    response.names().end());
  }

 private:
  void ReadLoop() {
    v1::MasterMessage message;
    while (stream_->Read(&message)) {
      switch (message.kind_case()) {
        case v1::MasterMessage::kWelcome: {
          absl::MutexLock lock(&mu_);
          heartbeat_interval_ =
              FromProto(message.welcome().heartbeat_interval());
          if (heartbeat_interval_ <= absl::ZeroDuration()) {
            heartbeat_interval_ = absl::Seconds(5);
          }
          welcomed_ = true;
          break;
        }
        case v1::MasterMessage::kDrain:
          StartDrain(FromProto(message.drain().grace()));
          break;
        case v1::MasterMessage::kPause:
        case v1::MasterMessage::kResume:
          ChangePause(message.has_pause());
          break;
        case v1::MasterMessage::kEvent:
        case v1::MasterMessage::kStatusQuery:
        case v1::MasterMessage::kStatusUpdate: {
          absl::MutexLock lock(&dispatch_mu_);
          dispatch_queue_.push_back(std::move(message));
          message = v1::MasterMessage();
          break;
        }
        case v1::MasterMessage::kEmitReply: {
          absl::MutexLock lock(&mu_);
          const v1::EmitReply& reply = message.emit_reply();
          if (awaited_.count(reply.sequence()) > 0) {
            replies_[reply.sequence()] = reply;
          } else if (!reply.error().empty()) {
            // An EmitAsync (or a timed-out Emit) the master refused: say so
            // on stderr, which the master's log captures.
            std::cerr << "cluster2: event " << reply.sequence()
                      << " refused by the master: " << reply.error()
                      << std::endl;
          }
          break;
        }
        default:
          break;  // not handled by this version of the library
      }
    }
    grpc::Status status = stream_->Finish();
    {
      absl::MutexLock lock(&mu_);
      session_ended_ = true;
      session_error_ = status.ok() ? "closed" : status.error_message();
      if (closing_) return;
    }
    StartDrain(kLostSessionGrace);
  }

  void HeartbeatLoop() {
    absl::Time scheduled = absl::Now();
    while (true) {
      absl::Duration interval;
      {
        absl::MutexLock lock(&mu_);
        interval = heartbeat_interval_;
        scheduled += interval;
        auto stop = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
          return closing_ || session_ended_;
        };
        if (mu_.AwaitWithDeadline(absl::Condition(&stop), scheduled)) return;
      }
      absl::Time now = absl::Now();
      v1::WorkerMessage message;
      v1::Heartbeat* beat = message.mutable_heartbeat();
      ProcessStats stats = ReadProcessStats();
      beat->set_rss_bytes(stats.rss_bytes);
      ToProto(stats.cpu_time, beat->mutable_cpu_time());
      beat->set_open_fds(stats.open_fds);
      beat->set_threads(stats.threads);
      ToProto(now - started_, beat->mutable_uptime());
      {
        absl::MutexLock lock(&stats_mu_);
        beat->set_requests_total(requests_total_);
        beat->set_requests_in_flight(in_flight_);
        ToProto(Percentile(latencies_, 0.5), beat->mutable_latency_p50());
        ToProto(Percentile(latencies_, 0.99), beat->mutable_latency_p99());
        latencies_.clear();
        v1::LatencyHistogram* histogram = beat->mutable_latency();
        for (double bound : kLatencyBounds) histogram->add_bounds(bound);
        for (uint64_t count : latency_counts_) histogram->add_counts(count);
        histogram->set_sum_seconds(latency_sum_);
      }
      int64_t nanos = absl::ToUnixNanos(now);
      beat->mutable_sent_at()->set_seconds(nanos / 1000000000);
      beat->mutable_sent_at()->set_nanos(
          static_cast<int32_t>(nanos % 1000000000));
      ToProto(now - scheduled, beat->mutable_lag());
      // A stalled process catches up with one beat, not a burst.
      if (now - scheduled > interval) scheduled = now;
      if (!Write(message)) return;
    }
  }

  const unsigned id_;
  const std::string cluster_name_;
  const std::string token_;
  const absl::Time started_;

  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::WorkerSession::Stub> stub_;
  grpc::ClientContext context_;
  absl::Mutex write_mu_;  // serializes writes on the stream
  std::unique_ptr<
      grpc::ClientReaderWriter<v1::WorkerMessage, v1::MasterMessage>>
      stream_;
  std::thread reader_;
  std::thread dispatcher_;  // runs listeners and status callbacks
  absl::Mutex dispatch_mu_;
  std::deque<v1::MasterMessage> dispatch_queue_ ABSL_GUARDED_BY(dispatch_mu_);
  bool dispatch_closed_ ABSL_GUARDED_BY(dispatch_mu_) = false;
  absl::Mutex emit_mu_;
  uint64_t emit_sequence_ ABSL_GUARDED_BY(emit_mu_) = 0;
  std::thread heartbeat_;

  mutable absl::Mutex mu_;
  bool welcomed_ ABSL_GUARDED_BY(mu_) = false;
  bool session_ended_ ABSL_GUARDED_BY(mu_) = false;
  std::string session_error_ ABSL_GUARDED_BY(mu_);
  bool closing_ ABSL_GUARDED_BY(mu_) = false;
  bool ready_sent_ ABSL_GUARDED_BY(mu_) = false;
  bool draining_ ABSL_GUARDED_BY(mu_) = false;
  absl::Duration drain_grace_ ABSL_GUARDED_BY(mu_);
  absl::Duration heartbeat_interval_ ABSL_GUARDED_BY(mu_) = absl::Seconds(5);
  std::function<void(absl::Duration)> drain_callback_ ABSL_GUARDED_BY(mu_);
  std::function<void()> pause_callback_ ABSL_GUARDED_BY(mu_);
  std::function<void()> resume_callback_ ABSL_GUARDED_BY(mu_);

  ListenerSet listeners_;
  std::map<uint64_t, v1::EmitReply> replies_ ABSL_GUARDED_BY(mu_);
  std::set<uint64_t> awaited_ ABSL_GUARDED_BY(mu_);  // Emit calls waiting
  std::map<std::string, std::pair<Worker::StatusView, Worker::StatusUpdate>>
      statuses_ ABSL_GUARDED_BY(mu_);

  absl::Mutex stats_mu_;
  uint64_t requests_total_ ABSL_GUARDED_BY(stats_mu_) = 0;
  uint32_t in_flight_ ABSL_GUARDED_BY(stats_mu_) = 0;
  std::vector<absl::Duration> latencies_ ABSL_GUARDED_BY(stats_mu_);
  // Since the process started (Heartbeat.latency).
  std::array<uint64_t, kLatencyBuckets> latency_counts_
      ABSL_GUARDED_BY(stats_mu_) = {};
  double latency_sum_ ABSL_GUARDED_BY(stats_mu_) = 0;
};

absl::StatusOr<std::unique_ptr<Worker>> Worker::Attach(WorkerOptions options) {
  const char* master = std::getenv("CLUSTER2_MASTER");
  const char* id_text = std::getenv("CLUSTER2_WORKER_ID");
  const char* token = std::getenv("CLUSTER2_WORKER_TOKEN");
  const char* listen_pid = std::getenv("LISTEN_PID");
  const char* name = std::getenv("CLUSTER2_NAME");
  unsigned id = 0;
  int pid = 0;
  if (master == nullptr || id_text == nullptr || token == nullptr ||
      !absl::SimpleAtoi(id_text, &id)) {
    return absl::FailedPreconditionError(
        "not started by cluster2-master (CLUSTER2_MASTER, CLUSTER2_WORKER_ID "
        "or "
        "CLUSTER2_WORKER_TOKEN missing)");
  }
  // Under a debugger the master started (a fresh debug session's
  // `gdbserver ADDRESS worker`), LISTEN_PID names the debugger, this
  // process's parent.
  const char* under_debugger = std::getenv("CLUSTER2_UNDER_DEBUGGER");
  const bool parsed =
      listen_pid != nullptr && absl::SimpleAtoi(listen_pid, &pid);
  const bool wrapped = under_debugger != nullptr &&
                       std::string(under_debugger) == "1" && pid == getppid();
  if (!parsed || (pid != getpid() && !wrapped)) {
    return absl::FailedPreconditionError(
        "LISTEN_PID does not name this process: the listening socket on fd 3 "
        "belongs to another process");
  }
  auto impl = std::make_unique<Impl>(id, name != nullptr ? name : "", token);
  if (absl::Status status = impl->Connect(master, options); !status.ok()) {
    return status;
  }
  return std::unique_ptr<Worker>(new Worker(std::move(impl)));
}

Worker::Worker(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Worker::~Worker() = default;

int Worker::listen_fd() const { return 3; }
unsigned Worker::id() const { return impl_->id(); }
const std::string& Worker::cluster_name() const {
  return impl_->cluster_name();
}
void Worker::SetReady() { impl_->SetReady(); }
void Worker::OnDrain(std::function<void(absl::Duration)> callback) {
  impl_->OnDrain(std::move(callback));
}
absl::Duration Worker::WaitForDrain() { return impl_->WaitForDrain(); }
void Worker::OnPause(std::function<void()> pause,
                     std::function<void()> resume) {
  impl_->OnPause(std::move(pause), std::move(resume));
}
bool Worker::draining() const { return impl_->draining(); }
void Worker::RecordRequest(absl::Duration latency) {
  impl_->RecordRequest(latency);
}
uint64_t Worker::On(const std::string& event, EventHandler handler) {
  return impl_->AddListener(event, std::move(handler), /*once=*/false);
}
uint64_t Worker::Once(const std::string& event, EventHandler handler) {
  return impl_->AddListener(event, std::move(handler), /*once=*/true);
}
bool Worker::RemoveListener(uint64_t id) { return impl_->RemoveListener(id); }
void Worker::RemoveAllListeners(const std::string& event) {
  impl_->RemoveAllListeners(event);
}
absl::StatusOr<Worker::EmitResult> Worker::Emit(
    const std::string& event, std::vector<Target> targets,
    std::vector<google::protobuf::Value> args) {
  return impl_->Emit(event, targets, std::move(args));
}
absl::Status Worker::EmitAsync(const std::string& event,
                               std::vector<Target> targets,
                               std::vector<google::protobuf::Value> args) {
  return impl_->EmitAsync(event, targets, std::move(args));
}
void Worker::RegisterStatus(const std::string& name, StatusView view,
                            StatusUpdate update) {
  impl_->RegisterStatus(name, std::move(view), std::move(update));
}
void Worker::UnregisterStatus(const std::string& name) {
  impl_->UnregisterStatus(name);
}
absl::StatusOr<std::vector<Worker::StatusEntry>> Worker::GetStatus(
    const std::string& name, absl::Duration deadline) {
  return impl_->AskStatus(name, nullptr, deadline);
}
absl::StatusOr<std::vector<Worker::StatusEntry>> Worker::SetStatus(
    const std::string& name, const google::protobuf::Value& value,
    absl::Duration deadline) {
  return impl_->AskStatus(name, &value, deadline);
}
absl::StatusOr<std::vector<std::string>> Worker::Statuses() {
  return impl_->Statuses();
}

void Worker::SetRequestsInFlight(uint32_t count) {
  impl_->SetRequestsInFlight(count);
}

}  // namespace cluster2
