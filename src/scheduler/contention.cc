#include "scheduler/contention.h"

#include <algorithm>
#include <cmath>
#include <functional>

namespace fulcrum::scheduler {
namespace {

// Contention is demand above capacity: a demand that reaches it only to within this (millicores)
// is none. It matters only without spread (applications with no history, taken at their
// requests), where a node filled exactly by requests would otherwise count as z = 0.
constexpr double kFitTolerance = 1e-3;

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
  app_bloom_ = 0;
  for (const AppGroup& g : groups_) {
    app_counts_.emplace_back(g.app_hash, g.replicas);
    app_bloom_ |= uint64_t{1} << (g.app_hash % 64);
    const AppProfile& profile = *g.profile;
    double n = g.replicas;
    for (int s = 0, ps = 0; s < slots_; ++s, ps = ps + 1 < profile.slots ? ps + 1 : 0) {
      mean_[s] += n * profile.cpu_mean[ps];
      double sd = n * profile.cpu_std[ps];
      var_[s] += sd * sd;
      sd_sum_[s] += sd;
    }
  }
  min_headroom_ = HUGE_VAL;
  max_var_ = max_sd_sum_ = peak_mean_ = 0;
  peak_slot_ = 0;
  for (int s = 0; s < slots_; ++s) {
    min_headroom_ = std::min(min_headroom_, capacity_ - mean_[s]);
    max_var_ = std::max(max_var_, var_[s]);
    max_sd_sum_ = std::max(max_sd_sum_, sd_sum_[s]);
    if (mean_[s] > peak_mean_) {
      peak_mean_ = mean_[s];
      peak_slot_ = s;
    }
  }
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
  if (!(app_bloom_ & (uint64_t{1} << (app_hash % 64)))) return 0;
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
  return w;
}

double NodeDemand::WorstZ(const CandidateWindow& c, double* peak_mean, double accept_z,
                          double reject_z) const {
  if (!built() || c.mean.empty()) {
    if (peak_mean) *peak_mean = 0;
    return 1e9;
  }
  // Correlated replicas: this app's part of the spread grows from n*sd to (n+1)*sd, so its
  // variance grows by (2n + 1) sd^2.
  const double growth = 2.0 * ReplicasOf(c.app_hash) + 1;
  if (static_cast<int>(c.mean.size()) >= slots_) {
    if (peak_mean) *peak_mean = peak_mean_;
    double least = min_headroom_ - c.max_mean + kFitTolerance;
    if (least >= 0) {
      double lower = least / std::sqrt(std::max(
                                 Variance(max_var_ + growth * c.max_var, max_sd_sum_ + c.max_sd),
                                 1e-9));
      if (lower >= accept_z) return lower;
    }
    int k = (peak_slot_ - c.first + slots_) % slots_;
    double headroom = capacity_ + kFitTolerance - mean_[peak_slot_] - c.mean[k];
    double at_peak =
        headroom / std::sqrt(std::max(Variance(var_[peak_slot_] + growth * c.var[k],
                                               sd_sum_[peak_slot_] + c.sd[k]),
                                      1e-9));
    if (at_peak < reject_z) return at_peak;
  }
  const double* mean = mean_.data() + c.first;
  const double* var = var_.data() + c.first;
  const double* sd_sum = sd_sum_.data() + c.first;
  const size_t count = std::min(c.mean.size(), static_cast<size_t>(slots_));
  // min over slots of z = headroom / sd, compared as headroom * |headroom| / variance (no sqrt
  // in the loop, so it vectorizes).
  double worst = 1e300, peak = 0;
  const double capacity = capacity_ + kFitTolerance;
  for (size_t k = 0; k < count; ++k) {
    double headroom = capacity - mean[k] - c.mean[k];
    double v = std::max(Variance(var[k] + growth * c.var[k], sd_sum[k] + c.sd[k]), 1e-9);
    worst = std::min(worst, headroom * std::abs(headroom) / v);
    peak = std::max(peak, mean[k]);
  }
  if (peak_mean) *peak_mean = peak;
  return std::copysign(std::sqrt(std::abs(worst)), worst);
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
