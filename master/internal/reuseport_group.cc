#include "master/internal/reuseport_group.h"

#include <unistd.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/log.h"
#include "master/internal/listener.h"

namespace cluster2 {

absl::StatusOr<std::unique_ptr<ReuseportGroup>> ReuseportGroup::Create(
    const std::string& host, uint16_t port, int backlog, unsigned count,
    bool try_round_robin) {
  absl::StatusOr<std::vector<BoundSocket>> group =
      ListenTcpGroup(host, port, backlog, std::max(count, 1u));
  if (!group.ok()) return group.status();
  std::vector<int> fds;
  for (const BoundSocket& socket : *group) fds.push_back(socket.fd);
  return std::unique_ptr<ReuseportGroup>(
      new ReuseportGroup(host, group->front().port, backlog, std::move(fds),
                         ReuseportSelector::Create(try_round_robin)));
}

std::string ReuseportGroup::Describe() const {
  std::string text(MethodName(selector_->method()));
  if (!selector_->why_source_port().empty())
    absl::StrAppend(&text, " (", selector_->why_source_port(), ")");
  return text;
}

ReuseportGroup::~ReuseportGroup() {
  for (int fd : fds_) close(fd);
}

absl::StatusOr<int> ReuseportGroup::SocketOf(unsigned id) {
  while (fds_.size() <= id) {
    absl::StatusOr<BoundSocket> socket = JoinTcpGroup(host_, port_, backlog_);
    if (!socket.ok()) return socket.status();
    fds_.push_back(socket->fd);
  }
  return fds_[id];
}

void ReuseportGroup::Route(const std::vector<unsigned>& ids) {
  std::vector<uint32_t> targets(ids.begin(), ids.end());
  absl::Status status = selector_->Select(fds_.front(), targets);
  if (!status.ok()) {
    LogError(absl::StrCat("balance: cannot route connections to workers ",
                          absl::StrJoin(ids, ","), ": ", status.message()));
  }
}

}  // namespace cluster2
