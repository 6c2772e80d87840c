#include "scheduler/predictor.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>

#include "scheduler/predictor_impl.h"

namespace fulcrum::scheduler {
namespace {

using base::Invalid;
using base::Result;
using base::Status;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

Status ValidateInput(const UsageHistory& history, int horizon, const std::vector<double>& levels,
                     std::vector<double>* sorted_levels) {
  if (history.step_seconds <= 0) {
    return Invalid("step_seconds must be positive, got " + std::to_string(history.step_seconds));
  }
  if (horizon <= 0) return Invalid("horizon must be positive, got " + std::to_string(horizon));
  if (levels.empty()) return Invalid("at least one quantile level is required");
  for (double q : levels) {
    if (!(q > 0 && q < 1)) return Invalid("quantile level must be in (0, 1), got " + std::to_string(q));
  }
  bool any_finite = std::any_of(history.samples.begin(), history.samples.end(),
                                [](double v) { return std::isfinite(v); });
  if (!any_finite) return Invalid("usage history has no samples");
  *sorted_levels = levels;
  std::sort(sorted_levels->begin(), sorted_levels->end());
  sorted_levels->erase(std::unique(sorted_levels->begin(), sorted_levels->end()),
                       sorted_levels->end());
  return Status::Ok();
}

Forecast EmptyForecast(const std::vector<double>& levels, int horizon) {
  Forecast f;
  f.levels = levels;
  f.values.assign(levels.size(), std::vector<double>(horizon, kNaN));
  return f;
}

// Enforces values[i][h] <= values[i + 1][h].
void MakeMonotone(Forecast& f) {
  for (size_t i = 1; i < f.values.size(); ++i) {
    for (size_t h = 0; h < f.values[i].size(); ++h) {
      f.values[i][h] = std::max(f.values[i][h], f.values[i - 1][h]);
    }
  }
}

// The q-quantile of v with linear interpolation between order statistics; v is reordered.
double EmpiricalQuantile(std::vector<double>& v, double q) {
  if (v.empty()) return kNaN;
  double pos = q * static_cast<double>(v.size() - 1);
  size_t lo = static_cast<size_t>(pos);
  std::nth_element(v.begin(), v.begin() + lo, v.end());
  double a = v[lo];
  if (lo + 1 >= v.size()) return a;
  double b = *std::min_element(v.begin() + lo + 1, v.end());
  return a + (b - a) * (pos - static_cast<double>(lo));
}

std::vector<double> Finite(const std::vector<double>& v, size_t begin = 0) {
  std::vector<double> out;
  out.reserve(v.size() - std::min(begin, v.size()));
  for (size_t i = begin; i < v.size(); ++i) {
    if (std::isfinite(v[i])) out.push_back(v[i]);
  }
  return out;
}

int StepsIn(int64_t seconds, int64_t step) {
  return static_cast<int>(std::max<int64_t>(1, (seconds + step / 2) / step));
}

}  // namespace

const std::vector<double>& Forecast::Quantile(double level) const {
  size_t best = 0;
  for (size_t i = 1; i < levels.size(); ++i) {
    if (std::abs(levels[i] - level) < std::abs(levels[best] - level)) best = i;
  }
  return values[best];
}

Result<Forecast> LastValuePredictor::Predict(const UsageHistory& history, int horizon,
                                             const std::vector<double>& levels) const {
  std::vector<double> qs;
  RETURN_IF_ERROR(ValidateInput(history, horizon, levels, &qs));
  double last = kNaN;
  for (auto it = history.samples.rbegin(); it != history.samples.rend(); ++it) {
    if (std::isfinite(*it)) {
      last = *it;
      break;
    }
  }
  Forecast f = EmptyForecast(qs, horizon);
  for (auto& row : f.values) std::fill(row.begin(), row.end(), last);
  return f;
}

Result<Forecast> MovingWindowMaxPredictor::Predict(const UsageHistory& history, int horizon,
                                                   const std::vector<double>& levels) const {
  std::vector<double> qs;
  RETURN_IF_ERROR(ValidateInput(history, horizon, levels, &qs));
  const size_t window = StepsIn(window_seconds_, history.step_seconds);
  const size_t n = history.samples.size();
  std::vector<double> values = Finite(history.samples, n > window ? n - window : 0);
  if (values.empty()) values = Finite(history.samples);  // the window is all gap
  double peak = *std::max_element(values.begin(), values.end());
  Forecast f = EmptyForecast(qs, horizon);
  for (size_t i = 0; i < qs.size(); ++i) {
    double v = qs[i] >= 0.95 ? peak : EmpiricalQuantile(values, qs[i]);
    std::fill(f.values[i].begin(), f.values[i].end(), v);
  }
  MakeMonotone(f);
  return f;
}

Result<Forecast> DecayingPercentilePredictor::Predict(const UsageHistory& history, int horizon,
                                                      const std::vector<double>& levels) const {
  std::vector<double> qs;
  RETURN_IF_ERROR(ValidateInput(history, horizon, levels, &qs));
  const size_t n = history.samples.size();
  // Samples older than 20 half-lives weigh less than 1e-6 of the newest: leave them out.
  const double half_life_steps =
      std::max(1e-9, half_life_seconds_ / static_cast<double>(history.step_seconds));
  const size_t keep = static_cast<size_t>(std::min<double>(n, 20 * half_life_steps + 1));
  std::vector<std::pair<double, double>> weighted;  // value, weight
  weighted.reserve(keep);
  double total = 0;
  for (size_t i = n - keep; i < n; ++i) {
    if (!std::isfinite(history.samples[i])) continue;
    double w = std::exp2(-static_cast<double>(n - 1 - i) / half_life_steps);
    weighted.emplace_back(history.samples[i], w);
    total += w;
  }
  if (weighted.empty()) {  // every recent sample is a gap: weigh the older ones equally
    for (double v : Finite(history.samples)) weighted.emplace_back(v, 1.0), total += 1;
  }
  std::sort(weighted.begin(), weighted.end());
  Forecast f = EmptyForecast(qs, horizon);
  size_t i = 0;
  double cumulative = 0;
  for (size_t l = 0; l < qs.size(); ++l) {
    const double target = qs[l] * total;
    while (i + 1 < weighted.size() && cumulative + weighted[i].second < target) {
      cumulative += weighted[i].second;
      ++i;
    }
    std::fill(f.values[l].begin(), f.values[l].end(), weighted[i].first);
  }
  return f;
}

Result<Forecast> SeasonalPredictor::Predict(const UsageHistory& history, int horizon,
                                            const std::vector<double>& levels) const {
  std::vector<double> qs;
  RETURN_IF_ERROR(ValidateInput(history, horizon, levels, &qs));
  constexpr int64_t kDay = 86400;
  const int64_t step = history.step_seconds;
  const int64_t slot = std::max(slot_seconds_, step);
  const int64_t slots_per_day = (kDay + slot - 1) / slot;
  const size_t n = history.samples.size();
  const bool weekly = static_cast<int64_t>(n) * step >= 14 * kDay;
  auto key = [&](int64_t t) {
    int64_t day = t >= 0 ? t / kDay : (t - kDay + 1) / kDay;
    int64_t s = (t - day * kDay) / slot;
    if (!weekly) return s;
    int64_t dow = ((day % 7) + 7) % 7;
    return dow * slots_per_day + s;
  };
  std::vector<std::vector<double>> buckets(weekly ? 7 * slots_per_day : slots_per_day);
  for (size_t i = 0; i < n; ++i) {
    if (!std::isfinite(history.samples[i])) continue;
    buckets[key(history.start_unix_seconds + static_cast<int64_t>(i) * step)].push_back(
        history.samples[i]);
  }
  std::vector<double> all;  // for slots never seen: the last day's distribution
  Forecast f = EmptyForecast(qs, horizon);
  int64_t cached_key = -1;
  std::vector<double> cached(qs.size());
  for (int h = 0; h < horizon; ++h) {
    int64_t t = history.start_unix_seconds + static_cast<int64_t>(n + h) * step;
    int64_t k = key(t);
    if (k != cached_key) {
      std::vector<double>* values = &buckets[k];
      if (values->size() < 3) {
        if (all.empty()) {
          size_t day_steps = static_cast<size_t>(kDay / step);
          all = Finite(history.samples, n > day_steps ? n - day_steps : 0);
          if (all.empty()) all = Finite(history.samples);
        }
        values = &all;
      }
      for (size_t l = 0; l < qs.size(); ++l) cached[l] = EmpiricalQuantile(*values, qs[l]);
      cached_key = k;
    }
    for (size_t l = 0; l < qs.size(); ++l) f.values[l][h] = cached[l];
  }
  MakeMonotone(f);
  return f;
}

Result<Forecast> FftPredictor::Predict(const UsageHistory& history, int horizon,
                                       const std::vector<double>& levels) const {
  std::vector<double> qs;
  RETURN_IF_ERROR(ValidateInput(history, horizon, levels, &qs));
  const auto& x = history.samples;
  const int64_t n = static_cast<int64_t>(x.size());
  const int64_t period = DetectPeriod(x);
  if (period == 0 || n < period + 1) return fallback_.Predict(history, horizon, qs);
  // Samples within five minutes of the same phase in up to the last seven periods.
  const int64_t radius = std::min<int64_t>(300 / history.step_seconds, period / 8);
  Forecast f = EmptyForecast(qs, horizon);
  std::vector<double> values;
  for (int h = 0; h < horizon; ++h) {
    values.clear();
    const int64_t s = n + h;
    for (int64_t k = 1; k <= 7; ++k) {
      int64_t c = s - k * period;
      if (c + radius < 0) break;
      for (int64_t j = std::max<int64_t>(0, c - radius); j <= c + radius && j < n; ++j) {
        if (std::isfinite(x[j])) values.push_back(x[j]);
      }
    }
    if (values.empty()) values = Finite(x, static_cast<size_t>(std::max<int64_t>(0, n - period)));
    for (size_t l = 0; l < qs.size(); ++l) f.values[l][h] = EmpiricalQuantile(values, qs[l]);
  }
  MakeMonotone(f);
  return f;
}

namespace {

// The point forecast shared by Archimedes' prediction and its backtest: for a forecast made at
// `origin` (using samples [0, origin) only), the value at step s >= origin.
class SeasonalBaseline {
 public:
  SeasonalBaseline(const std::vector<double>& x, int64_t period, int64_t step)
      : x_(x), period_(period) {
    radius_ = period > 0 ? std::min<int64_t>(std::max<int64_t>(0, 300 / step), period / 8) : 0;
    level_steps_ = StepsIn(1800, step);
    // Centered moving sums for the smoothed series.
    prefix_.assign(x.size() + 1, 0);
    square_.assign(x.size() + 1, 0);
    count_.assign(x.size() + 1, 0);
    for (size_t i = 0; i < x.size(); ++i) {
      bool ok = std::isfinite(x[i]);
      prefix_[i + 1] = prefix_[i] + (ok ? x[i] : 0);
      square_[i + 1] = square_[i] + (ok ? x[i] * x[i] : 0);
      count_[i + 1] = count_[i] + (ok ? 1 : 0);
    }
  }

  // The mean of the finite samples in [begin, end).
  double RangeMean(int64_t begin, int64_t end) const {
    begin = std::max<int64_t>(begin, 0);
    end = std::min<int64_t>(end, static_cast<int64_t>(x_.size()));
    if (end <= begin) return kNaN;
    int64_t c = count_[end] - count_[begin];
    return c ? (prefix_[end] - prefix_[begin]) / static_cast<double>(c) : kNaN;
  }

  // The standard deviation of the finite samples in [begin, end); 0 with fewer than two.
  double RangeStd(int64_t begin, int64_t end) const {
    begin = std::max<int64_t>(begin, 0);
    end = std::min<int64_t>(end, static_cast<int64_t>(x_.size()));
    if (end <= begin) return 0;
    int64_t c = count_[end] - count_[begin];
    if (c < 2) return 0;
    double m = (prefix_[end] - prefix_[begin]) / static_cast<double>(c);
    double v = (square_[end] - square_[begin]) / static_cast<double>(c) - m * m;
    return std::sqrt(std::max(0.0, v));
  }

  // The seasonal value at step s: the median, over up to eight periods before `origin`, of the
  // mean within the radius of the same phase. A median, so that one unusual day (a burst, an
  // outage) does not move the baseline of the following ones.
  double Seasonal(int64_t s, int64_t origin) const {
    std::array<double, 8> values;
    size_t count = 0;
    for (int64_t k = 1; k <= 8; ++k) {
      int64_t c = s - k * period_;
      if (c + radius_ >= origin) continue;
      if (c - radius_ < 0) break;
      double v = RangeMean(c - radius_, c + radius_ + 1);
      if (std::isfinite(v)) values[count++] = v;
    }
    if (count == 0) return kNaN;
    std::sort(values.begin(), values.begin() + count);
    return count % 2 ? values[count / 2] : 0.5 * (values[count / 2 - 1] + values[count / 2]);
  }

  // Forecasts steps origin .. origin + horizon - 1 as base[h] + offset[h]: the seasonal value and
  // how far the last half hour sits from its own seasonal values (0 where a step has no seasonal
  // value, whose base is then the recent level). False if there is nothing to go on.
  bool Forecast(int64_t origin, int horizon, std::vector<double>& base,
                std::vector<double>& offset) const {
    base.assign(horizon, kNaN);
    offset.assign(horizon, 0);
    double level = RangeMean(origin - level_steps_, origin);
    if (period_ == 0) {
      if (!std::isfinite(level)) return false;
      std::fill(base.begin(), base.end(), level);
      return true;
    }
    double offset_sum = 0;
    int offset_count = 0;
    for (int64_t j = origin - level_steps_; j < origin; ++j) {
      if (j < 0 || !std::isfinite(x_[j])) continue;
      double b = Seasonal(j, origin);
      if (std::isfinite(b)) offset_sum += x_[j] - b, ++offset_count;
    }
    const double recent_offset = offset_count ? offset_sum / offset_count : 0;
    bool any = false;
    for (int h = 0; h < horizon; ++h) {
      double b = Seasonal(origin + h, origin);
      if (std::isfinite(b)) {
        base[h] = b;
        offset[h] = recent_offset;
        any = true;
      } else {
        base[h] = level;
      }
    }
    return any;
  }

 private:
  const std::vector<double>& x_;
  int64_t period_;
  int64_t radius_ = 0;
  int64_t level_steps_ = 1;
  std::vector<double> prefix_;
  std::vector<double> square_;  // prefix sums of squares, for RangeStd
  std::vector<int64_t> count_;
};

}  // namespace

namespace {

// One scored point of Archimedes' walk-forward backtest.
struct BacktestPoint {
  int bucket;     // lead-time bucket
  int lead;       // steps after the origin, from 0
  size_t origin;  // index of the backtest origin
  double base;    // the point model's forecast before the recent offset
  double offset;  // the recent offset (see SeasonalBaseline::Forecast)
  double actual;
};

// What a candidate divides its errors by, so that one band fits forecasts at different levels.
enum class ErrorScale {
  // The point forecast at the target step (floored) plus half the spread of the two hours before
  // the origin: a series that has just turned noisy gets a wider band (locally adaptive conformal
  // scores). Good at short lead times, where the origin says much about the error.
  kLocal,
  // The mean of the day before the origin (floored): errors in the series' own units, whatever the
  // level at the origin. At long lead times the origin's level or spread says little about the
  // error, and a band learnt at a quiet origin must not be multiplied by a busy one's level.
  kRecentMean,
};

// The q-quantile of sorted values with linear interpolation; -inf when there are none.
double SortedQuantile(const std::vector<double>& sorted, double q) {
  if (sorted.empty()) return -std::numeric_limits<double>::infinity();
  double pos = q * static_cast<double>(sorted.size() - 1);
  size_t lo = static_cast<size_t>(pos);
  if (lo + 1 >= sorted.size()) return sorted[lo];
  return sorted[lo] + (sorted[lo + 1] - sorted[lo]) * (pos - static_cast<double>(lo));
}

// The conformal rank: the ceil((N + 1) q)-th smallest of N errors covers a new one with
// probability at least q when errors are exchangeable. e must not be empty; it is reordered.
double ConformalQuantile(std::vector<double>& e, double q) {
  const double count = static_cast<double>(e.size());
  const auto rank = static_cast<size_t>(std::clamp(std::ceil((count + 1) * q), 1.0, count));
  std::nth_element(e.begin(), e.begin() + (rank - 1), e.end());
  return e[rank - 1];
}

// Lead-time buckets, errors growing with the lead time. Within the first hour (all of a shorter
// horizon): the first eighth, the second eighth, the second quarter and the second half; after
// it, each bucket twice as long as the one before (1-2 h, 2-4 h, ...). Returns the bucket of each
// step and sets *count.
constexpr int kFirstHourBuckets = 4;
std::vector<int> LeadBuckets(int horizon, int64_t step, int* count) {
  const int64_t unit = std::min<int64_t>(horizon, StepsIn(3600, step));
  std::vector<int> bucket(horizon);
  int64_t limit = 2 * unit;
  int b = kFirstHourBuckets;
  for (int h = 0; h < horizon; ++h) {
    if (h >= unit) {
      while (h >= limit) limit *= 2, ++b;
      bucket[h] = b;
    } else {
      bucket[h] = 8 * h < unit ? 0 : 4 * h < unit ? 1 : 2 * h < unit ? 2 : 3;
    }
  }
  *count = horizon > 0 ? bucket.back() + 1 : 0;
  return bucket;
}

}  // namespace

double ArchimedesCalibrationLevel(double q) {
  return q > 0.5 ? 1 - kArchimedesTailShrink * (1 - q) : q < 0.5 ? kArchimedesTailShrink * q : q;
}

Result<Forecast> ArchimedesPredictor::Predict(const UsageHistory& history, int horizon,
                                              const std::vector<double>& levels) const {
  std::vector<double> qs;
  RETURN_IF_ERROR(ValidateInput(history, horizon, levels, &qs));
  const auto& x = history.samples;
  const int64_t n = static_cast<int64_t>(x.size());
  const int64_t step = history.step_seconds;
  const int64_t day_steps = StepsIn(86400, step);
  // Candidate point forecasts: the recent level, and for the detected period and for the day (the
  // cycle of most usage, which a shorter detected period can hide) the seasonal baseline shifted
  // by the recent level offset. A period needs a period and a horizon of history.
  std::vector<int64_t> periods = {0};
  const int64_t detected = DetectPeriod(x);
  if (detected > 0 && n >= detected + horizon) periods.push_back(detected);
  // Within the seasonal mean's radius of the detected period, the day is the same model.
  if (std::abs(detected - day_steps) > std::max<int64_t>(1, 300 / step) &&
      n >= day_steps + horizon) {
    periods.push_back(day_steps);
  }
  const int64_t longest = *std::max_element(periods.begin(), periods.end());
  std::vector<SeasonalBaseline> models;
  for (int64_t p : periods) models.emplace_back(x, p, step);
  const SeasonalBaseline& stats = models.front();

  // Usage noise grows with usage: scales are floored at a tenth of the mean so that near-idle
  // stretches do not blow the ratios up.
  const double mean = stats.RangeMean(0, n);
  const double floor = std::max(1e-9, 0.1 * std::abs(mean));
  const int64_t spread_steps = StepsIn(2 * 3600, step);
  const int64_t hour_steps = StepsIn(3600, step);
  auto recent_mean = [&](int64_t origin) {
    const double m = stats.RangeMean(origin - day_steps, origin);
    return std::max(std::isfinite(m) ? m : mean, floor);
  };

  // Walk-forward backtest over the last three days (or periods) of the history, newest origin
  // first, an origin every quarter of the horizon but at least every hour (a long horizon's
  // backtest needs more than a handful of origins). Each origin also keeps its last hour of
  // samples, sorted, for the guard.
  const int64_t span = std::max<int64_t>(3 * 86400 / step, 3 * longest);
  const int64_t stride = std::max<int64_t>(1, std::min<int64_t>(horizon / 4, hour_steps));
  const int64_t earliest = std::max<int64_t>(n - horizon - span, 1);
  const int64_t guard_steps = hour_steps;
  auto last_hour = [&](int64_t origin) {
    std::vector<double> w;
    for (int64_t i = std::max<int64_t>(0, origin - guard_steps); i < origin; ++i) {
      if (std::isfinite(x[i])) w.push_back(x[i]);
    }
    std::sort(w.begin(), w.end());
    return w;
  };
  struct Origin {
    int64_t index;
    double spread;       // standard deviation of the two hours before
    double recent_mean;  // see ErrorScale::kRecentMean
    std::vector<double> last_hour;
  };
  std::vector<Origin> origins;
  for (int64_t origin = n - horizon; origin >= earliest; origin -= stride) {
    origins.push_back({origin, stats.RangeStd(origin - spread_steps, origin), recent_mean(origin),
                       last_hour(origin)});
  }
  const Origin now{n, stats.RangeStd(n - spread_steps, n), recent_mean(n), last_hour(n)};
  int buckets = 0;
  const std::vector<int> bucket_of = LeadBuckets(horizon, step, &buckets);
  // The guard: within the first hour, the band never below the same quantile of the last hour's
  // samples. Further ahead the last hour says little.
  auto guard_of = [&](const Origin& o, int lead, double q) {
    return lead < guard_steps ? SortedQuantile(o.last_hour, q)
                              : -std::numeric_limits<double>::infinity();
  };
  auto scale_of = [&](ErrorScale kind, const Origin& o, double point) {
    switch (kind) {
      case ErrorScale::kLocal:
        return std::max(point, floor) + 0.5 * o.spread;
      case ErrorScale::kRecentMean:
        return o.recent_mean;
    }
    return floor;
  };

  // A candidate: a point model, the weight of its recent offset per lead bucket, an error scale
  // and whether it is guarded; calibrated on its own backtest.
  struct Candidate {
    size_t model = 0;
    std::vector<double> offset_weight;
    ErrorScale scale = ErrorScale::kLocal;
    bool guarded = false;
    double over_provisioning = 0;
  };
  std::vector<BacktestPoint> backtest;
  std::vector<double> point, scale, errors_all;
  std::vector<std::vector<double>> errors(buckets);
  // Per lead bucket, the scaled-error quantile that covers q of the backtest; with the guard, a
  // point that the guard already covers needs no band. A bucket with fewer than 30 errors takes
  // the quantile of all of them.
  auto calibrate = [&](double q, bool guarded) {
    for (auto& e : errors) e.clear();
    errors_all.clear();
    for (size_t i = 0; i < backtest.size(); ++i) {
      const BacktestPoint& p = backtest[i];
      const double e = guarded && p.actual <= guard_of(origins[p.origin], p.lead, q)
                           ? -std::numeric_limits<double>::infinity()
                           : (p.actual - point[i]) / scale[i];
      errors[p.bucket].push_back(e);
      errors_all.push_back(e);
    }
    const double pooled = ConformalQuantile(errors_all, q);
    std::vector<double> band(buckets);
    for (int b = 0; b < buckets; ++b) {
      band[b] = errors[b].size() >= 30 ? ConformalQuantile(errors[b], q) : pooled;
      if (!std::isfinite(band[b])) band[b] = -1e9;  // the guard alone covers q
    }
    return band;
  };
  // The weight of the recent offset at each lead bucket. Within the first hour, 1: the last half
  // hour's deviation from the usual shape is what the next minutes do. Further ahead a deviation
  // fades, at the series' own pace: the least-squares coefficient of the residual from the base on
  // the offset, never above the weight of the bucket before.
  auto fit_offset_weights = [&]() {
    std::vector<double> cross(buckets, 0), square(buckets, 0), weight(buckets, 1);
    for (const BacktestPoint& p : backtest) {
      cross[p.bucket] += p.offset * (p.actual - p.base);
      square[p.bucket] += p.offset * p.offset;
    }
    for (int b = kFirstHourBuckets; b < buckets; ++b) {
      weight[b] =
          square[b] > 0 ? std::clamp(cross[b] / square[b], 0.0, weight[b - 1]) : weight[b - 1];
    }
    return weight;
  };

  std::vector<double> base, offset;
  // A point forecast: the model's base plus its recent offset at the bucket's weight, never below
  // 0 (usage is never negative).
  auto shifted = [](double b, double o, double weight) { return std::max(0.0, b + weight * o); };
  // A candidate's point forecast and error scale at every backtest point.
  auto fill_points = [&](const std::vector<double>& weight) {
    point.resize(backtest.size());
    for (size_t i = 0; i < backtest.size(); ++i) {
      const BacktestPoint& p = backtest[i];
      point[i] = shifted(p.base, p.offset, weight[p.bucket]);
    }
  };
  auto fill_scales = [&](ErrorScale kind) {
    scale.resize(backtest.size());
    for (size_t i = 0; i < backtest.size(); ++i) {
      scale[i] = scale_of(kind, origins[backtest[i].origin], point[i]);
    }
  };
  // Model m's forecasts at every origin, scored against what followed, into `backtest`. A seasonal
  // model is tried only where a period of history lies before the origin.
  auto run_backtest = [&](size_t m) {
    backtest.clear();
    for (size_t o = 0; o < origins.size(); ++o) {
      if (origins[o].index <= periods[m] ||
          !models[m].Forecast(origins[o].index, horizon, base, offset)) {
        continue;
      }
      for (int h = 0; h < horizon; ++h) {
        const double actual = x[origins[o].index + h];
        if (!std::isfinite(actual) || !std::isfinite(base[h])) continue;
        backtest.push_back({bucket_of[h], h, o, base[h], offset[h], actual});
      }
    }
  };

  const double top = ArchimedesCalibrationLevel(qs.back());
  Candidate best;
  bool found = false;
  for (size_t m = 0; m < models.size(); ++m) {
    run_backtest(m);
    if (backtest.size() < 30 || !models[m].Forecast(n, horizon, base, offset)) continue;
    Candidate c;
    c.model = m;
    c.offset_weight = fit_offset_weights();
    fill_points(c.offset_weight);
    for (ErrorScale kind : {ErrorScale::kLocal, ErrorScale::kRecentMean}) {
      c.scale = kind;
      fill_scales(kind);
      for (bool guarded : {false, true}) {
        c.guarded = guarded;
        const auto band = calibrate(top, guarded);
        double sum = 0;
        for (size_t i = 0; i < backtest.size(); ++i) {
          const BacktestPoint& p = backtest[i];
          double v = point[i] + band[p.bucket] * scale[i];
          if (guarded) v = std::max(v, guard_of(origins[p.origin], p.lead, top));
          sum += v / std::max(p.actual, floor);
        }
        c.over_provisioning = sum / static_cast<double>(backtest.size());
        if (!found || c.over_provisioning < best.over_provisioning) best = c, found = true;
      }
    }
  }
  if (!found) return fallback_.Predict(history, horizon, qs);

  // The chosen candidate's backtest again, for the bands of every level.
  run_backtest(best.model);
  fill_points(best.offset_weight);
  fill_scales(best.scale);
  models[best.model].Forecast(n, horizon, base, offset);
  Forecast f = EmptyForecast(qs, horizon);
  for (size_t l = 0; l < qs.size(); ++l) {
    const double q = ArchimedesCalibrationLevel(qs[l]);
    const auto band = calibrate(q, best.guarded);
    for (int h = 0; h < horizon; ++h) {
      const int b = bucket_of[h];
      const double p = shifted(base[h], offset[h], best.offset_weight[b]);
      double v = p + band[b] * scale_of(best.scale, now, p);
      if (best.guarded) v = std::max(v, guard_of(now, h, q));
      f.values[l][h] = v;
    }
  }
  MakeMonotone(f);
  return f;
}

Result<std::unique_ptr<Predictor>> MakePredictor(std::string_view name,
                                                 const PredictorOptions& options) {
  std::unique_ptr<Predictor> p;
  if (name == "last-value") {
    p = std::make_unique<LastValuePredictor>();
  } else if (name == "moving-window-max") {
    p = std::make_unique<MovingWindowMaxPredictor>(options.window_seconds);
  } else if (name == "decaying-percentile") {
    p = std::make_unique<DecayingPercentilePredictor>(options.half_life_seconds);
  } else if (name == "seasonal") {
    p = std::make_unique<SeasonalPredictor>(options.slot_seconds);
  } else if (name == "fft") {
    p = std::make_unique<FftPredictor>(options);
  } else if (name == "archimedes") {
    p = std::make_unique<ArchimedesPredictor>(options);
  } else {
    return base::NotFound("unknown predictor \"" + std::string(name) + "\"");
  }
  return p;
}

std::vector<std::string> PredictorNames() {
  return {"last-value", "moving-window-max", "decaying-percentile", "seasonal", "fft", "archimedes"};
}

}  // namespace fulcrum::scheduler
