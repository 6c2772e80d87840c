// Builds an OCI runtime spec (runtime-spec 1.0, config.json) for one container from plain data
// derived from a pod's container and its image config. Pure: no file or system access.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "agent/image_store.h"
#include "base/json.h"
#include "base/status.h"

namespace fulcrum::agent {

struct ContainerMount {
  std::string host_path;       // a file or directory on the node (a volume's directory)
  std::string container_path;  // absolute
  bool read_only = false;
};

// What the spec needs from a pod container, its volumes and its pod.
struct ContainerSpecInput {
  std::vector<std::string> command;  // Kubernetes `command`: replaces the image's Entrypoint
  std::vector<std::string> args;     // Kubernetes `args`: replaces the image's Cmd
  std::vector<std::pair<std::string, std::string>> env;  // resolved values, in order
  std::string working_dir;           // empty: the image's WorkingDir, else "/"
  std::optional<int64_t> run_as_user;   // empty: the image's User (numeric), else 0
  std::optional<int64_t> run_as_group;  // empty: the image's group, else 0
  bool read_only_root_filesystem = false;
  bool privileged = false;
  bool no_new_privileges = false;    // !allowPrivilegeEscalation
  std::vector<std::string> capabilities_add;   // "NET_ADMIN" or "CAP_NET_ADMIN"; "ALL"
  std::vector<std::string> capabilities_drop;
  int64_t cpu_request_milli = 0;     // 0: no request (minimum shares)
  int64_t cpu_limit_milli = 0;       // 0: no CFS quota
  int64_t memory_limit_bytes = 0;    // 0: no limit
  std::vector<ContainerMount> mounts;  // volume mounts, bound (rbind) in order
  std::string etc_hostname_path;     // bound at /etc/hostname when not empty
  std::string etc_hosts_path;        // bound at /etc/hosts when not empty
  std::string resolv_conf_path;      // bound at /etc/resolv.conf when not empty
  std::string network_namespace_path;  // empty: a new, unconfigured network namespace
  std::string hostname;              // the pod's hostname (UTS namespace)
  std::string cgroups_path;          // linux.cgroupsPath; empty: left to the runtime
  bool terminal = false;             // process.terminal: runs on a new terminal (Kubernetes `tty`)
};

inline constexpr int64_t kCpuPeriodMicros = 100000;  // the kubelet's CFS period
inline constexpr int64_t kMinCpuShares = 2;
inline constexpr int64_t kMinCpuQuotaMicros = 1000;

// Kubernetes' MilliCPUToShares: milliCPU*1024/1000, at least 2 (also for no request).
int64_t CpuShares(int64_t milli_cpu);
// Kubernetes' MilliCPUToQuota: milliCPU*period/1000, at least 1000 µs; 0 (no quota) for no limit.
int64_t CpuQuota(int64_t milli_cpu, int64_t period = kCpuPeriodMicros);

// The process arguments, the Kubernetes way: command and args given → command+args; only command
// → command; only args → Entrypoint+args; neither → Entrypoint+Cmd.
std::vector<std::string> MergeCommand(const ContainerSpecInput& c, const ImageConfig& image);

// The environment: the image's Env, then the container's, a container variable replacing an image
// variable of the same name in place; PATH defaulted when neither sets it, TERM=xterm on a
// terminal.
std::vector<std::string> MergeEnv(const ContainerSpecInput& c, const ImageConfig& image);

// The capability set: Docker's default 14 (all of them when privileged), minus `drop`, plus
// `add`; "ALL" in drop empties the set before `add`, "ALL" in add gives every capability.
// Sorted, "CAP_" spelling. Invalid, naming the value, for an unknown capability.
base::Result<std::vector<std::string>> Capabilities(const ContainerSpecInput& c);

// The whole config.json. `rootfs` is root.path (relative to the bundle or absolute). Invalid,
// naming the field, when there is nothing to run, the image's User is a name rather than a
// number (not resolved yet), a path is not absolute, or a capability is unknown.
base::Result<base::Json> BuildOciSpec(const ContainerSpecInput& c, const ImageConfig& image,
                                      const std::string& rootfs = "rootfs");

}  // namespace fulcrum::agent
