#pragma once

// Private to fulcrum_scheduler: the implementations behind MakePredictor().

#include "scheduler/predictor.h"

namespace fulcrum::scheduler {

// The last finite sample, for every level and every step.
class LastValuePredictor : public Predictor {
 public:
  // Predictor
  base::Result<Forecast> Predict(const UsageHistory& history, int horizon,
                                 const std::vector<double>& levels) const override;
  std::string name() const override { return "last-value"; }
};

// The peak of the trailing window for levels >= 0.95; lower levels are the window's empirical
// quantiles. Flat over the horizon.
class MovingWindowMaxPredictor : public Predictor {
 public:
  explicit MovingWindowMaxPredictor(int64_t window_seconds) : window_seconds_(window_seconds) {}
  // Predictor
  base::Result<Forecast> Predict(const UsageHistory& history, int horizon,
                                 const std::vector<double>& levels) const override;
  std::string name() const override { return "moving-window-max"; }

 private:
  int64_t window_seconds_;
};

// Google Autopilot's recommender (also VPA's and Koordinator's): each sample weighs
// 2^(-age / half_life); the forecast of level q is the q-quantile of the weighted distribution,
// flat over the horizon.
class DecayingPercentilePredictor : public Predictor {
 public:
  explicit DecayingPercentilePredictor(double half_life_seconds)
      : half_life_seconds_(half_life_seconds) {}
  // Predictor
  base::Result<Forecast> Predict(const UsageHistory& history, int horizon,
                                 const std::vector<double>& levels) const override;
  std::string name() const override { return "decaying-percentile"; }

 private:
  double half_life_seconds_;
};

// A profile by time of day (and by day of week once the history spans two weeks): the forecast of
// a future step is the empirical quantile of the history's samples in the same slot.
class SeasonalPredictor : public Predictor {
 public:
  explicit SeasonalPredictor(int64_t slot_seconds) : slot_seconds_(slot_seconds) {}
  // Predictor
  base::Result<Forecast> Predict(const UsageHistory& history, int horizon,
                                 const std::vector<double>& levels) const override;
  std::string name() const override { return "seasonal"; }

 private:
  int64_t slot_seconds_;
};

// Crane's DSP idea: find the period from the autocorrelation (by FFT), then forecast each step
// from the samples at the same phase of the past periods. Without a period it falls back to the
// decaying percentile.
class FftPredictor : public Predictor {
 public:
  explicit FftPredictor(const PredictorOptions& options) : fallback_(options.half_life_seconds) {}
  // Predictor
  base::Result<Forecast> Predict(const UsageHistory& history, int horizon,
                                 const std::vector<double>& levels) const override;
  std::string name() const override { return "fft"; }

 private:
  DecayingPercentilePredictor fallback_;
};

// Archimedes: a seasonal baseline at the detected period (recent periods weigh more), shifted by
// how far the last half hour sits above or below its own baseline, and a band from the empirical
// quantiles of the history's own forecast errors (a walk-forward backtest over the last days of
// the history, errors scaled by the forecast level plus the spread of the last two hours).
// Without a period the baseline is the recent level; with too little history for a backtest it
// falls back to the decaying percentile.
class ArchimedesPredictor : public Predictor {
 public:
  explicit ArchimedesPredictor(const PredictorOptions& options)
      : fallback_(options.half_life_seconds) {}
  // Predictor
  base::Result<Forecast> Predict(const UsageHistory& history, int horizon,
                                 const std::vector<double>& levels) const override;
  std::string name() const override { return "archimedes"; }

 private:
  DecayingPercentilePredictor fallback_;
};

}  // namespace fulcrum::scheduler
