#pragma once

#include <functional>
#include <optional>
#include <string>

#include "api/registry.h"
#include "apiserver/watch_cache.h"
#include "base/clock.h"
#include "store/store.h"

namespace fulcrum::apiserver {

using base::Json;
using base::Result;
using base::Status;

// Which part of an object a write may change: kMain everything but status, kStatus only status
// (and metadata), kAll everything (server-internal writes such as a binding).
enum class Subresource { kMain, kStatus, kAll };

struct WriteOptions {
  bool dry_run = false;
  // Set by Mutate for Subresource::kAll: the server's own writes of fields that users may not
  // change on update (pods/binding sets spec.nodeName) are validated as on create, without the
  // update-only rules.
  bool system_write = false;
};

struct DeleteOptions {
  std::optional<int64_t> grace_period_seconds;
  std::string precondition_uid;
  std::string precondition_resource_version;
  bool dry_run = false;
};


// The object life cycle of the Kubernetes API (the generic registry): create with generateName,
// uid, timestamps and defaults; update with optimistic concurrency, status/spec separation and
// generation; graceful and finalizer-aware deletion. Reads come from the watch cache, writes go to
// the store. Used by the REST handlers and by in-process controllers. Thread-safe.
//
// Failures are Statuses whose code is the Kubernetes reason (NotFound, AlreadyExists, Conflict,
// Invalid, BadRequest, Forbidden); for Invalid, `causes` (when given) receives the field errors.
class Objects {
 public:
  Objects(const api::Registry* registry, store::Store* store, WatchCache* cache,
          base::Clock* clock);

  Result<ObjectPtr> Create(const api::ResourceType& type, const std::string& namespace_, Json obj,
                           const WriteOptions& options, api::FieldErrors* causes);

  // Replaces the object (PUT). A resourceVersion in `obj` is a precondition; without one the
  // update is unconditional.
  Result<ObjectPtr> Update(const api::ResourceType& type, const std::string& namespace_,
                           const std::string& name, Json obj, Subresource sub,
                           const WriteOptions& options, api::FieldErrors* causes);

  // Reads the current object, applies `mutate` and writes the result, retrying when another
  // writer got there first (unless the mutated object names a resourceVersion of its own).
  using Mutation = std::function<Result<Json>(const Json& current)>;
  Result<ObjectPtr> Mutate(const api::ResourceType& type, const std::string& namespace_,
                           const std::string& name, const Mutation& mutate, Subresource sub,
                           const WriteOptions& options, api::FieldErrors* causes);

  // Deletes the object, or marks it for deletion (deletionTimestamp) when finalizers or a grace
  // period keep it. Returns the object as deleted or as marked.
  Result<ObjectPtr> Delete(const api::ResourceType& type, const std::string& namespace_,
                           const std::string& name, const DeleteOptions& options);

  // Removes the object at once, ignoring finalizers and grace periods (the last step of a
  // controller's finalization). Conflict if it changed meanwhile.
  Result<ObjectPtr> Purge(const api::ResourceType& type, const std::string& namespace_,
                          const std::string& name);

  // The object from the cache after waiting for it to be current, or NotFound.
  Result<ObjectPtr> GetFresh(const api::ResourceType& type, const std::string& namespace_,
                             const std::string& name);

  // Creates the namespaces every cluster has (default, kube-system, kube-public, kube-node-lease).
  Status EnsureSystemNamespaces();
  // Creates the PriorityClasses every cluster has (api::SystemPriorityClasses) when missing.
  Status EnsureSystemPriorityClasses();

  // "pods \"x\" not found": Kubernetes' resource naming in messages.
  static std::string Qualified(const api::ResourceType& type);

  const api::Registry& registry() const { return *registry_; }
  WatchCache& cache() { return *cache_; }
  base::Clock& clock() { return *clock_; }

 private:
  Result<ObjectPtr> Write(const api::ResourceType& type, const std::string& namespace_,
                          const std::string& name, Json obj, const Json* old, int64_t expected_rv,
                          const WriteOptions& options, api::FieldErrors* causes);
  Status Validate(const api::ResourceType& type, const Json& obj, const Json* old,
                  api::FieldErrors* causes);
  // Priority admission for a new pod: spec.priority (and preemptionPolicy) from its
  // priorityClassName, or from the global default class, else 0. Forbidden when the class does
  // not exist or a given spec.priority disagrees with it.
  Status AdmitPodPriority(Json& pod);
  Status AllocateServiceIp(Json& obj);

  const api::Registry* registry_;
  store::Store* store_;
  WatchCache* cache_;
  base::Clock* clock_;
  std::mutex ip_mu_;
};

}  // namespace fulcrum::apiserver
