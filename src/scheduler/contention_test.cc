#include "scheduler/contention.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <numbers>
#include <random>

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

// Nodes of 1-20 replicas of 30 apps with random daily shapes (some cold, some near capacity):
// the whole-cycle WorstZ answered block by block is the per-slot loop's, bit for bit, whatever
// slot the window starts at, and the policy's score and filter are those of the exact z.
class RandomNodes : public ::testing::Test {
 protected:
  static std::string App(int a) {
    std::string app = "app";
    app += std::to_string(a);
    return app;
  }

  void SetUp() override {
    std::mt19937_64 rng(7);
    for (int a = 0; a < 30; ++a) {
      std::string app = App(a);
      if (a % 10 == 9) continue;  // cold: from requests
      double size = 200 + rng() % 3000, phase = (rng() % 96) * 900.0;
      for (int64_t t = kStart - kDay; t < kStart; t += 300) {
        double wave = std::sin(2 * std::numbers::pi * (t + phase) / kDay);
        store_.Observe(app, t, size * (1 + 0.7 * wave) + (rng() % 100) * size / 200);
      }
    }
    store_.Commit();
    for (int n = 0; n < 200; ++n) {
      nodes_.push_back(Node(std::to_string(n), 16000 + 1000 * (rng() % 48)));
      int pods = 1 + rng() % 20;
      for (int k = 0; k < pods; ++k) {
        int a = rng() % 30;
        nodes_.back().AddPod(Replica(App(a), n * 100 + k, 200 + rng() % 4000));
      }
    }
  }

  ProfileStore store_;
  std::vector<NodeInfo> nodes_;
};

TEST_F(RandomNodes, WholeCycleWorstZIsThePerSlotLoops) {
  const double risk_z = NormalTailInverse(0.01);
  int looped = 0;
  for (int64_t hour = 0; hour < 24; hour += 5) {
    for (int a = 0; a < 30; a += 4) {
      std::string app = App(a);
      CandidateWindow w =
          MakeCandidateWindow(store_.Get(app, 1500), app, kStart + hour * 3600 + 60, kDay);
      ASSERT_FALSE(w.blocks.empty());
      CandidateWindow unblocked = w;
      unblocked.blocks.clear();  // the per-slot loop
      for (const NodeInfo& node : nodes_) {
        NodeDemand demand;
        demand.Build(node, store_);
        for (auto [accept, reject] : {std::pair(HUGE_VAL, -HUGE_VAL), std::pair(50.0, risk_z)}) {
          double peak = -1, loop_peak = -2;
          double z = demand.WorstZ(w, &peak, accept, reject);
          double loop_z = demand.WorstZ(unblocked, &loop_peak, accept, reject);
          ASSERT_EQ(z, loop_z) << node.name << " " << app << " at " << hour << "h";
          ASSERT_EQ(peak, loop_peak);
          if (accept == HUGE_VAL && z < 50) ++looped;
        }
      }
    }
  }
  EXPECT_GT(looped, 100);  // the blocks were used, not only the summary
}

TEST_F(RandomNodes, SummaryClearsOnlyWhatTheLowerBoundClears) {
  for (int a = 0; a < 30; ++a) {
    std::string app = App(a);
    CandidateWindow w = MakeCandidateWindow(store_.Get(app, 1500), app, kStart, kDay);
    for (const NodeInfo& node : nodes_) {
      NodeDemand demand;
      demand.Build(node, store_);
      const DemandSummary& s = demand.summary();
      for (int replicas : {0, 3}) {
        double lower = SummaryLowerZ(s, w, replicas, 0.25);
        for (double z : {lower * (1 - 1e-6), lower * (1 - 1e-12), lower, 50.0, 2.0}) {
          if (z <= 0) continue;
          if (SummaryClears(s, w, replicas, 0.25, z)) {
            EXPECT_GE(lower, z);
          }
        }
        if (lower > 0) {
          EXPECT_TRUE(SummaryClears(s, w, replicas, 0.25, lower * (1 - 1e-6)));
        }
      }
    }
  }
}

TEST_F(RandomNodes, ArchimedesScoresOnlinePodsByTheExactZ) {
  const double risk_z = NormalTailInverse(0.01);
  base::FakeClock clock(base::WallTime(std::chrono::seconds(kStart + 3 * 3600)));
  PolicyOptions options;
  options.clock = &clock;
  options.profiles = &store_;
  auto policy = std::move(MakePolicy("archimedes", options).value());
  int accepted = 0, scored = 0;
  for (int a = 0; a < 30; ++a) {
    PodInfo pod = Replica(App(a), 9999, 1500);
    policy->BeginPod(pod, nodes_);
    CandidateWindow w = MakeCandidateWindow(store_.Get(pod.app, 1500), pod.app, kStart + 3 * 3600,
                                            options.horizon_seconds);
    for (const NodeInfo& node : nodes_) {
      NodeDemand demand;
      demand.Build(node, store_);
      double peak = 0;
      double z = demand.WorstZ(w, &peak);  // exact
      ASSERT_EQ(policy->Filter(pod, node), z < risk_z ? kContentionRisk : kFits) << node.name;
      if (z < risk_z) continue;
      double capacity = static_cast<double>(node.allocatable.cpu_milli);
      double want = 99.0 * std::clamp(z / 50, 0.0, 1.0) +
                    1.0 * std::clamp((peak + w.mean[0]) / capacity, 0.0, 1.0);
      ASSERT_EQ(policy->Score(pod, node), want) << node.name << " z " << z;
      ++scored;
      if (z >= 50) ++accepted;
    }
  }
  EXPECT_GT(accepted, 100);
  EXPECT_GT(scored - accepted, 100);
}

}  // namespace
}  // namespace fulcrum::scheduler
