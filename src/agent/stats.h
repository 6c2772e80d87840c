// Container and node resource usage sampled from cgroups (v1 and v2 file layouts) and /proc, and
// its exposition as Prometheus text (text format 0.0.4), with the kubelet's /metrics/resource
// metric names.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "base/clock.h"
#include "base/status.h"

namespace fulcrum::agent {

// The files the sampler reads. Tests substitute a map.
class StatsFiles {
 public:
  virtual ~StatsFiles() = default;
  // NotFound if the file does not exist.
  virtual base::Result<std::string> Read(const std::string& path) = 0;
};
std::unique_ptr<StatsFiles> NewSystemStatsFiles();

enum class CgroupVersion { kV1, kV2 };

struct CgroupLayout {
  CgroupVersion version = CgroupVersion::kV1;
  std::string root = "/sys/fs/cgroup";  // v1: the controllers' mounts are under it; v2: the mount
};

// The layout runc uses on this machine, as runc decides it: v2 when /sys/fs/cgroup itself is a
// cgroup2 mount (unified), else v1 (legacy, or hybrid with a cgroup2 mount beside the controllers).
CgroupLayout DetectCgroupLayout();

// Writes `value` to the cgroup control file `path` with one write(2) on the file itself (no
// temporary file and rename, which cgroup files do not take). NotFound when the cgroup is gone.
base::Status WriteCgroupFile(const std::string& path, const std::string& value);

// Where a process's CPU and memory accounting lives.
struct CgroupDirs {
  std::string cpu;     // v1: the cpuacct controller's directory; v2: the cgroup's directory
  std::string memory;  // v1: the memory controller's directory; v2: the same directory
  // v1: the cpu controller's directory (CFS bandwidth: cpu.cfs_quota_us, cpu.stat), which is
  // `cpu` itself when cpu and cpuacct are co-mounted; v2: the same directory. Empty when the
  // process has no cpu controller cgroup.
  std::string cpu_bandwidth;
};
// From /proc/PID/cgroup. NotFound when the process is gone or has no such cgroup.
base::Result<CgroupDirs> CgroupDirsOfProcess(StatsFiles& files, const CgroupLayout& layout,
                                             int pid);

struct Usage {
  uint64_t cpu_usage_ns = 0;  // cumulative CPU time
  bool has_memory = false;    // false when the memory controller's files are missing
  uint64_t memory_usage_bytes = 0;
  uint64_t memory_working_set_bytes = 0;  // usage minus inactive file pages, as the kubelet
  bool has_throttling = false;            // false when cpu.stat of the cpu controller is missing
  uint64_t cpu_nr_throttled = 0;          // cumulative CFS periods in which the cgroup was throttled
};
// One cgroup's usage: v1 cpuacct.usage, memory.usage_in_bytes and memory.stat
// total_inactive_file; v2 cpu.stat usage_usec, memory.current and memory.stat inactive_file; both
// cpu.stat nr_throttled of `dirs.cpu_bandwidth`.
// NotFound when the CPU accounting file is missing (the cgroup is gone).
base::Result<Usage> ReadCgroupUsage(StatsFiles& files, const CgroupLayout& layout,
                                    const CgroupDirs& dirs);
// The node's usage: /proc/stat (user+nice+system+irq+softirq+steal) and /proc/meminfo (working
// set = MemTotal − MemFree − Inactive(file)).
base::Result<Usage> ReadNodeUsage(StatsFiles& files, int64_t clock_ticks_per_second = 100);

// A container the agent runs, to be sampled.
struct SampledContainer {
  std::string pod_namespace, pod_name, container;
  int pid = 0;  // the container's init process (its cgroup is read from /proc/PID/cgroup)
};

struct UsageSample {
  base::WallTime time;
  Usage usage;
  std::optional<double> cpu_cores;  // rate since the previous sample; none on the first
};

struct ContainerUsage {
  SampledContainer container;
  UsageSample sample;
  CgroupDirs dirs;  // where the sample was read
};

// Samples the node and a set of containers and keeps the latest sample of each, with CPU rates.
// Thread-safe.
class StatsCollector {
 public:
  // `clock` is borrowed.
  StatsCollector(std::unique_ptr<StatsFiles> files, CgroupLayout layout, const base::Clock* clock,
                 int64_t clock_ticks_per_second = 100);

  // The containers to sample from now on (replacing the earlier set); keyed by namespace, pod
  // and container name, so that a container's CPU rate survives across calls.
  void SetContainers(std::vector<SampledContainer> containers);
  // Reads everything once. A container whose cgroup cannot be read is left out of this sample.
  void Sample();

  std::optional<UsageSample> Node() const;
  std::vector<ContainerUsage> Containers() const;
  // Prometheus text: node_cpu_usage_seconds_total, node_memory_working_set_bytes,
  // container_cpu_usage_seconds_total, container_memory_working_set_bytes (labels container, pod,
  // namespace; the sample's time as the timestamp), and the gauges fulcrum_node_cpu_usage_cores
  // and fulcrum_container_cpu_usage_cores.
  std::string PrometheusText() const;

 private:
  using Key = std::tuple<std::string, std::string, std::string>;
  static UsageSample Next(const std::optional<UsageSample>& prev, base::WallTime now, Usage usage);

  const std::unique_ptr<StatsFiles> files_;
  const CgroupLayout layout_;
  const base::Clock* const clock_;
  const int64_t ticks_;
  mutable std::mutex mu_;
  std::map<Key, SampledContainer> wanted_;   // guarded by mu_
  std::map<Key, ContainerUsage> latest_;     // guarded by mu_
  std::optional<UsageSample> node_;          // guarded by mu_
};

// A Prometheus label value with \, " and newline escaped.
std::string PrometheusLabelValue(const std::string& value);

}  // namespace fulcrum::agent
