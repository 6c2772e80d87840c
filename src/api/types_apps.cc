// apps/v1 Deployment and ReplicaSet: defaults (pkg/apis/apps/v1/defaults.go), validation
// (pkg/apis/apps/validation), table printing (pkg/printers/internalversion).

#include <string>
#include <utility>
#include <vector>

#include "api/registry.h"
#include "api/types_common.h"
#include "api/validation.h"

namespace fulcrum::api {
namespace {

using namespace types;  // NOLINT: the helpers every kind file shares

using base::FindPath;
using base::StringAt;









// Go's %#v of a *metav1.LabelSelector, which is how Kubernetes shows one in an error.
std::string GoLabelSelector(const Json& selector) {
  auto go_string = [](const std::string& s) { return FormatFieldValue(Json(s)); };
  std::string out = "v1.LabelSelector{MatchLabels:";
  const Json* ml = Child(selector, "matchLabels");
  if (ml == nullptr || !ml->is_object()) {
    out += "map[string]string(nil)";
  } else {
    out += FormatFieldValue(*ml);
  }
  out += ", MatchExpressions:";
  const Json* me = Child(selector, "matchExpressions");
  if (me == nullptr || !me->is_array()) {
    out += "[]v1.LabelSelectorRequirement(nil)";
  } else {
    out += "[]v1.LabelSelectorRequirement{";
    for (size_t i = 0; i < me->size(); ++i) {
      const Json& r = (*me)[i];
      if (i > 0) out += ", ";
      out += "v1.LabelSelectorRequirement{Key:" + go_string(StringField(r, "key")) +
             ", Operator:" + go_string(StringField(r, "operator")) + ", Values:";
      const Json* vals = Child(r, "values");
      out += vals != nullptr && vals->is_array() ? FormatFieldValue(*vals) : "[]string(nil)";
      out += "}";
    }
    out += "}";
  }
  out += "}";
  return out;
}

FieldError InvalidSelector(const std::string& path, const Json& selector,
                           const std::string& detail) {
  return FieldError{path, "FieldValueInvalid",
                    "Invalid value: " + GoLabelSelector(selector) + ": " + detail};
}

// intstr.IntOrString as Kubernetes prints it: bare, without quotes.
std::string IntOrStringText(const Json& v) {
  if (v.is_string()) return v.get<std::string>();
  return base::DumpJson(v);
}

// The number in "25%" or 25; 0 when neither.
int64_t IntOrPercentValue(const Json* v) {
  if (v == nullptr) return 0;
  if (v->is_string()) {
    std::string s = v->get<std::string>();
    if (!s.empty() && s.back() == '%') s.pop_back();
    if (s.empty() || s.size() > 9 || s.find_first_not_of("0123456789") != std::string::npos)
      return 0;
    return std::stoll(s);
  }
  return IntValue(v).value_or(0);
}

void ValidatePositiveIntOrPercent(const Json* v, const std::string& path, FieldErrors& errors) {
  if (v == nullptr || v->is_null()) return;
  if (v->is_string()) {
    for (auto& m : IsValidPercent(v->get<std::string>())) {
      errors.push_back(FieldError{path, "FieldValueInvalid",
                                  "Invalid value: " + IntOrStringText(*v) + ": " + m});
    }
  } else if (IntValue(v)) {
    ValidateNonnegativeInt(v, path, errors);
  } else {
    errors.push_back(FieldError{
        path, "FieldValueInvalid",
        "Invalid value: " + IntOrStringText(*v) + ": must be an integer or percentage (e.g '5%')"});
  }
}

void ValidateStrategy(const Json& spec, FieldErrors& errors) {
  const Json& strategy = ObjectAt(spec, "strategy");
  std::string type = StringField(strategy, "type");
  const Json* rolling = Child(strategy, "rollingUpdate");
  bool has_rolling = rolling != nullptr && !rolling->is_null();
  if (type == "Recreate") {
    if (has_rolling) {
      errors.push_back(Forbidden("spec.strategy.rollingUpdate",
                                 "may not be specified when strategy `type` is 'Recreate'"));
    }
  } else if (type == "RollingUpdate") {
    if (!has_rolling) {
      errors.push_back(
          Required("spec.strategy.rollingUpdate", "this should be defaulted and never be nil"));
      return;
    }
    const std::string path = "spec.strategy.rollingUpdate";
    const Json* max_unavailable = Child(*rolling, "maxUnavailable");
    const Json* max_surge = Child(*rolling, "maxSurge");
    ValidatePositiveIntOrPercent(max_unavailable, path + ".maxUnavailable", errors);
    ValidatePositiveIntOrPercent(max_surge, path + ".maxSurge", errors);
    if (IntOrPercentValue(max_unavailable) == 0 && IntOrPercentValue(max_surge) == 0) {
      errors.push_back(
          FieldError{path + ".maxUnavailable", "FieldValueInvalid",
                     "Invalid value: " +
                         (max_unavailable != nullptr ? IntOrStringText(*max_unavailable) : "0") +
                         ": may not be 0 when `maxSurge` is 0"});
    }
    if (max_unavailable != nullptr && max_unavailable->is_string() &&
        IntOrPercentValue(max_unavailable) > 100 &&
        max_unavailable->get<std::string>().back() == '%') {
      errors.push_back(FieldError{path + ".maxUnavailable", "FieldValueInvalid",
                                  "Invalid value: " + IntOrStringText(*max_unavailable) +
                                      ": must not be greater than 100%"});
    }
  } else {
    errors.push_back(FieldError{
        "spec.strategy", "FieldValueNotSupported",
        "Unsupported value: apps.DeploymentStrategy{Type:" + FormatFieldValue(Json(type)) +
            "}: supported values: \"Recreate\", \"RollingUpdate\""});
  }
}

// The selector and template rules shared by Deployments and ReplicaSets
// (ValidatePodTemplateSpecForReplicaSet and the selector checks around it).
void ValidateSelectorAndTemplate(const Json& spec, FieldErrors& errors) {
  const Json* selector = Child(spec, "selector");
  bool has_selector = selector != nullptr && !selector->is_null();
  bool selector_ok = true;
  if (!has_selector) {
    errors.push_back(Required("spec.selector"));
    selector_ok = false;
  } else {
    ValidateLabelSelector(*selector, "spec.selector", errors);
    if (CountOf(Child(*selector, "matchLabels")) + CountOf(Child(*selector, "matchExpressions")) ==
        0) {
      errors.push_back(
          InvalidSelector("spec.selector", *selector, "empty selector is invalid for deployment"));
    }
    if (FormatLabelSelector(*selector) == "<error>") {
      errors.push_back(InvalidSelector("spec.selector", *selector, "invalid label selector"));
      selector_ok = false;
    }
  }
  const Json* tmpl = Child(spec, "template");
  if (tmpl == nullptr || tmpl->is_null()) {
    errors.push_back(Required("spec.template"));
    return;
  }
  const Json& labels = ObjectAt(ObjectAt(*tmpl, "metadata"), "labels");
  if (selector_ok && FormatLabelSelector(*selector) != "" &&
      !LabelSelectorMatches(*selector, labels)) {
    errors.push_back(InvalidValue("spec.template.metadata.labels", labels,
                                  "`selector` does not match template `labels`"));
  }
  ValidatePodTemplateSpec(*tmpl, "spec.template", errors);
  const Json& pod_spec = ObjectAt(*tmpl, "spec");
  const Json* restart = Child(pod_spec, "restartPolicy");
  if (restart != nullptr && restart->is_string() && restart->get<std::string>() != "Always") {
    errors.push_back(NotSupported("spec.template.spec.restartPolicy", *restart, {"Always"}));
  }
  const Json* ads = Child(pod_spec, "activeDeadlineSeconds");
  if (ads != nullptr && !ads->is_null()) {
    errors.push_back(Forbidden("spec.template.spec.activeDeadlineSeconds",
                               "activeDeadlineSeconds in ReplicaSet is not Supported"));
  }
}

void ValidateSelectorUnchanged(const Json& obj, const Json* old_obj, FieldErrors& errors) {
  if (old_obj == nullptr) return;
  const Json* now = FindPath(obj, {"spec", "selector"});
  const Json* before = FindPath(*old_obj, {"spec", "selector"});
  Json a = now != nullptr ? Normalized(*now) : Json();
  Json b = before != nullptr ? Normalized(*before) : Json();
  if (a != b) {
    errors.push_back(
        InvalidSelector("spec.selector", now != nullptr ? *now : Json(), kImmutableError));
  }
}

void ValidateWorkloadMeta(const Json& obj, const Json* old_obj, FieldErrors& errors) {
  ValidateObjectMeta(obj, true, NameValidation::kDnsSubdomain, errors);
  if (old_obj != nullptr) ValidateObjectMetaUpdate(obj, *old_obj, errors);
}

void SetTemplateDefaults(Json& spec) {
  Json* tmpl = MutableObject(spec, "template");
  if (tmpl == nullptr) return;
  if (Json* pod_spec = MutableObject(*tmpl, "spec")) SetPodSpecDefaults(*pod_spec);
}


// ---------------------------------------------------------------------------------------------
// Deployment.

void SetDeploymentDefaults(Json& obj) {
  Json* spec = MutableObject(obj, "spec");
  if (spec == nullptr) return;
  SetDefault(*spec, "replicas", 1);
  if (Json* strategy = MutableObject(*spec, "strategy")) {
    const Json* type = Child(*strategy, "type");
    if (type == nullptr || type->is_null() ||
        (type->is_string() && type->get<std::string>().empty())) {
      (*strategy)["type"] = "RollingUpdate";
    }
    if (StringField(*strategy, "type") == "RollingUpdate") {
      if (Json* rolling = MutableObject(*strategy, "rollingUpdate")) {
        SetDefault(*rolling, "maxUnavailable", "25%");
        SetDefault(*rolling, "maxSurge", "25%");
      }
    }
  }
  SetDefault(*spec, "revisionHistoryLimit", 10);
  SetDefault(*spec, "progressDeadlineSeconds", 600);
  SetTemplateDefaults(*spec);
}

void ValidateDeployment(const Json& obj, const Json* old_obj, FieldErrors& errors) {
  ValidateWorkloadMeta(obj, old_obj, errors);
  const Json& spec = ObjectAt(obj, "spec");
  ValidateNonnegativeInt(Child(spec, "replicas"), "spec.replicas", errors);
  ValidateSelectorAndTemplate(spec, errors);
  ValidateStrategy(spec, errors);
  ValidateNonnegativeInt(Child(spec, "minReadySeconds"), "spec.minReadySeconds", errors);
  ValidateNonnegativeInt(Child(spec, "revisionHistoryLimit"), "spec.revisionHistoryLimit", errors);
  const Json* pds = Child(spec, "progressDeadlineSeconds");
  if (pds != nullptr && !pds->is_null()) {
    ValidateNonnegativeInt(pds, "spec.progressDeadlineSeconds", errors);
    auto v = IntValue(pds);
    if (v && *v <= IntField(spec, "minReadySeconds").value_or(0)) {
      errors.push_back(InvalidValue("spec.progressDeadlineSeconds", *pds,
                                    "must be greater than minReadySeconds"));
    }
  }
  ValidateSelectorUnchanged(obj, old_obj, errors);
}

std::vector<Json> DeploymentCells(const Json& obj, WallTime now) {
  const Json& spec = ObjectAt(obj, "spec");
  const Json& status = ObjectAt(obj, "status");
  auto [names, images] = ContainerCells(spec);
  const Json* selector = Child(spec, "selector");
  std::string selector_str = selector != nullptr ? FormatLabelSelector(*selector) : "";
  if (selector_str == "<error>") selector_str = "<invalid>";
  return {std::to_string(IntField(status, "readyReplicas").value_or(0)) + "/" +
              std::to_string(IntField(spec, "replicas").value_or(0)),
          IntField(status, "updatedReplicas").value_or(0),
          IntField(status, "availableReplicas").value_or(0),
          AgeCell(obj, now),
          names,
          images,
          selector_str};
}

ResourceType DeploymentType() {
  ResourceType t;
  t.group = "apps";
  t.version = "v1";
  t.kind = "Deployment";
  t.plural = "deployments";
  t.singular = "deployment";
  t.namespaced = true;
  t.short_names = {"deploy"};
  t.categories = {"all"};
  t.has_status = true;
  t.has_scale = true;
  t.set_defaults = SetDeploymentDefaults;
  t.validate = ValidateDeployment;
  t.columns = {
      {"Ready", "string", "", "Number of the pod with ready state", 0},
      {"Up-to-date", "string", "",
       "Total number of non-terminated pods targeted by this deployment that have the desired "
       "template spec.",
       0},
      {"Available", "string", "",
       "Total number of available pods (ready for at least minReadySeconds) targeted by this "
       "deployment.",
       0},
      AgeColumn(),
      {"Containers", "string", "", "Names of each container in the template.", 1},
      {"Images", "string", "", "Images referenced by each container in the template.", 1},
      {"Selector", "string", "", "Label selector for pods.", 1},
  };
  t.cells = DeploymentCells;
  t.selectable_field = MetadataField;
  return t;
}

// ---------------------------------------------------------------------------------------------
// ReplicaSet.

void SetReplicaSetDefaults(Json& obj) {
  Json* spec = MutableObject(obj, "spec");
  if (spec == nullptr) return;
  SetDefault(*spec, "replicas", 1);
  SetTemplateDefaults(*spec);
}

void ValidateReplicaSet(const Json& obj, const Json* old_obj, FieldErrors& errors) {
  ValidateWorkloadMeta(obj, old_obj, errors);
  const Json& spec = ObjectAt(obj, "spec");
  ValidateNonnegativeInt(Child(spec, "replicas"), "spec.replicas", errors);
  ValidateNonnegativeInt(Child(spec, "minReadySeconds"), "spec.minReadySeconds", errors);
  ValidateSelectorAndTemplate(spec, errors);
  ValidateSelectorUnchanged(obj, old_obj, errors);
}

std::vector<Json> ReplicaSetCells(const Json& obj, WallTime now) {
  const Json& spec = ObjectAt(obj, "spec");
  const Json& status = ObjectAt(obj, "status");
  auto [names, images] = ContainerCells(spec);
  const Json* selector = Child(spec, "selector");
  std::string selector_str = selector != nullptr ? FormatLabelSelector(*selector) : "";
  if (selector_str.empty()) selector_str = "<none>";
  return {IntField(spec, "replicas").value_or(0),
          IntField(status, "replicas").value_or(0),
          IntField(status, "readyReplicas").value_or(0),
          AgeCell(obj, now),
          names,
          images,
          selector_str};
}

ResourceType ReplicaSetType() {
  ResourceType t;
  t.group = "apps";
  t.version = "v1";
  t.kind = "ReplicaSet";
  t.plural = "replicasets";
  t.singular = "replicaset";
  t.namespaced = true;
  t.short_names = {"rs"};
  t.categories = {"all"};
  t.has_status = true;
  t.has_scale = true;
  t.set_defaults = SetReplicaSetDefaults;
  t.validate = ValidateReplicaSet;
  t.columns = {
      {"Desired", "integer", "", "Replicas is the number of desired pods.", 0},
      {"Current", "integer", "", "Replicas is the most recently observed number of replicas.", 0},
      {"Ready", "integer", "", "The number of ready replicas for this replica set.", 0},
      AgeColumn(),
      {"Containers", "string", "", "Names of each container in the template.", 1},
      {"Images", "string", "", "Images referenced by each container in the template.", 1},
      {"Selector", "string", "",
       "Selector is a label query over pods that should match the replica count.", 1},
  };
  t.cells = ReplicaSetCells;
  t.selectable_field = [](const Json& obj, std::string_view field, std::string* value) {
    if (MetadataField(obj, field, value)) return true;
    if (field != "status.replicas") return false;
    *value = std::to_string(IntField(ObjectAt(obj, "status"), "replicas").value_or(0));
    return true;
  };
  return t;
}

}  // namespace

void AddAppsTypes(Registry* registry) {
  registry->Add(DeploymentType());
  registry->Add(ReplicaSetType());
}

}  // namespace fulcrum::api
