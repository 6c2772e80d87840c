// Pod networking: a network namespace per pod, configured by CNI plugins (CNI specification
// 1.0.0: plugins run with CNI_* environment variables and their configuration on stdin, and
// answer with a result or an error as JSON on stdout). Layout and behaviour: docs/agent.md.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "agent/runc_runtime.h"
#include "base/json.h"
#include "base/status.h"

namespace fulcrum::agent {

// A CNI result (spec 1.0.0 "Success"), checked: every interface has a name, every address is a
// valid CIDR, every gateway and route a valid IP or CIDR, every interface index in range.
struct CniInterface {
  std::string name, mac, sandbox;
};
struct CniIpConfig {
  std::string address;  // CIDR, "10.244.0.5/24"
  std::string gateway;  // may be empty
  int interface = -1;   // index into interfaces, -1 when absent
};
struct CniRoute {
  std::string dst, gw;
};
struct CniResult {
  std::string cni_version;
  std::vector<CniInterface> interfaces;
  std::vector<CniIpConfig> ips;
  std::vector<CniRoute> routes;
  std::vector<std::string> dns_nameservers;
  base::Json raw;  // the result as the plugin wrote it (prevResult for the next plugin and DEL)
};

// Parses a plugin's stdout on success. Untrusted input: BadRequest naming the field at fault.
base::Result<CniResult> ParseCniResult(const std::string& text);
// A plugin's failure (spec "Error": code, msg, details) as one message; `text` may be anything.
std::string CniErrorMessage(const std::string& text, int exit_code);

// The address part of a CIDR ("10.244.0.5/24" → "10.244.0.5"); empty when malformed.
std::string AddressOfCidr(const std::string& cidr);

// Network namespaces kept as bind mounts of a namespace file, so they outlive every process in
// them. Tests substitute fakes.
class NetworkNamespaces {
 public:
  virtual ~NetworkNamespaces() = default;
  // Creates a new network namespace bound at `path` (created, with its parent directory), with
  // its loopback interface up — what the CNI loopback plugin would do, without a process (as
  // containerd's internal loopback). AlreadyExists if one is bound there already; Internal,
  // naming errno, on failure.
  virtual base::Status Create(const std::string& path) = 0;
  // Unmounts and removes `path`. OK if there is nothing there.
  virtual base::Status Remove(const std::string& path) = 0;
  virtual bool Exists(const std::string& path) = 0;
};
std::unique_ptr<NetworkNamespaces> NewSystemNetworkNamespaces();

struct HostPortMapping {
  int container_port = 0;
  int host_port = 0;
  std::string protocol = "tcp";  // "tcp" or "udp"
  std::string host_ip;           // empty: every address
};

// What a pod's network needs from the pod.
struct PodNetworkRequest {
  std::string uid;        // [A-Za-z0-9_.-], as container IDs; the CNI container ID
  std::string pod_namespace, pod_name;
  std::string hostname;   // for /etc/hosts; empty: the pod name
  std::string subdomain;  // spec.subdomain: adds hostname.subdomain.ns.svc.DOMAIN to /etc/hosts
  std::vector<HostPortMapping> host_ports;
};

struct PodNetworkStatus {
  std::string netns_path;        // bind-mounted network namespace (OciSpec network path)
  std::string ip;                // the pod IP on eth0
  std::string gateway;
  std::string etc_hosts_path;    // the pod's /etc/hosts and /etc/resolv.conf, to bind mount
  std::string resolv_conf_path;
};

// Thread-compatible: calls for different pods may run concurrently; calls for one pod must not.
class PodNetwork {
 public:
  virtual ~PodNetwork() = default;
  // Creates the pod's namespace and network, or returns what exists (idempotent). On failure
  // nothing is left: namespace, interfaces, addresses and rules are removed again. Invalid for a
  // bad request; Internal with the plugin's message when a plugin fails.
  virtual base::Result<PodNetworkStatus> Setup(const PodNetworkRequest& request) = 0;
  // The network of a pod set up before (also by an earlier agent process); NotFound if none.
  virtual base::Result<PodNetworkStatus> Get(const std::string& uid) = 0;
  // Removes everything Setup made for the pod (CNI DEL in reverse order, the namespace, the
  // pod's files). OK if there is nothing. Internal when a plugin's DEL fails: then the namespace
  // and the record of the ADD are kept, so that a later call tries again with them.
  virtual base::Status Teardown(const std::string& uid) = 0;
};

struct CniOptions {
  std::string root;                      // agent root: ROOT/run/netns, ROOT/network
  std::string plugin_dir = "/usr/lib/cni";
  std::string network_name = "fulcrum";  // also names the host-local IPAM state
  std::string bridge = "fulcrum0";
  std::string pod_cidr;                  // required: host-local range, the bridge is its gateway
  int mtu = 0;                           // 0: the bridge plugin's default
  bool ip_masq = true;                   // SNAT for traffic leaving the pod CIDR
  std::vector<std::string> dns_servers;  // /etc/resolv.conf nameservers (the cluster DNS)
  std::vector<std::string> dns_searches; // extra search domains after the cluster ones
  std::string cluster_domain = "cluster.local";
  std::chrono::milliseconds timeout{30000};  // for each plugin invocation
};

// The plugin configuration list (spec "Network configuration list") the pods' networks use:
// bridge (host-local IPAM, isGateway, ipMasq), then portmap with the portMappings capability.
base::Json CniNetworkList(const CniOptions& options);

// The pod's /etc/hosts, as the kubelet writes it.
std::string PodHostsFile(const PodNetworkRequest& request, const std::string& ip,
                         const std::string& cluster_domain);
// The pod's /etc/resolv.conf for dnsPolicy ClusterFirst (search ns.svc.DOMAIN svc.DOMAIN DOMAIN,
// ndots 5).
std::string PodResolvConf(const std::string& pod_namespace, const CniOptions& options);

// PodNetwork through CNI plugins run by `runner`; namespaces made by `namespaces`. Both owned.
base::Result<std::unique_ptr<PodNetwork>> OpenCniNetwork(
    CniOptions options, std::unique_ptr<NetworkNamespaces> namespaces = NewSystemNetworkNamespaces(),
    std::unique_ptr<ProcessRunner> runner = NewSystemProcessRunner());

}  // namespace fulcrum::agent
