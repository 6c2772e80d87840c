#include "client/informer.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "client/test_server.h"

namespace fulcrum::client {
namespace {

using namespace std::chrono_literals;

Json ConfigMap(const std::string& name, const std::string& value) {
  return {{"metadata", {{"name", name}, {"labels", {{"app", "x"}}}}}, {"data", {{"v", value}}}};
}

TEST(InformerTest, ListsThenFollowsChanges) {
  TestServer server;
  ApiClient& c = server.client();
  std::string collection = ResourcePath("v1", "configmaps", "default");
  ASSERT_TRUE(c.Create(collection, ConfigMap("before", "1")).ok());

  std::atomic<int> adds{0}, updates{0}, deletes{0};
  InformerHandlers handlers;
  handlers.on_add = [&](const ObjectPtr&) { ++adds; };
  handlers.on_update = [&](const ObjectPtr& old_object, const ObjectPtr& new_object) {
    EXPECT_NE((*old_object)["data"]["v"], (*new_object)["data"]["v"]);
    ++updates;
  };
  handlers.on_delete = [&](const ObjectPtr& o) {
    EXPECT_EQ(base::StringAt(*o, {"metadata", "name"}), "before");
    ++deletes;
  };
  Informer informer(&c, collection, "labelSelector=" + QueryEscape("app=x"), handlers);
  informer.Start();
  ASSERT_TRUE(informer.WaitForSync(5s));
  EXPECT_EQ(adds.load(), 1);
  ASSERT_NE(informer.Get("default/before"), nullptr);

  ASSERT_TRUE(c.Create(collection, ConfigMap("after", "2")).ok());
  ASSERT_TRUE(c.Patch(ResourcePath("v1", "configmaps", "default", "after"), PatchType::kMerge,
                      Json{{"data", {{"v", "3"}}}})
                  .ok());
  ASSERT_TRUE(c.Delete(ResourcePath("v1", "configmaps", "default", "before")).ok());
  // Not matching the selector: never seen.
  ASSERT_TRUE(c.Create(collection, Json{{"metadata", {{"name", "other"}}}}).ok());

  EXPECT_TRUE(Eventually([&] { return adds == 2 && updates == 1 && deletes == 1; }))
      << adds << " " << updates << " " << deletes;
  EXPECT_EQ(informer.Get("default/before"), nullptr);
  EXPECT_EQ(informer.Get("default/other"), nullptr);
  auto after = informer.Get("default/after");
  ASSERT_NE(after, nullptr);
  EXPECT_EQ((*after)["data"]["v"], "3");
  EXPECT_EQ(informer.List().size(), 1u);
  informer.Stop();
}

TEST(WorkQueueTest, DeduplicatesAndRequeuesWhileProcessing) {
  WorkQueue q;
  q.Add("a");
  q.Add("a");
  q.Add("b");
  EXPECT_EQ(q.size(), 2u);
  std::string key;
  ASSERT_TRUE(q.Get(&key));
  EXPECT_EQ(key, "a");
  q.Add("a");  // while processing: comes back after Done
  EXPECT_EQ(q.size(), 1u);
  q.Done("a");
  EXPECT_EQ(q.size(), 2u);
  ASSERT_TRUE(q.Get(&key));
  EXPECT_EQ(key, "b");
  q.Done("b");
  ASSERT_TRUE(q.Get(&key));
  EXPECT_EQ(key, "a");
  q.Done("a");
  q.AddAfter("later", 20ms);
  ASSERT_TRUE(q.Get(&key));
  EXPECT_EQ(key, "later");
  q.Done("later");
  std::thread stopper([&] { q.ShutDown(); });
  EXPECT_FALSE(q.Get(&key));
  stopper.join();
}

}  // namespace
}  // namespace fulcrum::client
