#include "controllers/node_lifecycle_controller.h"

#include "base/log.h"
#include "client/events.h"
#include "controllers/workload.h"

namespace fulcrum::controllers {
namespace {

using base::Json;
using base::StringAt;

constexpr char kUnreachable[] = "node.kubernetes.io/unreachable";

bool HasTaint(const Json& node, const std::string& effect) {
  const Json* taints = base::FindPath(node, {"spec", "taints"});
  if (taints == nullptr || !taints->is_array()) return false;
  for (const Json& t : *taints) {
    if (t.value("key", "") == kUnreachable && t.value("effect", "") == effect) return true;
  }
  return false;
}

std::string ReadyStatus(const Json& node) {
  const Json* conditions = base::FindPath(node, {"status", "conditions"});
  if (conditions == nullptr || !conditions->is_array()) return "";
  for (const Json& c : *conditions) {
    if (c.value("type", "") == "Ready") return c.value("status", "");
  }
  return "";
}

// Seconds the pod tolerates the unreachable NoExecute taint: forever (-1), a number, or the
// default when it has no toleration for it.
int64_t TolerationSeconds(const Json& pod, int64_t fallback) {
  const Json* tolerations = base::FindPath(pod, {"spec", "tolerations"});
  if (tolerations == nullptr || !tolerations->is_array()) return fallback;
  for (const Json& t : *tolerations) {
    std::string key = t.value("key", "");
    std::string effect = t.value("effect", "");
    bool exists = t.value("operator", "") == "Exists";
    if (!(key == kUnreachable || (key.empty() && exists))) continue;
    if (!effect.empty() && effect != "NoExecute") continue;
    const Json* seconds = base::FindPath(t, {"tolerationSeconds"});
    return seconds != nullptr && seconds->is_number_integer() ? seconds->get<int64_t>() : -1;
  }
  return fallback;
}

}  // namespace

NodeLifecycleController::NodeLifecycleController(client::ApiClient* api, base::Clock* clock,
                                                 client::Informer* nodes,
                                                 client::Informer* leases, client::Informer* pods,
                                                 NodeLifecycleOptions options)
    : api_(api), clock_(clock), nodes_(nodes), leases_(leases), pods_(pods), options_(options) {}

NodeLifecycleController::~NodeLifecycleController() { Stop(); }

void NodeLifecycleController::Start() {
  thread_ = std::thread([this] {
    std::unique_lock lock(mu_);
    while (!stopping_) {
      lock.unlock();
      CheckNodes();
      lock.lock();
      cv_.wait_for(lock, options_.check_every, [this] { return stopping_; });
    }
  });
}

void NodeLifecycleController::Stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    cv_.notify_all();
  }
  if (thread_.joinable()) thread_.join();
}

void NodeLifecycleController::CheckNodes() {
  for (const client::ObjectPtr& node : nodes_->List()) {
    base::Status s = CheckNode(*node);
    if (!s.ok() && !s.IsConflict()) {
      LOG_WARNING << "node-lifecycle " << StringAt(*node, {"metadata", "name"}) << ": " << s.ToString();
    }
  }
}

base::Status NodeLifecycleController::CheckNode(const Json& node) {
  const std::string name = StringAt(node, {"metadata", "name"});
  const auto now = clock_->Now();
  // The node's last sign of life: its Lease renewal, else its creation.
  base::WallTime last_seen{};
  if (auto lease = leases_->Get("kube-node-lease/" + name)) {
    base::ParseRfc3339(StringAt(*lease, {"spec", "renewTime"}), &last_seen);
  }
  if (last_seen == base::WallTime{}) {
    base::ParseRfc3339(StringAt(node, {"metadata", "creationTimestamp"}), &last_seen);
  }
  const bool silent = now - last_seen > options_.grace;
  const bool tainted = HasTaint(node, "NoExecute");
  const std::string path = client::ResourcePath("v1", "nodes", "", name);

  if (silent && ReadyStatus(node) != "Unknown") {
    Json conditions = base::FindPath(node, {"status", "conditions"}) != nullptr
                          ? node["status"]["conditions"]
                          : Json::array();
    for (Json& c : conditions) {
      c["status"] = "Unknown";
      c["reason"] = "NodeStatusUnknown";
      c["message"] = "Kubelet stopped posting node status.";
      c["lastTransitionTime"] = base::FormatRfc3339(now);
    }
    auto r = api_->Patch(path + "/status", client::PatchType::kMerge,
                         Json{{"status", {{"conditions", conditions}}}});
    if (!r.ok()) return r.status();
    client::RecordEvent(api_, clock_, node, "Normal", "NodeNotReady",
                        "Node " + name + " status is now: NodeNotReady", "node-controller");
  }
  if (silent && !tainted) {
    Json taints = base::FindPath(node, {"spec", "taints"}) != nullptr && node["spec"]["taints"].is_array()
                      ? node["spec"]["taints"]
                      : Json::array();
    std::string stamp = base::FormatRfc3339(now);
    if (!HasTaint(node, "NoSchedule")) {
      taints.push_back({{"key", kUnreachable}, {"effect", "NoSchedule"}, {"timeAdded", stamp}});
    }
    taints.push_back({{"key", kUnreachable}, {"effect", "NoExecute"}, {"timeAdded", stamp}});
    auto r = api_->Patch(path, client::PatchType::kMerge, Json{{"spec", {{"taints", taints}}}});
    if (!r.ok()) return r.status();
    return base::Status::Ok();
  }
  if (!silent && tainted && ReadyStatus(node) == "True") {
    Json kept = Json::array();
    for (const Json& t : node["spec"]["taints"]) {
      if (t.value("key", "") != kUnreachable) kept.push_back(t);
    }
    auto r = api_->Patch(path, client::PatchType::kMerge, Json{{"spec", {{"taints", kept}}}});
    if (!r.ok()) return r.status();
    return base::Status::Ok();
  }
  if (tainted) {
    base::WallTime tainted_at = now;
    for (const Json& t : node["spec"]["taints"]) {
      if (t.value("key", "") == kUnreachable && t.value("effect", "") == "NoExecute") {
        base::ParseRfc3339(t.value("timeAdded", ""), &tainted_at);
      }
    }
    EvictPods(name, tainted_at);
  }
  return base::Status::Ok();
}

void NodeLifecycleController::EvictPods(const std::string& node_name, base::WallTime tainted_at) {
  const auto now = clock_->Now();
  for (const client::ObjectPtr& pod : pods_->List()) {
    if (StringAt(*pod, {"spec", "nodeName"}) != node_name || !IsPodActive(*pod)) continue;
    int64_t seconds = TolerationSeconds(*pod, options_.default_toleration.count());
    if (seconds < 0 || now - tainted_at < std::chrono::seconds(seconds)) continue;
    std::string ns = StringAt(*pod, {"metadata", "namespace"});
    std::string name = StringAt(*pod, {"metadata", "name"});
    client::RecordEvent(api_, clock_, *pod, "Normal", "TaintManagerEviction",
                        "Marking for deletion Pod " + ns + "/" + name, "taint-eviction-controller");
    auto r = api_->Delete(client::ResourcePath("v1", "pods", ns, name));
    if (!r.ok() && !r.status().IsNotFound()) {
      LOG_WARNING << "node-lifecycle: evicting " << ns << "/" << name << ": " << r.status().ToString();
    }
  }
}

}  // namespace fulcrum::controllers
