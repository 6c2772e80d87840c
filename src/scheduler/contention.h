#pragma once

// The contention model: a node's online CPU demand per profile slot as a normal distribution
// built from the profiles of the pods on it. Replicas of one application are taken as perfectly
// correlated (their spreads add); different applications with correlation rho
// (ProfileOptions::app_correlation):
//   variance = (1 - rho) sum_a (n_a sd_a)^2 + rho (sum_a n_a sd_a)^2.

#include <cmath>
#include <cstdint>
#include <span>
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

// The variance above from the sum over applications of (n_a sd_a)^2 and of n_a sd_a.
inline double CorrelatedVariance(double var, double sd_sum, double rho) {
  return (1 - rho) * var + rho * sd_sum * sd_sum;
}
// An application's variance term grows by this many sd^2 with one more replica beside
// `replicas`: correlated replicas' spread grows from n sd to (n + 1) sd.
inline double ReplicaGrowth(int replicas) { return 2.0 * replicas + 1; }

// Bounds of a run of consecutive slots of the cycle (kSlotsPerBlock of them, from slot 0 on): of
// a node's mean demand and variance terms, or of a candidate's mean, variance and spread.
struct SlotBlock {
  double max_mean = 0;
  double max_var = 0, min_var = 0;
  double max_sd = 0, min_sd = 0;
};
inline constexpr int kSlotsPerBlock = 8;

// One online pod's share of the contention computation, the same for every node: the window of
// profile slots [from, from + horizon) and the candidate's mean and variance in each.
struct CandidateWindow {
  int first = 0;                      // slot of `from` within the cycle
  std::vector<double> mean, var, sd;  // per slot of the window
  double max_mean = 0, max_var = 0, max_sd = 0;
  uint64_t app_hash = 0;
  // For a window of the whole cycle: per block of the cycle (not of the window), its bounds.
  std::vector<SlotBlock> blocks;
};

// Hash of an application key, used to count a node's replicas of an app without string compares
// (a collision only merges two apps' correlation; it is astronomically rare).
uint64_t AppHash(std::string_view app);

// The candidate's window from its profile (whose slots match the nodes' demand: both come from
// one ProfileStore).
CandidateWindow MakeCandidateWindow(const AppProfile& profile, std::string_view app,
                                    int64_t from_unix, int64_t horizon_seconds);

// Slots of a window of `duration` seconds: the slot it starts in and every slot it reaches, at
// most one cycle.
int WindowSlots(int64_t duration_seconds, int64_t slot_seconds, int slots);

// What WorstZ reads of a node first for a window of the whole cycle, small enough for a caller
// that scans many nodes to keep one per node in a dense array (placement.cc).
struct DemandSummary {
  double min_headroom = 0;             // least of capacity - mean demand over the cycle
  double max_var = 0, max_sd_sum = 0;  // largest of the per-slot variance terms
  double peak_mean = 0;                // highest mean demand (0 when none is higher)
  uint64_t app_bloom = 0;              // bit (hash % 64) of every app on the node
  int32_t max_replicas = 0;            // most replicas of one app on the node

  // Whether the node may run replicas of the app (no: it runs none).
  bool MayHold(uint64_t app_hash) const { return app_bloom & (uint64_t{1} << (app_hash % 64)); }
};

// For a candidate window of the whole cycle whose app has `replicas` replicas on the node (or
// fewer: a larger count can only lower the bound), a lower bound of NodeDemand::WorstZ from the
// summary alone; -inf when the summary cannot bound it (the mean demand may reach capacity).
// `rho` is the store's app correlation clamped to [0, 1], as NodeDemand takes it.
double SummaryLowerZ(const DemandSummary& summary, const CandidateWindow& candidate, int replicas,
                     double rho);
// True only when SummaryLowerZ(summary, candidate, replicas, rho) >= z > 0, answered without its
// square root and division (a scan asks it of every node). A bound within a relative 1e-9 of z
// may answer false: far above the rounding of either form.
bool SummaryClears(const DemandSummary& summary, const CandidateWindow& candidate, int replicas,
                   double rho, double z);

class NodeDemand {
 public:
  // Demand of the node's online pods (and the node's system usage) per profile slot of one cycle.
  void Build(const NodeInfo& node, const ProfileStore& profiles);

  // P(online demand > capacity in some slot of [from, from + horizon)) if one more replica of
  // `app` (profile `profile`) is added: max over the slots of the per-slot probability, a lower
  // bound of the union that does not count the same busy hour several times.
  double ContentionProbability(const AppProfile& profile, std::string_view app, int64_t from_unix,
                               int64_t horizon_seconds) const;

  // The same as a z-score, for a window prepared once per pod: the least headroom of any slot in
  // standard deviations (P = NormalTail(z)); `peak_mean` (may be null) gets the highest mean
  // demand of the window without the candidate. For a window of the whole cycle, a node whose
  // worst case is clear from its summary answers without the per-slot loop: a lower bound of z
  // when that bound is already >= `accept_z`, or z at the node's peak slot when that is already
  // < `reject_z` (callers that need z exactly pass +inf and -inf); otherwise z exactly, from the
  // slots of the blocks (kSlotsPerBlock) whose bounds could still hold the least (the same value
  // as the per-slot loop over the whole cycle, bit for bit).
  double WorstZ(const CandidateWindow& candidate, double* peak_mean, double accept_z = HUGE_VAL,
                double reject_z = -HUGE_VAL) const;

  // CPU (millicores) batch work may use in every slot of [from, from + duration): the least of
  // capacity x (1 - margin) - predicted online peak, the peak at tail probability `risk`.
  double ReclaimableCpu(int64_t from_unix, int64_t duration_seconds, double risk,
                        double margin) const;
  // ReclaimableCpu for the windows [from, from + k slots) for k = 1..out.size(), in one pass.
  void ReclaimableCpuPrefix(int64_t from_unix, double risk, double margin,
                            std::span<float> out) const;

  // The predicted mean online demand over [from, from + horizon) at its highest slot.
  double PeakMean(int64_t from_unix, int64_t horizon_seconds) const;

  bool built() const { return slots_ > 0; }
  const DemandSummary& summary() const { return summary_; }
  int slots() const { return slots_; }
  int ReplicasOf(uint64_t app_hash) const;

 private:
  // Groups the node's online pods by application and looks up their profiles (groups_).
  void Group(const NodeInfo& node, const ProfileStore& profiles);
  int SlotAt(int64_t unix_seconds) const;
  // WorstZ's minimum of headroom * |headroom| / variance over the whole cycle, block by block: a
  // block whose bound cannot lower the minimum found so far is skipped (exact: the bounds are
  // computed with the same floating-point operations on larger or smaller operands).
  double WholeCycleWorst(const CandidateWindow& c, double growth) const;
  // headroom * |headroom| / variance at window slots [from, to) into *worst (the least).
  void WorstOver(const CandidateWindow& c, double growth, size_t from, size_t to,
                 double* worst) const;
  double Variance(double var, double sd_sum) const { return CorrelatedVariance(var, sd_sum, rho_); }

  double capacity_ = 0;
  int64_t slot_seconds_ = 900;
  int slots_ = 0;
  // Per slot, stored twice over (2 x slots) so that every window is one contiguous range.
  std::vector<double> mean_, var_;  // var_: sum over apps of (n_a sd_a)^2
  std::vector<double> sd_sum_;      // sum over apps of n_a sd_a
  double rho_ = 0;
  // The node's online pods by application with their profiles, in the order of their first pod:
  // kept while the node's online pods (online_generation) and the store's learnt applications
  // are the same, so that a rebuild after the profiles learnt more looks nothing up by name
  // (profiles do not move in the store; only a new learnt app replaces a cold one).
  struct AppGroup {
    uint64_t app_hash;
    int replicas;
    const AppProfile* profile;
  };
  std::vector<AppGroup> groups_;
  const ProfileStore* groups_store_ = nullptr;
  uint64_t groups_generation_ = 0;
  size_t groups_learnt_ = 0;
  std::vector<std::pair<uint64_t, int>> app_counts_;  // sorted by app hash
  // Summary over the whole cycle; its app_bloom stops most ReplicasOf lookups.
  DemandSummary summary_;
  std::vector<SlotBlock> blocks_;  // per block of the cycle; empty when some spread is negative
  mutable double min_reclaim_ = 0;
  int peak_slot_ = 0;
  struct {
    double mean = 0, var = 0, sd_sum = 0;
  } peak_;  // mean_, var_ and sd_sum_ at peak_slot_
  // Cached reclaimable-cpu table (also twice over) for one (risk, margin).
  mutable double table_risk_ = -1, table_margin_ = -1;
  mutable std::vector<double> reclaim_;
};

}  // namespace fulcrum::scheduler
