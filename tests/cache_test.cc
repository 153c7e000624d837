// End-to-end: the real cluster2-cache over its Unix socket, spoken to with
// raw gRPC stubs (the protocol itself: codes, limits, garbage, leases).
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "cluster2/v1/cache.grpc.pb.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tests/testing/harness.h"

namespace cluster2 {
namespace {

using ::cluster2::testing::BinaryPath;
using ::cluster2::testing::Process;
using ::cluster2::testing::TempDir;
using ::cluster2::testing::WaitUntil;

class CacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    socket_ = tmp_.path() + "/cache.sock";
    server_ = std::make_unique<Process>(std::vector<std::string>{
        BinaryPath("cache_server/cluster2-cache"), "--socket=" + socket_});
    ASSERT_TRUE(WaitUntil([&] { return access(socket_.c_str(), F_OK) == 0; },
                          absl::Seconds(10)))
        << server_->Stderr();
    stub_ = v1::Cache::NewStub(grpc::CreateChannel(
        "unix:" + socket_, grpc::InsecureChannelCredentials()));
    v1::UseRequest use;
    use.set_namespace_("ns");
    v1::UseResponse used;
    grpc::ClientContext context;
    // The socket file exists from bind(); the server may not serve yet (a
    // slow sanitizer build): wait for it instead of failing at once.
    context.set_wait_for_ready(true);
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::seconds(10));
    grpc::Status status = stub_->Use(&context, use, &used);
    ASSERT_TRUE(status.ok()) << status.error_message() << server_->Stderr();
  }

  grpc::Status Set(const std::string& key, const std::string& value,
                   v1::SetResponse* response = nullptr) {
    v1::SetRequest request;
    request.set_namespace_("ns");
    request.set_key(key);
    request.set_value(value);
    v1::SetResponse ignored;
    grpc::ClientContext context;
    return stub_->Set(&context, request,
                      response != nullptr ? response : &ignored);
  }

  grpc::Status Get(const std::string& key, v1::GetResponse* response,
                   bool lease = false, const std::string& client = "") {
    v1::GetRequest request;
    request.set_namespace_("ns");
    request.set_key(key);
    request.set_lease(lease);
    request.set_client_id(client);
    grpc::ClientContext context;
    return stub_->Get(&context, request, response);
  }

  TempDir tmp_;
  std::string socket_;
  std::unique_ptr<Process> server_;
  std::unique_ptr<v1::Cache::Stub> stub_;
};

TEST_F(CacheTest, SetGetDeleteKeysStats) {
  ASSERT_TRUE(Set("a", "1").ok());
  ASSERT_TRUE(Set("b", "2").ok());
  v1::GetResponse got;
  ASSERT_TRUE(Get("a", &got).ok());
  EXPECT_TRUE(got.found());
  EXPECT_EQ(got.value(), "1");
  ASSERT_TRUE(Get("zz", &got).ok());
  EXPECT_FALSE(got.found());

  grpc::ClientContext keys_context;
  v1::KeysRequest keys;
  keys.set_namespace_("ns");
  v1::KeysResponse listed;
  ASSERT_TRUE(stub_->Keys(&keys_context, keys, &listed).ok());
  EXPECT_EQ(listed.keys_size(), 2);

  grpc::ClientContext delete_context;
  v1::DeleteRequest del;
  del.set_namespace_("ns");
  del.set_key("a");
  v1::DeleteResponse deleted;
  ASSERT_TRUE(stub_->Delete(&delete_context, del, &deleted).ok());
  EXPECT_TRUE(deleted.found());
  EXPECT_EQ(deleted.old_value(), "1");

  grpc::ClientContext stats_context;
  v1::StatsResponse stats;
  ASSERT_TRUE(stub_->Stats(&stats_context, {}, &stats).ok());
  ASSERT_EQ(stats.namespaces_size(), 1);
  EXPECT_EQ(stats.namespaces(0).hits(), 1u);
  EXPECT_EQ(stats.namespaces(0).misses(), 1u);
}

TEST_F(CacheTest, BadInputGetsClearCodesAndTheServerKeepsServing) {
  EXPECT_EQ(Set("big", std::string(10 << 20, 'x')).error_code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(Set("big", std::string((4 << 20) + 1, 'x')).error_code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(Set("", "v").error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  v1::GetResponse got;
  v1::GetRequest unknown;
  unknown.set_namespace_("nope");
  unknown.set_key("k");
  grpc::ClientContext context;
  EXPECT_EQ(stub_->Get(&context, unknown, &got).error_code(),
            grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(Get("k", &got, /*lease=*/true, "no-hold").error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  // Garbage on the socket.
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  socket_.copy(address.sun_path, sizeof(address.sun_path) - 1);
  ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)),
            0);
  std::string garbage(50000, '\x17');
  ssize_t ignored = send(fd, garbage.data(), garbage.size(), MSG_NOSIGNAL);
  (void)ignored;
  close(fd);
  EXPECT_TRUE(Set("after", "ok").ok()) << "the server stopped serving";
}

TEST_F(CacheTest, ALeaseHolderThatDiesPassesTheLeaseToAWaiterAtOnce) {
  // Two clients, each with its Hold stream.
  auto hold = [&](const std::string& id, grpc::ClientContext* context) {
    v1::HoldRequest request;
    request.set_client_id(id);
    return stub_->Hold(context, request);
  };
  grpc::ClientContext holder_context, waiter_context;
  auto holder_stream = hold("holder", &holder_context);
  auto waiter_stream = hold("waiter", &waiter_context);
  v1::GetResponse holder;
  ASSERT_TRUE(WaitUntil([&] { return Get("k", &holder, true, "holder").ok(); },
                        absl::Seconds(5)));
  ASSERT_FALSE(holder.lease_token().empty());

  v1::GetResponse waiter;
  grpc::Status waiter_status;
  absl::Time killed;
  std::thread parked(
      [&] { waiter_status = Get("k", &waiter, true, "waiter"); });
  // The waiter is parked once the server counts it.
  ASSERT_TRUE(WaitUntil(
      [&] {
        v1::StatsRequest request;
        request.set_namespace_("ns");
        v1::StatsResponse stats;
        grpc::ClientContext context;
        return stub_->Stats(&context, request, &stats).ok() &&
               stats.namespaces_size() == 1 &&
               stats.namespaces(0).waiting() == 1;
      },
      absl::Seconds(5)));
  killed = absl::Now();
  holder_context.TryCancel();  // the holder's process is gone
  parked.join();
  ASSERT_TRUE(waiter_status.ok()) << waiter_status.error_message();
  EXPECT_FALSE(waiter.lease_token().empty()) << "the waiter loads instead";
  EXPECT_LT(absl::Now() - killed, absl::Seconds(1));
  // It completes the load; a later reader sees the value.
  v1::SetRequest set;
  set.set_namespace_("ns");
  set.set_key("k");
  set.set_value("loaded");
  set.set_lease_token(waiter.lease_token());
  grpc::ClientContext set_context;
  v1::SetResponse set_response;
  ASSERT_TRUE(stub_->Set(&set_context, set, &set_response).ok());
  v1::GetResponse after;
  ASSERT_TRUE(Get("k", &after).ok());
  EXPECT_EQ(after.value(), "loaded");
  waiter_context.TryCancel();
  holder_stream->Finish();
  waiter_stream->Finish();
}

TEST_F(CacheTest, AParkedCallerThatGivesUpIsForgottenAndTheLoadGoesOn) {
  auto hold = [&](const std::string& id, grpc::ClientContext* context) {
    v1::HoldRequest request;
    request.set_client_id(id);
    return stub_->Hold(context, request);
  };
  grpc::ClientContext holder_context, waiter_context;
  auto holder_stream = hold("holder", &holder_context);
  auto waiter_stream = hold("waiter", &waiter_context);
  v1::GetResponse holder;
  ASSERT_TRUE(WaitUntil([&] { return Get("k", &holder, true, "holder").ok(); },
                        absl::Seconds(5)));
  ASSERT_FALSE(holder.lease_token().empty());
  auto waiting = [&] {
    v1::StatsRequest request;
    request.set_namespace_("ns");
    v1::StatsResponse stats;
    grpc::ClientContext context;
    EXPECT_TRUE(stub_->Stats(&context, request, &stats).ok());
    return stats.namespaces_size() == 1 ? stats.namespaces(0).waiting() : -1;
  };
  // Three callers park, then give up (their deadline passes).
  for (int i = 0; i < 3; ++i) {
    v1::GetRequest request;
    request.set_namespace_("ns");
    request.set_key("k");
    request.set_lease(true);
    request.set_client_id("waiter");
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::milliseconds(200));
    v1::GetResponse response;
    grpc::Status status = stub_->Get(&context, request, &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  }
  // The server forgets them at once (they were not answered, so the next
  // caller is not handed a lease nobody will use).
  EXPECT_TRUE(WaitUntil([&] { return waiting() == 0; }, absl::Seconds(5)));
  // The load completes; a reader gets its value.
  v1::SetRequest set;
  set.set_namespace_("ns");
  set.set_key("k");
  set.set_value("loaded");
  set.set_lease_token(holder.lease_token());
  grpc::ClientContext set_context;
  v1::SetResponse set_response;
  ASSERT_TRUE(stub_->Set(&set_context, set, &set_response).ok());
  v1::GetResponse after;
  ASSERT_TRUE(Get("k", &after, true, "waiter").ok());
  EXPECT_EQ(after.value(), "loaded");
  EXPECT_TRUE(after.lease_token().empty());
  holder_context.TryCancel();
  waiter_context.TryCancel();
  holder_stream->Finish();
  waiter_stream->Finish();
}

TEST_F(CacheTest, StopsCleanlyWhileCallsAreParkedExpiringAndStreaming) {
  // Shutdown with every kind of call open: parked get-or-loads whose waits
  // expire around the stop (their answers come from the store's timer
  // thread), Hold and Watch streams, a Pipeline. Each round must end with
  // exit 0 and no sanitizer report, within the shutdown's bounds.
  for (int round = 0; round < 5; ++round) {
    if (round > 0) {  // a fresh server on the same socket
      server_ = std::make_unique<Process>(std::vector<std::string>{
          BinaryPath("cache_server/cluster2-cache"), "--socket=" + socket_});
      ASSERT_TRUE(WaitUntil(
          [&] {
            v1::UseRequest use;
            use.set_namespace_("ns");
            v1::UseResponse used;
            grpc::ClientContext context;
            context.set_deadline(std::chrono::system_clock::now() +
                                 std::chrono::milliseconds(200));
            return stub_->Use(&context, use, &used).ok();
          },
          absl::Seconds(10)))
          << server_->Stderr();
    }
    grpc::ClientContext holder_context, waiter_context, watch_context,
        pipe_context;
    v1::HoldRequest hold;
    hold.set_client_id("holder");
    auto holder_stream = stub_->Hold(&holder_context, hold);
    hold.set_client_id("waiter");
    auto waiter_stream = stub_->Hold(&waiter_context, hold);
    v1::GetResponse holder;
    ASSERT_TRUE(
        WaitUntil([&] { return Get("k", &holder, true, "holder").ok(); },
                  absl::Seconds(5)));
    v1::WatchRequest watch_request;
    watch_request.set_namespace_("ns");
    auto watch = stub_->Watch(&watch_context, watch_request);
    auto pipe = stub_->Pipeline(&pipe_context);
    std::vector<std::thread> parked;
    for (int i = 0; i < 12; ++i) {
      parked.emplace_back([&, i] {
        v1::GetRequest request;
        request.set_namespace_("ns");
        request.set_key("k");
        request.set_lease(true);
        request.set_client_id("waiter");
        // Waits that end from 20 to 240 ms: some answered by the timer
        // thread just as the server stops.
        request.mutable_wait()->set_nanos((20 + 20 * i) * 1000000);
        grpc::ClientContext context;
        context.set_deadline(std::chrono::system_clock::now() +
                             std::chrono::seconds(5));
        v1::GetResponse response;
        stub_->Get(&context, request, &response);  // any outcome
      });
    }
    absl::SleepFor(absl::Milliseconds(20 * (round + 1)));  // the stop's moment
    server_->Signal(SIGTERM);
    std::optional<int> status = server_->Wait(absl::Seconds(5));
    ASSERT_TRUE(status.has_value()) << "the server did not stop";
    EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0)
        << server_->Stderr();
    for (std::thread& thread : parked) thread.join();
    holder_context.TryCancel();
    waiter_context.TryCancel();
    watch_context.TryCancel();
    pipe_context.TryCancel();
  }
}

TEST_F(CacheTest, ServesTheStandardHealthProtocol) {
  using grpc::health::v1::Health;
  using grpc::health::v1::HealthCheckRequest;
  using grpc::health::v1::HealthCheckResponse;
  auto health = Health::NewStub(grpc::CreateChannel(
      "unix:" + socket_, grpc::InsecureChannelCredentials()));
  for (const char* service : {"", "cluster2.v1.Cache"}) {
    HealthCheckRequest request;
    request.set_service(service);
    HealthCheckResponse response;
    grpc::ClientContext context;
    ASSERT_TRUE(health->Check(&context, request, &response).ok()) << service;
    EXPECT_EQ(response.status(), HealthCheckResponse::SERVING) << service;
  }
  HealthCheckRequest unknown;
  unknown.set_service("no.such.Service");
  HealthCheckResponse response;
  grpc::ClientContext check_context;
  EXPECT_EQ(health->Check(&check_context, unknown, &response).error_code(),
            grpc::StatusCode::NOT_FOUND);
  // Watch says SERVING and stays open until the client leaves.
  grpc::ClientContext watch_context;
  auto watch = health->Watch(&watch_context, HealthCheckRequest());
  ASSERT_TRUE(watch->Read(&response));
  EXPECT_EQ(response.status(), HealthCheckResponse::SERVING);
  watch_context.TryCancel();
  EXPECT_FALSE(watch->Read(&response));
  EXPECT_EQ(watch->Finish().error_code(), grpc::StatusCode::CANCELLED);
  // Many at once, beyond the calls waiting posted.
  std::vector<std::thread> checkers;
  std::atomic<int> serving{0};
  for (int i = 0; i < 16; ++i) {
    checkers.emplace_back([&] {
      HealthCheckResponse answer;
      grpc::ClientContext context;
      if (health->Check(&context, HealthCheckRequest(), &answer).ok() &&
          answer.status() == HealthCheckResponse::SERVING)
        ++serving;
    });
  }
  for (std::thread& checker : checkers) checker.join();
  EXPECT_EQ(serving.load(), 16);
}

TEST_F(CacheTest, ASlowWatcherIsEndedAndToldWhereToResume) {
  grpc::ClientContext watch_context;
  v1::WatchRequest watch;
  watch.set_namespace_("ns");
  auto reader = stub_->Watch(&watch_context, watch);
  reader->WaitForInitialMetadata();
  // 12,000 changes of 4 KiB while the watcher reads nothing: far more than
  // HTTP/2's windows hold, so the server's queue passes its 10,000.
  std::string value(4096, 'v');
  for (int batch = 0; batch < 24; ++batch) {
    v1::BatchRequest request;
    for (int i = 0; i < 500; ++i) {
      auto* set = request.add_ops()->mutable_set();
      set->set_namespace_("ns");
      set->set_key("k" + std::to_string(batch * 500 + i));
      set->set_value(value);
    }
    v1::BatchResponse response;
    grpc::ClientContext context;
    ASSERT_TRUE(stub_->Batch(&context, request, &response).ok());
  }
  v1::WatchEvent event;
  int received = 0;
  uint64_t last = 0;
  while (reader->Read(&event)) {
    EXPECT_GT(event.revision(), last);
    last = event.revision();
    ++received;
  }
  grpc::Status status = reader->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_NE(status.error_message().find("resume from revision " +
                                        std::to_string(last)),
            std::string::npos)
      << status.error_message();
  EXPECT_LT(received, 12000);
  // Resuming from there delivers the rest, in order, if the server still
  // keeps it (16 MiB of history: ~4,000 of these changes); else it says
  // resync. How much HTTP/2 let through before the end decides which.
  grpc::ClientContext resume_context;
  watch.set_from_revision(last);
  auto resumed = stub_->Watch(&resume_context, watch);
  int rest = 0;
  bool resync = false;
  while (received + rest < 12000 && resumed->Read(&event)) {
    if (event.resync()) {
      resync = true;
      break;
    }
    EXPECT_GT(event.revision(), last);
    last = event.revision();
    ++rest;
  }
  if (resync) {
    EXPECT_GT(12000 - received, 4000) << "the rest was kept: no resync due";
  } else {
    EXPECT_EQ(received + rest, 12000);
  }
  resume_context.TryCancel();
  resumed->Finish();
}

}  // namespace
}  // namespace cluster2
