#include "apiserver/metrics_api.h"

#include <gtest/gtest.h>

#include "apiserver/objects.h"

namespace fulcrum::apiserver {
namespace {

using base::Json;
using namespace std::chrono_literals;

class MetricsApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    api::AddBuiltinTypes(&registry_);
    store_ = std::move(store::OpenStore("memory:")).value();
    cache_ = std::make_unique<WatchCache>(&registry_, store_.get());
    ASSERT_TRUE(cache_->Start().ok());
    objects_ = std::make_unique<Objects>(&registry_, store_.get(), cache_.get(), &clock_);
    ASSERT_TRUE(objects_->EnsureSystemNamespaces().ok());
    Create("", "namespaces", "", {{"metadata", {{"name", "shop"}}}});
    Create("", "nodes", "", {{"metadata", {{"name", "n1"}, {"labels", {{"zone", "a"}}}}}});
    Create("", "nodes", "", {{"metadata", {{"name", "n2"}, {"labels", {{"zone", "b"}}}}}});
    for (const char* name : {"web-0", "web-1"}) {
      Create("", "pods", "shop",
             {{"metadata", {{"name", name}, {"labels", {{"app", name == std::string("web-0") ? "web" : "other"}}}}},
              {"spec", {{"containers", {{{"name", "app"}, {"image", "busybox"}}}}}}});
    }
    Metric("n1", "2026-11-27T03:30:20Z", R"([
        {"namespace":"shop","name":"web-0","usage":{"cpu":"900m","memory":"1000"},
         "containers":[{"name":"app","usage":{"cpu":"900m","memory":"1000"}}]},
        {"namespace":"shop","name":"gone","usage":{"cpu":"1","memory":"1"},
         "containers":[{"name":"app","usage":{"cpu":"1","memory":"1"}}]}])");
    Metric("n2", "2026-11-27T03:30:30Z", R"([
        {"namespace":"shop","name":"web-1","containers":[{"name":"app","usage":{"cpu":"5m","memory":"2048"}}]}])");
    // The metrics API reads the watch cache as it is (as metrics-server serves its last scrape);
    // the cache takes the writes above from the store's events, after they are acknowledged.
    ASSERT_TRUE(cache_->WaitForFresh(std::chrono::seconds(5)).ok());
  }

  void Create(const std::string& group, const std::string& plural, const std::string& ns, Json obj) {
    const api::ResourceType* t = registry_.Find(group, group.empty() ? "v1" : "v1alpha1", plural);
    ASSERT_NE(t, nullptr);
    obj["apiVersion"] = t->GroupVersion();
    obj["kind"] = t->kind;
    auto r = objects_->Create(*t, ns, obj, {}, nullptr);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
  }

  void Metric(const std::string& node, const std::string& time, const char* pods) {
    Create("scheduling.fulcrum.dev", "nodemetrics", "", {{"metadata", {{"name", node}}}});
    const api::ResourceType* t = registry_.Find("scheduling.fulcrum.dev", "v1alpha1", "nodemetrics");
    Json status = {{"updateTime", time},
                   {"windowSeconds", 15},
                   {"nodeMetric", {{"usage", {{"cpu", "1500m"}, {"memory", "4096"}}}}},
                   {"podsMetric", Json::parse(pods)}};
    auto r = objects_->Mutate(
        *t, "", node, [&](const Json& cur) -> base::Result<Json> {
          Json next = cur;
          next["status"] = status;
          return next;
        },
        Subresource::kStatus, {}, nullptr);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
  }

  std::pair<int, Json> Get(const std::string& path_and_query) {
    HttpRequest request;
    request.method = "GET";
    size_t q = path_and_query.find('?');
    request.path = path_and_query.substr(0, q);
    if (q != std::string::npos) request.query = ParseQuery(path_and_query.substr(q + 1));
    auto r = ServeMetricsApi(request, registry_, *cache_, clock_);
    if (!r) return {0, nullptr};
    return {r->status, Json::parse(r->body)};
  }

  std::vector<std::string> Names(const Json& list) {
    std::vector<std::string> out;
    for (const Json& i : list["items"]) {
      out.push_back(i["metadata"].value("namespace", "") + "/" + i["metadata"]["name"].get<std::string>());
    }
    return out;
  }

  base::FakeClock clock_{std::chrono::system_clock::from_time_t(1795750231)};  // 03:30:31Z
  api::Registry registry_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<WatchCache> cache_;
  std::unique_ptr<Objects> objects_;
};

TEST_F(MetricsApiTest, Discovery) {
  EXPECT_EQ(Get("/apis/metrics.k8s.io").second["preferredVersion"]["groupVersion"],
            "metrics.k8s.io/v1beta1");
  Json list = Get("/apis/metrics.k8s.io/v1beta1").second;
  EXPECT_EQ(list["kind"], "APIResourceList");
  EXPECT_EQ(list["resources"][0]["name"], "nodes");
  EXPECT_EQ(list["resources"][1]["kind"], "PodMetrics");
  EXPECT_EQ(Get("/apis/apps/v1").first, 0);  // not ours
}

TEST_F(MetricsApiTest, NodeMetrics) {
  auto [code, list] = Get("/apis/metrics.k8s.io/v1beta1/nodes");
  EXPECT_EQ(code, 200);
  EXPECT_EQ(list["kind"], "NodeMetricsList");
  EXPECT_EQ(Names(list), (std::vector<std::string>{"/n1", "/n2"}));
  const Json& n1 = list["items"][0];
  EXPECT_EQ(n1["usage"], Json::parse(R"({"cpu":"1500m","memory":"4096"})"));
  EXPECT_EQ(n1["timestamp"], "2026-11-27T03:30:20Z");
  EXPECT_EQ(n1["window"], "15s");
  EXPECT_EQ(n1["metadata"]["labels"]["zone"], "a");
  EXPECT_EQ(Names(Get("/apis/metrics.k8s.io/v1beta1/nodes?labelSelector=zone%3Db").second),
            (std::vector<std::string>{"/n2"}));
  EXPECT_EQ(Get("/apis/metrics.k8s.io/v1beta1/nodes/n2").second["kind"], "NodeMetrics");
  EXPECT_EQ(Get("/apis/metrics.k8s.io/v1beta1/nodes/n3").first, 404);
  EXPECT_EQ(Get("/apis/metrics.k8s.io/v1beta1/nodes?labelSelector=%3D%3D").first, 400);

  // A report older than five report intervals (15 s each by default; at least a minute) is stale.
  clock_.Advance(70s);
  EXPECT_EQ(Names(Get("/apis/metrics.k8s.io/v1beta1/nodes").second),
            (std::vector<std::string>{"/n2"}));
  EXPECT_EQ(Get("/apis/metrics.k8s.io/v1beta1/nodes/n1").first, 404);
}

TEST_F(MetricsApiTest, PodMetrics) {
  // The pod that no longer exists has no metrics.
  Json all = Get("/apis/metrics.k8s.io/v1beta1/pods").second;
  EXPECT_EQ(all["kind"], "PodMetricsList");
  EXPECT_EQ(Names(all), (std::vector<std::string>{"shop/web-0", "shop/web-1"}));
  EXPECT_EQ(all["items"][0]["containers"],
            Json::parse(R"([{"name":"app","usage":{"cpu":"900m","memory":"1000"}}])"));
  EXPECT_EQ(all["items"][0]["metadata"]["labels"]["app"], "web");
  EXPECT_EQ(Names(Get("/apis/metrics.k8s.io/v1beta1/namespaces/shop/pods?labelSelector=app%3Dweb")
                      .second),
            (std::vector<std::string>{"shop/web-0"}));
  EXPECT_EQ(Names(Get("/apis/metrics.k8s.io/v1beta1/namespaces/default/pods").second),
            (std::vector<std::string>{}));
  EXPECT_EQ(
      Names(Get("/apis/metrics.k8s.io/v1beta1/pods?fieldSelector=metadata.name%3Dweb-1").second),
      (std::vector<std::string>{"shop/web-1"}));
  EXPECT_EQ(Get("/apis/metrics.k8s.io/v1beta1/pods?fieldSelector=spec.nodeName%3Dx").first, 400);
  auto [code, one] = Get("/apis/metrics.k8s.io/v1beta1/namespaces/shop/pods/web-1");
  EXPECT_EQ(code, 200);
  EXPECT_EQ(one["kind"], "PodMetrics");
  EXPECT_EQ(one["window"], "15s");
  EXPECT_EQ(Get("/apis/metrics.k8s.io/v1beta1/namespaces/shop/pods/gone").first, 404);
}

}  // namespace
}  // namespace fulcrum::apiserver
