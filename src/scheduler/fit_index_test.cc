#include "scheduler/fit_index.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "base/clock.h"
#include "scheduler/profile.h"

namespace fulcrum::scheduler {
namespace {

constexpr int64_t kGi = 1ll << 30;

TEST(FreeCpuIndex, FindFirstMatchesALinearSearch) {
  std::mt19937 rng(7);
  for (size_t n : {1u, 2u, 3u, 7u, 64u, 100u, 1000u}) {
    FreeCpuIndex index;
    index.Reset(n);
    std::vector<double> values(n, -HUGE_VAL);
    for (int round = 0; round < 300; ++round) {
      if (round % 50 == 0) {
        for (double& v : values) v = std::uniform_int_distribution<int>(-1, 16)(rng) * 1000;
        index.Assign(values);
      } else {
        size_t i = rng() % n;
        values[i] = std::uniform_int_distribution<int>(-1, 16)(rng) * 1000;
        index.Set(i, values[i]);
      }
      size_t from = rng() % (n + 1), to = rng() % (n + 2);
      double need = std::uniform_int_distribution<int>(0, 17)(rng) * 1000;
      size_t want = FreeCpuIndex::kNone;
      for (size_t i = from; i < std::min(to, n); ++i) {
        if (values[i] >= need) {
          want = i;
          break;
        }
      }
      ASSERT_EQ(index.FindFirst(from, to, need), want) << n << " " << from << " " << to;
      ASSERT_EQ(index.Get(from < n ? from : 0), values[from < n ? from : 0]);
    }
  }
}

TEST(FreeCpuIndex, ANewIndexHasNothingFree) {
  FreeCpuIndex index;
  index.Reset(5);
  EXPECT_EQ(index.FindFirst(0, 5, -1e9), FreeCpuIndex::kNone);
}

// Batch pods scheduled with and without the index on the same random cluster: the same nodes
// (and the same rotating start), under every policy.
TEST(FreeCpuIndex, ScheduleDecidesAsWithoutTheIndex) {
  base::FakeClock clock(base::WallTime(std::chrono::seconds(1'600'041'600)));
  ProfileStore profiles;
  for (int64_t t = 0; t < 86400; t += 300) {
    profiles.Observe("online/Deployment/a", 1'600'041'600 - 86400 + t,
                     2000 + 1500 * std::sin(t / 86400.0 * 6.28));
  }
  profiles.Commit();
  PolicyOptions options;
  options.clock = &clock;
  options.profiles = &profiles;
  for (const std::string& name : PolicyNames()) {
    std::mt19937 rng(11);
    auto with = MakePolicy(name, options).value();
    auto without = MakePolicy(name, options).value();
    const size_t n = 300;
    std::vector<NodeInfo> nodes(n);
    for (size_t i = 0; i < n; ++i) {
      nodes[i].name = "n" + std::to_string(i);
      nodes[i].allocatable = {16000, 64 * kGi, 20};
      nodes[i].online_forecast.start_unix_seconds = 1'600'041'600;
      nodes[i].online_forecast.slot_seconds = 900;
      for (int s = 0; s < 200; ++s) {
        nodes[i].online_forecast.cpu_milli.push_back(std::uniform_real_distribution<float>(0, 12000)(rng));
      }
      PodInfo online;
      online.ns = "online";
      online.name = "o" + std::to_string(i);
      online.app = "online/Deployment/a";
      online.requests = {static_cast<int64_t>(rng() % 8) * 1000, kGi, 1};
      nodes[i].AddPod(online);
      nodes[i].cpu_usage_milli = nodes[i].online_cpu_usage_milli = rng() % 9000;
      nodes[i].memory_usage_bytes = 0;
      nodes[i].MarkUsageReported();
    }
    ScheduleOptions plain;
    plain.preemption = false;
    plain.percentage_of_nodes_to_score = 10;
    ScheduleOptions indexed = plain;
    FreeCpuIndex index;
    indexed.batch_headroom = &index;
    size_t start_plain = 0, start_indexed = 0;
    int placed = 0, failed = 0;
    for (int k = 0; k < 3000; ++k) {
      if (k % 500 == 0) clock.Advance(std::chrono::minutes(37));
      PodInfo pod;
      pod.ns = "batch";
      pod.name = "b" + std::to_string(k);
      pod.qos = Qos::kBatch;
      pod.requests = {static_cast<int64_t>(1 + rng() % 16) * 500, kGi, 1};
      // Unknown (0) now and then; the index is for a runtime the pod reaches.
      pod.expected_runtime_seconds = k % 7 == 0 ? 0 : 60 * static_cast<int64_t>(1 + rng() % 600);
      int64_t min_runtime = k % 3 == 0 ? 0 : rng() % (pod.expected_runtime_seconds + 1);
      std::vector<double> values(n);
      for (size_t i = 0; i < n; ++i) values[i] = BatchCpuHeadroom(*with, nodes, i, min_runtime);
      index.Assign(values);
      Decision a = Schedule(pod, nodes, *without, plain, &start_plain);
      Decision b = Schedule(pod, nodes, *with, indexed, &start_indexed);
      ASSERT_EQ(a.node_index, b.node_index) << name << " pod " << k;
      ASSERT_EQ(a.nodes_evaluated, b.nodes_evaluated) << name;
      ASSERT_EQ(start_plain, start_indexed) << name;
      if (a.node_index) {
        ASSERT_EQ(a.score, b.score);
        nodes[*a.node_index].AddPod(pod);
        ++placed;
      } else {
        ++failed;
      }
    }
    EXPECT_GT(placed, 100) << name;
    EXPECT_GT(failed, 100) << name;
  }
}

}  // namespace
}  // namespace fulcrum::scheduler
