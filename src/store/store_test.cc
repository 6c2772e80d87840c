#include "store/store.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "store/memory_store.h"
#include "store/sqlite_store.h"

namespace fulcrum::store {
namespace {

using base::Code;

// Generous: the Debug build runs under sanitizers, and every sqlite commit is an fsync.
constexpr auto kTimeout = std::chrono::seconds(60);

#define ASSERT_OK(expr)                                 \
  do {                                                  \
    const auto& ok_macro_ = (expr);                     \
    ASSERT_TRUE(ok_macro_.ok()) << Describe(ok_macro_); \
  } while (0)

#define ASSERT_OK_AND_ASSIGN(lhs, expr) \
  ASSERT_OK_AND_ASSIGN_IMPL(FULCRUM_CONCAT(assign_macro_, __LINE__), lhs, expr)
#define ASSERT_OK_AND_ASSIGN_IMPL(tmp, lhs, expr)   \
  auto tmp = (expr);                                \
  ASSERT_TRUE(tmp.ok()) << tmp.status().ToString(); \
  lhs = std::move(tmp).value()

std::string Describe(const Status& s) { return s.ToString(); }
template <typename T>
std::string Describe(const Result<T>& r) {
  return r.status().ToString();
}

template <typename T>
Code CodeOf(const Result<T>& r) {
  return r.ok() ? Code::kOk : r.status().code();
}
Code CodeOf(const Status& s) { return s.code(); }

class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "store_test.XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) std::abort();
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

struct MemoryBackend {
  static constexpr const char* kName = "Memory";
  Result<std::unique_ptr<Store>> Open(size_t watch_queue_limit = 10000) {
    MemoryStoreOptions options;
    options.watch_queue_limit = watch_queue_limit;
    return std::unique_ptr<Store>(std::make_unique<MemoryStore>(options));
  }
};

struct SqliteBackend {
  static constexpr const char* kName = "Sqlite";
  std::string path() const { return dir.path() + "/store.db"; }
  Result<std::unique_ptr<Store>> Open(size_t watch_queue_limit = 10000) {
    SqliteStoreOptions options;
    options.watch_queue_limit = watch_queue_limit;
    ASSIGN_OR_RETURN(std::unique_ptr<SqliteStore> store, SqliteStore::Open(path(), options));
    return std::unique_ptr<Store>(std::move(store));
  }
  TempDir dir;
};

// Records a watch's batches; tests wait on it with a timeout instead of sleeping.
class EventLog {
 public:
  WatchCallback Callback() {
    return [this](const WatchBatch& batch) {
      std::lock_guard lock(mu_);
      for (const WatchEvent& e : batch.events) {
        if (!events_.empty() && e.kv.mod_revision <= events_.back().kv.mod_revision) {
          out_of_order_ = true;
        }
        if (e.kv.mod_revision > batch.revision) out_of_order_ = true;
        events_.push_back(e);
      }
      if (batch.revision < last_batch_revision_) out_of_order_ = true;
      last_batch_revision_ = batch.revision;
      if (batch.compacted) compacted_ = true;
      cv_.notify_all();
    };
  }

  // True once at least `n` events have arrived.
  bool WaitForCount(size_t n) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, kTimeout, [&] { return events_.size() >= n; });
  }
  // True once an event at `revision` or later has arrived.
  bool WaitForRevision(int64_t revision) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, kTimeout, [&] {
      return !events_.empty() && events_.back().kv.mod_revision >= revision;
    });
  }
  bool WaitForCompacted() {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, kTimeout, [&] { return compacted_; });
  }

  std::vector<WatchEvent> Events() {
    std::lock_guard lock(mu_);
    return events_;
  }
  std::vector<int64_t> Revisions() {
    std::lock_guard lock(mu_);
    std::vector<int64_t> revisions;
    for (const WatchEvent& e : events_) revisions.push_back(e.kv.mod_revision);
    return revisions;
  }
  bool out_of_order() {
    std::lock_guard lock(mu_);
    return out_of_order_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<WatchEvent> events_;
  int64_t last_batch_revision_ = 0;
  bool out_of_order_ = false;
  bool compacted_ = false;
};

// A gate a callback can block on until the test opens it.
class Gate {
 public:
  void Open() {
    std::lock_guard lock(mu_);
    open_ = true;
    cv_.notify_all();
  }
  bool Wait() {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, kTimeout, [&] { return open_; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = false;
};

std::vector<int64_t> Sequence(int64_t first, int64_t last) {
  std::vector<int64_t> out;
  for (int64_t r = first; r <= last; ++r) out.push_back(r);
  return out;
}

std::vector<std::string> Keys(const RangeResult& r) {
  std::vector<std::string> keys;
  for (const KeyValue& kv : r.kvs) keys.push_back(kv.key);
  return keys;
}

template <typename Backend>
class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = backend_.Open();
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    store_ = std::move(store).value();
  }

  // Reopens the store with a small watch queue, to drive watchers onto the history path.
  void ReopenWithWatchQueueLimit(size_t limit) {
    store_.reset();
    auto store = backend_.Open(limit);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    store_ = std::move(store).value();
  }

  int64_t Revision() { return store_->CurrentRevision().value(); }

  Backend backend_;
  std::unique_ptr<Store> store_;
};

struct BackendNames {
  template <typename T>
  static std::string GetName(int) {
    return T::kName;
  }
};

using Backends = ::testing::Types<MemoryBackend, SqliteBackend>;
TYPED_TEST_SUITE(StoreTest, Backends, BackendNames);

TYPED_TEST(StoreTest, CreateGetUpdateDeleteAssignRevisions) {
  Store& s = *this->store_;
  EXPECT_EQ(this->Revision(), 0);

  ASSERT_OK_AND_ASSIGN(KeyValue a, s.Create("/a", "1"));
  EXPECT_EQ(a.key, "/a");
  EXPECT_EQ(a.value, "1");
  EXPECT_EQ(a.create_revision, 1);
  EXPECT_EQ(a.mod_revision, 1);
  ASSERT_OK_AND_ASSIGN(KeyValue got, s.Get("/a"));
  EXPECT_EQ(got.value, "1");
  EXPECT_EQ(got.create_revision, 1);
  EXPECT_EQ(got.mod_revision, 1);

  ASSERT_OK_AND_ASSIGN(KeyValue a2, s.Update("/a", "2", 1));
  EXPECT_EQ(a2.value, "2");
  EXPECT_EQ(a2.create_revision, 1);
  EXPECT_EQ(a2.mod_revision, 2);
  ASSERT_OK_AND_ASSIGN(KeyValue a3, s.Update("/a", "3", 0));
  EXPECT_EQ(a3.mod_revision, 3);
  ASSERT_OK_AND_ASSIGN(KeyValue b, s.Create("/b", "x"));
  EXPECT_EQ(b.create_revision, 4);

  ASSERT_OK_AND_ASSIGN(KeyValue deleted, s.Delete("/a", 3));
  EXPECT_EQ(deleted.key, "/a");
  EXPECT_EQ(deleted.value, "3");
  EXPECT_EQ(deleted.create_revision, 1);
  EXPECT_EQ(deleted.mod_revision, 5);
  EXPECT_EQ(CodeOf(s.Get("/a")), Code::kNotFound);
  EXPECT_EQ(this->Revision(), 5);

  ASSERT_OK_AND_ASSIGN(KeyValue again, s.Create("/a", "again"));
  EXPECT_EQ(again.create_revision, 6);
  EXPECT_EQ(again.mod_revision, 6);
  ASSERT_OK_AND_ASSIGN(KeyValue b_deleted, s.Delete("/b", 0));
  EXPECT_EQ(b_deleted.value, "x");
  EXPECT_EQ(b_deleted.mod_revision, 7);
  EXPECT_EQ(this->Revision(), 7);
}

TYPED_TEST(StoreTest, FailedPreconditionsChangeNothing) {
  Store& s = *this->store_;
  ASSERT_OK(s.Create("/k", "v"));
  EXPECT_EQ(CodeOf(s.Create("/k", "w")), Code::kAlreadyExists);
  EXPECT_EQ(CodeOf(s.Update("/missing", "w", 0)), Code::kNotFound);
  EXPECT_EQ(CodeOf(s.Delete("/missing", 0)), Code::kNotFound);
  EXPECT_EQ(CodeOf(s.Update("/k", "w", 7)), Code::kConflict);
  EXPECT_EQ(CodeOf(s.Delete("/k", 7)), Code::kConflict);
  EXPECT_EQ(CodeOf(s.Create("", "v")), Code::kBadRequest);
  EXPECT_EQ(this->Revision(), 1);
  ASSERT_OK_AND_ASSIGN(KeyValue k, s.Get("/k"));
  EXPECT_EQ(k.value, "v");
  EXPECT_EQ(k.mod_revision, 1);

  ASSERT_OK(s.Delete("/k", 1));
  EXPECT_EQ(CodeOf(s.Update("/k", "w", 0)), Code::kNotFound);
  EXPECT_EQ(CodeOf(s.Delete("/k", 0)), Code::kNotFound);
  EXPECT_EQ(this->Revision(), 2);
}

TYPED_TEST(StoreTest, RangeByPrefixWithLimit) {
  Store& s = *this->store_;
  for (const char* key : {"/r/c", "/q", "/r/a", "/rz", "/r/b", "/r/d"}) {
    ASSERT_OK(s.Create(key, std::string("v") + key));
  }
  ASSERT_OK(s.Delete("/r/d", 0));
  const std::string end = RangeEndForPrefix("/r/");

  ASSERT_OK_AND_ASSIGN(RangeResult all, s.Range("/r/", end));
  EXPECT_EQ(Keys(all), (std::vector<std::string>{"/r/a", "/r/b", "/r/c"}));
  EXPECT_FALSE(all.more);
  EXPECT_EQ(all.revision, 7);
  EXPECT_EQ(all.kvs[1].value, "v/r/b");
  EXPECT_EQ(all.kvs[1].create_revision, 5);
  EXPECT_EQ(all.kvs[1].mod_revision, 5);

  ASSERT_OK_AND_ASSIGN(RangeResult page1, s.Range("/r/", end, 2));
  EXPECT_EQ(Keys(page1), (std::vector<std::string>{"/r/a", "/r/b"}));
  EXPECT_TRUE(page1.more);
  // The next page starts just after the last key, at the first page's revision.
  ASSERT_OK_AND_ASSIGN(RangeResult page2,
                       s.Range(page1.kvs.back().key + '\0', end, 2, page1.revision));
  EXPECT_EQ(Keys(page2), (std::vector<std::string>{"/r/c"}));
  EXPECT_FALSE(page2.more);

  ASSERT_OK_AND_ASSIGN(RangeResult exact, s.Range("/r/", end, 3));
  EXPECT_EQ(exact.kvs.size(), 3u);
  EXPECT_FALSE(exact.more);

  ASSERT_OK_AND_ASSIGN(RangeResult everything, s.Range("", RangeEndForPrefix("")));
  EXPECT_EQ(Keys(everything), (std::vector<std::string>{"/q", "/r/a", "/r/b", "/r/c", "/rz"}));
  ASSERT_OK_AND_ASSIGN(RangeResult empty, s.Range("/r/b", "/r/b"));
  EXPECT_TRUE(empty.kvs.empty());
  ASSERT_OK_AND_ASSIGN(RangeResult none, s.Range("/s/", RangeEndForPrefix("/s/")));
  EXPECT_TRUE(none.kvs.empty());
  EXPECT_FALSE(none.more);
}

TYPED_TEST(StoreTest, ReadsAtPastRevisions) {
  Store& s = *this->store_;
  ASSERT_OK(s.Create("/p/a", "a1"));     // 1
  ASSERT_OK(s.Create("/p/b", "b1"));     // 2
  ASSERT_OK(s.Update("/p/a", "a2", 1));  // 3
  ASSERT_OK(s.Delete("/p/b", 2));        // 4
  ASSERT_OK(s.Create("/p/b", "b2"));     // 5

  EXPECT_EQ(s.Get("/p/a", 1)->value, "a1");
  EXPECT_EQ(s.Get("/p/a", 2)->value, "a1");
  EXPECT_EQ(s.Get("/p/a", 3)->value, "a2");
  EXPECT_EQ(s.Get("/p/a", 3)->mod_revision, 3);
  EXPECT_EQ(s.Get("/p/a", 3)->create_revision, 1);
  EXPECT_EQ(CodeOf(s.Get("/p/b", 1)), Code::kNotFound);
  EXPECT_EQ(s.Get("/p/b", 2)->value, "b1");
  EXPECT_EQ(CodeOf(s.Get("/p/b", 4)), Code::kNotFound);
  EXPECT_EQ(s.Get("/p/b", 5)->value, "b2");
  EXPECT_EQ(s.Get("/p/b", 5)->create_revision, 5);

  const std::string end = RangeEndForPrefix("/p/");
  ASSERT_OK_AND_ASSIGN(RangeResult at2, s.Range("/p/", end, 0, 2));
  EXPECT_EQ(at2.revision, 2);
  ASSERT_EQ(at2.kvs.size(), 2u);
  EXPECT_EQ(at2.kvs[0].value, "a1");
  EXPECT_EQ(at2.kvs[1].value, "b1");
  ASSERT_OK_AND_ASSIGN(RangeResult at4, s.Range("/p/", end, 0, 4));
  EXPECT_EQ(Keys(at4), (std::vector<std::string>{"/p/a"}));
  EXPECT_EQ(at4.kvs[0].value, "a2");
  ASSERT_OK_AND_ASSIGN(RangeResult at3, s.Range("/p/", end, 1, 3));
  EXPECT_EQ(Keys(at3), (std::vector<std::string>{"/p/a"}));
  EXPECT_TRUE(at3.more);
  ASSERT_OK_AND_ASSIGN(RangeResult all_at2, s.Range("", "", 0, 2));
  EXPECT_EQ(all_at2.kvs.size(), 2u);

  EXPECT_EQ(CodeOf(s.Get("/p/a", 6)), Code::kBadRequest);
  EXPECT_EQ(CodeOf(s.Range("/p/", end, 0, 6)), Code::kBadRequest);
}

TYPED_TEST(StoreTest, BinaryKeysAndValuesKeepBytewiseOrder) {
  Store& s = *this->store_;
  const std::vector<std::string> keys = {std::string("/b/\x01", 4), std::string("/b/\x7f", 4),
                                         std::string("/b/\x80", 4), std::string("/b/\xff", 4),
                                         std::string("/b/\xff\x00", 5)};
  const std::string value("nul\0inside", 10);
  for (auto it = keys.rbegin(); it != keys.rend(); ++it) ASSERT_OK(s.Create(*it, value));
  ASSERT_OK_AND_ASSIGN(RangeResult r, s.Range("/b/", RangeEndForPrefix("/b/")));
  EXPECT_EQ(Keys(r), keys);
  for (const KeyValue& kv : r.kvs) EXPECT_EQ(kv.value, value);
  ASSERT_OK_AND_ASSIGN(RangeResult tail, s.Range(std::string("/b/\xff", 4), ""));
  EXPECT_EQ(tail.kvs.size(), 2u);
  ASSERT_OK(s.Create("/empty", ""));
  EXPECT_EQ(s.Get("/empty")->value, "");
}

TYPED_TEST(StoreTest, WatchFromNowSeesChangesWithPrevValues) {
  Store& s = *this->store_;
  ASSERT_OK(s.Create("/w/old", "0"));  // 1, before the watch
  EventLog log;
  ASSERT_OK_AND_ASSIGN(auto handle, s.Watch("/w/", RangeEndForPrefix("/w/"), 0, log.Callback()));
  ASSERT_OK(s.Create("/w/a", "1"));       // 2
  ASSERT_OK(s.Update("/w/a", "2", 2));    // 3
  ASSERT_OK(s.Create("/x", "other"));     // 4, outside the range
  ASSERT_OK(s.Delete("/w/a", 3));         // 5
  ASSERT_OK(s.Update("/w/old", "1", 1));  // 6
  ASSERT_TRUE(log.WaitForCount(4));

  std::vector<WatchEvent> events = log.Events();
  ASSERT_EQ(events.size(), 4u);
  EXPECT_FALSE(log.out_of_order());
  EXPECT_EQ(events[0].type, WatchEvent::Type::kPut);
  EXPECT_EQ(events[0].kv.key, "/w/a");
  EXPECT_EQ(events[0].kv.value, "1");
  EXPECT_EQ(events[0].kv.create_revision, 2);
  EXPECT_EQ(events[0].kv.mod_revision, 2);
  EXPECT_FALSE(events[0].prev.has_value());

  EXPECT_EQ(events[1].type, WatchEvent::Type::kPut);
  EXPECT_EQ(events[1].kv.value, "2");
  EXPECT_EQ(events[1].kv.mod_revision, 3);
  ASSERT_TRUE(events[1].prev.has_value());
  EXPECT_EQ(events[1].prev->value, "1");
  EXPECT_EQ(events[1].prev->mod_revision, 2);

  EXPECT_EQ(events[2].type, WatchEvent::Type::kDelete);
  EXPECT_EQ(events[2].kv.key, "/w/a");
  EXPECT_EQ(events[2].kv.value, "");
  EXPECT_EQ(events[2].kv.mod_revision, 5);
  ASSERT_TRUE(events[2].prev.has_value());
  EXPECT_EQ(events[2].prev->value, "2");
  EXPECT_EQ(events[2].prev->mod_revision, 3);
  EXPECT_EQ(events[2].prev->create_revision, 2);

  EXPECT_EQ(events[3].kv.key, "/w/old");
  EXPECT_EQ(events[3].kv.mod_revision, 6);
  ASSERT_TRUE(events[3].prev.has_value());
  EXPECT_EQ(events[3].prev->value, "0");
}

TYPED_TEST(StoreTest, WatchFromPastRevisionReplaysThenFollows) {
  Store& s = *this->store_;
  ASSERT_OK(s.Create("/h/a", "a1"));     // 1
  ASSERT_OK(s.Create("/h/b", "b1"));     // 2
  ASSERT_OK(s.Update("/h/a", "a2", 1));  // 3
  ASSERT_OK(s.Delete("/h/b", 2));        // 4
  ASSERT_OK(s.Create("/other", "o"));    // 5

  EventLog log;
  ASSERT_OK_AND_ASSIGN(auto handle, s.Watch("/h/", RangeEndForPrefix("/h/"), 2, log.Callback()));
  ASSERT_TRUE(log.WaitForRevision(4));
  ASSERT_OK(s.Create("/h/c", "c1"));     // 6
  ASSERT_OK(s.Update("/h/a", "a3", 3));  // 7
  ASSERT_TRUE(log.WaitForRevision(7));

  EXPECT_EQ(log.Revisions(), (std::vector<int64_t>{3, 4, 6, 7}));
  EXPECT_FALSE(log.out_of_order());
  std::vector<WatchEvent> events = log.Events();
  ASSERT_TRUE(events[0].prev.has_value());
  EXPECT_EQ(events[0].prev->value, "a1");
  EXPECT_EQ(events[0].kv.value, "a2");
  EXPECT_EQ(events[0].kv.create_revision, 1);
  EXPECT_EQ(events[1].type, WatchEvent::Type::kDelete);
  EXPECT_EQ(events[1].kv.key, "/h/b");
  ASSERT_TRUE(events[1].prev.has_value());
  EXPECT_EQ(events[1].prev->value, "b1");
  EXPECT_FALSE(events[2].prev.has_value());
  ASSERT_TRUE(events[3].prev.has_value());
  EXPECT_EQ(events[3].prev->value, "a2");

  // A watch from the latest revision replays nothing; one from the future skips what comes first.
  EventLog now_log, future_log;
  ASSERT_OK_AND_ASSIGN(auto now_handle,
                       s.Watch("/h/", RangeEndForPrefix("/h/"), 7, now_log.Callback()));
  ASSERT_OK_AND_ASSIGN(auto future_handle,
                       s.Watch("/h/", RangeEndForPrefix("/h/"), 8, future_log.Callback()));
  ASSERT_OK(s.Create("/h/d", "d"));  // 8
  ASSERT_OK(s.Create("/h/e", "e"));  // 9
  ASSERT_TRUE(now_log.WaitForRevision(9));
  ASSERT_TRUE(future_log.WaitForRevision(9));
  EXPECT_EQ(now_log.Revisions(), (std::vector<int64_t>{8, 9}));
  EXPECT_EQ(future_log.Revisions(), (std::vector<int64_t>{9}));
}

// Watches that start from a past revision while writes keep committing must switch from replay to
// live delivery without a gap or a duplicate.
TYPED_TEST(StoreTest, WatchReplayRacingLiveWritesHasNoGapOrDuplicate) {
  Store& s = *this->store_;
  constexpr int kWrites = 400;
  for (int i = 0; i < 10; ++i) ASSERT_OK(s.Create("/race/" + std::to_string(i), "0"));

  std::atomic<bool> writer_failed{false};
  std::thread writer([&] {
    for (int i = 0; i < kWrites; ++i) {
      if (!s.Update("/race/" + std::to_string(i % 10), std::to_string(i), 0).ok()) {
        writer_failed = true;
      }
    }
  });
  struct Watch {
    int64_t after = 0;
    EventLog log;
    std::unique_ptr<WatchHandle> handle;
  };
  std::vector<std::unique_ptr<Watch>> watches;
  for (int i = 0; i < 8; ++i) {
    auto w = std::make_unique<Watch>();
    w->after = std::max<int64_t>(1, this->Revision() - 3 * i);
    auto handle = s.Watch("/race/", RangeEndForPrefix("/race/"), w->after, w->log.Callback());
    ASSERT_TRUE(handle.ok()) << handle.status().ToString();
    w->handle = std::move(handle).value();
    watches.push_back(std::move(w));
  }
  writer.join();
  ASSERT_FALSE(writer_failed);
  // A last write marks the end: everything before it must have arrived exactly once.
  ASSERT_OK_AND_ASSIGN(KeyValue last, s.Create("/race/end", ""));
  for (auto& w : watches) {
    ASSERT_TRUE(w->log.WaitForRevision(last.mod_revision)) << "after " << w->after;
    EXPECT_EQ(w->log.Revisions(), Sequence(w->after + 1, last.mod_revision))
        << "after " << w->after;
    EXPECT_FALSE(w->log.out_of_order());
  }
}

TYPED_TEST(StoreTest, CompactionMakesOldRevisionsGone) {
  Store& s = *this->store_;
  ASSERT_OK(s.Create("/c/a", "a1"));     // 1
  ASSERT_OK(s.Update("/c/a", "a2", 1));  // 2
  ASSERT_OK(s.Update("/c/a", "a3", 2));  // 3
  ASSERT_OK(s.Create("/c/b", "b1"));     // 4
  ASSERT_OK(s.Delete("/c/b", 4));        // 5
  ASSERT_OK(s.Create("/c/d", "d1"));     // 6
  ASSERT_OK(s.Update("/c/a", "a4", 3));  // 7
  EXPECT_EQ(s.CompactedRevision(), 0);

  ASSERT_OK(s.Compact(5));
  EXPECT_EQ(s.CompactedRevision(), 5);
  EXPECT_EQ(CodeOf(s.Get("/c/a", 4)), Code::kGone);
  EXPECT_EQ(CodeOf(s.Get("/c/a", 1)), Code::kGone);
  EXPECT_EQ(CodeOf(s.Range("/c/", RangeEndForPrefix("/c/"), 0, 2)), Code::kGone);
  EXPECT_EQ(s.Get("/c/a", 5)->value, "a3");
  EXPECT_EQ(s.Get("/c/a", 6)->value, "a3");
  EXPECT_EQ(CodeOf(s.Get("/c/b", 5)), Code::kNotFound);
  ASSERT_OK_AND_ASSIGN(RangeResult at5, s.Range("/c/", RangeEndForPrefix("/c/"), 0, 5));
  EXPECT_EQ(Keys(at5), (std::vector<std::string>{"/c/a"}));
  ASSERT_OK_AND_ASSIGN(RangeResult latest, s.Range("/c/", RangeEndForPrefix("/c/")));
  EXPECT_EQ(Keys(latest), (std::vector<std::string>{"/c/a", "/c/d"}));
  EXPECT_EQ(latest.kvs[0].value, "a4");

  EXPECT_EQ(CodeOf(s.Watch("/c/", RangeEndForPrefix("/c/"), 4, [](const WatchBatch&) {})),
            Code::kGone);
  // From the compacted revision itself the history is intact, prev values included.
  EventLog log;
  ASSERT_OK_AND_ASSIGN(auto handle, s.Watch("/c/", RangeEndForPrefix("/c/"), 5, log.Callback()));
  ASSERT_TRUE(log.WaitForRevision(7));
  EXPECT_EQ(log.Revisions(), (std::vector<int64_t>{6, 7}));
  std::vector<WatchEvent> events = log.Events();
  ASSERT_TRUE(events[1].prev.has_value());
  EXPECT_EQ(events[1].prev->value, "a3");
  EXPECT_EQ(events[1].prev->mod_revision, 3);

  EXPECT_EQ(CodeOf(s.Compact(4)), Code::kGone);
  ASSERT_OK(s.Compact(5));  // again: nothing to do
  EXPECT_EQ(CodeOf(s.Compact(8)), Code::kBadRequest);
  ASSERT_OK(s.Compact(7));
  EXPECT_EQ(s.Get("/c/a")->value, "a4");
  EXPECT_EQ(s.Get("/c/d", 7)->value, "d1");
  EXPECT_EQ(this->Revision(), 7);
  ASSERT_OK_AND_ASSIGN(KeyValue b, s.Create("/c/b", "b2"));
  EXPECT_EQ(b.create_revision, 8);
}

// A watcher whose callback stalls has its queue dropped and catches up from history.
TYPED_TEST(StoreTest, StalledWatcherCatchesUpFromHistory) {
  this->ReopenWithWatchQueueLimit(4);
  Store& s = *this->store_;
  Gate entered, release;
  EventLog log;
  WatchCallback record = log.Callback();
  std::atomic<bool> first{true};
  ASSERT_OK_AND_ASSIGN(auto handle,
                       s.Watch("/s/", RangeEndForPrefix("/s/"), 0, [&](const WatchBatch& batch) {
                         record(batch);
                         if (first.exchange(false)) {
                           entered.Open();
                           release.Wait();
                         }
                       }));
  ASSERT_OK(s.Create("/s/0", ""));
  ASSERT_TRUE(entered.Wait());
  for (int i = 1; i < 50; ++i) ASSERT_OK(s.Create("/s/" + std::to_string(i), ""));
  release.Open();
  ASSERT_OK_AND_ASSIGN(KeyValue last, s.Create("/s/end", ""));
  ASSERT_TRUE(log.WaitForRevision(last.mod_revision));
  EXPECT_EQ(log.Revisions(), Sequence(1, last.mod_revision));
  EXPECT_FALSE(log.out_of_order());
}

// Replay reads history in chunks; a long one must still be complete and in order.
TYPED_TEST(StoreTest, LongReplayIsCompleteAndOrdered) {
  Store& s = *this->store_;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < 16; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 100; ++i) {
        if (!s.Create("/l/" + std::to_string(t) + "/" + std::to_string(i), "v").ok()) ++failures;
      }
    });
  }
  for (auto& t : threads) t.join();
  ASSERT_EQ(failures.load(), 0);
  ASSERT_EQ(this->Revision(), 1600);
  EventLog log;
  ASSERT_OK_AND_ASSIGN(auto handle, s.Watch("/l/", RangeEndForPrefix("/l/"), 1, log.Callback()));
  ASSERT_OK_AND_ASSIGN(KeyValue last, s.Create("/l/end", ""));
  ASSERT_TRUE(log.WaitForRevision(last.mod_revision));
  EXPECT_EQ(log.Revisions(), Sequence(2, last.mod_revision));
  EXPECT_FALSE(log.out_of_order());
}

// A stalled watcher that falls behind a compaction ends with a `compacted` batch.
TYPED_TEST(StoreTest, StalledWatcherBehindCompactionEnds) {
  this->ReopenWithWatchQueueLimit(4);
  Store& s = *this->store_;
  Gate entered, release;
  EventLog log;
  WatchCallback record = log.Callback();
  std::atomic<bool> first{true};
  ASSERT_OK_AND_ASSIGN(auto handle, s.Watch("", "", 0, [&](const WatchBatch& batch) {
    record(batch);
    if (first.exchange(false)) {
      entered.Open();
      release.Wait();
    }
  }));
  ASSERT_OK(s.Create("/k0", ""));
  ASSERT_TRUE(entered.Wait());
  for (int i = 1; i < 20; ++i) ASSERT_OK(s.Create("/k" + std::to_string(i), ""));
  ASSERT_OK(s.Compact(this->Revision()));
  release.Open();
  EXPECT_TRUE(log.WaitForCompacted());
}

TYPED_TEST(StoreTest, ConcurrentCreatesGetUniqueIncreasingRevisions) {
  Store& s = *this->store_;
  constexpr int kThreads = 16;
  constexpr int kPerThread = 200;
  EventLog log;
  ASSERT_OK_AND_ASSIGN(auto handle, s.Watch("/cc/", RangeEndForPrefix("/cc/"), 0, log.Callback()));

  std::vector<std::vector<int64_t>> revisions(kThreads);
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        std::string key = "/cc/" + std::to_string(t) + "/" + std::to_string(i);
        Result<KeyValue> kv = s.Create(key, key);
        if (!kv.ok() || kv->key != key || kv->create_revision != kv->mod_revision) {
          ++failures;
          continue;
        }
        revisions[t].push_back(kv->mod_revision);
      }
    });
  }
  for (auto& t : threads) t.join();
  ASSERT_EQ(failures.load(), 0);

  std::vector<int64_t> all;
  for (const auto& r : revisions) {
    EXPECT_TRUE(std::is_sorted(r.begin(), r.end()));
    all.insert(all.end(), r.begin(), r.end());
  }
  std::sort(all.begin(), all.end());
  constexpr int64_t kTotal = kThreads * kPerThread;
  EXPECT_EQ(all, Sequence(1, kTotal));
  EXPECT_EQ(this->Revision(), kTotal);

  ASSERT_OK_AND_ASSIGN(KeyValue last, s.Create("/cc/end", ""));
  ASSERT_TRUE(log.WaitForRevision(last.mod_revision));
  EXPECT_EQ(log.Revisions(), Sequence(1, last.mod_revision));
  EXPECT_FALSE(log.out_of_order());
  for (const WatchEvent& e : log.Events()) {
    EXPECT_EQ(e.kv.value, e.kv.key == "/cc/end" ? "" : e.kv.key);
  }
  ASSERT_OK_AND_ASSIGN(RangeResult r, s.Range("/cc/", RangeEndForPrefix("/cc/")));
  EXPECT_EQ(r.kvs.size(), static_cast<size_t>(kTotal + 1));
}

// Compare-and-swap increments from many threads: every Conflict is real, none is lost.
TYPED_TEST(StoreTest, ConcurrentCompareAndSwapLosesNoUpdate) {
  Store& s = *this->store_;
  constexpr int kThreads = 8;
  constexpr int kIncrements = 40;
  ASSERT_OK(s.Create("/counter", "0"));
  std::atomic<int> errors{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kIncrements;) {
        Result<KeyValue> kv = s.Get("/counter");
        if (!kv.ok()) {
          ++errors;
          return;
        }
        Result<KeyValue> updated =
            s.Update("/counter", std::to_string(std::stoi(kv->value) + 1), kv->mod_revision);
        if (updated.ok()) {
          ++i;
        } else if (updated.status().code() != Code::kConflict) {
          ++errors;
          return;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  ASSERT_EQ(errors.load(), 0);
  EXPECT_EQ(s.Get("/counter")->value, std::to_string(kThreads * kIncrements));
  EXPECT_EQ(this->Revision(), 1 + kThreads * kIncrements);
}

TYPED_TEST(StoreTest, DestroyedWatchHandleStopsCallbacks) {
  Store& s = *this->store_;
  std::atomic<bool> destroyed{false};
  std::atomic<bool> called_after_destroy{false};
  EventLog log, barrier;
  WatchCallback record = log.Callback();
  ASSERT_OK_AND_ASSIGN(auto handle, s.Watch("", "", 0, [&](const WatchBatch& batch) {
    if (destroyed) called_after_destroy = true;
    record(batch);
  }));
  ASSERT_OK_AND_ASSIGN(auto barrier_handle, s.Watch("", "", 0, barrier.Callback()));
  ASSERT_OK(s.Create("/a", ""));
  ASSERT_TRUE(log.WaitForCount(1));
  handle.reset();
  destroyed = true;
  for (int i = 0; i < 20; ++i) ASSERT_OK(s.Create("/b" + std::to_string(i), ""));
  ASSERT_TRUE(barrier.WaitForCount(21));
  EXPECT_FALSE(called_after_destroy);
  EXPECT_EQ(log.Events().size(), 1u);
}

TYPED_TEST(StoreTest, WatchHandleMayBeDestroyedInsideItsCallback) {
  Store& s = *this->store_;
  std::mutex mu;
  std::unique_ptr<WatchHandle> handle;
  std::atomic<int> calls{0};
  Gate done;
  auto result = s.Watch("", "", 0, [&](const WatchBatch&) {
    ++calls;
    std::lock_guard lock(mu);
    handle.reset();
    done.Open();
  });
  ASSERT_TRUE(result.ok());
  {
    std::lock_guard lock(mu);
    handle = std::move(result).value();
  }
  ASSERT_OK(s.Create("/a", ""));
  ASSERT_TRUE(done.Wait());
  EventLog barrier;
  ASSERT_OK_AND_ASSIGN(auto barrier_handle, s.Watch("", "", 0, barrier.Callback()));
  ASSERT_OK(s.Create("/b", ""));
  ASSERT_TRUE(barrier.WaitForCount(1));
  EXPECT_EQ(calls.load(), 1);
}

TYPED_TEST(StoreTest, WatchHandleMayOutliveStore) {
  EventLog log;
  ASSERT_OK_AND_ASSIGN(auto handle, this->store_->Watch("", "", 0, log.Callback()));
  ASSERT_OK(this->store_->Create("/a", ""));
  ASSERT_TRUE(log.WaitForCount(1));
  this->store_.reset();
  handle.reset();
}

// ---- SQLite only --------------------------------------------------------------------------------

class SqliteStoreTest : public ::testing::Test {
 protected:
  std::string path() const { return dir_.path() + "/store.db"; }
  Result<std::unique_ptr<SqliteStore>> Open() { return SqliteStore::Open(path()); }

  // Rows in the MVCC log, read through a separate connection.
  int64_t LogRows() {
    sqlite3* db = nullptr;
    EXPECT_EQ(sqlite3_open_v2(path().c_str(), &db, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
    sqlite3_stmt* stmt = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(db, "SELECT COUNT(*) FROM kv", -1, &stmt, nullptr), SQLITE_OK);
    EXPECT_EQ(sqlite3_step(stmt), SQLITE_ROW);
    int64_t rows = sqlite3_column_int64(stmt, 0);
    sqlite3_finalize(stmt);
    sqlite3_close(db);
    return rows;
  }

  TempDir dir_;
};

TEST_F(SqliteStoreTest, ReopenKeepsDataHistoryAndRevision) {
  {
    ASSERT_OK_AND_ASSIGN(auto s, Open());
    ASSERT_OK(s->Create("/a", "a1"));     // 1
    ASSERT_OK(s->Create("/b", "b1"));     // 2
    ASSERT_OK(s->Update("/a", "a2", 1));  // 3
    ASSERT_OK(s->Delete("/b", 2));        // 4
  }
  ASSERT_OK_AND_ASSIGN(auto s, Open());
  EXPECT_EQ(s->CurrentRevision().value(), 4);
  ASSERT_OK_AND_ASSIGN(KeyValue a, s->Get("/a", 0));
  EXPECT_EQ(a.value, "a2");
  EXPECT_EQ(a.create_revision, 1);
  EXPECT_EQ(a.mod_revision, 3);
  EXPECT_EQ(CodeOf(s->Get("/b", 0)), Code::kNotFound);
  EXPECT_EQ(s->Get("/b", 2)->value, "b1");
  // The rebuilt index drives preconditions.
  EXPECT_EQ(CodeOf(s->Create("/a", "x")), Code::kAlreadyExists);
  EXPECT_EQ(CodeOf(s->Update("/a", "x", 1)), Code::kConflict);
  EXPECT_EQ(CodeOf(s->Update("/b", "x", 0)), Code::kNotFound);
  ASSERT_OK_AND_ASSIGN(KeyValue a3, s->Update("/a", "a3", 3));
  EXPECT_EQ(a3.mod_revision, 5);
  ASSERT_OK_AND_ASSIGN(KeyValue b, s->Create("/b", "b2"));
  EXPECT_EQ(b.create_revision, 6);

  EventLog log;
  ASSERT_OK_AND_ASSIGN(auto handle, s->Watch("", "", 1, log.Callback()));
  ASSERT_TRUE(log.WaitForRevision(6));
  EXPECT_EQ(log.Revisions(), Sequence(2, 6));
}

TEST_F(SqliteStoreTest, CompactionDeletesSupersededRowsAndPersists) {
  {
    ASSERT_OK_AND_ASSIGN(auto s, Open());
    ASSERT_OK(s->Create("/a", "1"));     // 1
    ASSERT_OK(s->Update("/a", "2", 1));  // 2
    ASSERT_OK(s->Update("/a", "3", 2));  // 3
    ASSERT_OK(s->Create("/b", "1"));     // 4
    ASSERT_OK(s->Delete("/b", 4));       // 5
    ASSERT_OK(s->Create("/c", "1"));     // 6
    EXPECT_EQ(LogRows(), 6);
    ASSERT_OK(s->Compact(5));
    // Left: /a at 3 (the latest at 5) and /c at 6.
    EXPECT_EQ(LogRows(), 2);
  }
  ASSERT_OK_AND_ASSIGN(auto s, Open());
  EXPECT_EQ(s->CompactedRevision(), 5);
  EXPECT_EQ(s->CurrentRevision().value(), 6);
  EXPECT_EQ(CodeOf(s->Get("/a", 4)), Code::kGone);
  EXPECT_EQ(s->Get("/a", 5)->value, "3");
  EXPECT_EQ(CodeOf(s->Watch("", "", 2, [](const WatchBatch&) {})), Code::kGone);
}

TEST_F(SqliteStoreTest, RevisionSurvivesCompactingAwayEveryRow) {
  {
    ASSERT_OK_AND_ASSIGN(auto s, Open());
    ASSERT_OK(s->Create("/a", "1"));
    ASSERT_OK(s->Delete("/a", 1));
    ASSERT_OK(s->Compact(2));
    EXPECT_EQ(LogRows(), 0);
  }
  ASSERT_OK_AND_ASSIGN(auto s, Open());
  EXPECT_EQ(s->CurrentRevision().value(), 2);
  ASSERT_OK_AND_ASSIGN(KeyValue a, s->Create("/a", "again"));
  EXPECT_EQ(a.mod_revision, 3);
}

TEST_F(SqliteStoreTest, SecondOpenOfTheSameFileIsRefused) {
  ASSERT_OK_AND_ASSIGN(auto s, Open());
  EXPECT_EQ(CodeOf(Open()), Code::kUnavailable);
  s.reset();
  ASSERT_OK(Open());
}

TEST_F(SqliteStoreTest, GarbageFileIsRefused) {
  FILE* f = std::fopen(path().c_str(), "w");
  ASSERT_NE(f, nullptr);
  std::fputs("this is not a database, but it is long enough to look like a header page", f);
  std::fclose(f);
  Result<std::unique_ptr<SqliteStore>> s = Open();
  EXPECT_FALSE(s.ok());
}

// Every write acknowledged before kill -9 is there after reopening.
TEST_F(SqliteStoreTest, AcknowledgedWritesSurviveKill9) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::close(fds[0]);
    auto s = SqliteStore::Open(path());
    if (!s.ok()) ::_exit(1);
    std::vector<std::thread> writers;
    for (int t = 0; t < 4; ++t) {
      writers.emplace_back([&, t] {
        for (int i = 0;; ++i) {
          std::string key = "/kill/" + std::to_string(t) + "/" + std::to_string(i);
          if (!(*s)->Create(key, key).ok()) ::_exit(2);
          std::string line = key + "\n";
          if (::write(fds[1], line.data(), line.size()) != static_cast<ssize_t>(line.size())) {
            ::_exit(3);
          }
        }
      });
    }
    for (auto& w : writers) w.join();
    ::_exit(0);
  }
  ::close(fds[1]);
  std::vector<std::string> acked;
  std::string pending;
  char buf[4096];
  while (acked.size() < 300) {
    ssize_t n = ::read(fds[0], buf, sizeof(buf));
    if (n <= 0) break;
    pending.append(buf, n);
    size_t nl;
    while ((nl = pending.find('\n')) != std::string::npos) {
      acked.push_back(pending.substr(0, nl));
      pending.erase(0, nl + 1);
    }
  }
  ::kill(child, SIGKILL);
  int wstatus = 0;
  ASSERT_EQ(::waitpid(child, &wstatus, 0), child);
  ::close(fds[0]);
  ASSERT_GE(acked.size(), 300u) << "child exited early with status " << wstatus;
  ASSERT_TRUE(WIFSIGNALED(wstatus));

  ASSERT_OK_AND_ASSIGN(auto s, Open());
  for (const std::string& key : acked) {
    Result<KeyValue> kv = s->Get(key, 0);
    ASSERT_TRUE(kv.ok()) << key << ": " << kv.status().ToString();
    EXPECT_EQ(kv->value, key);
  }
  ASSERT_OK_AND_ASSIGN(RangeResult all, s->Range("/kill/", RangeEndForPrefix("/kill/"), 0, 0));
  EXPECT_GE(all.kvs.size(), acked.size());
  EXPECT_EQ(static_cast<int64_t>(all.kvs.size()), s->CurrentRevision().value());
}

// ---- OpenStore and RangeEndForPrefix ------------------------------------------------------------

TEST(OpenStoreTest, OpensMemoryAndSqliteAndRefusesOtherUris) {
  ASSERT_OK_AND_ASSIGN(auto memory, OpenStore("memory:"));
  ASSERT_OK(memory->Create("/a", "b"));

  TempDir dir;
  const std::string path = dir.path() + "/x.db";
  {
    ASSERT_OK_AND_ASSIGN(auto sqlite, OpenStore("sqlite:" + path));
    ASSERT_OK(sqlite->Create("/a", "b"));
  }
  EXPECT_TRUE(std::filesystem::exists(path));

  for (const std::string uri : {"", "memory", "sqlite:", "etcd:http://localhost:2379", "/x.db"}) {
    Result<std::unique_ptr<Store>> s = OpenStore(uri);
    ASSERT_FALSE(s.ok()) << uri;
    EXPECT_EQ(s.status().code(), Code::kBadRequest) << uri;
    EXPECT_NE(s.status().message().find("\"" + uri + "\""), std::string::npos)
        << s.status().message();
  }
  EXPECT_EQ(CodeOf(OpenStore("sqlite:" + dir.path() + "/no/such/dir/x.db")), Code::kUnavailable);
}

TEST(RangeEndForPrefixTest, IncrementsTheLastByteThatCan) {
  EXPECT_EQ(RangeEndForPrefix("/registry/pods/"), "/registry/pods0");
  EXPECT_EQ(RangeEndForPrefix("a"), "b");
  EXPECT_EQ(RangeEndForPrefix(std::string("a\xff", 2)), "b");
  EXPECT_EQ(RangeEndForPrefix(std::string("a\xff\xff", 3)), "b");
  EXPECT_EQ(RangeEndForPrefix(std::string("\x7f", 1)), std::string("\x80", 1));
  EXPECT_EQ(RangeEndForPrefix(std::string("\xff", 1)), "");
  EXPECT_EQ(RangeEndForPrefix(""), "");
}

}  // namespace
}  // namespace fulcrum::store
