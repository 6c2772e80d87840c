#include "apiserver/watch_cache.h"

#include <gtest/gtest.h>

#include <atomic>

namespace fulcrum::apiserver {
namespace {

class CacheWatcherTest : public ::testing::Test {
 protected:
  void Open(std::size_t max_pending) {
    api::AddBuiltinTypes(&registry_);
    store_ = std::move(store::OpenStore("memory:")).value();
    cache_ = std::make_unique<WatchCache>(&registry_, store_.get(), kWatchHistory, max_pending);
    ASSERT_TRUE(cache_->Start().ok());
    configmaps_ = registry_.Find("", "v1", "configmaps");
    ASSERT_NE(configmaps_, nullptr);
  }

  // Writes a config map straight to the store and waits until the cache has it.
  void Write(const std::string& name, const std::string& label = "a") {
    std::string value = R"({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":")" + name +
                        R"(","namespace":"default","labels":{"tier":")" + label + R"("}}})";
    std::string key = StoreKey(*configmaps_, "default", name);
    auto existing = store_->Get(key);
    if (existing.ok()) {
      ASSERT_TRUE(store_->Update(key, value, existing->mod_revision).ok());
    } else {
      ASSERT_TRUE(store_->Create(key, value).ok());
    }
    ASSERT_TRUE(cache_->WaitForFresh(std::chrono::seconds(10)).ok());
  }

  std::shared_ptr<CacheWatcher> WatchFromNow(ObjectFilter filter = nullptr) {
    auto watcher = cache_->Watch(*configmaps_, "default", std::move(filter), cache_->Revision());
    EXPECT_TRUE(watcher.ok());
    return watcher.ok() ? *watcher : nullptr;
  }

  api::Registry registry_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<WatchCache> cache_;
  const api::ResourceType* configmaps_ = nullptr;
};

TEST_F(CacheWatcherTest, TakeArmsTheWakeOnceAndDeliversInOrder) {
  Open(kMaxPendingPerWatcher);
  auto watcher = WatchFromNow();
  std::atomic<int> wakes{0};
  watcher->SetWake([&] { ++wakes; });
  std::vector<CacheEvent> events;
  EXPECT_TRUE(watcher->Take(&events, 10));  // nothing yet: arms the wake
  EXPECT_TRUE(events.empty());
  Write("a");
  Write("b");
  Write("a");
  EXPECT_EQ(wakes.load(), 1);  // one wake until Take finds nothing again
  EXPECT_TRUE(watcher->Take(&events, 2));
  ASSERT_EQ(events.size(), 2u);
  EXPECT_TRUE(watcher->Take(&events, 10));
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0].type, CacheEvent::Type::kAdded);
  EXPECT_EQ(events[1].object->name, "b");
  EXPECT_EQ(events[2].type, CacheEvent::Type::kModified);
  EXPECT_LT(events[0].object->resource_version, events[2].object->resource_version);
  EXPECT_EQ(events[0].prev, nullptr);  // queues do not hold previous states
  EXPECT_EQ(wakes.load(), 1);
  EXPECT_TRUE(watcher->Take(&events, 10));  // empty again: armed
  watcher->Cancel();
  EXPECT_EQ(wakes.load(), 2);  // the end wakes too
  EXPECT_FALSE(watcher->Take(&events, 10));
  EXPECT_FALSE(watcher->Dropped());
}

TEST_F(CacheWatcherTest, SetWakeWakesAtOnceWhenEventsWait) {
  Open(kMaxPendingPerWatcher);
  auto watcher = WatchFromNow();
  Write("a");
  int wakes = 0;
  watcher->SetWake([&] { ++wakes; });
  EXPECT_EQ(wakes, 1);
}

TEST_F(CacheWatcherTest, EveryWatcherSharesOneEventBytes) {
  Open(kMaxPendingPerWatcher);
  auto first = WatchFromNow();
  auto second = WatchFromNow();
  Write("a");
  std::vector<CacheEvent> a, b;
  first->Take(&a, 10);
  second->Take(&b, 10);
  ASSERT_EQ(a.size(), 1u);
  ASSERT_EQ(b.size(), 1u);
  ASSERT_NE(a[0].bytes, nullptr);
  EXPECT_EQ(a[0].bytes, b[0].bytes);
  int made = 0;
  auto make = [&] {
    ++made;
    return std::string("framed");
  };
  auto x = a[0].bytes->Get(0, make);
  auto y = b[0].bytes->Get(0, make);
  EXPECT_EQ(made, 1);
  EXPECT_EQ(x.get(), y.get());
  EXPECT_EQ(*x, "framed");
}

TEST_F(CacheWatcherTest, SelectorTransitionsBecomeAddedAndDeleted) {
  Open(kMaxPendingPerWatcher);
  Write("s", "a");
  auto watcher = WatchFromNow([](const CachedObject& o) {
    for (const auto& [k, v] : o.labels) {
      if (k == "tier" && v == "b") return true;
    }
    return false;
  });
  Write("s", "b");  // enters the selection
  Write("s", "b");  // stays
  Write("s", "c");  // leaves
  Write("s", "c");  // stays out
  std::vector<CacheEvent> events;
  watcher->Take(&events, 10);
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0].type, CacheEvent::Type::kAdded);
  EXPECT_EQ(events[1].type, CacheEvent::Type::kModified);
  EXPECT_EQ(events[2].type, CacheEvent::Type::kDeleted);
}

TEST_F(CacheWatcherTest, SlowWatcherIsDroppedAtTheBound) {
  Open(/*max_pending=*/3);
  auto slow = WatchFromNow();
  auto fast = WatchFromNow();
  int slow_wakes = 0;
  slow->SetWake([&] { ++slow_wakes; });
  std::vector<CacheEvent> events;
  slow->Take(&events, 10);  // arm
  for (int i = 0; i < 4; ++i) {
    Write("c" + std::to_string(i));
    fast->Take(&events, 10);
  }
  EXPECT_EQ(events.size(), 4u);
  EXPECT_FALSE(fast->Dropped());
  EXPECT_TRUE(slow->Dropped());
  EXPECT_EQ(slow_wakes, 1);  // woken for the first event; the drop needs no second wake
  std::vector<CacheEvent> rest;
  EXPECT_FALSE(slow->Take(&rest, 10));  // what was queued went with it
  EXPECT_TRUE(rest.empty());
  Write("c4");
  EXPECT_TRUE(fast->Take(&events, 10));
  EXPECT_EQ(events.size(), 5u);
}

TEST_F(CacheWatcherTest, InitialEventsDoNotCountTowardsTheBound) {
  Open(/*max_pending=*/2);
  for (int i = 0; i < 5; ++i) Write("i" + std::to_string(i));
  auto watcher = cache_->Watch(*configmaps_, "default", nullptr, -1);
  ASSERT_TRUE(watcher.ok());
  EXPECT_TRUE((*watcher)->InitialPending());
  Write("j");
  EXPECT_FALSE((*watcher)->Dropped());
  std::vector<CacheEvent> events;
  (*watcher)->Take(&events, 4);
  EXPECT_TRUE((*watcher)->InitialPending());
  (*watcher)->Take(&events, 1);
  EXPECT_FALSE((*watcher)->InitialPending());
  (*watcher)->Take(&events, 10);
  ASSERT_EQ(events.size(), 6u);
  EXPECT_EQ(events[5].object->name, "j");
  EXPECT_EQ(cache_->BookmarkRevision(**watcher), cache_->Revision());
}

}  // namespace
}  // namespace fulcrum::apiserver
