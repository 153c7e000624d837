#include "master/internal/spawn.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <optional>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/status.h"

extern char** environ;

namespace cluster2 {
namespace {

bool HasReservedName(const std::string& entry) {
  return IsWorkerVariable(absl::string_view(entry).substr(0, entry.find('=')));
}

// Writes `value` in decimal at `out` (async-signal-safe); returns the end.
char* FormatDecimal(long value, char* out) {
  char digits[24];
  int n = 0;
  do {
    digits[n++] = static_cast<char>('0' + value % 10);
    value /= 10;
  } while (value > 0);
  while (n > 0) *out++ = digits[--n];
  *out = '\0';
  return out;
}

void WriteError(const char* what, const char* path) {
  const char* reason = strerror(errno);  // not strictly AS-safe, but only reads
  const char* parts[] = {
      "cluster2: cannot ", what, " ", path, ": ", reason, "\n"};
  for (const char* part : parts) {
    ssize_t ignored = write(STDERR_FILENO, part, strlen(part));
    (void)ignored;
  }
}

}  // namespace

absl::StatusOr<std::string> ResolveExecutable(const std::string& name,
                                              const std::string& cwd) {
  if (name.empty()) return absl::InvalidArgumentError("empty command");
  auto executable = [](const std::string& path) {
    return access(path.c_str(), X_OK) == 0;
  };
  if (name.find('/') != std::string::npos) {
    std::string path =
        name[0] == '/' || cwd.empty() ? name : absl::StrCat(cwd, "/", name);
    if (executable(path)) return path;
    return ErrnoStatus(errno, absl::StrCat("worker command ", path));
  }
  const char* search = std::getenv("PATH");
  for (absl::string_view dir :
       absl::StrSplit(search ? search : "/usr/bin:/bin", ':')) {
    std::string path = absl::StrCat(dir.empty() ? "." : dir, "/", name);
    if (executable(path)) return path;
  }
  return absl::NotFoundError(
      absl::StrCat("worker command '", name, "' not found in PATH"));
}

bool IsWorkerVariable(absl::string_view name) {
  static constexpr absl::string_view kNames[] = {
      "CLUSTER2_NAME",
      "CLUSTER2_MASTER",
      "CLUSTER2_CACHE",
      "CLUSTER2_WORKER_ID",
      "CLUSTER2_WORKER_TOKEN",
      "CLUSTER2_HEARTBEAT_INTERVAL_MS",
      "CLUSTER2_WORKER_GROUP",
      "CLUSTER2_UNDER_DEBUGGER",
      "LISTEN_FDS",
      "LISTEN_PID",
      "LISTEN_FDNAMES"};
  for (absl::string_view reserved : kNames) {
    if (name == reserved) return true;
  }
  return false;
}

std::vector<std::string> BuildWorkerEnvironment(
    const std::vector<std::string>& base, const std::vector<std::string>& extra,
    const WorkerEnvironment& worker) {
  std::vector<std::string> env;
  env.reserve(base.size() + extra.size() + 8);
  for (const std::string& entry : base) {
    if (!HasReservedName(entry)) env.push_back(entry);
  }
  for (const std::string& entry : extra) {
    if (!HasReservedName(entry)) env.push_back(entry);
  }
  env.push_back(absl::StrCat("CLUSTER2_NAME=", worker.cluster_name));
  env.push_back(absl::StrCat("CLUSTER2_MASTER=", worker.master_address));
  if (!worker.cache_address.empty()) {
    env.push_back(absl::StrCat("CLUSTER2_CACHE=", worker.cache_address));
  }
  env.push_back(absl::StrCat("CLUSTER2_WORKER_ID=", worker.worker_id));
  env.push_back(absl::StrCat("CLUSTER2_WORKER_TOKEN=", worker.token));
  env.push_back(absl::StrCat("CLUSTER2_HEARTBEAT_INTERVAL_MS=",
                             worker.heartbeat_interval_ms));
  env.push_back("LISTEN_FDS=1");
  env.push_back("LISTEN_FDNAMES=app");
  return env;
}

std::vector<std::string> CurrentEnvironment() {
  std::vector<std::string> env;
  for (char** entry = environ; *entry != nullptr; ++entry)
    env.emplace_back(*entry);
  return env;
}

struct PosixProcessLauncher::Request {
  const SpawnSpec* spec;
  std::optional<absl::StatusOr<pid_t>> result;  // set by the spawner
};

PosixProcessLauncher::PosixProcessLauncher(OutputCollector* output,
                                           rlim_t child_descriptor_limit)
    : output_(output),
      child_descriptor_limit_(child_descriptor_limit),
      spawner_([this] { SpawnerLoop(); }) {}

PosixProcessLauncher::~PosixProcessLauncher() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  spawner_.join();
}

absl::StatusOr<pid_t> PosixProcessLauncher::Launch(const SpawnSpec& spec) {
  Request request{&spec, std::nullopt};
  absl::MutexLock lock(&mu_);
  // One request at a time: wait for the slot, then for the answer.
  mu_.Await(absl::Condition(
      +[](Request** pending) { return *pending == nullptr; }, &pending_));
  if (stopping_) return absl::UnavailableError("the launcher is stopping");
  pending_ = &request;
  mu_.Await(absl::Condition(
      +[](Request* r) { return r->result.has_value(); }, &request));
  return *std::move(request.result);
}

void PosixProcessLauncher::SpawnerLoop() {
  pthread_setname_np(pthread_self(), "spawner");
  absl::MutexLock lock(&mu_);
  while (true) {
    mu_.Await(absl::Condition(
        +[](PosixProcessLauncher* self) ABSL_NO_THREAD_SAFETY_ANALYSIS {
          return self->pending_ != nullptr || self->stopping_;
        },
        this));
    if (pending_ == nullptr) return;  // stopping, nothing asked
    Request* request = pending_;
    // fork() under our own lock is fine: the child never touches it.
    request->result = ForkExec(*request->spec);
    pending_ = nullptr;
  }
}

absl::StatusOr<pid_t> PosixProcessLauncher::ForkExec(const SpawnSpec& spec) {
  if (spec.argv.empty()) return absl::InvalidArgumentError("empty command");
  CLUSTER2_ASSIGN_OR_RETURN(std::string path,
                            ResolveExecutable(spec.argv[0], spec.cwd));
  // Everything the child touches is built here, before fork().
  std::vector<char*> argv;
  for (const std::string& arg : spec.argv)
    argv.push_back(const_cast<char*>(arg.c_str()));
  argv.push_back(nullptr);
  std::vector<char*> envp;
  for (const std::string& entry : spec.env)
    envp.push_back(const_cast<char*>(entry.c_str()));
  char listen_pid[32] = "LISTEN_PID=";
  char* listen_pid_digits = listen_pid + strlen(listen_pid);
  if (spec.listen_fd >= 0) envp.push_back(listen_pid);
  envp.push_back(nullptr);
  const char* cwd = spec.cwd.empty() ? nullptr : spec.cwd.c_str();
  const pid_t parent = getpid();
  sigset_t empty_mask;
  sigemptyset(&empty_mask);
  rlimit descriptors;
  bool restore_limit = child_descriptor_limit_ != 0 &&
                       getrlimit(RLIMIT_NOFILE, &descriptors) == 0 &&
                       descriptors.rlim_cur != child_descriptor_limit_;
  descriptors.rlim_cur = child_descriptor_limit_;

  int output[2] = {-1, -1};
  if (output_ != nullptr && !spec.log_component.empty() && spec.output_fd < 0 &&
      pipe2(output, O_CLOEXEC) != 0) {
    return ErrnoStatus(errno, "pipe2");
  }

  pid_t pid = fork();
  if (pid != 0) {
    int saved = errno;
    if (output[1] >= 0) close(output[1]);
    if (pid < 0) {
      if (output[0] >= 0) close(output[0]);
      return ErrnoStatus(saved, "fork");
    }
    if (output[0] >= 0) output_->Watch(output[0], spec.log_component, pid);
    return pid;
  }

  // Child: async-signal-safe calls only from here to exec.
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != parent) _exit(127);  // the master died before prctl
  setpgid(0, 0);
  if (restore_limit) setrlimit(RLIMIT_NOFILE, &descriptors);
  signal(SIGPIPE, SIG_DFL);
  sigprocmask(SIG_SETMASK, &empty_mask, nullptr);
  if (output[1] >= 0) {  // before fd 3 is taken: the pipe may sit there
    dup2(output[1], STDOUT_FILENO);
    dup2(output[1], STDERR_FILENO);
  }
  if (spec.output_fd >= 0) {
    dup2(spec.output_fd, STDOUT_FILENO);
    dup2(spec.output_fd, STDERR_FILENO);
  }
  if (spec.listen_fd >= 0) {
    if (spec.listen_fd == 3) {
      fcntl(3, F_SETFD, 0);
    } else if (dup2(spec.listen_fd, 3) < 0) {
      WriteError("pass the listening socket to", argv[0]);
      _exit(127);
    }
    FormatDecimal(getpid(), listen_pid_digits);
  }
  // Nothing else of the master's leaks into the worker.
  syscall(SYS_close_range, spec.listen_fd >= 0 ? 4 : 3, ~0U, 0);
  if (cwd != nullptr && chdir(cwd) != 0) {
    WriteError("change directory to", cwd);
    _exit(127);
  }
  execve(path.c_str(), argv.data(), envp.data());
  WriteError("execute", argv[0]);
  _exit(127);
}

void PosixProcessLauncher::Signal(pid_t pid, int signal) {
  if (pid > 0) kill(pid, signal);
}

}  // namespace cluster2
