// fulcrum's own kinds, group scheduling.fulcrum.dev/v1alpha1.
//
// AppProfile: an application's per-replica CPU usage shape over the day (or week) in fixed slots,
// with its spread — what the Archimedes scheduler predicts from (src/scheduler/profile.h). One
// object per application, named after its workload, in the workload's namespace.

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
  if (old_obj != nullptr) {
    const Json& old_spec = ObjectAt(*old_obj, "spec");
    for (const char* f : {"app", "slotSeconds", "slots"}) {
      ValidateImmutable(spec.value(f, Json()), old_spec.value(f, Json()), std::string("spec.") + f,
                        errors);
    }
  }
}

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

void AddFulcrumTypes(Registry* registry) { registry->Add(AppProfileType()); }

}  // namespace fulcrum::api
