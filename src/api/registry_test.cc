#include "api/registry.h"

#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include "api/validation.h"

namespace fulcrum::api {
namespace {

using std::chrono::hours;
using std::chrono::milliseconds;
using std::chrono::minutes;
using std::chrono::seconds;

std::string Dump(const FieldErrors& errors) {
  std::string out;
  for (const auto& e : errors) out += "  " + e.field + " [" + e.type + "] " + e.detail + "\n";
  return out;
}

bool Has(const FieldErrors& errors, const std::string& field, const std::string& type,
         const std::string& detail = "") {
  for (const auto& e : errors) {
    if (e.field == field && e.type == type && e.detail.find(detail) != std::string::npos) {
      return true;
    }
  }
  return false;
}

Json Obj(const char* text) { return Json::parse(text); }

WallTime At(const char* rfc3339) {
  WallTime t;
  EXPECT_TRUE(base::ParseRfc3339(rfc3339, &t)) << rfc3339;
  return t;
}

class RegistryTest : public ::testing::Test {
 protected:
  void SetUp() override { AddBuiltinTypes(&registry_); }

  const ResourceType& Type(const std::string& group, const std::string& plural) {
    const ResourceType* t = registry_.Find(group, "v1", plural);
    EXPECT_NE(t, nullptr) << group << "/" << plural;
    static ResourceType empty;
    return t != nullptr ? *t : empty;
  }

  // Defaults then validates, as the server does on create.
  FieldErrors Create(const std::string& group, const std::string& plural, Json& obj) {
    const ResourceType& t = Type(group, plural);
    t.set_defaults(obj);
    FieldErrors errors;
    t.validate(obj, nullptr, errors);
    return errors;
  }

  FieldErrors Update(const std::string& group, const std::string& plural, Json& obj,
                     const Json& old_obj) {
    const ResourceType& t = Type(group, plural);
    t.set_defaults(obj);
    FieldErrors errors;
    t.validate(obj, &old_obj, errors);
    return errors;
  }

  std::vector<Json> Cells(const std::string& group, const std::string& plural, const Json& obj) {
    return Type(group, plural).cells(obj, now_);
  }

  Registry registry_;
  WallTime now_ = At("2025-01-01T12:00:00Z");
};

// ---------------------------------------------------------------------------------------------
// Registration.

TEST_F(RegistryTest, EveryKindIsRegisteredAsKubernetesNamesIt) {
  struct Want {
    const char* group;
    const char* kind;
    const char* plural;
    const char* singular;
    bool namespaced;
    std::vector<std::string> short_names;
    std::vector<std::string> categories;
    bool has_status;
    bool has_scale;
  } want[] = {
      {"", "Namespace", "namespaces", "namespace", false, {"ns"}, {}, true, false},
      {"", "Node", "nodes", "node", false, {"no"}, {}, true, false},
      {"", "Pod", "pods", "pod", true, {"po"}, {"all"}, true, false},
      {"", "Service", "services", "service", true, {"svc"}, {"all"}, true, false},
      {"", "Endpoints", "endpoints", "endpoints", true, {"ep"}, {}, false, false},
      {"", "ConfigMap", "configmaps", "configmap", true, {"cm"}, {}, false, false},
      {"", "Secret", "secrets", "secret", true, {}, {}, false, false},
      {"", "Event", "events", "event", true, {"ev"}, {}, false, false},
      {"", "ServiceAccount", "serviceaccounts", "serviceaccount", true, {"sa"}, {}, false, false},
      {"apps", "Deployment", "deployments", "deployment", true, {"deploy"}, {"all"}, true, true},
      {"apps", "ReplicaSet", "replicasets", "replicaset", true, {"rs"}, {"all"}, true, true},
      {"batch", "Job", "jobs", "job", true, {}, {"all"}, true, false},
      {"scheduling.k8s.io", "PriorityClass", "priorityclasses", "priorityclass", false, {"pc"}, {}, false, false},
      {"scheduling.fulcrum.dev", "AppProfile", "appprofiles", "appprofile", true, {"ap"}, {}, true, false},
      {"scheduling.fulcrum.dev", "NodeMetric", "nodemetrics", "nodemetric", false, {"nm"}, {}, true, false},
      {"coordination.k8s.io", "Lease", "leases", "lease", true, {}, {}, false, false},
      {"discovery.k8s.io",
       "EndpointSlice",
       "endpointslices",
       "endpointslice",
       true,
       {},
       {},
       false,
       false},
  };
  EXPECT_EQ(registry_.types().size(), std::size(want));
  for (const auto& w : want) {
    const char* version = std::string(w.group) == "scheduling.fulcrum.dev" ? "v1alpha1" : "v1";
    const ResourceType* t = registry_.Find(w.group, version, w.plural);
    ASSERT_NE(t, nullptr) << w.plural;
    EXPECT_EQ(t->kind, w.kind);
    EXPECT_EQ(t->singular, w.singular);
    EXPECT_EQ(t->namespaced, w.namespaced) << w.plural;
    EXPECT_EQ(t->short_names, w.short_names) << w.plural;
    EXPECT_EQ(t->categories, w.categories) << w.plural;
    EXPECT_EQ(t->has_status, w.has_status) << w.plural;
    EXPECT_EQ(t->has_scale, w.has_scale) << w.plural;
    EXPECT_EQ(registry_.FindKind(w.group, w.kind), t);
    EXPECT_TRUE(t->set_defaults && t->validate && t->cells && t->selectable_field) << w.plural;
    EXPECT_EQ(t->server_adds_name_column, std::string(w.kind) != "Event");
  }
  EXPECT_EQ(registry_.Find("apps", "v1", "pods"), nullptr);
  EXPECT_EQ(registry_.FindKind("", "Deployment"), nullptr);
  EXPECT_EQ(
      registry_.GroupVersions(),
      (std::vector<std::string>{"v1", "apps/v1", "batch/v1", "coordination.k8s.io/v1",
                                "discovery.k8s.io/v1", "scheduling.k8s.io/v1",
                                "scheduling.fulcrum.dev/v1alpha1"}));
  EXPECT_EQ(Type("apps", "deployments").GroupVersion(), "apps/v1");
  EXPECT_EQ(Type("", "pods").ListKind(), "PodList");
}

TEST_F(RegistryTest, AddReplacesTheSameResource) {
  ResourceType replacement;
  replacement.version = "v1";
  replacement.kind = "Pod";
  replacement.plural = "pods";
  size_t before = registry_.types().size();
  registry_.Add(replacement);
  EXPECT_EQ(registry_.types().size(), before);
  const ResourceType* t = registry_.Find("", "v1", "pods");
  ASSERT_NE(t, nullptr);
  EXPECT_TRUE(t->short_names.empty());
  // Functions left empty are filled with harmless ones.
  Json obj = Json::object();
  t->set_defaults(obj);
  FieldErrors errors;
  t->validate(obj, nullptr, errors);
  EXPECT_TRUE(errors.empty());
  std::string value;
  EXPECT_FALSE(t->selectable_field(obj, "spec.nodeName", &value));
}

TEST_F(RegistryTest, CellsMatchColumnsAndHostileObjectsNeverThrow) {
  const Json hostile[] = {
      Json::object(),
      Json(),
      Json("text"),
      Obj(R"({"metadata":"x","spec":7,"status":[]})"),
      Obj(R"({"metadata":{"name":5,"labels":"x","annotations":[1]},
              "spec":{"containers":"x","volumes":{"a":1},"ports":[1,"x",null],
                      "selector":[1],"template":"x","strategy":"x","replicas":"x",
                      "taints":[1],"type":9,"tolerations":[1]},
              "status":{"containerStatuses":[1,{"state":"x"}],"conditions":"x"},
              "data":[1],"subsets":[{"addresses":"x","ports":[{}]}],
              "endpoints":[1,{"addresses":[1]}],"involvedObject":1})"),
      Obj(R"({"spec":{"containers":[{"name":1,"image":[],"ports":[{"containerPort":"80"}],
              "env":[{"name":null,"valueFrom":{"fieldRef":5}}],"resources":{"limits":{"cpu":[]}},
              "volumeMounts":[{"name":3}],"livenessProbe":{"httpGet":7}}],
              "template":{"metadata":{"labels":5},"spec":{"containers":[3]}},
              "selector":{"matchLabels":{"a":1},"matchExpressions":{"x":1}},
              "strategy":{"type":"RollingUpdate","rollingUpdate":{"maxSurge":[1],"maxUnavailable":{}}}}})"),
  };
  // Quantities near the representable limit must not overflow when summed.
  Json huge = Obj(R"({"spec":{"containers":[
      {"name":"a","image":"x","resources":{"requests":{"cpu":"1e29"},"limits":{"cpu":"1e29"}}},
      {"name":"b","image":"x","resources":{"requests":{"cpu":"1e29"},"limits":{"cpu":"1e29"}}}]}})");
  Type("", "pods").set_defaults(huge);
  const Json valid_old[] = {
      Obj(R"({"metadata":{"name":"a","namespace":"d","deletionTimestamp":"2025-01-01T00:00:00Z"},
              "spec":{"containers":[{"name":"c","image":"x"}],"tolerations":[{"key":"k"}],
                      "activeDeadlineSeconds":5,"selector":{"matchLabels":{"a":"b"}},
                      "clusterIP":"10.0.0.1"},"immutable":true,"addressType":"IPv4"})"),
  };
  for (const auto& t : registry_.types()) {
    ASSERT_FALSE(t->columns.empty()) << t->plural;
    for (const Json& original : hostile) {
      Json obj = original;
      t->set_defaults(obj);
      FieldErrors errors;
      t->validate(obj, nullptr, errors);
      t->validate(obj, &original, errors);
      for (const Json& old_obj : valid_old) {
        Json valid = old_obj;
        t->set_defaults(valid);
        t->validate(obj, &valid, errors);
        t->validate(valid, &obj, errors);
      }
      for (const auto& e : errors) {
        EXPECT_NE(e.type, "InternalError") << t->plural << ": " << e.detail << "\n"
                                           << original.dump();
      }
      auto cells = t->cells(obj, now_);
      EXPECT_EQ(cells.size(), t->columns.size()) << t->plural;
      std::string value;
      t->selectable_field(obj, "metadata.name", &value);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// HumanDuration.

TEST(HumanDurationTest, MatchesApimachinery) {
  EXPECT_EQ(HumanDuration(-seconds(5)), "<invalid>");
  EXPECT_EQ(HumanDuration(-milliseconds(1500)), "0s");
  EXPECT_EQ(HumanDuration(-milliseconds(500)), "0s");
  EXPECT_EQ(HumanDuration(seconds(0)), "0s");
  EXPECT_EQ(HumanDuration(milliseconds(1999)), "1s");
  EXPECT_EQ(HumanDuration(seconds(59)), "59s");
  EXPECT_EQ(HumanDuration(seconds(119)), "119s");
  EXPECT_EQ(HumanDuration(seconds(120)), "2m");
  EXPECT_EQ(HumanDuration(seconds(123)), "2m3s");
  EXPECT_EQ(HumanDuration(minutes(9) + seconds(59)), "9m59s");
  EXPECT_EQ(HumanDuration(minutes(10) + seconds(30)), "10m");
  EXPECT_EQ(HumanDuration(minutes(179)), "179m");
  EXPECT_EQ(HumanDuration(hours(3)), "3h");
  EXPECT_EQ(HumanDuration(hours(3) + minutes(10)), "3h10m");
  EXPECT_EQ(HumanDuration(hours(8) + minutes(10)), "8h");
  EXPECT_EQ(HumanDuration(hours(47)), "47h");
  EXPECT_EQ(HumanDuration(hours(48)), "2d");
  EXPECT_EQ(HumanDuration(hours(51)), "2d3h");
  EXPECT_EQ(HumanDuration(hours(24 * 8)), "8d");
  EXPECT_EQ(HumanDuration(hours(24 * 729)), "729d");
  EXPECT_EQ(HumanDuration(hours(24 * 730)), "2y");
  EXPECT_EQ(HumanDuration(hours(24 * 733)), "2y3d");
  EXPECT_EQ(HumanDuration(hours(24 * 365 * 8)), "8y");
  EXPECT_EQ(HumanDuration(hours(24 * 365 * 9 + 24 * 20)), "9y");
}

TEST(HumanDurationTest, TimestampAge) {
  WallTime now = At("2025-01-01T12:00:00Z");
  EXPECT_EQ(TimestampAge(Json("2025-01-01T11:55:00Z"), now), "5m");
  EXPECT_EQ(TimestampAge(Json("2025-01-01T11:56:57Z"), now), "3m3s");
  EXPECT_EQ(TimestampAge(Json(), now), "<unknown>");
  EXPECT_EQ(TimestampAge(Json(""), now), "<unknown>");
  EXPECT_EQ(TimestampAge(Json("yesterday"), now), "<unknown>");
  EXPECT_EQ(TimestampAge(Json("0001-01-01T00:00:00Z"), now), "<unknown>");
  EXPECT_EQ(TimestampAge(Json(7), now), "<unknown>");
}

// ---------------------------------------------------------------------------------------------
// Pods.

TEST_F(RegistryTest, MinimalPodGetsKubernetesDefaults) {
  Json pod = Obj(R"({"apiVersion":"v1","kind":"Pod",
      "metadata":{"name":"web","namespace":"default"},
      "spec":{"containers":[{"name":"nginx","image":"nginx","ports":[{"containerPort":80}]},
                            {"name":"side","image":"busybox:1.36"}],
              "volumes":[{"name":"scratch"}]}})");
  FieldErrors errors = Create("", "pods", pod);
  EXPECT_TRUE(errors.empty()) << Dump(errors);
  const Json& spec = pod["spec"];
  EXPECT_EQ(spec["restartPolicy"], "Always");
  EXPECT_EQ(spec["dnsPolicy"], "ClusterFirst");
  EXPECT_EQ(spec["terminationGracePeriodSeconds"], 30);
  EXPECT_EQ(spec["schedulerName"], "default-scheduler");
  EXPECT_EQ(spec["securityContext"], Json::object());
  EXPECT_EQ(spec["enableServiceLinks"], true);
  EXPECT_EQ(spec["serviceAccountName"], "default");
  EXPECT_EQ(spec["serviceAccount"], "default");
  EXPECT_EQ(spec["priority"], 0);
  EXPECT_EQ(spec["preemptionPolicy"], "PreemptLowerPriority");
  ASSERT_EQ(spec["tolerations"].size(), 2u);
  EXPECT_EQ(spec["tolerations"][0]["key"], "node.kubernetes.io/not-ready");
  EXPECT_EQ(spec["tolerations"][0]["tolerationSeconds"], 300);
  const Json& c0 = spec["containers"][0];
  EXPECT_EQ(c0["imagePullPolicy"], "Always");
  EXPECT_EQ(c0["terminationMessagePath"], "/dev/termination-log");
  EXPECT_EQ(c0["terminationMessagePolicy"], "File");
  EXPECT_EQ(c0["ports"][0]["protocol"], "TCP");
  EXPECT_EQ(c0["resources"], Json::object());
  EXPECT_EQ(spec["containers"][1]["imagePullPolicy"], "IfNotPresent");
  EXPECT_EQ(spec["volumes"][0]["emptyDir"], Json::object());
  EXPECT_EQ(pod["status"]["phase"], "Pending");
  EXPECT_EQ(pod["status"]["qosClass"], "BestEffort");

  Json again = pod;
  Type("", "pods").set_defaults(again);
  EXPECT_EQ(again, pod) << "defaulting is idempotent";
}

TEST_F(RegistryTest, PodPullPolicyAndQosClass) {
  auto pull = [&](const char* image) {
    Json pod = {{"metadata", {{"name", "p"}, {"namespace", "d"}}},
                {"spec", {{"containers", {{{"name", "c"}, {"image", image}}}}}}};
    Type("", "pods").set_defaults(pod);
    return pod["spec"]["containers"][0]["imagePullPolicy"].get<std::string>();
  };
  EXPECT_EQ(pull("nginx:latest"), "Always");
  EXPECT_EQ(pull("localhost:5000/nginx"), "Always");
  EXPECT_EQ(pull("localhost:5000/nginx:1.2"), "IfNotPresent");
  EXPECT_EQ(pull("nginx@sha256:abcd"), "IfNotPresent");

  Json guaranteed = Obj(R"({"metadata":{"name":"g","namespace":"d"},"spec":{"containers":[
      {"name":"c","image":"x:1","resources":{"limits":{"cpu":"500m","memory":"128Mi"}}}]}})");
  EXPECT_TRUE(Create("", "pods", guaranteed).empty());
  EXPECT_EQ(guaranteed["spec"]["containers"][0]["resources"]["requests"]["cpu"], "500m")
      << "requests default to limits";
  EXPECT_EQ(guaranteed["status"]["qosClass"], "Guaranteed");
  Json burstable = Obj(R"({"metadata":{"name":"b","namespace":"d"},"spec":{"containers":[
      {"name":"c","image":"x:1","resources":{"requests":{"cpu":"100m"}}}]}})");
  EXPECT_TRUE(Create("", "pods", burstable).empty());
  EXPECT_EQ(burstable["status"]["qosClass"], "Burstable");
}

TEST_F(RegistryTest, HostNetworkPodsUseHostPorts) {
  Json pod = Obj(R"({"metadata":{"name":"p","namespace":"d"},"spec":{"hostNetwork":true,
      "containers":[{"name":"c","image":"x:1","ports":[{"containerPort":8080}]}]}})");
  EXPECT_TRUE(Create("", "pods", pod).empty());
  EXPECT_EQ(pod["spec"]["containers"][0]["ports"][0]["hostPort"], 8080);
  pod["spec"]["containers"][0]["ports"][0]["hostPort"] = 9090;
  FieldErrors errors;
  Type("", "pods").validate(pod, nullptr, errors);
  EXPECT_TRUE(Has(errors, "spec.containers[0].ports[0].hostPort", "FieldValueInvalid",
                  "must match `containerPort` when `hostNetwork` is true"))
      << Dump(errors);
}

TEST_F(RegistryTest, InvalidPodsAreRejectedWithFieldPaths) {
  Json no_containers = Obj(R"({"metadata":{"name":"p","namespace":"d"},"spec":{}})");
  FieldErrors errors = Create("", "pods", no_containers);
  EXPECT_TRUE(Has(errors, "spec.containers", "FieldValueRequired", "Required value"))
      << Dump(errors);

  Json bad = Obj(R"({"metadata":{"name":"Bad_Name","namespace":"d","labels":{"app":"no spaces"}},
      "spec":{"restartPolicy":"Sometimes",
        "volumes":[{"name":"data","emptyDir":{},"hostPath":{"path":"/x"}},{"name":"cfg","configMap":{"name":"c"}},
                   {"name":"cfg","secret":{"secretName":"s"}}],
        "containers":[
          {"name":"Web","image":"nginx","ports":[{"containerPort":70000},{"containerPort":80,"protocol":"HTTP"}],
           "resources":{"requests":{"cpu":"2","memory":"lots"},"limits":{"cpu":"1"}},
           "volumeMounts":[{"name":"missing","mountPath":"/m"},{"name":"cfg","mountPath":"/m"}],
           "env":[{"name":"A=B"},{"name":"X","valueFrom":{}}]},
          {"name":"side"},
          {"name":"side","image":"busybox"}]}})");
  errors = Create("", "pods", bad);
  EXPECT_TRUE(Has(errors, "metadata.name", "FieldValueInvalid", "Invalid value: \"Bad_Name\""))
      << Dump(errors);
  EXPECT_TRUE(Has(errors, "metadata.labels", "FieldValueInvalid", "\"no spaces\""));
  EXPECT_TRUE(Has(
      errors, "spec.restartPolicy", "FieldValueNotSupported",
      "Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\""));
  EXPECT_TRUE(Has(errors, "spec.volumes[0].emptyDir", "FieldValueForbidden",
                  "may not specify more than 1 volume type"));
  EXPECT_TRUE(
      Has(errors, "spec.volumes[2].name", "FieldValueDuplicate", "Duplicate value: \"cfg\""));
  EXPECT_TRUE(Has(errors, "spec.containers[0].name", "FieldValueInvalid",
                  "Invalid value: \"Web\": a lowercase RFC 1123 label"));
  EXPECT_TRUE(Has(errors, "spec.containers[0].ports[0].containerPort", "FieldValueInvalid",
                  "Invalid value: 70000: must be between 1 and 65535, inclusive"));
  EXPECT_TRUE(Has(errors, "spec.containers[0].ports[1].protocol", "FieldValueNotSupported",
                  "supported values: \"SCTP\", \"TCP\", \"UDP\""));
  EXPECT_TRUE(Has(errors, "spec.containers[0].resources.requests[memory]", "FieldValueInvalid",
                  "quantities must match the regular expression"));
  EXPECT_TRUE(Has(errors, "spec.containers[0].resources.requests", "FieldValueInvalid",
                  "Invalid value: \"2\": must be less than or equal to cpu limit of 1"));
  EXPECT_TRUE(Has(errors, "spec.containers[0].volumeMounts[0].name", "FieldValueNotFound",
                  "Not found: \"missing\""));
  EXPECT_TRUE(Has(errors, "spec.containers[0].volumeMounts[1].mountPath", "FieldValueInvalid",
                  "must be unique"));
  EXPECT_TRUE(Has(errors, "spec.containers[0].env[0].name", "FieldValueInvalid"));
  EXPECT_TRUE(Has(errors, "spec.containers[0].env[1].valueFrom", "FieldValueInvalid",
                  "must specify one of"));
  EXPECT_TRUE(Has(errors, "spec.containers[1].image", "FieldValueRequired"));
  EXPECT_TRUE(Has(errors, "spec.containers[2].name", "FieldValueDuplicate", "\"side\""));
}

Json RunningPod() {
  return Obj(R"({"metadata":{"name":"web","namespace":"default","uid":"u1",
      "creationTimestamp":"2025-01-01T11:55:00Z","resourceVersion":"5"},
      "spec":{"containers":[{"name":"nginx","image":"nginx:1.25"}],"nodeName":"node-1"},
      "status":{"phase":"Running","podIP":"10.244.0.5","podIPs":[{"ip":"10.244.0.5"}],
        "conditions":[{"type":"Ready","status":"True"}],
        "containerStatuses":[{"name":"nginx","ready":true,"restartCount":0,
          "state":{"running":{"startedAt":"2025-01-01T11:55:02Z"}}}]}})");
}

TEST_F(RegistryTest, PodSpecUpdatesAreForbiddenExceptImagesAndFriends) {
  Json old_pod = RunningPod();
  Type("", "pods").set_defaults(old_pod);

  Json new_image = old_pod;
  new_image["spec"]["containers"][0]["image"] = "nginx:1.26";
  new_image["metadata"]["labels"]["extra"] = "yes";
  EXPECT_TRUE(Update("", "pods", new_image, old_pod).empty())
      << Dump(Update("", "pods", new_image, old_pod));

  Json more_tolerations = old_pod;
  more_tolerations["spec"]["tolerations"].push_back(
      {{"key", "dedicated"}, {"operator", "Exists"}, {"effect", "NoSchedule"}});
  FieldErrors errors = Update("", "pods", more_tolerations, old_pod);
  EXPECT_TRUE(errors.empty()) << Dump(errors);

  Json new_policy = old_pod;
  new_policy["spec"]["restartPolicy"] = "Never";
  errors = Update("", "pods", new_policy, old_pod);
  ASSERT_TRUE(Has(errors, "spec", "FieldValueForbidden",
                  "Forbidden: pod updates may not change fields other than "
                  "`spec.containers[*].image`,`spec.initContainers[*].image`,"
                  "`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing "
                  "tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if "
                  "it was previously negative)"))
      << Dump(errors);
  EXPECT_NE(errors[0].detail.find("restartPolicy"), std::string::npos)
      << "the diff names the field";

  Json fewer = old_pod;
  fewer["spec"]["containers"] = Json::array();
  errors = Update("", "pods", fewer, old_pod);
  EXPECT_TRUE(Has(errors, "spec.containers", "FieldValueForbidden",
                  "pod updates may not add or remove containers"))
      << Dump(errors);

  Json renamed = old_pod;
  renamed["metadata"]["name"] = "other";
  errors = Update("", "pods", renamed, old_pod);
  EXPECT_TRUE(Has(errors, "metadata.name", "FieldValueInvalid", "field is immutable"));

  Json deadline = old_pod;
  deadline["spec"]["activeDeadlineSeconds"] = 30;
  EXPECT_TRUE(Update("", "pods", deadline, old_pod).empty());
  Json longer = deadline;
  longer["spec"]["activeDeadlineSeconds"] = 60;
  errors = Update("", "pods", longer, deadline);
  EXPECT_TRUE(Has(errors, "spec.activeDeadlineSeconds", "FieldValueInvalid",
                  "must be less than or equal to previous value"));
}

TEST_F(RegistryTest, PodCellsRunning) {
  auto cells = Cells("", "pods", RunningPod());
  ASSERT_EQ(cells.size(), 8u);
  EXPECT_EQ(cells[0], "1/1");
  EXPECT_EQ(cells[1], "Running");
  EXPECT_EQ(cells[2], "0");
  EXPECT_EQ(cells[3], "5m");
  EXPECT_EQ(cells[4], "10.244.0.5");
  EXPECT_EQ(cells[5], "node-1");
  EXPECT_EQ(cells[6], "<none>");
  EXPECT_EQ(cells[7], "<none>");
  const auto& cols = Type("", "pods").columns;
  EXPECT_EQ(cols[0].name, "Ready");
  EXPECT_EQ(cols[3].name, "Age");
  EXPECT_EQ(cols[4].priority, 1);
}

TEST_F(RegistryTest, PodCellsCrashLoopBackOff) {
  Json pod = RunningPod();
  pod["status"]["conditions"][0]["status"] = "False";
  pod["status"]["containerStatuses"][0] = Obj(R"({"name":"nginx","ready":false,"restartCount":5,
      "state":{"waiting":{"reason":"CrashLoopBackOff"}},
      "lastState":{"terminated":{"exitCode":1,"reason":"Error","finishedAt":"2025-01-01T11:58:00Z"}}})");
  auto cells = Cells("", "pods", pod);
  EXPECT_EQ(cells[0], "0/1");
  EXPECT_EQ(cells[1], "CrashLoopBackOff");
  EXPECT_EQ(cells[2], "5 (2m ago)");
}

TEST_F(RegistryTest, PodCellsCompletedErrorTerminatingInit) {
  Json done = RunningPod();
  done["status"]["phase"] = "Succeeded";
  done["status"]["containerStatuses"][0] = Obj(R"({"name":"nginx","ready":false,"restartCount":0,
      "state":{"terminated":{"exitCode":0,"reason":"Completed"}}})");
  auto cells = Cells("", "pods", done);
  EXPECT_EQ(cells[0], "0/1");
  EXPECT_EQ(cells[1], "Completed");

  Json failed = done;
  failed["status"]["phase"] = "Failed";
  failed["status"]["containerStatuses"][0]["state"]["terminated"] = {{"exitCode", 137}};
  EXPECT_EQ(Cells("", "pods", failed)[1], "ExitCode:137");
  failed["status"]["containerStatuses"][0]["state"]["terminated"]["reason"] = "Error";
  EXPECT_EQ(Cells("", "pods", failed)[1], "Error");

  Json terminating = RunningPod();
  terminating["metadata"]["deletionTimestamp"] = "2025-01-01T11:59:00Z";
  EXPECT_EQ(Cells("", "pods", terminating)[1], "Terminating");
  done["metadata"]["deletionTimestamp"] = "2025-01-01T11:59:00Z";
  EXPECT_EQ(Cells("", "pods", done)[1], "Completed") << "terminal pods are not Terminating";

  Json pending = Obj(R"({"metadata":{"name":"p","namespace":"d"},
      "spec":{"initContainers":[{"name":"init","image":"busybox"}],
              "containers":[{"name":"c","image":"x"}]},
      "status":{"phase":"Pending","initContainerStatuses":[{"name":"init","ready":false,
        "restartCount":0,"state":{"running":{}}}]}})");
  cells = Cells("", "pods", pending);
  EXPECT_EQ(cells[1], "Init:0/1");
  EXPECT_EQ(cells[3], "<unknown>");
  EXPECT_EQ(cells[4], "<none>");

  Json image_error = pending;
  image_error["status"]["initContainerStatuses"][0]["state"] = {
      {"waiting", {{"reason", "ImagePullBackOff"}}}};
  EXPECT_EQ(Cells("", "pods", image_error)[1], "Init:ImagePullBackOff");
}

TEST_F(RegistryTest, PodSelectableFields) {
  const auto& t = Type("", "pods");
  Json pod = RunningPod();
  t.set_defaults(pod);
  std::string value;
  ASSERT_TRUE(t.selectable_field(pod, "spec.nodeName", &value));
  EXPECT_EQ(value, "node-1");
  ASSERT_TRUE(t.selectable_field(pod, "status.phase", &value));
  EXPECT_EQ(value, "Running");
  ASSERT_TRUE(t.selectable_field(pod, "status.podIP", &value));
  EXPECT_EQ(value, "10.244.0.5");
  ASSERT_TRUE(t.selectable_field(pod, "spec.restartPolicy", &value));
  EXPECT_EQ(value, "Always");
  ASSERT_TRUE(t.selectable_field(pod, "spec.serviceAccountName", &value));
  EXPECT_EQ(value, "default");
  ASSERT_TRUE(t.selectable_field(pod, "status.nominatedNodeName", &value));
  EXPECT_EQ(value, "");
  ASSERT_TRUE(t.selectable_field(pod, "metadata.namespace", &value));
  EXPECT_EQ(value, "default");
  EXPECT_FALSE(t.selectable_field(pod, "spec.containers", &value));
}

// ---------------------------------------------------------------------------------------------
// Deployments and ReplicaSets.

Json MinimalDeployment() {
  return Obj(R"({"apiVersion":"apps/v1","kind":"Deployment",
      "metadata":{"name":"web","namespace":"default","creationTimestamp":"2025-01-01T09:00:00Z"},
      "spec":{"selector":{"matchLabels":{"app":"web"}},
        "template":{"metadata":{"labels":{"app":"web"}},
          "spec":{"containers":[{"name":"nginx","image":"nginx:1.25"},{"name":"log","image":"busybox"}]}}}})");
}

TEST_F(RegistryTest, MinimalDeploymentGetsKubernetesDefaults) {
  Json d = MinimalDeployment();
  FieldErrors errors = Create("apps", "deployments", d);
  EXPECT_TRUE(errors.empty()) << Dump(errors);
  EXPECT_EQ(d["spec"]["replicas"], 1);
  EXPECT_EQ(d["spec"]["strategy"]["type"], "RollingUpdate");
  EXPECT_EQ(d["spec"]["strategy"]["rollingUpdate"]["maxSurge"], "25%");
  EXPECT_EQ(d["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"], "25%");
  EXPECT_EQ(d["spec"]["revisionHistoryLimit"], 10);
  EXPECT_EQ(d["spec"]["progressDeadlineSeconds"], 600);
  const Json& pod_spec = d["spec"]["template"]["spec"];
  EXPECT_EQ(pod_spec["restartPolicy"], "Always");
  EXPECT_EQ(pod_spec["containers"][0]["imagePullPolicy"], "IfNotPresent");
  EXPECT_EQ(pod_spec["containers"][1]["imagePullPolicy"], "Always");
  EXPECT_FALSE(pod_spec.contains("serviceAccountName")) << "admission defaults are for pods only";
  EXPECT_FALSE(d.contains("status"));
}

TEST_F(RegistryTest, DeploymentValidation) {
  Json mismatch = MinimalDeployment();
  mismatch["spec"]["template"]["metadata"]["labels"]["app"] = "api";
  FieldErrors errors = Create("apps", "deployments", mismatch);
  EXPECT_TRUE(Has(errors, "spec.template.metadata.labels", "FieldValueInvalid",
                  "Invalid value: map[string]string{\"app\":\"api\"}: `selector` does not match "
                  "template `labels`"))
      << Dump(errors);

  Json no_selector = MinimalDeployment();
  no_selector["spec"].erase("selector");
  errors = Create("apps", "deployments", no_selector);
  EXPECT_TRUE(Has(errors, "spec.selector", "FieldValueRequired")) << Dump(errors);

  Json empty_selector = MinimalDeployment();
  empty_selector["spec"]["selector"] = Json::object();
  errors = Create("apps", "deployments", empty_selector);
  EXPECT_TRUE(
      Has(errors, "spec.selector", "FieldValueInvalid", "empty selector is invalid for deployment"))
      << Dump(errors);

  Json bad = MinimalDeployment();
  bad["spec"]["replicas"] = -1;
  bad["spec"]["template"]["spec"]["restartPolicy"] = "Never";
  bad["spec"]["strategy"] = {{"type", "RollingUpdate"},
                             {"rollingUpdate", {{"maxSurge", 0}, {"maxUnavailable", "abc"}}}};
  errors = Create("apps", "deployments", bad);
  EXPECT_TRUE(Has(errors, "spec.replicas", "FieldValueInvalid",
                  "Invalid value: -1: must be greater than or equal to 0"))
      << Dump(errors);
  EXPECT_TRUE(Has(errors, "spec.template.spec.restartPolicy", "FieldValueNotSupported",
                  "Unsupported value: \"Never\": supported values: \"Always\""));
  EXPECT_TRUE(Has(errors, "spec.strategy.rollingUpdate.maxUnavailable", "FieldValueInvalid",
                  "Invalid value: abc: a valid percent string"));
  EXPECT_TRUE(Has(errors, "spec.strategy.rollingUpdate.maxUnavailable", "FieldValueInvalid",
                  "may not be 0 when `maxSurge` is 0"));

  Json no_containers = MinimalDeployment();
  no_containers["spec"]["template"]["spec"]["containers"] = Json::array();
  errors = Create("apps", "deployments", no_containers);
  EXPECT_TRUE(Has(errors, "spec.template.spec.containers", "FieldValueRequired")) << Dump(errors);

  Json old_d = MinimalDeployment();
  Type("apps", "deployments").set_defaults(old_d);
  Json moved = old_d;
  moved["spec"]["selector"]["matchLabels"]["tier"] = "front";
  moved["spec"]["template"]["metadata"]["labels"]["tier"] = "front";
  errors = Update("apps", "deployments", moved, old_d);
  EXPECT_TRUE(Has(errors, "spec.selector", "FieldValueInvalid",
                  "Invalid value: v1.LabelSelector{MatchLabels:map[string]string{\"app\":\"web\", "
                  "\"tier\":\"front\"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: "
                  "field is immutable"))
      << Dump(errors);
  Json scaled = old_d;
  scaled["spec"]["replicas"] = 5;
  errors = Update("apps", "deployments", scaled, old_d);
  EXPECT_TRUE(errors.empty()) << Dump(errors);
}

TEST_F(RegistryTest, DeploymentAndReplicaSetCells) {
  Json d = MinimalDeployment();
  d["spec"]["replicas"] = 3;
  d["status"] = {{"readyReplicas", 2}, {"updatedReplicas", 3}, {"availableReplicas", 2}};
  auto cells = Cells("apps", "deployments", d);
  ASSERT_EQ(cells.size(), 7u);
  EXPECT_EQ(cells[0], "2/3");
  EXPECT_EQ(cells[1], 3);
  EXPECT_EQ(cells[2], 2);
  EXPECT_EQ(cells[3], "3h");
  EXPECT_EQ(cells[4], "nginx,log");
  EXPECT_EQ(cells[5], "nginx:1.25,busybox");
  EXPECT_EQ(cells[6], "app=web");
  Json fresh = MinimalDeployment();
  EXPECT_EQ(Cells("apps", "deployments", fresh)[0], "0/0");

  Json rs = MinimalDeployment();
  rs["kind"] = "ReplicaSet";
  FieldErrors errors = Create("apps", "replicasets", rs);
  EXPECT_TRUE(errors.empty()) << Dump(errors);
  rs["status"] = {{"replicas", 1}, {"readyReplicas", 0}};
  cells = Cells("apps", "replicasets", rs);
  ASSERT_EQ(cells.size(), 7u);
  EXPECT_EQ(cells[0], 1);
  EXPECT_EQ(cells[1], 1);
  EXPECT_EQ(cells[2], 0);
  EXPECT_EQ(cells[6], "app=web");
  std::string value;
  ASSERT_TRUE(Type("apps", "replicasets").selectable_field(rs, "status.replicas", &value));
  EXPECT_EQ(value, "1");
}

TEST_F(RegistryTest, ReplicaSetSelectorRules) {
  Json rs = MinimalDeployment();
  rs["spec"]["selector"] =
      Obj(R"({"matchExpressions":[{"key":"app","operator":"In","values":["web","api"]}]})");
  EXPECT_TRUE(Create("apps", "replicasets", rs).empty());
  rs["spec"]["selector"]["matchExpressions"][0]["values"] = Json::array({"api"});
  FieldErrors errors = Create("apps", "replicasets", rs);
  EXPECT_TRUE(Has(errors, "spec.template.metadata.labels", "FieldValueInvalid")) << Dump(errors);
}

// ---------------------------------------------------------------------------------------------
// Services, nodes and the rest of core.

TEST_F(RegistryTest, ServiceDefaultsValidationAndCells) {
  Json svc = Obj(R"({"metadata":{"name":"web","namespace":"default",
      "creationTimestamp":"2025-01-01T11:00:00Z"},
      "spec":{"selector":{"app":"web"},"ports":[{"port":80}],"clusterIP":"10.96.0.10"}})");
  FieldErrors errors = Create("", "services", svc);
  EXPECT_TRUE(errors.empty()) << Dump(errors);
  EXPECT_EQ(svc["spec"]["type"], "ClusterIP");
  EXPECT_EQ(svc["spec"]["sessionAffinity"], "None");
  EXPECT_EQ(svc["spec"]["ports"][0]["protocol"], "TCP");
  EXPECT_EQ(svc["spec"]["ports"][0]["targetPort"], 80);
  EXPECT_EQ(svc["spec"]["ipFamilyPolicy"], "SingleStack");
  EXPECT_EQ(svc["spec"]["ipFamilies"], Json::array({"IPv4"}));
  EXPECT_EQ(svc["spec"]["clusterIPs"], Json::array({"10.96.0.10"}));
  EXPECT_EQ(svc["spec"]["internalTrafficPolicy"], "Cluster");
  auto cells = Cells("", "services", svc);
  ASSERT_EQ(cells.size(), 6u);
  EXPECT_EQ(cells[0], "ClusterIP");
  EXPECT_EQ(cells[1], "10.96.0.10");
  EXPECT_EQ(cells[2], "<none>");
  EXPECT_EQ(cells[3], "80/TCP");
  EXPECT_EQ(cells[4], "60m");
  EXPECT_EQ(cells[5], "app=web");

  Json node_port = Obj(R"({"metadata":{"name":"np","namespace":"default"},
      "spec":{"type":"NodePort","ports":[{"port":80,"targetPort":"http","nodePort":30080},
                                         {"name":"dns","port":53,"protocol":"UDP"}]}})");
  errors = Create("", "services", node_port);
  EXPECT_TRUE(Has(errors, "spec.ports[0].name", "FieldValueRequired")) << Dump(errors);
  EXPECT_EQ(node_port["spec"]["externalTrafficPolicy"], "Cluster");
  cells = Cells("", "services", node_port);
  EXPECT_EQ(cells[1], "<none>");
  EXPECT_EQ(cells[3], "80:30080/TCP,53/UDP");
  EXPECT_EQ(cells[5], "<none>");

  Json bad = Obj(R"({"metadata":{"name":"1web","namespace":"default"},
      "spec":{"type":"Magic","ports":[{"port":0,"nodePort":30000}]}})");
  errors = Create("", "services", bad);
  EXPECT_TRUE(Has(errors, "metadata.name", "FieldValueInvalid", "DNS-1035 label")) << Dump(errors);
  EXPECT_TRUE(
      Has(errors, "spec.type", "FieldValueNotSupported",
          "supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\""));
  EXPECT_TRUE(Has(errors, "spec.ports[0].port", "FieldValueInvalid",
                  "Invalid value: 0: must be between 1 and 65535"));

  Json cluster_ip_node_port = Obj(R"({"metadata":{"name":"x","namespace":"default"},
      "spec":{"ports":[{"port":80,"nodePort":30000}]}})");
  errors = Create("", "services", cluster_ip_node_port);
  EXPECT_TRUE(Has(errors, "spec.ports[0].nodePort", "FieldValueForbidden",
                  "may not be used when `type` is 'ClusterIP'"))
      << Dump(errors);

  Json no_ports = Obj(R"({"metadata":{"name":"x","namespace":"default"},"spec":{}})");
  errors = Create("", "services", no_ports);
  EXPECT_TRUE(Has(errors, "spec.ports", "FieldValueRequired"));
  Json headless =
      Obj(R"({"metadata":{"name":"x","namespace":"default"},"spec":{"clusterIP":"None"}})");
  EXPECT_TRUE(Create("", "services", headless).empty());

  Json moved = svc;
  moved["spec"]["clusterIP"] = "10.96.0.11";
  moved["spec"]["clusterIPs"] = Json::array({"10.96.0.11"});
  errors = Update("", "services", moved, svc);
  EXPECT_TRUE(Has(errors, "spec.clusterIP", "FieldValueInvalid", "field is immutable"))
      << Dump(errors);

  Json lb = Obj(R"({"metadata":{"name":"lb","namespace":"default"},
      "spec":{"type":"LoadBalancer","ports":[{"port":443}]}})");
  EXPECT_TRUE(Create("", "services", lb).empty());
  EXPECT_EQ(Cells("", "services", lb)[2], "<pending>");
  lb["status"]["loadBalancer"]["ingress"] = Json::array({{{"ip", "203.0.113.7"}}});
  EXPECT_EQ(Cells("", "services", lb)[2], "203.0.113.7");
}

TEST_F(RegistryTest, NodeCellsAndFields) {
  Json node = Obj(R"({"metadata":{"name":"node-1","creationTimestamp":"2024-12-30T12:00:00Z",
      "labels":{"node-role.kubernetes.io/control-plane":"","node-role.kubernetes.io/worker":"",
                "kubernetes.io/hostname":"node-1"}},
      "spec":{"unschedulable":true},
      "status":{"conditions":[{"type":"MemoryPressure","status":"False"},{"type":"Ready","status":"True"}],
        "addresses":[{"type":"InternalIP","address":"192.168.1.10"},{"type":"Hostname","address":"node-1"}],
        "capacity":{"cpu":"4","memory":"8Gi","pods":"110"},
        "nodeInfo":{"kubeletVersion":"v1.31.0","osImage":"Debian GNU/Linux 12","kernelVersion":"6.1.0",
                    "containerRuntimeVersion":"fulcrum://0.1"}}})");
  FieldErrors errors = Create("", "nodes", node);
  EXPECT_TRUE(errors.empty()) << Dump(errors);
  EXPECT_EQ(node["status"]["allocatable"], node["status"]["capacity"]);
  auto cells = Cells("", "nodes", node);
  ASSERT_EQ(cells.size(), 9u);
  EXPECT_EQ(cells[0], "Ready,SchedulingDisabled");
  EXPECT_EQ(cells[1], "control-plane,worker");
  EXPECT_EQ(cells[2], "2d");
  EXPECT_EQ(cells[3], "v1.31.0");
  EXPECT_EQ(cells[4], "192.168.1.10");
  EXPECT_EQ(cells[5], "<none>");
  EXPECT_EQ(cells[6], "Debian GNU/Linux 12");
  EXPECT_EQ(cells[8], "fulcrum://0.1");

  Json bare = Obj(R"({"metadata":{"name":"n2"}})");
  cells = Cells("", "nodes", bare);
  EXPECT_EQ(cells[0], "Unknown");
  EXPECT_EQ(cells[1], "<none>");
  EXPECT_EQ(cells[7], "<unknown>");
  bare["status"]["conditions"] = Json::array({{{"type", "Ready"}, {"status", "Unknown"}}});
  EXPECT_EQ(Cells("", "nodes", bare)[0], "NotReady");

  std::string value;
  ASSERT_TRUE(Type("", "nodes").selectable_field(node, "spec.unschedulable", &value));
  EXPECT_EQ(value, "true");

  Json tainted =
      Obj(R"({"metadata":{"name":"n3"},"spec":{"taints":[{"key":"k","effect":"Sometimes"}]}})");
  errors = Create("", "nodes", tainted);
  EXPECT_TRUE(Has(errors, "spec.taints[0].effect", "FieldValueNotSupported",
                  "supported values: \"NoSchedule\", \"PreferNoSchedule\", \"NoExecute\""))
      << Dump(errors);
}

TEST_F(RegistryTest, NamespaceDefaultsAndCells) {
  Json ns = Obj(R"({"metadata":{"name":"team-a","creationTimestamp":"2025-01-01T11:59:30Z"}})");
  FieldErrors errors = Create("", "namespaces", ns);
  EXPECT_TRUE(errors.empty()) << Dump(errors);
  EXPECT_EQ(ns["spec"]["finalizers"], Json::array({"kubernetes"}));
  EXPECT_EQ(ns["status"]["phase"], "Active");
  EXPECT_EQ(ns["metadata"]["labels"]["kubernetes.io/metadata.name"], "team-a");
  auto cells = Cells("", "namespaces", ns);
  EXPECT_EQ(cells, (std::vector<Json>{"Active", "30s"}));
  Json dotted = Obj(R"({"metadata":{"name":"team.a"}})");
  errors = Create("", "namespaces", dotted);
  EXPECT_TRUE(Has(errors, "metadata.name", "FieldValueInvalid", "must not contain dots"));
  std::string value;
  ASSERT_TRUE(Type("", "namespaces").selectable_field(ns, "status.phase", &value));
  EXPECT_EQ(value, "Active");
}

TEST_F(RegistryTest, ConfigMapsAndSecrets) {
  Json cm = Obj(R"({"metadata":{"name":"cfg","namespace":"default"},
      "data":{"app.properties":"a=b","bad key":"x"},"binaryData":{"blob":"AAEC"}})");
  FieldErrors errors = Create("", "configmaps", cm);
  EXPECT_TRUE(Has(errors, "data[bad key]", "FieldValueInvalid",
                  "Invalid value: \"bad key\": a valid config key must consist of alphanumeric "
                  "characters, '-', '_' or '.'"))
      << Dump(errors);
  EXPECT_EQ(Cells("", "configmaps", cm)[0], 3);

  Json immutable =
      Obj(R"({"metadata":{"name":"cfg","namespace":"default"},"immutable":true,"data":{"a":"1"}})");
  Json changed = immutable;
  changed["data"]["a"] = "2";
  errors = Update("", "configmaps", changed, immutable);
  EXPECT_TRUE(
      Has(errors, "data", "FieldValueForbidden", "field is immutable when `immutable` is set"));

  Json secret = Obj(R"({"metadata":{"name":"s","namespace":"default"},
      "data":{"password":"c2VjcmV0"},"stringData":{"user":"admin"}})");
  errors = Create("", "secrets", secret);
  EXPECT_TRUE(errors.empty()) << Dump(errors);
  EXPECT_EQ(secret["type"], "Opaque");
  EXPECT_EQ(secret["data"]["user"], "YWRtaW4=");
  EXPECT_FALSE(secret.contains("stringData"));
  auto cells = Cells("", "secrets", secret);
  EXPECT_EQ(cells[0], "Opaque");
  EXPECT_EQ(cells[1], 2);

  Json not_base64 =
      Obj(R"({"metadata":{"name":"s","namespace":"default"},"data":{"k":"not base64!"}})");
  errors = Create("", "secrets", not_base64);
  EXPECT_TRUE(Has(errors, "data[k]", "FieldValueInvalid", "illegal base64 data at input byte 3"))
      << Dump(errors);
  Json tls = Obj(
      R"({"metadata":{"name":"t","namespace":"default"},"type":"kubernetes.io/tls","data":{}})");
  errors = Create("", "secrets", tls);
  EXPECT_TRUE(Has(errors, "data[tls.crt]", "FieldValueRequired"));
  EXPECT_TRUE(Has(errors, "data[tls.key]", "FieldValueRequired"));
  Json retyped = secret;
  retyped["type"] = "kubernetes.io/basic-auth";
  errors = Update("", "secrets", retyped, secret);
  EXPECT_TRUE(Has(errors, "type", "FieldValueInvalid",
                  "Invalid value: \"kubernetes.io/basic-auth\": field is immutable"));
  std::string value;
  ASSERT_TRUE(Type("", "secrets").selectable_field(secret, "type", &value));
  EXPECT_EQ(value, "Opaque");
}

TEST_F(RegistryTest, EndpointsCells) {
  Json ep = Obj(R"({"metadata":{"name":"web","namespace":"default"},
      "subsets":[{"addresses":[{"ip":"10.0.0.1"},{"ip":"10.0.0.2"}],"ports":[{"port":80}]}]})");
  EXPECT_TRUE(Create("", "endpoints", ep).empty());
  EXPECT_EQ(ep["subsets"][0]["ports"][0]["protocol"], "TCP");
  EXPECT_EQ(Cells("", "endpoints", ep)[0], "10.0.0.1:80,10.0.0.2:80");
  ep["subsets"][0]["addresses"].push_back({{"ip", "10.0.0.3"}});
  ep["subsets"][0]["addresses"].push_back({{"ip", "fd00::4"}});
  EXPECT_EQ(Cells("", "endpoints", ep)[0], "10.0.0.1:80,10.0.0.2:80,10.0.0.3:80 + 1 more...");
  Json empty = Obj(R"({"metadata":{"name":"web","namespace":"default"}})");
  EXPECT_EQ(Cells("", "endpoints", empty)[0], "<none>");
  Json bad = Obj(R"({"metadata":{"name":"web","namespace":"default"},
      "subsets":[{"addresses":[{"ip":"not-an-ip"}],"ports":[{"port":80},{"port":81}]}]})");
  FieldErrors errors = Create("", "endpoints", bad);
  EXPECT_TRUE(
      Has(errors, "subsets[0].addresses[0].ip", "FieldValueInvalid", "must be a valid IP address"))
      << Dump(errors);
  EXPECT_TRUE(Has(errors, "subsets[0].ports[0].name", "FieldValueRequired"));
}

TEST_F(RegistryTest, EventsHaveNoLeadingNameColumn) {
  Json ev = Obj(R"({"metadata":{"name":"web.17a","namespace":"default"},
      "involvedObject":{"kind":"Pod","name":"web","namespace":"default","fieldPath":"spec.containers{nginx}"},
      "reason":"Pulled","message":"  Successfully pulled image  \n","type":"Normal",
      "source":{"component":"kubelet","host":"node-1"},
      "firstTimestamp":"2025-01-01T11:00:00Z","lastTimestamp":"2025-01-01T11:58:00Z","count":3})");
  FieldErrors errors = Create("", "events", ev);
  EXPECT_TRUE(errors.empty()) << Dump(errors);
  const auto& t = Type("", "events");
  EXPECT_FALSE(t.server_adds_name_column);
  ASSERT_EQ(t.columns.size(), 10u);
  EXPECT_EQ(t.columns[0].name, "Last Seen");
  EXPECT_EQ(t.columns[9].name, "Name");
  EXPECT_EQ(t.columns[9].priority, 1);
  auto cells = Cells("", "events", ev);
  EXPECT_EQ(cells, (std::vector<Json>{"2m", "Normal", "Pulled", "pod/web", "spec.containers{nginx}",
                                      "kubelet, node-1", "Successfully pulled image", "60m", 3,
                                      "web.17a"}));
  std::string value;
  ASSERT_TRUE(t.selectable_field(ev, "involvedObject.name", &value));
  EXPECT_EQ(value, "web");
  ASSERT_TRUE(t.selectable_field(ev, "source", &value));
  EXPECT_EQ(value, "kubelet");
  ASSERT_TRUE(t.selectable_field(ev, "type", &value));
  EXPECT_EQ(value, "Normal");

  Json elsewhere = ev;
  elsewhere["involvedObject"]["namespace"] = "other";
  errors = Create("", "events", elsewhere);
  EXPECT_TRUE(Has(errors, "involvedObject.namespace", "FieldValueInvalid",
                  "does not match event.namespace"));
}

TEST_F(RegistryTest, ServiceAccountsAndLeases) {
  Json sa =
      Obj(R"({"metadata":{"name":"default","namespace":"default"},"secrets":[{"name":"tok"}]})");
  EXPECT_TRUE(Create("", "serviceaccounts", sa).empty());
  EXPECT_EQ(Cells("", "serviceaccounts", sa)[0], 1);

  Json lease = Obj(R"({"metadata":{"name":"kube-scheduler","namespace":"kube-system"},
      "spec":{"holderIdentity":"node-1_abc","leaseDurationSeconds":15,
              "renewTime":"2025-01-01T11:59:59.123456Z"}})");
  FieldErrors errors = Create("coordination.k8s.io", "leases", lease);
  EXPECT_TRUE(errors.empty()) << Dump(errors);
  EXPECT_EQ(Cells("coordination.k8s.io", "leases", lease)[0], "node-1_abc");
  lease["spec"]["leaseDurationSeconds"] = 0;
  errors = Create("coordination.k8s.io", "leases", lease);
  EXPECT_TRUE(Has(errors, "spec.leaseDurationSeconds", "FieldValueInvalid",
                  "Invalid value: 0: must be greater than 0"));
}

TEST_F(RegistryTest, EndpointSlices) {
  Json slice = Obj(R"({"metadata":{"name":"web-abc","namespace":"default"},"addressType":"IPv4",
      "endpoints":[{"addresses":["10.0.0.1"]},{"addresses":["10.0.0.2"]}],
      "ports":[{"port":80},{"name":"metrics","port":9090}]})");
  FieldErrors errors = Create("discovery.k8s.io", "endpointslices", slice);
  EXPECT_TRUE(errors.empty()) << Dump(errors);
  EXPECT_EQ(slice["ports"][0]["protocol"], "TCP");
  EXPECT_EQ(slice["ports"][0]["name"], "");
  auto cells = Cells("discovery.k8s.io", "endpointslices", slice);
  EXPECT_EQ(cells[0], "IPv4");
  EXPECT_EQ(cells[1], "80,9090");
  EXPECT_EQ(cells[2], "10.0.0.1,10.0.0.2");
  Json empty = Obj(R"({"metadata":{"name":"e","namespace":"default"},"addressType":"IPv4"})");
  cells = Cells("discovery.k8s.io", "endpointslices", empty);
  EXPECT_EQ(cells[1], "<unset>");
  EXPECT_EQ(cells[2], "<unset>");

  Json bad = Obj(R"({"metadata":{"name":"b","namespace":"default"},
      "endpoints":[{"addresses":[]},{"addresses":["fd00::1"]}]})");
  errors = Create("discovery.k8s.io", "endpointslices", bad);
  EXPECT_TRUE(Has(errors, "addressType", "FieldValueRequired")) << Dump(errors);
  EXPECT_TRUE(Has(errors, "endpoints[0].addresses", "FieldValueRequired",
                  "must contain at least 1 address"));
  bad["addressType"] = "IPv4";
  errors = Create("discovery.k8s.io", "endpointslices", bad);
  EXPECT_TRUE(
      Has(errors, "endpoints[1].addresses[0]", "FieldValueInvalid", "must be a valid IPv4 address"))
      << Dump(errors);
  bad["addressType"] = "IPX";
  errors = Create("discovery.k8s.io", "endpointslices", bad);
  EXPECT_TRUE(Has(errors, "addressType", "FieldValueNotSupported",
                  "supported values: \"FQDN\", \"IPv4\", \"IPv6\""));
  Json v6 = slice;
  v6["addressType"] = "IPv6";
  errors = Update("discovery.k8s.io", "endpointslices", v6, slice);
  EXPECT_TRUE(Has(errors, "addressType", "FieldValueInvalid", "field is immutable"));
}

// ---------------------------------------------------------------------------------------------
// Jobs.

Json MinimalJob() {
  return Obj(R"({"apiVersion":"batch/v1","kind":"Job",
      "metadata":{"name":"pi","namespace":"default","uid":"u-1","creationTimestamp":"2025-01-01T09:00:00Z"},
      "spec":{"template":{"spec":{"restartPolicy":"Never",
          "containers":[{"name":"pi","image":"busybox"}]}}}})");
}

TEST_F(RegistryTest, JobGetsGeneratedSelectorAndDefaults) {
  Json job = MinimalJob();
  FieldErrors errors = Create("batch", "jobs", job);
  EXPECT_TRUE(errors.empty()) << Dump(errors);
  EXPECT_EQ(job["spec"]["completions"], 1);
  EXPECT_EQ(job["spec"]["parallelism"], 1);
  EXPECT_EQ(job["spec"]["backoffLimit"], 6);
  EXPECT_EQ(job["spec"]["completionMode"], "NonIndexed");
  EXPECT_EQ(job["spec"]["selector"]["matchLabels"]["batch.kubernetes.io/controller-uid"], "u-1");
  EXPECT_EQ(job["spec"]["template"]["metadata"]["labels"]["job-name"], "pi");

  Json parallel = MinimalJob();
  parallel["spec"]["parallelism"] = 3;
  EXPECT_TRUE(Create("batch", "jobs", parallel).empty());
  EXPECT_FALSE(parallel["spec"].contains("completions")) << "a work queue job has no completions";
  EXPECT_EQ(Cells("batch", "jobs", parallel)[1], "0/1 of 3");
}

TEST_F(RegistryTest, JobValidation) {
  Json always = MinimalJob();
  always["spec"]["template"]["spec"].erase("restartPolicy");
  FieldErrors errors = Create("batch", "jobs", always);
  EXPECT_TRUE(Has(errors, "spec.template.spec.restartPolicy", "FieldValueNotSupported",
                  "supported values: \"OnFailure\", \"Never\""))
      << Dump(errors);

  Json bad = MinimalJob();
  bad["spec"]["backoffLimit"] = -1;
  bad["spec"]["activeDeadlineSeconds"] = 0;
  errors = Create("batch", "jobs", bad);
  EXPECT_TRUE(Has(errors, "spec.backoffLimit", "FieldValueInvalid")) << Dump(errors);
  EXPECT_TRUE(Has(errors, "spec.activeDeadlineSeconds", "FieldValueInvalid")) << Dump(errors);

  Json old = MinimalJob();
  ASSERT_TRUE(Create("batch", "jobs", old).empty());
  Json changed = old;
  changed["spec"]["completions"] = 5;
  errors = Update("batch", "jobs", changed, old);
  EXPECT_TRUE(Has(errors, "spec.completions", "FieldValueInvalid", "field is immutable"))
      << Dump(errors);
}

TEST_F(RegistryTest, JobCells) {
  Json job = MinimalJob();
  ASSERT_TRUE(Create("batch", "jobs", job).empty());
  job["status"] = Obj(R"({"succeeded":1,"startTime":"2025-01-01T11:00:00Z",
      "completionTime":"2025-01-01T11:00:42Z",
      "conditions":[{"type":"Complete","status":"True"}]})");
  std::vector<Json> cells = Cells("batch", "jobs", job);
  EXPECT_EQ(cells[0], "Complete");
  EXPECT_EQ(cells[1], "1/1");
  EXPECT_EQ(cells[2], "42s");
  EXPECT_EQ(cells[3], "3h");
}

// ---------------------------------------------------------------------------------------------
// AppProfiles.

TEST(AppProfileTest, ValidatesSlotsAndSeries) {
  Registry registry;
  AddBuiltinTypes(&registry);
  const ResourceType* t = registry.Find("scheduling.fulcrum.dev", "v1alpha1", "appprofiles");
  ASSERT_NE(t, nullptr);
  Json p = Obj(R"({"metadata":{"name":"web","namespace":"demo"},
      "spec":{"app":"demo/Deployment/web","slots":4,"slotSeconds":21600},
      "status":{"cpuMeanMilli":[100,250.5,400,120],"cpuStdMilli":[10,20,30,10],"samples":96,
                "utcOffsetSeconds":28800}})");
  t->set_defaults(p);
  FieldErrors errors;
  t->validate(p, nullptr, errors);
  EXPECT_TRUE(errors.empty()) << Dump(errors);
  std::vector<Json> cells = t->cells(p, At("2025-01-01T12:00:00Z"));
  EXPECT_EQ(cells[0], "demo/Deployment/web");
  EXPECT_EQ(cells[1], "learnt");
  EXPECT_EQ(cells[3], "400m");

  Json bad = p;
  bad["spec"]["slotSeconds"] = 7;
  bad["status"]["cpuMeanMilli"] = Json::array({1, 2});
  bad["status"]["cpuStdMilli"][1] = -3;
  bad["status"]["utcOffsetSeconds"] = 86400;
  errors.clear();
  t->validate(bad, nullptr, errors);
  EXPECT_TRUE(Has(errors, "spec.slotSeconds", "FieldValueInvalid", "positive divisor of 86400"))
      << Dump(errors);
  EXPECT_TRUE(Has(errors, "status.cpuMeanMilli", "FieldValueInvalid", "one value per slot"));
  EXPECT_TRUE(Has(errors, "status.cpuStdMilli[1]", "FieldValueInvalid", "non-negative"));
  EXPECT_TRUE(Has(errors, "status.utcOffsetSeconds", "FieldValueInvalid", "east of UTC"));
  bad["status"]["utcOffsetSeconds"] = "8h";
  errors.clear();
  t->validate(bad, nullptr, errors);
  EXPECT_TRUE(Has(errors, "status.utcOffsetSeconds", "FieldValueInvalid", "east of UTC"));
}

// ---------------------------------------------------------------------------------------------
// NodeMetrics.

TEST(NodeMetricTest, ValidatesUsageAndPrintsTable) {
  Registry registry;
  AddBuiltinTypes(&registry);
  const ResourceType* t = registry.Find("scheduling.fulcrum.dev", "v1alpha1", "nodemetrics");
  ASSERT_NE(t, nullptr);
  Json m = Obj(R"({"metadata":{"name":"node-1","creationTimestamp":"2025-01-01T11:00:00Z"},
      "status":{"updateTime":"2025-01-01T11:59:50Z","windowSeconds":15,"samples":15,
        "nodeMetric":{"usage":{"cpu":"1500m","memory":"268435456"},
                      "average":{"cpu":"1200m","memory":"268435456"},
                      "p95":{"cpu":"1750m","memory":"300000000"},
                      "systemUsage":{"cpu":"100m","memory":"1000"}},
        "podsMetric":[{"namespace":"default","name":"burn","qos":"online","priority":0,
                       "usage":{"cpu":"1","memory":"1Mi"},
                       "containers":[{"name":"c","usage":{"cpu":"1","memory":"1Mi"}}]}]}})");
  t->set_defaults(m);
  EXPECT_EQ(m["spec"]["reportIntervalSeconds"], 15);
  FieldErrors errors;
  t->validate(m, nullptr, errors);
  EXPECT_TRUE(errors.empty()) << Dump(errors);
  std::vector<Json> cells = t->cells(m, At("2025-01-01T12:00:00Z"));
  ASSERT_EQ(cells.size(), t->columns.size());
  EXPECT_EQ(cells[0], "1500m");
  EXPECT_EQ(cells[1], "1750m");
  EXPECT_EQ(cells[2], "256Mi");
  EXPECT_EQ(cells[3], 1);
  EXPECT_EQ(cells[4], "10s");

  Json bad = m;
  bad["spec"]["reportIntervalSeconds"] = 0;
  bad["status"]["updateTime"] = "yesterday";
  bad["status"]["nodeMetric"]["p95"]["cpu"] = "-1";
  bad["status"]["podsMetric"][0]["qos"] = "gold";
  bad["status"]["podsMetric"][0]["name"] = "";
  bad["status"]["podsMetric"][0]["containers"][0]["usage"]["memory"] = "lots";
  errors.clear();
  t->validate(bad, nullptr, errors);
  EXPECT_TRUE(Has(errors, "spec.reportIntervalSeconds", "FieldValueInvalid", "positive"))
      << Dump(errors);
  EXPECT_TRUE(Has(errors, "status.updateTime", "FieldValueInvalid", "RFC 3339"));
  EXPECT_TRUE(Has(errors, "status.nodeMetric.p95.cpu", "FieldValueInvalid", ""));
  EXPECT_TRUE(Has(errors, "status.podsMetric[0].qos", "FieldValueNotSupported", ""));
  EXPECT_TRUE(Has(errors, "status.podsMetric[0].name", "FieldValueRequired", ""));
  EXPECT_TRUE(Has(errors, "status.podsMetric[0].containers[0].usage.memory", "FieldValueInvalid", ""));
}

}  // namespace
}  // namespace fulcrum::api
