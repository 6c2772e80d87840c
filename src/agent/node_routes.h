// Pod traffic between nodes, as flannel's host-gw backend carries it: each node routes every other
// node's pod CIDR to that node's InternalIP (the nodes share a link), and pod traffic leaves the
// cluster CIDR masqueraded, never inside it (pods see each other's real IPs). docs/agent.md.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "agent/runc_runtime.h"
#include "base/json.h"
#include "base/status.h"

namespace fulcrum::client {
class ApiClient;
class Informer;
}  // namespace fulcrum::client

namespace fulcrum::agent {

struct NodeRoute {
  std::string cidr;  // another node's spec.podCIDR
  std::string via;   // its InternalIP
  bool operator==(const NodeRoute&) const = default;
  bool operator<(const NodeRoute& o) const { return cidr < o.cidr || (cidr == o.cidr && via < o.via); }
};

// The routes this node (`self`) needs to reach the pods of `nodes`: one per other node with an
// IPv4 spec.podCIDR and an InternalIP, sorted by CIDR. Nodes lacking either are skipped.
std::vector<NodeRoute> DesiredNodeRoutes(const std::string& self,
                                         const std::vector<std::shared_ptr<const base::Json>>& nodes);

// The host's routes through iproute2 (`ip route … proto 211`, the protocol number marking the
// routes the agent owns) and the masquerade rule through iptables.
class HostRoutes {
 public:
  static constexpr int kProtocol = 211;
  HostRoutes(ProcessRunner* runner, std::string ip = "/usr/sbin/ip",
             std::string iptables = "/usr/sbin/iptables")
      : runner_(runner), ip_(std::move(ip)), iptables_(std::move(iptables)) {}

  // Makes the agent's routes exactly `want`: replaces what differs, deletes what is no longer
  // wanted. Routes of other owners are never touched. Errors name the route and ip's message;
  // the remaining routes are still applied.
  base::Status Sync(const std::vector<NodeRoute>& want);
  // The routes the agent owns now.
  base::Result<std::vector<NodeRoute>> List();
  // `-t nat POSTROUTING -s POD_CIDR ! -d CLUSTER_CIDR -j MASQUERADE`, added once.
  base::Status EnsureMasquerade(const std::string& pod_cidr, const std::string& cluster_cidr);

 private:
  base::Result<ProcessResult> Run(std::vector<std::string> argv);

  ProcessRunner* runner_;
  const std::string ip_, iptables_;
};

// Keeps the host's routes to the other nodes' pods current from a watch on Nodes: a node that
// joins, changes its InternalIP or leaves changes the routes at once.
class NodeRouteSync {
 public:
  NodeRouteSync(client::ApiClient* api, std::string self, HostRoutes* routes);
  ~NodeRouteSync();
  void Start();
  void Stop();

 private:
  void Sync();

  const std::string self_;
  HostRoutes* const routes_;
  std::unique_ptr<client::Informer> nodes_;
  std::mutex mu_;
  std::vector<NodeRoute> applied_;  // guarded by mu_; what the last successful Sync made
};

}  // namespace fulcrum::agent
