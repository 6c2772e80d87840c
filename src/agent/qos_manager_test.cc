#include "agent/qos_manager.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <map>

namespace fulcrum::agent {
namespace {

using base::Json;
using std::chrono::seconds;

class FakeCpuBandwidth : public CpuBandwidthControl {
 public:
  base::Result<CpuBandwidth> Read(const std::string& dir) override {
    auto it = cgroups.find(dir);
    if (it == cgroups.end()) return base::NotFound(dir);
    return it->second;
  }
  base::Status Write(const std::string& dir, const CpuBandwidth& b) override {
    if (!cgroups.count(dir)) return base::NotFound(dir);
    cgroups[dir] = b;
    ++writes;
    return base::Status::Ok();
  }
  std::map<std::string, CpuBandwidth> cgroups;
  int writes = 0;
};

struct Recorded {
  std::string pod, type, reason, message;
};

class BatchQosTest : public ::testing::Test {
 protected:
  BatchQosTest() : clock_(base::WallTime{} + std::chrono::hours(1000)) {}

  std::unique_ptr<BatchQos> Make(QosOptions o = {}) {
    QosActions actions;
    actions.evict = [this](const std::string& key, const std::string& uid,
                           const std::string& message) {
      evicted_.push_back({key, uid, "", message});
      return base::Status::Ok();
    };
    actions.event = [this](const std::string& key, const std::string& type,
                           const std::string& reason, const std::string& message) {
      events_.push_back({key, type, reason, message});
    };
    return std::make_unique<BatchQos>(o, &cgroups_, actions, &clock_);
  }

  QosContainer Container(const std::string& pod, bool batch, double cores, double request = 0,
                         int32_t priority = 0, int created_minute = 0) {
    QosContainer c;
    c.pod_key = "default/" + pod;
    c.pod_uid = "uid-" + pod;
    c.container = "main";
    c.batch = batch;
    c.priority = priority;
    c.created = base::WallTime{} + std::chrono::minutes(created_minute);
    c.cpu_request_cores = request;
    c.cpu_cores = cores;
    c.cpu_bandwidth_dir = "/cg/" + pod;
    c.memory_working_set_bytes = 100 << 20;
    if (!cgroups_.cgroups.count(c.cpu_bandwidth_dir)) cgroups_.cgroups[c.cpu_bandwidth_dir] = {};
    return c;
  }

  QosNode Node(double cpu_cores, double memory_share = 0.2) {
    QosNode n;
    n.cpu_capacity_cores = 2;
    n.memory_capacity_bytes = 8ull << 30;
    n.cpu_cores = cpu_cores;
    n.memory_working_set_bytes = static_cast<uint64_t>(memory_share * (8ull << 30));
    return n;
  }

  int64_t Quota(const std::string& pod) { return cgroups_.cgroups["/cg/" + pod].quota_us; }

  int Count(const std::string& reason) {
    int n = 0;
    for (const auto& e : events_) n += e.reason == reason;
    return n;
  }

  base::FakeClock clock_;
  FakeCpuBandwidth cgroups_;
  std::vector<Recorded> events_, evicted_;
};

TEST_F(BatchQosTest, LeavesBatchAloneUnderTheThreshold) {
  auto qos = Make();
  // 0.3 online + 0.5 batch + 0.1 system = 0.9 of 2 cores, under 65%.
  for (int i = 0; i < 5; ++i) {
    qos->Tick(Node(0.9), {Container("web", false, 0.3), Container("job", true, 0.5, 0.5)});
    clock_.Advance(seconds(1));
  }
  EXPECT_EQ(Quota("job"), -1);
  EXPECT_FALSE(qos->BatchQuotaCores());
  EXPECT_TRUE(events_.empty());
  EXPECT_TRUE(evicted_.empty());
}

TEST_F(BatchQosTest, ThrottlesBatchToTheBudgetAndSaysWhy) {
  auto qos = Make();
  // Budget: 2 × 65% − 1.0 online − 0.1 system = 0.2 cores.
  qos->Tick(Node(2.0), {Container("web", false, 1.0), Container("job", true, 0.9, 0.5)});
  ASSERT_TRUE(qos->BatchQuotaCores());
  EXPECT_NEAR(*qos->BatchQuotaCores(), 0.2, 1e-9);
  EXPECT_EQ(Quota("job"), 20000);
  EXPECT_EQ(Quota("web"), -1);  // online containers are never touched
  ASSERT_EQ(Count("BatchThrottled"), 1);
  EXPECT_EQ(events_[0].pod, "default/job");
  EXPECT_EQ(events_[0].type, "Warning");
  EXPECT_NE(events_[0].message.find("lowered to 0.20 cores"), std::string::npos) << events_[0].message;
  EXPECT_NE(events_[0].message.find("online 1.00 + batch 0.90 + system 0.10"), std::string::npos);
  std::string metrics = qos->PrometheusText();
  EXPECT_NE(metrics.find("fulcrum_qos_batch_throttled_containers 1\n"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("fulcrum_qos_batch_cpu_quota_cores 0.2\n"), std::string::npos);
  EXPECT_NE(metrics.find("fulcrum_qos_batch_throttles_total 1\n"), std::string::npos);
}

TEST_F(BatchQosTest, SplitsTheQuotaByRequestAndKeepsTighterLimits) {
  cgroups_.cgroups["/cg/b"] = {5000, 100000};  // its own limit: 0.05 cores
  auto qos = Make();
  auto b = Container("b", true, 0.5, 0.4);
  b.cpu_limit_cores = 0.05;
  // Budget 2 × 65% − 0.6 − 0 = 0.7.
  qos->Tick(Node(1.6), {Container("web", false, 0.6), Container("a", true, 0.5, 0.3), b});
  EXPECT_EQ(Quota("a"), 30000);  // 0.7 × 0.3 / 0.7
  EXPECT_EQ(Quota("b"), 5000);   // 0.4 share, but never above its own limit
  qos->RestoreAll();
  EXPECT_EQ(Quota("a"), -1);
  EXPECT_EQ(Quota("b"), 5000);
}

TEST_F(BatchQosTest, RaisesTheQuotaInStepsAndRestoresWhenThePressureGoes) {
  auto qos = Make();
  qos->Tick(Node(2.0), {Container("web", false, 1.2), Container("job", true, 0.8, 1.0)});
  ASSERT_TRUE(qos->BatchQuotaCores());
  EXPECT_NEAR(*qos->BatchQuotaCores(), 0.10, 1e-9);  // 1.3 − 1.2
  // Online load falls: the budget is 1.2, but the quota grows by 10% of the node per second.
  clock_.Advance(seconds(1));
  qos->Tick(Node(0.2), {Container("web", false, 0.1), Container("job", true, 0.1, 1.0)});
  EXPECT_NEAR(*qos->BatchQuotaCores(), 0.30, 1e-9);
  EXPECT_EQ(Quota("job"), 30000);
  clock_.Advance(seconds(1));
  qos->Tick(Node(0.4), {Container("web", false, 0.1), Container("job", true, 0.3, 1.0)});
  EXPECT_NEAR(*qos->BatchQuotaCores(), 0.50, 1e-9);
  // Batch needs less than its quota and the budget covers it: restored.
  for (int i = 0; i < 10 && qos->BatchQuotaCores(); ++i) {
    clock_.Advance(seconds(1));
    qos->Tick(Node(0.3), {Container("web", false, 0.1), Container("job", true, 0.2, 1.0)});
  }
  EXPECT_FALSE(qos->BatchQuotaCores());
  EXPECT_EQ(Quota("job"), -1);
  EXPECT_EQ(Count("BatchUnthrottled"), 1);
  EXPECT_TRUE(evicted_.empty());
}

TEST_F(BatchQosTest, RestoresTheSpecsQuotaNotWhatTheCgroupHeld) {
  cgroups_.cgroups["/cg/job"] = {10000, 100000};  // left low by an agent that died throttling
  auto qos = Make();
  qos->Tick(Node(2.0), {Container("web", false, 1.0), Container("job", true, 0.9, 0.5)});
  EXPECT_EQ(Quota("job"), 20000);
  qos->RestoreAll();
  EXPECT_EQ(Quota("job"), -1);  // no limit in its spec
}

TEST_F(BatchQosTest, ARestartedContainerIsThrottledAfresh) {
  auto qos = Make();
  auto job = Container("job", true, 0.9, 0.5);
  job.pid = 100;
  qos->Tick(Node(2.0), {Container("web", false, 1.0), job});
  EXPECT_EQ(Quota("job"), 20000);
  // The runtime created it again from its spec: unlimited, a new init.
  cgroups_.cgroups["/cg/job"] = {};
  job.pid = 200;
  clock_.Advance(seconds(1));
  qos->Tick(Node(2.0), {Container("web", false, 1.0), job});
  EXPECT_EQ(Quota("job"), 20000);
  EXPECT_EQ(Count("BatchThrottled"), 2);
}

TEST_F(BatchQosTest, OnlineThrottlingHalvesTheBatchQuota) {
  auto qos = Make();
  auto web = Container("web", false, 0.4);
  web.cpu_nr_throttled = 10;
  // Under the threshold; the first sample only sets the baseline.
  qos->Tick(Node(1.0), {web, Container("job", true, 0.6, 1.0)});
  EXPECT_FALSE(qos->BatchQuotaCores());
  clock_.Advance(seconds(1));
  web.cpu_nr_throttled = 15;
  qos->Tick(Node(1.0), {web, Container("job", true, 0.6, 1.0)});
  ASSERT_TRUE(qos->BatchQuotaCores());
  EXPECT_NEAR(*qos->BatchQuotaCores(), 0.3, 1e-9);
  EXPECT_NE(events_.back().message.find("online containers throttled"), std::string::npos);
}

TEST_F(BatchQosTest, EvictsWhenSatisfactionStaysLowLowestPriorityFirstThenNewest) {
  QosOptions o;
  o.cpu_evict_window = seconds(6);
  auto qos = Make(o);
  auto pods = [&](double online) {
    return std::vector<QosContainer>{
        Container("web", false, online),
        Container("old", true, 0.05, 0.5, -1000, 1),
        Container("new", true, 0.05, 0.5, -1000, 2),
        Container("mid", true, 0.05, 0.5, -500, 3),
    };
  };
  // Online takes the node: batch is held to its floor, 0.03 of 1.5 requested cores.
  qos->Tick(Node(2.0), pods(1.85));
  EXPECT_EQ(Count("BatchThrottled"), 3);
  EXPECT_TRUE(evicted_.empty());
  // The pressure persists over a third of the window (2 s): one round evicts, enough pods to
  // bring satisfaction back to 80% of requests, lowest priority first, then the newest.
  for (int i = 0; i < 2 && evicted_.empty(); ++i) {
    clock_.Advance(seconds(1));
    qos->Tick(Node(2.0), pods(1.85));
  }
  ASSERT_EQ(evicted_.size(), 3u);
  EXPECT_EQ(evicted_[0].pod, "default/new");
  EXPECT_EQ(evicted_[1].pod, "default/old");
  EXPECT_EQ(evicted_[2].pod, "default/mid");
  EXPECT_EQ(evicted_[0].type, "uid-new");
  EXPECT_NE(evicted_[0].message.find("The node was low on resource: cpu."), std::string::npos)
      << evicted_[0].message;
  EXPECT_NE(evicted_[0].message.find("below 60%"), std::string::npos);
  EXPECT_NE(qos->PrometheusText().find("fulcrum_qos_evictions_total{reason=\"cpu\"} 3\n"),
            std::string::npos);
  // Evicted pods are not evicted again while they stop.
  clock_.Advance(seconds(30));
  qos->Tick(Node(2.0), pods(1.85));
  EXPECT_EQ(evicted_.size(), 3u);
}

TEST_F(BatchQosTest, EvictsOnlyWhatTheSatisfactionGapNeedsAndCoolsDown) {
  QosOptions o;
  o.cpu_evict_window = seconds(3);
  o.cpu_evict_cooldown = seconds(20);
  auto qos = Make(o);
  // Budget 1.3 − 0.8 = 0.5 cores for 2 requested: satisfaction 25%. Back to 80% means
  // releasing (80% − 25%) × 2 = 1.1 cores of requests: three of the four 0.5-core pods.
  std::vector<QosContainer> pods = {Container("web", false, 0.8),
                                    Container("a", true, 0.2, 0.5, -1000, 1),
                                    Container("b", true, 0.2, 0.5, -1000, 2),
                                    Container("c", true, 0.2, 0.5, -1000, 3),
                                    Container("d", true, 0.2, 0.5, -1000, 4)};
  qos->Tick(Node(1.6), pods);
  EXPECT_NEAR(*qos->BatchQuotaCores(), 0.5, 1e-9);
  clock_.Advance(seconds(1));
  qos->Tick(Node(1.6), pods);
  ASSERT_EQ(evicted_.size(), 3u);
  EXPECT_EQ(evicted_[0].pod, "default/d");
  EXPECT_EQ(evicted_[1].pod, "default/c");
  EXPECT_EQ(evicted_[2].pod, "default/b");
  // Cooling down: nothing more for 20 s although the pod left is starved.
  std::vector<QosContainer> left = {Container("web", false, 1.25), Container("a", true, 0.05, 0.5)};
  for (int i = 0; i < 10; ++i) {
    clock_.Advance(seconds(1));
    qos->Tick(Node(1.3), left);
  }
  EXPECT_EQ(evicted_.size(), 3u);
  for (int i = 0; i < 10; ++i) {
    clock_.Advance(seconds(1));
    qos->Tick(Node(1.3), left);
  }
  EXPECT_EQ(evicted_.size(), 4u);
}

TEST_F(BatchQosTest, NeverEvictsOnlinePods) {
  QosOptions o;
  o.cpu_evict_window = seconds(3);
  auto qos = Make(o);
  for (int i = 0; i < 30; ++i) {
    qos->Tick(Node(2.0, 0.99), {Container("web", false, 1.9), Container("api", false, 0.1)});
    clock_.Advance(seconds(1));
  }
  EXPECT_TRUE(evicted_.empty());
  EXPECT_TRUE(events_.empty());
}

TEST_F(BatchQosTest, EvictsBatchWhenNodeMemoryCrossesItsThreshold) {
  auto qos = Make();
  auto big = Container("big", true, 0.01, 0.1, -1000, 1);
  big.memory_working_set_bytes = 1ull << 30;
  auto small = Container("small", true, 0.01, 0.1, -1000, 2);
  small.memory_working_set_bytes = 64ull << 20;
  auto web = Container("web", false, 0.1);
  web.memory_working_set_bytes = 4ull << 30;
  auto oldest = Container("oldest", true, 0.01, 0.1, -1000, 0);
  qos->Tick(Node(0.2, 0.69), {web, big, small, oldest});
  EXPECT_TRUE(evicted_.empty());
  // 72% of 8 GiB: release down to 68%, 0.32 GiB: the newest (small, 64 MiB) is not enough.
  clock_.Advance(seconds(1));
  qos->Tick(Node(0.2, 0.72), {web, big, small, oldest});
  ASSERT_EQ(evicted_.size(), 2u);
  EXPECT_EQ(evicted_[0].pod, "default/small");
  EXPECT_EQ(evicted_[1].pod, "default/big");
  EXPECT_NE(evicted_[1].message.find("The node was low on resource: memory. Threshold quantity: "
                                     "70% of 8.0Gi, usage: 5.8Gi. Container main was using 1.0Gi."),
            std::string::npos)
      << evicted_[1].message;
  EXPECT_NE(qos->PrometheusText().find("fulcrum_qos_evictions_total{reason=\"memory\"} 2\n"),
            std::string::npos);
  // Past the cooldown, while they stop: what they hold counts as on its way back.
  clock_.Advance(seconds(5));
  qos->Tick(Node(0.2, 0.72), {web, big, small, oldest});
  EXPECT_EQ(evicted_.size(), 2u);
  // Gone, and memory still high: the next one.
  clock_.Advance(seconds(1));
  qos->Tick(Node(0.2, 0.72), {web, oldest});
  ASSERT_EQ(evicted_.size(), 3u);
  EXPECT_EQ(evicted_[2].pod, "default/oldest");
}

TEST_F(BatchQosTest, ForgetsThrottlesOfContainersThatAreGone) {
  auto qos = Make();
  qos->Tick(Node(2.0), {Container("web", false, 1.2), Container("job", true, 0.8, 1.0)});
  ASSERT_EQ(Quota("job"), 10000);
  clock_.Advance(seconds(1));
  qos->Tick(Node(1.2), {Container("web", false, 1.2)});
  EXPECT_FALSE(qos->BatchQuotaCores());
  EXPECT_NE(qos->PrometheusText().find("fulcrum_qos_batch_throttled_containers 0\n"),
            std::string::npos);
  int writes = cgroups_.writes;
  qos->RestoreAll();
  EXPECT_EQ(cgroups_.writes, writes);  // nothing left to restore
}

TEST_F(BatchQosTest, DisabledDoesNothing) {
  QosOptions o;
  o.enabled = false;
  auto qos = Make(o);
  qos->Tick(Node(2.0, 0.99), {Container("web", false, 1.9), Container("job", true, 0.1, 1.0)});
  EXPECT_EQ(Quota("job"), -1);
  EXPECT_TRUE(evicted_.empty());
}

TEST(QosContainersFromTest, JoinsSamplesWithTheirPods) {
  Json batch = Json::parse(R"({
    "metadata": {"name": "job-x", "namespace": "ns", "uid": "u1",
                 "creationTimestamp": "2026-11-27T10:00:00Z"},
    "spec": {"priorityClassName": "fulcrum-batch",
             "containers": [{"name": "main", "resources": {"limits": {"cpu": "500m"}}}]},
    "status": {"phase": "Running"}})");
  Json online = Json::parse(R"({
    "metadata": {"name": "web", "namespace": "ns", "uid": "u2",
                 "annotations": {"fulcrum.dev/qos": "online"}},
    "spec": {"priority": 100, "containers": [{"name": "c", "resources": {"requests": {"cpu": "1"}}}]},
    "status": {"phase": "Running"}})");
  Json done = Json::parse(R"({"metadata": {"name": "done", "namespace": "ns"},
                               "status": {"phase": "Failed"}})");
  std::map<std::string, std::shared_ptr<const Json>> pods = {
      {"ns/job-x", std::make_shared<const Json>(batch)},
      {"ns/web", std::make_shared<const Json>(online)},
      {"ns/done", std::make_shared<const Json>(done)}};
  auto usage = [](const std::string& pod, const std::string& container) {
    ContainerUsage u;
    u.container = {"ns", pod, container, 1};
    u.sample.cpu_cores = 0.25;
    u.sample.usage.has_throttling = true;
    u.sample.usage.cpu_nr_throttled = 7;
    u.dirs.cpu_bandwidth = "/sys/fs/cgroup/cpu/" + pod;
    return u;
  };
  auto out = QosContainersFrom(
      {usage("job-x", "main"), usage("web", "c"), usage("done", "x"), usage("unknown", "y")},
      [&](const std::string& key) {
        auto it = pods.find(key);
        return it == pods.end() ? nullptr : it->second;
      });
  ASSERT_EQ(out.size(), 2u);
  EXPECT_TRUE(out[0].batch);
  EXPECT_EQ(out[0].priority, -1000);
  EXPECT_EQ(out[0].pod_uid, "u1");
  EXPECT_DOUBLE_EQ(out[0].cpu_limit_cores, 0.5);
  EXPECT_DOUBLE_EQ(out[0].cpu_request_cores, 0.5);  // a limit alone requests the limit
  EXPECT_EQ(out[0].cpu_bandwidth_dir, "/sys/fs/cgroup/cpu/job-x");
  EXPECT_EQ(out[0].cpu_nr_throttled, 7u);
  EXPECT_EQ(base::FormatRfc3339(out[0].created), "2026-11-27T10:00:00Z");
  EXPECT_FALSE(out[1].batch);
  EXPECT_EQ(out[1].priority, 100);
  EXPECT_DOUBLE_EQ(out[1].cpu_request_cores, 1.0);
}

TEST(ParseQosFlagTest, NamesAndRanges) {
  QosOptions o;
  std::string error;
  EXPECT_TRUE(ParseQosFlag("qos-cpu-suppress-percent", "50", &o, &error));
  EXPECT_EQ(o.cpu_suppress_percent, 50);
  EXPECT_TRUE(ParseQosFlag("qos-cpu-evict-window", "6", &o, &error));
  EXPECT_EQ(o.cpu_evict_window, seconds(6));
  EXPECT_TRUE(ParseQosFlag("qos-cpu-system-usage", "off", &o, &error));
  EXPECT_FALSE(o.cpu_count_system);
  EXPECT_TRUE(ParseQosFlag("qos", "off", &o, &error));
  EXPECT_FALSE(o.enabled);
  EXPECT_FALSE(ParseQosFlag("qos-cpu-suppress-percent", "101", &o, &error));
  EXPECT_EQ(error, "--qos-cpu-suppress-percent must be a whole percentage from 1 to 100, not \"101\"");
  EXPECT_FALSE(ParseQosFlag("qos-memory-evict-percent", "7x", &o, &error));
  EXPECT_FALSE(error.empty());
  EXPECT_FALSE(ParseQosFlag("qos-bogus", "1", &o, &error));
  EXPECT_EQ(error, "unknown flag --qos-bogus");
  EXPECT_FALSE(ParseQosFlag("node-name", "x", &o, &error));
  EXPECT_TRUE(error.empty());
}

// The real files, on a cgroup of its own in the v1 cpu hierarchy (root only; cgroup v2 machines
// use cpu.max, which this hybrid machine's cgroup2 mount has no cpu controller for).
TEST(CgroupCpuBandwidthTest, ReadsAndWritesTheCfsQuota) {
  CgroupLayout layout = DetectCgroupLayout();
  const std::string parent = layout.version == CgroupVersion::kV1 ? "/sys/fs/cgroup/cpu"
                                                                  : "/sys/fs/cgroup";
  const std::string dir = parent + "/fulcrum-qos-test-" + std::to_string(::getpid());
  if (::geteuid() != 0 || ::mkdir(dir.c_str(), 0755) != 0) {
    GTEST_SKIP() << "needs root and a writable cpu cgroup hierarchy at " << parent;
  }
  auto cgroups = NewCgroupCpuBandwidth(layout);
  auto b = cgroups->Read(dir);
  if (b.ok()) {
    EXPECT_EQ(b->quota_us, -1);
    EXPECT_GT(b->period_us, 0);
    CpuBandwidth lowered = *b;
    lowered.quota_us = 25000;
    EXPECT_TRUE(cgroups->Write(dir, lowered).ok());
    EXPECT_EQ(cgroups->Read(dir)->quota_us, 25000);
    EXPECT_TRUE(cgroups->Write(dir, *b).ok());
    EXPECT_EQ(cgroups->Read(dir)->quota_us, -1);
  } else {
    ADD_FAILURE() << b.status().ToString();
  }
  ::rmdir(dir.c_str());
  EXPECT_EQ(cgroups->Read(dir).status().code(), base::Code::kNotFound);
  EXPECT_EQ(cgroups->Write(dir, {}).code(), base::Code::kNotFound);
}

TEST(ApplyEvictionToStatusTest, DisruptionTargetFirstThenFailedEvicted) {
  Json status = Json::parse(R"({"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]})");
  ApplyEvictionToStatus(&status, "The node was low on resource: cpu.", false, "2026-11-27T11:00:00Z");
  EXPECT_EQ(status["phase"], "Running");
  ASSERT_EQ(status["conditions"].size(), 2u);
  EXPECT_EQ(status["conditions"][1]["type"], "DisruptionTarget");
  EXPECT_EQ(status["conditions"][1]["status"], "True");
  EXPECT_EQ(status["conditions"][1]["reason"], "TerminationByKubelet");
  EXPECT_EQ(status["conditions"][1]["lastTransitionTime"], "2026-11-27T11:00:00Z");
  ApplyEvictionToStatus(&status, "The node was low on resource: cpu.", true, "2026-11-27T11:00:00Z");
  EXPECT_EQ(status["phase"], "Failed");
  EXPECT_EQ(status["reason"], "Evicted");
  EXPECT_EQ(status["message"], "The node was low on resource: cpu.");
  EXPECT_EQ(status["conditions"].size(), 2u);
}

}  // namespace
}  // namespace fulcrum::agent
