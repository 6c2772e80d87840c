// scheduling.k8s.io/v1 PriorityClass: validation (pkg/apis/scheduling/validation), defaults and
// table printing; the classes every cluster has are listed in registry.h.

#include <string>
#include <vector>

#include "api/registry.h"
#include "api/types_common.h"
#include "api/validation.h"

namespace fulcrum::api {
namespace {

using namespace types;  // NOLINT: the helpers every kind file shares

// Values above this are reserved for the system classes (scheduling.HighestUserDefinablePriority).
constexpr int64_t kHighestUserDefinablePriority = 1000000000;

void ValidatePriorityClass(const Json& obj, const Json* old_obj, FieldErrors& errors) {
  ValidateMeta(obj, old_obj, false, NameValidation::kDnsSubdomain, errors);
  std::string name = base::StringAt(obj, {"metadata", "name"});
  const Json* value = Child(obj, "value");
  auto v = IntValue(value);
  if (IsUnset(value) || !v) {
    errors.push_back(Required("value"));
  } else if (*v > kHighestUserDefinablePriority && name.rfind("system-", 0) != 0) {
    errors.push_back(Forbidden("value", "maximum allowed value of a user defined priority is " +
                                            std::to_string(kHighestUserDefinablePriority)));
  } else if (*v < INT32_MIN || *v > INT32_MAX) {
    errors.push_back(InvalidValue("value", *value, "must be a 32-bit integer"));
  }
  std::string policy = StringField(obj, "preemptionPolicy");
  if (policy != "PreemptLowerPriority" && policy != "Never") {
    errors.push_back(NotSupported("preemptionPolicy", policy, {"Never", "PreemptLowerPriority"}));
  }
  if (old_obj != nullptr) {
    for (const char* field : {"value", "preemptionPolicy"}) {
      const Json* now = Child(obj, field);
      const Json* before = Child(*old_obj, field);
      ValidateImmutable(now != nullptr ? *now : Json(), before != nullptr ? *before : Json(), field,
                        errors);
    }
  }
}

ResourceType PriorityClassType() {
  ResourceType t;
  t.group = "scheduling.k8s.io";
  t.version = "v1";
  t.kind = "PriorityClass";
  t.plural = "priorityclasses";
  t.singular = "priorityclass";
  t.namespaced = false;
  t.short_names = {"pc"};
  t.set_defaults = [](Json& obj) {
    if (obj.is_object()) SetDefaultString(obj, "preemptionPolicy", "PreemptLowerPriority");
  };
  t.validate = ValidatePriorityClass;
  t.columns = {
      {"Value", "integer", "", "value is the integer value of this priority class.", 0},
      {"Global-Default", "boolean", "", "globalDefault specifies whether this PriorityClass should be considered as the default priority.", 0},
      AgeColumn(),
      {"PreemptionPolicy", "string", "", "preemptionPolicy is the Policy for preempting pods with lower priority.", 0},
  };
  t.cells = [](const Json& obj, WallTime now) -> std::vector<Json> {
    return {IntField(obj, "value").value_or(0), BoolField(obj, "globalDefault"), AgeCell(obj, now),
            StringField(obj, "preemptionPolicy")};
  };
  t.selectable_field = MetadataField;
  return t;
}

}  // namespace

const std::vector<SystemPriorityClass>& SystemPriorityClasses() {
  static const std::vector<SystemPriorityClass> classes = {
      {"system-node-critical", 2000001000, "Used for system critical pods that must not be moved from their current node."},
      {"system-cluster-critical", 2000000000, "Used for system critical pods that must run in the cluster, but can be moved to another node if necessary."},
      {"fulcrum-batch", -1000, "Batch work that runs on capacity online services leave idle; online pods preempt it and the agent evicts it first."},
  };
  return classes;
}

void AddSchedulingTypes(Registry* registry) { registry->Add(PriorityClassType()); }

}  // namespace fulcrum::api
