#include "controllers/workload.h"

#include <gtest/gtest.h>

#include "controllers/deployment_controller.h"
#include "controllers/job_controller.h"

namespace fulcrum::controllers {
namespace {

ObjectPtr Pod(const std::string& name, const std::string& node, const std::string& phase, bool ready,
              int restarts, const std::string& created) {
  Json p = {{"metadata", {{"name", name}, {"creationTimestamp", created}}},
            {"spec", {{"nodeName", node}}},
            {"status",
             {{"phase", phase},
              {"conditions", {{{"type", "Ready"}, {"status", ready ? "True" : "False"}}}},
              {"containerStatuses", {{{"restartCount", restarts}}}}}}};
  return std::make_shared<const Json>(std::move(p));
}

TEST(WorkloadTest, DeletionOrderFollowsKubernetes) {
  std::vector<ObjectPtr> pods = {
      Pod("running-ready-old", "n", "Running", true, 0, "2025-01-01T00:00:00Z"),
      Pod("running-ready-new", "n", "Running", true, 0, "2025-01-02T00:00:00Z"),
      Pod("unscheduled", "", "Pending", false, 0, "2025-01-01T00:00:00Z"),
      Pod("pending", "n", "Pending", false, 0, "2025-01-01T00:00:00Z"),
      Pod("running-not-ready", "n", "Running", false, 0, "2025-01-01T00:00:00Z"),
      Pod("restarting", "n", "Running", true, 5, "2025-01-01T00:00:00Z"),
  };
  SortForDeletion(pods);
  std::vector<std::string> names;
  for (const auto& p : pods) names.push_back((*p)["metadata"]["name"]);
  EXPECT_EQ(names, (std::vector<std::string>{"unscheduled", "pending", "running-not-ready",
                                             "restarting", "running-ready-new", "running-ready-old"}));
}

TEST(WorkloadTest, PodStates) {
  Json pod = *Pod("p", "n", "Running", true, 0, "2025-01-01T00:00:00Z");
  EXPECT_TRUE(IsPodActive(pod));
  EXPECT_TRUE(IsPodReady(pod));
  pod["status"]["conditions"][0]["lastTransitionTime"] = "2025-01-01T00:00:00Z";
  base::WallTime t;
  ASSERT_TRUE(base::ParseRfc3339("2025-01-01T00:00:05Z", &t));
  EXPECT_TRUE(IsPodAvailable(pod, 5, t));
  EXPECT_FALSE(IsPodAvailable(pod, 6, t));
  pod["metadata"]["deletionTimestamp"] = "2025-01-01T00:00:00Z";
  EXPECT_FALSE(IsPodActive(pod));
  Json evicted = {{"status", {{"phase", "Failed"}, {"reason", "Evicted"}}}};
  EXPECT_TRUE(IsDisrupted(evicted));
  EXPECT_FALSE(IsDisrupted(Json{{"status", {{"phase", "Failed"}}}}));
}

TEST(WorkloadTest, IntOrPercentAndHash) {
  EXPECT_EQ(ScaledValue(Json("25%"), 10, true), 3);
  EXPECT_EQ(ScaledValue(Json("25%"), 10, false), 2);
  EXPECT_EQ(ScaledValue(Json(4), 10, false), 4);
  EXPECT_EQ(ScaledValue(Json("x%"), 10, false), 0);
  Json tmpl = {{"spec", {{"containers", {{{"name", "a"}, {"image", "x"}}}}}}};
  std::string h = PodTemplateHash(tmpl, 0);
  EXPECT_EQ(h, PodTemplateHash(tmpl, 0));
  EXPECT_NE(h, PodTemplateHash(tmpl, 1));
  EXPECT_EQ(h.find_first_of("aeiou013"), std::string::npos) << h;
}

TEST(RollingUpdateTest, SurgesThenScalesDownOldAsNewBecomeAvailable) {
  // 4 replicas, maxSurge 1, maxUnavailable 0: one new pod at a time.
  RolloutStep s = PlanRollingUpdate(4, 1, 0, {0, 0}, {{4, 4}});
  EXPECT_EQ(s.new_replicas, 1);
  EXPECT_EQ(s.old_replicas, std::vector<int64_t>{4}) << "nothing new is available yet";
  s = PlanRollingUpdate(4, 1, 0, {1, 1}, {{4, 4}});
  EXPECT_EQ(s.old_replicas, std::vector<int64_t>{3});
  s = PlanRollingUpdate(4, 1, 0, {1, 1}, {{3, 3}});
  EXPECT_EQ(s.new_replicas, 2);
  s = PlanRollingUpdate(4, 1, 0, {4, 4}, {{0, 0}});
  EXPECT_EQ(s.new_replicas, 4);
  EXPECT_EQ(s.old_replicas, std::vector<int64_t>{0});
}

TEST(RollingUpdateTest, UnavailableOldPodsGoFirstAndBudgetHolds) {
  // 10 replicas, 25%/25%: surge 3, unavailable 2.
  RolloutStep s = PlanRollingUpdate(10, 3, 2, {0, 0}, {{10, 10}});
  EXPECT_EQ(s.new_replicas, 3);
  EXPECT_EQ(s.old_replicas, std::vector<int64_t>{10}) << "a step that scales up does only that";
  s = PlanRollingUpdate(10, 3, 2, {3, 0}, {{10, 10}});
  EXPECT_EQ(s.new_replicas, 3);
  EXPECT_EQ(s.old_replicas, std::vector<int64_t>{8});
  // Old pods that are not available are removed before available ones.
  s = PlanRollingUpdate(10, 3, 2, {5, 5}, {{8, 5}});
  EXPECT_EQ(s.new_replicas, 5);
  EXPECT_EQ(s.old_replicas, std::vector<int64_t>{3});
  // Never below minAvailable = 8 available pods.
  s = PlanRollingUpdate(10, 3, 2, {3, 3}, {{7, 7}});
  int64_t available_after = 3 + std::min<int64_t>(7, s.old_replicas[0]);
  EXPECT_GE(available_after, 8);
}

}  // namespace
}  // namespace fulcrum::controllers
