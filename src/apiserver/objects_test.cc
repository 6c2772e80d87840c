#include "apiserver/objects.h"

#include <gtest/gtest.h>

#include "apiserver/watch_cache.h"

namespace fulcrum::apiserver {
namespace {

using base::Json;

class ObjectsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    api::AddBuiltinTypes(&registry_);
    store_ = std::move(store::OpenStore("memory:")).value();
    cache_ = std::make_unique<WatchCache>(&registry_, store_.get());
    ASSERT_TRUE(cache_->Start().ok());
    objects_ = std::make_unique<Objects>(&registry_, store_.get(), cache_.get(), &clock_);
    ASSERT_TRUE(objects_->EnsureSystemNamespaces().ok());
    configmaps_ = registry_.Find("", "v1", "configmaps");
    pods_ = registry_.Find("", "v1", "pods");
    ASSERT_NE(configmaps_, nullptr);
  }

  Json ConfigMap(const std::string& name) {
    return {{"apiVersion", "v1"},
            {"kind", "ConfigMap"},
            {"metadata", {{"name", name}}},
            {"data", {{"k", "v"}}}};
  }

  Json Parse(const ObjectPtr& o) {
    Json j;
    EXPECT_TRUE(base::ParseJson(o->json, &j).ok());
    return j;
  }

  base::FakeClock clock_{std::chrono::system_clock::from_time_t(1795750231)};
  api::Registry registry_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<WatchCache> cache_;
  std::unique_ptr<Objects> objects_;
  const api::ResourceType* configmaps_ = nullptr;
  const api::ResourceType* pods_ = nullptr;
};

TEST_F(ObjectsTest, CreateSetsServerFields) {
  auto created = objects_->Create(*configmaps_, "default", ConfigMap("a"), {}, nullptr);
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  Json j = Parse(*created);
  EXPECT_EQ(j["metadata"]["namespace"], "default");
  EXPECT_EQ(j["metadata"]["creationTimestamp"], "2026-11-27T03:30:31Z");
  EXPECT_EQ(j["metadata"]["uid"].get<std::string>().size(), 36u);
  EXPECT_EQ(j["metadata"]["resourceVersion"], std::to_string((*created)->resource_version));
  auto again = objects_->Create(*configmaps_, "default", ConfigMap("a"), {}, nullptr);
  EXPECT_EQ(again.status().code(), base::Code::kAlreadyExists);
  EXPECT_EQ(again.status().message(), "configmaps \"a\" already exists");
}

TEST_F(ObjectsTest, CreateInMissingNamespaceIsNotFound) {
  auto created = objects_->Create(*configmaps_, "nowhere", ConfigMap("a"), {}, nullptr);
  EXPECT_EQ(created.status().code(), base::Code::kNotFound);
}

TEST_F(ObjectsTest, GenerateNameAndDryRun) {
  Json cm = ConfigMap("");
  cm["metadata"].erase("name");
  cm["metadata"]["generateName"] = "gen-";
  auto created = objects_->Create(*configmaps_, "default", cm, {}, nullptr);
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  EXPECT_EQ((*created)->name.rfind("gen-", 0), 0u);
  EXPECT_EQ((*created)->name.size(), 9u);
  WriteOptions dry;
  dry.dry_run = true;
  ASSERT_TRUE(objects_->Create(*configmaps_, "default", ConfigMap("dry"), dry, nullptr).ok());
  EXPECT_EQ(cache_->Get(*configmaps_, "default", "dry"), nullptr);
}

TEST_F(ObjectsTest, InvalidObjectReportsFieldCauses) {
  api::FieldErrors causes;
  auto created = objects_->Create(*configmaps_, "default", ConfigMap("Bad_Name"), {}, &causes);
  EXPECT_EQ(created.status().code(), base::Code::kInvalid);
  ASSERT_FALSE(causes.empty());
  EXPECT_EQ(causes[0].field, "metadata.name");
}

TEST_F(ObjectsTest, StaleUpdateConflicts) {
  auto created = objects_->Create(*configmaps_, "default", ConfigMap("a"), {}, nullptr);
  ASSERT_TRUE(created.ok());
  Json v1 = Parse(*created);
  Json v2 = v1;
  v2["data"]["k"] = "v2";
  auto updated = objects_->Update(*configmaps_, "default", "a", v2, Subresource::kMain, {}, nullptr);
  ASSERT_TRUE(updated.ok()) << updated.status().ToString();
  EXPECT_GT((*updated)->resource_version, (*created)->resource_version);
  Json stale = v1;
  stale["data"]["k"] = "v3";
  auto conflict =
      objects_->Update(*configmaps_, "default", "a", stale, Subresource::kMain, {}, nullptr);
  EXPECT_EQ(conflict.status().code(), base::Code::kConflict);
  EXPECT_NE(conflict.status().message().find("the object has been modified"), std::string::npos);
}

TEST_F(ObjectsTest, FinalizersHoldDeletionUntilRemoved) {
  Json cm = ConfigMap("held");
  cm["metadata"]["finalizers"] = {"example.com/hold"};
  ASSERT_TRUE(objects_->Create(*configmaps_, "default", cm, {}, nullptr).ok());
  auto marked = objects_->Delete(*configmaps_, "default", "held", {});
  ASSERT_TRUE(marked.ok()) << marked.status().ToString();
  Json j = Parse(*marked);
  EXPECT_TRUE(j["metadata"].contains("deletionTimestamp"));
  ASSERT_TRUE(objects_->GetFresh(*configmaps_, "default", "held").ok());
  auto released = objects_->Mutate(
      *configmaps_, "default", "held",
      [](const Json& current) -> base::Result<Json> {
        Json next = current;
        next["metadata"].erase("finalizers");
        return next;
      },
      Subresource::kMain, {}, nullptr);
  ASSERT_TRUE(released.ok()) << released.status().ToString();
  EXPECT_EQ(objects_->GetFresh(*configmaps_, "default", "held").status().code(),
            base::Code::kNotFound);
}

TEST_F(ObjectsTest, DeletePreconditionOnUid) {
  ASSERT_TRUE(objects_->Create(*configmaps_, "default", ConfigMap("a"), {}, nullptr).ok());
  DeleteOptions options;
  options.precondition_uid = "not-the-uid";
  EXPECT_EQ(objects_->Delete(*configmaps_, "default", "a", options).status().code(),
            base::Code::kConflict);
  EXPECT_TRUE(objects_->Delete(*configmaps_, "default", "a", {}).ok());
}

TEST_F(ObjectsTest, MainResourceCannotChangeStatus) {
  Json pod = {{"apiVersion", "v1"},
              {"kind", "Pod"},
              {"metadata", {{"name", "p"}}},
              {"spec", {{"containers", {{{"name", "c"}, {"image", "busybox"}}}}}}};
  auto created = objects_->Create(*pods_, "default", pod, {}, nullptr);
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  EXPECT_EQ(Parse(*created)["status"]["phase"], "Pending");
  Json next = Parse(*created);
  next["status"]["phase"] = "Running";
  auto updated = objects_->Update(*pods_, "default", "p", next, Subresource::kMain, {}, nullptr);
  ASSERT_TRUE(updated.ok()) << updated.status().ToString();
  EXPECT_EQ(Parse(*updated)["status"]["phase"], "Pending");
  auto status = objects_->Update(*pods_, "default", "p", next, Subresource::kStatus, {}, nullptr);
  ASSERT_TRUE(status.ok()) << status.status().ToString();
  EXPECT_EQ(Parse(*status)["status"]["phase"], "Running");
}

TEST_F(ObjectsTest, PriorityAdmissionResolvesClasses) {
  ASSERT_TRUE(objects_->EnsureSystemPriorityClasses().ok());
  auto pod = [](const std::string& name, const std::string& class_name) {
    Json p = {{"metadata", {{"name", name}}},
              {"spec", {{"containers", {{{"name", "c"}, {"image", "x"}}}}}}};
    if (!class_name.empty()) p["spec"]["priorityClassName"] = class_name;
    return p;
  };
  auto batch = objects_->Create(*pods_, "default", pod("batch", "fulcrum-batch"), {}, nullptr);
  ASSERT_TRUE(batch.ok()) << batch.status().ToString();
  EXPECT_EQ(Parse(*batch)["spec"]["priority"], -1000);
  auto plain = objects_->Create(*pods_, "default", pod("plain", ""), {}, nullptr);
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(Parse(*plain)["spec"]["priority"], 0);
  auto missing = objects_->Create(*pods_, "default", pod("missing", "nope"), {}, nullptr);
  EXPECT_EQ(missing.status().code(), base::Code::kForbidden);
  EXPECT_NE(missing.status().message().find("no PriorityClass with name nope"), std::string::npos);
  Json lying = pod("lying", "system-node-critical");
  lying["spec"]["priority"] = 5;
  EXPECT_EQ(objects_->Create(*pods_, "default", lying, {}, nullptr).status().code(),
            base::Code::kForbidden);
}

TEST_F(ObjectsTest, WatchSeesChangesInOrder) {
  auto watcher = cache_->Watch(*configmaps_, "default", nullptr, cache_->Revision());
  ASSERT_TRUE(watcher.ok());
  ASSERT_TRUE(objects_->Create(*configmaps_, "default", ConfigMap("w"), {}, nullptr).ok());
  ASSERT_TRUE(objects_->Delete(*configmaps_, "default", "w", {}).ok());
  std::vector<CacheEvent> events;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (events.size() < 2 && std::chrono::steady_clock::now() < deadline) {
    (*watcher)->Next(&events, deadline);
  }
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].type, CacheEvent::Type::kAdded);
  EXPECT_EQ(events[1].type, CacheEvent::Type::kDeleted);
  EXPECT_GT(events[1].object->resource_version, events[0].object->resource_version);
}

TEST(WatchCacheTest, ResumingBeforeTheKeptHistoryIsGone) {
  api::Registry registry;
  api::AddBuiltinTypes(&registry);
  auto store = std::move(store::OpenStore("memory:")).value();
  WatchCache cache(&registry, store.get(), /*history=*/3);
  ASSERT_TRUE(cache.Start().ok());
  const api::ResourceType& namespaces = *registry.Find("", "v1", "namespaces");
  for (int i = 0; i < 6; ++i) {
    std::string name = "ns" + std::to_string(i);
    ASSERT_TRUE(store->Create(StoreKey(namespaces, "", name),
                              R"({"metadata":{"name":")" + name + R"("}})")
                    .ok());
  }
  ASSERT_TRUE(cache.WaitForFresh(std::chrono::seconds(10)).ok());
  EXPECT_EQ(cache.Watch(namespaces, "", nullptr, 1).status().code(), base::Code::kGone);
  auto recent = cache.Watch(namespaces, "", nullptr, 3);
  ASSERT_TRUE(recent.ok()) << recent.status().ToString();
  std::vector<CacheEvent> events;
  (*recent)->Next(&events, std::chrono::steady_clock::now());
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0].object->name, "ns3");
}

}  // namespace
}  // namespace fulcrum::apiserver

namespace fulcrum::apiserver {
namespace {

TEST_F(ObjectsTest, LabelIndexListsInKeyOrderAndFollowsRelabels) {
  for (const char* name : {"c", "a", "b", "d"}) {
    Json cm = ConfigMap(name);
    cm["metadata"]["labels"] = {{"tier", std::string(name) == "d" ? "db" : "web"}};
    ASSERT_TRUE(objects_->Create(*configmaps_, "default", cm, {}, nullptr).ok());
  }
  ASSERT_TRUE(cache_->WaitForFresh(std::chrono::seconds(5)).ok());
  std::pair<std::string, std::string> web{"tier", "web"};
  auto names = [&](const ListResult& r) {
    std::vector<std::string> out;
    for (const auto& o : r.items) out.push_back(o->name);
    return out;
  };
  EXPECT_EQ(names(cache_->List(*configmaps_, "default", nullptr, "", 0, &web)),
            (std::vector<std::string>{"a", "b", "c"}));
  ListResult page = cache_->List(*configmaps_, "default", nullptr, "", 2, &web);
  EXPECT_TRUE(page.more);
  EXPECT_EQ(names(cache_->List(*configmaps_, "default", nullptr, page.items.back()->key, 0, &web)),
            (std::vector<std::string>{"c"}));
  ASSERT_TRUE(objects_
                  ->Mutate(
                      *configmaps_, "default", "b",
                      [](const Json& current) -> base::Result<Json> {
                        Json next = current;
                        next["metadata"]["labels"]["tier"] = "db";
                        return next;
                      },
                      Subresource::kMain, {}, nullptr)
                  .ok());
  ASSERT_TRUE(objects_->Delete(*configmaps_, "default", "c", {}).ok());
  ASSERT_TRUE(cache_->WaitForFresh(std::chrono::seconds(5)).ok());
  EXPECT_EQ(names(cache_->List(*configmaps_, "default", nullptr, "", 0, &web)),
            (std::vector<std::string>{"a"}));
  std::pair<std::string, std::string> db{"tier", "db"};
  EXPECT_EQ(names(cache_->List(*configmaps_, "", nullptr, "", 0, &db)),
            (std::vector<std::string>{"b", "d"}));
  EXPECT_TRUE(cache_->List(*configmaps_, "other", nullptr, "", 0, &db).items.empty());
}

}  // namespace
}  // namespace fulcrum::apiserver

namespace fulcrum::apiserver {
namespace {

TEST_F(ObjectsTest, ResourceVersionIsSplicedIntoTheTopLevelMetadataOnly) {
  Json cm = ConfigMap("tricky");
  cm["data"] = {{"a", "\"metadata\":{\"x\":1}"}, {"b", "}{"}};
  cm["binaryData"] = {{"metadata", "e30="}};
  auto created = objects_->Create(*configmaps_, "default", cm, {}, nullptr);
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  ASSERT_TRUE(cache_->WaitForFresh(std::chrono::seconds(5)).ok());
  for (const ObjectPtr& o : {*created, cache_->Get(*configmaps_, "default", "tricky")}) {
    ASSERT_NE(o, nullptr);
    Json j = Parse(o);
    EXPECT_EQ(j["metadata"]["resourceVersion"], std::to_string((*created)->resource_version));
    EXPECT_EQ(j["data"], cm["data"]);
    EXPECT_EQ(j["binaryData"], cm["binaryData"]);
  }
}

}  // namespace
}  // namespace fulcrum::apiserver
