#include "scheduler/batch_resources.h"

#include <gtest/gtest.h>

namespace fulcrum::scheduler {
namespace {

using base::Json;
using namespace std::chrono_literals;

TEST(BatchResourcesTest, ReadFromAndPatchedIntoNodeStatus) {
  Json node = {{"status", {{"allocatable", {{"cpu", "2"}, {"memory", "8Gi"}}}}}};
  EXPECT_FALSE(BatchResourcesOf(node).has_value());
  EXPECT_FALSE(BatchResourcesOf(Json::object()).has_value());
  Json patch = BatchResourcesPatch({1180, int64_t{6} << 30});
  EXPECT_EQ(patch["status"]["allocatable"]["kubernetes.io/batch-cpu"], "1180");
  EXPECT_EQ(patch["status"]["allocatable"]["kubernetes.io/batch-memory"], "6442450944");
  EXPECT_EQ(patch["status"]["capacity"], patch["status"]["allocatable"]);
  EXPECT_EQ(patch["status"].size(), 2u);  // nothing else of the status is touched
  node["status"]["allocatable"].update(patch["status"]["allocatable"]);
  auto read = BatchResourcesOf(node);
  ASSERT_TRUE(read.has_value());
  EXPECT_EQ(*read, (BatchResources{1180, int64_t{6} << 30}));
  // Never negative on the Node: a policy that has nothing to lend publishes 0.
  EXPECT_EQ(BatchResourcesPatch({-5, -1})["status"]["allocatable"]["kubernetes.io/batch-cpu"], "0");
}

TEST(BatchResourcesTest, WritesOnlyChangesBeyondTheThresholdOrAfterMaxAge) {
  BatchResourcePublisher publisher(nullptr);
  base::WallTime t0 = base::WallTime{} + 1795773600s;
  auto due = [&](int64_t cpu, int64_t memory, base::WallTime now) {
    return publisher.Due({{"n", BatchResources{cpu, memory}}}, now).size() == 1;
  };
  EXPECT_TRUE(due(1000, 4000, t0));        // nothing published yet
  EXPECT_FALSE(due(1000, 4000, t0 + 1s));  // the same
  EXPECT_FALSE(due(1090, 4000, t0 + 2s));  // +9%: not worth a write
  EXPECT_FALSE(due(910, 3700, t0 + 3s));   // -9%, -7.5%
  EXPECT_TRUE(due(1110, 4000, t0 + 4s));   // +11% of what was published (1000)
  EXPECT_TRUE(due(1110, 3500, t0 + 5s));   // memory -12.5%
  EXPECT_FALSE(due(1111, 3500, t0 + 6s));
  EXPECT_TRUE(due(1111, 3500, t0 + 5s + 300s));   // moved a little, and the last write is 300 s old
  EXPECT_FALSE(due(1111, 3500, t0 + 5s + 900s));  // not moved: no write however old
  EXPECT_TRUE(due(0, 3500, t0 + 901s));
  EXPECT_FALSE(due(0, 3500, t0 + 902s));  // 0 stays 0
  EXPECT_TRUE(due(1, 3500, t0 + 903s));   // anything above 0 is more than 10% of 0

  // A node is forgotten when it goes, and when a write fails: written again at the next Due.
  publisher.Forget("n");
  EXPECT_TRUE(due(1, 3500, t0 + 904s));
  publisher.Failed("n");
  EXPECT_TRUE(due(1, 3500, t0 + 905s));

  // What the API holds is taken as published when there is no record (a restarted scheduler
  // does not rewrite every node); a node that lost its keys is written again.
  BatchResourcePublisher restarted(nullptr);
  Json node = {{"status", BatchResourcesPatch({1000, 4000})["status"]}};
  restarted.Seen("n", node, t0);
  EXPECT_TRUE(restarted.Due({{"n", {1050, 4000}}}, t0 + 1s).empty());
  restarted.Seen("n", Json{{"status", {{"allocatable", {{"cpu", "2"}}}}}}, t0 + 2s);
  EXPECT_EQ(restarted.Due({{"n", {1050, 4000}}}, t0 + 3s).size(), 1u);
  // Its own write's echo (an informer event) changes nothing.
  restarted.Seen("n", Json{{"status", BatchResourcesPatch({1050, 4000})["status"]}}, t0 + 4s);
  EXPECT_TRUE(restarted.Due({{"n", {1050, 4000}}}, t0 + 5s).empty());
}

}  // namespace
}  // namespace fulcrum::scheduler
