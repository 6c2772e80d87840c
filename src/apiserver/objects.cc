#include "apiserver/objects.h"

#include <arpa/inet.h>

#include <set>

#include "base/log.h"
#include "base/random.h"

namespace fulcrum::apiserver {
namespace {

constexpr int kMaxWriteAttempts = 8;
constexpr auto kFreshTimeout = std::chrono::seconds(5);

std::string InvalidMessage(const api::ResourceType& type, const std::string& name,
                           const api::FieldErrors& errors) {
  std::string out = type.kind + " \"" + name + "\" is invalid: ";
  if (errors.size() > 1) out += "[";
  for (std::size_t i = 0; i < errors.size(); ++i) {
    if (i > 0) out += ", ";
    out += errors[i].field + ": " + errors[i].detail;
  }
  if (errors.size() > 1) out += "]";
  return out;
}

int64_t ParseResourceVersion(const Json& obj, bool* present, bool* valid) {
  std::string rv = base::StringAt(obj, {"metadata", "resourceVersion"});
  *present = !rv.empty();
  *valid = true;
  if (rv.empty()) return 0;
  try {
    std::size_t used = 0;
    long long v = std::stoll(rv, &used);
    if (used != rv.size() || v <= 0) *valid = false;
    return v;
  } catch (...) {
    *valid = false;
    return 0;
  }
}

// Kinds whose status a create may not set (Kubernetes' PrepareForCreate resets it).
bool ResetsStatusOnCreate(const api::ResourceType& type) {
  return type.has_status && !(type.group.empty() && type.plural == "nodes");
}

Json WithoutResourceVersion(Json obj) {
  if (auto it = obj.find("metadata"); it != obj.end() && it->is_object()) {
    it->erase("resourceVersion");
  }
  return obj;
}

}  // namespace

Objects::Objects(const api::Registry* registry, store::Store* store, WatchCache* cache,
                 base::Clock* clock)
    : registry_(registry), store_(store), cache_(cache), clock_(clock) {}

std::string Objects::Qualified(const api::ResourceType& type) {
  return type.group.empty() ? type.plural : type.plural + "." + type.group;
}

Result<ObjectPtr> Objects::GetFresh(const api::ResourceType& type, const std::string& namespace_,
                                    const std::string& name) {
  RETURN_IF_ERROR(cache_->WaitForFresh(kFreshTimeout));
  ObjectPtr obj = cache_->Get(type, namespace_, name);
  if (!obj) return base::NotFound(Qualified(type) + " \"" + name + "\" not found");
  return obj;
}

Status Objects::Validate(const api::ResourceType& type, const Json& obj, const Json* old,
                         api::FieldErrors* causes) {
  api::FieldErrors errors;
  if (type.validate) type.validate(obj, old, errors);
  if (errors.empty()) return Status::Ok();
  std::string message = InvalidMessage(type, base::StringAt(obj, {"metadata", "name"}), errors);
  if (causes != nullptr) *causes = std::move(errors);
  return base::Invalid(message);
}

Status Objects::AdmitPodPriority(Json& pod) {
  const api::ResourceType* classes = registry_->Find("scheduling.k8s.io", "v1", "priorityclasses");
  if (classes == nullptr) return Status::Ok();
  Json& spec = pod["spec"];
  if (!spec.is_object()) return Status::Ok();  // validation reports it
  std::string class_name = base::StringAt(spec, {"priorityClassName"});
  Json chosen;
  if (!class_name.empty()) {
    ObjectPtr found = cache_->Get(*classes, "", class_name);
    if (!found) {
      RETURN_IF_ERROR(cache_->WaitForFresh(kFreshTimeout));
      found = cache_->Get(*classes, "", class_name);
    }
    if (!found || !base::ParseJson(found->json, &chosen).ok()) {
      return base::Status(base::Code::kForbidden,
                          "pods \"" + base::StringAt(pod, {"metadata", "name"}) +
                              "\" is forbidden: no PriorityClass with name " + class_name +
                              " was found");
    }
  } else {
    for (const auto& item : cache_->List(*classes, "", nullptr, "", 0).items) {
      // Stored JSON is compact: only a class that says so can be the default; the rest are not
      // parsed (this runs for every pod created).
      if (item->json.find("\"globalDefault\":true") == std::string::npos) continue;
      Json c;
      if (base::ParseJson(item->json, &c).ok() && c.value("globalDefault", false)) chosen = std::move(c);
    }
    if (!chosen.is_null()) spec["priorityClassName"] = base::StringAt(chosen, {"metadata", "name"});
  }
  int64_t value = chosen.is_object() ? chosen.value("value", int64_t{0}) : 0;
  if (auto it = spec.find("priority"); it != spec.end() && it->is_number_integer() &&
                                       it->get<int64_t>() != value && chosen.is_object()) {
    return base::Status(base::Code::kForbidden,
                        "pods \"" + base::StringAt(pod, {"metadata", "name"}) +
                            "\" is forbidden: the integer value of priority (" +
                            std::to_string(it->get<int64_t>()) +
                            ") must not be provided in pod spec; priority admission controller "
                            "computed " + std::to_string(value) + " from the given PriorityClass name");
  }
  if (chosen.is_object() || !spec.contains("priority")) spec["priority"] = value;
  if (chosen.is_object() && chosen.contains("preemptionPolicy")) {
    spec["preemptionPolicy"] = chosen["preemptionPolicy"];
  }
  return Status::Ok();
}

Status Objects::EnsureSystemPriorityClasses() {
  const api::ResourceType* classes = registry_->Find("scheduling.k8s.io", "v1", "priorityclasses");
  if (classes == nullptr) return Status::Ok();
  RETURN_IF_ERROR(cache_->WaitForFresh(kFreshTimeout));
  for (const auto& c : api::SystemPriorityClasses()) {
    if (cache_->Get(*classes, "", c.name)) continue;
    Json pc = {{"apiVersion", "scheduling.k8s.io/v1"},
               {"kind", "PriorityClass"},
               {"metadata", {{"name", c.name}}},
               {"value", c.value},
               {"description", c.description}};
    auto created = Create(*classes, "", std::move(pc), {}, nullptr);
    if (!created.ok() && !created.status().IsAlreadyExists()) return created.status();
  }
  return Status::Ok();
}

Status Objects::AllocateServiceIp(Json& obj) {
  // Services get a cluster IP from 10.96.0.0/12 unless they ask for one or for none.
  Json& spec = obj["spec"];
  if (!spec.is_object()) return Status::Ok();
  std::string requested = base::StringAt(spec, {"clusterIP"});
  if (base::StringAt(spec, {"type"}) == "ExternalName" || requested == "None") return Status::Ok();
  std::lock_guard lock(ip_mu_);
  std::set<std::string> used;
  const api::ResourceType* services = registry_->Find("", "v1", "services");
  for (const auto& svc : cache_->List(*services, "", nullptr, "", 0).items) {
    Json existing;
    if (base::ParseJson(svc->json, &existing).ok()) {
      used.insert(base::StringAt(existing, {"spec", "clusterIP"}));
    }
  }
  if (!requested.empty()) {
    if (used.count(requested)) {
      return base::Invalid("spec.clusterIP: Invalid value: \"" + requested +
                           "\": provided IP is already allocated");
    }
    spec["clusterIPs"] = Json::array({requested});
    return Status::Ok();
  }
  // 10.96.0.1 is the kubernetes service's; pick randomly and probe, as the Kubernetes allocator.
  uint32_t base_ip = (10u << 24) | (96u << 16);
  for (int attempt = 0; attempt < 4096; ++attempt) {
    uint32_t offset = 2 + static_cast<uint32_t>(std::stoul(base::RandomHex(3), nullptr, 16) %
                                                ((1u << 20) - 3));
    uint32_t ip = htonl(base_ip + offset);
    char buf[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &ip, buf, sizeof buf);
    if (!used.count(buf)) {
      spec["clusterIP"] = buf;
      spec["clusterIPs"] = Json::array({buf});
      return Status::Ok();
    }
  }
  return base::Internal("the service IP range is full");
}

Result<ObjectPtr> Objects::Create(const api::ResourceType& type, const std::string& namespace_,
                                  Json obj, const WriteOptions& options,
                                  api::FieldErrors* causes) {
  if (!obj.is_object()) return base::BadRequest("the object is not a JSON object");
  Json& meta = obj["metadata"];
  if (meta.is_null()) meta = Json::object();
  if (!meta.is_object()) return base::BadRequest("metadata: must be an object");
  if (type.namespaced) {
    std::string ns = base::StringAt(meta, {"namespace"});
    if (!ns.empty() && ns != namespace_) {
      return base::BadRequest(
          "the namespace of the provided object does not match the namespace sent on the "
          "request");
    }
    meta["namespace"] = namespace_;
    // The cached namespace is enough when it is there (namespaces come and go rarely); only a
    // miss, perhaps a namespace created a moment ago, waits for the cache to catch up.
    const api::ResourceType* namespaces = registry_->Find("", "v1", "namespaces");
    ObjectPtr ns_obj = cache_->Get(*namespaces, "", namespace_);
    if (!ns_obj) {
      RETURN_IF_ERROR(cache_->WaitForFresh(kFreshTimeout));
      ns_obj = cache_->Get(*namespaces, "", namespace_);
    }
    if (!ns_obj) return base::NotFound("namespaces \"" + namespace_ + "\" not found");
    Json ns_json;
    if (base::ParseJson(ns_obj->json, &ns_json).ok() &&
        base::FindPath(ns_json, {"metadata", "deletionTimestamp"}) != nullptr) {
      return base::Status(base::Code::kForbidden,
                          Qualified(type) + " \"" + base::StringAt(meta, {"name"}) +
                              "\" is forbidden: unable to create new content in namespace " +
                              namespace_ + " because it is being terminated");
    }
  } else {
    meta.erase("namespace");
  }
  std::string name = base::StringAt(meta, {"name"});
  std::string generate = base::StringAt(meta, {"generateName"});
  if (name.empty() && !generate.empty()) {
    name = generate + base::RandomSuffix(5);
    meta["name"] = name;
  }
  obj["apiVersion"] = type.GroupVersion();
  obj["kind"] = type.kind;
  meta["uid"] = base::NewUuid();
  meta["creationTimestamp"] = base::FormatRfc3339(clock_->Now());
  meta["generation"] = 1;
  meta.erase("resourceVersion");
  meta.erase("deletionTimestamp");
  meta.erase("deletionGracePeriodSeconds");
  meta.erase("managedFields");
  if (ResetsStatusOnCreate(type)) obj.erase("status");
  // Priority admission reads what the user wrote, before the defaults fill in priority 0.
  if (type.group.empty() && type.plural == "pods") RETURN_IF_ERROR(AdmitPodPriority(obj));
  if (type.set_defaults) type.set_defaults(obj);
  RETURN_IF_ERROR(Validate(type, obj, nullptr, causes));
  if (type.group.empty() && type.plural == "services") RETURN_IF_ERROR(AllocateServiceIp(obj));
  if (options.dry_run) return WatchCache::MakeObject(type, std::move(obj), 0);
  std::string key = StoreKey(type, namespace_, name);
  ASSIGN_OR_RETURN(auto prepared, WatchCache::Prepare(type, obj, base::DumpJson(obj)));
  cache_->Expect(key, prepared);
  auto kv = store_->Create(key, prepared->json);
  if (!kv.ok()) {
    cache_->Unexpect(key, prepared.get());
    if (kv.status().IsAlreadyExists()) {
      return base::AlreadyExists(Qualified(type) + " \"" + name + "\" already exists");
    }
    return kv.status();
  }
  return WatchCache::WithRevision(*prepared, kv->mod_revision);
}

Result<ObjectPtr> Objects::Write(const api::ResourceType& type, const std::string& namespace_,
                                 const std::string& name, Json obj, const Json* old,
                                 int64_t expected_rv, const WriteOptions& options,
                                 api::FieldErrors* causes) {
  Json& meta = obj["metadata"];
  const Json& old_meta = (*old)["metadata"];
  // Fields the server owns are carried over from the stored object.
  for (const char* field : {"uid", "creationTimestamp", "deletionTimestamp",
                            "deletionGracePeriodSeconds", "generation"}) {
    if (auto it = old_meta.find(field); it != old_meta.end()) {
      meta[field] = *it;
    } else {
      meta.erase(field);
    }
  }
  meta["name"] = name;
  if (type.namespaced) meta["namespace"] = namespace_;
  meta.erase("resourceVersion");
  meta.erase("managedFields");
  obj["apiVersion"] = type.GroupVersion();
  obj["kind"] = type.kind;
  if (type.set_defaults) type.set_defaults(obj);
  // Generation counts changes to everything but metadata and status.
  bool spec_changed = false;
  for (const auto& [k, v] : obj.items()) {
    if (k == "metadata" || k == "status" || k == "apiVersion" || k == "kind") continue;
    if (!old->contains(k) || (*old)[k] != v) spec_changed = true;
  }
  for (const auto& [k, v] : old->items()) {
    if (k == "metadata" || k == "status" || k == "apiVersion" || k == "kind") continue;
    if (!obj.contains(k)) spec_changed = true;
  }
  if (spec_changed) meta["generation"] = old_meta.value("generation", 1) + 1;
  RETURN_IF_ERROR(Validate(type, obj, options.system_write ? nullptr : old, causes));

  Json old_plain = WithoutResourceVersion(*old);
  if (obj == old_plain) return WatchCache::MakeObject(type, std::move(obj), expected_rv);
  if (options.dry_run) return WatchCache::MakeObject(type, std::move(obj), expected_rv);

  std::string key = StoreKey(type, namespace_, name);
  // An object marked for deletion whose last finalizer is gone is deleted now.
  bool finalizers_left = false;
  if (auto it = meta.find("finalizers"); it != meta.end() && it->is_array() && !it->empty()) {
    finalizers_left = true;
  }
  // A namespace is held by spec.finalizers until the namespace controller has emptied it.
  if (const Json* f = base::FindPath(obj, {"spec", "finalizers"}); f && f->is_array() && !f->empty()) {
    finalizers_left = true;
  }
  bool marked = meta.contains("deletionTimestamp");
  bool grace_left = meta.value("deletionGracePeriodSeconds", 0) > 0;
  if (marked && !finalizers_left && !grace_left) {
    auto kv = store_->Delete(key, expected_rv);
    if (!kv.ok()) return kv.status();
    return WatchCache::MakeObject(type, std::move(obj), kv->mod_revision);
  }
  ASSIGN_OR_RETURN(auto prepared, WatchCache::Prepare(type, obj, base::DumpJson(obj)));
  cache_->Expect(key, prepared);
  auto kv = store_->Update(key, prepared->json, expected_rv);
  if (!kv.ok()) {
    cache_->Unexpect(key, prepared.get());
    if (kv.status().IsConflict()) {
      return base::Conflict("Operation cannot be fulfilled on " + Qualified(type) + " \"" + name +
                            "\": the object has been modified; please apply your changes to the "
                            "latest version and try again");
    }
    if (kv.status().IsNotFound()) {
      return base::NotFound(Qualified(type) + " \"" + name + "\" not found");
    }
    return kv.status();
  }
  return WatchCache::WithRevision(*prepared, kv->mod_revision);
}

Result<ObjectPtr> Objects::Update(const api::ResourceType& type, const std::string& namespace_,
                                  const std::string& name, Json obj, Subresource sub,
                                  const WriteOptions& options, api::FieldErrors* causes) {
  if (!obj.is_object() || !obj["metadata"].is_object()) {
    return base::BadRequest("the object has no metadata");
  }
  std::string body_name = base::StringAt(obj, {"metadata", "name"});
  if (body_name != name) {
    return base::BadRequest("the name of the object (" + body_name +
                            ") does not match the name on the URL (" + name + ")");
  }
  bool has_rv, valid_rv;
  ParseResourceVersion(obj, &has_rv, &valid_rv);
  if (!valid_rv) {
    return base::BadRequest("metadata.resourceVersion: Invalid value: \"" +
                            base::StringAt(obj, {"metadata", "resourceVersion"}) +
                            "\": must be a positive integer");
  }
  bool user_rv = has_rv;
  return Mutate(
      type, namespace_, name,
      [&](const Json& current) -> Result<Json> {
        Json next = obj;
        if (!user_rv) {
          next["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"];
        }
        return next;
      },
      sub, options, causes);
}

Result<ObjectPtr> Objects::Mutate(const api::ResourceType& type, const std::string& namespace_,
                                  const std::string& name, const Mutation& mutate,
                                  Subresource sub, const WriteOptions& options,
                                  api::FieldErrors* causes) {
  for (int attempt = 0;; ++attempt) {
    ASSIGN_OR_RETURN(ObjectPtr current, GetFresh(type, namespace_, name));
    Json old;
    RETURN_IF_ERROR(base::ParseJson(current->json, &old));
    ASSIGN_OR_RETURN(Json next, mutate(old));
    if (!next.is_object()) return base::BadRequest("the result is not a JSON object");
    if (!next["metadata"].is_object()) next["metadata"] = Json::object();
    std::string next_name = base::StringAt(next, {"metadata", "name"});
    if (next_name != name) {
      return base::BadRequest("the name of the object (" + next_name +
                              ") does not match the name on the URL (" + name + ")");
    }
    std::string next_namespace = base::StringAt(next, {"metadata", "namespace"});
    if (type.namespaced && !next_namespace.empty() && next_namespace != namespace_) {
      return base::BadRequest(
          "the namespace of the provided object does not match the namespace sent on the "
          "request");
    }
    bool has_rv, valid_rv;
    int64_t rv = ParseResourceVersion(next, &has_rv, &valid_rv);
    bool user_precondition =
        has_rv && base::StringAt(next, {"metadata", "resourceVersion"}) !=
                      base::StringAt(old, {"metadata", "resourceVersion"});
    if (!valid_rv) return base::BadRequest("metadata.resourceVersion: must be a positive integer");
    int64_t expected = has_rv ? rv : current->resource_version;
    if (type.has_status && sub != Subresource::kAll) {
      if (sub == Subresource::kMain) {
        if (old.contains("status")) {
          next["status"] = old["status"];
        } else {
          next.erase("status");
        }
      } else {
        Json status = next.value("status", Json());
        Json keep = old;
        keep["metadata"] = next["metadata"];
        if (status.is_null()) {
          keep.erase("status");
        } else {
          keep["status"] = std::move(status);
        }
        next = std::move(keep);
      }
    }
    WriteOptions write_options = options;
    // Server-internal writes set fields users may not change (a binding's spec.nodeName).
    if (sub == Subresource::kAll) write_options.system_write = true;
    auto written =
        Write(type, namespace_, name, std::move(next), &old, expected, write_options, causes);
    if (written.ok() || !written.status().IsConflict() || user_precondition ||
        attempt + 1 >= kMaxWriteAttempts) {
      return written;
    }
  }
}

Result<ObjectPtr> Objects::Delete(const api::ResourceType& type, const std::string& namespace_,
                                  const std::string& name, const DeleteOptions& options) {
  for (int attempt = 0;; ++attempt) {
    ASSIGN_OR_RETURN(ObjectPtr current, GetFresh(type, namespace_, name));
    if (!options.precondition_uid.empty() && options.precondition_uid != current->uid) {
      return base::Conflict("Precondition failed: UID in precondition: " +
                            options.precondition_uid + ", UID in object meta: " + current->uid);
    }
    if (!options.precondition_resource_version.empty() &&
        options.precondition_resource_version != std::to_string(current->resource_version)) {
      return base::Conflict("Precondition failed: ResourceVersion in precondition: " +
                            options.precondition_resource_version +
                            ", ResourceVersion in object meta: " +
                            std::to_string(current->resource_version));
    }
    Json obj;
    RETURN_IF_ERROR(base::ParseJson(current->json, &obj));
    Json& meta = obj["metadata"];
    bool has_finalizers = meta.contains("finalizers") && meta["finalizers"].is_array() &&
                          !meta["finalizers"].empty();
    bool is_namespace = type.group.empty() && type.plural == "namespaces";
    // Pods on a node stop gracefully: the node agent finishes the deletion.
    int64_t grace = 0;
    if (type.group.empty() && type.plural == "pods" &&
        !base::StringAt(obj, {"spec", "nodeName"}).empty()) {
      grace = options.grace_period_seconds.value_or(
          obj["spec"].value("terminationGracePeriodSeconds", int64_t{30}));
      if (grace < 0) grace = 0;
    }
    if (has_finalizers || is_namespace || grace > 0) {
      if (meta.contains("deletionTimestamp") &&
          meta.value("deletionGracePeriodSeconds", int64_t{0}) <= grace) {
        return current;  // already being deleted, no sooner than asked
      }
      Json old = obj;
      meta["deletionTimestamp"] =
          base::FormatRfc3339(clock_->Now() + std::chrono::seconds(grace));
      meta["deletionGracePeriodSeconds"] = grace;
      if (is_namespace) obj["status"]["phase"] = "Terminating";
      if (options.dry_run) return WatchCache::MakeObject(type, std::move(obj), current->resource_version);
      // Written directly: deletion marks are server-owned and must not be carried over.
      auto kv = store_->Update(StoreKey(type, namespace_, name),
                               base::DumpJson(WithoutResourceVersion(obj)),
                               current->resource_version);
      if (!kv.ok()) {
        if (kv.status().IsConflict() && attempt + 1 < kMaxWriteAttempts) continue;
        return kv.status();
      }
      return WatchCache::MakeObject(type, std::move(obj), kv->mod_revision);
    }
    if (options.dry_run) return current;
    auto kv = store_->Delete(StoreKey(type, namespace_, name), current->resource_version);
    if (!kv.ok()) {
      if ((kv.status().IsConflict() || kv.status().IsNotFound()) &&
          attempt + 1 < kMaxWriteAttempts) {
        continue;
      }
      if (kv.status().IsNotFound()) {
        return base::NotFound(Qualified(type) + " \"" + name + "\" not found");
      }
      return kv.status();
    }
    return WatchCache::MakeObject(type, std::move(obj), kv->mod_revision);
  }
}

Result<ObjectPtr> Objects::Purge(const api::ResourceType& type, const std::string& namespace_,
                                 const std::string& name) {
  ASSIGN_OR_RETURN(ObjectPtr current, GetFresh(type, namespace_, name));
  auto kv = store_->Delete(StoreKey(type, namespace_, name), current->resource_version);
  if (!kv.ok()) return kv.status();
  Json obj;
  RETURN_IF_ERROR(base::ParseJson(current->json, &obj));
  return WatchCache::MakeObject(type, std::move(obj), kv->mod_revision);
}

Status Objects::EnsureSystemNamespaces() {
  const api::ResourceType* namespaces = registry_->Find("", "v1", "namespaces");
  RETURN_IF_ERROR(cache_->WaitForFresh(kFreshTimeout));
  for (const char* name : {"default", "kube-system", "kube-public", "kube-node-lease"}) {
    if (cache_->Get(*namespaces, "", name)) continue;
    Json ns = {{"apiVersion", "v1"}, {"kind", "Namespace"}, {"metadata", {{"name", name}}}};
    auto created = Create(*namespaces, "", std::move(ns), {}, nullptr);
    if (!created.ok() && !created.status().IsAlreadyExists()) return created.status();
  }
  return Status::Ok();
}

}  // namespace fulcrum::apiserver
