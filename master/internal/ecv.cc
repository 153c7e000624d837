#include "master/internal/ecv.h"

#include "absl/strings/str_cat.h"
#include "common/log.h"

namespace cluster2 {

Ecv::Ecv(std::string mode, bool start_marked_down, Clock* clock,
         std::function<unsigned()> ready_workers, std::function<bool()> started,
         std::function<void(const State&)> on_change)
    : clock_(clock),
      ready_workers_(std::move(ready_workers)),
      started_(std::move(started)),
      on_change_(std::move(on_change)),
      mode_(std::move(mode)),
      marked_down_(start_marked_down),
      changed_at_(clock->Now()) {}

const char* Ecv::HealthName(Health health) {
  switch (health) {
    case Health::kUp:
      return "up";
    case Health::kMarkedDown:
      return "marked down";
    case Health::kDown:
      return "down";
  }
  return "?";
}

Ecv::State Ecv::ComputeLocked() {
  State state;
  state.mode = mode_;
  state.marked_down = marked_down_;
  state.ready_workers = ready_workers_();
  bool serving = started_() && state.ready_workers > 0 &&
                 (mode_ != "monitor" || monitor_ok_);
  if (!serving) {
    state.health = Health::kDown;
  } else if (marked_down_ && mode_ == "control") {
    state.health = Health::kMarkedDown;
  } else {
    state.health = Health::kUp;
  }
  state.changed_at = changed_at_;
  state.changed_by = changed_by_;
  return state;
}

Ecv::State Ecv::Get() {
  absl::MutexLock lock(&mu_);
  return ComputeLocked();
}

bool Ecv::UpdateLocked(State* state, const std::string& why) {
  *state = ComputeLocked();
  if (!why.empty()) changed_by_ = why;
  bool changed = state->health != last_health_;
  if (changed) {
    last_health_ = state->health;
    changed_at_ = clock_->Now();
    if (why.empty())
      changed_by_ = absl::StrCat("workers: ", state->ready_workers, " ready");
  }
  state->changed_at = changed_at_;
  state->changed_by = changed_by_;
  return changed;
}

void Ecv::Publish(State state) {
  if (on_change_) on_change_(state);
}

absl::StatusOr<Ecv::State> Ecv::Mark(bool down, const std::string& who) {
  State state;
  bool changed;
  {
    absl::MutexLock lock(&mu_);
    if (mode_ != "control") {
      return absl::FailedPreconditionError(
          "the ECV is in monitor mode: its state follows the app check");
    }
    marked_down_ = down;
    changed = UpdateLocked(&state, who);
  }
  LogInfo(absl::StrCat("ECV marked ", down ? "down" : "up", " by ", who,
                       ": now ", HealthName(state.health)));
  if (changed) Publish(state);
  return state;
}

absl::StatusOr<Ecv::State> Ecv::MarkUp(const std::string& who) {
  return Mark(false, who);
}
absl::StatusOr<Ecv::State> Ecv::MarkDown(const std::string& who) {
  return Mark(true, who);
}

void Ecv::SetMonitorResult(bool ok, const std::string& detail) {
  State state;
  bool changed;
  {
    absl::MutexLock lock(&mu_);
    // The reason shown is the latest check's, whenever it says something
    // new: a first check that failed before the workers were up ("no
    // answer") must not hide the app's real answer ("status 404") later.
    std::string why =
        !monitor_checked_ || monitor_ok_ != ok || monitor_detail_ != detail
            ? absl::StrCat("monitor: ", detail)
            : "";
    monitor_checked_ = true;
    monitor_ok_ = ok;
    monitor_detail_ = detail;
    changed = UpdateLocked(&state, why);
  }
  if (changed) {
    LogInfo(absl::StrCat("ECV ", HealthName(state.health), " (",
                         state.changed_by, ")"));
    Publish(state);
  }
}

void Ecv::SetMode(const std::string& mode, const std::string& first_check) {
  State state;
  bool changed;
  {
    absl::MutexLock lock(&mu_);
    if (mode == mode_) return;
    mode_ = mode;
    if (mode_ == "monitor") {
      monitor_checked_ = true;
      monitor_ok_ = first_check.empty();
      monitor_detail_ = first_check.empty() ? "ok" : first_check;
    }
    changed = UpdateLocked(&state, absl::StrCat("reload: mode ", mode));
  }
  LogInfo(absl::StrCat("ECV mode ", mode, " (reload): now ",
                       HealthName(state.health)));
  if (changed) Publish(state);
}

void Ecv::Refresh() {
  State state;
  bool changed;
  {
    absl::MutexLock lock(&mu_);
    changed = UpdateLocked(&state, "");
  }
  if (changed) {
    LogInfo(absl::StrCat("ECV ", HealthName(state.health), " (",
                         state.changed_by, ")"));
    Publish(state);
  }
}

int Ecv::HttpStatus(const State& state) {
  switch (state.health) {
    case Health::kUp:
      return 200;
    case Health::kMarkedDown:
      return 404;
    case Health::kDown:
      return 503;
  }
  return 503;
}

std::string Ecv::Body(const State& state, const std::string& ip,
                      const std::string& hostname, unsigned port,
                      absl::Time now) {
  const char* status = state.health == Health::kUp           ? "AVAILABLE"
                       : state.health == Health::kMarkedDown ? "DISABLED"
                                                             : "UNAVAILABLE";
  return absl::StrCat("status=", status, "&ServeTraffic=",
                      state.health == Health::kUp ? "true" : "false",
                      "&ip=", ip, "&hostname=", hostname, "&port=", port,
                      "&time=", absl::ToUnixMillis(now), "\n");
}

}  // namespace cluster2
