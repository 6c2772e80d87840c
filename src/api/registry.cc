#include "api/registry.h"

#include <algorithm>
#include <cstdint>
#include <exception>
#include <utility>

#include "api/validation.h"

namespace fulcrum::api {

// Field errors with the wording of k8s.io/apimachinery/pkg/util/validation/field (ErrorBody).

FieldError Required(std::string field, std::string detail) {
  std::string body = "Required value";
  if (!detail.empty()) body += ": " + detail;
  return FieldError{std::move(field), "FieldValueRequired", std::move(body)};
}

FieldError InvalidValue(std::string field, const Json& value, std::string detail) {
  std::string body = "Invalid value: " + FormatFieldValue(value);
  if (!detail.empty()) body += ": " + detail;
  return FieldError{std::move(field), "FieldValueInvalid", std::move(body)};
}

FieldError NotSupported(std::string field, const Json& value,
                        const std::vector<std::string>& valid) {
  std::string body = "Unsupported value: " + FormatFieldValue(value);
  if (!valid.empty()) {
    body += ": supported values: ";
    for (size_t i = 0; i < valid.size(); ++i) {
      if (i > 0) body += ", ";
      body += FormatFieldValue(Json(valid[i]));
    }
  }
  return FieldError{std::move(field), "FieldValueNotSupported", std::move(body)};
}

FieldError Forbidden(std::string field, std::string detail) {
  std::string body = "Forbidden";
  if (!detail.empty()) body += ": " + detail;
  return FieldError{std::move(field), "FieldValueForbidden", std::move(body)};
}

FieldError Duplicate(std::string field, const Json& value) {
  return FieldError{std::move(field), "FieldValueDuplicate",
                    "Duplicate value: " + FormatFieldValue(value)};
}

namespace {

// The functions of a ResourceType read untrusted objects. They are written not to throw, but a
// JSON type error escaping one must not take the server down: it becomes a field error (validate)
// or a harmless result (defaults, cells, fields).
void GuardFunctions(ResourceType& type) {
  if (type.set_defaults) {
    type.set_defaults = [f = std::move(type.set_defaults)](Json& obj) {
      try {
        f(obj);
      } catch (const std::exception&) {
      }
    };
  } else {
    type.set_defaults = [](Json&) {};
  }
  if (type.validate) {
    type.validate = [f = std::move(type.validate)](const Json& obj, const Json* old_obj,
                                                   FieldErrors& errors) {
      try {
        f(obj, old_obj, errors);
      } catch (const std::exception& e) {
        errors.push_back(
            FieldError{"", "InternalError", std::string("Internal error: ") + e.what()});
      }
    };
  } else {
    type.validate = [](const Json&, const Json*, FieldErrors&) {};
  }
  size_t ncols = type.columns.size();
  if (type.cells) {
    type.cells = [f = std::move(type.cells), ncols](const Json& obj, WallTime now) {
      std::vector<Json> row;
      try {
        row = f(obj, now);
      } catch (const std::exception&) {
        row.clear();
      }
      row.resize(ncols, Json(""));
      return row;
    };
  } else {
    type.cells = [ncols](const Json&, WallTime) { return std::vector<Json>(ncols, Json("")); };
  }
  if (type.selectable_field) {
    type.selectable_field = [f = std::move(type.selectable_field)](
                                const Json& obj, std::string_view field, std::string* value) {
      try {
        return f(obj, field, value);
      } catch (const std::exception&) {
        return false;
      }
    };
  } else {
    type.selectable_field = [](const Json&, std::string_view, std::string*) { return false; };
  }
}

}  // namespace

void Registry::Add(ResourceType type) {
  GuardFunctions(type);
  for (auto& existing : types_) {
    if (existing->group == type.group && existing->version == type.version &&
        existing->plural == type.plural) {
      *existing = std::move(type);
      return;
    }
  }
  types_.push_back(std::make_unique<ResourceType>(std::move(type)));
}

const ResourceType* Registry::Find(std::string_view group, std::string_view version,
                                   std::string_view plural) const {
  for (const auto& t : types_) {
    if (t->group == group && t->version == version && t->plural == plural) return t.get();
  }
  return nullptr;
}

const ResourceType* Registry::FindKind(std::string_view group, std::string_view kind) const {
  for (const auto& t : types_) {
    if (t->group == group && t->kind == kind) return t.get();
  }
  return nullptr;
}

std::vector<std::string> Registry::GroupVersions() const {
  std::vector<std::string> out;
  for (const auto& t : types_) {
    std::string gv = t->GroupVersion();
    if (std::find(out.begin(), out.end(), gv) == out.end()) out.push_back(std::move(gv));
  }
  return out;
}

void AddBuiltinTypes(Registry* registry) {
  AddCoreTypes(registry);
  AddAppsTypes(registry);
  AddBatchTypes(registry);
  AddCoordinationTypes(registry);
  AddDiscoveryTypes(registry);
  AddSchedulingTypes(registry);
  AddFulcrumTypes(registry);
}

// k8s.io/apimachinery/pkg/util/duration.HumanDuration.
std::string HumanDuration(std::chrono::nanoseconds d) {
  using std::to_string;
  const int64_t ns = d.count();
  // Go's int(d.Seconds()) truncates toward zero; so does integer division.
  const int64_t seconds = ns / 1'000'000'000;
  if (seconds < -1) return "<invalid>";
  if (seconds < 0) return "0s";
  if (seconds < 60 * 2) return to_string(seconds) + "s";
  const int64_t minutes = seconds / 60;
  if (minutes < 10) {
    int64_t s = seconds % 60;
    if (s == 0) return to_string(minutes) + "m";
    return to_string(minutes) + "m" + to_string(s) + "s";
  }
  if (minutes < 60 * 3) return to_string(minutes) + "m";
  const int64_t hours = minutes / 60;
  if (hours < 8) {
    int64_t m = minutes % 60;
    if (m == 0) return to_string(hours) + "h";
    return to_string(hours) + "h" + to_string(m) + "m";
  }
  if (hours < 48) return to_string(hours) + "h";
  if (hours < 24 * 8) {
    int64_t h = hours % 24;
    if (h == 0) return to_string(hours / 24) + "d";
    return to_string(hours / 24) + "d" + to_string(h) + "h";
  }
  if (hours < 24 * 365 * 2) return to_string(hours / 24) + "d";
  if (hours < 24 * 365 * 8) {
    int64_t dy = (hours / 24) % 365;
    if (dy == 0) return to_string(hours / 24 / 365) + "y";
    return to_string(hours / 24 / 365) + "y" + to_string(dy) + "d";
  }
  return to_string(hours / 24 / 365) + "y";
}

std::string TimestampAge(const Json& timestamp, WallTime now) {
  if (!timestamp.is_string()) return "<unknown>";
  const std::string& text = timestamp.get_ref<const std::string&>();
  // Years outside 1900..2199 would overflow a nanosecond time_point (and the subtraction).
  if (text.size() < 4 || text.compare(0, 4, "1900") < 0 || text.compare(0, 4, "2199") > 0) {
    return "<unknown>";
  }
  WallTime t;
  if (!base::ParseRfc3339(text, &t)) return "<unknown>";
  return HumanDuration(std::chrono::duration_cast<std::chrono::nanoseconds>(now - t));
}

}  // namespace fulcrum::api
