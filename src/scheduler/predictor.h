#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace fulcrum::scheduler {

// A usage series sampled at a fixed step. A missing sample (a gap in the source) is NaN; every
// predictor skips NaNs rather than reading them as zero.
struct UsageHistory {
  int64_t start_unix_seconds = 0;  // timestamp of samples[0]
  int64_t step_seconds = 60;
  std::vector<double> samples;
};

// Quantile forecasts over `horizon` steps following the last sample of the history.
// values[i][h] is the forecast of quantile levels[i] for step h + 1 after the history ends.
// Levels are ascending, and for every h values[i][h] <= values[i + 1][h].
struct Forecast {
  std::vector<double> levels;
  std::vector<std::vector<double>> values;

  // The row of the level closest to `level` (levels must not be empty).
  const std::vector<double>& Quantile(double level) const;
};

inline const std::vector<double> kDefaultLevels = {0.5, 0.95};

// History in, forecast with quantiles out. Implementations are pure functions of their input and
// options (no clock, no state between calls) and are safe to call from several threads.
class Predictor {
 public:
  virtual ~Predictor() = default;

  // Forecasts `horizon` steps. `levels` must be non-empty with every level in (0, 1); they are
  // returned sorted and deduplicated. Invalid when the history has no finite sample, the step is
  // not positive, the horizon is not positive or a level is out of range.
  virtual base::Result<Forecast> Predict(const UsageHistory& history, int horizon,
                                         const std::vector<double>& levels = kDefaultLevels)
      const = 0;

  virtual std::string name() const = 0;
};

struct PredictorOptions {
  int64_t window_seconds = 24 * 3600;       // moving-window-max
  double half_life_seconds = 12 * 3600.0;   // decaying-percentile (Autopilot's CPU half-life)
  int64_t slot_seconds = 15 * 60;           // seasonal: width of a time-of-day slot
};

// Names: last-value, moving-window-max, decaying-percentile, seasonal, fft, archimedes.
// NotFound for any other name.
base::Result<std::unique_ptr<Predictor>> MakePredictor(std::string_view name,
                                                       const PredictorOptions& options = {});

// All the names MakePredictor accepts, baselines first and archimedes last.
std::vector<std::string> PredictorNames();

// The dominant period of the series in steps, found from its autocorrelation (computed by FFT on
// a series averaged down to at most a few thousand points, then refined at full resolution).
// 0 when there is no period whose autocorrelation reaches `min_correlation` or when the series is
// shorter than two periods of any candidate.
int DetectPeriod(const std::vector<double>& samples, double min_correlation = 0.3);

}  // namespace fulcrum::scheduler
