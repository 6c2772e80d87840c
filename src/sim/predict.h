#pragma once

#include <cstdint>
#include <iosfwd>
#include <map>
#include <string>
#include <vector>

#include "base/status.h"
#include "sim/trace.h"

namespace fulcrum::sim {

struct EvaluationOptions {
  int64_t step_seconds = 0;          // 0: each series' median reading interval
  int64_t horizon_seconds = 3600;
  double evaluated_fraction = 0.35;  // the later part of each series that is scored
  double floor_fraction = 0.1;       // over-provisioning divides by max(actual, this x mean)
  double level = 0.95;               // the quantile scored
  int64_t max_gap_seconds = 1800;    // longer gaps stay gaps (see Resample)
  std::vector<std::string> predictors = {};  // empty: every scheduler::PredictorNames()
};

struct PredictorScore {
  double under_prediction_rate = 0;  // share of scored points with actual > predicted quantile
  double over_provisioning = 0;      // mean of predicted quantile / max(actual, floor)
  double pinball_loss = 0;           // mean pinball loss at the level, over the series' mean
  int64_t points = 0;
};

// The scores of one series (its points only).
struct SeriesScores {
  std::string name;
  std::map<std::string, PredictorScore> scores;
  PredictorScore oracle;
};

struct Evaluation {
  std::map<std::string, PredictorScore> scores;
  std::string best;
  // Not a predictor but a reference that knows the future: for each forecast window, a flat
  // forecast at the `level` quantile of that window's own readings (the ceil(level x m)-th
  // smallest of its m readings), scored like the predictors. The least flat forecast that covers
  // `level` of every window; what a predictor would need to know the coming readings to match.
  PredictorScore oracle;
  std::vector<SeriesScores> per_series;  // in the order of the series, those with scored points
  int64_t series = 0;
};

// Walk-forward evaluation: for each series, resampled to the step, origins are placed every
// horizon over its last `evaluated_fraction`; at each origin every predictor is given all the
// samples before it, except that steps after the last reading before the origin are gaps (they
// were interpolated towards a later reading), and its forecast of the `level` quantile is scored
// against the steps of the horizon that hold a reading (interpolated steps and gaps are not
// scored). Scores pool every scored point of every series.
// BadRequest if a series cannot be resampled, no point could be scored, or a predictor name is
// unknown.
base::Result<Evaluation> EvaluatePredictors(const std::vector<TraceSeries>& series,
                                            const EvaluationOptions& options);

// The predictor with the least over-provisioning among those whose under-prediction rate is at
// most `max_under_prediction`; if none is, the one with the lowest under-prediction rate.
std::string BestPredictor(const std::map<std::string, PredictorScore>& scores,
                          double max_under_prediction = 0.05);

// `fulcrum sim ARGS...`: `predict --trace FILE_OR_DIR --format crane|azure|alibaba-machine
// [--horizon 1h] [--step 1m] [--predictors a,b] [--per-series]` writes one JSON object to `out`
// (with --per-series, also each series' scores under "series"), errors to
// `err`. Returns the process exit code (0 ok, 1 failure, 2 usage).
int RunSimCommand(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);
int RunSimCommand(int argc, char** argv);

// "90s", "15m", "1h", "2d" or plain seconds. BadRequest when not a positive duration.
base::Result<int64_t> ParseDuration(const std::string& text);

}  // namespace fulcrum::sim
