#include "sim/predict.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numbers>
#include <sstream>

namespace fulcrum::sim {
namespace {

TraceSeries DailySine(int days) {
  TraceSeries s{"sine", {}, {}};
  for (int64_t t = 0; t < days * 86400; t += 300) {
    s.timestamps.push_back(t);
    s.values.push_back(50 + 30 * std::sin(2 * std::numbers::pi * t / 86400) +
                       3 * std::sin(t * 0.37));  // deterministic wiggle
  }
  return s;
}

TEST(EvaluatePredictors, ScoresEveryPredictor) {
  auto e = EvaluatePredictors({DailySine(6)}, EvaluationOptions{});
  ASSERT_TRUE(e.ok()) << e.status().ToString();
  EXPECT_EQ(e->series, 1);
  ASSERT_EQ(e->scores.size(), 6u);
  const auto& a = e->scores.at("archimedes");
  EXPECT_GT(a.points, 500);
  EXPECT_LE(a.under_prediction_rate, 0.1);
  EXPECT_LT(a.over_provisioning, e->scores.at("decaying-percentile").over_provisioning);
  EXPECT_LT(a.over_provisioning, 1.2);
}

// Readings every 10 min alternating 10 and 20, resampled to 1 min. A forecast made one step before
// a reading must not see the steps interpolated towards that reading, and only readings are
// scored: last-value then predicts the previous reading, 20 for a 10 and 10 for a 20.
TEST(EvaluatePredictors, HistoryStopsAtTheLastReadingAndOnlyReadingsAreScored) {
  TraceSeries s{"sparse", {}, {}};
  for (int k = 0; k < 200; ++k) {
    s.timestamps.push_back(600 * k);
    s.values.push_back(k % 2 ? 20 : 10);
  }
  EvaluationOptions options;
  options.step_seconds = 60;
  options.horizon_seconds = 60;
  options.predictors = {"last-value"};
  auto e = EvaluatePredictors({s}, options);
  ASSERT_TRUE(e.ok()) << e.status().ToString();
  const auto& score = e->scores.at("last-value");
  EXPECT_EQ(score.points, 70);  // the readings in the last 35% of 1991 steps
  EXPECT_DOUBLE_EQ(score.under_prediction_rate, 0.5);
  EXPECT_NEAR(score.over_provisioning, (20.0 / 10 + 10.0 / 20) / 2, 1e-9);
}

// Readings every minute cycling 1, 2, ..., 20 and a 20-minute horizon: each window holds the
// twenty values once, so the oracle forecasts the 19th smallest (19: 95% of 20) for all of them,
// misses only the 20 and over-provisions by the mean of 19 / v.
TEST(EvaluatePredictors, OracleIsTheLeastFlatForecastCoveringTheLevelOfEachWindow) {
  TraceSeries s{"cycle", {}, {}};
  for (int k = 0; k < 2000; ++k) {
    s.timestamps.push_back(60 * k);
    s.values.push_back(1 + k % 20);
  }
  EvaluationOptions options;
  options.step_seconds = 60;
  options.horizon_seconds = 20 * 60;
  options.floor_fraction = 0;
  options.predictors = {"last-value"};
  auto e = EvaluatePredictors({s}, options);
  ASSERT_TRUE(e.ok()) << e.status().ToString();
  const PredictorScore& oracle = e->oracle;
  EXPECT_EQ(oracle.points, 700);  // 35 windows of the last 35% of 2000 steps
  EXPECT_DOUBLE_EQ(oracle.under_prediction_rate, 0.05);
  double ratio = 0;
  for (int v = 1; v <= 20; ++v) ratio += 19.0 / v / 20;
  EXPECT_NEAR(oracle.over_provisioning, ratio, 1e-9);
  EXPECT_EQ(e->scores.count("oracle"), 0u);  // a reference, never the best predictor
}

// Two series: each gets its own scores, and together they are the pooled ones.
TEST(EvaluatePredictors, ScoresEachSeries) {
  TraceSeries a = DailySine(4);
  a.name = "a";
  TraceSeries b = DailySine(3);
  b.name = "b";
  for (double& v : b.values) v *= 3;
  EvaluationOptions options;
  options.predictors = {"last-value", "decaying-percentile"};
  auto e = EvaluatePredictors({a, b}, options);
  ASSERT_TRUE(e.ok()) << e.status().ToString();
  ASSERT_EQ(e->per_series.size(), 2u);
  EXPECT_EQ(e->per_series[0].name, "a");
  EXPECT_EQ(e->per_series[1].name, "b");
  for (const std::string name : {"last-value", "decaying-percentile"}) {
    const PredictorScore& pooled = e->scores.at(name);
    const PredictorScore& first = e->per_series[0].scores.at(name);
    const PredictorScore& second = e->per_series[1].scores.at(name);
    EXPECT_GT(first.points, 0);
    EXPECT_GT(second.points, 0);
    EXPECT_EQ(first.points + second.points, pooled.points);
    const double total = static_cast<double>(pooled.points);
    EXPECT_NEAR(first.over_provisioning * static_cast<double>(first.points) / total +
                    second.over_provisioning * static_cast<double>(second.points) / total,
                pooled.over_provisioning, 1e-9);
  }
  EXPECT_EQ(e->per_series[0].oracle.points + e->per_series[1].oracle.points, e->oracle.points);
}

TEST(EvaluatePredictors, UnknownPredictorIsAnError) {
  EvaluationOptions options;
  options.predictors = {"oracle"};
  EXPECT_FALSE(EvaluatePredictors({DailySine(2)}, options).ok());
}

TEST(BestPredictor, LeastOverProvisioningWithinTheUnderPredictionBound) {
  std::map<std::string, PredictorScore> scores;
  scores["a"] = {0.01, 2.0, 0, 1};
  scores["b"] = {0.04, 1.5, 0, 1};
  scores["c"] = {0.20, 1.0, 0, 1};
  EXPECT_EQ(BestPredictor(scores), "b");
  scores["a"].under_prediction_rate = scores["b"].under_prediction_rate = 0.3;
  EXPECT_EQ(BestPredictor(scores), "c");
}

TEST(ParseDuration, Units) {
  EXPECT_EQ(*ParseDuration("90s"), 90);
  EXPECT_EQ(*ParseDuration("15m"), 900);
  EXPECT_EQ(*ParseDuration("1h"), 3600);
  EXPECT_EQ(*ParseDuration("2d"), 172800);
  EXPECT_EQ(*ParseDuration("45"), 45);
  EXPECT_FALSE(ParseDuration("").ok());
  EXPECT_FALSE(ParseDuration("1w").ok());
  EXPECT_FALSE(ParseDuration("-1h").ok());
  EXPECT_FALSE(ParseDuration("h").ok());
}

TEST(RunSimCommand, UsageErrors) {
  std::ostringstream out, err;
  EXPECT_EQ(RunSimCommand({}, out, err), 2);
  EXPECT_EQ(RunSimCommand({"predict", "--format", "crane"}, out, err), 2);
  EXPECT_EQ(RunSimCommand({"predict", "--trace", "x", "--format", "csv"}, out, err), 2);
  EXPECT_EQ(RunSimCommand({"predict", "--trace", "/nonexistent", "--format", "crane"}, out, err),
            1);
  EXPECT_EQ(RunSimCommand({"bogus"}, out, err), 2);
  EXPECT_EQ(
      RunSimCommand({"predict", "--trace", "x", "--format", "crane", "--per-series=1"}, out, err),
      2);
  EXPECT_TRUE(out.str().empty());
}

TEST(RunSimCommand, PerSeriesAddsEachSeriesScores) {
  auto dir = std::filesystem::temp_directory_path() / "fulcrum_predict_per_series";
  std::filesystem::create_directories(dir);
  for (const char* name : {"a.csv", "b.csv"}) {
    std::ofstream f(dir / name);
    f << "ts,value\n";
    const TraceSeries s = DailySine(3);
    for (size_t i = 0; i < s.values.size(); ++i) f << s.timestamps[i] << "," << s.values[i] << "\n";
  }
  std::ostringstream out, err;
  // A bare --per-series must not take the next flag as its value.
  ASSERT_EQ(RunSimCommand({"predict", "--per-series", "--trace", dir.string(), "--format", "crane",
                           "--predictors", "last-value"},
                          out, err),
            0)
      << err.str();
  auto j = nlohmann::json::parse(out.str());
  ASSERT_EQ(j["series"].size(), 2u);
  EXPECT_EQ(j["series"][0]["name"], "a.csv");
  EXPECT_TRUE(j["series"][1]["predictors"].contains("last-value"));
  EXPECT_TRUE(j["series"][1]["oracle"].contains("over_provisioning"));
  std::ostringstream plain;
  ASSERT_EQ(RunSimCommand({"predict", "--trace", dir.string(), "--format", "crane", "--predictors",
                           "last-value"},
                          plain, err),
            0);
  EXPECT_FALSE(nlohmann::json::parse(plain.str()).contains("series"));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace fulcrum::sim
