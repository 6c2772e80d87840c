#include "agent/agent.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <signal.h>
#include <sys/statvfs.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include "agent/container_stdio.h"
#include "agent/digest.h"
#include "agent/image_store.h"
#include "agent/logs.h"
#include "agent/metrics_endpoint.h"
#include "agent/node_routes.h"
#include "agent/network.h"
#include "agent/probe.h"
#include "agent/qos_manager.h"
#include "agent/registry.h"
#include "agent/runc_runtime.h"
#include "agent/stats.h"
#include "agent/usage_reporter.h"
#include "api/validation.h"
#include "base/base64.h"
#include "base/file.h"
#include "base/strings.h"
#include "base/log.h"
#include "client/api_client.h"
#include "client/events.h"
#include "client/informer.h"

namespace fulcrum::agent {

namespace fs = std::filesystem;
using base::Json;
using base::Status;

std::string ContainerIdFor(const std::string& pod_uid, const std::string& container_name,
                           int fresh_serial) {
  std::string digest = Sha256Digest(pod_uid + "/" + container_name);  // "sha256:<hex>"
  std::string id = "c" + digest.substr(7, 24);
  if (fresh_serial > 0) id += "-" + std::to_string(fresh_serial);
  return id;
}

bool ContainerReuse(const Json& pod) {
  return base::StringAt(pod, {"metadata", "annotations", "fulcrum.dev/container-reuse"}) != "false";
}

namespace {

std::vector<std::string> Strings(const Json* j) {
  std::vector<std::string> out;
  if (j && j->is_array()) {
    for (const Json& s : *j) {
      if (s.is_string()) out.push_back(s.get<std::string>());
    }
  }
  return out;
}

std::optional<int64_t> OptionalInt(const Json& j, std::initializer_list<const char*> path) {
  const Json* v = base::FindPath(j, path);
  if (v && v->is_number_integer()) return v->get<int64_t>();
  return std::nullopt;
}

bool OptionalBool(const Json& j, std::initializer_list<const char*> path) {
  const Json* v = base::FindPath(j, path);
  return v && v->is_boolean() && v->get<bool>();
}

// The value a fieldRef names (downward API).
base::Result<std::string> FieldRef(const Json& pod, const std::string& path,
                                   const std::string& pod_ip, const std::string& host_ip,
                                   const std::string& where) {
  if (path == "metadata.name") return base::StringAt(pod, {"metadata", "name"});
  if (path == "metadata.namespace") return base::StringAt(pod, {"metadata", "namespace"});
  if (path == "metadata.uid") return base::StringAt(pod, {"metadata", "uid"});
  if (path == "spec.nodeName") return base::StringAt(pod, {"spec", "nodeName"});
  if (path == "spec.serviceAccountName") return base::StringAt(pod, {"spec", "serviceAccountName"});
  if (path == "status.podIP") return pod_ip;
  if (path == "status.hostIP") return host_ip;
  for (const char* map : {"labels", "annotations"}) {
    std::string prefix = std::string("metadata.") + map + "['";
    if (path.rfind(prefix, 0) == 0 && path.size() > prefix.size() + 2 &&
        path.compare(path.size() - 2, 2, "']") == 0) {
      std::string key = path.substr(prefix.size(), path.size() - prefix.size() - 2);
      const Json* m = base::FindPath(pod, {"metadata", map});
      return m && m->contains(key) && (*m)[key].is_string() ? (*m)[key].get<std::string>() : "";
    }
  }
  return base::Invalid(where + ".valueFrom.fieldRef.fieldPath: Unsupported value: \"" + path + "\"");
}

}  // namespace

base::Result<ContainerSpecInput> ContainerInputFromPod(
    const Json& pod, const Json& container, const std::string& where,
    const std::vector<std::pair<std::string, std::string>>& volume_dirs, const std::string& pod_ip,
    const std::string& host_ip, EnvSource* env_source) {
  ContainerSpecInput in;
  in.command = Strings(base::FindPath(container, {"command"}));
  in.args = Strings(base::FindPath(container, {"args"}));
  in.working_dir = base::StringAt(container, {"workingDir"});
  const std::string ns = base::StringAt(pod, {"metadata", "namespace"});
  if (const Json* env = base::FindPath(container, {"env"}); env && env->is_array()) {
    for (size_t i = 0; i < env->size(); ++i) {
      const Json& e = (*env)[i];
      std::string name = base::StringAt(e, {"name"});
      std::string w = where + ".env[" + std::to_string(i) + "]";
      const Json* from = base::FindPath(e, {"valueFrom"});
      if (!from || from->is_null()) {
        in.env.emplace_back(name, base::StringAt(e, {"value"}));
        continue;
      }
      if (const Json* f = base::FindPath(*from, {"fieldRef"}); f && f->is_object()) {
        ASSIGN_OR_RETURN(std::string v, FieldRef(pod, base::StringAt(*f, {"fieldPath"}), pod_ip,
                                                 host_ip, w));
        in.env.emplace_back(name, v);
        continue;
      }
      bool found = false;
      for (const char* kind : {"configMapKeyRef", "secretKeyRef"}) {
        const Json* ref = base::FindPath(*from, {kind});
        if (!ref || !ref->is_object()) continue;
        found = true;
        bool secret = std::string(kind) == "secretKeyRef";
        bool optional = OptionalBool(*ref, {"optional"});
        if (env_source == nullptr) return base::Invalid(w + ": no source for " + kind);
        auto v = env_source->Lookup(secret, ns, base::StringAt(*ref, {"name"}),
                                    base::StringAt(*ref, {"key"}));
        if (!v.ok()) {
          if (optional && v.status().IsNotFound()) break;
          return base::Invalid(w + ".valueFrom." + kind + ": " + v.status().message());
        }
        in.env.emplace_back(name, *v);
      }
      if (!found) return base::Invalid(w + ".valueFrom: Unsupported value: only fieldRef, "
                                           "configMapKeyRef and secretKeyRef are supported");
    }
  }

  // securityContext: the container's fields override the pod's.
  const Json* psc = base::FindPath(pod, {"spec", "securityContext"});
  const Json* csc = base::FindPath(container, {"securityContext"});
  auto pick = [&](const char* field) -> std::optional<int64_t> {
    if (csc) {
      if (auto v = OptionalInt(*csc, {field})) return v;
    }
    if (psc) return OptionalInt(*psc, {field});
    return std::nullopt;
  };
  in.run_as_user = pick("runAsUser");
  in.run_as_group = pick("runAsGroup");
  if (csc) {
    in.read_only_root_filesystem = OptionalBool(*csc, {"readOnlyRootFilesystem"});
    in.privileged = OptionalBool(*csc, {"privileged"});
    const Json* ape = base::FindPath(*csc, {"allowPrivilegeEscalation"});
    in.no_new_privileges = ape && ape->is_boolean() && !ape->get<bool>();
    in.capabilities_add = Strings(base::FindPath(*csc, {"capabilities", "add"}));
    in.capabilities_drop = Strings(base::FindPath(*csc, {"capabilities", "drop"}));
  }

  auto quantity = [&](const char* section, const char* resource, bool milli,
                      int64_t* out) -> Status {
    const Json* q = base::FindPath(container, {"resources", section, resource});
    if (!q || q->is_null()) return Status::Ok();
    api::Quantity parsed;
    if (!api::ParseQuantity(*q, &parsed)) {
      return base::Invalid(where + ".resources." + section + "." + resource + ": " +
                           api::kQuantityFormatError);
    }
    *out = milli ? parsed.MilliValue() : parsed.Value();
    return Status::Ok();
  };
  RETURN_IF_ERROR(quantity("limits", "cpu", true, &in.cpu_limit_milli));
  RETURN_IF_ERROR(quantity("limits", "memory", false, &in.memory_limit_bytes));
  RETURN_IF_ERROR(quantity("requests", "cpu", true, &in.cpu_request_milli));
  // A limit without a request requests the limit, as the API server defaults it.
  if (in.cpu_request_milli == 0) in.cpu_request_milli = in.cpu_limit_milli;

  if (const Json* mounts = base::FindPath(container, {"volumeMounts"}); mounts && mounts->is_array()) {
    for (size_t i = 0; i < mounts->size(); ++i) {
      const Json& m = (*mounts)[i];
      std::string name = base::StringAt(m, {"name"});
      auto it = std::find_if(volume_dirs.begin(), volume_dirs.end(),
                             [&](const auto& v) { return v.first == name; });
      if (it == volume_dirs.end()) {
        return base::Invalid(where + ".volumeMounts[" + std::to_string(i) +
                             "].name: Not found: \"" + name + "\"");
      }
      std::string host = it->second;
      std::string sub = base::StringAt(m, {"subPath"});
      if (!sub.empty()) {
        if (sub[0] == '/' || ("/" + sub + "/").find("/../") != std::string::npos) {
          return base::Invalid(where + ".volumeMounts[" + std::to_string(i) +
                               "].subPath: Invalid value: \"" + sub + "\"");
        }
        host += "/" + sub;
      }
      in.mounts.push_back({host, base::StringAt(m, {"mountPath"}), OptionalBool(m, {"readOnly"})});
    }
  }
  std::string hostname = base::StringAt(pod, {"spec", "hostname"});
  in.hostname = hostname.empty() ? base::StringAt(pod, {"metadata", "name"}) : hostname;
  if (in.hostname.size() > 63) in.hostname = in.hostname.substr(0, 63);
  return in;
}

NodeFacts ReadNodeFacts(const AgentOptions& options) {
  NodeFacts f;
  f.cpus = std::max<long>(1, ::sysconf(_SC_NPROCESSORS_ONLN));
  std::ifstream meminfo("/proc/meminfo");
  std::string key;
  int64_t value = 0;
  std::string unit;
  int64_t available = -1;
  while (meminfo >> key >> value) {
    std::getline(meminfo, unit);
    if (key == "MemTotal:") f.memory_bytes = value * 1024;
    if (key == "MemAvailable:") available = value * 1024;
  }
  struct statvfs vfs;
  if (::statvfs(options.root.c_str(), &vfs) == 0) {
    f.ephemeral_storage_bytes = static_cast<int64_t>(vfs.f_blocks) * vfs.f_frsize;
    // The kubelet's default hard eviction thresholds: nodefs.available < 10%, memory < 100Mi.
    f.disk_pressure = vfs.f_bavail * 10 < vfs.f_blocks;
  }
  f.memory_pressure = available >= 0 && available < (100 << 20);
  std::ifstream pid_max("/proc/sys/kernel/pid_max");
  int64_t max_pids = 0;
  pid_max >> max_pids;
  int64_t procs = 0;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/proc", ec)) {
    const std::string n = e.path().filename().string();
    if (!n.empty() && std::all_of(n.begin(), n.end(), ::isdigit)) ++procs;
  }
  f.pid_pressure = max_pids > 0 && procs * 10 > max_pids * 9;
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  f.hostname = host;
  struct utsname u;
  if (::uname(&u) == 0) f.kernel_version = u.release;
  std::ifstream os_release("/etc/os-release");
  std::string line;
  while (std::getline(os_release, line)) {
    if (line.rfind("PRETTY_NAME=", 0) == 0) {
      f.os_image = line.substr(12);
      if (f.os_image.size() >= 2 && f.os_image.front() == '"') {
        f.os_image = f.os_image.substr(1, f.os_image.size() - 2);
      }
    }
  }
  f.node_ip = options.node_ip;
  if (f.node_ip.empty()) {
    struct ifaddrs* addrs = nullptr;
    if (::getifaddrs(&addrs) == 0) {
      for (auto* a = addrs; a; a = a->ifa_next) {
        if (!a->ifa_addr || a->ifa_addr->sa_family != AF_INET || (a->ifa_flags & IFF_LOOPBACK) ||
            !(a->ifa_flags & IFF_UP) || options.bridge == a->ifa_name) {
          continue;
        }
        char buf[INET_ADDRSTRLEN];
        ::inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(a->ifa_addr)->sin_addr, buf, sizeof buf);
        f.node_ip = buf;
        break;
      }
      ::freeifaddrs(addrs);
    }
    if (f.node_ip.empty()) f.node_ip = "127.0.0.1";
  }
  return f;
}

Json NodeObject(const AgentOptions& options, const NodeFacts& f, base::WallTime now) {
  std::string t = base::FormatRfc3339(now);
  auto condition = [&](const char* type, bool status, const char* reason, const char* message) {
    return Json{{"type", type},
                {"status", status ? "True" : "False"},
                {"reason", reason},
                {"message", message},
                {"lastHeartbeatTime", t},
                {"lastTransitionTime", t}};
  };
  Json resources = {{"cpu", std::to_string(f.cpus)},
                    {"memory", std::to_string(f.memory_bytes / 1024) + "Ki"},
                    {"pods", std::to_string(f.pods)},
                    {"ephemeral-storage", std::to_string(f.ephemeral_storage_bytes)}};
  return {
      {"apiVersion", "v1"},
      {"kind", "Node"},
      {"metadata",
       {{"name", options.node_name},
        {"labels",
         {{"kubernetes.io/hostname", options.node_name},
          {"kubernetes.io/os", "linux"},
          {"kubernetes.io/arch", HostArchitecture()}}}}},
      {"spec", {{"podCIDR", options.pod_cidr}, {"podCIDRs", Json::array({options.pod_cidr})}}},
      {"status",
       {{"capacity", resources},
        {"allocatable", resources},
        {"addresses", Json::array({{{"type", "InternalIP"}, {"address", f.node_ip}},
                                   {{"type", "Hostname"}, {"address", f.hostname}}})},
        {"conditions",
         Json::array({condition("MemoryPressure", f.memory_pressure,
                                f.memory_pressure ? "KubeletHasInsufficientMemory"
                                                  : "KubeletHasSufficientMemory",
                                f.memory_pressure ? "kubelet has insufficient memory available"
                                                  : "kubelet has sufficient memory available"),
                      condition("DiskPressure", f.disk_pressure,
                                f.disk_pressure ? "KubeletHasDiskPressure" : "KubeletHasNoDiskPressure",
                                f.disk_pressure ? "kubelet has disk pressure"
                                                : "kubelet has no disk pressure"),
                      condition("PIDPressure", f.pid_pressure,
                                f.pid_pressure ? "KubeletHasInsufficientPID" : "KubeletHasSufficientPID",
                                f.pid_pressure ? "kubelet has insufficient PID available"
                                               : "kubelet has sufficient PID available"),
                      condition("Ready", true, "KubeletReady", "kubelet is posting ready status")})},
        {"daemonEndpoints", {{"kubeletEndpoint", {{"Port", options.kubelet_port}}}}},
        {"nodeInfo",
         {{"machineID", ""},
          {"systemUUID", ""},
          {"bootID", ""},
          {"kernelVersion", f.kernel_version},
          {"osImage", f.os_image},
          {"containerRuntimeVersion", "runc://" + f.runc_version},
          {"kubeletVersion", "v1.30.0-fulcrum"},
          {"kubeProxyVersion", ""},
          {"operatingSystem", "linux"},
          {"architecture", HostArchitecture()}}}}}};
}

namespace {

// What the agent knows of one container of a pod, beyond what the runtime keeps.
struct ContainerRecord {
  std::string id;             // runtime container ID; empty until first created
  int restart_count = 0;
  int fresh_serial = 0;       // containers made for it when reuse is off
  std::string state = "waiting";  // waiting | running | terminated
  std::string reason = "ContainerCreating", message;
  int exit_code = 0;
  std::string started_at, finished_at;
  Json last_state = Json::object();
  bool done = false;          // init containers: exited 0
  int64_t backoff_until_ms = 0;
  int backoff_seconds = 0;
  int64_t backoff_event_until = 0;  // the back-off the last BackOff event was for
  bool pulled_event = false;
  std::string image_id;
  std::unique_ptr<ContainerProbes> probes;  // for this run; not persisted
  int pid = 0;                // the running container's init process; not persisted
  std::shared_ptr<ContainerStdio> stdio;  // this run's stdin or terminal; not persisted
  std::string kill_reason;    // why the agent killed it (liveness, …)

  Json Save() const {
    return {{"id", id}, {"restartCount", restart_count}, {"freshSerial", fresh_serial},
            {"state", state}, {"reason", reason}, {"message", message}, {"exitCode", exit_code},
            {"startedAt", started_at}, {"finishedAt", finished_at}, {"lastState", last_state},
            {"done", done}, {"backoffUntil", backoff_until_ms}, {"backoff", backoff_seconds},
            {"imageID", image_id}};
  }
  void Load(const Json& j) {
    id = base::StringAt(j, {"id"});
    restart_count = j.value("restartCount", 0);
    fresh_serial = j.value("freshSerial", 0);
    state = j.value("state", "waiting");
    reason = j.value("reason", "");
    message = j.value("message", "");
    exit_code = j.value("exitCode", 0);
    started_at = j.value("startedAt", "");
    finished_at = j.value("finishedAt", "");
    last_state = j.value("lastState", Json::object());
    done = j.value("done", false);
    backoff_until_ms = j.value("backoffUntil", int64_t{0});
    backoff_seconds = j.value("backoff", 0);
    image_id = j.value("imageID", "");
    pulled_event = true;
  }
};

struct PodRecord {
  std::string uid, ns, name;
  std::string ip;
  std::string start_time;
  std::map<std::string, ContainerRecord> containers;
  int64_t kill_started_ms = 0;
  Json last_status;  // what was last written to the API
  std::string saved;  // what was last written to state.json
  std::string eviction, evicted_at;  // the batch QoS loop evicted it: why, when (RFC 3339)
  std::vector<std::pair<std::string, std::string>> volume_dirs;
};

int64_t MillisSince(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t)
      .count();
}

int64_t Millis(base::WallTime t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

class ApiEnvSource : public EnvSource {
 public:
  explicit ApiEnvSource(client::ApiClient* api) : api_(api) {}
  base::Result<std::string> Lookup(bool secret, const std::string& ns, const std::string& name,
                                   const std::string& key) override {
    ASSIGN_OR_RETURN(Json obj, api_->Get(client::ResourcePath(
                                   "v1", secret ? "secrets" : "configmaps", ns, name)));
    const Json* data = base::FindPath(obj, {"data"});
    if (!data || !data->contains(key) || !(*data)[key].is_string()) {
      return base::NotFound(std::string(secret ? "secret" : "configmap") + " \"" + name +
                            "\" has no key \"" + key + "\"");
    }
    std::string v = (*data)[key].get<std::string>();
    if (!secret) return v;
    std::string decoded;
    size_t bad = 0;
    if (!base::Base64Decode(v, &decoded, &bad)) return base::Invalid("secret value is not base64");
    return decoded;
  }

 private:
  client::ApiClient* api_;
};

}  // namespace

class NodeAgent::Impl {
 public:
  Impl(AgentOptions options, AgentDeps deps)
      : o_(std::move(options)),
        clock_(deps.clock ? deps.clock : base::RealClock()),
        api_(deps.api),
        images_(deps.images),
        runtime_(deps.runtime),
        network_(deps.network),
        capture_(deps.logs),
        stats_(deps.stats),
        prober_(deps.prober),
        owned_env_(deps.env ? nullptr : std::make_unique<ApiEnvSource>(deps.api)),
        env_source_(deps.env ? deps.env : owned_env_.get()),
        events_(std::make_unique<client::EventRecorder>(api_, clock_, "kubelet", o_.node_name)) {}
  ~Impl() { Stop(); }

  Status Init() {
    if (o_.node_name.empty()) return base::Invalid("--node-name is required");
    RETURN_IF_ERROR(base::MakeDirs(o_.root + "/pods", 0700));
    facts_ = ReadNodeFacts(o_);
    ProcessSpec version;
    version.argv = {o_.runc, "--version"};
    if (auto r = o_.runc.empty() ? base::Result<ProcessResult>(base::NotFound("no runc"))
                                 : NewSystemProcessRunner()->Run(version);
        r.ok() && r->exit_code == 0) {
      std::istringstream in(r->out);
      std::string word;
      in >> word >> word >> facts_.runc_version;  // "runc version 1.1.5"
    }
    LoadRecords();
    if (stats_ && o_.qos.enabled) {
      qos_cgroups_ = NewCgroupCpuBandwidth(DetectCgroupLayout());
      QosActions actions{[this](const std::string& key, const std::string& uid,
                                const std::string& message) { return EvictPod(key, uid, message); },
                         [this](const std::string& key, const std::string& type,
                                const std::string& reason, const std::string& message) {
                           if (auto pod = CachedPod(key)) Event(*pod, type, reason, message);
                         }};
      qos_ = std::make_unique<BatchQos>(o_.qos, qos_cgroups_.get(), actions, clock_);
    }
    RETURN_IF_ERROR(RegisterNode());
    return RenewLease();
  }

  Status StartInformer() {
    if (pods_) return Status::Ok();
    std::string query = "fieldSelector=" + client::QueryEscape("spec.nodeName=" + o_.node_name);
    auto enqueue = [this](const client::ObjectPtr& p) { queue_.Add(client::ObjectKey(*p)); };
    pods_ = std::make_unique<client::Informer>(
        api_, "/api/v1/pods", query,
        client::InformerHandlers{enqueue, [enqueue](const client::ObjectPtr&,
                                                    const client::ObjectPtr& p) { enqueue(p); },
                                 enqueue});
    pods_->Start();
    if (!pods_->WaitForSync(std::chrono::seconds(30))) {
      return base::Unavailable("the pod informer did not list within 30 s");
    }
    return Status::Ok();
  }

  void Start() {
    if (Status s = StartInformer(); !s.ok()) {
      LOG_WARNING << s.ToString();
    }
    for (int i = 0; i < std::max(1, o_.workers); ++i) {
      workers_.emplace_back([this] { Work(); });
    }
    housekeeping_ = std::thread([this] { Housekeeping(); });
  }

  // The kubelet's choice of log (validateContainerLogStatus): the current run's, else the one
  // before; --previous the one before, which during a crash-loop back-off is the last run.
  base::Result<ContainerTarget> FindContainer(const std::string& ns, const std::string& name,
                                              const std::string& container, bool previous) {
    client::ObjectPtr pod = CachedPod(ns + "/" + name);
    if (!pod) return base::NotFound("pod \"" + name + "\" does not exist");
    bool init = false, found = false;
    StdioOptions stdio_options;
    for (const char* list : {"containers", "initContainers"}) {
      if (const Json* cs = base::FindPath(*pod, {"spec", list}); cs && cs->is_array()) {
        for (const auto& c : *cs) {
          if (base::StringAt(c, {"name"}) != container) continue;
          found = true;
          init = std::string(list) == "initContainers";
          stdio_options = StdioOptionsOf(c);
        }
      }
    }
    if (!found) {
      return base::NotFound("container \"" + container + "\" not found in pod \"" + name + "\"");
    }
    std::string policy = base::StringAt(*pod, {"spec", "restartPolicy"});
    if (policy.empty()) policy = "Always";
    std::lock_guard lock(mu_);
    auto rec = records_.find(ns + "/" + name);
    const ContainerRecord* cr = nullptr;
    if (rec != records_.end()) {
      auto it = rec->second->containers.find(container);
      if (it != rec->second->containers.end()) cr = &it->second;
    }
    const std::string quoted = "container \"" + container + "\" in pod \"" + name + "\"";
    if (cr == nullptr || cr->id.empty()) {
      return base::BadRequest(quoted + " is waiting to start: " +
                              (cr == nullptr || cr->reason.empty() ? "ContainerCreating" : cr->reason));
    }
    const PodRecord& r = *rec->second;
    auto log = [&](int run) { return ContainerLogPath(o_.root, r.ns, r.name, r.uid, container, run); };
    ContainerTarget target{cr->id, "", cr->state == "running", stdio_options, cr->stdio};
    if (previous) {
      bool restarting = cr->state == "terminated" &&
                        (init ? cr->exit_code != 0 && policy != "Never"
                              : policy == "Always" || (policy == "OnFailure" && cr->exit_code != 0));
      if (restarting) {
        target.log_path = log(cr->restart_count);
      } else if (cr->restart_count > 0) {
        target.log_path = log(cr->restart_count - 1);
      } else {
        return base::BadRequest("previous terminated container \"" + container + "\" in pod \"" +
                                name + "\" not found");
      }
      target.running = false;
    } else if (fs::exists(log(cr->restart_count)) || cr->restart_count == 0) {
      target.log_path = log(cr->restart_count);
    } else {
      target.log_path = log(cr->restart_count - 1);  // the restart has not started yet
    }
    return target;
  }

  base::Result<std::string> PodNetworkNamespace(const std::string& ns, const std::string& name) {
    std::string uid;
    {
      std::lock_guard lock(mu_);
      auto rec = records_.find(ns + "/" + name);
      if (rec == records_.end()) return base::NotFound("pod \"" + name + "\" does not exist");
      uid = rec->second->uid;
    }
    auto net = network_->Get(uid);
    if (!net.ok()) {
      return base::BadRequest("pod \"" + name + "\" has no network yet: " + net.status().message());
    }
    return net->netns_path;
  }

  client::ObjectPtr CachedPod(const std::string& key) const {
    return pods_ ? pods_->Get(key) : nullptr;
  }

  void FlushEvents() { events_->Flush(); }

  Status Heartbeat() {
    RETURN_IF_ERROR(RenewLease());
    return UpdateNodeStatus();
  }

  void Stop() {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    queue_.ShutDown();
    if (housekeeping_.joinable()) housekeeping_.join();
    if (qos_) qos_->RestoreAll();  // nothing would lift a throttle while no agent runs
    for (auto& t : workers_) t.join();
    workers_.clear();
    if (pods_) pods_->Stop();
    // Containers keep running: the next agent adopts them.
  }

  void SyncPod(const std::string& key) { Sync(key); }

  // Marks a running pod for eviction; its next sync stops it (docs/agent.md, "Batch QoS").
  Status EvictPod(const std::string& key, const std::string& uid, const std::string& message) {
    {
      std::lock_guard lock(mu_);
      auto it = records_.find(key);
      if (it == records_.end() || it->second->uid != uid) {
        return base::NotFound("the agent runs no pod " + key + " with uid " + uid);
      }
      evictions_[key] = {uid, message};
    }
    queue_.Add(key);
    return Status::Ok();
  }

  std::string QosMetricsText() const { return qos_ ? qos_->PrometheusText() : ""; }

 private:
  std::string PodDir(const std::string& uid) const { return o_.root + "/pods/" + uid; }

  void LoadRecords() {
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(o_.root + "/pods", ec)) {
      auto text = base::ReadFile(e.path().string() + "/state.json");
      Json j;
      if (!text.ok() || !base::ParseJson(*text, &j).ok() || !j.is_object()) continue;
      auto rec = std::make_shared<PodRecord>();
      rec->uid = base::StringAt(j, {"uid"});
      rec->ns = base::StringAt(j, {"namespace"});
      rec->name = base::StringAt(j, {"name"});
      rec->ip = base::StringAt(j, {"ip"});
      rec->start_time = base::StringAt(j, {"startTime"});
      rec->eviction = base::StringAt(j, {"eviction"});
      rec->evicted_at = base::StringAt(j, {"evictedAt"});
      rec->saved = *text;
      if (const Json* cs = base::FindPath(j, {"containers"}); cs && cs->is_object()) {
        for (const auto& [name, c] : cs->items()) rec->containers[name].Load(c);
      }
      LOG_INFO << "adopting pod " << rec->ns << "/" << rec->name << " (" << rec->uid << ")";
      std::lock_guard lock(mu_);
      records_[rec->ns + "/" + rec->name] = rec;
    }
  }

  // Writes ROOT/pods/<uid>/state.json when it changed (a write is an fsync: not every resync).
  void SaveRecord(PodRecord& rec) {
    Json cs = Json::object();
    for (const auto& [name, c] : rec.containers) cs[name] = c.Save();
    Json j = {{"uid", rec.uid}, {"namespace", rec.ns}, {"name", rec.name}, {"ip", rec.ip},
              {"startTime", rec.start_time}, {"containers", cs}};
    if (!rec.eviction.empty()) {
      j["eviction"] = rec.eviction;
      j["evictedAt"] = rec.evicted_at;
    }
    std::string text = base::DumpJson(j);
    if (text == rec.saved) return;
    (void)base::MakeDirs(PodDir(rec.uid), 0700);
    Status s = base::WriteFileAtomic(PodDir(rec.uid) + "/state.json", text, 0600);
    if (!s.ok()) {
      LOG_WARNING << "saving pod state: " << s.ToString();
      return;
    }
    rec.saved = std::move(text);
  }

  // ---- Node, lease ----

  Status RegisterNode() {
    Json node = NodeObject(o_, facts_, clock_->Now());
    const std::string path = client::ResourcePath("v1", "nodes", "", o_.node_name);
    auto existing = api_->Get(path);
    if (!existing.ok() && existing.status().IsNotFound()) {
      auto created = api_->Create(client::ResourcePath("v1", "nodes"), node);
      if (!created.ok() && !created.status().IsAlreadyExists()) return created.status();
    } else if (!existing.ok()) {
      return existing.status();
    } else {
      Json patch = {{"metadata", {{"labels", node["metadata"]["labels"]}}},
                    {"spec", node["spec"]}};
      auto patched = api_->Patch(path, client::PatchType::kMerge, patch);
      if (!patched.ok()) return patched.status();
    }
    RETURN_IF_ERROR(UpdateNodeStatus());
    LOG_INFO << "node " << o_.node_name << " registered (" << facts_.cpus << " CPUs, "
             << facts_.memory_bytes / (1 << 20) << " MiB, IP " << facts_.node_ip << ")";
    return Status::Ok();
  }

  Status UpdateNodeStatus() {
    NodeFacts now_facts = ReadNodeFacts(o_);
    now_facts.runc_version = facts_.runc_version;
    Json node = NodeObject(o_, now_facts, clock_->Now());
    // Keep each condition's lastTransitionTime while its status holds.
    auto current = api_->Get(client::ResourcePath("v1", "nodes", "", o_.node_name));
    if (current.ok()) {
      const Json* old = base::FindPath(*current, {"status", "conditions"});
      for (Json& c : node["status"]["conditions"]) {
        if (!old || !old->is_array()) break;
        for (const Json& oc : *old) {
          if (base::StringAt(oc, {"type"}) == c["type"] && base::StringAt(oc, {"status"}) == c["status"]) {
            c["lastTransitionTime"] = base::StringAt(oc, {"lastTransitionTime"});
          }
        }
      }
    }
    auto r = api_->Patch(client::ResourcePath("v1", "nodes", "", o_.node_name, "status"),
                         client::PatchType::kMerge, {{"status", node["status"]}});
    return r.ok() ? Status::Ok() : r.status();
  }

  Status RenewLease() {
    const std::string path =
        client::ResourcePath("coordination.k8s.io/v1", "leases", "kube-node-lease", o_.node_name);
    std::string now = base::FormatRfc3339Micro(clock_->Now());
    auto patched = api_->Patch(path, client::PatchType::kMerge,
                               {{"spec", {{"holderIdentity", o_.node_name}, {"renewTime", now},
                                          {"leaseDurationSeconds", 40}}}});
    if (patched.ok()) return Status::Ok();
    if (!patched.status().IsNotFound()) return patched.status();
    auto ns = api_->Create(client::ResourcePath("v1", "namespaces"),
                           {{"apiVersion", "v1"}, {"kind", "Namespace"},
                            {"metadata", {{"name", "kube-node-lease"}}}});
    (void)ns;
    Json lease = {{"apiVersion", "coordination.k8s.io/v1"},
                  {"kind", "Lease"},
                  {"metadata",
                   {{"name", o_.node_name},
                    {"namespace", "kube-node-lease"},
                    {"ownerReferences",
                     Json::array({{{"apiVersion", "v1"}, {"kind", "Node"}, {"name", o_.node_name},
                                   {"uid", NodeUid()}}})}}},
                  {"spec", {{"holderIdentity", o_.node_name}, {"leaseDurationSeconds", 40},
                            {"renewTime", now}}}};
    if (lease["metadata"]["ownerReferences"][0]["uid"] == "") lease["metadata"].erase("ownerReferences");
    auto created = api_->Create(
        client::ResourcePath("coordination.k8s.io/v1", "leases", "kube-node-lease"), lease);
    return created.ok() || created.status().IsAlreadyExists() ? Status::Ok() : created.status();
  }

  std::string NodeUid() {
    auto node = api_->Get(client::ResourcePath("v1", "nodes", "", o_.node_name));
    return node.ok() ? base::StringAt(*node, {"metadata", "uid"}) : "";
  }

  void Housekeeping() {
    auto next_heartbeat = std::chrono::steady_clock::now();
    for (;;) {
      {
        std::unique_lock lock(mu_);
        if (cv_.wait_for(lock, o_.resync, [this] { return stopping_; })) return;
      }
      // Every pod the API binds here, and every pod we still hold (deleted ones get cleaned up).
      std::set<std::string> keys;
      if (pods_) {
        for (const auto& p : pods_->List()) keys.insert(client::ObjectKey(*p));
      }
      std::vector<SampledContainer> sampled;
      {
        std::lock_guard lock(mu_);
        for (const auto& [key, rec] : records_) keys.insert(key);
        sampled = running_;
      }
      for (const auto& k : keys) queue_.Add(k);
      if (stats_) {
        stats_->SetContainers(sampled);
        stats_->Sample();
        if (qos_) {
          qos_->Tick(QosNodeFrom(stats_->Node(), static_cast<double>(facts_.cpus),
                                 static_cast<uint64_t>(facts_.memory_bytes)),
                     QosContainersFrom(stats_->Containers(),
                                       [this](const std::string& k) { return CachedPod(k); }));
        }
      }
      if (std::chrono::steady_clock::now() >= next_heartbeat) {
        next_heartbeat = std::chrono::steady_clock::now() + o_.heartbeat;
        if (Status s = Heartbeat(); !s.ok()) {
          LOG_WARNING << "heartbeat: " << s.ToString();
        }
      }
    }
  }

  void Work() {
    std::string key;
    while (queue_.Get(&key)) {
      Sync(key);
      queue_.Done(key);
    }
  }

  void Event(const Json& pod, const std::string& type, const std::string& reason,
             const std::string& message) {
    Json ref = {{"apiVersion", "v1"}, {"kind", "Pod"}, {"metadata", pod["metadata"]}};
    events_->Record(ref, type, reason, message);
  }

  std::shared_ptr<PodRecord> Record(const std::string& key) {
    std::lock_guard lock(mu_);
    auto it = records_.find(key);
    return it == records_.end() ? nullptr : it->second;
  }

  // ---- Pod sync ----

  void Sync(const std::string& key) {
    if (!pods_ || !pods_->synced()) {  // adopted pods must not look deleted before the first list
      queue_.AddAfter(key, std::chrono::milliseconds(200));
      return;
    }
    client::ObjectPtr pod = pods_->Get(key);
    std::shared_ptr<PodRecord> rec = Record(key);
    const std::string uid = pod ? base::StringAt(*pod, {"metadata", "uid"}) : "";
    if (rec && (!pod || rec->uid != uid)) {
      // Gone from the API (or replaced by a pod of the same name): stop now.
      LOG_INFO << "pod " << key << " (" << rec->uid << ") is gone; removing its containers";
      for (auto& [name, c] : rec->containers) {
        if (!c.id.empty()) (void)runtime_->Kill(c.id, SIGKILL);
      }
      if (!Cleanup(*rec).ok()) return;
      Forget(key);
      UpdateRunning();
      rec = nullptr;
    }
    if (!pod) return;
    const Json& p = *pod;
    if (p["metadata"].contains("deletionTimestamp")) {
      Terminate(key, p, rec);
      return;
    }
    std::string phase = base::StringAt(p, {"status", "phase"});
    if (!rec && (phase == "Succeeded" || phase == "Failed")) return;  // finished before we knew it
    if (!rec) {
      rec = std::make_shared<PodRecord>();
      rec->uid = uid;
      rec->ns = base::StringAt(p, {"metadata", "namespace"});
      rec->name = base::StringAt(p, {"metadata", "name"});
      rec->start_time = base::FormatRfc3339(clock_->Now());
      std::lock_guard lock(mu_);
      records_[key] = rec;
    }
    const std::vector<int> pids_before = RunningPids(*rec);
    const auto sync_started = std::chrono::steady_clock::now();
    TakeEviction(key, p, *rec);
    if (rec->eviction.empty()) {
      Run(p, *rec);
    } else {
      StopEvicted(key, p, *rec);
    }
    const int64_t run_ms = MillisSince(sync_started);
    SaveRecord(*rec);
    const int64_t save_ms = MillisSince(sync_started) - run_ms;
    WriteStatus(p, *rec);
    const std::vector<int> pids_after = RunningPids(*rec);
    if (pids_after != pids_before) {
      UpdateRunning();
      LOG_DEBUG << "pod " << key << ": synced in " << MillisSince(sync_started) << " ms (run "
                << run_ms << ", record " << save_ms << ")";
    }
  }

  static std::vector<int> RunningPids(const PodRecord& rec) {
    std::vector<int> pids;
    for (const auto& [name, c] : rec.containers) {
      if (c.state == "running" && !c.id.empty()) pids.push_back(c.pid);
    }
    return pids;
  }

  // Moves an eviction the QoS loop asked for into the pod's record (event Evicted).
  void TakeEviction(const std::string& key, const Json& pod, PodRecord& rec) {
    std::string message;
    {
      std::lock_guard lock(mu_);
      auto it = evictions_.find(key);
      if (it == evictions_.end()) return;
      if (it->second.first == rec.uid) message = it->second.second;
      evictions_.erase(it);
    }
    if (message.empty() || !rec.eviction.empty()) return;
    rec.eviction = message;
    rec.evicted_at = base::FormatRfc3339(clock_->Now());
    rec.kill_started_ms = 0;
    Event(pod, "Warning", "Evicted", message);
  }

  // An evicted pod's containers get SIGTERM, then SIGKILL after its grace period; they are not
  // restarted. Its exits are recorded as for any container.
  void StopEvicted(const std::string& key, const Json& pod, PodRecord& rec) {
    const int64_t now = Millis(clock_->Now());
    const int64_t grace = OptionalInt(pod, {"spec", "terminationGracePeriodSeconds"}).value_or(30);
    const bool first = rec.kill_started_ms == 0;
    if (first) rec.kill_started_ms = now;
    bool running = false;
    for (const char* list : {"initContainers", "containers"}) {
      const Json* cs = base::FindPath(pod, {"spec", list});
      if (!cs || !cs->is_array()) continue;
      for (size_t i = 0; i < cs->size(); ++i) {
        const Json& c = (*cs)[i];
        const std::string name = base::StringAt(c, {"name"});
        ContainerRecord& cr = rec.containers[name];
        if (cr.id.empty() || cr.state != "running") continue;
        auto state = runtime_->State(cr.id);
        if (state.ok() && state->status == ContainerStatus::kStopped) {
          SyncContainer(pod, rec, c, std::string("spec.") + list + "[" + std::to_string(i) + "]",
                        cr, "Never", std::string(list) == "initContainers");
          continue;
        }
        if (!state.ok()) {  // gone without a trace
          cr.state = "terminated";
          cr.reason = "Unknown";
          cr.exit_code = 137;
          cr.finished_at = base::FormatRfc3339(clock_->Now());
          continue;
        }
        running = true;
        if (now >= rec.kill_started_ms + grace * 1000) {
          (void)runtime_->Kill(cr.id, SIGKILL);
        } else if (first) {
          Event(pod, "Normal", "Killing", "Stopping container " + name);
          (void)runtime_->Kill(cr.id, SIGTERM);
        }
      }
    }
    if (running) queue_.AddAfter(key, std::chrono::milliseconds(200));
  }

  void Forget(const std::string& key) {
    std::lock_guard lock(mu_);
    records_.erase(key);
  }

  // Graceful deletion: SIGTERM, then SIGKILL after the grace period; once everything has stopped,
  // remove what the pod had and delete the pod object.
  void Terminate(const std::string& key, const Json& pod, std::shared_ptr<PodRecord> rec) {
    if (rec) {
      int64_t now = Millis(clock_->Now());
      int64_t grace = OptionalInt(pod, {"metadata", "deletionGracePeriodSeconds"}).value_or(30);
      bool first = rec->kill_started_ms == 0;
      if (first) rec->kill_started_ms = now;
      bool overdue = now >= rec->kill_started_ms + grace * 1000;
      bool all_stopped = true;
      for (auto& [name, c] : rec->containers) {
        if (c.id.empty()) continue;
        auto state = runtime_->State(c.id);
        if (!state.ok() || state->status == ContainerStatus::kStopped) continue;
        if (state->status == ContainerStatus::kCreated || overdue) {
          (void)runtime_->Kill(c.id, SIGKILL);
        } else if (first) {
          Event(pod, "Normal", "Killing", "Stopping container " + name);
          (void)runtime_->Kill(c.id, SIGTERM);
        }
        all_stopped = false;
      }
      if (!all_stopped) {
        queue_.AddAfter(key, std::chrono::milliseconds(200));
        return;
      }
      if (!Cleanup(*rec).ok()) {
        queue_.AddAfter(key, std::chrono::seconds(1));
        return;
      }
      Forget(key);
      UpdateRunning();
    }
    Json options = {{"apiVersion", "v1"},
                    {"kind", "DeleteOptions"},
                    {"gracePeriodSeconds", 0},
                    {"preconditions", {{"uid", base::StringAt(pod, {"metadata", "uid"})}}}};
    auto deleted = api_->Delete(client::ResourcePath("v1", "pods", base::StringAt(pod, {"metadata", "namespace"}),
                                                     base::StringAt(pod, {"metadata", "name"})),
                                options);
    if (!deleted.ok() && !deleted.status().IsNotFound() && !deleted.status().IsConflict()) {
      LOG_WARNING << "deleting pod " << key << ": " << deleted.status().ToString();
      queue_.AddAfter(key, std::chrono::seconds(1));
    }
  }

  // Removes containers, network, volumes, logs and state of a pod whose containers are stopped.
  Status Cleanup(PodRecord& rec) {
    for (auto& [name, c] : rec.containers) {
      if (c.id.empty()) continue;
      capture_->Detach(c.id);
      for (int serial = 0; serial <= c.fresh_serial; ++serial) {
        Status s = runtime_->Delete(ContainerIdFor(rec.uid, name, serial));
        if (!s.ok()) {
          LOG_WARNING << "deleting container " << c.id << ": " << s.ToString();
          return s;
        }
      }
    }
    Status net = network_->Teardown(rec.uid);
    if (!net.ok()) {
      LOG_WARNING << "network teardown for pod " << rec.uid << ": " << net.ToString();
      return net;
    }
    std::error_code ec;
    fs::remove_all(PodDir(rec.uid), ec);
    fs::remove_all(LogDir(rec), ec);
    return Status::Ok();
  }

  std::string LogDir(const PodRecord& rec) const {
    return o_.root + "/logs/" + rec.ns + "_" + rec.name + "_" + rec.uid;
  }

  Status PrepareVolumes(const Json& pod, PodRecord& rec) {
    rec.volume_dirs.clear();
    const Json* volumes = base::FindPath(pod, {"spec", "volumes"});
    if (!volumes || !volumes->is_array()) return Status::Ok();
    for (const Json& v : *volumes) {
      std::string name = base::StringAt(v, {"name"});
      std::string dir = PodDir(rec.uid) + "/volumes/" + name;
      if (v.contains("hostPath")) {
        std::string path = base::StringAt(v, {"hostPath", "path"});
        std::string type = base::StringAt(v, {"hostPath", "type"});
        if (type == "DirectoryOrCreate") RETURN_IF_ERROR(base::MakeDirs(path, 0755));
        if (!fs::exists(path)) return base::NotFound("hostPath " + path + " does not exist");
        rec.volume_dirs.emplace_back(name, path);
        continue;
      }
      RETURN_IF_ERROR(base::MakeDirs(dir, 0777));
      for (const char* kind : {"configMap", "secret"}) {
        if (!v.contains(kind)) continue;
        bool secret = std::string(kind) == "secret";
        std::string source = base::StringAt(v, {kind, secret ? "secretName" : "name"});
        auto obj = api_->Get(client::ResourcePath("v1", secret ? "secrets" : "configmaps",
                                                  rec.ns, source));
        if (!obj.ok()) {
          if (OptionalBool(v, {kind, "optional"})) continue;
          return base::NotFound(std::string(kind) + " \"" + source + "\" not found");
        }
        const Json* data = base::FindPath(*obj, {"data"});
        if (!data || !data->is_object()) continue;
        for (const auto& [k, value] : data->items()) {
          if (!value.is_string() || k.find('/') != std::string::npos || k == ".." || k == ".") continue;
          std::string content = value.get<std::string>();
          if (secret) {
            std::string decoded;
            size_t bad = 0;
            if (!base::Base64Decode(content, &decoded, &bad)) continue;
            content = decoded;
          }
          RETURN_IF_ERROR(base::WriteFileAtomic(dir + "/" + k, content, 0644));
        }
      }
      rec.volume_dirs.emplace_back(name, dir);  // emptyDir, configMap, secret
    }
    return Status::Ok();
  }

  void Run(const Json& pod, PodRecord& rec) {
    const std::string phase = base::StringAt(pod, {"status", "phase"});
    if (rec.ip.empty()) {
      PodNetworkRequest req;
      req.uid = rec.uid;
      req.pod_namespace = rec.ns;
      req.pod_name = rec.name;
      req.hostname = base::StringAt(pod, {"spec", "hostname"});
      req.subdomain = base::StringAt(pod, {"spec", "subdomain"});
      for (const char* list : {"initContainers", "containers"}) {
        const Json* cs = base::FindPath(pod, {"spec", list});
        if (!cs || !cs->is_array()) continue;
        for (const Json& c : *cs) {
          const Json* ports = base::FindPath(c, {"ports"});
          if (!ports || !ports->is_array()) continue;
          for (const Json& port : *ports) {
            int host_port = port.value("hostPort", 0);
            if (host_port <= 0) continue;
            std::string proto = base::StringAt(port, {"protocol"});
            std::transform(proto.begin(), proto.end(), proto.begin(), ::tolower);
            req.host_ports.push_back({port.value("containerPort", 0), host_port,
                                      proto.empty() ? "tcp" : proto,
                                      base::StringAt(port, {"hostIP"})});
          }
        }
      }
      const auto setup_started = std::chrono::steady_clock::now();
      auto net = network_->Setup(req);
      LOG_DEBUG << "pod " << rec.ns << "/" << rec.name << ": network set up in "
                << MillisSince(setup_started) << " ms";
      if (!net.ok()) {
        Event(pod, "Warning", "FailedCreatePodSandBox",
              "Failed to create pod sandbox: " + net.status().message());
        SetWaitingAll(pod, rec, "ContainerCreating", net.status().message());
        return;
      }
      rec.ip = net->ip;
    }
    Status volumes = PrepareVolumes(pod, rec);
    if (!volumes.ok()) {
      Event(pod, "Warning", "FailedMount", volumes.message());
      SetWaitingAll(pod, rec, "ContainerCreating", volumes.message());
      return;
    }
    const std::string policy = base::StringAt(pod, {"spec", "restartPolicy"}).empty()
                                    ? "Always"
                                    : base::StringAt(pod, {"spec", "restartPolicy"});
    // Init containers, one at a time, each to a successful exit.
    const Json* inits = base::FindPath(pod, {"spec", "initContainers"});
    if (inits && inits->is_array()) {
      for (size_t i = 0; i < inits->size(); ++i) {
        const Json& c = (*inits)[i];
        ContainerRecord& cr = rec.containers[base::StringAt(c, {"name"})];
        if (cr.done) continue;
        // Init containers restart unless the pod's policy is Never.
        SyncContainer(pod, rec, c, "spec.initContainers[" + std::to_string(i) + "]", cr,
                      policy == "Never" ? "Never" : "OnFailure", true);
        if (!cr.done) return;
      }
    }
    if (phase == "Succeeded" || phase == "Failed") return;
    const Json* cs = base::FindPath(pod, {"spec", "containers"});
    if (!cs || !cs->is_array()) return;
    for (size_t i = 0; i < cs->size(); ++i) {
      const Json& c = (*cs)[i];
      SyncContainer(pod, rec, c, "spec.containers[" + std::to_string(i) + "]",
                    rec.containers[base::StringAt(c, {"name"})], policy, false);
    }
  }

  void SetWaitingAll(const Json& pod, PodRecord& rec, const std::string& reason,
                     const std::string& message) {
    for (const char* list : {"initContainers", "containers"}) {
      const Json* cs = base::FindPath(pod, {"spec", list});
      if (!cs || !cs->is_array()) continue;
      for (const Json& c : *cs) {
        ContainerRecord& cr = rec.containers[base::StringAt(c, {"name"})];
        if (cr.state == "waiting") {
          cr.reason = reason;
          cr.message = message;
        }
      }
    }
  }

  void SyncContainer(const Json& pod, PodRecord& rec, const Json& c, const std::string& where,
                     ContainerRecord& cr, const std::string& policy, bool init) {
    const std::string name = base::StringAt(c, {"name"});
    const int64_t now = Millis(clock_->Now());
    std::optional<ContainerState> state;
    if (!cr.id.empty()) {
      auto s = runtime_->State(cr.id);
      if (s.ok()) state = *s;
    }
    if (state && state->status == ContainerStatus::kRunning) {
      cr.pid = state->pid;
      if (cr.state != "running") {  // adopted, or started by a sync that did not see it run
        cr.state = "running";
        cr.reason.clear();
        cr.message.clear();
      }
      if (!capture_->Attached(cr.id)) AttachLogs(rec, name, cr);
      if (!cr.probes) cr.probes = MakeProbes(c, where, cr);
      if (cr.probes) {
        cr.probes->Run(*prober_, {cr.id, rec.ip}, clock_->Now());
        if (cr.probes->ShouldRestart() && cr.kill_reason.empty()) {
          ProbeKind kind = *cr.probes->RestartKind();
          Event(pod, "Warning", "Unhealthy", cr.probes->LastFailure());
          Event(pod, "Normal", "Killing",
                "Container " + name + " failed " + std::string(ProbeKindName(kind)) +
                    " probe, will be restarted");
          cr.kill_reason = "Error";
          (void)runtime_->Kill(cr.id, SIGKILL);
        }
      }
      // A container that has run 10 minutes has its back-off forgotten.
      base::WallTime started;
      if (cr.backoff_seconds > 0 && base::ParseRfc3339(cr.started_at, &started) &&
          now - Millis(started) > 600000) {
        cr.backoff_seconds = 0;
      }
      return;
    }
    if (state && state->status == ContainerStatus::kCreated) {
      (void)runtime_->Start(cr.id);
      return;
    }
    if (state && state->status == ContainerStatus::kStopped && cr.state == "running") {
      // It exited: record how.
      cr.state = "terminated";
      cr.exit_code = state->has_exit_code ? state->exit_code : 0;
      cr.finished_at = base::FormatRfc3339(clock_->Now());
      cr.reason = !state->has_exit_code ? "Unknown" : cr.exit_code == 0 ? "Completed" : "Error";
      if (!state->has_exit_code) {
        cr.message = "the container exited while no agent was watching it";
        cr.exit_code = 137;
      } else {
        cr.message.clear();
      }
      if (state->has_exit_code && cr.exit_code == 137 && cr.kill_reason.empty()) {
        // A kill by the kernel's OOM killer shows as SIGKILL; the kubelet asks the cgroup.
        cr.reason = "Error";
      }
      cr.kill_reason.clear();
      cr.probes.reset();
      capture_->Detach(cr.id);
      if (init && cr.exit_code == 0) cr.done = true;
    }
    if (cr.state == "terminated") {
      bool restart = policy == "Always" || (policy == "OnFailure" && cr.exit_code != 0);
      if (!restart) return;
      if (now < cr.backoff_until_ms) {
        // Shown as waiting (CrashLoopBackOff) with the last run in lastState; one event per wait.
        if (cr.backoff_event_until != cr.backoff_until_ms) {
          cr.backoff_event_until = cr.backoff_until_ms;
          Event(pod, "Warning", "BackOff",
                "Back-off restarting failed container " + name + " in pod " + rec.name + "_" +
                    rec.ns + "(" + rec.uid + ")");
        }
        return;
      }
    } else if (cr.state == "waiting" && now < cr.backoff_until_ms) {
      if (cr.reason == "ErrImagePull") {  // the kubelet's second word for a failing pull
        cr.reason = "ImagePullBackOff";
        cr.message = "Back-off pulling image \"" + base::StringAt(c, {"image"}) + "\"";
        Event(pod, "Normal", "BackOff", cr.message);
      }
      return;
    }
    StartContainer(pod, rec, c, where, cr, init);
  }

  std::unique_ptr<ContainerProbes> MakeProbes(const Json& c, const std::string& where,
                                              const ContainerRecord& cr) {
    std::optional<ProbeSpec> specs[3];
    const char* fields[3] = {"startupProbe", "livenessProbe", "readinessProbe"};
    ProbeKind kinds[3] = {ProbeKind::kStartup, ProbeKind::kLiveness, ProbeKind::kReadiness};
    for (int i = 0; i < 3; ++i) {
      const Json* p = base::FindPath(c, {fields[i]});
      if (!p || p->is_null()) continue;
      auto spec = ParseProbe(*p, c, kinds[i], where + "." + fields[i]);
      if (spec.ok()) {
        specs[i] = *spec;
      } else {
        LOG_WARNING << spec.status().ToString();
      }
    }
    base::WallTime started = clock_->Now();
    (void)base::ParseRfc3339(cr.started_at, &started);
    return std::make_unique<ContainerProbes>(specs[0], specs[1], specs[2], started);
  }

  void AttachLogs(PodRecord& rec, const std::string& name, ContainerRecord& cr) {
    auto writer = CriLogWriter::Open(
        ContainerLogPath(o_.root, rec.ns, rec.name, rec.uid, name, cr.restart_count), {}, clock_);
    if (!writer.ok()) return;
    (void)capture_->Attach(cr.id, PodDir(rec.uid) + "/fifo/" + name, std::move(*writer));
  }

  void Backoff(const Json& pod, const std::string& name, ContainerRecord& cr) {
    cr.backoff_seconds = cr.backoff_seconds == 0 ? kBackoffInitialSeconds
                                                 : std::min(kBackoffMaxSeconds, cr.backoff_seconds * 2);
    cr.backoff_until_ms = Millis(clock_->Now()) + cr.backoff_seconds * 1000;
  }

  // The image of container `c`, pulled from its registry as the container's imagePullPolicy
  // says (Never, IfNotPresent, Always; unset: Always for a :latest or untagged image), with the
  // credentials of the pod's imagePullSecrets. On failure *reason is the waiting reason the
  // kubelet gives: InvalidImageName, ErrImageNeverPull or ErrImagePull.
  base::Result<ImageRecord> EnsureImage(const Json& pod, const Json& c, ContainerRecord& cr,
                                        std::string* reason) {
    const std::string image_ref = base::StringAt(c, {"image"});
    auto ref = NormaliseImageRef(image_ref);
    if (!ref.ok()) {
      *reason = "InvalidImageName";
      return base::Invalid("Failed to apply default image tag \"" + image_ref +
                           "\": couldn't parse image name: " + ref.status().message());
    }
    std::string policy = base::StringAt(c, {"imagePullPolicy"});
    if (policy.empty()) {
      bool latest = ref->size() > 7 && ref->compare(ref->size() - 7, 7, ":latest") == 0;
      policy = latest ? "Always" : "IfNotPresent";
    }
    auto present = images_->Resolve(*ref);
    if (policy == "Never" || (policy == "IfNotPresent" && present.ok())) {
      if (!present.ok()) {
        *reason = "ErrImageNeverPull";
        return base::NotFound("Container image \"" + image_ref +
                              "\" is not present with pull policy of Never");
      }
      if (!cr.pulled_event) {
        Event(pod, "Normal", "Pulled",
              "Container image \"" + image_ref + "\" already present on machine");
        cr.pulled_event = true;
      }
      return present;
    }
    Event(pod, "Normal", "Pulling", "Pulling image \"" + image_ref + "\"");
    auto started = std::chrono::steady_clock::now();
    RegistryAuth auth;
    if (auto name = SplitReference(*ref); name.ok()) auth = PullSecretAuth(pod, name->registry);
    RegistryOptions registry;
    registry.insecure = base::SplitList(o_.insecure_registries);
    auto source = OpenRegistry(*ref, registry, auth);
    auto pulled = source.ok() ? images_->Pull(*ref, source->get())
                              : base::Result<std::string>(source.status());
    if (!pulled.ok()) {
      *reason = "ErrImagePull";
      return base::Status(pulled.status().code(), "Failed to pull image \"" + image_ref +
                                                      "\": " + pulled.status().message());
    }
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    char took[32];
    std::snprintf(took, sizeof(took), "%.3fs", seconds);
    Event(pod, "Normal", "Pulled",
          "Successfully pulled image \"" + image_ref + "\" in " + took);
    cr.pulled_event = true;
    return images_->Resolve(*pulled);
  }

  // The credentials for `registry` in the first of the pod's imagePullSecrets
  // (kubernetes.io/dockerconfigjson or kubernetes.io/dockercfg) that has any.
  RegistryAuth PullSecretAuth(const Json& pod, const std::string& registry) {
    const Json* secrets = base::FindPath(pod, {"spec", "imagePullSecrets"});
    if (secrets == nullptr || !secrets->is_array()) return {};
    std::string ns = base::StringAt(pod, {"metadata", "namespace"});
    for (const auto& ref : *secrets) {
      std::string name = base::StringAt(ref, {"name"});
      for (const char* key : {".dockerconfigjson", ".dockercfg"}) {
        auto text = env_source_->Lookup(true, ns, name, key);
        Json config;
        if (!text.ok() || !base::ParseJson(*text, &config).ok()) continue;
        RegistryAuth auth = AuthFromDockerConfig(config, registry);
        if (!auth.username.empty() || !auth.password.empty()) return auth;
      }
    }
    return {};
  }

  void StartContainer(const Json& pod, PodRecord& rec, const Json& c, const std::string& where,
                      ContainerRecord& cr, bool init) {
    const std::string name = base::StringAt(c, {"name"});
    const std::string image_ref = base::StringAt(c, {"image"});
    const bool restarting = cr.state == "terminated";
    auto fail = [&](const std::string& reason, const std::string& message) {
      if (restarting) {
        cr.last_state = TerminatedJson(cr);
        cr.restart_count++;
      }
      cr.state = "waiting";
      cr.reason = reason;
      cr.message = message;
      Event(pod, "Warning", "Failed", message);
      Event(pod, "Warning", "Failed", "Error: " + reason);
      Backoff(pod, name, cr);
    };
    std::string pull_failure;
    auto image = EnsureImage(pod, c, cr, &pull_failure);
    if (!image.ok()) {
      fail(pull_failure, image.status().message());
      return;
    }
    cr.image_id = image->ref.substr(0, image->ref.rfind(':')) + "@" + image->manifest_digest;
    auto net = network_->Get(rec.uid);
    if (!net.ok()) {
      rec.ip.clear();  // set up again on the next sync
      return;
    }
    auto input = ContainerInputFromPod(pod, c, where, rec.volume_dirs, rec.ip, facts_.node_ip,
                                       env_source_);
    if (!input.ok()) {
      fail("CreateContainerConfigError", input.status().message());
      return;
    }
    input->network_namespace_path = net->netns_path;
    input->etc_hosts_path = net->etc_hosts_path;
    input->resolv_conf_path = net->resolv_conf_path;
    input->terminal = StdioOptionsOf(c).tty;
    // The container's last ID when it is reused, else a new one (with reuse off, a new serial).
    const bool reuse = ContainerReuse(pod) && !cr.id.empty();
    const bool replace = !cr.id.empty() && !reuse;
    const std::string id = cr.id.empty() ? ContainerIdFor(rec.uid, name)
                           : reuse       ? cr.id
                                         : ContainerIdFor(rec.uid, name, cr.fresh_serial + 1);
    if (!o_.pods_cgroup.empty()) input->cgroups_path = o_.pods_cgroup + "/" + id;
    auto spec = BuildOciSpec(*input, image->config);
    if (!spec.ok()) {
      fail("CreateContainerConfigError", spec.status().message());
      return;
    }
    if (replace) {
      (void)runtime_->Delete(cr.id);
      cr.fresh_serial++;
    }
    int restart_count = cr.restart_count + (restarting ? 1 : 0);
    auto writer = CriLogWriter::Open(
        ContainerLogPath(o_.root, rec.ns, rec.name, rec.uid, name, restart_count), {}, clock_);
    if (!writer.ok()) {
      fail("CreateContainerError", writer.status().message());
      return;
    }
    auto pipes = capture_->Attach(id, PodDir(rec.uid) + "/fifo/" + name, std::move(*writer));
    if (!pipes.ok()) {
      fail("CreateContainerError", pipes.status().message());
      return;
    }
    auto stdio = ContainerStdio::Open(StdioOptionsOf(c));
    if (!stdio.ok()) {
      capture_->Detach(id);
      fail("CreateContainerError", stdio.status().message());
      return;
    }
    ContainerBundle bundle{*spec, image->layer_dirs, pipes->stdout_path, pipes->stderr_path};
    if (*stdio) (*stdio)->Prepare(&bundle, capture_, id);
    // Created and started by one runtime call (`runc run --detach`): a runc process less.
    const auto run_started = std::chrono::steady_clock::now();
    Status ran = runtime_->Run(id, bundle);
    LOG_DEBUG << "pod " << rec.ns << "/" << rec.name << ": container " << name << " run in "
              << MillisSince(run_started) << " ms";
    if (ran.ok() && *stdio) ran = (*stdio)->Started(capture_, id);
    if (!ran.ok()) {
      capture_->Detach(id);
      cr.id = id;
      fail("CreateContainerError", ran.message());
      return;
    }
    {
      std::lock_guard lock(mu_);  // FindContainer reads it for the pod server
      cr.stdio = std::move(*stdio);
    }
    if (restarting) {
      cr.last_state = TerminatedJson(cr);
      cr.restart_count = restart_count;
    }
    cr.id = id;
    Event(pod, "Normal", "Created",
          reuse ? "Reused container " + name + " (" + id + ") on its writable layer"
                : "Created container " + name);
    Event(pod, "Normal", "Started", "Started container " + name);
    auto state = runtime_->State(id);
    cr.pid = state.ok() ? state->pid : 0;
    cr.state = "running";
    cr.reason.clear();
    cr.message.clear();
    cr.started_at = base::FormatRfc3339(clock_->Now());
    cr.probes = MakeProbes(c, where, cr);
    if (restarting) Backoff(pod, name, cr);  // the next restart waits longer
    (void)init;
  }

  static Json TerminatedJson(const ContainerRecord& cr) {
    Json t = {{"exitCode", cr.exit_code}, {"reason", cr.reason}, {"startedAt", cr.started_at},
              {"finishedAt", cr.finished_at}, {"containerID", "runc://" + cr.id}};
    if (!cr.message.empty()) t["message"] = cr.message;
    return {{"terminated", t}};
  }

  Json StatusOfContainer(const Json& c, const ContainerRecord& cr, bool init, int64_t now,
                       const std::string& policy) const {
    Json s = {{"name", base::StringAt(c, {"name"})},
              {"image", base::StringAt(c, {"image"})},
              {"imageID", cr.image_id},
              {"restartCount", cr.restart_count},
              {"lastState", cr.last_state.empty() ? Json::object() : cr.last_state}};
    if (!cr.id.empty()) s["containerID"] = "runc://" + cr.id;
    bool running = cr.state == "running";
    if (running) {
      s["state"] = {{"running", {{"startedAt", cr.started_at}}}};
    } else if (cr.state == "terminated") {
      bool restart = !init && (policy == "Always" || (policy == "OnFailure" && cr.exit_code != 0));
      bool init_restart = init && cr.exit_code != 0 && policy != "Never";
      if ((restart || init_restart) && now < cr.backoff_until_ms) {
        s["state"] = {{"waiting",
                       {{"reason", "CrashLoopBackOff"},
                        {"message", "back-off " + std::to_string(cr.backoff_seconds) +
                                        "s restarting failed container=" +
                                        base::StringAt(c, {"name"})}}}};
        s["lastState"] = TerminatedJson(cr);
      } else {
        s["state"] = TerminatedJson(cr);
      }
    } else {
      Json w = {{"reason", cr.reason.empty() ? "ContainerCreating" : cr.reason}};
      if (!cr.message.empty()) w["message"] = cr.message;
      s["state"] = {{"waiting", w}};
    }
    bool started = running && (!cr.probes || cr.probes->Started());
    bool ready = running && (!cr.probes || cr.probes->Ready());
    if (init) ready = cr.done;
    s["ready"] = ready;
    if (!init) s["started"] = started;
    return s;
  }

  void WriteStatus(const Json& pod, PodRecord& rec) {
    const std::string policy = base::StringAt(pod, {"spec", "restartPolicy"}).empty()
                                   ? "Always"
                                   : base::StringAt(pod, {"spec", "restartPolicy"});
    const int64_t now = Millis(clock_->Now());
    Json init_statuses = Json::array(), statuses = Json::array();
    bool initialized = true, init_failed = false;
    const Json* inits = base::FindPath(pod, {"spec", "initContainers"});
    if (inits && inits->is_array()) {
      for (const Json& c : *inits) {
        const ContainerRecord& cr = rec.containers[base::StringAt(c, {"name"})];
        init_statuses.push_back(StatusOfContainer(c, cr, true, now, policy));
        if (!cr.done) initialized = false;
        if (cr.state == "terminated" && cr.exit_code != 0 && policy == "Never") init_failed = true;
      }
    }
    int running = 0, waiting = 0, stopped = 0, succeeded = 0, ready = 0, total = 0;
    const Json* cs = base::FindPath(pod, {"spec", "containers"});
    if (cs && cs->is_array()) {
      for (const Json& c : *cs) {
        const ContainerRecord& cr = rec.containers[base::StringAt(c, {"name"})];
        Json s = StatusOfContainer(c, cr, false, now, policy);
        ++total;
        if (s["ready"].get<bool>()) ++ready;
        if (s["state"].contains("running")) {
          ++running;
        } else if (s["state"].contains("terminated")) {
          ++stopped;
          if (cr.exit_code == 0) ++succeeded;
        } else if (!s["lastState"].empty()) {
          ++stopped;  // waiting to restart
        } else {
          ++waiting;
        }
        statuses.push_back(std::move(s));
      }
    }
    std::string phase;
    if (init_failed) phase = "Failed";
    else if (!initialized || waiting > 0) phase = "Pending";
    else if (running > 0) phase = "Running";
    else if (stopped > 0) {
      if (policy == "Always") phase = "Running";
      else if (stopped == succeeded) phase = "Succeeded";
      else if (policy == "Never") phase = "Failed";
      else phase = "Running";
    } else phase = "Pending";

    const Json* old_conditions = base::FindPath(pod, {"status", "conditions"});
    std::string t = base::FormatRfc3339(clock_->Now());
    auto condition = [&](const char* type, bool value, const std::string& reason) {
      Json c = {{"type", type}, {"status", value ? "True" : "False"}, {"lastProbeTime", nullptr},
                {"lastTransitionTime", t}};
      if (!reason.empty()) c["reason"] = reason;
      if (old_conditions && old_conditions->is_array()) {
        for (const Json& oc : *old_conditions) {
          if (oc.value("type", "") == type && oc.value("status", "") == c["status"]) {
            c["lastTransitionTime"] = oc.value("lastTransitionTime", t);
          }
        }
      }
      return c;
    };
    bool containers_ready = total > 0 && ready == total && initialized;
    bool terminal = phase == "Succeeded" || phase == "Failed";
    std::string not_ready = terminal ? "PodCompleted" : "ContainersNotReady";
    Json status = {
        {"phase", phase},
        {"conditions",
         Json::array({condition("Initialized", initialized || terminal,
                                initialized || terminal ? (terminal ? "PodCompleted" : "")
                                                        : "ContainersNotInitialized"),
                      condition("Ready", containers_ready, containers_ready ? "" : not_ready),
                      condition("ContainersReady", containers_ready,
                                containers_ready ? "" : not_ready),
                      condition("PodScheduled", true, "")})},
        {"hostIP", facts_.node_ip},
        {"hostIPs", Json::array({{{"ip", facts_.node_ip}}})},
        {"startTime", rec.start_time},
        {"containerStatuses", statuses}};
    if (!init_statuses.empty()) status["initContainerStatuses"] = init_statuses;
    if (!rec.ip.empty()) {
      status["podIP"] = rec.ip;
      status["podIPs"] = Json::array({{{"ip", rec.ip}}});
    }
    if (!rec.eviction.empty()) {
      ApplyEvictionToStatus(&status, rec.eviction, RunningPids(rec).empty(), rec.evicted_at);
    }
    if (status == rec.last_status) return;
    auto r = api_->Patch(client::ResourcePath("v1", "pods", rec.ns, rec.name, "status"),
                         client::PatchType::kMerge, {{"status", status}});
    if (r.ok()) {
      rec.last_status = status;
    } else if (!r.status().IsNotFound()) {
      LOG_WARNING << "pod " << rec.ns << "/" << rec.name << " status: " << r.status().ToString();
    }
  }

  // The running containers, for the stats sampler.
  void UpdateRunning() {
    std::vector<SampledContainer> running;
    std::lock_guard lock(mu_);
    for (const auto& [key, rec] : records_) {
      for (const auto& [name, c] : rec->containers) {
        if (c.state != "running" || c.id.empty() || c.pid <= 0) continue;
        running.push_back({rec->ns, rec->name, name, c.pid});
      }
    }
    running_ = std::move(running);
  }

  const AgentOptions o_;
  base::Clock* const clock_;
  client::ApiClient* const api_;
  ImageStore* const images_;
  ContainerRuntime* const runtime_;
  PodNetwork* const network_;
  LogCapture* const capture_;
  StatsCollector* const stats_;
  Prober* const prober_;
  const std::unique_ptr<EnvSource> owned_env_;
  EnvSource* const env_source_;
  // Events go out from their own thread: a pod's start does not wait on them.
  const std::unique_ptr<client::EventRecorder> events_;
  std::unique_ptr<client::Informer> pods_;
  NodeFacts facts_;
  client::WorkQueue queue_;

  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;                                         // guarded by mu_
  std::map<std::string, std::shared_ptr<PodRecord>> records_;     // guarded by mu_
  std::vector<SampledContainer> running_;                         // guarded by mu_
  // Evictions asked for and not yet synced: pod key → uid, message.
  std::map<std::string, std::pair<std::string, std::string>> evictions_;  // guarded by mu_
  std::unique_ptr<CpuBandwidthControl> qos_cgroups_;
  std::unique_ptr<BatchQos> qos_;
  std::vector<std::thread> workers_;
  std::thread housekeeping_;
};

NodeAgent::NodeAgent(AgentOptions options, AgentDeps deps)
    : impl_(std::make_unique<Impl>(std::move(options), deps)) {}
NodeAgent::~NodeAgent() = default;
Status NodeAgent::Init() { return impl_->Init(); }
void NodeAgent::Start() { impl_->Start(); }
void NodeAgent::Stop() { impl_->Stop(); }
Status NodeAgent::StartInformer() { return impl_->StartInformer(); }
void NodeAgent::SyncPod(const std::string& key) { impl_->SyncPod(key); }
std::shared_ptr<const Json> NodeAgent::CachedPod(const std::string& key) const {
  return impl_->CachedPod(key);
}
Status NodeAgent::Heartbeat() { return impl_->Heartbeat(); }
void NodeAgent::FlushEvents() { impl_->FlushEvents(); }
Status NodeAgent::EvictPod(const std::string& key, const std::string& uid,
                           const std::string& message) {
  return impl_->EvictPod(key, uid, message);
}
std::string NodeAgent::QosMetricsText() const { return impl_->QosMetricsText(); }
base::Result<ContainerTarget> NodeAgent::FindContainer(const std::string& ns,
                                                       const std::string& pod,
                                                       const std::string& container,
                                                       bool previous) {
  return impl_->FindContainer(ns, pod, container, previous);
}
base::Result<std::string> NodeAgent::PodNetworkNamespace(const std::string& ns,
                                                         const std::string& pod) {
  return impl_->PodNetworkNamespace(ns, pod);
}

// The cgroup the pods' containers are made under, with the node's CPUs as its CPU weight (1024
// shares a core, as the kubelet gives kubepods): the pods together compete with the node's own
// processes as what the node offers them, and a BestEffort container (2 shares) competes with
// other containers only. At the root, with 2 shares against a process's 1024, a BestEffort
// container's first process (`runc init`, then the command) waited hundreds of milliseconds for
// a CPU whenever anything else ran.
Status EnsurePodsCgroup(const CgroupLayout& layout, const std::string& path, int64_t cpus) {
  const int64_t shares = std::max<int64_t>(cpus, 1) * 1024;
  std::string dir, file, value;
  if (layout.version == CgroupVersion::kV2) {
    dir = layout.root + path;
    file = "cpu.weight";
    value = std::to_string(1 + (shares - 2) * 9999 / 262142);  // runc's shares-to-weight mapping
  } else {
    dir = layout.root + "/cpu" + path;
    file = "cpu.shares";
    value = std::to_string(shares);
  }
  RETURN_IF_ERROR(base::MakeDirs(dir, 0755));
  return WriteCgroupFile(dir + "/" + file, value);
}

int RunAgent(const AgentOptions& options) {
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);
  (void)base::MakeDirs(options.root, 0700);
  auto fail = [](const Status& s) {
    std::fprintf(stderr, "fulcrum agent: %s\n", s.ToString().c_str());
    return 1;
  };
  auto config = client::LoadKubeconfig(options.kubeconfig);
  if (!config.ok()) return fail(config.status());
  config->user_agent = "fulcrum-agent/" + options.node_name;
  auto api = client::ApiClient::Create(*config);
  if (!api.ok()) return fail(api.status());
  auto images = ImageStore::Open(options.root);
  if (!images.ok()) return fail(images.status());
  RuncOptions ro;
  ro.root = options.root;
  ro.runc = options.runc;
  auto runtime = OpenRuncRuntime(ro);
  if (!runtime.ok()) return fail(runtime.status());
  CniOptions co;
  co.root = options.root;
  co.plugin_dir = options.cni_plugin_dir;
  co.bridge = options.bridge;
  co.pod_cidr = options.pod_cidr;
  co.cluster_domain = options.cluster_domain;
  if (!options.cluster_dns.empty()) co.dns_servers = {options.cluster_dns};
  // One masquerade rule for the whole pod CIDR instead of the bridge plugin's chain per pod (nine
  // iptables processes per pod start, more per stop). With a cluster CIDR, pods reach other nodes'
  // pods unmasqueraded over host-gw routes.
  auto route_runner = NewSystemProcessRunner();
  HostRoutes host_routes(route_runner.get());
  co.ip_masq = false;
  Status masquerade = host_routes.EnsureMasquerade(
      options.pod_cidr, options.cluster_cidr.empty() ? options.pod_cidr : options.cluster_cidr);
  if (!masquerade.ok()) return fail(masquerade);
  std::unique_ptr<NodeRouteSync> node_routes;
  if (!options.cluster_cidr.empty()) {
    node_routes = std::make_unique<NodeRouteSync>(api->get(), options.node_name, &host_routes);
  }
  auto network = OpenCniNetwork(co);
  if (!network.ok()) return fail(network.status());
  if (!options.pods_cgroup.empty()) {
    Status cgroup = EnsurePodsCgroup(DetectCgroupLayout(), options.pods_cgroup,
                                     std::thread::hardware_concurrency());
    if (!cgroup.ok()) LOG_WARNING << "pods cgroup " << options.pods_cgroup << ": " << cgroup.ToString();
  }
  auto logs = LogCapture::Start();
  if (!logs.ok()) return fail(logs.status());
  StatsCollector stats(NewSystemStatsFiles(), DetectCgroupLayout(), base::RealClock(),
                       ::sysconf(_SC_CLK_TCK));
  auto prober = NewProber(runtime->get());
  AgentDeps deps{api->get(),  images->get(), runtime->get(), network->get(), logs->get(),
                 prober.get(), &stats,       base::RealClock(), nullptr};
  // The pod server starts first, so that the Node is registered with its port.
  struct Directory : ContainerDirectory {
    std::atomic<NodeAgent*> agent{nullptr};
    base::Result<ContainerTarget> Find(const std::string& ns, const std::string& pod,
                                       const std::string& container, bool previous) override {
      NodeAgent* a = agent.load();
      if (a == nullptr) return base::Unavailable("the agent is starting");
      return a->FindContainer(ns, pod, container, previous);
    }
    base::Result<std::string> NetworkNamespace(const std::string& ns,
                                               const std::string& pod) override {
      NodeAgent* a = agent.load();
      if (a == nullptr) return base::Unavailable("the agent is starting");
      return a->PodNetworkNamespace(ns, pod);
    }
  } directory;
  auto exec = NewRuncExecRunner(options.runc, options.root);
  std::unique_ptr<PodServer> pod_server;
  AgentOptions served = options;
  if (!options.server_listen.empty()) {
    auto started = StartAgentPodServer(options.server_listen, options.root, config->ca_pem,
                                       &directory, exec.get());
    if (!started.ok()) return fail(started.status());
    pod_server = std::move(*started);
    served.kubelet_port = pod_server->port();
    std::fprintf(stderr,
                 "fulcrum agent: pod server (logs, exec, attach, port-forward) on %s, port %d\n",
                 options.server_listen.c_str(), served.kubelet_port);
  }
  NodeAgent agent(served, deps);
  directory.agent = &agent;
  Status s = agent.Init();
  if (!s.ok()) return fail(s);
  std::unique_ptr<MetricsEndpoint> metrics;
  if (!options.metrics_listen.empty()) {
    size_t colon = options.metrics_listen.rfind(':');
    int port = colon == std::string::npos ? -1 : std::atoi(options.metrics_listen.c_str() + colon + 1);
    if (port < 0 || port > 65535) {
      return fail(base::Invalid("--metrics-listen must be HOST:PORT"));
    }
    auto endpoint = MetricsEndpoint::Start(options.metrics_listen.substr(0, colon), port,
                                           [&stats, &agent] { return stats.PrometheusText() + agent.QosMetricsText(); });
    if (!endpoint.ok()) return fail(endpoint.status());
    metrics = std::move(*endpoint);
    std::fprintf(stderr, "fulcrum agent: metrics on http://%s:%d/metrics\n",
                 options.metrics_listen.substr(0, colon).c_str(), metrics->port());
  }
  agent.Start();
  if (node_routes) node_routes->Start();
  std::unique_ptr<UsageReporter> usage;
  if (options.usage_report.count() > 0) {
    usage = std::make_unique<UsageReporter>(
        UsageReporterOptions{options.node_name, options.usage_report}, api->get(), &stats,
        [&agent](const std::string& key) { return agent.CachedPod(key); });
    usage->Start();
  }
  std::fprintf(stderr, "fulcrum agent: node %s running pods from %s\n", options.node_name.c_str(),
               options.kubeconfig.c_str());
  int sig = 0;
  sigwait(&stop_signals, &sig);
  LOG_INFO << "received " << strsignal(sig) << ", stopping (containers keep running)";
  if (usage) usage->Stop();
  if (pod_server) pod_server->Stop();
  agent.Stop();
  return 0;
}

int RunAgentCommand(int argc, char** argv) {
  AgentOptions o;
  std::string usage_report = std::to_string(o.usage_report.count());
  std::string pod_workers = std::to_string(o.workers);
  std::map<std::string, std::string*> flags = {
      {"usage-report-interval", &usage_report}, {"pod-workers", &pod_workers},
      {"kubeconfig", &o.kubeconfig}, {"node-name", &o.node_name},   {"root", &o.root},
      {"pod-cidr", &o.pod_cidr},     {"cluster-dns", &o.cluster_dns}, {"node-ip", &o.node_ip},
      {"bridge", &o.bridge},         {"runc", &o.runc},             {"cni-plugin-dir", &o.cni_plugin_dir},
      {"cluster-domain", &o.cluster_domain}, {"metrics-listen", &o.metrics_listen},
      {"server-listen", &o.server_listen},
      {"insecure-registries", &o.insecure_registries}, {"cluster-cidr", &o.cluster_cidr},
      {"pods-cgroup", &o.pods_cgroup}};
  for (int i = 0; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "-v" || arg == "--verbose") {
      base::SetLogLevel(base::LogLevel::kDebug);
      continue;
    }
    std::string name = arg.rfind("--", 0) == 0 ? arg.substr(2) : "";
    std::string value;
    if (auto eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
    } else if ((flags.count(name) || name.rfind("qos", 0) == 0) && i + 1 < argc) {
      value = argv[++i];
    }
    std::string qos_error;
    if (ParseQosFlag(name, value, &o.qos, &qos_error)) continue;
    if (!qos_error.empty()) {
      std::fprintf(stderr, "fulcrum agent: %s\n", qos_error.c_str());
      return 2;
    }
    if (!flags.count(name)) {
      std::fprintf(stderr,
                   "fulcrum agent: unexpected argument %s\nusage: fulcrum agent --kubeconfig FILE "
                   "--node-name NAME [--root DIR] [--pod-cidr CIDR] [--cluster-dns IP] "
                   "[--node-ip IP] [--bridge NAME] [--metrics-listen HOST:PORT] "
                   "[--usage-report-interval SECONDS] [--pods-cgroup PATH] [--pod-workers N] "
                   "[--qos-* ...] [-v] "
                   "(docs/agent.md)\n",
                   arg.c_str());
      return 2;
    }
    *flags[name] = value;
  }
  if (o.kubeconfig.empty() || o.node_name.empty()) {
    std::fprintf(stderr, "fulcrum agent: --kubeconfig and --node-name are required\n");
    return 2;
  }
  char* end = nullptr;
  long seconds = std::strtol(usage_report.c_str(), &end, 10);
  if (usage_report.empty() || *end != 0 || seconds < 0) {
    std::fprintf(stderr, "fulcrum agent: --usage-report-interval must be whole seconds (0: off)\n");
    return 2;
  }
  o.usage_report = std::chrono::seconds(seconds);
  long workers = std::strtol(pod_workers.c_str(), &end, 10);
  if (pod_workers.empty() || *end != 0 || workers < 1 || workers > 256) {
    std::fprintf(stderr, "fulcrum agent: --pod-workers must be a whole number from 1 to 256\n");
    return 2;
  }
  o.workers = static_cast<int>(workers);
  std::error_code ec;
  o.root = fs::absolute(o.root, ec).string();
  return RunAgent(o);
}

}  // namespace fulcrum::agent
