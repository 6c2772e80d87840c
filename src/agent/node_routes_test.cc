#include "agent/node_routes.h"

#include <gtest/gtest.h>

#include <map>

namespace fulcrum::agent {
namespace {

using base::Json;

std::shared_ptr<const Json> Node(const std::string& name, const std::string& cidr,
                                 const std::string& ip) {
  Json n = {{"metadata", {{"name", name}}}, {"spec", Json::object()}, {"status", Json::object()}};
  if (!cidr.empty()) n["spec"]["podCIDR"] = cidr;
  if (!ip.empty()) {
    n["status"]["addresses"] = {{{"type", "Hostname"}, {"address", name}},
                                {{"type", "InternalIP"}, {"address", ip}}};
  }
  return std::make_shared<const Json>(std::move(n));
}

TEST(NodeRoutesTest, RoutesToEveryOtherNodeWithACidrAndAnAddress) {
  auto routes = DesiredNodeRoutes(
      "a", {Node("a", "10.1.1.0/24", "192.168.0.1"), Node("c", "10.1.3.0/24", "192.168.0.3"),
            Node("b", "10.1.2.0/24", "192.168.0.2"), Node("no-cidr", "", "192.168.0.4"),
            Node("no-ip", "10.1.5.0/24", ""), Node("v6", "fd00::/64", "192.168.0.6"),
            Node("bad", "not-a-cidr", "192.168.0.7")});
  EXPECT_EQ(routes, (std::vector<NodeRoute>{{"10.1.2.0/24", "192.168.0.2"},
                                            {"10.1.3.0/24", "192.168.0.3"}}));
}

// A fake `ip`/`iptables`: records commands and keeps a route table.
class FakeRunner : public ProcessRunner {
 public:
  std::vector<std::string> commands;
  std::map<std::string, std::string> routes;  // dst -> gateway (proto 211)
  bool masquerade = false;

  base::Result<ProcessResult> Run(const ProcessSpec& spec) override {
    std::string line;
    for (size_t i = 1; i < spec.argv.size(); ++i) line += (i > 1 ? " " : "") + spec.argv[i];
    commands.push_back(line);
    const auto& a = spec.argv;
    ProcessResult r;
    if (line.rfind("-j -4 route show", 0) == 0) {
      Json list = Json::array();
      for (const auto& [dst, gw] : routes) list.push_back({{"dst", dst}, {"gateway", gw}});
      r.out = list.dump();
    } else if (a[1] == "route" && a[2] == "replace") {
      routes[a[3]] = a[5];
    } else if (a[1] == "route" && a[2] == "del") {
      routes.erase(a[3]);
    } else if (line.find("-C POSTROUTING") != std::string::npos) {
      r.exit_code = masquerade ? 0 : 1;
    } else if (line.find("-A POSTROUTING") != std::string::npos) {
      masquerade = true;
    }
    return r;
  }
  base::Status BecomeSubreaper() override { return base::Status::Ok(); }
  std::optional<int> TryReap(int) override { return std::nullopt; }
  std::optional<uint64_t> LiveStartTime(int) override { return std::nullopt; }
};

TEST(NodeRoutesTest, SyncReplacesChangedAndDeletesDeparted) {
  FakeRunner runner;
  runner.routes = {{"10.1.2.0/24", "192.168.0.2"}, {"10.1.9.0/24", "192.168.0.9"}};
  HostRoutes routes(&runner, "ip", "iptables");
  ASSERT_TRUE(routes.Sync({{"10.1.2.0/24", "192.168.0.22"}, {"10.1.3.0/24", "192.168.0.3"}}).ok());
  EXPECT_EQ(runner.routes, (std::map<std::string, std::string>{{"10.1.2.0/24", "192.168.0.22"},
                                                               {"10.1.3.0/24", "192.168.0.3"}}));
  EXPECT_EQ(runner.commands,
            (std::vector<std::string>{"-j -4 route show proto 211",
                                      "route del 10.1.9.0/24 proto 211",
                                      "route replace 10.1.2.0/24 via 192.168.0.22 proto 211",
                                      "route replace 10.1.3.0/24 via 192.168.0.3 proto 211"}));
  // Nothing to do: only the listing.
  runner.commands.clear();
  ASSERT_TRUE(routes.Sync({{"10.1.2.0/24", "192.168.0.22"}, {"10.1.3.0/24", "192.168.0.3"}}).ok());
  EXPECT_EQ(runner.commands.size(), 1u);
}

TEST(NodeRoutesTest, MasqueradeRuleIsAddedOnce) {
  FakeRunner runner;
  HostRoutes routes(&runner, "ip", "iptables");
  ASSERT_TRUE(routes.EnsureMasquerade("10.1.1.0/24", "10.1.0.0/16").ok());
  ASSERT_TRUE(routes.EnsureMasquerade("10.1.1.0/24", "10.1.0.0/16").ok());
  int added = 0;
  for (const auto& c : runner.commands) added += c.find("-A POSTROUTING") != std::string::npos;
  EXPECT_EQ(added, 1);
  EXPECT_NE(runner.commands[1].find("-s 10.1.1.0/24 ! -d 10.1.0.0/16"), std::string::npos)
      << runner.commands[1];
}

}  // namespace
}  // namespace fulcrum::agent
