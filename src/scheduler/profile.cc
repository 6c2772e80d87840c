#include "scheduler/profile.h"

#include <algorithm>
#include <cmath>

namespace fulcrum::scheduler {

ProfileStore::AppIndex ProfileStore::IndexOf(std::string_view app) {
  auto it = accumulator_index_.find(app);
  if (it != accumulator_index_.end()) return it->second;
  AppIndex index = accumulators_.size();
  accumulator_index_.emplace(std::string(app), index);
  Accumulator& a = accumulators_.emplace_back();
  a.app = std::string(app);
  size_t n = static_cast<size_t>(options_.slots);
  a.weight.assign(n, 0);
  a.sum.assign(n, 0);
  a.sum_sq.assign(n, 0);
  a.fresh.assign(n, {});
  return index;
}

void ProfileStore::Observe(std::string_view app, int64_t unix_seconds, double cpu_milli) {
  Observe(app, unix_seconds, std::span<const double>(&cpu_milli, 1));
}

void ProfileStore::Observe(std::string_view app, int64_t unix_seconds,
                           std::span<const double> cpu_milli) {
  Observe(IndexOf(app), unix_seconds, cpu_milli);
}

void ProfileStore::Observe(AppIndex app, int64_t unix_seconds, std::span<const double> cpu_milli) {
  Accumulator& a = accumulators_[app];
  int64_t s = unix_seconds / options_.slot_seconds % options_.slots;
  if (s < 0) s += options_.slots;
  for (double v : cpu_milli) {
    if (!std::isfinite(v)) continue;
    Accumulator::Fresh& f = a.fresh[s];
    f.n += 1;
    f.sum += v;
    f.sum_sq += v * v;
  }
}

void ProfileStore::ObserveHistory(std::string_view app, const UsageHistory& history) {
  for (size_t i = 0; i < history.samples.size(); ++i) {
    Observe(app, history.start_unix_seconds + static_cast<int64_t>(i) * history.step_seconds,
            history.samples[i]);
  }
}

void ProfileStore::Commit() {
  // Each slot's old totals decay by one cycle's worth whenever new samples of that slot arrive:
  // the slot is seen once per cycle, so this is 2^(-age/half_life) in cycles.
  const double decay = std::exp2(-1.0 / options_.half_life_cycles);
  bool changed = false;
  for (Accumulator& a : accumulators_) {
    bool touched = false;
    for (int s = 0; s < options_.slots; ++s) {
      Accumulator::Fresh& f = a.fresh[s];
      if (f.n == 0) continue;
      touched = true;
      Fold(f, decay, &a.weight[s], &a.sum[s], &a.sum_sq[s]);
      f = {};
    }
    if (!touched) continue;
    changed = true;
    Publish(a, false);
  }
  if (changed) ++version_;
}

void ProfileStore::LearnSoFar(std::string_view app) {
  auto it = accumulator_index_.find(app);
  if (it == accumulator_index_.end()) return;
  Accumulator& a = accumulators_[it->second];
  bool fresh = std::any_of(a.fresh.begin(), a.fresh.end(),
                           [](const Accumulator::Fresh& f) { return f.n > 0; });
  if (!fresh) return;
  Publish(a, true);
  ++version_;
}

void ProfileStore::Fold(const Accumulator::Fresh& f, double decay, double* weight, double* sum,
                        double* sum_sq) {
  double w = *weight > 0 ? decay : 0;
  // Normalise the new samples to a weight of 1 per cycle, whatever their count.
  *weight = *weight * w + 1;
  *sum = *sum * w + f.sum / f.n;
  *sum_sq = *sum_sq * w + f.sum_sq / f.n;
}

void ProfileStore::Publish(Accumulator& a, bool with_fresh) {
  const size_t n = static_cast<size_t>(options_.slots);
  const double *weight = a.weight.data(), *sum = a.sum.data(), *sum_sq = a.sum_sq.data();
  std::vector<double> folded;  // weight, sum, sum_sq with the fresh samples, when asked for
  if (with_fresh) {
    const double decay = std::exp2(-1.0 / options_.half_life_cycles);
    folded.reserve(3 * n);
    folded.insert(folded.end(), a.weight.begin(), a.weight.end());
    folded.insert(folded.end(), a.sum.begin(), a.sum.end());
    folded.insert(folded.end(), a.sum_sq.begin(), a.sum_sq.end());
    for (size_t s = 0; s < n; ++s) {
      if (a.fresh[s].n > 0) Fold(a.fresh[s], decay, &folded[s], &folded[n + s], &folded[2 * n + s]);
    }
    weight = folded.data();
    sum = weight + n;
    sum_sq = sum + n;
  }
  if (!a.profile) a.profile = &profiles_[a.app];  // elements of profiles_ never move
  AppProfile& p = *a.profile;
  p.app = a.app;
  p.slot_seconds = options_.slot_seconds;
  p.slots = options_.slots;
  p.cold = false;
  p.cpu_mean.assign(n, 0);
  p.cpu_std.assign(n, 0);
  double total_mean = 0, total_weight = 0;
  for (size_t s = 0; s < n; ++s) {
    if (weight[s] == 0) continue;
    total_mean += sum[s];
    total_weight += weight[s];
  }
  double fallback = total_weight > 0 ? total_mean / total_weight : 0;
  for (size_t s = 0; s < n; ++s) {
    double mean = weight[s] > 0 ? sum[s] / weight[s] : fallback;
    double var = weight[s] > 0 ? sum_sq[s] / weight[s] - mean * mean : mean * mean;
    double sd = std::sqrt(std::max(0.0, var));
    sd = std::max(sd, options_.min_relative_spread * mean);
    p.cpu_mean[s] = static_cast<float>(mean);
    p.cpu_std[s] = static_cast<float>(sd);
    p.observed_samples += weight[s];
  }
}

const AppProfile* ProfileStore::Find(std::string_view app) const {
  auto it = profiles_.find(app);
  return it == profiles_.end() ? nullptr : &it->second;
}

std::vector<const AppProfile*> ProfileStore::Learnt() const {
  std::vector<const AppProfile*> out;
  out.reserve(profiles_.size());
  for (const auto& [app, p] : profiles_) out.push_back(&p);
  return out;
}

bool ProfileStore::Restore(const AppProfile& profile) {
  size_t n = static_cast<size_t>(options_.slots);
  if (profile.slots != options_.slots || profile.slot_seconds != options_.slot_seconds ||
      profile.cpu_mean.size() != n || profile.cpu_std.size() != n) {
    return false;
  }
  Accumulator& a = AccumulatorFor(profile.app);
  for (size_t s = 0; s < n; ++s) {
    double mean = profile.cpu_mean[s], sd = profile.cpu_std[s];
    a.weight[s] = 1;
    a.sum[s] = mean;
    a.sum_sq[s] = sd * sd + mean * mean;
  }
  AppProfile& p = profiles_[profile.app];
  p = profile;
  p.cold = false;
  ++version_;
  return true;
}

const AppProfile& ProfileStore::Get(std::string_view app, int64_t request_cpu_milli) const {
  if (const AppProfile* p = Find(app)) return *p;
  std::string key = std::string(app) + "\x1f" + std::to_string(request_cpu_milli);
  auto it = cold_.find(key);
  if (it != cold_.end()) return it->second;
  AppProfile& p = cold_[key];
  p.app = std::string(app);
  p.slot_seconds = options_.slot_seconds;
  p.slots = options_.slots;
  p.cpu_mean.assign(options_.slots,
                    static_cast<float>(request_cpu_milli * options_.cold_mean_fraction));
  p.cpu_std.assign(options_.slots,
                   static_cast<float>(request_cpu_milli * options_.cold_spread_fraction));
  return p;
}

}  // namespace fulcrum::scheduler
