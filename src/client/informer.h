// Informers: a local cache of one kind of object, kept current by a list followed by one watch
// (resumed from the last resourceVersion seen, relisted when the server answers 410 Gone), with
// callbacks for what changed — the client-go SharedInformer contract in a small form.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "client/api_client.h"

namespace fulcrum::client {

using ObjectPtr = std::shared_ptr<const Json>;

struct InformerHandlers {
  std::function<void(const ObjectPtr&)> on_add;
  std::function<void(const ObjectPtr& old_object, const ObjectPtr& new_object)> on_update;
  std::function<void(const ObjectPtr&)> on_delete;
};

// Caches the objects at `collection_path` (e.g. "/api/v1/pods") that match `query` (e.g.
// "fieldSelector=spec.nodeName%3Dnode-1"; empty for all). Handlers run on the informer's own
// thread, one at a time, after the cache reflects the change; they must not block for long.
// Get/List are thread-safe and return immutable snapshots of objects.
class Informer {
 public:
  Informer(ApiClient* client, std::string collection_path, std::string query,
           InformerHandlers handlers = {});
  ~Informer();  // stops
  Informer(const Informer&) = delete;
  Informer& operator=(const Informer&) = delete;

  // Adds another set of handlers (informers shared by several controllers). Call before Start.
  void AddHandlers(InformerHandlers handlers);
  void Start();
  void Stop();
  // True once the first list has been applied; false if `timeout` passed first.
  bool WaitForSync(std::chrono::milliseconds timeout);
  bool synced() const { return synced_.load(); }

  // The object with this key ("ns/name" or "name"), or null.
  ObjectPtr Get(const std::string& key) const;
  std::vector<ObjectPtr> List() const;
  // The resourceVersion of the last event applied.
  std::string resource_version() const;

 private:
  void Run();
  base::Status ListAndReplace();
  base::Status WatchUntilError();
  void Apply(const std::string& type, Json object);
  void NotifyAdd(const ObjectPtr& object);
  void NotifyUpdate(const ObjectPtr& old_object, const ObjectPtr& new_object);
  void NotifyDelete(const ObjectPtr& object);

  ApiClient* client_;
  const std::string collection_path_;
  const std::string query_;
  std::vector<InformerHandlers> handlers_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, ObjectPtr> objects_;  // guarded by mu_
  std::string resource_version_;              // guarded by mu_
  std::unique_ptr<WatchStream> stream_;       // guarded by mu_ (for Stop to close it)
  std::atomic<bool> synced_{false};
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

// A queue of keys to reconcile, as client-go's workqueue: a key queued while it waits is queued
// once; a key queued while it is being processed is processed again after Done. AddAfter delays
// (retries with back-off). Thread-safe.
class WorkQueue {
 public:
  void Add(const std::string& key);
  void AddAfter(const std::string& key, std::chrono::milliseconds delay);
  // Blocks until a key is ready or the queue shuts down (then returns false).
  bool Get(std::string* key);
  void Done(const std::string& key);
  void ShutDown();
  std::size_t size() const;

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  // All guarded by mu_.
  std::deque<std::string> queue_;
  std::set<std::string> dirty_;       // queued, or to be queued again when its processing ends
  std::set<std::string> processing_;
  std::multimap<std::chrono::steady_clock::time_point, std::string> delayed_;
  bool shut_down_ = false;
};

}  // namespace fulcrum::client
