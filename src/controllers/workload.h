// What the workload controllers (ReplicaSet, Deployment, Job) share: pod states as Kubernetes
// defines them (pkg/api/v1/pod, pkg/controller/controller_utils.go), pods from templates, owner
// references, and which pods to delete first. Pure functions of JSON objects.
#pragma once

#include <string>
#include <vector>

#include "base/clock.h"
#include "base/json.h"
#include "client/informer.h"

namespace fulcrum::controllers {

using base::Json;
using base::WallTime;
using client::ObjectPtr;

// The integer at j[a][b]..., or `fallback` when absent or not an integer.
int64_t IntAt(const Json& j, std::initializer_list<const char*> path, int64_t fallback = 0);

// Neither Succeeded nor Failed, and not being deleted.
bool IsPodActive(const Json& pod);
// The Ready condition is True.
bool IsPodReady(const Json& pod);
// Ready for at least `min_ready_seconds` (by the Ready condition's lastTransitionTime).
bool IsPodAvailable(const Json& pod, int64_t min_ready_seconds, WallTime now);

// The uid in the ownerReference with controller=true, or "".
std::string ControllerUid(const Json& object);
// The controller ownerReference's name when its kind is `kind`, or "".
std::string ControllerName(const Json& object, const std::string& kind);
// An ownerReference to `owner` with controller=true and blockOwnerDeletion=true.
Json ControllerReference(const Json& owner, const std::string& api_version, const std::string& kind);

// A pod for `template_spec` (a PodTemplateSpec) owned by `owner`: the template's labels and
// annotations, generateName "<owner name>-", the owner's namespace.
Json PodFromTemplate(const Json& template_spec, const Json& owner, const std::string& api_version,
                     const std::string& kind);

// Orders pods so that the ones Kubernetes deletes first come first when scaling down:
// unscheduled before scheduled, pending before unknown before running, not ready before ready,
// more restarts before fewer, newer before older (controller.ActivePods ordering).
void SortForDeletion(std::vector<ObjectPtr>& pods);

// The pod-template-hash of a Deployment's template: a stable hash of its JSON, written as
// Kubernetes' rand.SafeEncodeString alphabet.
std::string PodTemplateHash(const Json& template_spec, int64_t collision_count);

// The value of an int-or-percent field (maxSurge, maxUnavailable) against `total`, rounding up
// (surge) or down (unavailable) as intstr.GetScaledValueFromIntOrPercent does.
int64_t ScaledValue(const Json& int_or_percent, int64_t total, bool round_up);

// A condition of `type` in status.conditions set to the given values; lastTransitionTime changes
// only when the status does. Returns true when anything changed.
bool SetCondition(Json& status, const std::string& type, const std::string& condition_status,
                  const std::string& reason, const std::string& message, WallTime now);

}  // namespace fulcrum::controllers
