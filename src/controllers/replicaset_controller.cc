#include "controllers/replicaset_controller.h"

#include <algorithm>

#include "client/events.h"
#include "controllers/workload.h"

namespace fulcrum::controllers {
namespace {

using base::StringAt;
using client::ObjectPtr;

// At most this many pods are created or deleted by one sync; the next sync continues.
constexpr int kBurst = 500;

}  // namespace

ReplicaSetController::ReplicaSetController(client::ApiClient* api, base::Clock* clock,
                                           SharedInformers informers)
    : Controller("replicaset-controller", api, clock), informers_(informers), expectations_(clock) {
  EnqueueOnEvents(informers_.replica_sets);
  EnqueueOwnerOfPods(informers_.pods, "ReplicaSet", &expectations_);
}

base::Status ReplicaSetController::Sync(const std::string& key) {
  ObjectPtr rs = informers_.replica_sets->Get(key);
  if (rs == nullptr || !StringAt(*rs, {"metadata", "deletionTimestamp"}).empty()) {
    return base::Status::Ok();
  }
  const std::string ns = StringAt(*rs, {"metadata", "namespace"});
  const std::string rs_name = StringAt(*rs, {"metadata", "name"});
  const std::string uid = StringAt(*rs, {"metadata", "uid"});
  const int64_t replicas = IntAt(*rs, {"spec", "replicas"}, 1);
  const int64_t min_ready = IntAt(*rs, {"spec", "minReadySeconds"});

  std::vector<ObjectPtr> active;
  for (ObjectPtr& pod : CachedObjects(*informers_.pods, informers_.pods_by_owner->Dependents(uid))) {
    // A create whose watch event came before ExpectCreated was recorded is satisfied here.
    expectations_.Observed(key, StringAt(*pod, {"metadata", "name"}), false);
    if (!IsPodActive(*pod)) continue;
    if (expectations_.PendingDelete(key, StringAt(*pod, {"metadata", "name"}))) continue;
    active.push_back(std::move(pod));
  }
  const int pending_creates = expectations_.PendingCreates(key);
  const int64_t diff = static_cast<int64_t>(active.size()) + pending_creates - replicas;
  base::Status first_error = base::Status::Ok();
  if (diff < 0) {
    Json pod = PodFromTemplate((*rs)["spec"]["template"], *rs, "apps/v1", "ReplicaSet");
    std::string path = client::ResourcePath("v1", "pods", ns);
    int64_t n = std::min<int64_t>(-diff, kBurst);
    int created = 0;
    for (int64_t i = 0; i < n; ++i) {
      auto result = api_->Create(path, pod);
      if (!result.ok()) {
        first_error = result.status();
        client::RecordEvent(api_, clock_, *rs, "Warning", "FailedCreate",
                            "Error creating: " + result.status().message(), name());
        break;
      }
      expectations_.ExpectCreated(key, StringAt(*result, {"metadata", "name"}));
      ++created;
    }
    if (created > 0) {
      client::RecordEvent(api_, clock_, *rs, "Normal", "SuccessfulCreate",
                          "Created " + std::to_string(created) + " pod" + (created > 1 ? "s" : ""),
                          name());
    }
  } else if (diff > 0 && pending_creates == 0) {
    SortForDeletion(active);
    int64_t n = std::min<int64_t>(diff, kBurst);
    std::string deleted_names;
    for (int64_t i = 0; i < n; ++i) {
      std::string pod_name = StringAt(*active[i], {"metadata", "name"});
      auto result = api_->Delete(client::ResourcePath("v1", "pods", ns, pod_name));
      if (!result.ok() && !result.status().IsNotFound()) {
        first_error = result.status();
        break;
      }
      expectations_.ExpectDeleted(key, pod_name);
      deleted_names += (deleted_names.empty() ? "" : ", ") + pod_name;
    }
    if (!deleted_names.empty()) {
      client::RecordEvent(api_, clock_, *rs, "Normal", "SuccessfulDelete",
                          "Deleted pod: " + deleted_names, name());
    }
  }

  // Status from what is observed now (the next sync sees the pods created above).
  int64_t ready = 0, available = 0;
  bool waiting_for_available = false;
  auto now = clock_->Now();
  for (const ObjectPtr& pod : active) {
    if (!IsPodReady(*pod)) continue;
    ++ready;
    if (IsPodAvailable(*pod, min_ready, now)) {
      ++available;
    } else {
      waiting_for_available = true;
    }
  }
  Json status = {{"replicas", static_cast<int64_t>(active.size())},
                 {"fullyLabeledReplicas", static_cast<int64_t>(active.size())},
                 {"readyReplicas", ready},
                 {"availableReplicas", available},
                 {"observedGeneration", IntAt(*rs, {"metadata", "generation"})}};
  const Json* current = base::FindPath(*rs, {"status"});
  bool same = current != nullptr && current->is_object();
  for (auto it = status.begin(); same && it != status.end(); ++it) {
    same = current->value(it.key(), Json(0)) == it.value();
  }
  if (!same) {
    auto patched = api_->Patch(client::ResourcePath("apps/v1", "replicasets", ns, rs_name, "status"),
                               client::PatchType::kMerge, Json{{"status", status}});
    if (!patched.ok() && first_error.ok()) first_error = patched.status();
  }
  if (waiting_for_available) EnqueueAfter(key, std::chrono::seconds(std::max<int64_t>(1, min_ready)));
  return first_error;
}

}  // namespace fulcrum::controllers
