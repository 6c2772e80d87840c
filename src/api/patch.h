#pragma once

// The three PATCH content types Kubernetes accepts: JSON Patch (RFC 6902,
// application/json-patch+json), JSON Merge Patch (RFC 7386, application/merge-patch+json) and
// the Kubernetes strategic merge patch (application/strategic-merge-patch+json).
//
// All functions are pure: they never modify their arguments, never throw (an exception from
// below, such as running out of memory, comes back as an Internal status), and are safe to call
// from any number of threads at once. Inputs are expected to be at most base::kMaxJsonDepth
// deep (everything base::ParseJson accepts is); deeper inputs are refused with BadRequest.

#include <cstddef>
#include <string_view>

#include "base/json.h"
#include "base/status.h"

namespace fulcrum::api {

using base::Json;
using base::Result;
using base::Status;

// Most operations one JSON patch may hold; kube-apiserver refuses longer patches the same way.
inline constexpr std::size_t kMaxJsonPatchOperations = 10000;

// Applies an RFC 6902 JSON patch (an array of operations) to `doc` and returns the result.
// The patch is atomic: on any failure nothing is returned but the Status.
//   BadRequest      — the patch is malformed: not an array, an operation that is not an object,
//                     an unknown "op", a missing or non-string "path"/"from", a missing "value",
//                     or a JSON pointer that is not "" and does not start with "/" or has a bad
//                     "~" escape.
//   Invalid         — the patch does not apply to this document: a path that does not exist,
//                     an array index out of range or not a number, a failed "test", moving a
//                     value into one of its own children, or a result deeper than kMaxJsonDepth.
//   RequestTooLarge — more than kMaxJsonPatchOperations operations, or "copy" operations that
//                     together copy more than about a million values (a doubling attack).
// Every message names the operation by its index and op, and the path at fault, e.g.
//   json patch operation 2 (replace): path "/spec/replicaz" does not exist ("/spec" has no
//   member "replicaz")
Result<Json> ApplyJsonPatch(const Json& doc, const Json& patch);

// Applies an RFC 7386 JSON merge patch: objects merge recursively, null deletes a member, and
// anything else (arrays included) replaces the target. A patch that is not an object replaces
// the whole document. Fails only with BadRequest for inputs deeper than kMaxJsonDepth.
Result<Json> ApplyMergePatch(const Json& doc, const Json& patch);

// Applies a Kubernetes strategic merge patch to `doc`, an object of kind `kind` in API group
// `group` ("" for core). Both `doc` and `patch` must be JSON objects.
//
// Semantics follow k8s.io/apimachinery/pkg/util/strategicpatch as kube-apiserver runs it:
//  - maps merge recursively; a null value deletes the field;
//  - a list whose field has patchStrategy=merge merges element-wise by its patchMergeKey
//    (lists of primitives with patchStrategy=merge, e.g. metadata.finalizers, merge as sets);
//    the result keeps the patch's order for patched elements and the live order for the rest;
//  - every other list is replaced by the patch's list;
//  - directives: "$patch": "replace" | "delete" | "merge" in a map, and as a list element
//    ({"$patch": "replace"} replaces the whole list, {"<mergeKey>": v, "$patch": "delete"}
//    removes the element; "merge" there is refused, as in Kubernetes); "$retainKeys": [...];
//    "$deleteFromPrimitiveList/<field>": [...]; "$setElementOrder/<field>": [...].
//  - "$patch": "delete" on a map leaves an empty map, as Kubernetes does; use null to remove it.
// Where the live object lacks a field the patch sets, directives inside the patch's value are
// still applied (Kubernetes would copy them verbatim), so no "$..." key reaches the result.
//
// The list strategies come from a built-in schema of the Kubernetes types (Pod, PodTemplate,
// ReplicationController, Service, Node, Namespace, PersistentVolumeClaim, ServiceAccount,
// Deployment, ReplicaSet, StatefulSet, DaemonSet, Job, CronJob, PodDisruptionBudget,
// HorizontalPodAutoscaler and ObjectMeta for every kind). Fields it does not describe, and
// kinds it does not know, get merge-patch semantics for maps and replace semantics for lists.
//
// Failures: BadRequest for a malformed patch (unknown "$patch" value, a directive of the wrong
// shape, a list element without its merge key, a patch key outside "$retainKeys", a patch list
// whose order contradicts its "$setElementOrder" list); Invalid when
// the patch conflicts with the live object (mixed element types, lists of lists, a live element
// without the merge key).
Result<Json> ApplyStrategicMergePatch(const Json& doc, const Json& patch, std::string_view group,
                                      std::string_view kind);

// Whether the built-in schema describes `kind` in `group`. Kubernetes refuses strategic merge
// patches (415 UnsupportedMediaType) for kinds without Go types, such as custom resources; the
// server can use this to do the same.
bool HasStrategicMergeSchema(std::string_view group, std::string_view kind);

}  // namespace fulcrum::api
