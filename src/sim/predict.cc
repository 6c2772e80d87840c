#include "sim/predict.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <iostream>
#include <limits>
#include <nlohmann/json.hpp>

#include "scheduler/predictor.h"

namespace fulcrum::sim {
namespace {

using base::BadRequest;
using base::Result;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

struct Accumulator {
  int64_t points = 0;
  int64_t under = 0;
  double ratio_sum = 0;
  double pinball_sum = 0;

  // What was added since `before`, an earlier state of this accumulator.
  Accumulator Since(const Accumulator& before) const {
    return {points - before.points, under - before.under, ratio_sum - before.ratio_sum,
            pinball_sum - before.pinball_sum};
  }

  PredictorScore Score() const {
    PredictorScore score;
    score.points = points;
    score.under_prediction_rate = static_cast<double>(under) / static_cast<double>(points);
    score.over_provisioning = ratio_sum / static_cast<double>(points);
    score.pinball_loss = pinball_sum / static_cast<double>(points);
    return score;
  }
};

constexpr char kUsage[] =
    "usage: fulcrum sim predict --trace FILE_OR_DIR --format crane|azure|alibaba-machine\n"
    "                           [--horizon 1h] [--step 1m] [--predictors NAME,NAME...]\n"
    "                           [--per-series]\n";

double Round(double v) { return std::round(v * 1e6) / 1e6; }

nlohmann::ordered_json ScoreJson(const PredictorScore& s) {
  return {{"under_prediction_rate", Round(s.under_prediction_rate)},
          {"over_provisioning", Round(s.over_provisioning)},
          {"pinball_loss", Round(s.pinball_loss)}};
}

}  // namespace

Result<int64_t> ParseDuration(const std::string& text) {
  int64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  std::string_view unit(end, text.data() + text.size() - end);
  int64_t scale = unit.empty() || unit == "s" ? 1 : unit == "m" ? 60 : unit == "h" ? 3600
                  : unit == "d" ? 86400 : 0;
  if (ec != std::errc() || end == text.data() || scale == 0 || value <= 0 ||
      value > INT64_MAX / scale / 1000) {
    return BadRequest("bad duration \"" + text + "\" (expected e.g. 90s, 15m, 1h, 2d)");
  }
  return value * scale;
}

std::string BestPredictor(const std::map<std::string, PredictorScore>& scores,
                          double max_under_prediction) {
  std::string best;
  for (const auto& [name, s] : scores) {
    if (s.under_prediction_rate > max_under_prediction) continue;
    if (best.empty() || s.over_provisioning < scores.at(best).over_provisioning) best = name;
  }
  if (!best.empty()) return best;
  for (const auto& [name, s] : scores) {
    if (best.empty() || s.under_prediction_rate < scores.at(best).under_prediction_rate) best = name;
  }
  return best;
}

Result<Evaluation> EvaluatePredictors(const std::vector<TraceSeries>& series,
                                      const EvaluationOptions& options) {
  std::vector<std::string> names =
      options.predictors.empty() ? scheduler::PredictorNames() : options.predictors;
  std::vector<std::unique_ptr<scheduler::Predictor>> predictors;
  for (const auto& name : names) {
    ASSIGN_OR_RETURN(auto p, scheduler::MakePredictor(name));
    predictors.push_back(std::move(p));
  }
  if (!(options.evaluated_fraction > 0 && options.evaluated_fraction < 1)) {
    return BadRequest("evaluated fraction must be in (0, 1)");
  }
  const std::vector<double> levels = {0.5, options.level};
  std::vector<Accumulator> acc(predictors.size());
  Accumulator oracle;
  std::vector<double> window;
  Evaluation evaluation;
  for (const auto& s : series) {
    const std::vector<Accumulator> acc_before = acc;
    const Accumulator oracle_before = oracle;
    const int64_t step = options.step_seconds > 0 ? options.step_seconds : MedianInterval(s);
    ASSIGN_OR_RETURN(scheduler::UsageHistory full, Resample(s, step, options.max_gap_seconds));
    const int horizon = static_cast<int>(std::max<int64_t>(1, options.horizon_seconds / step));
    const auto& x = full.samples;
    const size_t n = x.size();
    double sum = 0;
    size_t count = 0;
    for (double v : x) {
      if (std::isfinite(v)) sum += std::abs(v), ++count;
    }
    if (count == 0) continue;
    const double mean = sum / static_cast<double>(count);
    const double floor = std::max(1e-9, options.floor_fraction * mean);
    const double scale = std::max(mean, 1e-9);
    ++evaluation.series;
    // Steps that hold a reading; the others were interpolated between readings around them.
    std::vector<char> observed(n, 0);
    for (int64_t t : s.timestamps) {
      const int64_t k = (t - full.start_unix_seconds) / step;
      if (k >= 0 && k < static_cast<int64_t>(n)) observed[k] = 1;
    }
    scheduler::UsageHistory history;
    history.start_unix_seconds = full.start_unix_seconds;
    history.step_seconds = step;
    for (size_t origin = static_cast<size_t>(static_cast<double>(n) *
                                             (1 - options.evaluated_fraction));
         origin < n; origin += horizon) {
      if (origin == 0) continue;
      bool any_actual = false;
      for (size_t t = origin; t < std::min(n, origin + horizon); ++t) {
        any_actual |= observed[t] && std::isfinite(x[t]);
      }
      if (!any_actual) continue;
      history.samples.assign(x.begin(), x.begin() + origin);
      // Steps after the last reading before the origin were interpolated towards a reading the
      // predictor must not see yet: they are gaps in its history.
      for (size_t t = origin; t-- > 0 && !observed[t];) history.samples[t] = kNaN;
      if (std::none_of(history.samples.begin(), history.samples.end(),
                       [](double v) { return std::isfinite(v); })) {
        continue;
      }
      // Scores a forecast of the window's `level` quantile against its readings (interpolated
      // steps and gaps are not actuals).
      auto score_window = [&](Accumulator& a, auto&& predicted_at) {
        for (int h = 0; h < horizon && origin + h < n; ++h) {
          const double actual = x[origin + h];
          if (!observed[origin + h] || !std::isfinite(actual)) continue;
          const double predicted = predicted_at(h);
          ++a.points;
          a.under += actual > predicted;
          a.ratio_sum += predicted / std::max(actual, floor);
          const double diff = actual - predicted;
          a.pinball_sum += std::max(options.level * diff, (options.level - 1) * diff) / scale;
        }
      };
      for (size_t p = 0; p < predictors.size(); ++p) {
        auto forecast = predictors[p]->Predict(history, horizon, levels);
        if (!forecast.ok()) {
          return BadRequest(s.name + ": " + names[p] + ": " + forecast.status().message());
        }
        const auto& upper = forecast->Quantile(options.level);
        score_window(acc[p], [&](int h) { return upper[h]; });
      }
      // The oracle reads the window's readings before they happen: the least flat forecast
      // that covers `level` of them.
      window.clear();
      for (int h = 0; h < horizon && origin + h < n; ++h) {
        if (observed[origin + h] && std::isfinite(x[origin + h])) window.push_back(x[origin + h]);
      }
      std::sort(window.begin(), window.end());
      const size_t rank =
          static_cast<size_t>(std::ceil(options.level * static_cast<double>(window.size()) - 1e-9));
      const double band = window[std::clamp<size_t>(rank, 1, window.size()) - 1];
      score_window(oracle, [band](int) { return band; });
    }
    const Accumulator own = oracle.Since(oracle_before);
    if (own.points == 0) continue;
    SeriesScores& scores = evaluation.per_series.emplace_back();
    scores.name = s.name;
    scores.oracle = own.Score();
    for (size_t p = 0; p < predictors.size(); ++p) {
      scores.scores[names[p]] = acc[p].Since(acc_before[p]).Score();
    }
  }
  if (oracle.points == 0) return BadRequest("no point of the trace could be scored (too short?)");
  for (size_t p = 0; p < predictors.size(); ++p) evaluation.scores[names[p]] = acc[p].Score();
  evaluation.oracle = oracle.Score();
  evaluation.best = BestPredictor(evaluation.scores);
  return evaluation;
}

int RunSimCommand(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  if (args.empty() || args[0] == "-h" || args[0] == "--help") {
    (args.empty() ? err : out) << kUsage;
    return args.empty() ? 2 : 0;
  }
  if (args[0] != "predict") {
    err << "fulcrum sim: unknown subcommand " << args[0] << "\n" << kUsage;
    return 2;
  }
  std::map<std::string, std::string> flags;
  for (size_t i = 1; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "-h" || arg == "--help") {
      out << kUsage;
      return 0;
    }
    if (!arg.starts_with("--")) {
      err << "fulcrum sim predict: unexpected argument " << arg << "\n" << kUsage;
      return 2;
    }
    std::string name = arg.substr(2), value;
    if (size_t eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name.resize(eq);
    } else if (name == "per-series") {
      value = "true";
    } else if (i + 1 < args.size()) {
      value = args[++i];
    } else {
      err << "fulcrum sim predict: --" << name << " needs a value\n" << kUsage;
      return 2;
    }
    if (name != "trace" && name != "format" && name != "horizon" && name != "step" &&
        name != "predictors" && name != "per-series") {
      err << "fulcrum sim predict: unknown flag --" << name << "\n" << kUsage;
      return 2;
    }
    flags[name] = value;
  }
  if (!flags.count("trace") || !flags.count("format")) {
    err << "fulcrum sim predict: --trace and --format are required\n" << kUsage;
    return 2;
  }
  const bool per_series = flags.count("per-series") && flags["per-series"] != "false";
  if (per_series && flags["per-series"] != "true") {
    err << "fulcrum sim predict: --per-series takes no value (or true/false)\n" << kUsage;
    return 2;
  }
  EvaluationOptions options;
  auto format = ParseTraceFormat(flags["format"]);
  if (!format.ok()) {
    err << "fulcrum sim predict: " << format.status().message() << "\n";
    return 2;
  }
  for (const char* name : {"horizon", "step"}) {
    if (!flags.count(name)) continue;
    auto seconds = ParseDuration(flags[name]);
    if (!seconds.ok()) {
      err << "fulcrum sim predict: --" << name << ": " << seconds.status().message() << "\n";
      return 2;
    }
    (std::string(name) == "horizon" ? options.horizon_seconds : options.step_seconds) = *seconds;
  }
  if (flags.count("predictors")) {
    std::string list = flags["predictors"];
    for (size_t start = 0; start <= list.size();) {
      size_t comma = std::min(list.find(',', start), list.size());
      if (comma > start) options.predictors.push_back(list.substr(start, comma - start));
      start = comma + 1;
    }
  }
  auto series = ReadTrace(flags["trace"], *format);
  if (!series.ok()) {
    err << "fulcrum sim predict: " << series.status().message() << "\n";
    return 1;
  }
  auto evaluation = EvaluatePredictors(*series, options);
  if (!evaluation.ok()) {
    err << "fulcrum sim predict: " << evaluation.status().message() << "\n";
    return 1;
  }
  nlohmann::ordered_json j;
  j["trace"] = flags["trace"];
  j["predictors"] = nlohmann::ordered_json::object();
  std::vector<std::string> order =
      options.predictors.empty() ? scheduler::PredictorNames() : options.predictors;
  for (const auto& name : order) {
    j["predictors"][name] = ScoreJson(evaluation->scores.at(name));
  }
  j["best"] = evaluation->best;
  j["oracle"] = ScoreJson(evaluation->oracle);
  if (per_series) {
    j["series"] = nlohmann::ordered_json::array();
    for (const SeriesScores& s : evaluation->per_series) {
      nlohmann::ordered_json one = {{"name", s.name}, {"points", s.oracle.points}};
      one["predictors"] = nlohmann::ordered_json::object();
      for (const auto& name : order) one["predictors"][name] = ScoreJson(s.scores.at(name));
      one["oracle"] = ScoreJson(s.oracle);
      j["series"].push_back(std::move(one));
    }
  }
  out << j.dump() << "\n";
  return 0;
}

int RunSimCommand(int argc, char** argv) {
  std::vector<std::string> args(argv, argv + argc);
  return RunSimCommand(args, std::cout, std::cerr);
}

}  // namespace fulcrum::sim
