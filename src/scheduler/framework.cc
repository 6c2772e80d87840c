#include "scheduler/framework.h"

#include "scheduler/fit_index.h"

#include <algorithm>
#include <atomic>
#include <bit>
#include <charconv>
#include <cmath>

namespace fulcrum::scheduler {
namespace {

std::atomic<uint64_t> next_generation{1};

constexpr int64_t kDefaultCpuRequestMilli = 100;  // kube-scheduler's non-zero defaults
constexpr int64_t kDefaultMemoryRequestBytes = 200ll << 20;

bool ParseInt(std::string_view s, int64_t* out) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && p == s.data() + s.size();
}

bool MatchesRequirement(const SelectorRequirement& r, const Labels& labels, bool allow_numeric) {
  auto it = labels.find(r.key);
  bool has = it != labels.end();
  auto in_values = [&] {
    return std::find(r.values.begin(), r.values.end(), it->second) != r.values.end();
  };
  switch (r.op) {
    case SelectorRequirement::Operator::kIn:
      return has && in_values();
    case SelectorRequirement::Operator::kNotIn:
      return !has || !in_values();
    case SelectorRequirement::Operator::kExists:
      return has;
    case SelectorRequirement::Operator::kDoesNotExist:
      return !has;
    case SelectorRequirement::Operator::kGt:
    case SelectorRequirement::Operator::kLt: {
      int64_t have, want;
      if (!allow_numeric || !has || r.values.size() != 1 || !ParseInt(it->second, &have) ||
          !ParseInt(r.values[0], &want)) {
        return false;
      }
      return r.op == SelectorRequirement::Operator::kGt ? have > want : have < want;
    }
  }
  return false;
}

int64_t NonZeroCpu(int64_t cpu) { return cpu > 0 ? cpu : kDefaultCpuRequestMilli; }
int64_t NonZeroMemory(int64_t mem) { return mem > 0 ? mem : kDefaultMemoryRequestBytes; }

// Non-zero requested sums of the node's pods (kube-scheduler scores on these).
void NonZeroRequested(const NodeInfo& node, const PodInfo& pod, double* cpu, double* mem) {
  // Pods without requests are rare in the views we build; the sums already hold real requests,
  // so only the incoming pod gets the defaults, as in kube-scheduler's NonZeroRequested for it.
  *cpu = static_cast<double>(node.requested.cpu_milli + NonZeroCpu(pod.requests.cpu_milli));
  *mem =
      static_cast<double>(node.requested.memory_bytes + NonZeroMemory(pod.requests.memory_bytes));
}

// The framework's resource filter: requests against allocatable, with batch pods on reclaimed
// capacity when the policy reclaims it (`reclaims`: policy.ReclaimsForBatch(), asked once per
// pod).
uint32_t FitResources(const PodInfo& pod, const NodeInfo& node, Policy& policy, bool reclaims) {
  uint32_t reasons = kFits;
  if (node.requested.pods + 1 > node.allocatable.pods) reasons |= kTooManyPods;
  if (!reclaims) {
    if (node.requested.cpu_milli + pod.requests.cpu_milli > node.allocatable.cpu_milli) {
      reasons |= kInsufficientCpu;
    }
    if (node.requested.memory_bytes + pod.requests.memory_bytes > node.allocatable.memory_bytes) {
      reasons |= kInsufficientMemory;
    }
    return reasons;
  }
  if (pod.qos == Qos::kOnline) {
    if (node.online_requested.cpu_milli + pod.requests.cpu_milli > node.allocatable.cpu_milli) {
      reasons |= kInsufficientCpu;
    }
    // Memory is not reclaimed: batch memory still occupies the node.
    if (node.requested.memory_bytes + pod.requests.memory_bytes > node.allocatable.memory_bytes) {
      reasons |= kInsufficientMemory;
    }
    return reasons;
  }
  Resources batch = policy.BatchAllocatable(node);
  int64_t batch_cpu = node.requested.cpu_milli - node.online_requested.cpu_milli;
  int64_t batch_mem = node.requested.memory_bytes - node.online_requested.memory_bytes;
  if (batch_cpu + pod.requests.cpu_milli > batch.cpu_milli) reasons |= kInsufficientBatchCpu;
  if (batch_mem + pod.requests.memory_bytes > batch.memory_bytes ||
      node.requested.memory_bytes + pod.requests.memory_bytes > node.allocatable.memory_bytes) {
    reasons |= kInsufficientBatchMemory;
  }
  return reasons;
}

bool AnyPodMatches(const LabelSelector& selector, const NodeInfo& node) {
  for (const PodOnNode& p : node.pods) {
    if (MatchesLabelSelector(selector, p.labels)) return true;
  }
  return false;
}

// InterPodAffinity's required anti-affinity on kubernetes.io/hostname, both ways.
uint32_t FitAntiAffinity(const PodInfo& pod, const NodeInfo& node) {
  for (const LabelSelector& s : pod.anti_affinity) {
    if (AnyPodMatches(s, node)) return kAntiAffinity;
  }
  if (node.anti_affinity_pods == 0) return kFits;
  for (const PodOnNode& p : node.pods) {
    for (const LabelSelector& s : p.anti_affinity) {
      if (MatchesLabelSelector(s, pod.labels)) return kExistingAntiAffinity;
    }
  }
  return kFits;
}

// Framework filters in kube-scheduler's order; the first failing plugin decides, except that the
// resource plugin reports every insufficient resource.
uint32_t RunFilters(const PodInfo& pod, const NodeInfo& node, Policy& policy, bool reclaims,
                    const Taint** taint) {
  if (node.unschedulable) return kUnschedulable;
  // The two checks below are skipped when they cannot fail (most pods and nodes of a large scan).
  if ((!pod.node_selector.empty() || !pod.required_node_affinity.empty()) &&
      !MatchesNodeSelectorAndAffinity(pod, node.labels)) {
    return kNodeAffinity;
  }
  if (const Taint* t =
          node.taints.empty() ? nullptr : FirstUntoleratedTaint(node.taints, pod.tolerations)) {
    *taint = t;
    return kUntoleratedTaint;
  }
  if (uint32_t r = FitResources(pod, node, policy, reclaims)) return r;
  if (uint32_t r = FitAntiAffinity(pod, node)) return r;
  return policy.Filter(pod, node);
}

struct ReasonCounts {
  int count[32] = {};
  std::vector<std::pair<const Taint*, int>> taints;

  void Add(uint32_t reasons, const Taint* taint) {
    for (; reasons; reasons &= reasons - 1) {
      int bit = std::countr_zero(reasons);
      if ((1u << bit) == kUntoleratedTaint && taint) {
        auto it = std::find_if(taints.begin(), taints.end(), [&](const auto& e) {
          return e.first->key == taint->key && e.first->value == taint->value;
        });
        if (it == taints.end()) {
          taints.emplace_back(taint, 1);
        } else {
          ++it->second;
        }
        continue;
      }
      ++count[bit];
    }
  }

  std::string Message(size_t nodes) const {
    std::vector<std::string> parts;
    for (int bit = 0; bit < 32; ++bit) {
      if (count[bit]) {
        parts.push_back(std::to_string(count[bit]) + " " +
                        std::string(FilterReasonText(static_cast<FilterReason>(1u << bit))));
      }
    }
    for (const auto& [t, n] : taints) {
      parts.push_back(std::to_string(n) + " node(s) had untolerated taint {" + t->key + ": " +
                      t->value + "}");
    }
    std::sort(parts.begin(), parts.end());
    std::string out = "0/" + std::to_string(nodes) + " nodes are available";
    for (size_t i = 0; i < parts.size(); ++i) out += (i ? ", " : ": ") + parts[i];
    return out + ".";
  }
};

// Preemption on requests (kube-scheduler's DefaultPreemption): on a node that failed only for
// resources, remove lower-priority pods, lowest first, until the pod fits. Among candidate nodes
// pick the one whose highest victim priority is lowest, then the fewest victims.
void FindVictims(const PodInfo& pod, std::span<const NodeInfo> nodes,
                 const std::vector<uint32_t>& reasons, Decision* decision) {
  int32_t best_max_priority = 0;
  size_t best_count = 0;
  std::vector<const PodOnNode*> lower;
  for (size_t i = 0; i < nodes.size(); ++i) {
    if (reasons[i] == kFits || (reasons[i] & ~kResourceReasons)) continue;
    const NodeInfo& node = nodes[i];
    lower.clear();
    for (const PodOnNode& p : node.pods) {
      if (p.priority < pod.priority) lower.push_back(&p);
    }
    std::stable_sort(lower.begin(), lower.end(), [](const PodOnNode* a, const PodOnNode* b) {
      return a->priority < b->priority;
    });
    Resources used = node.requested;
    size_t n = 0;
    auto fits = [&] {
      return used.pods + 1 <= node.allocatable.pods &&
             used.cpu_milli + pod.requests.cpu_milli <= node.allocatable.cpu_milli &&
             used.memory_bytes + pod.requests.memory_bytes <= node.allocatable.memory_bytes;
    };
    while (!fits() && n < lower.size()) {
      used.cpu_milli -= lower[n]->requests.cpu_milli;
      used.memory_bytes -= lower[n]->requests.memory_bytes;
      used.pods -= 1;
      ++n;
    }
    if (!fits() || n == 0) continue;
    int32_t max_priority = lower[n - 1]->priority;
    if (decision->nominated_node_index &&
        (max_priority > best_max_priority ||
         (max_priority == best_max_priority && n >= best_count))) {
      continue;
    }
    best_max_priority = max_priority;
    best_count = n;
    decision->nominated_node_index = i;
    decision->victims.clear();
    for (size_t k = 0; k < n; ++k) {
      decision->victims.push_back({i, lower[k]->ns, lower[k]->name, lower[k]->priority});
    }
  }
}

void AddTo(Resources* sum, const Resources& r) {
  sum->cpu_milli += r.cpu_milli;
  sum->memory_bytes += r.memory_bytes;
  sum->pods += 1;
}

void SubtractFrom(Resources* sum, const Resources& r) {
  sum->cpu_milli -= r.cpu_milli;
  sum->memory_bytes -= r.memory_bytes;
  sum->pods -= 1;
}

}  // namespace

PodOnNode ToPodOnNode(const PodInfo& pod, bool usage_reported) {
  PodOnNode p;
  p.ns = pod.ns;
  p.name = pod.name;
  p.labels = pod.labels;
  p.requests = pod.requests;
  p.requests.pods = 1;
  p.priority = pod.priority;
  p.qos = pod.qos;
  p.app = pod.app;
  p.anti_affinity = pod.anti_affinity;
  p.usage_reported = usage_reported;
  return p;
}

void NodeInfo::AddPod(const PodInfo& pod, bool usage_reported) {
  pods.push_back(ToPodOnNode(pod, usage_reported));
  if (!pod.anti_affinity.empty()) ++anti_affinity_pods;
  if (!usage_reported) {
    AddTo(&unreported_requested, pod.requests);
    if (pod.qos == Qos::kOnline) AddTo(&unreported_online_requested, pod.requests);
  }
  AddTo(&requested, pod.requests);
  if (pod.qos == Qos::kOnline) {
    AddTo(&online_requested, pod.requests);
    online_generation = next_generation.fetch_add(1, std::memory_order_relaxed);
  }
  generation = next_generation.fetch_add(1, std::memory_order_relaxed);
}

bool NodeInfo::RemovePod(std::string_view ns, std::string_view name) {
  auto it = std::find_if(pods.begin(), pods.end(),
                         [&](const PodOnNode& p) { return p.name == name && p.ns == ns; });
  if (it == pods.end()) return false;
  if (!it->anti_affinity.empty()) --anti_affinity_pods;
  if (!it->usage_reported) {
    SubtractFrom(&unreported_requested, it->requests);
    if (it->qos == Qos::kOnline) SubtractFrom(&unreported_online_requested, it->requests);
  }
  SubtractFrom(&requested, it->requests);
  if (it->qos == Qos::kOnline) {
    SubtractFrom(&online_requested, it->requests);
    online_generation = next_generation.fetch_add(1, std::memory_order_relaxed);
  }
  pods.erase(it);
  generation = next_generation.fetch_add(1, std::memory_order_relaxed);
  return true;
}

void NodeInfo::MarkUsageReported() {
  if (unreported_requested.pods == 0) return;
  for (PodOnNode& p : pods) p.usage_reported = true;
  unreported_requested = {};
  unreported_online_requested = {};
}

bool NodeInfo::MarkPodUsageReported(std::string_view ns, std::string_view name) {
  if (unreported_requested.pods == 0) return false;
  for (PodOnNode& p : pods) {
    if (p.ns != ns || p.name != name || p.usage_reported) continue;
    p.usage_reported = true;
    SubtractFrom(&unreported_requested, p.requests);
    if (p.qos == Qos::kOnline) SubtractFrom(&unreported_online_requested, p.requests);
    return true;
  }
  return false;
}

void NodeInfo::Touch() {
  generation = next_generation.fetch_add(1, std::memory_order_relaxed);
  online_generation = next_generation.fetch_add(1, std::memory_order_relaxed);
}

std::string_view FilterReasonText(FilterReason reason) {
  switch (reason) {
    case kFits:
      return "";
    case kUnschedulable:
      return "node(s) were unschedulable";
    case kNodeAffinity:
      return "node(s) didn't match Pod's node affinity/selector";
    case kUntoleratedTaint:
      return "node(s) had untolerated taint";
    case kAntiAffinity:
      return "node(s) didn't match pod anti-affinity rules";
    case kExistingAntiAffinity:
      return "node(s) didn't satisfy existing pods anti-affinity rules";
    case kTooManyPods:
      return "Too many pods";
    case kInsufficientCpu:
      return "Insufficient cpu";
    case kInsufficientMemory:
      return "Insufficient memory";
    case kInsufficientBatchCpu:
      return "Insufficient kubernetes.io/batch-cpu";
    case kInsufficientBatchMemory:
      return "Insufficient kubernetes.io/batch-memory";
    case kCpuUsageThreshold:
      return "node(s) cpu usage exceed threshold";
    case kMemoryUsageThreshold:
      return "node(s) memory usage exceed threshold";
    case kContentionRisk:
      return "node(s) had contention probability above the risk bound";
    case kBatchWindow:
      return "node(s) had no reclaimable capacity for the batch runtime";
  }
  return "unknown";
}

bool MatchesLabelSelector(const LabelSelector& selector, const Labels& labels) {
  for (const auto& [k, v] : selector.match_labels) {
    auto it = labels.find(k);
    if (it == labels.end() || it->second != v) return false;
  }
  for (const SelectorRequirement& r : selector.match_expressions) {
    if (!MatchesRequirement(r, labels, /*allow_numeric=*/false)) return false;
  }
  return true;
}

bool MatchesNodeSelectorAndAffinity(const PodInfo& pod, const Labels& node_labels) {
  for (const auto& [k, v] : pod.node_selector) {
    auto it = node_labels.find(k);
    if (it == node_labels.end() || it->second != v) return false;
  }
  if (pod.required_node_affinity.empty()) return true;
  for (const NodeSelectorTerm& term : pod.required_node_affinity) {
    if (term.match_expressions.empty()) continue;
    bool all = true;
    for (const SelectorRequirement& r : term.match_expressions) {
      if (!MatchesRequirement(r, node_labels, /*allow_numeric=*/true)) {
        all = false;
        break;
      }
    }
    if (all) return true;
  }
  return false;
}

bool Tolerates(const Toleration& t, const Taint& taint) {
  if (t.effect && *t.effect != taint.effect) return false;
  if (t.exists) return t.key.empty() || t.key == taint.key;
  return t.key == taint.key && t.value == taint.value;
}

const Taint* FirstUntoleratedTaint(const std::vector<Taint>& taints,
                                   const std::vector<Toleration>& tolerations) {
  for (const Taint& taint : taints) {
    if (taint.effect == TaintEffect::kPreferNoSchedule) continue;
    bool tolerated = false;
    for (const Toleration& t : tolerations) {
      if (Tolerates(t, taint)) {
        tolerated = true;
        break;
      }
    }
    if (!tolerated) return &taint;
  }
  return nullptr;
}

double LeastAllocatedScore(const PodInfo& pod, const NodeInfo& node) {
  double cpu, mem;
  NonZeroRequested(node, pod, &cpu, &mem);
  auto least = [](double requested, double capacity) {
    if (capacity <= 0 || requested > capacity) return 0.0;
    return (capacity - requested) * 100.0 / capacity;
  };
  return (least(cpu, static_cast<double>(node.allocatable.cpu_milli)) +
          least(mem, static_cast<double>(node.allocatable.memory_bytes))) /
         2;
}

double BalancedAllocationScore(const PodInfo& pod, const NodeInfo& node) {
  double cpu, mem;
  NonZeroRequested(node, pod, &cpu, &mem);
  double alloc_cpu = static_cast<double>(node.allocatable.cpu_milli);
  double alloc_mem = static_cast<double>(node.allocatable.memory_bytes);
  if (alloc_cpu <= 0 || alloc_mem <= 0) return 0;
  double f_cpu = std::min(1.0, cpu / alloc_cpu), f_mem = std::min(1.0, mem / alloc_mem);
  // Standard deviation of the two fractions (kube-scheduler >= 1.26).
  double std_dev = std::abs(f_cpu - f_mem) / 2;
  return (1 - std_dev) * 100;
}

Decision Schedule(const PodInfo& pod, std::span<const NodeInfo> nodes, Policy& policy,
                  const ScheduleOptions& options, size_t* next_start_index) {
  Decision decision;
  size_t n = nodes.size();
  if (n == 0) {
    decision.message = "0/0 nodes are available: no nodes available to schedule pods.";
    return decision;
  }
  policy.BeginPod(pod, nodes);
  size_t to_find = n;
  if (options.percentage_of_nodes_to_score < 100) {
    int pct = options.percentage_of_nodes_to_score;
    if (pct <= 0) pct = std::max<int>(5, 50 - static_cast<int>(n / 125));
    to_find = std::min(n, std::max<size_t>(100, n * pct / 100));
  }
  size_t start = next_start_index ? *next_start_index % n : 0;
  // Reasons are counted as the scan goes (nothing per node is allocated: a pod that fits costs
  // only the nodes scanned); preemption alone needs them per node.
  std::vector<uint32_t> reasons;
  if (options.preemption) reasons.assign(n, kFits);
  ReasonCounts counts;
  size_t found = 0, scanned = 0;
  double best = -1;
  const FreeCpuIndex* index =
      pod.qos == Qos::kBatch && !options.preemption && options.batch_headroom &&
              options.batch_headroom->size() == n
          ? options.batch_headroom
          : nullptr;
  const double need = static_cast<double>(pod.requests.cpu_milli);
  const bool reclaims = policy.ReclaimsForBatch();
  for (; scanned < n && found < to_find; ++scanned) {
    size_t i = start + scanned;
    if (i >= n) i -= n;
    if (index) {
      // The next candidate before the scan wraps (or ends); the nodes jumped over count as
      // scanned and as short of batch cpu.
      const int short_of_cpu = std::countr_zero(static_cast<uint32_t>(kInsufficientBatchCpu));
      size_t end = i < start ? start : n;
      size_t next = index->FindFirst(i, end, need);
      if (next == FreeCpuIndex::kNone) {
        counts.count[short_of_cpu] += static_cast<int>(end - i);
        scanned += end - i - 1;  // the loop's ++scanned adds the last one
        continue;
      }
      counts.count[short_of_cpu] += static_cast<int>(next - i);
      scanned += next - i;
      i = next;
    }
    const Taint* taint = nullptr;
    uint32_t r = RunFilters(pod, nodes[i], policy, reclaims, &taint);
    if (r != kFits) {
      counts.Add(r, taint);
      if (options.preemption) reasons[i] = r;
      continue;
    }
    ++found;
    double s = policy.Score(pod, nodes[i]);
    if (s > best) {
      best = s;
      decision.node_index = i;
    }
  }
  decision.nodes_evaluated = static_cast<int>(scanned);
  if (next_start_index) *next_start_index = (start + scanned) % n;
  if (decision.node_index) {
    decision.score = best;
    return decision;
  }
  decision.message = counts.Message(n);
  if (options.preemption) FindVictims(pod, nodes, reasons, &decision);
  return decision;
}

}  // namespace fulcrum::scheduler
