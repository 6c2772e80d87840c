// The controllers against a real API server in this process. No agent runs here: tests play the
// node's part by writing pod status.
#include <gtest/gtest.h>

#include <thread>

#include "client/test_server.h"
#include "controllers/controller_manager.h"

namespace fulcrum::controllers {
namespace {

using client::Eventually;

using base::Json;
using client::PatchType;
using client::ResourcePath;
using namespace std::chrono_literals;

// The object's status, or an empty object while it has none (its controller has not written it
// yet): what the tests poll must not throw on a fresh object.
Json StatusOf(const Json& obj) {
  const Json* s = base::FindPath(obj, {"status"});
  return s != nullptr && s->is_object() ? *s : Json::object();
}

class ControllersTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto m = StartControllerManager(&api(), base::RealClock());
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    manager_ = std::move(*m);
  }
  void TearDown() override { manager_->Stop(); }
  client::ApiClient& api() { return server_.client(); }

  std::vector<Json> Pods(const std::string& selector) {
    auto list = api().Get(ResourcePath("v1", "pods", "default") + "?labelSelector=" +
                          client::QueryEscape(selector));
    EXPECT_TRUE(list.ok()) << list.status().ToString();
    std::vector<Json> out;
    if (!list.ok()) return out;
    for (auto& p : (*list)["items"]) {
      if (base::StringAt(p, {"metadata", "deletionTimestamp"}).empty()) out.push_back(p);
    }
    return out;
  }

  // What an agent would write once the pod runs.
  void MarkRunning(const Json& pod, bool ready = true) {
    std::string name = pod["metadata"]["name"];
    Json status = {{"phase", "Running"},
                   {"conditions",
                    {{{"type", "Ready"}, {"status", ready ? "True" : "False"},
                      {"lastTransitionTime", "2020-01-01T00:00:00Z"}}}}};
    auto r = api().Patch(ResourcePath("v1", "pods", "default", name, "status"), PatchType::kMerge,
                         Json{{"status", status}});
    ASSERT_TRUE(r.ok()) << r.status().ToString();
  }

  void MarkAll(const std::string& selector, const std::string& phase) {
    for (const Json& p : Pods(selector)) {
      if (base::StringAt(p, {"status", "phase"}) == phase) continue;
      if (phase == "Running") {
        MarkRunning(p);
      } else {
        auto r = api().Patch(ResourcePath("v1", "pods", "default", p["metadata"]["name"].get<std::string>(), "status"),
                             PatchType::kMerge, Json{{"status", {{"phase", phase}}}});
        ASSERT_TRUE(r.ok()) << r.status().ToString();
      }
    }
  }

  client::TestServer server_;
  std::unique_ptr<ControllerManager> manager_;
};

Json Deployment(const std::string& image, int replicas) {
  Json d = Json::parse(R"({"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web"},
    "spec":{"selector":{"matchLabels":{"app":"web"}},
      "strategy":{"rollingUpdate":{"maxSurge":1,"maxUnavailable":0}},
      "template":{"metadata":{"labels":{"app":"web"}},
        "spec":{"containers":[{"name":"c","image":"x"}]}}}})");
  d["spec"]["replicas"] = replicas;
  d["spec"]["template"]["spec"]["containers"][0]["image"] = image;
  return d;
}

TEST_F(ControllersTest, DeploymentCreatesPodsAndRollsOutANewTemplate) {
  Json d = Deployment("img:1", 3);
  ASSERT_TRUE(api().Create(ResourcePath("apps/v1", "deployments", "default"), d).ok());
  ASSERT_TRUE(Eventually([&] { return Pods("app=web").size() == 3; })) << Pods("app=web").size();
  MarkAll("app=web", "Running");
  std::string path = ResourcePath("apps/v1", "deployments", "default", "web");
  ASSERT_TRUE(Eventually([&] {
    auto got = api().Get(path);
    return got.ok() && StatusOf(*got).value("availableReplicas", 0) == 3 &&
           StatusOf(*got).value("updatedReplicas", 0) == 3;
  }));

  // New image: pods are replaced one at a time, never fewer than 3 available.
  ASSERT_TRUE(api().Patch(path, PatchType::kStrategicMerge,
                          Json{{"spec", {{"template", {{"spec", {{"containers", {{{"name", "c"}, {"image", "img:2"}}}}}}}}}}})
                  .ok());
  ASSERT_TRUE(Eventually([&] {
    for (const Json& p : Pods("app=web")) {
      if (p["spec"]["containers"][0]["image"] == "img:2" && base::StringAt(p, {"status", "phase"}) != "Running") {
        MarkRunning(p);
      }
    }
    auto pods = Pods("app=web");
    int ready_old = 0, total_ready = 0;
    for (const Json& p : pods) {
      bool ready = base::StringAt(p, {"status", "phase"}) == "Running";
      total_ready += ready;
      ready_old += ready && p["spec"]["containers"][0]["image"] == "img:1";
    }
    EXPECT_GE(total_ready, 3) << "maxUnavailable 0 was not honoured";
    return pods.size() == 3 && ready_old == 0;
  }, 30s)) << api().Get(ResourcePath("apps/v1", "replicasets", "default"))->dump(1) << "\n"
           << api().Get(path)->dump(1);
  ASSERT_TRUE(Eventually([&] {
    auto got = api().Get(path);
    return got.ok() && base::StringAt(*got, {"metadata", "annotations", "deployment.kubernetes.io/revision"}) == "2";
  }));
  auto rs = api().Get(ResourcePath("apps/v1", "replicasets", "default"));
  ASSERT_TRUE(rs.ok());
  EXPECT_EQ((*rs)["items"].size(), 2u) << "the old ReplicaSet is kept for rollback, at 0 replicas";

  // Deleting the deployment deletes its ReplicaSets and their pods (garbage collection).
  ASSERT_TRUE(api().Delete(path).ok());
  EXPECT_TRUE(Eventually([&] {
    auto all = api().Get(ResourcePath("apps/v1", "replicasets", "default"));
    return all.ok() && (*all)["items"].empty() && Pods("app=web").empty();
  }));
}

TEST_F(ControllersTest, ReplicaSetScalesDownUnreadyPodsFirst) {
  Json rs = Json::parse(R"({"metadata":{"name":"rs"},"spec":{"replicas":3,
    "selector":{"matchLabels":{"app":"rs"}},
    "template":{"metadata":{"labels":{"app":"rs"}},"spec":{"containers":[{"name":"c","image":"x"}]}}}})");
  ASSERT_TRUE(api().Create(ResourcePath("apps/v1", "replicasets", "default"), rs).ok());
  ASSERT_TRUE(Eventually([&] { return Pods("app=rs").size() == 3; }));
  auto pods = Pods("app=rs");
  MarkRunning(pods[0]);
  MarkRunning(pods[1]);
  ASSERT_TRUE(api().Patch(ResourcePath("apps/v1", "replicasets", "default", "rs"), PatchType::kMerge,
                          Json{{"spec", {{"replicas", 2}}}})
                  .ok());
  ASSERT_TRUE(Eventually([&] { return Pods("app=rs").size() == 2; }));
  for (const Json& p : Pods("app=rs")) EXPECT_EQ(base::StringAt(p, {"status", "phase"}), "Running");
  // A pod deleted by someone else is replaced.
  ASSERT_TRUE(api().Delete(ResourcePath("v1", "pods", "default", pods[0]["metadata"]["name"].get<std::string>())).ok());
  EXPECT_TRUE(Eventually([&] {
    auto now = Pods("app=rs");
    return now.size() == 2 && now[0]["metadata"]["name"] != pods[0]["metadata"]["name"] &&
           now[1]["metadata"]["name"] != pods[0]["metadata"]["name"];
  }));
  ASSERT_TRUE(Eventually([&] {
    auto got = api().Get(ResourcePath("apps/v1", "replicasets", "default", "rs"));
    return got.ok() && StatusOf(*got).value("replicas", 0) == 2 && StatusOf(*got).value("readyReplicas", 0) >= 1;
  }));
}

TEST_F(ControllersTest, JobRunsToCompletionAndReplacesEvictedPods) {
  Json job = Json::parse(R"({"metadata":{"name":"batch"},"spec":{"completions":3,"parallelism":2,
    "template":{"metadata":{"labels":{"app":"batch"}},
      "spec":{"restartPolicy":"Never","containers":[{"name":"c","image":"x"}]}}}})");
  ASSERT_TRUE(api().Create(ResourcePath("batch/v1", "jobs", "default"), job).ok());
  ASSERT_TRUE(Eventually([&] { return Pods("app=batch").size() == 2; }));
  // One pod is evicted: replaced, not counted as a failure.
  Json victim = Pods("app=batch")[0];
  ASSERT_TRUE(api().Patch(ResourcePath("v1", "pods", "default", victim["metadata"]["name"].get<std::string>(), "status"),
                          PatchType::kMerge, Json{{"status", {{"phase", "Failed"}, {"reason", "Evicted"}}}})
                  .ok());
  auto active = [&] {
    int n = 0;
    for (const Json& p : Pods("app=batch")) {
      std::string phase = base::StringAt(p, {"status", "phase"});
      n += phase != "Failed" && phase != "Succeeded";
    }
    return n;
  };
  ASSERT_TRUE(Eventually([&] { return active() == 2; }));
  std::string path = ResourcePath("batch/v1", "jobs", "default", "batch");
  // Play the node: every pod that runs finishes successfully; the Job makes the third one.
  int finished = 0;
  ASSERT_TRUE(Eventually([&] {
    for (const Json& p : Pods("app=batch")) {
      std::string phase = base::StringAt(p, {"status", "phase"});
      if (phase == "Failed" || phase == "Succeeded") continue;
      auto r = api().Patch(ResourcePath("v1", "pods", "default", p["metadata"]["name"].get<std::string>(), "status"),
                           PatchType::kMerge, Json{{"status", {{"phase", "Succeeded"}}}});
      EXPECT_TRUE(r.ok()) << r.status().ToString();
      ++finished;
    }
    return finished >= 3;
  }));
  ASSERT_TRUE(Eventually([&] {
    auto got = api().Get(path);
    if (!got.ok()) return false;
    for (const Json& c : StatusOf(*got).value("conditions", Json::array())) {
      if (c["type"] == "Complete" && c["status"] == "True") return true;
    }
    return false;
  })) << api().Get(path)->dump();
  auto got = api().Get(path);
  EXPECT_EQ((*got)["status"]["succeeded"], 3);
  EXPECT_EQ((*got)["status"]["failed"], 0) << "an eviction is not a failure";
  EXPECT_EQ((*got)["status"]["active"], 0);
}

// The scheduler reads a batch pod's expected runtime from the pod: a Job's annotation goes to
// its pods, unless the pod template says otherwise.
TEST_F(ControllersTest, JobPassesItsExpectedRuntimeToItsPods) {
  Json job = Json::parse(R"({"metadata":{"name":"crunch",
      "annotations":{"fulcrum.dev/expected-runtime":"30m"}},
    "spec":{"template":{"metadata":{"labels":{"app":"crunch"}},
      "spec":{"restartPolicy":"Never","containers":[{"name":"c","image":"x"}]}}}})");
  ASSERT_TRUE(api().Create(ResourcePath("batch/v1", "jobs", "default"), job).ok());
  job["metadata"]["name"] = "own";
  job["spec"]["template"]["metadata"] = Json::parse(
      R"({"labels":{"app":"own"},"annotations":{"fulcrum.dev/expected-runtime":"5m"}})");
  ASSERT_TRUE(api().Create(ResourcePath("batch/v1", "jobs", "default"), job).ok());
  ASSERT_TRUE(
      Eventually([&] { return Pods("app=crunch").size() == 1 && Pods("app=own").size() == 1; }));
  EXPECT_EQ(base::StringAt(Pods("app=crunch")[0],
                           {"metadata", "annotations", "fulcrum.dev/expected-runtime"}),
            "30m");
  EXPECT_EQ(base::StringAt(Pods("app=own")[0],
                           {"metadata", "annotations", "fulcrum.dev/expected-runtime"}),
            "5m");
}

TEST_F(ControllersTest, JobFailsPastItsBackoffLimit) {
  Json job = Json::parse(R"({"metadata":{"name":"doomed"},"spec":{"backoffLimit":0,
    "template":{"metadata":{"labels":{"app":"doomed"}},
      "spec":{"restartPolicy":"Never","containers":[{"name":"c","image":"x"}]}}}})");
  ASSERT_TRUE(api().Create(ResourcePath("batch/v1", "jobs", "default"), job).ok());
  ASSERT_TRUE(Eventually([&] { return Pods("app=doomed").size() == 1; }));
  MarkAll("app=doomed", "Failed");
  std::string path = ResourcePath("batch/v1", "jobs", "default", "doomed");
  EXPECT_TRUE(Eventually([&] {
    auto got = api().Get(path);
    if (!got.ok()) return false;
    for (const Json& c : StatusOf(*got).value("conditions", Json::array())) {
      if (c["type"] == "Failed" && c["status"] == "True" && c["reason"] == "BackoffLimitExceeded") return true;
    }
    return false;
  }));
  EXPECT_EQ(Pods("app=doomed").size(), 1u) << "no replacement after the limit";
}

}  // namespace
}  // namespace fulcrum::controllers
