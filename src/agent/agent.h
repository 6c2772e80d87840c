// The node agent (`fulcrum agent`): registers its Node, heartbeats a Lease, and runs the pods
// bound to it with the runc runtime, CNI networks, CRI logs and probes, reporting their status
// back to the API server. Behaviour: docs/agent.md.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "agent/oci_spec.h"
#include "agent/qos_manager.h"
#include "agent/pod_server.h"
#include "base/clock.h"
#include "base/json.h"
#include "base/status.h"

namespace fulcrum::client {
class ApiClient;
}  // namespace fulcrum::client

namespace fulcrum::agent {

class ContainerRuntime;
class ImageStore;
class LogCapture;
class PodNetwork;
class Prober;
class StatsCollector;

struct AgentOptions {
  std::string kubeconfig;
  std::string node_name;
  std::string root = "/var/lib/fulcrum/agent";  // images, containers, networks, logs, pod state
  std::string pod_cidr = "10.244.0.0/24";
  std::string cluster_dns;                      // resolv.conf nameserver; empty: none
  std::string cluster_domain = "cluster.local";
  std::string node_ip;                          // empty: the first non-loopback IPv4 address
  std::string runc = "/usr/sbin/runc";
  std::string cni_plugin_dir = "/usr/lib/cni";
  std::string bridge = "fulcrum0";
  int workers = 8;                              // pods synced at once
  std::chrono::milliseconds resync{1000};       // every pod is looked at this often
  std::chrono::seconds heartbeat{10};           // Lease renewal and node status
  std::string metrics_listen;                   // HOST:PORT for /metrics and /healthz; empty: off
  QosOptions qos;                               // the batch QoS loop (--qos-* flags)
  std::string server_listen = "0.0.0.0:0";      // HOST:PORT of the pod server (logs, exec); empty: off
  int kubelet_port = 0;  // the pod server's bound port, published as daemonEndpoints.kubeletEndpoint
  std::string insecure_registries;              // HOST[:PORT],... pulled from over plain HTTP
  std::string cluster_cidr;                     // all nodes' pod CIDRs: host-gw routes (node_routes.h)
  // The cgroup the containers are made under (cgroupsPath PARENT/<container id>), like the
  // kubelet's kubepods; empty: wherever runc puts them (a cgroup of their own at the root).
  std::string pods_cgroup = "/kubepods";
  std::chrono::seconds usage_report{15};        // NodeMetric usage reports (usage_reporter.h); 0: off
};

// Kubernetes' container restart back-off: 10 s doubling to 5 min, reset after 10 min of running.
inline constexpr int kBackoffInitialSeconds = 10;
inline constexpr int kBackoffMaxSeconds = 300;

// The runtime container ID of a pod's container: "c" + 24 hex digits of a digest of the pod uid
// and the container name, plus "-N" for the Nth fresh container when reuse is off (N > 0).
std::string ContainerIdFor(const std::string& pod_uid, const std::string& container_name,
                           int fresh_serial = 0);

// Whether the pod wants its exited containers restarted in place (the default) or fresh ones
// (annotation fulcrum.dev/container-reuse: "false").
bool ContainerReuse(const base::Json& pod);

// Resolves `valueFrom` sources from the API (configMapKeyRef, secretKeyRef); tests give a map.
class EnvSource {
 public:
  virtual ~EnvSource() = default;
  // The value of `key` in the ConfigMap (secret=false) or Secret (decoded) `name` of `ns`.
  virtual base::Result<std::string> Lookup(bool secret, const std::string& ns,
                                           const std::string& name, const std::string& key) = 0;
};

// What the OCI spec builder needs from one container of a pod: command, args, env (value,
// fieldRef, resourceFieldRef is not supported, configMapKeyRef/secretKeyRef through `env`),
// workingDir, securityContext (pod and container), resources, volume mounts (`volume_dirs`:
// volume name → directory on the node), the pod's files, netns and hostname. Invalid naming the
// field when something cannot be honoured.
base::Result<ContainerSpecInput> ContainerInputFromPod(
    const base::Json& pod, const base::Json& container, const std::string& field_path,
    const std::vector<std::pair<std::string, std::string>>& volume_dirs, const std::string& pod_ip,
    const std::string& host_ip, EnvSource* env);

// The Node object the agent registers: labels, podCIDR, capacity and allocatable (cpu, memory,
// pods, ephemeral-storage), addresses, conditions and nodeInfo.
struct NodeFacts {
  int64_t cpus = 1;
  int64_t memory_bytes = 0;
  int64_t ephemeral_storage_bytes = 0;
  int64_t pods = 110;
  std::string node_ip, hostname, kernel_version, os_image, runc_version;
  bool memory_pressure = false, disk_pressure = false, pid_pressure = false;
};
NodeFacts ReadNodeFacts(const AgentOptions& options);
base::Json NodeObject(const AgentOptions& options, const NodeFacts& facts, base::WallTime now);

class EnvSource;

// What the agent works with; all borrowed, and must outlive it. `stats` may be null; `env` null
// reads configMaps and secrets through `api`.
struct AgentDeps {
  client::ApiClient* api = nullptr;
  ImageStore* images = nullptr;
  ContainerRuntime* runtime = nullptr;
  PodNetwork* network = nullptr;
  LogCapture* logs = nullptr;
  Prober* prober = nullptr;
  StatsCollector* stats = nullptr;
  base::Clock* clock = nullptr;
  EnvSource* env = nullptr;
};

// The node agent. Thread-safe; pods are synced by a work queue, one sync per pod at a time.
class NodeAgent {
 public:
  NodeAgent(AgentOptions options, AgentDeps deps);
  ~NodeAgent();  // stops; containers keep running, for the next agent to adopt
  NodeAgent(const NodeAgent&) = delete;
  NodeAgent& operator=(const NodeAgent&) = delete;

  // Loads the state an earlier agent left under ROOT/pods, registers the Node and its Lease.
  base::Status Init();
  // Starts the pod informer (waiting up to 30 s for its first list), the workers and the
  // housekeeping loop (resync, stats, heartbeats).
  void Start();
  void Stop();

  // For tests that drive syncs by hand: the informer alone, and one sync of a pod ("ns/name").
  base::Status StartInformer();
  void SyncPod(const std::string& key);
  // The pod as the informer has it (null if it has none); for tests waiting on the cache.
  std::shared_ptr<const base::Json> CachedPod(const std::string& key) const;
  // Lease renewal and node status, as the housekeeping loop does every `heartbeat`.
  base::Status Heartbeat();
  // Waits until the events recorded so far have been sent (they go out asynchronously).
  void FlushEvents();
  // Evicts a running pod as the batch QoS loop does: status Failed/Evicted with `message`,
  // DisruptionTarget, event Evicted, containers stopped gracefully and not restarted. NotFound
  // when the agent runs no pod `key` ("ns/name") with that uid.
  base::Status EvictPod(const std::string& key, const std::string& uid, const std::string& message);
  // The batch QoS loop's Prometheus text (empty without stats or with --qos off).
  std::string QosMetricsText() const;
  // A container of a pod on this node and its log, for the pod server: ContainerDirectory::Find.
  base::Result<ContainerTarget> FindContainer(const std::string& ns, const std::string& pod,
                                              const std::string& container, bool previous);
  // The network namespace of a pod on this node, for port forwarding: ContainerDirectory.
  base::Result<std::string> PodNetworkNamespace(const std::string& ns, const std::string& pod);

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

// Runs the agent until SIGINT or SIGTERM. Returns the process exit code.
int RunAgent(const AgentOptions& options);
// `fulcrum agent --kubeconfig FILE --node-name NAME --root DIR [--pod-cidr CIDR]
// [--cluster-dns IP] [--node-ip IP] [--bridge NAME] [--metrics-listen HOST:PORT]
// [--usage-report-interval SECONDS] [-v]`.
int RunAgentCommand(int argc, char** argv);

}  // namespace fulcrum::agent
