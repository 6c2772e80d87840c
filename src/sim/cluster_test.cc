#include "sim/cluster.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <numbers>

#include "sim/run.h"

namespace fulcrum::sim {
namespace {

constexpr int64_t kDay = 86400;

// Three days of a daily wave at one-minute readings: busy by day, quiet by night.
TraceSeries Wave(const std::string& name, double base, double amplitude) {
  TraceSeries s;
  s.name = name;
  for (int64_t t = 0; t < 3 * kDay; t += 60) {
    s.timestamps.push_back(1'600'041'600 + t);
    s.values.push_back(base + amplitude * std::max(0.0, std::sin(2 * std::numbers::pi * t / kDay)));
  }
  return s;
}

std::vector<BatchTask> Tasks() {
  std::vector<BatchTask> tasks;
  for (int i = 0; i < 200; ++i) {
    BatchTask t;
    t.create_time = i * 300;
    t.end_time = t.create_time + 600 + (i % 7) * 300;
    t.job_id = i / 3;
    t.task_id = i;
    t.instances = 20 + i % 30;
    t.status = "Terminated";
    t.cpu_per_instance = 100;
    t.memory_per_instance = 0.001;
    tasks.push_back(t);
  }
  return tasks;
}

ClusterOptions Small() {
  ClusterOptions o;
  o.nodes = 20;
  o.days = 2;
  o.node_cpu_milli = 32000;
  o.batch_scale = 300;  // the synthetic tasks are few; scale them to fill 20 nodes
  return o;
}

TEST(BuildWorkload, FillsOnlineRequestsAndSplitsTasksIntoPods) {
  ClusterOptions o = Small();
  auto w = BuildWorkload({Wave("a", 10, 90), Wave("b", 50, 20)}, Tasks(), o);
  ASSERT_TRUE(w.ok()) << w.status().message();
  double requested = 0;
  for (const OnlineReplica& r : w->replicas) {
    requested += static_cast<double>(r.request_milli);
    EXPECT_GE(r.request_milli, r.peak_milli);  // request = p99 usage, rounded up
  }
  EXPECT_GE(requested, o.online_fill * o.nodes * o.node_cpu_milli);
  EXPECT_LT(requested, o.online_fill * o.nodes * o.node_cpu_milli + 9000);
  ASSERT_FALSE(w->batch.empty());
  for (const BatchPod& p : w->batch) EXPECT_LE(p.cpu_milli, o.batch_pod_cpu_milli);
  EXPECT_TRUE(std::is_sorted(w->batch.begin(), w->batch.end(), [](const auto& a, const auto& b) {
    return a.arrival_minute < b.arrival_minute;
  }));
}

TEST(BuildWorkload, RejectsSeriesShorterThanTwoDays) {
  TraceSeries s = Wave("short", 1, 1);
  s.timestamps.resize(1000);
  s.values.resize(1000);
  auto w = BuildWorkload({s}, Tasks(), Small());
  EXPECT_FALSE(w.ok());
  EXPECT_NE(w.status().message().find("two days"), std::string::npos);
}

// Online requests of the whole cluster: the last replicas in the order find no node. Their demand
// is pending, not unmet by contention.
TEST(RunCluster, ReportsTheDemandOfOnlineReplicasLeftPending) {
  ClusterOptions o = Small();
  o.online_fill = 1;
  auto w = BuildWorkload({Wave("a", 10, 90), Wave("b", 50, 20)}, Tasks(), o);
  ASSERT_TRUE(w.ok());
  auto r = RunCluster(*w, "requests", o);
  ASSERT_TRUE(r.ok()) << r.status().message();
  ASSERT_GT(r->online_pods_unplaced, 0);
  // Replicas differ in size (0.5-8 cores at peak), so the pending share of demand is only near the
  // pending replicas' share of the count.
  const double replicas = static_cast<double>(w->replicas.size());
  EXPECT_GT(r->online_pending_demand_share, 0.2 * r->online_pods_unplaced / replicas);
  EXPECT_LT(r->online_pending_demand_share, 5.0 * r->online_pods_unplaced / replicas);
  EXPECT_NE(ReportJson(*r, o.nodes, o.days).find("\"online_pending_demand_share\":"),
            std::string::npos);
}

TEST(RunCluster, DeterministicForASeedAndSaneForEveryPolicy) {
  ClusterOptions o = Small();
  auto w = BuildWorkload({Wave("a", 10, 90), Wave("b", 50, 20)}, Tasks(), o);
  ASSERT_TRUE(w.ok());
  std::map<std::string, PolicyReport> reports;
  for (const char* policy : {"requests", "load-aware", "archimedes", "oracle"}) {
    auto r = RunCluster(*w, policy, o);
    ASSERT_TRUE(r.ok()) << r.status().message();
    EXPECT_EQ(r->policy, policy);
    EXPECT_GT(r->cpu_util_mean, 0);
    EXPECT_LE(r->cpu_util_mean, 1);
    EXPECT_LE(r->cpu_util_mean, r->cpu_util_p95 + 1e-9);
    EXPECT_GE(r->online_unmet_share, 0);
    EXPECT_LE(r->online_unmet_share, 1);
    EXPECT_GE(r->batch_lost_share, 0);
    EXPECT_LE(r->batch_lost_share, 1);
    EXPECT_GT(r->batch_cpu_hours, 0);
    EXPECT_EQ(r->online_pods_unplaced, 0) << policy;
    EXPECT_EQ(r->online_pending_demand_share, 0) << policy;
    EXPECT_EQ(r->util_by_hour.size(), 48u);
    reports[policy] = *r;
  }
  // Reclaiming idle capacity runs more batch work than reserving by requests.
  EXPECT_GT(reports["archimedes"].cpu_util_mean, reports["requests"].cpu_util_mean);
  EXPECT_GT(reports["oracle"].cpu_util_mean, reports["requests"].cpu_util_mean);

  auto again = RunCluster(*w, "archimedes", o);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->cpu_util_mean, reports["archimedes"].cpu_util_mean);
  EXPECT_EQ(again->evictions, reports["archimedes"].evictions);
  EXPECT_EQ(again->batch_jobs_completed, reports["archimedes"].batch_jobs_completed);

  std::string json = ReportJson(reports["requests"], o.nodes, o.days);
  EXPECT_EQ(json.rfind("{\"policy\":\"requests\",\"cpu_util_mean\":", 0), 0u) << json;
  std::string svg = PlotSvg({reports["requests"], reports["archimedes"]});
  EXPECT_NE(svg.find("<polyline"), std::string::npos);
  EXPECT_TRUE(RunCluster(*w, "nope", o).status().IsNotFound());
}

// One task of ten-minute pods on a quiet cluster, replayed on two days: archimedes places the
// first day's pods with the 1 h default (no run of the task has completed yet) and the second
// day's with what the first day's took. Given the exact duration, it would place none with the
// default.
TEST(RunCluster, ArchimedesLearnsBatchRuntimesFromEarlierDays) {
  ClusterOptions o = Small();
  o.online_fill = 0.2;
  o.batch_scale = 130;  // one or two copies of the task a day
  BatchTask task;
  task.create_time = 3600;
  task.end_time = task.create_time + 600;
  task.job_id = 1;
  task.task_id = 1;
  task.instances = 40;
  task.status = "Terminated";
  task.cpu_per_instance = 100;
  task.memory_per_instance = 0.001;
  auto w = BuildWorkload({Wave("a", 10, 90)}, {task}, o);
  ASSERT_TRUE(w.ok()) << w.status().message();
  int64_t first_day = std::count_if(w->batch.begin(), w->batch.end(),
                                    [](const BatchPod& p) { return p.arrival_minute < 1440; });
  ASSERT_GT(first_day, 0);
  ASSERT_GT(static_cast<int64_t>(w->batch.size()), first_day);

  auto r = RunCluster(*w, "archimedes", o);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->batch_pods_completed, static_cast<int64_t>(w->batch.size()));
  EXPECT_EQ(r->evictions, 0);
  EXPECT_EQ(r->batch_placed_default_runtime, first_day);
  EXPECT_EQ(r->batch_placed_short_runtime, 0);  // learnt: what the runs took, not less

  // The oracle knows every pod's duration.
  auto oracle = RunCluster(*w, "oracle", o);
  ASSERT_TRUE(oracle.ok());
  EXPECT_EQ(oracle->batch_placed_default_runtime, 0);
  EXPECT_EQ(oracle->batch_placed_short_runtime, 0);
}

TEST(SniffTraceFormat, FromTheFirstLine) {
  std::string dir = ::testing::TempDir() + "/sniff";
  std::filesystem::create_directories(dir);
  auto write = [&](const std::string& name, const std::string& text) {
    std::ofstream(dir + "/" + name) << text;
    return dir + "/" + name;
  };
  EXPECT_EQ(*SniffTraceFormat(write("a.csv", "ts,value\n1,2\n")), TraceFormat::kCrane);
  EXPECT_EQ(*SniffTraceFormat(write("b.csv", "timestamp,vm_id,min_cpu,max_cpu,avg_cpu\n")),
            TraceFormat::kAzure);
  EXPECT_EQ(*SniffTraceFormat(write("c.csv", "m_1,0,10,20,,,,,\n")),
            TraceFormat::kAlibabaMachine);
  EXPECT_EQ(*SniffTraceFormat(dir), TraceFormat::kCrane);  // a.csv comes first
  EXPECT_FALSE(SniffTraceFormat(dir + "/missing.csv").ok());
}

TEST(RunSimRunCommand, UsageErrors) {
  std::ostringstream out, err;
  EXPECT_EQ(RunSimRunCommand({"--nodes", "3"}, out, err), 2);
  EXPECT_NE(err.str().find("--days is required"), std::string::npos);
  err.str("");
  EXPECT_EQ(RunSimRunCommand({"--nodes", "3", "--days", "1", "--online", "x", "--batch", "y",
                              "--policy", "fifo"},
                             out, err),
            2);
  EXPECT_NE(err.str().find("unknown policy fifo"), std::string::npos);
  err.str("");
  EXPECT_EQ(RunSimRunCommand({"--nodes", "-3", "--days", "1", "--online", "x", "--batch", "y",
                              "--policy", "requests"},
                             out, err),
            2);
  err.str("");
  EXPECT_EQ(RunSimRunCommand({"--nodes", "3", "--days", "1", "--online", "/nonexistent",
                              "--batch", "y", "--policy", "requests"},
                             out, err),
            1);
}

}  // namespace
}  // namespace fulcrum::sim
