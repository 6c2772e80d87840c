#include "agent/oci_spec.h"

#include <gtest/gtest.h>

#include <algorithm>

namespace fulcrum::agent {
namespace {

using base::Json;

ImageConfig Busybox() {
  ImageConfig image;
  image.entrypoint = {};
  image.cmd = {"sh"};
  image.env = {"PATH=/bin:/usr/bin", "LANG=C"};
  return image;
}

TEST(MergeCommand, FollowsKubernetesRules) {
  ImageConfig image;
  image.entrypoint = {"/entry", "-x"};
  image.cmd = {"default-arg"};
  ContainerSpecInput c;
  EXPECT_EQ(MergeCommand(c, image), (std::vector<std::string>{"/entry", "-x", "default-arg"}));
  c.args = {"a", "b"};
  EXPECT_EQ(MergeCommand(c, image), (std::vector<std::string>{"/entry", "-x", "a", "b"}));
  c.command = {"/bin/sh", "-c"};
  EXPECT_EQ(MergeCommand(c, image), (std::vector<std::string>{"/bin/sh", "-c", "a", "b"}));
  c.args.clear();
  EXPECT_EQ(MergeCommand(c, image), (std::vector<std::string>{"/bin/sh", "-c"}));
}

TEST(MergeEnv, ContainerOverridesImageInPlace) {
  ContainerSpecInput c;
  c.env = {{"LANG", "en_US.UTF-8"}, {"APP", "1"}};
  EXPECT_EQ(MergeEnv(c, Busybox()),
            (std::vector<std::string>{"PATH=/bin:/usr/bin", "LANG=en_US.UTF-8", "APP=1"}));
  ImageConfig bare;
  EXPECT_EQ(MergeEnv(ContainerSpecInput{}, bare),
            (std::vector<std::string>{
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}));
}

TEST(Cpu, KubernetesFormulas) {
  EXPECT_EQ(CpuShares(0), 2);
  EXPECT_EQ(CpuShares(1), 2);
  EXPECT_EQ(CpuShares(250), 256);
  EXPECT_EQ(CpuShares(1000), 1024);
  EXPECT_EQ(CpuShares(1500), 1536);
  EXPECT_EQ(CpuQuota(0), 0);
  EXPECT_EQ(CpuQuota(5), 1000);  // minimum quota
  EXPECT_EQ(CpuQuota(250), 25000);
  EXPECT_EQ(CpuQuota(2000), 200000);
}

TEST(Capabilities, DefaultAddDropAll) {
  ContainerSpecInput c;
  auto caps = Capabilities(c);
  ASSERT_TRUE(caps.ok());
  EXPECT_EQ(caps->size(), 14u);
  c.capabilities_drop = {"ALL"};
  c.capabilities_add = {"net_bind_service", "CAP_NET_ADMIN"};
  caps = Capabilities(c);
  ASSERT_TRUE(caps.ok());
  EXPECT_EQ(*caps, (std::vector<std::string>{"CAP_NET_ADMIN", "CAP_NET_BIND_SERVICE"}));
  c = {};
  c.capabilities_drop = {"NET_RAW"};
  caps = Capabilities(c);
  ASSERT_TRUE(caps.ok());
  EXPECT_EQ(std::count(caps->begin(), caps->end(), "CAP_NET_RAW"), 0);
  c.capabilities_add = {"FLY"};
  caps = Capabilities(c);
  ASSERT_FALSE(caps.ok());
  EXPECT_EQ(caps.status().code(), base::Code::kInvalid);
  EXPECT_NE(caps.status().message().find("securityContext.capabilities.add"), std::string::npos);
  EXPECT_NE(caps.status().message().find("FLY"), std::string::npos);
  c = {};
  c.privileged = true;
  caps = Capabilities(c);
  ASSERT_TRUE(caps.ok());
  EXPECT_GT(caps->size(), 30u);
}

TEST(BuildOciSpec, MinimalContainer) {
  ContainerSpecInput c;
  c.hostname = "web-0";
  auto spec = BuildOciSpec(c, Busybox());
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  const Json& s = *spec;
  EXPECT_EQ(s["ociVersion"], "1.0.2");
  EXPECT_EQ(s["hostname"], "web-0");
  EXPECT_EQ(s["root"], (Json{{"path", "rootfs"}, {"readonly", false}}));
  EXPECT_EQ(s["process"]["args"], Json::array({"sh"}));
  EXPECT_EQ(s["process"]["cwd"], "/");
  EXPECT_EQ(s["process"]["user"], (Json{{"uid", 0}, {"gid", 0}}));
  EXPECT_EQ(s["process"]["terminal"], false);
  EXPECT_EQ(s["process"]["noNewPrivileges"], false);
  EXPECT_EQ(s["linux"]["resources"]["cpu"], (Json{{"shares", 2}}));
  EXPECT_FALSE(s["linux"]["resources"].contains("memory"));
  EXPECT_FALSE(s["linux"].contains("cgroupsPath"));
  EXPECT_EQ(s["linux"]["namespaces"],
            Json::parse(R"([{"type":"pid"},{"type":"ipc"},{"type":"uts"},{"type":"mount"},
                            {"type":"network"}])"));
  std::vector<std::string> destinations;
  for (const auto& m : s["mounts"]) destinations.push_back(m["destination"]);
  EXPECT_EQ(destinations, (std::vector<std::string>{"/proc", "/dev", "/dev/pts", "/dev/shm",
                                                    "/dev/mqueue", "/sys", "/sys/fs/cgroup"}));
  EXPECT_EQ(s["mounts"][5]["options"], Json::parse(R"(["nosuid","noexec","nodev","ro"])"));
  EXPECT_TRUE(s["linux"].contains("maskedPaths"));
  EXPECT_TRUE(s["linux"].contains("readonlyPaths"));
}

TEST(BuildOciSpec, TtyRunsOnATerminalWithTerm) {
  ContainerSpecInput c;
  c.terminal = true;
  auto spec = BuildOciSpec(c, Busybox());
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  EXPECT_EQ((*spec)["process"]["terminal"], true);
  const Json& env = (*spec)["process"]["env"];
  EXPECT_NE(std::find(env.begin(), env.end(), "TERM=xterm"), env.end());
  c.env = {{"TERM", "vt100"}};
  EXPECT_EQ(MergeEnv(c, Busybox()).back(), "TERM=vt100");
}

TEST(BuildOciSpec, FullContainer) {
  ContainerSpecInput c;
  c.command = {"/bin/app"};
  c.args = {"--port", "80"};
  c.env = {{"MODE", "prod"}};
  c.working_dir = "/srv";
  c.run_as_user = 1000;
  c.run_as_group = 2000;
  c.read_only_root_filesystem = true;
  c.no_new_privileges = true;
  c.capabilities_drop = {"ALL"};
  c.capabilities_add = {"NET_BIND_SERVICE"};
  c.cpu_request_milli = 500;
  c.cpu_limit_milli = 1500;
  c.memory_limit_bytes = 256 << 20;
  c.mounts = {{"/var/lib/fulcrum/pods/p/volumes/data", "/data", false},
              {"/var/lib/fulcrum/pods/p/volumes/config", "/etc/app", true}};
  c.etc_hostname_path = "/var/lib/fulcrum/pods/p/hostname";
  c.network_namespace_path = "/var/run/netns/p";
  c.cgroups_path = "/fulcrum/p/app";
  auto spec = BuildOciSpec(c, Busybox(), "/abs/rootfs");
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  const Json& s = *spec;
  EXPECT_EQ(s["root"], (Json{{"path", "/abs/rootfs"}, {"readonly", true}}));
  EXPECT_EQ(s["process"]["args"], Json::parse(R"(["/bin/app","--port","80"])"));
  EXPECT_EQ(s["process"]["env"], Json::parse(R"(["PATH=/bin:/usr/bin","LANG=C","MODE=prod"])"));
  EXPECT_EQ(s["process"]["cwd"], "/srv");
  EXPECT_EQ(s["process"]["user"], (Json{{"uid", 1000}, {"gid", 2000}}));
  EXPECT_EQ(s["process"]["noNewPrivileges"], true);
  EXPECT_EQ(s["process"]["capabilities"], Json::parse(R"({
      "bounding": ["CAP_NET_BIND_SERVICE"], "effective": ["CAP_NET_BIND_SERVICE"],
      "permitted": ["CAP_NET_BIND_SERVICE"], "inheritable": []})"));
  EXPECT_EQ(s["linux"]["resources"]["cpu"],
            Json::parse(R"({"shares": 512, "quota": 150000, "period": 100000})"));
  EXPECT_EQ(s["linux"]["resources"]["memory"], Json::parse(R"({"limit": 268435456})"));
  EXPECT_EQ(s["linux"]["cgroupsPath"], "/fulcrum/p/app");
  EXPECT_EQ(s["linux"]["namespaces"][4],
            Json::parse(R"({"type": "network", "path": "/var/run/netns/p"})"));
  const Json& mounts = s["mounts"];
  ASSERT_EQ(mounts.size(), 10u);
  EXPECT_EQ(mounts[7], Json::parse(R"({"destination": "/etc/hostname", "type": "bind",
      "source": "/var/lib/fulcrum/pods/p/hostname", "options": ["rbind", "rprivate", "rw"]})"));
  EXPECT_EQ(mounts[8], Json::parse(R"({"destination": "/data", "type": "bind",
      "source": "/var/lib/fulcrum/pods/p/volumes/data", "options": ["rbind", "rprivate", "rw"]})"));
  EXPECT_EQ(mounts[9], Json::parse(R"({"destination": "/etc/app", "type": "bind",
      "source": "/var/lib/fulcrum/pods/p/volumes/config", "options": ["rbind", "rprivate", "ro"]})"));
}

TEST(BuildOciSpec, Privileged) {
  ContainerSpecInput c;
  c.privileged = true;
  c.no_new_privileges = true;
  auto spec = BuildOciSpec(c, Busybox());
  ASSERT_TRUE(spec.ok());
  EXPECT_FALSE((*spec)["linux"].contains("maskedPaths"));
  EXPECT_EQ((*spec)["linux"]["resources"]["devices"],
            Json::parse(R"([{"allow": true, "access": "rwm"}])"));
  EXPECT_EQ((*spec)["mounts"][5]["options"].back(), "rw");
  EXPECT_EQ((*spec)["process"]["noNewPrivileges"], false);
}

TEST(BuildOciSpec, ImageUserAndWorkingDir) {
  ImageConfig image = Busybox();
  image.user = "65534:65533";
  image.working_dir = "/home";
  auto spec = BuildOciSpec(ContainerSpecInput{}, image);
  ASSERT_TRUE(spec.ok());
  EXPECT_EQ((*spec)["process"]["user"], (Json{{"uid", 65534}, {"gid", 65533}}));
  EXPECT_EQ((*spec)["process"]["cwd"], "/home");

  ContainerSpecInput c;
  c.run_as_user = 7;  // runAsUser wins; the image's group is not used with it
  spec = BuildOciSpec(c, image);
  ASSERT_TRUE(spec.ok());
  EXPECT_EQ((*spec)["process"]["user"], (Json{{"uid", 7}, {"gid", 0}}));

  image.user = "nobody";
  spec = BuildOciSpec(ContainerSpecInput{}, image);
  ASSERT_FALSE(spec.ok());
  EXPECT_NE(spec.status().message().find("\"nobody\""), std::string::npos);
}

TEST(BuildOciSpec, RefusesBadInput) {
  ImageConfig empty;
  auto spec = BuildOciSpec(ContainerSpecInput{}, empty);
  ASSERT_FALSE(spec.ok());
  EXPECT_NE(spec.status().message().find("nothing to run"), std::string::npos);

  ContainerSpecInput c;
  c.working_dir = "relative";
  spec = BuildOciSpec(c, Busybox());
  ASSERT_FALSE(spec.ok());
  EXPECT_NE(spec.status().message().find("workingDir"), std::string::npos);

  c = {};
  c.mounts = {{"/host", "data", false}};
  spec = BuildOciSpec(c, Busybox());
  ASSERT_FALSE(spec.ok());
  EXPECT_NE(spec.status().message().find("volumeMounts[0].mountPath"), std::string::npos);
}

}  // namespace
}  // namespace fulcrum::agent
