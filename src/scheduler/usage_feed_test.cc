#include "scheduler/usage_feed.h"

#include <gtest/gtest.h>

#include "client/test_server.h"
#include "scheduler/live_scheduler.h"

namespace fulcrum::scheduler {
namespace {

using base::Json;
using client::Eventually;
using client::ResourcePath;
using namespace std::chrono_literals;

constexpr char kGv[] = "scheduling.fulcrum.dev/v1alpha1";

// A NodeMetric as an agent writes it; pods as {ns, name, cpu, qos}.
Json Metric(const std::string& node, const std::string& time, const std::string& cpu,
            std::vector<std::tuple<std::string, std::string, std::string, std::string>> pods = {}) {
  Json list = Json::array();
  for (const auto& [ns, name, pod_cpu, qos] : pods) {
    list.push_back({{"namespace", ns},
                    {"name", name},
                    {"qos", qos},
                    {"usage", {{"cpu", pod_cpu}, {"memory", "1Mi"}}},
                    {"average", {{"cpu", pod_cpu}, {"memory", "1Mi"}}}});
  }
  return {{"apiVersion", kGv},
          {"kind", "NodeMetric"},
          {"metadata", {{"name", node}}},
          {"status",
           {{"updateTime", time},
            {"nodeMetric",
             {{"usage", {{"cpu", cpu}, {"memory", "1Gi"}}}, {"systemUsage", {{"cpu", "100m"}}}}},
            {"podsMetric", list}}}};
}

PodInfo Pod(const std::string& name, int64_t cpu_milli, Qos qos, const std::string& app) {
  PodInfo p;
  p.ns = "shop";
  p.name = name;
  p.requests.cpu_milli = cpu_milli;
  p.requests.memory_bytes = 1 << 20;
  p.qos = qos;
  p.app = app;
  return p;
}

NodeInfo Node(const std::string& name, int64_t cpu_milli) {
  NodeInfo n;
  n.name = name;
  n.labels["kubernetes.io/hostname"] = name;
  n.allocatable = {cpu_milli, int64_t{8} << 30, 110};
  n.Touch();
  return n;
}

TEST(UsageFeedTest, ReportSetsMeasuredUsageAndDropsEstimates) {
  NodeInfo n = Node("a", 4000);
  n.AddPod(Pod("web-0", 1000, Qos::kOnline, "shop/Deployment/web"), false);
  n.AddPod(Pod("etl-0", 500, Qos::kBatch, "shop/Job/etl"), false);
  n.AddPod(Pod("new-0", 300, Qos::kOnline, "shop/Pod/new-0"), false);  // not running yet
  EXPECT_EQ(n.unreported_requested.cpu_milli, 1800);

  auto r = NodeUsageFromMetric(Metric("a", "2026-11-27T10:00:00Z", "2500m",
                                      {{"shop", "web-0", "1200m", "online"},
                                       {"shop", "etl-0", "700m", "online"},  // the scheduler knows better
                                       {"shop", "stranger", "50m", ""}}));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->node, "a");
  EXPECT_EQ(r->pods.size(), 3u);
  EXPECT_TRUE(ApplyNodeUsage(*r, &n));  // web-0 and etl-0 no longer estimated from requests
  EXPECT_DOUBLE_EQ(n.cpu_usage_milli, 2500);
  EXPECT_DOUBLE_EQ(n.memory_usage_bytes, double(1 << 30));
  EXPECT_DOUBLE_EQ(n.system_cpu_usage_milli, 100);
  EXPECT_DOUBLE_EQ(n.online_cpu_usage_milli, 1250);  // web-0 + stranger; etl-0 is batch
  EXPECT_EQ(n.unreported_requested.cpu_milli, 300);  // new-0 still estimated from its requests
  EXPECT_EQ(n.unreported_online_requested.cpu_milli, 300);

  r = NodeUsageFromMetric(Metric("a", "2026-11-27T10:00:15Z", "1000m"));
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(ApplyNodeUsage(*r, &n));
  r = NodeUsageFromMetric(Metric("a", "2026-11-27T10:00:30Z", "1200m"));
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(ApplyNodeUsage(*r, &n));  // higher, and every pod reported was already

  Json bad = Metric("a", "soon", "1");
  EXPECT_EQ(NodeUsageFromMetric(bad).status().code(), base::Code::kInvalid);
  bad = Metric("a", "2026-11-27T10:00:15Z", "1");
  bad["status"]["nodeMetric"].erase("usage");
  EXPECT_EQ(NodeUsageFromMetric(bad).status().code(), base::Code::kInvalid);
}

// A node shared with other work (the agent's --qos-cpu-system-usage=off): what runs outside its
// pods is not the node's usage, so neither thresholds nor batch capacity see it.
TEST(UsageFeedTest, SystemUsageLeftOutOfASharedNode) {
  NodeInfo n = Node("a", 2000);
  n.AddPod(Pod("web-0", 900, Qos::kOnline, "shop/Deployment/web"), true);
  auto r = NodeUsageFromMetric(Metric("a", "2026-11-27T10:00:00Z", "1900m",
                                      {{"shop", "web-0", "30m", "online"},
                                       {"shop", "etl-0", "70m", "batch"}}));
  ASSERT_TRUE(r.ok());
  DropSystemUsage(&*r);
  EXPECT_DOUBLE_EQ(r->cpu_milli, 100);
  EXPECT_DOUBLE_EQ(r->memory_bytes, double(2 << 20));
  EXPECT_DOUBLE_EQ(r->system_cpu_milli, 0);
  uint64_t generation = n.generation;
  ApplyNodeUsage(*r, &n);
  EXPECT_DOUBLE_EQ(n.cpu_usage_milli, 100);
  EXPECT_DOUBLE_EQ(n.system_cpu_usage_milli, 0);
  EXPECT_EQ(n.generation, generation);  // system usage unchanged: cached aggregates stay valid
  // Counted, system usage goes into the contention model's cached demand: the node is touched.
  r = NodeUsageFromMetric(Metric("a", "2026-11-27T10:00:02Z", "1900m"));
  ASSERT_TRUE(r.ok());
  ApplyNodeUsage(*r, &n);
  EXPECT_DOUBLE_EQ(n.system_cpu_usage_milli, 100);
  EXPECT_NE(n.generation, generation);
}

// Two nodes alike by requests; Koordinator's load-aware policy goes by what they measured.
TEST(UsageFeedTest, LoadAwarePlacementFollowsMeasuredUsage) {
  std::vector<NodeInfo> nodes = {Node("a", 4000), Node("b", 4000)};
  auto policy = MakePolicy("load-aware");
  ASSERT_TRUE(policy.ok());
  PodInfo pod = Pod("new", 500, Qos::kOnline, "shop/Pod/new");
  auto report = [&](size_t i, const char* cpu) {
    auto r = NodeUsageFromMetric(Metric(nodes[i].name, "2026-11-27T10:00:00Z", cpu));
    ASSERT_TRUE(r.ok());
    ApplyNodeUsage(*r, &nodes[i]);
  };
  report(0, "3500m");  // above the 65% threshold
  report(1, "1000m");
  Decision d = Schedule(pod, nodes, **policy);
  ASSERT_TRUE(d.node_index);
  EXPECT_EQ(nodes[*d.node_index].name, "b");
  report(0, "500m");
  report(1, "2000m");
  d = Schedule(pod, nodes, **policy);
  ASSERT_TRUE(d.node_index);
  EXPECT_EQ(nodes[*d.node_index].name, "a");
  report(0, "3000m");
  report(1, "3000m");
  d = Schedule(pod, nodes, **policy);
  EXPECT_FALSE(d.node_index);
  EXPECT_NE(d.message.find("node(s) cpu usage exceed threshold"), std::string::npos) << d.message;
}

// Koordinator's batch resources from measured usage: allocatable x 65% - system - online usage.
TEST(UsageFeedTest, BatchPodsUseCapacityReclaimedFromMeasuredUsage) {
  std::vector<NodeInfo> nodes = {Node("a", 4000)};
  nodes[0].AddPod(Pod("web-0", 3500, Qos::kOnline, "shop/Deployment/web"), true);
  auto policy = MakePolicy("load-aware");
  ASSERT_TRUE(policy.ok());
  PodInfo batch = Pod("etl-0", 1500, Qos::kBatch, "shop/Job/etl");
  // No report yet: online usage is taken as the online requests, and nothing is left.
  Decision d = Schedule(batch, nodes, **policy);
  EXPECT_FALSE(d.node_index);
  EXPECT_NE(d.message.find("Insufficient kubernetes.io/batch-cpu"), std::string::npos) << d.message;
  // web-0 measured at 500m, system 100m: 2600 - 100 - 500 = 2000m for batch.
  auto r = NodeUsageFromMetric(Metric("a", "2026-11-27T10:00:00Z", "700m",
                                      {{"shop", "web-0", "500m", "online"}}));
  ASSERT_TRUE(r.ok());
  ApplyNodeUsage(*r, &nodes[0]);
  EXPECT_EQ((*policy)->BatchAllocatable(nodes[0]).cpu_milli, 2000);
  d = Schedule(batch, nodes, **policy);
  EXPECT_TRUE(d.node_index) << d.message;
  // Online pods are still held to their requests.
  d = Schedule(Pod("web-1", 1000, Qos::kOnline, "shop/Deployment/web"), nodes, **policy);
  EXPECT_FALSE(d.node_index);
  EXPECT_NE(d.message.find("Insufficient cpu"), std::string::npos) << d.message;
}

// Archimedes lends what the learnt profiles and the measured usage leave: with the online pod's
// profile still cold (half its requests, a wide spread) nothing is left for batch; once reports
// say it uses 300m, a batch pod fits.
TEST(UsageFeedTest, ArchimedesLendsWhatReportsShowIdle) {
  base::FakeClock clock(base::WallTime{} + std::chrono::seconds(1795773600));
  ProfileStore store;
  ProfileFeed feed(&store);
  PolicyOptions options;
  options.clock = &clock;
  options.profiles = &store;
  std::vector<NodeInfo> nodes = {Node("a", 4000)};
  nodes[0].AddPod(Pod("web-0", 3500, Qos::kOnline, "shop/Deployment/web"), true);
  PodInfo batch = Pod("etl-0", 1500, Qos::kBatch, "shop/Job/etl");
  {
    auto policy = MakePolicy("archimedes", options);
    ASSERT_TRUE(policy.ok()) << policy.status().ToString();
    Decision d = Schedule(batch, nodes, **policy);
    EXPECT_FALSE(d.node_index);
    EXPECT_NE(d.message.find("batch-cpu"), std::string::npos) << d.message;
  }
  auto r = NodeUsageFromMetric(Metric("a", base::FormatRfc3339(clock.Now()), "500m",
                                      {{"shop", "web-0", "300m", "online"}}));
  ASSERT_TRUE(r.ok());
  ApplyNodeUsage(*r, &nodes[0]);
  feed.Observe(*r, nodes[0]);
  ASSERT_NE(store.Find("shop/Deployment/web"), nullptr);
  auto policy = MakePolicy("archimedes", options);
  ASSERT_TRUE(policy.ok());
  Decision d = Schedule(batch, nodes, **policy);
  EXPECT_TRUE(d.node_index) << d.message;
}

TEST(UsageFeedTest, ProfilesLearnFromReportsAndRoundTripAsObjects) {
  ProfileStore store;
  ProfileFeed feed(&store);
  NodeInfo n = Node("a", 4000);
  n.AddPod(Pod("web-0", 1000, Qos::kOnline, "shop/Deployment/web"), true);
  n.AddPod(Pod("web-1", 1000, Qos::kOnline, "shop/Deployment/web"), true);
  auto r = NodeUsageFromMetric(Metric("a", "2026-11-27T10:00:00Z", "2000m",
                                      {{"shop", "web-0", "600m", "online"},
                                       {"shop", "web-1", "800m", "online"}}));
  ASSERT_TRUE(r.ok());
  feed.Observe(*r, n);
  const AppProfile* p = store.Find("shop/Deployment/web");
  ASSERT_NE(p, nullptr);  // learnt at once
  EXPECT_FALSE(p->cold);
  int slot = p->SlotAt(r->unix_seconds);
  EXPECT_FLOAT_EQ(p->cpu_mean[slot], 700);
  EXPECT_FLOAT_EQ(p->cpu_std[slot], 100);

  Json object = AppProfileObject(*p);
  EXPECT_EQ(object["metadata"]["name"], "deployment-web");
  EXPECT_EQ(object["metadata"]["namespace"], "shop");
  EXPECT_EQ(object["spec"]["app"], "shop/Deployment/web");
  EXPECT_EQ(object["status"]["cpuMeanMilli"].size(), 96u);
  auto back = AppProfileFromObject(object);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_FLOAT_EQ(back->cpu_mean[slot], 700);
  EXPECT_EQ(object["status"]["utcOffsetSeconds"], 0);

  // Slots counted at UTC+1 h, read back by a server that counts days in UTC: an hour (four
  // 15-minute slots) earlier; read at the same offset, where they were.
  Json east = AppProfileObject(*p, 3600);
  EXPECT_EQ(east["status"]["utcOffsetSeconds"], 3600);
  auto moved = AppProfileFromObject(east, 0);
  ASSERT_TRUE(moved.ok()) << moved.status().ToString();
  EXPECT_FLOAT_EQ(moved->cpu_mean[(slot + 96 - 4) % 96], 700);
  EXPECT_FLOAT_EQ(moved->cpu_std[(slot + 96 - 4) % 96], 100);
  EXPECT_FLOAT_EQ(AppProfileFromObject(east, 3600)->cpu_mean[slot], 700);
  EXPECT_FLOAT_EQ(AppProfileFromObject(east, -86400 + 3600)->cpu_mean[slot], 700);  // a day on
  EXPECT_EQ(AppProfileFromObject(east, 1800 + 60).status().code(), base::Code::kInvalid);

  ProfileStore restored;
  EXPECT_TRUE(restored.Restore(*back));
  ASSERT_NE(restored.Find("shop/Deployment/web"), nullptr);
  EXPECT_FLOAT_EQ(restored.Find("shop/Deployment/web")->cpu_mean[slot], 700);
  AppProfile other = *back;
  other.slots = 4;
  EXPECT_FALSE(restored.Restore(other));
  object["status"]["cpuStdMilli"] = Json::array({1});
  EXPECT_EQ(AppProfileFromObject(object).status().code(), base::Code::kInvalid);
  EXPECT_EQ(AppProfileName("ns/Pod/burn"), "pod-burn");
}

// Regression: the first sight of a new application committed every application's partial slot,
// so an application seen before had the first part of its slot taken as a cycle of its own (the
// slot's later samples then came in as a second cycle, the first decayed): its profile moved
// mid-slot and its slot mean leant to the later samples. A new application is learnt at once
// from what its slot has so far; the others learn their slot when it ends, as one cycle.
TEST(UsageFeedTest, NewApplicationDoesNotCommitOthersPartialSlot) {
  ProfileStore store;
  ProfileFeed feed(&store);
  NodeInfo n = Node("a", 4000);
  n.AddPod(Pod("web-0", 1000, Qos::kOnline, "shop/Deployment/web"), true);
  n.AddPod(Pod("batch-0", 1000, Qos::kOnline, "shop/Job/batch"), true);
  auto report =
      [&](const std::string& time,
          std::vector<std::tuple<std::string, std::string, std::string, std::string>> pods) {
        auto r = NodeUsageFromMetric(Metric("a", time, "2000m", pods));
        ASSERT_TRUE(r.ok());
        feed.Observe(*r, n);
      };
  report("2026-11-27T10:00:00Z", {{"shop", "web-0", "100m", "online"}});
  const AppProfile* web = store.Find("shop/Deployment/web");
  ASSERT_NE(web, nullptr);             // learnt at first sight
  int slot = web->SlotAt(1795773600);  // 10:00 UTC
  EXPECT_FLOAT_EQ(web->cpu_mean[slot], 100);
  // Later in the same 15-minute slot the Job appears.
  report("2026-11-27T10:05:00Z",
         {{"shop", "web-0", "300m", "online"}, {"shop", "batch-0", "50m", "online"}});
  const AppProfile* batch = store.Find("shop/Job/batch");
  ASSERT_NE(batch, nullptr);  // learnt at first sight
  EXPECT_FLOAT_EQ(batch->cpu_mean[slot], 50);
  EXPECT_FLOAT_EQ(web->cpu_mean[slot], 100) << "web's slot is not over";
  // The slot ends: web's slot is the mean of its samples (100, 300), one cycle; the Job's too.
  report("2026-11-27T10:15:00Z",
         {{"shop", "web-0", "900m", "online"}, {"shop", "batch-0", "70m", "online"}});
  EXPECT_FLOAT_EQ(web->cpu_mean[slot], 200);
  EXPECT_FLOAT_EQ(web->cpu_std[slot], 100);
  EXPECT_FLOAT_EQ(batch->cpu_mean[slot], 50);
  // The Job's first slot, learnt early from a part of it, counts once when it ends: its next
  // slot (10:15, 70m) decays nothing of it.
  EXPECT_FLOAT_EQ(batch->cpu_mean[(slot + 1) % 96], 50);  // not learnt yet: the profile's mean
  report("2026-11-27T10:30:00Z", {{"shop", "batch-0", "70m", "online"}});
  EXPECT_FLOAT_EQ(batch->cpu_mean[(slot + 1) % 96], 70);
  EXPECT_FLOAT_EQ(batch->cpu_mean[slot], 50);
}

// Profiles in another time zone (--profile-utc-offset): a report at 23:50 UTC is 07:50 at UTC+8,
// and the slots change at local quarter hours.
TEST(UsageFeedTest, ProfileSlotsAreCountedInTheProfilesTimeZone) {
  ProfileStore store;
  ProfileFeed feed(&store, 8 * 3600);
  NodeInfo n = Node("a", 4000);
  n.AddPod(Pod("web-0", 1000, Qos::kOnline, "shop/Deployment/web"), true);
  for (auto [time, cpu] : {std::pair{"2026-11-27T23:50:00Z", "100m"},     // 07:50: slot 31
                           std::pair{"2026-11-28T00:05:00Z", "300m"},     // 08:05: slot 32
                           std::pair{"2026-11-28T00:20:00Z", "500m"}}) {  // 08:20: slot 33
    auto r = NodeUsageFromMetric(Metric("a", time, "2000m", {{"shop", "web-0", cpu, "online"}}));
    ASSERT_TRUE(r.ok());
    feed.Observe(*r, n);
  }
  const AppProfile* web = store.Find("shop/Deployment/web");
  ASSERT_NE(web, nullptr);
  EXPECT_FLOAT_EQ(web->cpu_mean[31], 100);
  EXPECT_FLOAT_EQ(web->cpu_mean[32], 300);
  EXPECT_FLOAT_EQ(web->cpu_mean[95], 200);  // UTC's 23:45 slot: never seen, the profile's mean
}

TEST(UsageFeedTest, WriterCreatesUpdatesAndLoadsProfiles) {
  client::TestServer server;
  ASSERT_TRUE(server.client().Create(ResourcePath("v1", "namespaces"),
                                     {{"metadata", {{"name", "shop"}}}}).ok());
  ProfileStore store;
  store.Observe("shop/Deployment/web", 1795773600, 400.0);
  store.Commit();
  AppProfileWriter writer(&server.client(), 60s);
  base::WallTime t0 = base::WallTime{} + 1795773600s;
  auto due = writer.Due(store, t0);
  ASSERT_EQ(due.size(), 1u);
  ASSERT_TRUE(writer.Write(due).ok());
  EXPECT_TRUE(writer.Due(store, t0 + 120s).empty());  // unchanged
  store.Observe("shop/Deployment/web", 1795773600, 600.0);
  store.Commit();
  EXPECT_TRUE(writer.Due(store, t0 + 30s).empty());   // changed, but written 30 s ago
  due = writer.Due(store, t0 + 61s);
  ASSERT_EQ(due.size(), 1u);
  ASSERT_TRUE(writer.Write(due).ok());

  auto got = server.client().Get(ResourcePath(kGv, "appprofiles", "shop", "deployment-web"));
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ((*got)["spec"]["app"], "shop/Deployment/web");
  EXPECT_GT((*got)["status"]["samples"].get<int64_t>(), 0);

  ProfileStore fresh;
  AppProfileWriter reader(&server.client(), 60s);
  auto loaded = reader.Load(&fresh);
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  EXPECT_EQ(*loaded, 1);
  ASSERT_NE(fresh.Find("shop/Deployment/web"), nullptr);
  const AppProfile& before = *store.Find("shop/Deployment/web");
  const AppProfile& after = *fresh.Find("shop/Deployment/web");
  int slot = before.SlotAt(1795773600);
  EXPECT_NEAR(after.cpu_mean[slot], before.cpu_mean[slot], 0.05);  // objects keep 0.1m
  EXPECT_NEAR(after.cpu_std[slot], before.cpu_std[slot], 0.05);
  EXPECT_NEAR(after.cpu_mean[(slot + 1) % 96], before.cpu_mean[(slot + 1) % 96], 0.05);
  EXPECT_TRUE(reader.Due(fresh, t0).empty());  // what was just read is not written back
}

// The live scheduler reads NodeMetrics: under load-aware a pod goes to the node that measured
// less, the Scheduled event says what it measured, and the pods' usage becomes AppProfiles.
TEST(UsageFeedTest, LiveSchedulerPlacesByNodeMetricsAndWritesProfiles) {
  client::TestServer server;
  client::ApiClient& api = server.client();
  for (const char* name : {"busy", "idle"}) {
    Json node = {{"metadata", {{"name", name}, {"labels", {{"kubernetes.io/hostname", name}}}}}};
    ASSERT_TRUE(api.Create(ResourcePath("v1", "nodes"), node).ok());
    Json status = {{"status",
                    {{"allocatable", {{"cpu", "4"}, {"memory", "8Gi"}, {"pods", "110"}}},
                     {"conditions", {{{"type", "Ready"}, {"status", "True"}}}}}}};
    ASSERT_TRUE(api.Patch(ResourcePath("v1", "nodes", "", name, "status"),
                          client::PatchType::kMerge, status).ok());
  }
  // A pod already on "busy", requesting little and using a lot.
  Json burn = {{"metadata", {{"name", "burn"}}},
               {"spec",
                {{"nodeName", "busy"},
                 {"containers", {{{"name", "c"}, {"image", "x"},
                                  {"resources", {{"requests", {{"cpu", "100m"}}}}}}}}}}};
  ASSERT_TRUE(api.Create(ResourcePath("v1", "pods", "default"), burn).ok());
  // "idle" holds more requests, so the requests policy would pick "busy".
  Json reserved = burn;
  reserved["metadata"]["name"] = "reserved";
  reserved["spec"]["nodeName"] = "idle";
  reserved["spec"]["containers"][0]["resources"]["requests"]["cpu"] = "2";
  ASSERT_TRUE(api.Create(ResourcePath("v1", "pods", "default"), reserved).ok());

  LiveSchedulerOptions options;
  options.policy = "load-aware";
  base::FakeClock clock(base::RealClock()->Now());
  auto s = StartLiveScheduler(&api, &clock, options);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  std::string now = base::FormatRfc3339(clock.Now());
  for (auto [node, cpu, pods] :
       {std::tuple{"busy", "3600m", std::vector<std::tuple<std::string, std::string, std::string, std::string>>{
                                       {"default", "burn", "3400m", "online"}}},
        std::tuple{"idle", "200m", std::vector<std::tuple<std::string, std::string, std::string, std::string>>{
                                      {"default", "reserved", "100m", "online"}}}}) {
    Json m = Metric(node, now, cpu, pods);
    ASSERT_TRUE(api.Create(ResourcePath(kGv, "nodemetrics"), m).ok());
    auto r = api.Patch(ResourcePath(kGv, "nodemetrics", "", node, "status"),
                       client::PatchType::kMerge, Json{{"status", m["status"]}});
    ASSERT_TRUE(r.ok()) << r.status().ToString();
  }
  // The pods' AppProfiles show up once the scheduler has learnt from both reports.
  EXPECT_TRUE(Eventually([&] {
    return api.Get(ResourcePath(kGv, "appprofiles", "default", "pod-burn")).ok() &&
           api.Get(ResourcePath(kGv, "appprofiles", "default", "pod-reserved")).ok();
  }, 30s));
  Json probe = burn;
  probe["metadata"]["name"] = "probe";
  probe["spec"].erase("nodeName");
  ASSERT_TRUE(api.Create(ResourcePath("v1", "pods", "default"), probe).ok());
  std::string node;
  EXPECT_TRUE(Eventually([&] {
    auto got = api.Get(ResourcePath("v1", "pods", "default", "probe"));
    node = got.ok() ? base::StringAt(*got, {"spec", "nodeName"}) : "";
    return !node.empty();
  }));
  EXPECT_EQ(node, "idle");
  auto scheduled_message = [&](const std::string& pod) {
    std::string message;
    EXPECT_TRUE(Eventually([&] {
      auto events = api.Get(ResourcePath("v1", "events", "default"));
      if (!events.ok()) return false;
      for (const Json& e : (*events)["items"]) {
        if (e["reason"] == "Scheduled" && e["involvedObject"]["name"] == pod) message = e["message"];
      }
      return !message.empty();
    }));
    return message;
  };
  EXPECT_EQ(scheduled_message("probe"),
            "Successfully assigned default/probe to idle (load-aware: measured cpu 200m/4000m, "
            "memory 1024Mi/8192Mi)");

  // Reports older than Koordinator's expiry count as no usage at all: nothing is filtered by
  // usage, and the event has nothing measured to name.
  clock.Advance(kUsageExpiry + 1s);
  probe["metadata"]["name"] = "probe-2";
  ASSERT_TRUE(api.Create(ResourcePath("v1", "pods", "default"), probe).ok());
  std::string message = scheduled_message("probe-2");
  EXPECT_EQ(message.find("measured"), std::string::npos) << message;
  (*s)->Stop();
}

}  // namespace
}  // namespace fulcrum::scheduler
