#include "api/patch.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

namespace fulcrum::api {
namespace {

using base::Code;
using ::testing::HasSubstr;

Json J(const char* text) { return Json::parse(text); }

// Applies `patch` and expects success.
Json JsonPatchOk(const char* doc, const char* patch) {
  auto r = ApplyJsonPatch(J(doc), J(patch));
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? *r : Json();
}

Json SmpOk(const Json& doc, const char* patch, std::string_view group = "",
           std::string_view kind = "Pod") {
  auto r = ApplyStrategicMergePatch(doc, J(patch), group, kind);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? *r : Json();
}

Status SmpError(const Json& doc, const char* patch, std::string_view group = "",
                std::string_view kind = "Pod") {
  auto r = ApplyStrategicMergePatch(doc, J(patch), group, kind);
  EXPECT_FALSE(r.ok()) << base::DumpJson(*r);
  return r.status();
}

// ---------------------------------------------------------------------------------------------
// JSON Patch (RFC 6902).

TEST(JsonPatchTest, Rfc6902AppendixExamples) {
  // A.1 adding an object member
  EXPECT_EQ(JsonPatchOk(R"({"foo":"bar"})", R"([{"op":"add","path":"/baz","value":"qux"}])"),
            J(R"({"baz":"qux","foo":"bar"})"));
  // A.2 adding an array element
  EXPECT_EQ(
      JsonPatchOk(R"({"foo":["bar","baz"]})", R"([{"op":"add","path":"/foo/1","value":"qux"}])"),
      J(R"({"foo":["bar","qux","baz"]})"));
  // A.3 removing an object member
  EXPECT_EQ(JsonPatchOk(R"({"baz":"qux","foo":"bar"})", R"([{"op":"remove","path":"/baz"}])"),
            J(R"({"foo":"bar"})"));
  // A.4 removing an array element
  EXPECT_EQ(JsonPatchOk(R"({"foo":["bar","qux","baz"]})", R"([{"op":"remove","path":"/foo/1"}])"),
            J(R"({"foo":["bar","baz"]})"));
  // A.5 replacing a value
  EXPECT_EQ(JsonPatchOk(R"({"baz":"qux","foo":"bar"})",
                        R"([{"op":"replace","path":"/baz","value":"boo"}])"),
            J(R"({"baz":"boo","foo":"bar"})"));
  // A.6 moving a value
  EXPECT_EQ(JsonPatchOk(R"({"foo":{"bar":"baz","waldo":"fred"},"qux":{"corge":"grault"}})",
                        R"([{"op":"move","from":"/foo/waldo","path":"/qux/thud"}])"),
            J(R"({"foo":{"bar":"baz"},"qux":{"corge":"grault","thud":"fred"}})"));
  // A.7 moving an array element
  EXPECT_EQ(JsonPatchOk(R"({"foo":["all","grass","cows","eat"]})",
                        R"([{"op":"move","from":"/foo/1","path":"/foo/3"}])"),
            J(R"({"foo":["all","cows","eat","grass"]})"));
  // A.8 testing a value: success
  JsonPatchOk(R"({"baz":"qux","foo":["a",2,"c"]})",
              R"([{"op":"test","path":"/baz","value":"qux"},
                  {"op":"test","path":"/foo/1","value":2}])");
  // A.10 adding a nested member object
  EXPECT_EQ(JsonPatchOk(R"({"foo":"bar"})",
                        R"([{"op":"add","path":"/child","value":{"grandchild":{}}}])"),
            J(R"({"foo":"bar","child":{"grandchild":{}}})"));
  // A.11 ignoring unrecognized elements
  EXPECT_EQ(
      JsonPatchOk(R"({"foo":"bar"})", R"([{"op":"add","path":"/baz","value":"qux","xyz":123}])"),
      J(R"({"foo":"bar","baz":"qux"})"));
  // A.14 ~ escape ordering
  JsonPatchOk(R"({"/":9,"~1":10})", R"([{"op":"test","path":"/~01","value":10}])");
  // A.16 adding an array value
  EXPECT_EQ(
      JsonPatchOk(R"({"foo":["bar"]})", R"([{"op":"add","path":"/foo/-","value":["abc","def"]}])"),
      J(R"({"foo":["bar",["abc","def"]]})"));
}

TEST(JsonPatchTest, TestFailureNamesOperationAndPath) {
  // A.9 testing a value: error
  auto r =
      ApplyJsonPatch(J(R"({"baz":"qux"})"), J(R"([{"op":"test","path":"/baz","value":"bar"}])"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kInvalid);
  EXPECT_THAT(r.status().message(), HasSubstr("json patch operation 0 (test)"));
  EXPECT_THAT(r.status().message(), HasSubstr("\"/baz\""));
  EXPECT_THAT(r.status().message(), HasSubstr("\"qux\""));
}

TEST(JsonPatchTest, AddToNonexistentTargetFails) {
  // A.12
  auto r =
      ApplyJsonPatch(J(R"({"foo":"bar"})"), J(R"([{"op":"add","path":"/baz/bat","value":"qux"}])"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kInvalid);
  EXPECT_EQ(r.status().message(),
            "json patch operation 0 (add): path \"/baz/bat\" does not exist (\"\" has no member "
            "\"baz\")");
}

TEST(JsonPatchTest, EscapedPointerTokens) {
  EXPECT_EQ(JsonPatchOk(R"({"metadata":{"labels":{"app.kubernetes.io/name":"x","a~b":"y"}}})",
                        R"([{"op":"replace","path":"/metadata/labels/app.kubernetes.io~1name",
                             "value":"z"},
                            {"op":"remove","path":"/metadata/labels/a~0b"}])"),
            J(R"({"metadata":{"labels":{"app.kubernetes.io/name":"z"}}})"));
}

TEST(JsonPatchTest, WholeDocumentPaths) {
  EXPECT_EQ(JsonPatchOk(R"({"a":1})", R"([{"op":"replace","path":"","value":[1]}])"), J("[1]"));
  EXPECT_EQ(JsonPatchOk(R"({"a":1})", R"([{"op":"add","path":"","value":{"b":2}}])"),
            J(R"({"b":2})"));
  EXPECT_EQ(JsonPatchOk(R"({"a":1})", R"([{"op":"test","path":"","value":{"a":1.0}}])"),
            J(R"({"a":1})"));
  auto r = ApplyJsonPatch(J(R"({"a":1})"), J(R"([{"op":"remove","path":""}])"));
  EXPECT_EQ(r.status().code(), Code::kInvalid);
}

TEST(JsonPatchTest, CopyAndMove) {
  EXPECT_EQ(JsonPatchOk(R"({"a":{"b":[1,2]}})",
                        R"([{"op":"copy","from":"/a/b","path":"/c"},
                            {"op":"add","path":"/c/0","value":0}])"),
            J(R"({"a":{"b":[1,2]},"c":[0,1,2]})"));
  EXPECT_EQ(JsonPatchOk(R"({"a":1})", R"([{"op":"move","from":"/a","path":"/a"}])"),
            J(R"({"a":1})"));
  auto r =
      ApplyJsonPatch(J(R"({"a":{"b":1}})"), J(R"([{"op":"move","from":"/a","path":"/a/b/c"}])"));
  EXPECT_EQ(r.status().code(), Code::kInvalid);
  EXPECT_THAT(r.status().message(), HasSubstr("into its own child"));
}

TEST(JsonPatchTest, ArrayIndexRules) {
  auto bad = [](const char* patch) {
    auto r = ApplyJsonPatch(J(R"({"a":[1,2]})"), J(patch));
    EXPECT_FALSE(r.ok()) << patch;
    return r.status();
  };
  EXPECT_THAT(bad(R"([{"op":"add","path":"/a/3","value":0}])").message(),
              HasSubstr("index 3 is out of range"));
  EXPECT_THAT(bad(R"([{"op":"replace","path":"/a/2","value":0}])").message(),
              HasSubstr("out of range"));
  EXPECT_THAT(bad(R"([{"op":"remove","path":"/a/01"}])").message(), HasSubstr("not a valid index"));
  EXPECT_THAT(bad(R"([{"op":"remove","path":"/a/-"}])").message(), HasSubstr("not a valid index"));
  EXPECT_THAT(bad(R"([{"op":"replace","path":"/a/x","value":0}])").message(),
              HasSubstr("\"x\" is not a valid index"));
  EXPECT_EQ(JsonPatchOk(R"({"a":[1,2]})", R"([{"op":"add","path":"/a/2","value":3}])"),
            J(R"({"a":[1,2,3]})"));
}

TEST(JsonPatchTest, MalformedPatchesAreBadRequest) {
  struct Case {
    const char* patch;
    const char* message;
  };
  const Case cases[] = {
      {R"({"op":"add"})", "must be a JSON array"},
      {R"([1])", "json patch operation 0: an operation must be a JSON object"},
      {R"([{"path":"/a"}])", "json patch operation 0: missing \"op\""},
      {R"([{"op":"frob","path":"/a"}])", "unknown op \"frob\""},
      {R"([{"op":"add","value":1}])", "json patch operation 0 (add): missing \"path\""},
      {R"([{"op":"add","path":"/x"}])", "missing \"value\""},
      {R"([{"op":"add","path":"a","value":1}])", "is not a JSON pointer"},
      {R"([{"op":"add","path":"/a~2","value":1}])", "\"~\" not followed by"},
      {R"([{"op":"copy","path":"/b"}])", "missing \"from\""},
      {R"([{"op":"test","path":"/a","value":1},{"op":"remove","path":5}])",
       "json patch operation 1 (remove): \"path\" must be a string"},
  };
  for (const Case& c : cases) {
    auto r = ApplyJsonPatch(J(R"({"a":1})"), J(c.patch));
    ASSERT_FALSE(r.ok()) << c.patch;
    EXPECT_EQ(r.status().code(), Code::kBadRequest) << c.patch;
    EXPECT_THAT(r.status().message(), HasSubstr(c.message)) << c.patch;
  }
}

TEST(JsonPatchTest, IsAtomic) {
  Json doc = J(R"({"a":1})");
  auto r = ApplyJsonPatch(doc, J(R"([{"op":"add","path":"/b","value":2},
                                     {"op":"remove","path":"/zzz"}])"));
  EXPECT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("json patch operation 1 (remove)"));
  EXPECT_EQ(doc, J(R"({"a":1})"));
}

TEST(JsonPatchTest, OperationLimit) {
  Json patch = Json::array();
  for (std::size_t i = 0; i <= kMaxJsonPatchOperations; ++i) {
    patch.push_back(J(R"({"op":"test","path":"/a","value":1})"));
  }
  auto r = ApplyJsonPatch(J(R"({"a":1})"), patch);
  EXPECT_EQ(r.status().code(), Code::kRequestTooLarge);
}

TEST(JsonPatchTest, CopyDoublingIsBounded) {
  Json patch = Json::array();
  patch.push_back(J(R"({"op":"add","path":"/a","value":[1,2,3,4,5,6,7,8]})"));
  for (int i = 0; i < 40; ++i) {
    patch.push_back(J(R"({"op":"copy","from":"/a","path":"/a/-"})"));
  }
  auto r = ApplyJsonPatch(J("{}"), patch);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kRequestTooLarge);
}

TEST(JsonPatchTest, DepthIsBounded) {
  Json deep = Json::array();
  for (int i = 0; i < base::kMaxJsonDepth - 1; ++i) deep = Json::array({deep});
  Json patch = Json::array();
  patch.push_back({{"op", "add"}, {"path", "/a"}, {"value", deep}});
  auto r = ApplyJsonPatch(J("{}"), patch);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("deeper than"));
}

// ---------------------------------------------------------------------------------------------
// JSON Merge Patch (RFC 7386).

TEST(MergePatchTest, Rfc7386AppendixA) {
  struct Case {
    const char* target;
    const char* patch;
    const char* result;
  };
  const Case cases[] = {
      {R"({"a":"b"})", R"({"a":"c"})", R"({"a":"c"})"},
      {R"({"a":"b"})", R"({"b":"c"})", R"({"a":"b","b":"c"})"},
      {R"({"a":"b"})", R"({"a":null})", R"({})"},
      {R"({"a":"b","b":"c"})", R"({"a":null})", R"({"b":"c"})"},
      {R"({"a":["b"]})", R"({"a":"c"})", R"({"a":"c"})"},
      {R"({"a":"c"})", R"({"a":["b"]})", R"({"a":["b"]})"},
      {R"({"a":{"b":"c"}})", R"({"a":{"b":"d","c":null}})", R"({"a":{"b":"d"}})"},
      {R"({"a":[{"b":"c"}]})", R"({"a":[1]})", R"({"a":[1]})"},
      {R"(["a","b"])", R"(["c","d"])", R"(["c","d"])"},
      {R"({"a":"b"})", R"(["c"])", R"(["c"])"},
      {R"({"a":"foo"})", "null", "null"},
      {R"({"a":"foo"})", R"("bar")", R"("bar")"},
      {R"({"e":null})", R"({"a":1})", R"({"e":null,"a":1})"},
      {R"([1,2])", R"({"a":"b","c":null})", R"({"a":"b"})"},
      {R"({})", R"({"a":{"bb":{"ccc":null}}})", R"({"a":{"bb":{}}})"},
  };
  for (const Case& c : cases) {
    auto r = ApplyMergePatch(J(c.target), J(c.patch));
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(*r, J(c.result)) << c.target << " + " << c.patch;
  }
}

TEST(MergePatchTest, KubectlDocExampleReplacesContainers) {
  Json deployment = J(R"({"spec":{"template":{"spec":{"containers":[
      {"name":"patch-demo-ctr","image":"nginx"},
      {"name":"patch-demo-ctr-2","image":"redis"}]}}}})");
  auto r = ApplyMergePatch(deployment, J(R"({"spec":{"template":{"spec":{"containers":[
      {"name":"patch-demo-ctr-3","image":"gcr.io/google-samples/hello-app:2.0"}]}}}})"));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ((*r)["spec"]["template"]["spec"]["containers"],
            J(R"([{"name":"patch-demo-ctr-3","image":"gcr.io/google-samples/hello-app:2.0"}])"));
}

// ---------------------------------------------------------------------------------------------
// Strategic merge patch.

Json PatchDemoDeployment() {
  return J(R"({
    "apiVersion": "apps/v1", "kind": "Deployment",
    "metadata": {"name": "patch-demo"},
    "spec": {
      "replicas": 2,
      "selector": {"matchLabels": {"app": "nginx"}},
      "template": {
        "metadata": {"labels": {"app": "nginx"}},
        "spec": {
          "containers": [{"name": "patch-demo-ctr", "image": "nginx"}],
          "tolerations": [{"effect": "NoSchedule", "key": "dedicated", "value": "test-team"}]
        }
      }
    }
  })");
}

const Json& Containers(const Json& deployment) {
  return deployment["spec"]["template"]["spec"]["containers"];
}

TEST(StrategicMergePatchTest, KubectlDocAddingAContainerMergesByName) {
  Json out = SmpOk(PatchDemoDeployment(), R"({"spec":{"template":{"spec":{"containers":[
      {"name":"patch-demo-ctr-2","image":"redis"}]}}}})",
                   "apps", "Deployment");
  // The patched container comes first, as in the kubectl documentation's output.
  EXPECT_EQ(Containers(out), J(R"([{"name":"patch-demo-ctr-2","image":"redis"},
                                    {"name":"patch-demo-ctr","image":"nginx"}])"));
  EXPECT_EQ(out["spec"]["replicas"], 2);
  EXPECT_EQ(out["metadata"]["name"], "patch-demo");
}

TEST(StrategicMergePatchTest, KubectlDocTolerationsAreReplaced) {
  Json out = SmpOk(PatchDemoDeployment(), R"({"spec":{"template":{"spec":{"tolerations":[
      {"effect":"NoSchedule","key":"disktype","value":"ssd"}]}}}})",
                   "apps", "Deployment");
  EXPECT_EQ(out["spec"]["template"]["spec"]["tolerations"],
            J(R"([{"effect":"NoSchedule","key":"disktype","value":"ssd"}])"));
  EXPECT_EQ(Containers(out).size(), 1u);
}

TEST(StrategicMergePatchTest, PatchDeleteRemovesContainer) {
  Json doc = SmpOk(PatchDemoDeployment(), R"({"spec":{"template":{"spec":{"containers":[
      {"name":"sidecar","image":"busybox"}]}}}})",
                   "apps", "Deployment");
  ASSERT_EQ(Containers(doc).size(), 2u);
  Json out = SmpOk(doc, R"({"spec":{"template":{"spec":{"containers":[
      {"name":"patch-demo-ctr","$patch":"delete"}]}}}})",
                   "apps", "Deployment");
  EXPECT_EQ(Containers(out), J(R"([{"name":"sidecar","image":"busybox"}])"));
}

TEST(StrategicMergePatchTest, UpdatingAContainerKeepsItsOtherFields) {
  Json out = SmpOk(PatchDemoDeployment(), R"({"spec":{"template":{"spec":{"containers":[
      {"name":"patch-demo-ctr","image":"nginx:1.25","args":["-g"]}]}}}})",
                   "apps", "Deployment");
  EXPECT_EQ(Containers(out),
            J(R"([{"name":"patch-demo-ctr","image":"nginx:1.25","args":["-g"]}])"));
}

TEST(StrategicMergePatchTest, EnvMergesByName) {
  Json pod = J(R"({"spec":{"containers":[{"name":"c","image":"i",
      "env":[{"name":"A","value":"1"},{"name":"B","value":"2"}]}]}})");
  Json out = SmpOk(pod, R"({"spec":{"containers":[{"name":"c",
      "env":[{"name":"B","value":"3"},{"name":"C","value":"4"}]}]}})");
  EXPECT_EQ(out["spec"]["containers"][0]["env"],
            J(R"([{"name":"A","value":"1"},{"name":"B","value":"3"},{"name":"C","value":"4"}])"));
  EXPECT_EQ(out["spec"]["containers"][0]["image"], "i");
}

TEST(StrategicMergePatchTest, EnvValueFromReplacedByNull) {
  Json pod = J(R"({"spec":{"containers":[{"name":"c",
      "env":[{"name":"A","valueFrom":{"fieldRef":{"fieldPath":"metadata.name"}}}]}]}})");
  Json out = SmpOk(pod, R"({"spec":{"containers":[{"name":"c",
      "env":[{"name":"A","value":"x","valueFrom":null}]}]}})");
  EXPECT_EQ(out["spec"]["containers"][0]["env"], J(R"([{"name":"A","value":"x"}])"));
}

TEST(StrategicMergePatchTest, PortsMergeByContainerPort) {
  Json pod = J(R"({"spec":{"containers":[{"name":"c",
      "ports":[{"containerPort":80,"name":"http"}]}]}})");
  Json out = SmpOk(pod, R"({"spec":{"containers":[{"name":"c",
      "ports":[{"containerPort":80,"protocol":"TCP"},{"containerPort":443,"name":"https"}]}]}})");
  EXPECT_EQ(out["spec"]["containers"][0]["ports"],
            J(R"([{"containerPort":80,"name":"http","protocol":"TCP"},
                  {"containerPort":443,"name":"https"}])"));
}

TEST(StrategicMergePatchTest, VolumeMountsMergeByMountPath) {
  Json pod = J(R"({"spec":{"containers":[{"name":"c",
      "volumeMounts":[{"name":"a","mountPath":"/a"},{"name":"b","mountPath":"/b"}]}],
      "volumes":[{"name":"a","emptyDir":{}}]}})");
  Json out = SmpOk(pod, R"({"spec":{"containers":[{"name":"c",
      "volumeMounts":[{"mountPath":"/b","readOnly":true}]}],
      "volumes":[{"name":"b","configMap":{"name":"cm"}}]}})");
  EXPECT_EQ(out["spec"]["containers"][0]["volumeMounts"],
            J(R"([{"name":"a","mountPath":"/a"},{"name":"b","mountPath":"/b","readOnly":true}])"));
  EXPECT_EQ(out["spec"]["volumes"],
            J(R"([{"name":"b","configMap":{"name":"cm"}},{"name":"a","emptyDir":{}}])"));
}

TEST(StrategicMergePatchTest, OtherPodSpecListsMergeByTheirKeys) {
  Json pod = J(R"({"spec":{
      "initContainers":[{"name":"init","image":"a","volumeDevices":[{"devicePath":"/dev/x",
                                                                      "name":"d"}]}],
      "ephemeralContainers":[{"name":"debug","image":"busybox"}],
      "imagePullSecrets":[{"name":"s1"}],
      "hostAliases":[{"ip":"10.0.0.1","hostnames":["a"]}],
      "tolerations":[{"key":"k1","operator":"Exists"}]}})");
  Json out = SmpOk(pod, R"({"spec":{
      "initContainers":[{"name":"init","volumeDevices":[{"devicePath":"/dev/x","name":"e"}]}],
      "ephemeralContainers":[{"name":"debug2","image":"alpine"}],
      "imagePullSecrets":[{"name":"s2"}],
      "hostAliases":[{"ip":"10.0.0.1","hostnames":["b"]}],
      "tolerations":[{"key":"k2","operator":"Exists"}]}})",
                   "", "Pod");
  EXPECT_EQ(out, J(R"({"spec":{
      "initContainers":[{"name":"init","image":"a","volumeDevices":[{"devicePath":"/dev/x",
                                                                      "name":"e"}]}],
      "ephemeralContainers":[{"name":"debug2","image":"alpine"},{"name":"debug","image":"busybox"}],
      "imagePullSecrets":[{"name":"s2"},{"name":"s1"}],
      "hostAliases":[{"ip":"10.0.0.1","hostnames":["b"]}],
      "tolerations":[{"key":"k2","operator":"Exists"}]}})"));
}

TEST(StrategicMergePatchTest, MergeKeysCompareNumerically) {
  Json pod = J(R"({"spec":{"containers":[{"name":"c","ports":[{"containerPort":80}]}]}})");
  Json out = SmpOk(pod, R"({"spec":{"containers":[{"name":"c",
      "ports":[{"containerPort":80.0,"name":"http"}]}]}})");
  ASSERT_EQ(out["spec"]["containers"][0]["ports"].size(), 1u);
  EXPECT_EQ(out["spec"]["containers"][0]["ports"][0]["name"], "http");
}

TEST(StrategicMergePatchTest, PodConditionsMergeByType) {
  Json pod = J(R"({"status":{"phase":"Pending","conditions":[
      {"type":"PodScheduled","status":"True"},{"type":"Ready","status":"False"}],
      "containerStatuses":[{"name":"a","ready":false},{"name":"b","ready":false}]}})");
  Json out = SmpOk(pod, R"({"status":{"phase":"Running",
      "conditions":[{"type":"Ready","status":"True"}],
      "containerStatuses":[{"name":"a","ready":true}]}})");
  EXPECT_EQ(out["status"]["conditions"],
            J(R"([{"type":"PodScheduled","status":"True"},{"type":"Ready","status":"True"}])"));
  // containerStatuses has no patch strategy: replaced.
  EXPECT_EQ(out["status"]["containerStatuses"], J(R"([{"name":"a","ready":true}])"));
  EXPECT_EQ(out["status"]["phase"], "Running");
}

TEST(StrategicMergePatchTest, FinalizersMergeAsASet) {
  Json obj = J(R"({"metadata":{"name":"x","finalizers":["a","b"]}})");
  Json out = SmpOk(obj, R"({"metadata":{"finalizers":["b","c"]}})", "", "ConfigMap");
  EXPECT_EQ(out["metadata"]["finalizers"], J(R"(["a","b","c"])"));
  // New entries go where the patch puts them relative to the live ones it names.
  out = SmpOk(obj, R"({"metadata":{"finalizers":["c"]}})", "", "ConfigMap");
  EXPECT_EQ(out["metadata"]["finalizers"], J(R"(["c","a","b"])"));
}

TEST(StrategicMergePatchTest, DeleteFromPrimitiveList) {
  Json obj = J(R"({"metadata":{"finalizers":["a","b","c"]}})");
  Json out = SmpOk(obj, R"({"metadata":{"$deleteFromPrimitiveList/finalizers":["b","zz"]}})",
                   "apps", "Deployment");
  EXPECT_EQ(out["metadata"]["finalizers"], J(R"(["a","c"])"));
  // On a missing list it does nothing.
  out = SmpOk(J(R"({"metadata":{}})"),
              R"({"metadata":{"$deleteFromPrimitiveList/finalizers":["b"]}})");
  EXPECT_EQ(out, J(R"({"metadata":{}})"));
  auto status = SmpError(obj, R"({"metadata":{"$deleteFromPrimitiveList/finalizers":"b"}})");
  EXPECT_EQ(status.code(), Code::kBadRequest);
  EXPECT_THAT(status.message(), HasSubstr("invalid patch format of primitive list"));
}

TEST(StrategicMergePatchTest, OwnerReferencesMergeByUid) {
  Json obj = J(R"({"metadata":{"ownerReferences":[{"uid":"1","kind":"ReplicaSet","name":"a"}]}})");
  Json out = SmpOk(obj, R"({"metadata":{"ownerReferences":[
      {"uid":"1","controller":true},{"uid":"2","kind":"Node","name":"n"}]}})");
  EXPECT_EQ(out["metadata"]["ownerReferences"],
            J(R"([{"uid":"1","kind":"ReplicaSet","name":"a","controller":true},
                  {"uid":"2","kind":"Node","name":"n"}])"));
}

TEST(StrategicMergePatchTest, LabelsAndAnnotationsMergeAndNullDeletes) {
  Json obj = J(R"({"metadata":{"labels":{"a":"1","b":"2"},"annotations":{"x":"y"}},
                   "data":{"k":"v","k2":"v2"}})");
  Json out = SmpOk(obj, R"({"metadata":{"labels":{"a":null,"c":"3"},"annotations":null},
                            "data":{"k2":"new"}})",
                   "", "ConfigMap");
  EXPECT_EQ(out, J(R"({"metadata":{"labels":{"b":"2","c":"3"}},"data":{"k":"v","k2":"new"}})"));
}

TEST(StrategicMergePatchTest, ServicePortsMergeByPort) {
  Json svc =
      J(R"({"spec":{"type":"ClusterIP","ports":[{"port":80,"targetPort":8080,"name":"http"}]}})");
  Json out = SmpOk(svc, R"({"spec":{"ports":[{"port":80,"targetPort":9090},
                                             {"port":443,"name":"https"}]}})",
                   "", "Service");
  EXPECT_EQ(out["spec"]["ports"], J(R"([{"port":80,"targetPort":9090,"name":"http"},
                                         {"port":443,"name":"https"}])"));
}

TEST(StrategicMergePatchTest, NodeStatusAndTaints) {
  Json node = J(R"({"spec":{"taints":[{"key":"a","effect":"NoSchedule"}]},
      "status":{"addresses":[{"type":"InternalIP","address":"10.0.0.1"}],
                "conditions":[{"type":"Ready","status":"False"},
                              {"type":"MemoryPressure","status":"False"}]}})");
  Json out = SmpOk(node, R"({"spec":{"taints":[{"key":"b","effect":"NoExecute"}]},
      "status":{"addresses":[{"type":"Hostname","address":"n1"}],
                "conditions":[{"type":"Ready","status":"True"}]}})",
                   "", "Node");
  EXPECT_EQ(out["spec"]["taints"], J(R"([{"key":"b","effect":"NoExecute"}])"));
  EXPECT_EQ(out["status"]["addresses"], J(R"([{"type":"Hostname","address":"n1"},
                                              {"type":"InternalIP","address":"10.0.0.1"}])"));
  EXPECT_EQ(out["status"]["conditions"], J(R"([{"type":"Ready","status":"True"},
                                               {"type":"MemoryPressure","status":"False"}])"));
}

TEST(StrategicMergePatchTest, DeploymentStatusConditionsMergeByType) {
  Json d = J(R"({"status":{"conditions":[{"type":"Available","status":"False"},
                                          {"type":"Progressing","status":"True"}]}})");
  Json out = SmpOk(d, R"({"status":{"conditions":[{"type":"Available","status":"True"}]}})", "apps",
                   "Deployment");
  EXPECT_EQ(out["status"]["conditions"], J(R"([{"type":"Available","status":"True"},
                                               {"type":"Progressing","status":"True"}])"));
}

TEST(StrategicMergePatchTest, CronJobTemplateContainersMerge) {
  Json cj = J(R"({"spec":{"jobTemplate":{"spec":{"template":{"spec":{"containers":[
      {"name":"a","image":"x"}]}}}}}})");
  Json out = SmpOk(cj, R"({"spec":{"jobTemplate":{"spec":{"template":{"spec":{"containers":[
      {"name":"a","image":"y"}]}}}}}})",
                   "batch", "CronJob");
  EXPECT_EQ(out["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"],
            J(R"([{"name":"a","image":"y"}])"));
}

TEST(StrategicMergePatchTest, ListReplaceDirective) {
  Json out = SmpOk(PatchDemoDeployment(), R"({"spec":{"template":{"spec":{"containers":[
      {"$patch":"replace"},{"name":"only","image":"x"}]}}}})",
                   "apps", "Deployment");
  EXPECT_EQ(Containers(out), J(R"([{"name":"only","image":"x"}])"));
  // Alone, it empties the list.
  out = SmpOk(PatchDemoDeployment(),
              R"({"spec":{"template":{"spec":{"containers":[{"$patch":"replace"}]}}}})", "apps",
              "Deployment");
  EXPECT_EQ(Containers(out), Json::array());
}

TEST(StrategicMergePatchTest, EmptyPatchListLeavesMergeListAlone) {
  Json out = SmpOk(PatchDemoDeployment(), R"({"spec":{"template":{"spec":{"containers":[]}}}})",
                   "apps", "Deployment");
  EXPECT_EQ(Containers(out).size(), 1u);
}

TEST(StrategicMergePatchTest, MapDirectives) {
  Json pod = J(R"({"spec":{"nodeSelector":{"a":"1","b":"2"},"restartPolicy":"Always"}})");
  Json out = SmpOk(pod, R"({"spec":{"nodeSelector":{"$patch":"replace","c":"3"}}})");
  EXPECT_EQ(out["spec"]["nodeSelector"], J(R"({"c":"3"})"));
  out = SmpOk(pod, R"({"spec":{"nodeSelector":{"$patch":"delete"}}})");
  EXPECT_EQ(out["spec"]["nodeSelector"], Json::object());
  out = SmpOk(pod, R"({"spec":{"nodeSelector":{"$patch":"merge","c":"3"}}})");
  EXPECT_EQ(out["spec"]["nodeSelector"], J(R"({"a":"1","b":"2","c":"3"})"));
  // At the top level "replace" replaces the whole object.
  out = SmpOk(pod, R"({"$patch":"replace","spec":{"restartPolicy":"Never"}})");
  EXPECT_EQ(out, J(R"({"spec":{"restartPolicy":"Never"}})"));
  auto status = SmpError(pod, R"({"spec":{"nodeSelector":{"$patch":"frob"}}})");
  EXPECT_EQ(status.code(), Code::kBadRequest);
  EXPECT_THAT(status.message(), HasSubstr("unknown patch type: \"frob\""));
}

TEST(StrategicMergePatchTest, RetainKeys) {
  // The kubectl patch documentation's retainKeys example.
  Json d = J(R"({"spec":{"strategy":{"type":"RollingUpdate",
                                     "rollingUpdate":{"maxSurge":"30%"}}}})");
  Json out = SmpOk(d, R"({"spec":{"strategy":{"$retainKeys":["type"],"type":"Recreate"}}})", "apps",
                   "Deployment");
  EXPECT_EQ(out["spec"]["strategy"], J(R"({"type":"Recreate"})"));
  auto status = SmpError(d, R"({"spec":{"strategy":{"$retainKeys":["type"],
                                                     "rollingUpdate":{"maxSurge":1}}}})",
                         "apps", "Deployment");
  EXPECT_EQ(status.code(), Code::kBadRequest);
  EXPECT_THAT(status.message(), HasSubstr("invalid patch format of retainKeys"));
}

TEST(StrategicMergePatchTest, RetainKeysInsideVolumes) {
  Json pod = J(R"({"spec":{"volumes":[{"name":"v","emptyDir":{}}]}})");
  Json out = SmpOk(pod, R"({"spec":{"volumes":[{"name":"v","$retainKeys":["name","hostPath"],
                                                "hostPath":{"path":"/x"}}]}})");
  EXPECT_EQ(out["spec"]["volumes"], J(R"([{"name":"v","hostPath":{"path":"/x"}}])"));
}

TEST(StrategicMergePatchTest, SetElementOrder) {
  Json pod = J(R"({"spec":{"containers":[{"name":"a"},{"name":"b","image":"x"},{"name":"c"}]}})");
  Json out = SmpOk(pod, R"({"spec":{
      "$setElementOrder/containers":[{"name":"c"},{"name":"b"},{"name":"a"}],
      "containers":[{"name":"b","image":"y"}]}})");
  EXPECT_EQ(out["spec"]["containers"],
            J(R"([{"name":"c"},{"name":"b","image":"y"},{"name":"a"}])"));
  // Order of primitives, with no patch list at all.
  Json obj = J(R"({"metadata":{"finalizers":["a","b","c"]}})");
  out = SmpOk(obj, R"({"metadata":{"$setElementOrder/finalizers":["c","a","b"]}})");
  EXPECT_EQ(out["metadata"]["finalizers"], J(R"(["c","a","b"])"));
  // Entries of the order missing from the list are ignored.
  out = SmpOk(J(R"({"spec":{"containers":[{"name":"1"},{"name":"3"}]}})"),
              R"({"spec":{"$setElementOrder/containers":[{"name":"3"},{"name":"2"},{"name":"1"}],
                          "containers":[{"name":"3","image":"x"},{"name":"1","image":"y"}]}})");
  EXPECT_EQ(out["spec"]["containers"], J(R"([{"name":"3","image":"x"},{"name":"1","image":"y"}])"));
}

TEST(StrategicMergePatchTest, SetElementOrderMustAgreeWithPatchList) {
  Json pod = J(R"({"spec":{"containers":[{"name":"1"},{"name":"3"},{"name":"2"}]}})");
  auto status = SmpError(pod, R"({"spec":{
      "$setElementOrder/containers":[{"name":"1"},{"name":"2"},{"name":"3"}],
      "containers":[{"name":"3","image":"x"},{"name":"1","image":"y"}]}})");
  EXPECT_EQ(status.code(), Code::kBadRequest);
  EXPECT_THAT(status.message(), HasSubstr("doesn't match $setElementOrder list"));
}

TEST(StrategicMergePatchTest, KubectlApplyStylePatch) {
  // What kubectl apply sends after removing container "b" and adding "d", and a finalizer change.
  Json pod = J(R"({"metadata":{"finalizers":["x","y"]},
                   "spec":{"containers":[{"name":"a"},{"name":"b"},{"name":"c"}]}})");
  Json out = SmpOk(pod, R"({
      "metadata":{"$setElementOrder/finalizers":["x","z"],
                  "$deleteFromPrimitiveList/finalizers":["y"],"finalizers":["z"]},
      "spec":{"$setElementOrder/containers":[{"name":"a"},{"name":"d"},{"name":"c"}],
              "containers":[{"name":"d","image":"new"},{"name":"b","$patch":"delete"}]}})");
  EXPECT_EQ(out["metadata"]["finalizers"], J(R"(["x","z"])"));
  EXPECT_EQ(out["spec"]["containers"],
            J(R"([{"name":"a"},{"name":"d","image":"new"},{"name":"c"}])"));
}

TEST(StrategicMergePatchTest, OrderFollowsPatchThenLiveObject) {
  Json pod = J(R"({"spec":{"containers":[{"name":"1"},{"name":"2","image":"b"},{"name":"3"}]}})");
  Json out = SmpOk(pod, R"({"spec":{"containers":[{"name":"3","image":"c"},
                                                  {"name":"1","image":"a"}]}})");
  EXPECT_EQ(out["spec"]["containers"],
            J(R"([{"name":"2","image":"b"},{"name":"3","image":"c"},{"name":"1","image":"a"}])"));
}

TEST(StrategicMergePatchTest, DeleteAllDuplicates) {
  Json pod = J(R"({"spec":{"containers":[{"name":"1"},{"name":"1"},{"name":"2","image":"a"},
                                         {"name":"3"},{"name":"3"}]}})");
  Json out = SmpOk(pod, R"({"spec":{"containers":[{"name":"1","$patch":"delete"},
                                                  {"name":"3","$patch":"delete"}]}})");
  EXPECT_EQ(out["spec"]["containers"], J(R"([{"name":"2","image":"a"}])"));
}

TEST(StrategicMergePatchTest, NewFieldsGetDirectivesResolved) {
  Json out = SmpOk(J(R"({"metadata":{"name":"p"}})"),
                   R"({"spec":{"containers":[{"name":"a","env":[{"name":"X","value":"1"}]},
                                            {"name":"b","$patch":"delete"}],
                              "nodeSelector":{"k":"v","gone":null}}})");
  EXPECT_EQ(out, J(R"({"metadata":{"name":"p"},"spec":{
      "containers":[{"name":"a","env":[{"name":"X","value":"1"}]}],
      "nodeSelector":{"k":"v"}}})"));
}

TEST(StrategicMergePatchTest, TypeChangeReplaces) {
  Json out = SmpOk(J(R"({"spec":{"x":[1,2],"y":"s"}})"), R"({"spec":{"x":{"a":1},"y":[1]}})",
                   "example.com", "Widget");
  EXPECT_EQ(out, J(R"({"spec":{"x":{"a":1},"y":[1]}})"));
}

TEST(StrategicMergePatchTest, UnknownKindsUseMergePatchSemantics) {
  EXPECT_FALSE(HasStrategicMergeSchema("example.com", "Widget"));
  EXPECT_TRUE(HasStrategicMergeSchema("apps", "Deployment"));
  EXPECT_TRUE(HasStrategicMergeSchema("", "ConfigMap"));
  Json out = SmpOk(J(R"({"metadata":{"finalizers":["a"]},"spec":{"items":[{"name":"a"}],
                         "m":{"a":1}}})"),
                   R"({"metadata":{"finalizers":["b"]},"spec":{"items":[{"name":"b"}],
                       "m":{"b":2}}})",
                   "example.com", "Widget");
  EXPECT_EQ(out["spec"], J(R"({"items":[{"name":"b"}],"m":{"a":1,"b":2}})"));
  // ObjectMeta is the same for every kind.
  EXPECT_EQ(out["metadata"]["finalizers"], J(R"(["b","a"])"));
}

TEST(StrategicMergePatchTest, ConflictsWithTheLiveObject) {
  auto status =
      SmpError(J(R"({"metadata":{"finalizers":["a"]}})"), R"({"metadata":{"finalizers":[1]}})");
  EXPECT_EQ(status.code(), Code::kInvalid);
  EXPECT_THAT(status.message(), HasSubstr("list element types are not identical"));
  status = SmpError(J(R"({"metadata":{"finalizers":[["a"]]}})"),
                    R"({"metadata":{"finalizers":[["b"]]}})");
  EXPECT_EQ(status.code(), Code::kInvalid);
  EXPECT_THAT(status.message(), HasSubstr("lists of lists"));
  status = SmpError(J(R"({"spec":{"containers":[{"image":"x"}]}})"),
                    R"({"spec":{"containers":[{"name":"a"}]}})");
  EXPECT_EQ(status.code(), Code::kInvalid);
  EXPECT_THAT(status.message(), HasSubstr("does not contain declared merge key: name"));
}

TEST(StrategicMergePatchTest, MalformedPatches) {
  Json pod = PatchDemoDeployment();
  auto status = SmpError(pod, R"({"spec":{"template":{"spec":{"containers":[{"image":"x"}]}}}})",
                         "apps", "Deployment");
  EXPECT_EQ(status.code(), Code::kBadRequest);
  EXPECT_EQ(status.message(), "map: {\"image\":\"x\"} does not contain declared merge key: name");
  status = SmpError(pod, R"({"spec":{"template":{"spec":{"containers":[
      {"name":"a","$patch":"merge"}]}}}})",
                    "apps", "Deployment");
  EXPECT_THAT(status.message(), HasSubstr("merging lists cannot yet be specified"));
  status = SmpError(pod, R"({"spec":{"$setElementOrderX":[]}})", "apps", "Deployment");
  EXPECT_THAT(status.message(), HasSubstr("invalid patch format of setElementOrder list"));
  status = SmpError(pod, R"([1])");
  EXPECT_EQ(status.code(), Code::kBadRequest);
  auto r = ApplyStrategicMergePatch(J("[]"), J("{}"), "", "Pod");
  EXPECT_EQ(r.status().code(), Code::kBadRequest);
}

TEST(StrategicMergePatchTest, InputsAreNotModified) {
  Json doc = PatchDemoDeployment();
  Json patch =
      J(R"({"spec":{"template":{"spec":{"containers":[{"name":"x","$patch":"delete"}]}}}})");
  Json doc_copy = doc, patch_copy = patch;
  ASSERT_TRUE(ApplyStrategicMergePatch(doc, patch, "apps", "Deployment").ok());
  EXPECT_EQ(doc, doc_copy);
  EXPECT_EQ(patch, patch_copy);
}

TEST(StrategicMergePatchTest, TooDeepInputIsRefused) {
  Json deep = Json::object();
  for (int i = 0; i < base::kMaxJsonDepth + 5; ++i) deep = Json{{"a", deep}};
  auto r = ApplyStrategicMergePatch(J("{}"), deep, "", "Pod");
  EXPECT_EQ(r.status().code(), Code::kBadRequest);
  r = ApplyMergePatch(deep, J("{}"));
  EXPECT_EQ(r.status().code(), Code::kBadRequest);
}

}  // namespace
}  // namespace fulcrum::api
