#include "agent/image_store.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "agent/image_archive.h"
#include "agent/tar.h"
#include "agent/testing/layers.h"

namespace fulcrum::agent {
namespace {

namespace fs = std::filesystem;

class ImageStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "image_store_test.XXXXXX").string();
    dir_ = ::mkdtemp(tmpl.data());
    root_ = dir_ + "/root";
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::unique_ptr<ImageStore> OpenStore(ImageStoreOptions options = {}) {
    auto store = ImageStore::Open(root_, options);
    EXPECT_TRUE(store.ok()) << store.status().ToString();
    return std::move(store).value();
  }

  std::string WriteArchive(const std::string& name, const std::string& bytes) {
    std::string path = dir_ + "/" + name;
    std::ofstream(path, std::ios::binary) << bytes;
    return path;
  }

  size_t Count(const std::string& sub) {
    size_t n = 0;
    for ([[maybe_unused]] const auto& e : fs::directory_iterator(root_ + "/images/" + sub)) ++n;
    return n;
  }

  // Nothing but an empty index: no blobs, layers or temporary files.
  void ExpectNoTrace(ImageStore* store) {
    EXPECT_EQ(Count("blobs/sha256"), 0u);
    EXPECT_EQ(Count("layers"), 0u);
    EXPECT_EQ(Count("tmp"), 0u);
    auto list = store->List();
    ASSERT_TRUE(list.ok());
    EXPECT_TRUE(list->empty());
  }

  std::string dir_, root_;
};

ImageSpec Spec(const std::string& name, std::vector<std::string> layers) {
  ImageSpec s;
  s.name = name;
  s.architecture = HostArchitecture();
  s.config = {{"Cmd", {"sh"}}, {"Env", {"PATH=/bin"}}, {"WorkingDir", "/tmp"}, {"User", "0"}};
  s.layers = std::move(layers);
  return s;
}

// Copies an archive without the entry at `path`.
std::string DropEntry(const std::string& archive, const std::string& path) {
  std::string out;
  TarWriter w(&out);
  auto src = NewStringSource(&archive);
  TarReader r(src.get());
  TarEntry e;
  while (*r.Next(&e)) {
    std::string data = *r.ReadAll(1 << 24);
    if (e.path == path) continue;
    if (e.type == TarType::kDirectory)
      w.AddDirectory(e.path);
    else
      w.AddFile(e.path, data);
  }
  w.Finish();
  return out;
}

TEST(ImageRefTest, NormalisesAsDocker) {
  EXPECT_EQ(*NormaliseImageRef("busybox"), "docker.io/library/busybox:latest");
  EXPECT_EQ(*NormaliseImageRef("busybox:1.36"), "docker.io/library/busybox:1.36");
  EXPECT_EQ(*NormaliseImageRef("docker.io/library/busybox:1.36"), "docker.io/library/busybox:1.36");
  EXPECT_EQ(*NormaliseImageRef("index.docker.io/busybox"), "docker.io/library/busybox:latest");
  EXPECT_EQ(*NormaliseImageRef("user/app"), "docker.io/user/app:latest");
  EXPECT_EQ(*NormaliseImageRef("fulcrum.dev/busybox:demo"), "fulcrum.dev/busybox:demo");
  EXPECT_EQ(*NormaliseImageRef("localhost:5000/a/b"), "localhost:5000/a/b:latest");
  std::string d = "sha256:" + std::string(64, 'a');
  EXPECT_EQ(*NormaliseImageRef("busybox@" + d), "docker.io/library/busybox@" + d);
  EXPECT_FALSE(NormaliseImageRef("BusyBox").ok());
  EXPECT_FALSE(NormaliseImageRef("busybox:").ok());
  EXPECT_FALSE(NormaliseImageRef("a//b").ok());
  EXPECT_FALSE(NormaliseImageRef("busybox@sha256:zz").ok());
  EXPECT_FALSE(NormaliseImageRef("").ok());
}

TEST_F(ImageStoreTest, ImportOciLayoutAndResolve) {
  auto store = OpenStore();
  std::string path =
      WriteArchive("oci.tar", WriteOciLayout({Spec("busybox", {OneFileLayer("bin/hello", "hi")})}));
  auto refs = store->Import(path);
  ASSERT_TRUE(refs.ok()) << refs.status().ToString();
  ASSERT_EQ(*refs, std::vector<std::string>{"docker.io/library/busybox:latest"});
  auto image = store->Resolve("busybox:latest");
  ASSERT_TRUE(image.ok()) << image.status().ToString();
  EXPECT_EQ(image->config.cmd, std::vector<std::string>{"sh"});
  EXPECT_EQ(image->config.env, std::vector<std::string>{"PATH=/bin"});
  EXPECT_EQ(image->config.working_dir, "/tmp");
  EXPECT_EQ(image->config.user, "0");
  EXPECT_EQ(image->config.os, "linux");
  ASSERT_EQ(image->layer_dirs.size(), 1u);
  std::ifstream in(image->layer_dirs[0] + "/bin/hello");
  std::string content((std::istreambuf_iterator<char>(in)), {});
  EXPECT_EQ(content, "hi");
  EXPECT_TRUE(fs::exists(root_ + "/images/blobs/sha256/" + image->manifest_digest.substr(7)));
  auto by_digest = store->Resolve(image->manifest_digest);
  ASSERT_TRUE(by_digest.ok());
  EXPECT_EQ(by_digest->ref, "docker.io/library/busybox:latest");
  EXPECT_TRUE(store->Resolve("nginx").status().IsNotFound());
  EXPECT_EQ(Count("tmp"), 0u);

  // A caller-given name overrides the archive's.
  auto named = store->Import(path, "example.com/mine:v1");
  ASSERT_TRUE(named.ok()) << named.status().ToString();
  EXPECT_EQ(*named, std::vector<std::string>{"example.com/mine:v1"});
  EXPECT_EQ(Count("layers"), 1u);
}

#ifdef FULCRUM_DEMO_IMAGE
TEST_F(ImageStoreTest, ImportsTheDemoImage) {
  auto store = OpenStore();
  auto refs = store->Import(FULCRUM_DEMO_IMAGE);
  ASSERT_TRUE(refs.ok()) << refs.status().ToString();
  ASSERT_EQ(*refs, std::vector<std::string>{"fulcrum.dev/busybox:demo"});
  auto image = store->Resolve("fulcrum.dev/busybox:demo");
  ASSERT_TRUE(image.ok());
  EXPECT_EQ(image->config.cmd, std::vector<std::string>{"sh"});
  ASSERT_EQ(image->layer_dirs.size(), 1u);
  const std::string& layer = image->layer_dirs[0];
  EXPECT_TRUE(fs::is_regular_file(layer + "/bin/busybox"));
  EXPECT_EQ(fs::read_symlink(layer + "/bin/sh"), "busybox");
  EXPECT_TRUE(fs::is_directory(layer + "/tmp"));
  EXPECT_TRUE(fs::exists(layer + "/etc/passwd"));
  struct stat st;
  ASSERT_EQ(::stat((layer + "/bin/busybox").c_str(), &st), 0);
  EXPECT_TRUE(st.st_mode & S_IXUSR);
}
#endif

TEST_F(ImageStoreTest, SharedLayersAreStoredOnceAndRemovedLast) {
  auto store = OpenStore();
  std::string base = OneFileLayer("bin/base", "base layer");
  std::string oci =
      WriteArchive("a.tar", WriteOciLayout({Spec("a:1", {base, OneFileLayer("bin/a", "a")})}));
  std::string docker =
      WriteArchive("b.tar", WriteDockerSave({Spec("b:1", {base, OneFileLayer("bin/b", "b")})}));
  ASSERT_TRUE(store->Import(oci).ok());
  auto b = store->Import(docker);
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  EXPECT_EQ(*b, std::vector<std::string>{"docker.io/library/b:1"});
  EXPECT_EQ(Count("layers"), 3u);
  auto ia = store->Resolve("a:1");
  auto ib = store->Resolve("b:1");
  ASSERT_TRUE(ia.ok() && ib.ok());
  EXPECT_EQ(ia->layer_dirs[0], ib->layer_dirs[0]);
  EXPECT_NE(ia->layer_dirs[1], ib->layer_dirs[1]);
  auto list = store->List();
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].ref, "docker.io/library/a:1");

  ASSERT_TRUE(store->Remove("a:1").ok());
  EXPECT_TRUE(fs::exists(ib->layer_dirs[0]));
  EXPECT_FALSE(fs::exists(ia->layer_dirs[1]));
  EXPECT_EQ(Count("layers"), 2u);
  EXPECT_TRUE(store->Resolve("a:1").status().IsNotFound());
  EXPECT_TRUE(store->Remove("a:1").IsNotFound());
  ASSERT_TRUE(store->Resolve("b:1").ok());

  ASSERT_TRUE(store->Remove("docker.io/library/b:1").ok());
  ExpectNoTrace(store.get());
}

TEST_F(ImageStoreTest, IndexPersistsAcrossReopen) {
  {
    auto store = OpenStore();
    std::string path =
        WriteArchive("oci.tar", WriteOciLayout({Spec("persist:1", {OneFileLayer("bin/p", "p")})}));
    ASSERT_TRUE(store->Import(path).ok());
  }
  auto store = OpenStore();
  auto image = store->Resolve("persist:1");
  ASSERT_TRUE(image.ok()) << image.status().ToString();
  EXPECT_TRUE(fs::exists(image->layer_dirs[0] + "/bin/p"));
}

TEST_F(ImageStoreTest, DigestMismatchLeavesNoTrace) {
  auto store = OpenStore();
  std::string archive = WriteOciLayout({Spec("bad:1", {OneFileLayer("bin/x", "MARKER-AAAA")})});
  auto pos = archive.find("MARKER-AAAA");
  ASSERT_NE(pos, std::string::npos);
  archive.replace(pos, 11, "MARKER-BBBB");
  auto r = store->Import(WriteArchive("bad.tar", archive));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), base::Code::kBadRequest);
  EXPECT_NE(r.status().message().find("digest mismatch"), std::string::npos)
      << r.status().message();
  ExpectNoTrace(store.get());
}

TEST_F(ImageStoreTest, DiffIdMismatchLeavesNoTrace) {
  auto store = OpenStore();
  // docker-save layers are named by their own digest, so tamper with the diff_id side instead:
  // a layer whose content differs from what the config's diff_id promises.
  ImageSpec spec = Spec("bad:2", {OneFileLayer("bin/x", "MARKER-AAAA")});
  std::string archive = WriteDockerSave({spec});
  auto pos = archive.find("MARKER-AAAA");
  archive.replace(pos, 11, "MARKER-BBBB");
  auto r = store->Import(WriteArchive("bad.tar", archive));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("diff_id"), std::string::npos) << r.status().message();
  ExpectNoTrace(store.get());
}

TEST_F(ImageStoreTest, MissingBlobLeavesNoTrace) {
  auto store = OpenStore();
  std::string layer = OneFileLayer("bin/x", "x");
  std::string archive = WriteOciLayout({Spec("missing:1", {layer})});
  std::string digest = Sha256Digest(layer);
  archive = DropEntry(archive, "blobs/sha256/" + digest.substr(7));
  auto r = store->Import(WriteArchive("missing.tar", archive));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), base::Code::kBadRequest);
  EXPECT_NE(r.status().message().find(digest), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find("missing"), std::string::npos) << r.status().message();
  ExpectNoTrace(store.get());
}

TEST_F(ImageStoreTest, CorruptArchiveLeavesNoTrace) {
  auto store = OpenStore();
  std::string archive =
      WriteOciLayout({Spec("trunc:1", {OneFileLayer("bin/x", std::string(5000, 'x'))})});
  auto r = store->Import(WriteArchive("trunc.tar", archive.substr(0, archive.size() / 2 + 100)));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), base::Code::kBadRequest);
  EXPECT_NE(r.status().message().find("truncated"), std::string::npos) << r.status().message();
  ExpectNoTrace(store.get());
  EXPECT_TRUE(store->Import(dir_ + "/nonexistent.tar").status().IsNotFound());
}

TEST_F(ImageStoreTest, WrongArchitectureIsRefused) {
  auto store = OpenStore();
  ImageSpec spec = Spec("arm:1", {OneFileLayer("bin/x", "x")});
  spec.architecture = HostArchitecture() == "arm64" ? "amd64" : "arm64";
  auto r = store->Import(WriteArchive("arm.tar", WriteOciLayout({spec})));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), base::Code::kInvalid);
  EXPECT_NE(r.status().message().find("linux/" + spec.architecture), std::string::npos)
      << r.status().message();
  EXPECT_NE(r.status().message().find("docker.io/library/arm:1"), std::string::npos);
  ExpectNoTrace(store.get());
}

TEST_F(ImageStoreTest, WhiteoutsBecomeOverlayWhiteouts) {
  if (::geteuid() != 0) GTEST_SKIP() << "overlay whiteouts need mknod and trusted.* xattrs (root)";
  auto store = OpenStore();
  std::string upper;
  TarWriter w(&upper);
  w.AddDirectory("etc");
  w.AddFile("etc/.wh.gone", "");
  w.AddDirectory("opaque");
  w.AddFile("opaque/.wh..wh..opq", "");
  w.AddFile("opaque/kept", "k");
  w.Finish();
  std::string path =
      WriteArchive("wh.tar", WriteOciLayout({Spec("wh:1", {OneFileLayer("bin/x", "x"), upper})}));
  auto r = store->Import(path);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  auto image = store->Resolve("wh:1");
  ASSERT_TRUE(image.ok());
  const std::string& dir = image->layer_dirs[1];
  struct stat st;
  ASSERT_EQ(::lstat((dir + "/etc/gone").c_str(), &st), 0);
  EXPECT_TRUE(S_ISCHR(st.st_mode));
  EXPECT_EQ(st.st_rdev, makedev(0, 0));
  EXPECT_FALSE(fs::exists(dir + "/etc/.wh.gone"));
  char value[8] = {};
  ASSERT_EQ(::lgetxattr((dir + "/opaque").c_str(), "trusted.overlay.opaque", value, sizeof(value)),
            1)
      << std::strerror(errno);
  EXPECT_EQ(value[0], 'y');
  EXPECT_FALSE(fs::exists(dir + "/opaque/.wh..wh..opq"));
  EXPECT_TRUE(fs::exists(dir + "/opaque/kept"));
}

}  // namespace
}  // namespace fulcrum::agent
