#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/clock.h"
#include "base/json.h"
#include "base/status.h"

namespace fulcrum::api {

using base::Json;
using base::Status;
using base::WallTime;

// One field-level problem, as Kubernetes reports it in Status.details.causes.
// `type` is one of the Kubernetes cause reasons: FieldValueRequired, FieldValueInvalid,
// FieldValueNotSupported, FieldValueDuplicate, FieldValueTooLong, FieldValueForbidden,
// FieldValueTypeInvalid.
struct FieldError {
  std::string field;   // "spec.containers[0].name"
  std::string type;    // "FieldValueRequired"
  std::string detail;  // "Required value", or "Invalid value: \"Foo\": must be lowercase ..."
};
using FieldErrors = std::vector<FieldError>;

// Helpers that build FieldErrors with Kubernetes' wording.
FieldError Required(std::string field, std::string detail = "");
FieldError InvalidValue(std::string field, const Json& value, std::string detail);
FieldError NotSupported(std::string field, const Json& value, const std::vector<std::string>& valid);
FieldError Forbidden(std::string field, std::string detail);
FieldError Duplicate(std::string field, const Json& value);

// A column of server-side Table output (meta.k8s.io/v1 TableColumnDefinition).
struct TableColumn {
  std::string name;         // "NAME", shown upper-cased by kubectl
  std::string type;         // "string", "integer", "date"
  std::string format;       // "name" for the name column, else ""
  std::string description;
  int priority = 0;         // 0: always shown; 1: only with -o wide
};

// Everything the API server needs to know about one kind. Plain data plus pure functions of the
// object so that the server, the controllers and tests share one definition.
struct ResourceType {
  std::string group;     // "" for core, "apps", ...
  std::string version;   // "v1"
  std::string kind;      // "Pod"
  std::string plural;    // "pods"
  std::string singular;  // "pod"
  bool namespaced = true;
  std::vector<std::string> short_names;  // {"po"}
  std::vector<std::string> categories;   // {"all"}
  bool has_status = false;               // a /status subresource exists
  bool has_scale = false;                // a /scale subresource exists (spec.replicas)

  // Fills unset fields with Kubernetes' defaults. Idempotent; never fails.
  std::function<void(Json& obj)> set_defaults;
  // Appends what is wrong with `obj` (a defaulted object of this kind) to `errors`. `old_obj` is
  // the stored object on update, nullptr on create, so immutable fields can be checked.
  std::function<void(const Json& obj, const Json* old_obj, FieldErrors& errors)> validate;

  // Columns after NAME (NAME itself and NAMESPACE are added by the server), and the cells of one
  // row in the same order. `now` is for AGE-like cells.
  std::vector<TableColumn> columns;
  std::function<std::vector<Json>(const Json& obj, WallTime now)> cells;
  // False when `columns` place the name themselves: Event tables list "Name" last at priority 1,
  // so `kubectl get events` shows no NAME column. True for every other kind.
  bool server_adds_name_column = true;

  // Fields usable in a fieldSelector besides metadata.name and metadata.namespace, e.g.
  // "spec.nodeName" -> value. Returns false if the field is not selectable for this kind.
  std::function<bool(const Json& obj, std::string_view field, std::string* value)> selectable_field;

  std::string GroupVersion() const { return group.empty() ? version : group + "/" + version; }
  std::string ListKind() const { return kind + "List"; }
};

// The set of kinds the server serves. Built once at start-up, then read-only and thread-safe.
class Registry {
 public:
  // Adds a kind; later kinds with the same group/version/plural replace earlier ones. Function
  // members left empty become no-ops (selectable_field: always false), and each function is
  // wrapped so that an exception escaping it (a bug on hostile input) cannot escape: validate
  // then appends a FieldError of type "InternalError", cells returns "" cells, the others do
  // nothing. Not thread-safe; call before serving.
  void Add(ResourceType type);

  const ResourceType* Find(std::string_view group, std::string_view version,
                           std::string_view plural) const;
  const ResourceType* FindKind(std::string_view group, std::string_view kind) const;
  const std::vector<std::unique_ptr<ResourceType>>& types() const { return types_; }

  // Group versions in registration order ("v1", "apps/v1", ...).
  std::vector<std::string> GroupVersions() const;

 private:
  std::vector<std::unique_ptr<ResourceType>> types_;
};

// Core, apps, batch, coordination.k8s.io and discovery.k8s.io kinds with Kubernetes' field names,
// defaults, validation and table columns. Every function member of each added ResourceType is
// set (never empty), and `validate` includes the metadata rules (ValidateObjectMeta, and on
// update ValidateObjectMetaUpdate, from api/validation.h).
void AddBuiltinTypes(Registry* registry);
// The groups AddBuiltinTypes adds, in its order.
void AddCoreTypes(Registry* registry);          // v1
void AddAppsTypes(Registry* registry);          // apps/v1
void AddBatchTypes(Registry* registry);         // batch/v1
void AddCoordinationTypes(Registry* registry);  // coordination.k8s.io/v1
void AddDiscoveryTypes(Registry* registry);     // discovery.k8s.io/v1
void AddSchedulingTypes(Registry* registry);    // scheduling.k8s.io/v1
void AddFulcrumTypes(Registry* registry);       // scheduling.fulcrum.dev/v1alpha1

// The PriorityClasses every cluster has: Kubernetes' two system classes and fulcrum-batch, the
// class of batch work (below the default priority 0 of online pods, so online pods preempt it).
struct SystemPriorityClass {
  const char* name;
  int32_t value;
  const char* description;
};
const std::vector<SystemPriorityClass>& SystemPriorityClasses();

// "5s", "3m10s", "7h", "2d3h", "3y": the age format kubectl shows (k8s duration.HumanDuration).
std::string HumanDuration(std::chrono::nanoseconds d);

// An AGE cell: HumanDuration(now - t) for an RFC 3339 timestamp string, "<unknown>" when the
// timestamp is absent, empty or malformed.
std::string TimestampAge(const Json& timestamp, WallTime now);

}  // namespace fulcrum::api
