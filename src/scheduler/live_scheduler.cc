#include "scheduler/live_scheduler.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <unordered_map>

#include "api/validation.h"
#include "base/log.h"
#include "client/events.h"
#include "client/informer.h"
#include "scheduler/batch_resources.h"
#include "scheduler/job_runtime.h"
#include "scheduler/placement.h"
#include "scheduler/profile.h"
#include "scheduler/usage_feed.h"

namespace fulcrum::scheduler {
namespace {

using base::Json;
using base::StringAt;
using client::ObjectPtr;

constexpr char kComponent[] = "default-scheduler";
constexpr auto kRetryInterval = std::chrono::seconds(60);
// Nodes' batch resources: computed at most this often after a change, and at least this often.
constexpr auto kPublishInterval = std::chrono::seconds(1);
constexpr auto kPublishRefresh = std::chrono::seconds(5);
// A batch Job's expected runtime: this quantile of its last 20 completed runs.
constexpr double kRuntimeQuantile = 0.9;

const Json& At(const Json& j, const char* key) {
  static const Json kNull;
  if (!j.is_object()) return kNull;
  auto it = j.find(key);
  return it == j.end() ? kNull : *it;
}

Labels LabelsOf(const Json& map) {
  Labels out;
  if (!map.is_object()) return out;
  for (auto it = map.begin(); it != map.end(); ++it) {
    if (it.value().is_string()) out[it.key()] = it.value().get<std::string>();
  }
  return out;
}

int64_t Milli(const Json& q) {
  api::Quantity quantity;
  return api::ParseQuantity(q, &quantity) ? quantity.MilliValue() : 0;
}

int64_t Whole(const Json& q) {
  api::Quantity quantity;
  return api::ParseQuantity(q, &quantity) ? quantity.Value() : 0;
}

std::vector<SelectorRequirement> Requirements(const Json& expressions) {
  std::vector<SelectorRequirement> out;
  if (!expressions.is_array()) return out;
  for (const Json& e : expressions) {
    SelectorRequirement r;
    r.key = e.value("key", "");
    std::string op = e.value("operator", "");
    using Op = SelectorRequirement::Operator;
    r.op = op == "NotIn"          ? Op::kNotIn
           : op == "Exists"       ? Op::kExists
           : op == "DoesNotExist" ? Op::kDoesNotExist
           : op == "Gt"           ? Op::kGt
           : op == "Lt"           ? Op::kLt
                                  : Op::kIn;
    for (const Json& v : At(e, "values")) {
      if (v.is_string()) r.values.push_back(v.get<std::string>());
    }
    out.push_back(std::move(r));
  }
  return out;
}

std::optional<TaintEffect> EffectOf(const std::string& effect) {
  if (effect == "NoSchedule") return TaintEffect::kNoSchedule;
  if (effect == "PreferNoSchedule") return TaintEffect::kPreferNoSchedule;
  if (effect == "NoExecute") return TaintEffect::kNoExecute;
  return std::nullopt;
}

bool IsTerminal(const Json& pod) {
  std::string phase = StringAt(pod, {"status", "phase"});
  return phase == "Succeeded" || phase == "Failed";
}

// A pod's place in the queue: higher priority first, then first come.
struct QueueKey {
  int32_t priority;
  uint64_t seq;
  std::string key;
  bool operator<(const QueueKey& o) const {
    if (priority != o.priority) return priority > o.priority;
    return seq < o.seq;
  }
};

// The clock shifted into the time zone profiles count their days in (the policy's "now").
class OffsetClock : public base::Clock {
 public:
  OffsetClock(const base::Clock* clock, std::chrono::seconds offset)
      : clock_(clock), offset_(offset) {}
  base::WallTime Now() const override { return clock_->Now() + offset_; }

 private:
  const base::Clock* const clock_;
  const std::chrono::seconds offset_;
};

class LiveSchedulerImpl : public LiveScheduler {
 public:
  LiveSchedulerImpl(client::ApiClient* api, base::Clock* clock, LiveSchedulerOptions options,
                    std::unique_ptr<base::Clock> profile_clock,
                    std::unique_ptr<ProfileStore> profiles, std::unique_ptr<Policy> policy)
      : api_(api),
        clock_(clock),
        options_(std::move(options)),
        profile_clock_(std::move(profile_clock)),
        profiles_(std::move(profiles)),
        policy_(std::move(policy)),
        pods_(api, "/api/v1/pods", ""),
        nodes_(api, "/api/v1/nodes", ""),
        node_metrics_(api, "/apis/scheduling.fulcrum.dev/v1alpha1/nodemetrics", ""),
        profile_feed_(profiles_.get(), options_.profile_utc_offset_seconds),
        profile_writer_(api, options_.profile_write_interval, options_.profile_utc_offset_seconds),
        batch_publisher_(api) {
    client::InformerHandlers n;
    n.on_add = [this](const ObjectPtr& o) { OnNode(o, false); };
    n.on_update = [this](const ObjectPtr&, const ObjectPtr& o) { OnNode(o, false); };
    n.on_delete = [this](const ObjectPtr& o) { OnNode(o, true); };
    nodes_.AddHandlers(std::move(n));
    client::InformerHandlers p;
    p.on_add = [this](const ObjectPtr& o) { OnPod(o, false); };
    p.on_update = [this](const ObjectPtr&, const ObjectPtr& o) { OnPod(o, false); };
    p.on_delete = [this](const ObjectPtr& o) { OnPod(o, true); };
    pods_.AddHandlers(std::move(p));
    client::InformerHandlers m;
    m.on_add = [this](const ObjectPtr& o) { OnNodeMetric(*o); };
    m.on_update = [this](const ObjectPtr&, const ObjectPtr& o) { OnNodeMetric(*o); };
    node_metrics_.AddHandlers(std::move(m));
  }
  ~LiveSchedulerImpl() override { Stop(); }

  void Start() {
    nodes_.Start();
    nodes_.WaitForSync(std::chrono::seconds(30));
    pods_.Start();
    pods_.WaitForSync(std::chrono::seconds(30));
    if (auto restored = profile_writer_.Load(profiles_.get()); !restored.ok()) {
      LOG_WARNING << "scheduler: reading application profiles: " << restored.status().ToString();
    } else if (*restored > 0) {
      LOG_INFO << "scheduler: restored " << *restored << " application profile(s)";
    }
    node_metrics_.Start();
    write_back_ = std::thread([this] { WriteBack(); });
    loop_ = std::thread([this] { Loop(); });
    for (int i = 0; i < std::max(1, options_.binders); ++i) binders_.emplace_back([this] { Bind(); });
  }

  void Stop() override {
    {
      std::lock_guard lock(mu_);
      if (stopping_) return;
      stopping_ = true;
      cv_.notify_all();
      bind_cv_.notify_all();
      profile_cv_.notify_all();
    }
    if (loop_.joinable()) loop_.join();
    if (write_back_.joinable()) write_back_.join();
    for (auto& t : binders_) {
      if (t.joinable()) t.join();
    }
    node_metrics_.Stop();
    pods_.Stop();
    nodes_.Stop();
  }

 private:
  // --- cluster state, all under mu_ -------------------------------------------------------

  NodeInfo* FindNode(const std::string& name) {
    auto it = node_index_.find(name);
    return it == node_index_.end() ? nullptr : &nodes_info_[it->second];
  }

  void OnNode(const ObjectPtr& node, bool deleted) {
    std::string name = StringAt(*node, {"metadata", "name"});
    std::lock_guard lock(mu_);
    auto it = node_index_.find(name);
    if (deleted) {
      if (it == node_index_.end()) return;
      size_t i = it->second, last = nodes_info_.size() - 1;
      for (const PodOnNode& p : nodes_info_[i].pods) placed_.erase(p.ns + "/" + p.name);
      if (i != last) {
        nodes_info_[i] = std::move(nodes_info_[last]);
        node_index_[nodes_info_[i].name] = i;
      }
      nodes_info_.pop_back();
      node_index_.erase(name);
      batch_publisher_.Forget(name);
    } else {
      if (it == node_index_.end()) {
        nodes_info_.emplace_back();
        nodes_info_.back().name = name;
        node_index_[name] = nodes_info_.size() - 1;
      }
      UpdateNodeInfoFromJson(*node, FindNode(name));
      batch_publisher_.Seen(name, *node, clock_->Now());
    }
    BatchCapacityMoved();
    RetryUnschedulable();
  }

  void OnPod(const ObjectPtr& pod, bool deleted) {
    std::string key = client::ObjectKey(*pod);
    std::string node = StringAt(*pod, {"spec", "nodeName"});
    bool gone = deleted || IsTerminal(*pod);
    std::lock_guard lock(mu_);
    auto placed = placed_.find(key);
    if (gone) {
      RecordRuntime(*pod, deleted);
      if (placed != placed_.end()) {
        if (NodeInfo* n = FindNode(placed->second)) {
          n->RemovePod(StringAt(*pod, {"metadata", "namespace"}), StringAt(*pod, {"metadata", "name"}));
        }
        placed_.erase(placed);
        BatchCapacityMoved();
        RetryUnschedulable();  // resources were freed
      }
      unschedulable_.erase(key);
      return;
    }
    if (!node.empty()) {
      unschedulable_.erase(key);
      if (placed != placed_.end() && placed->second == node) return;  // assumed or known
      if (placed != placed_.end()) {
        if (NodeInfo* n = FindNode(placed->second)) {
          n->RemovePod(StringAt(*pod, {"metadata", "namespace"}), StringAt(*pod, {"metadata", "name"}));
        }
      }
      if (NodeInfo* n = FindNode(node)) {
        n->AddPod(PodInfoFromJson(*pod), true);
        placed_[key] = node;
        BatchCapacityMoved();
      }
      return;
    }
    if (!StringAt(*pod, {"metadata", "deletionTimestamp"}).empty()) return;
    std::string scheduler = StringAt(*pod, {"spec", "schedulerName"});
    if (!scheduler.empty() && scheduler != options_.scheduler_name) return;
    if (placed != placed_.end() || unschedulable_.count(key) || queued_.count(key)) return;
    Enqueue(key, PodInfoFromJson(*pod).priority);
  }

  // A completed pod of a Job: its runtime, once per pod (the informer's first list brings the
  // completed pods still in the API, so a restarted scheduler knows their runs again).
  void RecordRuntime(const Json& pod, bool deleted) {
    std::string uid = StringAt(pod, {"metadata", "uid"});
    if (deleted ? runtime_counted_.erase(uid) > 0 : runtime_counted_.count(uid) > 0) return;
    int64_t seconds = CompletedRuntimeSeconds(pod);
    if (seconds <= 0) return;
    std::string app = PodInfoFromJson(pod).app;
    if (app.find("/Job/") == std::string::npos) return;  // one run of its own: nothing to learn
    runtimes_.Record(app, seconds);
    if (!deleted) runtime_counted_.insert(uid);
  }

  // A batch pod's expected runtime when it has none of its own (the annotation, read by
  // PodInfoFromJson): learnt from its application's completed runs. Returns where it came from,
  // for the Scheduled event.
  std::string FillExpectedRuntime(PodInfo* pod) const {
    if (pod->expected_runtime_seconds > 0) return std::string(kExpectedRuntimeAnnotation);
    pod->expected_runtime_seconds = runtimes_.Expected(pod->app);
    if (pod->expected_runtime_seconds <= 0) return "default";
    size_t runs = runtimes_.Runs(pod->app);
    return "p" + std::to_string(std::lround(kRuntimeQuantile * 100)) + " of " +
           std::to_string(runs) + (runs == 1 ? " run" : " runs");
  }

  // An agent's usage report: the node's measured usage, and observations for the profiles.
  void OnNodeMetric(const Json& metric) {
    auto report = NodeUsageFromMetric(metric);
    if (!report.ok()) {
      LOG_DEBUG << "scheduler: " << report.status().ToString();
      return;
    }
    if (!options_.count_system_usage) DropSystemUsage(&*report);
    std::lock_guard lock(mu_);
    NodeInfo* node = FindNode(report->node);
    if (node == nullptr) return;
    bool lower = ApplyNodeUsage(*report, node);
    usage_reported_at_[report->node] = report->unix_seconds;
    uint64_t profiles_version = profiles_->version();
    profile_feed_.Observe(*report, *node);
    // Usage thresholds may pass now, and learnt profiles may lend batch pods what cold ones (the
    // requests) did not.
    if (lower || profiles_->version() != profiles_version) RetryUnschedulable();
    BatchCapacityMoved();
  }

  // Forgets the usage of nodes whose last report expired (checked at most once a second).
  void ExpireUsage() {
    base::WallTime now = clock_->Now();
    if (now - last_expiry_check_ < std::chrono::seconds(1)) return;
    last_expiry_check_ = now;
    int64_t unix_now = std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
    for (auto it = usage_reported_at_.begin(); it != usage_reported_at_.end();) {
      if (unix_now - it->second <= kUsageExpiry.count()) {
        ++it;
        continue;
      }
      if (NodeInfo* node = FindNode(it->first)) ForgetNodeUsage(node);
      it = usage_reported_at_.erase(it);
    }
  }

  // Writes what the scheduler publishes: learnt profiles as AppProfiles (checked every 5 s) and
  // the nodes' batch resources (as soon as the loop finds them due).
  void WriteBack() {
    for (;;) {
      std::vector<AppProfile> due;
      std::vector<std::pair<std::string, BatchResources>> batch;
      {
        std::unique_lock lock(mu_);
        profile_cv_.wait_for(lock, std::chrono::seconds(5),
                             [this] { return stopping_ || !batch_writes_.empty(); });
        if (stopping_) return;
        due = profile_writer_.Due(*profiles_, clock_->Now());
        batch.assign(batch_writes_.begin(), batch_writes_.end());
        batch_writes_.clear();
      }
      if (!batch.empty()) {
        auto [failed, s] = batch_publisher_.Write(batch);
        if (!failed.empty()) {
          LOG_WARNING << "scheduler: publishing batch resources of " << failed.size()
                      << " node(s): " << s.ToString();
          std::lock_guard lock(mu_);
          for (const std::string& node : failed) batch_publisher_.Failed(node);
        }
      }
      if (due.empty()) continue;
      if (auto s = profile_writer_.Write(due); !s.ok()) {
        LOG_WARNING << "scheduler: writing application profiles: " << s.ToString();
      }
    }
  }

  // The batch capacity the policy lends on each node, for the Nodes' kubernetes.io/batch-cpu and
  // batch-memory (batch_resources.h): what a batch pod of the shortest runtime could be given
  // now, so that no batch pod is placed against more than the node shows. Computed by the loop
  // thread (the policy is its own): at most once a second after something moved
  // (BatchCapacityMoved), and every 5 s (time moves the predictions, and old reports expire);
  // the writes go to WriteBack.
  void PublishBatchResources() {
    if (!policy_->ReclaimsForBatch() || nodes_info_.empty()) return;
    auto now = std::chrono::steady_clock::now();
    if (now - last_publish_ < kPublishInterval ||
        (!batch_moved_ && now - last_publish_ < kPublishRefresh)) {
      return;
    }
    last_publish_ = now;
    batch_moved_ = false;
    ExpireUsage();
    PodInfo probe;
    probe.qos = Qos::kBatch;
    probe.expected_runtime_seconds = 1;
    policy_->BeginPod(probe, nodes_info_);
    std::vector<std::pair<std::string, BatchResources>> computed;
    computed.reserve(nodes_info_.size());
    for (const NodeInfo& node : nodes_info_) {
      Resources r = policy_->BatchAllocatable(node);
      computed.emplace_back(node.name, BatchResources{r.cpu_milli, r.memory_bytes});
    }
    auto due = batch_publisher_.Due(computed, clock_->Now());
    if (due.empty()) return;
    for (auto& [node, value] : due) batch_writes_[node] = value;  // replaces a pending write
    profile_cv_.notify_all();
  }

  // What a placement under a policy that reclaims for batch went by, for the Scheduled event
  // (before the pod is added to the node): for a batch pod, the batch CPU requested on the node
  // with it against what the policy reclaims there, and the online pods' requests against
  // allocatable (batch placed although requests would not fit shows here); the node's measured
  // usage when it has reported; under a policy that places batch pods by their runtime, the
  // expected runtime and where it came from. "" under the requests policy.
  std::string PlacementNote(const PodInfo& pod, const NodeInfo& node,
                            const std::string& runtime_source) {
    if (!policy_->ReclaimsForBatch()) return "";
    auto milli = [](double m) { return std::to_string(static_cast<int64_t>(m)) + "m"; };
    auto mib = [](double b) { return std::to_string(static_cast<int64_t>(b / (1024 * 1024))) + "Mi"; };
    std::string allocatable = milli(node.allocatable.cpu_milli);
    std::string note;
    if (pod.qos == Qos::kBatch) {
      int64_t batch = node.requested.cpu_milli - node.online_requested.cpu_milli + pod.requests.cpu_milli;
      note = "batch cpu " + milli(batch) + " of " + milli(policy_->BatchAllocatable(node).cpu_milli) +
             " reclaimable, online requests " + milli(node.online_requested.cpu_milli) + "/" +
             allocatable;
      if (policy_->PlacesBatchByRuntime()) {
        int64_t runtime = pod.expected_runtime_seconds > 0 ? pod.expected_runtime_seconds
                                                           : kDefaultBatchRuntimeSeconds;
        note += ", expected runtime " + FormatGoDuration(runtime) + " (" + runtime_source + ")";
      }
    }
    if (node.cpu_usage_milli >= 0) {
      if (!note.empty()) note += ", ";
      note += "measured cpu " + milli(node.cpu_usage_milli) + "/" + allocatable;
      if (node.memory_usage_bytes >= 0) {
        note += ", memory " + mib(node.memory_usage_bytes) + "/" + mib(node.allocatable.memory_bytes);
      }
    }
    return note.empty() ? "" : " (" + std::string(policy_->name()) + ": " + note + ")";
  }

  // A node's pods, usage or allocatable changed: its batch capacity is published again soon.
  void BatchCapacityMoved() {
    batch_moved_ = true;
    cv_.notify_one();
  }

  void Enqueue(const std::string& key, int32_t priority) {
    queued_.insert(key);
    queue_.insert(QueueKey{priority, next_seq_++, key});
    cv_.notify_one();
  }

  void RetryUnschedulable() {
    for (const auto& [key, priority] : unschedulable_) {
      if (!queued_.count(key)) Enqueue(key, priority);
    }
    unschedulable_.clear();
  }

  // --- the loop ---------------------------------------------------------------------------

  void Loop() {
    std::unique_lock lock(mu_);
    auto last_retry = std::chrono::steady_clock::now();
    while (!stopping_) {
      PublishBatchResources();
      if (queue_.empty()) {
        // Wakes for the next pod, or to publish what moved once the interval has passed.
        cv_.wait_for(
            lock, batch_moved_ && policy_->ReclaimsForBatch() ? kPublishInterval : kPublishRefresh);
        if (std::chrono::steady_clock::now() - last_retry > kRetryInterval) {
          last_retry = std::chrono::steady_clock::now();
          RetryUnschedulable();
        }
        continue;
      }
      QueueKey next = *queue_.begin();
      queue_.erase(queue_.begin());
      queued_.erase(next.key);
      ObjectPtr pod = pods_.Get(next.key);
      if (pod == nullptr || !StringAt(*pod, {"spec", "nodeName"}).empty() ||
          !StringAt(*pod, {"metadata", "deletionTimestamp"}).empty() || IsTerminal(*pod) ||
          placed_.count(next.key)) {
        continue;
      }
      PodInfo info = PodInfoFromJson(*pod);
      std::string runtime_source = info.qos == Qos::kBatch ? FillExpectedRuntime(&info) : "";
      ExpireUsage();
      Decision d = Schedule(info, nodes_info_, *policy_);
      if (d.node_index) {
        NodeInfo& node = nodes_info_[*d.node_index];
        std::string note = PlacementNote(info, node, runtime_source);
        node.AddPod(info, false);
        placed_[next.key] = node.name;
        batch_moved_ = true;
        bind_queue_.push_back({pod, node.name, std::move(note)});
        bind_cv_.notify_one();
        continue;
      }
      unschedulable_[next.key] = info.priority;
      std::vector<std::pair<std::string, std::string>> victims;
      std::string nominated;
      if (d.nominated_node_index) {
        nominated = nodes_info_[*d.nominated_node_index].name;
        for (const Victim& v : d.victims) victims.emplace_back(v.ns, v.name);
      }
      lock.unlock();
      ReportUnschedulable(*pod, d.message, nominated, victims);
      lock.lock();
    }
  }

  void ReportUnschedulable(const Json& pod, const std::string& message, const std::string& nominated,
                           const std::vector<std::pair<std::string, std::string>>& victims) {
    std::string ns = StringAt(pod, {"metadata", "namespace"});
    std::string name = StringAt(pod, {"metadata", "name"});
    std::string text = message;
    if (!victims.empty()) text += " preemption: evicting " + std::to_string(victims.size()) + " lower-priority pod(s) on " + nominated + ".";
    client::RecordEvent(api_, clock_, pod, "Warning", "FailedScheduling", text, kComponent);
    Json status = {{"conditions",
                    {{{"type", "PodScheduled"},
                      {"status", "False"},
                      {"reason", "Unschedulable"},
                      {"message", message},
                      {"lastTransitionTime", base::FormatRfc3339(clock_->Now())}}}}};
    if (!nominated.empty()) status["nominatedNodeName"] = nominated;
    auto r = api_->Patch(client::ResourcePath("v1", "pods", ns, name, "status"),
                         client::PatchType::kStrategicMerge, Json{{"status", status}});
    if (!r.ok()) LOG_DEBUG << "scheduler: status of " << ns << "/" << name << ": " << r.status().ToString();
    for (const auto& [victim_ns, victim_name] : victims) {
      Json victim = {{"kind", "Pod"}, {"apiVersion", "v1"},
                     {"metadata", {{"namespace", victim_ns}, {"name", victim_name}}}};
      client::RecordEvent(api_, clock_, victim, "Normal", "Preempted",
                          "Preempted by pod " + ns + "/" + name + " on node " + nominated, kComponent);
      auto del = api_->Delete(client::ResourcePath("v1", "pods", victim_ns, victim_name));
      if (!del.ok() && !del.status().IsNotFound()) {
        LOG_WARNING << "scheduler: preempting " << victim_ns << "/" << victim_name << ": " << del.status().ToString();
      }
    }
  }

  void Bind() {
    while (true) {
      BindJob job;
      {
        std::unique_lock lock(mu_);
        bind_cv_.wait(lock, [this] { return stopping_ || !bind_queue_.empty(); });
        if (stopping_) return;
        job = std::move(bind_queue_.front());
        bind_queue_.pop_front();
      }
      const Json& pod = *job.pod;
      std::string ns = StringAt(pod, {"metadata", "namespace"});
      std::string name = StringAt(pod, {"metadata", "name"});
      Json binding = {{"apiVersion", "v1"},
                      {"kind", "Binding"},
                      {"metadata", {{"name", name}, {"namespace", ns}}},
                      {"target", {{"apiVersion", "v1"}, {"kind", "Node"}, {"name", job.node}}}};
      auto r = api_->Create(client::ResourcePath("v1", "pods", ns, name, "binding"), binding);
      if (r.ok()) {
        client::RecordEvent(api_, clock_, pod, "Normal", "Scheduled",
                            "Successfully assigned " + ns + "/" + name + " to " + job.node + job.note,
                            kComponent);
        continue;
      }
      LOG_WARNING << "scheduler: binding " << ns << "/" << name << " to " << job.node << ": "
                  << r.status().ToString();
      // Forget the assumption; a pod that still exists unbound is tried again.
      std::lock_guard lock(mu_);
      std::string key = ns + "/" + name;
      if (auto it = placed_.find(key); it != placed_.end() && it->second == job.node) {
        if (NodeInfo* n = FindNode(job.node)) n->RemovePod(ns, name);
        placed_.erase(it);
        BatchCapacityMoved();
      }
      if (!r.status().IsNotFound() && !r.status().IsConflict()) unschedulable_[key] = 0;
    }
  }

  client::ApiClient* api_;
  base::Clock* clock_;
  const LiveSchedulerOptions options_;
  std::unique_ptr<base::Clock> profile_clock_;  // the policy's clock
  std::unique_ptr<ProfileStore> profiles_;  // read by the archimedes policy
  std::unique_ptr<Policy> policy_;          // used by the loop thread only
  client::Informer pods_;
  client::Informer nodes_;
  client::Informer node_metrics_;
  ProfileFeed profile_feed_;          // under mu_
  AppProfileWriter profile_writer_;   // Due under mu_
  BatchResourcePublisher batch_publisher_;              // Seen, Due, Failed under mu_
  std::map<std::string, BatchResources> batch_writes_;  // node -> due; under mu_
  std::chrono::steady_clock::time_point last_publish_;  // loop thread
  bool batch_moved_ = false;                            // under mu_
  std::thread write_back_;
  std::unordered_map<std::string, int64_t> usage_reported_at_;  // node -> unix seconds; under mu_
  JobRuntimes runtimes_{JobRuntimes::Options{20, kRuntimeQuantile}};  // under mu_
  std::set<std::string> runtime_counted_;  // uids of completed pods in runtimes_; under mu_
  base::WallTime last_expiry_check_;                            // under mu_

  std::mutex mu_;
  std::condition_variable cv_, bind_cv_, profile_cv_;
  bool stopping_ = false;
  std::vector<NodeInfo> nodes_info_;
  std::unordered_map<std::string, size_t> node_index_;
  std::unordered_map<std::string, std::string> placed_;  // pod key -> node it is counted on
  std::set<QueueKey> queue_;
  std::set<std::string> queued_;
  std::map<std::string, int32_t> unschedulable_;  // pod key -> priority
  uint64_t next_seq_ = 0;
  struct BindJob {
    ObjectPtr pod;
    std::string node;
    std::string note;  // appended to the Scheduled event
  };
  std::deque<BindJob> bind_queue_;
  std::thread loop_;
  std::vector<std::thread> binders_;
};

}  // namespace

PodInfo PodInfoFromJson(const Json& pod) {
  PodInfo info;
  info.ns = StringAt(pod, {"metadata", "namespace"});
  info.name = StringAt(pod, {"metadata", "name"});
  const Json& meta = At(pod, "metadata");
  const Json& spec = At(pod, "spec");
  info.labels = LabelsOf(At(meta, "labels"));
  // Requests: the sum over containers, or the largest init container if that is more.
  Resources sum, init_max;
  for (const Json& c : At(spec, "containers")) {
    const Json& req = At(At(c, "resources"), "requests");
    sum.cpu_milli += Milli(At(req, "cpu"));
    sum.memory_bytes += Whole(At(req, "memory"));
  }
  for (const Json& c : At(spec, "initContainers")) {
    const Json& req = At(At(c, "resources"), "requests");
    init_max.cpu_milli = std::max(init_max.cpu_milli, Milli(At(req, "cpu")));
    init_max.memory_bytes = std::max(init_max.memory_bytes, Whole(At(req, "memory")));
  }
  info.requests.cpu_milli = std::max(sum.cpu_milli, init_max.cpu_milli) + Milli(At(At(spec, "overhead"), "cpu"));
  info.requests.memory_bytes =
      std::max(sum.memory_bytes, init_max.memory_bytes) + Whole(At(At(spec, "overhead"), "memory"));
  info.node_selector = LabelsOf(At(spec, "nodeSelector"));
  const Json& affinity = At(spec, "affinity");
  const Json& terms = At(At(At(affinity, "nodeAffinity"), "requiredDuringSchedulingIgnoredDuringExecution"),
                         "nodeSelectorTerms");
  if (terms.is_array()) {
    for (const Json& term : terms) {
      info.required_node_affinity.push_back(NodeSelectorTerm{Requirements(At(term, "matchExpressions"))});
    }
  }
  const Json& anti = At(At(affinity, "podAntiAffinity"), "requiredDuringSchedulingIgnoredDuringExecution");
  if (anti.is_array()) {
    for (const Json& term : anti) {
      if (term.value("topologyKey", "") != "kubernetes.io/hostname") continue;
      const Json& selector = At(term, "labelSelector");
      info.anti_affinity.push_back(
          LabelSelector{LabelsOf(At(selector, "matchLabels")), Requirements(At(selector, "matchExpressions"))});
    }
  }
  if (At(spec, "tolerations").is_array()) {
    for (const Json& t : spec["tolerations"]) {
      Toleration tol;
      tol.key = t.value("key", "");
      tol.exists = t.value("operator", "") == "Exists";
      tol.value = t.value("value", "");
      tol.effect = EffectOf(t.value("effect", ""));
      info.tolerations.push_back(std::move(tol));
    }
  }
  if (At(spec, "priority").is_number_integer()) info.priority = spec["priority"].get<int32_t>();
  if (spec.value("priorityClassName", "") == "fulcrum-batch" ||
      StringAt(pod, {"metadata", "annotations", "fulcrum.dev/qos"}) == "batch") {
    info.qos = Qos::kBatch;
  }
  // An invalid duration is ignored: the runtime is then learnt or the default, as the Scheduled
  // event says.
  std::string runtime = StringAt(pod, {"metadata", "annotations", kExpectedRuntimeAnnotation});
  if (auto seconds = ParseGoDurationSeconds(runtime); !runtime.empty() && seconds.ok()) {
    info.expected_runtime_seconds = *seconds;
  }
  // The application: the owning workload, with a Deployment's ReplicaSet hash taken off.
  const Json& refs = At(meta, "ownerReferences");
  if (refs.is_array()) {
    for (const Json& ref : refs) {
      if (!ref.value("controller", false)) continue;
      std::string kind = ref.value("kind", ""), owner = ref.value("name", "");
      std::string hash = StringAt(pod, {"metadata", "labels", "pod-template-hash"});
      if (kind == "ReplicaSet" && !hash.empty() && owner.size() > hash.size() + 1 &&
          owner.compare(owner.size() - hash.size(), hash.size(), hash) == 0) {
        kind = "Deployment";
        owner = owner.substr(0, owner.size() - hash.size() - 1);
      }
      info.app = info.ns + "/" + kind + "/" + owner;
    }
  }
  if (info.app.empty()) info.app = info.ns + "/Pod/" + info.name;
  return info;
}

int64_t CompletedRuntimeSeconds(const Json& pod) {
  if (StringAt(pod, {"status", "phase"}) != "Succeeded") return -1;
  base::WallTime start, end, t;
  if (!base::ParseRfc3339(StringAt(pod, {"status", "startTime"}), &start)) return -1;
  const Json& statuses = At(At(pod, "status"), "containerStatuses");
  if (!statuses.is_array()) return -1;
  for (const Json& c : statuses) {
    bool finished = base::ParseRfc3339(StringAt(c, {"state", "terminated", "finishedAt"}), &t);
    if (finished && t > end) end = t;
  }
  if (end == base::WallTime{} || end <= start) return -1;
  return std::chrono::duration_cast<std::chrono::seconds>(end - start).count();
}

void UpdateNodeInfoFromJson(const Json& node, NodeInfo* info) {
  info->name = StringAt(node, {"metadata", "name"});
  info->labels = LabelsOf(At(At(node, "metadata"), "labels"));
  if (!info->labels.count("kubernetes.io/hostname")) info->labels["kubernetes.io/hostname"] = info->name;
  info->taints.clear();
  const Json& spec = At(node, "spec");
  if (At(spec, "taints").is_array()) {
    for (const Json& t : spec["taints"]) {
      auto effect = EffectOf(t.value("effect", ""));
      if (!effect) continue;
      info->taints.push_back(Taint{t.value("key", ""), t.value("value", ""), *effect});
    }
  }
  bool ready = false;
  const Json& conditions = At(At(node, "status"), "conditions");
  if (conditions.is_array()) {
    for (const Json& c : conditions) {
      if (c.value("type", "") == "Ready") ready = c.value("status", "") == "True";
    }
  }
  if (!ready) info->taints.push_back(Taint{"node.kubernetes.io/not-ready", "", TaintEffect::kNoSchedule});
  info->unschedulable = At(spec, "unschedulable") == true;  // a Node may have no spec at all
  const Json& allocatable = At(At(node, "status"), "allocatable");
  info->allocatable.cpu_milli = Milli(At(allocatable, "cpu"));
  info->allocatable.memory_bytes = Whole(At(allocatable, "memory"));
  info->allocatable.pods = Whole(At(allocatable, "pods"));
  info->Touch();
}

base::Result<std::unique_ptr<LiveScheduler>> StartLiveScheduler(client::ApiClient* api,
                                                                base::Clock* clock,
                                                                LiveSchedulerOptions options) {
  // As AppProfile objects require: a slot divides a day.
  if (options.profile_slot_seconds <= 0 || 86400 % options.profile_slot_seconds != 0) {
    return base::Invalid("the profile slot must be a number of seconds that divides a day, not " +
                         std::to_string(options.profile_slot_seconds));
  }
  if (options.profile_utc_offset_seconds <= -86400 || options.profile_utc_offset_seconds >= 86400) {
    return base::Invalid("the profiles' UTC offset must be less than a day either way, not " +
                         std::to_string(options.profile_utc_offset_seconds) + " s");
  }
  if (options.batch_cpu_percent < 1 || options.batch_cpu_percent > 100) {
    return base::Invalid("the batch CPU percentage must be within 1-100, not " +
                         std::to_string(options.batch_cpu_percent));
  }
  ProfileOptions profile_options;
  profile_options.slot_seconds = options.profile_slot_seconds;
  profile_options.slots = static_cast<int>(86400 / options.profile_slot_seconds);
  // Cold start: an application with no history uses its requests, no more, no less.
  profile_options.cold_mean_fraction = 1;
  profile_options.cold_spread_fraction = 0;
  // Profiles live as long as the scheduler (and as AppProfile objects).
  auto profiles = std::make_unique<ProfileStore>(profile_options);
  auto profile_clock = std::make_unique<OffsetClock>(
      clock, std::chrono::seconds(options.profile_utc_offset_seconds));
  PolicyOptions policy_options;
  policy_options.clock = profile_clock.get();
  policy_options.profiles = profiles.get();
  // What the agents let batch pods use: load-aware's reclaim threshold, archimedes' margin.
  double batch_share = options.batch_cpu_percent / 100.0;
  policy_options.batch_reclaim_threshold = batch_share;
  policy_options.safety_margin = 1 - batch_share;
  ASSIGN_OR_RETURN(std::unique_ptr<Policy> policy, MakePolicy(options.policy, policy_options));
  auto s =
      std::make_unique<LiveSchedulerImpl>(api, clock, std::move(options), std::move(profile_clock),
                                          std::move(profiles), std::move(policy));
  s->Start();
  return std::unique_ptr<LiveScheduler>(std::move(s));
}

}  // namespace fulcrum::scheduler
