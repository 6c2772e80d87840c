#include "agent/stats.h"

#include <gtest/gtest.h>

#include <map>

#include "agent/testing/stats_files.h"

namespace fulcrum::agent {
namespace {

using namespace std::chrono_literals;

const char kMeminfo[] =
    "MemTotal:        8000000 kB\nMemFree:         2000000 kB\nMemAvailable:    5000000 kB\n"
    "Inactive(file):  1000000 kB\n";

void SetV1(FakeStatsFiles& f, uint64_t cpu_ns, uint64_t mem, uint64_t inactive) {
  f.files["/proc/42/cgroup"] =
      "4:memory:/kube/pod1/c1\n2:cpuacct:/kube/pod1/c1\n1:cpu:/kube/pod1/c1\n0::/\n";
  f.files["/sys/fs/cgroup/cpuacct/kube/pod1/c1/cpuacct.usage"] = std::to_string(cpu_ns) + "\n";
  f.files["/sys/fs/cgroup/memory/kube/pod1/c1/memory.usage_in_bytes"] = std::to_string(mem) + "\n";
  f.files["/sys/fs/cgroup/memory/kube/pod1/c1/memory.stat"] =
      "cache 100\ninactive_file 1\ntotal_inactive_file " + std::to_string(inactive) + "\n";
}

TEST(StatsTest, V1FileLayout) {
  FakeStatsFiles f;
  SetV1(f, 5000000000, 10 << 20, 2 << 20);
  CgroupLayout v1;
  auto dirs = CgroupDirsOfProcess(f, v1, 42);
  ASSERT_TRUE(dirs.ok()) << dirs.status().ToString();
  EXPECT_EQ(dirs->cpu, "/sys/fs/cgroup/cpuacct/kube/pod1/c1");
  EXPECT_EQ(dirs->memory, "/sys/fs/cgroup/memory/kube/pod1/c1");
  auto u = ReadCgroupUsage(f, v1, *dirs);
  ASSERT_TRUE(u.ok()) << u.status().ToString();
  EXPECT_EQ(u->cpu_usage_ns, 5000000000u);
  EXPECT_TRUE(u->has_memory);
  EXPECT_EQ(u->memory_working_set_bytes, 8u << 20);
  // CFS bandwidth lives in the cpu controller's hierarchy, apart from cpuacct here.
  EXPECT_EQ(dirs->cpu_bandwidth, "/sys/fs/cgroup/cpu/kube/pod1/c1");
  EXPECT_FALSE(u->has_throttling);
  f.files["/sys/fs/cgroup/cpu/kube/pod1/c1/cpu.stat"] =
      "nr_periods 120\nnr_throttled 7\nthrottled_time 91000000\n";
  u = ReadCgroupUsage(f, v1, *dirs);
  ASSERT_TRUE(u.ok());
  EXPECT_TRUE(u->has_throttling);
  EXPECT_EQ(u->cpu_nr_throttled, 7u);

  // A combined cpu,cpuacct hierarchy names its mount after both.
  f.files["/proc/43/cgroup"] = "3:cpu,cpuacct:/x\n2:memory:/x\n";
  dirs = CgroupDirsOfProcess(f, v1, 43);
  ASSERT_TRUE(dirs.ok());
  EXPECT_EQ(dirs->cpu, "/sys/fs/cgroup/cpu,cpuacct/x");
  EXPECT_EQ(dirs->cpu_bandwidth, "/sys/fs/cgroup/cpu,cpuacct/x");
  EXPECT_EQ(CgroupDirsOfProcess(f, v1, 44).status().code(), base::Code::kNotFound);
}

TEST(StatsTest, V2FileLayout) {
  FakeStatsFiles f;
  CgroupLayout v2{CgroupVersion::kV2, "/sys/fs/cgroup/unified"};
  f.files["/proc/42/cgroup"] = "4:memory:/elsewhere\n0::/fulcrum/c1\n";
  f.files["/sys/fs/cgroup/unified/fulcrum/c1/cpu.stat"] =
      "usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\nnr_periods 9\n"
      "nr_throttled 3\nthrottled_usec 1200\n";
  auto dirs = CgroupDirsOfProcess(f, v2, 42);
  ASSERT_TRUE(dirs.ok());
  EXPECT_EQ(dirs->cpu, "/sys/fs/cgroup/unified/fulcrum/c1");
  EXPECT_EQ(dirs->cpu_bandwidth, "/sys/fs/cgroup/unified/fulcrum/c1");
  auto u = ReadCgroupUsage(f, v2, *dirs);
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->cpu_usage_ns, 2500000000u);
  EXPECT_TRUE(u->has_throttling);
  EXPECT_EQ(u->cpu_nr_throttled, 3u);
  EXPECT_FALSE(u->has_memory);  // no memory controller in this hierarchy
  f.files["/sys/fs/cgroup/unified/fulcrum/c1/memory.current"] = "4096000\n";
  f.files["/sys/fs/cgroup/unified/fulcrum/c1/memory.stat"] = "anon 1\ninactive_file 96000\n";
  u = ReadCgroupUsage(f, v2, *dirs);
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->memory_working_set_bytes, 4000000u);
  f.files.erase("/sys/fs/cgroup/unified/fulcrum/c1/cpu.stat");
  EXPECT_EQ(ReadCgroupUsage(f, v2, *dirs).status().code(), base::Code::kNotFound);
}

TEST(StatsTest, NodeUsage) {
  FakeStatsFiles f;
  f.files["/proc/stat"] = "cpu  100 10 50 9999 77 5 5 30 0 0\ncpu0 1 1 1 1 1 1 1 1 0 0\n";
  f.files["/proc/meminfo"] = kMeminfo;
  auto u = ReadNodeUsage(f, 100);
  ASSERT_TRUE(u.ok()) << u.status().ToString();
  EXPECT_EQ(u->cpu_usage_ns, 200u * 10000000u);  // 200 busy ticks of 10 ms
  EXPECT_EQ(u->memory_usage_bytes, 6000000ull * 1024);
  EXPECT_EQ(u->memory_working_set_bytes, 5000000ull * 1024);
  f.files["/proc/stat"] = "intr 1 2\n";
  EXPECT_FALSE(ReadNodeUsage(f).ok());
}

TEST(StatsTest, CollectorRatesAndPrometheusText) {
  auto files = std::make_unique<FakeStatsFiles>();
  FakeStatsFiles& f = *files;
  base::FakeClock clock(base::WallTime{} + 1700000000s);
  StatsCollector stats(std::move(files), CgroupLayout{}, &clock, 100);
  f.files["/proc/stat"] = "cpu  100 0 100 0 0 0 0 0 0 0\n";
  f.files["/proc/meminfo"] = kMeminfo;
  SetV1(f, 1000000000, 10 << 20, 2 << 20);
  stats.SetContainers({{"shop", "web-0", "app", 42}, {"shop", "gone", "app", 99}});
  stats.Sample();
  ASSERT_EQ(stats.Containers().size(), 1u);  // pid 99 has no cgroup
  EXPECT_FALSE(stats.Containers()[0].sample.cpu_cores.has_value());
  EXPECT_FALSE(stats.Node()->cpu_cores.has_value());

  clock.Advance(2s);
  f.files["/proc/stat"] = "cpu  200 0 200 0 0 0 0 0 0 0\n";      // +200 ticks = 2 s of CPU
  SetV1(f, 2000000000, 12 << 20, 2 << 20);                        // +1 s of CPU
  stats.Sample();
  EXPECT_DOUBLE_EQ(*stats.Node()->cpu_cores, 1.0);
  auto containers = stats.Containers();
  ASSERT_EQ(containers.size(), 1u);
  EXPECT_DOUBLE_EQ(*containers[0].sample.cpu_cores, 0.5);
  EXPECT_EQ(containers[0].sample.usage.memory_working_set_bytes, 10u << 20);

  EXPECT_EQ(stats.PrometheusText(),
            "# HELP node_cpu_usage_seconds_total Cumulative cpu time consumed by the node in core-seconds\n"
            "# TYPE node_cpu_usage_seconds_total counter\n"
            "node_cpu_usage_seconds_total 4 1700000002000\n"
            "# HELP node_memory_working_set_bytes Current working set of the node in bytes\n"
            "# TYPE node_memory_working_set_bytes gauge\n"
            "node_memory_working_set_bytes 5120000000 1700000002000\n"
            "# HELP fulcrum_node_cpu_usage_cores CPU cores the node used between the last two samples\n"
            "# TYPE fulcrum_node_cpu_usage_cores gauge\n"
            "fulcrum_node_cpu_usage_cores 1 1700000002000\n"
            "# HELP container_cpu_usage_seconds_total Cumulative cpu time consumed by the container in core-seconds\n"
            "# TYPE container_cpu_usage_seconds_total counter\n"
            "container_cpu_usage_seconds_total{container=\"app\",namespace=\"shop\",pod=\"web-0\"} 2 1700000002000\n"
            "# HELP container_memory_working_set_bytes Current working set of the container in bytes\n"
            "# TYPE container_memory_working_set_bytes gauge\n"
            "container_memory_working_set_bytes{container=\"app\",namespace=\"shop\",pod=\"web-0\"} 10485760 1700000002000\n"
            "# HELP fulcrum_container_cpu_usage_cores CPU cores the container used between the last two samples\n"
            "# TYPE fulcrum_container_cpu_usage_cores gauge\n"
            "fulcrum_container_cpu_usage_cores{container=\"app\",namespace=\"shop\",pod=\"web-0\"} 0.5 1700000002000\n");

  // A restarted container (new pid) starts a new rate; a removed one disappears.
  clock.Advance(1s);
  f.files["/proc/50/cgroup"] = f.files["/proc/42/cgroup"];
  stats.SetContainers({{"shop", "web-0", "app", 50}});
  stats.Sample();
  EXPECT_FALSE(stats.Containers()[0].sample.cpu_cores.has_value());
  stats.SetContainers({});
  EXPECT_TRUE(stats.Containers().empty());
}

TEST(StatsTest, LabelEscaping) {
  EXPECT_EQ(PrometheusLabelValue("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
}

}  // namespace
}  // namespace fulcrum::agent
