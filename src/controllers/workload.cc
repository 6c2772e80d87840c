#include "controllers/workload.h"

#include <algorithm>
#include <cmath>
#include <cstdint>

namespace fulcrum::controllers {
namespace {

using base::StringAt;

const Json& Field(const Json& j, const char* key) {
  static const Json kNull;
  if (!j.is_object()) return kNull;
  auto it = j.find(key);
  return it == j.end() ? kNull : *it;
}

const Json* Condition(const Json& pod, const char* type) {
  const Json& conditions = Field(Field(pod, "status"), "conditions");
  if (!conditions.is_array()) return nullptr;
  for (const Json& c : conditions) {
    if (c.is_object() && c.value("type", "") == type) return &c;
  }
  return nullptr;
}

int PhaseRank(const std::string& phase) {
  if (phase == "Pending") return 0;
  if (phase == "Unknown") return 1;
  if (phase == "Running") return 2;
  return 3;
}

int64_t Restarts(const Json& pod) {
  int64_t n = 0;
  const Json& statuses = Field(Field(pod, "status"), "containerStatuses");
  if (!statuses.is_array()) return 0;
  for (const Json& s : statuses) {
    if (s.is_object() && s.value("restartCount", Json(0)).is_number_integer()) {
      n = std::max<int64_t>(n, s["restartCount"].get<int64_t>());
    }
  }
  return n;
}

}  // namespace

int64_t IntAt(const Json& j, std::initializer_list<const char*> path, int64_t fallback) {
  const Json* v = base::FindPath(j, path);
  return v != nullptr && v->is_number_integer() ? v->get<int64_t>() : fallback;
}

bool IsPodActive(const Json& pod) {
  std::string phase = StringAt(pod, {"status", "phase"});
  return phase != "Succeeded" && phase != "Failed" &&
         StringAt(pod, {"metadata", "deletionTimestamp"}).empty();
}

bool IsPodReady(const Json& pod) {
  const Json* ready = Condition(pod, "Ready");
  return ready != nullptr && ready->value("status", "") == "True";
}

bool IsPodAvailable(const Json& pod, int64_t min_ready_seconds, WallTime now) {
  if (!IsPodReady(pod)) return false;
  if (min_ready_seconds <= 0) return true;
  WallTime since;
  const Json* ready = Condition(pod, "Ready");
  if (!base::ParseRfc3339(ready->value("lastTransitionTime", ""), &since)) return false;
  return since + std::chrono::seconds(min_ready_seconds) <= now;
}

std::string ControllerUid(const Json& object) {
  const Json& refs = Field(Field(object, "metadata"), "ownerReferences");
  if (!refs.is_array()) return "";
  for (const Json& ref : refs) {
    if (ref.is_object() && ref.value("controller", false)) return ref.value("uid", "");
  }
  return "";
}

std::string ControllerName(const Json& object, const std::string& kind) {
  const Json& refs = Field(Field(object, "metadata"), "ownerReferences");
  if (!refs.is_array()) return "";
  for (const Json& ref : refs) {
    if (ref.is_object() && ref.value("controller", false) && ref.value("kind", "") == kind) {
      return ref.value("name", "");
    }
  }
  return "";
}

Json ControllerReference(const Json& owner, const std::string& api_version, const std::string& kind) {
  return {{"apiVersion", api_version},
          {"kind", kind},
          {"name", StringAt(owner, {"metadata", "name"})},
          {"uid", StringAt(owner, {"metadata", "uid"})},
          {"controller", true},
          {"blockOwnerDeletion", true}};
}

Json PodFromTemplate(const Json& template_spec, const Json& owner, const std::string& api_version,
                     const std::string& kind) {
  Json pod = {{"apiVersion", "v1"}, {"kind", "Pod"}};
  Json meta = Json::object();
  const Json& tmeta = Field(template_spec, "metadata");
  for (const char* f : {"labels", "annotations"}) {
    if (Field(tmeta, f).is_object()) meta[f] = tmeta[f];
  }
  meta["generateName"] = StringAt(owner, {"metadata", "name"}) + "-";
  meta["namespace"] = StringAt(owner, {"metadata", "namespace"});
  meta["ownerReferences"] = Json::array({ControllerReference(owner, api_version, kind)});
  pod["metadata"] = std::move(meta);
  pod["spec"] = Field(template_spec, "spec").is_object() ? template_spec["spec"] : Json::object();
  return pod;
}

void SortForDeletion(std::vector<ObjectPtr>& pods) {
  auto key = [](const Json& pod) {
    bool scheduled = !StringAt(pod, {"spec", "nodeName"}).empty();
    return std::make_tuple(scheduled, PhaseRank(StringAt(pod, {"status", "phase"})), IsPodReady(pod));
  };
  std::stable_sort(pods.begin(), pods.end(), [&](const ObjectPtr& a, const ObjectPtr& b) {
    auto ka = key(*a), kb = key(*b);
    if (ka != kb) return ka < kb;
    int64_t ra = Restarts(*a), rb = Restarts(*b);
    if (ra != rb) return ra > rb;
    // Newer first: RFC 3339 timestamps of one format order as strings.
    return StringAt(*a, {"metadata", "creationTimestamp"}) >
           StringAt(*b, {"metadata", "creationTimestamp"});
  });
}

std::string PodTemplateHash(const Json& template_spec, int64_t collision_count) {
  // FNV-1a, 32 bits, over the canonical JSON (nlohmann orders object keys) and the collision count.
  uint32_t h = 2166136261u;
  auto mix = [&h](std::string_view bytes) {
    for (unsigned char c : bytes) {
      h ^= c;
      h *= 16777619u;
    }
  };
  mix(template_spec.dump());
  if (collision_count > 0) mix(std::to_string(collision_count));
  // rand.SafeEncodeString: digits and consonants only, so a hash never spells a word.
  static const char kAlphabet[] = "bcdfghjklmnpqrstvwxz2456789";
  std::string out;
  uint32_t x = h;
  do {
    out.push_back(kAlphabet[x % 27]);
    x /= 27;
  } while (x != 0);
  return out;
}

int64_t ScaledValue(const Json& int_or_percent, int64_t total, bool round_up) {
  if (int_or_percent.is_number_integer()) return int_or_percent.get<int64_t>();
  if (!int_or_percent.is_string()) return 0;
  std::string s = int_or_percent.get<std::string>();
  if (s.empty() || s.back() != '%') return 0;
  int64_t percent = 0;
  try {
    percent = std::stoll(s.substr(0, s.size() - 1));
  } catch (...) {
    return 0;
  }
  double v = static_cast<double>(percent) * static_cast<double>(total) / 100.0;
  return static_cast<int64_t>(round_up ? std::ceil(v) : std::floor(v));
}

bool SetCondition(Json& status, const std::string& type, const std::string& condition_status,
                  const std::string& reason, const std::string& message, WallTime now) {
  if (!status.is_object()) status = Json::object();
  Json& conditions = status["conditions"];
  if (!conditions.is_array()) conditions = Json::array();
  std::string stamp = base::FormatRfc3339(now);
  for (Json& c : conditions) {
    if (!c.is_object() || c.value("type", "") != type) continue;
    bool changed = c.value("status", "") != condition_status || c.value("reason", "") != reason ||
                   c.value("message", "") != message;
    if (c.value("status", "") != condition_status) c["lastTransitionTime"] = stamp;
    c["status"] = condition_status;
    c["reason"] = reason;
    c["message"] = message;
    if (changed) c["lastUpdateTime"] = stamp;
    return changed;
  }
  conditions.push_back({{"type", type},
                        {"status", condition_status},
                        {"reason", reason},
                        {"message", message},
                        {"lastTransitionTime", stamp},
                        {"lastUpdateTime", stamp}});
  return true;
}

}  // namespace fulcrum::controllers
