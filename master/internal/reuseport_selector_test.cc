#include "master/internal/reuseport_selector.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include "gtest/gtest.h"
#include "master/internal/listener.h"

namespace cluster2 {
namespace {

// Runs a classic BPF program the way the kernel runs a reuseport program
// on a SYN: loads at SKF_NET_OFF + n read byte n of `network` (the IP
// header followed by the TCP header). Only the instructions
// SourcePortProgram uses; anything else fails the test.
uint32_t RunClassic(const std::vector<sock_filter>& program,
                    const std::vector<uint8_t>& network) {
  uint32_t a = 0;
  uint32_t x = 0;
  auto at = [&](int64_t k, size_t size) -> uint32_t {
    int64_t offset = k - SKF_NET_OFF;
    EXPECT_GE(offset, 0);
    EXPECT_LE(offset + static_cast<int64_t>(size),
              static_cast<int64_t>(network.size()));
    uint32_t value = 0;
    for (size_t i = 0; i < size; ++i) value = value << 8 | network[offset + i];
    return value;
  };
  for (size_t pc = 0; pc < program.size(); ++pc) {
    const sock_filter& f = program[pc];
    const int32_t k = static_cast<int32_t>(f.k);
    switch (f.code) {
      case BPF_LD | BPF_B | BPF_ABS:
        a = at(k, 1);
        break;
      case BPF_LD | BPF_H | BPF_ABS:
        a = at(k, 2);
        break;
      case BPF_LD | BPF_H | BPF_IND:
        a = at(static_cast<int64_t>(x) + k, 2);
        break;
      case BPF_LDX | BPF_B | BPF_MSH:
        x = 4 * (at(k, 1) & 0xf);
        break;
      case BPF_ALU | BPF_RSH | BPF_K:
        a >>= f.k;
        break;
      case BPF_ALU | BPF_MOD | BPF_K:
        a %= f.k;
        break;
      case BPF_JMP | BPF_JA:
        pc += f.k;
        break;
      case BPF_JMP | BPF_JEQ | BPF_K:
        pc += a == f.k ? f.jt : f.jf;
        break;
      case BPF_RET | BPF_K:
        return f.k;
      case BPF_RET | BPF_A:
        return a;
      default:
        ADD_FAILURE() << "unexpected instruction " << f.code << " at " << pc;
        return 0;
    }
  }
  ADD_FAILURE() << "fell off the end";
  return 0;
}

std::vector<uint8_t> Ipv4Syn(uint16_t source_port, unsigned options_words) {
  std::vector<uint8_t> packet(4 * (5 + options_words) + 20, 0);
  packet[0] = static_cast<uint8_t>(0x40 | (5 + options_words));
  packet[9] = IPPROTO_TCP;
  size_t tcp = 4 * (5 + options_words);
  packet[tcp] = static_cast<uint8_t>(source_port >> 8);
  packet[tcp + 1] = static_cast<uint8_t>(source_port);
  packet[tcp + 2] = 0x1f;  // destination port 8080: must not be read
  packet[tcp + 3] = 0x90;
  return packet;
}

std::vector<uint8_t> Ipv6Syn(uint16_t source_port) {
  std::vector<uint8_t> packet(40 + 20, 0);
  packet[0] = 0x60;
  packet[6] = IPPROTO_TCP;
  packet[40] = static_cast<uint8_t>(source_port >> 8);
  packet[41] = static_cast<uint8_t>(source_port);
  return packet;
}

TEST(SourcePortProgramTest, WindowsOfSixteenPortsTakeTheTargetsInTurn) {
  std::vector<sock_filter> program = SourcePortProgram({0, 1, 2, 3});
  for (uint16_t port = 32768; port < 33280; port += 2) {
    uint32_t expected = (port >> 4) % 4;
    EXPECT_EQ(RunClassic(program, Ipv4Syn(port, 0)), expected) << port;
    EXPECT_EQ(RunClassic(program, Ipv4Syn(port, 3)), expected) << port;
    EXPECT_EQ(RunClassic(program, Ipv6Syn(port)), expected) << port;
  }
}

TEST(SourcePortProgramTest, MapsOntoTheTargetsOnly) {
  const std::vector<uint32_t> targets = {5, 2, 7};
  std::vector<sock_filter> program = SourcePortProgram(targets);
  std::vector<int> hits(8, 0);
  for (uint32_t port = 1024; port < 65536; ++port) {
    uint32_t index = RunClassic(program, Ipv4Syn(port, 0));
    ASSERT_LT(index, 8u);
    EXPECT_EQ(index, targets[(port >> 4) % 3]) << port;
    ++hits[index];
  }
  EXPECT_EQ(hits[0] + hits[1] + hits[3] + hits[4] + hits[6], 0);
  for (uint32_t target : targets) EXPECT_GT(hits[target], 20000);
}

TEST(SourcePortProgramTest, NoTargetsLeavesItToTheKernelsHash) {
  std::vector<sock_filter> program = SourcePortProgram({});
  ASSERT_EQ(program.size(), 1u);
  EXPECT_EQ(RunClassic(program, Ipv4Syn(40000, 0)), 0xffffffffu);
}

TEST(SourcePortProgramTest, StaysWithinTheClassicLimit) {
  std::vector<uint32_t> targets;
  for (uint32_t i = 0; i < 1024; ++i) targets.push_back(1023 - i);
  std::vector<sock_filter> program = SourcePortProgram(targets);
  EXPECT_LE(program.size(), static_cast<size_t>(BPF_MAXINSNS));
  EXPECT_EQ(RunClassic(program, Ipv4Syn(16 * 5, 0)), 1023u - 5);
}

TEST(RoundRobinProgramTest, CountsModuloTheTargetsAndMapsThem) {
  std::vector<bpf_insn> identity = RoundRobinProgram(7, {0, 1, 2});
  std::vector<bpf_insn> mapped = RoundRobinProgram(7, {4, 9});
  for (const std::vector<bpf_insn>* program : {&identity, &mapped}) {
    // the map is the counter map, and the program ends in an exit
    EXPECT_EQ((*program)[3].src_reg, BPF_PSEUDO_MAP_FD);
    EXPECT_EQ((*program)[3].imm, 7);
    EXPECT_EQ(program->back().code, BPF_JMP | BPF_EXIT);
    // a missing map element jumps to the final "return 0xffffffff"
    const bpf_insn& null_check = (*program)[6];
    EXPECT_EQ(null_check.code, BPF_JMP | BPF_JEQ | BPF_K);
    EXPECT_EQ(6 + 1 + null_check.off, static_cast<int>(program->size()) - 2);
    EXPECT_EQ((*program)[program->size() - 2].imm, -1);
  }
  EXPECT_EQ(identity[9].code, BPF_ALU64 | BPF_MOD | BPF_K);
  EXPECT_EQ(identity[9].imm, 3);
  EXPECT_EQ(mapped[9].imm, 2);
  // target i is returned after "if r1 != i skip"
  EXPECT_EQ(mapped[10].imm, 0);
  EXPECT_EQ(mapped[11].imm, 4);
  EXPECT_EQ(mapped[13].imm, 1);
  EXPECT_EQ(mapped[14].imm, 9);
  EXPECT_EQ(RoundRobinProgram(7, {}).size(), 2u);
}

// The programs in the kernel: connections to a group of 4 loopback
// sockets, counted by accepting on each.
class SelectorInKernelTest
    : public ::testing::TestWithParam<ReuseportSelector::Method> {
 protected:
  void SetUp() override {
    selector_ = ReuseportSelector::Create(
        GetParam() == ReuseportSelector::Method::kRoundRobin);
    if (selector_->method() != GetParam()) {
      GTEST_SKIP() << "this process may not load eBPF";
    }
    auto group = ListenTcpGroup("127.0.0.1", 0, 256, 4);
    ASSERT_TRUE(group.ok()) << group.status();
    group_ = *group;
    for (const BoundSocket& socket : group_) {
      fcntl(socket.fd, F_SETFL, O_NONBLOCK);
    }
  }
  void TearDown() override {
    for (int fd : clients_) close(fd);
    for (const BoundSocket& socket : group_) close(socket.fd);
  }

  void Connect(int count) {
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(group_[0].port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (int i = 0; i < count; ++i) {
      int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      ASSERT_EQ(
          connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)),
          0)
          << std::strerror(errno);
      clients_.push_back(fd);
    }
  }

  // Accepts everything queued on each socket (loopback handshakes are
  // complete once connect() returns).
  std::vector<int> Accepted() {
    std::vector<int> counts;
    for (const BoundSocket& socket : group_) {
      int count = 0;
      for (int fd; (fd = accept(socket.fd, nullptr, nullptr)) >= 0; ++count) {
        close(fd);
      }
      counts.push_back(count);
    }
    return counts;
  }

  std::unique_ptr<ReuseportSelector> selector_;
  std::vector<BoundSocket> group_;
  std::vector<int> clients_;
};

TEST_P(SelectorInKernelTest, ExcludedSocketsGetNoConnection) {
  ASSERT_TRUE(selector_->Select(group_[2].fd, {1, 3}).ok());
  Connect(200);
  std::vector<int> counts = Accepted();
  EXPECT_EQ(counts[0], 0);
  EXPECT_EQ(counts[2], 0);
  EXPECT_EQ(counts[1] + counts[3], 200);
  if (GetParam() == ReuseportSelector::Method::kRoundRobin) {
    EXPECT_EQ(counts[1], 100);
  } else {
    EXPECT_GT(counts[1], 50);
    EXPECT_GT(counts[3], 50);
  }
  // A new selection replaces the group's program.
  ASSERT_TRUE(selector_->Select(group_[0].fd, {0}).ok());
  Connect(20);
  EXPECT_EQ(Accepted(), (std::vector<int>{20, 0, 0, 0}));
}

TEST_P(SelectorInKernelTest, AllSocketsShareTheConnections) {
  ASSERT_TRUE(selector_->Select(group_[0].fd, {0, 1, 2, 3}).ok());
  Connect(64);
  std::vector<int> counts = Accepted();
  int total = 0;
  for (int count : counts) {
    total += count;
    if (GetParam() == ReuseportSelector::Method::kRoundRobin) {
      EXPECT_EQ(count, 16);
    } else {
      EXPECT_GT(count, 4);  // ~16 each; 4 is far in the tail
    }
  }
  EXPECT_EQ(total, 64);
}

INSTANTIATE_TEST_SUITE_P(
    Methods, SelectorInKernelTest,
    ::testing::Values(ReuseportSelector::Method::kRoundRobin,
                      ReuseportSelector::Method::kSourcePort),
    [](const auto& info) {
      return info.param == ReuseportSelector::Method::kRoundRobin
                 ? "RoundRobin"
                 : "SourcePort";
    });

}  // namespace
}  // namespace cluster2
