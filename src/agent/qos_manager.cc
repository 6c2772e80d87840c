#include "agent/qos_manager.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <sstream>

#include "api/validation.h"
#include "base/file.h"
#include "base/log.h"

namespace fulcrum::agent {
namespace {

using base::Json;

// Koordinator's koordlet: beMinQuota (2000 µs of a 100 ms period for the BE group; here per
// container, 1000 µs, the OCI spec builder's floor), a raised quota grows by at most 10% of the
// node per round (beMaxIncreaseCPUPercent), and changes under 1% of the node are not written
// (suppressBypassQuotaDeltaRatio).
constexpr double kMinContainerQuotaCores = 0.01;
constexpr double kMaxIncreaseShare = 0.10;
constexpr double kBypassShare = 0.01;
// Memory evict releases down to this far below its threshold (Koordinator's default lower).
constexpr int kMemoryLowerGapPercent = 2;

std::string Cores(double cores) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", cores);
  return buf;
}

std::string Bytes(uint64_t bytes) {
  char buf[32];
  if (bytes >= (1ull << 30)) {
    std::snprintf(buf, sizeof buf, "%.1fGi", static_cast<double>(bytes) / (1ull << 30));
  } else {
    std::snprintf(buf, sizeof buf, "%lluMi", static_cast<unsigned long long>(bytes >> 20));
  }
  return buf;
}

std::string FormatValue(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

// What a batch container asks for: its request, else its limit, else one core.
double RequestCores(const QosContainer& c) {
  if (c.cpu_request_cores > 0) return c.cpu_request_cores;
  if (c.cpu_limit_cores > 0) return c.cpu_limit_cores;
  return 1.0;
}

double Cpu(const Json& container, const char* section) {
  const Json* q = base::FindPath(container, {"resources", section, "cpu"});
  api::Quantity parsed;
  if (q == nullptr || q->is_null() || !api::ParseQuantity(*q, &parsed)) return 0;
  return static_cast<double>(parsed.MilliValue()) / 1000.0;
}

class CgroupCpuBandwidth : public CpuBandwidthControl {
 public:
  explicit CgroupCpuBandwidth(CgroupLayout layout) : layout_(std::move(layout)) {}

  // CpuBandwidthControl
  base::Result<CpuBandwidth> Read(const std::string& dir) override {
    CpuBandwidth b;
    if (layout_.version == CgroupVersion::kV2) {
      ASSIGN_OR_RETURN(std::string max, ReadOrNotFound(dir + "/cpu.max"));
      std::istringstream in(max);
      std::string quota;
      if (!(in >> quota >> b.period_us)) return base::Internal(dir + "/cpu.max: " + max);
      b.quota_us = quota == "max" ? -1 : std::atoll(quota.c_str());
      return b;
    }
    ASSIGN_OR_RETURN(std::string quota, ReadOrNotFound(dir + "/cpu.cfs_quota_us"));
    ASSIGN_OR_RETURN(std::string period, ReadOrNotFound(dir + "/cpu.cfs_period_us"));
    b.quota_us = std::atoll(quota.c_str());
    b.period_us = std::atoll(period.c_str());
    if (b.period_us <= 0) return base::Internal(dir + "/cpu.cfs_period_us: " + period);
    return b;
  }

  base::Status Write(const std::string& dir, const CpuBandwidth& b) override {
    if (layout_.version == CgroupVersion::kV2) {
      return WriteCgroupFile(dir + "/cpu.max", (b.quota_us < 0 ? std::string("max")
                                                               : std::to_string(b.quota_us)) +
                                                   " " + std::to_string(b.period_us));
    }
    return WriteCgroupFile(dir + "/cpu.cfs_quota_us", std::to_string(b.quota_us < 0 ? -1 : b.quota_us));
  }

 private:
  static base::Result<std::string> ReadOrNotFound(const std::string& path) {
    auto text = base::ReadFile(path);
    if (!text.ok()) return base::NotFound(path + ": " + text.status().message());
    return text;
  }

  const CgroupLayout layout_;
};

bool ParseInt(const std::string& s, int64_t lo, int64_t hi, int64_t* out) {
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && ptr == s.data() + s.size() && *out >= lo && *out <= hi;
}

}  // namespace

bool ParseQosFlag(const std::string& name, const std::string& value, QosOptions* o,
                  std::string* error) {
  error->clear();
  if (name.rfind("qos", 0) != 0) return false;
  auto onoff = [&](bool* out) {
    if (value != "on" && value != "off") {
      *error = "--" + name + " must be on or off, not \"" + value + "\"";
      return false;
    }
    *out = value == "on";
    return true;
  };
  auto percent = [&](int* out, int64_t lo) {
    int64_t v;
    if (!ParseInt(value, lo, 100, &v)) {
      *error = "--" + name + " must be a whole percentage from " + std::to_string(lo) +
               " to 100, not \"" + value + "\"";
      return false;
    }
    *out = static_cast<int>(v);
    return true;
  };
  auto seconds = [&](std::chrono::seconds* out, int64_t lo) {
    int64_t v;
    if (!ParseInt(value, lo, 86400, &v)) {
      *error = "--" + name + " must be whole seconds from " + std::to_string(lo) + ", not \"" +
               value + "\"";
      return false;
    }
    *out = std::chrono::seconds(v);
    return true;
  };
  if (name == "qos") return onoff(&o->enabled);
  if (name == "qos-online-throttling-trigger") return onoff(&o->online_throttling_trigger);
  if (name == "qos-cpu-system-usage") return onoff(&o->cpu_count_system);
  if (name == "qos-cpu-suppress-percent") return percent(&o->cpu_suppress_percent, 1);
  if (name == "qos-cpu-evict-satisfaction-lower-percent") {
    return percent(&o->cpu_evict_satisfaction_lower_percent, 1);
  }
  if (name == "qos-cpu-evict-satisfaction-upper-percent") {
    return percent(&o->cpu_evict_satisfaction_upper_percent, 1);
  }
  if (name == "qos-cpu-evict-usage-percent") return percent(&o->cpu_evict_usage_percent, 0);
  if (name == "qos-cpu-evict-window") return seconds(&o->cpu_evict_window, 1);
  if (name == "qos-cpu-evict-cooldown") return seconds(&o->cpu_evict_cooldown, 0);
  if (name == "qos-memory-evict-percent") return percent(&o->memory_evict_percent, 1);
  if (name == "qos-memory-evict-lower-percent") return percent(&o->memory_evict_lower_percent, 1);
  if (name == "qos-memory-evict-cooldown") return seconds(&o->memory_evict_cooldown, 0);
  *error = "unknown flag --" + name;
  return false;
}

bool IsBatchPod(const Json& pod) {
  return base::StringAt(pod, {"spec", "priorityClassName"}) == "fulcrum-batch" ||
         base::StringAt(pod, {"metadata", "annotations", "fulcrum.dev/qos"}) == "batch";
}

std::vector<QosContainer> QosContainersFrom(
    const std::vector<ContainerUsage>& usage,
    const std::function<std::shared_ptr<const Json>(const std::string&)>& pod_of) {
  std::vector<QosContainer> out;
  for (const ContainerUsage& u : usage) {
    const std::string key = u.container.pod_namespace + "/" + u.container.pod_name;
    std::shared_ptr<const Json> pod = pod_of(key);
    if (!pod || !base::StringAt(*pod, {"metadata", "deletionTimestamp"}).empty()) continue;
    const std::string phase = base::StringAt(*pod, {"status", "phase"});
    if (phase == "Succeeded" || phase == "Failed") continue;
    QosContainer c;
    c.pod_key = key;
    c.pod_uid = base::StringAt(*pod, {"metadata", "uid"});
    c.container = u.container.container;
    c.batch = IsBatchPod(*pod);
    const Json* priority = base::FindPath(*pod, {"spec", "priority"});
    if (priority && priority->is_number_integer()) {
      c.priority = priority->get<int32_t>();
    } else if (base::StringAt(*pod, {"spec", "priorityClassName"}) == "fulcrum-batch") {
      c.priority = -1000;
    }
    (void)base::ParseRfc3339(base::StringAt(*pod, {"metadata", "creationTimestamp"}), &c.created);
    for (const char* list : {"containers", "initContainers"}) {
      const Json* cs = base::FindPath(*pod, {"spec", list});
      if (!cs || !cs->is_array()) continue;
      for (const Json& spec : *cs) {
        if (base::StringAt(spec, {"name"}) != c.container) continue;
        c.cpu_request_cores = Cpu(spec, "requests");
        c.cpu_limit_cores = Cpu(spec, "limits");
        if (c.cpu_request_cores == 0) c.cpu_request_cores = c.cpu_limit_cores;
      }
    }
    c.pid = u.container.pid;
    c.cpu_bandwidth_dir = u.dirs.cpu_bandwidth;
    c.cpu_cores = u.sample.cpu_cores;
    c.memory_working_set_bytes = u.sample.usage.memory_working_set_bytes;
    if (u.sample.usage.has_throttling) c.cpu_nr_throttled = u.sample.usage.cpu_nr_throttled;
    out.push_back(std::move(c));
  }
  return out;
}

QosNode QosNodeFrom(const std::optional<UsageSample>& sample, double cpu_capacity_cores,
                    uint64_t memory_capacity_bytes) {
  QosNode n;
  n.cpu_capacity_cores = cpu_capacity_cores;
  n.memory_capacity_bytes = memory_capacity_bytes;
  if (sample) {
    n.cpu_cores = sample->cpu_cores;
    if (sample->usage.has_memory) n.memory_working_set_bytes = sample->usage.memory_working_set_bytes;
  }
  return n;
}

std::unique_ptr<CpuBandwidthControl> NewCgroupCpuBandwidth(const CgroupLayout& layout) {
  return std::make_unique<CgroupCpuBandwidth>(layout);
}

BatchQos::BatchQos(QosOptions options, CpuBandwidthControl* cgroups, QosActions actions,
                   const base::Clock* clock)
    : o_(std::move(options)), cgroups_(cgroups), actions_(std::move(actions)), clock_(clock) {}

BatchQos::~BatchQos() { RestoreAll(); }

void BatchQos::RestoreAll() {
  std::lock_guard lock(mu_);
  for (const auto& [key, t] : throttled_) {
    if (base::Status s = cgroups_->Write(t.dir, t.original); !s.ok() && !s.IsNotFound()) {
      LOG_WARNING << "restoring the CPU quota of " << t.pod_key << "/" << t.container << ": "
                  << s.ToString();
    }
  }
  throttled_.clear();
  quota_cores_.reset();
}

std::optional<double> BatchQos::BatchQuotaCores() const {
  std::lock_guard lock(mu_);
  return quota_cores_;
}

void BatchQos::Tick(const QosNode& node, const std::vector<QosContainer>& containers) {
  std::lock_guard lock(mu_);
  // Forget what is gone: pods that stopped, containers no longer running.
  std::map<Key, int> live;  // → pid
  std::set<std::string> uids;
  for (const auto& c : containers) {
    live[{c.pod_uid, c.container}] = c.pid;
    uids.insert(c.pod_uid);
  }
  // A container that restarted got its spec's quota back from the runtime: throttled afresh.
  for (auto it = throttled_.begin(); it != throttled_.end();) {
    auto l = live.find(it->first);
    it = l != live.end() && l->second == it->second.pid ? std::next(it) : throttled_.erase(it);
  }
  for (auto it = online_throttled_.begin(); it != online_throttled_.end();) {
    it = live.count(it->first) ? std::next(it) : online_throttled_.erase(it);
  }
  for (auto it = evicted_.begin(); it != evicted_.end();) {
    it = uids.count(*it) ? std::next(it) : evicted_.erase(it);
  }
  if (!o_.enabled || node.cpu_capacity_cores <= 0) return;
  SuppressCpu(node, containers);
  EvictForMemory(node, containers);
  EvictForCpu(containers);
}

void BatchQos::SuppressCpu(const QosNode& node, const std::vector<QosContainer>& containers) {
  const double capacity = node.cpu_capacity_cores;
  double online = 0, batch = 0;
  bool online_throttled = false;
  std::vector<QosContainer> candidates;
  for (const auto& c : containers) {
    (c.batch ? batch : online) += c.cpu_cores.value_or(0);
    if (c.batch && !evicted_.count(c.pod_uid) && !c.cpu_bandwidth_dir.empty()) {
      candidates.push_back(c);
    }
    if (!c.batch && c.cpu_nr_throttled) {
      Key key{c.pod_uid, c.container};
      auto it = online_throttled_.find(key);
      if (it != online_throttled_.end() && *c.cpu_nr_throttled > it->second) online_throttled = true;
      online_throttled_[key] = *c.cpu_nr_throttled;
    }
  }
  const double system =
      o_.cpu_count_system ? std::max(0.0, node.cpu_cores.value_or(online + batch) - online - batch)
                          : 0.0;
  // Koordinator: suppress(BE) = capacity × threshold − pod(non-BE).used − system.used.
  const double budget = capacity * o_.cpu_suppress_percent / 100.0 - online - system;
  online_cores_ = online;
  batch_cores_ = batch;
  budget_cores_ = budget;
  online_throttled = online_throttled && o_.online_throttling_trigger;
  if (candidates.empty()) {
    quota_cores_.reset();
    window_.clear();
    return;
  }
  double ceiling = 0, requested = 0;  // what batch could use unthrottled; what it asks for
  for (const auto& c : candidates) {
    ceiling += c.cpu_limit_cores > 0 ? c.cpu_limit_cores : capacity;
    requested += RequestCores(c);
  }
  const double min_total = kMinContainerQuotaCores * static_cast<double>(candidates.size());
  double target = std::max(budget, min_total);
  const std::string why = "online " + Cores(online) + " + batch " + Cores(batch) + " + system " +
                          Cores(system) + " cores against " +
                          std::to_string(o_.cpu_suppress_percent) + "% of " + Cores(capacity) +
                          " cores" + (online_throttled ? "; online containers throttled" : "");
  if (online_throttled) {
    target = std::min(target, std::max(min_total, quota_cores_.value_or(batch) / 2));
  }
  if (!quota_cores_) {
    const bool pressure = batch > budget || online_throttled;
    if (pressure && target < ceiling) ApplyQuota(target, candidates, why);
  } else {
    const double current = *quota_cores_;
    if (target > current) target = std::min(target, current + kMaxIncreaseShare * capacity);
    bool unthrottled_container = false;
    for (const auto& c : candidates) {
      if (!throttled_.count({c.pod_uid, c.container})) unthrottled_container = true;
    }
    // Restored once the quota is back at the budget and batch no longer uses all of it, or when
    // the budget covers everything batch could use.
    const bool at_budget = target >= budget && budget >= current;
    if (target >= ceiling || (at_budget && !online_throttled && batch < 0.9 * current)) {
      Restore(why);
    } else if (unthrottled_container || std::abs(target - current) >= kBypassShare * capacity ||
               (target <= min_total && current > min_total)) {
      ApplyQuota(target, candidates, why);
    }
  }
  // CPU satisfaction of batch: the CPU it may use against what it asks for.
  const double limit = quota_cores_.value_or(ceiling);
  window_.push_back({clock_->Now(), requested > 0 ? limit / requested : 1.0,
                     limit > 0 ? batch / limit : 0.0});
  while (!window_.empty() && window_.front().time + o_.cpu_evict_window < window_.back().time) {
    window_.pop_front();
  }
}

void BatchQos::ApplyQuota(double total, const std::vector<QosContainer>& batch,
                          const std::string& why) {
  double weights = 0;
  for (const auto& c : batch) weights += RequestCores(c);
  for (const auto& c : batch) {
    Key key{c.pod_uid, c.container};
    auto it = throttled_.find(key);
    if (it == throttled_.end()) {
      auto original = cgroups_->Read(c.cpu_bandwidth_dir);
      if (!original.ok()) {
        LOG_WARNING << "batch QoS: reading the CPU quota of " << c.pod_key << "/" << c.container
                    << ": " << original.status().ToString();
        continue;
      }
      // What to restore is what the runtime set from the spec (the OCI spec builder's quota for
      // the limit), not what the cgroup holds: an agent that died while throttling left it low.
      if (c.cpu_limit_cores > 0) {
        original->quota_us = std::max<int64_t>(
            1000, std::llround(c.cpu_limit_cores * static_cast<double>(original->period_us)));
      } else {
        original->quota_us = -1;
      }
      it = throttled_.emplace(key, Throttle{c.pod_key, c.container, c.cpu_bandwidth_dir, c.pid,
                                            *original, -2}).first;
    }
    Throttle& t = it->second;
    double cores = std::max(kMinContainerQuotaCores, total * RequestCores(c) / weights);
    int64_t quota = static_cast<int64_t>(std::llround(cores * static_cast<double>(t.original.period_us)));
    if (t.original.quota_us > 0) quota = std::min(quota, t.original.quota_us);
    if (quota == t.written_quota_us) continue;
    CpuBandwidth b = t.original;
    b.quota_us = quota;
    if (base::Status s = cgroups_->Write(t.dir, b); !s.ok()) {
      LOG_WARNING << "batch QoS: writing the CPU quota of " << c.pod_key << "/" << c.container
                  << ": " << s.ToString();
      if (t.written_quota_us == -2) throttled_.erase(it);
      continue;
    }
    const bool first = t.written_quota_us == -2;
    t.written_quota_us = quota;
    if (first) {
      ++throttles_total_;
      const std::string message =
          "Container " + c.container + " CPU quota lowered to " +
          Cores(static_cast<double>(quota) / static_cast<double>(t.original.period_us)) +
          " cores: " + why;
      LOG_INFO << "batch QoS: " << c.pod_key << ": " << message;
      if (actions_.event) actions_.event(c.pod_key, "Warning", "BatchThrottled", message);
    }
  }
  quota_cores_ = total;
}

void BatchQos::Restore(const std::string& why) {
  for (const auto& [key, t] : throttled_) {
    if (base::Status s = cgroups_->Write(t.dir, t.original); !s.ok()) {
      LOG_WARNING << "batch QoS: restoring the CPU quota of " << t.pod_key << "/" << t.container
                  << ": " << s.ToString();
      continue;
    }
    const std::string message =
        "Container " + t.container + " CPU quota restored to " +
        (t.original.quota_us < 0
             ? std::string("unlimited")
             : Cores(static_cast<double>(t.original.quota_us) / static_cast<double>(t.original.period_us)) +
                   " cores") +
        ": " + why;
    LOG_INFO << "batch QoS: " << t.pod_key << ": " << message;
    if (actions_.event) actions_.event(t.pod_key, "Normal", "BatchUnthrottled", message);
  }
  throttled_.clear();
  quota_cores_.reset();
}

void BatchQos::EvictForCpu(const std::vector<QosContainer>& containers) {
  if (window_.empty()) return;
  const base::WallTime now = clock_->Now();
  if (last_cpu_eviction_ && now < *last_cpu_eviction_ + o_.cpu_evict_cooldown) return;
  // Koordinator: the window's average counts once its samples cover a third of it.
  if (window_.back().time - window_.front().time < o_.cpu_evict_window / 3) return;
  double satisfaction = 0, usage = 0;
  for (const auto& s : window_) {
    satisfaction += s.satisfaction;
    usage += s.usage_ratio;
  }
  satisfaction /= static_cast<double>(window_.size());
  usage /= static_cast<double>(window_.size());
  const WindowSample& current = window_.back();
  const double lower = o_.cpu_evict_satisfaction_lower_percent / 100.0;
  const double upper = o_.cpu_evict_satisfaction_upper_percent / 100.0;
  const double usage_threshold = o_.cpu_evict_usage_percent / 100.0;
  if (satisfaction >= lower || current.satisfaction >= lower) return;
  // A batch quota under one core counts as used up (Koordinator's isBECPUUsageHighEnough).
  const bool small = quota_cores_ && *quota_cores_ < 1.0;
  if (!small && (usage < usage_threshold || current.usage_ratio < usage_threshold)) return;
  double requested = 0;
  for (const auto& c : containers) {
    if (c.batch && !evicted_.count(c.pod_uid)) requested += RequestCores(c);
  }
  const double release = requested * (upper - std::max(satisfaction, current.satisfaction));
  if (release <= 0) return;
  char summary[256];
  std::snprintf(summary, sizeof summary,
                "Batch CPU satisfaction %.0f%% (quota %s of %s requested cores) below %d%% for "
                "%llds; online pods used %s cores (suppress threshold %d%%).",
                100 * std::max(satisfaction, current.satisfaction), Cores(quota_cores_.value_or(0)).c_str(),
                Cores(requested).c_str(), o_.cpu_evict_satisfaction_lower_percent,
                static_cast<long long>(o_.cpu_evict_window.count()), Cores(online_cores_).c_str(),
                o_.cpu_suppress_percent);
  int n = EvictBatch(
      containers,
      [](const std::vector<const QosContainer*>& pod) {
        double r = 0;
        for (const auto* c : pod) r += RequestCores(*c);
        return r;
      },
      release, "cpu", [&](const std::vector<const QosContainer*>& pod) {
        std::string m = std::string("The node was low on resource: cpu. ") + summary;
        for (const auto* c : pod) {
          m += " Container " + c->container + " was using " + Cores(c->cpu_cores.value_or(0)) +
               " cores, request is " + Cores(c->cpu_request_cores) + ".";
        }
        return m;
      });
  if (n > 0) {
    last_cpu_eviction_ = now;
    window_.clear();
  }
}

void BatchQos::EvictForMemory(const QosNode& node, const std::vector<QosContainer>& containers) {
  if (!node.memory_working_set_bytes || node.memory_capacity_bytes == 0) return;
  const base::WallTime now = clock_->Now();
  if (last_memory_eviction_ && now < *last_memory_eviction_ + o_.memory_evict_cooldown) return;
  const double capacity = static_cast<double>(node.memory_capacity_bytes);
  const double used = static_cast<double>(*node.memory_working_set_bytes);
  if (used * 100 < capacity * o_.memory_evict_percent) return;
  const int lower = o_.memory_evict_lower_percent > 0
                        ? o_.memory_evict_lower_percent
                        : std::max(0, o_.memory_evict_percent - kMemoryLowerGapPercent);
  // Pods already evicted and still stopping will give back what they hold.
  double stopping = 0;
  for (const auto& c : containers) {
    if (evicted_.count(c.pod_uid)) stopping += static_cast<double>(c.memory_working_set_bytes);
  }
  const double release = used - capacity * lower / 100.0 - stopping;
  if (release <= 0) return;
  const std::string summary = "Threshold quantity: " + std::to_string(o_.memory_evict_percent) +
                              "% of " + Bytes(node.memory_capacity_bytes) + ", usage: " +
                              Bytes(*node.memory_working_set_bytes) + ".";
  int n = EvictBatch(
      containers,
      [](const std::vector<const QosContainer*>& pod) {
        double r = 0;
        for (const auto* c : pod) r += static_cast<double>(c->memory_working_set_bytes);
        return r;
      },
      release, "memory", [&](const std::vector<const QosContainer*>& pod) {
        std::string m = "The node was low on resource: memory. " + summary;
        for (const auto* c : pod) {
          m += " Container " + c->container + " was using " + Bytes(c->memory_working_set_bytes) +
               ".";
        }
        return m;
      });
  if (n > 0) last_memory_eviction_ = now;
}

int BatchQos::EvictBatch(
    const std::vector<QosContainer>& containers,
    const std::function<double(const std::vector<const QosContainer*>&)>& measure, double amount,
    const std::string& reason,
    const std::function<std::string(const std::vector<const QosContainer*>&)>& message) {
  std::map<std::string, std::vector<const QosContainer*>> pods;  // by uid
  for (const auto& c : containers) {
    if (c.batch && !evicted_.count(c.pod_uid)) pods[c.pod_uid].push_back(&c);
  }
  std::vector<std::vector<const QosContainer*>> order;
  for (auto& [uid, cs] : pods) order.push_back(std::move(cs));
  // Lowest priority first, then the newest pod (it has lost the least work).
  std::sort(order.begin(), order.end(), [](const auto& a, const auto& b) {
    if (a[0]->priority != b[0]->priority) return a[0]->priority < b[0]->priority;
    if (a[0]->created != b[0]->created) return a[0]->created > b[0]->created;
    return a[0]->pod_key < b[0]->pod_key;
  });
  int evicted = 0;
  double released = 0;
  for (const auto& pod : order) {
    if (released >= amount && evicted > 0) break;
    const std::string text = message(pod);
    base::Status s = actions_.evict ? actions_.evict(pod[0]->pod_key, pod[0]->pod_uid, text)
                                    : base::Unavailable("no evictor");
    if (!s.ok()) {
      LOG_WARNING << "batch QoS: evicting " << pod[0]->pod_key << ": " << s.ToString();
      continue;
    }
    LOG_INFO << "batch QoS: evicted " << pod[0]->pod_key << ": " << text;
    evicted_.insert(pod[0]->pod_uid);
    ++evictions_[reason];
    ++evicted;
    released += measure(pod);
  }
  return evicted;
}

std::string BatchQos::PrometheusText() const {
  std::lock_guard lock(mu_);
  std::string out;
  auto family = [&](const char* name, const char* type, const char* help) {
    out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
  };
  family("fulcrum_qos_online_cpu_usage_cores", "gauge", "CPU cores online containers used");
  out += "fulcrum_qos_online_cpu_usage_cores " + FormatValue(online_cores_) + "\n";
  family("fulcrum_qos_batch_cpu_usage_cores", "gauge", "CPU cores batch containers used");
  out += "fulcrum_qos_batch_cpu_usage_cores " + FormatValue(batch_cores_) + "\n";
  family("fulcrum_qos_batch_cpu_budget_cores", "gauge",
         "CPU cores batch may use under the suppress threshold");
  out += "fulcrum_qos_batch_cpu_budget_cores " + FormatValue(budget_cores_) + "\n";
  family("fulcrum_qos_batch_cpu_quota_cores", "gauge",
         "CPU quota the throttled batch containers share (absent when none is throttled)");
  if (quota_cores_) out += "fulcrum_qos_batch_cpu_quota_cores " + FormatValue(*quota_cores_) + "\n";
  family("fulcrum_qos_batch_throttled_containers", "gauge",
         "Batch containers whose CPU quota the agent has lowered");
  out += "fulcrum_qos_batch_throttled_containers " + std::to_string(throttled_.size()) + "\n";
  family("fulcrum_qos_batch_throttles_total", "counter",
         "Batch containers the agent started throttling");
  out += "fulcrum_qos_batch_throttles_total " + std::to_string(throttles_total_) + "\n";
  family("fulcrum_qos_evictions_total", "counter", "Batch pods evicted, by the resource short");
  for (const char* reason : {"cpu", "memory"}) {
    auto it = evictions_.find(reason);
    out += std::string("fulcrum_qos_evictions_total{reason=\"") + reason + "\"} " +
           std::to_string(it == evictions_.end() ? 0 : it->second) + "\n";
  }
  return out;
}

void ApplyEvictionToStatus(Json* status, const std::string& message, bool stopped,
                           const std::string& evicted_at) {
  Json condition = {{"type", "DisruptionTarget"},
                    {"status", "True"},
                    {"reason", "TerminationByKubelet"},
                    {"message", message},
                    {"lastProbeTime", nullptr},
                    {"lastTransitionTime", evicted_at}};
  Json& conditions = (*status)["conditions"];
  if (!conditions.is_array()) conditions = Json::array();
  bool replaced = false;
  for (Json& c : conditions) {
    if (c.is_object() && c.value("type", "") == "DisruptionTarget") {
      c = condition;
      replaced = true;
    }
  }
  if (!replaced) conditions.push_back(condition);
  if (stopped) {
    (*status)["phase"] = "Failed";
    (*status)["reason"] = "Evicted";
    (*status)["message"] = message;
  }
}

}  // namespace fulcrum::agent
