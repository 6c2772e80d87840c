// core/v1 kinds: defaults (k8s.io/kubernetes/pkg/apis/core/v1/defaults.go), validation
// (pkg/apis/core/validation), table printing (pkg/printers/internalversion) and field selectors.

#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "api/registry.h"
#include "api/types_common.h"
#include "base/base64.h"
#include "api/validation.h"

namespace fulcrum::api {
namespace {

using namespace types;  // NOLINT: the helpers every kind file shares
using base::Base64Decode;
using base::Base64Encode;

using base::FindPath;
using base::StringAt;

// ---------------------------------------------------------------------------------------------
// Helpers.











void ValidateStringEnum(const Json* value, const std::string& path,
                        const std::vector<std::string>& valid, bool required, FieldErrors& errors) {
  if (IsUnset(value)) {
    if (required) errors.push_back(Required(path));
    return;
  }
  if (value->is_string() &&
      std::find(valid.begin(), valid.end(), value->get_ref<const std::string&>()) != valid.end()) {
    return;
  }
  errors.push_back(NotSupported(path, *value, valid));
}

void ValidateNameWith(const Json* value, const std::string& path,
                      std::vector<std::string> (*check)(std::string_view), FieldErrors& errors) {
  if (value == nullptr || value->is_null()) return;
  if (!value->is_string()) {
    errors.push_back(InvalidValue(path, *value, "must be a string"));
    return;
  }
  const std::string& s = value->get_ref<const std::string&>();
  if (s.empty()) return;
  for (auto& msg : check(s)) errors.push_back(InvalidValue(path, *value, msg));
}

// ---------------------------------------------------------------------------------------------
// Pod spec defaults.

// "nginx" and "nginx:latest" are pulled Always, anything else tagged or by digest IfNotPresent
// (SetDefaults_Container with parsers.ParseImageName).
std::string DefaultPullPolicy(const std::string& image) {
  if (image.empty()) return "IfNotPresent";
  std::string name = image;
  bool has_digest = false;
  if (size_t at = name.find('@'); at != std::string::npos) {
    name = name.substr(0, at);
    has_digest = true;
  }
  size_t slash = name.rfind('/');
  size_t colon = name.rfind(':');
  std::string tag;
  if (colon != std::string::npos && (slash == std::string::npos || colon > slash)) {
    tag = name.substr(colon + 1);
  } else if (!has_digest) {
    tag = "latest";
  }
  return tag == "latest" ? "Always" : "IfNotPresent";
}

void SetProbeDefaults(Json& probe) {
  if (!probe.is_object()) return;
  SetDefault(probe, "timeoutSeconds", 1);
  SetDefault(probe, "periodSeconds", 10);
  SetDefault(probe, "successThreshold", 1);
  SetDefault(probe, "failureThreshold", 3);
  auto http = probe.find("httpGet");
  if (http != probe.end() && http->is_object()) {
    SetDefaultString(*http, "path", "/");
    SetDefaultString(*http, "scheme", "HTTP");
  }
}

void SetContainerDefaults(Json& c) {
  if (!c.is_object()) return;
  SetDefaultString(c, "terminationMessagePath", "/dev/termination-log");
  SetDefaultString(c, "terminationMessagePolicy", "File");
  SetDefaultString(c, "imagePullPolicy", DefaultPullPolicy(StringField(c, "image")).c_str());
  SetDefault(c, "resources", Json::object());
  if (Json* ports = MutableArray(c, "ports")) {
    for (auto& p : *ports) SetDefaultString(p, "protocol", "TCP");
  }
  if (Json* env = MutableArray(c, "env")) {
    for (auto& e : *env) {
      if (!e.is_object()) continue;
      auto vf = e.find("valueFrom");
      if (vf == e.end() || !vf->is_object()) continue;
      auto fr = vf->find("fieldRef");
      if (fr != vf->end() && fr->is_object()) SetDefaultString(*fr, "apiVersion", "v1");
    }
  }
  for (const char* probe : {"livenessProbe", "readinessProbe", "startupProbe"}) {
    auto it = c.find(probe);
    if (it != c.end()) SetProbeDefaults(*it);
  }
}

// Volume sources in the order Kubernetes checks them.
const std::vector<std::string>& VolumeSourceNames() {
  static const std::vector<std::string> kNames = {"hostPath",
                                                  "emptyDir",
                                                  "gitRepo",
                                                  "gcePersistentDisk",
                                                  "awsElasticBlockStore",
                                                  "secret",
                                                  "nfs",
                                                  "iscsi",
                                                  "glusterfs",
                                                  "flocker",
                                                  "persistentVolumeClaim",
                                                  "rbd",
                                                  "cinder",
                                                  "cephfs",
                                                  "quobyte",
                                                  "downwardAPI",
                                                  "fc",
                                                  "flexVolume",
                                                  "configMap",
                                                  "azureFile",
                                                  "vsphereVolume",
                                                  "photonPersistentDisk",
                                                  "portworxVolume",
                                                  "azureDisk",
                                                  "storageos",
                                                  "projected",
                                                  "scaleIO",
                                                  "csi",
                                                  "ephemeral",
                                                  "image"};
  return kNames;
}

void SetVolumeDefaults(Json& v) {
  if (!v.is_object()) return;
  bool any = false;
  for (const auto& s : VolumeSourceNames()) {
    auto it = v.find(s);
    if (it != v.end() && !it->is_null()) any = true;
  }
  if (!any) v["emptyDir"] = Json::object();
  for (const char* with_mode : {"secret", "configMap", "downwardAPI", "projected"}) {
    auto it = v.find(with_mode);
    if (it != v.end() && it->is_object()) SetDefault(*it, "defaultMode", 420);
  }
  auto hp = v.find("hostPath");
  if (hp != v.end() && hp->is_object()) SetDefault(*hp, "type", "");
}

}  // namespace

void SetPodSpecDefaults(Json& spec) {
  if (!spec.is_object()) return;
  SetDefaultString(spec, "dnsPolicy", "ClusterFirst");
  SetDefaultString(spec, "restartPolicy", "Always");
  SetDefault(spec, "terminationGracePeriodSeconds", 30);
  SetDefaultString(spec, "schedulerName", "default-scheduler");
  SetDefault(spec, "securityContext", Json::object());
  for (const char* list : {"containers", "initContainers"}) {
    if (Json* cs = MutableArray(spec, list)) {
      for (auto& c : *cs) SetContainerDefaults(c);
    }
  }
  if (Json* vols = MutableArray(spec, "volumes")) {
    for (auto& v : *vols) SetVolumeDefaults(v);
  }
}

namespace {

// ---------------------------------------------------------------------------------------------
// Pod spec validation.

void ValidateContainerPorts(const Json& ports, const std::string& path, FieldErrors& errors) {
  std::set<std::string> names;
  for (size_t i = 0; i < ports.size(); ++i) {
    const Json& p = ports[i];
    std::string ip = Idx(path, i);
    if (!p.is_object()) {
      errors.push_back(InvalidValue(ip, p, "must be an object"));
      continue;
    }
    std::string name = StringField(p, "name");
    if (!name.empty()) {
      auto msgs = IsValidPortName(name);
      if (!msgs.empty()) {
        for (auto& m : msgs) errors.push_back(InvalidValue(ip + ".name", Json(name), m));
      } else if (!names.insert(name).second) {
        errors.push_back(Duplicate(ip + ".name", Json(name)));
      }
    }
    ValidatePortNumber(Child(p, "containerPort"), ip + ".containerPort", true, errors);
    const Json* host_port = Child(p, "hostPort");
    if (auto hp = IntValue(host_port); hp && *hp != 0) {
      ValidatePortNumber(host_port, ip + ".hostPort", false, errors);
    }
    ValidateProtocol(Child(p, "protocol"), ip + ".protocol", errors);
  }
}

const std::vector<std::string>& DownwardApiFieldPaths() {
  static const std::vector<std::string> kPaths = {"metadata.name",
                                                  "metadata.namespace",
                                                  "metadata.uid",
                                                  "spec.nodeName",
                                                  "spec.serviceAccountName",
                                                  "status.hostIP",
                                                  "status.hostIPs",
                                                  "status.podIP",
                                                  "status.podIPs"};
  return kPaths;
}

void ValidateKeyRef(const Json& ref, const std::string& path, FieldErrors& errors) {
  std::string key = StringField(ref, "key");
  if (key.empty()) {
    errors.push_back(Required(path + ".key"));
  } else {
    for (auto& m : IsConfigMapKey(key)) errors.push_back(InvalidValue(path + ".key", Json(key), m));
  }
  if (StringField(ref, "name").empty()) errors.push_back(Required(path + ".name"));
}

void ValidateEnv(const Json& env, const std::string& path, FieldErrors& errors) {
  for (size_t i = 0; i < env.size(); ++i) {
    const Json& e = env[i];
    std::string ip = Idx(path, i);
    const Json* name = Child(e, "name");
    if (IsUnset(name)) {
      errors.push_back(Required(ip + ".name"));
    } else if (!name->is_string()) {
      errors.push_back(InvalidValue(ip + ".name", *name, "must be a string"));
    } else {
      for (auto& m : IsEnvVarName(name->get_ref<const std::string&>())) {
        errors.push_back(InvalidValue(ip + ".name", *name, m));
      }
    }
    const Json* vf = Child(e, "valueFrom");
    if (vf == nullptr || vf->is_null()) continue;
    std::string vp = ip + ".valueFrom";
    int sources = 0;
    if (const Json* fr = Child(*vf, "fieldRef"); fr != nullptr && !fr->is_null()) {
      ++sources;
      std::string fp = StringField(*fr, "fieldPath");
      if (StringField(*fr, "apiVersion").empty()) {
        errors.push_back(Required(vp + ".fieldRef.apiVersion"));
      }
      if (fp.empty()) {
        errors.push_back(Required(vp + ".fieldRef.fieldPath"));
      } else {
        const auto& valid = DownwardApiFieldPaths();
        bool subscript =
            (fp.rfind("metadata.labels['", 0) == 0 || fp.rfind("metadata.annotations['", 0) == 0) &&
            fp.size() > 2 && fp.compare(fp.size() - 2, 2, "']") == 0;
        if (!subscript && std::find(valid.begin(), valid.end(), fp) == valid.end()) {
          errors.push_back(NotSupported(vp + ".fieldRef.fieldPath", Json(fp), valid));
        }
      }
    }
    if (const Json* rr = Child(*vf, "resourceFieldRef"); rr != nullptr && !rr->is_null()) {
      ++sources;
      if (StringField(*rr, "resource").empty()) {
        errors.push_back(Required(vp + ".resourceFieldRef.resource"));
      }
    }
    if (const Json* cm = Child(*vf, "configMapKeyRef"); cm != nullptr && !cm->is_null()) {
      ++sources;
      ValidateKeyRef(*cm, vp + ".configMapKeyRef", errors);
    }
    if (const Json* sk = Child(*vf, "secretKeyRef"); sk != nullptr && !sk->is_null()) {
      ++sources;
      ValidateKeyRef(*sk, vp + ".secretKeyRef", errors);
    }
    if (const Json* fk = Child(*vf, "fileKeyRef"); fk != nullptr && !fk->is_null()) ++sources;
    if (sources == 0) {
      errors.push_back(
          InvalidValue(vp, Json(""),
                       "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or "
                       "`secretKeyRef`"));
    } else if (!StringField(e, "value").empty()) {
      errors.push_back(
          InvalidValue(vp, Json(""), "may not be specified when `value` is not empty"));
    } else if (sources > 1) {
      errors.push_back(
          InvalidValue(vp, Json(""), "may not have more than one field specified at a time"));
    }
  }
}

void ValidateLocalDescendingPath(const std::string& p, const std::string& path,
                                 FieldErrors& errors) {
  if (!p.empty() && p.front() == '/') {
    errors.push_back(InvalidValue(path, Json(p), "must be a relative path"));
  }
  // Any ".." path segment.
  size_t start = 0;
  while (start <= p.size()) {
    size_t slash = p.find('/', start);
    std::string seg =
        p.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
    if (seg == "..") {
      errors.push_back(InvalidValue(path, Json(p), "must not contain '..'"));
      break;
    }
    if (slash == std::string::npos) break;
    start = slash + 1;
  }
}

void ValidateVolumeMounts(const Json& mounts, const std::set<std::string>& volumes,
                          const std::string& path, FieldErrors& errors) {
  std::set<std::string> mount_points;
  for (size_t i = 0; i < mounts.size(); ++i) {
    const Json& m = mounts[i];
    std::string ip = Idx(path, i);
    std::string name = StringField(m, "name");
    if (name.empty()) errors.push_back(Required(ip + ".name"));
    if (!volumes.count(name)) errors.push_back(NotFound(ip + ".name", Json(name)));
    std::string mount_path = StringField(m, "mountPath");
    if (mount_path.empty()) errors.push_back(Required(ip + ".mountPath"));
    if (mount_points.count(mount_path)) {
      errors.push_back(InvalidValue(ip + ".mountPath", Json(mount_path), "must be unique"));
    }
    mount_points.insert(mount_path);
    std::string sub_path = StringField(m, "subPath");
    if (!sub_path.empty()) ValidateLocalDescendingPath(sub_path, ip + ".subPath", errors);
  }
}

bool IsStandardContainerResource(const std::string& name) {
  return name == "cpu" || name == "memory" || name == "ephemeral-storage" ||
         name.rfind("hugepages-", 0) == 0;
}

void ValidateResourceList(const Json& list, const std::string& path, FieldErrors& errors) {
  if (list.is_null()) return;
  if (!list.is_object()) {
    errors.push_back(InvalidValue(path, list, "must be a map of resource names to quantities"));
    return;
  }
  for (auto it = list.begin(); it != list.end(); ++it) {
    std::string kp = Key(path, it.key());
    const std::string& name = it.key();
    if (name.find('/') == std::string::npos) {
      if (!IsStandardContainerResource(name)) {
        errors.push_back(
            InvalidValue(kp, Json(name), "must be a standard resource for containers"));
        continue;
      }
    } else {
      for (auto& m : IsQualifiedName(name)) errors.push_back(InvalidValue(kp, Json(name), m));
    }
    ValidateNonnegativeQuantity(it.value(), kp, errors);
  }
}

std::string QuantityText(const Json& v) {
  return v.is_string() ? v.get<std::string>() : base::DumpJson(v);
}

void ValidateResources(const Json& resources, const std::string& path, FieldErrors& errors) {
  if (resources.is_null()) return;
  const Json& limits = ObjectAt(resources, "limits");
  const Json& requests = ObjectAt(resources, "requests");
  if (const Json* l = Child(resources, "limits"))
    ValidateResourceList(*l, path + ".limits", errors);
  if (const Json* r = Child(resources, "requests")) {
    ValidateResourceList(*r, path + ".requests", errors);
  }
  for (auto it = requests.begin(); it != requests.end(); ++it) {
    auto lim = limits.find(it.key());
    if (lim == limits.end()) continue;
    Quantity rq, lq;
    if (!ParseQuantity(it.value(), &rq) || !ParseQuantity(*lim, &lq)) continue;
    if (rq > lq) {
      errors.push_back(InvalidValue(
          path + ".requests", Json(QuantityText(it.value())),
          "must be less than or equal to " + it.key() + " limit of " + QuantityText(*lim)));
    }
  }
}

void ValidateProbe(const Json& probe, const std::string& path, bool liveness_or_startup,
                   FieldErrors& errors) {
  if (probe.is_null()) return;
  if (!probe.is_object()) {
    errors.push_back(InvalidValue(path, probe, "must be an object"));
    return;
  }
  int handlers = 0;
  for (const char* h : {"exec", "httpGet", "tcpSocket", "grpc"}) {
    const Json* v = Child(probe, h);
    if (v == nullptr || v->is_null()) continue;
    if (++handlers > 1) {
      errors.push_back(Forbidden(path + "." + h, "may not specify more than 1 handler type"));
    }
  }
  if (handlers == 0) errors.push_back(Required(path, "must specify a handler type"));
  for (const char* f : {"initialDelaySeconds", "timeoutSeconds", "periodSeconds",
                        "successThreshold", "failureThreshold"}) {
    ValidateNonnegativeInt(Child(probe, f), path + "." + f, errors);
  }
  if (liveness_or_startup) {
    if (auto st = IntField(probe, "successThreshold"); st && *st != 1) {
      errors.push_back(InvalidValue(path + ".successThreshold", Json(*st), "must be 1"));
    }
  }
  if (const Json* http = Child(probe, "httpGet"); http != nullptr && http->is_object()) {
    const Json* port = Child(*http, "port");
    if (port == nullptr || port->is_null()) {
      errors.push_back(Required(path + ".httpGet.port"));
    } else if (port->is_string()) {
      for (auto& m : IsValidPortName(port->get<std::string>())) {
        errors.push_back(InvalidValue(path + ".httpGet.port", *port, m));
      }
    } else {
      ValidatePortNumber(port, path + ".httpGet.port", false, errors);
    }
  }
}

// Validates one container; `names` collects names across containers and init containers.
void ValidateContainer(const Json& c, const std::string& path, const std::set<std::string>& volumes,
                       std::set<std::string>& names, bool init, FieldErrors& errors) {
  if (!c.is_object()) {
    errors.push_back(InvalidValue(path, c, "must be an object"));
    return;
  }
  const Json* name = Child(c, "name");
  if (IsUnset(name)) {
    errors.push_back(Required(path + ".name"));
  } else if (!name->is_string()) {
    errors.push_back(InvalidValue(path + ".name", *name, "must be a string"));
  } else {
    const std::string& n = name->get_ref<const std::string&>();
    for (auto& m : IsDns1123Label(n)) errors.push_back(InvalidValue(path + ".name", *name, m));
    if (!names.insert(n).second) errors.push_back(Duplicate(path + ".name", *name));
  }
  const Json* image = Child(c, "image");
  if (IsUnset(image)) {
    errors.push_back(Required(path + ".image"));
  } else if (!image->is_string()) {
    errors.push_back(InvalidValue(path + ".image", *image, "must be a string"));
  } else {
    const std::string& img = image->get_ref<const std::string&>();
    size_t b = img.find_first_not_of(" \t\r\n");
    size_t e = img.find_last_not_of(" \t\r\n");
    if (b != 0 || e != img.size() - 1) {
      errors.push_back(
          InvalidValue(path + ".image", *image, "must not have leading or trailing whitespace"));
    }
  }
  ValidateContainerPorts(ArrayAt(c, "ports"), path + ".ports", errors);
  ValidateEnv(ArrayAt(c, "env"), path + ".env", errors);
  ValidateVolumeMounts(ArrayAt(c, "volumeMounts"), volumes, path + ".volumeMounts", errors);
  if (const Json* r = Child(c, "resources")) ValidateResources(*r, path + ".resources", errors);
  ValidateStringEnum(Child(c, "imagePullPolicy"), path + ".imagePullPolicy",
                     {"Always", "IfNotPresent", "Never"}, true, errors);
  ValidateStringEnum(Child(c, "terminationMessagePolicy"), path + ".terminationMessagePolicy",
                     {"File", "FallbackToLogsOnError"}, true, errors);
  if (const Json* p = Child(c, "livenessProbe"))
    ValidateProbe(*p, path + ".livenessProbe", true, errors);
  if (const Json* p = Child(c, "startupProbe"))
    ValidateProbe(*p, path + ".startupProbe", true, errors);
  if (const Json* p = Child(c, "readinessProbe")) {
    ValidateProbe(*p, path + ".readinessProbe", false, errors);
  }
  const Json* rp = Child(c, "restartPolicy");
  if (!IsUnset(rp)) {
    if (init) {
      ValidateStringEnum(rp, path + ".restartPolicy", {"Always"}, false, errors);
    } else {
      errors.push_back(
          Forbidden(path + ".restartPolicy", "may not be set for non-init containers"));
    }
  }
}

void ValidateVolumeSourceFields(const std::string& source, const Json& v, const std::string& path,
                                FieldErrors& errors) {
  if (source == "hostPath") {
    if (StringField(v, "path").empty()) errors.push_back(Required(path + ".path"));
    const Json* type = Child(v, "type");
    if (type != nullptr && !type->is_null()) {
      static const std::vector<std::string> kTypes = {
          "",     "BlockDevice",  "CharDevice", "Directory", "DirectoryOrCreate",
          "File", "FileOrCreate", "Socket"};
      if (!type->is_string() ||
          std::find(kTypes.begin(), kTypes.end(), type->get<std::string>()) == kTypes.end()) {
        errors.push_back(NotSupported(path + ".type", *type, kTypes));
      }
    }
  } else if (source == "emptyDir") {
    if (const Json* size = Child(v, "sizeLimit"); size != nullptr && !size->is_null()) {
      ValidateNonnegativeQuantity(*size, path + ".sizeLimit", errors);
    }
  } else if (source == "secret" || source == "configMap") {
    const char* name_key = source == "secret" ? "secretName" : "name";
    if (StringField(v, name_key).empty()) errors.push_back(Required(path + "." + name_key));
    if (auto mode = IntField(v, "defaultMode"); mode && (*mode < 0 || *mode > 0777)) {
      errors.push_back(InvalidValue(path + ".defaultMode", Json(*mode),
                                    "must be a number between 0 and 0777 (octal), both inclusive"));
    }
    const Json& items = ArrayAt(v, "items");
    for (size_t i = 0; i < items.size(); ++i) {
      std::string ip = Idx(path + ".items", i);
      if (StringField(items[i], "key").empty()) errors.push_back(Required(ip + ".key"));
      std::string p = StringField(items[i], "path");
      if (p.empty()) {
        errors.push_back(Required(ip + ".path"));
      } else {
        ValidateLocalDescendingPath(p, ip + ".path", errors);
      }
    }
  } else if (source == "persistentVolumeClaim") {
    if (StringField(v, "claimName").empty()) errors.push_back(Required(path + ".claimName"));
  } else if (source == "nfs") {
    if (StringField(v, "server").empty()) errors.push_back(Required(path + ".server"));
    std::string p = StringField(v, "path");
    if (p.empty()) {
      errors.push_back(Required(path + ".path"));
    } else if (p.front() != '/') {
      errors.push_back(InvalidValue(path + ".path", Json(p), "must be an absolute path"));
    }
  } else if (source == "csi") {
    if (StringField(v, "driver").empty()) errors.push_back(Required(path + ".driver"));
  } else if (source == "image") {
    if (StringField(v, "reference").empty()) errors.push_back(Required(path + ".reference"));
  }
}

// Returns the names of the valid volumes.
std::set<std::string> ValidateVolumes(const Json& volumes, const std::string& path,
                                      FieldErrors& errors) {
  std::set<std::string> names;
  for (size_t i = 0; i < volumes.size(); ++i) {
    const Json& v = volumes[i];
    std::string ip = Idx(path, i);
    FieldErrors el;
    int sources = 0;
    for (const auto& s : VolumeSourceNames()) {
      const Json* src = Child(v, s.c_str());
      if (src == nullptr || src->is_null()) continue;
      if (sources++ > 0) {
        el.push_back(Forbidden(ip + "." + s, "may not specify more than 1 volume type"));
      } else {
        ValidateVolumeSourceFields(s, *src, ip + "." + s, el);
      }
    }
    if (sources == 0) el.push_back(Required(ip, "must specify a volume type"));
    const Json* name = Child(v, "name");
    std::string n = name != nullptr && name->is_string() ? name->get<std::string>() : "";
    if (n.empty()) {
      el.push_back(Required(ip + ".name"));
    } else {
      for (auto& m : IsDns1123Label(n)) el.push_back(InvalidValue(ip + ".name", Json(n), m));
    }
    if (names.count(n)) el.push_back(Duplicate(ip + ".name", Json(n)));
    if (el.empty()) {
      names.insert(n);
    } else {
      errors.insert(errors.end(), el.begin(), el.end());
    }
  }
  return names;
}

const std::vector<std::string> kTaintEffects = {"NoSchedule", "PreferNoSchedule", "NoExecute"};

void ValidateTolerations(const Json& tolerations, const std::string& path, FieldErrors& errors) {
  for (size_t i = 0; i < tolerations.size(); ++i) {
    const Json& t = tolerations[i];
    std::string ip = Idx(path, i);
    std::string key = StringField(t, "key");
    std::string op = StringField(t, "operator");
    std::string value = StringField(t, "value");
    std::string effect = StringField(t, "effect");
    if (!key.empty()) {
      for (auto& m : IsQualifiedName(key))
        errors.push_back(InvalidValue(ip + ".key", Json(key), m));
    }
    if (key.empty() && op != "Exists") {
      errors.push_back(InvalidValue(ip + ".operator", Json(op),
                                    "operator must be Exists when `key` is empty, which means "
                                    "\"match all values and all keys\""));
    }
    const Json* seconds = Child(t, "tolerationSeconds");
    if (seconds != nullptr && !seconds->is_null() && effect != "NoExecute") {
      errors.push_back(InvalidValue(ip + ".effect", Json(effect),
                                    "effect must be 'NoExecute' when `tolerationSeconds` is set"));
    }
    if (op.empty() || op == "Equal") {
      for (auto& m : IsValidLabelValue(value)) {
        errors.push_back(InvalidValue(ip + ".operator", Json(value), m));
      }
    } else if (op == "Exists") {
      if (!value.empty()) {
        errors.push_back(
            InvalidValue(ip + ".operator", t, "value must be empty when `operator` is 'Exists'"));
      }
    } else {
      errors.push_back(NotSupported(ip + ".operator", Json(op), {"Equal", "Exists"}));
    }
    if (!effect.empty()) {
      ValidateStringEnum(Child(t, "effect"), ip + ".effect", kTaintEffects, false, errors);
    }
  }
}

}  // namespace

void ValidatePodSpec(const Json& spec, const std::string& path, FieldErrors& errors) {
  if (!spec.is_object()) {
    errors.push_back(Required(path + ".containers"));
    return;
  }
  std::set<std::string> volumes =
      ValidateVolumes(ArrayAt(spec, "volumes"), path + ".volumes", errors);
  std::set<std::string> names;
  const Json& containers = ArrayAt(spec, "containers");
  if (containers.empty()) errors.push_back(Required(path + ".containers"));
  for (size_t i = 0; i < containers.size(); ++i) {
    ValidateContainer(containers[i], Idx(path + ".containers", i), volumes, names, false, errors);
  }
  const Json& init = ArrayAt(spec, "initContainers");
  for (size_t i = 0; i < init.size(); ++i) {
    ValidateContainer(init[i], Idx(path + ".initContainers", i), volumes, names, true, errors);
  }
  ValidateStringEnum(Child(spec, "restartPolicy"), path + ".restartPolicy",
                     {"Always", "OnFailure", "Never"}, true, errors);
  ValidateStringEnum(Child(spec, "dnsPolicy"), path + ".dnsPolicy",
                     {"ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"}, true, errors);
  if (const Json* ns = Child(spec, "nodeSelector")) {
    ValidateLabels(*ns, path + ".nodeSelector", errors);
  }
  ValidateNameWith(Child(spec, "serviceAccountName"), path + ".serviceAccountName",
                   IsDns1123Subdomain, errors);
  ValidateNameWith(Child(spec, "nodeName"), path + ".nodeName", IsDns1123Subdomain, errors);
  ValidateNameWith(Child(spec, "hostname"), path + ".hostname", IsDns1123Label, errors);
  ValidateNameWith(Child(spec, "subdomain"), path + ".subdomain", IsDns1123Label, errors);
  if (const Json* ads = Child(spec, "activeDeadlineSeconds"); ads != nullptr && !ads->is_null()) {
    auto v = IntValue(ads);
    if (!v || *v < 1 || *v > 2147483647) {
      errors.push_back(
          InvalidValue(path + ".activeDeadlineSeconds", *ads, InclusiveRangeError(1, 2147483647)));
    }
  }
  if (const Json* tgp = Child(spec, "terminationGracePeriodSeconds");
      tgp != nullptr && !tgp->is_null() && !IntValue(tgp)) {
    errors.push_back(
        InvalidValue(path + ".terminationGracePeriodSeconds", *tgp, "must be an integer"));
  }
  ValidateTolerations(ArrayAt(spec, "tolerations"), path + ".tolerations", errors);
  if (BoolField(spec, "hostNetwork")) {
    for (const char* list : {"containers", "initContainers"}) {
      const Json& cs = ArrayAt(spec, list);
      for (size_t i = 0; i < cs.size(); ++i) {
        const Json& ports = ArrayAt(cs[i], "ports");
        for (size_t j = 0; j < ports.size(); ++j) {
          auto host_port = IntField(ports[j], "hostPort");
          auto container_port = IntField(ports[j], "containerPort");
          if (host_port && *host_port != 0 && host_port != container_port) {
            errors.push_back(InvalidValue(
                Idx(Idx(path + "." + list, i) + ".ports", j) + ".hostPort", Json(*host_port),
                "must match `containerPort` when `hostNetwork` is true"));
          }
        }
      }
    }
  }
}

void ValidatePodTemplateSpec(const Json& tmpl, const std::string& path, FieldErrors& errors) {
  const Json& meta = ObjectAt(tmpl, "metadata");
  if (const Json* labels = Child(meta, "labels")) ValidateLabels(*labels, path + ".labels", errors);
  if (const Json* ann = Child(meta, "annotations")) {
    ValidateAnnotations(*ann, path + ".annotations", errors);
  }
  const Json* spec = Child(tmpl, "spec");
  ValidatePodSpec(spec != nullptr ? *spec : Json(), path + ".spec", errors);
}

namespace {

// ---------------------------------------------------------------------------------------------
// Pod.

bool IsQosResource(const std::string& name) { return name == "cpu" || name == "memory"; }

// qos.GetPodQOS.
std::string PodQosClass(const Json& spec) {
  std::map<std::string, Quantity> requests, limits;
  bool guaranteed = true;
  auto add = [](std::map<std::string, Quantity>& m, const std::string& k, const Quantity& q) {
    __int128& sum = m[k].nanos;
    if (__builtin_add_overflow(sum, q.nanos, &sum)) {  // absurd sizes saturate
      const __int128 kMax =
          ((static_cast<__int128>(1) << 126) - 1) + (static_cast<__int128>(1) << 126);
      sum = q.nanos > 0 ? kMax : -kMax;
    }
  };
  for (const char* list : {"containers", "initContainers"}) {
    for (const auto& c : ArrayAt(spec, list)) {
      const Json& res = ObjectAt(c, "resources");
      const Json& req = ObjectAt(res, "requests");
      for (auto it = req.begin(); it != req.end(); ++it) {
        Quantity q;
        if (IsQosResource(it.key()) && ParseQuantity(it.value(), &q) && q.nanos > 0) {
          add(requests, it.key(), q);
        }
      }
      std::set<std::string> found;
      const Json& lim = ObjectAt(res, "limits");
      for (auto it = lim.begin(); it != lim.end(); ++it) {
        Quantity q;
        if (IsQosResource(it.key()) && ParseQuantity(it.value(), &q) && q.nanos > 0) {
          found.insert(it.key());
          add(limits, it.key(), q);
        }
      }
      if (found.size() != 2) guaranteed = false;
    }
  }
  if (requests.empty() && limits.empty()) return "BestEffort";
  if (guaranteed) {
    for (const auto& [name, q] : requests) {
      auto it = limits.find(name);
      if (it == limits.end() || it->second != q) {
        guaranteed = false;
        break;
      }
    }
  }
  if (guaranteed && requests.size() == limits.size()) return "Guaranteed";
  return "Burstable";
}

void SetPodDefaults(Json& pod) {
  if (!pod.is_object()) return;
  Json* spec = MutableObject(pod, "spec");
  if (spec == nullptr) return;
  SetPodSpecDefaults(*spec);
  // SetDefaults_Pod: requests default to limits.
  for (const char* list : {"containers", "initContainers"}) {
    Json* cs = MutableArray(*spec, list);
    if (cs == nullptr) continue;
    for (auto& c : *cs) {
      Json* res = c.is_object() ? MutableObject(c, "resources") : nullptr;
      if (res == nullptr) continue;
      const Json* lim = Child(*res, "limits");
      if (lim == nullptr || !lim->is_object() || lim->empty()) continue;
      Json limits = *lim;
      Json* req = MutableObject(*res, "requests");
      if (req == nullptr) continue;
      for (auto it = limits.begin(); it != limits.end(); ++it)
        SetDefault(*req, it.key().c_str(), it.value());
    }
  }
  SetDefault(*spec, "enableServiceLinks", true);
  // With hostNetwork, container ports are host ports (defaultHostNetworkPorts).
  if (BoolField(*spec, "hostNetwork")) {
    for (const char* list : {"containers", "initContainers"}) {
      Json* cs = MutableArray(*spec, list);
      if (cs == nullptr) continue;
      for (auto& c : *cs) {
        Json* ports = c.is_object() ? MutableArray(c, "ports") : nullptr;
        if (ports == nullptr) continue;
        for (auto& p : *ports) {
          const Json* cp = Child(p, "containerPort");
          if (cp != nullptr && IntValue(cp) && p.is_object()) SetDefault(p, "hostPort", *cp);
        }
      }
    }
  }
  // Admission: ServiceAccount, Priority and DefaultTolerationSeconds.
  SetDefaultString(*spec, "serviceAccountName", "default");
  SetDefaultString(*spec, "serviceAccount", StringField(*spec, "serviceAccountName").c_str());
  SetDefault(*spec, "priority", 0);
  SetDefaultString(*spec, "preemptionPolicy", "PreemptLowerPriority");
  if (const Json* t = Child(*spec, "tolerations"); t == nullptr || t->is_null()) {
    (*spec)["tolerations"] = Json::array();
  }
  Json* tolerations = MutableArray(*spec, "tolerations");
  if (tolerations != nullptr) {
    for (const char* key : {"node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"}) {
      bool has = false;
      for (const auto& t : *tolerations) {
        std::string effect = StringField(t, "effect");
        if (StringField(t, "key") == key && (effect.empty() || effect == "NoExecute")) has = true;
      }
      if (!has) {
        tolerations->push_back({{"key", key},
                                {"operator", "Exists"},
                                {"effect", "NoExecute"},
                                {"tolerationSeconds", 300}});
      }
    }
  }
  Json* status = MutableObject(pod, "status");
  if (status == nullptr) return;
  SetDefaultString(*status, "phase", "Pending");
  SetDefaultString(*status, "qosClass", PodQosClass(*spec).c_str());
}

constexpr char kPodUpdateForbidden[] =
    "pod updates may not change fields other than `spec.containers[*].image`,"
    "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only "
    "additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set "
    "to 1 if it was previously negative)";

// A short diff of two specs by top-level field, in the spirit of the cmp.Diff Kubernetes appends.
std::string SpecDiff(const Json& old_spec, const Json& new_spec) {
  std::string out = "  core.PodSpec{\n";
  std::set<std::string> keys;
  for (auto it = old_spec.begin(); it != old_spec.end(); ++it) keys.insert(it.key());
  for (auto it = new_spec.begin(); it != new_spec.end(); ++it) keys.insert(it.key());
  for (const auto& k : keys) {
    const Json* o = Child(old_spec, k.c_str());
    const Json* n = Child(new_spec, k.c_str());
    if (o != nullptr && n != nullptr && *o == *n) continue;
    if (o != nullptr) out += "- \t" + k + ": " + base::DumpJson(*o) + ",\n";
    if (n != nullptr) out += "+ \t" + k + ": " + base::DumpJson(*n) + ",\n";
  }
  out += "  }\n";
  return out;
}

// ValidatePodUpdate's spec rules.
void ValidatePodSpecUpdate(const Json& spec, const Json& old_spec, FieldErrors& errors) {
  Json munged = spec.is_object() ? spec : Json::object();
  for (const char* list : {"containers", "initContainers"}) {
    const Json& now = ArrayAt(spec, list);
    const Json& before = ArrayAt(old_spec, list);
    std::string lp = std::string("spec.") + list;
    if (now.size() != before.size()) {
      errors.push_back(Forbidden(lp, "pod updates may not add or remove containers"));
      return;
    }
    for (size_t i = 0; i < now.size(); ++i) {
      const Json* image = Child(now[i], "image");
      if (IsUnset(image)) errors.push_back(Required(Idx(lp, i) + ".image"));
      if (munged[list][i].is_object()) {
        const Json* old_image = Child(before[i], "image");
        if (old_image != nullptr) {
          munged[list][i]["image"] = *old_image;
        } else {
          munged[list][i].erase("image");
        }
      }
    }
  }
  const Json* ads = Child(spec, "activeDeadlineSeconds");
  const Json* old_ads = Child(old_spec, "activeDeadlineSeconds");
  bool has_ads = ads != nullptr && !ads->is_null();
  bool had_ads = old_ads != nullptr && !old_ads->is_null();
  if (has_ads) {
    auto v = IntValue(ads);
    if (!v || *v < 0 || *v > 2147483647) {
      errors.push_back(
          InvalidValue("spec.activeDeadlineSeconds", *ads, InclusiveRangeError(0, 2147483647)));
      return;
    }
    if (had_ads) {
      auto old_v = IntValue(old_ads);
      if (old_v && *old_v < *v) {
        errors.push_back(InvalidValue("spec.activeDeadlineSeconds", *ads,
                                      "must be less than or equal to previous value"));
        return;
      }
    }
  } else if (had_ads) {
    errors.push_back(InvalidValue("spec.activeDeadlineSeconds", Json(),
                                  "must not update from a positive integer to nil value"));
  }
  if (had_ads) {
    munged["activeDeadlineSeconds"] = *old_ads;
  } else {
    munged.erase("activeDeadlineSeconds");
  }
  // Tolerations: existing ones must stay (their tolerationSeconds may change); additions are fine.
  const Json& tolerations = ArrayAt(spec, "tolerations");
  const Json& old_tolerations = ArrayAt(old_spec, "tolerations");
  bool only_added = true;
  for (const auto& old_t : old_tolerations) {
    Json a = Normalized(old_t);
    if (a.is_object()) a.erase("tolerationSeconds");
    bool found = false;
    for (const auto& t : tolerations) {
      Json b = Normalized(t);
      if (b.is_object()) b.erase("tolerationSeconds");
      if (a == b) {
        found = true;
        break;
      }
    }
    if (!found) only_added = false;
  }
  if (!only_added) {
    errors.push_back(Forbidden("spec.tolerations",
                               "existing toleration can not be modified except its "
                               "tolerationSeconds"));
  }
  if (const Json* t = Child(old_spec, "tolerations")) {
    munged["tolerations"] = *t;
  } else {
    munged.erase("tolerations");
  }
  // terminationGracePeriodSeconds may go from negative to 1.
  auto tgp = IntField(spec, "terminationGracePeriodSeconds");
  auto old_tgp = IntField(old_spec, "terminationGracePeriodSeconds");
  if (tgp && old_tgp && *old_tgp < 0 && *tgp == 1) {
    munged["terminationGracePeriodSeconds"] = *old_tgp;
  }
  // Scheduling gates may only be removed.
  const Json& gates = ArrayAt(spec, "schedulingGates");
  const Json& old_gates = ArrayAt(old_spec, "schedulingGates");
  bool subset = std::all_of(gates.begin(), gates.end(), [&](const Json& g) {
    return std::find(old_gates.begin(), old_gates.end(), g) != old_gates.end();
  });
  if (subset) {
    if (const Json* g = Child(old_spec, "schedulingGates")) {
      munged["schedulingGates"] = *g;
    } else {
      munged.erase("schedulingGates");
    }
  }
  Json a = Normalized(munged);
  Json b = Normalized(old_spec.is_object() ? old_spec : Json::object());
  if (a != b) {
    errors.push_back(Forbidden("spec", std::string(kPodUpdateForbidden) + "\n" + SpecDiff(b, a)));
  }
}

void ValidatePod(const Json& obj, const Json* old_obj, FieldErrors& errors) {
  ValidateMeta(obj, old_obj, true, NameValidation::kDnsSubdomain, errors);
  const Json* spec = Child(obj, "spec");
  ValidatePodSpec(spec != nullptr ? *spec : Json(), "spec", errors);
  if (old_obj != nullptr) {
    const Json* old_spec = Child(*old_obj, "spec");
    ValidatePodSpecUpdate(spec != nullptr ? *spec : Json::object(),
                          old_spec != nullptr ? *old_spec : Json::object(), errors);
  }
}

bool TimeBefore(const std::string& a, const std::string& b, WallTime* tb) {
  // Whether timestamp a (possibly empty: the zero time) is before b; *tb receives b.
  WallTime ta{}, t{};
  bool has_b = !b.empty() && base::ParseRfc3339(b, &t);
  if (!has_b) return false;
  *tb = t;
  if (a.empty() || !base::ParseRfc3339(a, &ta)) return true;
  return ta < t;
}

bool ConditionTrue(const Json& status, const char* type) {
  for (const auto& c : ArrayAt(status, "conditions")) {
    if (StringField(c, "type") == type && StringField(c, "status") == "True") return true;
  }
  return false;
}

// printPod.
std::vector<Json> PodCells(const Json& pod, WallTime now) {
  const Json& spec = ObjectAt(pod, "spec");
  const Json& status = ObjectAt(pod, "status");
  int restarts = 0;
  int restartable_init_restarts = 0;
  int total = static_cast<int>(ArrayAt(spec, "containers").size());
  int ready = 0;
  std::string last_restart;  // RFC 3339, "" for the zero time
  std::string last_restartable_init_restart;
  WallTime unused;

  std::string phase = StringField(status, "phase");
  std::string reason = phase;
  if (!StringField(status, "reason").empty()) reason = StringField(status, "reason");
  for (const auto& c : ArrayAt(status, "conditions")) {
    if (StringField(c, "type") == "PodScheduled" && StringField(c, "reason") == "SchedulingGated") {
      reason = "SchedulingGated";
    }
  }

  std::map<std::string, bool> restartable_init;
  const Json& init_specs = ArrayAt(spec, "initContainers");
  for (const auto& c : init_specs) {
    bool restartable = StringField(c, "restartPolicy") == "Always";
    restartable_init[StringField(c, "name")] = restartable;
    if (restartable) ++total;
  }

  bool initializing = false;
  const Json& init_statuses = ArrayAt(status, "initContainerStatuses");
  for (size_t i = 0; i < init_statuses.size(); ++i) {
    const Json& cs = init_statuses[i];
    int count = static_cast<int>(IntField(cs, "restartCount").value_or(0));
    restarts += count;
    std::string finished = StringAt(cs, {"lastState", "terminated", "finishedAt"});
    if (FindPath(cs, {"lastState", "terminated"}) != nullptr &&
        TimeBefore(last_restart, finished, &unused)) {
      last_restart = finished;
    }
    bool restartable = restartable_init[StringField(cs, "name")];
    if (restartable) {
      restartable_init_restarts += count;
      if (FindPath(cs, {"lastState", "terminated"}) != nullptr &&
          TimeBefore(last_restartable_init_restart, finished, &unused)) {
        last_restartable_init_restart = finished;
      }
    }
    const Json* terminated = FindPath(cs, {"state", "terminated"});
    const Json* waiting = FindPath(cs, {"state", "waiting"});
    bool is_terminated = terminated != nullptr && terminated->is_object();
    if (is_terminated && IntField(*terminated, "exitCode").value_or(0) == 0) continue;
    if (restartable && BoolField(cs, "started")) {
      if (BoolField(cs, "ready")) ++ready;
      continue;
    }
    if (is_terminated) {
      std::string r = StringField(*terminated, "reason");
      if (r.empty()) {
        int64_t signal = IntField(*terminated, "signal").value_or(0);
        reason = signal != 0 ? "Init:Signal:" + std::to_string(signal)
                             : "Init:ExitCode:" +
                                   std::to_string(IntField(*terminated, "exitCode").value_or(0));
      } else {
        reason = "Init:" + r;
      }
    } else if (waiting != nullptr && !StringField(*waiting, "reason").empty() &&
               StringField(*waiting, "reason") != "PodInitializing") {
      reason = "Init:" + StringField(*waiting, "reason");
    } else {
      reason = "Init:" + std::to_string(i) + "/" + std::to_string(init_specs.size());
    }
    initializing = true;
    break;
  }

  if (!initializing || ConditionTrue(status, "Initialized")) {
    restarts = restartable_init_restarts;
    last_restart = last_restartable_init_restart;
    bool has_running = false;
    const Json& statuses = ArrayAt(status, "containerStatuses");
    for (size_t k = statuses.size(); k-- > 0;) {
      const Json& cs = statuses[k];
      restarts += static_cast<int>(IntField(cs, "restartCount").value_or(0));
      if (FindPath(cs, {"lastState", "terminated"}) != nullptr) {
        std::string finished = StringAt(cs, {"lastState", "terminated", "finishedAt"});
        if (TimeBefore(last_restart, finished, &unused)) last_restart = finished;
      }
      const Json* waiting = FindPath(cs, {"state", "waiting"});
      const Json* terminated = FindPath(cs, {"state", "terminated"});
      const Json* running = FindPath(cs, {"state", "running"});
      bool is_terminated = terminated != nullptr && terminated->is_object();
      if (waiting != nullptr && !StringField(*waiting, "reason").empty()) {
        reason = StringField(*waiting, "reason");
      } else if (is_terminated && !StringField(*terminated, "reason").empty()) {
        reason = StringField(*terminated, "reason");
      } else if (is_terminated) {
        int64_t signal = IntField(*terminated, "signal").value_or(0);
        reason = signal != 0
                     ? "Signal:" + std::to_string(signal)
                     : "ExitCode:" + std::to_string(IntField(*terminated, "exitCode").value_or(0));
      } else if (BoolField(cs, "ready") && running != nullptr && running->is_object()) {
        has_running = true;
        ++ready;
      }
    }
    if (reason == "Completed" && has_running) {
      reason = ConditionTrue(status, "Ready") ? "Running" : "NotReady";
    }
  }

  const Json* deletion = FindPath(pod, {"metadata", "deletionTimestamp"});
  bool deleting = deletion != nullptr && !deletion->is_null();
  if (deleting && StringField(status, "reason") == "NodeLost") {
    reason = "Unknown";
  } else if (deleting && phase != "Failed" && phase != "Succeeded") {
    reason = "Terminating";
  }

  std::string restarts_str = std::to_string(restarts);
  if (restarts != 0 && !last_restart.empty()) {
    restarts_str += " (" + TimestampAge(Json(last_restart), now) + " ago)";
  }

  std::string ip;
  const Json& ips = ArrayAt(status, "podIPs");
  if (!ips.empty()) ip = StringField(ips[0], "ip");
  if (ip.empty()) ip = StringField(status, "podIP");
  if (ip.empty()) ip = "<none>";
  std::string node = StringField(spec, "nodeName");
  if (node.empty()) node = "<none>";
  std::string nominated = StringField(status, "nominatedNodeName");
  if (nominated.empty()) nominated = "<none>";
  std::string gates = "<none>";
  const Json& readiness_gates = ArrayAt(spec, "readinessGates");
  if (!readiness_gates.empty()) {
    int true_conditions = 0;
    for (const auto& g : readiness_gates) {
      std::string type = StringField(g, "conditionType");
      for (const auto& c : ArrayAt(status, "conditions")) {
        if (StringField(c, "type") == type) {
          if (StringField(c, "status") == "True") ++true_conditions;
          break;
        }
      }
    }
    gates = std::to_string(true_conditions) + "/" + std::to_string(readiness_gates.size());
  }
  return {std::to_string(ready) + "/" + std::to_string(total),
          reason,
          restarts_str,
          AgeCell(pod, now),
          ip,
          node,
          nominated,
          gates};
}

bool PodField(const Json& pod, std::string_view field, std::string* value) {
  if (MetadataField(pod, field, value)) return true;
  const Json& spec = ObjectAt(pod, "spec");
  const Json& status = ObjectAt(pod, "status");
  if (field == "spec.nodeName") {
    *value = StringField(spec, "nodeName");
  } else if (field == "spec.restartPolicy") {
    *value = StringField(spec, "restartPolicy");
  } else if (field == "spec.schedulerName") {
    *value = StringField(spec, "schedulerName");
  } else if (field == "spec.serviceAccountName") {
    *value = StringField(spec, "serviceAccountName");
  } else if (field == "spec.hostNetwork") {
    *value = BoolField(spec, "hostNetwork") ? "true" : "false";
  } else if (field == "status.phase") {
    *value = StringField(status, "phase");
  } else if (field == "status.podIP") {
    const Json& ips = ArrayAt(status, "podIPs");
    *value = ips.empty() ? StringField(status, "podIP") : StringField(ips[0], "ip");
  } else if (field == "status.nominatedNodeName") {
    *value = StringField(status, "nominatedNodeName");
  } else {
    return false;
  }
  return true;
}

ResourceType PodType() {
  ResourceType t;
  t.group = "";
  t.version = "v1";
  t.kind = "Pod";
  t.plural = "pods";
  t.singular = "pod";
  t.namespaced = true;
  t.short_names = {"po"};
  t.categories = {"all"};
  t.has_status = true;
  t.set_defaults = SetPodDefaults;
  t.validate = ValidatePod;
  t.columns = {
      {"Ready", "string", "", "The aggregate readiness state of this pod for accepting traffic.",
       0},
      {"Status", "string", "", "The aggregate status of the containers in this pod.", 0},
      {"Restarts", "string", "",
       "The number of times the containers in this pod have been restarted and when the last "
       "container in this pod has restarted.",
       0},
      AgeColumn(),
      {"IP", "string", "",
       "podIP address allocated to the pod. Routable at least within the cluster.", 1},
      {"Node", "string", "", "NodeName is a request to schedule this pod onto a specific node.", 1},
      {"Nominated Node", "string", "",
       "nominatedNodeName is set only when this pod preempts other pods on the node.", 1},
      {"Readiness Gates", "string", "",
       "If specified, all readiness gates will be evaluated for pod readiness.", 1},
  };
  t.cells = PodCells;
  t.selectable_field = PodField;
  return t;
}

// ---------------------------------------------------------------------------------------------
// Namespace.

void SetNamespaceDefaults(Json& ns) {
  if (!ns.is_object()) return;
  std::string name = StringAt(ns, {"metadata", "name"});
  if (!name.empty()) {
    if (Json* meta = MutableObject(ns, "metadata")) {
      if (Json* labels = MutableObject(*meta, "labels")) {
        (*labels)["kubernetes.io/metadata.name"] = name;
      }
    }
  }
  if (Json* spec = MutableObject(ns, "spec")) {
    SetDefault(*spec, "finalizers", Json::array({"kubernetes"}));
  }
  if (Json* status = MutableObject(ns, "status")) SetDefaultString(*status, "phase", "Active");
}

void ValidateNamespace(const Json& obj, const Json* old_obj, FieldErrors& errors) {
  ValidateMeta(obj, old_obj, false, NameValidation::kDnsLabel, errors);
  for (const auto& f : ArrayAt(ObjectAt(obj, "spec"), "finalizers")) {
    if (!f.is_string()) {
      errors.push_back(InvalidValue("spec.finalizers", f, "must be a string"));
      continue;
    }
    std::string name = f.get<std::string>();
    for (auto& m : IsQualifiedName(name)) errors.push_back(InvalidValue("spec.finalizers", f, m));
    if (name.find('/') == std::string::npos && name != "kubernetes" && name != "orphan" &&
        name != "foregroundDeletion") {
      errors.push_back(InvalidValue("spec.finalizers", f,
                                    "name is neither a standard finalizer name nor is it fully "
                                    "qualified"));
    }
  }
  const Json* phase = FindPath(obj, {"status", "phase"});
  if (!IsUnset(phase)) {
    ValidateStringEnum(phase, "status.phase", {"Active", "Terminating"}, false, errors);
  }
}

ResourceType NamespaceType() {
  ResourceType t;
  t.version = "v1";
  t.kind = "Namespace";
  t.plural = "namespaces";
  t.singular = "namespace";
  t.namespaced = false;
  t.short_names = {"ns"};
  t.has_status = true;
  t.set_defaults = SetNamespaceDefaults;
  t.validate = ValidateNamespace;
  t.columns = {{"Status", "string", "", "The status of the namespace", 0}, AgeColumn()};
  t.cells = [](const Json& obj, WallTime now) -> std::vector<Json> {
    return {StringAt(obj, {"status", "phase"}), AgeCell(obj, now)};
  };
  t.selectable_field = [](const Json& obj, std::string_view field, std::string* value) {
    if (MetadataField(obj, field, value)) return true;
    if (field != "status.phase") return false;
    *value = StringAt(obj, {"status", "phase"});
    return true;
  };
  return t;
}

// ---------------------------------------------------------------------------------------------
// Node.

void SetNodeDefaults(Json& node) {
  if (!node.is_object()) return;
  const Json* status = Child(node, "status");
  if (status == nullptr || !status->is_object()) return;
  const Json* capacity = Child(*status, "capacity");
  if (capacity != nullptr && capacity->is_object()) {
    SetDefault(node["status"], "allocatable", *capacity);
  }
}

void ValidateNode(const Json& obj, const Json* old_obj, FieldErrors& errors) {
  ValidateMeta(obj, old_obj, false, NameValidation::kDnsSubdomain, errors);
  const Json& spec = ObjectAt(obj, "spec");
  std::string cidr = StringField(spec, "podCIDR");
  if (!cidr.empty() && !IsCidr(cidr)) {
    errors.push_back(
        InvalidValue("spec.podCIDR", Json(cidr),
                     "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"));
  }
  const Json& cidrs = ArrayAt(spec, "podCIDRs");
  for (size_t i = 0; i < cidrs.size(); ++i) {
    if (!cidrs[i].is_string() || !IsCidr(cidrs[i].get<std::string>())) {
      errors.push_back(
          InvalidValue(Idx("spec.podCIDRs", i), cidrs[i],
                       "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"));
    }
  }
  const Json& taints = ArrayAt(spec, "taints");
  std::set<std::pair<std::string, std::string>> seen;
  for (size_t i = 0; i < taints.size(); ++i) {
    const Json& t = taints[i];
    std::string ip = Idx("spec.taints", i);
    std::string key = StringField(t, "key");
    for (auto& m : IsQualifiedName(key)) errors.push_back(InvalidValue(ip + ".key", Json(key), m));
    std::string value = StringField(t, "value");
    for (auto& m : IsValidLabelValue(value)) {
      errors.push_back(InvalidValue(ip + ".value", Json(value), m));
    }
    ValidateStringEnum(Child(t, "effect"), ip + ".effect", kTaintEffects, true, errors);
    if (!seen.insert({key, StringField(t, "effect")}).second) {
      errors.push_back(Duplicate(ip, t));
    }
  }
  const Json& status = ObjectAt(obj, "status");
  for (const char* list : {"capacity", "allocatable"}) {
    const Json& l = ObjectAt(status, list);
    for (auto it = l.begin(); it != l.end(); ++it) {
      ValidateNonnegativeQuantity(it.value(), Key(std::string("status.") + list, it.key()), errors);
    }
  }
}

std::vector<Json> NodeCells(const Json& node, WallTime now) {
  const Json& status = ObjectAt(node, "status");
  std::string state;
  for (const auto& c : ArrayAt(status, "conditions")) {
    if (StringField(c, "type") == "Ready") {
      state = StringField(c, "status") == "True" ? "Ready" : "NotReady";
    }
  }
  if (state.empty()) state = "Unknown";
  if (BoolField(ObjectAt(node, "spec"), "unschedulable")) state += ",SchedulingDisabled";
  std::set<std::string> roles;
  for (const auto& [k, v] : ObjectAt(ObjectAt(node, "metadata"), "labels").items()) {
    static const std::string kPrefix = "node-role.kubernetes.io/";
    if (k.rfind(kPrefix, 0) == 0) {
      if (k.size() > kPrefix.size()) roles.insert(k.substr(kPrefix.size()));
    } else if (k == "kubernetes.io/role" && v.is_string() && !v.get<std::string>().empty()) {
      roles.insert(v.get<std::string>());
    }
  }
  std::string role_str;
  for (const auto& r : roles) role_str += (role_str.empty() ? "" : ",") + r;
  if (role_str.empty()) role_str = "<none>";
  auto address = [&](const char* type) {
    for (const auto& a : ArrayAt(status, "addresses")) {
      if (StringField(a, "type") == type) return StringField(a, "address");
    }
    return std::string("<none>");
  };
  const Json& info = ObjectAt(status, "nodeInfo");
  auto or_unknown = [](std::string s) { return s.empty() ? std::string("<unknown>") : s; };
  return {state,
          role_str,
          AgeCell(node, now),
          StringField(info, "kubeletVersion"),
          address("InternalIP"),
          address("ExternalIP"),
          or_unknown(StringField(info, "osImage")),
          or_unknown(StringField(info, "kernelVersion")),
          or_unknown(StringField(info, "containerRuntimeVersion"))};
}

ResourceType NodeType() {
  ResourceType t;
  t.version = "v1";
  t.kind = "Node";
  t.plural = "nodes";
  t.singular = "node";
  t.namespaced = false;
  t.short_names = {"no"};
  t.has_status = true;
  t.set_defaults = SetNodeDefaults;
  t.validate = ValidateNode;
  t.columns = {
      {"Status", "string", "", "The status of the node", 0},
      {"Roles", "string", "", "The roles of the node", 0},
      AgeColumn(),
      {"Version", "string", "", "Kubelet Version reported by the node.", 0},
      {"Internal-IP", "string", "", "List of addresses reachable to the node.", 1},
      {"External-IP", "string", "", "List of addresses reachable to the node.", 1},
      {"OS-Image", "string", "", "OS Image reported by the node from /etc/os-release.", 1},
      {"Kernel-Version", "string", "", "Kernel Version reported by the node.", 1},
      {"Container-Runtime", "string", "",
       "ContainerRuntime Version reported by the node through runtime remote API.", 1},
  };
  t.cells = NodeCells;
  t.selectable_field = [](const Json& obj, std::string_view field, std::string* value) {
    if (MetadataField(obj, field, value)) return true;
    if (field != "spec.unschedulable") return false;
    *value = BoolField(ObjectAt(obj, "spec"), "unschedulable") ? "true" : "false";
    return true;
  };
  return t;
}

// ---------------------------------------------------------------------------------------------
// Service.

void SetServiceDefaults(Json& svc) {
  if (!svc.is_object()) return;
  Json* spec = MutableObject(svc, "spec");
  if (spec == nullptr) return;
  SetDefaultString(*spec, "sessionAffinity", "None");
  SetDefaultString(*spec, "type", "ClusterIP");
  std::string type = StringField(*spec, "type");
  if (Json* ports = MutableArray(*spec, "ports")) {
    for (auto& p : *ports) {
      if (!p.is_object()) continue;
      SetDefaultString(p, "protocol", "TCP");
      const Json* target = Child(p, "targetPort");
      bool unset = target == nullptr || target->is_null() ||
                   (target->is_string() && target->get_ref<const std::string&>().empty()) ||
                   (IntValue(target) && *IntValue(target) == 0);
      if (unset) {
        if (const Json* port = Child(p, "port"); port != nullptr && IntValue(port)) {
          p["targetPort"] = *IntValue(port);
        }
      }
    }
  }
  if (type == "NodePort" || type == "LoadBalancer") {
    SetDefaultString(*spec, "externalTrafficPolicy", "Cluster");
  }
  if (type == "LoadBalancer") SetDefault(*spec, "allocateLoadBalancerNodePorts", true);
  if (StringField(*spec, "sessionAffinity") == "ClientIP") {
    if (Json* cfg = MutableObject(*spec, "sessionAffinityConfig")) {
      if (Json* client = MutableObject(*cfg, "clientIP")) {
        SetDefault(*client, "timeoutSeconds", 10800);
      }
    }
  }
  if (type != "ExternalName") {
    SetDefaultString(*spec, "internalTrafficPolicy", "Cluster");
    // clusterIP and clusterIPs mirror each other (normalizeClusterIPs).
    std::string ip = StringField(*spec, "clusterIP");
    const Json& ips = ArrayAt(*spec, "clusterIPs");
    if (!ip.empty() && ips.empty()) (*spec)["clusterIPs"] = Json::array({ip});
    if (ip.empty() && !ips.empty() && ips[0].is_string()) (*spec)["clusterIP"] = ips[0];
    SetDefaultString(*spec, "ipFamilyPolicy", "SingleStack");
    if (ArrayAt(*spec, "ipFamilies").empty()) {
      std::string first = StringField(*spec, "clusterIP");
      (*spec)["ipFamilies"] = Json::array({IsIpv6Address(first) ? "IPv6" : "IPv4"});
    }
  }
  if (Json* status = MutableObject(svc, "status"))
    SetDefault(*status, "loadBalancer", Json::object());
}

constexpr char kInvalidIp[] = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)";

void ValidateService(const Json& obj, const Json* old_obj, FieldErrors& errors) {
  ValidateMeta(obj, old_obj, true, NameValidation::kDns1035Label, errors);
  const Json& spec = ObjectAt(obj, "spec");
  std::string type = StringField(spec, "type");
  std::string cluster_ip = StringField(spec, "clusterIP");
  bool headless = cluster_ip == "None";
  ValidateStringEnum(Child(spec, "type"), "spec.type",
                     {"ClusterIP", "ExternalName", "LoadBalancer", "NodePort"}, true, errors);
  ValidateStringEnum(Child(spec, "sessionAffinity"), "spec.sessionAffinity", {"ClientIP", "None"},
                     true, errors);
  const Json& ports = ArrayAt(spec, "ports");
  if (ports.empty() && !headless && type != "ExternalName") {
    errors.push_back(Required("spec.ports"));
  }
  if (type == "ExternalName") {
    std::string external = StringField(spec, "externalName");
    if (external.empty()) {
      errors.push_back(Required("spec.externalName"));
    } else {
      std::string trimmed =
          external.back() == '.' ? external.substr(0, external.size() - 1) : external;
      for (auto& m : IsDns1123Subdomain(trimmed)) {
        errors.push_back(InvalidValue("spec.externalName", Json(external), m));
      }
    }
  }
  std::set<std::string> names;
  std::set<std::pair<int64_t, std::string>> port_keys;
  for (size_t i = 0; i < ports.size(); ++i) {
    const Json& p = ports[i];
    std::string ip = Idx("spec.ports", i);
    std::string name = StringField(p, "name");
    if (ports.size() > 1 && name.empty()) {
      errors.push_back(Required(ip + ".name"));
    } else if (!name.empty()) {
      for (auto& m : IsDns1123Label(name))
        errors.push_back(InvalidValue(ip + ".name", Json(name), m));
      if (!names.insert(name).second) errors.push_back(Duplicate(ip + ".name", Json(name)));
    }
    const Json* port = Child(p, "port");
    auto port_num = IntValue(port);
    if (port != nullptr && !port->is_null() && !port_num) {
      errors.push_back(InvalidValue(ip + ".port", *port, "must be an integer"));
    } else {
      for (auto& m : IsValidPortNum(port_num.value_or(0))) {
        errors.push_back(InvalidValue(ip + ".port", Json(port_num.value_or(0)), m));
      }
    }
    ValidateProtocol(Child(p, "protocol"), ip + ".protocol", errors);
    const Json* target = Child(p, "targetPort");
    if (target != nullptr && target->is_string()) {
      for (auto& m : IsValidPortName(target->get<std::string>())) {
        errors.push_back(InvalidValue(ip + ".targetPort", *target, m));
      }
    } else if (target != nullptr && !target->is_null()) {
      auto t = IntValue(target);
      if (!t) {
        errors.push_back(
            InvalidValue(ip + ".targetPort", *target, "must be an integer or a string"));
      } else {
        for (auto& m : IsValidPortNum(*t)) {
          errors.push_back(InvalidValue(ip + ".targetPort", Json(*t), m));
        }
      }
    }
    if (auto node_port = IntField(p, "nodePort"); node_port && *node_port != 0) {
      if (type == "ClusterIP") {
        errors.push_back(Forbidden(ip + ".nodePort", "may not be used when `type` is 'ClusterIP'"));
      } else {
        for (auto& m : IsValidPortNum(*node_port)) {
          errors.push_back(InvalidValue(ip + ".nodePort", Json(*node_port), m));
        }
      }
    }
    std::string protocol = StringField(p, "protocol");
    if (!port_keys.insert({port_num.value_or(0), protocol}).second) {
      // Kubernetes shows the Go value of the (protocol, port) key.
      errors.push_back(FieldError{ip, "FieldValueDuplicate",
                                  "Duplicate value: core.ServicePort{Name:\"\", Protocol:\"" +
                                      protocol +
                                      "\", Port:" + std::to_string(port_num.value_or(0)) + "}"});
    }
  }
  if (const Json* sel = Child(spec, "selector")) ValidateLabels(*sel, "spec.selector", errors);
  if (!cluster_ip.empty() && !headless && !IsIpv4Address(cluster_ip) &&
      !IsIpv6Address(cluster_ip)) {
    errors.push_back(InvalidValue("spec.clusterIPs[0]", Json(cluster_ip), kInvalidIp));
  }
  std::string etp = StringField(spec, "externalTrafficPolicy");
  if (!etp.empty()) {
    if (type != "NodePort" && type != "LoadBalancer") {
      errors.push_back(InvalidValue("spec.externalTrafficPolicy", Json(etp),
                                    "may only be set when `type` is 'NodePort' or 'LoadBalancer'"));
    } else {
      ValidateStringEnum(Child(spec, "externalTrafficPolicy"), "spec.externalTrafficPolicy",
                         {"Cluster", "Local"}, false, errors);
    }
  }
  const Json& external_ips = ArrayAt(spec, "externalIPs");
  for (size_t i = 0; i < external_ips.size(); ++i) {
    const Json& e = external_ips[i];
    if (!e.is_string() ||
        !(IsIpv4Address(e.get<std::string>()) || IsIpv6Address(e.get<std::string>()))) {
      errors.push_back(InvalidValue(Idx("spec.externalIPs", i), e, kInvalidIp));
    }
  }
  if (old_obj != nullptr) {
    std::string old_ip = StringAt(*old_obj, {"spec", "clusterIP"});
    if (!cluster_ip.empty() && !old_ip.empty() && cluster_ip != old_ip &&
        StringAt(*old_obj, {"spec", "type"}) != "ExternalName" && type != "ExternalName") {
      errors.push_back(InvalidValue("spec.clusterIP", Json(cluster_ip), kImmutableError));
    }
  }
}

std::vector<Json> ServiceCells(const Json& svc, WallTime now) {
  const Json& spec = ObjectAt(svc, "spec");
  std::string type = StringField(spec, "type");
  std::string internal = "<none>";
  const Json& ips = ArrayAt(spec, "clusterIPs");
  if (!ips.empty() && ips[0].is_string()) {
    internal = ips[0].get<std::string>();
  } else if (!StringField(spec, "clusterIP").empty()) {
    internal = StringField(spec, "clusterIP");
  }
  std::vector<std::string> external_ips;
  for (const auto& e : ArrayAt(spec, "externalIPs")) {
    if (e.is_string()) external_ips.push_back(e.get<std::string>());
  }
  auto join = [](const std::vector<std::string>& v) {
    std::string out;
    for (const auto& s : v) out += (out.empty() ? "" : ",") + s;
    return out;
  };
  std::string external;
  if (type == "ClusterIP" || type == "NodePort") {
    external = external_ips.empty() ? "<none>" : join(external_ips);
  } else if (type == "LoadBalancer") {
    std::set<std::string> lb;
    for (const auto& ing : ArrayAt(ObjectAt(ObjectAt(svc, "status"), "loadBalancer"), "ingress")) {
      if (!StringField(ing, "ip").empty()) {
        lb.insert(StringField(ing, "ip"));
      } else if (!StringField(ing, "hostname").empty()) {
        lb.insert(StringField(ing, "hostname"));
      }
    }
    std::vector<std::string> all(lb.begin(), lb.end());
    all.insert(all.end(), external_ips.begin(), external_ips.end());
    external = all.empty() ? "<pending>" : join(all);
  } else if (type == "ExternalName") {
    external = StringField(spec, "externalName");
  } else {
    external = "<unknown>";
  }
  std::string ports;
  for (const auto& p : ArrayAt(spec, "ports")) {
    std::string piece = std::to_string(IntField(p, "port").value_or(0));
    if (auto np = IntField(p, "nodePort"); np && *np > 0) piece += ":" + std::to_string(*np);
    piece += "/" + StringField(p, "protocol");
    ports += (ports.empty() ? "" : ",") + piece;
  }
  if (ports.empty()) ports = "<none>";
  return {type,  internal,          external,
          ports, AgeCell(svc, now), FormatLabels(ObjectAt(spec, "selector"))};
}

ResourceType ServiceType() {
  ResourceType t;
  t.version = "v1";
  t.kind = "Service";
  t.plural = "services";
  t.singular = "service";
  t.namespaced = true;
  t.short_names = {"svc"};
  t.categories = {"all"};
  t.has_status = true;
  t.set_defaults = SetServiceDefaults;
  t.validate = ValidateService;
  t.columns = {
      {"Type", "string", "", "type determines how the Service is exposed.", 0},
      {"Cluster-IP", "string", "", "clusterIP is the IP address of the service.", 0},
      {"External-IP", "string", "",
       "externalIPs is a list of IP addresses for which nodes in the cluster will also accept "
       "traffic for this service.",
       0},
      {"Port(s)", "string", "", "The list of ports that are exposed by this service.", 0},
      AgeColumn(),
      {"Selector", "string", "",
       "Route service traffic to pods with label keys and values matching this selector.", 1},
  };
  t.cells = ServiceCells;
  t.selectable_field = MetadataField;
  return t;
}

// ---------------------------------------------------------------------------------------------
// Endpoints.

void SetEndpointsDefaults(Json& ep) {
  if (Json* subsets = MutableArray(ep, "subsets")) {
    for (auto& s : *subsets) {
      if (Json* ports = MutableArray(s, "ports")) {
        for (auto& p : *ports) SetDefaultString(p, "protocol", "TCP");
      }
    }
  }
}

void ValidateEndpoints(const Json& obj, const Json* old_obj, FieldErrors& errors) {
  ValidateMeta(obj, old_obj, true, NameValidation::kDnsSubdomain, errors);
  const Json& subsets = ArrayAt(obj, "subsets");
  for (size_t i = 0; i < subsets.size(); ++i) {
    const Json& ss = subsets[i];
    std::string ip = Idx("subsets", i);
    if (ArrayAt(ss, "addresses").empty() && ArrayAt(ss, "notReadyAddresses").empty()) {
      errors.push_back(Required(ip, "must specify `addresses` or `notReadyAddresses`"));
    }
    for (const char* list : {"addresses", "notReadyAddresses"}) {
      const Json& addrs = ArrayAt(ss, list);
      for (size_t j = 0; j < addrs.size(); ++j) {
        std::string ap = Idx(ip + "." + list, j);
        std::string addr = StringField(addrs[j], "ip");
        if (!IsIpv4Address(addr) && !IsIpv6Address(addr)) {
          errors.push_back(InvalidValue(ap + ".ip", Json(addr), kInvalidIp));
        }
        ValidateNameWith(Child(addrs[j], "hostname"), ap + ".hostname", IsDns1123Label, errors);
        ValidateNameWith(Child(addrs[j], "nodeName"), ap + ".nodeName", IsDns1123Subdomain, errors);
      }
    }
    const Json& ports = ArrayAt(ss, "ports");
    for (size_t j = 0; j < ports.size(); ++j) {
      std::string pp = Idx(ip + ".ports", j);
      std::string name = StringField(ports[j], "name");
      if (ports.size() > 1 && name.empty()) {
        errors.push_back(Required(pp + ".name"));
      } else if (!name.empty()) {
        for (auto& m : IsDns1123Label(name))
          errors.push_back(InvalidValue(pp + ".name", Json(name), m));
      }
      auto port = IntField(ports[j], "port").value_or(0);
      for (auto& m : IsValidPortNum(port))
        errors.push_back(InvalidValue(pp + ".port", Json(port), m));
      ValidateProtocol(Child(ports[j], "protocol"), pp + ".protocol", errors);
    }
  }
}

// formatEndpoints.
std::string FormatEndpoints(const Json& ep) {
  const Json& subsets = ArrayAt(ep, "subsets");
  if (subsets.empty()) return "<none>";
  std::vector<std::string> list;
  const size_t kMax = 3;
  bool more = false;
  size_t count = 0;
  auto host_port = [](const std::string& ip, int64_t port) {
    std::string host = ip.find(':') != std::string::npos ? "[" + ip + "]" : ip;
    return host + ":" + std::to_string(port);
  };
  for (const auto& ss : subsets) {
    const Json& addrs = ArrayAt(ss, "addresses");
    const Json& ports = ArrayAt(ss, "ports");
    if (ports.empty()) {
      count += addrs.size();
      for (const auto& a : addrs) {
        if (list.size() == kMax) {
          more = true;
          break;
        }
        list.push_back(StringField(a, "ip"));
      }
      continue;
    }
    for (const auto& p : ports) {
      count += addrs.size();
      for (const auto& a : addrs) {
        if (list.size() == kMax) {
          more = true;
          break;
        }
        list.push_back(host_port(StringField(a, "ip"), IntField(p, "port").value_or(0)));
      }
    }
  }
  std::string out;
  for (const auto& s : list) out += (out.empty() ? "" : ",") + s;
  if (more) out += " + " + std::to_string(count - kMax) + " more...";
  return out;
}

ResourceType EndpointsType() {
  ResourceType t;
  t.version = "v1";
  t.kind = "Endpoints";
  t.plural = "endpoints";
  t.singular = "endpoints";
  t.namespaced = true;
  t.short_names = {"ep"};
  t.set_defaults = SetEndpointsDefaults;
  t.validate = ValidateEndpoints;
  t.columns = {
      {"Endpoints", "string", "", "The set of all endpoints is the union of all subsets.", 0},
      AgeColumn()};
  t.cells = [](const Json& obj, WallTime now) -> std::vector<Json> {
    return {FormatEndpoints(obj), AgeCell(obj, now)};
  };
  t.selectable_field = MetadataField;
  return t;
}

// ---------------------------------------------------------------------------------------------
// ConfigMap and Secret.

constexpr int64_t kMaxSecretSize = 1024 * 1024;

void ValidateImmutableData(const Json& obj, const Json* old_obj,
                           std::initializer_list<const char*> fields, FieldErrors& errors) {
  if (old_obj == nullptr || !BoolField(*old_obj, "immutable")) return;
  if (!BoolField(obj, "immutable")) {
    errors.push_back(Forbidden("immutable", "field is immutable when `immutable` is set"));
  }
  for (const char* f : fields) {
    const Json* now = Child(obj, f);
    const Json* before = Child(*old_obj, f);
    Json a = now != nullptr ? Normalized(*now) : Json();
    Json b = before != nullptr ? Normalized(*before) : Json();
    if (a.is_object() && a.empty()) a = Json();
    if (b.is_object() && b.empty()) b = Json();
    if (a != b) errors.push_back(Forbidden(f, "field is immutable when `immutable` is set"));
  }
}

// Validates the keys of a data map and returns the total size of its values (decoded when
// `base64`).
int64_t ValidateDataMap(const Json* data, const std::string& path, bool base64,
                        FieldErrors& errors) {
  if (data == nullptr || data->is_null()) return 0;
  if (!data->is_object()) {
    errors.push_back(InvalidValue(path, *data, "must be a map of string keys to string values"));
    return 0;
  }
  int64_t total = 0;
  for (auto it = data->begin(); it != data->end(); ++it) {
    std::string kp = Key(path, it.key());
    for (auto& m : IsConfigMapKey(it.key())) errors.push_back(InvalidValue(kp, Json(it.key()), m));
    if (!it.value().is_string()) {
      errors.push_back(InvalidValue(kp, it.value(), "must be a string"));
      continue;
    }
    const std::string& v = it.value().get_ref<const std::string&>();
    if (base64) {
      std::string decoded;
      size_t bad = 0;
      if (!Base64Decode(v, &decoded, &bad)) {
        errors.push_back(InvalidValue(kp, Json("<secret contents redacted>"),
                                      "illegal base64 data at input byte " + std::to_string(bad)));
        continue;
      }
      total += static_cast<int64_t>(decoded.size());
    } else {
      total += static_cast<int64_t>(v.size());
    }
  }
  return total;
}

void ValidateConfigMap(const Json& obj, const Json* old_obj, FieldErrors& errors) {
  ValidateMeta(obj, old_obj, true, NameValidation::kDnsSubdomain, errors);
  int64_t total = ValidateDataMap(Child(obj, "data"), "data", false, errors);
  total += ValidateDataMap(Child(obj, "binaryData"), "binaryData", true, errors);
  const Json& data = ObjectAt(obj, "data");
  const Json& binary = ObjectAt(obj, "binaryData");
  for (auto it = data.begin(); it != data.end(); ++it) {
    if (binary.contains(it.key())) {
      errors.push_back(InvalidValue(Key("data", it.key()), Json(it.key()),
                                    "duplicate of key present in binaryData"));
    }
  }
  if (total > kMaxSecretSize) errors.push_back(TooLong("", kMaxSecretSize));
  ValidateImmutableData(obj, old_obj, {"data", "binaryData"}, errors);
}

ResourceType ConfigMapType() {
  ResourceType t;
  t.version = "v1";
  t.kind = "ConfigMap";
  t.plural = "configmaps";
  t.singular = "configmap";
  t.namespaced = true;
  t.short_names = {"cm"};
  t.set_defaults = [](Json&) {};
  t.validate = ValidateConfigMap;
  t.columns = {{"Data", "string", "", "Data contains the configuration data.", 0}, AgeColumn()};
  t.cells = [](const Json& obj, WallTime now) -> std::vector<Json> {
    return {static_cast<int64_t>(CountOf(Child(obj, "data")) + CountOf(Child(obj, "binaryData"))),
            AgeCell(obj, now)};
  };
  t.selectable_field = MetadataField;
  return t;
}

void SetSecretDefaults(Json& secret) {
  if (!secret.is_object()) return;
  SetDefaultString(secret, "type", "Opaque");
  // stringData is write-only: it is merged into data, as the v1 conversion does.
  const Json* sd = Child(secret, "stringData");
  if (sd == nullptr) return;
  if (sd->is_object()) {
    Json* data = MutableObject(secret, "data");
    if (data != nullptr) {
      for (auto it = sd->begin(); it != sd->end(); ++it) {
        if (it.value().is_string()) {
          (*data)[it.key()] = Base64Encode(it.value().get_ref<const std::string&>());
        }
      }
    }
  }
  secret.erase("stringData");
}

void ValidateSecret(const Json& obj, const Json* old_obj, FieldErrors& errors) {
  ValidateMeta(obj, old_obj, true, NameValidation::kDnsSubdomain, errors);
  const Json* data_ptr = Child(obj, "data");
  int64_t total = ValidateDataMap(data_ptr, "data", true, errors);
  if (total > kMaxSecretSize) errors.push_back(TooLong("data", kMaxSecretSize));
  const Json& data = ObjectAt(obj, "data");
  std::string type = StringField(obj, "type");
  auto require_key = [&](const char* key) {
    if (!data.contains(key)) errors.push_back(Required(Key("data", key)));
  };
  if (type == "kubernetes.io/service-account-token") {
    if (StringAt(obj, {"metadata", "annotations", "kubernetes.io/service-account.name"}).empty()) {
      errors.push_back(Required(Key("metadata.annotations", "kubernetes.io/service-account.name")));
    }
  } else if (type == "kubernetes.io/dockercfg" || type == "kubernetes.io/dockerconfigjson") {
    const char* key = type == "kubernetes.io/dockercfg" ? ".dockercfg" : ".dockerconfigjson";
    const Json* v = Child(data, key);
    if (v == nullptr) {
      require_key(key);
    } else if (v->is_string()) {
      std::string decoded;
      size_t bad = 0;
      Json parsed;
      if (Base64Decode(v->get<std::string>(), &decoded, &bad) &&
          !base::ParseJson(decoded, &parsed).ok()) {
        errors.push_back(InvalidValue(Key("data", key), Json("<secret contents redacted>"),
                                      "must be valid JSON"));
      }
    }
  } else if (type == "kubernetes.io/basic-auth") {
    if (!data.contains("username") && !data.contains("password")) {
      require_key("username");
      require_key("password");
    }
  } else if (type == "kubernetes.io/ssh-auth") {
    if (StringField(data, "ssh-privatekey").empty()) {
      errors.push_back(Required(Key("data", "ssh-privatekey")));
    }
  } else if (type == "kubernetes.io/tls") {
    require_key("tls.crt");
    require_key("tls.key");
  }
  if (old_obj != nullptr) {
    ValidateImmutable(Json(type), Json(StringField(*old_obj, "type")), "type", errors);
    ValidateImmutableData(obj, old_obj, {"data"}, errors);
  }
}

ResourceType SecretType() {
  ResourceType t;
  t.version = "v1";
  t.kind = "Secret";
  t.plural = "secrets";
  t.singular = "secret";
  t.namespaced = true;
  t.set_defaults = SetSecretDefaults;
  t.validate = ValidateSecret;
  t.columns = {
      {"Type", "string", "", "Used to facilitate programmatic handling of secret data.", 0},
      {"Data", "string", "", "Data contains the secret data.", 0},
      AgeColumn()};
  t.cells = [](const Json& obj, WallTime now) -> std::vector<Json> {
    return {StringField(obj, "type"), static_cast<int64_t>(CountOf(Child(obj, "data"))),
            AgeCell(obj, now)};
  };
  t.selectable_field = [](const Json& obj, std::string_view field, std::string* value) {
    if (MetadataField(obj, field, value)) return true;
    if (field != "type") return false;
    *value = StringField(obj, "type");
    return true;
  };
  return t;
}

// ---------------------------------------------------------------------------------------------
// Event.

void ValidateEvent(const Json& obj, const Json* old_obj, FieldErrors& errors) {
  ValidateMeta(obj, old_obj, true, NameValidation::kDnsSubdomain, errors);
  std::string ns = StringAt(obj, {"metadata", "namespace"});
  const Json& involved = ObjectAt(obj, "involvedObject");
  std::string involved_ns = StringField(involved, "namespace");
  bool has_event_time = !StringField(obj, "eventTime").empty();
  if (!has_event_time) {
    bool mismatch = involved_ns.empty() ? (!ns.empty() && ns != "default") : ns != involved_ns;
    if (mismatch) {
      errors.push_back(InvalidValue("involvedObject.namespace", Json(involved_ns),
                                    "does not match event.namespace"));
    }
  } else {
    if (involved_ns.empty() && ns != "default" && ns != "kube-system") {
      errors.push_back(InvalidValue("involvedObject.namespace", Json(involved_ns),
                                    "does not match event.namespace"));
    }
    std::string controller = StringField(obj, "reportingComponent");
    if (controller.empty()) {
      errors.push_back(Required("reportingComponent"));
    } else {
      for (auto& m : IsQualifiedName(controller)) {
        errors.push_back(InvalidValue("reportingComponent", Json(controller), m));
      }
    }
    if (StringField(obj, "reportingInstance").empty())
      errors.push_back(Required("reportingInstance"));
    if (StringField(obj, "action").empty()) errors.push_back(Required("action"));
    if (StringField(obj, "reason").empty()) errors.push_back(Required("reason"));
  }
}

std::vector<Json> EventCells(const Json& ev, WallTime now) {
  std::string first_ts = StringField(ev, "firstTimestamp");
  std::string first = first_ts.empty() ? TimestampAge(Json(StringField(ev, "eventTime")), now)
                                       : TimestampAge(Json(first_ts), now);
  std::string last_ts = StringField(ev, "lastTimestamp");
  std::string last = last_ts.empty() ? first : TimestampAge(Json(last_ts), now);
  int64_t count = IntField(ev, "count").value_or(0);
  if (const Json* series = Child(ev, "series"); series != nullptr && series->is_object()) {
    last = TimestampAge(Json(StringField(*series, "lastObservedTime")), now);
    count = IntField(*series, "count").value_or(0);
  } else if (count == 0) {
    count = 1;
  }
  const Json& involved = ObjectAt(ev, "involvedObject");
  std::string kind = StringField(involved, "kind");
  std::transform(kind.begin(), kind.end(), kind.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  std::string name = StringField(involved, "name");
  std::string target = name.empty() ? kind : kind + "/" + name;
  const Json& source = ObjectAt(ev, "source");
  std::string component = StringField(source, "component");
  if (component.empty()) component = StringField(ev, "reportingComponent");
  std::string host = StringField(source, "host");
  if (host.empty()) host = StringField(ev, "reportingInstance");
  std::string source_str = host.empty() ? component : component + ", " + host;
  std::string message = StringField(ev, "message");
  size_t b = message.find_first_not_of(" \t\r\n\v\f");
  size_t e = message.find_last_not_of(" \t\r\n\v\f");
  message = b == std::string::npos ? "" : message.substr(b, e - b + 1);
  return {last,
          StringField(ev, "type"),
          StringField(ev, "reason"),
          target,
          StringField(involved, "fieldPath"),
          source_str,
          message,
          first,
          count,
          StringAt(ev, {"metadata", "name"})};
}

bool EventField(const Json& ev, std::string_view field, std::string* value) {
  if (MetadataField(ev, field, value)) return true;
  static const char* kInvolved[] = {"kind",       "namespace",       "name",     "uid",
                                    "apiVersion", "resourceVersion", "fieldPath"};
  for (const char* f : kInvolved) {
    if (field == std::string("involvedObject.") + f) {
      *value = StringAt(ev, {"involvedObject", f});
      return true;
    }
  }
  if (field == "reason" || field == "type") {
    *value = StringField(ev, std::string(field).c_str());
    return true;
  }
  if (field == "reportingComponent") {
    *value = StringField(ev, "reportingComponent");
    return true;
  }
  if (field == "source") {
    *value = StringAt(ev, {"source", "component"});
    if (value->empty()) *value = StringField(ev, "reportingComponent");
    return true;
  }
  return false;
}

ResourceType EventType() {
  ResourceType t;
  t.version = "v1";
  t.kind = "Event";
  t.plural = "events";
  t.singular = "event";
  t.namespaced = true;
  t.short_names = {"ev"};
  t.set_defaults = [](Json&) {};
  t.validate = ValidateEvent;
  t.server_adds_name_column = false;
  t.columns = {
      {"Last Seen", "string", "",
       "The time at which the most recent occurrence of this event was recorded.", 0},
      {"Type", "string", "",
       "Type of this event (Normal, Warning), new types could be added in the future", 0},
      {"Reason", "string", "",
       "This should be a short, machine understandable string that gives the reason for the "
       "transition into the object's current status.",
       0},
      {"Object", "string", "", "The object that this event is about.", 0},
      {"Subobject", "string", "", "The field of the object the event is about, if any.", 1},
      {"Source", "string", "", "The component reporting this event.", 1},
      {"Message", "string", "", "A human-readable description of the status of this operation.", 0},
      {"First Seen", "string", "", "The time at which the event was first recorded.", 1},
      {"Count", "string", "", "The number of times this event has occurred.", 1},
      {"Name", "string", "name", "Name must be unique within a namespace.", 1},
  };
  t.cells = EventCells;
  t.selectable_field = EventField;
  return t;
}

// ---------------------------------------------------------------------------------------------
// ServiceAccount.

void ValidateServiceAccount(const Json& obj, const Json* old_obj, FieldErrors& errors) {
  ValidateMeta(obj, old_obj, true, NameValidation::kDnsSubdomain, errors);
  const Json& secrets = ArrayAt(obj, "secrets");
  for (size_t i = 0; i < secrets.size(); ++i) {
    ValidateNameWith(Child(secrets[i], "name"), Idx("secrets", i) + ".name", IsDns1123Subdomain,
                     errors);
  }
}

ResourceType ServiceAccountType() {
  ResourceType t;
  t.version = "v1";
  t.kind = "ServiceAccount";
  t.plural = "serviceaccounts";
  t.singular = "serviceaccount";
  t.namespaced = true;
  t.short_names = {"sa"};
  t.set_defaults = [](Json&) {};
  t.validate = ValidateServiceAccount;
  t.columns = {{"Secrets", "string", "",
                "Secrets is a list of the secrets in the same namespace that pods running using "
                "this ServiceAccount are allowed to use.",
                0},
               AgeColumn()};
  t.cells = [](const Json& obj, WallTime now) -> std::vector<Json> {
    return {static_cast<int64_t>(CountOf(Child(obj, "secrets"))), AgeCell(obj, now)};
  };
  t.selectable_field = MetadataField;
  return t;
}

}  // namespace

void AddCoreTypes(Registry* registry) {
  registry->Add(NamespaceType());
  registry->Add(NodeType());
  registry->Add(PodType());
  registry->Add(ServiceType());
  registry->Add(EndpointsType());
  registry->Add(ConfigMapType());
  registry->Add(SecretType());
  registry->Add(EventType());
  registry->Add(ServiceAccountType());
}

}  // namespace fulcrum::api
