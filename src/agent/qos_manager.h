// The agent's batch QoS loop: keeps online pods' CPU and memory when batch pods share the node.
// Every second, from the latest usage samples, it lowers the CFS quota of batch containers when
// online plus batch plus system usage crosses a share of the node's CPU (Koordinator's koordlet
// CPU suppress, cfsQuota policy), restores it step by step when the pressure goes, and evicts
// batch pods, lowest priority first, then newest, when their CPU satisfaction stays low
// (koordlet BECPUEvict) or node memory crosses its threshold (koordlet BEMemoryEvict). Online pods
// are never evicted. Behaviour and flags: docs/agent.md, "Batch QoS".
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "agent/stats.h"
#include "base/clock.h"
#include "base/json.h"
#include "base/status.h"

namespace fulcrum::agent {

// Thresholds, as percentages of the node's capacity unless said otherwise. Defaults are
// Koordinator's (koordlet NodeSLO resource-threshold strategy and qosmanager config).
struct QosOptions {
  bool enabled = true;
  // CPU suppress: batch may use capacity × this − online usage − system usage (the node's usage
  // outside pods; left out with `cpu_count_system` false, for a node shared with other work).
  int cpu_suppress_percent = 65;
  bool cpu_count_system = true;
  // CPU evict: batch CPU satisfaction (quota ÷ requests) below `lower` while batch uses at least
  // `usage` percent of its quota, averaged over the window, evicts until it is back to `upper`.
  int cpu_evict_satisfaction_lower_percent = 60;
  int cpu_evict_satisfaction_upper_percent = 80;
  int cpu_evict_usage_percent = 90;
  std::chrono::seconds cpu_evict_window{60};
  std::chrono::seconds cpu_evict_cooldown{20};
  // Memory evict: node working set above `threshold` evicts batch pods until it is `lower`
  // (threshold − 2 when negative).
  int memory_evict_percent = 70;
  int memory_evict_lower_percent = -1;
  std::chrono::seconds memory_evict_cooldown{4};
  // A growing cpu.stat nr_throttled of an online container halves the batch quota.
  bool online_throttling_trigger = true;
};

// Parses `--qos-*` agent flags ("qos", "qos-cpu-suppress-percent", …; the names in docs/agent.md)
// into `options`. False, with `error` naming the flag, for an unknown name or a bad value; names
// not starting with "qos" are left alone (returns false, error empty).
bool ParseQosFlag(const std::string& name, const std::string& value, QosOptions* options,
                  std::string* error);

// Whether a pod is batch work: priority class `fulcrum-batch` or annotation
// `fulcrum.dev/qos: batch`.
bool IsBatchPod(const base::Json& pod);

// One running container as the loop sees it: its pod's facts and its latest usage sample.
struct QosContainer {
  std::string pod_key;  // namespace/name
  std::string pod_uid;
  std::string container;
  bool batch = false;
  int32_t priority = 0;
  base::WallTime created;              // the pod's creationTimestamp
  double cpu_request_cores = 0;        // 0: none
  double cpu_limit_cores = 0;          // 0: none
  int pid = 0;                         // its init: a restarted container is throttled afresh
  std::string cpu_bandwidth_dir;       // where its CFS quota is written
  std::optional<double> cpu_cores;     // usage between the last two samples
  uint64_t memory_working_set_bytes = 0;
  std::optional<uint64_t> cpu_nr_throttled;
};

// Joins the stats sampler's containers with their pods (`pod` returns the pod "ns/name", null if
// unknown). Containers of unknown or terminating pods are left out.
std::vector<QosContainer> QosContainersFrom(
    const std::vector<ContainerUsage>& usage,
    const std::function<std::shared_ptr<const base::Json>(const std::string&)>& pod);

// The node's capacity and latest sample.
struct QosNode {
  double cpu_capacity_cores = 0;
  uint64_t memory_capacity_bytes = 0;
  std::optional<double> cpu_cores;           // node usage between the last two samples
  std::optional<uint64_t> memory_working_set_bytes;
};
QosNode QosNodeFrom(const std::optional<UsageSample>& sample, double cpu_capacity_cores,
                    uint64_t memory_capacity_bytes);

// A container's CFS bandwidth (v1 cpu.cfs_quota_us and cpu.cfs_period_us, v2 cpu.max).
struct CpuBandwidth {
  int64_t quota_us = -1;  // -1: unlimited
  int64_t period_us = 100000;
};
class CpuBandwidthControl {
 public:
  virtual ~CpuBandwidthControl() = default;
  // NotFound when the cgroup is gone; Internal when its files cannot be parsed.
  virtual base::Result<CpuBandwidth> Read(const std::string& dir) = 0;
  // Writes the quota (−1: unlimited) for the current period.
  virtual base::Status Write(const std::string& dir, const CpuBandwidth& bandwidth) = 0;
};
std::unique_ptr<CpuBandwidthControl> NewCgroupCpuBandwidth(const CgroupLayout& layout);

// What the loop asks of the agent.
struct QosActions {
  // Evicts the pod: status Failed/Evicted with the message, condition DisruptionTarget, an
  // Evicted event, containers stopped gracefully and not restarted. NotFound when the agent no
  // longer runs a pod with that uid. Arguments: pod "ns/name", uid, message.
  std::function<base::Status(const std::string&, const std::string&, const std::string&)> evict;
  // An event on the pod "ns/name": type, reason, message.
  std::function<void(const std::string&, const std::string&, const std::string&,
                     const std::string&)>
      event;
};

// The loop. Thread-safe: Tick from one thread, PrometheusText from any.
class BatchQos {
 public:
  // `cgroups` and `clock` are borrowed and must outlive the loop.
  BatchQos(QosOptions options, CpuBandwidthControl* cgroups, QosActions actions,
           const base::Clock* clock);
  ~BatchQos();  // restores every quota it lowered

  // One round on the latest samples: suppress or restore batch CPU, then evict if needed.
  void Tick(const QosNode& node, const std::vector<QosContainer>& containers);
  // Writes back the quota of every container it throttled (the agent stops; nothing will lift a
  // throttle otherwise).
  void RestoreAll();

  // Prometheus text: fulcrum_qos_online_cpu_usage_cores, fulcrum_qos_batch_cpu_usage_cores,
  // fulcrum_qos_batch_cpu_budget_cores, fulcrum_qos_batch_cpu_quota_cores,
  // fulcrum_qos_batch_throttled_containers, fulcrum_qos_batch_throttles_total,
  // fulcrum_qos_evictions_total{reason="cpu"|"memory"}.
  std::string PrometheusText() const;

  // For tests: the quota (cores) the loop holds the batch containers to; none when unthrottled.
  std::optional<double> BatchQuotaCores() const;

 private:
  struct Throttle {
    std::string pod_key, container, dir;
    int pid;
    CpuBandwidth original;        // restored when the pressure goes: the spec's limit
    int64_t written_quota_us;     // -2 until the first write
  };
  struct WindowSample {
    base::WallTime time;
    double satisfaction, usage_ratio;
  };
  using Key = std::pair<std::string, std::string>;  // pod uid, container

  void SuppressCpu(const QosNode& node, const std::vector<QosContainer>& containers);
  void ApplyQuota(double total_cores, const std::vector<QosContainer>& batch,
                  const std::string& why);
  void Restore(const std::string& why);
  void EvictForCpu(const std::vector<QosContainer>& containers);
  void EvictForMemory(const QosNode& node, const std::vector<QosContainer>& containers);
  // Evicts whole batch pods in eviction order until `amount` (as `measure` counts it per pod)
  // is released. Returns how many it evicted.
  int EvictBatch(const std::vector<QosContainer>& containers,
                 const std::function<double(const std::vector<const QosContainer*>&)>& measure,
                 double amount, const std::string& reason,
                 const std::function<std::string(const std::vector<const QosContainer*>&)>& message);

  const QosOptions o_;
  CpuBandwidthControl* const cgroups_;
  const QosActions actions_;
  const base::Clock* const clock_;

  mutable std::mutex mu_;
  std::optional<double> quota_cores_;            // guarded by mu_
  std::map<Key, Throttle> throttled_;            // guarded by mu_
  std::map<Key, uint64_t> online_throttled_;     // guarded by mu_: last nr_throttled
  std::deque<WindowSample> window_;              // guarded by mu_
  std::set<std::string> evicted_;                // guarded by mu_: pod uids
  std::optional<base::WallTime> last_cpu_eviction_, last_memory_eviction_;  // guarded by mu_
  double online_cores_ = 0, batch_cores_ = 0, budget_cores_ = 0;           // guarded by mu_
  uint64_t throttles_total_ = 0;                                           // guarded by mu_
  std::map<std::string, uint64_t> evictions_;    // guarded by mu_: by reason
};

// Applies an eviction to a pod status the agent is about to write: condition DisruptionTarget
// (reason TerminationByKubelet, `evicted_at` RFC 3339 as its transition time) from the start;
// once every container has stopped (`stopped`), phase Failed with reason Evicted and `message`.
void ApplyEvictionToStatus(base::Json* status, const std::string& message, bool stopped,
                           const std::string& evicted_at);

}  // namespace fulcrum::agent
