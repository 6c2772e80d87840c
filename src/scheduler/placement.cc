#include "scheduler/placement.h"

#include <algorithm>
#include <array>
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
  explicit ArchimedesPolicy(const PolicyOptions& options)
      : options_(options),
        slot_seconds_(options.profiles->options().slot_seconds),
        runtime_slots_(WindowSlots(runtime_, slot_seconds_, options.profiles->options().slots)),
        rho_(std::clamp(options.profiles->options().app_correlation, 0.0, 1.0)),
        risk_z_(NormalTailInverse(options.risk_bound)) {}
  std::string_view name() const override { return "archimedes"; }
  bool ReclaimsForBatch() const override { return true; }
  bool PlacesBatchByRuntime() const override { return true; }

  void BeginPod(const PodInfo& pod, std::span<const NodeInfo> nodes) override {
    BeginNodes(nodes);
    runtime_ = BatchRuntime(pod);
    runtime_slots_ = WindowSlots(runtime_, slot_seconds_, options_.profiles->options().slots);
    last_node_ = nullptr;
    last_batch_node_ = nullptr;
    profile_ = nullptr;
    if (pod.qos != Qos::kOnline) return;
    profile_ = &options_.profiles->Get(pod.app, pod.requests.cpu_milli);
    window_ = MakeCandidateWindow(*profile_, pod.app, now_, options_.horizon_seconds);
    whole_cycle_ = !window_.mean.empty() &&
                   static_cast<int>(window_.mean.size()) >= options_.profiles->options().slots;
  }

  Resources BatchAllocatable(const NodeInfo& node) override {
    if (last_batch_node_ == &node) return last_batch_;
    const size_t i = Refresh(node);
    const CacheEntry& e = cache_[i];
    double cpu;
    int count = e.built ? runtime_slots_ : 1;
    if (count <= kPrefixSlots) {
      cpu = e.prefix[count - 1];
    } else {
      cpu = demand_[i].ReclaimableCpu(now_, runtime_, options_.risk_bound, options_.safety_margin);
    }
    if (node.online_cpu_usage_milli >= 0) {
      // What online pods use right now is not lent, whatever the profile says.
      cpu = std::min(cpu, node.allocatable.cpu_milli * (1 - options_.safety_margin) -
                              node.system_cpu_usage_milli - node.online_cpu_usage_milli);
    }
    // Returned from the local, not read back from the member just stored (a stall per node).
    Resources r = WithCpu(node, cpu);
    last_batch_node_ = &node;
    last_batch_ = r;
    return r;
  }

  void BatchCpuBounds(std::span<const NodeInfo> nodes, size_t i,
                      std::span<const int64_t> min_runtime_seconds,
                      std::span<double> out) override {
    // BatchAllocatable's shortest window for each runtime (the prefix table is not increasing),
    // plus a milli for the table's float rounding against the exact computation of longer
    // windows.
    BeginNodes(nodes);
    const NodeInfo& node = nodes[i];
    const CacheEntry& e = cache_[Refresh(node)];
    for (size_t k = 0; k < out.size(); ++k) {
      int count = e.built ? WindowSlots(std::max<int64_t>(1, min_runtime_seconds[k]),
                                        slot_seconds_, options_.profiles->options().slots)
                          : 1;
      double cpu = static_cast<double>(e.prefix[std::min(count, kPrefixSlots) - 1]) + 1;
      if (node.online_cpu_usage_milli >= 0) {
        cpu = std::min(cpu, node.allocatable.cpu_milli * (1 - options_.safety_margin) -
                                node.system_cpu_usage_milli - node.online_cpu_usage_milli);
      }
      out[k] = std::max(0.0, cpu);
    }
  }

  uint32_t Filter(const PodInfo& pod, const NodeInfo& node) override {
    if (pod.qos != Qos::kOnline) return kFits;
    last_node_ = &node;
    last_z_ = WorstZ(node);
    return last_z_ < risk_z_ ? kContentionRisk : kFits;
  }

  double Score(const PodInfo& pod, const NodeInfo& node) override {
    if (pod.qos == Qos::kBatch) {
      return BatchPackingScore(pod, node, BatchAllocatable(node).cpu_milli);
    }
    if (last_node_ != &node) {
      last_node_ = &node;
      last_z_ = WorstZ(node);
    }
    // Less contention first, compared as z-scores (no erfc per node); nodes at least kSafeZ
    // standard deviations from contention tie, and a tie goes to the most packed node.
    double capacity = static_cast<double>(node.allocatable.cpu_milli);
    double added = window_.mean.empty() ? 0 : window_.mean[0];
    double packing = capacity > 0 ? (last_peak_ + added) / capacity : 0;
    return 99.0 * std::clamp(last_z_ / kSafeZ, 0.0, 1.0) + 1.0 * std::clamp(packing, 0.0, 1.0);
  }

 private:
  // Reclaimable CPU for batch runtimes of up to this many slots is kept per node, so that most
  // batch pods are placed without reading the node's slot tables.
  static constexpr int kPrefixSlots = 16;

  // What a batch candidate reads of a node, kept apart from the node's demand tables (demand_,
  // at the same index) so that a scan over many nodes reads one small record per node.
  struct CacheEntry {
    uint64_t generation = 0;  // the node's online_generation
    uint64_t profiles_version = 0;
    int64_t prefix_slot = -1;                // the absolute slot `prefix` starts at
    bool built = false;                      // demand_ at this index is built
    std::array<float, kPrefixSlots> prefix;  // reclaimable cpu over 1..kPrefixSlots slots
  };

  // What an online candidate reads of a node first, one cache line per node (online_, at the
  // same index): most nodes are accepted from it without the node's demand tables. Valid as the
  // CacheEntry at its index is, and rebuilt with it.
  struct alignas(64) OnlineEntry {
    uint64_t generation = 0;
    uint64_t profiles_version = 0;
    bool built = false;
    DemandSummary summary;
  };

  // Positions the caches on `nodes` and reads the clock.
  void BeginNodes(std::span<const NodeInfo> nodes) {
    base_ = nodes.data();
    if (cache_.size() < nodes.size()) {
      cache_.resize(nodes.size());
      online_.resize(nodes.size());
      demand_.resize(nodes.size());
    }
    now_ = UnixNow(options_.clock);
    now_slot_ = now_ / slot_seconds_;
  }

  // Rebuilds the node's demand tables and both of its cache entries.
  void Rebuild(size_t i, const NodeInfo& node) {
    CacheEntry& e = cache_[i];
    demand_[i].Build(node, *options_.profiles);
    e.built = demand_[i].built();
    e.generation = node.online_generation;
    e.profiles_version = options_.profiles->version();
    e.prefix_slot = -1;
    OnlineEntry& o = online_[i];
    o.built = e.built;
    o.generation = e.generation;
    o.profiles_version = e.profiles_version;
    o.summary = demand_[i].summary();
  }

  // The node's index in the span of the last BeginNodes, its cache entry brought up to date.
  size_t Refresh(const NodeInfo& node) {
    size_t i = static_cast<size_t>(&node - base_);
    CacheEntry& e = cache_[i];
    if (e.generation != node.online_generation ||
        e.profiles_version != options_.profiles->version() || !e.built) {
      Rebuild(i, node);
    }
    if (e.prefix_slot != now_slot_) {
      demand_[i].ReclaimableCpuPrefix(now_, options_.risk_bound, options_.safety_margin, e.prefix);
      e.prefix_slot = now_slot_;
    }
    return i;
  }

  // NodeDemand::WorstZ of the online candidate on the node (peak into last_peak_), accepting at
  // kSafeZ and rejecting below the risk bound. A whole-cycle window tries the node's OnlineEntry
  // first, counting the candidate's app as the node's largest when the node may run it (a lower
  // bound of the bound WorstZ tries first): when that clears kSafeZ, so would WorstZ's, and
  // kSafeZ scores and filters as any z at or above it.
  double WorstZ(const NodeInfo& node) {
    size_t i = static_cast<size_t>(&node - base_);
    const OnlineEntry& o = online_[i];
    if (whole_cycle_ && o.built && o.generation == node.online_generation &&
        o.profiles_version == options_.profiles->version()) {
      const DemandSummary& s = o.summary;
      if (SummaryClears(s, window_, s.MayHold(window_.app_hash) ? s.max_replicas : 0, rho_,
                        kSafeZ)) {
        last_peak_ = s.peak_mean;
        return kSafeZ;
      }
    }
    return demand_[Refresh(node)].WorstZ(window_, &last_peak_, kSafeZ, risk_z_);
  }

  PolicyOptions options_;
  const int64_t slot_seconds_;
  const NodeInfo* base_ = nullptr;
  std::vector<CacheEntry> cache_;
  std::vector<OnlineEntry> online_;
  std::vector<NodeDemand> demand_;
  int64_t now_ = 0;
  int64_t now_slot_ = 0;
  int64_t runtime_ = kDefaultBatchRuntimeSeconds;
  int runtime_slots_ = 1;  // WindowSlots of runtime_
  const AppProfile* profile_ = nullptr;
  CandidateWindow window_;
  bool whole_cycle_ = false;  // window_ covers the whole profile cycle
  const double rho_;          // the profiles' app correlation, as NodeDemand takes it
  const double risk_z_;  // the z-score of the risk bound
  // Contention this many standard deviations away counts as none. Packing online pods any
  // sooner raised online contention threefold in the simulator (docs/scheduler.md): the profiles'
  // tails are lighter than the real ones.
  static constexpr double kSafeZ = 50;
  // The last node's results, reused between Filter/BatchAllocatable and Score.
  const NodeInfo* last_node_ = nullptr;
  double last_z_ = 0, last_peak_ = 0;
  const NodeInfo* last_batch_node_ = nullptr;
  Resources last_batch_;
};

class OraclePolicy : public Policy {
 public:
  explicit OraclePolicy(const PolicyOptions& options) : options_(options) {}
  std::string_view name() const override { return "oracle"; }
  bool ReclaimsForBatch() const override { return true; }
  bool PlacesBatchByRuntime() const override { return true; }

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

  void BatchCpuBounds(std::span<const NodeInfo> nodes, size_t i,
                      std::span<const int64_t> min_runtime_seconds,
                      std::span<double> out) override {
    // BatchAllocatable's peak over the slots every pod of each runtime reaches.
    now_ = UnixNow(options_.clock);
    const NodeInfo& node = nodes[i];
    const UsageForecast& f = node.online_forecast;
    double capacity = static_cast<double>(node.allocatable.cpu_milli) - node.system_cpu_usage_milli;
    for (size_t k = 0; k < out.size(); ++k) {
      double peak = std::max(0.0, node.online_cpu_usage_milli);
      if (f.slot_seconds > 0 && now_ >= f.start_unix_seconds) {
        int64_t first = (now_ - f.start_unix_seconds) / f.slot_seconds;
        int64_t last =
            (now_ + std::max<int64_t>(1, min_runtime_seconds[k]) - f.start_unix_seconds) /
            f.slot_seconds;
        for (int64_t s = first; s <= last && s < static_cast<int64_t>(f.cpu_milli.size()); ++s) {
          peak = std::max(peak, static_cast<double>(f.cpu_milli[s]));
        }
      }
      out[k] = std::max(0.0, capacity - peak);
    }
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
