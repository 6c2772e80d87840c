#include "controllers/node_lifecycle_controller.h"

#include <gtest/gtest.h>

#include <thread>

#include "client/test_server.h"

namespace fulcrum::controllers {
namespace {

using client::Eventually;

using base::Json;
using client::PatchType;
using client::ResourcePath;
using namespace std::chrono_literals;

class NodeLifecycleTest : public ::testing::Test {
 protected:
  NodeLifecycleTest()
      : clock_(base::RealClock()->Now()),
        nodes_(&api(), "/api/v1/nodes", ""),
        leases_(&api(), "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases", ""),
        pods_(&api(), "/api/v1/pods", ""),
        controller_(&api(), &clock_, &nodes_, &leases_, &pods_) {}

  void SetUp() override {
    for (auto* i : {&nodes_, &leases_, &pods_}) {
      i->Start();
      ASSERT_TRUE(i->WaitForSync(5s));
    }
    ASSERT_TRUE(api().Create(ResourcePath("v1", "nodes"), Json{{"metadata", {{"name", "n1"}}}}).ok());
    SetReady("True");
    auto ns = api().Create(ResourcePath("v1", "namespaces"), Json{{"metadata", {{"name", "kube-node-lease"}}}});
    ASSERT_TRUE(ns.ok() || ns.status().IsAlreadyExists()) << ns.status().ToString();
    Json lease = {{"metadata", {{"name", "n1"}}},
                  {"spec", {{"holderIdentity", "n1"}, {"leaseDurationSeconds", 40},
                            {"renewTime", base::FormatRfc3339Micro(clock_.Now())}}}};
    ASSERT_TRUE(api().Create(ResourcePath("coordination.k8s.io/v1", "leases", "kube-node-lease"), lease).ok());
    ASSERT_TRUE(Eventually([&] { return leases_.Get("kube-node-lease/n1") != nullptr && nodes_.Get("n1") != nullptr; }));
  }

  void TearDown() override {
    for (auto* i : {&nodes_, &leases_, &pods_}) i->Stop();
  }

  client::ApiClient& api() { return server_.client(); }

  void SetReady(const std::string& status) {
    auto r = api().Patch(ResourcePath("v1", "nodes", "", "n1", "status"), PatchType::kMerge,
                         Json{{"status", {{"conditions", {{{"type", "Ready"}, {"status", status}}}}}}});
    ASSERT_TRUE(r.ok()) << r.status().ToString();
  }

  // Checks once the informers show what the API has.
  void Check() {
    std::string rv = base::StringAt(*api().Get(ResourcePath("v1", "nodes", "", "n1")), {"metadata", "resourceVersion"});
    ASSERT_TRUE(Eventually([&] {
      auto n = nodes_.Get("n1");
      return n != nullptr && base::StringAt(*n, {"metadata", "resourceVersion"}) == rv;
    }));
    controller_.CheckNodes();
  }

  Json Node() { return *api().Get(ResourcePath("v1", "nodes", "", "n1")); }

  client::TestServer server_;
  base::FakeClock clock_;
  client::Informer nodes_, leases_, pods_;
  NodeLifecycleController controller_;
};

TEST_F(NodeLifecycleTest, SilentNodeIsTaintedItsPodsEvictedAndItRecovers) {
  Check();
  EXPECT_FALSE(Node()["spec"].contains("taints"));

  Json pod = {{"metadata", {{"name", "p"}}},
              {"spec", {{"nodeName", "n1"}, {"containers", {{{"name", "c"}, {"image", "x"}}}}}}};
  ASSERT_TRUE(api().Create(ResourcePath("v1", "pods", "default"), pod).ok());
  Json patient = pod;
  patient["metadata"]["name"] = "patient";
  patient["spec"]["tolerations"] = Json::array({{{"key", "node.kubernetes.io/unreachable"},
                                                 {"operator", "Exists"}, {"effect", "NoExecute"}}});
  ASSERT_TRUE(api().Create(ResourcePath("v1", "pods", "default"), patient).ok());
  ASSERT_TRUE(Eventually([&] { return pods_.List().size() == 2; }));

  clock_.Advance(41s);
  Check();
  Json node = Node();
  EXPECT_EQ(node["status"]["conditions"][0]["status"], "Unknown");
  EXPECT_EQ(node["status"]["conditions"][0]["message"], "Kubelet stopped posting node status.");
  Check();  // taints are added once the condition is seen
  node = Node();
  ASSERT_TRUE(node["spec"]["taints"].is_array()) << node.dump();
  EXPECT_EQ(node["spec"]["taints"].size(), 2u);

  clock_.Advance(299s);
  Check();
  EXPECT_TRUE(api().Get(ResourcePath("v1", "pods", "default", "p")).ok()) << "evicted too early";
  clock_.Advance(2s);
  Check();
  auto evicted = api().Get(ResourcePath("v1", "pods", "default", "p"));
  EXPECT_TRUE(!evicted.ok() || evicted->contains("metadata") && (*evicted)["metadata"].contains("deletionTimestamp"));
  auto kept = api().Get(ResourcePath("v1", "pods", "default", "patient"));
  ASSERT_TRUE(kept.ok());
  EXPECT_FALSE((*kept)["metadata"].contains("deletionTimestamp")) << "it tolerates the taint forever";

  // The agent comes back: Lease renewed, Ready reported; the taints go.
  ASSERT_TRUE(api().Patch(ResourcePath("coordination.k8s.io/v1", "leases", "kube-node-lease", "n1"),
                          PatchType::kMerge,
                          Json{{"spec", {{"renewTime", base::FormatRfc3339Micro(clock_.Now())}}}})
                  .ok());
  SetReady("True");
  ASSERT_TRUE(Eventually([&] {
    auto l = leases_.Get("kube-node-lease/n1");
    return l != nullptr && base::StringAt(*l, {"spec", "renewTime"}) == base::FormatRfc3339Micro(clock_.Now());
  }));
  Check();
  node = Node();
  EXPECT_TRUE(!node["spec"].contains("taints") || node["spec"]["taints"].empty()) << node.dump();
}

}  // namespace
}  // namespace fulcrum::controllers
