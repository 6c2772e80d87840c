// OCI runtime specification 1.0 (config.json), with the defaults runc's `spec` and containerd's
// CRI plugin use for Linux containers.
#include "agent/oci_spec.h"

#include <algorithm>
#include <cctype>
#include <set>

namespace fulcrum::agent {
namespace {

using base::Json;

const std::vector<std::string>& AllCapabilities() {
  static const std::vector<std::string> kAll = {
      "CAP_AUDIT_CONTROL", "CAP_AUDIT_READ",  "CAP_AUDIT_WRITE",      "CAP_BLOCK_SUSPEND",
      "CAP_BPF",           "CAP_CHECKPOINT_RESTORE", "CAP_CHOWN",     "CAP_DAC_OVERRIDE",
      "CAP_DAC_READ_SEARCH", "CAP_FOWNER",    "CAP_FSETID",           "CAP_IPC_LOCK",
      "CAP_IPC_OWNER",     "CAP_KILL",        "CAP_LEASE",            "CAP_LINUX_IMMUTABLE",
      "CAP_MAC_ADMIN",     "CAP_MAC_OVERRIDE", "CAP_MKNOD",           "CAP_NET_ADMIN",
      "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_RAW",     "CAP_PERFMON",
      "CAP_SETFCAP",       "CAP_SETGID",      "CAP_SETPCAP",          "CAP_SETUID",
      "CAP_SYSLOG",        "CAP_SYS_ADMIN",   "CAP_SYS_BOOT",         "CAP_SYS_CHROOT",
      "CAP_SYS_MODULE",    "CAP_SYS_NICE",    "CAP_SYS_PACCT",        "CAP_SYS_PTRACE",
      "CAP_SYS_RAWIO",     "CAP_SYS_RESOURCE", "CAP_SYS_TIME",        "CAP_SYS_TTY_CONFIG",
      "CAP_WAKE_ALARM",
  };
  return kAll;
}

// Docker's and containerd's default set.
const std::vector<std::string>& DefaultCapabilities() {
  static const std::vector<std::string> kDefault = {
      "CAP_AUDIT_WRITE", "CAP_CHOWN",  "CAP_DAC_OVERRIDE", "CAP_FOWNER",
      "CAP_FSETID",      "CAP_KILL",   "CAP_MKNOD",        "CAP_NET_BIND_SERVICE",
      "CAP_NET_RAW",     "CAP_SETFCAP", "CAP_SETGID",      "CAP_SETPCAP",
      "CAP_SETUID",      "CAP_SYS_CHROOT",
  };
  return kDefault;
}

std::string Upper(std::string s) {
  for (char& ch : s) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  return s;
}

base::Result<std::string> CanonicalCapability(const std::string& name, const char* field) {
  std::string cap = Upper(name);
  if (cap == "ALL") return cap;
  if (cap.rfind("CAP_", 0) != 0) cap = "CAP_" + cap;
  const auto& all = AllCapabilities();
  if (std::find(all.begin(), all.end(), cap) == all.end()) {
    return base::Invalid(std::string(field) + ": unknown capability \"" + name + "\"");
  }
  return cap;
}

// "1000", "1000:1000"; a name is not resolved here.
base::Status ParseImageUser(const std::string& user, std::optional<int64_t>* uid,
                            std::optional<int64_t>* gid) {
  if (user.empty()) return base::Status::Ok();
  auto number = [](const std::string& s, std::optional<int64_t>* out) {
    if (s.empty() || s.size() > 10 ||
        !std::all_of(s.begin(), s.end(), [](char ch) { return ch >= '0' && ch <= '9'; })) {
      return false;
    }
    *out = std::stoll(s);
    return true;
  };
  size_t colon = user.find(':');
  std::string u = user.substr(0, colon);
  if (!number(u, uid)) {
    return base::Invalid("image config User \"" + user +
                         "\": user names are not resolved yet; use a numeric uid or runAsUser");
  }
  if (colon != std::string::npos && !number(user.substr(colon + 1), gid)) {
    return base::Invalid("image config User \"" + user +
                         "\": group names are not resolved yet; use a numeric gid or "
                         "runAsGroup");
  }
  return base::Status::Ok();
}

Json Mount(const std::string& destination, const std::string& type, const std::string& source,
           std::vector<std::string> options) {
  return Json{{"destination", destination}, {"type", type}, {"source", source},
              {"options", std::move(options)}};
}

Json BindMount(const std::string& source, const std::string& destination, bool read_only) {
  std::vector<std::string> options = {"rbind", "rprivate", read_only ? "ro" : "rw"};
  return Mount(destination, "bind", source, std::move(options));
}

}  // namespace

int64_t CpuShares(int64_t milli_cpu) {
  if (milli_cpu <= 0) return kMinCpuShares;
  int64_t shares = milli_cpu * 1024 / 1000;
  return std::max(shares, kMinCpuShares);
}

int64_t CpuQuota(int64_t milli_cpu, int64_t period) {
  if (milli_cpu <= 0) return 0;
  int64_t quota = milli_cpu * period / 1000;
  return std::max(quota, kMinCpuQuotaMicros);
}

std::vector<std::string> MergeCommand(const ContainerSpecInput& c, const ImageConfig& image) {
  std::vector<std::string> argv;
  if (!c.command.empty()) {
    argv = c.command;
    argv.insert(argv.end(), c.args.begin(), c.args.end());
  } else {
    argv = image.entrypoint;
    const auto& tail = c.args.empty() ? image.cmd : c.args;
    argv.insert(argv.end(), tail.begin(), tail.end());
  }
  return argv;
}

std::vector<std::string> MergeEnv(const ContainerSpecInput& c, const ImageConfig& image) {
  std::vector<std::string> env;
  auto name_of = [](const std::string& kv) { return kv.substr(0, kv.find('=')); };
  auto set = [&](const std::string& name, const std::string& kv) {
    for (auto& existing : env) {
      if (name_of(existing) == name) {
        existing = kv;
        return;
      }
    }
    env.push_back(kv);
  };
  for (const auto& kv : image.env) set(name_of(kv), kv);
  for (const auto& [name, value] : c.env) set(name, name + "=" + value);
  bool has_path = std::any_of(env.begin(), env.end(),
                              [&](const std::string& kv) { return name_of(kv) == "PATH"; });
  if (!has_path) {
    env.insert(env.begin(), "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
  }
  // As containerd's WithTTY: a terminal's programs want to know what it is.
  bool has_term = std::any_of(env.begin(), env.end(),
                              [&](const std::string& kv) { return name_of(kv) == "TERM"; });
  if (c.terminal && !has_term) env.push_back("TERM=xterm");
  return env;
}

base::Result<std::vector<std::string>> Capabilities(const ContainerSpecInput& c) {
  std::set<std::string> caps;
  const auto& base_set = c.privileged ? AllCapabilities() : DefaultCapabilities();
  caps.insert(base_set.begin(), base_set.end());
  for (const auto& name : c.capabilities_drop) {
    ASSIGN_OR_RETURN(std::string cap, CanonicalCapability(name, "securityContext.capabilities.drop"));
    if (cap == "ALL") {
      caps.clear();
    } else {
      caps.erase(cap);
    }
  }
  for (const auto& name : c.capabilities_add) {
    ASSIGN_OR_RETURN(std::string cap, CanonicalCapability(name, "securityContext.capabilities.add"));
    if (cap == "ALL") {
      caps.insert(AllCapabilities().begin(), AllCapabilities().end());
    } else {
      caps.insert(cap);
    }
  }
  return std::vector<std::string>(caps.begin(), caps.end());
}

base::Result<Json> BuildOciSpec(const ContainerSpecInput& c, const ImageConfig& image,
                                const std::string& rootfs) {
  std::vector<std::string> argv = MergeCommand(c, image);
  if (argv.empty()) {
    return base::Invalid(
        "command: nothing to run: the container has no command or args and the image has no "
        "Entrypoint or Cmd");
  }

  std::optional<int64_t> image_uid, image_gid;
  if (!c.run_as_user) RETURN_IF_ERROR(ParseImageUser(image.user, &image_uid, &image_gid));
  int64_t uid = c.run_as_user.value_or(image_uid.value_or(0));
  int64_t gid = c.run_as_group.value_or(image_gid.value_or(0));
  if (uid < 0 || uid > 0xffffffffLL) {
    return base::Invalid("securityContext.runAsUser: " + std::to_string(uid) + " is out of range");
  }
  if (gid < 0 || gid > 0xffffffffLL) {
    return base::Invalid("securityContext.runAsGroup: " + std::to_string(gid) +
                         " is out of range");
  }

  std::string cwd = !c.working_dir.empty() ? c.working_dir
                    : !image.working_dir.empty() ? image.working_dir
                                                 : "/";
  if (cwd[0] != '/') return base::Invalid("workingDir: \"" + cwd + "\" is not an absolute path");

  ASSIGN_OR_RETURN(std::vector<std::string> caps, Capabilities(c));

  Json process = {
      {"terminal", c.terminal},
      {"user", {{"uid", uid}, {"gid", gid}}},
      {"args", argv},
      {"env", MergeEnv(c, image)},
      {"cwd", cwd},
      {"capabilities",
       {{"bounding", caps}, {"effective", caps}, {"permitted", caps}, {"inheritable", Json::array()}}},
      {"noNewPrivileges", c.no_new_privileges && !c.privileged},
  };

  Json mounts = Json::array();
  mounts.push_back(Mount("/proc", "proc", "proc", {"nosuid", "noexec", "nodev"}));
  mounts.push_back(Mount("/dev", "tmpfs", "tmpfs", {"nosuid", "strictatime", "mode=755",
                                                     "size=65536k"}));
  mounts.push_back(Mount("/dev/pts", "devpts", "devpts",
                         {"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620",
                          "gid=5"}));
  mounts.push_back(Mount("/dev/shm", "tmpfs", "shm", {"nosuid", "noexec", "nodev", "mode=1777",
                                                       "size=65536k"}));
  mounts.push_back(Mount("/dev/mqueue", "mqueue", "mqueue", {"nosuid", "noexec", "nodev"}));
  mounts.push_back(Mount("/sys", "sysfs", "sysfs",
                         {"nosuid", "noexec", "nodev", c.privileged ? "rw" : "ro"}));
  mounts.push_back(Mount("/sys/fs/cgroup", "cgroup", "cgroup",
                         {"nosuid", "noexec", "nodev", "relatime", c.privileged ? "rw" : "ro"}));
  auto file_mount = [&](const std::string& host, const char* dest) -> base::Status {
    if (host.empty()) return base::Status::Ok();
    if (host[0] != '/') {
      return base::Invalid(std::string(dest) + ": host path \"" + host + "\" is not absolute");
    }
    mounts.push_back(BindMount(host, dest, false));
    return base::Status::Ok();
  };
  RETURN_IF_ERROR(file_mount(c.etc_hostname_path, "/etc/hostname"));
  RETURN_IF_ERROR(file_mount(c.etc_hosts_path, "/etc/hosts"));
  RETURN_IF_ERROR(file_mount(c.resolv_conf_path, "/etc/resolv.conf"));
  for (size_t i = 0; i < c.mounts.size(); ++i) {
    const auto& m = c.mounts[i];
    std::string field = "volumeMounts[" + std::to_string(i) + "]";
    if (m.container_path.empty() || m.container_path[0] != '/') {
      return base::Invalid(field + ".mountPath: \"" + m.container_path + "\" is not absolute");
    }
    if (m.host_path.empty() || m.host_path[0] != '/') {
      return base::Invalid(field + ": host path \"" + m.host_path + "\" is not absolute");
    }
    mounts.push_back(BindMount(m.host_path, m.container_path, m.read_only));
  }

  Json network = {{"type", "network"}};
  if (!c.network_namespace_path.empty()) network["path"] = c.network_namespace_path;
  Json namespaces = Json::array({{{"type", "pid"}}, {{"type", "ipc"}}, {{"type", "uts"}},
                                 {{"type", "mount"}}, network});

  Json resources = {
      {"devices", Json::array({{{"allow", false}, {"access", "rwm"}}})},
      {"cpu", {{"shares", CpuShares(c.cpu_request_milli)}}},
  };
  if (c.privileged) resources["devices"] = Json::array({{{"allow", true}, {"access", "rwm"}}});
  if (c.cpu_limit_milli > 0) {
    resources["cpu"]["quota"] = CpuQuota(c.cpu_limit_milli);
    resources["cpu"]["period"] = kCpuPeriodMicros;
  }
  if (c.memory_limit_bytes > 0) resources["memory"] = {{"limit", c.memory_limit_bytes}};

  Json linux_section = {{"namespaces", namespaces}, {"resources", resources}};
  if (!c.cgroups_path.empty()) linux_section["cgroupsPath"] = c.cgroups_path;
  if (!c.privileged) {
    linux_section["maskedPaths"] = {
        "/proc/acpi",      "/proc/asound",        "/proc/kcore",       "/proc/keys",
        "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
        "/proc/scsi",      "/sys/firmware"};
    linux_section["readonlyPaths"] = {"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
                                      "/proc/sysrq-trigger"};
  }

  Json spec = {
      {"ociVersion", "1.0.2"},
      {"process", process},
      {"root", {{"path", rootfs}, {"readonly", c.read_only_root_filesystem}}},
      {"mounts", mounts},
      {"linux", linux_section},
  };
  if (!c.hostname.empty()) spec["hostname"] = c.hostname;
  return spec;
}

}  // namespace fulcrum::agent
