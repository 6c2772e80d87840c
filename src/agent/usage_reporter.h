// The agent's usage feed to the control plane (Koordinator's koordlet NodeMetric reporter): every
// report interval it writes the node's and its pods' measured CPU and memory — the latest sample,
// and the average and p95 over the interval — to the status of the cluster-scoped NodeMetric
// (scheduling.fulcrum.dev/v1alpha1) named after the node. The API server serves metrics.k8s.io
// from these objects and the scheduler places by them. Schema: docs/api.md.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "agent/stats.h"
#include "base/clock.h"
#include "base/json.h"
#include "base/status.h"

namespace fulcrum::client {
class ApiClient;
}  // namespace fulcrum::client

namespace fulcrum::agent {

// The samples of one report interval. Not thread-safe.
class UsageWindow {
 public:
  // What the report says of a pod besides its usage: uid, qos ("online" or "batch") and priority.
  // Returns null when the pod is unknown (its entry then carries usage only).
  using PodLookup = std::function<std::shared_ptr<const base::Json>(const std::string& ns_name)>;

  // Adds the collector's latest node and container samples. A sample already added (same time)
  // is ignored, so calling this more often than the collector samples is harmless; samples
  // without a CPU rate (a container's first) count for memory only.
  void Add(const std::optional<UsageSample>& node, const std::vector<ContainerUsage>& containers);
  bool empty() const { return node_.empty() && pods_.empty(); }

  // The NodeMetric status for what was added, then empties the window. Pods are those in the
  // newest container sample with a CPU rate; `pods` may be null.
  base::Json TakeStatus(const PodLookup& pods);

  struct Point {
    base::WallTime time;
    std::optional<double> cpu_cores;
    std::optional<double> memory_bytes;
  };

 private:
  struct PodSeries {
    std::map<base::WallTime, Point> points;  // per sample time, summed over containers
    std::map<std::string, Point> containers;  // latest per container
  };
  std::vector<Point> node_;
  std::map<std::string, PodSeries> pods_;  // by "ns/name"
  std::optional<base::WallTime> last_node_, last_containers_;
};

// A pod's qos as the scheduler classifies it: "batch" for priority class fulcrum-batch or the
// annotation fulcrum.dev/qos: batch, else "online".
std::string PodQos(const base::Json& pod);

struct UsageReporterOptions {
  std::string node_name;
  std::chrono::seconds interval{15};   // a NodeMetric write this often
  std::chrono::milliseconds sample{1000};  // the collector's latest sample read this often
};

// Feeds a UsageWindow from a StatsCollector (which the agent's housekeeping samples every second)
// and writes it out every interval. Thread-safe; everything borrowed must outlive it.
class UsageReporter {
 public:
  UsageReporter(UsageReporterOptions options, client::ApiClient* api, const StatsCollector* stats,
                UsageWindow::PodLookup pods);
  ~UsageReporter();  // stops
  UsageReporter(const UsageReporter&) = delete;
  UsageReporter& operator=(const UsageReporter&) = delete;

  // Starts the thread that collects and reports. Stop is idempotent.
  void Start();
  void Stop();

  // One collection: the collector's latest samples into the window.
  void Collect();
  // Writes the window to the NodeMetric's status (creating the NodeMetric, owned by the Node, when
  // it does not exist) and starts a new window. Ok without writing when nothing was collected.
  base::Status Report();

 private:
  const UsageReporterOptions options_;
  client::ApiClient* const api_;
  const StatsCollector* const stats_;
  const UsageWindow::PodLookup pods_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;  // guarded by mu_
  UsageWindow window_;     // guarded by mu_
  std::thread thread_;
};

}  // namespace fulcrum::agent
