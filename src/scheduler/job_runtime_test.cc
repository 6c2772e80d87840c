#include "scheduler/job_runtime.h"

#include <gtest/gtest.h>

namespace fulcrum::scheduler {
namespace {

TEST(JobRuntimeTest, ParsesGoDurations) {
  auto seconds = [](const char* text) {
    auto r = ParseGoDurationSeconds(text);
    return r.ok() ? *r : -1;
  };
  EXPECT_EQ(seconds("30m"), 1800);
  EXPECT_EQ(seconds("1h30m"), 5400);
  EXPECT_EQ(seconds("1.5h"), 5400);
  EXPECT_EQ(seconds("90s"), 90);
  EXPECT_EQ(seconds("2h0m0s"), 7200);
  EXPECT_EQ(seconds("250ms"), 1);  // rounded up to whole seconds
  EXPECT_EQ(seconds("1m0.5s"), 61);
  EXPECT_EQ(seconds("1500000us"), 2);
  EXPECT_EQ(seconds("1\xc2\xb5s"), 1);  // µs
  for (const char* bad : {"", "30", "m", "1d", "-5m", "+5m", "0s", "0", "1h-5m", "5 m", "1e3s",
                          "1.h.", "9999999999999h"}) {
    auto r = ParseGoDurationSeconds(bad);
    EXPECT_FALSE(r.ok()) << bad;
    if (!r.ok()) {
      EXPECT_EQ(r.status().code(), base::Code::kInvalid);
      EXPECT_NE(r.status().message().find(std::string("\"") + bad + "\""), std::string::npos);
    }
  }
  EXPECT_EQ(FormatGoDuration(3600), "1h0m0s");
  EXPECT_EQ(FormatGoDuration(1800), "30m0s");
  EXPECT_EQ(FormatGoDuration(5461), "1h31m1s");
  EXPECT_EQ(FormatGoDuration(45), "45s");
  EXPECT_EQ(FormatGoDuration(0), "0s");
}

TEST(JobRuntimeTest, RunsOfOneWorkShareAKey) {
  EXPECT_EQ(RuntimeKey("batch/Job/crunch"), "batch/Job/crunch");
  EXPECT_EQ(RuntimeKey("batch/Job/report-28373940"), "batch/Job/report");  // a CronJob's Job
  EXPECT_EQ(RuntimeKey("batch/Job/crunch-2"), "batch/Job/crunch");
  EXPECT_EQ(RuntimeKey("batch/Job/etl-v2"), "batch/Job/etl-v2");
  EXPECT_EQ(RuntimeKey("batch/Job/x-"), "batch/Job/x-");
  EXPECT_EQ(RuntimeKey("batch/Job/-7"), "batch/Job/-7");  // nothing would be left of the name
  EXPECT_EQ(RuntimeKey("batch/Deployment/web-2"), "batch/Deployment/web-2");
  EXPECT_EQ(RuntimeKey("batch/Pod/run-1"), "batch/Pod/run-1");
  EXPECT_EQ(RuntimeKey("plain"), "plain");
}

TEST(JobRuntimeTest, EstimateIsAHighQuantileOfRecentRuns) {
  JobRuntimes runtimes;
  EXPECT_EQ(runtimes.Expected("batch/Job/report-1"), 0);  // nothing known: the caller's default
  runtimes.Record("batch/Job/report-1", 600);
  EXPECT_EQ(runtimes.Expected("batch/Job/report-2"), 600);  // the next run of the same work
  EXPECT_EQ(runtimes.Runs("batch/Job/report-2"), 1u);
  runtimes.Record("batch/Job/report-2", 0);  // not a run
  runtimes.Record("batch/Job/report-2", -30);
  EXPECT_EQ(runtimes.Runs("batch/Job/report"), 1u);
  // Ten runs of 100..1000 s: p90 by nearest rank is the 9th, 900 s; fewer than ten: the longest.
  JobRuntimes tens;
  for (int i = 1; i <= 9; ++i) tens.Record("a/Job/t", i * 100);
  EXPECT_EQ(tens.Expected("a/Job/t"), 900);
  tens.Record("a/Job/t", 1000);
  EXPECT_EQ(tens.Expected("a/Job/t"), 900);
  // Only the last 20 runs count: after 20 short runs the long ones are forgotten.
  for (int i = 0; i < 20; ++i) tens.Record("a/Job/t", 60);
  EXPECT_EQ(tens.Expected("a/Job/t"), 60);
  EXPECT_EQ(tens.Runs("a/Job/t"), 20u);
  JobRuntimes median(JobRuntimes::Options{5, 0.5});
  for (int v : {50, 10, 40, 20, 30}) median.Record("a/Job/m", v);
  EXPECT_EQ(median.Expected("a/Job/m"), 30);
}

}  // namespace
}  // namespace fulcrum::scheduler
