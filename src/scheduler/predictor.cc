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

  // Forecasts steps origin .. origin + horizon - 1 into out; false if there is nothing to go on.
  bool Forecast(int64_t origin, int horizon, std::vector<double>& out) const {
    out.assign(horizon, kNaN);
    double level = RangeMean(origin - level_steps_, origin);
    if (period_ == 0) {
      if (!std::isfinite(level)) return false;
      std::fill(out.begin(), out.end(), level);
      return true;
    }
    // How far the recent samples sit from their own seasonal values.
    double offset_sum = 0;
    int offset_count = 0;
    for (int64_t j = origin - level_steps_; j < origin; ++j) {
      if (j < 0 || !std::isfinite(x_[j])) continue;
      double b = Seasonal(j, origin);
      if (std::isfinite(b)) offset_sum += x_[j] - b, ++offset_count;
    }
    double offset = offset_count ? offset_sum / offset_count : 0;
    bool any = false;
    for (int h = 0; h < horizon; ++h) {
      double b = Seasonal(origin + h, origin);
      if (std::isfinite(b)) {
        out[h] = std::max(0.0, b + offset);  // usage is never negative
        any = true;
      } else {
        out[h] = level;
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
  int bucket;      // lead-time bucket
  size_t origin;   // index of the backtest origin (and of its last-hour window)
  double point;    // the candidate's point forecast
  double scale;    // the error scale known at the origin
  double actual;
};

// The q-quantile of sorted values with linear interpolation; -inf when there are none.
double SortedQuantile(const std::vector<double>& sorted, double q) {
  if (sorted.empty()) return -std::numeric_limits<double>::infinity();
  double pos = q * static_cast<double>(sorted.size() - 1);
  size_t lo = static_cast<size_t>(pos);
  if (lo + 1 >= sorted.size()) return sorted[lo];
  return sorted[lo] + (sorted[lo + 1] - sorted[lo]) * (pos - static_cast<double>(lo));
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
  int64_t period = DetectPeriod(x);
  if (period > 0 && n < period + horizon) period = 0;
  // Candidate point forecasts: the recent level, and with a period the seasonal baseline shifted
  // by the recent level offset.
  std::vector<SeasonalBaseline> models;
  models.emplace_back(x, 0, step);
  if (period > 0) models.emplace_back(x, period, step);
  const SeasonalBaseline& stats = models.front();

  // Errors are measured relative to a scale known at the forecast origin: the forecast level
  // (usage noise grows with usage, floored at a tenth of the mean so that near-idle stretches do
  // not blow the ratios up) plus half the spread of the last two hours (a series that has just
  // turned noisy gets a wider band, one that has calmed down a narrower one: locally adaptive
  // conformal scores).
  const double mean = stats.RangeMean(0, n);
  const double floor = std::max(1e-9, 0.1 * std::abs(mean));
  const int64_t spread_steps = StepsIn(2 * 3600, step);
  auto error_scale = [&](double level, int64_t origin) {
    return std::max(level, floor) + 0.5 * stats.RangeStd(origin - spread_steps, origin);
  };

  // Walk-forward backtest over the last three days (or periods) of the history, newest origin
  // first. Each origin also keeps its last hour of samples, sorted, for the guard.
  const int64_t span = std::max<int64_t>(3 * 86400 / step, 3 * period);
  const int64_t stride = std::max(1, horizon / 4);
  const int64_t earliest = std::max<int64_t>(n - span, period > 0 ? period + 1 : 1);
  const int64_t guard_steps = StepsIn(3600, step);
  auto last_hour = [&](int64_t origin) {
    std::vector<double> w;
    for (int64_t i = std::max<int64_t>(0, origin - guard_steps); i < origin; ++i) {
      if (std::isfinite(x[i])) w.push_back(x[i]);
    }
    std::sort(w.begin(), w.end());
    return w;
  };
  std::vector<int64_t> origins;
  std::vector<std::vector<double>> windows;
  for (int64_t origin = n - horizon; origin >= earliest; origin -= stride) {
    origins.push_back(origin);
    windows.push_back(last_hour(origin));
  }
  // Errors grow with the lead time, so they are kept per lead bucket: the first eighth of the
  // horizon, the second eighth, the second quarter and the second half.
  auto bucket_of = [horizon](int h) {
    return 8 * h < horizon ? 0 : 4 * h < horizon ? 1 : 2 * h < horizon ? 2 : 3;
  };
  // The conformal rank: the ceil((N + 1) q)-th smallest error covers a new one with probability
  // at least q when errors are exchangeable.
  auto conformal = [](const std::vector<double>& e, double q) {
    const double count = static_cast<double>(e.size());
    const double rank = std::clamp(std::ceil((count + 1) * q), 1.0, count);
    return e[static_cast<size_t>(rank) - 1];
  };
  // Per lead bucket, the scaled-error quantile that covers q of the backtest; with the guard, a
  // point that the guard already covers needs no band.
  auto calibrate = [&](const std::vector<BacktestPoint>& backtest, double q, bool guarded) {
    std::vector<double> errors[4];
    std::vector<double> all;
    for (const BacktestPoint& p : backtest) {
      const double e = guarded && p.actual <= SortedQuantile(windows[p.origin], q)
                           ? -std::numeric_limits<double>::infinity()
                           : (p.actual - p.point) / p.scale;
      errors[p.bucket].push_back(e);
      all.push_back(e);
    }
    std::sort(all.begin(), all.end());
    std::array<double, 4> band;
    for (int b = 0; b < 4; ++b) {
      std::sort(errors[b].begin(), errors[b].end());
      band[b] = conformal(errors[b].size() >= 30 ? errors[b] : all, q);
      if (!std::isfinite(band[b])) band[b] = -1e9;  // the guard alone covers q
    }
    return band;
  };

  // Every candidate (point model, with or without the guard) is calibrated on its own backtest;
  // the forecast comes from the one that over-provisions least there at the highest level.
  struct Candidate {
    std::vector<double> point;
    std::vector<BacktestPoint> backtest;
    bool guarded = false;
    double over_provisioning = 0;
  };
  std::vector<Candidate> candidates;
  const double top = ArchimedesCalibrationLevel(qs.back());
  std::vector<double> point;
  for (const SeasonalBaseline& model : models) {
    Candidate c;
    for (size_t o = 0; o < origins.size(); ++o) {
      if (!model.Forecast(origins[o], horizon, point)) continue;
      const double sd = stats.RangeStd(origins[o] - spread_steps, origins[o]);
      for (int h = 0; h < horizon; ++h) {
        const double actual = x[origins[o] + h];
        if (!std::isfinite(actual) || !std::isfinite(point[h])) continue;
        c.backtest.push_back(
            {bucket_of(h), o, point[h], std::max(point[h], floor) + 0.5 * sd, actual});
      }
    }
    if (c.backtest.size() < 30 || !model.Forecast(n, horizon, c.point)) continue;
    for (bool guarded : {false, true}) {
      c.guarded = guarded;
      const auto band = calibrate(c.backtest, top, guarded);
      double sum = 0;
      for (const BacktestPoint& p : c.backtest) {
        double v = p.point + band[p.bucket] * p.scale;
        if (guarded) v = std::max(v, SortedQuantile(windows[p.origin], top));
        sum += v / std::max(p.actual, floor);
      }
      c.over_provisioning = sum / static_cast<double>(c.backtest.size());
      candidates.push_back(c);
    }
  }
  if (candidates.empty()) return fallback_.Predict(history, horizon, qs);
  const Candidate& best = *std::min_element(
      candidates.begin(), candidates.end(),
      [](const Candidate& a, const Candidate& b) { return a.over_provisioning < b.over_provisioning; });

  const std::vector<double> window_n = last_hour(n);
  Forecast f = EmptyForecast(qs, horizon);
  for (size_t l = 0; l < qs.size(); ++l) {
    const double q = ArchimedesCalibrationLevel(qs[l]);
    const auto band = calibrate(best.backtest, q, best.guarded);
    const double guard =
        best.guarded ? SortedQuantile(window_n, q) : -std::numeric_limits<double>::infinity();
    for (int h = 0; h < horizon; ++h) {
      f.values[l][h] =
          std::max(guard, best.point[h] + band[bucket_of(h)] * error_scale(best.point[h], n));
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
