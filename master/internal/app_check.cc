#include "master/internal/app_check.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace cluster2 {

std::string CheckApp(const AppCheckOptions& options) {
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(options.port));
  std::string host = options.host == "0.0.0.0" ? "127.0.0.1" : options.host;
  if (inet_pton(AF_INET, host.c_str(), &address.sin_addr) != 1) {
    return absl::StrCat("cannot check host ", host);
  }
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  timeval timeout = absl::ToTimeval(options.interval);
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) !=
      0) {
    std::string why = absl::StrCat("connect: ", strerror(errno));
    close(fd);
    return why;
  }
  std::string request = absl::StrCat(
      "GET ", options.path, " HTTP/1.1\r\nHost: ", host, ":", options.port,
      "\r\nUser-Agent: cluster2-ecv\r\nConnection: close\r\n\r\n");
  std::string response;
  if (send(fd, request.data(), request.size(), MSG_NOSIGNAL) ==
      static_cast<ssize_t>(request.size())) {
    char buffer[4096];
    ssize_t n;
    while (response.size() < (1 << 20) &&
           (n = read(fd, buffer, sizeof(buffer))) > 0) {
      response.append(buffer, static_cast<size_t>(n));
    }
  }
  close(fd);
  int status = 0;
  if (response.compare(0, 5, "HTTP/") != 0 || response.size() < 12 ||
      !absl::SimpleAtoi(response.substr(9, 3), &status)) {
    return response.empty() ? "no answer" : "not an HTTP answer";
  }
  if (status != options.expected_status) {
    return absl::StrCat("status ", status, ", expected ",
                        options.expected_status);
  }
  size_t body = response.find("\r\n\r\n");
  if (!options.body_contains.empty() &&
      (body == std::string::npos ||
       response.find(options.body_contains, body) == std::string::npos)) {
    return absl::StrCat("body lacks '", options.body_contains, "'");
  }
  return "";
}

AppCheck::AppCheck(AppCheckOptions options, Ecv* ecv)
    : options_(std::move(options)), ecv_(ecv), thread_([this] { Loop(); }) {}

AppCheck::~AppCheck() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  thread_.join();
}

void AppCheck::Loop() {
  while (true) {
    std::string failure = CheckApp(options_);
    ecv_->SetMonitorResult(
        failure.empty(),
        failure.empty() ? absl::StrCat("GET ", options_.path, " ok") : failure);
    absl::MutexLock lock(&mu_);
    if (mu_.AwaitWithTimeout(absl::Condition(&stopping_), options_.interval))
      return;
  }
}

}  // namespace cluster2
