#include "agent/network.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/mount.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <thread>

#include "base/file.h"

namespace fulcrum::agent {
namespace {

namespace fs = std::filesystem;
using base::Json;
using base::Status;

constexpr char kCniVersion[] = "1.0.0";
constexpr char kPodInterface[] = "eth0";
constexpr long kNsfsMagic = 0x6e736673;  // NSFS_MAGIC, linux/magic.h

std::string Errno(const std::string& what) { return what + ": " + std::strerror(errno); }

bool ValidIp(const std::string& s) {
  unsigned char buf[16];
  return ::inet_pton(AF_INET, s.c_str(), buf) == 1 || ::inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

bool ValidCidr(const std::string& s) {
  size_t slash = s.find('/');
  if (slash == std::string::npos || slash + 1 >= s.size() || s.size() - slash > 4) return false;
  std::string ip = s.substr(0, slash), prefix = s.substr(slash + 1);
  if (!std::all_of(prefix.begin(), prefix.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return false;
  }
  int bits = std::stoi(prefix);
  unsigned char buf[16];
  if (::inet_pton(AF_INET, ip.c_str(), buf) == 1) return bits <= 32;
  if (::inet_pton(AF_INET6, ip.c_str(), buf) == 1) return bits <= 128;
  return false;
}

// An optional string member: "" when absent; BadRequest when present and not a string.
Status OptionalString(const Json& j, const char* key, const std::string& where, std::string* out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return Status::Ok();
  if (!it->is_string()) return base::BadRequest(where + "." + key + " is not a string");
  *out = it->get<std::string>();
  return Status::Ok();
}

bool ValidName(const std::string& s) {
  return !s.empty() && s.size() <= 253 && std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_';
  });
}

}  // namespace

base::Result<CniResult> ParseCniResult(const std::string& text) {
  Json j;
  RETURN_IF_ERROR(base::ParseJson(text, &j));
  if (!j.is_object()) return base::BadRequest("CNI result is not an object");
  CniResult r;
  RETURN_IF_ERROR(OptionalString(j, "cniVersion", "result", &r.cni_version));
  if (r.cni_version.empty()) return base::BadRequest("CNI result has no cniVersion");

  if (auto it = j.find("interfaces"); it != j.end() && !it->is_null()) {
    if (!it->is_array()) return base::BadRequest("result.interfaces is not an array");
    for (size_t i = 0; i < it->size(); ++i) {
      const Json& e = (*it)[i];
      std::string where = "result.interfaces[" + std::to_string(i) + "]";
      if (!e.is_object()) return base::BadRequest(where + " is not an object");
      CniInterface iface;
      RETURN_IF_ERROR(OptionalString(e, "name", where, &iface.name));
      RETURN_IF_ERROR(OptionalString(e, "mac", where, &iface.mac));
      RETURN_IF_ERROR(OptionalString(e, "sandbox", where, &iface.sandbox));
      if (iface.name.empty()) return base::BadRequest(where + ".name is missing");
      r.interfaces.push_back(std::move(iface));
    }
  }
  if (auto it = j.find("ips"); it != j.end() && !it->is_null()) {
    if (!it->is_array()) return base::BadRequest("result.ips is not an array");
    for (size_t i = 0; i < it->size(); ++i) {
      const Json& e = (*it)[i];
      std::string where = "result.ips[" + std::to_string(i) + "]";
      if (!e.is_object()) return base::BadRequest(where + " is not an object");
      CniIpConfig ip;
      RETURN_IF_ERROR(OptionalString(e, "address", where, &ip.address));
      RETURN_IF_ERROR(OptionalString(e, "gateway", where, &ip.gateway));
      if (!ValidCidr(ip.address)) {
        return base::BadRequest(where + ".address \"" + ip.address + "\" is not a CIDR");
      }
      if (!ip.gateway.empty() && !ValidIp(ip.gateway)) {
        return base::BadRequest(where + ".gateway \"" + ip.gateway + "\" is not an IP address");
      }
      if (auto idx = e.find("interface"); idx != e.end() && !idx->is_null()) {
        if (!idx->is_number_integer()) return base::BadRequest(where + ".interface is not an integer");
        int64_t n = idx->get<int64_t>();
        if (n < 0 || n >= static_cast<int64_t>(r.interfaces.size())) {
          return base::BadRequest(where + ".interface " + std::to_string(n) +
                                  " is out of range (" + std::to_string(r.interfaces.size()) +
                                  " interfaces)");
        }
        ip.interface = static_cast<int>(n);
      }
      r.ips.push_back(std::move(ip));
    }
  }
  if (auto it = j.find("routes"); it != j.end() && !it->is_null()) {
    if (!it->is_array()) return base::BadRequest("result.routes is not an array");
    for (size_t i = 0; i < it->size(); ++i) {
      const Json& e = (*it)[i];
      std::string where = "result.routes[" + std::to_string(i) + "]";
      if (!e.is_object()) return base::BadRequest(where + " is not an object");
      CniRoute route;
      RETURN_IF_ERROR(OptionalString(e, "dst", where, &route.dst));
      RETURN_IF_ERROR(OptionalString(e, "gw", where, &route.gw));
      if (!ValidCidr(route.dst)) {
        return base::BadRequest(where + ".dst \"" + route.dst + "\" is not a CIDR");
      }
      if (!route.gw.empty() && !ValidIp(route.gw)) {
        return base::BadRequest(where + ".gw \"" + route.gw + "\" is not an IP address");
      }
      r.routes.push_back(std::move(route));
    }
  }
  if (auto it = j.find("dns"); it != j.end() && !it->is_null()) {
    if (!it->is_object()) return base::BadRequest("result.dns is not an object");
    if (auto ns = it->find("nameservers"); ns != it->end() && !ns->is_null()) {
      if (!ns->is_array()) return base::BadRequest("result.dns.nameservers is not an array");
      for (const Json& e : *ns) {
        if (!e.is_string() || !ValidIp(e.get<std::string>())) {
          return base::BadRequest("result.dns.nameservers holds a value that is not an IP address");
        }
        r.dns_nameservers.push_back(e.get<std::string>());
      }
    }
  }
  r.raw = std::move(j);
  return r;
}

std::string CniErrorMessage(const std::string& text, int exit_code) {
  Json j;
  if (base::ParseJson(text, &j).ok() && j.is_object()) {
    std::string msg = base::StringAt(j, {"msg"});
    std::string details = base::StringAt(j, {"details"});
    std::string code = j.contains("code") && j["code"].is_number_integer()
                           ? std::to_string(j["code"].get<int64_t>())
                           : "?";
    if (!msg.empty()) {
      return msg + (details.empty() ? "" : " (" + details + ")") + " [CNI error code " + code + "]";
    }
  }
  std::string t = text;
  while (!t.empty() && std::isspace(static_cast<unsigned char>(t.back()))) t.pop_back();
  if (t.size() > 600) t = "…" + t.substr(t.size() - 600);
  return "exit status " + std::to_string(exit_code) + (t.empty() ? "" : ": " + t);
}

std::string AddressOfCidr(const std::string& cidr) {
  if (!ValidCidr(cidr)) return "";
  return cidr.substr(0, cidr.find('/'));
}

namespace {

class SystemNetworkNamespaces : public NetworkNamespaces {
 public:
  // NetworkNamespaces
  Status Create(const std::string& path) override {
    if (Exists(path)) return base::AlreadyExists("network namespace " + path + " exists");
    RETURN_IF_ERROR(base::MakeDirs(fs::path(path).parent_path().string(), 0700));
    int fd = ::open(path.c_str(), O_RDONLY | O_CREAT | O_CLOEXEC, 0400);
    if (fd < 0) return base::Internal(Errno("create " + path));
    ::close(fd);
    // unshare(CLONE_NEWNET) affects only the calling thread: a short-lived thread makes the
    // namespace, binds its namespace file at `path` and exits, leaving this thread where it was.
    Status result;
    std::thread maker([&] {
      if (::unshare(CLONE_NEWNET) != 0) {
        result = base::Internal(Errno("unshare(CLONE_NEWNET)"));
        return;
      }
      result = LoopbackUp();
      if (!result.ok()) return;
      std::string self = "/proc/self/task/" + std::to_string(::syscall(SYS_gettid)) + "/ns/net";
      if (::mount(self.c_str(), path.c_str(), "none", MS_BIND, nullptr) != 0) {
        result = base::Internal(Errno("bind " + self + " at " + path));
      }
    });
    maker.join();
    if (!result.ok()) ::unlink(path.c_str());
    return result;
  }

  // Sets IFF_UP on `lo` of the calling thread's network namespace.
  static Status LoopbackUp() {
    int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return base::Internal(Errno("socket for lo"));
    ifreq ifr{};
    std::strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
    Status st;
    if (::ioctl(fd, SIOCGIFFLAGS, &ifr) != 0) {
      st = base::Internal(Errno("reading the flags of lo"));
    } else {
      ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP);
      if (::ioctl(fd, SIOCSIFFLAGS, &ifr) != 0) st = base::Internal(Errno("bringing lo up"));
    }
    ::close(fd);
    return st;
  }

  Status Remove(const std::string& path) override {
    for (int i = 0; i < 8 && Exists(path); ++i) {
      if (::umount2(path.c_str(), MNT_DETACH) != 0 && errno != EINVAL) {
        return base::Internal(Errno("unmount " + path));
      }
    }
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) return base::Internal(Errno("remove " + path));
    return Status::Ok();
  }

  bool Exists(const std::string& path) override {
    struct statfs st;
    return ::statfs(path.c_str(), &st) == 0 && static_cast<long>(st.f_type) == kNsfsMagic;
  }
};

class CniNetwork : public PodNetwork {
 public:
  CniNetwork(CniOptions options, std::unique_ptr<NetworkNamespaces> namespaces,
             std::unique_ptr<ProcessRunner> runner)
      : options_(std::move(options)),
        namespaces_(std::move(namespaces)),
        runner_(std::move(runner)),
        netns_dir_(options_.root + "/run/netns"),
        network_dir_(options_.root + "/network") {}

  Status Init() {
    RETURN_IF_ERROR(base::MakeDirs(netns_dir_, 0700));
    return base::MakeDirs(network_dir_ + "/pods", 0700);
  }

  // PodNetwork
  base::Result<PodNetworkStatus> Setup(const PodNetworkRequest& request) override {
    RETURN_IF_ERROR(Check(request));
    auto existing = Get(request.uid);
    if (existing.ok()) return existing;
    // Whatever an interrupted Setup or a failed Teardown left goes first.
    RETURN_IF_ERROR(Teardown(request.uid));

    const std::string dir = PodDir(request.uid), netns = NetnsPath(request.uid);
    RETURN_IF_ERROR(base::MakeDirs(dir, 0700));
    // `lo` is brought up with the namespace, not by the loopback plugin; portmap runs only for a
    // pod with hostPorts. One or two plugin processes per pod instead of three.
    Json list = CniNetworkList(options_);
    if (request.host_ports.empty()) {
      Json& plugins = list["plugins"];
      plugins.erase(std::remove_if(plugins.begin(), plugins.end(),
                                   [](const Json& p) { return base::StringAt(p, {"type"}) == "portmap"; }),
                    plugins.end());
    }
    Json record = {{"netns", netns},
                   {"list", std::move(list)},
                   {"loopback", "in-process"},
                   {"cniArgs", CniArgs(request)},
                   {"portMappings", PortMappings(request.host_ports)},
                   {"podNamespace", request.pod_namespace}};
    // Written before the first ADD, so that a crash part-way is undone with the same settings.
    RETURN_IF_ERROR(WriteRecord(request.uid, record));

    auto fail = [&](Status status) -> base::Result<PodNetworkStatus> {
      (void)Teardown(request.uid);
      return status;
    };
    Status created = namespaces_->Create(netns);
    if (!created.ok()) return fail(created);
    Json prev;
    for (const Json& plugin : record["list"]["plugins"]) {
      auto out = Invoke("ADD", PluginConfig(record, plugin, prev), request.uid, netns,
                        kPodInterface, record["cniArgs"]);
      if (!out.ok()) return fail(out.status());
      auto result = ParseCniResult(*out);
      if (!result.ok()) {
        return fail(base::Internal("CNI plugin " + base::StringAt(plugin, {"type"}) +
                                   " ADD: bad result: " + result.status().message()));
      }
      prev = result->raw;
    }
    record["result"] = prev;
    auto status = StatusFromRecord(request.uid, record);
    if (!status.ok()) return fail(status.status());
    Status files = base::WriteFileAtomic(status->etc_hosts_path,
                                         PodHostsFile(request, status->ip, options_.cluster_domain),
                                         0644);
    if (files.ok()) {
      files = base::WriteFileAtomic(status->resolv_conf_path,
                                    PodResolvConf(request.pod_namespace, options_), 0644);
    }
    if (files.ok()) files = WriteRecord(request.uid, record);
    if (!files.ok()) return fail(files);
    return status;
  }

  base::Result<PodNetworkStatus> Get(const std::string& uid) override {
    if (!ValidContainerId(uid)) return base::Invalid("invalid pod uid \"" + uid + "\"");
    auto text = base::ReadFile(PodDir(uid) + "/attachment.json");
    if (!text.ok()) return base::NotFound("no network for pod " + uid);
    Json record;
    if (!base::ParseJson(*text, &record).ok() || !record.is_object() ||
        !record.contains("result") || !namespaces_->Exists(NetnsPath(uid)) ||
        !fs::exists(PodDir(uid) + "/hosts") || !fs::exists(PodDir(uid) + "/resolv.conf")) {
      return base::NotFound("no complete network for pod " + uid);
    }
    return StatusFromRecord(uid, record);
  }

  Status Teardown(const std::string& uid) override {
    if (!ValidContainerId(uid)) return base::Invalid("invalid pod uid \"" + uid + "\"");
    const std::string dir = PodDir(uid), netns = NetnsPath(uid);
    Json record;
    auto text = base::ReadFile(dir + "/attachment.json");
    if (!text.ok() || !base::ParseJson(*text, &record).ok() || !record.is_object()) {
      record = Json::object();
    }
    bool has_netns = namespaces_->Exists(netns);
    if (!text.ok() && !has_netns) {
      std::error_code ec;
      fs::remove_all(dir, ec);
      return Status::Ok();
    }
    if (!record.contains("list")) record["list"] = CniNetworkList(options_);
    if (!record.contains("cniArgs")) record["cniArgs"] = "IgnoreUnknown=1";
    const std::string ns_arg = has_netns ? netns : "";
    Json prev = record.contains("result") ? record["result"] : Json();
    Status first_error;
    const Json& plugins = record["list"]["plugins"];
    // DEL runs the list in reverse order, each plugin given the ADD's final result.
    for (auto it = plugins.rbegin(); it != plugins.rend(); ++it) {
      auto out = Invoke("DEL", PluginConfig(record, *it, prev), uid, ns_arg, kPodInterface,
                        record["cniArgs"]);
      if (!out.ok() && first_error.ok()) first_error = out.status();
    }
    // Records of earlier agents, which ran the loopback plugin, get its DEL too.
    if (has_netns && record.value("loopback", "") != "in-process") {
      auto out = Invoke("DEL", LoopbackConfig(), uid, ns_arg, "lo", record["cniArgs"]);
      if (!out.ok() && first_error.ok()) first_error = out.status();
    }
    // Keep the record when a DEL failed, so that the next Teardown tries again with it.
    if (!first_error.ok()) return first_error;
    RETURN_IF_ERROR(namespaces_->Remove(netns));
    std::error_code ec;
    fs::remove_all(dir, ec);
    if (ec) return base::Internal("remove " + dir + ": " + ec.message());
    return Status::Ok();
  }

 private:
  std::string PodDir(const std::string& uid) const { return network_dir_ + "/pods/" + uid; }
  std::string NetnsPath(const std::string& uid) const { return netns_dir_ + "/" + uid; }

  Status Check(const PodNetworkRequest& r) const {
    if (!ValidContainerId(r.uid)) return base::Invalid("invalid pod uid \"" + r.uid + "\"");
    if (!ValidName(r.pod_namespace)) {
      return base::Invalid("invalid pod namespace \"" + r.pod_namespace + "\"");
    }
    if (!ValidName(r.pod_name)) return base::Invalid("invalid pod name \"" + r.pod_name + "\"");
    for (const auto& p : r.host_ports) {
      if (p.host_port < 1 || p.host_port > 65535 || p.container_port < 1 ||
          p.container_port > 65535) {
        return base::Invalid("hostPort " + std::to_string(p.host_port) + " → containerPort " +
                             std::to_string(p.container_port) + " is out of range");
      }
      if (p.protocol != "tcp" && p.protocol != "udp" && p.protocol != "sctp") {
        return base::Invalid("unsupported hostPort protocol \"" + p.protocol + "\"");
      }
      if (!p.host_ip.empty() && !ValidIp(p.host_ip)) {
        return base::Invalid("hostIP \"" + p.host_ip + "\" is not an IP address");
      }
    }
    return Status::Ok();
  }

  static std::string CniArgs(const PodNetworkRequest& r) {
    return "IgnoreUnknown=1;K8S_POD_NAMESPACE=" + r.pod_namespace + ";K8S_POD_NAME=" + r.pod_name +
           ";K8S_POD_INFRA_CONTAINER_ID=" + r.uid + ";K8S_POD_UID=" + r.uid;
  }

  static Json PortMappings(const std::vector<HostPortMapping>& ports) {
    Json out = Json::array();
    for (const auto& p : ports) {
      Json m = {{"hostPort", p.host_port}, {"containerPort", p.container_port},
                {"protocol", p.protocol}};
      if (!p.host_ip.empty()) m["hostIP"] = p.host_ip;
      out.push_back(m);
    }
    return out;
  }

  static Json LoopbackConfig() {
    return {{"cniVersion", kCniVersion}, {"name", "lo"}, {"type", "loopback"}};
  }

  // One plugin's configuration as the spec derives it from a list: the plugin's object plus the
  // list's name and cniVersion, the previous result, and runtimeConfig for the capabilities the
  // plugin declares.
  static Json PluginConfig(const Json& record, const Json& plugin, const Json& prev) {
    Json conf = plugin;
    conf["name"] = record["list"]["name"];
    conf["cniVersion"] = record["list"]["cniVersion"];
    if (!prev.is_null()) conf["prevResult"] = prev;
    const Json* caps = base::FindPath(plugin, {"capabilities"});
    if (caps && caps->is_object() && caps->value("portMappings", false) &&
        record.contains("portMappings") && !record["portMappings"].empty()) {
      conf["runtimeConfig"]["portMappings"] = record["portMappings"];
    }
    conf.erase("capabilities");
    return conf;
  }

  // Runs the plugin named by config.type: its stdout on success, Internal with its error
  // otherwise.
  base::Result<std::string> Invoke(const std::string& command, const Json& config,
                                   const std::string& container_id, const std::string& netns,
                                   const std::string& ifname, const Json& cni_args) {
    std::string type = base::StringAt(config, {"type"});
    if (!ValidName(type) || type.find('/') != std::string::npos) {
      return base::Invalid("invalid CNI plugin type \"" + type + "\"");
    }
    ProcessSpec ps;
    ps.argv = {options_.plugin_dir + "/" + type};
    ps.env = ShortLivedGoToolEnv(
        {"CNI_COMMAND=" + command, "CNI_CONTAINERID=" + container_id, "CNI_NETNS=" + netns,
         "CNI_IFNAME=" + ifname,
         "CNI_ARGS=" + (cni_args.is_string() ? cni_args.get<std::string>() : ""),
         "CNI_PATH=" + options_.plugin_dir,
         "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"});
    ps.input = base::DumpJson(config);
    ps.timeout = options_.timeout;
    auto run = runner_->Run(ps);
    if (!run.ok()) {
      return base::Internal("CNI plugin " + type + " " + command + ": " + run.status().message());
    }
    if (run->exit_code != 0) {
      return base::Internal("CNI plugin " + type + " " + command + " failed: " +
                            CniErrorMessage(run->out.empty() ? run->err : run->out,
                                            run->exit_code));
    }
    return run->out;
  }

  Status WriteRecord(const std::string& uid, const Json& record) {
    return base::WriteFileAtomic(PodDir(uid) + "/attachment.json", base::DumpJson(record), 0600);
  }

  base::Result<PodNetworkStatus> StatusFromRecord(const std::string& uid, const Json& record) {
    auto result = ParseCniResult(base::DumpJson(record["result"]));
    if (!result.ok()) return base::Internal("stored CNI result: " + result.status().message());
    PodNetworkStatus status;
    status.netns_path = NetnsPath(uid);
    status.etc_hosts_path = PodDir(uid) + "/hosts";
    status.resolv_conf_path = PodDir(uid) + "/resolv.conf";
    // The address on the pod's eth0 (an address naming no interface counts as the pod's).
    for (const auto& ip : result->ips) {
      bool pod_side = ip.interface < 0 ||
                      (result->interfaces[ip.interface].name == kPodInterface &&
                       !result->interfaces[ip.interface].sandbox.empty());
      if (pod_side) {
        status.ip = AddressOfCidr(ip.address);
        status.gateway = ip.gateway;
        break;
      }
    }
    if (status.ip.empty()) {
      return base::Internal("CNI result for pod " + uid + " has no address on " + kPodInterface);
    }
    return status;
  }

  const CniOptions options_;
  const std::unique_ptr<NetworkNamespaces> namespaces_;
  const std::unique_ptr<ProcessRunner> runner_;
  const std::string netns_dir_, network_dir_;
};

}  // namespace

Json CniNetworkList(const CniOptions& options) {
  Json ipam = {{"type", "host-local"},
               {"ranges", Json::array({Json::array({{{"subnet", options.pod_cidr}}})})},
               {"routes", Json::array({{{"dst", "0.0.0.0/0"}}})},
               {"dataDir", options.root + "/network/ipam"}};
  Json bridge = {{"type", "bridge"},   {"bridge", options.bridge}, {"isGateway", true},
                 {"ipMasq", options.ip_masq}, {"hairpinMode", true}, {"ipam", ipam}};
  if (options.mtu > 0) bridge["mtu"] = options.mtu;
  Json portmap = {{"type", "portmap"}, {"capabilities", {{"portMappings", true}}}, {"snat", true}};
  return {{"cniVersion", kCniVersion},
          {"name", options.network_name},
          {"plugins", Json::array({bridge, portmap})}};
}

std::string PodHostsFile(const PodNetworkRequest& request, const std::string& ip,
                         const std::string& cluster_domain) {
  std::string hostname = request.hostname.empty() ? request.pod_name : request.hostname;
  std::string out =
      "# Kubernetes-managed hosts file.\n"
      "127.0.0.1\tlocalhost\n"
      "::1\tlocalhost ip6-localhost ip6-loopback\n"
      "fe00::0\tip6-localnet\n"
      "fe00::0\tip6-mcastprefix\n"
      "fe00::1\tip6-allnodes\n"
      "fe00::2\tip6-allrouters\n";
  if (!request.subdomain.empty()) {
    out += ip + "\t" + hostname + "." + request.subdomain + "." + request.pod_namespace +
           ".svc." + cluster_domain + "\t" + hostname + "\n";
  } else {
    out += ip + "\t" + hostname + "\n";
  }
  return out;
}

std::string PodResolvConf(const std::string& pod_namespace, const CniOptions& options) {
  const std::string& d = options.cluster_domain;
  std::string out = "search " + pod_namespace + ".svc." + d + " svc." + d + " " + d;
  for (const auto& s : options.dns_searches) out += " " + s;
  out += "\n";
  for (const auto& ns : options.dns_servers) out += "nameserver " + ns + "\n";
  out += "options ndots:5\n";
  return out;
}

std::unique_ptr<NetworkNamespaces> NewSystemNetworkNamespaces() {
  return std::make_unique<SystemNetworkNamespaces>();
}

base::Result<std::unique_ptr<PodNetwork>> OpenCniNetwork(CniOptions options,
                                                        std::unique_ptr<NetworkNamespaces> namespaces,
                                                        std::unique_ptr<ProcessRunner> runner) {
  if (options.root.empty() || options.root[0] != '/') {
    return base::Invalid("network root \"" + options.root + "\" is not an absolute path");
  }
  if (!ValidCidr(options.pod_cidr)) {
    return base::Invalid("pod CIDR \"" + options.pod_cidr + "\" is not a CIDR");
  }
  if (!ValidName(options.network_name) || options.bridge.empty() || options.bridge.size() > 15) {
    return base::Invalid("invalid network name or bridge name (at most 15 characters)");
  }
  for (const auto& ns : options.dns_servers) {
    if (!ValidIp(ns)) return base::Invalid("DNS server \"" + ns + "\" is not an IP address");
  }
  auto network = std::make_unique<CniNetwork>(std::move(options), std::move(namespaces),
                                              std::move(runner));
  RETURN_IF_ERROR(network->Init());
  return std::unique_ptr<PodNetwork>(std::move(network));
}

}  // namespace fulcrum::agent
