// ReuseportSelector: which socket of a SO_REUSEPORT group gets each new
// connection, by a BPF program the master attaches to the group.
//
// Without a program the kernel picks a socket by a hash of the connection's
// addresses: even for many connections, uneven for a few dozen (64
// keep-alive connections over 4 sockets: max/mean 1.2-1.4), and blind to
// sockets whose worker is paused, gone or draining. The programs here send
// connections only to the `targets` the master names (socket indices in
// the group: the order the sockets started listening) and spread them
// - round robin (Method::kRoundRobin): an eBPF program with a counter in an
//   array map. Loading eBPF needs CAP_BPF (or kernel.unprivileged_bpf_
//   disabled=0); Create tries it once;
// - otherwise by the client's source port (Method::kSourcePort): a classic
//   BPF program, which any process may attach. Linux gives one client
//   host's successive connect()s ports 2-16 apart at random, so windows of
//   16 ports in turn (port >> 4, modulo the targets) walk the targets
//   nearly in order: 64 connections from one host, max/mean 1.18 on average
//   against 1.26 for a hash; many client hosts spread like a hash.
// A program index outside the group makes the kernel fall back to its hash;
// with no targets the programs do that on purpose.
//
// Attaching a program to any socket of a group replaces the group's
// program at once (for SYNs that arrive afterwards); a connection that was
// already assigned stays where it was queued.
//
// Thread-compatible: Select from one thread at a time (the supervisor calls
// it under its lock).
#ifndef CLUSTER2_MASTER_INTERNAL_REUSEPORT_SELECTOR_H_
#define CLUSTER2_MASTER_INTERNAL_REUSEPORT_SELECTOR_H_

#include <linux/bpf.h>
#include <linux/filter.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace cluster2 {

// The classic BPF program that sends a SYN (IPv4, or IPv6 without extension
// headers) to targets[(source_port >> 4) % targets.size()]; with no targets
// it returns 0xffffffff (the kernel's hash). At most 2 * targets.size() + 11
// instructions; targets.size() <= 1024.
std::vector<sock_filter> SourcePortProgram(
    const std::vector<uint32_t>& targets);

// The eBPF program that sends the n-th connection to
// targets[n % targets.size()], counting n in the first (u64) element of the
// array map `counter_map_fd`; with no targets it returns 0xffffffff.
std::vector<bpf_insn> RoundRobinProgram(int counter_map_fd,
                                        const std::vector<uint32_t>& targets);

class ReuseportSelector {
 public:
  enum class Method { kRoundRobin, kSourcePort };

  // Round robin if `try_round_robin` and this process may create the
  // counter map and load the program, else by source port. Never fails.
  static std::unique_ptr<ReuseportSelector> Create(bool try_round_robin = true);
  ~ReuseportSelector();
  ReuseportSelector(const ReuseportSelector&) = delete;
  ReuseportSelector& operator=(const ReuseportSelector&) = delete;

  Method method() const { return method_; }
  // Why Create chose kSourcePort when asked to try round robin; else empty.
  const std::string& why_source_port() const { return why_source_port_; }

  // Attaches to the group of `group_fd` (any socket of it) a program that
  // sends new connections only to the sockets at `targets` (indices in the
  // group); no targets: the kernel's hash over all. A round-robin program
  // the kernel refuses switches this selector to source ports for good.
  // Errors: the setsockopt's errno (INVALID_ARGUMENT for more than 1024
  // targets).
  absl::Status Select(int group_fd, const std::vector<uint32_t>& targets);

 private:
  ReuseportSelector(Method method, int counter_map_fd)
      : method_(method), counter_map_fd_(counter_map_fd) {}
  absl::Status AttachRoundRobin(int group_fd,
                                const std::vector<uint32_t>& targets);

  Method method_;
  int counter_map_fd_;  // -1 for kSourcePort
  std::string why_source_port_;
};

absl::string_view MethodName(ReuseportSelector::Method method);

}  // namespace cluster2

#endif  // CLUSTER2_MASTER_INTERNAL_REUSEPORT_SELECTOR_H_
