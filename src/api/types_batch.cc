// batch/v1 Job: defaults (pkg/apis/batch/v1/defaults.go), the generated selector of
// pkg/registry/batch/job/strategy.go, validation (pkg/apis/batch/validation) and table printing.

#include <string>
#include <vector>

#include "api/registry.h"
#include "api/types_common.h"
#include "api/validation.h"

namespace fulcrum::api {
namespace {

using namespace types;  // NOLINT: the helpers every kind file shares

constexpr char kControllerUidLabel[] = "batch.kubernetes.io/controller-uid";
constexpr char kJobNameLabel[] = "batch.kubernetes.io/job-name";

// Unless spec.manualSelector is true, the selector is the job's uid and the template carries the
// labels that select it (the new and the legacy names both, as Kubernetes writes them).
void GenerateSelector(Json& obj) {
  Json* spec = MutableObject(obj, "spec");
  if (spec == nullptr || BoolField(*spec, "manualSelector")) return;
  std::string uid = base::StringAt(obj, {"metadata", "uid"});
  std::string name = base::StringAt(obj, {"metadata", "name"});
  if (uid.empty()) return;
  Json* tmpl = MutableObject(*spec, "template");
  if (tmpl == nullptr) return;
  Json* meta = MutableObject(*tmpl, "metadata");
  if (meta == nullptr) return;
  Json* labels = MutableObject(*meta, "labels");
  if (labels == nullptr) return;
  SetDefault(*labels, kControllerUidLabel, uid);
  SetDefault(*labels, kJobNameLabel, name);
  SetDefault(*labels, "controller-uid", uid);
  SetDefault(*labels, "job-name", name);
  if (IsUnset(Child(*spec, "selector"))) {
    (*spec)["selector"] = Json{{"matchLabels", {{kControllerUidLabel, uid}}}};
  }
}

void SetJobDefaults(Json& obj) {
  GenerateSelector(obj);
  Json* spec = MutableObject(obj, "spec");
  if (spec == nullptr) return;
  if (IsUnset(Child(*spec, "completions")) && IsUnset(Child(*spec, "parallelism"))) {
    (*spec)["completions"] = 1;
  }
  SetDefault(*spec, "parallelism", 1);
  SetDefault(*spec, "backoffLimit", 6);
  SetDefaultString(*spec, "completionMode", "NonIndexed");
  SetDefault(*spec, "suspend", false);
  SetDefaultString(*spec, "podReplacementPolicy", "TerminatingOrFailed");
  if (Json* tmpl = MutableObject(*spec, "template")) {
    if (Json* pod_spec = MutableObject(*tmpl, "spec")) SetPodSpecDefaults(*pod_spec);
  }
}

void ValidateJob(const Json& obj, const Json* old_obj, FieldErrors& errors) {
  ValidateMeta(obj, old_obj, true, NameValidation::kDnsSubdomain, errors);
  const Json& spec = ObjectAt(obj, "spec");
  ValidateNonnegativeInt(Child(spec, "parallelism"), "spec.parallelism", errors);
  ValidateNonnegativeInt(Child(spec, "completions"), "spec.completions", errors);
  ValidateNonnegativeInt(Child(spec, "backoffLimit"), "spec.backoffLimit", errors);
  ValidateNonnegativeInt(Child(spec, "ttlSecondsAfterFinished"), "spec.ttlSecondsAfterFinished",
                         errors);
  if (const Json* ads = Child(spec, "activeDeadlineSeconds"); !IsUnset(ads)) {
    auto v = IntValue(ads);
    if (!v || *v <= 0) {
      errors.push_back(InvalidValue("spec.activeDeadlineSeconds", *ads, "must be greater than 0"));
    }
  }
  std::string mode = StringField(spec, "completionMode");
  if (mode != "NonIndexed" && mode != "Indexed") {
    errors.push_back(NotSupported("spec.completionMode", mode, {"NonIndexed", "Indexed"}));
  } else if (mode == "Indexed" && IsUnset(Child(spec, "completions"))) {
    errors.push_back(Required("spec.completions", "when completion mode is Indexed"));
  }
  const Json* selector = Child(spec, "selector");
  const Json* tmpl = Child(spec, "template");
  if (IsUnset(selector)) {
    errors.push_back(Required("spec.selector"));
  } else {
    ValidateLabelSelector(*selector, "spec.selector", errors);
    if (tmpl != nullptr &&
        !LabelSelectorMatches(*selector, ObjectAt(ObjectAt(*tmpl, "metadata"), "labels"))) {
      errors.push_back(InvalidValue("spec.template.metadata.labels",
                                    ObjectAt(ObjectAt(*tmpl, "metadata"), "labels"),
                                    "`selector` does not match template `labels`"));
    }
  }
  if (IsUnset(tmpl)) {
    errors.push_back(Required("spec.template"));
  } else {
    ValidatePodTemplateSpec(*tmpl, "spec.template", errors);
    const Json* restart = base::FindPath(*tmpl, {"spec", "restartPolicy"});
    std::string policy = restart != nullptr && restart->is_string() ? restart->get<std::string>() : "";
    if (policy != "OnFailure" && policy != "Never") {
      errors.push_back(NotSupported("spec.template.spec.restartPolicy",
                                    restart != nullptr ? *restart : Json(""), {"OnFailure", "Never"}));
    }
  }
  if (old_obj != nullptr) {
    const Json& old_spec = ObjectAt(*old_obj, "spec");
    for (const char* field : {"selector", "completions", "completionMode"}) {
      const Json* now = Child(spec, field);
      const Json* before = Child(old_spec, field);
      ValidateImmutable(now != nullptr ? Normalized(*now) : Json(),
                        before != nullptr ? Normalized(*before) : Json(),
                        std::string("spec.") + field, errors);
    }
  }
}

bool HasCondition(const Json& status, const char* type) {
  for (const Json& c : ArrayAt(status, "conditions")) {
    if (StringField(c, "type") == type && StringField(c, "status") == "True") return true;
  }
  return false;
}

std::string JobStatusCell(const Json& obj) {
  const Json& status = ObjectAt(obj, "status");
  if (HasCondition(status, "Complete")) return "Complete";
  if (HasCondition(status, "Failed")) return "Failed";
  if (!base::StringAt(obj, {"metadata", "deletionTimestamp"}).empty()) return "Terminating";
  if (HasCondition(status, "Suspended")) return "Suspended";
  if (HasCondition(status, "FailureTarget")) return "FailureTarget";
  return "Running";
}

std::string CompletionsCell(const Json& spec, const Json& status) {
  int64_t succeeded = IntField(status, "succeeded").value_or(0);
  if (auto completions = IntField(spec, "completions")) {
    return std::to_string(succeeded) + "/" + std::to_string(*completions);
  }
  int64_t parallelism = IntField(spec, "parallelism").value_or(0);
  if (parallelism > 1) return std::to_string(succeeded) + "/1 of " + std::to_string(parallelism);
  return std::to_string(succeeded) + "/1";
}

std::string DurationCell(const Json& status, WallTime now) {
  WallTime start, end = now;
  if (!base::ParseRfc3339(StringField(status, "startTime"), &start)) return "";
  std::string completion = StringField(status, "completionTime");
  if (!completion.empty()) base::ParseRfc3339(completion, &end);
  return HumanDuration(end - start);
}

std::vector<Json> JobCells(const Json& obj, WallTime now) {
  const Json& spec = ObjectAt(obj, "spec");
  const Json& status = ObjectAt(obj, "status");
  auto [names, images] = ContainerCells(spec);
  const Json* selector = Child(spec, "selector");
  std::string selector_text = selector != nullptr ? FormatLabelSelector(*selector) : "";
  return {JobStatusCell(obj), CompletionsCell(spec, status), DurationCell(status, now),
          AgeCell(obj, now),  names,                          images,
          selector_text.empty() ? "<none>" : selector_text};
}

ResourceType JobType() {
  ResourceType t;
  t.group = "batch";
  t.version = "v1";
  t.kind = "Job";
  t.plural = "jobs";
  t.singular = "job";
  t.namespaced = true;
  t.categories = {"all"};
  t.has_status = true;
  t.set_defaults = SetJobDefaults;
  t.validate = ValidateJob;
  t.columns = {
      {"Status", "string", "", "Status of the job.", 0},
      {"Completions", "string", "", "The completion status of the job.", 0},
      {"Duration", "string", "", "Time required to complete the job.", 0},
      AgeColumn(),
      {"Containers", "string", "", "Names of each container in the template.", 1},
      {"Images", "string", "", "Images referenced by each container in the template.", 1},
      {"Selector", "string", "", "Selector is a label query over pods that should match the job.",
       1},
  };
  t.cells = JobCells;
  t.selectable_field = [](const Json& obj, std::string_view field, std::string* value) {
    if (MetadataField(obj, field, value)) return true;
    if (field != "status.successful") return false;
    *value = std::to_string(IntField(ObjectAt(obj, "status"), "succeeded").value_or(0));
    return true;
  };
  return t;
}

}  // namespace

void AddBatchTypes(Registry* registry) { registry->Add(JobType()); }

}  // namespace fulcrum::api
