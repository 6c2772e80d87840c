// The shape every controller here shares: informers feed keys into a work queue; worker threads
// take a key, reconcile what is with what should be through the API, and retry failures with
// exponential back-off. Controllers are level-based: Sync reads the current state from the
// informers' caches, never from the event that queued the key.
#pragma once

#include <chrono>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "base/clock.h"
#include "base/status.h"
#include "client/api_client.h"
#include "client/informer.h"

namespace fulcrum::controllers {

// For each owner uid, the keys of the objects whose controller ownerReference names it, kept
// current from an informer's events. Thread-safe.
class OwnerIndex {
 public:
  // Subscribes to `informer`; call before the informer starts.
  void Attach(client::Informer* informer);
  std::vector<std::string> Dependents(const std::string& owner_uid) const;

 private:
  void Set(const std::string& key, const std::string& owner_uid);
  mutable std::mutex mu_;
  std::map<std::string, std::map<std::string, bool>> by_owner_;  // guarded by mu_
  std::map<std::string, std::string> owner_of_;                  // guarded by mu_
};

// The informers and indexes the controllers share: one list+watch per kind for the whole cluster.
struct SharedInformers {
  client::Informer* pods = nullptr;
  client::Informer* replica_sets = nullptr;
  client::Informer* deployments = nullptr;
  client::Informer* jobs = nullptr;
  const OwnerIndex* pods_by_owner = nullptr;
  const OwnerIndex* replica_sets_by_owner = nullptr;
};

// The cached objects of `informer` listed under `keys` (missing ones skipped).
std::vector<client::ObjectPtr> CachedObjects(const client::Informer& informer,
                                             const std::vector<std::string>& keys);

class Controller {
 public:
  Controller(std::string name, client::ApiClient* api, base::Clock* clock)
      : api_(api), clock_(clock), name_(std::move(name)) {}
  virtual ~Controller() { Stop(); }

  const std::string& name() const { return name_; }
  void Start(int workers);
  void Stop();
  void Enqueue(const std::string& key) { queue_.Add(key); }
  // Queues the key of every object `informer` adds, changes or deletes.
  void EnqueueOnEvents(client::Informer* informer);
  // Queues "ns/name" of the pod's controller owner when it is of `kind`, telling `expectations`
  // what the informer showed first. Call before the informer starts.
  void EnqueueOwnerOfPods(client::Informer* pods, const std::string& kind,
                          class Expectations* expectations);
  void EnqueueAfter(const std::string& key, std::chrono::milliseconds delay) {
    queue_.AddAfter(key, delay);
  }

 protected:
  // Reconciles one object. An error requeues the key with back-off; OK forgets its failures.
  virtual base::Status Sync(const std::string& key) = 0;

  client::ApiClient* api_;
  base::Clock* clock_;

 private:
  void Work();

  std::string name_;
  client::WorkQueue queue_;
  std::mutex mu_;
  std::map<std::string, int> failures_;  // guarded by mu_
  std::vector<std::thread> workers_;
};

// Remembers what a controller has asked for and not yet seen come back through its informer
// (client-go's "expectations"), so that a sync running before the watch catches up neither
// creates twice nor deletes twice. Entries expire after a while in case an event is lost.
class Expectations {
 public:
  explicit Expectations(base::Clock* clock) : clock_(clock) {}
  void ExpectCreated(const std::string& owner_key, const std::string& pod_name);
  void ExpectDeleted(const std::string& owner_key, const std::string& pod_name);
  // Called when the informer shows a pod of this owner: satisfies a pending create.
  void Observed(const std::string& owner_key, const std::string& pod_name, bool deleted);
  // Pods created but not yet observed, and pods deleted but still observed.
  int PendingCreates(const std::string& owner_key);
  bool PendingDelete(const std::string& owner_key, const std::string& pod_name);

 private:
  struct Entry {
    std::map<std::string, base::WallTime> creates;
    std::map<std::string, base::WallTime> deletes;
  };
  void Expire(Entry& e);
  base::Clock* clock_;
  std::mutex mu_;
  std::map<std::string, Entry> by_owner_;  // guarded by mu_
};

}  // namespace fulcrum::controllers
