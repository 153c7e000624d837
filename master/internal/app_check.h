// AppCheck: the ECV's monitor mode. A thread GETs a path of the app through
// the shared service port (so some worker answers) every interval and
// reports to the Ecv whether the answer passes the validator: the expected
// status and, if set, a text the body contains.
//
// Thread-safe: owns its thread; stops it on destruction.
#ifndef CLUSTER2_MASTER_INTERNAL_APP_CHECK_H_
#define CLUSTER2_MASTER_INTERNAL_APP_CHECK_H_

#include <string>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "master/internal/ecv.h"

namespace cluster2 {

struct AppCheckOptions {
  std::string host = "127.0.0.1";  // where the service port accepts
  unsigned port = 0;
  std::string path = "/";
  int expected_status = 200;
  std::string body_contains;
  absl::Duration interval = absl::Seconds(1);
};

// One check: empty if the app passed, else why not ("status 500",
// "connect: Connection refused", "body lacks 'ok'").
std::string CheckApp(const AppCheckOptions& options);

class AppCheck {
 public:
  // Borrows `ecv`.
  AppCheck(AppCheckOptions options, Ecv* ecv);
  ~AppCheck();

 private:
  void Loop();
  const AppCheckOptions options_;
  Ecv* const ecv_;
  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace cluster2

#endif  // CLUSTER2_MASTER_INTERNAL_APP_CHECK_H_
