#include "tests/testing/harness.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"

extern char** environ;

namespace cluster2::testing {
namespace {

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

pid_t Spawn(const std::vector<std::string>& argv,
            const std::vector<std::string>& env, const std::string& out_path,
            const std::string& err_path) {
  std::vector<std::string> environment;
  for (char** entry = environ; *entry != nullptr; ++entry)
    environment.emplace_back(*entry);
  environment.insert(environment.end(), env.begin(), env.end());
  std::vector<char*> args;
  for (const auto& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  std::vector<char*> envp;
  for (const auto& entry : environment)
    envp.push_back(const_cast<char*>(entry.c_str()));
  envp.push_back(nullptr);
  pid_t pid = fork();
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);  // a crashed test leaves nothing behind
    int out = open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int err = open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(out, 1);
    dup2(err, 2);
    int null = open("/dev/null", O_RDONLY);
    dup2(null, 0);
    execve(args[0], args.data(), envp.data());
    _exit(127);
  }
  return pid;
}

}  // namespace

std::string BinaryPath(const std::string& workspace_relative) {
  const char* runfiles = std::getenv("TEST_SRCDIR");
  const char* workspace = std::getenv("TEST_WORKSPACE");
  return absl::StrCat(runfiles ? runfiles : ".", "/",
                      workspace ? workspace : "cluster2", "/",
                      workspace_relative);
}

TempDir::TempDir() {
  char pattern[] = "/tmp/c2t-XXXXXX";
  path_ = mkdtemp(pattern);
}

TempDir::~TempDir() { RunCommand({"/bin/rm", "-rf", path_}); }

int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address));
  socklen_t length = sizeof(address);
  getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  close(fd);
  return ntohs(address.sin_port);
}

int FreePortBelowEphemeral() {
  int low = 32768;
  std::ifstream range("/proc/sys/net/ipv4/ip_local_port_range");
  range >> low;
  const int first = 10000;
  const int span = std::max(1000, low - first);
  std::random_device random;
  for (int attempt = 0; attempt < 200; ++attempt) {
    int port = first + static_cast<int>(random() % span);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = htons(static_cast<uint16_t>(port));
    bool free =
        bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0;
    close(fd);
    if (free) return port;
  }
  return FreePort();
}

Process::Process(std::vector<std::string> argv, std::vector<std::string> env) {
  static int counter = 0;
  std::string base = absl::StrCat(
      std::getenv("TEST_TMPDIR") ? std::getenv("TEST_TMPDIR") : "/tmp",
      "/proc-", getpid(), "-", counter++);
  out_path_ = base + ".out";
  err_path_ = base + ".err";
  pid_ = Spawn(argv, env, out_path_, err_path_);
}

Process::~Process() {
  if (pid_ > 0 && !reaped_) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
}

std::optional<int> Process::Wait(absl::Duration timeout) {
  if (reaped_) return std::nullopt;
  absl::Time deadline = absl::Now() + timeout;
  while (true) {
    int status = 0;
    pid_t done = waitpid(pid_, &status, WNOHANG);
    if (done == pid_) {
      reaped_ = true;
      return status;
    }
    if (absl::Now() >= deadline) return std::nullopt;
    absl::SleepFor(absl::Milliseconds(10));
  }
}

void Process::Signal(int signal) {
  if (!reaped_) kill(pid_, signal);
}

std::string Process::Stdout() const { return ReadFile(out_path_); }
std::string Process::Stderr() const { return ReadFile(err_path_); }

bool WaitUntil(const std::function<bool()>& condition, absl::Duration timeout) {
  absl::Time deadline = absl::Now() + timeout;
  while (true) {
    if (condition()) return true;
    if (absl::Now() >= deadline) return false;
    absl::SleepFor(absl::Milliseconds(20));
  }
}

bool ProcessAlive(pid_t pid) {
  std::string stat = ReadFile(absl::StrCat("/proc/", pid, "/stat"));
  if (stat.empty()) return false;
  size_t close = stat.rfind(')');
  return close == std::string::npos || close + 2 >= stat.size() ||
         stat[close + 2] != 'Z';
}

HttpResult HttpGet(int port, const std::string& path, absl::Duration timeout) {
  HttpResult result;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  timeval tv = absl::ToTimeval(timeout);
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) !=
      0) {
    result.error = absl::StrCat("connect: ", strerror(errno));
    close(fd);
    return result;
  }
  std::string request =
      absl::StrCat("GET ", path, " HTTP/1.1\r\nHost: 127.0.0.1:", port,
                   "\r\nConnection: close\r\n\r\n");
  if (write(fd, request.data(), request.size()) !=
      static_cast<ssize_t>(request.size())) {
    result.error = absl::StrCat("write: ", strerror(errno));
    close(fd);
    return result;
  }
  std::string response;
  char buffer[4096];
  ssize_t n;
  while ((n = read(fd, buffer, sizeof(buffer))) > 0) response.append(buffer, n);
  if (n < 0) result.error = absl::StrCat("read: ", strerror(errno));
  close(fd);
  // "HTTP/1.1 200 OK\r\n...\r\n\r\nbody"
  size_t header_end = response.find("\r\n\r\n");
  std::vector<std::string> status_line =
      absl::StrSplit(response.substr(0, response.find("\r\n")), ' ');
  if (header_end == std::string::npos || status_line.size() < 2 ||
      !absl::SimpleAtoi(status_line[1], &result.status)) {
    if (result.error.empty())
      result.error = absl::StrCat("malformed response: '", response, "'");
    result.status = 0;
    return result;
  }
  result.body = response.substr(header_end + 4);
  return result;
}

LoadGenerator::LoadGenerator(int port, int threads, bool keep_alive)
    : port_(port) {
  for (int i = 0; i < threads; ++i)
    threads_.emplace_back([this, keep_alive] { Run(keep_alive); });
}

LoadGenerator::~LoadGenerator() { Stop(); }

void LoadGenerator::Stop() {
  stop_ = true;
  for (std::thread& thread : threads_) {
    if (thread.joinable()) thread.join();
  }
}

std::vector<std::string> LoadGenerator::errors() const {
  std::lock_guard<std::mutex> lock(mu_);
  return errors_;
}

void LoadGenerator::Run(bool keep_alive) {
  int fd = -1;
  auto fail = [&](const std::string& why) {
    failed_.fetch_add(1);
    std::lock_guard<std::mutex> lock(mu_);
    if (errors_.size() < 10) errors_.push_back(why);
  };
  std::string request =
      absl::StrCat("GET / HTTP/1.1\r\nHost: 127.0.0.1:", port_, "\r\n",
                   keep_alive ? "" : "Connection: close\r\n", "\r\n");
  while (!stop_.load()) {
    if (fd < 0) {
      fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_in address{};
      address.sin_family = AF_INET;
      address.sin_port = htons(static_cast<uint16_t>(port_));
      address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      timeval tv = {5, 0};
      setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
      if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) !=
          0) {
        fail(absl::StrCat("connect: ", strerror(errno)));
        close(fd);
        fd = -1;
        continue;
      }
    }
    if (send(fd, request.data(), request.size(), MSG_NOSIGNAL) !=
        static_cast<ssize_t>(request.size())) {
      fail(absl::StrCat("send: ", strerror(errno)));
      close(fd);
      fd = -1;
      continue;
    }
    // Read the headers, then Content-Length bytes of body.
    std::string response;
    char buffer[4096];
    size_t header_end = std::string::npos;
    size_t need = 0;
    bool complete = false;
    while (true) {
      ssize_t n = read(fd, buffer, sizeof(buffer));
      if (n <= 0) break;
      response.append(buffer, static_cast<size_t>(n));
      if (header_end == std::string::npos) {
        header_end = response.find("\r\n\r\n");
        if (header_end == std::string::npos) continue;
        size_t length = response.find("Content-Length: ");
        size_t value = 0;
        if (length != std::string::npos && length < header_end) {
          absl::SimpleAtoi(
              response.substr(length + 16,
                              response.find("\r\n", length) - length - 16),
              &value);
        }
        need = header_end + 4 + value;
      }
      if (response.size() >= need) {
        complete = true;
        break;
      }
    }
    bool close_after =
        !keep_alive || response.find("Connection: close") < header_end;
    if (!complete) {
      fail(response.empty()
               ? "connection closed without a response"
               : absl::StrCat("incomplete response: ", response.substr(0, 40)));
      close(fd);
      fd = -1;
      continue;
    }
    if (response.compare(0, 10, "HTTP/1.1 2") == 0) {
      ok_.fetch_add(1);
    } else {
      fail(absl::StrCat("status: ", response.substr(0, response.find("\r\n"))));
    }
    if (close_after) {
      close(fd);
      fd = -1;
    }
  }
  if (fd >= 0) close(fd);
}

CommandResult RunCommand(std::vector<std::string> argv,
                         absl::Duration timeout) {
  CommandResult result;
  Process process(std::move(argv));
  std::optional<int> status = process.Wait(timeout);
  if (status && WIFEXITED(*status)) result.exit_code = WEXITSTATUS(*status);
  result.out = process.Stdout();
  result.err = process.Stderr();
  return result;
}

std::vector<std::string> Lines(const std::string& text,
                               const std::string& prefix) {
  std::vector<std::string> lines;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (absl::StartsWith(line, prefix)) lines.emplace_back(line);
  }
  return lines;
}

}  // namespace cluster2::testing
