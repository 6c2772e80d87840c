#include "agent/usage_reporter.h"

#include <algorithm>
#include <cmath>

#include "base/log.h"
#include "client/api_client.h"

namespace fulcrum::agent {
namespace {

using base::Json;

constexpr char kGroupVersion[] = "scheduling.fulcrum.dev/v1alpha1";

std::string CpuQuantity(double cores) {
  return std::to_string(std::llround(std::max(0.0, cores) * 1000)) + "m";
}

std::string MemoryQuantity(double bytes) { return std::to_string(std::llround(std::max(0.0, bytes))); }

// {cpu, memory} with whichever is known.
Json UsageJson(std::optional<double> cpu_cores, std::optional<double> memory_bytes) {
  Json u = Json::object();
  if (cpu_cores) u["cpu"] = CpuQuantity(*cpu_cores);
  if (memory_bytes) u["memory"] = MemoryQuantity(*memory_bytes);
  return u;
}

// Nearest-rank percentile of the known values; nullopt when there are none.
std::optional<double> Percentile(std::vector<double> v, double p) {
  if (v.empty()) return std::nullopt;
  std::sort(v.begin(), v.end());
  size_t rank = static_cast<size_t>(std::ceil(p * static_cast<double>(v.size())));
  return v[std::clamp<size_t>(rank, 1, v.size()) - 1];
}

std::optional<double> Mean(const std::vector<double>& v) {
  if (v.empty()) return std::nullopt;
  double sum = 0;
  for (double x : v) sum += x;
  return sum / static_cast<double>(v.size());
}

// usage (the newest point), average and p95 of a series of points, oldest first.
template <typename Points>
void Aggregate(const Points& points, Json* out) {
  std::vector<double> cpu, memory;
  std::optional<double> last_cpu, last_memory;
  for (const auto& p : points) {
    if (p.cpu_cores) cpu.push_back(*p.cpu_cores), last_cpu = p.cpu_cores;
    if (p.memory_bytes) memory.push_back(*p.memory_bytes), last_memory = p.memory_bytes;
  }
  (*out)["usage"] = UsageJson(last_cpu, last_memory);
  (*out)["average"] = UsageJson(Mean(cpu), Mean(memory));
  (*out)["p95"] = UsageJson(Percentile(cpu, 0.95), Percentile(memory, 0.95));
}

std::vector<UsageWindow::Point> Values(const std::map<base::WallTime, UsageWindow::Point>& m) {
  std::vector<UsageWindow::Point> out;
  for (const auto& [t, p] : m) out.push_back(p);
  return out;
}

}  // namespace

std::string PodQos(const Json& pod) {
  if (base::StringAt(pod, {"spec", "priorityClassName"}) == "fulcrum-batch" ||
      base::StringAt(pod, {"metadata", "annotations", "fulcrum.dev/qos"}) == "batch") {
    return "batch";
  }
  return "online";
}

void UsageWindow::Add(const std::optional<UsageSample>& node,
                      const std::vector<ContainerUsage>& containers) {
  if (node && (!last_node_ || node->time > *last_node_)) {
    last_node_ = node->time;
    Point p{node->time, node->cpu_cores, std::nullopt};
    if (node->usage.has_memory) p.memory_bytes = static_cast<double>(node->usage.memory_working_set_bytes);
    node_.push_back(p);
  }
  std::optional<base::WallTime> newest;
  for (const ContainerUsage& c : containers) {
    const UsageSample& s = c.sample;
    if (last_containers_ && s.time <= *last_containers_) continue;
    if (!newest || s.time > *newest) newest = s.time;
    Point p{s.time, s.cpu_cores, std::nullopt};
    if (s.usage.has_memory) p.memory_bytes = static_cast<double>(s.usage.memory_working_set_bytes);
    PodSeries& pod = pods_[c.container.pod_namespace + "/" + c.container.pod_name];
    pod.containers[c.container.container] = p;
    Point& sum = pod.points.try_emplace(s.time, Point{s.time, std::nullopt, std::nullopt}).first->second;
    if (p.cpu_cores) sum.cpu_cores = sum.cpu_cores.value_or(0) + *p.cpu_cores;
    if (p.memory_bytes) sum.memory_bytes = sum.memory_bytes.value_or(0) + *p.memory_bytes;
  }
  if (newest) last_containers_ = newest;
}

Json UsageWindow::TakeStatus(const PodLookup& lookup) {
  Json status = Json::object();
  // The window's span, and the newest container sample time: pods not in it have stopped (or
  // could not be read).
  std::optional<base::WallTime> first, last, newest;
  auto widen = [&](base::WallTime t) {
    if (!first || t < *first) first = t;
    if (!last || t > *last) last = t;
  };
  if (!node_.empty()) widen(node_.front().time), widen(node_.back().time);
  for (const auto& [key, pod] : pods_) {
    if (pod.points.empty()) continue;
    base::WallTime t = pod.points.rbegin()->first;
    if (!newest || t > *newest) newest = t;
    widen(pod.points.begin()->first);
    widen(t);
  }
  if (!first) first = last = base::WallTime{};
  status["updateTime"] = base::FormatRfc3339(*last);
  // Each CPU rate covers the second before its sample, so n samples a second apart span n seconds.
  auto span = std::chrono::duration_cast<std::chrono::seconds>(*last - *first).count();
  status["windowSeconds"] = std::max<int64_t>(1, span + 1);
  status["samples"] = static_cast<int64_t>(node_.size());

  Json node = Json::object();
  Aggregate(node_, &node);
  Json pods = Json::array();
  double pods_cpu = 0, pods_memory = 0;
  for (const auto& [key, series] : pods_) {
    // Left out: pods not in the newest sample, and pods with no CPU rate yet (just started), as
    // metrics-server leaves out what it has no complete metrics for.
    if (series.points.empty() || series.points.rbegin()->first != *newest ||
        !series.points.rbegin()->second.cpu_cores) {
      continue;
    }
    size_t slash = key.find('/');
    Json pod = {{"namespace", key.substr(0, slash)}, {"name", key.substr(slash + 1)}};
    if (lookup) {
      if (auto obj = lookup(key)) {
        pod["uid"] = base::StringAt(*obj, {"metadata", "uid"});
        pod["qos"] = PodQos(*obj);
        const Json* priority = base::FindPath(*obj, {"spec", "priority"});
        pod["priority"] = priority != nullptr && priority->is_number_integer() ? *priority : Json(0);
      }
    }
    Aggregate(Values(series.points), &pod);
    const Point& latest = series.points.rbegin()->second;
    pods_cpu += latest.cpu_cores.value_or(0);
    pods_memory += latest.memory_bytes.value_or(0);
    Json containers = Json::array();
    for (const auto& [name, p] : series.containers) {
      if (p.time != *newest) continue;
      containers.push_back({{"name", name}, {"usage", UsageJson(p.cpu_cores, p.memory_bytes)}});
    }
    pod["containers"] = std::move(containers);
    pods.push_back(std::move(pod));
  }
  if (!node_.empty()) {
    const Point& n = node_.back();
    node["systemUsage"] =
        UsageJson(n.cpu_cores ? std::optional<double>(std::max(0.0, *n.cpu_cores - pods_cpu)) : std::nullopt,
                  n.memory_bytes ? std::optional<double>(std::max(0.0, *n.memory_bytes - pods_memory))
                                 : std::nullopt);
  }
  status["nodeMetric"] = std::move(node);
  status["podsMetric"] = std::move(pods);
  node_.clear();
  pods_.clear();
  return status;
}

UsageReporter::UsageReporter(UsageReporterOptions options, client::ApiClient* api,
                             const StatsCollector* stats, UsageWindow::PodLookup pods)
    : options_(std::move(options)), api_(api), stats_(stats), pods_(std::move(pods)) {}

UsageReporter::~UsageReporter() { Stop(); }

void UsageReporter::Start() {
  thread_ = std::thread([this] {
    auto next_report = std::chrono::steady_clock::now() + options_.interval;
    for (;;) {
      {
        std::unique_lock lock(mu_);
        if (cv_.wait_for(lock, options_.sample, [this] { return stopping_; })) return;
      }
      Collect();
      if (std::chrono::steady_clock::now() < next_report) continue;
      next_report = std::chrono::steady_clock::now() + options_.interval;
      if (base::Status s = Report(); !s.ok()) LOG_WARNING << "usage report: " << s.ToString();
    }
  });
}

void UsageReporter::Stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void UsageReporter::Collect() {
  auto node = stats_->Node();
  auto containers = stats_->Containers();
  std::lock_guard lock(mu_);
  window_.Add(node, containers);
}

base::Status UsageReporter::Report() {
  Json status;
  {
    std::lock_guard lock(mu_);
    if (window_.empty()) return base::Status::Ok();
    status = window_.TakeStatus(pods_);
  }
  std::string path =
      client::ResourcePath(kGroupVersion, "nodemetrics", "", options_.node_name, "status");
  auto r = api_->Patch(path, client::PatchType::kMerge, Json{{"status", status}});
  if (r.ok() || !r.status().IsNotFound()) return r.status();
  Json metric = {{"apiVersion", kGroupVersion},
                 {"kind", "NodeMetric"},
                 {"metadata", {{"name", options_.node_name}}},
                 {"spec", {{"reportIntervalSeconds", options_.interval.count()}}}};
  // Owned by the Node, so that the garbage collector removes it with the node.
  auto node = api_->Get(client::ResourcePath("v1", "nodes", "", options_.node_name));
  if (node.ok()) {
    metric["metadata"]["ownerReferences"] = Json::array(
        {{{"apiVersion", "v1"},
          {"kind", "Node"},
          {"name", options_.node_name},
          {"uid", base::StringAt(*node, {"metadata", "uid"})}}});
  }
  auto created = api_->Create(client::ResourcePath(kGroupVersion, "nodemetrics", "", ""), metric);
  if (!created.ok() && !created.status().IsAlreadyExists()) return created.status();
  return api_->Patch(path, client::PatchType::kMerge, Json{{"status", status}}).status();
}

}  // namespace fulcrum::agent
