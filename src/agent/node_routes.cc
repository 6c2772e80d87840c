#include "agent/node_routes.h"

#include <arpa/inet.h>

#include <algorithm>
#include <set>

#include "base/log.h"
#include "client/informer.h"

namespace fulcrum::agent {

using base::Json;
using base::Result;
using base::Status;

namespace {

bool Ipv4Cidr(const std::string& cidr) {
  auto slash = cidr.find('/');
  in_addr a;
  return slash != std::string::npos && inet_pton(AF_INET, cidr.substr(0, slash).c_str(), &a) == 1;
}

bool Ipv4(const std::string& ip) {
  in_addr a;
  return inet_pton(AF_INET, ip.c_str(), &a) == 1;
}

}  // namespace

std::vector<NodeRoute> DesiredNodeRoutes(const std::string& self,
                                         const std::vector<std::shared_ptr<const Json>>& nodes) {
  std::vector<NodeRoute> out;
  for (const auto& node : nodes) {
    if (!node || base::StringAt(*node, {"metadata", "name"}) == self) continue;
    std::string cidr = base::StringAt(*node, {"spec", "podCIDR"}), via;
    if (const Json* addresses = base::FindPath(*node, {"status", "addresses"});
        addresses && addresses->is_array()) {
      for (const auto& a : *addresses) {
        if (base::StringAt(a, {"type"}) == "InternalIP" && Ipv4(base::StringAt(a, {"address"}))) {
          via = base::StringAt(a, {"address"});
          break;
        }
      }
    }
    if (Ipv4Cidr(cidr) && !via.empty()) out.push_back({cidr, via});
  }
  std::sort(out.begin(), out.end());
  return out;
}

Result<ProcessResult> HostRoutes::Run(std::vector<std::string> argv) {
  ProcessSpec spec;
  spec.argv = std::move(argv);
  spec.timeout = std::chrono::seconds(10);
  return runner_->Run(spec);
}

Result<std::vector<NodeRoute>> HostRoutes::List() {
  ASSIGN_OR_RETURN(ProcessResult r, Run({ip_, "-j", "-4", "route", "show", "proto",
                                         std::to_string(kProtocol)}));
  if (r.exit_code != 0) return base::Internal("ip route show: " + r.err);
  Json routes;
  if (!base::ParseJson(r.out.empty() ? "[]" : r.out, &routes).ok() || !routes.is_array()) {
    return base::Internal("ip route show printed no JSON list: " + r.out.substr(0, 200));
  }
  std::vector<NodeRoute> out;
  for (const auto& route : routes) {
    out.push_back({base::StringAt(route, {"dst"}), base::StringAt(route, {"gateway"})});
  }
  std::sort(out.begin(), out.end());
  return out;
}

Status HostRoutes::Sync(const std::vector<NodeRoute>& want) {
  ASSIGN_OR_RETURN(std::vector<NodeRoute> have, List());
  std::set<NodeRoute> wanted(want.begin(), want.end());
  std::set<std::string> wanted_cidrs;
  for (const auto& r : want) wanted_cidrs.insert(r.cidr);
  Status first;
  auto note = [&](const Status& st) {
    if (first.ok() && !st.ok()) first = st;
  };
  for (const auto& r : have) {
    if (wanted_cidrs.count(r.cidr)) continue;  // replaced below if its gateway changed
    auto result = Run({ip_, "route", "del", r.cidr, "proto", std::to_string(kProtocol)});
    if (!result.ok()) {
      note(result.status());
    } else if (result->exit_code != 0) {
      note(base::Internal("ip route del " + r.cidr + ": " + result->err));
    }
  }
  std::set<NodeRoute> present(have.begin(), have.end());
  for (const auto& r : wanted) {
    if (present.count(r)) continue;
    auto result = Run({ip_, "route", "replace", r.cidr, "via", r.via, "proto",
                       std::to_string(kProtocol)});
    if (!result.ok()) {
      note(result.status());
    } else if (result->exit_code != 0) {
      note(base::Internal("ip route replace " + r.cidr + " via " + r.via + ": " + result->err));
    }
  }
  return first;
}

Status HostRoutes::EnsureMasquerade(const std::string& pod_cidr, const std::string& cluster_cidr) {
  std::vector<std::string> rule = {"POSTROUTING", "-s", pod_cidr, "!", "-d", cluster_cidr,
                                   "-m", "comment", "--comment", "fulcrum pod masquerade",
                                   "-j", "MASQUERADE"};
  std::vector<std::string> check = {iptables_, "-w", "-t", "nat", "-C"};
  check.insert(check.end(), rule.begin(), rule.end());
  ASSIGN_OR_RETURN(ProcessResult present, Run(check));
  if (present.exit_code == 0) return Status::Ok();
  std::vector<std::string> add = {iptables_, "-w", "-t", "nat", "-A"};
  add.insert(add.end(), rule.begin(), rule.end());
  ASSIGN_OR_RETURN(ProcessResult added, Run(add));
  if (added.exit_code != 0) return base::Internal("iptables: " + added.err);
  return Status::Ok();
}

NodeRouteSync::NodeRouteSync(client::ApiClient* api, std::string self, HostRoutes* routes)
    : self_(std::move(self)), routes_(routes) {
  auto sync = [this](const client::ObjectPtr&) { Sync(); };
  nodes_ = std::make_unique<client::Informer>(
      api, "/api/v1/nodes", "",
      client::InformerHandlers{sync, [this](const client::ObjectPtr&, const client::ObjectPtr&) { Sync(); },
                               sync});
}

NodeRouteSync::~NodeRouteSync() { Stop(); }

void NodeRouteSync::Start() { nodes_->Start(); }

void NodeRouteSync::Stop() { nodes_->Stop(); }

void NodeRouteSync::Sync() {
  std::vector<NodeRoute> want = DesiredNodeRoutes(self_, nodes_->List());
  std::lock_guard<std::mutex> lock(mu_);
  if (want == applied_) return;  // heartbeats change nodes, rarely their routes
  Status st = routes_->Sync(want);
  if (!st.ok()) {
    LOG_WARNING << "routes to other nodes' pods: " << st.ToString();
    applied_.clear();  // try again on the next change
    return;
  }
  LOG_INFO << "routes to other nodes' pods: " << want.size() << " node(s)";
  applied_ = std::move(want);
}

}  // namespace fulcrum::agent
