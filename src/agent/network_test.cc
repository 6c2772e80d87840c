// The CNI pod network against fake plugins and fake namespaces: no root, no interfaces.
#include "agent/network.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <map>
#include <set>

#include "base/file.h"

namespace fulcrum::agent {
namespace {

namespace fs = std::filesystem;
using base::Json;
using base::Status;

struct FakeNamespaces : NetworkNamespaces {
  Status Create(const std::string& path) override {
    if (fail) return base::Internal("unshare(CLONE_NEWNET): Operation not permitted");
    if (!made.insert(path).second) return base::AlreadyExists(path);
    return Status::Ok();
  }
  Status Remove(const std::string& path) override {
    made.erase(path);
    return Status::Ok();
  }
  bool Exists(const std::string& path) override { return made.count(path) > 0; }
  bool fail = false;
  std::set<std::string> made;
};

struct Call {
  std::string plugin;
  std::map<std::string, std::string> env;
  Json config;
};

// Plays the loopback, bridge and portmap plugins.
struct FakePlugins : ProcessRunner {
  base::Result<ProcessResult> Run(const ProcessSpec& spec) override {
    Call call;
    call.plugin = fs::path(spec.argv.at(0)).filename().string();
    for (const auto& e : spec.env) {
      auto eq = e.find('=');
      call.env[e.substr(0, eq)] = e.substr(eq + 1);
    }
    EXPECT_TRUE(base::ParseJson(spec.input, &call.config).ok()) << spec.input;
    calls.push_back(call);
    ProcessResult r;
    const std::string& cmd = call.env["CNI_COMMAND"];
    if (fail.count(call.plugin + " " + cmd)) {
      r.exit_code = 1;
      r.out = R"({"cniVersion":"1.0.0","code":11,"msg":"failed to set up )" + call.plugin +
              R"(","details":"injected"})";
      return r;
    }
    if (cmd == "DEL") return r;
    if (call.plugin == "loopback") {
      r.out = R"({"cniVersion":"1.0.0","interfaces":[{"name":"lo","sandbox":")" +
              call.env["CNI_NETNS"] + R"("}],"ips":[{"address":"127.0.0.1/8","interface":0}]})";
    } else if (call.plugin == "bridge") {
      r.out = bad_bridge_result.empty()
                  ? R"({"cniVersion":"1.0.0","interfaces":[{"name":"fulcrum0","mac":"aa:bb:cc:dd:ee:01"},)"
                    R"({"name":"veth1","mac":"aa:bb:cc:dd:ee:02"},{"name":"eth0","mac":"aa:bb:cc:dd:ee:03","sandbox":")" +
                        call.env["CNI_NETNS"] +
                        R"("}],"ips":[{"address":"10.244.0.7/24","gateway":"10.244.0.1","interface":2}],)"
                        R"("routes":[{"dst":"0.0.0.0/0"}],"dns":{}})"
                  : bad_bridge_result;
    } else {
      r.out = base::DumpJson(call.config["prevResult"]);
    }
    return r;
  }
  Status BecomeSubreaper() override { return Status::Ok(); }
  std::optional<int> TryReap(int) override { return std::nullopt; }
  std::optional<uint64_t> LiveStartTime(int) override { return std::nullopt; }

  std::vector<std::string> Summary() const {
    std::vector<std::string> out;
    for (const auto& c : calls) {
      out.push_back(c.plugin + " " + c.env.at("CNI_COMMAND") + " " + c.env.at("CNI_IFNAME"));
    }
    return out;
  }

  std::vector<Call> calls;
  std::set<std::string> fail;  // "bridge ADD"
  std::string bad_bridge_result;
};

class CniNetworkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "network_test.XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    root_ = tmpl;
    auto ns = std::make_unique<FakeNamespaces>();
    auto plugins = std::make_unique<FakePlugins>();
    ns_ = ns.get();
    plugins_ = plugins.get();
    CniOptions options;
    options.root = root_;
    options.pod_cidr = "10.244.0.0/24";
    options.dns_servers = {"10.96.0.10"};
    auto net = OpenCniNetwork(options, std::move(ns), std::move(plugins));
    ASSERT_TRUE(net.ok()) << net.status().ToString();
    net_ = std::move(*net);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(root_, ec);
  }

  PodNetworkRequest Request() {
    PodNetworkRequest r;
    r.uid = "0b9a-uid";
    r.pod_namespace = "default";
    r.pod_name = "web";
    return r;
  }

  std::string root_;
  FakeNamespaces* ns_ = nullptr;
  FakePlugins* plugins_ = nullptr;
  std::unique_ptr<PodNetwork> net_;
};

TEST(CniResultTest, ParsesAndValidates) {
  auto r = ParseCniResult(
      R"({"cniVersion":"1.0.0","interfaces":[{"name":"eth0","sandbox":"/ns"}],)"
      R"("ips":[{"address":"10.1.0.2/16","gateway":"10.1.0.1","interface":0},{"address":"fd00::2/64"}],)"
      R"("routes":[{"dst":"0.0.0.0/0","gw":"10.1.0.1"}],"dns":{"nameservers":["10.96.0.10"]}})");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->cni_version, "1.0.0");
  ASSERT_EQ(r->ips.size(), 2u);
  EXPECT_EQ(r->ips[0].interface, 0);
  EXPECT_EQ(r->ips[1].interface, -1);
  EXPECT_EQ(AddressOfCidr(r->ips[1].address), "fd00::2");
  EXPECT_EQ(r->routes[0].gw, "10.1.0.1");
  EXPECT_EQ(r->dns_nameservers, std::vector<std::string>{"10.96.0.10"});

  auto bad = [](const std::string& text) {
    auto r = ParseCniResult(text);
    EXPECT_FALSE(r.ok()) << text;
    return r.ok() ? "" : r.status().message();
  };
  EXPECT_EQ(bad(R"({"ips":[]})"), "CNI result has no cniVersion");
  EXPECT_EQ(bad(R"({"cniVersion":"1.0.0","interfaces":[{"mac":"x"}]})"),
            "result.interfaces[0].name is missing");
  EXPECT_EQ(bad(R"({"cniVersion":"1.0.0","ips":[{"address":"10.1.0.300/24"}]})"),
            "result.ips[0].address \"10.1.0.300/24\" is not a CIDR");
  EXPECT_EQ(bad(R"({"cniVersion":"1.0.0","ips":[{"address":"10.1.0.3/33"}]})"),
            "result.ips[0].address \"10.1.0.3/33\" is not a CIDR");
  EXPECT_EQ(bad(R"({"cniVersion":"1.0.0","ips":[{"address":"10.1.0.3/24","interface":1}]})"),
            "result.ips[0].interface 1 is out of range (0 interfaces)");
  EXPECT_EQ(bad(R"({"cniVersion":"1.0.0","ips":[{"address":"10.1.0.3/24","gateway":"x"}]})"),
            "result.ips[0].gateway \"x\" is not an IP address");
  EXPECT_EQ(bad(R"({"cniVersion":"1.0.0","routes":[{"dst":"default"}]})"),
            "result.routes[0].dst \"default\" is not a CIDR");
  EXPECT_EQ(bad(R"({"cniVersion":"1.0.0","ips":{}})"), "result.ips is not an array");
  EXPECT_EQ(bad(R"({"cniVersion":"1.0.0","dns":{"nameservers":[1]}})"),
            "result.dns.nameservers holds a value that is not an IP address");
  EXPECT_EQ(bad("[1]"), "CNI result is not an object");
}

TEST(CniResultTest, ErrorMessages) {
  EXPECT_EQ(CniErrorMessage(R"({"cniVersion":"1.0.0","code":7,"msg":"no IPs","details":"range full"})", 1),
            "no IPs (range full) [CNI error code 7]");
  EXPECT_EQ(CniErrorMessage("panic: oops\n", 2), "exit status 2: panic: oops");
  EXPECT_EQ(CniErrorMessage("", 1), "exit status 1");
}

TEST(CniNetworkListTest, BridgeWithHostLocalThenPortmap) {
  CniOptions o;
  o.root = "/var/lib/fulcrum/agent";
  o.pod_cidr = "10.244.1.0/24";
  o.mtu = 1400;
  Json list = CniNetworkList(o);
  EXPECT_EQ(list["cniVersion"], "1.0.0");
  EXPECT_EQ(list["name"], "fulcrum");
  ASSERT_EQ(list["plugins"].size(), 2u);
  const Json& bridge = list["plugins"][0];
  EXPECT_EQ(bridge["type"], "bridge");
  EXPECT_EQ(bridge["bridge"], "fulcrum0");
  EXPECT_EQ(bridge["isGateway"], true);
  EXPECT_EQ(bridge["ipMasq"], true);
  EXPECT_EQ(bridge["mtu"], 1400);
  EXPECT_EQ(bridge["ipam"]["type"], "host-local");
  EXPECT_EQ(bridge["ipam"]["ranges"][0][0]["subnet"], "10.244.1.0/24");
  EXPECT_EQ(bridge["ipam"]["dataDir"], "/var/lib/fulcrum/agent/network/ipam");
  EXPECT_EQ(list["plugins"][1]["type"], "portmap");
  EXPECT_EQ(list["plugins"][1]["capabilities"]["portMappings"], true);
}

TEST(PodFilesTest, HostsAndResolvConf) {
  PodNetworkRequest r;
  r.pod_namespace = "shop";
  r.pod_name = "web-0";
  EXPECT_EQ(PodHostsFile(r, "10.244.0.7", "cluster.local"),
            "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n"
            "::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\n"
            "fe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n"
            "10.244.0.7\tweb-0\n");
  r.hostname = "db";
  r.subdomain = "backend";
  std::string hosts = PodHostsFile(r, "10.244.0.7", "cluster.local");
  EXPECT_EQ(hosts.substr(hosts.rfind("10.244")),
            "10.244.0.7\tdb.backend.shop.svc.cluster.local\tdb\n");
  CniOptions o;
  o.dns_servers = {"10.96.0.10"};
  o.dns_searches = {"corp.example"};
  EXPECT_EQ(PodResolvConf("shop", o),
            "search shop.svc.cluster.local svc.cluster.local cluster.local corp.example\n"
            "nameserver 10.96.0.10\noptions ndots:5\n");
}

TEST_F(CniNetworkTest, SetupCallsPluginsAsTheSpecSays) {
  PodNetworkRequest r = Request();
  r.host_ports = {{80, 8080, "tcp", ""}};
  auto status = net_->Setup(r);
  ASSERT_TRUE(status.ok()) << status.status().ToString();
  EXPECT_EQ(status->ip, "10.244.0.7");
  EXPECT_EQ(status->gateway, "10.244.0.1");
  EXPECT_EQ(status->netns_path, root_ + "/run/netns/0b9a-uid");
  EXPECT_TRUE(ns_->Exists(status->netns_path));
  EXPECT_EQ(plugins_->Summary(), (std::vector<std::string>{"bridge ADD eth0", "portmap ADD eth0"}));
  const Call& bridge = plugins_->calls[0];
  EXPECT_EQ(bridge.env.at("CNI_CONTAINERID"), "0b9a-uid");
  EXPECT_EQ(bridge.env.at("CNI_NETNS"), status->netns_path);
  EXPECT_EQ(bridge.env.at("CNI_PATH"), "/usr/lib/cni");
  EXPECT_EQ(bridge.env.at("GOMAXPROCS"), "1");
  EXPECT_EQ(bridge.env.at("CNI_ARGS"),
            "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web;"
            "K8S_POD_INFRA_CONTAINER_ID=0b9a-uid;K8S_POD_UID=0b9a-uid");
  EXPECT_EQ(bridge.config["name"], "fulcrum");
  EXPECT_EQ(bridge.config["cniVersion"], "1.0.0");
  EXPECT_FALSE(bridge.config.contains("prevResult"));
  EXPECT_FALSE(bridge.config.contains("runtimeConfig"));
  const Call& portmap = plugins_->calls[1];
  EXPECT_EQ(portmap.config["prevResult"]["ips"][0]["address"], "10.244.0.7/24");
  EXPECT_EQ(portmap.config["runtimeConfig"]["portMappings"],
            Json::parse(R"([{"hostPort":8080,"containerPort":80,"protocol":"tcp"}])"));
  EXPECT_FALSE(portmap.config.contains("capabilities"));
  EXPECT_EQ(*base::ReadFile(status->resolv_conf_path),
            "search default.svc.cluster.local svc.cluster.local cluster.local\n"
            "nameserver 10.96.0.10\noptions ndots:5\n");
  std::string hosts = *base::ReadFile(status->etc_hosts_path);
  EXPECT_EQ(hosts.substr(hosts.rfind("10.244")), "10.244.0.7\tweb\n");

  // Idempotent: the same answer, no plugin run.
  plugins_->calls.clear();
  auto again = net_->Setup(r);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->ip, "10.244.0.7");
  EXPECT_TRUE(plugins_->calls.empty());
  auto got = net_->Get(r.uid);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->netns_path, status->netns_path);
}

TEST_F(CniNetworkTest, TeardownDeletesInReverseWithTheAddResult) {
  PodNetworkRequest r = Request();
  ASSERT_TRUE(net_->Setup(r).ok());
  plugins_->calls.clear();
  ASSERT_TRUE(net_->Teardown(r.uid).ok());
  // No host ports: no portmap; lo goes with the namespace.
  EXPECT_EQ(plugins_->Summary(), (std::vector<std::string>{"bridge DEL eth0"}));
  EXPECT_EQ(plugins_->calls[0].config["prevResult"]["ips"][0]["address"], "10.244.0.7/24");
  EXPECT_TRUE(ns_->made.empty());
  EXPECT_FALSE(fs::exists(root_ + "/network/pods/" + r.uid));
  EXPECT_EQ(net_->Get(r.uid).status().code(), base::Code::kNotFound);
  plugins_->calls.clear();
  ASSERT_TRUE(net_->Teardown(r.uid).ok());
  EXPECT_TRUE(plugins_->calls.empty());
}

TEST_F(CniNetworkTest, FailedAddLeavesNothing) {
  plugins_->fail = {"portmap ADD"};
  PodNetworkRequest r = Request();
  r.host_ports = {{80, 8080, "tcp", ""}};
  auto status = net_->Setup(r);
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.status().message(),
            "CNI plugin portmap ADD failed: failed to set up portmap (injected) [CNI error code 11]");
  EXPECT_EQ(plugins_->Summary(),
            (std::vector<std::string>{"bridge ADD eth0", "portmap ADD eth0", "portmap DEL eth0",
                                      "bridge DEL eth0"}));
  EXPECT_TRUE(ns_->made.empty());
  EXPECT_FALSE(fs::exists(root_ + "/network/pods/0b9a-uid"));
}

TEST_F(CniNetworkTest, BadResultIsRefusedAndUndone) {
  plugins_->bad_bridge_result = R"({"cniVersion":"1.0.0","ips":[{"address":"10.244.0.7"}]})";
  auto status = net_->Setup(Request());
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.status().message(),
            "CNI plugin bridge ADD: bad result: result.ips[0].address \"10.244.0.7\" is not a CIDR");
  EXPECT_TRUE(ns_->made.empty());
}

TEST_F(CniNetworkTest, NamespaceFailure) {
  ns_->fail = true;
  auto status = net_->Setup(Request());
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.status().message(), "unshare(CLONE_NEWNET): Operation not permitted");
  EXPECT_FALSE(fs::exists(root_ + "/network/pods/0b9a-uid"));
}

TEST_F(CniNetworkTest, FailedDelKeepsTheRecordForTheNextTry) {
  ASSERT_TRUE(net_->Setup(Request()).ok());
  plugins_->fail = {"bridge DEL"};
  Status down = net_->Teardown("0b9a-uid");
  EXPECT_EQ(down.code(), base::Code::kInternal);
  EXPECT_EQ(ns_->made.size(), 1u);
  plugins_->fail.clear();
  plugins_->calls.clear();
  ASSERT_TRUE(net_->Teardown("0b9a-uid").ok());
  EXPECT_EQ(plugins_->calls[0].config["prevResult"]["ips"][0]["address"], "10.244.0.7/24");
  EXPECT_TRUE(ns_->made.empty());
}

TEST_F(CniNetworkTest, InterruptedSetupIsUndoneBeforeTheNextOne) {
  // A record without a result, as an earlier agent (which ran the loopback plugin) wrote it: the
  // agent stopped between writing it and the end of ADD.
  ASSERT_TRUE(base::MakeDirs(root_ + "/network/pods/0b9a-uid").ok());
  ASSERT_TRUE(base::WriteFileAtomic(root_ + "/network/pods/0b9a-uid/attachment.json",
                                    base::DumpJson(Json{{"list", CniNetworkList([&] {
                                                          CniOptions o;
                                                          o.root = root_;
                                                          o.pod_cidr = "10.244.0.0/24";
                                                          return o;
                                                        }())}}))
                  .ok());
  ASSERT_TRUE(ns_->Create(root_ + "/run/netns/0b9a-uid").ok());
  auto status = net_->Setup(Request());
  ASSERT_TRUE(status.ok()) << status.status().ToString();
  EXPECT_EQ(plugins_->Summary(),
            (std::vector<std::string>{"portmap DEL eth0", "bridge DEL eth0", "loopback DEL lo",
                                      "bridge ADD eth0"}));
}

TEST_F(CniNetworkTest, InvalidRequests) {
  PodNetworkRequest r = Request();
  r.uid = "../x";
  EXPECT_EQ(net_->Setup(r).status().code(), base::Code::kInvalid);
  r = Request();
  r.host_ports = {{80, 70000, "tcp", ""}};
  EXPECT_EQ(net_->Setup(r).status().message(), "hostPort 70000 → containerPort 80 is out of range");
  r.host_ports = {{80, 8080, "icmp", ""}};
  EXPECT_EQ(net_->Setup(r).status().message(), "unsupported hostPort protocol \"icmp\"");
  EXPECT_TRUE(plugins_->calls.empty());
  CniOptions o;
  o.root = root_;
  o.pod_cidr = "10.244.0.0";
  EXPECT_EQ(OpenCniNetwork(o).status().message(), "pod CIDR \"10.244.0.0\" is not a CIDR");
}

}  // namespace
}  // namespace fulcrum::agent
