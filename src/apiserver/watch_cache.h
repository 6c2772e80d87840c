#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "api/registry.h"
#include "base/status.h"
#include "store/store.h"

namespace fulcrum::apiserver {

using Labels = std::vector<std::pair<std::string, std::string>>;  // sorted by key

inline constexpr std::size_t kWatchHistory = 20000;           // events kept per kind
inline constexpr std::size_t kMaxPendingPerWatcher = 100000;  // a slower watcher is dropped

// One object as the cache holds it: its serialized bytes (resourceVersion included), so reads
// never re-encode, plus what selectors need without parsing. Immutable once built, shared by the
// current state, the event history and every watcher.
struct CachedObject {
  std::string key;  // "namespace/name", or "name" for cluster-scoped kinds
  std::string namespace_;
  std::string name;
  std::string uid;
  std::string json;
  int64_t resource_version = 0;
  Labels labels;
  Labels fields;  // precomputed selectable fields (e.g. spec.nodeName for pods)
};
using ObjectPtr = std::shared_ptr<const CachedObject>;

struct CacheEvent {
  enum class Type { kAdded, kModified, kDeleted };
  Type type = Type::kAdded;
  ObjectPtr object;  // for kDeleted, the last state with the delete's resourceVersion
  ObjectPtr prev;    // the state before, for kModified and kDeleted
};

// Decides whether an object belongs to a list or watch (namespace, label and field selectors).
using ObjectFilter = std::function<bool(const CachedObject&)>;

// A watch on the cache. Events arrive in resourceVersion order with no gaps for the filter.
class CacheWatcher {
 public:
  // Moves pending events into *out, waiting until there is at least one, the deadline passes, or
  // the watch ends. Returns false once the watch has ended (cancelled, or too slow and dropped)
  // and everything pending was delivered.
  bool Next(std::vector<CacheEvent>* out, std::chrono::steady_clock::time_point deadline);
  // Ends the watch; Next returns false from then on. Thread-safe.
  void Cancel();
 private:
  friend class WatchCache;
  ObjectFilter filter_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<CacheEvent> pending_;
  int64_t revision_ = 0;  // of the last event queued
  bool ended_ = false;
};

struct ListResult {
  std::vector<ObjectPtr> items;
  int64_t resource_version = 0;
  bool more = false;  // a limit cut the list; the next page starts after items.back()->key
};

// The API server's in-memory view of the store: every get, list and watch is served from here, so
// the store sees writes only. Kept current by one store watch over all kinds. Thread-safe.
class WatchCache {
 public:
  // `history` is how many events per kind are kept for watches that resume from a revision.
  WatchCache(const api::Registry* registry, store::Store* store,
             std::size_t history = kWatchHistory);
  ~WatchCache();

  // Loads every object and starts the store watch. Call once before use.
  base::Status Start();

  // Waits until the cache reflects store revision `revision`. Timeout if it does not in time.
  base::Status WaitForRevision(int64_t revision, std::chrono::milliseconds timeout);
  // Waits until the cache has caught up with the store's current revision (a consistent read).
  base::Status WaitForFresh(std::chrono::milliseconds timeout = std::chrono::seconds(5));
  int64_t Revision() const;

  // The revision a BOOKMARK for `watcher` may carry: every event at or below it that passes the
  // watcher's filter has been handed to it by Next.
  int64_t BookmarkRevision(const CacheWatcher& watcher) const;

  // The object, or nullptr.
  ObjectPtr Get(const api::ResourceType& type, const std::string& namespace_,
                const std::string& name) const;

  // Objects of `type` in `namespace_` ("" = all) passing `filter`, in key order, starting after
  // `after_key` ("" = from the start), at most `limit` (0 = all). When `label` is given, only
  // objects carrying that label key and value are considered, found through an index (the filter
  // must imply it).
  ListResult List(const api::ResourceType& type, const std::string& namespace_,
                  const ObjectFilter& filter, const std::string& after_key, std::size_t limit,
                  const std::pair<std::string, std::string>* label = nullptr) const;

  // Like List, but at a past store revision (resourceVersionMatch=Exact): read from the store, not
  // the cache. Gone when the revision has been compacted.
  base::Result<ListResult> ListAt(const api::ResourceType& type, const std::string& namespace_,
                                  const ObjectFilter& filter, const std::string& after_key,
                                  std::size_t limit, int64_t revision) const;

  // Starts a watch. `after_revision` < 0: first an ADDED event for each current object, then
  // changes. Otherwise changes after that revision, replayed from the cache's history; Gone when
  // the history no longer reaches back that far.
  base::Result<std::shared_ptr<CacheWatcher>> Watch(const api::ResourceType& type,
                                                    const std::string& namespace_,
                                                    ObjectFilter filter, int64_t after_revision);

  // Number of objects of a kind, and total bytes held, for metrics.
  std::size_t Count(const api::ResourceType& type) const;

  // Builds a CachedObject from an object's JSON (sets metadata.resourceVersion to `rv`).
  static base::Result<ObjectPtr> MakeObject(const api::ResourceType& type, base::Json obj,
                                            int64_t rv);
  // The same from an object and `stored`, its serialized form without a resourceVersion (as the
  // store holds it): the resourceVersion is spliced into those bytes rather than serializing again.
  static base::Result<ObjectPtr> MakeObject(const api::ResourceType& type, const base::Json& obj,
                                            std::string_view stored, int64_t rv);
  // MakeObject in two steps: everything but the revision, which only the store's commit gives...
  static base::Result<std::shared_ptr<const CachedObject>> Prepare(const api::ResourceType& type,
                                                                   const base::Json& obj,
                                                                   std::string_view stored);
  // ...and the object at revision `rv`.
  static ObjectPtr WithRevision(const CachedObject& prepared, int64_t rv);

  // Announces that this server is about to write `prepared` (from Prepare) under `store_key`: when
  // the store's event for that key carries exactly those bytes, the cache takes the prepared object
  // instead of parsing the value again. Unexpect withdraws the announcement once the write is
  // done (a no-op if the event already took it). Thread-safe.
  void Expect(const std::string& store_key, std::shared_ptr<const CachedObject> prepared);
  void Unexpect(const std::string& store_key, const CachedObject* prepared);

 private:
  struct KeyOrder {
    bool operator()(const CachedObject* a, const CachedObject* b) const { return a->key < b->key; }
  };
  // Objects by "label-key\0label-value", in key order. The pointers are owned by `objects`.
  using LabelIndex = std::unordered_map<std::string, std::set<const CachedObject*, KeyOrder>>;

  struct TypeState {
    const api::ResourceType* type = nullptr;
    std::map<std::string, ObjectPtr> objects;
    LabelIndex by_label;
    std::deque<std::pair<int64_t, CacheEvent>> history;  // (revision, event), oldest first
    int64_t history_floor = 0;  // events after this revision are all in `history`
    std::vector<std::weak_ptr<CacheWatcher>> watchers;
  };

  void Apply(const store::WatchBatch& batch);
  // Replaces (or, with a null `next`, removes) the object under `key`, keeping the index current.
  static void Put(TypeState& state, const std::string& key, ObjectPtr next);
  TypeState* StateForKey(const std::string& store_key, std::string* object_key);
  void Dispatch(TypeState& state, int64_t revision, const CacheEvent& event);

  const api::Registry* registry_;
  store::Store* store_;
  const std::size_t history_limit_;
  mutable std::mutex mu_;
  mutable std::condition_variable advanced_;
  int64_t revision_ = 0;
  std::unordered_map<std::string, TypeState> states_;  // by "group/plural"
  std::unique_ptr<store::WatchHandle> watch_;
  bool failed_ = false;
  std::mutex expected_mu_;  // guards expected_; taken after mu_ when both are held
  std::unordered_map<std::string, std::shared_ptr<const CachedObject>> expected_;
};

// Store keys: "/registry/<group or core>/<plural>/<namespace>/<name>", cluster-scoped kinds
// without the namespace.
std::string StoreKey(const api::ResourceType& type, const std::string& namespace_,
                     const std::string& name);
std::string StorePrefix(const api::ResourceType& type);

}  // namespace fulcrum::apiserver
