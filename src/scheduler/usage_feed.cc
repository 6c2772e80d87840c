#include "scheduler/usage_feed.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <set>

#include "api/validation.h"
#include "base/log.h"
#include "client/api_client.h"

namespace fulcrum::scheduler {
namespace {

using base::Json;

constexpr char kGroupVersion[] = "scheduling.fulcrum.dev/v1alpha1";

// A quantity field of a {cpu, memory} object in millis (cpu) or units (memory); -1 when absent.
double QuantityAt(const Json& owner, const char* object, const char* resource, bool milli) {
  const Json* q = base::FindPath(owner, {object, resource});
  api::Quantity quantity;
  if (q == nullptr || !api::ParseQuantity(*q, &quantity)) return -1;
  return static_cast<double>(milli ? quantity.MilliValue() : quantity.Value());
}

Json Series(const std::vector<float>& values) {
  Json out = Json::array();
  for (float v : values) out.push_back(std::round(static_cast<double>(v) * 10) / 10);
  return out;
}

bool ReadSeries(const Json& status, const char* field, size_t n, std::vector<float>* out) {
  const Json* series = base::FindPath(status, {field});
  if (series == nullptr || !series->is_array() || series->size() != n) return false;
  for (const Json& v : *series) {
    if (!v.is_number()) return false;
    out->push_back(v.get<float>());
  }
  return true;
}

}  // namespace

base::Result<NodeUsageReport> NodeUsageFromMetric(const Json& metric) {
  NodeUsageReport r;
  r.node = base::StringAt(metric, {"metadata", "name"});
  base::WallTime t;
  if (!base::ParseRfc3339(base::StringAt(metric, {"status", "updateTime"}), &t)) {
    return base::Invalid("nodemetric " + r.node + ": status.updateTime is not an RFC 3339 time");
  }
  r.unix_seconds = std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
  const Json* node = base::FindPath(metric, {"status", "nodeMetric"});
  if (node == nullptr || !node->is_object()) {
    return base::Invalid("nodemetric " + r.node + ": status.nodeMetric is missing");
  }
  r.cpu_milli = QuantityAt(*node, "usage", "cpu", true);
  r.memory_bytes = QuantityAt(*node, "usage", "memory", false);
  r.system_cpu_milli = QuantityAt(*node, "systemUsage", "cpu", true);
  if (r.cpu_milli < 0) return base::Invalid("nodemetric " + r.node + ": no status.nodeMetric.usage.cpu");
  const Json* pods = base::FindPath(metric, {"status", "podsMetric"});
  if (pods != nullptr && pods->is_array()) {
    for (const Json& p : *pods) {
      NodeUsageReport::Pod pod;
      pod.ns = base::StringAt(p, {"namespace"});
      pod.name = base::StringAt(p, {"name"});
      if (pod.ns.empty() || pod.name.empty()) continue;
      pod.qos = base::StringAt(p, {"qos"});
      pod.cpu_milli = QuantityAt(p, "usage", "cpu", true);
      pod.cpu_average_milli = QuantityAt(p, "average", "cpu", true);
      pod.memory_bytes = QuantityAt(p, "usage", "memory", false);
      r.pods.push_back(std::move(pod));
    }
  }
  return r;
}

bool ApplyNodeUsage(const NodeUsageReport& report, NodeInfo* node) {
  bool lower = (node->cpu_usage_milli >= 0 && report.cpu_milli < node->cpu_usage_milli) ||
               (node->memory_usage_bytes >= 0 && report.memory_bytes >= 0 &&
                report.memory_bytes < node->memory_usage_bytes);
  node->cpu_usage_milli = report.cpu_milli;
  node->memory_usage_bytes = report.memory_bytes;
  double system = std::max(0.0, report.system_cpu_milli);
  if (system != node->system_cpu_usage_milli) {
    node->system_cpu_usage_milli = system;
    node->Touch();
  }
  std::map<std::pair<std::string_view, std::string_view>, const PodOnNode*> known;
  for (const PodOnNode& p : node->pods) known[{p.ns, p.name}] = &p;
  double online = 0;
  for (const NodeUsageReport::Pod& p : report.pods) {
    auto it = known.find({p.ns, p.name});
    bool batch = it != known.end() ? it->second->qos == Qos::kBatch : p.qos == "batch";
    if (!batch) online += std::max(0.0, p.cpu_milli);
  }
  node->online_cpu_usage_milli = online;
  for (const NodeUsageReport::Pod& p : report.pods) {
    if (node->MarkPodUsageReported(p.ns, p.name)) lower = true;  // no longer estimated
  }
  return lower;
}

void DropSystemUsage(NodeUsageReport* report) {
  double cpu = 0, memory = 0;
  for (const NodeUsageReport::Pod& p : report->pods) {
    cpu += std::max(0.0, p.cpu_milli);
    memory += std::max(0.0, p.memory_bytes);
  }
  report->cpu_milli = cpu;
  if (report->memory_bytes >= 0) report->memory_bytes = memory;
  report->system_cpu_milli = 0;
}

void ForgetNodeUsage(NodeInfo* node) {
  node->cpu_usage_milli = -1;
  node->memory_usage_bytes = -1;
  node->online_cpu_usage_milli = -1;
  if (node->system_cpu_usage_milli != 0) {
    node->system_cpu_usage_milli = 0;
    node->Touch();
  }
}

void ProfileFeed::Observe(const NodeUsageReport& report, const NodeInfo& node) {
  std::map<std::string_view, std::vector<double>> by_app;
  for (const NodeUsageReport::Pod& p : report.pods) {
    double cpu = p.cpu_average_milli >= 0 ? p.cpu_average_milli : p.cpu_milli;
    if (cpu < 0) continue;
    for (const PodOnNode& on : node.pods) {
      if (on.ns == p.ns && on.name == p.name) {
        by_app[on.app].push_back(cpu);
        break;
      }
    }
  }
  const int64_t local = report.unix_seconds + utc_offset_seconds_;
  int64_t slot = local / profiles_->options().slot_seconds;
  if (committed_slot_ >= 0 && slot != committed_slot_) profiles_->Commit();  // the slot before
  committed_slot_ = slot;
  for (const auto& [app, cpu] : by_app) {
    bool new_app = profiles_->Find(app) == nullptr;
    profiles_->Observe(app, local, cpu);
    // Known at once; the slot itself is still learnt when it ends (the other applications' partial
    // slots stay as they are).
    if (new_app) profiles_->LearnSoFar(app);
  }
}

std::string AppProfileName(std::string_view app) {
  // "ns/Kind/name" -> "kind-name"
  size_t first = app.find('/');
  size_t second = first == std::string_view::npos ? first : app.find('/', first + 1);
  if (second == std::string_view::npos) return std::string(app);
  std::string kind(app.substr(first + 1, second - first - 1));
  for (char& c : kind) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return kind + "-" + std::string(app.substr(second + 1));
}

std::string AppProfileNamespace(std::string_view app) {
  return std::string(app.substr(0, app.find('/')));
}

Json AppProfileObject(const AppProfile& p, int64_t utc_offset_seconds) {
  return {
      {"apiVersion", kGroupVersion},
      {"kind", "AppProfile"},
      {"metadata", {{"name", AppProfileName(p.app)}, {"namespace", AppProfileNamespace(p.app)}}},
      {"spec", {{"app", p.app}, {"slotSeconds", p.slot_seconds}, {"slots", p.slots}}},
      {"status",
       {{"cpuMeanMilli", Series(p.cpu_mean)},
        {"cpuStdMilli", Series(p.cpu_std)},
        {"samples", std::llround(p.observed_samples)},
        {"utcOffsetSeconds", utc_offset_seconds}}}};
}

base::Result<AppProfile> AppProfileFromObject(const Json& object, int64_t utc_offset_seconds) {
  AppProfile p;
  std::string name = base::StringAt(object, {"metadata", "name"});
  p.app = base::StringAt(object, {"spec", "app"});
  if (p.app.empty()) return base::Invalid("appprofile " + name + ": spec.app is empty");
  const Json* slots = base::FindPath(object, {"spec", "slots"});
  const Json* slot_seconds = base::FindPath(object, {"spec", "slotSeconds"});
  if (slots == nullptr || !slots->is_number_integer() || slot_seconds == nullptr ||
      !slot_seconds->is_number_integer() || slots->get<int64_t>() <= 0 ||
      slot_seconds->get<int64_t>() <= 0) {
    return base::Invalid("appprofile " + name + ": spec.slots and spec.slotSeconds must be positive");
  }
  p.slots = slots->get<int>();
  p.slot_seconds = slot_seconds->get<int64_t>();
  const Json* status = base::FindPath(object, {"status"});
  size_t n = static_cast<size_t>(p.slots);
  if (status == nullptr || !ReadSeries(*status, "cpuMeanMilli", n, &p.cpu_mean) ||
      !ReadSeries(*status, "cpuStdMilli", n, &p.cpu_std)) {
    return base::Invalid("appprofile " + name + ": status.cpuMeanMilli and status.cpuStdMilli need " +
                         std::to_string(n) + " values");
  }
  const Json* samples = base::FindPath(*status, {"samples"});
  p.observed_samples = samples != nullptr && samples->is_number() ? samples->get<double>() : 0;
  const Json* offset = base::FindPath(*status, {"utcOffsetSeconds"});
  int64_t learnt_at = offset != nullptr && offset->is_number_integer() ? offset->get<int64_t>() : 0;
  if (learnt_at != utc_offset_seconds) {
    // A time t was in slot (t + learnt_at) / slotSeconds; now it is in (t + utc_offset_seconds) /
    // slotSeconds.
    int64_t shift = utc_offset_seconds - learnt_at;
    if (shift % p.slot_seconds != 0) {
      return base::Invalid("appprofile " + name + ": slots of " + std::to_string(p.slot_seconds) +
                           " s learnt at UTC offset " + std::to_string(learnt_at) +
                           " s cannot be moved to offset " + std::to_string(utc_offset_seconds) +
                           " s");
    }
    int64_t slots_shift = shift / p.slot_seconds % p.slots;
    if (slots_shift < 0) slots_shift += p.slots;
    std::rotate(p.cpu_mean.rbegin(), p.cpu_mean.rbegin() + slots_shift, p.cpu_mean.rend());
    std::rotate(p.cpu_std.rbegin(), p.cpu_std.rbegin() + slots_shift, p.cpu_std.rend());
  }
  p.cold = false;
  return p;
}

base::Result<int> AppProfileWriter::Load(ProfileStore* profiles) {
  ASSIGN_OR_RETURN(Json list, api_->Get(client::ResourcePath(kGroupVersion, "appprofiles")));
  int restored = 0;
  const Json* items = base::FindPath(list, {"items"});
  if (items == nullptr || !items->is_array()) return restored;
  for (const Json& item : *items) {
    auto p = AppProfileFromObject(item, utc_offset_seconds_);
    if (!p.ok()) {
      LOG_WARNING << "scheduler: " << p.status().ToString();
      continue;
    }
    if (!profiles->Restore(*p)) continue;
    written_[p->app] = Written{p->observed_samples, base::WallTime{}};
    ++restored;
  }
  return restored;
}

std::vector<AppProfile> AppProfileWriter::Due(const ProfileStore& profiles, base::WallTime now) {
  std::vector<AppProfile> due;
  for (const AppProfile* p : profiles.Learnt()) {
    auto it = written_.find(p->app);
    if (it != written_.end() &&
        (it->second.samples == p->observed_samples || now - it->second.at < min_interval_)) {
      continue;
    }
    written_[p->app] = Written{p->observed_samples, now};
    due.push_back(*p);
  }
  return due;
}

base::Status AppProfileWriter::Write(const std::vector<AppProfile>& profiles) {
  base::Status first;
  for (const AppProfile& p : profiles) {
    Json object = AppProfileObject(p, utc_offset_seconds_);
    std::string ns = AppProfileNamespace(p.app), name = AppProfileName(p.app);
    std::string path = client::ResourcePath(kGroupVersion, "appprofiles", ns, name, "status");
    Json patch = {{"status", object["status"]}};
    auto r = api_->Patch(path, client::PatchType::kMerge, patch);
    if (!r.ok() && r.status().IsNotFound()) {
      auto created = api_->Create(client::ResourcePath(kGroupVersion, "appprofiles", ns), object);
      if (created.ok() || created.status().IsAlreadyExists()) {
        r = api_->Patch(path, client::PatchType::kMerge, patch);
      } else {
        r = created.status();
      }
    }
    if (!r.ok() && first.ok()) first = r.status();
  }
  return first;
}

}  // namespace fulcrum::scheduler
