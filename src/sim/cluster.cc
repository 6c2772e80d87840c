#include "sim/cluster.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>
#include <random>
#include <sstream>
#include <unordered_map>

#include "scheduler/fit_index.h"
#include "scheduler/framework.h"
#include "scheduler/job_runtime.h"
#include "scheduler/placement.h"
#include "scheduler/profile.h"

namespace fulcrum::sim {
namespace {

using base::BadRequest;
using base::Result;
using scheduler::NodeInfo;
using scheduler::PodInfo;

constexpr int64_t kStartUnix = 1'600'041'600;  // a midnight UTC
constexpr double kTraceMachines = 1300;        // cluster-trace-v2017 ran on about 1,300 machines
constexpr int kObserveEveryMinutes = 5;
constexpr int kForecastSlotMinutes = 15;
// After this many pods that fit nowhere in a minute the queue waits for the next minute
// (kube-scheduler backs unschedulable pods off for longer). Part of the model: the results depend
// on it. (With the headroom index below such a pod no longer costs a scan of every node.)
constexpr int kMaxFailedScansPerMinute = 8;
// Batch CPU headroom is indexed for pods expected to run at least this long (one index each; a
// pod uses the longest that it reaches): a longer runtime needs the capacity over more slots.
constexpr int64_t kHeadroomRuntimes[] = {0, 901, 3601};
constexpr int kHeadroomClasses = std::size(kHeadroomRuntimes);

Result<UsageShape> ShapeFrom(const TraceSeries& series) {
  ASSIGN_OR_RETURN(scheduler::UsageHistory h, Resample(series, 60, 6 * 3600));
  UsageShape shape;
  shape.name = series.name;
  double last = NAN;
  for (double v : h.samples) {
    if (std::isfinite(v)) {
      last = v;
      break;
    }
  }
  shape.values.reserve(h.samples.size());
  for (double v : h.samples) {
    if (std::isfinite(v)) last = v;
    shape.values.push_back(static_cast<float>(std::max(0.0, last)));
  }
  if (shape.values.size() < 2 * 1440) {
    return BadRequest(series.name + ": shorter than two days at one-minute steps");
  }
  std::vector<float> sorted = shape.values;
  size_t k = sorted.size() * 99 / 100;
  std::nth_element(sorted.begin(), sorted.begin() + k, sorted.end());
  float p99 = sorted[k];
  if (!(p99 > 0)) return BadRequest(series.name + ": no usage");
  for (float& v : shape.values) v /= p99;
  return shape;
}

double Percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  size_t k = std::min(v.size() - 1, static_cast<size_t>(q * v.size()));
  std::nth_element(v.begin(), v.begin() + k, v.end());
  return v[k];
}

// A batch pod on a node, with what the agent reads of it every minute (the workload's pods are
// millions, read in no order).
struct RunningBatch {
  int pod;  // index into workload.batch
  int attempt;
  int job;
  int start_minute;  // the first minute it runs
  int64_t cpu_milli;
  double remaining_seconds;  // of full-speed runtime
  double work_cpu_minutes;   // milli-minutes of work done so far
};

// Batch expected runtimes learnt as the live scheduler learns them: a scheduler::JobRuntimes with
// its default options, which are live_scheduler.cc's (the p90 of a key's last 20 completed runs),
// and 0 while no run is known (the policy's default then); one key per trace task. The trace is
// replayed every day, so a task's later days learn from its earlier ones. Estimates are kept by
// task index, so that a scheduling attempt costs no string lookup.
class TaskRuntimes {
 public:
  explicit TaskRuntimes(int tasks) : expected_(tasks, 0) {}
  int64_t Expected(int task) {
    if (expected_[task] < 0) expected_[task] = runtimes_.Expected(Key(task));
    return expected_[task];
  }
  // A completed pod of `task` that ran `seconds` of wall-clock time (throttled minutes included).
  void Record(int task, int64_t seconds) {
    runtimes_.Record(Key(task), seconds);
    expected_[task] = -1;  // recomputed when next asked
  }

 private:
  static std::string Key(int task) { return "batch/Job/task" + std::to_string(task); }
  scheduler::JobRuntimes runtimes_;
  std::vector<int64_t> expected_;  // -1: to be recomputed
};

// The name of attempt `attempt` of batch pod `pod` on its node.
std::string BatchPodName(int pod, int attempt) {
  return "b" + std::to_string(pod) + "-" + std::to_string(attempt);
}

// Every replica's usage minute after minute, without a division per replica and minute: the
// position of each in its shape, advanced one step a minute, in one compact record per replica.
class UsageCursor {
 public:
  UsageCursor(const Workload& w, int64_t t) : replicas_(w.replicas.size()), now_(w.replicas.size()) {
    for (size_t i = 0; i < replicas_.size(); ++i) {
      const OnlineReplica& r = w.replicas[i];
      const std::vector<float>& values = w.shapes[r.shape].values;
      int64_t n = static_cast<int64_t>(values.size());
      int64_t k = (t + r.shift_minutes) % n;
      replicas_[i] = {values.data(), static_cast<uint32_t>(n),
                      static_cast<uint32_t>(k < 0 ? k + n : k), r.peak_milli};
      now_[i] = r.peak_milli * values[replicas_[i].pos];
    }
  }
  // Usage of every replica at the current minute (Workload::Usage, the same floats).
  const std::vector<float>& now() const { return now_; }
  void Advance() {
    for (size_t i = 0; i < replicas_.size(); ++i) {
      Replica& r = replicas_[i];
      if (++r.pos == r.length) r.pos = 0;
      now_[i] = r.peak_milli * r.shape[r.pos];
    }
  }

 private:
  struct Replica {
    const float* shape;
    uint32_t length;  // of the shape
    uint32_t pos;
    float peak_milli;
  };
  std::vector<Replica> replicas_;
  std::vector<float> now_;
};

// The batch queue, FIFO: a pod placed from the middle leaves a hole instead of shifting the pods
// behind it (the queue holds millions at 10,000 nodes); holes are dropped once they outnumber the
// pods.
class BatchQueue {
 public:
  struct Entry {
    int pod;  // index into workload.batch; -1: a hole
    int attempt;
  };
  void Push(int pod, int attempt) {
    entries_.push_back({pod, attempt});
    ++live_;
  }
  size_t size() const { return live_; }
  // Positions from first() to end(); a hole has pod -1. Push and Compact move them.
  size_t first() const { return head_; }
  size_t end() const { return entries_.size(); }
  const Entry& at(size_t i) const { return entries_[i]; }
  void Remove(size_t i) {
    entries_[i].pod = -1;
    --live_;
  }
  void Compact() {
    while (head_ < entries_.size() && entries_[head_].pod < 0) ++head_;
    if (entries_.size() - head_ <= 2 * live_ + 4096) return;
    std::vector<Entry> kept;
    kept.reserve(live_);
    for (size_t i = head_; i < entries_.size(); ++i) {
      if (entries_[i].pod >= 0) kept.push_back(entries_[i]);
    }
    entries_ = std::move(kept);
    head_ = 0;
  }

 private:
  std::vector<Entry> entries_;
  size_t head_ = 0;
  size_t live_ = 0;
};

struct NodeState {
  std::vector<int> online;          // replica indices
  std::vector<RunningBatch> batch;  // in start order
  int64_t batch_cpu_milli = 0;
};

}  // namespace

float Workload::Usage(const OnlineReplica& r, int64_t t) const {
  const std::vector<float>& v = shapes[r.shape].values;
  int64_t n = static_cast<int64_t>(v.size());
  int64_t i = (t + r.shift_minutes) % n;
  if (i < 0) i += n;
  return r.peak_milli * v[i];
}

Result<Workload> BuildWorkload(const std::vector<TraceSeries>& online,
                               const std::vector<BatchTask>& tasks, const ClusterOptions& o) {
  Workload w;
  w.minutes = static_cast<int64_t>(o.days) * 1440;
  w.start_unix = kStartUnix;
  for (const TraceSeries& s : online) {
    auto shape = ShapeFrom(s);
    if (shape.ok()) w.shapes.push_back(std::move(*shape));
  }
  if (w.shapes.empty()) {
    return BadRequest("no online series is usable (each needs two days of readings)");
  }
  std::mt19937_64 rng(o.seed);
  auto uniform = [&](int64_t lo, int64_t hi) {
    return std::uniform_int_distribution<int64_t>(lo, hi)(rng);
  };
  std::normal_distribution<double> jitter(1.0, 0.1);
  const int64_t peaks[] = {500, 1000, 2000, 4000, 8000};
  double target = o.online_fill * o.nodes * static_cast<double>(o.node_cpu_milli);
  double requested = 0;
  while (requested < target) {
    int app = w.apps++;
    int shape = static_cast<int>(uniform(0, static_cast<int64_t>(w.shapes.size()) - 1));
    int64_t length = static_cast<int64_t>(w.shapes[shape].values.size());
    int64_t app_shift = uniform(0, length / 1440 - 1) * 1440 + uniform(-60, 60);
    int64_t peak = peaks[uniform(0, 4)];
    int replicas = static_cast<int>(uniform(2, 12));
    for (int i = 0; i < replicas && requested < target; ++i) {
      OnlineReplica r;
      r.app = app;
      r.shape = shape;
      r.shift_minutes = app_shift + uniform(0, 5);
      r.peak_milli = static_cast<float>(peak * std::clamp(jitter(rng), 0.7, 1.3));
      r.request_milli =
          static_cast<int64_t>(std::ceil(o.request_factor * r.peak_milli / 100)) * 100;
      r.memory_bytes = r.request_milli * (2ll << 30) / 1000;
      requested += static_cast<double>(r.request_milli);
      w.replicas.push_back(r);
    }
  }

  double factor = o.nodes / kTraceMachines * o.batch_scale;
  std::map<std::tuple<int64_t, int, int>, int> jobs;
  w.tasks = static_cast<int>(tasks.size());
  for (int day = 0; day < o.days; ++day) {
    for (size_t task_index = 0; task_index < tasks.size(); ++task_index) {
      const BatchTask& task = tasks[task_index];
      if (!(task.cpu_per_instance > 0) || task.end_time <= task.create_time ||
          task.instances <= 0) {
        continue;
      }
      int copies = static_cast<int>(factor);
      if (std::uniform_real_distribution<double>(0, 1)(rng) < factor - copies) ++copies;
      int64_t instance_milli = static_cast<int64_t>(std::llround(task.cpu_per_instance * 10));
      double instance_mem = std::isfinite(task.memory_per_instance)
                                ? task.memory_per_instance * o.batch_memory_unit_bytes
                                : 0;
      // Instances per pod: up to the pod CPU size, and a pod asks for at most 1/8 of a node's
      // memory.
      int64_t per_pod = std::max<int64_t>(
          1, std::min<double>(o.batch_pod_cpu_milli / std::max<int64_t>(1, instance_milli),
                              instance_mem > 0 ? o.node_memory_bytes / 8 / instance_mem : 1e18));
      for (int c = 0; c < copies; ++c) {
        int64_t arrival =
            std::max<int64_t>(0, task.create_time) / 60 + day * 1440 + (c ? uniform(0, 5) : 0);
        if (arrival >= w.minutes) continue;
        auto [it, inserted] =
            jobs.try_emplace({task.job_id, day, c}, static_cast<int>(jobs.size()));
        if (inserted) w.job_pods.push_back(0);
        for (int64_t left = task.instances; left > 0; left -= per_pod) {
          int64_t n = std::min(left, per_pod);
          BatchPod pod;
          pod.arrival_minute = arrival;
          pod.job = it->second;
          pod.task = static_cast<int>(task_index);
          pod.cpu_milli = n * instance_milli;
          pod.memory_bytes = static_cast<int64_t>(n * instance_mem);
          pod.duration_seconds = task.end_time - task.create_time;
          w.batch.push_back(pod);
          ++w.job_pods[pod.job];
        }
      }
    }
  }
  if (w.batch.empty() && !tasks.empty())
    return BadRequest("no batch task has a CPU request and a duration");
  std::stable_sort(w.batch.begin(), w.batch.end(), [](const BatchPod& a, const BatchPod& b) {
    return a.arrival_minute < b.arrival_minute;
  });
  return w;
}

Result<PolicyReport> RunCluster(const Workload& w, std::string_view policy_name,
                                const ClusterOptions& o) {
  auto wall_start = std::chrono::steady_clock::now();
  base::FakeClock clock(base::WallTime(std::chrono::seconds(w.start_unix)));
  scheduler::ProfileStore profiles;
  scheduler::PolicyOptions policy_options;
  policy_options.clock = &clock;
  policy_options.profiles = &profiles;
  policy_options.risk_bound = o.risk_bound;
  policy_options.safety_margin = o.safety_margin;
  ASSIGN_OR_RETURN(std::unique_ptr<scheduler::Policy> policy,
                   scheduler::MakePolicy(policy_name, policy_options));
  const bool learns = policy_name == "archimedes";
  const bool oracle = policy_name == "oracle";
  TaskRuntimes runtimes(learns ? w.tasks : 0);

  PolicyReport report;
  report.policy = std::string(policy_name);
  const double capacity = static_cast<double>(o.node_cpu_milli);
  std::vector<NodeInfo> nodes(o.nodes);
  std::vector<NodeState> state(o.nodes);
  for (int i = 0; i < o.nodes; ++i) {
    char name[32];
    std::snprintf(name, sizeof(name), "node-%05d", i);
    nodes[i].name = name;
    nodes[i].labels = {{"kubernetes.io/hostname", name}};
    nodes[i].allocatable = {o.node_cpu_milli, o.node_memory_bytes, o.node_pods};
    nodes[i].cpu_usage_milli = 0;
    nodes[i].online_cpu_usage_milli = 0;
    nodes[i].memory_usage_bytes = 0;
    nodes[i].Touch();
  }
  std::vector<std::string> app_keys(w.apps);
  for (int a = 0; a < w.apps; ++a) app_keys[a] = "online/Deployment/a" + std::to_string(a);
  std::vector<scheduler::ProfileStore::AppIndex> app_profiles;  // observed by index, not by key
  if (learns) {
    for (const std::string& key : app_keys) app_profiles.push_back(profiles.IndexOf(key));
  }

  // Replicas are generated application by application: one profile lookup per application.
  std::vector<double> values;
  auto observe = [&](int64_t t, const std::vector<float>* usage) {
    for (size_t i = 0; i < w.replicas.size();) {
      int app = w.replicas[i].app;
      values.clear();
      for (; i < w.replicas.size() && w.replicas[i].app == app; ++i) {
        values.push_back(usage ? (*usage)[i] : w.Usage(w.replicas[i], t));
      }
      profiles.Observe(app_profiles[app], w.start_unix + t * 60, values);
    }
  };
  if (learns) {
    for (int64_t t = -o.history_days * 1440; t < 0; t += kObserveEveryMinutes) {
      observe(t, nullptr);
      if ((t + o.history_days * 1440) % 60 == 55) profiles.Commit();
    }
    profiles.Commit();
  }

  scheduler::ScheduleOptions schedule_options;
  schedule_options.percentage_of_nodes_to_score = o.percentage_of_nodes_to_score;
  schedule_options.preemption = false;
  size_t next_start = 0;
  double schedule_seconds = 0;
  auto schedule = [&](const PodInfo& pod) {
    auto t0 = std::chrono::steady_clock::now();
    scheduler::Decision d = scheduler::Schedule(pod, nodes, *policy, schedule_options, &next_start);
    schedule_seconds +=
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    ++report.decisions;
    return d.node_index;
  };

  // Online replicas, in one seeded order that every policy sees.
  std::vector<int> order(w.replicas.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int>(i);
  std::mt19937_64 rng(o.seed ^ 0x5eed);
  std::shuffle(order.begin(), order.end(), rng);
  std::vector<int> replica_node(w.replicas.size(), -1);
  for (int i : order) {
    const OnlineReplica& r = w.replicas[i];
    PodInfo pod;
    pod.ns = "online";
    pod.name = "a" + std::to_string(r.app) + "-" + std::to_string(i);
    pod.app = app_keys[r.app];
    pod.labels = {{"app", "a" + std::to_string(r.app)}};
    pod.requests = {r.request_milli, r.memory_bytes, 1};
    pod.priority = 1000;
    auto node = schedule(pod);
    if (!node) {
      ++report.online_pods_unplaced;
      continue;
    }
    nodes[*node].AddPod(pod);
    state[*node].online.push_back(i);
    replica_node[i] = static_cast<int>(*node);
  }

  if (oracle) {
    // The actual online demand of each node, its peak per 15-minute slot, for the whole run.
    int64_t slots = (w.minutes + kForecastSlotMinutes - 1) / kForecastSlotMinutes;
    for (NodeInfo& n : nodes) {
      n.online_forecast.start_unix_seconds = w.start_unix;
      n.online_forecast.slot_seconds = kForecastSlotMinutes * 60;
      n.online_forecast.cpu_milli.assign(slots, 0);
    }
    std::vector<float> demand(o.nodes);
    UsageCursor cursor(w, 0);
    for (int64_t t = 0; t < w.minutes; ++t) {
      if (t > 0) cursor.Advance();
      std::fill(demand.begin(), demand.end(), 0.f);
      for (size_t i = 0; i < w.replicas.size(); ++i) {
        if (replica_node[i] >= 0) demand[replica_node[i]] += cursor.now()[i];
      }
      for (int n = 0; n < o.nodes; ++n) {
        float& peak = nodes[n].online_forecast.cpu_milli[t / kForecastSlotMinutes];
        peak = std::max(peak, demand[n]);
      }
    }
  }

  // Batch queue: pod indices, with the attempt number for names.
  BatchQueue queue;
  std::vector<int> job_left = w.job_pods;
  size_t next_arrival = 0;
  double unmet_alone = 0;  // online demand above capacity with no batch work at all
  double online_demand_total = 0, unmet_total = 0, batch_work = 0, batch_lost = 0;
  double pending_demand = 0;  // of online replicas no node was found for
  std::vector<double> util(w.minutes);
  double hour_util = 0, hour_contention = 0;

  // Batch CPU headroom per node (an upper bound), so that a scan skips the full nodes: rebuilt
  // every minute after the agent, and for a node after each bind.
  std::array<scheduler::FreeCpuIndex, kHeadroomClasses> headroom;
  std::array<std::vector<double>, kHeadroomClasses> headroom_values;
  for (std::vector<double>& values : headroom_values) values.resize(o.nodes);
  UsageCursor usage(w, 0);
  std::vector<double> online_demand(o.nodes);  // of each node, this minute
  for (int64_t t = 0; t < w.minutes; ++t) {
    clock.Set(base::WallTime(std::chrono::seconds(w.start_unix + t * 60)));
    if (t > 0) usage.Advance();
    if (learns && t % kObserveEveryMinutes == 0) observe(t, &usage.now());
    if (learns && t % 60 == 59) profiles.Commit();
    std::fill(online_demand.begin(), online_demand.end(), 0.0);
    for (size_t i = 0; i < w.replicas.size(); ++i) {
      if (replica_node[i] >= 0) {
        online_demand[replica_node[i]] += usage.now()[i];
      } else {
        pending_demand += usage.now()[i];
      }
    }
    while (next_arrival < w.batch.size() && w.batch[next_arrival].arrival_minute <= t) {
      queue.Push(static_cast<int>(next_arrival++), 0);
    }

    // The agent on every node: throttle, account, then evict for the next minute.
    double used_total = 0;
    int64_t contended = 0;
    for (int n = 0; n < o.nodes; ++n) {
      NodeState& s = state[n];
      NodeInfo& node = nodes[n];
      double online = online_demand[n];
      double batch_used = 0;
      double quota = std::max(0.0, o.throttle_threshold * capacity - online);
      double b = static_cast<double>(s.batch_cpu_milli);
      if (b > 0) {
        double speed = std::max(std::min(1.0, quota / b), o.batch_floor_share);
        for (size_t k = 0; k < s.batch.size();) {
          RunningBatch& rb = s.batch[k];
          double seconds = std::min(rb.remaining_seconds, 60 * speed);
          rb.remaining_seconds -= seconds;
          double work = rb.cpu_milli * seconds / 60;  // milli-minutes
          rb.work_cpu_minutes += work;
          batch_used += work;
          if (rb.remaining_seconds <= 1e-9) {
            if (learns) {
              double ran = static_cast<double>(t - rb.start_minute) * 60 + seconds / speed;
              runtimes.Record(w.batch[rb.pod].task, std::max<int64_t>(1, std::llround(ran)));
            }
            batch_work += rb.work_cpu_minutes;
            ++report.batch_pods_completed;
            if (--job_left[rb.job] == 0) ++report.batch_jobs_completed;
            node.RemovePod("batch", BatchPodName(rb.pod, rb.attempt));
            s.batch_cpu_milli -= rb.cpu_milli;
            s.batch.erase(s.batch.begin() + k);
            continue;
          }
          ++k;
        }
      }
      double unmet = std::clamp(online + batch_used - capacity, 0.0, online);
      unmet_alone += std::max(0.0, online - capacity);
      online_demand_total += online;
      unmet_total += unmet;
      if (unmet > 0) ++contended;
      used_total += online - unmet + batch_used;
      // Evict newest first while batch pods would get under evict_share of their requests.
      while (!s.batch.empty() && quota < o.evict_share * static_cast<double>(s.batch_cpu_milli)) {
        RunningBatch& rb = s.batch.back();
        batch_work += rb.work_cpu_minutes;
        batch_lost += rb.work_cpu_minutes;
        ++report.evictions;
        node.RemovePod("batch", BatchPodName(rb.pod, rb.attempt));
        s.batch_cpu_milli -= rb.cpu_milli;
        queue.Push(rb.pod, rb.attempt + 1);
        s.batch.pop_back();
      }
      node.cpu_usage_milli = online + batch_used;
      node.online_cpu_usage_milli = online;
      node.memory_usage_bytes = static_cast<double>(node.requested.memory_bytes);
      node.MarkUsageReported();
    }
    report.contention_node_minutes += contended;
    util[t] = used_total / (capacity * o.nodes);
    hour_util += util[t];
    hour_contention += static_cast<double>(contended);
    if (t % 60 == 59 || t + 1 == w.minutes) {
      int64_t in_hour = t % 60 + 1;
      report.util_by_hour.push_back(hour_util / static_cast<double>(in_hour));
      report.contention_by_hour.push_back(hour_contention);
      hour_util = hour_contention = 0;
    }

    for (int n = 0; n < o.nodes; ++n) {
      std::array<double, kHeadroomClasses> values;
      scheduler::BatchCpuHeadrooms(*policy, nodes, n, kHeadroomRuntimes, values);
      for (int c = 0; c < kHeadroomClasses; ++c) headroom_values[c][n] = values[c];
    }
    for (int c = 0; c < kHeadroomClasses; ++c) headroom[c].Assign(headroom_values[c]);

    // Schedule queued batch pods: FIFO; once a pod fails, pods asking at least as much CPU and
    // memory are not tried again this minute.
    std::vector<std::pair<int64_t, int64_t>> failed;
    int failures = 0, attempts = 0;
    PodInfo pod;  // one for every attempt: its strings keep their buffers
    pod.ns = "batch";
    pod.qos = scheduler::Qos::kBatch;
    for (size_t q = queue.first(); q < queue.end() &&
                                   attempts < o.max_batch_attempts_per_minute &&
                                   failures < kMaxFailedScansPerMinute;
         ++q) {
      const BatchQueue::Entry* it = &queue.at(q);
      if (it->pod < 0) continue;
      const BatchPod& bp = w.batch[it->pod];
      if (std::any_of(failed.begin(), failed.end(), [&](const auto& f) {
            return bp.cpu_milli >= f.first && bp.memory_bytes >= f.second;
          })) {
        continue;
      }
      ++attempts;
      pod.name = BatchPodName(it->pod, it->attempt);
      pod.app = "batch/Job/j";
      pod.app += std::to_string(bp.job);
      pod.requests = {bp.cpu_milli, bp.memory_bytes, 1};
      pod.expected_runtime_seconds = learns ? runtimes.Expected(bp.task) : bp.duration_seconds;
      const bool default_runtime = pod.expected_runtime_seconds <= 0;
      if (default_runtime) pod.expected_runtime_seconds = scheduler::kDefaultBatchRuntimeSeconds;
      int c = kHeadroomClasses - 1;
      while (c > 0 && kHeadroomRuntimes[c] > pod.expected_runtime_seconds) --c;
      schedule_options.batch_headroom = &headroom[c];
      auto node = schedule(pod);
      if (!node) {
        failed.emplace_back(bp.cpu_milli, bp.memory_bytes);
        ++failures;
        continue;
      }
      nodes[*node].AddPod(pod);
      if (default_runtime) ++report.batch_placed_default_runtime;
      if (pod.expected_runtime_seconds < bp.duration_seconds) ++report.batch_placed_short_runtime;
      NodeState& s = state[*node];
      s.batch.push_back({it->pod, it->attempt, bp.job, static_cast<int>(t + 1), bp.cpu_milli,
                         static_cast<double>(bp.duration_seconds), 0});
      s.batch_cpu_milli += bp.cpu_milli;
      std::array<double, kHeadroomClasses> values;
      scheduler::BatchCpuHeadrooms(*policy, nodes, *node, kHeadroomRuntimes, values);
      for (int c = 0; c < kHeadroomClasses; ++c) headroom[c].Set(*node, values[c]);
      queue.Remove(q);
    }
    queue.Compact();
  }

  double util_sum = 0;
  for (double u : util) util_sum += u;
  report.cpu_util_mean = w.minutes ? util_sum / static_cast<double>(w.minutes) : 0;
  report.cpu_util_p95 = Percentile(util, 0.95);
  report.online_unmet_cpu_seconds = unmet_total * 60 / 1000;
  report.online_unmet_share = online_demand_total > 0 ? unmet_total / online_demand_total : 0;
  report.online_unmet_from_batch_cpu_seconds = (unmet_total - unmet_alone) * 60 / 1000;
  report.online_pending_demand_share =
      pending_demand > 0 ? pending_demand / (online_demand_total + pending_demand) : 0;
  // Work of pods still running at the end counts as done.
  for (const NodeState& s : state) {
    for (const RunningBatch& rb : s.batch) batch_work += rb.work_cpu_minutes;
  }
  report.batch_cpu_hours = batch_work / 1000 / 60;
  report.batch_pods_pending = static_cast<int64_t>(queue.size() + (w.batch.size() - next_arrival));
  report.batch_lost_share = batch_work > 0 ? batch_lost / batch_work : 0;
  report.decisions_per_second = schedule_seconds > 0 ? report.decisions / schedule_seconds : 0;
  report.wall_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_start).count();
  return report;
}

std::string ReportJson(const PolicyReport& r, int nodes, int days) {
  auto num = [](double v) {
    char buf[64];
    std::snprintf(buf, sizeof(buf), "%.6g", v);
    return std::string(buf);
  };
  std::ostringstream out;
  out << "{\"policy\":\"" << r.policy << "\",\"cpu_util_mean\":" << num(r.cpu_util_mean)
      << ",\"cpu_util_p95\":" << num(r.cpu_util_p95)
      << ",\"online_unmet_share\":" << num(r.online_unmet_share)
      << ",\"contention_node_minutes\":" << r.contention_node_minutes
      << ",\"batch_cpu_hours\":" << num(r.batch_cpu_hours)
      << ",\"batch_jobs_completed\":" << r.batch_jobs_completed << ",\"evictions\":" << r.evictions
      << ",\"batch_lost_share\":" << num(r.batch_lost_share)
      << ",\"decisions_per_second\":" << num(r.decisions_per_second)
      << ",\"online_unmet_cpu_seconds\":" << num(r.online_unmet_cpu_seconds)
      << ",\"online_unmet_from_batch_cpu_seconds\":" << num(r.online_unmet_from_batch_cpu_seconds)
      << ",\"batch_pods_completed\":" << r.batch_pods_completed
      << ",\"batch_pods_pending\":" << r.batch_pods_pending
      << ",\"batch_placed_default_runtime\":" << r.batch_placed_default_runtime
      << ",\"batch_placed_short_runtime\":" << r.batch_placed_short_runtime
      << ",\"decisions\":" << r.decisions << ",\"online_pods_unplaced\":" << r.online_pods_unplaced
      << ",\"online_pending_demand_share\":" << num(r.online_pending_demand_share)
      << ",\"nodes\":" << nodes << ",\"days\":" << days
      << ",\"wall_seconds\":" << num(r.wall_seconds) << "}";
  return out.str();
}

std::string PlotSvg(const std::vector<PolicyReport>& reports) {
  const char* colors[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"};
  const int width = 900, panel = 220, margin = 40;
  size_t hours = 0;
  double max_contention = 1;
  for (const PolicyReport& r : reports) {
    hours = std::max(hours, r.util_by_hour.size());
    for (double c : r.contention_by_hour) max_contention = std::max(max_contention, c);
  }
  std::ostringstream svg;
  svg << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << width << "\" height=\""
      << 2 * panel + 3 * margin << "\" font-family=\"sans-serif\" font-size=\"12\">\n"
      << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  auto panel_of = [&](int index, const char* title, double max_value,
                      std::vector<double> PolicyReport::*series) {
    int top = margin + index * (panel + margin);
    svg << "<text x=\"" << margin << "\" y=\"" << top - 8 << "\">" << title << " (max " << max_value
        << ")</text>\n"
        << "<rect x=\"" << margin << "\" y=\"" << top << "\" width=\"" << width - 2 * margin
        << "\" height=\"" << panel << "\" fill=\"none\" stroke=\"#999\"/>\n";
    for (size_t p = 0; p < reports.size(); ++p) {
      const std::vector<double>& v = reports[p].*series;
      svg << "<polyline fill=\"none\" stroke-width=\"1.2\" stroke=\"" << colors[p % 6]
          << "\" points=\"";
      for (size_t h = 0; h < v.size(); ++h) {
        double x = margin + (width - 2 * margin) * (hours > 1 ? double(h) / (hours - 1) : 0);
        double y = top + panel - panel * std::min(1.0, v[h] / max_value);
        svg << x << "," << y << " ";
      }
      svg << "\"/>\n<text x=\"" << width - margin - 120 << "\" y=\"" << top + 16 + 14 * p
          << "\" fill=\"" << colors[p % 6] << "\">" << reports[p].policy << "</text>\n";
    }
  };
  panel_of(0, "cluster CPU utilization per hour", 1.0, &PolicyReport::util_by_hour);
  panel_of(1, "node-minutes in contention per hour", max_contention,
           &PolicyReport::contention_by_hour);
  svg << "</svg>\n";
  return svg.str();
}

}  // namespace fulcrum::sim
