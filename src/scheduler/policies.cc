// The placement policies behind scheduler::Policy: `requests` (kube-scheduler's default scoring),
// `load-aware` (Koordinator's LoadAwareScheduling and batch resources), and the factory.
// `archimedes` and `oracle` are in placement.cc.

#include <algorithm>

#include "scheduler/framework.h"
#include "scheduler/placement.h"

namespace fulcrum::scheduler {
namespace {

// kube-scheduler's default: NodeResourcesFit LeastAllocated and NodeResourcesBalancedAllocation,
// weight 1 each.
class RequestsPolicy : public Policy {
 public:
  std::string_view name() const override { return "requests"; }
  double Score(const PodInfo& pod, const NodeInfo& node) override {
    return (LeastAllocatedScore(pod, node) + BalancedAllocationScore(pod, node)) / 2;
  }
};

// Koordinator LoadAwareScheduling: node usage thresholds (cpu 65%, memory 95%) filter; the score
// is the least estimated usage, where the estimate adds requests x scaling factor (cpu 85%,
// memory 70%) for pods bound since the node last reported. Batch pods use Koordinator's batch
// resources: allocatable x reclaim threshold (65%) - system usage - online pods' usage.
class LoadAwarePolicy : public Policy {
 public:
  explicit LoadAwarePolicy(const PolicyOptions& options) : options_(options) {}
  std::string_view name() const override { return "load-aware"; }
  bool ReclaimsForBatch() const override { return true; }

  Resources BatchAllocatable(const NodeInfo& node) override {
    double online = node.online_cpu_usage_milli >= 0
                        ? node.online_cpu_usage_milli
                        : static_cast<double>(node.online_requested.cpu_milli);
    double cpu = node.allocatable.cpu_milli * options_.batch_reclaim_threshold -
                 node.system_cpu_usage_milli - online - UnreportedOnline(node);
    Resources r;
    r.cpu_milli = static_cast<int64_t>(std::max(0.0, cpu));
    r.memory_bytes = node.allocatable.memory_bytes - node.online_requested.memory_bytes;
    r.pods = node.allocatable.pods;
    return r;
  }

  uint32_t Filter(const PodInfo& pod, const NodeInfo& node) override {
    uint32_t reasons = kFits;
    if (node.cpu_usage_milli >= 0 && node.allocatable.cpu_milli > 0 &&
        EstimatedCpu(node) > options_.cpu_usage_threshold * node.allocatable.cpu_milli) {
      reasons |= kCpuUsageThreshold;
    }
    if (node.memory_usage_bytes >= 0 && node.allocatable.memory_bytes > 0 &&
        EstimatedMemory(node) > options_.memory_usage_threshold * node.allocatable.memory_bytes) {
      reasons |= kMemoryUsageThreshold;
    }
    return reasons;
  }

  double Score(const PodInfo& pod, const NodeInfo& node) override {
    if (node.cpu_usage_milli < 0) return 0;  // no metrics: Koordinator scores 0
    double cpu = EstimatedCpu(node) + pod.requests.cpu_milli * options_.cpu_estimate_factor;
    double mem =
        EstimatedMemory(node) + pod.requests.memory_bytes * options_.memory_estimate_factor;
    auto least = [](double used, double capacity) {
      return capacity <= 0 || used >= capacity ? 0.0 : (capacity - used) * 100 / capacity;
    };
    return (least(cpu, node.allocatable.cpu_milli) + least(mem, node.allocatable.memory_bytes)) / 2;
  }

 private:
  double EstimatedCpu(const NodeInfo& node) const {
    return std::max(0.0, node.cpu_usage_milli) +
           node.unreported_requested.cpu_milli * options_.cpu_estimate_factor;
  }
  double EstimatedMemory(const NodeInfo& node) const {
    return std::max(0.0, node.memory_usage_bytes) +
           node.unreported_requested.memory_bytes * options_.memory_estimate_factor;
  }
  double UnreportedOnline(const NodeInfo& node) const {
    return node.unreported_online_requested.cpu_milli * options_.cpu_estimate_factor;
  }

  PolicyOptions options_;
};

}  // namespace

std::vector<std::string> PolicyNames() {
  return {"requests", "load-aware", "archimedes", "oracle"};
}

base::Result<std::unique_ptr<Policy>> MakePolicy(std::string_view name,
                                                 const PolicyOptions& options) {
  if (name == "requests") return std::unique_ptr<Policy>(new RequestsPolicy());
  if (name == "load-aware") return std::unique_ptr<Policy>(new LoadAwarePolicy(options));
  if (name == "archimedes") {
    if (!options.profiles) return base::Invalid("the archimedes policy needs application profiles");
    return MakeArchimedesPolicy(options);
  }
  if (name == "oracle") return MakeOraclePolicy(options);
  return base::NotFound("unknown scheduling policy " + std::string(name) +
                        " (known: requests, load-aware, archimedes, oracle)");
}

}  // namespace fulcrum::scheduler
