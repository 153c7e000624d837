// StatusRegistry: named values registered by the processes of a cluster,
// read and changed through the master.
//
// A worker registers a name over its session; the master (or an embedding
// app) registers local ones with a view and an update function. Get() asks
// every registrant of a name for its value and waits for the answers until a
// deadline: a registrant that does not answer in time is an entry with an
// error, not a failure of the call. Set() calls every registrant's update.
// When a worker's session ends, its registrations and pending answers go.
//
// Thread-safe. StatusChannel methods are called with the registry's mutex
// held and must not block or call back.
#ifndef CLUSTER2_MASTER_INTERNAL_STATUS_REGISTRY_H_
#define CLUSTER2_MASTER_INTERNAL_STATUS_REGISTRY_H_

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "google/protobuf/struct.pb.h"

namespace cluster2 {

// How the registry asks a worker; answers come back through Answer().
class StatusChannel {
 public:
  virtual ~StatusChannel() = default;
  virtual void SendQuery(uint64_t id, const std::string& name) = 0;
  virtual void SendUpdate(uint64_t id, const std::string& name,
                          const google::protobuf::Value& value) = 0;
};

struct StatusEntryValue {
  pid_t pid = 0;
  std::optional<unsigned> worker_id;  // unset for the master
  google::protobuf::Value value;
  std::string error;  // set when the registrant failed or did not answer
};

class StatusRegistry {
 public:
  using View = std::function<google::protobuf::Value()>;
  // Returns the value after the update, or an error.
  using Update = std::function<absl::StatusOr<google::protobuf::Value>(
      const google::protobuf::Value&)>;

  explicit StatusRegistry(pid_t master_pid) : master_pid_(master_pid) {}

  // A worker's registration of `name` (or its removal).
  void Register(pid_t pid, unsigned worker_id, const std::string& name,
                StatusChannel* channel) ABSL_LOCKS_EXCLUDED(mu_);
  void Unregister(pid_t pid, const std::string& name) ABSL_LOCKS_EXCLUDED(mu_);
  // The worker's session ended: its registrations vanish and its pending
  // answers become "gone" errors.
  void RemoveProcess(pid_t pid) ABSL_LOCKS_EXCLUDED(mu_);
  // A registration in the master itself; `update` may be null (read-only).
  void RegisterLocal(const std::string& name, View view, Update update)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Registered names, sorted.
  std::vector<std::string> Names() const ABSL_LOCKS_EXCLUDED(mu_);
  // How many processes registered each name.
  std::map<std::string, size_t> Registrants() const ABSL_LOCKS_EXCLUDED(mu_);
  // One entry per registrant, the master's first, then by pid. NOT_FOUND
  // if nobody registered `name`.
  absl::StatusOr<std::vector<StatusEntryValue>> Get(const std::string& name,
                                                    absl::Duration timeout)
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<std::vector<StatusEntryValue>> Set(
      const std::string& name, const google::protobuf::Value& value,
      absl::Duration timeout) ABSL_LOCKS_EXCLUDED(mu_);
  // A worker's answer to query or update `id`.
  void Answer(pid_t pid, uint64_t id, const google::protobuf::Value& value,
              const std::string& error) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Registrant {
    unsigned worker_id = 0;
    StatusChannel* channel = nullptr;
  };
  struct Local {
    View view;
    Update update;
  };
  struct Pending {
    pid_t pid = 0;
    bool answered = false;
    google::protobuf::Value value;
    std::string error;
  };

  absl::StatusOr<std::vector<StatusEntryValue>> Ask(
      const std::string& name, const google::protobuf::Value* update,
      absl::Duration timeout) ABSL_LOCKS_EXCLUDED(mu_);

  const pid_t master_pid_;
  mutable absl::Mutex mu_;
  // name -> pid -> registrant
  std::map<std::string, std::map<pid_t, Registrant>> workers_
      ABSL_GUARDED_BY(mu_);
  std::map<std::string, Local> locals_ ABSL_GUARDED_BY(mu_);
  std::map<uint64_t, Pending> pending_ ABSL_GUARDED_BY(mu_);
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
};

}  // namespace cluster2

#endif  // CLUSTER2_MASTER_INTERNAL_STATUS_REGISTRY_H_
