// The scheduling loop against a real API server in this process; nodes are API objects only.
#include "scheduler/live_scheduler.h"

#include <gtest/gtest.h>

#include <thread>

#include "client/test_server.h"

namespace fulcrum::scheduler {
namespace {

using client::Eventually;

using base::Json;
using client::ResourcePath;
using namespace std::chrono_literals;

class LiveSchedulerTest : public ::testing::Test {
 protected:
  client::ApiClient& api() { return server_.client(); }

  void AddNode(const std::string& name, const std::string& cpu, Json taints = Json::array(),
               Json labels = Json::object()) {
    labels["kubernetes.io/hostname"] = name;
    Json node = {{"metadata", {{"name", name}, {"labels", labels}}}, {"spec", {{"taints", taints}}}};
    ASSERT_TRUE(api().Create(ResourcePath("v1", "nodes"), node).ok());
    Json status = {{"status",
                    {{"allocatable", {{"cpu", cpu}, {"memory", "8Gi"}, {"pods", "110"}}},
                     {"capacity", {{"cpu", cpu}, {"memory", "8Gi"}, {"pods", "110"}}},
                     {"conditions", {{{"type", "Ready"}, {"status", "True"}}}}}}};
    auto r = api().Patch(ResourcePath("v1", "nodes", "", name, "status"), client::PatchType::kMerge, status);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
  }

  void AddPod(const std::string& name, const std::string& cpu, Json extra_spec = Json::object(),
              int priority = 0) {
    Json pod = {{"metadata", {{"name", name}, {"labels", {{"app", name}}}}},
                {"spec",
                 {{"containers",
                   {{{"name", "c"}, {"image", "x"}, {"resources", {{"requests", {{"cpu", cpu}}}}}}}}}}};
    pod["spec"].update(extra_spec);
    if (priority != 0) pod["spec"]["priority"] = priority;
    auto r = api().Create(ResourcePath("v1", "pods", "default"), pod);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
  }

  std::string NodeOf(const std::string& pod) {
    auto got = api().Get(ResourcePath("v1", "pods", "default", pod));
    return got.ok() ? base::StringAt(*got, {"spec", "nodeName"}) : "<gone>";
  }

  std::string FailedSchedulingMessage(const std::string& pod) {
    auto events = api().Get(ResourcePath("v1", "events", "default"));
    if (!events.ok()) return "";
    for (const Json& e : (*events)["items"]) {
      if (e["reason"] == "FailedScheduling" && e["involvedObject"]["name"] == pod) return e["message"];
    }
    return "";
  }

  void Start(const std::string& policy = "requests") {
    LiveSchedulerOptions options;
    options.policy = policy;
    auto s = StartLiveScheduler(&api(), base::RealClock(), options);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    scheduler_ = std::move(*s);
  }
  void TearDown() override {
    if (scheduler_) scheduler_->Stop();
  }

  client::TestServer server_;
  std::unique_ptr<LiveScheduler> scheduler_;
};

TEST_F(LiveSchedulerTest, BindsPodsAndSaysWhyOneDoesNotFit) {
  AddNode("a", "2");
  AddNode("b", "2", Json::array({{{"key", "dedicated"}, {"value", "gpu"}, {"effect", "NoSchedule"}}}));
  Start();
  AddPod("small", "500m");
  AddPod("huge", "3");
  ASSERT_TRUE(Eventually([&] { return NodeOf("small") == "a"; })) << NodeOf("small");
  ASSERT_TRUE(Eventually([&] { return !FailedSchedulingMessage("huge").empty(); }));
  EXPECT_EQ(FailedSchedulingMessage("huge"),
            "0/2 nodes are available: 1 Insufficient cpu, 1 node(s) had untolerated taint "
            "{dedicated: gpu}.");
  // The event goes out before the status patch: wait for the condition too.
  std::string last;
  EXPECT_TRUE(Eventually([&] {
    auto huge = api().Get(ResourcePath("v1", "pods", "default", "huge"));
    if (!huge.ok()) return false;
    last = huge->dump();
    const Json* conditions = base::FindPath(*huge, {"status", "conditions"});
    if (conditions == nullptr || !conditions->is_array()) return false;
    for (const Json& c : *conditions) {
      if (c.value("type", "") == "PodScheduled" && c.value("status", "") == "False" &&
          c.value("reason", "") == "Unschedulable") {
        return true;
      }
    }
    return false;
  })) << last;

  // A node that fits arrives: the pending pod is placed without waiting for the periodic retry.
  AddNode("big", "4");
  EXPECT_TRUE(Eventually([&] { return NodeOf("huge") == "big"; }));
}

TEST_F(LiveSchedulerTest, HonoursSelectorsTolerationsAndAntiAffinity) {
  AddNode("a", "4", Json::array(), Json{{"disk", "ssd"}});
  AddNode("b", "4", Json::array({{{"key", "dedicated"}, {"value", "gpu"}, {"effect", "NoSchedule"}}}));
  Start();
  AddPod("wants-ssd", "100m", Json{{"nodeSelector", {{"disk", "ssd"}}}});
  AddPod("tolerates", "100m",
         Json{{"nodeSelector", {{"kubernetes.io/hostname", "b"}}},
              {"tolerations", Json::array({{{"key", "dedicated"}, {"operator", "Equal"},
                                            {"value", "gpu"}, {"effect", "NoSchedule"}}})}});
  EXPECT_TRUE(Eventually([&] { return NodeOf("wants-ssd") == "a"; }));
  EXPECT_TRUE(Eventually([&] { return NodeOf("tolerates") == "b"; }));
  Json anti = {{"affinity",
                {{"podAntiAffinity",
                  {{"requiredDuringSchedulingIgnoredDuringExecution",
                    {{{"topologyKey", "kubernetes.io/hostname"},
                      {"labelSelector", {{"matchLabels", {{"app", "wants-ssd"}}}}}}}}}}}},
               {"nodeSelector", {{"disk", "ssd"}}}};
  AddPod("away", "100m", anti);
  EXPECT_TRUE(Eventually([&] { return !FailedSchedulingMessage("away").empty(); }));
  EXPECT_NE(FailedSchedulingMessage("away").find("anti-affinity"), std::string::npos)
      << FailedSchedulingMessage("away");
}

TEST_F(LiveSchedulerTest, PreemptsLowerPriorityPods) {
  AddNode("only", "1");
  Start();
  AddPod("low", "800m", Json::object(), 1);
  ASSERT_TRUE(Eventually([&] { return NodeOf("low") == "only"; }));
  AddPod("high", "800m", Json::object(), 1000);
  EXPECT_TRUE(Eventually([&] {
    auto low = api().Get(ResourcePath("v1", "pods", "default", "low"));
    return !low.ok() || !base::StringAt(*low, {"metadata", "deletionTimestamp"}).empty();
  })) << "the low-priority pod was not preempted";
  // The victim's grace period would hold the node in a real cluster; here nothing runs it, so
  // remove it the way the agent would once it stopped.
  Json now = {{"gracePeriodSeconds", 0}};
  (void)api().Delete(ResourcePath("v1", "pods", "default", "low"), now);
  EXPECT_TRUE(Eventually([&] { return NodeOf("high") == "only"; }, 70s));
}

}  // namespace
}  // namespace fulcrum::scheduler
