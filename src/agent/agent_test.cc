// The agent's pure parts: container IDs, pod → container spec input, the Node object.
#include "agent/agent.h"

#include <gtest/gtest.h>

#include <map>

#include "agent/runtime.h"

namespace fulcrum::agent {
namespace {

using base::Json;

struct MapEnv : EnvSource {
  base::Result<std::string> Lookup(bool secret, const std::string& ns, const std::string& name,
                                   const std::string& key) override {
    auto it = values.find((secret ? "secret/" : "cm/") + ns + "/" + name + "/" + key);
    if (it == values.end()) return base::NotFound("no key \"" + key + "\"");
    return it->second;
  }
  std::map<std::string, std::string> values;
};

TEST(AgentTest, ContainerIds) {
  std::string id = ContainerIdFor("6f1c1f0e-0000-4000-8000-000000000001", "app");
  EXPECT_EQ(id.size(), 25u);
  EXPECT_EQ(id[0], 'c');
  EXPECT_EQ(id, ContainerIdFor("6f1c1f0e-0000-4000-8000-000000000001", "app"));
  EXPECT_NE(id, ContainerIdFor("6f1c1f0e-0000-4000-8000-000000000001", "sidecar"));
  EXPECT_EQ(ContainerIdFor("6f1c1f0e-0000-4000-8000-000000000001", "app", 2), id + "-2");
  EXPECT_TRUE(ValidContainerId(id + "-2"));
  EXPECT_TRUE(ContainerReuse(Json::parse(R"({"metadata":{}})")));
  EXPECT_FALSE(ContainerReuse(Json::parse(
      R"({"metadata":{"annotations":{"fulcrum.dev/container-reuse":"false"}}})")));
}

TEST(AgentTest, ContainerInputFromPod) {
  Json pod = Json::parse(R"({
    "metadata": {"name": "web", "namespace": "shop", "uid": "u1", "labels": {"app": "web"}},
    "spec": {"nodeName": "n1", "securityContext": {"runAsUser": 1000, "runAsGroup": 2000},
             "hostname": "web-host"}
  })");
  Json c = Json::parse(R"({
    "name": "app", "image": "fulcrum.dev/busybox:demo",
    "command": ["sh", "-c"], "args": ["echo $A"], "workingDir": "/srv",
    "env": [{"name": "A", "value": "1"},
            {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
            {"name": "CM", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "k"}}},
            {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "s", "key": "pw"}}},
            {"name": "OPT", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "none", "optional": true}}}],
    "securityContext": {"runAsUser": 0, "readOnlyRootFilesystem": true,
                        "allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}},
    "resources": {"limits": {"cpu": "500m", "memory": "64Mi"}},
    "volumeMounts": [{"name": "data", "mountPath": "/data"},
                     {"name": "cfg", "mountPath": "/etc/cfg", "readOnly": true, "subPath": "sub"}]
  })");
  MapEnv env;
  env.values = {{"cm/shop/cfg/k", "v"}, {"secret/shop/s/pw", "hunter2"}};
  auto in = ContainerInputFromPod(pod, c, "spec.containers[0]",
                                  {{"data", "/vol/data"}, {"cfg", "/vol/cfg"}}, "10.244.0.9",
                                  "192.168.1.2", &env);
  ASSERT_TRUE(in.ok()) << in.status().ToString();
  EXPECT_EQ(in->command, (std::vector<std::string>{"sh", "-c"}));
  EXPECT_EQ(in->args, (std::vector<std::string>{"echo $A"}));
  EXPECT_EQ(in->working_dir, "/srv");
  EXPECT_EQ(in->env, (std::vector<std::pair<std::string, std::string>>{
                         {"A", "1"}, {"POD", "web"}, {"IP", "10.244.0.9"}, {"APP", "web"},
                         {"CM", "v"}, {"PW", "hunter2"}}));
  EXPECT_EQ(*in->run_as_user, 0);      // the container's overrides the pod's
  EXPECT_EQ(*in->run_as_group, 2000);  // the pod's
  EXPECT_TRUE(in->read_only_root_filesystem);
  EXPECT_TRUE(in->no_new_privileges);
  EXPECT_EQ(in->capabilities_drop, std::vector<std::string>{"ALL"});
  EXPECT_EQ(in->cpu_limit_milli, 500);
  EXPECT_EQ(in->cpu_request_milli, 500);
  EXPECT_EQ(in->memory_limit_bytes, 64 << 20);
  ASSERT_EQ(in->mounts.size(), 2u);
  EXPECT_EQ(in->mounts[1].host_path, "/vol/cfg/sub");
  EXPECT_TRUE(in->mounts[1].read_only);
  EXPECT_EQ(in->hostname, "web-host");

  auto bad = [&](const std::string& patch) {
    Json c2 = c;
    c2.merge_patch(Json::parse(patch));
    auto r = ContainerInputFromPod(pod, c2, "spec.containers[0]", {{"data", "/d"}, {"cfg", "/c"}},
                                   "", "", &env);
    return r.ok() ? std::string("ok") : r.status().message();
  };
  EXPECT_EQ(bad(R"({"env":[{"name":"X","valueFrom":{"fieldRef":{"fieldPath":"spec.bogus"}}}]})"),
            "spec.containers[0].env[0].valueFrom.fieldRef.fieldPath: Unsupported value: \"spec.bogus\"");
  EXPECT_EQ(bad(R"({"env":[{"name":"X","valueFrom":{"secretKeyRef":{"name":"s","key":"nope"}}}]})"),
            "spec.containers[0].env[0].valueFrom.secretKeyRef: no key \"nope\"");
  EXPECT_EQ(bad(R"({"volumeMounts":[{"name":"missing","mountPath":"/m"}]})"),
            "spec.containers[0].volumeMounts[0].name: Not found: \"missing\"");
  EXPECT_EQ(bad(R"({"volumeMounts":[{"name":"data","mountPath":"/m","subPath":"../etc"}]})"),
            "spec.containers[0].volumeMounts[0].subPath: Invalid value: \"../etc\"");
  EXPECT_NE(bad(R"({"resources":{"limits":{"cpu":"lots"}}})").find("resources.limits.cpu"),
            std::string::npos);
}

TEST(AgentTest, NodeObject) {
  AgentOptions o;
  o.node_name = "n1";
  o.pod_cidr = "10.244.3.0/24";
  NodeFacts f;
  f.cpus = 2;
  f.memory_bytes = 4096ll << 20;
  f.ephemeral_storage_bytes = 100ll << 30;
  f.node_ip = "192.168.1.2";
  f.hostname = "host1";
  f.disk_pressure = true;
  base::WallTime t;
  ASSERT_TRUE(base::ParseRfc3339("2026-11-27T08:00:00Z", &t));
  Json node = NodeObject(o, f, t);
  EXPECT_EQ(node["metadata"]["name"], "n1");
  EXPECT_EQ(node["metadata"]["labels"]["kubernetes.io/hostname"], "n1");
  EXPECT_EQ(node["spec"]["podCIDR"], "10.244.3.0/24");
  EXPECT_EQ(node["status"]["capacity"]["cpu"], "2");
  EXPECT_EQ(node["status"]["capacity"]["memory"], "4194304Ki");
  EXPECT_EQ(node["status"]["capacity"]["pods"], "110");
  EXPECT_EQ(node["status"]["allocatable"]["ephemeral-storage"], std::to_string(100ll << 30));
  EXPECT_EQ(node["status"]["addresses"][0],
            Json::parse(R"({"type":"InternalIP","address":"192.168.1.2"})"));
  std::map<std::string, std::string> conditions;
  for (const Json& c : node["status"]["conditions"]) conditions[c["type"]] = c["status"];
  EXPECT_EQ(conditions, (std::map<std::string, std::string>{{"MemoryPressure", "False"},
                                                            {"DiskPressure", "True"},
                                                            {"PIDPressure", "False"},
                                                            {"Ready", "True"}}));
  EXPECT_EQ(node["status"]["conditions"][0]["lastHeartbeatTime"], "2026-11-27T08:00:00Z");
}

}  // namespace
}  // namespace fulcrum::agent
