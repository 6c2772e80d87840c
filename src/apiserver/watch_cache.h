#pragma once

#include <array>
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

inline constexpr std::size_t kWatchHistory = 20000;          // events kept per kind
inline constexpr std::size_t kMaxPendingPerWatcher = 10000;  // a watcher further behind is dropped

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

// The wire forms of one event, built by the first watch stream that sends it and then shared by
// every other: a thousand watchers of a kind send the same immutable bytes. The cache makes one per
// event and never looks inside. Thread-safe.
class EventBytes {
 public:
  static constexpr std::size_t kSlots = 3;
  using Bytes = std::shared_ptr<const std::string>;
  // The bytes in `slot` (< kSlots; the caller decides what each slot holds), made by `make` on the
  // first call for that slot; later calls return the same buffer without calling `make`.
  template <typename Make>
  Bytes Get(std::size_t slot, Make&& make) {
    std::call_once(once_[slot], [&] { bytes_[slot] = std::make_shared<const std::string>(make()); });
    return bytes_[slot];
  }

 private:
  std::array<std::once_flag, kSlots> once_;
  std::array<Bytes, kSlots> bytes_;
};

struct CacheEvent {
  enum class Type { kAdded, kModified, kDeleted };
  Type type = Type::kAdded;
  ObjectPtr object;  // for kDeleted, the last state with the delete's resourceVersion
  ObjectPtr prev;    // the state before, for kModified and kDeleted (not kept in watcher queues)
  std::shared_ptr<EventBytes> bytes;  // shared by every copy of this event; null for initial ADDEDs
};

// Decides whether an object belongs to a list or watch (namespace, label and field selectors).
using ObjectFilter = std::function<bool(const CachedObject&)>;

// A watch on the cache. Events arrive in resourceVersion order with no gaps for the filter (the
// initial ADDED events of a watch without a resourceVersion come first, in key order). Events wait
// in the watcher's queue; a watcher that falls more than the cache's bound behind is dropped: its
// queue is emptied and the watch ends, and the client is expected to list and watch again, as with
// Kubernetes. Thread-safe.
class CacheWatcher {
 public:
  // Moves pending events into *out, waiting until there is at least one, the deadline passes, or
  // the watch ends. Returns false once the watch has ended (cancelled, or too slow and dropped)
  // and everything pending was delivered.
  bool Next(std::vector<CacheEvent>* out, std::chrono::steady_clock::time_point deadline);
  // The non-blocking form for event loops: moves at most `max` pending events into *out. When it
  // finds nothing to move, the next event (or the end of the watch) calls the wake function once.
  // Returns false once the watch has ended and everything pending was delivered.
  bool Take(std::vector<CacheEvent>* out, std::size_t max);
  // Sets the function Take arms. It is called from the cache's thread with the cache locked, so it
  // must not block or call into the cache (post to an event loop instead); it is called at once
  // if there is something to take already.
  void SetWake(std::function<void()> wake);
  // True while events of the initial state (sent before any change) are still queued.
  bool InitialPending() const;
  // True once the cache dropped this watcher for falling too far behind.
  bool Dropped() const;
  // Ends the watch; Next returns false from then on. Thread-safe.
  void Cancel();

 private:
  friend class WatchCache;
  // Ends the watch and calls the wake function if armed. Requires mu_.
  void EndLocked();
  ObjectFilter filter_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<CacheEvent> pending_;
  std::size_t initial_left_ = 0;  // initial events at the front of pending_
  int64_t revision_ = 0;  // of the last event queued
  bool ended_ = false;
  bool dropped_ = false;
  bool wake_armed_ = false;
  std::function<void()> wake_;
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
  // `history` is how many events per kind are kept for watches that resume from a revision;
  // `max_pending` how many changes a watcher may have queued before it is dropped as too slow.
  WatchCache(const api::Registry* registry, store::Store* store,
             std::size_t history = kWatchHistory, std::size_t max_pending = kMaxPendingPerWatcher);
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
  // instead of parsing the value again. Unexpect withdraws the announcement of a write that
  // failed (a no-op if another write replaced it). After a successful write the announcement
  // stays until the event takes it: the store acknowledges a write before its event reaches the
  // cache, so withdrawing it then would make the cache parse the value after all. At most one
  // announcement per key is kept. Thread-safe.
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
  const std::size_t max_pending_;
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
