// SessionServer in-process: a real gRPC server on a Unix socket, a
// Supervisor with a fake launcher, and clients playing the worker and tools.
#include "master/internal/session_server.h"

#include <unistd.h>

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "cluster2/v1/emitter.grpc.pb.h"
#include "cluster2/v1/worker_session.grpc.pb.h"
#include "common/fake_clock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "master/internal/supervisor_fakes.h"

namespace cluster2 {
namespace {

using Session = grpc::ClientReaderWriter<v1::WorkerMessage, v1::MasterMessage>;

v1::Event EventTo(const std::string& name, int32_t pid,
                  const std::string& payload = "") {
  v1::Event event;
  event.set_name(name);
  if (pid != 0) {
    event.add_targets()->set_pid(pid);
  } else {
    event.add_targets()->set_master(true);
  }
  if (!payload.empty()) event.add_args()->set_string_value(payload);
  return event;
}

class SessionServerTest : public ::testing::Test {
 protected:
  void StartServer(SessionServerOptions options) {
    SupervisorOptions supervisor_options;
    supervisor_options.groups = {{"default", 1, {"/bin/sh"}, {}, ""}};
    supervisor_ =
        std::make_unique<Supervisor>(supervisor_options, &launcher_, &clock_);
    ASSERT_TRUE(supervisor_->Start().ok());
    sessions_ = std::make_unique<SessionServer>(options, supervisor_.get(),
                                                &router_, &registry_, nullptr);
    char dir[] = "/tmp/c2sst-XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    dir_ = dir;
    address_ = absl::StrCat("unix:", dir_, "/master.sock");
    grpc::ServerBuilder builder;
    builder.AddListeningPort(address_, grpc::InsecureServerCredentials());
    sessions_->Register(&builder);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    sessions_->Start();
    channel_ =
        grpc::CreateChannel(address_, grpc::InsecureChannelCredentials());
  }

  void TearDown() override {
    if (server_ != nullptr) {
      server_->Shutdown(std::chrono::system_clock::now() +
                        std::chrono::milliseconds(100));
    }
    sessions_.reset();
    server_.reset();
    if (!dir_.empty()) {
      unlink((dir_ + "/master.sock").c_str());
      rmdir(dir_.c_str());
    }
  }

  // Opens the session of the launched worker and reads its welcome.
  std::unique_ptr<Session> Attach(grpc::ClientContext* context) {
    stub_ = v1::WorkerSession::NewStub(channel_);
    std::unique_ptr<Session> session = stub_->Attach(context);
    v1::WorkerMessage hello;
    hello.mutable_hello()->set_token(launcher_.tokens_[kPid]);
    hello.mutable_hello()->set_pid(kPid);
    EXPECT_TRUE(session->Write(hello));
    v1::MasterMessage welcome;
    EXPECT_TRUE(session->Read(&welcome));
    EXPECT_TRUE(welcome.has_welcome());
    return session;
  }

  bool Attached() {
    for (const WorkerSnapshot& worker : supervisor_->Workers()) {
      if (worker.pid == kPid) return worker.attached;
    }
    return false;
  }

  static bool WaitUntil(const std::function<bool()>& condition) {
    absl::Time deadline = absl::Now() + absl::Seconds(20);
    while (!condition()) {
      if (absl::Now() > deadline) return false;
      absl::SleepFor(absl::Milliseconds(5));
    }
    return true;
  }

  static constexpr pid_t kPid = 100;  // FakeLauncher's first pid
  FakeLauncher launcher_;
  FakeClock clock_;
  EventRouter router_{getpid()};
  StatusRegistry registry_{getpid()};
  std::unique_ptr<Supervisor> supervisor_;
  std::unique_ptr<SessionServer> sessions_;
  std::unique_ptr<grpc::Server> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::WorkerSession::Stub> stub_;
  std::string dir_;
  std::string address_;
};

// A worker's event goes through the loop to its target and back with an
// emit_reply; a status query from another thread reaches the session.
TEST_F(SessionServerTest, RoutesAWorkersEventAndAnswersIt) {
  StartServer({});
  grpc::ClientContext context;
  std::unique_ptr<Session> session = Attach(&context);
  ASSERT_TRUE(Attached());
  v1::WorkerMessage emit;
  *emit.mutable_event() = EventTo("ping", kPid);
  emit.mutable_event()->set_sequence(7);
  ASSERT_TRUE(session->Write(emit));
  v1::MasterMessage first, second;
  ASSERT_TRUE(session->Read(&first));
  ASSERT_TRUE(session->Read(&second));
  ASSERT_TRUE(first.has_event());  // delivered before the reply is written
  EXPECT_EQ(first.event().name(), "ping");
  EXPECT_EQ(first.event().from_pid(), kPid);
  ASSERT_TRUE(second.has_emit_reply());
  EXPECT_EQ(second.emit_reply().sequence(), 7u);
  EXPECT_EQ(second.emit_reply().delivered(), 1u);

  // From this (non-loop) thread: handed to the loop, in order.
  ASSERT_TRUE(router_.Route(EventTo("a", kPid), 0).ok());
  ASSERT_TRUE(router_.Route(EventTo("b", kPid), 0).ok());
  v1::MasterMessage a, b;
  ASSERT_TRUE(session->Read(&a));
  ASSERT_TRUE(session->Read(&b));
  EXPECT_EQ(a.event().name(), "a");
  EXPECT_EQ(b.event().name(), "b");

  session->WritesDone();
  EXPECT_TRUE(session->Finish().ok());
  EXPECT_TRUE(WaitUntil([&] { return !Attached(); }));
}

// A worker that stops reading is cut off once its queue passes the bound,
// instead of growing the master's memory; its session ends (worker gone).
TEST_F(SessionServerTest, WelcomeNamesTheClusterAndTheCache) {
  SessionServerOptions options;
  options.cluster_name = "shop";
  options.cache_address = "unix:/run/cluster2/shop/cache.sock";
  StartServer(options);
  stub_ = v1::WorkerSession::NewStub(channel_);
  grpc::ClientContext context;
  std::unique_ptr<Session> session = stub_->Attach(&context);
  v1::WorkerMessage hello;
  hello.mutable_hello()->set_token(launcher_.tokens_[kPid]);
  hello.mutable_hello()->set_pid(kPid);
  ASSERT_TRUE(session->Write(hello));
  v1::MasterMessage welcome;
  ASSERT_TRUE(session->Read(&welcome));
  ASSERT_TRUE(welcome.has_welcome());
  EXPECT_EQ(welcome.welcome().cluster_name(), "shop");
  EXPECT_EQ(welcome.welcome().cache_address(),
            "unix:/run/cluster2/shop/cache.sock");
  EXPECT_GT(welcome.welcome().heartbeat_interval().seconds() * 1000 +
                welcome.welcome().heartbeat_interval().nanos() / 1000000,
            0);
  context.TryCancel();
}

TEST_F(SessionServerTest, SlowConsumerIsCutAtTheQueueBound) {
  SessionServerOptions options;
  options.max_session_queue = 64;
  StartServer(options);
  grpc::ClientContext context;
  std::unique_ptr<Session> session = Attach(&context);
  ASSERT_TRUE(Attached());
  const std::string payload(16 * 1024, 'x');
  absl::Time deadline = absl::Now() + absl::Seconds(20);
  int sent = 0;
  // The socket and gRPC's flow-control window take the first few hundred
  // KiB; then the queue fills and the session is cut.
  while (Attached() && absl::Now() < deadline) {
    for (int i = 0; i < 64; ++i) {
      if (router_.Route(EventTo("flood", kPid, payload), 0).ok()) ++sent;
    }
    absl::SleepFor(absl::Milliseconds(2));
  }
  EXPECT_FALSE(Attached()) << sent << " events sent";
  EXPECT_LT(sent, 64 * 1024) << "the bound never took effect";
  // The worker sees its session end: what was written before, then the
  // cancellation.
  v1::MasterMessage message;
  while (session->Read(&message)) {
  }
  EXPECT_EQ(session->Finish().error_code(), grpc::StatusCode::CANCELLED);
  // The router no longer knows the worker.
  absl::StatusOr<RouteResult> routed = router_.Route(EventTo("after", kPid), 0);
  ASSERT_TRUE(routed.ok());
  EXPECT_EQ(routed->unknown_pids, std::vector<int32_t>{kPid});
}

// At most max_sessions_before_hello wait for their hello; the others are
// refused at once, the waiting ones cut at the timeout.
TEST_F(SessionServerTest, HelloGateRefusesAndCuts) {
  SessionServerOptions options;
  options.max_sessions_before_hello = 2;
  options.hello_timeout = absl::Milliseconds(300);
  StartServer(options);
  stub_ = v1::WorkerSession::NewStub(channel_);
  constexpr int kStreams = 5;
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
  std::vector<std::unique_ptr<Session>> streams;
  for (int i = 0; i < kStreams; ++i) {
    contexts.push_back(std::make_unique<grpc::ClientContext>());
    streams.push_back(stub_->Attach(contexts.back().get()));
  }
  int refused = 0, cut = 0;
  for (auto& stream : streams) {
    v1::MasterMessage message;
    while (stream->Read(&message)) {
    }
    grpc::StatusCode code = stream->Finish().error_code();
    refused += code == grpc::StatusCode::RESOURCE_EXHAUSTED ? 1 : 0;
    cut += code == grpc::StatusCode::CANCELLED ? 1 : 0;
  }
  EXPECT_EQ(refused, kStreams - 2);
  EXPECT_EQ(cut, 2);
  // The gate is open again: the worker attaches.
  grpc::ClientContext context;
  std::unique_ptr<Session> session = Attach(&context);
  EXPECT_TRUE(Attached());
  context.TryCancel();
}

// EmitStream: each request routed and answered in order; a refused event is
// answered with its error and the stream goes on; Subscribe sees the
// events sent to the master.
TEST_F(SessionServerTest, EmitStreamAnswersInOrderAndSubscribeSees) {
  StartServer({});
  grpc::ClientContext worker_context;
  std::unique_ptr<Session> session = Attach(&worker_context);
  auto emitter = v1::Emitter::NewStub(channel_);

  grpc::ClientContext subscribe_context;
  absl::Mutex mu;
  std::vector<std::string> seen;
  std::thread subscriber([&] {
    v1::SubscribeRequest request;
    request.add_events("probe");
    request.add_events("to-master");
    auto reader = emitter->Subscribe(&subscribe_context, request);
    v1::Event event;
    while (reader->Read(&event)) {
      absl::MutexLock lock(&mu);
      seen.push_back(event.name());
    }
    reader->Finish();
  });
  auto seen_named = [&](const std::string& name) {
    absl::MutexLock lock(&mu);
    return std::count(seen.begin(), seen.end(), name);
  };
  // The subscription is in place once a probe comes through.
  ASSERT_TRUE(WaitUntil([&] {
    (void)router_.Route(EventTo("probe", 0), 0);
    return seen_named("probe") > 0;
  }));

  grpc::ClientContext context;
  auto stream = emitter->EmitStream(&context);
  v1::EmitRequest request;
  *request.mutable_event() = EventTo("to-worker", kPid);
  ASSERT_TRUE(stream->Write(request));
  *request.mutable_event() = EventTo("", kPid);  // refused: no name
  ASSERT_TRUE(stream->Write(request));
  *request.mutable_event() = EventTo("to-nobody", 4242);
  ASSERT_TRUE(stream->Write(request));
  *request.mutable_event() = EventTo("to-master", 0);
  ASSERT_TRUE(stream->Write(request));
  ASSERT_TRUE(stream->WritesDone());
  std::vector<v1::EmitResponse> responses;
  v1::EmitResponse response;
  while (stream->Read(&response)) responses.push_back(response);
  EXPECT_TRUE(stream->Finish().ok());
  ASSERT_EQ(responses.size(), 4u);
  EXPECT_EQ(responses[0].delivered(), 1u);
  EXPECT_EQ(responses[0].error_code(), 0);
  EXPECT_EQ(responses[1].error_code(),
            static_cast<int>(grpc::StatusCode::INVALID_ARGUMENT));
  EXPECT_FALSE(responses[1].error().empty());
  EXPECT_EQ(responses[2].delivered(), 0u);
  ASSERT_EQ(responses[2].unknown_pids_size(), 1);
  EXPECT_EQ(responses[2].unknown_pids(0), 4242);
  EXPECT_EQ(responses[3].delivered(), 1u);

  v1::MasterMessage delivered;
  ASSERT_TRUE(session->Read(&delivered));
  EXPECT_EQ(delivered.event().name(), "to-worker");
  EXPECT_EQ(delivered.event().from_pid(), getpid());
  EXPECT_TRUE(WaitUntil([&] { return seen_named("to-master") == 1; }));

  // The unary Emit is on the loop too; its refusal is the call's status.
  grpc::ClientContext emit_context;
  v1::EmitRequest bad;
  *bad.mutable_event() = EventTo("cluster2:reserved", kPid);
  v1::EmitResponse ignored;
  EXPECT_EQ(emitter->Emit(&emit_context, bad, &ignored).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);

  subscribe_context.TryCancel();
  subscriber.join();
  worker_context.TryCancel();
}

// grpc.health.v1 on the loop: NOT_SERVING until SetServing(true); Watch
// sends the status, then each change; other services are unknown.
TEST_F(SessionServerTest, HealthFollowsSetServing) {
  using grpc::health::v1::Health;
  using grpc::health::v1::HealthCheckRequest;
  using grpc::health::v1::HealthCheckResponse;
  StartServer({});
  auto health = Health::NewStub(channel_);
  auto check = [&](const std::string& service, HealthCheckResponse* response) {
    grpc::ClientContext context;
    HealthCheckRequest request;
    request.set_service(service);
    return health->Check(&context, request, response);
  };
  HealthCheckResponse response;
  ASSERT_TRUE(check("", &response).ok());
  EXPECT_EQ(response.status(), HealthCheckResponse::NOT_SERVING);
  EXPECT_EQ(check("cluster2.v1.Nothing", &response).error_code(),
            grpc::StatusCode::NOT_FOUND);

  grpc::ClientContext watch_context;
  auto watch = health->Watch(&watch_context, HealthCheckRequest());
  ASSERT_TRUE(watch->Read(&response));
  EXPECT_EQ(response.status(), HealthCheckResponse::NOT_SERVING);
  sessions_->SetServing(true);
  ASSERT_TRUE(watch->Read(&response));
  EXPECT_EQ(response.status(), HealthCheckResponse::SERVING);
  ASSERT_TRUE(check("", &response).ok());
  EXPECT_EQ(response.status(), HealthCheckResponse::SERVING);
  sessions_->SetServing(false);
  ASSERT_TRUE(watch->Read(&response));
  EXPECT_EQ(response.status(), HealthCheckResponse::NOT_SERVING);
  watch_context.TryCancel();
  EXPECT_EQ(watch->Finish().error_code(), grpc::StatusCode::CANCELLED);
}

}  // namespace
}  // namespace cluster2
