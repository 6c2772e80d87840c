#include "scheduler/contention.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>

#include "scheduler/placement.h"
#include "scheduler/profile.h"

namespace fulcrum::scheduler {
namespace {

constexpr int64_t kDay = 86400;
constexpr int64_t kStart = 1'600'041'600;  // a midnight UTC

// Two days of a replica that uses 1000m by night and `day_milli` from 08:00 to 20:00.
void ObserveDays(ProfileStore& store, const std::string& app, double day_milli, int days = 2) {
  for (int64_t t = kStart - days * kDay; t < kStart; t += 60) {
    int64_t hour = (t % kDay) / 3600;
    store.Observe(app, t, hour >= 8 && hour < 20 ? day_milli : 1000);
  }
  store.Commit();
}

NodeInfo Node(const std::string& name, int64_t cpu_milli) {
  NodeInfo n;
  n.name = name;
  n.allocatable = {cpu_milli, 64ll << 30, 110};
  n.Touch();
  return n;
}

PodInfo Replica(const std::string& app, int i, int64_t cpu_milli) {
  PodInfo p;
  p.ns = "default";
  p.name = app + "-" + std::to_string(i);
  p.app = app;
  p.requests = {cpu_milli, 1ll << 30, 1};
  return p;
}

TEST(NormalTail, KnownValues) {
  EXPECT_NEAR(NormalTail(0), 0.5, 1e-12);
  EXPECT_NEAR(NormalTail(1.6448536), 0.05, 1e-6);
  EXPECT_NEAR(NormalTailInverse(0.01), 2.3263479, 1e-5);
}

TEST(ProfileStore, LearnsTheDailyShapeAndColdStartsFromRequests) {
  ProfileStore store;
  const AppProfile& cold = store.Get("web", 2000);
  EXPECT_TRUE(cold.cold);
  EXPECT_FLOAT_EQ(cold.cpu_mean[0], 1000);
  ObserveDays(store, "web", 3000);
  const AppProfile* p = store.Find("web");
  ASSERT_NE(p, nullptr);
  EXPECT_FALSE(p->cold);
  EXPECT_NEAR(p->cpu_mean[p->SlotAt(kStart + 3 * 3600)], 1000, 1e-3);
  EXPECT_NEAR(p->cpu_mean[p->SlotAt(kStart + 12 * 3600)], 3000, 1e-3);
  // A constant slot gets the floor spread, never zero.
  EXPECT_NEAR(p->cpu_std[p->SlotAt(kStart + 12 * 3600)], 150, 1e-3);
  uint64_t v = store.version();
  store.Commit();
  EXPECT_EQ(store.version(), v);  // nothing new
}

// LearnSoFar makes a profile of the cycle so far without ending it: the next Commit gives what
// it gives without the early look, and other applications are not touched.
TEST(ProfileStore, LearnSoFarLeavesTheCycleOpen) {
  ProfileStore early, plain;
  for (ProfileStore* store : {&early, &plain}) {
    store->Observe("old", 0, 40.0);
    store->Commit();
    store->Observe("old", 86400, 80.0);  // the next cycle, not ended
    store->Observe("new", 86400, 100.0);
  }
  uint64_t version = early.version();
  early.LearnSoFar("new");
  EXPECT_GT(early.version(), version);
  ASSERT_NE(early.Find("new"), nullptr);
  EXPECT_FLOAT_EQ(early.Find("new")->cpu_mean[0], 100);
  EXPECT_FLOAT_EQ(early.Find("old")->cpu_mean[0], 40);  // its cycle is not over
  EXPECT_EQ(plain.Find("new"), nullptr);
  early.LearnSoFar("unknown");  // nothing observed: nothing happens
  EXPECT_EQ(early.Find("unknown"), nullptr);
  for (ProfileStore* store : {&early, &plain}) {
    store->Observe("new", 86400 + 60, 300.0);
    store->Commit();
  }
  for (const char* app : {"old", "new"}) {
    EXPECT_EQ(early.Find(app)->cpu_mean, plain.Find(app)->cpu_mean) << app;
    EXPECT_EQ(early.Find(app)->cpu_std, plain.Find(app)->cpu_std) << app;
  }
  EXPECT_FLOAT_EQ(early.Find("new")->cpu_mean[0], 200);  // one cycle of (100, 300)
}

TEST(NodeDemand, SameAppReplicasAreCorrelated) {
  ProfileStore store;
  ObserveDays(store, "a", 3000);
  ObserveDays(store, "b", 3000);
  NodeInfo node = Node("n", 12000);
  node.AddPod(Replica("a", 0, 3000));
  node.AddPod(Replica("a", 1, 3000));
  NodeDemand demand;
  demand.Build(node, store);
  const AppProfile& a = *store.Find("a");
  const AppProfile& b = *store.Find("b");
  int64_t noon = kStart + 12 * 3600;
  double same = demand.ContentionProbability(a, "a", noon, 3600);
  double other = demand.ContentionProbability(b, "b", noon, 3600);
  EXPECT_GT(same, other);
  // At night the node is nearly idle.
  EXPECT_LT(demand.ContentionProbability(a, "a", kStart, 3600), 1e-9);
  // The horizon reaching into the day raises the probability.
  EXPECT_GT(demand.ContentionProbability(a, "a", kStart + 7 * 3600, 2 * 3600),
            demand.ContentionProbability(a, "a", kStart + 5 * 3600, 2 * 3600));
}

TEST(NodeDemand, ReclaimableCpuCoversTheWholeRuntime) {
  ProfileStore store;
  ObserveDays(store, "a", 8000);
  NodeInfo node = Node("n", 10000);
  node.AddPod(Replica("a", 0, 8000));
  NodeDemand demand;
  demand.Build(node, store);
  // Night: 10000 x 0.95 - (1000 + 2.33 x 50) ~ 8380; a run into 08:00 only gets the day's.
  double night = demand.ReclaimableCpu(kStart + 2 * 3600, 3600, 0.01, 0.05);
  EXPECT_NEAR(night, 9500 - 1000 - NormalTailInverse(0.01) * 50, 1);
  double into_day = demand.ReclaimableCpu(kStart + 7 * 3600, 2 * 3600, 0.01, 0.05);
  EXPECT_NEAR(into_day, 9500 - 8000 - NormalTailInverse(0.01) * 400, 1);
}

TEST(Archimedes, BatchGoesWhereItsRuntimeFitsBeforeTheBusyPeriod) {
  ProfileStore store;
  ObserveDays(store, "day", 7000);    // busy 08:00-20:00
  ObserveDays(store, "flat", 3000);   // 1000 by night, 3000 by day
  std::vector<NodeInfo> nodes = {Node("busy", 10000), Node("flat", 10000)};
  nodes[0].AddPod(Replica("day", 0, 7000));
  nodes[1].AddPod(Replica("flat", 0, 3000));
  base::FakeClock clock(base::WallTime(std::chrono::seconds(kStart + 6 * 3600)));
  PolicyOptions options;
  options.clock = &clock;
  options.profiles = &store;
  auto policy = std::move(MakePolicy("archimedes", options).value());
  PodInfo job = Replica("job", 0, 5000);
  job.qos = Qos::kBatch;
  job.expected_runtime_seconds = 1800;
  // Short job before 08:00: both fit, the busier (more packed) node is preferred.
  Decision d = Schedule(job, nodes, *policy);
  ASSERT_TRUE(d.node_index);
  EXPECT_EQ(*d.node_index, 0u);
  // A job running into the busy period only fits on the flat node.
  job.expected_runtime_seconds = 4 * 3600;
  d = Schedule(job, nodes, *policy);
  ASSERT_TRUE(d.node_index);
  EXPECT_EQ(*d.node_index, 1u);
  job.requests.cpu_milli = 9000;
  d = Schedule(job, nodes, *policy);
  EXPECT_EQ(d.message, "0/2 nodes are available: 2 Insufficient kubernetes.io/batch-cpu.");
}

TEST(Archimedes, OnlinePodsGoWhereContentionIsLeast) {
  ProfileStore store;
  ObserveDays(store, "web", 4000);
  std::vector<NodeInfo> nodes = {Node("a", 10000), Node("b", 10000), Node("c", 10000)};
  nodes[0].AddPod(Replica("web", 0, 4000));
  nodes[0].AddPod(Replica("web", 1, 4000));
  nodes[1].AddPod(Replica("other", 0, 1000));
  base::FakeClock clock(base::WallTime(std::chrono::seconds(kStart + 10 * 3600)));
  PolicyOptions options;
  options.clock = &clock;
  options.profiles = &store;
  auto policy = std::move(MakePolicy("archimedes", options).value());
  Decision d = Schedule(Replica("web", 2, 1000), nodes, *policy);
  ASSERT_TRUE(d.node_index);
  // a would reach 12000 > 10000 at noon (filtered); the empty c is further from contention than b.
  EXPECT_EQ(*d.node_index, 2u);
  nodes[2].AddPod(Replica("web", 2, 1000));
  // Next, c holds a correlated replica of web at its peak: b is further from contention.
  d = Schedule(Replica("web", 3, 1000), nodes, *policy);
  ASSERT_TRUE(d.node_index);
  EXPECT_EQ(*d.node_index, 1u);
}

}  // namespace
}  // namespace fulcrum::scheduler
