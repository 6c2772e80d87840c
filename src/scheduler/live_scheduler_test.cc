// The scheduling loop against a real API server in this process; nodes are API objects only. The
// loop's behaviour that does not depend on usage is checked under every live policy.
#include "scheduler/live_scheduler.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <regex>
#include <thread>

#include "client/test_server.h"
#include "scheduler/batch_resources.h"

namespace fulcrum::scheduler {
namespace {

using client::Eventually;

using base::Json;
using client::ResourcePath;
using namespace std::chrono_literals;

class LiveSchedulerTest : public ::testing::TestWithParam<std::string> {
 protected:
  client::ApiClient& api() { return server_.client(); }

  void AddNode(const std::string& name, const std::string& cpu, Json taints = Json::array(),
               Json labels = Json::object()) {
    labels["kubernetes.io/hostname"] = name;
    Json node = {{"metadata", {{"name", name}, {"labels", labels}}}, {"spec", {{"taints", taints}}}};
    ASSERT_TRUE(api().Create(ResourcePath("v1", "nodes"), node).ok());
    AgentStatusUpdate(name, cpu);
  }
  // What the agent's node status update writes (agent.cc NodeObject, UpdateNodeStatus: a merge
  // patch of the status, with a new heartbeat time).
  void AgentStatusUpdate(const std::string& name, const std::string& cpu) {
    Json resources = {
        {"cpu", cpu}, {"memory", "8Gi"}, {"pods", "110"}, {"ephemeral-storage", "100000000000"}};
    Json status = {
        {"status",
         {{"allocatable", resources},
          {"capacity", resources},
          {"conditions",
           {{{"type", "Ready"},
             {"status", "True"},
             {"lastHeartbeatTime", base::FormatRfc3339Micro(base::RealClock()->Now())}}}}}}};
    auto r = api().Patch(ResourcePath("v1", "nodes", "", name, "status"), client::PatchType::kMerge, status);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
  }

  // The agent's usage report (a NodeMetric): the node's CPU, 100m of it system usage, and each
  // online pod's CPU.
  void Report(const std::string& node, const std::string& node_cpu,
              const std::vector<std::pair<std::string, std::string>>& pods) {
    const char* kGv = "scheduling.fulcrum.dev/v1alpha1";
    Json list = Json::array();
    for (const auto& [name, cpu] : pods) {
      list.push_back({{"namespace", "default"},
                      {"name", name},
                      {"qos", "online"},
                      {"usage", {{"cpu", cpu}, {"memory", "1Mi"}}},
                      {"average", {{"cpu", cpu}, {"memory", "1Mi"}}}});
    }
    Json metric = {{"apiVersion", kGv}, {"kind", "NodeMetric"}, {"metadata", {{"name", node}}}};
    (void)api().Create(ResourcePath(kGv, "nodemetrics"), metric);  // AlreadyExists after the first
    Json status = {
        {"updateTime", base::FormatRfc3339(base::RealClock()->Now())},
        {"nodeMetric",
         {{"usage", {{"cpu", node_cpu}, {"memory", "1Gi"}}}, {"systemUsage", {{"cpu", "100m"}}}}},
        {"podsMetric", list}};
    auto r = api().Patch(ResourcePath(kGv, "nodemetrics", "", node, "status"),
                         client::PatchType::kMerge, Json{{"status", status}});
    ASSERT_TRUE(r.ok()) << r.status().ToString();
  }

  Json Node(const std::string& name) {
    auto got = api().Get(ResourcePath("v1", "nodes", "", name));
    return got.ok() ? *got : Json::object();
  }
  // The node's published kubernetes.io/batch-cpu, -1 when it has none.
  int64_t BatchCpu(const std::string& node) {
    auto r = BatchResourcesOf(Node(node));
    return r ? r->cpu_milli : -1;
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

  // The message of the pod's latest event with that reason; "" when there is none.
  std::string EventMessage(const std::string& pod, const std::string& reason) {
    auto events = api().Get(ResourcePath("v1", "events", "default"));
    if (!events.ok()) return "";
    std::string message;
    for (const Json& e : (*events)["items"]) {
      if (e["reason"] == reason && e["involvedObject"]["name"] == pod) message = e["message"];
    }
    return message;
  }
  std::string FailedSchedulingMessage(const std::string& pod) {
    return EventMessage(pod, "FailedScheduling");
  }

  void Start() {
    LiveSchedulerOptions options;
    options.policy = GetParam();
    Start(options);
  }
  void Start(const LiveSchedulerOptions& options) {
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

TEST_P(LiveSchedulerTest, BindsPodsAndSaysWhyOneDoesNotFit) {
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

TEST_P(LiveSchedulerTest, HonoursSelectorsTolerationsAndAntiAffinity) {
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

TEST_P(LiveSchedulerTest, PreemptsLowerPriorityPods) {
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

// The scheduler publishes what it lends batch pods on the Node (kubernetes.io/batch-cpu and
// batch-memory, as Koordinator does) under each policy that reclaims for batch; the agent's own
// status updates keep it; a large move of the node's usage is published again. Under requests,
// nothing is lent to batch, and nothing is published.
TEST_P(LiveSchedulerTest, PublishesBatchResourcesOnTheNode) {
  AddNode("n", "2");
  Start();
  AddPod("web-0", "950m");
  AddPod("web-1", "950m");
  ASSERT_TRUE(Eventually([&] { return NodeOf("web-0") == "n" && NodeOf("web-1") == "n"; }));
  if (GetParam() == "requests") {
    Report("n", "120m", {{"web-0", "10m"}, {"web-1", "10m"}});
    AddPod("probe", "10m");  // placed after the loop's passes over the report
    ASSERT_TRUE(Eventually([&] { return NodeOf("probe") == "n"; }));
    EXPECT_EQ(BatchCpu("n"), -1) << Node("n").dump();
    return;
  }
  // Before any report: 65% of the node (the agent's suppress threshold) less the online
  // requests, 1300m - 1900m: nothing to lend. (1300m, published before the pods were bound, is
  // more than 10% away.)
  ASSERT_TRUE(Eventually([&] { return BatchCpu("n") == 0; })) << Node("n").dump();
  Json node = Node("n");
  EXPECT_EQ(node["status"]["capacity"]["kubernetes.io/batch-cpu"], "0");
  // Memory: the node's allocatable less the online pods' requests (none here).
  EXPECT_EQ(node["status"]["allocatable"]["kubernetes.io/batch-memory"],
            std::to_string(int64_t{8} << 30));

  // The agent reports both replicas nearly idle: 1300m - 100m of system - 20m of online use
  // (archimedes learns their profile from the report, and lends no more than that either).
  Report("n", "120m", {{"web-0", "10m"}, {"web-1", "10m"}});
  ASSERT_TRUE(Eventually([&] { return BatchCpu("n") > 0; }, 30s)) << Node("n").dump();
  EXPECT_LE(BatchCpu("n"), 1180);
  EXPECT_GE(BatchCpu("n"), 1100);

  // The agent's heartbeat (a merge patch of its status) leaves the batch resources in place.
  std::string rv = base::StringAt(Node("n"), {"metadata", "resourceVersion"});
  AgentStatusUpdate("n", "2");
  node = Node("n");
  EXPECT_NE(base::StringAt(node, {"metadata", "resourceVersion"}), rv);
  EXPECT_EQ(node["status"]["allocatable"]["cpu"], "2");
  EXPECT_GE(BatchCpu("n"), 1100);
  EXPECT_TRUE(node["status"]["capacity"].contains("kubernetes.io/batch-cpu")) << node.dump();

  // Online load rises: 1300m - 100m - 1000m.
  Report("n", "1100m", {{"web-0", "500m"}, {"web-1", "500m"}});
  EXPECT_TRUE(Eventually([&] { return BatchCpu("n") == 200; }, 30s)) << Node("n").dump();
}

INSTANTIATE_TEST_SUITE_P(Policies, LiveSchedulerTest,
                         ::testing::Values("requests", "load-aware", "archimedes"),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param == "load-aware" ? std::string("load_aware") : info.param;
                         });

// Online pods that fill a node exactly by their requests are all placed, as kube-scheduler places
// them: with no history, a pod is taken to use its requests, and a demand equal to the capacity is
// no contention.
TEST_P(LiveSchedulerTest, FillsANodeExactlyByRequests) {
  AddNode("n", "2");
  Start();
  AddPod("one", "1");
  AddPod("two", "1");
  EXPECT_TRUE(Eventually([&] { return NodeOf("one") == "n" && NodeOf("two") == "n"; }))
      << FailedSchedulingMessage("one") << FailedSchedulingMessage("two");
  AddPod("three", "100m");
  ASSERT_TRUE(Eventually([&] { return !FailedSchedulingMessage("three").empty(); }));
  EXPECT_EQ(FailedSchedulingMessage("three"), "0/1 nodes are available: 1 Insufficient cpu.");
}

// Archimedes in the live loop: online pods with no history are placed by their requests (two
// replicas fill 1900m of 2000m; a cold profile of half the requests with a wide spread would have
// refused the second), and a batch pod gets nothing of them until a usage report shows them idle;
// then it is placed beside them, where requests would not fit it, and its Scheduled event says so.
using ArchimedesLiveTest = LiveSchedulerTest;

TEST_F(ArchimedesLiveTest, ColdPodsGoByRequestsAndBatchRunsOnCapacityReclaimedFromReports) {
  AddNode("n", "2");
  LiveSchedulerOptions options;
  ASSERT_EQ(options.policy, "archimedes");  // the default
  Start(options);
  AddPod("web-0", "950m");
  AddPod("web-1", "950m");
  ASSERT_TRUE(Eventually([&] { return NodeOf("web-0") == "n" && NodeOf("web-1") == "n"; }))
      << FailedSchedulingMessage("web-1");
  AddPod("crunch", "300m", Json{{"priorityClassName", "fulcrum-batch"}});
  ASSERT_TRUE(Eventually([&] { return !FailedSchedulingMessage("crunch").empty(); }));
  // 65% of the node (what the agent lets batch use) less the online requests: nothing.
  EXPECT_EQ(FailedSchedulingMessage("crunch"),
            "0/1 nodes are available: 1 Insufficient kubernetes.io/batch-cpu.");
  EXPECT_EQ(NodeOf("crunch"), "");

  // The agent reports both replicas nearly idle: their profiles are learnt from it, and the pending
  // batch pod is tried again at once (not at the minute's retry).
  Report("n", "120m", {{"web-0", "10m"}, {"web-1", "10m"}});
  EXPECT_TRUE(Eventually([&] { return NodeOf("crunch") == "n"; }, 30s));
  std::string scheduled;
  EXPECT_TRUE(Eventually([&] { return !(scheduled = EventMessage("crunch", "Scheduled")).empty(); }));
  EXPECT_THAT(scheduled, ::testing::MatchesRegex(
                             "Successfully assigned default/crunch to n \\(archimedes: batch cpu "
                             "300m of [0-9]+m reclaimable, online requests 1900m/2000m, expected "
                             "runtime 1h0m0s \\(default\\), measured "
                             "cpu 120m/2000m, memory 1024Mi/8192Mi\\)"));
}

// A batch Job's expected runtime: an hour while nothing is known, then learnt from its completed
// pods (of this Job, and of the Jobs a CronJob names alike), and the pod's
// fulcrum.dev/expected-runtime annotation over both. The Scheduled event says which.
TEST_F(ArchimedesLiveTest, BatchRuntimeIsLearntFromCompletedRunsAndAnnotationOverrides) {
  AddNode("n", "2");
  Start(LiveSchedulerOptions{});
  auto batch_pod = [&](const std::string& name, const std::string& job, Json annotations) {
    Json pod = {
        {"metadata",
         {{"name", name},
          {"annotations", annotations},
          {"ownerReferences",
           {{{"apiVersion", "batch/v1"},
             {"kind", "Job"},
             {"name", job},
             {"uid", "uid-" + job},
             {"controller", true}}}}}},
        {"spec",
         {{"priorityClassName", "fulcrum-batch"},
          {"containers",
           {{{"name", "c"}, {"image", "x"}, {"resources", {{"requests", {{"cpu", "100m"}}}}}}}}}}};
    auto r = api().Create(ResourcePath("v1", "pods", "default"), pod);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
  };
  auto runtime_note = [&](const std::string& pod) {
    std::string scheduled;
    EXPECT_TRUE(Eventually([&] { return !(scheduled = EventMessage(pod, "Scheduled")).empty(); }))
        << FailedSchedulingMessage(pod);
    std::smatch m;
    std::regex re("expected runtime ([0-9hms]+) \\(([^)]*)\\)");
    return std::regex_search(scheduled, m, re) ? m[1].str() + " (" + m[2].str() + ")" : scheduled;
  };
  // The agent marks a pod done: started at `start`, its container finished `seconds` later.
  auto complete = [&](const std::string& name, int64_t seconds) {
    base::WallTime start = base::RealClock()->Now() - std::chrono::hours(3);
    Json status = {{"status",
                    {{"phase", "Succeeded"},
                     {"startTime", base::FormatRfc3339(start)},
                     {"containerStatuses",
                      {{{"name", "c"},
                        {"state",
                         {{"terminated",
                           {{"exitCode", 0},
                            {"reason", "Completed"},
                            {"finishedAt",
                             base::FormatRfc3339(start + std::chrono::seconds(seconds))}}}}}}}}}}};
    auto r = api().Patch(ResourcePath("v1", "pods", "default", name, "status"),
                         client::PatchType::kMerge, status);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
  };

  batch_pod("crunch-a", "crunch", Json::object());
  EXPECT_EQ(runtime_note("crunch-a"), "1h0m0s (default)");
  // The scheduler's pod informer delivers the completion before the next pod's creation (one
  // watch, in order), so the next pod is placed knowing the run.
  complete("crunch-a", 1800);
  batch_pod("crunch-b", "crunch", Json::object());
  EXPECT_EQ(runtime_note("crunch-b"), "30m0s (p90 of 1 run)");
  complete("crunch-b", 2400);
  batch_pod("crunch-c", "crunch", Json::object());
  EXPECT_EQ(runtime_note("crunch-c"), "40m0s (p90 of 2 runs)");  // fewer than 10 runs: the longest
  batch_pod("crunch-d", "crunch", Json{{"fulcrum.dev/expected-runtime", "2h30m"}});
  EXPECT_EQ(runtime_note("crunch-d"), "2h30m0s (fulcrum.dev/expected-runtime)");
  batch_pod("crunch-e", "crunch", Json{{"fulcrum.dev/expected-runtime", "soon"}});
  EXPECT_EQ(runtime_note("crunch-e"), "40m0s (p90 of 2 runs)");  // not a duration: ignored

  // A CronJob's runs are Jobs named <cronjob>-<minute>: one history.
  batch_pod("report-28373940-x", "report-28373940", Json::object());
  EXPECT_EQ(runtime_note("report-28373940-x"), "1h0m0s (default)");
  complete("report-28373940-x", 600);
  batch_pod("report-28375380-y", "report-28375380", Json::object());
  EXPECT_EQ(runtime_note("report-28375380-y"), "10m0s (p90 of 1 run)");
}

// Profiles count their days in the time zone --profile-utc-offset names: a profile learnt there
// (restored from its AppProfile, which records the offset) is read at the local time of day, so a
// busy local morning is busy now for the batch pod placed now, whatever the hour is in UTC. And
// slots that do not divide a day, or offsets of a day, are refused (AppProfile objects could not
// hold them).
TEST_F(ArchimedesLiveTest, ProfilesAreReadInTheirTimeZone) {
  AddNode("n", "4");
  // An online pod whose profile is busy (2000m) in the local slots of now and the next two,
  // nearly idle (10m) in all others; UTC's slot of now is 8 hours away.
  constexpr int64_t kOffset = 8 * 3600;
  int64_t now =
      std::chrono::duration_cast<std::chrono::seconds>(base::RealClock()->Now().time_since_epoch())
          .count();
  int local_slot = static_cast<int>((now + kOffset) / 900 % 96);
  Json mean = Json::array(), sd = Json::array();
  for (int i = 0; i < 96; ++i) {
    bool busy = (i - local_slot + 96) % 96 < 3;
    mean.push_back(busy ? 2000 : 10);
    sd.push_back(1);
  }
  const char* kGv = "scheduling.fulcrum.dev/v1alpha1";
  Json profile = {{"apiVersion", kGv},
                  {"kind", "AppProfile"},
                  {"metadata", {{"name", "pod-web-0"}, {"namespace", "default"}}},
                  {"spec", {{"app", "default/Pod/web-0"}, {"slotSeconds", 900}, {"slots", 96}}},
                  {"status",
                   {{"cpuMeanMilli", mean},
                    {"cpuStdMilli", sd},
                    {"samples", 96},
                    {"utcOffsetSeconds", kOffset}}}};
  auto created = api().Create(ResourcePath(kGv, "appprofiles", "default"), profile);
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  auto patched = api().Patch(ResourcePath(kGv, "appprofiles", "default", "pod-web-0", "status"),
                             client::PatchType::kMerge, Json{{"status", profile["status"]}});
  ASSERT_TRUE(patched.ok()) << patched.status().ToString();
  AddPod("web-0", "2", Json{{"nodeName", "n"}});

  for (int64_t slot : {int64_t{7}, int64_t{4000000000}}) {
    LiveSchedulerOptions bad;
    bad.profile_slot_seconds = slot;
    auto s = StartLiveScheduler(&api(), base::RealClock(), bad);
    ASSERT_FALSE(s.ok()) << slot;
    EXPECT_EQ(s.status().code(), base::Code::kInvalid);
    EXPECT_NE(s.status().message().find("divides a day"), std::string::npos)
        << s.status().message();
  }
  for (int64_t offset : {86400, -86400}) {
    LiveSchedulerOptions bad;
    bad.profile_utc_offset_seconds = offset;
    auto s = StartLiveScheduler(&api(), base::RealClock(), bad);
    ASSERT_FALSE(s.ok()) << offset;
    EXPECT_EQ(s.status().code(), base::Code::kInvalid);
  }

  LiveSchedulerOptions options;
  options.profile_utc_offset_seconds = kOffset;
  Start(options);
  AddPod("crunch", "100m", Json{{"priorityClassName", "fulcrum-batch"}});
  ASSERT_TRUE(Eventually([&] { return !EventMessage("crunch", "Scheduled").empty(); }))
      << FailedSchedulingMessage("crunch");
  // 65% of 4000m less the busy local hour's 2000m (read at UTC's hour, 10m: about 2590m).
  std::smatch m;
  std::string scheduled = EventMessage("crunch", "Scheduled");
  ASSERT_TRUE(std::regex_search(scheduled, m, std::regex("of ([0-9]+)m reclaimable"))) << scheduled;
  EXPECT_LT(std::stoi(m[1].str()), 700) << scheduled;
  EXPECT_GE(std::stoi(m[1].str()), 500) << scheduled;
}

}  // namespace
}  // namespace fulcrum::scheduler
