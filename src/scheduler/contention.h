#pragma once

// The contention model: a node's online CPU demand per profile slot as a normal distribution
// built from the profiles of the pods on it. Replicas of one application are taken as perfectly
// correlated (their spreads add), different applications as independent (their variances add).

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "scheduler/framework.h"
#include "scheduler/profile.h"

namespace fulcrum::scheduler {

// The upper tail of the standard normal, P(Z > z).
double NormalTail(double z);
// z such that P(Z > z) = p, for p in (0, 1).
double NormalTailInverse(double p);

class NodeDemand {
 public:
  // Demand of the node's online pods (and the node's system usage) per profile slot of one cycle.
  void Build(const NodeInfo& node, const ProfileStore& profiles);

  // P(online demand > capacity in some slot of [from, from + horizon)) if one more replica of
  // `app` (profile `profile`) is added: max over the slots of the per-slot probability, a lower
  // bound of the union that does not count the same busy hour several times.
  double ContentionProbability(const AppProfile& profile, std::string_view app,
                               int64_t from_unix, int64_t horizon_seconds) const;

  // CPU (millicores) batch work may use in every slot of [from, from + duration): the least of
  // capacity x (1 - margin) - predicted online peak, the peak at tail probability `risk`.
  double ReclaimableCpu(int64_t from_unix, int64_t duration_seconds, double risk,
                        double margin) const;

  // The predicted mean online demand over [from, from + horizon) at its highest slot.
  double PeakMean(int64_t from_unix, int64_t horizon_seconds) const;

  bool built() const { return !mean_.empty(); }
  int slots() const { return static_cast<int>(mean_.size()); }

 private:
  int SlotAt(int64_t unix_seconds) const;
  int SlotCount(int64_t duration_seconds) const;
  int ReplicasOf(std::string_view app) const;
  // Calls f(slot) for each slot of [from, from + duration), wrapping around the cycle.
  template <typename F>
  void ForEachSlot(int64_t from_unix, int64_t duration_seconds, F f) const {
    int n = slots(), first = SlotAt(from_unix), count = SlotCount(duration_seconds);
    for (int k = 0; k < count; ++k) f(first + k < n ? first + k : first + k - n);
  }

  double capacity_ = 0;
  int64_t slot_seconds_ = 900;
  std::vector<double> mean_, var_;
  std::vector<std::pair<std::string, int>> app_counts_;  // sorted by app
  // Cached reclaimable-cpu table for one (risk, margin).
  mutable double table_risk_ = -1, table_margin_ = -1;
  mutable std::vector<double> reclaim_;
};

}  // namespace fulcrum::scheduler
