#include "sim/trace.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>

namespace fulcrum::sim {
namespace {

TEST(CraneTrace, ParsesReadings) {
  auto s = ParseCraneTrace("ts,value\n100,1.5\r\n160,2\n\n220,2.5", "app.csv");
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->name, "app.csv");
  EXPECT_EQ(s->timestamps, (std::vector<int64_t>{100, 160, 220}));
  EXPECT_EQ(s->values, (std::vector<double>{1.5, 2, 2.5}));
}

TEST(CraneTrace, ErrorsNameTheFileAndLine) {
  auto s = ParseCraneTrace("ts,value\n100,1\n160,2\n220\n", "app3.csv");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().message(), "app3.csv:4: expected 2 fields, got 1");
  s = ParseCraneTrace("ts,value\n100,abc\n", "a.csv");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().message(), "a.csv:2: bad value \"abc\": expected a number");
  EXPECT_FALSE(ParseCraneTrace("ts,value\n100,\n", "a.csv").ok());      // empty, not zero
  EXPECT_FALSE(ParseCraneTrace("ts,value\n100,nan\n", "a.csv").ok());
  EXPECT_FALSE(ParseCraneTrace("ts,value\n1e3,1\n", "a.csv").ok());
  EXPECT_FALSE(ParseCraneTrace("", "a.csv").ok());
  EXPECT_FALSE(ParseCraneTrace("ts,value\n", "a.csv").ok());
  EXPECT_FALSE(ParseCraneTrace("100,1\n", "a.csv").ok());  // no header
}

TEST(AzureTrace, OneSeriesPerVmUsingAvg) {
  auto s = ParseAzureTrace(
      "timestamp,vm_id,min_cpu,max_cpu,avg_cpu\n0,a,1,9,5\n0,b,2,4,3\n300,a,1,7,6\n", "r.csv");
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  ASSERT_EQ(s->size(), 2u);
  EXPECT_EQ((*s)[0].name, "a");
  EXPECT_EQ((*s)[0].values, (std::vector<double>{5, 6}));
  EXPECT_EQ((*s)[1].values, (std::vector<double>{3}));
  auto max = ParseAzureTrace("timestamp,vm_id,min_cpu,max_cpu,avg_cpu\n0,a,1,9,5\n", "r.csv",
                             AzureColumn::kMax);
  ASSERT_TRUE(max.ok());
  EXPECT_EQ((*max)[0].values, (std::vector<double>{9}));
  auto bad = ParseAzureTrace("timestamp,vm_id,min_cpu,max_cpu,avg_cpu\n0,a,1,9\n", "r.csv");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(), "r.csv:2: expected 5 fields, got 4");
}

TEST(AlibabaMachineUsage, InvalidReadingsBecomeGaps) {
  auto s = ParseAlibabaMachineUsage(
      "m_1,10,41,92,,,43.04,33.08,5\n"
      "m_2,10,-1,92,,,1,1,1\n"
      "m_1,20,101,92,,,1,1,1\n"
      "m_1,30,,92,,,1,1,1\n"
      "m_1,40,44,93,,,1,1,1\n",
      "machine_usage.csv");
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  ASSERT_EQ(s->size(), 1u);  // m_2 has no valid reading
  EXPECT_EQ((*s)[0].timestamps, (std::vector<int64_t>{10, 40}));
  EXPECT_EQ((*s)[0].values, (std::vector<double>{41, 44}));
  auto bad = ParseAlibabaMachineUsage("m_1,10,41,92,,,43.04,33.08,5\nm_1,20,150,1,,,1,1,1\n",
                                      "mu.csv");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(), "mu.csv:2: cpu_util_percent 150 is outside 0..100");
  EXPECT_FALSE(ParseAlibabaMachineUsage("m_1,10,41\n", "mu.csv").ok());
}

TEST(AlibabaBatchTasks, ParsesAndValidates) {
  const std::string header =
      "task_create_time, task_end_time, job_id, task_id,number_of_instances, status, "
      "number_of_cpus_requested_per_instance_in_the_task,"
      "normalized_memory_requested_per_instance_in_the_task\n";
  auto t = ParseAlibabaBatchTasks(header + "6459,6524,3,4,15740,Terminated,50,0.0079\n"
                                           "6036,6046,4,7,393,Waiting,,\n", "bt.csv");
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  ASSERT_EQ(t->size(), 2u);
  EXPECT_EQ((*t)[0].instances, 15740);
  EXPECT_EQ((*t)[0].cpu_per_instance, 50);
  EXPECT_TRUE(std::isnan((*t)[1].cpu_per_instance));
  EXPECT_FALSE(ParseAlibabaBatchTasks(header + "6459,6524,3,4,1,Exploded,50,0.1\n", "b").ok());
  EXPECT_FALSE(ParseAlibabaBatchTasks(header + "6459,6000,3,4,-1,Terminated,50,0.1\n", "b").ok());
  EXPECT_FALSE(ParseAlibabaBatchTasks(header + "6459,6524,3,4,1,Terminated\n", "b").ok());
}

TEST(Resample, AveragesBucketsInterpolatesShortGapsAndKeepsLongOnes) {
  TraceSeries s{"s", {0, 30, 60, 240, 10000}, {1, 3, 4, 10, 7}};
  auto h = Resample(s, 60, 300);
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(h->start_unix_seconds, 0);
  ASSERT_EQ(h->samples.size(), 10000u / 60 + 1);
  EXPECT_EQ(h->samples[0], 2);   // mean of 1 and 3
  EXPECT_EQ(h->samples[1], 4);
  EXPECT_EQ(h->samples[2], 6);   // interpolated between 4 and 10
  EXPECT_EQ(h->samples[4], 10);
  EXPECT_TRUE(std::isnan(h->samples[5]));  // a gap of 2.7 hours stays a gap
  EXPECT_EQ(h->samples.back(), 7);
  EXPECT_FALSE(Resample(TraceSeries{"e", {}, {}}, 60).ok());
  EXPECT_FALSE(Resample(s, 0).ok());
  EXPECT_FALSE(Resample(TraceSeries{"w", {INT64_MIN, INT64_MAX}, {1, 2}}, 1).ok());
}

// The readers on the shared traces, which live outside the repository.
class SharedTraces : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* dir = std::getenv("FULCRUM_TRACES_DIR");
    if (dir == nullptr || !std::filesystem::is_directory(dir)) {
      GTEST_SKIP() << "shared traces not found (FULCRUM_TRACES_DIR="
                   << (dir ? dir : "unset") << "); expected ../shared/traces beside the checkout";
    }
    dir_ = dir;
  }
  std::string dir_;
};

TEST_F(SharedTraces, ReadEveryFormat) {
  auto crane = ReadTrace(dir_ + "/crane-app-cpu", TraceFormat::kCrane);
  ASSERT_TRUE(crane.ok()) << crane.status().ToString();
  EXPECT_EQ(crane->size(), 8u);
  EXPECT_EQ(MedianInterval((*crane)[0]), 60);
  auto azure = ReadTrace(dir_ + "/azure-vm-cpu", TraceFormat::kAzure);
  ASSERT_TRUE(azure.ok()) << azure.status().ToString();
  EXPECT_EQ(azure->size(), 20u);
  EXPECT_EQ(MedianInterval((*azure)[0]), 300);
  auto alibaba = ReadTrace(dir_ + "/alibaba-2018/machine_usage.csv", TraceFormat::kAlibabaMachine);
  ASSERT_TRUE(alibaba.ok()) << alibaba.status().ToString();
  EXPECT_EQ(alibaba->size(), 16u);
  auto text = std::filesystem::path(dir_) / "alibaba-2017" / "batch_task.csv";
  std::string contents;
  {
    FILE* f = std::fopen(text.c_str(), "rb");
    ASSERT_NE(f, nullptr);
    char buf[65536];
    size_t got;
    while ((got = std::fread(buf, 1, sizeof buf, f)) > 0) contents.append(buf, got);
    std::fclose(f);
  }
  auto tasks = ParseAlibabaBatchTasks(contents, "batch_task.csv");
  ASSERT_TRUE(tasks.ok()) << tasks.status().ToString();
  EXPECT_EQ(tasks->size(), 80553u);
}

}  // namespace
}  // namespace fulcrum::sim
