#pragma once

// The trace-driven cluster model behind `fulcrum sim run`: online applications made of scaled,
// time-shifted replicas of real usage series, batch pods from Alibaba 2017 batch_task arrivals,
// durations and sizes, placed by a scheduler::Policy through scheduler::Schedule, and the node
// agent's throttle-then-evict loop, in one-minute steps.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "sim/trace.h"

namespace fulcrum::sim {

struct ClusterOptions {
  int nodes = 1000;
  int days = 7;
  uint64_t seed = 1;
  int64_t node_cpu_milli = 64000;
  int64_t node_memory_bytes = 256ll << 30;
  int64_t node_pods = 110;

  // Online applications are added until their requests reach this share of the cluster's CPU.
  double online_fill = 0.7;
  // A replica requests this multiple of its own p99 usage (what a careful owner asks for).
  double request_factor = 1.0;
  int history_days = 1;  // usage observed before the run starts (profiles warm up on it)

  // Batch: the trace's tasks scaled to the cluster size (the 2017 trace ran on about 1,300
  // machines), times `batch_scale`; a task's instances are packed into pods of at most this CPU.
  double batch_scale = 1.0;
  int64_t batch_pod_cpu_milli = 16000;
  // The trace's memory is normalised (0-1); a normalised unit is taken as this many bytes. The
  // model is about CPU: at the node's own size, the trace's memory per core would make memory,
  // not CPU, the bound on batch work under every policy.
  int64_t batch_memory_unit_bytes = 64ll << 30;
  int max_batch_attempts_per_minute = 20000;

  // The agent: batch pods are throttled so that online plus batch stays under this share of the
  // node's CPU; a throttled batch pod still takes `batch_floor_share` of its request (CPU shares
  // and reaction time); batch pods are evicted, newest first, while the quota left for them is
  // under `evict_share` of what they request.
  double throttle_threshold = 0.9;
  double batch_floor_share = 0.1;
  double evict_share = 0.5;

  int percentage_of_nodes_to_score = 0;  // kube-scheduler's adaptive default

  // archimedes: the contention risk bound and the share of capacity kept free of batch work.
  double risk_bound = 0.01;
  double safety_margin = 0.05;
};

// One online series turned into a usage shape: one-minute steps, scaled to a p99 of 1.
struct UsageShape {
  std::string name;
  std::vector<float> values;
};

struct OnlineReplica {
  int app;
  int shape;
  int64_t shift_minutes;
  float peak_milli;        // usage = peak x shape value
  int64_t request_milli;
  int64_t memory_bytes;
};

struct BatchPod {
  int64_t arrival_minute;
  int job;                 // index into the workload's jobs
  int task;                // index into the trace's tasks: its runtimes are learnt under it
  int64_t cpu_milli;
  int64_t memory_bytes;
  int64_t duration_seconds;
};

// What every policy is given: the same applications and the same batch arrivals.
struct Workload {
  std::vector<UsageShape> shapes;
  int apps = 0;
  std::vector<OnlineReplica> replicas;
  std::vector<BatchPod> batch;          // by arrival
  std::vector<int> job_pods;            // pods per job
  int tasks = 0;                        // the trace's tasks (every BatchPod::task is below)
  int64_t minutes = 0;
  int64_t start_unix = 0;

  // Usage of a replica at minute t (t may be negative: the history before the run).
  float Usage(const OnlineReplica& r, int64_t t) const;
};

// Shapes from the online series (gaps filled, at least two days long), applications up to the
// online fill, batch pods from the tasks that have a CPU request and an end after their start.
// BadRequest when no series is usable or no task is.
base::Result<Workload> BuildWorkload(const std::vector<TraceSeries>& online,
                                     const std::vector<BatchTask>& tasks,
                                     const ClusterOptions& options);

struct PolicyReport {
  std::string policy;
  double cpu_util_mean = 0;
  double cpu_util_p95 = 0;
  double online_unmet_cpu_seconds = 0;
  double online_unmet_share = 0;
  // The part of the unmet demand that batch work caused (the rest: online demand above the
  // node's capacity by itself, a matter of where the online pods were placed).
  double online_unmet_from_batch_cpu_seconds = 0;
  int64_t contention_node_minutes = 0;
  double batch_cpu_hours = 0;
  int64_t batch_jobs_completed = 0;
  int64_t batch_pods_completed = 0;
  int64_t evictions = 0;
  double batch_lost_share = 0;
  double decisions_per_second = 0;
  int64_t decisions = 0;
  int64_t online_pods_unplaced = 0;
  // The demand of the online replicas no node was found for, as a share of all online demand
  // (theirs included): pending pods, whose demand goes unserved but not by contention, so it is
  // not in online_unmet_share.
  double online_pending_demand_share = 0;
  int64_t batch_pods_pending = 0;   // still queued at the end
  // Batch pods placed with the default expected runtime (no completed run of their task known),
  // and with an expected runtime under their duration (archimedes learns them; the others are
  // given the duration).
  int64_t batch_placed_default_runtime = 0;
  int64_t batch_placed_short_runtime = 0;
  double wall_seconds = 0;
  // Per hour: cluster CPU utilization and node-minutes in contention (for --plot).
  std::vector<double> util_by_hour;
  std::vector<double> contention_by_hour;
};

// Runs the workload under one policy. NotFound for an unknown policy name. A batch pod's expected
// runtime is learnt under `archimedes` as the live scheduler learns it (scheduler::JobRuntimes,
// one key per trace task, from the wall-clock runtimes of its completed pods; an evicted pod is
// no run); the other policies are given its duration (the oracle knows the future; `requests`
// and `load-aware` do not use it).
base::Result<PolicyReport> RunCluster(const Workload& workload, std::string_view policy,
                                      const ClusterOptions& options);

// One line of JSON: policy, cpu_util_mean, cpu_util_p95, online_unmet_share,
// contention_node_minutes, batch_cpu_hours, batch_jobs_completed, evictions, batch_lost_share,
// decisions_per_second, then the extra fields.
std::string ReportJson(const PolicyReport& report, int nodes, int days);

// An SVG with utilization and contention per hour, one line per policy.
std::string PlotSvg(const std::vector<PolicyReport>& reports);

}  // namespace fulcrum::sim
