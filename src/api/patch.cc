// JSON Patch (RFC 6902), JSON Merge Patch (RFC 7386), and the Kubernetes strategic merge patch
// rules of k8s.io/apimachinery/pkg/util/strategicpatch (design: strategic-merge-patch.md and
// preserve-order-in-strategic-merge-patch.md).
#include "api/patch.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <exception>
#include <initializer_list>
#include <limits>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

namespace fulcrum::api {
namespace {

using base::BadRequest;
using base::Code;
using base::Invalid;

// ---------------------------------------------------------------------------------------------
// Shared helpers.

// The nesting depth of `j` (scalars 0, `{}` and `[]` 1) when it is at most `cap`, else some value
// greater than `cap`. The recursion stops once past `cap`, so the stack stays bounded.
int DepthUpTo(const Json& j, int cap) {
  if (!j.is_structured()) return 0;
  if (cap <= 0) return 1;
  int deepest = 0;
  for (const Json& child : j) {
    deepest = std::max(deepest, DepthUpTo(child, cap - 1));
    if (deepest >= cap) break;
  }
  return 1 + deepest;
}

bool WithinDepth(const Json& j, int limit) { return DepthUpTo(j, limit) <= limit; }

// Number of values in `j`, counting stops a little past `cap`.
std::size_t CountNodesUpTo(const Json& j, std::size_t cap) {
  std::size_t n = 1;
  if (!j.is_structured()) return n;
  for (const Json& child : j) {
    if (n > cap) break;
    n += CountNodesUpTo(child, cap - n);
  }
  return n;
}

// A short rendering of a value for an error message.
std::string Brief(const Json& v, std::size_t max = 120) {
  std::string s = base::DumpJson(v);
  if (s.size() <= max) return s;
  s.resize(max);
  // Do not leave half a UTF-8 sequence behind.
  while (!s.empty() && (static_cast<unsigned char>(s.back()) & 0xC0) == 0x80) s.pop_back();
  if (!s.empty() && static_cast<unsigned char>(s.back()) >= 0xC0) s.pop_back();
  return s + "...";
}

const char* TypeName(const Json& v) {
  switch (v.type()) {
    case Json::value_t::null:
      return "null";
    case Json::value_t::object:
      return "an object";
    case Json::value_t::array:
      return "an array";
    case Json::value_t::string:
      return "a string";
    case Json::value_t::boolean:
      return "a boolean";
    case Json::value_t::number_integer:
    case Json::value_t::number_unsigned:
    case Json::value_t::number_float:
      return "a number";
    default:
      return "a binary value";
  }
}

Status DepthError(std::string_view what) {
  return BadRequest(std::string(what) + " nests deeper than " +
                    std::to_string(base::kMaxJsonDepth) + " levels");
}

// ---------------------------------------------------------------------------------------------
// JSON Patch (RFC 6902).

// Copy operations may copy at most this many values in total: a patch of 30 "copy the document
// into itself" operations would otherwise grow a document 2^30 times.
constexpr std::size_t kMaxCopiedNodes = 1 << 20;

std::string EscapeToken(std::string_view token) {
  std::string out;
  for (char c : token) {
    if (c == '~') {
      out += "~0";
    } else if (c == '/') {
      out += "~1";
    } else {
      out += c;
    }
  }
  return out;
}

std::string JoinPointer(const std::vector<std::string>& tokens, std::size_t n) {
  std::string out;
  for (std::size_t i = 0; i < n && i < tokens.size(); ++i) out += "/" + EscapeToken(tokens[i]);
  return out;
}

// An array index token: "0" or digits without a leading zero, small enough to be an index.
std::optional<std::size_t> ParseArrayIndex(std::string_view token) {
  if (token.empty() || token.size() > 9) return std::nullopt;
  if (token.size() > 1 && token[0] == '0') return std::nullopt;
  std::size_t n = 0;
  for (char c : token) {
    if (c < '0' || c > '9') return std::nullopt;
    n = n * 10 + static_cast<std::size_t>(c - '0');
  }
  return n;
}

class JsonPatcher {
 public:
  Status Apply(Json& doc, const Json& patch) {
    if (!patch.is_array()) {
      return BadRequest("json patch must be a JSON array of operations, not " +
                        std::string(TypeName(patch)));
    }
    if (patch.size() > kMaxJsonPatchOperations) {
      return Status(Code::kRequestTooLarge, "The allowed maximum operations in a JSON patch is " +
                                                std::to_string(kMaxJsonPatchOperations) + ", got " +
                                                std::to_string(patch.size()));
    }
    for (std::size_t i = 0; i < patch.size(); ++i) {
      index_ = i;
      op_.clear();
      RETURN_IF_ERROR(ApplyOne(doc, patch[i]));
    }
    return Status::Ok();
  }

 private:
  Status Fail(Code code, const std::string& message) const {
    std::string where = "json patch operation " + std::to_string(index_);
    if (!op_.empty()) where += " (" + op_ + ")";
    return Status(code, where + ": " + message);
  }

  // Reads the pointer in member `member` ("path" or "from") of `op`.
  Status ReadPointer(const Json& op, const char* member, std::vector<std::string>* tokens,
                     std::string* text) {
    auto it = op.find(member);
    if (it == op.end()) return Fail(Code::kBadRequest, std::string("missing \"") + member + "\"");
    if (!it->is_string()) {
      return Fail(Code::kBadRequest,
                  std::string("\"") + member + "\" must be a string, not " + TypeName(*it));
    }
    *text = it->get<std::string>();
    tokens->clear();
    if (text->empty()) return Status::Ok();
    if ((*text)[0] != '/') {
      return Fail(Code::kBadRequest, std::string(member) + " \"" + *text +
                                         "\" is not a JSON pointer: it must be empty or start "
                                         "with \"/\"");
    }
    std::string token;
    for (std::size_t i = 1; i <= text->size(); ++i) {
      if (i == text->size() || (*text)[i] == '/') {
        tokens->push_back(std::move(token));
        token.clear();
        continue;
      }
      char c = (*text)[i];
      if (c == '~') {
        char next = i + 1 < text->size() ? (*text)[i + 1] : '\0';
        if (next == '0') {
          token += '~';
        } else if (next == '1') {
          token += '/';
        } else {
          return Fail(Code::kBadRequest, std::string(member) + " \"" + *text +
                                             "\" has \"~\" not followed by \"0\" or \"1\"");
        }
        ++i;
        continue;
      }
      token += c;
    }
    return Status::Ok();
  }

  // The value at the first `n` tokens of `tokens`, or an Invalid status naming the missing step.
  Result<Json*> Walk(Json& doc, const std::vector<std::string>& tokens, std::size_t n,
                     const std::string& path) const {
    Json* cur = &doc;
    for (std::size_t i = 0; i < n; ++i) {
      const std::string& t = tokens[i];
      if (cur->is_object()) {
        auto it = cur->find(t);
        if (it == cur->end()) {
          return Fail(Code::kInvalid, "path \"" + path + "\" does not exist (\"" +
                                          JoinPointer(tokens, i) + "\" has no member \"" + t +
                                          "\")");
        }
        cur = &*it;
      } else if (cur->is_array()) {
        auto idx = ParseArrayIndex(t);
        if (!idx) {
          return Fail(Code::kInvalid, "path \"" + path + "\": \"" + t +
                                          "\" is not a valid index into the array \"" +
                                          JoinPointer(tokens, i) + "\"");
        }
        if (*idx >= cur->size()) {
          return Fail(Code::kInvalid, "path \"" + path + "\" does not exist (index " + t +
                                          " is out of range: the array \"" +
                                          JoinPointer(tokens, i) + "\" has " +
                                          std::to_string(cur->size()) + " elements)");
        }
        cur = &(*cur)[*idx];
      } else {
        return Fail(Code::kInvalid, "path \"" + path + "\" does not exist (\"" +
                                        JoinPointer(tokens, i) + "\" is " + TypeName(*cur) +
                                        ", not an object or array)");
      }
    }
    return cur;
  }

  Status CheckDepth(const std::vector<std::string>& tokens, const Json& value,
                    const std::string& path) const {
    int room = base::kMaxJsonDepth - static_cast<int>(tokens.size());
    if (room < 0 || DepthUpTo(value, room) > room) {
      return Fail(Code::kInvalid, "the value at \"" + path + "\" would nest deeper than " +
                                      std::to_string(base::kMaxJsonDepth) + " levels");
    }
    return Status::Ok();
  }

  Status Add(Json& doc, const std::vector<std::string>& tokens, const std::string& path,
             Json value) {
    RETURN_IF_ERROR(CheckDepth(tokens, value, path));
    if (tokens.empty()) {
      doc = std::move(value);
      return Status::Ok();
    }
    ASSIGN_OR_RETURN(Json * parent, Walk(doc, tokens, tokens.size() - 1, path));
    const std::string& last = tokens.back();
    if (parent->is_object()) {
      (*parent)[last] = std::move(value);
      return Status::Ok();
    }
    if (parent->is_array()) {
      if (last == "-") {
        parent->push_back(std::move(value));
        return Status::Ok();
      }
      auto idx = ParseArrayIndex(last);
      if (!idx) {
        return Fail(Code::kInvalid, "path \"" + path + "\": \"" + last +
                                        "\" is not a valid index into the array \"" +
                                        JoinPointer(tokens, tokens.size() - 1) + "\"");
      }
      if (*idx > parent->size()) {
        return Fail(Code::kInvalid, "path \"" + path + "\": index " + last +
                                        " is out of range: the array \"" +
                                        JoinPointer(tokens, tokens.size() - 1) + "\" has " +
                                        std::to_string(parent->size()) + " elements");
      }
      parent->insert(parent->begin() + static_cast<std::ptrdiff_t>(*idx), std::move(value));
      return Status::Ok();
    }
    return Fail(Code::kInvalid, "path \"" + path + "\": cannot add to \"" +
                                    JoinPointer(tokens, tokens.size() - 1) + "\", which is " +
                                    TypeName(*parent));
  }

  // Removes the value at `tokens` and stores it in *removed.
  Status Remove(Json& doc, const std::vector<std::string>& tokens, const std::string& path,
                Json* removed) {
    if (tokens.empty()) return Fail(Code::kInvalid, "cannot remove the whole document");
    ASSIGN_OR_RETURN(Json * parent, Walk(doc, tokens, tokens.size() - 1, path));
    const std::string& last = tokens.back();
    if (parent->is_object()) {
      auto it = parent->find(last);
      if (it == parent->end()) {
        return Fail(Code::kInvalid, "path \"" + path + "\" does not exist");
      }
      *removed = std::move(*it);
      parent->erase(it);
      return Status::Ok();
    }
    if (parent->is_array()) {
      auto idx = ParseArrayIndex(last);
      if (!idx) {
        return Fail(Code::kInvalid, "path \"" + path + "\": \"" + last +
                                        "\" is not a valid index into the array \"" +
                                        JoinPointer(tokens, tokens.size() - 1) + "\"");
      }
      if (*idx >= parent->size()) {
        return Fail(Code::kInvalid, "path \"" + path + "\" does not exist (index " + last +
                                        " is out of range: the array has " +
                                        std::to_string(parent->size()) + " elements)");
      }
      *removed = std::move((*parent)[*idx]);
      parent->erase(parent->begin() + static_cast<std::ptrdiff_t>(*idx));
      return Status::Ok();
    }
    return Fail(Code::kInvalid, "path \"" + path + "\" does not exist (\"" +
                                    JoinPointer(tokens, tokens.size() - 1) + "\" is " +
                                    TypeName(*parent) + ")");
  }

  Status ApplyOne(Json& doc, const Json& op) {
    if (!op.is_object()) {
      return Fail(Code::kBadRequest,
                  "an operation must be a JSON object, not " + std::string(TypeName(op)));
    }
    auto op_it = op.find("op");
    if (op_it == op.end()) return Fail(Code::kBadRequest, "missing \"op\"");
    if (!op_it->is_string()) return Fail(Code::kBadRequest, "\"op\" must be a string");
    const std::string& name = op_it->get_ref<const std::string&>();
    if (name != "add" && name != "remove" && name != "replace" && name != "move" &&
        name != "copy" && name != "test") {
      return Fail(Code::kBadRequest, "unknown op " + Brief(Json(name), 60) +
                                         ": must be add, remove, replace, move, copy or test");
    }
    op_ = name;

    std::vector<std::string> path;
    std::string path_text;
    RETURN_IF_ERROR(ReadPointer(op, "path", &path, &path_text));

    const Json* value = nullptr;
    if (name == "add" || name == "replace" || name == "test") {
      auto it = op.find("value");
      if (it == op.end()) return Fail(Code::kBadRequest, "missing \"value\"");
      value = &*it;
    }
    std::vector<std::string> from;
    std::string from_text;
    if (name == "move" || name == "copy") {
      RETURN_IF_ERROR(ReadPointer(op, "from", &from, &from_text));
    }

    if (name == "add") return Add(doc, path, path_text, *value);
    if (name == "remove") {
      Json removed;
      return Remove(doc, path, path_text, &removed);
    }
    if (name == "replace") {
      ASSIGN_OR_RETURN(Json * target, Walk(doc, path, path.size(), path_text));
      RETURN_IF_ERROR(CheckDepth(path, *value, path_text));
      *target = *value;
      return Status::Ok();
    }
    if (name == "test") {
      ASSIGN_OR_RETURN(Json * target, Walk(doc, path, path.size(), path_text));
      if (*target != *value) {
        return Fail(Code::kInvalid, "test failed: the value at \"" + path_text + "\" is " +
                                        Brief(*target) + ", not " + Brief(*value));
      }
      return Status::Ok();
    }
    if (name == "move") {
      ASSIGN_OR_RETURN(Json * source, Walk(doc, from, from.size(), from_text));
      (void)source;
      if (from == path) return Status::Ok();
      if (from.size() < path.size() && std::equal(from.begin(), from.end(), path.begin())) {
        return Fail(Code::kInvalid,
                    "cannot move \"" + from_text + "\" into its own child \"" + path_text + "\"");
      }
      Json moved;
      RETURN_IF_ERROR(Remove(doc, from, from_text, &moved));
      return Add(doc, path, path_text, std::move(moved));
    }
    // copy
    ASSIGN_OR_RETURN(Json * source, Walk(doc, from, from.size(), from_text));
    copied_ += CountNodesUpTo(*source, kMaxCopiedNodes);
    if (copied_ > kMaxCopiedNodes) {
      return Fail(Code::kRequestTooLarge,
                  "copy operations copy more than " + std::to_string(kMaxCopiedNodes) + " values");
    }
    return Add(doc, path, path_text, Json(*source));
  }

  std::size_t index_ = 0;
  std::string op_;
  std::size_t copied_ = 0;
};

// ---------------------------------------------------------------------------------------------
// JSON Merge Patch (RFC 7386 §2).

void MergePatchInto(Json& target, const Json& patch) {
  if (!patch.is_object()) {
    target = patch;
    return;
  }
  if (!target.is_object()) target = Json::object();
  for (auto it = patch.begin(); it != patch.end(); ++it) {
    if (it->is_null()) {
      target.erase(it.key());
    } else {
      MergePatchInto(target[it.key()], *it);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Strategic merge patch: the schema.

// What the Go struct tags say about one field: the schema type of its value (for a list, of each
// element; "" when untyped), and for a list whether patchStrategy=merge and the patchMergeKey
// ("" for a list of primitives merged as a set).
struct FieldSchema {
  std::string_view type;
  bool merge_list = false;
  std::string_view merge_key;
};

using TypeSchema = std::unordered_map<std::string_view, FieldSchema>;
using Schema = std::unordered_map<std::string_view, TypeSchema>;

constexpr FieldSchema Struct(std::string_view type) { return {type, false, {}}; }
constexpr FieldSchema MergeByKey(std::string_view key, std::string_view element_type = {}) {
  return {element_type, true, key};
}
constexpr FieldSchema PrimitiveSet() { return {{}, true, {}}; }

// Only fields that carry a strategy, or lead to one, are listed; all others are untyped.
const Schema& Types() {
  static const Schema* const schema = new Schema{
      {"Object", {{"metadata", Struct("ObjectMeta")}}},
      {"ObjectMeta", {{"finalizers", PrimitiveSet()}, {"ownerReferences", MergeByKey("uid")}}},
      {"Pod",
       {{"metadata", Struct("ObjectMeta")},
        {"spec", Struct("PodSpec")},
        {"status", Struct("PodStatus")}}},
      {"PodSpec",
       {{"volumes", MergeByKey("name")},  // patchStrategy=merge,retainKeys
        {"initContainers", MergeByKey("name", "Container")},
        {"containers", MergeByKey("name", "Container")},
        {"ephemeralContainers", MergeByKey("name", "Container")},
        {"imagePullSecrets", MergeByKey("name")},
        {"hostAliases", MergeByKey("ip")},
        {"topologySpreadConstraints", MergeByKey("topologyKey")},
        {"resourceClaims", MergeByKey("name")},
        {"schedulingGates", MergeByKey("name")}}},
      // tolerations, readinessGates, dnsConfig lists: no strategy, replaced.
      {"Container",
       {{"ports", MergeByKey("containerPort")},
        {"env", MergeByKey("name")},
        {"volumeMounts", MergeByKey("mountPath")},
        {"volumeDevices", MergeByKey("devicePath")}}},
      // containerStatuses and friends: no strategy, replaced.
      {"PodStatus",
       {{"conditions", MergeByKey("type")},
        {"podIPs", MergeByKey("ip")},
        {"hostIPs", MergeByKey("ip")},
        {"resourceClaimStatuses", MergeByKey("name")}}},
      {"PodTemplateSpec", {{"metadata", Struct("ObjectMeta")}, {"spec", Struct("PodSpec")}}},
      {"PodTemplate",
       {{"metadata", Struct("ObjectMeta")}, {"template", Struct("PodTemplateSpec")}}},
      // Status types whose only strategic list is conditions, merged by type.
      {"ConditionsStatus", {{"conditions", MergeByKey("type")}}},
      // The spec of every workload with a pod template (volumeClaimTemplates are replaced).
      {"WorkloadSpec", {{"template", Struct("PodTemplateSpec")}}},
      {"Workload",
       {{"metadata", Struct("ObjectMeta")},
        {"spec", Struct("WorkloadSpec")},
        {"status", Struct("ConditionsStatus")}}},
      {"JobTemplateSpec", {{"metadata", Struct("ObjectMeta")}, {"spec", Struct("WorkloadSpec")}}},
      {"CronJob", {{"metadata", Struct("ObjectMeta")}, {"spec", Struct("CronJobSpec")}}},
      {"CronJobSpec", {{"jobTemplate", Struct("JobTemplateSpec")}}},
      {"Service",
       {{"metadata", Struct("ObjectMeta")},
        {"spec", Struct("ServiceSpec")},
        {"status", Struct("ConditionsStatus")}}},
      {"ServiceSpec", {{"ports", MergeByKey("port")}}},
      {"Node",
       {{"metadata", Struct("ObjectMeta")},
        {"spec", Struct("NodeSpec")},
        {"status", Struct("NodeStatus")}}},
      {"NodeSpec", {{"podCIDRs", PrimitiveSet()}}},  // taints: no strategy, replaced
      {"NodeStatus", {{"addresses", MergeByKey("type")}, {"conditions", MergeByKey("type")}}},
      {"ObjectWithConditions",
       {{"metadata", Struct("ObjectMeta")}, {"status", Struct("ConditionsStatus")}}},
      {"ServiceAccount", {{"metadata", Struct("ObjectMeta")}, {"secrets", MergeByKey("name")}}},
  };
  return *schema;
}

struct KindRoot {
  std::string_view group;
  std::string_view kind;
  std::string_view type;
};

constexpr KindRoot kKinds[] = {
    {"", "Pod", "Pod"},
    {"", "PodTemplate", "PodTemplate"},
    {"", "ReplicationController", "Workload"},
    {"", "Service", "Service"},
    {"", "Node", "Node"},
    {"", "Namespace", "ObjectWithConditions"},
    {"", "PersistentVolumeClaim", "ObjectWithConditions"},
    {"", "PersistentVolume", "Object"},
    {"", "ServiceAccount", "ServiceAccount"},
    {"", "ConfigMap", "Object"},
    {"", "Secret", "Object"},
    {"", "Event", "Object"},
    {"", "Endpoints", "Object"},
    {"", "LimitRange", "Object"},
    {"", "ResourceQuota", "Object"},
    {"apps", "Deployment", "Workload"},
    {"apps", "ReplicaSet", "Workload"},
    {"apps", "StatefulSet", "Workload"},
    {"apps", "DaemonSet", "Workload"},
    {"apps", "ControllerRevision", "Object"},
    {"batch", "Job", "Workload"},
    {"batch", "CronJob", "CronJob"},
    {"policy", "PodDisruptionBudget", "ObjectWithConditions"},
    {"autoscaling", "HorizontalPodAutoscaler", "ObjectWithConditions"},
    {"discovery.k8s.io", "EndpointSlice", "Object"},
    {"events.k8s.io", "Event", "Object"},
    {"coordination.k8s.io", "Lease", "Object"},
    {"networking.k8s.io", "Ingress", "Object"},
    {"networking.k8s.io", "IngressClass", "Object"},
    {"networking.k8s.io", "NetworkPolicy", "Object"},
    {"rbac.authorization.k8s.io", "Role", "Object"},
    {"rbac.authorization.k8s.io", "ClusterRole", "Object"},
    {"rbac.authorization.k8s.io", "RoleBinding", "Object"},
    {"rbac.authorization.k8s.io", "ClusterRoleBinding", "Object"},
    {"storage.k8s.io", "StorageClass", "Object"},
    {"scheduling.k8s.io", "PriorityClass", "Object"},
    {"apiextensions.k8s.io", "CustomResourceDefinition", "Object"},
};

const KindRoot* FindKind(std::string_view group, std::string_view kind) {
  for (const KindRoot& k : kKinds) {
    if (k.group == group && k.kind == kind) return &k;
  }
  return nullptr;
}

const TypeSchema* FindType(std::string_view name) {
  if (name.empty()) return nullptr;
  auto it = Types().find(name);
  return it == Types().end() ? nullptr : &it->second;
}

const FieldSchema* FindField(const TypeSchema* type, std::string_view field) {
  if (type == nullptr) return nullptr;
  auto it = type->find(field);
  return it == type->end() ? nullptr : &it->second;
}

// ---------------------------------------------------------------------------------------------
// Strategic merge patch: the algorithm.

constexpr std::string_view kDirective = "$patch";
constexpr std::string_view kRetainKeys = "$retainKeys";
constexpr std::string_view kDeleteFromPrimitiveList = "$deleteFromPrimitiveList";
constexpr std::string_view kSetElementOrder = "$setElementOrder";

bool HasPrefixDirective(std::string_view key, std::string_view prefix) {
  return key.substr(0, prefix.size()) == prefix;
}

// A string that is equal for equal JSON values (1 and 1.0 included), for hashing list elements
// and merge keys the way Go compares interface{} values.
std::string Canonical(const Json& v) {
  switch (v.type()) {
    case Json::value_t::string:
      return "s" + v.get_ref<const std::string&>();
    case Json::value_t::number_integer:
      return "n" + std::to_string(v.get<std::int64_t>());
    case Json::value_t::number_unsigned:
      return "n" + std::to_string(v.get<std::uint64_t>());
    case Json::value_t::number_float: {
      double d = v.get<double>();
      if (std::isfinite(d) && std::trunc(d) == d && d >= -9223372036854775808.0 &&
          d < 9223372036854775808.0) {
        return "n" + std::to_string(static_cast<std::int64_t>(d));
      }
      return "n" + base::DumpJson(v);
    }
    default:
      return "j" + base::DumpJson(v);
  }
}

// The identity of a list element: its merge key's value for lists of maps, itself otherwise.
std::optional<std::string> ElementKey(const Json& element, std::string_view merge_key) {
  if (merge_key.empty()) return Canonical(element);
  if (!element.is_object()) return std::nullopt;
  auto it = element.find(merge_key);
  if (it == element.end()) return std::nullopt;
  return Canonical(*it);
}

enum class ElementKind { kNull, kBool, kNumber, kString, kObject, kArray, kOther };

ElementKind KindOf(const Json& v) {
  switch (v.type()) {
    case Json::value_t::null:
      return ElementKind::kNull;
    case Json::value_t::boolean:
      return ElementKind::kBool;
    case Json::value_t::number_integer:
    case Json::value_t::number_unsigned:
    case Json::value_t::number_float:
      return ElementKind::kNumber;
    case Json::value_t::string:
      return ElementKind::kString;
    case Json::value_t::object:
      return ElementKind::kObject;
    case Json::value_t::array:
      return ElementKind::kArray;
    default:
      return ElementKind::kOther;
  }
}

Status NoMergeKey(const Json& element, std::string_view merge_key, Code code = Code::kBadRequest) {
  return Status(code, "map: " + Brief(element) +
                          " does not contain declared merge key: " + std::string(merge_key));
}

// Position of each element's key in `order` (first occurrence wins).
std::unordered_map<std::string, std::size_t> Positions(const Json& order,
                                                       std::string_view merge_key) {
  std::unordered_map<std::string, std::size_t> pos;
  for (std::size_t i = 0; i < order.size(); ++i) {
    if (auto key = ElementKey(order[i], merge_key)) pos.emplace(std::move(*key), i);
  }
  return pos;
}

// strategicpatch's normalizeElementOrder: sorts `patch_items` by their position in `patch_order`
// and `server_only` by their position in `server_order`, then interleaves the two, placing a
// server-only item before a patch item only when both appear in `server_order` and it comes
// first there. Every item must have a key (callers check).
Json NormalizeOrder(std::vector<Json> patch_items, std::vector<Json> server_only,
                    const Json& patch_order, const Json& server_order, std::string_view merge_key) {
  constexpr std::size_t kMissing = std::numeric_limits<std::size_t>::max();
  auto patch_pos = Positions(patch_order, merge_key);
  auto server_pos = Positions(server_order, merge_key);
  auto position = [&](const std::unordered_map<std::string, std::size_t>& pos, const Json& item) {
    auto key = ElementKey(item, merge_key);
    if (!key) return kMissing;
    auto it = pos.find(*key);
    return it == pos.end() ? kMissing : it->second;
  };
  auto sort_by = [&](std::vector<Json>& items,
                     const std::unordered_map<std::string, std::size_t>& pos) {
    std::vector<std::pair<std::size_t, std::size_t>> order;  // (position, original index)
    order.reserve(items.size());
    for (std::size_t i = 0; i < items.size(); ++i) order.emplace_back(position(pos, items[i]), i);
    std::stable_sort(order.begin(), order.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    std::vector<Json> sorted;
    sorted.reserve(items.size());
    for (const auto& [p, i] : order) sorted.push_back(std::move(items[i]));
    items = std::move(sorted);
  };
  sort_by(patch_items, patch_pos);
  sort_by(server_only, server_pos);

  Json out = Json::array();
  std::size_t i = 0, j = 0;
  while (i < server_only.size() && j < patch_items.size()) {
    std::size_t li = position(server_pos, server_only[i]);
    std::size_t ri = position(server_pos, patch_items[j]);
    if (li != kMissing && ri != kMissing && li < ri) {
      out.push_back(std::move(server_only[i++]));
    } else {
      out.push_back(std::move(patch_items[j++]));
    }
  }
  while (i < server_only.size()) out.push_back(std::move(server_only[i++]));
  while (j < patch_items.size()) out.push_back(std::move(patch_items[j++]));
  return out;
}

// Splits `merged` into the elements whose key appears in `present_in` and the rest.
Status Partition(Json& merged, const Json& present_in, std::string_view merge_key,
                 std::vector<Json>* in, std::vector<Json>* out) {
  std::unordered_set<std::string> keys;
  for (const Json& e : present_in) {
    if (auto key = ElementKey(e, merge_key)) keys.insert(std::move(*key));
  }
  for (Json& e : merged) {
    auto key = ElementKey(e, merge_key);
    if (!key) return NoMergeKey(e, merge_key, Code::kInvalid);
    (keys.count(*key) ? in : out)->push_back(std::move(e));
  }
  return Status::Ok();
}

class StrategicMerger {
 public:
  // Merges the object `patch` into `original` (made an object if it is not), both of schema type
  // `type` (nullptr when untyped).
  Status MergeMap(Json& original, const Json& patch, const TypeSchema* type) {
    auto directive = patch.find(kDirective);
    if (directive != patch.end()) {
      if (*directive == "replace") {
        Json rest = patch;
        rest.erase(std::string(kDirective));
        original = Json::object();
        return MergeMap(original, rest, type);
      }
      if (*directive == "delete") {
        original = Json::object();
        return Status::Ok();
      }
      if (*directive != "merge") {
        return BadRequest("unknown patch type: " + Brief(*directive, 40) +
                          " in map: " + Brief(patch));
      }
    }
    if (!original.is_object()) original = Json::object();

    RETURN_IF_ERROR(ApplyRetainKeys(original, patch));

    std::unordered_set<std::string> done;  // list fields merged together with their order
    for (auto it = patch.begin(); it != patch.end(); ++it) {
      if (!HasPrefixDirective(it.key(), kSetElementOrder)) continue;
      RETURN_IF_ERROR(MergeWithElementOrder(original, patch, it.key(), *it, type, &done));
    }

    for (auto it = patch.begin(); it != patch.end(); ++it) {
      const std::string& key = it.key();
      if (key == kDirective || key == kRetainKeys || HasPrefixDirective(key, kSetElementOrder) ||
          HasPrefixDirective(key, kDeleteFromPrimitiveList) || done.count(key)) {
        continue;
      }
      const Json& value = *it;
      if (value.is_null()) {
        original.erase(key);
        continue;
      }
      const FieldSchema* field = FindField(type, key);
      auto existing = original.find(key);
      if (existing == original.end() || KindOf(*existing) != KindOf(value)) {
        ASSIGN_OR_RETURN(original[key], Fresh(value, field, key));
        continue;
      }
      if (value.is_object()) {
        RETURN_IF_ERROR(MergeMap(*existing, value, SubType(field)));
      } else if (value.is_array() && field != nullptr && field->merge_list) {
        RETURN_IF_ERROR(MergeList(*existing, value, *field, key));
      } else {
        *existing = value;
      }
    }

    for (auto it = patch.begin(); it != patch.end(); ++it) {
      if (!HasPrefixDirective(it.key(), kDeleteFromPrimitiveList)) continue;
      RETURN_IF_ERROR(DeleteFromPrimitiveList(original, it.key(), *it));
    }
    return Status::Ok();
  }

 private:
  static const TypeSchema* SubType(const FieldSchema* field) {
    return field == nullptr ? nullptr : FindType(field->type);
  }

  // The value a patch value takes where the live object has nothing to merge it with: the patch
  // applied to an empty value of its kind, so that its directives and nulls are resolved.
  Result<Json> Fresh(const Json& value, const FieldSchema* field, std::string_view name) {
    if (value.is_object()) {
      Json out = Json::object();
      RETURN_IF_ERROR(MergeMap(out, value, SubType(field)));
      return out;
    }
    if (value.is_array() && field != nullptr && field->merge_list) {
      Json out = Json::array();
      RETURN_IF_ERROR(MergeList(out, value, *field, name));
      return out;
    }
    return value;
  }

  Status ApplyRetainKeys(Json& original, const Json& patch) {
    auto retain = patch.find(kRetainKeys);
    if (retain == patch.end()) return Status::Ok();
    if (!retain->is_array()) return BadRequest("invalid patch format of retainKeys");
    std::unordered_set<std::string> keep;
    for (const Json& k : *retain) {
      if (k.is_string()) keep.insert(k.get<std::string>());
    }
    for (auto it = patch.begin(); it != patch.end(); ++it) {
      const std::string& key = it.key();
      if (it->is_null() || key == kDirective || key == kRetainKeys ||
          HasPrefixDirective(key, kDeleteFromPrimitiveList) ||
          HasPrefixDirective(key, kSetElementOrder)) {
        continue;
      }
      if (!keep.count(key)) {
        return BadRequest("invalid patch format of retainKeys: \"" + key +
                          "\" is set by the patch but not listed in $retainKeys");
      }
    }
    for (auto it = original.begin(); it != original.end();) {
      if (keep.count(it.key())) {
        ++it;
      } else {
        it = original.erase(it);
      }
    }
    return Status::Ok();
  }

  // strategicpatch's mergeSlice for a list field with patchStrategy=merge.
  Status MergeList(Json& original, const Json& patch, const FieldSchema& field,
                   std::string_view name) {
    if (original.empty() && patch.empty()) return Status::Ok();
    std::optional<ElementKind> kind;
    for (const Json* list : std::initializer_list<const Json*>{&original, &patch}) {
      for (const Json& e : *list) {
        ElementKind k = KindOf(e);
        if (k == ElementKind::kArray) {
          return Invalid("lists of lists are not supported (field \"" + std::string(name) + "\")");
        }
        if (kind && *kind != k) {
          return Invalid("list element types are not identical in field \"" + std::string(name) +
                         "\": " + Brief(original, 60) + " and " + Brief(patch, 60));
        }
        kind = k;
      }
    }

    if (*kind != ElementKind::kObject) {
      // A set of primitives.
      std::vector<Json> patch_items, server_only;
      std::unordered_set<std::string> in_patch, seen;
      for (const Json& e : patch) in_patch.insert(Canonical(e));
      for (const Json* list : std::initializer_list<const Json*>{&original, &patch}) {
        for (const Json& e : *list) {
          std::string key = Canonical(e);
          if (!seen.insert(key).second) continue;
          (in_patch.count(key) ? patch_items : server_only).push_back(e);
        }
      }
      Json server_order = original;
      original =
          NormalizeOrder(std::move(patch_items), std::move(server_only), patch, server_order, "");
      return Status::Ok();
    }

    std::string_view merge_key = field.merge_key;
    if (merge_key.empty()) {
      return Invalid("cannot merge lists without merge key for field \"" + std::string(name) +
                     "\"");
    }
    const TypeSchema* element_type = FindType(field.type);

    // Elements carrying "$patch" first: deletions by key, or a replacement of the whole list.
    bool replace = false;
    std::unordered_set<std::string> deleted;
    Json plain = Json::array();
    for (const Json& e : patch) {
      auto directive = e.find(kDirective);
      if (directive == e.end()) {
        plain.push_back(e);
      } else if (*directive == "delete") {
        auto key = ElementKey(e, merge_key);
        if (!key) return NoMergeKey(e, merge_key);
        deleted.insert(std::move(*key));
      } else if (*directive == "replace") {
        replace = true;
      } else if (*directive == "merge") {
        return BadRequest("merging lists cannot yet be specified in the patch");
      } else {
        return BadRequest("unknown patch type: " + Brief(*directive, 40) + " in map: " + Brief(e));
      }
    }
    if (replace) {
      Json out = Json::array();
      for (const Json& e : plain) {
        if (!ElementKey(e, merge_key)) return NoMergeKey(e, merge_key);
        Json cleaned = Json::object();
        RETURN_IF_ERROR(MergeMap(cleaned, e, element_type));
        out.push_back(std::move(cleaned));
      }
      original = std::move(out);
      return Status::Ok();
    }

    Json merged = Json::array();
    for (Json& e : original) {
      auto key = ElementKey(e, merge_key);
      if (key && deleted.count(*key)) continue;
      merged.push_back(std::move(e));
    }
    Json server_order = merged;
    std::unordered_map<std::string, std::size_t> index;
    for (std::size_t i = 0; i < merged.size(); ++i) {
      if (auto key = ElementKey(merged[i], merge_key)) index.emplace(std::move(*key), i);
    }
    for (const Json& e : plain) {
      auto key = ElementKey(e, merge_key);
      if (!key) return NoMergeKey(e, merge_key);
      auto found = index.find(*key);
      if (found != index.end()) {
        RETURN_IF_ERROR(MergeMap(merged[found->second], e, element_type));
      } else {
        Json element = Json::object();
        RETURN_IF_ERROR(MergeMap(element, e, element_type));
        index.emplace(std::move(*key), merged.size());
        merged.push_back(std::move(element));
      }
    }

    std::vector<Json> patch_items, server_only;
    RETURN_IF_ERROR(Partition(merged, plain, merge_key, &patch_items, &server_only));
    original = NormalizeOrder(std::move(patch_items), std::move(server_only), plain, server_order,
                              merge_key);
    return Status::Ok();
  }

  // validatePatchWithSetOrderList: the patch list must follow the $setElementOrder list.
  static Status CheckOrderConsistent(const Json& patch_list, const Json& order,
                                     std::string_view merge_key) {
    if (order.empty() || patch_list.empty()) return Status::Ok();
    std::vector<const Json*> items;
    for (const Json& e : patch_list) {
      if (!merge_key.empty()) {
        if (!e.is_object()) return NoMergeKey(e, merge_key);
        auto d = e.find(kDirective);
        if (d != e.end() && *d == "delete") continue;
      }
      items.push_back(&e);
    }
    std::size_t p = 0, s = 0;
    while (p < items.size() && s < order.size()) {
      const Json& item = *items[p];
      if (item.is_object() && item.contains(kDirective)) {
        ++p;
        continue;
      }
      auto a = ElementKey(item, merge_key);
      auto b = ElementKey(order[s], merge_key);
      if (!a) return NoMergeKey(item, merge_key);
      if (!b) return NoMergeKey(order[s], merge_key);
      if (*a == *b) ++p;
      ++s;
    }
    if (p < items.size()) {
      return BadRequest("the order in patch list " + Brief(patch_list, 200) +
                        " doesn't match $setElementOrder list " + Brief(order, 200));
    }
    return Status::Ok();
  }

  // mergePatchIntoOriginal: merges the list `field` of `patch` into `original` and orders the
  // result by the "$setElementOrder/<field>" list `order`.
  Status MergeWithElementOrder(Json& original, const Json& patch, const std::string& directive,
                               const Json& order, const TypeSchema* type,
                               std::unordered_set<std::string>* done) {
    if (directive.size() <= kSetElementOrder.size() || directive[kSetElementOrder.size()] != '/') {
      return BadRequest("invalid patch format of setElementOrder list: \"" + directive + "\"");
    }
    if (!order.is_array()) {
      return BadRequest("invalid patch format of setElementOrder list: \"" + directive +
                        "\" must be a list");
    }
    std::string name = directive.substr(kSetElementOrder.size() + 1);
    const FieldSchema* field = FindField(type, name);
    // Only lists merged by the server have an order to set; others are simply replaced.
    if (field == nullptr || !field->merge_list) return Status::Ok();
    std::string_view merge_key = field->merge_key;

    auto orig_it = original.find(name);
    auto patch_it = patch.find(name);
    bool has_original = orig_it != original.end();
    bool has_patch = patch_it != patch.end();
    if ((has_original && !orig_it->is_array()) || (has_patch && !patch_it->is_array())) {
      return Status::Ok();  // not two lists: the key is processed like any other
    }
    if (!has_original && !has_patch) return Status::Ok();
    if (!merge_key.empty()) {
      for (const Json& e : order) {
        if (!ElementKey(e, merge_key)) return NoMergeKey(e, merge_key);
      }
    }
    if (has_patch) RETURN_IF_ERROR(CheckOrderConsistent(*patch_it, order, merge_key));

    Json server_order = has_original ? *orig_it : Json::array();
    Json merged = server_order;
    if (has_patch) RETURN_IF_ERROR(MergeList(merged, *patch_it, *field, name));

    std::vector<Json> patch_items, server_only;
    RETURN_IF_ERROR(Partition(merged, order, merge_key, &patch_items, &server_only));
    original[name] = NormalizeOrder(std::move(patch_items), std::move(server_only), order,
                                    server_order, merge_key);
    done->insert(name);
    return Status::Ok();
  }

  static Status DeleteFromPrimitiveList(Json& original, const std::string& directive,
                                        const Json& values) {
    if (directive.size() <= kDeleteFromPrimitiveList.size() ||
        directive[kDeleteFromPrimitiveList.size()] != '/' || !values.is_array()) {
      return BadRequest("invalid patch format of primitive list: \"" + directive + "\"");
    }
    std::string name = directive.substr(kDeleteFromPrimitiveList.size() + 1);
    auto it = original.find(name);
    if (it == original.end() || !it->is_array()) return Status::Ok();
    std::unordered_set<std::string> doomed;
    for (const Json& v : values) doomed.insert(Canonical(v));
    Json kept = Json::array();
    for (Json& e : *it) {
      if (!doomed.count(Canonical(e))) kept.push_back(std::move(e));
    }
    *it = std::move(kept);
    return Status::Ok();
  }
};

// Runs `body`, turning any exception into a Status so that none crosses the API.
template <typename F>
Result<Json> NoThrow(const char* what, F&& body) {
  try {
    return body();
  } catch (const std::exception& e) {
    return base::Internal(std::string(what) + ": " + e.what());
  }
}

}  // namespace

Result<Json> ApplyJsonPatch(const Json& doc, const Json& patch) {
  return NoThrow("json patch", [&]() -> Result<Json> {
    if (!WithinDepth(doc, base::kMaxJsonDepth)) return DepthError("the document");
    if (!WithinDepth(patch, base::kMaxJsonDepth + 2)) return DepthError("the json patch");
    Json out = doc;
    JsonPatcher patcher;
    RETURN_IF_ERROR(patcher.Apply(out, patch));
    return out;
  });
}

Result<Json> ApplyMergePatch(const Json& doc, const Json& patch) {
  return NoThrow("merge patch", [&]() -> Result<Json> {
    if (!WithinDepth(doc, base::kMaxJsonDepth)) return DepthError("the document");
    if (!WithinDepth(patch, base::kMaxJsonDepth)) return DepthError("the merge patch");
    Json out = doc;
    MergePatchInto(out, patch);
    return out;
  });
}

Result<Json> ApplyStrategicMergePatch(const Json& doc, const Json& patch, std::string_view group,
                                      std::string_view kind) {
  return NoThrow("strategic merge patch", [&]() -> Result<Json> {
    if (!doc.is_object()) {
      return BadRequest("strategic merge patch: the document must be a JSON object, not " +
                        std::string(TypeName(doc)));
    }
    if (!patch.is_object()) {
      return BadRequest("a strategic merge patch must be a JSON object, not " +
                        std::string(TypeName(patch)));
    }
    if (!WithinDepth(doc, base::kMaxJsonDepth)) return DepthError("the document");
    if (!WithinDepth(patch, base::kMaxJsonDepth)) return DepthError("the strategic merge patch");
    const KindRoot* root = FindKind(group, kind);
    const TypeSchema* type = FindType(root != nullptr ? root->type : "Object");
    Json out = doc;
    StrategicMerger merger;
    RETURN_IF_ERROR(merger.MergeMap(out, patch, type));
    return out;
  });
}

bool HasStrategicMergeSchema(std::string_view group, std::string_view kind) {
  return FindKind(group, kind) != nullptr;
}

}  // namespace fulcrum::api
