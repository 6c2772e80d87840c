#include "scheduler/framework.h"

#include <gtest/gtest.h>

#include "scheduler/profile.h"

namespace fulcrum::scheduler {
namespace {

constexpr int64_t kGi = 1ll << 30;

NodeInfo Node(const std::string& name, int64_t cpu_milli = 4000, int64_t mem = 8 * kGi) {
  NodeInfo n;
  n.name = name;
  n.labels = {{"kubernetes.io/hostname", name}};
  n.allocatable = {cpu_milli, mem, 110};
  n.Touch();
  return n;
}

PodInfo Pod(const std::string& name, int64_t cpu_milli = 1000, int64_t mem = kGi) {
  PodInfo p;
  p.ns = "default";
  p.name = name;
  p.app = "default/Deployment/web";
  p.requests = {cpu_milli, mem, 1};
  return p;
}

std::unique_ptr<Policy> Requests() { return std::move(MakePolicy("requests").value()); }

TEST(Schedule, PicksTheLeastAllocatedNode) {
  std::vector<NodeInfo> nodes = {Node("a"), Node("b")};
  nodes[0].AddPod(Pod("x", 2000));
  auto policy = Requests();
  Decision d = Schedule(Pod("p"), nodes, *policy);
  ASSERT_TRUE(d.node_index);
  EXPECT_EQ(*d.node_index, 1u);
}

TEST(Schedule, MessageAggregatesReasonsLikeKubeScheduler) {
  std::vector<NodeInfo> nodes = {Node("a", 500), Node("b", 500), Node("c")};
  nodes[2].taints.push_back({"dedicated", "gpu", TaintEffect::kNoSchedule});
  nodes[2].Touch();
  auto policy = Requests();
  Decision d = Schedule(Pod("p"), nodes, *policy);
  EXPECT_FALSE(d.node_index);
  EXPECT_EQ(d.message,
            "0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, "
            "2 Insufficient cpu.");
}

TEST(Schedule, ReportsEveryInsufficientResource) {
  std::vector<NodeInfo> nodes = {Node("a", 500, kGi / 2)};
  auto policy = Requests();
  Decision d = Schedule(Pod("p"), nodes, *policy);
  EXPECT_EQ(d.message, "0/1 nodes are available: 1 Insufficient cpu, 1 Insufficient memory.");
}

TEST(Schedule, TolerationsLetThePodOnTaintedNodes) {
  std::vector<NodeInfo> nodes = {Node("a")};
  nodes[0].taints.push_back({"dedicated", "gpu", TaintEffect::kNoExecute});
  nodes[0].taints.push_back({"soft", "", TaintEffect::kPreferNoSchedule});
  PodInfo pod = Pod("p");
  auto policy = Requests();
  EXPECT_FALSE(Schedule(pod, nodes, *policy).node_index);
  pod.tolerations.push_back({"dedicated", false, "gpu", TaintEffect::kNoExecute});
  EXPECT_TRUE(Schedule(pod, nodes, *policy).node_index);
  pod.tolerations = {{"", true, "", std::nullopt}};
  EXPECT_TRUE(Schedule(pod, nodes, *policy).node_index);
  pod.tolerations = {{"dedicated", false, "gpu", TaintEffect::kNoSchedule}};
  EXPECT_FALSE(Schedule(pod, nodes, *policy).node_index);
}

TEST(Schedule, NodeSelectorAndRequiredAffinity) {
  std::vector<NodeInfo> nodes = {Node("a"), Node("b")};
  nodes[1].labels["zone"] = "z1";
  nodes[1].labels["cores"] = "16";
  PodInfo pod = Pod("p");
  pod.node_selector = {{"zone", "z1"}};
  auto policy = Requests();
  EXPECT_EQ(*Schedule(pod, nodes, *policy).node_index, 1u);

  pod.node_selector.clear();
  using Op = SelectorRequirement::Operator;
  pod.required_node_affinity = {{{{"cores", Op::kGt, {"8"}}}}};
  EXPECT_EQ(*Schedule(pod, nodes, *policy).node_index, 1u);
  pod.required_node_affinity = {{{{"cores", Op::kLt, {"8"}}}}};
  Decision d = Schedule(pod, nodes, *policy);
  EXPECT_FALSE(d.node_index);
  EXPECT_EQ(d.message,
            "0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector.");
  // Terms are ORed; an expression list is ANDed.
  pod.required_node_affinity = {{{{"zone", Op::kIn, {"z9"}}}},
                                {{{"zone", Op::kDoesNotExist, {}}}}};
  EXPECT_EQ(*Schedule(pod, nodes, *policy).node_index, 0u);
  pod.required_node_affinity = {{{{"zone", Op::kExists, {}}, {"zone", Op::kNotIn, {"z1"}}}}};
  EXPECT_FALSE(Schedule(pod, nodes, *policy).node_index);
}

TEST(Schedule, AntiAffinityOnHostnameBothWays) {
  std::vector<NodeInfo> nodes = {Node("a"), Node("b")};
  PodInfo first = Pod("web-1");
  first.labels = {{"app", "web"}};
  first.anti_affinity = {LabelSelector{{{"app", "web"}}, {}}};
  nodes[0].AddPod(first);
  PodInfo second = first;
  second.name = "web-2";
  auto policy = Requests();
  EXPECT_EQ(*Schedule(second, nodes, *policy).node_index, 1u);
  nodes[1].AddPod(second);
  PodInfo third = second;
  third.name = "web-3";
  Decision d = Schedule(third, nodes, *policy);
  EXPECT_FALSE(d.node_index);
  EXPECT_EQ(d.message, "0/2 nodes are available: 2 node(s) didn't match pod anti-affinity rules.");
  // A pod without anti-affinity of its own is still kept away by the existing pods' rules.
  PodInfo other = Pod("other");
  other.labels = {{"app", "web"}};
  d = Schedule(other, nodes, *policy);
  EXPECT_EQ(d.message,
            "0/2 nodes are available: 2 node(s) didn't satisfy existing pods anti-affinity rules.");
}

TEST(Schedule, PodCountAndUnschedulable) {
  std::vector<NodeInfo> nodes = {Node("a"), Node("b")};
  nodes[0].allocatable.pods = 1;
  nodes[0].AddPod(Pod("x", 10, 10));
  nodes[1].unschedulable = true;
  auto policy = Requests();
  Decision d = Schedule(Pod("p", 10, 10), nodes, *policy);
  EXPECT_EQ(d.message, "0/2 nodes are available: 1 Too many pods, 1 node(s) were unschedulable.");
}

TEST(Schedule, PreemptsTheLowestPriorityVictims) {
  std::vector<NodeInfo> nodes = {Node("a"), Node("b")};
  PodInfo low = Pod("low", 2000);
  low.priority = 1;
  PodInfo mid = Pod("mid", 2000);
  mid.priority = 5;
  nodes[0].AddPod(low);
  nodes[0].AddPod(mid);
  PodInfo mid2 = mid;
  mid2.name = "mid2";
  nodes[1].AddPod(mid2);
  nodes[1].AddPod(mid);
  PodInfo pod = Pod("p", 2000);
  pod.priority = 10;
  auto policy = Requests();
  Decision d = Schedule(pod, nodes, *policy);
  EXPECT_FALSE(d.node_index);
  ASSERT_TRUE(d.nominated_node_index);
  EXPECT_EQ(*d.nominated_node_index, 0u);
  ASSERT_EQ(d.victims.size(), 1u);
  EXPECT_EQ(d.victims[0].name, "low");
  // Nothing of lower priority: no preemption.
  pod.priority = 0;
  d = Schedule(pod, nodes, *policy);
  EXPECT_FALSE(d.nominated_node_index);
}

TEST(Schedule, SamplingStopsAfterEnoughFeasibleNodesAndRotates) {
  std::vector<NodeInfo> nodes;
  for (int i = 0; i < 1000; ++i) nodes.push_back(Node("n" + std::to_string(i)));
  auto policy = Requests();
  ScheduleOptions options;
  options.percentage_of_nodes_to_score = 10;
  size_t start = 0;
  Decision d = Schedule(Pod("p"), nodes, *policy, options, &start);
  EXPECT_EQ(d.nodes_evaluated, 100);
  EXPECT_EQ(start, 100u);
  d = Schedule(Pod("p"), nodes, *policy, options, &start);
  EXPECT_GE(*d.node_index, 100u);
}

TEST(LoadAware, FiltersOnUsageThresholdAndCountsJustBoundPods) {
  std::vector<NodeInfo> nodes = {Node("a", 10000), Node("b", 10000)};
  nodes[0].cpu_usage_milli = 7000;  // 70% > 65%
  nodes[0].memory_usage_bytes = kGi;
  nodes[1].cpu_usage_milli = 1000;
  nodes[1].memory_usage_bytes = kGi;
  auto policy = std::move(MakePolicy("load-aware").value());
  Decision d = Schedule(Pod("p"), nodes, *policy);
  EXPECT_EQ(*d.node_index, 1u);
  nodes[0].cpu_usage_milli = 1000;
  // Node b had a pod bound since its last report: estimated 1000 + 7000 x 0.85 = 6950 > 65%.
  nodes[1].AddPod(Pod("x", 7000), /*usage_reported=*/false);
  d = Schedule(Pod("p"), nodes, *policy);
  EXPECT_EQ(*d.node_index, 0u);
  nodes[0].cpu_usage_milli = 9000;
  d = Schedule(Pod("p"), nodes, *policy);
  EXPECT_EQ(d.message, "0/2 nodes are available: 2 node(s) cpu usage exceed threshold.");
}

TEST(LoadAware, BatchAllocatableIsTotalTimesThresholdMinusOnlineUsage) {
  std::vector<NodeInfo> nodes = {Node("a", 10000)};
  nodes[0].AddPod(Pod("web", 8000), /*usage_reported=*/true);  // online requests nearly fill it
  nodes[0].cpu_usage_milli = 2000;
  nodes[0].online_cpu_usage_milli = 2000;
  nodes[0].memory_usage_bytes = kGi;
  auto policy = std::move(MakePolicy("load-aware").value());
  PodInfo batch = Pod("job", 4000);
  batch.qos = Qos::kBatch;
  EXPECT_EQ(policy->BatchAllocatable(nodes[0]).cpu_milli, 4500);  // 6500 - 2000
  EXPECT_TRUE(Schedule(batch, nodes, *policy).node_index);
  batch.requests.cpu_milli = 5000;
  EXPECT_EQ(Schedule(batch, nodes, *policy).message,
            "0/1 nodes are available: 1 Insufficient kubernetes.io/batch-cpu.");
  // Under requests the same batch pod does not fit at all.
  auto requests = Requests();
  batch.requests.cpu_milli = 4000;
  EXPECT_FALSE(Schedule(batch, nodes, *requests).node_index);
}

TEST(MakePolicy, NamesAndErrors) {
  EXPECT_TRUE(MakePolicy("nope").status().IsNotFound());
  EXPECT_EQ(MakePolicy("archimedes").status().code(), base::Code::kInvalid);
  ProfileStore profiles;
  PolicyOptions options;
  options.profiles = &profiles;
  for (const std::string& name : PolicyNames()) {
    auto p = MakePolicy(name, options);
    ASSERT_TRUE(p.ok()) << name;
    EXPECT_EQ((*p)->name(), name);
  }
}

TEST(NodeInfo, AddAndRemoveKeepSums) {
  NodeInfo n = Node("a");
  uint64_t g = n.generation;
  PodInfo batch = Pod("b", 300, 10);
  batch.qos = Qos::kBatch;
  n.AddPod(Pod("o", 200, 20));
  n.AddPod(batch);
  EXPECT_NE(n.generation, g);
  EXPECT_EQ(n.requested.cpu_milli, 500);
  EXPECT_EQ(n.online_requested.cpu_milli, 200);
  EXPECT_EQ(n.requested.pods, 2);
  EXPECT_TRUE(n.RemovePod("default", "o"));
  EXPECT_FALSE(n.RemovePod("default", "o"));
  EXPECT_EQ(n.requested.cpu_milli, 300);
  EXPECT_EQ(n.online_requested.cpu_milli, 0);
  EXPECT_EQ(n.unreported_requested.cpu_milli, 300);
  n.MarkUsageReported();
  EXPECT_EQ(n.unreported_requested.cpu_milli, 0);
  EXPECT_TRUE(n.pods[0].usage_reported);
}

}  // namespace
}  // namespace fulcrum::scheduler
