// Samples a busy process in cgroups this test makes: the v1 hierarchy and, when mounted, cgroup2
// (at /sys/fs/cgroup on a unified host, /sys/fs/cgroup/unified on a hybrid one). Needs root.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "agent/stats.h"
#include "base/file.h"

namespace fulcrum::agent {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

class StatsRealTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (makes cgroups)";
    name_ = "fulcrum-stats-test-" + std::to_string(::getpid());
    ASSERT_EQ(::pipe(go_), 0);
    child_ = ::fork();
    ASSERT_GE(child_, 0);
    if (child_ == 0) {
      // Allocates only once moved: v1 charges memory to the cgroup it was touched in.
      char byte;
      if (::read(go_[0], &byte, 1) != 1) ::_exit(1);
      std::vector<char> memory(32 << 20, 1);  // touched: 32 MiB resident
      volatile uint64_t spin = 0;
      for (;;) spin = spin + memory[spin % memory.size()];
    }
  }
  void TearDown() override {
    ::close(go_[0]);
    ::close(go_[1]);
    if (child_ > 0) {
      ::kill(child_, SIGKILL);
      ::waitpid(child_, nullptr, 0);
    }
    for (const auto& dir : made_) ::rmdir(dir.c_str());
  }

  // Makes DIR/name_ and moves the child into it.
  bool Enter(const std::string& hierarchy) {
    std::string dir = hierarchy + "/" + name_;
    if (!fs::exists(hierarchy) || ::mkdir(dir.c_str(), 0755) != 0) return false;
    made_.push_back(dir);
    std::ofstream(dir + "/cgroup.procs") << child_ << "\n";
    return true;
  }

  // Lets the child allocate and spin; two samples 600 ms apart.
  std::vector<ContainerUsage> SampleTwice(CgroupLayout layout) {
    EXPECT_EQ(::write(go_[1], "g", 1), 1);
    std::this_thread::sleep_for(200ms);
    StatsCollector stats(NewSystemStatsFiles(), layout, base::RealClock(), ::sysconf(_SC_CLK_TCK));
    stats.SetContainers({{"default", "busy", "spin", child_}});
    stats.Sample();
    std::this_thread::sleep_for(600ms);
    stats.Sample();
    EXPECT_TRUE(stats.Node().has_value());
    EXPECT_GT(*stats.Node()->cpu_cores, 0.05);
    EXPECT_GT(stats.Node()->usage.memory_working_set_bytes, 32u << 20);
    std::string text = stats.PrometheusText();
    EXPECT_NE(text.find("container_cpu_usage_seconds_total{container=\"spin\",namespace=\"default\","
                        "pod=\"busy\"} "),
              std::string::npos)
        << text;
    return stats.Containers();
  }

  // The child's CPU time from /proc/PID/stat (utime + stime), an independent reading.
  double ProcCpuSeconds() {
    auto text = base::ReadFile("/proc/" + std::to_string(child_) + "/stat");
    if (!text.ok()) return -1;
    std::istringstream in(text->substr(text->rfind(')') + 2));
    std::string field;
    uint64_t utime = 0, stime = 0;
    for (int i = 3; i <= 15 && in >> field; ++i) {
      if (i == 14) utime = std::stoull(field);
      if (i == 15) stime = std::stoull(field);
    }
    return static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
  }

  // The sampled rate: clearly above zero for a spinning process, however loaded the machine (the
  // machine is shared, so no lower bound near one core), and the cumulative usage agrees with
  // the kernel's per-process accounting.
  void ExpectSpinning(const UsageSample& s) {
    ASSERT_TRUE(s.cpu_cores.has_value());
    EXPECT_GT(*s.cpu_cores, 0.05);
    EXPECT_LT(*s.cpu_cores, 1.2);
    double proc = ProcCpuSeconds(), sampled = s.usage.cpu_usage_ns / 1e9;
    EXPECT_GE(proc + 0.05, sampled);         // read later, so at least as much
    EXPECT_LE(proc, sampled * 1.3 + 0.15);   // and not much more
  }

  std::string name_;
  pid_t child_ = -1;
  int go_[2] = {-1, -1};
  std::vector<std::string> made_;
};

TEST_F(StatsRealTest, V1Hierarchy) {
  CgroupLayout layout = DetectCgroupLayout();
  if (layout.version != CgroupVersion::kV1) GTEST_SKIP() << "this host uses cgroup v2 only";
  ASSERT_TRUE(Enter("/sys/fs/cgroup/cpuacct") || Enter("/sys/fs/cgroup/cpu,cpuacct"));
  ASSERT_TRUE(Enter("/sys/fs/cgroup/memory"));
  auto containers = SampleTwice(layout);
  ASSERT_EQ(containers.size(), 1u);
  const UsageSample& s = containers[0].sample;
  ExpectSpinning(s);
  ASSERT_TRUE(s.usage.has_memory);
  EXPECT_GT(s.usage.memory_working_set_bytes, 30u << 20);
  EXPECT_LT(s.usage.memory_working_set_bytes, 200u << 20);
}

TEST_F(StatsRealTest, V2Hierarchy) {
  CgroupLayout layout{CgroupVersion::kV2, "/sys/fs/cgroup"};
  if (DetectCgroupLayout().version == CgroupVersion::kV1) layout.root = "/sys/fs/cgroup/unified";
  if (!fs::exists(layout.root + "/cgroup.procs")) GTEST_SKIP() << "no cgroup2 mount";
  ASSERT_TRUE(Enter(layout.root));
  auto containers = SampleTwice(layout);
  ASSERT_EQ(containers.size(), 1u);
  const UsageSample& s = containers[0].sample;
  ExpectSpinning(s);
  if (s.usage.has_memory) {
    EXPECT_GT(s.usage.memory_working_set_bytes, 30u << 20);
  }
}

}  // namespace
}  // namespace fulcrum::agent
