#include "scheduler/contention.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <functional>

namespace fulcrum::scheduler {
namespace {

// Contention is demand above capacity: a demand that reaches it only to within this (millicores)
// is none. It matters only without spread (applications with no history, taken at their
// requests), where a node filled exactly by requests would otherwise count as z = 0.
constexpr double kFitTolerance = 1e-3;

// The bounds of each block of `slots` slots from each slot's {mean, variance term, spread} (from
// `at(slot)`), into *blocks; none when a variance or spread is negative or a value NaN: the bounds
// WorstZ takes from them hold for non-negative operands only.
template <typename At>
void BlockBounds(int slots, At at, std::vector<SlotBlock>* blocks) {
  blocks->assign((slots + kSlotsPerBlock - 1) / kSlotsPerBlock, SlotBlock());
  for (int s = 0; s < slots; ++s) {
    auto [mean, var, sd] = at(s);
    if (!(var >= 0 && sd >= 0) || std::isnan(mean)) {
      blocks->clear();
      return;
    }
    SlotBlock& b = (*blocks)[s / kSlotsPerBlock];
    if (s % kSlotsPerBlock == 0) {
      b = {mean, var, var, sd, sd};
      continue;
    }
    b.max_mean = std::max(b.max_mean, mean);
    b.max_var = std::max(b.max_var, var);
    b.min_var = std::min(b.min_var, var);
    b.max_sd = std::max(b.max_sd, sd);
    b.min_sd = std::min(b.min_sd, sd);
  }
}

}  // namespace

double NormalTail(double z) { return 0.5 * std::erfc(z / std::sqrt(2.0)); }

double NormalTailInverse(double p) {
  p = std::clamp(p, 1e-12, 1 - 1e-12);
  // Bisection on the monotone tail (200 erfc calls); callers ask for one risk bound over and over
  // (every node's reclaimable-cpu table), so the last answer of the thread is kept.
  thread_local double last_p = -1, last_z = 0;
  if (p == last_p) return last_z;
  double lo = -40, hi = 40;
  for (int i = 0; i < 200; ++i) {
    double mid = (lo + hi) / 2;
    (NormalTail(mid) > p ? lo : hi) = mid;
  }
  last_p = p;
  last_z = (lo + hi) / 2;
  return last_z;
}

uint64_t AppHash(std::string_view app) { return std::hash<std::string_view>{}(app); }

void NodeDemand::Build(const NodeInfo& node, const ProfileStore& profiles) {
  const ProfileOptions& o = profiles.options();
  capacity_ = static_cast<double>(node.allocatable.cpu_milli);
  slot_seconds_ = o.slot_seconds;
  slots_ = o.slots;
  mean_.assign(2 * slots_, node.system_cpu_usage_milli);
  var_.assign(2 * slots_, 0);
  sd_sum_.assign(2 * slots_, 0);
  rho_ = std::clamp(o.app_correlation, 0.0, 1.0);
  table_risk_ = -1;
  if (groups_store_ != &profiles || groups_generation_ != node.online_generation ||
      node.online_generation == 0 || groups_learnt_ != profiles.size()) {
    Group(node, profiles);
  }
  app_counts_.clear();
  DemandSummary& sum = summary_;
  sum = DemandSummary();
  for (const AppGroup& g : groups_) {
    app_counts_.emplace_back(g.app_hash, g.replicas);
    sum.app_bloom |= uint64_t{1} << (g.app_hash % 64);
    sum.max_replicas = std::max(sum.max_replicas, g.replicas);
    const AppProfile& profile = *g.profile;
    double n = g.replicas;
    for (int s = 0, ps = 0; s < slots_; ++s, ps = ps + 1 < profile.slots ? ps + 1 : 0) {
      mean_[s] += n * profile.cpu_mean[ps];
      double sd = n * profile.cpu_std[ps];
      var_[s] += sd * sd;
      sd_sum_[s] += sd;
    }
  }
  sum.min_headroom = HUGE_VAL;
  peak_slot_ = 0;
  for (int s = 0; s < slots_; ++s) {
    sum.min_headroom = std::min(sum.min_headroom, capacity_ - mean_[s]);
    sum.max_var = std::max(sum.max_var, var_[s]);
    sum.max_sd_sum = std::max(sum.max_sd_sum, sd_sum_[s]);
    if (mean_[s] > sum.peak_mean) {
      sum.peak_mean = mean_[s];
      peak_slot_ = s;
    }
  }
  if (slots_ > 0) peak_ = {mean_[peak_slot_], var_[peak_slot_], sd_sum_[peak_slot_]};
  BlockBounds(
      slots_,
      [&](int s) {
        return std::array{mean_[s], var_[s], sd_sum_[s]};
      },
      &blocks_);
  std::copy(mean_.begin(), mean_.begin() + slots_, mean_.begin() + slots_);
  std::copy(var_.begin(), var_.begin() + slots_, var_.begin() + slots_);
  std::copy(sd_sum_.begin(), sd_sum_.begin() + slots_, sd_sum_.begin() + slots_);
  std::sort(app_counts_.begin(), app_counts_.end());
}

void NodeDemand::Group(const NodeInfo& node, const ProfileStore& profiles) {
  // By application in the order of their first pod, with the request of the first replica for a
  // cold start.
  std::vector<std::pair<std::string_view, int64_t>> apps;  // beside groups_
  groups_.clear();
  for (const PodOnNode& p : node.pods) {
    if (p.qos != Qos::kOnline) continue;
    auto it = std::find_if(apps.begin(), apps.end(), [&](const auto& a) { return a.first == p.app; });
    if (it == apps.end()) {
      apps.emplace_back(p.app, p.requests.cpu_milli);
      groups_.push_back({AppHash(p.app), 1, nullptr});
    } else {
      ++groups_[it - apps.begin()].replicas;
    }
  }
  for (size_t k = 0; k < apps.size(); ++k) {
    groups_[k].profile = &profiles.Get(apps[k].first, apps[k].second);
  }
  groups_store_ = &profiles;
  groups_generation_ = node.online_generation;
  groups_learnt_ = profiles.size();
}

int NodeDemand::SlotAt(int64_t unix_seconds) const {
  int64_t s = unix_seconds / slot_seconds_ % slots_;
  return static_cast<int>(s < 0 ? s + slots_ : s);
}

int WindowSlots(int64_t duration_seconds, int64_t slot_seconds, int slots) {
  int64_t k = (std::max<int64_t>(duration_seconds, 1) + slot_seconds - 1) / slot_seconds + 1;
  return static_cast<int>(std::min<int64_t>(k, slots));
}

int NodeDemand::ReplicasOf(uint64_t app_hash) const {
  if (!summary_.MayHold(app_hash)) return 0;
  auto it = std::lower_bound(app_counts_.begin(), app_counts_.end(),
                             std::pair<uint64_t, int>(app_hash, 0));
  return it != app_counts_.end() && it->first == app_hash ? it->second : 0;
}

CandidateWindow MakeCandidateWindow(const AppProfile& profile, std::string_view app,
                                    int64_t from_unix, int64_t horizon_seconds) {
  CandidateWindow w;
  w.app_hash = AppHash(app);
  w.first = profile.SlotAt(from_unix);
  int count = WindowSlots(horizon_seconds, profile.slot_seconds, profile.slots);
  w.mean.resize(count);
  w.var.resize(count);
  w.sd.resize(count);
  for (int k = 0; k < count; ++k) {
    int ps = (w.first + k) % profile.slots;
    w.mean[k] = profile.cpu_mean[ps];
    w.var[k] = static_cast<double>(profile.cpu_std[ps]) * profile.cpu_std[ps];
    w.sd[k] = profile.cpu_std[ps];
    w.max_mean = std::max(w.max_mean, w.mean[k]);
    w.max_var = std::max(w.max_var, w.var[k]);
    w.max_sd = std::max(w.max_sd, w.sd[k]);
  }
  if (count >= profile.slots) {
    // The same values as mean, var and sd at the window slot of each profile slot.
    BlockBounds(
        profile.slots,
        [&](int ps) {
          return std::array{static_cast<double>(profile.cpu_mean[ps]),
                            static_cast<double>(profile.cpu_std[ps]) * profile.cpu_std[ps],
                            static_cast<double>(profile.cpu_std[ps])};
        },
        &w.blocks);
  }
  return w;
}

namespace {

// SummaryLowerZ's numerator and (squared) denominator.
double SummaryLeast(const DemandSummary& s, const CandidateWindow& c) {
  // The least headroom of any slot...
  return s.min_headroom - c.max_mean + kFitTolerance;
}
double SummaryVariance(const DemandSummary& s, const CandidateWindow& c, int replicas, double rho) {
  // ... over the largest spread of any slot.
  const double growth = ReplicaGrowth(replicas);
  return std::max(CorrelatedVariance(s.max_var + growth * c.max_var, s.max_sd_sum + c.max_sd, rho),
                  1e-9);
}

}  // namespace

double SummaryLowerZ(const DemandSummary& s, const CandidateWindow& c, int replicas, double rho) {
  double least = SummaryLeast(s, c);
  if (least < 0) return -HUGE_VAL;
  return least / std::sqrt(SummaryVariance(s, c, replicas, rho));
}

bool SummaryClears(const DemandSummary& s, const CandidateWindow& c, int replicas, double rho,
                   double z) {
  double least = SummaryLeast(s, c);
  return least >= 0 && least * least >= z * z * (1 + 1e-9) * SummaryVariance(s, c, replicas, rho);
}

double NodeDemand::WorstZ(const CandidateWindow& c, double* peak_mean, double accept_z,
                          double reject_z) const {
  if (!built() || c.mean.empty()) {
    if (peak_mean) *peak_mean = 0;
    return 1e9;
  }
  const int replicas = ReplicasOf(c.app_hash);
  const double growth = ReplicaGrowth(replicas);
  if (static_cast<int>(c.mean.size()) >= slots_) {
    if (peak_mean) *peak_mean = summary_.peak_mean;
    double lower = SummaryLowerZ(summary_, c, replicas, rho_);
    if (lower > -HUGE_VAL && lower >= accept_z) return lower;
    int k = peak_slot_ - c.first;  // the peak's window slot
    if (k < 0) k += slots_;
    double headroom = capacity_ + kFitTolerance - peak_.mean - c.mean[k];
    double at_peak =
        headroom /
        std::sqrt(std::max(Variance(peak_.var + growth * c.var[k], peak_.sd_sum + c.sd[k]), 1e-9));
    if (at_peak < reject_z) return at_peak;
    if (!blocks_.empty() && c.blocks.size() == blocks_.size()) {
      // The peak mean is the summary's (the loop below finds the same).
      double worst = WholeCycleWorst(c, growth);
      return std::copysign(std::sqrt(std::abs(worst)), worst);
    }
  }
  const double* mean = mean_.data() + c.first;
  const size_t count = std::min(c.mean.size(), static_cast<size_t>(slots_));
  // min over slots of z = headroom / sd, compared as headroom * |headroom| / variance (no sqrt
  // per slot).
  double worst = 1e300, peak = 0;
  WorstOver(c, growth, 0, count, &worst);
  for (size_t k = 0; k < count; ++k) peak = std::max(peak, mean[k]);
  if (peak_mean) *peak_mean = peak;
  return std::copysign(std::sqrt(std::abs(worst)), worst);
}

void NodeDemand::WorstOver(const CandidateWindow& c, double growth, size_t from, size_t to,
                           double* worst) const {
  const double* mean = mean_.data() + c.first;
  const double* var = var_.data() + c.first;
  const double* sd_sum = sd_sum_.data() + c.first;
  const double capacity = capacity_ + kFitTolerance;
  double least = *worst;
  for (size_t k = from; k < to; ++k) {
    double headroom = capacity - mean[k] - c.mean[k];
    double v = std::max(Variance(var[k] + growth * c.var[k], sd_sum[k] + c.sd[k]), 1e-9);
    least = std::min(least, headroom * std::abs(headroom) / v);
  }
  *worst = least;
}

double NodeDemand::WholeCycleWorst(const CandidateWindow& c, double growth) const {
  // Per block, the least value any of its slots can take in WorstOver: each slot's headroom is
  // at least the block's (capacity less both largest means: the same subtractions on larger
  // operands) and its variance at most (at least) the block's, from the largest (least)
  // operands; every operand is non-negative, so each operation, rounding included, is monotone.
  const double capacity = capacity_ + kFitTolerance;
  const size_t blocks = blocks_.size();
  constexpr size_t kOnStack = 96 * 7 / kSlotsPerBlock;  // a week of 15-minute slots
  double on_stack[kOnStack];
  std::vector<double> on_heap(blocks > kOnStack ? blocks : 0);
  double* q = blocks > kOnStack ? on_heap.data() : on_stack;
  size_t first_block = 0;
  for (size_t b = 0; b < blocks; ++b) {
    const SlotBlock& n = blocks_[b];
    const SlotBlock& p = c.blocks[b];
    double headroom = capacity - n.max_mean - p.max_mean;
    double v = headroom >= 0 ? Variance(n.max_var + growth * p.max_var, n.max_sd + p.max_sd)
                             : Variance(n.min_var + growth * p.min_var, n.min_sd + p.min_sd);
    q[b] = headroom * std::abs(headroom) / std::max(v, 1e-9);
    if (q[b] < q[first_block]) first_block = b;
  }
  // The most likely block first, then every block that could still hold a lower value.
  double worst = 1e300;
  auto visit = [&](size_t b) {
    // Cycle slots [from, to) as window slots (the window starts at slot c.first).
    size_t from = b * kSlotsPerBlock, to = std::min(from + kSlotsPerBlock, size_t(slots_));
    size_t first = static_cast<size_t>(c.first), n = static_cast<size_t>(slots_);
    if (to <= first) {
      WorstOver(c, growth, from + n - first, to + n - first, &worst);
    } else if (from >= first) {
      WorstOver(c, growth, from - first, to - first, &worst);
    } else {
      WorstOver(c, growth, from + n - first, n, &worst);
      WorstOver(c, growth, 0, to - first, &worst);
    }
  };
  visit(first_block);
  for (size_t b = 0; b < blocks; ++b) {
    if (b != first_block && !(q[b] >= worst)) visit(b);
  }
  return worst;
}

double NodeDemand::ContentionProbability(const AppProfile& profile, std::string_view app,
                                         int64_t from_unix, int64_t horizon_seconds) const {
  if (!built()) return 0;
  return NormalTail(WorstZ(MakeCandidateWindow(profile, app, from_unix, horizon_seconds), nullptr));
}

void NodeDemand::ReclaimableCpuPrefix(int64_t from_unix, double risk, double margin,
                                      std::span<float> out) const {
  if (!built()) {
    std::fill(out.begin(), out.end(), static_cast<float>(capacity_ * (1 - margin)));
    return;
  }
  ReclaimableCpu(from_unix, 1, risk, margin);  // builds the table
  const double* r = reclaim_.data() + SlotAt(from_unix);
  double least = HUGE_VAL;
  for (size_t k = 0; k < out.size(); ++k) {
    if (static_cast<int>(k) < slots_) least = std::min(least, r[k]);
    out[k] = static_cast<float>(std::max(0.0, least));
  }
}

double NodeDemand::ReclaimableCpu(int64_t from_unix, int64_t duration_seconds, double risk,
                                  double margin) const {
  if (!built()) return capacity_ * (1 - margin);
  if (risk != table_risk_ || margin != table_margin_) {
    double z = NormalTailInverse(risk);
    reclaim_.resize(mean_.size());
    for (int s = 0; s < slots_; ++s) {
      reclaim_[s] =
          capacity_ * (1 - margin) - (mean_[s] + z * std::sqrt(Variance(var_[s], sd_sum_[s])));
    }
    // The second copy of the cycle, as the tables it comes from.
    std::copy(reclaim_.begin(), reclaim_.begin() + slots_, reclaim_.begin() + slots_);
    min_reclaim_ = *std::min_element(reclaim_.begin(), reclaim_.begin() + slots_);
    table_risk_ = risk;
    table_margin_ = margin;
  }
  const double* r = reclaim_.data() + SlotAt(from_unix);
  int count = WindowSlots(duration_seconds, slot_seconds_, slots_);
  double least = count >= slots_ ? min_reclaim_ : *std::min_element(r, r + count);
  return std::max(0.0, least);
}

double NodeDemand::PeakMean(int64_t from_unix, int64_t horizon_seconds) const {
  if (!built()) return 0;
  const double* m = mean_.data() + SlotAt(from_unix);
  return *std::max_element(m, m + WindowSlots(horizon_seconds, slot_seconds_, slots_));
}

}  // namespace fulcrum::scheduler
