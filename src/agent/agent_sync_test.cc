// Pod sync against a real API server in this process, with a fake container runtime, a fake pod
// network, a scripted prober and a fake clock: no root, no containers.
#include <gtest/gtest.h>
#include <signal.h>

#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "agent/agent.h"
#include "agent/image_store.h"
#include "agent/logs.h"
#include "agent/network.h"
#include "agent/probe.h"
#include "agent/runtime.h"
#include "client/test_server.h"

namespace fulcrum::agent {
namespace {

using client::Eventually;

using base::Json;
using base::Status;
using namespace std::chrono_literals;

struct FakeRuntime : ContainerRuntime {
  struct Container {
    ContainerStatus status = ContainerStatus::kCreated;
    int exit_code = 0;
    bool has_exit = false;
    int creates = 0;
  };
  Status Create(const std::string& id, const ContainerBundle& bundle) override {
    std::lock_guard lock(mu);
    auto it = containers.find(id);
    if (it != containers.end() && it->second.status != ContainerStatus::kStopped) {
      return base::AlreadyExists(id);
    }
    Container& c = containers[id];
    c.status = ContainerStatus::kCreated;
    c.has_exit = false;
    ++c.creates;
    return Status::Ok();
  }
  Status Start(const std::string& id) override {
    std::lock_guard lock(mu);
    if (!containers.count(id)) return base::NotFound(id);
    containers[id].status = ContainerStatus::kRunning;
    return Status::Ok();
  }
  base::Result<ContainerState> State(const std::string& id) override {
    std::lock_guard lock(mu);
    auto it = containers.find(id);
    if (it == containers.end()) return base::NotFound(id);
    ContainerState s;
    s.status = it->second.status;
    s.has_exit_code = it->second.has_exit;
    s.exit_code = it->second.exit_code;
    s.pid = s.status == ContainerStatus::kStopped ? 0 : 4242;
    return s;
  }
  Status Kill(const std::string& id, int signal) override {
    std::lock_guard lock(mu);
    auto it = containers.find(id);
    if (it == containers.end()) return base::NotFound(id);
    if (it->second.status == ContainerStatus::kStopped) return base::Conflict(id + " not running");
    signals.push_back(id + " " + std::to_string(signal));
    if (signal == SIGTERM && ignore_sigterm) return Status::Ok();
    it->second.status = ContainerStatus::kStopped;
    it->second.has_exit = true;
    it->second.exit_code = 128 + signal;
    return Status::Ok();
  }
  base::Result<ExecResult> Exec(const std::string&, const std::vector<std::string>&,
                                std::chrono::milliseconds) override {
    return ExecResult{0, ""};
  }
  Status Delete(const std::string& id) override {
    std::lock_guard lock(mu);
    if (containers.erase(id)) deleted.push_back(id);
    return Status::Ok();
  }

  // The container's process exits with `code`.
  void Exit(const std::string& id, int code) {
    std::lock_guard lock(mu);
    Container& c = containers.at(id);
    c.status = ContainerStatus::kStopped;
    c.has_exit = true;
    c.exit_code = code;
  }
  int Creates(const std::string& id) {
    std::lock_guard lock(mu);
    return containers.count(id) ? containers[id].creates : 0;
  }
  bool Has(const std::string& id) {
    std::lock_guard lock(mu);
    return containers.count(id) > 0;
  }

  std::mutex mu;
  std::map<std::string, Container> containers;
  std::vector<std::string> signals, deleted;
  bool ignore_sigterm = false;
};

struct FakeNetwork : PodNetwork {
  base::Result<PodNetworkStatus> Setup(const PodNetworkRequest& r) override {
    std::lock_guard lock(mu);
    if (!pods.count(r.uid)) pods[r.uid] = "10.0.0." + std::to_string(pods.size() + 2);
    return StatusOf(r.uid);
  }
  base::Result<PodNetworkStatus> Get(const std::string& uid) override {
    std::lock_guard lock(mu);
    if (!pods.count(uid)) return base::NotFound(uid);
    return StatusOf(uid);
  }
  Status Teardown(const std::string& uid) override {
    std::lock_guard lock(mu);
    pods.erase(uid);
    torn_down.insert(uid);
    return Status::Ok();
  }
  PodNetworkStatus StatusOf(const std::string& uid) {
    return {"/fake/netns/" + uid, pods[uid], "10.0.0.1", "/fake/hosts", "/fake/resolv.conf"};
  }
  std::mutex mu;
  std::map<std::string, std::string> pods;
  std::set<std::string> torn_down;
};

struct FailingProber : Prober {
  ProbeOutcome Probe(const ProbeSpec&, const ProbeTarget&) override {
    return {!fail, fail ? "scripted failure" : ""};
  }
  std::atomic<bool> fail{false};
};

class AgentSyncTest : public ::testing::Test {
 protected:
  // One API server for the suite, kept until the process exits: cheaper than one per test, and
  // stopping a server while clients still hold keep-alive connections is not what is tested here.
  static void SetUpTestSuite() {
    if (shared_server_ == nullptr) shared_server_ = new client::TestServer();
  }

  void SetUp() override {
    root_ = dir_.path() + "/agent";
    auto images = ImageStore::Open(root_);
    ASSERT_TRUE(images.ok()) << images.status().ToString();
    images_ = std::move(*images);
    auto imported = images_->Import(FULCRUM_DEMO_IMAGE);
    ASSERT_TRUE(imported.ok()) << imported.status().ToString();
    auto logs = LogCapture::Start();
    ASSERT_TRUE(logs.ok());
    logs_ = std::move(*logs);
    clock_.Set(std::chrono::system_clock::now());
    StartAgent();
  }
  void TearDown() override { agent_.reset(); }

  void StartAgent() {
    agent_.reset();
    AgentOptions o;
    o.node_name = "n1";
    o.root = root_;
    o.runc = "";
    o.node_ip = "192.0.2.10";
    AgentDeps deps{&api(), images_.get(), &runtime_, &network_, logs_.get(),
                   &prober_,          nullptr,       &clock_,   nullptr};
    agent_ = std::make_unique<NodeAgent>(o, deps);
    base::Status s = agent_->Init();
    ASSERT_TRUE(s.ok()) << s.ToString();
    s = agent_->StartInformer();
    ASSERT_TRUE(s.ok()) << s.ToString();
  }

  client::ApiClient& api() { return shared_server_->client(); }
  std::string PodPath(const std::string& name) {
    return client::ResourcePath("v1", "pods", "default", name);
  }

  Json CreatePod(const std::string& name, Json spec, Json annotations = Json::object()) {
    spec["nodeName"] = "n1";
    Json pod = {{"apiVersion", "v1"},
                {"kind", "Pod"},
                {"metadata", {{"name", name}, {"annotations", annotations}}},
                {"spec", spec}};
    auto created = api().Create(client::ResourcePath("v1", "pods", "default"), pod);
    EXPECT_TRUE(created.ok()) << created.status().ToString();
    return created.ok() ? *created : Json();
  }

  // Syncs once the informer has the API's current version of the pod.
  void Sync(const std::string& name) {
    auto current = api().Get(PodPath(name));
    std::string rv = current.ok() ? base::StringAt(*current, {"metadata", "resourceVersion"}) : "";
    ASSERT_TRUE(Eventually([&] {
      auto cached = agent_->CachedPod("default/" + name);
      return rv.empty() ? cached == nullptr
                        : cached && base::StringAt(*cached, {"metadata", "resourceVersion"}) == rv;
    })) << "informer never caught up with " << name;
    agent_->SyncPod("default/" + name);
  }

  Json PodStatus(const std::string& name) {
    auto pod = api().Get(PodPath(name));
    EXPECT_TRUE(pod.ok()) << pod.status().ToString();
    return pod.ok() ? (*pod)["status"] : Json();
  }

  static inline client::TestServer* shared_server_ = nullptr;
  client::TestDir dir_;
  std::string root_;
  std::unique_ptr<ImageStore> images_;
  FakeRuntime runtime_;
  FakeNetwork network_;
  std::unique_ptr<LogCapture> logs_;
  FailingProber prober_;
  base::FakeClock clock_;
  std::unique_ptr<NodeAgent> agent_;
};

Json Container(const std::string& name) {
  return {{"name", name}, {"image", "fulcrum.dev/busybox:demo"}, {"command", {"sleep", "3600"}}};
}

TEST_F(AgentSyncTest, RegistersTheNodeAndItsLease) {
  auto node = api().Get(client::ResourcePath("v1", "nodes", "", "n1"));
  ASSERT_TRUE(node.ok()) << node.status().ToString();
  EXPECT_EQ((*node)["status"]["addresses"][0]["address"], "192.0.2.10");
  EXPECT_TRUE((*node)["status"]["capacity"].contains("ephemeral-storage"));
  auto lease = api().Get(
      client::ResourcePath("coordination.k8s.io/v1", "leases", "kube-node-lease", "n1"));
  ASSERT_TRUE(lease.ok()) << lease.status().ToString();
  EXPECT_EQ((*lease)["spec"]["holderIdentity"], "n1");
  EXPECT_EQ((*lease)["metadata"]["ownerReferences"][0]["kind"], "Node");
  ASSERT_TRUE(agent_->Heartbeat().ok());
}

TEST_F(AgentSyncTest, InitContainersFirstThenRunning) {
  Json pod = CreatePod("web", {{"initContainers", {Container("init")}},
                               {"containers", {Container("app")}}});
  const std::string uid = pod["metadata"]["uid"];
  const std::string init = ContainerIdFor(uid, "init"), app = ContainerIdFor(uid, "app");
  Sync("web");
  EXPECT_TRUE(runtime_.Has(init));
  EXPECT_FALSE(runtime_.Has(app));
  Json s = PodStatus("web");
  EXPECT_EQ(s["phase"], "Pending");
  EXPECT_EQ(s["podIP"], "10.0.0.2");
  EXPECT_EQ(s["hostIP"], "192.0.2.10");
  EXPECT_TRUE(s["initContainerStatuses"][0]["state"].contains("running"));
  EXPECT_EQ(s["containerStatuses"][0]["state"]["waiting"]["reason"], "ContainerCreating");

  runtime_.Exit(init, 0);
  Sync("web");
  EXPECT_TRUE(runtime_.Has(app));
  s = PodStatus("web");
  EXPECT_EQ(s["phase"], "Running");
  EXPECT_EQ(s["initContainerStatuses"][0]["state"]["terminated"]["reason"], "Completed");
  const Json& cs = s["containerStatuses"][0];
  EXPECT_EQ(cs["containerID"], "runc://" + app);
  EXPECT_EQ(cs["ready"], true);
  EXPECT_EQ(cs["restartCount"], 0);
  EXPECT_TRUE(cs["imageID"].get<std::string>().find("@sha256:") != std::string::npos);
  std::map<std::string, std::string> conditions;
  for (const Json& c : s["conditions"]) conditions[c["type"]] = c["status"];
  EXPECT_EQ(conditions["Initialized"], "True");
  EXPECT_EQ(conditions["Ready"], "True");
  EXPECT_EQ(conditions["PodScheduled"], "True");
  agent_->FlushEvents();
  auto events = api().Get(client::ResourcePath("v1", "events", "default"));
  ASSERT_TRUE(events.ok());
  std::set<std::string> reasons;
  for (const Json& e : (*events)["items"]) reasons.insert(e["reason"]);
  EXPECT_TRUE(reasons.count("Pulled") && reasons.count("Created") && reasons.count("Started"));
}

TEST_F(AgentSyncTest, RestartsInPlaceWithBackOff) {
  Json pod = CreatePod("crash", {{"containers", {Container("app")}}});
  const std::string app = ContainerIdFor(pod["metadata"]["uid"], "app");
  Sync("crash");
  runtime_.Exit(app, 2);
  Sync("crash");  // the first restart is immediate, on the same container (reuse)
  EXPECT_EQ(runtime_.Creates(app), 2);
  Json cs = PodStatus("crash")["containerStatuses"][0];
  EXPECT_EQ(cs["restartCount"], 1);
  EXPECT_EQ(cs["lastState"]["terminated"]["exitCode"], 2);
  EXPECT_EQ(cs["lastState"]["terminated"]["reason"], "Error");
  // One log file per run: the previous run's stays for `logs --previous`.
  const std::string uid = pod["metadata"]["uid"];
  EXPECT_TRUE(std::filesystem::exists(ContainerLogPath(root_, "default", "crash", uid, "app", 0)));
  EXPECT_TRUE(std::filesystem::exists(ContainerLogPath(root_, "default", "crash", uid, "app", 1)));

  runtime_.Exit(app, 2);
  Sync("crash");  // within the 10 s back-off: no restart
  EXPECT_EQ(runtime_.Creates(app), 2);
  cs = PodStatus("crash")["containerStatuses"][0];
  EXPECT_EQ(cs["state"]["waiting"]["reason"], "CrashLoopBackOff");
  agent_->SyncPod("default/crash");  // still waiting: no second event for the same back-off
  agent_->FlushEvents();
  auto events = api().Get(client::ResourcePath("v1", "events", "default"));
  ASSERT_TRUE(events.ok());
  int backoffs = 0;
  for (const Json& e : (*events)["items"]) {
    if (e["reason"] == "BackOff" && e["involvedObject"]["name"] == "crash") ++backoffs;
  }
  EXPECT_EQ(backoffs, 1);
  EXPECT_EQ(PodStatus("crash")["phase"], "Running");
  clock_.Advance(11s);
  Sync("crash");
  EXPECT_EQ(runtime_.Creates(app), 3);
  EXPECT_EQ(PodStatus("crash")["containerStatuses"][0]["restartCount"], 2);
}

TEST_F(AgentSyncTest, ReuseOffGivesFreshContainers) {
  Json pod = CreatePod("fresh", {{"containers", {Container("app")}}},
                       {{"fulcrum.dev/container-reuse", "false"}});
  const std::string uid = pod["metadata"]["uid"];
  const std::string first = ContainerIdFor(uid, "app");
  Sync("fresh");
  runtime_.Exit(first, 1);
  Sync("fresh");
  EXPECT_FALSE(runtime_.Has(first));
  EXPECT_TRUE(runtime_.Has(ContainerIdFor(uid, "app", 1)));
  EXPECT_EQ(PodStatus("fresh")["containerStatuses"][0]["containerID"],
            "runc://" + ContainerIdFor(uid, "app", 1));
}

TEST_F(AgentSyncTest, RestartPolicyNeverEndsThePod) {
  Json ok = CreatePod("ok", {{"restartPolicy", "Never"}, {"containers", {Container("app")}}});
  Json bad = CreatePod("bad", {{"restartPolicy", "OnFailure"}, {"containers", {Container("app")}}});
  Sync("ok");
  Sync("bad");
  runtime_.Exit(ContainerIdFor(ok["metadata"]["uid"], "app"), 0);
  runtime_.Exit(ContainerIdFor(bad["metadata"]["uid"], "app"), 0);
  Sync("ok");
  Sync("bad");
  EXPECT_EQ(PodStatus("ok")["phase"], "Succeeded");
  EXPECT_EQ(PodStatus("bad")["phase"], "Succeeded");  // OnFailure: exit 0 is not restarted
  Json never = CreatePod("never", {{"restartPolicy", "Never"}, {"containers", {Container("app")}}});
  Sync("never");
  runtime_.Exit(ContainerIdFor(never["metadata"]["uid"], "app"), 7);
  Sync("never");
  Json s = PodStatus("never");
  EXPECT_EQ(s["phase"], "Failed");
  EXPECT_EQ(s["containerStatuses"][0]["state"]["terminated"]["exitCode"], 7);
  EXPECT_EQ(runtime_.Creates(ContainerIdFor(never["metadata"]["uid"], "app")), 1);
}

TEST_F(AgentSyncTest, GracefulDeletionThenRemoval) {
  Json pod = CreatePod("bye", {{"terminationGracePeriodSeconds", 10},
                               {"containers", {Container("app")}}});
  const std::string uid = pod["metadata"]["uid"];
  const std::string app = ContainerIdFor(uid, "app");
  Sync("bye");
  runtime_.ignore_sigterm = true;
  ASSERT_TRUE(api().Delete(PodPath("bye")).ok());
  Sync("bye");
  EXPECT_EQ(runtime_.signals, std::vector<std::string>{app + " " + std::to_string(SIGTERM)});
  EXPECT_TRUE(api().Get(PodPath("bye")).ok());  // still there while it stops
  clock_.Advance(5s);
  agent_->SyncPod("default/bye");
  EXPECT_EQ(runtime_.signals.size(), 1u);
  clock_.Advance(6s);  // past the grace period
  agent_->SyncPod("default/bye");
  EXPECT_EQ(runtime_.signals.back(), app + " " + std::to_string(SIGKILL));
  agent_->SyncPod("default/bye");  // all stopped: clean up and remove the pod
  EXPECT_EQ(api().Get(PodPath("bye")).status().code(), base::Code::kNotFound);
  EXPECT_FALSE(runtime_.Has(app));
  EXPECT_TRUE(network_.torn_down.count(uid));
  EXPECT_FALSE(std::filesystem::exists(root_ + "/pods/" + uid));
}

TEST_F(AgentSyncTest, EvictionStopsThePodGracefullyAndReportsItEvicted) {
  Json pod = CreatePod("batch", {{"terminationGracePeriodSeconds", 10},
                                 {"restartPolicy", "OnFailure"},
                                 {"containers", {Container("app")}}});
  const std::string uid = pod["metadata"]["uid"];
  const std::string app = ContainerIdFor(uid, "app");
  Sync("batch");
  EXPECT_EQ(agent_->EvictPod("default/batch", "another-uid", "x").code(), base::Code::kNotFound);
  runtime_.ignore_sigterm = true;
  const std::string message = "The node was low on resource: cpu. Batch CPU satisfaction 2%";
  ASSERT_TRUE(agent_->EvictPod("default/batch", uid, message).ok());
  Sync("batch");
  EXPECT_EQ(runtime_.signals, std::vector<std::string>{app + " " + std::to_string(SIGTERM)});
  Json s = PodStatus("batch");
  EXPECT_EQ(s["phase"], "Running");  // still stopping, but already a disruption target
  bool disruption = false;
  for (const Json& c : s["conditions"]) {
    disruption |= c["type"] == "DisruptionTarget" && c["status"] == "True" &&
                  c["reason"] == "TerminationByKubelet";
  }
  EXPECT_TRUE(disruption) << s.dump();
  clock_.Advance(11s);  // past the grace period
  agent_->SyncPod("default/batch");
  EXPECT_EQ(runtime_.signals.back(), app + " " + std::to_string(SIGKILL));
  agent_->SyncPod("default/batch");
  s = PodStatus("batch");
  EXPECT_EQ(s["phase"], "Failed");
  EXPECT_EQ(s["reason"], "Evicted");
  EXPECT_EQ(s["message"], message);
  EXPECT_EQ(s["containerStatuses"][0]["state"]["terminated"]["exitCode"], 137);
  // Not restarted, although OnFailure would restart a container killed otherwise.
  clock_.Advance(60s);
  agent_->SyncPod("default/batch");
  EXPECT_EQ(runtime_.Creates(app), 1);
  agent_->FlushEvents();
  auto events = api().Get(client::ResourcePath("v1", "events", "default"));
  ASSERT_TRUE(events.ok());
  std::set<std::string> reasons;
  for (const Json& e : (*events)["items"]) {
    if (e["involvedObject"]["name"] == "batch") reasons.insert(e["reason"]);
  }
  EXPECT_TRUE(reasons.count("Evicted")) << (*events).dump();
  EXPECT_TRUE(reasons.count("Killing"));
}

TEST_F(AgentSyncTest, LivenessFailureRestartsTheContainer) {
  Json c = Container("app");
  c["livenessProbe"] = {{"exec", {{"command", {"true"}}}}, {"periodSeconds", 1},
                        {"failureThreshold", 2}};
  Json pod = CreatePod("sick", {{"containers", {c}}});
  const std::string app = ContainerIdFor(pod["metadata"]["uid"], "app");
  Sync("sick");
  prober_.fail = true;
  Sync("sick");  // first failure
  clock_.Advance(1s);
  agent_->SyncPod("default/sick");  // second: killed
  EXPECT_EQ(runtime_.signals, std::vector<std::string>{app + " " + std::to_string(SIGKILL)});
  prober_.fail = false;
  agent_->SyncPod("default/sick");  // exited: restarted in place
  EXPECT_EQ(runtime_.Creates(app), 2);
  EXPECT_EQ(PodStatus("sick")["containerStatuses"][0]["restartCount"], 1);
}

TEST_F(AgentSyncTest, ANewAgentAdoptsRunningContainers) {
  Json pod = CreatePod("kept", {{"containers", {Container("app")}}});
  const std::string app = ContainerIdFor(pod["metadata"]["uid"], "app");
  Sync("kept");
  Json before = PodStatus("kept")["containerStatuses"][0];
  StartAgent();  // the same root: state files from the first agent
  Sync("kept");
  EXPECT_EQ(runtime_.Creates(app), 1);
  Json after = PodStatus("kept")["containerStatuses"][0];
  EXPECT_EQ(after["state"], before["state"]);
  EXPECT_EQ(after["restartCount"], 0);
}

TEST_F(AgentSyncTest, MissingImageWaitsWithAReason) {
  Json c = Container("app");
  c["image"] = "registry.test/nothere:1";
  c["imagePullPolicy"] = "Never";
  CreatePod("noimage", {{"containers", {c}}});
  Sync("noimage");
  Json s = PodStatus("noimage");
  EXPECT_EQ(s["phase"], "Pending");
  EXPECT_EQ(s["containerStatuses"][0]["state"]["waiting"]["reason"], "ErrImageNeverPull");

  // A pull from a registry that is not there (a closed port on this machine): ErrImagePull,
  // then ImagePullBackOff while the back-off lasts.
  c["image"] = "127.0.0.1:1/nothere:1";
  c["imagePullPolicy"] = "IfNotPresent";
  CreatePod("unpullable", {{"containers", {c}}});
  Sync("unpullable");
  Json w = PodStatus("unpullable")["containerStatuses"][0]["state"]["waiting"];
  EXPECT_EQ(w["reason"], "ErrImagePull");
  EXPECT_NE(w["message"].get<std::string>().find("Failed to pull image \"127.0.0.1:1/nothere:1\""),
            std::string::npos)
      << w;
  Sync("unpullable");
  EXPECT_EQ(PodStatus("unpullable")["containerStatuses"][0]["state"]["waiting"]["reason"],
            "ImagePullBackOff");
}

}  // namespace
}  // namespace fulcrum::agent
