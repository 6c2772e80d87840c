#pragma once

// The scheduling framework on plain data: node and pod views, the filter plugins of
// kube-scheduler (NodeResourcesFit, NodeUnschedulable, NodeAffinity, TaintToleration,
// InterPodAffinity on kubernetes.io/hostname, pod count), policy-specific filters and scores, and
// preemption. The live scheduler (API server) and the simulator build these views and call
// Schedule(); neither the framework nor a policy touches the API or the store.

#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/clock.h"
#include "base/status.h"

namespace fulcrum::scheduler {

class ProfileStore;  // profile.h
class FreeCpuIndex;  // fit_index.h

using Labels = std::map<std::string, std::string, std::less<>>;

struct Resources {
  int64_t cpu_milli = 0;
  int64_t memory_bytes = 0;
  int64_t pods = 0;
};

// online: latency-sensitive services, never evicted for batch work. batch: priority class
// `fulcrum-batch` or annotation `fulcrum.dev/qos: batch`, runs on reclaimed capacity where the
// policy reclaims it.
enum class Qos : uint8_t { kOnline, kBatch };

// A matchExpressions entry of a node selector term or a label selector.
struct SelectorRequirement {
  enum class Operator : uint8_t { kIn, kNotIn, kExists, kDoesNotExist, kGt, kLt };
  std::string key;
  Operator op = Operator::kIn;
  std::vector<std::string> values;
};

// A node selector term: its requirements are ANDed. A term with no requirement matches nothing
// (as in Kubernetes).
struct NodeSelectorTerm {
  std::vector<SelectorRequirement> match_expressions;
};

// metav1.LabelSelector: matchLabels and matchExpressions ANDed; empty matches everything.
// Gt/Lt are not valid here and never match.
struct LabelSelector {
  Labels match_labels;
  std::vector<SelectorRequirement> match_expressions;
};

enum class TaintEffect : uint8_t { kNoSchedule, kPreferNoSchedule, kNoExecute };

struct Taint {
  std::string key;
  std::string value;
  TaintEffect effect = TaintEffect::kNoSchedule;
};

struct Toleration {
  std::string key;                   // empty with kExists: tolerates every taint
  bool exists = false;               // operator Exists (else Equal)
  std::string value;
  std::optional<TaintEffect> effect;  // empty: every effect
};

// The pod to place.
struct PodInfo {
  std::string ns;
  std::string name;
  Labels labels;
  Resources requests;                // pods is ignored (a pod counts as one)
  Labels node_selector;
  std::vector<NodeSelectorTerm> required_node_affinity;  // terms ORed; empty: no constraint
  std::vector<Toleration> tolerations;
  // requiredDuringSchedulingIgnoredDuringExecution pod anti-affinity with topologyKey
  // kubernetes.io/hostname: no pod matching any of these may be on the chosen node.
  std::vector<LabelSelector> anti_affinity;
  int32_t priority = 0;
  Qos qos = Qos::kOnline;
  std::string app;                   // the owning workload ("ns/Deployment/name"): profile key
  // Batch only: the expected runtime when known (the pod's fulcrum.dev/expected-runtime, or learnt
  // from completed runs of its application: job_runtime.h), 0 when unknown (the policy assumes
  // kDefaultBatchRuntimeSeconds).
  int64_t expected_runtime_seconds = 0;
};

// A pod already on (or assumed onto) a node.
struct PodOnNode {
  std::string ns;
  std::string name;
  Labels labels;
  Resources requests;
  int32_t priority = 0;
  Qos qos = Qos::kOnline;
  std::string app;
  std::vector<LabelSelector> anti_affinity;
  // False while the node's reported usage does not include this pod yet (just bound): load-aware
  // policies then add an estimate from its requests.
  bool usage_reported = true;
};

// Usage per time slot over the horizon from `start_unix_seconds`, in CPU millicores.
struct UsageForecast {
  int64_t start_unix_seconds = 0;
  int64_t slot_seconds = 0;
  std::vector<float> cpu_milli;
};

// A node as the scheduler sees it. Build it with the setters below or keep `requested`,
// `online_requested` and `generation` consistent by hand (AddPod/RemovePod do it).
struct NodeInfo {
  // The fields that filters and scores read of every node a scan visits come first, together in
  // a few cache lines (a scan visits hundreds or thousands of nodes): what the framework's filters
  // and the `requests`, `archimedes` and `oracle` policies read in the first two, load-aware's
  // usage in the third; the names, labels and pods follow.
  bool unschedulable = false;        // spec.unschedulable
  // Pods with required anti-affinity terms: lets the anti-affinity filter skip nodes where no pod
  // has such terms.
  int32_t anti_affinity_pods = 0;
  Resources allocatable;

  // Sums over `pods` (pods = pods.size()); online_requested counts online pods only.
  Resources requested;
  Resources online_requested;

  // Changes whenever the node's online pods change (AddPod, RemovePod, Touch), as `generation`
  // below does for all of its pods; batch pods come and go far more often, and aggregates of the
  // online pods need not be rebuilt for them.
  uint64_t online_generation = 0;

  std::vector<Taint> taints;

  // Measured usage (negative: unknown), from the node's most recent metrics report.
  double online_cpu_usage_milli = -1;  // usage of online pods only
  double system_cpu_usage_milli = 0;   // the node's own daemons
  double cpu_usage_milli = -1;
  double memory_usage_bytes = -1;

  // Sums over the pods whose usage the node has not reported yet (usage_reported false).
  Resources unreported_requested;
  Resources unreported_online_requested;

  // Changes whenever the node's pods, labels, taints or allocatable change (AddPod, RemovePod,
  // Touch); policies cache per-node aggregates keyed by it. Unique across all NodeInfos of the
  // process. The usage fields above may change without a Touch: policies read them afresh.
  uint64_t generation = 0;

  std::string name;
  Labels labels;                     // includes kubernetes.io/hostname
  std::vector<PodOnNode> pods;

  // The online usage expected over the coming slots when something knows it (the simulator's
  // oracle fills it with the actual future); empty otherwise.
  UsageForecast online_forecast;

  void AddPod(const PodInfo& pod, bool usage_reported = false);
  // False when no pod of that namespace/name is on the node.
  bool RemovePod(std::string_view ns, std::string_view name);
  // The node reported usage that includes every pod on it: sets usage_reported on all of them.
  void MarkUsageReported();
  // The same for one pod. False when it is not on the node or was reported already.
  bool MarkPodUsageReported(std::string_view ns, std::string_view name);
  // Call after changing labels, taints or allocatable by hand.
  void Touch();
};

PodOnNode ToPodOnNode(const PodInfo& pod, bool usage_reported);

// Why a node was filtered out. A node can fail for several (cpu and memory at once).
enum FilterReason : uint32_t {
  kFits = 0,
  kUnschedulable = 1u << 0,          // node(s) were unschedulable
  kNodeAffinity = 1u << 1,           // node(s) didn't match Pod's node affinity/selector
  kUntoleratedTaint = 1u << 2,       // node(s) had untolerated taint {key: value}
  kAntiAffinity = 1u << 3,           // node(s) didn't match pod anti-affinity rules
  kExistingAntiAffinity = 1u << 4,   // node(s) didn't satisfy existing pods anti-affinity rules
  kTooManyPods = 1u << 5,            // Too many pods
  kInsufficientCpu = 1u << 6,        // Insufficient cpu
  kInsufficientMemory = 1u << 7,     // Insufficient memory
  kInsufficientBatchCpu = 1u << 8,   // Insufficient kubernetes.io/batch-cpu
  kInsufficientBatchMemory = 1u << 9,  // Insufficient kubernetes.io/batch-memory
  kCpuUsageThreshold = 1u << 10,     // node(s) cpu usage exceed threshold
  kMemoryUsageThreshold = 1u << 11,  // node(s) memory usage exceed threshold
  kContentionRisk = 1u << 12,        // node(s) had contention probability above the risk bound
  kBatchWindow = 1u << 13,           // node(s) had no reclaimable capacity for the batch runtime
};
// The Kubernetes wording of one reason bit (without a taint's key and value).
std::string_view FilterReasonText(FilterReason reason);
inline constexpr uint32_t kResourceReasons = kTooManyPods | kInsufficientCpu |
                                             kInsufficientMemory | kInsufficientBatchCpu |
                                             kInsufficientBatchMemory;

// A placement policy: extra filters and the score. Implementations keep per-node caches and so
// are not thread-safe; one scheduling loop owns one policy.
class Policy {
 public:
  virtual ~Policy() = default;
  virtual std::string_view name() const = 0;

  // How batch pods are admitted. false (Kubernetes): a batch pod's requests count against
  // allocatable like any pod's. true: online pods are checked against allocatable minus online
  // requests only, and batch pods against BatchAllocatable().
  virtual bool ReclaimsForBatch() const { return false; }
  // Whether a batch pod's placement depends on its expected runtime (PodInfo).
  virtual bool PlacesBatchByRuntime() const { return false; }
  // The capacity batch pods may request on this node (cpu, memory); only when ReclaimsForBatch.
  virtual Resources BatchAllocatable(const NodeInfo& node) { return node.allocatable; }
  // For each k, at least BatchAllocatable(nodes[i]).cpu_milli for any batch pod whose expected
  // runtime is at least `min_runtime_seconds[k]` (0: any pod), into `out[k]` (the same size), at
  // the policy's clock now, between Schedule calls on `nodes` (for FreeCpuIndex, fit_index.h).
  // One call for several runtimes: the node's state is looked up once. Policies whose batch
  // capacity depends on the pod override it. Only when ReclaimsForBatch.
  virtual void BatchCpuBounds(std::span<const NodeInfo> nodes, size_t i,
                              std::span<const int64_t> min_runtime_seconds,
                              std::span<double> out) {
    std::fill(out.begin(), out.end(), static_cast<double>(BatchAllocatable(nodes[i]).cpu_milli));
  }

  // Called once per Schedule call before any Filter/Score; `nodes` is the span the following
  // calls' nodes belong to (so a policy can index per-node caches by position).
  virtual void BeginPod(const PodInfo& pod, std::span<const NodeInfo> nodes) {}
  // Policy-specific filters, run after the framework's on nodes that passed them. Returns a
  // FilterReason bit set, kFits (0) when the node fits.
  virtual uint32_t Filter(const PodInfo& pod, const NodeInfo& node) { return kFits; }
  // Higher is better, in [0, 100]; only called for nodes that passed every filter.
  virtual double Score(const PodInfo& pod, const NodeInfo& node) = 0;
};

struct PolicyOptions {
  const base::Clock* clock = nullptr;    // archimedes, oracle: "now" (default RealClock())
  const ProfileStore* profiles = nullptr;  // archimedes: application profiles (required)
  // load-aware (Koordinator LoadAwareScheduling defaults)
  double cpu_usage_threshold = 0.65;
  double memory_usage_threshold = 0.95;
  double cpu_estimate_factor = 0.85;     // estimated usage of a just-bound pod = requests x this
  double memory_estimate_factor = 0.70;
  double batch_reclaim_threshold = 0.65;  // batch allocatable = total x this - system - online use
  // archimedes
  double risk_bound = 0.01;              // max probability of contention over the horizon
  // Online pods: contention looked at this far ahead. An online pod stays for days, so the
  // default is one whole profile cycle (a day), whatever the hour it is placed at.
  int64_t horizon_seconds = 24 * 3600;
  double safety_margin = 0.05;           // of capacity, kept free of batch work
};

// Names: requests, load-aware, archimedes, oracle. NotFound for any other; Invalid when archimedes
// has no profiles.
base::Result<std::unique_ptr<Policy>> MakePolicy(std::string_view name,
                                                 const PolicyOptions& options = {});
std::vector<std::string> PolicyNames();

struct ScheduleOptions {
  // kube-scheduler's percentageOfNodesToScore: 100 evaluates every node (exact); 0 is
  // kube-scheduler's adaptive default (50% - nodes/125, at least 5%); the search stops once that
  // share of the nodes (at least 100) were found feasible. The scan starts where the previous one
  // stopped (state kept in `next_start_index`).
  int percentage_of_nodes_to_score = 100;
  bool preemption = true;
  // Batch pods, without preemption: nodes the index says have less CPU headroom than the pod
  // requests are skipped without running any filter. They still count as scanned (the sample and
  // the rotating start are those of a scan without the index, and so is the decision); the
  // message counts them as Insufficient kubernetes.io/batch-cpu whatever else they lack. The index
  // must cover the same nodes, in the same order, and hold upper bounds (fit_index.h).
  const FreeCpuIndex* batch_headroom = nullptr;
};

struct Victim {
  size_t node_index;
  std::string ns;
  std::string name;
  int32_t priority;
};

struct Decision {
  // Index into the nodes span of the chosen node; empty when the pod does not fit.
  std::optional<size_t> node_index;
  double score = 0;
  // When it does not fit: "0/3 nodes are available: 1 node(s) had untolerated taint {k: v}, 2
  // Insufficient cpu." (reasons sorted as kube-scheduler sorts them).
  std::string message;
  // When it does not fit but would after evicting lower-priority pods of one node: that node
  // (the nominated node) and the victims, lowest priority first.
  std::optional<size_t> nominated_node_index;
  std::vector<Victim> victims;
  int nodes_evaluated = 0;
};

// The framework's filters (unschedulable, node selector and required affinity, taints NoSchedule
// and NoExecute, anti-affinity both ways, resources and pod count) then the policy's filter and
// score. Deterministic: ties go to the node scanned first. `next_start_index` (may be null) is the
// rotating scan start used when sampling. Does not modify the nodes: the caller binds and calls
// NodeInfo::AddPod.
Decision Schedule(const PodInfo& pod, std::span<const NodeInfo> nodes, Policy& policy,
                  const ScheduleOptions& options = {}, size_t* next_start_index = nullptr);

// Single plugins, for callers and tests.
bool MatchesNodeSelectorAndAffinity(const PodInfo& pod, const Labels& node_labels);
bool MatchesLabelSelector(const LabelSelector& selector, const Labels& labels);
// The first taint with effect NoSchedule or NoExecute that the tolerations do not tolerate.
const Taint* FirstUntoleratedTaint(const std::vector<Taint>& taints,
                                   const std::vector<Toleration>& tolerations);
bool Tolerates(const Toleration& toleration, const Taint& taint);

// kube-scheduler's NodeResourcesFit scores on requests (with its non-zero defaults of 100m CPU
// and 200 MiB for pods that request nothing), each in [0, 100].
double LeastAllocatedScore(const PodInfo& pod, const NodeInfo& node);
double BalancedAllocationScore(const PodInfo& pod, const NodeInfo& node);

}  // namespace fulcrum::scheduler
