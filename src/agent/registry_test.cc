// ImageStore::Pull from an in-memory source (platform choice, shared layers, corrupt content),
// and from a real registry: Debian's docker-registry (distribution 2.8) on 127.0.0.1.
#include "agent/registry.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <thread>

#include "agent/image_archive.h"
#include "agent/tar.h"
#include "agent/testing/layers.h"
#include "base/base64.h"
#include "base/file.h"
#include "client/http_client.h"

namespace fulcrum::agent {
namespace {

namespace fs = std::filesystem;
using base::Json;

// An image's parts, as a registry holds them: blobs by digest, the manifest under a tag.
struct ImageParts {
  std::map<std::string, std::string> blobs;  // digest -> bytes (manifest, config, layers)
  std::string manifest_digest, config_digest;
  std::vector<std::string> layer_digests;
};

ImageParts Parts(const std::string& arch, std::vector<std::string> layers) {
  ImageSpec spec;
  spec.name = "registry.test/app:1";
  spec.architecture = arch;
  spec.config = {{"Cmd", {"sh"}}};
  spec.layers = std::move(layers);
  std::string archive = WriteOciLayout({spec});
  std::map<std::string, std::string> files;
  auto source = NewStringSource(&archive);
  TarReader reader(source.get());
  TarEntry e;
  while (*reader.Next(&e)) {
    std::string content;
    char buf[4096];
    for (;;) {
      size_t n = *reader.ReadContent(buf, sizeof(buf));
      if (n == 0) break;
      content.append(buf, n);
    }
    if (e.type == TarType::kFile) files[e.path] = content;
  }
  ImageParts p;
  Json index = Json::parse(files.at("index.json"));
  p.manifest_digest = index["manifests"][0]["digest"];
  for (const auto& [path, bytes] : files) {
    if (path.rfind("blobs/sha256/", 0) == 0) p.blobs["sha256:" + path.substr(13)] = bytes;
  }
  Json manifest = Json::parse(p.blobs.at(p.manifest_digest));
  p.config_digest = manifest["config"]["digest"];
  for (const auto& l : manifest["layers"]) p.layer_digests.push_back(l["digest"]);
  return p;
}

class MemorySource : public ImageSource {
 public:
  std::map<std::string, std::string> manifests;  // tag or digest -> bytes
  std::map<std::string, std::string> blobs;
  std::vector<std::string> fetched;

  base::Result<std::string> Manifest(const std::string& reference,
                                     std::string* media_type) override {
    *media_type = "";
    if (auto it = manifests.find(reference); it != manifests.end()) return it->second;
    if (auto it = blobs.find(reference); it != blobs.end()) return it->second;
    return base::NotFound("manifest unknown: " + reference);
  }
  base::Status Blob(const std::string& digest, const std::string& path) override {
    fetched.push_back(digest);
    auto it = blobs.find(digest);
    if (it == blobs.end()) return base::NotFound("blob unknown: " + digest);
    return base::WriteFileAtomic(path, it->second, 0644);
  }
  void Add(const ImageParts& p, const std::string& tag) {
    for (const auto& [d, b] : p.blobs) blobs[d] = b;
    manifests[tag] = p.blobs.at(p.manifest_digest);
  }
};

class PullTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "registry_test.XXXXXX").string();
    dir_ = ::mkdtemp(tmpl.data());
    auto store = ImageStore::Open(dir_ + "/root");
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    store_ = std::move(*store);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Nothing but what was there: no new blobs, layers or temporary files.
  size_t Count(const std::string& sub) {
    size_t n = 0;
    for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir_ + "/root/images/" + sub)) ++n;
    return n;
  }

  std::string dir_;
  std::unique_ptr<ImageStore> store_;
};

TEST_F(PullTest, PullsAndSharesLayers) {
  std::string base = OneFileLayer("bin/base", "base layer"),
              top = OneFileLayer("bin/app", "app v1");
  ImageParts one = Parts(HostArchitecture(), {base, top});
  ImageParts two = Parts(HostArchitecture(), {base, OneFileLayer("bin/app", "app v2")});
  MemorySource source;
  source.Add(one, "1");
  source.Add(two, "2");
  auto ref = store_->Pull("registry.test/app:1", &source);
  ASSERT_TRUE(ref.ok()) << ref.status().ToString();
  EXPECT_EQ(*ref, "registry.test/app:1");
  auto image = store_->Resolve("registry.test/app:1");
  ASSERT_TRUE(image.ok());
  EXPECT_EQ(image->manifest_digest, one.manifest_digest);
  ASSERT_EQ(image->layer_dirs.size(), 2u);
  ASSERT_TRUE(base::ReadFile(image->layer_dirs[1] + "/bin/app").ok());
  EXPECT_EQ(*base::ReadFile(image->layer_dirs[1] + "/bin/app"), "app v1");
  EXPECT_EQ(source.fetched.size(), 3u);  // config and two layers

  // The second image's base layer is already here: only its config and top layer are fetched.
  source.fetched.clear();
  ASSERT_TRUE(store_->Pull("registry.test/app:2", &source).ok());
  EXPECT_EQ(source.fetched, (std::vector<std::string>{two.config_digest, two.layer_digests[1]}));
  EXPECT_EQ(Count("tmp"), 0u);

  // By digest.
  source.fetched.clear();
  auto by_digest = store_->Pull("registry.test/app@" + one.manifest_digest, &source);
  ASSERT_TRUE(by_digest.ok()) << by_digest.status().ToString();
  EXPECT_TRUE(source.fetched.empty());
}

Json IndexOf(const std::vector<std::pair<std::string, std::string>>& platforms) {
  Json list = Json::array();
  for (const auto& [arch, digest] : platforms) {
    list.push_back({{"mediaType", "application/vnd.oci.image.manifest.v1+json"},
                    {"digest", digest},
                    {"size", 1},
                    {"platform", {{"architecture", arch}, {"os", "linux"}}}});
  }
  return {{"schemaVersion", 2},
          {"mediaType", "application/vnd.oci.image.index.v1+json"},
          {"manifests", list}};
}

TEST_F(PullTest, TakesThisPlatformFromAnIndex) {
  ImageParts mine = Parts(HostArchitecture(), {OneFileLayer("bin/mine", "x")});
  ImageParts other = Parts("s390x", {OneFileLayer("bin/other", "y")});
  MemorySource source;
  source.Add(mine, "mine");
  source.Add(other, "other");
  source.manifests["multi"] =
      IndexOf({{"s390x", other.manifest_digest}, {HostArchitecture(), mine.manifest_digest}})
          .dump();
  auto ref = store_->Pull("registry.test/app:multi", &source);
  ASSERT_TRUE(ref.ok()) << ref.status().ToString();
  auto image = store_->Resolve(*ref);
  ASSERT_TRUE(image.ok());
  EXPECT_TRUE(fs::exists(image->layer_dirs[0] + "/bin/mine"));
  for (const auto& d : source.fetched) EXPECT_EQ(other.blobs.count(d), 0u) << d;
}

TEST_F(PullTest, IndexWithoutThisPlatformIsInvalidAndLeavesNoTrace) {
  ImageParts other = Parts("s390x", {OneFileLayer("bin/other", "y")});
  MemorySource source;
  source.Add(other, "other");
  source.manifests["multi"] = IndexOf({{"s390x", other.manifest_digest}}).dump();
  auto ref = store_->Pull("registry.test/app:multi", &source);
  ASSERT_FALSE(ref.ok());
  EXPECT_EQ(ref.status().code(), base::Code::kInvalid);
  EXPECT_NE(ref.status().message().find("linux/s390x"), std::string::npos)
      << ref.status().message();
  EXPECT_EQ(Count("blobs/sha256") + Count("layers") + Count("tmp"), 0u);
}

TEST_F(PullTest, CorruptContentLeavesNoTrace) {
  ImageParts p = Parts(HostArchitecture(), {OneFileLayer("bin/app", "z")});
  MemorySource source;
  source.Add(p, "1");
  source.blobs[p.layer_digests[0]] += "tampered";
  auto ref = store_->Pull("registry.test/app:1", &source);
  ASSERT_FALSE(ref.ok());
  EXPECT_EQ(ref.status().code(), base::Code::kBadRequest);
  EXPECT_NE(ref.status().message().find("digest mismatch"), std::string::npos);
  EXPECT_EQ(Count("blobs/sha256") + Count("layers") + Count("tmp"), 0u);

  // A manifest that is not what its digest says.
  MemorySource bad;
  bad.Add(p, "1");
  bad.manifests[p.manifest_digest] = "{\"schemaVersion\":2}";
  EXPECT_EQ(store_->Pull("registry.test/app@" + p.manifest_digest, &bad).status().code(),
            base::Code::kBadRequest);
  // A missing tag.
  EXPECT_EQ(store_->Pull("registry.test/app:nope", &source).status().code(), base::Code::kNotFound);
  EXPECT_EQ(Count("blobs/sha256") + Count("layers") + Count("tmp"), 0u);
}

TEST(RegistryTest, SplitsReferences) {
  auto n = SplitReference("docker.io/library/busybox:latest");
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(n->endpoint, "registry-1.docker.io");
  EXPECT_EQ(n->repository, "library/busybox");
  n = SplitReference("localhost:5000/team/app@sha256:" + std::string(64, 'a'));
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(n->endpoint, "localhost:5000");
  EXPECT_EQ(n->repository, "team/app");
}

TEST(RegistryTest, FindsCredentialsInDockerConfig) {
  Json config = {{"auths",
                  {{"https://index.docker.io/v1/", {{"auth", base::Base64Encode("me:secret")}}},
                   {"localhost:5000", {{"username", "u"}, {"password", "p"}}}}}};
  EXPECT_EQ(AuthFromDockerConfig(config, "docker.io").username, "me");
  EXPECT_EQ(AuthFromDockerConfig(config, "docker.io").password, "secret");
  EXPECT_EQ(AuthFromDockerConfig(config, "localhost:5000").password, "p");
  EXPECT_TRUE(AuthFromDockerConfig(config, "quay.io").username.empty());
  EXPECT_TRUE(AuthFromDockerConfig(Json::array(), "quay.io").username.empty());
}

// ---- against Debian's docker-registry ----

int FreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  socklen_t len = sizeof(a);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

class RegistryServerTest : public PullTest {
 protected:
  void SetUp() override {
    PullTest::SetUp();
    if (!fs::exists(kRegistry)) GTEST_SKIP() << kRegistry << " is not installed (docker-registry)";
    port_ = FreePort();
    endpoint_ = "127.0.0.1:" + std::to_string(port_);
    StartRegistry("");
  }

  // (Re)starts the registry on its port and storage, with `auth` (a YAML mapping) when given.
  void StartRegistry(const std::string& auth) {
    StopRegistry();
    std::string config = dir_ + "/registry.yml";
    std::ofstream(config) << "version: 0.1\n"
                             "log: {level: error}\n"
                             "storage: {filesystem: {rootdirectory: " +
                                 dir_ +
                                 "/registry}}\n"
                                 "http: {addr: \"" +
                                 endpoint_ + "\"}\n" + (auth.empty() ? "" : "auth: " + auth + "\n");
    pid_ = ::fork();
    if (pid_ == 0) {
      int null = ::open("/dev/null", O_WRONLY);
      ::dup2(null, 1);
      ::dup2(null, 2);
      ::execl(kRegistry, kRegistry, "serve", config.c_str(), nullptr);
      ::_exit(127);
    }
    auto url = client::ParseUrl("http://" + endpoint_);
    http_ = std::make_unique<client::HttpConnection>(*url, nullptr, "");
    for (int i = 0; i < 200; ++i) {  // until it answers (401 once it wants a token)
      client::HttpResponse r;
      if (http_->Do("GET", "/v2/", "", &r).ok() && (r.status == 200 || r.status == 401)) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    FAIL() << "docker-registry did not start on " << endpoint_;
  }

  void StopRegistry() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
      pid_ = -1;
    }
    http_.reset();
  }

  void TearDown() override {
    StopRegistry();
    PullTest::TearDown();
  }

  // Pushes an image as `docker push` does: each blob by a monolithic upload, then the manifest.
  void Push(const std::string& repo, const std::string& tag, const ImageParts& p) {
    for (const auto& [digest, bytes] : p.blobs) {
      if (digest == p.manifest_digest) continue;
      client::HttpResponse r;
      ASSERT_TRUE(http_->Do("POST", "/v2/" + repo + "/blobs/uploads/", "", &r).ok());
      ASSERT_EQ(r.status, 202) << r.body;
      std::string location = r.Header("location");
      if (location.rfind("http", 0) == 0) location = location.substr(location.find('/', 8));
      location +=
          (location.find('?') == std::string::npos ? "?" : "&") + std::string("digest=") + digest;
      ASSERT_TRUE(http_->Do("PUT", location, bytes, &r, "application/octet-stream").ok());
      ASSERT_EQ(r.status, 201) << r.body;
    }
    client::HttpResponse r;
    ASSERT_TRUE(http_
                    ->Do("PUT", "/v2/" + repo + "/manifests/" + tag, p.blobs.at(p.manifest_digest),
                         &r, "application/vnd.oci.image.manifest.v1+json")
                    .ok());
    ASSERT_EQ(r.status, 201) << r.body;
  }

  base::Result<std::string> PullFromRegistry(const std::string& ref, RegistryAuth auth = {}) {
    auto norm = NormaliseImageRef(ref);
    if (!norm.ok()) return norm.status();
    ASSIGN_OR_RETURN(auto source, OpenRegistry(*norm, {}, auth));
    return store_->Pull(*norm, source.get());
  }

  static constexpr const char* kRegistry = "/usr/bin/docker-registry";
  int port_ = 0;
  pid_t pid_ = -1;
  std::string endpoint_;
  std::unique_ptr<client::HttpConnection> http_;
};

TEST_F(RegistryServerTest, PullsWhatWasPushed) {
  ImageParts p = Parts(HostArchitecture(), {OneFileLayer("bin/hello", "hello from the registry")});
  Push("team/app", "v1", p);
  auto ref = PullFromRegistry(endpoint_ + "/team/app:v1");
  ASSERT_TRUE(ref.ok()) << ref.status().ToString();
  auto image = store_->Resolve(endpoint_ + "/team/app:v1");
  ASSERT_TRUE(image.ok());
  EXPECT_EQ(image->manifest_digest, p.manifest_digest);
  EXPECT_EQ(*base::ReadFile(image->layer_dirs[0] + "/bin/hello"), "hello from the registry");

  auto missing = PullFromRegistry(endpoint_ + "/team/app:v2");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), base::Code::kNotFound);
  EXPECT_NE(missing.status().message().find("MANIFEST_UNKNOWN"), std::string::npos)
      << missing.status().message();
}

TEST_F(RegistryServerTest, CorruptBlobInTheRegistryIsRefused) {
  ImageParts p = Parts(HostArchitecture(), {OneFileLayer("bin/hello", "soon corrupt")});
  Push("team/bad", "v1", p);
  // The registry serves what its storage holds without checking it.
  std::string hex = p.layer_digests[0].substr(7);
  std::string data =
      dir_ + "/registry/docker/registry/v2/blobs/sha256/" + hex.substr(0, 2) + "/" + hex + "/data";
  ASSERT_TRUE(fs::exists(data));
  std::string bytes = *base::ReadFile(data);
  bytes[bytes.size() / 2] ^= 1;
  ASSERT_TRUE(base::WriteFileAtomic(data, bytes, 0644).ok());
  auto ref = PullFromRegistry(endpoint_ + "/team/bad:v1");
  ASSERT_FALSE(ref.ok());
  EXPECT_EQ(ref.status().code(), base::Code::kBadRequest);
  EXPECT_NE(ref.status().message().find("digest mismatch"), std::string::npos)
      << ref.status().message();
  EXPECT_EQ(Count("blobs/sha256") + Count("layers") + Count("tmp"), 0u);
}

// A token service as the distribution spec's token authentication describes: GET
// /token?service=…&scope=… with basic credentials answers {"token": JWT}, the JWT signed (RS256)
// by a key whose self-signed certificate the registry trusts (x5c header). Only puller:secret
// gets a token.
class TokenService {
 public:
  explicit TokenService(const std::string& dir) : dir_(dir) {
    std::string cmd = "openssl req -x509 -newkey rsa:2048 -nodes -keyout " + dir + "/token.key" +
                      " -out " + dir +
                      "/token.crt -subj /CN=fulcrum-test-token -days 1 2>/dev/null";
    ok_ = std::system(cmd.c_str()) == 0;
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a));
    ::listen(fd_, 16);
    socklen_t len = sizeof(a);
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { Serve(); });
  }
  ~TokenService() {
    ::shutdown(fd_, SHUT_RDWR);
    thread_.join();
    ::close(fd_);
  }
  bool ok() const { return ok_; }
  std::string realm() const { return "http://127.0.0.1:" + std::to_string(port_) + "/token"; }
  std::string cert() const { return dir_ + "/token.crt"; }
  std::vector<std::string> requests() {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }

 private:
  static std::string Base64Url(const std::string& in) {
    std::string b = base::Base64Encode(in);
    for (char& c : b) c = c == '+' ? '-' : c == '/' ? '_' : c;
    while (!b.empty() && b.back() == '=') b.pop_back();
    return b;
  }

  std::string Token(const std::string& repository) {
    FILE* f = std::fopen(cert().c_str(), "r");
    X509* x = PEM_read_X509(f, nullptr, nullptr, nullptr);
    std::fclose(f);
    unsigned char* der = nullptr;
    int der_len = i2d_X509(x, &der);
    std::string x5c = base::Base64Encode(std::string(reinterpret_cast<char*>(der), der_len));
    OPENSSL_free(der);
    X509_free(x);
    long now = static_cast<long>(std::time(nullptr));
    Json header = {{"typ", "JWT"}, {"alg", "RS256"}, {"x5c", {x5c}}};
    Json claims = {
        {"iss", "fulcrum-test"},
        {"sub", "puller"},
        {"aud", "test-registry"},
        {"exp", now + 300},
        {"nbf", now - 10},
        {"iat", now},
        {"jti", std::to_string(now)},
        {"access", {{{"type", "repository"}, {"name", repository}, {"actions", {"pull"}}}}}};
    std::string signing = Base64Url(header.dump()) + "." + Base64Url(claims.dump());
    f = std::fopen((dir_ + "/token.key").c_str(), "r");
    EVP_PKEY* key = PEM_read_PrivateKey(f, nullptr, nullptr, nullptr);
    std::fclose(f);
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    size_t sig_len = 0;
    EVP_DigestSignInit(ctx, nullptr, EVP_sha256(), nullptr, key);
    EVP_DigestSign(ctx, nullptr, &sig_len, reinterpret_cast<const unsigned char*>(signing.data()),
                   signing.size());
    std::string sig(sig_len, '\0');
    EVP_DigestSign(ctx, reinterpret_cast<unsigned char*>(sig.data()), &sig_len,
                   reinterpret_cast<const unsigned char*>(signing.data()), signing.size());
    sig.resize(sig_len);
    EVP_MD_CTX_free(ctx);
    EVP_PKEY_free(key);
    return signing + "." + Base64Url(sig);
  }

  void Serve() {
    for (;;) {
      int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) return;
      std::string request;
      char buf[4096];
      while (request.find("\r\n\r\n") == std::string::npos) {
        ssize_t n = ::read(c, buf, sizeof(buf));
        if (n <= 0) break;
        request.append(buf, static_cast<size_t>(n));
      }
      std::string line = request.substr(0, request.find("\r\n"));
      {
        std::lock_guard<std::mutex> lock(mu_);
        requests_.push_back(line);
      }
      std::string response;
      if (request.find("Authorization: Basic " + base::Base64Encode("puller:secret")) ==
          std::string::npos) {
        response = "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
      } else {
        std::string body = Json{{"token", Token("team/private")}}.dump();
        response = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " +
                   std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
      }
      (void)!::write(c, response.data(), response.size());
      ::close(c);
    }
  }

  const std::string dir_;
  bool ok_ = false;
  int fd_ = -1, port_ = 0;
  std::mutex mu_;
  std::vector<std::string> requests_;
  std::thread thread_;
};

TEST_F(RegistryServerTest, BearerTokenFromTheRegistrysRealm) {
  ImageParts p = Parts(HostArchitecture(), {OneFileLayer("bin/secret", "for token holders")});
  Push("team/private", "v1", p);  // while the registry is open
  TokenService tokens(dir_);
  ASSERT_TRUE(tokens.ok()) << "openssl could not make the token key";
  StartRegistry(
      "{token: {realm: \"" + tokens.realm() +
      "\", service: test-registry, issuer: fulcrum-test, rootcertbundle: " + tokens.cert() + "}}");
  const std::string ref = endpoint_ + "/team/private:v1";

  auto anonymous = PullFromRegistry(ref);
  ASSERT_FALSE(anonymous.ok());
  EXPECT_EQ(anonymous.status().code(), base::Code::kUnauthorized) << anonymous.status().ToString();
  EXPECT_NE(anonymous.status().message().find("token service"), std::string::npos);

  auto pulled = PullFromRegistry(ref, {"puller", "secret"});
  ASSERT_TRUE(pulled.ok()) << pulled.status().ToString();
  auto image = store_->Resolve(ref);
  ASSERT_TRUE(image.ok());
  EXPECT_EQ(*base::ReadFile(image->layer_dirs[0] + "/bin/secret"), "for token holders");
  // The token was asked for with the registry's service and the repository's pull scope.
  auto requests = tokens.requests();
  ASSERT_FALSE(requests.empty());
  EXPECT_NE(requests.back().find("service=test-registry"), std::string::npos) << requests.back();
  EXPECT_NE(requests.back().find("scope=repository%3Ateam%2Fprivate%3Apull"), std::string::npos)
      << requests.back();
}

TEST_F(RegistryServerTest, UnreachableRegistryIsUnavailable) {
  auto ref = PullFromRegistry("127.0.0.1:" + std::to_string(FreePort()) + "/team/app:v1");
  ASSERT_FALSE(ref.ok());
  EXPECT_EQ(ref.status().code(), base::Code::kUnavailable);
}

}  // namespace
}  // namespace fulcrum::agent
