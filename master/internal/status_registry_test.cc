#include "master/internal/status_registry.h"

#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace cluster2 {
namespace {

google::protobuf::Value Number(double n) {
  google::protobuf::Value value;
  value.set_number_value(n);
  return value;
}

// Answers from a thread, as a worker's session would, unless `silent`.
class FakeWorker final : public StatusChannel {
 public:
  FakeWorker(StatusRegistry* registry, pid_t pid, double value,
             bool silent = false)
      : registry_(registry), pid_(pid), value_(value), silent_(silent) {}
  ~FakeWorker() override {
    for (std::thread& thread : threads_) thread.join();
  }
  void SendQuery(uint64_t id, const std::string&) override {
    Reply(id, value_);
  }
  void SendUpdate(uint64_t id, const std::string&,
                  const google::protobuf::Value& value) override {
    value_ = value.number_value();
    Reply(id, value_);
  }

 private:
  void Reply(uint64_t id, double value) {
    if (silent_) return;
    threads_.emplace_back(
        [this, id, value] { registry_->Answer(pid_, id, Number(value), ""); });
  }
  StatusRegistry* registry_;
  pid_t pid_;
  double value_;
  bool silent_;
  std::vector<std::thread> threads_;
};

TEST(StatusRegistryTest, OneEntryPerRegistrantMasterFirst) {
  StatusRegistry registry(1);
  FakeWorker a(&registry, 10, 5), b(&registry, 11, 6);
  registry.Register(10, 0, "load", &a);
  registry.Register(11, 1, "load", &b);
  registry.RegisterLocal(
      "load", [] { return Number(1); }, nullptr);
  registry.RegisterLocal(
      "workers", [] { return Number(2); }, nullptr);
  EXPECT_EQ(registry.Names(), (std::vector<std::string>{"load", "workers"}));
  auto entries = registry.Get("load", absl::Seconds(5));
  ASSERT_TRUE(entries.ok());
  ASSERT_EQ(entries->size(), 3u);
  EXPECT_EQ((*entries)[0].pid, 1);
  EXPECT_FALSE((*entries)[0].worker_id.has_value());
  EXPECT_EQ((*entries)[1].pid, 10);
  EXPECT_EQ((*entries)[1].worker_id, 0u);
  EXPECT_EQ((*entries)[1].value.number_value(), 5);
  EXPECT_EQ((*entries)[2].value.number_value(), 6);
}

TEST(StatusRegistryTest, SetUpdatesEveryRegistrant) {
  StatusRegistry registry(1);
  FakeWorker a(&registry, 10, 5);
  registry.Register(10, 0, "level", &a);
  double local = 0;
  registry.RegisterLocal(
      "level", [&] { return Number(local); },
      [&](const google::protobuf::Value& value)
          -> absl::StatusOr<google::protobuf::Value> {
        local = value.number_value();
        return Number(local);
      });
  auto set = registry.Set("level", Number(9), absl::Seconds(5));
  ASSERT_TRUE(set.ok());
  EXPECT_EQ((*set)[0].value.number_value(), 9);
  EXPECT_EQ((*set)[1].value.number_value(), 9);
  auto get = registry.Get("level", absl::Seconds(5));
  EXPECT_EQ((*get)[1].value.number_value(), 9);
  EXPECT_EQ(local, 9);
  registry.RegisterLocal(
      "ro", [] { return Number(0); }, nullptr);
  EXPECT_EQ((*registry.Set("ro", Number(1), absl::Seconds(1)))[0].error,
            "read-only in the master");
}

TEST(StatusRegistryTest, ASilentRegistrantIsAnEntryWithAnErrorNotAFailure) {
  StatusRegistry registry(1);
  FakeWorker good(&registry, 10, 5), silent(&registry, 11, 0, /*silent=*/true);
  registry.Register(10, 0, "s", &good);
  registry.Register(11, 1, "s", &silent);
  // Long enough for the good one on a loaded machine.
  auto entries = registry.Get("s", absl::Seconds(1));
  ASSERT_TRUE(entries.ok());
  ASSERT_EQ(entries->size(), 2u);
  EXPECT_TRUE((*entries)[0].error.empty());
  EXPECT_EQ((*entries)[1].error, "no answer within 1s");
}

TEST(StatusRegistryTest, AGoneWorkerVanishesAndUnknownNamesAreNotFound) {
  StatusRegistry registry(1);
  FakeWorker a(&registry, 10, 5), b(&registry, 11, 6);
  registry.Register(10, 0, "s", &a);
  registry.Register(11, 1, "s", &b);
  registry.RemoveProcess(11);
  auto entries = registry.Get("s", absl::Seconds(5));
  ASSERT_EQ(entries->size(), 1u);
  EXPECT_EQ((*entries)[0].pid, 10);
  registry.Unregister(10, "s");
  EXPECT_EQ(registry.Get("s", absl::Seconds(1)).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_TRUE(registry.Names().empty());
}

}  // namespace
}  // namespace cluster2
