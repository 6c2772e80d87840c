// fulcrum's own kinds, group scheduling.fulcrum.dev/v1alpha1.
//
// AppProfile: an application's per-replica CPU usage shape over the day (or week) in fixed slots,
// with its spread — what the Archimedes scheduler predicts from (src/scheduler/profile.h). One
// object per application, named after its workload, in the workload's namespace.
//
// NodeMetric: one node's measured usage, written by its agent every report interval (Koordinator's
// slo.koordinator.sh NodeMetric, simplified): the node's and each pod's CPU (cores, as a quantity)
// and memory working set (bytes), the latest sample plus the average and p95 over the window. The
// API server serves metrics.k8s.io from these; the scheduler reads them. Cluster-scoped, named
// after the node. Schema: docs/api.md.

#include <cmath>
#include <string>
#include <vector>

#include "api/registry.h"
#include "api/types_common.h"
#include "api/validation.h"

namespace fulcrum::api {
namespace {

using namespace types;  // NOLINT: the helpers every kind file shares

constexpr int64_t kMaxSlots = 7 * 24 * 60;  // one-minute slots over a week

void SetAppProfileDefaults(Json& obj) {
  Json* spec = MutableObject(obj, "spec");
  if (spec == nullptr) return;
  SetDefault(*spec, "slotSeconds", 900);
  SetDefault(*spec, "slots", 96);
}

void ValidateSeries(const Json& status, const char* field, int64_t slots, FieldErrors& errors) {
  const Json* series = Child(status, field);
  if (IsUnset(series)) return;
  std::string path = std::string("status.") + field;
  if (!series->is_array()) {
    errors.push_back(InvalidValue(path, *series, "must be a list of numbers"));
    return;
  }
  if (static_cast<int64_t>(series->size()) != slots) {
    errors.push_back(InvalidValue(path, Json(series->size()),
                                  "must have one value per slot (spec.slots = " +
                                      std::to_string(slots) + ")"));
    return;
  }
  for (size_t i = 0; i < series->size(); ++i) {
    const Json& v = (*series)[i];
    if (!v.is_number() || !std::isfinite(v.get<double>()) || v.get<double>() < 0) {
      errors.push_back(InvalidValue(Idx(path, i), v, "must be a non-negative number"));
      return;
    }
  }
}

void ValidateAppProfile(const Json& obj, const Json* old_obj, FieldErrors& errors) {
  ValidateMeta(obj, old_obj, true, NameValidation::kDnsSubdomain, errors);
  const Json& spec = ObjectAt(obj, "spec");
  if (StringField(spec, "app").empty()) {
    errors.push_back(Required("spec.app", "the workload, as namespace/Kind/name"));
  }
  auto slot_seconds = IntField(spec, "slotSeconds");
  auto slots = IntField(spec, "slots");
  if (!slot_seconds || *slot_seconds <= 0 || 86400 % *slot_seconds != 0) {
    errors.push_back(InvalidValue("spec.slotSeconds", spec.value("slotSeconds", Json()),
                                  "must be a positive divisor of 86400"));
  }
  if (!slots || *slots <= 0 || *slots > kMaxSlots) {
    errors.push_back(InvalidValue("spec.slots", spec.value("slots", Json()),
                                  "must be between 1 and " + std::to_string(kMaxSlots)));
    return;
  }
  const Json& status = ObjectAt(obj, "status");
  ValidateSeries(status, "cpuMeanMilli", *slots, errors);
  ValidateSeries(status, "cpuStdMilli", *slots, errors);
  ValidateNonnegativeInt(Child(status, "samples"), "status.samples", errors);
  if (const Json* offset = Child(status, "utcOffsetSeconds"); !IsUnset(offset)) {
    if (!offset->is_number_integer() || std::abs(offset->get<double>()) >= 86400) {
      errors.push_back(InvalidValue("status.utcOffsetSeconds", *offset,
                                    "must be whole seconds east of UTC, from -86399 to 86399"));
    }
  }
  if (old_obj != nullptr) {
    const Json& old_spec = ObjectAt(*old_obj, "spec");
    for (const char* f : {"app", "slotSeconds", "slots"}) {
      ValidateImmutable(spec.value(f, Json()), old_spec.value(f, Json()), std::string("spec.") + f,
                        errors);
    }
  }
}

// NodeMetric ----------------------------------------------------------------------------------

void SetNodeMetricDefaults(Json& obj) {
  Json* spec = MutableObject(obj, "spec");
  if (spec == nullptr) return;
  SetDefault(*spec, "reportIntervalSeconds", 15);
}

// {cpu, memory}: both optional, each a non-negative quantity.
void ValidateUsage(const Json& owner, const char* field, const std::string& path,
                   FieldErrors& errors) {
  const Json* usage = Child(owner, field);
  if (IsUnset(usage)) return;
  std::string p = path + "." + field;
  if (!usage->is_object()) {
    errors.push_back(InvalidValue(p, *usage, "must be an object with cpu and memory"));
    return;
  }
  for (const char* r : {"cpu", "memory"}) {
    const Json* q = Child(*usage, r);
    if (q != nullptr) ValidateNonnegativeQuantity(*q, p + "." + r, errors);
  }
}

void ValidateAggregates(const Json& owner, const std::string& path, FieldErrors& errors) {
  for (const char* f : {"usage", "average", "p95", "systemUsage"}) {
    ValidateUsage(owner, f, path, errors);
  }
}

void ValidateNodeMetric(const Json& obj, const Json* old_obj, FieldErrors& errors) {
  ValidateMeta(obj, old_obj, false, NameValidation::kDnsSubdomain, errors);
  const Json& spec = ObjectAt(obj, "spec");
  auto interval = IntField(spec, "reportIntervalSeconds");
  if (!interval || *interval <= 0) {
    errors.push_back(InvalidValue("spec.reportIntervalSeconds",
                                  spec.value("reportIntervalSeconds", Json()),
                                  "must be a positive number of seconds"));
  }
  const Json& status = ObjectAt(obj, "status");
  const Json* update = Child(status, "updateTime");
  WallTime t;
  if (!IsUnset(update) && (!update->is_string() || !base::ParseRfc3339(*update, &t))) {
    errors.push_back(InvalidValue("status.updateTime", *update, "must be an RFC 3339 time"));
  }
  ValidateNonnegativeInt(Child(status, "windowSeconds"), "status.windowSeconds", errors);
  ValidateNonnegativeInt(Child(status, "samples"), "status.samples", errors);
  ValidateAggregates(ObjectAt(status, "nodeMetric"), "status.nodeMetric", errors);
  const Json* pods = Child(status, "podsMetric");
  if (IsUnset(pods)) return;
  if (!pods->is_array()) {
    errors.push_back(InvalidValue("status.podsMetric", *pods, "must be a list"));
    return;
  }
  for (size_t i = 0; i < pods->size(); ++i) {
    const Json& pod = (*pods)[i];
    std::string path = Idx("status.podsMetric", i);
    if (!pod.is_object()) {
      errors.push_back(InvalidValue(path, pod, "must be an object"));
      continue;
    }
    if (StringField(pod, "namespace").empty()) errors.push_back(Required(path + ".namespace"));
    if (StringField(pod, "name").empty()) errors.push_back(Required(path + ".name"));
    const Json* qos = Child(pod, "qos");
    if (!IsUnset(qos) && *qos != "online" && *qos != "batch") {
      errors.push_back(NotSupported(path + ".qos", *qos, {"batch", "online"}));
    }
    ValidateAggregates(pod, path, errors);
    const Json& containers = ArrayAt(pod, "containers");
    for (size_t j = 0; j < containers.size(); ++j) {
      std::string cpath = Idx(path + ".containers", j);
      if (StringField(containers[j], "name").empty()) errors.push_back(Required(cpath + ".name"));
      ValidateUsage(containers[j], "usage", cpath, errors);
    }
  }
}

// "250m" for CPU, "120Mi" for memory, as kubectl top prints them; "<none>" when unknown.
std::string CpuCell(const Json& usage) {
  const Json* cpu = Child(usage, "cpu");
  Quantity q;
  if (cpu == nullptr || !ParseQuantity(*cpu, &q)) return "<none>";
  return std::to_string(q.MilliValue()) + "m";
}

std::string MemoryCell(const Json& usage) {
  const Json* memory = Child(usage, "memory");
  Quantity q;
  if (memory == nullptr || !ParseQuantity(*memory, &q)) return "<none>";
  return std::to_string(q.Value() / (1024 * 1024)) + "Mi";
}

std::vector<Json> NodeMetricCells(const Json& obj, WallTime now) {
  const Json& status = ObjectAt(obj, "status");
  const Json& node = ObjectAt(status, "nodeMetric");
  return {CpuCell(ObjectAt(node, "usage")), CpuCell(ObjectAt(node, "p95")),
          MemoryCell(ObjectAt(node, "usage")),
          static_cast<int64_t>(ArrayAt(status, "podsMetric").size()),
          TimestampAge(status.value("updateTime", Json()), now), AgeCell(obj, now)};
}

ResourceType NodeMetricType() {
  ResourceType t;
  t.group = "scheduling.fulcrum.dev";
  t.version = "v1alpha1";
  t.kind = "NodeMetric";
  t.plural = "nodemetrics";
  t.singular = "nodemetric";
  t.namespaced = false;
  t.short_names = {"nm"};
  t.has_status = true;
  t.set_defaults = SetNodeMetricDefaults;
  t.validate = ValidateNodeMetric;
  t.columns = {
      {"CPU", "string", "", "The node's CPU usage in the latest sample.", 0},
      {"CPU-P95", "string", "", "The 95th percentile of the node's CPU usage over the window.", 0},
      {"Memory", "string", "", "The node's memory working set in the latest sample.", 0},
      {"Pods", "integer", "", "Pods whose usage the report includes.", 0},
      {"Updated", "string", "", "Time since the agent's last report.", 0},
      AgeColumn(),
  };
  t.cells = NodeMetricCells;
  t.selectable_field = MetadataField;
  return t;
}

// AppProfile ----------------------------------------------------------------------------------

std::vector<Json> AppProfileCells(const Json& obj, WallTime now) {
  const Json& spec = ObjectAt(obj, "spec");
  const Json& status = ObjectAt(obj, "status");
  double peak = 0;
  for (const Json& v : ArrayAt(status, "cpuMeanMilli")) {
    if (v.is_number()) peak = std::max(peak, v.get<double>());
  }
  int64_t samples = IntField(status, "samples").value_or(0);
  return {StringField(spec, "app"), samples == 0 ? Json("cold") : Json("learnt"), samples,
          std::to_string(static_cast<int64_t>(std::lround(peak))) + "m", AgeCell(obj, now)};
}

ResourceType AppProfileType() {
  ResourceType t;
  t.group = "scheduling.fulcrum.dev";
  t.version = "v1alpha1";
  t.kind = "AppProfile";
  t.plural = "appprofiles";
  t.singular = "appprofile";
  t.namespaced = true;
  t.short_names = {"ap"};
  t.has_status = true;
  t.set_defaults = SetAppProfileDefaults;
  t.validate = ValidateAppProfile;
  t.columns = {
      {"App", "string", "", "The workload profiled, as namespace/Kind/name.", 0},
      {"State", "string", "", "cold (from requests only) or learnt (from observed usage).", 0},
      {"Samples", "integer", "", "Usage samples the profile was learnt from.", 0},
      {"CPU-Peak", "string", "", "The highest mean per-replica CPU of any slot.", 0},
      AgeColumn(),
  };
  t.cells = AppProfileCells;
  t.selectable_field = MetadataField;
  return t;
}

}  // namespace

void AddFulcrumTypes(Registry* registry) {
  registry->Add(AppProfileType());
  registry->Add(NodeMetricType());
}

}  // namespace fulcrum::api
