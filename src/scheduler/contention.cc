#include "scheduler/contention.h"

#include <algorithm>
#include <cmath>

namespace fulcrum::scheduler {

double NormalTail(double z) { return 0.5 * std::erfc(z / std::sqrt(2.0)); }

double NormalTailInverse(double p) {
  p = std::clamp(p, 1e-12, 1 - 1e-12);
  // Bisection on the monotone tail: exact enough and called once per policy.
  double lo = -40, hi = 40;
  for (int i = 0; i < 200; ++i) {
    double mid = (lo + hi) / 2;
    (NormalTail(mid) > p ? lo : hi) = mid;
  }
  return (lo + hi) / 2;
}

void NodeDemand::Build(const NodeInfo& node, const ProfileStore& profiles) {
  const ProfileOptions& o = profiles.options();
  capacity_ = static_cast<double>(node.allocatable.cpu_milli);
  slot_seconds_ = o.slot_seconds;
  mean_.assign(o.slots, node.system_cpu_usage_milli);
  var_.assign(o.slots, 0);
  table_risk_ = -1;
  app_counts_.clear();
  // Group the online pods by application (with the request of the first replica for cold start).
  std::vector<std::pair<std::string_view, std::pair<int, int64_t>>> groups;
  for (const PodOnNode& p : node.pods) {
    if (p.qos != Qos::kOnline) continue;
    auto it = std::find_if(groups.begin(), groups.end(),
                           [&](const auto& g) { return g.first == p.app; });
    if (it == groups.end()) {
      groups.push_back({p.app, {1, p.requests.cpu_milli}});
    } else {
      ++it->second.first;
    }
  }
  for (const auto& [app, count_request] : groups) {
    auto [count, request] = count_request;
    app_counts_.emplace_back(std::string(app), count);
    const AppProfile& profile = profiles.Get(app, request);
    double n = count;
    for (int s = 0; s < o.slots; ++s) {
      mean_[s] += n * profile.cpu_mean[s];
      double sd = n * profile.cpu_std[s];
      var_[s] += sd * sd;
    }
  }
  std::sort(app_counts_.begin(), app_counts_.end());
}

int NodeDemand::SlotAt(int64_t unix_seconds) const {
  int64_t n = static_cast<int64_t>(mean_.size());
  int64_t s = unix_seconds / slot_seconds_ % n;
  return static_cast<int>(s < 0 ? s + n : s);
}

int NodeDemand::SlotCount(int64_t duration_seconds) const {
  int64_t k = (std::max<int64_t>(duration_seconds, 1) + slot_seconds_ - 1) / slot_seconds_ + 1;
  return static_cast<int>(std::min<int64_t>(k, static_cast<int64_t>(mean_.size())));
}

int NodeDemand::ReplicasOf(std::string_view app) const {
  auto it = std::lower_bound(app_counts_.begin(), app_counts_.end(), app,
                             [](const auto& e, std::string_view a) { return e.first < a; });
  return it != app_counts_.end() && it->first == app ? it->second : 0;
}

double NodeDemand::ContentionProbability(const AppProfile& profile, std::string_view app,
                                         int64_t from_unix, int64_t horizon_seconds) const {
  if (mean_.empty()) return 0;
  int n = slots();
  double replicas = ReplicasOf(app);
  double worst_z = 1e300;
  bool certain = false;
  ForEachSlot(from_unix, horizon_seconds, [&](int s) {
    int ps = profile.slots == n ? s : s % profile.slots;
    double m = mean_[s] + profile.cpu_mean[ps];
    double sd_app = profile.cpu_std[ps];
    // Correlated replicas: this app's part of the spread grows from n*sd to (n+1)*sd.
    double v = var_[s] + (2 * replicas + 1) * sd_app * sd_app;
    double headroom = capacity_ - m;
    if (v <= 0) {
      certain |= headroom < 0;
      return;
    }
    worst_z = std::min(worst_z, headroom / std::sqrt(v));
  });
  if (certain) return 1;
  return worst_z >= 1e300 ? 0 : NormalTail(worst_z);
}

double NodeDemand::ReclaimableCpu(int64_t from_unix, int64_t duration_seconds, double risk,
                                  double margin) const {
  if (mean_.empty()) return capacity_ * (1 - margin);
  if (risk != table_risk_ || margin != table_margin_) {
    double z = NormalTailInverse(risk);
    reclaim_.resize(mean_.size());
    for (size_t s = 0; s < mean_.size(); ++s) {
      reclaim_[s] = capacity_ * (1 - margin) - (mean_[s] + z * std::sqrt(var_[s]));
    }
    table_risk_ = risk;
    table_margin_ = margin;
  }
  double least = 1e300;
  ForEachSlot(from_unix, duration_seconds, [&](int s) { least = std::min(least, reclaim_[s]); });
  return std::max(0.0, least);
}

double NodeDemand::PeakMean(int64_t from_unix, int64_t horizon_seconds) const {
  if (mean_.empty()) return 0;
  double peak = 0;
  ForEachSlot(from_unix, horizon_seconds, [&](int s) { peak = std::max(peak, mean_[s]); });
  return peak;
}

}  // namespace fulcrum::scheduler
