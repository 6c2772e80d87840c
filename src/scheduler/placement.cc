#include "scheduler/placement.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "scheduler/contention.h"
#include "scheduler/profile.h"

namespace fulcrum::scheduler {
namespace {

int64_t UnixNow(const base::Clock* clock) {
  const base::Clock* c = clock ? clock : base::RealClock();
  return std::chrono::duration_cast<std::chrono::seconds>(c->Now().time_since_epoch()).count();
}

int64_t BatchRuntime(const PodInfo& pod) {
  return pod.expected_runtime_seconds > 0 ? pod.expected_runtime_seconds
                                          : kDefaultBatchRuntimeSeconds;
}

int64_t BatchRequestedCpu(const NodeInfo& node) {
  return node.requested.cpu_milli - node.online_requested.cpu_milli;
}

// Batch packing score: the share of the node's batch capacity in use once the pod is added.
double BatchPackingScore(const PodInfo& pod, const NodeInfo& node, double batch_capacity) {
  if (batch_capacity <= 0) return 0;
  double used = static_cast<double>(BatchRequestedCpu(node) + pod.requests.cpu_milli);
  return 100 * std::min(1.0, used / batch_capacity);
}

Resources WithCpu(const NodeInfo& node, double cpu_milli) {
  Resources r;
  r.cpu_milli = static_cast<int64_t>(std::max(0.0, cpu_milli));
  r.memory_bytes = node.allocatable.memory_bytes - node.online_requested.memory_bytes;
  r.pods = node.allocatable.pods;
  return r;
}

class ArchimedesPolicy : public Policy {
 public:
  explicit ArchimedesPolicy(const PolicyOptions& options) : options_(options) {}
  std::string_view name() const override { return "archimedes"; }
  bool ReclaimsForBatch() const override { return true; }

  void BeginPod(const PodInfo& pod, std::span<const NodeInfo> nodes) override {
    base_ = nodes.data();
    if (cache_.size() < nodes.size()) cache_.resize(nodes.size());
    now_ = UnixNow(options_.clock);
    runtime_ = BatchRuntime(pod);
    profile_ = pod.qos == Qos::kOnline ? &options_.profiles->Get(pod.app, pod.requests.cpu_milli)
                                       : nullptr;
    last_node_ = nullptr;
  }

  Resources BatchAllocatable(const NodeInfo& node) override {
    const NodeDemand& demand = Demand(node);
    double cpu = demand.ReclaimableCpu(now_, runtime_, options_.risk_bound, options_.safety_margin);
    if (node.online_cpu_usage_milli >= 0) {
      // What online pods use right now is not lent, whatever the profile says.
      cpu = std::min(cpu, node.allocatable.cpu_milli * (1 - options_.safety_margin) -
                              node.system_cpu_usage_milli - node.online_cpu_usage_milli);
    }
    return WithCpu(node, cpu);
  }

  uint32_t Filter(const PodInfo& pod, const NodeInfo& node) override {
    if (pod.qos != Qos::kOnline) return kFits;
    last_node_ = &node;
    last_p_ = Demand(node).ContentionProbability(*profile_, pod.app, now_,
                                                  options_.horizon_seconds);
    return last_p_ > options_.risk_bound ? kContentionRisk : kFits;
  }

  double Score(const PodInfo& pod, const NodeInfo& node) override {
    const NodeDemand& demand = Demand(node);
    if (pod.qos == Qos::kBatch) {
      return BatchPackingScore(pod, node, BatchAllocatable(node).cpu_milli);
    }
    double p = last_node_ == &node ? last_p_
                                   : demand.ContentionProbability(*profile_, pod.app, now_,
                                                                  options_.horizon_seconds);
    int bucket = std::min(3, static_cast<int>(4 * p / options_.risk_bound));
    double capacity = static_cast<double>(node.allocatable.cpu_milli);
    double packing = capacity > 0 ? (demand.PeakMean(now_, options_.horizon_seconds) +
                                     profile_->cpu_mean[profile_->SlotAt(now_)]) / capacity
                                  : 0;
    return 20.0 * (4 - bucket) + 20.0 * std::clamp(packing, 0.0, 1.0);
  }

 private:
  struct CacheEntry {
    uint64_t generation = 0;  // the node's online_generation
    uint64_t profiles_version = 0;
    NodeDemand demand;
  };

  const NodeDemand& Demand(const NodeInfo& node) {
    size_t i = static_cast<size_t>(&node - base_);
    CacheEntry& e = cache_[i];
    if (e.generation != node.online_generation || e.profiles_version != options_.profiles->version() ||
        !e.demand.built()) {
      e.demand.Build(node, *options_.profiles);
      e.generation = node.online_generation;
      e.profiles_version = options_.profiles->version();
    }
    return e.demand;
  }

  PolicyOptions options_;
  const NodeInfo* base_ = nullptr;
  std::vector<CacheEntry> cache_;
  int64_t now_ = 0;
  int64_t runtime_ = kDefaultBatchRuntimeSeconds;
  const AppProfile* profile_ = nullptr;
  const NodeInfo* last_node_ = nullptr;
  double last_p_ = 0;

};

class OraclePolicy : public Policy {
 public:
  explicit OraclePolicy(const PolicyOptions& options) : options_(options) {}
  std::string_view name() const override { return "oracle"; }
  bool ReclaimsForBatch() const override { return true; }

  void BeginPod(const PodInfo& pod, std::span<const NodeInfo> nodes) override {
    now_ = UnixNow(options_.clock);
    runtime_ = BatchRuntime(pod);
  }

  Resources BatchAllocatable(const NodeInfo& node) override {
    const UsageForecast& f = node.online_forecast;
    double capacity = static_cast<double>(node.allocatable.cpu_milli) - node.system_cpu_usage_milli;
    double peak = std::max(0.0, node.online_cpu_usage_milli);
    if (f.slot_seconds > 0) {
      int64_t first = std::max<int64_t>(0, (now_ - f.start_unix_seconds) / f.slot_seconds);
      int64_t last = (now_ + runtime_ - f.start_unix_seconds) / f.slot_seconds;
      for (int64_t s = first; s <= last && s < static_cast<int64_t>(f.cpu_milli.size()); ++s) {
        peak = std::max(peak, static_cast<double>(f.cpu_milli[s]));
      }
    }
    return WithCpu(node, capacity - peak);
  }

  double Score(const PodInfo& pod, const NodeInfo& node) override {
    if (pod.qos == Qos::kBatch) {
      return BatchPackingScore(pod, node, BatchAllocatable(node).cpu_milli);
    }
    return (LeastAllocatedScore(pod, node) + BalancedAllocationScore(pod, node)) / 2;
  }

 private:
  PolicyOptions options_;
  int64_t now_ = 0;
  int64_t runtime_ = kDefaultBatchRuntimeSeconds;
};

}  // namespace

std::unique_ptr<Policy> MakeArchimedesPolicy(const PolicyOptions& options) {
  return std::make_unique<ArchimedesPolicy>(options);
}

std::unique_ptr<Policy> MakeOraclePolicy(const PolicyOptions& options) {
  return std::make_unique<OraclePolicy>(options);
}

}  // namespace fulcrum::scheduler
