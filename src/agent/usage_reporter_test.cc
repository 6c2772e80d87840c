#include "agent/usage_reporter.h"

#include <gtest/gtest.h>

#include <map>

#include "agent/testing/stats_files.h"
#include "client/test_server.h"

namespace fulcrum::agent {
namespace {

using base::Json;
using namespace std::chrono_literals;

const base::WallTime kT0 = base::WallTime{} + 1700000000s;

UsageSample Sample(base::WallTime t, std::optional<double> cores, uint64_t memory) {
  UsageSample s;
  s.time = t;
  s.cpu_cores = cores;
  s.usage.has_memory = true;
  s.usage.memory_working_set_bytes = memory;
  return s;
}

ContainerUsage Container(const char* pod, const char* name, base::WallTime t,
                         std::optional<double> cores, uint64_t memory) {
  return ContainerUsage{{"shop", pod, name, 42}, Sample(t, cores, memory)};
}

TEST(UsageWindowTest, LatestAverageAndP95PerNodeAndPod) {
  UsageWindow w;
  EXPECT_TRUE(w.empty());
  for (int i = 0; i < 4; ++i) {
    base::WallTime t = kT0 + std::chrono::seconds(i);
    std::optional<double> node_cpu = i == 0 ? std::nullopt : std::optional<double>(i);  // 1, 2, 3
    w.Add(Sample(t, node_cpu, 1000 + i),
          {Container("web-0", "app", t, i == 0 ? std::nullopt : std::optional<double>(0.5 * i), 100),
           Container("web-0", "sidecar", t, 0.25, 50)});
    w.Add(Sample(t, 99.0, 1), {Container("web-0", "app", t, 99.0, 1)});  // same time: ignored
  }
  auto lookup = [](const std::string& key) -> std::shared_ptr<const Json> {
    if (key != "shop/web-0") return nullptr;
    return std::make_shared<const Json>(Json::parse(
        R"({"metadata":{"uid":"u-1","annotations":{"fulcrum.dev/qos":"batch"}},"spec":{"priority":-5}})"));
  };
  Json s = w.TakeStatus(lookup);
  EXPECT_EQ(s["updateTime"], "2023-11-14T22:13:23Z");
  EXPECT_EQ(s["windowSeconds"], 4);
  EXPECT_EQ(s["samples"], 4);
  const Json& node = s["nodeMetric"];
  EXPECT_EQ(node["usage"], Json::parse(R"({"cpu":"3000m","memory":"1003"})"));
  EXPECT_EQ(node["average"]["cpu"], "2000m");
  EXPECT_EQ(node["p95"]["cpu"], "3000m");
  EXPECT_EQ(node["p95"]["memory"], "1003");
  // The node's own usage: the node's latest minus every pod's latest.
  EXPECT_EQ(node["systemUsage"], Json::parse(R"({"cpu":"1250m","memory":"853"})"));
  ASSERT_EQ(s["podsMetric"].size(), 1u);
  const Json& pod = s["podsMetric"][0];
  EXPECT_EQ(pod["namespace"], "shop");
  EXPECT_EQ(pod["name"], "web-0");
  EXPECT_EQ(pod["uid"], "u-1");
  EXPECT_EQ(pod["qos"], "batch");
  EXPECT_EQ(pod["priority"], -5);
  EXPECT_EQ(pod["usage"], Json::parse(R"({"cpu":"1750m","memory":"150"})"));
  // CPU of the first sample covers the sidecar only (the app had no rate yet).
  EXPECT_EQ(pod["average"]["cpu"], "1000m");  // (0.25 + 0.75 + 1.25 + 1.75) / 4
  EXPECT_EQ(pod["containers"], Json::parse(R"([{"name":"app","usage":{"cpu":"1500m","memory":"100"}},
                                               {"name":"sidecar","usage":{"cpu":"250m","memory":"50"}}])"));
  EXPECT_TRUE(w.empty());
}

TEST(UsageWindowTest, StoppedAndJustStartedPodsAreLeftOut) {
  UsageWindow w;
  w.Add(Sample(kT0, 1.0, 10), {Container("a", "c", kT0, 0.1, 1), Container("b", "c", kT0, 0.2, 1)});
  // "c" has no CPU rate yet: it is left out too.
  w.Add(Sample(kT0 + 1s, 1.0, 10),
        {Container("a", "c", kT0 + 1s, 0.1, 1), Container("c", "c", kT0 + 1s, std::nullopt, 1)});
  Json s = w.TakeStatus(nullptr);
  ASSERT_EQ(s["podsMetric"].size(), 1u);
  EXPECT_EQ(s["podsMetric"][0]["name"], "a");
  EXPECT_FALSE(s["podsMetric"][0].contains("qos"));
}

TEST(UsageReporterTest, CreatesTheNodeMetricThenUpdatesItsStatus) {
  client::TestServer server;
  auto files = std::make_unique<FakeStatsFiles>();
  FakeStatsFiles& f = *files;
  base::FakeClock clock(kT0);
  StatsCollector stats(std::move(files), CgroupLayout{}, &clock, 100);
  f.files["/proc/stat"] = "cpu  100 0 100 0 0 0 0 0 0 0\n";
  f.files["/proc/meminfo"] = "MemTotal: 8000 kB\nMemFree: 2000 kB\nInactive(file): 1000 kB\n";
  f.files["/proc/42/cgroup"] = "4:memory:/p/c\n2:cpuacct:/p/c\n";
  f.files["/sys/fs/cgroup/cpuacct/p/c/cpuacct.usage"] = "1000000000\n";
  f.files["/sys/fs/cgroup/memory/p/c/memory.usage_in_bytes"] = "1048576\n";
  f.files["/sys/fs/cgroup/memory/p/c/memory.stat"] = "total_inactive_file 0\n";
  stats.SetContainers({{"default", "burn", "main", 42}});

  UsageReporter reporter({"node-1", 15s}, &server.client(), &stats, nullptr);
  EXPECT_TRUE(reporter.Report().ok());  // nothing collected: nothing written
  std::string path = "/apis/scheduling.fulcrum.dev/v1alpha1/nodemetrics/node-1";
  EXPECT_TRUE(server.client().Get(path).status().IsNotFound());

  stats.Sample();
  reporter.Collect();
  clock.Advance(1s);
  f.files["/proc/stat"] = "cpu  200 0 200 0 0 0 0 0 0 0\n";              // 2 cores
  f.files["/sys/fs/cgroup/cpuacct/p/c/cpuacct.usage"] = "2000000000\n";  // 1 core
  stats.Sample();
  reporter.Collect();
  ASSERT_TRUE(reporter.Report().ok());
  auto m = server.client().Get(path);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ((*m)["spec"]["reportIntervalSeconds"], 15);
  EXPECT_EQ((*m)["status"]["nodeMetric"]["usage"]["cpu"], "2000m");
  EXPECT_EQ((*m)["status"]["podsMetric"][0]["name"], "burn");
  EXPECT_EQ((*m)["status"]["podsMetric"][0]["usage"]["cpu"], "1000m");

  clock.Advance(1s);
  f.files["/proc/stat"] = "cpu  250 0 250 0 0 0 0 0 0 0\n";  // 1 core
  stats.SetContainers({});
  stats.Sample();
  reporter.Collect();
  ASSERT_TRUE(reporter.Report().ok());
  m = server.client().Get(path);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ((*m)["status"]["nodeMetric"]["usage"]["cpu"], "1000m");
  EXPECT_TRUE((*m)["status"]["podsMetric"].empty());
}

}  // namespace
}  // namespace fulcrum::agent
