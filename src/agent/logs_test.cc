#include "agent/logs.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>

#include "base/file.h"

namespace fulcrum::agent {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

base::WallTime At(const std::string& rfc3339) {
  base::WallTime t;
  EXPECT_TRUE(base::ParseRfc3339(rfc3339, &t)) << rfc3339;
  return t;
}

std::string ReadAll(const std::string& path, LogReadOptions options = {}) {
  std::string out;
  base::Status s = ReadContainerLog(path, options, [&](std::string_view piece) {
    out.append(piece);
    return true;
  });
  EXPECT_TRUE(s.ok()) << s.ToString();
  return out;
}

class LogsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "logs_test.XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    clock_.Set(At("2026-11-27T07:00:00Z"));
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  std::unique_ptr<CriLogWriter> Writer(LogRotation rotation = {}) {
    auto w = CriLogWriter::Open(dir_ + "/c/0.log", rotation, &clock_);
    EXPECT_TRUE(w.ok()) << w.status().ToString();
    return w.ok() ? std::move(*w) : nullptr;
  }
  std::string dir_;
  base::FakeClock clock_;
};

TEST(CriFormatTest, Timestamps) {
  base::WallTime t = At("2026-11-27T07:54:30Z") + 123456789ns;
  EXPECT_EQ(FormatRfc3339Nano(t), "2026-11-27T07:54:30.123456789Z");
  EXPECT_EQ(FormatRfc3339Nano(At("2026-11-27T07:54:30Z")), "2026-11-27T07:54:30.000000000Z");
}

TEST(CriFormatTest, ParsesRecords) {
  auto r = ParseCriRecord("2026-11-27T07:54:30.123456789Z stderr P half a li");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->stream, LogStream::kStderr);
  EXPECT_TRUE(r->partial);
  EXPECT_EQ(r->content, "half a li");
  EXPECT_EQ(r->time, At("2026-11-27T07:54:30.123456Z"));
  r = ParseCriRecord("2026-11-27T07:54:30Z stdout F");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->content, "");
  r = ParseCriRecord("2026-11-27T07:54:30Z stdout F:x  two spaces");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->content, " two spaces");
  EXPECT_EQ(ParseCriRecord("").status().message(), "CRI log record has no timestamp");
  EXPECT_EQ(ParseCriRecord("yesterday stdout F x").status().message(),
            "CRI log record timestamp \"yesterday\" is not RFC 3339");
  EXPECT_EQ(ParseCriRecord("2026-11-27T07:54:30Z stdin F x").status().message(),
            "CRI log record stream is not stdout or stderr");
  EXPECT_EQ(ParseCriRecord("2026-11-27T07:54:30Z stdout X x").status().message(),
            "CRI log record tag is not F or P");
}

TEST_F(LogsTest, WritesLinesPartsAndLongLines) {
  auto w = Writer();
  ASSERT_TRUE(w->Write(LogStream::kStdout, "hello\nwor").ok());
  ASSERT_TRUE(w->Write(LogStream::kStderr, "oops\n").ok());
  clock_.Advance(1500ms);
  ASSERT_TRUE(w->Write(LogStream::kStdout, "ld\n").ok());
  ASSERT_TRUE(w->Write(LogStream::kStdout, "no newline").ok());
  ASSERT_TRUE(w->Flush(LogStream::kStdout).ok());
  EXPECT_EQ(*base::ReadFile(dir_ + "/c/0.log"),
            "2026-11-27T07:00:00.000000000Z stdout F hello\n"
            "2026-11-27T07:00:00.000000000Z stderr F oops\n"
            "2026-11-27T07:00:01.500000000Z stdout F world\n"
            "2026-11-27T07:00:01.500000000Z stdout F no newline\n");

  std::string big(kMaxLogRecordBytes * 2 + 10, 'x');
  ASSERT_TRUE(w->Write(LogStream::kStdout, big + "\n").ok());
  std::string text = *base::ReadFile(dir_ + "/c/0.log");
  EXPECT_NE(text.find(" stdout P " + std::string(kMaxLogRecordBytes, 'x') + "\n"), std::string::npos);
  EXPECT_NE(text.find(" stdout F xxxxxxxxxx\n"), std::string::npos);
  // Read back: the long line is one line again.
  EXPECT_EQ(ReadAll(dir_ + "/c/0.log"), "hello\noops\nworld\nno newline\n" + big + "\n");
}

TEST(ContainerLogPathTest, OneFilePerRun) {
  EXPECT_EQ(ContainerLogPath("/r", "shop", "web", "u1", "app", 0), "/r/logs/shop_web_u1/app/0.log");
  EXPECT_EQ(ContainerLogPath("/r", "shop", "web", "u1", "app", 3), "/r/logs/shop_web_u1/app/3.log");
}

TEST_F(LogsTest, RotatesBySizeKeepingNFiles) {
  auto w = Writer({1024, 3});
  for (int i = 0; i < 100; ++i) {
    ASSERT_TRUE(w->Write(LogStream::kStdout, "line " + std::to_string(i) + "\n").ok());
  }
  const std::string path = dir_ + "/c/0.log";
  EXPECT_EQ(LogFiles(path), (std::vector<std::string>{path + ".2", path + ".1", path}));
  EXPECT_FALSE(fs::exists(path + ".3"));
  for (const auto& f : LogFiles(path)) EXPECT_LE(fs::file_size(f), 1024u) << f;
  std::string all = ReadAll(path);
  EXPECT_EQ(all.substr(all.size() - 8), "line 99\n");
  // What is kept is a contiguous run ending at the last line.
  int first = std::stoi(all.substr(5, all.find('\n') - 5));
  std::string expected;
  for (int i = first; i < 100; ++i) expected += "line " + std::to_string(i) + "\n";
  EXPECT_EQ(all, expected);
  EXPECT_GT(first, 0);
}

TEST_F(LogsTest, TailSinceTimestampsAndLimit) {
  auto w = Writer();
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(w->Write(LogStream::kStdout, "l" + std::to_string(i) + "\n").ok());
    clock_.Advance(1s);
  }
  const std::string path = dir_ + "/c/0.log";
  LogReadOptions o;
  o.tail_lines = 2;
  EXPECT_EQ(ReadAll(path, o), "l3\nl4\n");
  o.tail_lines = 0;
  EXPECT_EQ(ReadAll(path, o), "");
  o = {};
  o.since = At("2026-11-27T07:00:02Z");
  EXPECT_EQ(ReadAll(path, o), "l2\nl3\nl4\n");
  o.tail_lines = 1;
  o.timestamps = true;
  EXPECT_EQ(ReadAll(path, o), "2026-11-27T07:00:04.000000000Z l4\n");
  o = {};
  o.limit_bytes = 7;
  EXPECT_EQ(ReadAll(path, o), "l0\nl1\nl");
  EXPECT_EQ(ReadContainerLog(dir_ + "/none.log", {}, [](std::string_view) { return true; }).code(),
            base::Code::kNotFound);
}

TEST_F(LogsTest, FollowerSeesAppendsAndRotation) {
  auto w = Writer({1024, 2});
  ASSERT_TRUE(w->Write(LogStream::kStdout, "before\n").ok());
  LogFollower follow(dir_ + "/c/0.log");
  EXPECT_EQ(follow.Poll(), "");
  ASSERT_TRUE(w->Write(LogStream::kStdout, "a\nb").ok());
  EXPECT_EQ(follow.Poll(), "a\n");
  ASSERT_TRUE(w->Write(LogStream::kStdout, "\n").ok());
  EXPECT_EQ(follow.Poll(), "b\n");
  std::string expected;
  for (int i = 0; i < 40; ++i) {  // more than one file's worth: the writer rotates
    std::string line = "row " + std::to_string(i) + "\n";
    expected += line;
    ASSERT_TRUE(w->Write(LogStream::kStdout, line).ok());
    if (i == 20) {
      std::string got = follow.Poll();
      expected.erase(0, got.size());
      EXPECT_EQ(got.substr(0, 6), "row 0\n");
    }
  }
  EXPECT_TRUE(fs::exists(dir_ + "/c/0.log.1"));
  EXPECT_EQ(follow.Poll(), expected);
}

TEST_F(LogsTest, FollowerGoesOnWhereTheReadStopped) {
  // `kubectl logs -f`: what is there is read, then followed; a line written in between is sent
  // once, and a line still being written when the read ends comes with the follower.
  auto w = Writer();
  ASSERT_TRUE(w->Write(LogStream::kStdout, "one\ntwo\npart").ok());
  int64_t end = -2;
  LogReadOptions o;
  o.end_offset = &end;
  std::string read;
  ASSERT_TRUE(ReadContainerLog(dir_ + "/c/0.log", o, [&](std::string_view s) {
                read += s;
                return true;
              }).ok());
  EXPECT_EQ(read, "one\ntwo\n");
  EXPECT_GT(end, 0);
  ASSERT_TRUE(w->Write(LogStream::kStdout, "ial\nthree\n").ok());  // between the read and -f
  LogFollower follow(dir_ + "/c/0.log", false, end);
  EXPECT_EQ(follow.Poll(), "partial\nthree\n");
  ASSERT_TRUE(w->Write(LogStream::kStdout, "four\n").ok());
  EXPECT_EQ(follow.Poll(), "four\n");
}

TEST_F(LogsTest, CaptureCopiesFifosUntilTheWritersClose) {
  auto capture = LogCapture::Start();
  ASSERT_TRUE(capture.ok()) << capture.status().ToString();
  auto pipes = (*capture)->Attach("ctr", dir_ + "/fifo", Writer());
  ASSERT_TRUE(pipes.ok()) << pipes.status().ToString();
  EXPECT_TRUE((*capture)->Attached("ctr"));
  // As the runtime opens them for a container: read-write.
  int out = ::open(pipes->stdout_path.c_str(), O_RDWR | O_CLOEXEC);
  int err = ::open(pipes->stderr_path.c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_GE(out, 0);
  ASSERT_GE(err, 0);
  ASSERT_EQ(::write(out, "to stdout\npartial", 17), 17);
  ASSERT_EQ(::write(err, "to stderr\n", 10), 10);
  (*capture)->Drain();
  std::string text = *base::ReadFile(dir_ + "/c/0.log");
  EXPECT_NE(text.find(" stdout F to stdout\n"), std::string::npos) << text;
  EXPECT_NE(text.find(" stderr F to stderr\n"), std::string::npos) << text;
  EXPECT_EQ(text.find("partial"), std::string::npos);
  // The container exits: its descriptors close, the streams end, the partial line is written.
  ::close(out);
  ::close(err);
  for (int i = 0; i < 200 && (*capture)->Attached("ctr"); ++i) (*capture)->Drain(10);
  EXPECT_FALSE((*capture)->Attached("ctr"));
  EXPECT_EQ(ReadAll(dir_ + "/c/0.log"), "to stdout\nto stderr\npartial\n");

  // Attached again (a restart on the same FIFOs): new output goes to the new writer.
  auto w2 = CriLogWriter::Open(dir_ + "/c/1.log", {}, &clock_);
  ASSERT_TRUE(w2.ok());
  pipes = (*capture)->Attach("ctr", dir_ + "/fifo", std::move(*w2));
  ASSERT_TRUE(pipes.ok());
  out = ::open(pipes->stdout_path.c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_EQ(::write(out, "second run\n", 11), 11);
  (*capture)->Drain();
  (*capture)->Detach("ctr");
  (*capture)->Drain();
  EXPECT_FALSE((*capture)->Attached("ctr"));
  ::close(out);
  EXPECT_EQ(ReadAll(dir_ + "/c/1.log"), "second run\n");
}

}  // namespace
}  // namespace fulcrum::agent
