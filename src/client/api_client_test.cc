#include "client/api_client.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>

#include "apiserver/api_server.h"
#include "base/file.h"
#include "client/http_client.h"
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

TEST(TransportTest, HandshakeWithASilentPeerGivesUp) {
  // A listening socket nobody accepts from: the kernel completes the TCP handshake, then nothing
  // answers the ClientHello (as a hung agent would not).
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  ASSERT_EQ(::listen(fd, 4), 0);
  socklen_t len = sizeof(a);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  auto url = ParseUrl("https://127.0.0.1:" + std::to_string(ntohs(a.sin_port)));
  ASSERT_TRUE(url.ok());
  auto tls = TlsContext::Create("/etc/ssl/certs/ca-certificates.crt");
  ASSERT_TRUE(tls.ok()) << tls.status().ToString();
  Transport t;
  base::Status st = t.Connect(*url, tls->get(), std::chrono::milliseconds(200));
  EXPECT_EQ(st.code(), base::Code::kUnavailable);
  EXPECT_NE(st.message().find("no answer within 200 ms"), std::string::npos) << st.ToString();
  EXPECT_FALSE(t.connected());
  ::close(fd);
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
