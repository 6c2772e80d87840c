// Placement throughput of scheduler::Schedule on in-process nodes: pods placed per second on
// 5,000 nodes (issue 4 §4: >= 2,000 pods/s with archimedes). Every pod is bound (NodeInfo::AddPod)
// before the next is placed, as the live loop does. Prints one JSON object per policy and pod kind.
// Then batch pods on a cluster where only one node in `--free-every` has batch room left (as the
// simulator's clusters are most of the time), with and without the headroom index (fit_index.h),
// percentage 1 as in the simulator's 10,000-node run.
//
// Each line's "placements" is a hash of the sequence of chosen nodes (-1 when a pod fits
// nowhere): a change that should leave every decision alone must leave it alone.
//
// usage: scheduler_bench [--nodes 5000] [--pods 20000] [--percent 100] [--free-every 50]
//                        [--policy archimedes|requests] [--only online|batch|full]

#include <time.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <numbers>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/clock.h"
#include "scheduler/fit_index.h"
#include "scheduler/framework.h"
#include "scheduler/profile.h"

namespace {

using fulcrum::scheduler::NodeInfo;
using fulcrum::scheduler::PodInfo;

constexpr int64_t kStart = 1'600'041'600;

// CPU time of this thread: the machine is shared, so pods per CPU-second is reported beside
// pods per wall-clock second.
double ThreadCpuSeconds() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + ts.tv_nsec * 1e-9;
}
constexpr int kApps = 400;

std::string AppKey(int a) { return "bench/Deployment/app" + std::to_string(a); }

PodInfo OnlinePod(int app, int i, std::mt19937_64& rng) {
  PodInfo p;
  p.ns = "bench";
  p.name = "app" + std::to_string(app) + "-" + std::to_string(i);
  p.app = AppKey(app);
  p.labels = {{"app", "app" + std::to_string(app)}};
  p.requests = {static_cast<int64_t>(500 * (1 + rng() % 4)), 1ll << 30, 1};
  p.priority = 1000;
  return p;
}

PodInfo BatchPod(int i, std::mt19937_64& rng) {
  PodInfo p;
  p.ns = "batch";
  p.name = "job-" + std::to_string(i);
  p.app = "batch/Job/j" + std::to_string(i / 10);
  p.qos = fulcrum::scheduler::Qos::kBatch;
  p.requests = {static_cast<int64_t>(1000 * (1 + rng() % 8)), 2ll << 30, 1};
  p.expected_runtime_seconds = 600 + static_cast<int64_t>(rng() % 7200);
  return p;
}

// 64-core nodes with ten online replicas each.
std::vector<NodeInfo> Cluster(int count, std::mt19937_64& rng) {
  std::vector<NodeInfo> nodes(count);
  for (int i = 0; i < count; ++i) {
    nodes[i].name = "node-" + std::to_string(i);
    nodes[i].labels = {{"kubernetes.io/hostname", nodes[i].name}};
    nodes[i].allocatable = {64000, 256ll << 30, 110};
    nodes[i].cpu_usage_milli = nodes[i].online_cpu_usage_milli = 8000;
    nodes[i].memory_usage_bytes = 32ll << 30;
    for (int k = 0; k < 10; ++k) nodes[i].AddPod(OnlinePod((i * 10 + k) % kApps, i, rng), true);
  }
  return nodes;
}

// FNV-1a over the chosen node of each decision, in order.
class PlacementHash {
 public:
  void Add(const fulcrum::scheduler::Decision& d) {
    int64_t node = d.node_index ? static_cast<int64_t>(*d.node_index) : -1;
    for (int b = 0; b < 8; ++b) {
      hash_ = (hash_ ^ static_cast<uint8_t>(node >> (8 * b))) * 1099511628211ull;
    }
  }
  unsigned long long value() const { return hash_; }

 private:
  unsigned long long hash_ = 14695981039346656037ull;
};

// Wall-clock and CPU seconds of run().
template <typename Run>
std::pair<double, double> Timed(Run run) {
  auto t0 = std::chrono::steady_clock::now();
  double cpu0 = ThreadCpuSeconds();
  run();
  return {std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(),
          ThreadCpuSeconds() - cpu0};
}

}  // namespace

int main(int argc, char** argv) {
  int nodes_count = 5000, pods = 20000, percent = 100, free_every = 50;
  std::string only_policy, only;  // empty: all
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--nodes")) nodes_count = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--pods")) pods = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--percent")) percent = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--free-every")) free_every = std::max(1, std::atoi(argv[i + 1]));
    if (!std::strcmp(argv[i], "--policy")) only_policy = argv[i + 1];
    if (!std::strcmp(argv[i], "--only")) only = argv[i + 1];
  }
  // Profiles: each app a daily wave with its own phase and size, one day observed.
  fulcrum::scheduler::ProfileStore profiles;
  for (int a = 0; a < kApps; ++a) {
    double phase = 2 * std::numbers::pi * a / kApps, size = 200 + 50 * (a % 20);
    for (int64_t t = 0; t < 86400; t += 300) {
      profiles.Observe(AppKey(a), kStart - 86400 + t,
                       size * (1 + 0.8 * std::sin(2 * std::numbers::pi * t / 86400 + phase)));
    }
  }
  profiles.Commit();
  fulcrum::base::FakeClock clock(fulcrum::base::WallTime(std::chrono::seconds(kStart + 3600)));
  fulcrum::scheduler::PolicyOptions options;
  options.clock = &clock;
  options.profiles = &profiles;
  fulcrum::scheduler::ScheduleOptions schedule_options;
  schedule_options.percentage_of_nodes_to_score = percent;

  auto skip = [&](std::string_view policy_name, std::string_view kind) {
    return (!only_policy.empty() && policy_name != only_policy) || (!only.empty() && kind != only);
  };
  for (const char* policy_name : {"archimedes", "requests"}) {
    for (bool batch : {false, true}) {
      if (skip(policy_name, batch ? "batch" : "online")) continue;
      std::mt19937_64 rng(42);
      std::vector<NodeInfo> nodes = Cluster(nodes_count, rng);
      auto policy = std::move(fulcrum::scheduler::MakePolicy(policy_name, options).value());
      size_t start = 0;
      int placed = 0;
      PlacementHash placements;
      // One pass to fill the policy's per-node caches, as a running scheduler has them.
      fulcrum::scheduler::Schedule(batch ? BatchPod(-1, rng) : OnlinePod(0, -1, rng), nodes,
                                   *policy, schedule_options, &start);
      auto [seconds, cpu_seconds] = Timed([&] {
        for (int i = 0; i < pods; ++i) {
          PodInfo pod =
              batch ? BatchPod(i, rng) : OnlinePod(static_cast<int>(rng() % kApps), i, rng);
          auto d = fulcrum::scheduler::Schedule(pod, nodes, *policy, schedule_options, &start);
          placements.Add(d);
          if (d.node_index) {
            nodes[*d.node_index].AddPod(pod);
            ++placed;
          }
        }
      });
      std::printf(
          "{\"bench\":\"schedule\",\"policy\":\"%s\",\"pods\":\"%s\",\"nodes\":%d,"
          "\"percentage_of_nodes_to_score\":%d,\"decisions\":%d,\"placed\":%d,"
          "\"seconds\":%.3f,\"cpu_seconds\":%.3f,\"pods_per_second\":%.0f,"
          "\"pods_per_cpu_second\":%.0f,\"placements\":\"%016llx\"}\n",
          policy_name, batch ? "batch" : "online", nodes_count, percent, pods, placed, seconds,
          cpu_seconds, pods / seconds, pods / cpu_seconds, placements.value());
      std::fflush(stdout);
    }
  }

  for (const char* policy_name : {"archimedes", "requests"}) {
    for (bool indexed : {false, true}) {
      if (skip(policy_name, "full")) continue;
      std::mt19937_64 rng(42);
      std::vector<NodeInfo> nodes = Cluster(nodes_count, rng);
      auto policy = std::move(fulcrum::scheduler::MakePolicy(policy_name, options).value());
      // Fill every node but one in `free_every` with batch pods up to its batch capacity.
      fulcrum::scheduler::FreeCpuIndex index;
      index.Reset(nodes.size());
      for (int i = 0; i < nodes_count; ++i) {
        if (i % free_every == 0) continue;
        for (int k = 0;; ++k) {
          PodInfo filler = BatchPod(-1, rng);
          filler.name = "fill-" + std::to_string(i) + "-" + std::to_string(k);
          filler.requests.cpu_milli = 1000;
          filler.expected_runtime_seconds = 0;
          if (fulcrum::scheduler::BatchCpuHeadroom(*policy, nodes, i) < 1000) break;
          nodes[i].AddPod(filler, true);
        }
      }
      fulcrum::scheduler::ScheduleOptions full_options;
      full_options.percentage_of_nodes_to_score = 1;
      full_options.preemption = false;
      auto refresh = [&](size_t i) {
        index.Set(i, fulcrum::scheduler::BatchCpuHeadroom(*policy, nodes, i));
      };
      for (size_t i = 0; i < nodes.size(); ++i) refresh(i);
      if (indexed) full_options.batch_headroom = &index;
      size_t start = 0;
      int placed = 0;
      PlacementHash placements;
      auto [seconds, cpu_seconds] = Timed([&] {
        for (int i = 0; i < pods; ++i) {
          PodInfo pod = BatchPod(i, rng);
          pod.expected_runtime_seconds = 0;  // the index is for any runtime
          auto d = fulcrum::scheduler::Schedule(pod, nodes, *policy, full_options, &start);
          placements.Add(d);
          if (d.node_index) {
            nodes[*d.node_index].AddPod(pod);
            refresh(*d.node_index);
            ++placed;
          }
        }
      });
      std::printf(
          "{\"bench\":\"schedule_full\",\"policy\":\"%s\",\"index\":%s,\"nodes\":%d,"
          "\"free_every\":%d,\"decisions\":%d,\"placed\":%d,\"seconds\":%.3f,"
          "\"cpu_seconds\":%.3f,\"pods_per_second\":%.0f,\"pods_per_cpu_second\":%.0f,"
          "\"placements\":\"%016llx\"}\n",
          policy_name, indexed ? "true" : "false", nodes_count, free_every, pods, placed, seconds,
          cpu_seconds, pods / seconds, pods / cpu_seconds, placements.value());
      std::fflush(stdout);
    }
  }
  return 0;
}
