#include "api/protobuf.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <string>

#include "base/file.h"

namespace fulcrum::api {
namespace {

using base::Code;
using base::Json;
using ::testing::HasSubstr;

// A protobuf message under construction: fields appended in the order written.
class Pb {
 public:
  Pb& Varint(uint32_t field, uint64_t v) {
    Key(field, 0);
    PutVarint(v);
    return *this;
  }
  Pb& Bytes(uint32_t field, std::string_view b) {
    Key(field, 2);
    PutVarint(b.size());
    out_.append(b);
    return *this;
  }
  Pb& Msg(uint32_t field, const Pb& m) { return Bytes(field, m.str()); }
  // A map<string, string> or map<string, bytes> entry.
  Pb& Entry(uint32_t field, std::string_view key, std::string_view value) {
    return Msg(field, Pb().Bytes(1, key).Bytes(2, value));
  }
  Pb& Raw(std::string_view bytes) {
    out_.append(bytes);
    return *this;
  }
  const std::string& str() const { return out_; }

 private:
  void Key(uint32_t field, uint32_t wire) { PutVarint((uint64_t{field} << 3) | wire); }
  void PutVarint(uint64_t v) {
    while (v >= 0x80) {
      out_.push_back(static_cast<char>((v & 0x7f) | 0x80));
      v >>= 7;
    }
    out_.push_back(static_cast<char>(v));
  }
  std::string out_;
};

// "k8s\0" + runtime.Unknown{typeMeta{apiVersion, kind}, raw, contentEncoding "", contentType ""},
// as kubectl writes it.
std::string Body(std::string_view api_version, std::string_view kind, const Pb& raw) {
  Pb unknown;
  unknown.Msg(1, Pb().Bytes(1, api_version).Bytes(2, kind))
      .Bytes(2, raw.str())
      .Bytes(3, "")
      .Bytes(4, "");
  return std::string("k8s\0", 4) + unknown.str();
}

std::string FromHex(std::string_view hex) {
  std::string out;
  for (std::size_t i = 0; i + 1 < hex.size(); i += 2) {
    out.push_back(static_cast<char>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16)));
  }
  return out;
}

Json Decode(const std::string& body) {
  auto r = DecodeKubernetesProtobuf(body);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? *r : Json("<error>");
}

base::Status DecodeError(const std::string& body) {
  auto r = DecodeKubernetesProtobuf(body);
  EXPECT_FALSE(r.ok()) << "decoded to " << base::DumpJson(*r);
  return r.ok() ? base::Status() : r.status();
}

// ObjectMeta as Go's protobuf marshaller writes it: every non-pointer field, zero or not.
Pb Meta(std::string_view name) {
  return Pb()
      .Bytes(1, name)
      .Bytes(2, "")
      .Bytes(3, "")
      .Bytes(4, "")
      .Bytes(5, "")
      .Bytes(6, "")
      .Varint(7, 0)
      .Bytes(8, "");
}

std::filesystem::path TestData(const std::string& name) {
  return std::filesystem::path(__FILE__).parent_path() / "testdata" / "protobuf" / name;
}

Json ReadJsonFile(const std::string& name) {
  auto text = base::ReadFile(TestData(name).string());
  EXPECT_TRUE(text.ok()) << name << ": " << text.status().ToString();
  Json j;
  if (text.ok()) {
    EXPECT_TRUE(base::ParseJson(*text, &j).ok()) << name;
  }
  return j;
}

std::string ReadHexFile(const std::string& name) {
  auto text = base::ReadFile(TestData(name).string());
  EXPECT_TRUE(text.ok()) << name << ": " << text.status().ToString();
  std::string hex = text.ok() ? *text : "";
  while (!hex.empty() && (hex.back() == '\n' || hex.back() == ' ')) hex.pop_back();
  return FromHex(hex);
}

TEST(ProtobufTest, KubectlCreateConfigMap) {
  std::string body = FromHex(
      "6b3873000a0f0a0276311209436f6e6669674d6170121d0a130a0379333312001a0022002a003200380042001206"
      "0a01611201621a002200");
  EXPECT_EQ(Decode(body), Json::parse(R"({"apiVersion":"v1","kind":"ConfigMap",
      "metadata":{"name":"y33"},"data":{"a":"b"}})"));
}

// Bodies captured from kubectl 1.33 (`-v=9`), each checked against the JSON that kubectl's own Go
// serializer prints for the same command with `--dry-run=client -o json`, nulls removed.
TEST(ProtobufTest, KubectlCapturesMatchGoJson) {
  for (const char* name : {"configmap",
                           "configmap_files",
                           "secret_generic",
                           "secret_docker",
                           "namespace",
                           "deployment",
                           "deployment_zero",
                           "service_clusterip",
                           "service_nodeport",
                           "service_headless",
                           "service_externalname",
                           "service_lb",
                           "serviceaccount",
                           "job",
                           "cronjob",
                           "job_from_cronjob",
                           "quota",
                           "priorityclass",
                           "priorityclass_zero",
                           "pdb_min",
                           "pdb_max",
                           "pdb_percent",
                           "role",
                           "rolebinding",
                           "clusterrole",
                           "clusterrolebinding",
                           "ingress",
                           "hpa_autoscale"}) {
    SCOPED_TRACE(name);
    EXPECT_EQ(Decode(ReadHexFile(std::string(name) + ".pb.hex")),
              ReadJsonFile(std::string(name) + ".json"));
  }
}

TEST(ProtobufTest, KubectlCreateToken) {
  Json token = Decode(ReadHexFile("token.pb.hex"));
  EXPECT_EQ(token, Json::parse(R"({"apiVersion":"authentication.k8s.io/v1","kind":"TokenRequest",
      "metadata":{},"spec":{"audiences":["aud1"],"expirationSeconds":600},
      "status":{"token":""}})"));
}

// A CronJob with a full pod template, encoded from cronjob_rich.source.json; kubectl decoded the
// same bytes with Go and printed the Job it derived (`kubectl create job --from=cronjob/rich`).
TEST(ProtobufTest, RichPodTemplateMatchesGo) {
  Json cronjob = Decode(ReadHexFile("cronjob_rich.pb.hex"));
  Json job = ReadJsonFile("cronjob_rich_job.json");
  EXPECT_EQ(cronjob["spec"]["jobTemplate"]["spec"], job["spec"]);
  EXPECT_EQ(cronjob["metadata"]["creationTimestamp"], "2026-11-27T03:30:31Z");
  EXPECT_EQ(cronjob["spec"]["startingDeadlineSeconds"], 0);  // *int64: kept when zero
  EXPECT_EQ(cronjob["spec"]["successfulJobsHistoryLimit"], 0);
  EXPECT_EQ(cronjob["status"]["lastScheduleTime"], "2026-11-27T03:30:31Z");
}

TEST(ProtobufTest, DeploymentWithResourcesAndRollingUpdate) {
  Pb container;
  container.Bytes(1, "web")
      .Bytes(2, "nginx:1.27")
      .Msg(6, Pb().Bytes(1, "http").Varint(2, 0).Varint(3, 80).Bytes(4, "TCP").Bytes(5, ""))
      .Msg(8, Pb().Msg(1, Pb().Bytes(1, "cpu").Msg(2, Pb().Bytes(1, "500m")))
                  .Msg(1, Pb().Bytes(1, "memory").Msg(2, Pb().Bytes(1, "128Mi")))
                  .Msg(2, Pb().Bytes(1, "cpu").Msg(2, Pb().Bytes(1, "250m"))))
      .Bytes(13, "/dev/termination-log")
      .Bytes(14, "IfNotPresent")
      .Varint(16, 0)
      .Varint(17, 0)
      .Varint(18, 0)
      .Bytes(20, "File");
  Pb pod_spec;
  pod_spec.Msg(2, container).Bytes(3, "Always").Bytes(6, "ClusterFirst").Varint(4, 30);
  Pb strategy;
  strategy.Bytes(1, "RollingUpdate")
      .Msg(2, Pb().Msg(1, Pb().Varint(1, 0).Varint(2, 0).Bytes(3, ""))       // maxUnavailable: 0
                  .Msg(2, Pb().Varint(1, 1).Varint(2, 0).Bytes(3, "25%")));  // maxSurge: "25%"
  Pb spec;
  spec.Varint(1, 3)
      .Msg(2, Pb().Entry(1, "app", "web"))
      .Msg(3, Pb().Msg(1, Meta("").Entry(11, "app", "web")).Msg(2, pod_spec))
      .Msg(4, strategy)
      .Varint(5, 0)   // minReadySeconds: int32 omitempty
      .Varint(6, 10)  // revisionHistoryLimit: *int32
      .Varint(7, 0)   // paused: bool omitempty
      .Varint(9, 600);
  Pb status;
  status.Varint(1, 2)
      .Varint(2, 3)
      .Varint(3, 3)
      .Varint(4, 3)
      .Varint(5, 0)
      .Msg(6, Pb().Bytes(1, "Available")
                  .Bytes(2, "True")
                  .Bytes(4, "MinimumReplicasAvailable")
                  .Bytes(5, "ok")
                  .Msg(6, Pb().Varint(1, 1795750231))
                  .Msg(7, Pb().Varint(1, 1795750231).Varint(2, 999)))
      .Varint(7, 3);
  Pb deployment;
  deployment.Msg(1, Meta("web").Bytes(3, "prod").Entry(11, "app", "web"))
      .Msg(2, spec)
      .Msg(3, status);

  EXPECT_EQ(Decode(Body("apps/v1", "Deployment", deployment)), Json::parse(R"({
    "apiVersion": "apps/v1", "kind": "Deployment",
    "metadata": {"name": "web", "namespace": "prod", "labels": {"app": "web"}},
    "spec": {
      "replicas": 3,
      "selector": {"matchLabels": {"app": "web"}},
      "template": {
        "metadata": {"labels": {"app": "web"}},
        "spec": {
          "containers": [{
            "name": "web", "image": "nginx:1.27",
            "ports": [{"name": "http", "containerPort": 80, "protocol": "TCP"}],
            "resources": {"limits": {"cpu": "500m", "memory": "128Mi"}, "requests": {"cpu": "250m"}},
            "terminationMessagePath": "/dev/termination-log", "imagePullPolicy": "IfNotPresent",
            "terminationMessagePolicy": "File"}],
          "restartPolicy": "Always", "dnsPolicy": "ClusterFirst",
          "terminationGracePeriodSeconds": 30}},
      "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "25%"}},
      "revisionHistoryLimit": 10,
      "progressDeadlineSeconds": 600},
    "status": {
      "observedGeneration": 2, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 3,
      "readyReplicas": 3,
      "conditions": [{"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable",
                      "message": "ok", "lastUpdateTime": "2026-11-27T03:30:31Z",
                      "lastTransitionTime": "2026-11-27T03:30:31Z"}]}})"));
}

TEST(ProtobufTest, ZeroPointerFieldsAreKept) {
  Pb spec;
  spec.Varint(1, 0).Msg(3, Pb().Msg(2, Pb().Varint(4, 0).Varint(25, 0).Varint(21, 0)));
  Json d = Decode(Body("apps/v1", "Deployment", Pb().Msg(2, spec)));
  EXPECT_EQ(d["spec"]["replicas"], 0);
  EXPECT_EQ(d["spec"]["template"]["spec"],
            Json::parse(R"({"terminationGracePeriodSeconds": 0, "priority": 0,
                            "automountServiceAccountToken": false})"));
}

TEST(ProtobufTest, PodWithEnvValueFromProbesAndVolumes) {
  Pb http_get;
  http_get.Bytes(1, "/healthz")
      .Msg(2, Pb().Varint(1, 1).Varint(2, 0).Bytes(3, "http"))
      .Bytes(4, "HTTP")
      .Msg(5, Pb().Bytes(1, "X-Probe").Bytes(2, "1"));
  Pb container;
  container.Bytes(1, "app")
      .Bytes(2, "busybox")
      .Bytes(3, "sh")
      .Bytes(3, "-c")
      .Bytes(4, "sleep 10")
      .Msg(7, Pb().Bytes(1, "A").Bytes(2, "B"))
      .Msg(7, Pb().Bytes(1, "PW").Bytes(2, "").Msg(
                  3, Pb().Msg(
                         4, Pb().Msg(1, Pb().Bytes(1, "creds")).Bytes(2, "password").Varint(3, 0))))
      .Msg(7, Pb().Bytes(1, "NODE").Bytes(2, "").Msg(
                  3, Pb().Msg(1, Pb().Bytes(1, "v1").Bytes(2, "spec.nodeName"))))
      .Msg(19, Pb().Bytes(1, "CFG_").Msg(2, Pb().Msg(1, Pb().Bytes(1, "settings"))))
      .Msg(9, Pb().Bytes(1, "cache").Varint(2, 1).Bytes(3, "/cache").Bytes(4, ""))
      .Msg(10, Pb().Msg(1, Pb().Msg(2, http_get))
                   .Varint(2, 5)
                   .Varint(3, 1)
                   .Varint(4, 10)
                   .Varint(5, 1)
                   .Varint(6, 3))
      .Msg(11,
           Pb().Msg(
               1, Pb().Msg(
                      3, Pb().Msg(1, Pb().Varint(1, 0).Varint(2, 8080).Bytes(3, "")).Bytes(2, ""))))
      .Msg(22, Pb().Msg(1, Pb().Msg(1, Pb().Bytes(1, "cat").Bytes(1, "/ready"))))
      .Msg(12, Pb().Msg(2, Pb().Msg(1, Pb().Bytes(1, "sleep").Bytes(1, "1"))))
      .Msg(15, Pb().Varint(4, 0).Varint(6, 1).Msg(1, Pb().Bytes(2, "ALL")));
  Pb pod_spec;
  pod_spec
      .Msg(1, Pb().Bytes(1, "cache")
                  .Msg(2, Pb().Msg(2, Pb().Bytes(1, "Memory").Msg(2, Pb().Bytes(1, "64Mi")))))
      .Msg(1, Pb().Bytes(1, "cfg").Msg(
                  2, Pb().Msg(19, Pb().Msg(1, Pb().Bytes(1, "settings")).Varint(3, 420))))
      .Msg(2, container)
      .Entry(7, "disk", "ssd")
      .Msg(22,
           Pb().Bytes(1, "dedicated").Bytes(2, "Equal").Bytes(3, "infra").Bytes(4, "NoSchedule"))
      .Msg(18,
           Pb().Msg(3, Pb().Msg(1, Pb().Msg(1, Pb().Msg(2, Pb().Bytes(1, "app").Bytes(2, "Exists")))
                                       .Bytes(3, "kubernetes.io/hostname"))));
  Json pod = Decode(Body("v1", "Pod", Pb().Msg(1, Meta("p")).Msg(2, pod_spec).Msg(3, Pb())));
  EXPECT_EQ(pod, Json::parse(R"({
    "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
    "spec": {
      "volumes": [{"name": "cache", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}},
                  {"name": "cfg", "configMap": {"name": "settings", "defaultMode": 420}}],
      "containers": [{
        "name": "app", "image": "busybox", "command": ["sh", "-c"], "args": ["sleep 10"],
        "env": [{"name": "A", "value": "B"},
                {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password",
                                                               "optional": false}}},
                {"name": "NODE", "valueFrom": {"fieldRef": {"apiVersion": "v1",
                                                            "fieldPath": "spec.nodeName"}}}],
        "envFrom": [{"prefix": "CFG_", "configMapRef": {"name": "settings"}}],
        "volumeMounts": [{"name": "cache", "readOnly": true, "mountPath": "/cache"}],
        "livenessProbe": {"httpGet": {"path": "/healthz", "port": "http", "scheme": "HTTP",
                                      "httpHeaders": [{"name": "X-Probe", "value": "1"}]},
                          "initialDelaySeconds": 5, "timeoutSeconds": 1, "periodSeconds": 10,
                          "successThreshold": 1, "failureThreshold": 3},
        "readinessProbe": {"tcpSocket": {"port": 8080}},
        "startupProbe": {"exec": {"command": ["cat", "/ready"]}},
        "lifecycle": {"preStop": {"exec": {"command": ["sleep", "1"]}}},
        "securityContext": {"runAsUser": 0, "readOnlyRootFilesystem": true,
                            "capabilities": {"drop": ["ALL"]}}}],
      "nodeSelector": {"disk": "ssd"},
      "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "infra",
                       "effect": "NoSchedule"}],
      "affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
          {"labelSelector": {"matchExpressions": [{"key": "app", "operator": "Exists"}]},
           "topologyKey": "kubernetes.io/hostname"}]}}},
    "status": {}})"));
}

TEST(ProtobufTest, SecretBytesAreBase64) {
  Pb secret;
  secret.Msg(1, Meta("s"))
      .Entry(2, "one", "a")
      .Entry(2, "two", "ab")
      .Entry(2, "three", "abc")
      .Entry(2, "binary", std::string("\x00\xff\xfe", 3))
      .Entry(2, "empty", "")
      .Entry(4, "plain", "text")
      .Bytes(3, "Opaque")
      .Varint(5, 1);
  EXPECT_EQ(Decode(Body("v1", "Secret", secret)), Json::parse(R"({
    "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "type": "Opaque",
    "data": {"one": "YQ==", "two": "YWI=", "three": "YWJj", "binary": "AP/+", "empty": ""},
    "stringData": {"plain": "text"}, "immutable": true})"));
}

TEST(ProtobufTest, Times) {
  // Time keeps whole seconds (Go's metav1.Time drops nanos); an empty Time message is the zero
  // time.
  Pb meta = Meta("e");
  meta.Msg(9, Pb().Varint(1, 0));  // deletionTimestamp at the epoch
  Pb event;
  event.Msg(1, meta)
      .Msg(6, Pb().Varint(1, 1795750231).Varint(2, 500000000))
      .Msg(7, Pb())
      .Msg(10, Pb().Varint(1, 1795750231).Varint(2, 123456789))
      .Bytes(14, "")
      .Bytes(15, "");
  Json e = Decode(Body("v1", "Event", event));
  EXPECT_EQ(e["metadata"]["deletionTimestamp"], "1970-01-01T00:00:00Z");
  EXPECT_EQ(e["firstTimestamp"], "2026-11-27T03:30:31Z");
  EXPECT_FALSE(e.contains("lastTimestamp"));
  EXPECT_EQ(e["eventTime"], "2026-11-27T03:30:31.123456Z");
  EXPECT_EQ(e["reportingComponent"], "");  // no omitempty on this string

  Pb lease_spec;
  lease_spec.Msg(3, Pb().Varint(1, static_cast<uint64_t>(int64_t{-1})).Varint(2, 999999000))
      .Msg(4, Pb().Varint(1, 253402300799));
  Json lease = Decode(Body("coordination.k8s.io/v1", "Lease", Pb().Msg(2, lease_spec)));
  EXPECT_EQ(lease["spec"]["acquireTime"], "1969-12-31T23:59:59.999999Z");
  EXPECT_EQ(lease["spec"]["renewTime"], "9999-12-31T23:59:59.000000Z");

  base::Status s =
      DecodeError(Body("v1", "Event", Pb().Msg(6, Pb().Varint(1, uint64_t{253402300800}))));
  EXPECT_EQ(s.code(), Code::kBadRequest);
  EXPECT_THAT(s.message(), HasSubstr("outside years 1-9999"));
}

TEST(ProtobufTest, Durations) {
  auto window = [](int64_t nanos) {
    Pb metrics;
    metrics.Msg(3, Pb().Varint(1, static_cast<uint64_t>(nanos)))
        .Entry(4, "cpu", Pb().Bytes(1, "100m").str());
    Json j = Decode(Body("metrics.k8s.io/v1beta1", "NodeMetrics", metrics));
    EXPECT_EQ(j["usage"]["cpu"], "100m");
    return j["window"].get<std::string>();
  };
  EXPECT_EQ(window(0), "0s");
  EXPECT_EQ(window(1), "1ns");
  EXPECT_EQ(window(1500), "1.5\xc2\xb5s");
  EXPECT_EQ(window(250000000), "250ms");
  EXPECT_EQ(window(1500000000), "1.5s");
  EXPECT_EQ(window(90000000000), "1m30s");
  EXPECT_EQ(window(3723000000001), "1h2m3.000000001s");
  EXPECT_EQ(window(-2000000000), "-2s");
  EXPECT_EQ(window(INT64_MIN), "-2562047h47m16.854775808s");
}

TEST(ProtobufTest, RawExtensionAndManagedFields) {
  Pb meta = Meta("rev");
  meta.Msg(17, Pb().Bytes(1, "kubectl")
                   .Bytes(2, "Update")
                   .Bytes(3, "apps/v1")
                   .Msg(4, Pb().Varint(1, 1795750231))
                   .Bytes(6, "FieldsV1")
                   .Msg(7, Pb().Bytes(1, R"({"f:metadata":{"f:labels":{}}})")));
  Pb revision;
  revision.Msg(1, meta).Msg(2, Pb().Bytes(1, R"({"spec":{"template":{"x":[1,2]}}})")).Varint(3, 4);
  Json j = Decode(Body("apps/v1", "ControllerRevision", revision));
  EXPECT_EQ(j["data"], Json::parse(R"({"spec":{"template":{"x":[1,2]}}})"));
  EXPECT_EQ(j["revision"], 4);
  EXPECT_EQ(j["metadata"]["managedFields"], Json::parse(R"([{"manager":"kubectl",
      "operation":"Update","apiVersion":"apps/v1","time":"2026-11-27T03:30:31Z",
      "fieldsType":"FieldsV1","fieldsV1":{"f:metadata":{"f:labels":{}}}}])"));

  base::Status s = DecodeError(
      Body("apps/v1", "ControllerRevision", Pb().Msg(2, Pb().Bytes(1, "\x0a\x03not json"))));
  EXPECT_EQ(s.code(), Code::kBadRequest);
  EXPECT_THAT(s.message(), HasSubstr("does not hold JSON"));
}

TEST(ProtobufTest, DeleteOptionsUnderAnyGroupVersion) {
  Pb options;
  options.Varint(1, 0).Msg(2, Pb().Bytes(1, "u-1")).Bytes(4, "Foreground").Bytes(5, "All");
  for (const char* api_version : {"v1", "meta.k8s.io/v1", "apps/v1"}) {
    EXPECT_EQ(Decode(Body(api_version, "DeleteOptions", options)),
              Json({{"apiVersion", api_version},
                    {"kind", "DeleteOptions"},
                    {"gracePeriodSeconds", 0},
                    {"preconditions", {{"uid", "u-1"}}},
                    {"propagationPolicy", "Foreground"},
                    {"dryRun", {"All"}}}));
  }
}

TEST(ProtobufTest, ScaleEvictionAndBinding) {
  Json scale = Decode(Body("autoscaling/v1", "Scale",
                           Pb().Msg(1, Meta("web"))
                               .Msg(2, Pb().Varint(1, 0))
                               .Msg(3, Pb().Varint(1, 2).Bytes(2, "app=web"))));
  EXPECT_EQ(scale, Json::parse(R"({"apiVersion":"autoscaling/v1","kind":"Scale",
      "metadata":{"name":"web"},"spec":{},"status":{"replicas":2,"selector":"app=web"}})"));
  Json eviction =
      Decode(Body("policy/v1", "Eviction", Pb().Msg(1, Meta("p")).Msg(2, Pb().Varint(1, 5))));
  EXPECT_EQ(eviction["deleteOptions"], Json({{"gracePeriodSeconds", 5}}));
  Json binding = Decode(Body("v1", "Binding",
                             Pb().Msg(1, Meta("p"))
                                 .Msg(2, Pb().Bytes(1, "Node")
                                             .Bytes(2, "")
                                             .Bytes(3, "n1")
                                             .Bytes(4, "")
                                             .Bytes(5, "")
                                             .Bytes(6, "")
                                             .Bytes(7, ""))));
  EXPECT_EQ(binding["target"], Json({{"kind", "Node"}, {"name", "n1"}}));
}

TEST(ProtobufTest, PackedAndUnpackedRepeatedIntegers) {
  auto values = [](const Pb& requirement) {
    Pb rule;
    rule.Bytes(1, "FailJob").Msg(2, requirement);
    Pb spec;
    spec.Msg(11, Pb().Msg(1, rule));
    Json job = Decode(Body("batch/v1", "Job", Pb().Msg(2, spec)));
    return job["spec"]["podFailurePolicy"]["rules"][0]["onExitCodes"]["values"];
  };
  EXPECT_EQ(values(Pb().Bytes(2, "In").Varint(3, 1).Varint(3, 42)), Json({1, 42}));
  EXPECT_EQ(values(Pb().Bytes(2, "In").Bytes(3, "\x01\x2a\x80\x01")), Json({1, 42, 128}));
  // int32 values travel as 10-byte sign-extended varints.
  EXPECT_EQ(values(Pb().Varint(3, static_cast<uint64_t>(int64_t{-3}))), Json({-3}));
}

TEST(ProtobufTest, RepeatedSingularMessageMerges) {
  Pb deployment;
  deployment.Msg(1, Pb().Bytes(1, "a").Entry(11, "x", "1"))
      .Msg(1, Pb().Bytes(3, "ns").Entry(11, "y", "2").Bytes(1, "b"));
  EXPECT_EQ(Decode(Body("apps/v1", "Deployment", deployment))["metadata"],
            Json::parse(R"({"name":"b","namespace":"ns","labels":{"x":"1","y":"2"}})"));
}

TEST(ProtobufTest, MapEntryDefaultsAndInvalidUtf8) {
  Pb cm;
  cm.Msg(2, Pb().Bytes(1, "no-value"))
      .Msg(2, Pb().Bytes(2, "no-key"))
      .Entry(2, "bad",
             "a\xff"
             "b\xc3");
  Json j = Decode(Body("v1", "ConfigMap", cm));
  EXPECT_EQ(j["data"], Json::parse("{\"no-value\":\"\",\"\":\"no-key\","
                                   "\"bad\":\"a\xef\xbf\xbd"
                                   "b\xef\xbf\xbd\"}"));
}

TEST(ProtobufTest, IntOrStringOfUnknownType) {
  Pb strategy;
  strategy.Msg(2, Pb().Msg(1, Pb().Varint(1, 2)));
  base::Status s = DecodeError(Body("apps/v1", "Deployment", Pb().Msg(2, Pb().Msg(4, strategy))));
  EXPECT_EQ(s.code(), Code::kBadRequest);
  EXPECT_THAT(s.message(), HasSubstr("IntOrString of unknown type 2"));
}

TEST(ProtobufTest, UnknownKindIsUnsupportedMediaType) {
  base::Status s = DecodeError(Body("example.com/v1", "Widget", Pb()));
  EXPECT_EQ(s.code(), Code::kUnsupportedMediaType);
  EXPECT_THAT(s.message(),
              HasSubstr("the body of the request was in an unknown format - accepted media types "
                        "include: application/json, application/yaml"));
  EXPECT_THAT(s.message(), HasSubstr("\"example.com/v1\", kind \"Widget\""));
  // A known kind under a group version the decoder does not cover.
  EXPECT_EQ(DecodeError(Body("apps/v1beta1", "Deployment", Pb())).code(),
            Code::kUnsupportedMediaType);
}

TEST(ProtobufTest, CompressedEnvelopeIsUnsupported) {
  Pb unknown;
  unknown.Msg(1, Pb().Bytes(1, "v1").Bytes(2, "ConfigMap")).Bytes(2, "").Bytes(3, "gzip");
  base::Status s = DecodeError(std::string("k8s\0", 4) + unknown.str());
  EXPECT_EQ(s.code(), Code::kUnsupportedMediaType);
  EXPECT_THAT(s.message(), HasSubstr("gzip"));
}

TEST(ProtobufTest, UnknownFieldNamesMessageAndNumber) {
  Pb container;
  container.Bytes(1, "c").Bytes(99, "?");
  Pb spec;
  spec.Msg(2, container);
  base::Status s = DecodeError(Body("v1", "Pod", Pb().Msg(2, spec)));
  EXPECT_EQ(s.code(), Code::kBadRequest);
  EXPECT_THAT(s.message(), HasSubstr("unknown k8s.io.api.core.v1.Container field 99"));
}

TEST(ProtobufTest, WrongWireType) {
  base::Status s = DecodeError(Body("v1", "ConfigMap", Pb().Varint(1, 5)));
  EXPECT_EQ(s.code(), Code::kBadRequest);
  EXPECT_THAT(s.message(), HasSubstr("k8s.io.api.core.v1.ConfigMap field 1 (metadata)"));
  s = DecodeError(Body("v1", "ConfigMap", Pb().Msg(4, Pb())));  // immutable is a varint
  EXPECT_THAT(s.message(), HasSubstr("field 4 (immutable)"));
  s = DecodeError(Body("v1", "ConfigMap", Pb().Raw("\x0b")));  // field 1, start-group
  EXPECT_EQ(s.code(), Code::kBadRequest);
}

TEST(ProtobufTest, CorruptAndTruncatedBodies) {
  EXPECT_EQ(DecodeError("").code(), Code::kBadRequest);
  EXPECT_EQ(DecodeError("{\"kind\":\"ConfigMap\"}").code(), Code::kBadRequest);
  EXPECT_EQ(DecodeError(std::string("k8s\0", 4)).code(), Code::kBadRequest);  // no kind
  // A length running past the end.
  EXPECT_EQ(DecodeError(std::string("k8s\0\x0a\x7f\x0a", 7)).code(), Code::kBadRequest);
  // A varint longer than 10 bytes, and one whose 10th byte overflows 64 bits.
  EXPECT_EQ(DecodeError(Body("v1", "ConfigMap",
                             Pb().Raw("\x20\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01")))
                .code(),
            Code::kBadRequest);
  EXPECT_EQ(
      DecodeError(Body("v1", "ConfigMap", Pb().Raw("\x20\xff\xff\xff\xff\xff\xff\xff\xff\xff\x02")))
          .code(),
      Code::kBadRequest);
  // A length of 2^63.
  EXPECT_EQ(
      DecodeError(Body("v1", "ConfigMap", Pb().Raw("\x0a\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01")))
          .code(),
      Code::kBadRequest);
  // Field number 0.
  EXPECT_EQ(DecodeError(Body("v1", "ConfigMap", Pb().Raw("\x02\x00"))).code(), Code::kBadRequest);

  // Every strict prefix of a real body fails cleanly, or decodes when it ends between fields.
  std::string body = ReadHexFile("deployment.pb.hex");
  ASSERT_GT(body.size(), 100u);
  int failures = 0;
  for (std::size_t n = 0; n < body.size(); ++n) {
    auto r = DecodeKubernetesProtobuf(std::string_view(body).substr(0, n));
    if (!r.ok()) {
      EXPECT_EQ(r.status().code(), Code::kBadRequest) << n;
      ++failures;
    }
  }
  EXPECT_GT(failures, static_cast<int>(body.size()) / 2);
  // Every single-byte corruption is survived without a crash.
  for (std::size_t i = 4; i < body.size(); ++i) {
    std::string corrupt = body;
    corrupt[i] = static_cast<char>(corrupt[i] ^ 0x5a);
    (void)DecodeKubernetesProtobuf(corrupt);
  }
}

TEST(ProtobufTest, NestingIsBounded) {
  // RawExtension JSON that would take the document past base::kMaxJsonDepth.
  std::string deep(base::kMaxJsonDepth, '[');
  deep += std::string(base::kMaxJsonDepth, ']');
  base::Status s =
      DecodeError(Body("apps/v1", "ControllerRevision", Pb().Msg(2, Pb().Bytes(1, deep))));
  EXPECT_EQ(s.code(), Code::kBadRequest);
  EXPECT_THAT(s.message(), HasSubstr("nesting deeper than"));
  std::string shallow(10, '[');
  shallow += std::string(10, ']');
  EXPECT_TRUE(DecodeKubernetesProtobuf(
                  Body("apps/v1", "ControllerRevision", Pb().Msg(2, Pb().Bytes(1, shallow))))
                  .ok());
}

}  // namespace
}  // namespace fulcrum::api

namespace fulcrum::api {
namespace {

TEST(UnknownFieldsTest, NamesNestedUnknownFieldsWithTheirPaths) {
  base::Json deployment;
  ASSERT_TRUE(base::ParseJson(R"({"apiVersion": "apps/v1", "kind": "Deployment",
      "metadata": {"name": "d", "labelz": {"a": "b"}},
      "spec": {"replicas": 1, "template": {"spec": {"containers": [
        {"name": "c", "image": "x", "imagee": "typo", "resources": {"limits": {"cpu": "1"}}}]}}}})",
                              &deployment).ok());
  auto unknown = PruneUnknownFields(deployment, "apps/v1", "Deployment");
  ASSERT_TRUE(unknown.has_value());
  EXPECT_EQ(*unknown, (std::vector<std::string>{"metadata.labelz",
                                                "spec.template.spec.containers[0].imagee"}));
  EXPECT_FALSE(deployment["metadata"].contains("labelz"));
  EXPECT_FALSE(deployment["spec"]["template"]["spec"]["containers"][0].contains("imagee"));
  EXPECT_EQ(deployment["spec"]["template"]["spec"]["containers"][0]["image"], "x");
}

TEST(UnknownFieldsTest, InlineMembersAndSpecialTypesAreKnown) {
  base::Json pod;
  ASSERT_TRUE(base::ParseJson(R"({"apiVersion": "v1", "kind": "Pod",
      "metadata": {"name": "p", "creationTimestamp": "2026-01-01T00:00:00Z"},
      "spec": {"containers": [{"name": "c", "image": "x",
        "livenessProbe": {"httpGet": {"port": "http"}},
        "env": [{"name": "A", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "k"}}}]}]}})",
                              &pod).ok());
  base::Json before = pod;
  auto unknown = PruneUnknownFields(pod, "v1", "Pod");
  ASSERT_TRUE(unknown.has_value());
  EXPECT_TRUE(unknown->empty()) << (*unknown)[0];
  EXPECT_EQ(pod, before);
  EXPECT_FALSE(PruneUnknownFields(pod, "example.com/v1", "Widget").has_value());
}

}  // namespace
}  // namespace fulcrum::api
