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

// Archimedes: candidate point forecasts (the recent level; for the detected period and for the day,
// the median of the same phase in past periods shifted by how far the last half hour sits from its
// own baseline, the shift fading after the first hour), each with a band calibrated on the
// history's own forecast errors (a walk-forward backtest over the last days, conformal quantiles
// per lead-time bucket, errors scaled either by the forecast plus the spread of the last two hours
// or by the mean of the day before the origin), with and without a guard (within the first hour,
// the band never below the same quantile of the last hour's samples). The forecast comes from the
// candidate that over-provisioned least in the backtest. Without enough history for a backtest it
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

// Archimedes calibrates its level-q band on the backtest at a level further into the tail: the
// tail beyond q (or below it, for q < 0.5) shrinks to kArchimedesTailShrink of its mass, so the
// p95 is calibrated to cover 96% of the backtest. A band calibrated on past errors covers less
// of the data that follows, as usage drifts; on the shared traces, calibrating at exactly q left
// 5.2-5.9% of points above the p95.
inline constexpr double kArchimedesTailShrink = 0.8;
double ArchimedesCalibrationLevel(double q);

}  // namespace fulcrum::scheduler
