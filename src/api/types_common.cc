#include "api/types_common.h"

namespace fulcrum::api::types {
namespace {

const Json& EmptyArray() {
  static const Json kEmpty = Json::array();
  return kEmpty;
}
const Json& EmptyObject() {
  static const Json kEmpty = Json::object();
  return kEmpty;
}

}  // namespace

using base::FindPath;
using base::StringAt;

const Json& ArrayAt(const Json& j, const char* key) {
  const Json* v = Child(j, key);
  return v != nullptr && v->is_array() ? *v : EmptyArray();
}

const Json& ObjectAt(const Json& j, const char* key) {
  const Json* v = Child(j, key);
  return v != nullptr && v->is_object() ? *v : EmptyObject();
}

bool IsUnset(const Json* v) {
  return v == nullptr || v->is_null() ||
         (v->is_string() && v->get_ref<const std::string&>().empty());
}

void SetDefault(Json& obj, const char* key, Json value) {
  if (!obj.is_object()) return;
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) obj[key] = std::move(value);
}

void SetDefaultString(Json& obj, const char* key, const char* value) {
  if (!obj.is_object()) return;
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null() ||
      (it->is_string() && it->get_ref<const std::string&>().empty())) {
    obj[key] = value;
  }
}

Json* MutableObject(Json& obj, const char* key) {
  if (!obj.is_object()) return nullptr;
  Json& v = obj[key];
  if (v.is_null()) v = Json::object();
  return v.is_object() ? &v : nullptr;
}

Json* MutableArray(Json& obj, const char* key) {
  if (!obj.is_object()) return nullptr;
  auto it = obj.find(key);
  if (it == obj.end() || !it->is_array()) return nullptr;
  return &*it;
}

bool MetadataField(const Json& obj, std::string_view field, std::string* value) {
  if (field == "metadata.name") {
    *value = StringAt(obj, {"metadata", "name"});
    return true;
  }
  if (field == "metadata.namespace") {
    *value = StringAt(obj, {"metadata", "namespace"});
    return true;
  }
  return false;
}

Json AgeCell(const Json& obj, WallTime now) {
  const Json* ts = FindPath(obj, {"metadata", "creationTimestamp"});
  return TimestampAge(ts != nullptr ? *ts : Json(), now);
}

TableColumn AgeColumn() {
  return {"Age", "string", "",
          "CreationTimestamp is a timestamp representing the server time when this object was "
          "created.",
          0};
}

Json Normalized(const Json& j) {
  if (j.is_object()) {
    Json out = Json::object();
    for (auto it = j.begin(); it != j.end(); ++it) {
      Json v = Normalized(it.value());
      if (v.is_null() || (v.is_array() && v.empty()) || (v.is_object() && v.empty())) continue;
      out[it.key()] = std::move(v);
    }
    return out;
  }
  if (j.is_array()) {
    Json out = Json::array();
    for (const auto& v : j) out.push_back(Normalized(v));
    return out;
  }
  return j;
}

std::string Idx(const std::string& path, size_t i) { return path + "[" + std::to_string(i) + "]"; }

std::string Key(const std::string& path, const std::string& key) { return path + "[" + key + "]"; }

void ValidateMeta(const Json& obj, const Json* old_obj, bool namespaced, NameValidation which,
                  FieldErrors& errors) {
  ValidateObjectMeta(obj, namespaced, which, errors);
  if (old_obj != nullptr) ValidateObjectMetaUpdate(obj, *old_obj, errors);
}

std::pair<std::string, std::string> ContainerCells(const Json& spec) {
  std::string names, images;
  const Json& containers = ArrayAt(ObjectAt(ObjectAt(spec, "template"), "spec"), "containers");
  for (size_t i = 0; i < containers.size(); ++i) {
    if (i > 0) {
      names += ',';
      images += ',';
    }
    names += StringField(containers[i], "name");
    images += StringField(containers[i], "image");
  }
  return {names, images};
}

}  // namespace fulcrum::api::types
