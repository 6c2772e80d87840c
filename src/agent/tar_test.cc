#include "agent/tar.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>
#include <zlib.h>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace fulcrum::agent {
namespace {

namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "tar_test.XXXXXX").string();
    path_ = ::mkdtemp(tmpl.data());
  }
  ~TempDir() { fs::remove_all(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::vector<TarEntry> ReadEntries(const std::string& archive, base::Status* status,
                                  std::vector<std::string>* contents = nullptr) {
  auto source = MaybeDecompress(NewStringSource(&archive));
  TarReader reader(source.get());
  std::vector<TarEntry> out;
  TarEntry e;
  for (;;) {
    auto more = reader.Next(&e);
    if (!more.ok()) {
      *status = more.status();
      return out;
    }
    if (!*more) break;
    auto data = reader.ReadAll(1 << 20);
    if (!data.ok()) {
      *status = data.status();
      return out;
    }
    if (contents) contents->push_back(*data);
    out.push_back(e);
  }
  *status = base::Status::Ok();
  return out;
}

base::Status Extract(const std::string& archive, const std::string& root) {
  auto source = MaybeDecompress(NewStringSource(&archive));
  TarReader reader(source.get());
  return ExtractTar(&reader, root, ExtractOptions{});
}

std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string Gzip(const std::string& data) {
  z_stream z{};
  deflateInit2(&z, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
  std::string out(compressBound(data.size()) + 64, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  z.avail_in = data.size();
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = out.size();
  EXPECT_EQ(deflate(&z, Z_FINISH), Z_STREAM_END);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

TEST(TarTest, RoundTrip) {
  std::string archive;
  TarWriter w(&archive);
  w.AddDirectory("etc");
  w.AddFile("etc/passwd", "root:x:0:0::/root:/bin/sh\n", 0644, 1700000000);
  w.AddSymlink("bin/sh", "busybox");
  w.AddHardlink("etc/passwd2", "etc/passwd");
  w.AddFifo("run/fifo");
  w.AddFile("./empty", "");
  w.Finish();
  base::Status st;
  std::vector<std::string> contents;
  auto entries = ReadEntries(archive, &st, &contents);
  ASSERT_TRUE(st.ok()) << st.ToString();
  ASSERT_EQ(entries.size(), 6u);
  EXPECT_EQ(entries[0].path, "etc");
  EXPECT_EQ(entries[0].type, TarType::kDirectory);
  EXPECT_EQ(entries[1].path, "etc/passwd");
  EXPECT_EQ(entries[1].mtime, 1700000000);
  EXPECT_EQ(contents[1], "root:x:0:0::/root:/bin/sh\n");
  EXPECT_EQ(entries[2].type, TarType::kSymlink);
  EXPECT_EQ(entries[2].link_target, "busybox");
  EXPECT_EQ(entries[3].type, TarType::kHardlink);
  EXPECT_EQ(entries[3].link_target, "etc/passwd");
  EXPECT_EQ(entries[4].type, TarType::kFifo);
  EXPECT_EQ(entries[5].path, "empty");

  TempDir dir;
  ASSERT_TRUE(Extract(archive, dir.path()).ok());
  EXPECT_EQ(Slurp(dir.path() + "/etc/passwd"), "root:x:0:0::/root:/bin/sh\n");
  EXPECT_EQ(fs::read_symlink(dir.path() + "/bin/sh"), "busybox");
  struct stat a, b;
  ASSERT_EQ(::stat((dir.path() + "/etc/passwd").c_str(), &a), 0);
  ASSERT_EQ(::stat((dir.path() + "/etc/passwd2").c_str(), &b), 0);
  EXPECT_EQ(a.st_ino, b.st_ino);
  EXPECT_EQ(a.st_mtime, 1700000000);
  EXPECT_TRUE(fs::is_fifo(dir.path() + "/run/fifo"));
}

TEST(TarTest, GzipIsDetected) {
  std::string archive;
  TarWriter w(&archive);
  w.AddFile("a", std::string(100000, 'x'));
  w.Finish();
  base::Status st;
  std::vector<std::string> contents;
  auto entries = ReadEntries(Gzip(archive), &st, &contents);
  ASSERT_TRUE(st.ok()) << st.ToString();
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(contents[0], std::string(100000, 'x'));

  std::string gz = Gzip(archive);
  ReadEntries(gz.substr(0, gz.size() / 2), &st);
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("truncated"), std::string::npos) << st.message();
}

TEST(TarTest, LongNamesUsePax) {
  std::string name = std::string(150, 'd') + "/" + std::string(120, 'f');
  std::string target = std::string(200, 't');
  std::string archive;
  TarWriter w(&archive);
  w.AddFile(name, "long");
  w.AddSymlink("link", target);
  w.Finish();
  base::Status st;
  auto entries = ReadEntries(archive, &st);
  ASSERT_TRUE(st.ok()) << st.ToString();
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_EQ(entries[0].path, name);
  EXPECT_EQ(entries[1].link_target, target);
}

// A GNU 'L' header: the long name as the content of a pseudo-entry.
TEST(TarTest, GnuLongName) {
  std::string name = std::string(300, 'g');
  std::string archive;
  TarWriter w(&archive);
  w.AddFile("././@LongLink", name + '\0');
  w.AddFile("short", "content");
  w.Finish();
  // Turn the first header into type 'L' and fix its checksum.
  archive[156] = 'L';
  std::memset(&archive[148], ' ', 8);
  unsigned sum = 0;
  for (int i = 0; i < 512; ++i) sum += static_cast<unsigned char>(archive[i]);
  snprintf(&archive[148], 8, "%06o", sum);
  base::Status st;
  std::vector<std::string> contents;
  auto entries = ReadEntries(archive, &st, &contents);
  ASSERT_TRUE(st.ok()) << st.ToString();
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].path, name);
  EXPECT_EQ(contents[0], "content");
}

TEST(TarTest, PaxSizeOverridesHeader) {
  std::string archive;
  TarWriter w(&archive);
  w.AddFile("PaxHeaders/x", "15 size=000010\n");  // 15 bytes, the length included
  w.AddFile("x", "0123456789");
  w.Finish();
  archive[156] = 'x';
  std::memset(&archive[148], ' ', 8);
  unsigned sum = 0;
  for (int i = 0; i < 512; ++i) sum += static_cast<unsigned char>(archive[i]);
  snprintf(&archive[148], 8, "%06o", sum);
  base::Status st;
  std::vector<std::string> contents;
  auto entries = ReadEntries(archive, &st, &contents);
  ASSERT_TRUE(st.ok()) << st.ToString();
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].size, 10u);
  EXPECT_EQ(contents[0], "0123456789");
}

TEST(TarTest, PathTraversalIsRefused) {
  for (const std::string bad : {"../x", "/abs", "a/../../x", "a/.."}) {
    std::string archive;
    TarWriter w(&archive);
    w.AddFile(bad, "evil");
    w.Finish();
    base::Status st;
    ReadEntries(archive, &st);
    EXPECT_EQ(st.code(), base::Code::kBadRequest) << bad;
    EXPECT_NE(st.message().find(bad), std::string::npos) << st.message();
    TempDir dir;
    EXPECT_FALSE(Extract(archive, dir.path()).ok());
  }
  std::string archive;
  TarWriter w(&archive);
  w.AddFile("ok", "x");
  w.AddHardlink("link", "../../etc/shadow");
  w.Finish();
  TempDir dir;
  auto st = Extract(archive, dir.path());
  EXPECT_EQ(st.code(), base::Code::kBadRequest);
  EXPECT_NE(st.message().find("hard link"), std::string::npos) << st.message();
}

TEST(TarTest, WritingThroughASymlinkIsRefused) {
  TempDir outside, dir;
  std::string archive;
  TarWriter w(&archive);
  w.AddSymlink("evil", outside.path());
  w.AddFile("evil/pwned", "gotcha");
  w.Finish();
  auto st = Extract(archive, dir.path());
  EXPECT_EQ(st.code(), base::Code::kBadRequest) << st.ToString();
  EXPECT_NE(st.message().find("symlink"), std::string::npos) << st.message();
  EXPECT_FALSE(fs::exists(outside.path() + "/pwned"));

  // A symlink as the final component is replaced, not written through.
  std::string archive2;
  TarWriter w2(&archive2);
  w2.AddSymlink("file", outside.path() + "/victim");
  w2.AddFile("file", "replaced");
  w2.Finish();
  ASSERT_TRUE(Extract(archive2, dir.path()).ok());
  EXPECT_FALSE(fs::exists(outside.path() + "/victim"));
  EXPECT_EQ(Slurp(dir.path() + "/file"), "replaced");

  // A hard link to a path through a symlink.
  std::string archive3;
  TarWriter w3(&archive3);
  w3.AddSymlink("up", "/etc");
  w3.AddHardlink("shadow", "up/passwd");
  w3.Finish();
  EXPECT_EQ(Extract(archive3, dir.path()).code(), base::Code::kBadRequest);
  EXPECT_FALSE(fs::exists(dir.path() + "/shadow"));
}

TEST(TarTest, TruncatedArchive) {
  std::string archive;
  TarWriter w(&archive);
  w.AddFile("a", std::string(2000, 'a'));
  w.AddFile("b", "b");
  w.Finish();
  base::Status st;
  ReadEntries(archive.substr(0, 1000), &st);  // inside a's content
  EXPECT_EQ(st.code(), base::Code::kBadRequest);
  EXPECT_NE(st.message().find("truncated"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("\"a\""), std::string::npos) << st.message();
  ReadEntries(archive.substr(0, 512 * 5 + 100), &st);  // inside b's header
  EXPECT_EQ(st.code(), base::Code::kBadRequest);
  EXPECT_NE(st.message().find("truncated"), std::string::npos) << st.message();
}

TEST(TarTest, BadChecksum) {
  std::string archive;
  TarWriter w(&archive);
  w.AddFile("a", "x");
  w.Finish();
  archive[10] = 'Z';  // in the name field
  base::Status st;
  ReadEntries(archive, &st);
  EXPECT_EQ(st.code(), base::Code::kBadRequest);
  EXPECT_NE(st.message().find("checksum"), std::string::npos) << st.message();
}

TEST(TarTest, HugeSizeIsRefused) {
  std::string archive;
  TarWriter w(&archive);
  w.AddFile("a", "x");
  w.Finish();
  std::memcpy(&archive[124], "77777777777", 11);
  std::memset(&archive[148], ' ', 8);
  unsigned sum = 0;
  for (int i = 0; i < 512; ++i) sum += static_cast<unsigned char>(archive[i]);
  snprintf(&archive[148], 8, "%06o", sum);
  base::Status st;
  ReadEntries(archive, &st);
  EXPECT_EQ(st.code(), base::Code::kBadRequest);
}

TEST(TarTest, DevicesNeedRoot) {
  if (::geteuid() != 0) GTEST_SKIP() << "mknod of a character device needs root";
  std::string archive;
  TarWriter w(&archive);
  w.AddCharDevice("dev/null", 1, 3, 0666);
  w.Finish();
  TempDir dir;
  ASSERT_TRUE(Extract(archive, dir.path()).ok());
  struct stat st;
  ASSERT_EQ(::lstat((dir.path() + "/dev/null").c_str(), &st), 0);
  EXPECT_TRUE(S_ISCHR(st.st_mode));
  EXPECT_EQ(major(st.st_rdev), 1u);
  EXPECT_EQ(minor(st.st_rdev), 3u);
}

}  // namespace
}  // namespace fulcrum::agent
