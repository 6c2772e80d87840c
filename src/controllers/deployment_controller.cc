#include "controllers/deployment_controller.h"

#include <algorithm>

#include "client/events.h"
#include "controllers/workload.h"

namespace fulcrum::controllers {
namespace {

using base::StringAt;
using client::ObjectPtr;

constexpr char kRevision[] = "deployment.kubernetes.io/revision";
constexpr char kDesiredReplicas[] = "deployment.kubernetes.io/desired-replicas";
constexpr char kMaxReplicas[] = "deployment.kubernetes.io/max-replicas";
constexpr char kHashLabel[] = "pod-template-hash";

int64_t Revision(const Json& rs) {
  std::string r = StringAt(rs, {"metadata", "annotations", kRevision});
  try {
    return r.empty() ? 0 : std::stoll(r);
  } catch (...) {
    return 0;
  }
}

// The template without the pod-template-hash label: what a Deployment's template is compared by.
Json WithoutHash(const Json& tmpl) {
  Json t = tmpl;
  if (t.is_object() && t["metadata"].is_object() && t["metadata"]["labels"].is_object()) {
    t["metadata"]["labels"].erase(kHashLabel);
    if (t["metadata"]["labels"].empty()) t["metadata"].erase("labels");
  }
  if (t.is_object() && t["metadata"].is_object() && t["metadata"].empty()) t.erase("metadata");
  return t;
}

Json NormalizedTemplate(const Json& tmpl) {
  Json t = WithoutHash(tmpl);
  if (t.is_object() && t["metadata"].is_object()) t["metadata"].erase("creationTimestamp");
  return t;
}

}  // namespace

RolloutStep PlanRollingUpdate(int64_t replicas, int64_t max_surge, int64_t max_unavailable,
                              const ReplicaSetCounts& new_rs,
                              const std::vector<ReplicaSetCounts>& old_rs) {
  RolloutStep step;
  step.new_replicas = new_rs.spec;
  for (const auto& r : old_rs) step.old_replicas.push_back(r.spec);
  auto total_spec = [&] {
    int64_t n = step.new_replicas;
    for (int64_t r : step.old_replicas) n += r;
    return n;
  };
  // Scale up the new ReplicaSet as far as the surge allows (NewRSNewReplicas). A step that scales
  // up does nothing else, as in Kubernetes: old ReplicaSets wait for the next step.
  if (step.new_replicas < replicas) {
    int64_t room = replicas + max_surge - total_spec();
    if (room > 0) {
      step.new_replicas = std::min(replicas, step.new_replicas + room);
      return step;
    }
  } else if (step.new_replicas > replicas) {
    step.new_replicas = replicas;
  }
  // Scale down old ReplicaSets as far as availability allows (reconcileOldReplicaSets): first
  // their unavailable pods, which cost no availability, then available ones.
  int64_t min_available = replicas - max_unavailable;
  int64_t new_unavailable = std::max<int64_t>(0, new_rs.spec - new_rs.available);
  int64_t budget = total_spec() - min_available - new_unavailable;
  for (size_t i = 0; i < old_rs.size() && budget > 0; ++i) {
    int64_t unhealthy = std::max<int64_t>(0, step.old_replicas[i] - old_rs[i].available);
    int64_t cut = std::min(budget, unhealthy);
    step.old_replicas[i] -= cut;
    budget -= cut;
  }
  int64_t available = std::min(new_rs.available, new_rs.spec);
  for (size_t i = 0; i < old_rs.size(); ++i) {
    available += std::min(old_rs[i].available, step.old_replicas[i]);
  }
  int64_t can_remove = std::min(budget, available - min_available);
  for (size_t i = 0; i < old_rs.size() && can_remove > 0; ++i) {
    int64_t cut = std::min(can_remove, step.old_replicas[i]);
    step.old_replicas[i] -= cut;
    can_remove -= cut;
  }
  return step;
}

DeploymentController::DeploymentController(client::ApiClient* api, base::Clock* clock,
                                           SharedInformers informers)
    : Controller("deployment-controller", api, clock), informers_(informers) {
  EnqueueOnEvents(informers_.deployments);
  auto owner = [this](const ObjectPtr& rs) {
    std::string name = ControllerName(*rs, "Deployment");
    if (!name.empty()) Enqueue(StringAt(*rs, {"metadata", "namespace"}) + "/" + name);
  };
  client::InformerHandlers rs;
  rs.on_add = owner;
  rs.on_update = [owner](const ObjectPtr&, const ObjectPtr& o) { owner(o); };
  rs.on_delete = owner;
  informers_.replica_sets->AddHandlers(std::move(rs));
}

base::Status DeploymentController::Sync(const std::string& key) {
  ObjectPtr d = informers_.deployments->Get(key);
  if (d == nullptr || !StringAt(*d, {"metadata", "deletionTimestamp"}).empty()) {
    return base::Status::Ok();
  }
  const std::string ns = StringAt(*d, {"metadata", "namespace"});
  const std::string d_name = StringAt(*d, {"metadata", "name"});
  const Json& spec = (*d)["spec"];
  const int64_t replicas = IntAt(*d, {"spec", "replicas"}, 1);
  const bool paused = spec.value("paused", false);
  const bool recreate = StringAt(*d, {"spec", "strategy", "type"}) == "Recreate";
  const Json desired_template = NormalizedTemplate(spec["template"]);
  auto rs_path = [&](const std::string& name = "") {
    return client::ResourcePath("apps/v1", "replicasets", ns, name);
  };

  // The ReplicaSets this Deployment owns, oldest revision first; the one whose template is the
  // Deployment's is the new one.
  std::vector<ObjectPtr> all = CachedObjects(
      *informers_.replica_sets,
      informers_.replica_sets_by_owner->Dependents(StringAt(*d, {"metadata", "uid"})));
  std::sort(all.begin(), all.end(),
            [](const ObjectPtr& a, const ObjectPtr& b) { return Revision(*a) < Revision(*b); });
  ObjectPtr new_rs;
  std::vector<ObjectPtr> old;
  int64_t max_revision = 0;
  for (const ObjectPtr& rs : all) {
    if (new_rs == nullptr && NormalizedTemplate((*rs)["spec"]["template"]) == desired_template) {
      new_rs = rs;
    } else {
      old.push_back(rs);
      max_revision = std::max(max_revision, Revision(*rs));
    }
  }

  Json rolling = base::FindPath(spec, {"strategy", "rollingUpdate"}) != nullptr
                     ? spec["strategy"]["rollingUpdate"]
                     : Json::object();
  int64_t max_surge = recreate ? 0 : ScaledValue(rolling.value("maxSurge", Json("25%")), replicas, true);
  int64_t max_unavailable =
      recreate ? replicas : ScaledValue(rolling.value("maxUnavailable", Json("25%")), replicas, false);
  if (!recreate && max_surge == 0 && max_unavailable == 0) max_unavailable = 1;

  auto scale = [&](const ObjectPtr& rs, int64_t n) -> base::Status {
    if (IntAt(*rs, {"spec", "replicas"}, 1) == n &&
        StringAt(*rs, {"metadata", "annotations", kDesiredReplicas}) == std::to_string(replicas)) {
      return base::Status::Ok();
    }
    Json patch = {{"metadata",
                   {{"annotations",
                     {{kDesiredReplicas, std::to_string(replicas)},
                      {kMaxReplicas, std::to_string(replicas + max_surge)}}}}},
                  {"spec", {{"replicas", n}}}};
    auto r = api_->Patch(rs_path(StringAt(*rs, {"metadata", "name"})), client::PatchType::kMerge, patch);
    if (!r.ok()) return r.status();
    client::RecordEvent(api_, clock_, *d, "Normal", "ScalingReplicaSet",
                        std::string(n > IntAt(*rs, {"spec", "replicas"}, 1) ? "Scaled up" : "Scaled down") +
                            " replica set " + StringAt(*rs, {"metadata", "name"}) + " from " +
                            std::to_string(IntAt(*rs, {"spec", "replicas"}, 1)) + " to " +
                            std::to_string(n),
                        name());
    return base::Status::Ok();
  };

  bool created_new = false;
  if (new_rs == nullptr && !paused) {
    int64_t collisions = IntAt(*d, {"status", "collisionCount"});
    std::string hash = PodTemplateHash(desired_template, collisions);
    Json tmpl = spec["template"];
    tmpl["metadata"]["labels"][kHashLabel] = hash;
    Json selector = spec["selector"];
    selector["matchLabels"][kHashLabel] = hash;
    int64_t old_total = 0;
    for (const auto& rs : old) old_total += IntAt(*rs, {"spec", "replicas"}, 1);
    int64_t initial = recreate ? 0 : std::max<int64_t>(0, std::min(replicas, replicas + max_surge - old_total));
    Json annotations = Json::object();
    if (const Json* a = base::FindPath(*d, {"metadata", "annotations"}); a != nullptr && a->is_object()) {
      for (auto it = a->begin(); it != a->end(); ++it) {
        if (it.key() == "kubernetes.io/change-cause") annotations[it.key()] = it.value();
      }
    }
    annotations[kRevision] = std::to_string(max_revision + 1);
    annotations[kDesiredReplicas] = std::to_string(replicas);
    annotations[kMaxReplicas] = std::to_string(replicas + max_surge);
    Json labels = tmpl["metadata"]["labels"];
    Json rs = {{"apiVersion", "apps/v1"},
               {"kind", "ReplicaSet"},
               {"metadata",
                {{"name", d_name + "-" + hash},
                 {"namespace", ns},
                 {"labels", labels},
                 {"annotations", annotations},
                 {"ownerReferences", Json::array({ControllerReference(*d, "apps/v1", "Deployment")})}}},
               {"spec",
                {{"replicas", initial},
                 {"minReadySeconds", spec.value("minReadySeconds", 0)},
                 {"selector", selector},
                 {"template", tmpl}}}};
    auto result = api_->Create(rs_path(), rs);
    if (result.status().IsAlreadyExists()) {
      // A ReplicaSet of that name with another template: hash again with a higher collision count.
      auto existing = api_->Get(rs_path(d_name + "-" + hash));
      if (existing.ok() && ControllerUid(*existing) == StringAt(*d, {"metadata", "uid"}) &&
          NormalizedTemplate((*existing)["spec"]["template"]) == desired_template) {
        return base::Status::Ok();  // ours; the informer has not shown it yet
      }
      auto bumped = api_->Patch(
          client::ResourcePath("apps/v1", "deployments", ns, d_name, "status"),
          client::PatchType::kMerge, Json{{"status", {{"collisionCount", collisions + 1}}}});
      return bumped.ok() ? base::Conflict("pod template hash collision; retrying") : bumped.status();
    }
    if (!result.ok()) return result.status();
    client::RecordEvent(api_, clock_, *d, "Normal", "ScalingReplicaSet",
                        "Scaled up replica set " + d_name + "-" + hash + " to " + std::to_string(initial),
                        name());
    new_rs = std::make_shared<const Json>(std::move(*result));
    created_new = true;
  }

  // A template rolled back to an older ReplicaSet's takes the next revision number.
  if (new_rs != nullptr && Revision(*new_rs) <= max_revision && !created_new) {
    auto r = api_->Patch(rs_path(StringAt(*new_rs, {"metadata", "name"})), client::PatchType::kMerge,
                         Json{{"metadata", {{"annotations", {{kRevision, std::to_string(max_revision + 1)}}}}}});
    if (!r.ok()) return r.status();
    new_rs = std::make_shared<const Json>(std::move(*r));
  }
  if (new_rs != nullptr) {
    std::string revision = StringAt(*new_rs, {"metadata", "annotations", kRevision});
    if (StringAt(*d, {"metadata", "annotations", kRevision}) != revision) {
      auto r = api_->Patch(client::ResourcePath("apps/v1", "deployments", ns, d_name),
                           client::PatchType::kMerge,
                           Json{{"metadata", {{"annotations", {{kRevision, revision}}}}}});
      if (!r.ok()) return r.status();
    }
  }

  if (paused) {
    // Scaling still applies while paused: all of it to the newest ReplicaSet that has pods.
    ObjectPtr target = new_rs != nullptr ? new_rs : (old.empty() ? nullptr : old.back());
    if (target != nullptr) {
      int64_t others = 0;
      for (const auto& rs : all) {
        if (rs != target) others += IntAt(*rs, {"spec", "replicas"}, 1);
      }
      RETURN_IF_ERROR(scale(target, std::max<int64_t>(0, replicas - others)));
    }
  } else if (recreate) {
    int64_t old_running = 0;
    for (const auto& rs : old) {
      RETURN_IF_ERROR(scale(rs, 0));
      old_running += IntAt(*rs, {"status", "replicas"});
    }
    if (old_running == 0 && new_rs != nullptr) RETURN_IF_ERROR(scale(new_rs, replicas));
  } else if (new_rs != nullptr) {
    ReplicaSetCounts n{IntAt(*new_rs, {"spec", "replicas"}, 1), IntAt(*new_rs, {"status", "availableReplicas"})};
    std::vector<ReplicaSetCounts> o;
    for (const auto& rs : old) {
      o.push_back({IntAt(*rs, {"spec", "replicas"}, 1), IntAt(*rs, {"status", "availableReplicas"})});
    }
    RolloutStep step = PlanRollingUpdate(replicas, max_surge, max_unavailable, n, o);
    RETURN_IF_ERROR(scale(new_rs, step.new_replicas));
    for (size_t i = 0; i < old.size(); ++i) RETURN_IF_ERROR(scale(old[i], step.old_replicas[i]));
  }

  // Old ReplicaSets beyond revisionHistoryLimit that are scaled to zero go.
  int64_t limit = IntAt(*d, {"spec", "revisionHistoryLimit"}, 10);
  std::vector<ObjectPtr> idle;
  for (const auto& rs : old) {
    if (IntAt(*rs, {"spec", "replicas"}, 1) == 0 && IntAt(*rs, {"status", "replicas"}) == 0) idle.push_back(rs);
  }
  for (int64_t i = 0; i + limit < static_cast<int64_t>(idle.size()); ++i) {
    auto r = api_->Delete(rs_path(StringAt(*idle[i], {"metadata", "name"})));
    if (!r.ok() && !r.status().IsNotFound()) return r.status();
  }

  // Status, summed over the ReplicaSets as the informer shows them.
  int64_t status_replicas = 0, ready = 0, available = 0, updated = 0;
  for (const auto& rs : all) {
    status_replicas += IntAt(*rs, {"status", "replicas"});
    ready += IntAt(*rs, {"status", "readyReplicas"});
    available += IntAt(*rs, {"status", "availableReplicas"});
  }
  if (new_rs != nullptr && !created_new) updated = IntAt(*new_rs, {"status", "replicas"});
  Json status = (*d).contains("status") && (*d)["status"].is_object() ? (*d)["status"] : Json::object();
  Json before = status;
  status["observedGeneration"] = IntAt(*d, {"metadata", "generation"});
  status["replicas"] = status_replicas;
  status["updatedReplicas"] = updated;
  status["readyReplicas"] = ready;
  status["availableReplicas"] = available;
  status["unavailableReplicas"] = std::max<int64_t>(0, replicas - available);
  auto now = clock_->Now();
  if (available >= replicas - max_unavailable) {
    SetCondition(status, "Available", "True", "MinimumReplicasAvailable",
                 "Deployment has minimum availability.", now);
  } else {
    SetCondition(status, "Available", "False", "MinimumReplicasUnavailable",
                 "Deployment does not have minimum availability.", now);
  }
  std::string rs_name = new_rs != nullptr ? StringAt(*new_rs, {"metadata", "name"}) : "";
  if (paused) {
    SetCondition(status, "Progressing", "Unknown", "DeploymentPaused", "Deployment is paused", now);
  } else if (created_new) {
    SetCondition(status, "Progressing", "True", "NewReplicaSetCreated",
                 "Created new replica set \"" + rs_name + "\"", now);
  } else if (updated == replicas && available == replicas && status_replicas == replicas) {
    SetCondition(status, "Progressing", "True", "NewReplicaSetAvailable",
                 "ReplicaSet \"" + rs_name + "\" has successfully progressed.", now);
  } else {
    SetCondition(status, "Progressing", "True", "ReplicaSetUpdated",
                 "ReplicaSet \"" + rs_name + "\" is progressing.", now);
  }
  if (status != before) {
    auto r = api_->Patch(client::ResourcePath("apps/v1", "deployments", ns, d_name, "status"),
                         client::PatchType::kMerge, Json{{"status", status}});
    if (!r.ok()) return r.status();
  }
  return base::Status::Ok();
}

}  // namespace fulcrum::controllers
