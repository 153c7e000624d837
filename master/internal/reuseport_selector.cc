#include "master/internal/reuseport_selector.h"

#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "common/status.h"

namespace cluster2 {
namespace {

constexpr size_t kMaxTargets = 1024;
constexpr uint32_t kKernelHash = 0xffffffffu;

sock_filter Classic(uint16_t code, uint32_t k, uint8_t jt = 0, uint8_t jf = 0) {
  return sock_filter{code, jt, jf, k};
}

bool Identity(const std::vector<uint32_t>& targets) {
  for (size_t i = 0; i < targets.size(); ++i) {
    if (targets[i] != i) return false;
  }
  return true;
}

bpf_insn Insn(uint8_t code, uint8_t dst, uint8_t src, int16_t off,
              int32_t imm) {
  bpf_insn insn{};
  insn.code = code;
  insn.dst_reg = dst;
  insn.src_reg = src;
  insn.off = off;
  insn.imm = imm;
  return insn;
}

long Bpf(int command, bpf_attr* attr) {
  return syscall(__NR_bpf, command, attr, sizeof(*attr));
}

// -1 and errno set on failure.
int CreateCounterMap() {
  bpf_attr attr{};
  attr.map_type = BPF_MAP_TYPE_ARRAY;
  attr.key_size = sizeof(uint32_t);
  attr.value_size = sizeof(uint64_t);
  attr.max_entries = 1;
  return static_cast<int>(Bpf(BPF_MAP_CREATE, &attr));
}

// -1 and errno set on failure.
int LoadSocketFilter(const std::vector<bpf_insn>& program) {
  static const char kLicense[] = "GPL";
  bpf_attr attr{};
  attr.prog_type = BPF_PROG_TYPE_SOCKET_FILTER;
  attr.insns = reinterpret_cast<uint64_t>(program.data());
  attr.insn_cnt = static_cast<uint32_t>(program.size());
  attr.license = reinterpret_cast<uint64_t>(kLicense);
  return static_cast<int>(Bpf(BPF_PROG_LOAD, &attr));
}

}  // namespace

std::vector<sock_filter> SourcePortProgram(
    const std::vector<uint32_t>& targets) {
  if (targets.empty()) return {Classic(BPF_RET | BPF_K, kKernelHash)};
  // A is the IP version; the TCP header follows a variable IPv4 header or
  // the fixed 40 bytes of IPv6. The socket's data starts past the TCP
  // header, so everything is read relative to the network header.
  std::vector<sock_filter> program = {
      Classic(BPF_LD | BPF_B | BPF_ABS, static_cast<uint32_t>(SKF_NET_OFF)),
      Classic(BPF_ALU | BPF_RSH | BPF_K, 4),
      Classic(BPF_JMP | BPF_JEQ | BPF_K, 6, /*jt=*/3, /*jf=*/0),
      Classic(BPF_LDX | BPF_B | BPF_MSH, static_cast<uint32_t>(SKF_NET_OFF)),
      Classic(BPF_LD | BPF_H | BPF_IND, static_cast<uint32_t>(SKF_NET_OFF)),
      Classic(BPF_JMP | BPF_JA, 1),
      Classic(BPF_LD | BPF_H | BPF_ABS,
              static_cast<uint32_t>(SKF_NET_OFF + 40)),
      Classic(BPF_ALU | BPF_RSH | BPF_K, 4),
      Classic(BPF_ALU | BPF_MOD | BPF_K, static_cast<uint32_t>(targets.size())),
  };
  if (Identity(targets)) {
    program.push_back(Classic(BPF_RET | BPF_A, 0));
    return program;
  }
  // Jump offsets are 8 bits: each comparison skips only its own return.
  for (size_t i = 0; i < targets.size(); ++i) {
    program.push_back(Classic(BPF_JMP | BPF_JEQ | BPF_K,
                              static_cast<uint32_t>(i), /*jt=*/0, /*jf=*/1));
    program.push_back(Classic(BPF_RET | BPF_K, targets[i]));
  }
  program.push_back(Classic(BPF_RET | BPF_K, kKernelHash));
  return program;
}

std::vector<bpf_insn> RoundRobinProgram(int counter_map_fd,
                                        const std::vector<uint32_t>& targets) {
  const int32_t kHash = static_cast<int32_t>(kKernelHash);
  if (targets.empty()) {
    return {Insn(BPF_ALU | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, kHash),
            Insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0)};
  }
  std::vector<bpf_insn> program = {
      // key = 0 on the stack; r0 = &counter or null
      Insn(BPF_ST | BPF_MEM | BPF_W, BPF_REG_10, 0, -4, 0),
      Insn(BPF_ALU64 | BPF_MOV | BPF_X, BPF_REG_2, BPF_REG_10, 0, 0),
      Insn(BPF_ALU64 | BPF_ADD | BPF_K, BPF_REG_2, 0, 0, -4),
      Insn(BPF_LD | BPF_DW | BPF_IMM, BPF_REG_1, BPF_PSEUDO_MAP_FD, 0,
           counter_map_fd),
      Insn(0, 0, 0, 0, 0),
      Insn(BPF_JMP | BPF_CALL, 0, 0, 0, BPF_FUNC_map_lookup_elem),
      Insn(BPF_JMP | BPF_JEQ | BPF_K, BPF_REG_0, 0, /*off: to the end*/ 0, 0),
      // r1 = counter++ (atomic), modulo the number of targets
      Insn(BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_1, 0, 0, 1),
      Insn(BPF_STX | BPF_DW | BPF_ATOMIC, BPF_REG_0, BPF_REG_1, 0,
           BPF_ADD | BPF_FETCH),
      Insn(BPF_ALU64 | BPF_MOD | BPF_K, BPF_REG_1, 0, 0,
           static_cast<int32_t>(targets.size())),
  };
  const size_t null_check = 6;
  if (Identity(targets)) {
    program.push_back(
        Insn(BPF_ALU64 | BPF_MOV | BPF_X, BPF_REG_0, BPF_REG_1, 0, 0));
    program.push_back(Insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0));
  } else {
    for (size_t i = 0; i < targets.size(); ++i) {
      program.push_back(Insn(BPF_JMP | BPF_JNE | BPF_K, BPF_REG_1, 0, 2,
                             static_cast<int32_t>(i)));
      program.push_back(Insn(BPF_ALU | BPF_MOV | BPF_K, BPF_REG_0, 0, 0,
                             static_cast<int32_t>(targets[i])));
      program.push_back(Insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0));
    }
  }
  program[null_check].off =
      static_cast<int16_t>(program.size() - (null_check + 1));
  program.push_back(Insn(BPF_ALU | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, kHash));
  program.push_back(Insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0));
  return program;
}

std::unique_ptr<ReuseportSelector> ReuseportSelector::Create(
    bool try_round_robin) {
  if (try_round_robin) {
    int map = CreateCounterMap();
    if (map >= 0) {
      int program = LoadSocketFilter(RoundRobinProgram(map, {0}));
      if (program >= 0) {
        close(program);
        return std::unique_ptr<ReuseportSelector>(
            new ReuseportSelector(Method::kRoundRobin, map));
      }
      std::string why = absl::StrCat(
          "the kernel refuses the round-robin program: ", std::strerror(errno));
      close(map);
      auto selector = std::unique_ptr<ReuseportSelector>(
          new ReuseportSelector(Method::kSourcePort, -1));
      selector->why_source_port_ = std::move(why);
      return selector;
    }
    auto selector = std::unique_ptr<ReuseportSelector>(
        new ReuseportSelector(Method::kSourcePort, -1));
    selector->why_source_port_ =
        absl::StrCat("no eBPF for this process (", std::strerror(errno),
                     "): round robin needs CAP_BPF");
    return selector;
  }
  return std::unique_ptr<ReuseportSelector>(
      new ReuseportSelector(Method::kSourcePort, -1));
}

ReuseportSelector::~ReuseportSelector() {
  if (counter_map_fd_ >= 0) close(counter_map_fd_);
}

absl::Status ReuseportSelector::Select(int group_fd,
                                       const std::vector<uint32_t>& targets) {
  if (targets.size() > kMaxTargets) {
    return absl::InvalidArgumentError(absl::StrCat(
        "at most ", kMaxTargets, " sockets, not ", targets.size()));
  }
  if (method_ == Method::kRoundRobin) {
    absl::Status status = AttachRoundRobin(group_fd, targets);
    if (status.ok()) return status;
    LogWarning(absl::StrCat("balance: round robin failed (", status.message(),
                            "); spreading by source port from now on"));
    close(counter_map_fd_);
    counter_map_fd_ = -1;
    method_ = Method::kSourcePort;
  }
  std::vector<sock_filter> program = SourcePortProgram(targets);
  sock_fprog fprog{static_cast<unsigned short>(program.size()), program.data()};
  if (setsockopt(group_fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &fprog,
                 sizeof(fprog)) != 0) {
    return ErrnoStatus(errno, "SO_ATTACH_REUSEPORT_CBPF");
  }
  return absl::OkStatus();
}

absl::Status ReuseportSelector::AttachRoundRobin(
    int group_fd, const std::vector<uint32_t>& targets) {
  int program = LoadSocketFilter(RoundRobinProgram(counter_map_fd_, targets));
  if (program < 0) return ErrnoStatus(errno, "BPF_PROG_LOAD");
  // The group keeps its own reference to the program.
  int result = setsockopt(group_fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_EBPF,
                          &program, sizeof(program));
  int saved = errno;
  close(program);
  if (result != 0) return ErrnoStatus(saved, "SO_ATTACH_REUSEPORT_EBPF");
  return absl::OkStatus();
}

absl::string_view MethodName(ReuseportSelector::Method method) {
  return method == ReuseportSelector::Method::kRoundRobin ? "round robin"
                                                          : "source port";
}

}  // namespace cluster2
