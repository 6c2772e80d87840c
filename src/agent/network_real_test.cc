// Pod networks with the real CNI plugins (/usr/lib/cni): needs root, skips otherwise. Each test
// uses its own bridge and pod CIDR and removes the bridge at the end.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <thread>

#include "agent/network.h"
#include "base/file.h"

namespace fulcrum::agent {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

const char kPlugins[] = "/usr/lib/cni";
const char kBusybox[] = "/bin/busybox";

// Runs a shell command: its exit code and stdout+stderr.
std::pair<int, std::string> Sh(const std::string& cmd) {
  std::string out;
  FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  if (p == nullptr) return {-1, ""};
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  int rc = ::pclose(p);
  return {WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, out};
}

class NetworkRealTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (creates namespaces and a bridge)";
    if (!fs::exists(std::string(kPlugins) + "/bridge") || !fs::exists(kBusybox)) {
      GTEST_SKIP() << "CNI plugins or busybox missing (scripts/install-deps.sh)";
    }
    std::string tmpl = (fs::temp_directory_path() / "network_real_test.XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    root_ = tmpl;
    int n = ::getpid() % 200;
    bridge_ = "fnt" + std::to_string(::getpid());
    cidr_ = "10.252." + std::to_string(n) + ".0/24";
    gateway_ = "10.252." + std::to_string(n) + ".1";
  }

  void TearDown() override {
    if (root_.empty()) return;
    for (pid_t pid : children_) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
    if (net_) {
      for (const auto& uid : {"pod-a", "pod-b", "pod-c"}) (void)net_->Teardown(uid);
    }
    Sh("ip link del " + bridge_);
    Sh("for f in " + root_ + "/run/netns/*; do umount -l $f; done");
    std::error_code ec;
    fs::remove_all(root_, ec);
  }

  CniOptions Options() {
    CniOptions o;
    o.root = root_;
    o.network_name = "fnt" + std::to_string(::getpid());
    o.bridge = bridge_;
    o.pod_cidr = cidr_;
    o.dns_servers = {"10.96.0.10"};
    o.timeout = 20s;
    return o;
  }

  void Open(CniOptions o) {
    auto net = OpenCniNetwork(o);
    ASSERT_TRUE(net.ok()) << net.status().ToString();
    net_ = std::move(*net);
  }

  PodNetworkRequest Pod(const std::string& uid) {
    PodNetworkRequest r;
    r.uid = uid;
    r.pod_namespace = "default";
    r.pod_name = uid;
    return r;
  }

  std::string InPod(const PodNetworkStatus& pod, const std::string& cmd) {
    return "nsenter --net=" + pod.netns_path + " " + kBusybox + " " + cmd;
  }

  // What the host still has of a pod: veths on our bridge, iptables rules naming it, IPAM files.
  void ExpectNothingLeft(const std::vector<std::string>& uids) {
    EXPECT_EQ(Sh("ip -o link show master " + bridge_).second, "");
    auto [rc, rules] = Sh("iptables-save");
    for (const auto& uid : uids) {
      EXPECT_EQ(rules.find(uid), std::string::npos) << "iptables rules still name " << uid;
      EXPECT_FALSE(fs::exists(root_ + "/run/netns/" + uid));
      EXPECT_FALSE(fs::exists(root_ + "/network/pods/" + uid));
    }
    std::error_code ec;
    for (const auto& e : fs::recursive_directory_iterator(root_ + "/network/ipam", ec)) {
      std::string name = e.path().filename().string();
      EXPECT_TRUE(name == "lock" || name.rfind("last_reserved_ip", 0) == 0 || e.is_directory())
          << "IPAM allocation left: " << e.path();
    }
  }

  std::string root_, bridge_, cidr_, gateway_;
  std::unique_ptr<PodNetwork> net_;
  std::vector<pid_t> children_;
};

TEST_F(NetworkRealTest, TwoPodsReachEachOtherAndTheHost) {
  Open(Options());
  auto a = net_->Setup(Pod("pod-a"));
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  auto b = net_->Setup(Pod("pod-b"));
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  EXPECT_NE(a->ip, b->ip);
  EXPECT_EQ(a->gateway, gateway_);
  EXPECT_EQ(a->ip.rfind(cidr_.substr(0, cidr_.size() - 4), 0), 0u) << a->ip;
  EXPECT_EQ(a->netns_path, root_ + "/run/netns/pod-a");
  EXPECT_NE(Sh(InPod(*a, "ip -o addr show eth0")).second.find(a->ip + "/24"), std::string::npos);

  auto ping = [&](const PodNetworkStatus& from, const std::string& to) {
    return Sh(InPod(from, "ping -c 1 -W 2 " + to));
  };
  auto r = ping(*a, b->ip);
  EXPECT_EQ(r.first, 0) << r.second;
  r = ping(*b, a->ip);
  EXPECT_EQ(r.first, 0) << r.second;
  r = ping(*a, gateway_);  // the node, on the bridge
  EXPECT_EQ(r.first, 0) << r.second;
  r = ping(*a, "127.0.0.1");  // loopback is up
  EXPECT_EQ(r.first, 0) << r.second;
  r = Sh(std::string(kBusybox) + " ping -c 1 -W 2 " + b->ip);  // from the node
  EXPECT_EQ(r.first, 0) << r.second;

  std::string hosts = *base::ReadFile(a->etc_hosts_path);
  EXPECT_NE(hosts.find(a->ip + "\tpod-a\n"), std::string::npos) << hosts;
  EXPECT_EQ(*base::ReadFile(a->resolv_conf_path),
            "search default.svc.cluster.local svc.cluster.local cluster.local\n"
            "nameserver 10.96.0.10\noptions ndots:5\n");

  // Idempotent, also for a new agent process (a new PodNetwork on the same root).
  Open(Options());
  auto again = net_->Setup(Pod("pod-a"));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->ip, a->ip);

  ASSERT_TRUE(net_->Teardown("pod-a").ok());
  ASSERT_TRUE(net_->Teardown("pod-b").ok());
  ASSERT_TRUE(net_->Teardown("pod-b").ok());
  ExpectNothingLeft({"pod-a", "pod-b"});
}

TEST_F(NetworkRealTest, HostPortReachesThePod) {
  Open(Options());
  PodNetworkRequest r = Pod("pod-c");
  int host_port = 20000 + ::getpid() % 10000;
  r.host_ports = {{80, host_port, "tcp", ""}};
  auto c = net_->Setup(r);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  ASSERT_TRUE(base::MakeDirs(root_ + "/www").ok());
  ASSERT_TRUE(base::WriteFileAtomic(root_ + "/www/index.html", "hello from pod-c\n").ok());
  pid_t pid = ::fork();
  if (pid == 0) {
    std::string www = root_ + "/www";
    ::execl("/usr/bin/nsenter", "nsenter", ("--net=" + c->netns_path).c_str(), kBusybox, "httpd",
            "-f", "-p", "80", "-h", www.c_str(), nullptr);
    ::_exit(127);
  }
  ASSERT_GT(pid, 0);
  children_.push_back(pid);
  std::string url = "http://" + c->ip + "/index.html";
  std::pair<int, std::string> got;
  for (int i = 0; i < 50; ++i) {  // until httpd listens
    got = Sh("curl -sS -m 2 " + url);
    if (got.first == 0) break;
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_EQ(got.second, "hello from pod-c\n");
  // Through the hostPort on the node's bridge address (DNAT of locally generated traffic).
  got = Sh("curl -sS -m 2 http://" + gateway_ + ":" +
           std::to_string(host_port) + "/index.html");
  EXPECT_EQ(got.second, "hello from pod-c\n");
  EXPECT_NE(Sh("iptables-save -t nat").second.find("pod-c"), std::string::npos);

  ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
  children_.clear();
  ASSERT_TRUE(net_->Teardown("pod-c").ok());
  ExpectNothingLeft({"pod-c"});
}

TEST_F(NetworkRealTest, FailedPluginLeavesNothing) {
  // A plugin directory whose portmap fails as the spec says a plugin fails.
  std::string plugins = root_ + "/plugins";
  ASSERT_TRUE(base::MakeDirs(plugins).ok());
  fs::create_symlink(std::string(kPlugins) + "/bridge", plugins + "/bridge");
  fs::create_symlink(std::string(kPlugins) + "/loopback", plugins + "/loopback");
  fs::create_symlink(std::string(kPlugins) + "/host-local", plugins + "/host-local");
  ASSERT_TRUE(base::WriteFileAtomic(
                  plugins + "/portmap",
                  "#!/bin/sh\n[ \"$CNI_COMMAND\" = DEL ] && exit 0\n"
                  "echo '{\"cniVersion\":\"1.0.0\",\"code\":999,\"msg\":\"portmap refused\"}'\n"
                  "exit 1\n",
                  0755)
                  .ok());
  CniOptions o = Options();
  o.plugin_dir = plugins;
  Open(o);
  PodNetworkRequest r = Pod("pod-a");
  r.host_ports = {{80, 20000 + ::getpid() % 10000, "tcp", ""}};  // portmap runs only for these
  auto a = net_->Setup(r);
  ASSERT_FALSE(a.ok());
  EXPECT_EQ(a.status().message(),
            "CNI plugin portmap ADD failed: portmap refused [CNI error code 999]");
  ExpectNothingLeft({"pod-a"});
}

}  // namespace
}  // namespace fulcrum::agent
