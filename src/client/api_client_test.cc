#include "client/api_client.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "apiserver/api_server.h"
#include "base/file.h"
#include "client/test_server.h"

namespace fulcrum::client {
namespace {

TEST(ResourcePathTest, BuildsCoreAndGroupPaths) {
  EXPECT_EQ(ResourcePath("v1", "pods"), "/api/v1/pods");
  EXPECT_EQ(ResourcePath("v1", "pods", "default", "web", "status"),
            "/api/v1/namespaces/default/pods/web/status");
  EXPECT_EQ(ResourcePath("apps/v1", "deployments", "ns"), "/apis/apps/v1/namespaces/ns/deployments");
  EXPECT_EQ(QueryEscape("spec.nodeName=a b,c"), "spec.nodeName%3Da%20b%2Cc");
}

TEST(KubeconfigTest, ReportsWhatIsWrong) {
  TestDir dir;
  EXPECT_EQ(LoadKubeconfig(dir.path() + "/missing").status().code(), base::Code::kNotFound);
  ASSERT_TRUE(base::WriteFileAtomic(dir.path() + "/bad", "apiVersion: v1\nkind: Config\n").ok());
  auto bad = LoadKubeconfig(dir.path() + "/bad");
  EXPECT_EQ(bad.status().code(), base::Code::kBadRequest);
  EXPECT_NE(bad.status().message().find("current-context"), std::string::npos);
  ASSERT_TRUE(base::WriteFileAtomic(dir.path() + "/b64",
                                    "current-context: c\ncontexts:\n- name: c\n  context: {cluster: x, user: u}\n"
                                    "clusters:\n- name: x\n  cluster: {server: 'https://h:1', "
                                    "certificate-authority-data: '!!notbase64'}\n")
                  .ok());
  auto b64 = LoadKubeconfig(dir.path() + "/b64");
  EXPECT_NE(b64.status().message().find("certificate-authority-data"), std::string::npos);
}

TEST(ApiClientTest, CrudAgainstARealServer) {
  TestServer server;
  ApiClient& c = server.client();
  Json cm = {{"apiVersion", "v1"},
             {"kind", "ConfigMap"},
             {"metadata", {{"name", "one"}}},
             {"data", {{"k", "v"}}}};
  auto created = c.Create(ResourcePath("v1", "configmaps", "default"), cm);
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  EXPECT_FALSE(base::StringAt(*created, {"metadata", "uid"}).empty());

  auto again = c.Create(ResourcePath("v1", "configmaps", "default"), cm);
  EXPECT_EQ(again.status().code(), base::Code::kAlreadyExists);

  std::string path = ResourcePath("v1", "configmaps", "default", "one");
  auto patched = c.Patch(path, PatchType::kMerge, Json{{"data", {{"k2", "v2"}}}});
  ASSERT_TRUE(patched.ok()) << patched.status().ToString();
  EXPECT_EQ((*patched)["data"]["k2"], "v2");

  Json stale = *created;
  stale["data"]["k"] = "stale";
  EXPECT_EQ(c.Update(path, stale).status().code(), base::Code::kConflict);

  auto got = c.Get(path);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ((*got)["data"]["k"], "v");

  Json invalid = cm;
  invalid["metadata"]["name"] = "Not_Valid";
  auto refused = c.Create(ResourcePath("v1", "configmaps", "default"), invalid);
  EXPECT_EQ(refused.status().code(), base::Code::kInvalid);
  EXPECT_NE(refused.status().message().find("metadata.name"), std::string::npos);

  ASSERT_TRUE(c.Delete(path).ok());
  EXPECT_EQ(c.Get(path).status().code(), base::Code::kNotFound);
}

TEST(ApiClientTest, WatchStreamsEvents) {
  TestServer server;
  ApiClient& c = server.client();
  auto list = c.Get(ResourcePath("v1", "configmaps", "default"));
  ASSERT_TRUE(list.ok());
  std::string rv = base::StringAt(*list, {"metadata", "resourceVersion"});
  auto stream = c.Watch(ResourcePath("v1", "configmaps", "default") + "?watch=1&resourceVersion=" + rv, 30);
  ASSERT_TRUE(stream.ok()) << stream.status().ToString();
  Json cm = {{"metadata", {{"name", "w"}}}, {"data", {{"a", "b"}}}};
  ASSERT_TRUE(c.Create(ResourcePath("v1", "configmaps", "default"), cm).ok());
  ASSERT_TRUE(c.Delete(ResourcePath("v1", "configmaps", "default", "w")).ok());
  WatchEvent event;
  auto n1 = (*stream)->Next(&event);
  ASSERT_TRUE(n1.ok() && *n1) << n1.status().ToString();
  EXPECT_EQ(event.type, "ADDED");
  EXPECT_EQ(base::StringAt(event.object, {"metadata", "name"}), "w");
  auto n2 = (*stream)->Next(&event);
  ASSERT_TRUE(n2.ok() && *n2);
  EXPECT_EQ(event.type, "DELETED");
}

TEST(ApiClientTest, WrongTokenIsUnauthorized) {
  TestServer server;
  ClientConfig config = server.client().config();
  config.token = "wrong";
  auto c = ApiClient::Create(config);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ((*c)->Get("/api/v1/namespaces").status().code(), base::Code::kUnauthorized);
}

}  // namespace
}  // namespace fulcrum::client
