#include "agent/pod_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <termios.h>

#include <thread>

#include <algorithm>
#include <filesystem>
#include <map>
#include <set>

#include "agent/logs.h"
#include "agent/testing/descriptors.h"
#include "agent/spdy.h"
#include "apiserver/pki.h"
#include "base/json.h"
#include "client/http_client.h"
#include "client/test_server.h"

namespace fulcrum::agent {
namespace {

namespace fs = std::filesystem;
using base::Json;

TEST(WebSocketTest, AcceptKeyIsRfc6455Example) {
  EXPECT_EQ(websocket::AcceptKey("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

TEST(WebSocketTest, DecodesMaskedFragmentedMessagesWithControlFramesBetween) {
  std::string big(70000, 'x');
  std::string wire = websocket::EncodeFrame(websocket::kBinary, "\x01hello", 0x11223344);
  // A fragmented message: text start (FIN clear), a ping, then the continuation.
  std::string start = websocket::EncodeFrame(websocket::kText, "ab", 0x01020304);
  start[0] = static_cast<char>(start[0] & 0x7f);
  wire += start + websocket::EncodeFrame(websocket::kPing, "p", 0x05060708) +
          websocket::EncodeFrame(websocket::kContinuation, "cd", 0x0a0b0c0d) +
          websocket::EncodeFrame(websocket::kBinary, big, 0x01010101);
  websocket::Decoder decoder;
  std::vector<std::pair<websocket::Opcode, std::string>> got;
  // Byte by byte at first: every length field is read only once it is all there.
  for (std::size_t i = 0; i < wire.size();) {
    std::size_t n = i < 40 ? 1 : wire.size() - i;
    decoder.Feed(std::string_view(wire).substr(i, n));
    i += n;
    websocket::Opcode op;
    std::string payload;
    for (;;) {
      auto next = decoder.Next(&op, &payload);
      ASSERT_TRUE(next.ok()) << next.status().ToString();
      if (!*next) break;
      got.emplace_back(op, payload);
    }
  }
  ASSERT_EQ(got.size(), 4u);
  EXPECT_EQ(got[0].second, "\x01hello");
  EXPECT_EQ(got[1].first, websocket::kPing);
  EXPECT_EQ(got[2].first, websocket::kText);
  EXPECT_EQ(got[2].second, "abcd");
  EXPECT_EQ(got[3].second, big);
}

TEST(WebSocketTest, RefusesOversizedFramesAndStrayContinuations) {
  websocket::Decoder small(16);
  small.Feed(websocket::EncodeFrame(websocket::kBinary, std::string(17, 'x'), 1));
  websocket::Opcode op;
  std::string payload;
  EXPECT_FALSE(small.Next(&op, &payload).ok());
  websocket::Decoder stray;
  stray.Feed(websocket::EncodeFrame(websocket::kContinuation, "x", 1));
  EXPECT_FALSE(stray.Next(&op, &payload).ok());
  websocket::Decoder huge;  // a 64-bit length far above the limit is refused before any payload
  huge.Feed(std::string("\x82\xff\x7f\xff\xff\xff\xff\xff\xff\xff", 10));
  EXPECT_FALSE(huge.Next(&op, &payload).ok());
}

TEST(ExitStatusTest, NonZeroExitCodeCarriesTheCodeAsCause) {
  EXPECT_EQ(ExitStatusJson(0, {"true"}), R"({"metadata":{},"status":"Success"})");
  Json status = Json::parse(ExitStatusJson(3, {"sh", "-c", "exit 3"}));
  EXPECT_EQ(status["status"], "Failure");
  EXPECT_EQ(status["reason"], "NonZeroExitCode");
  EXPECT_EQ(status["details"]["causes"][0]["reason"], "ExitCode");
  EXPECT_EQ(status["details"]["causes"][0]["message"], "3");
}

class FakeDirectory : public ContainerDirectory {
 public:
  base::Result<ContainerTarget> Find(const std::string& ns, const std::string& pod,
                                     const std::string& container, bool previous) override {
    std::lock_guard lock(mu);
    auto it = targets.find(ns + "/" + pod + "/" + container + (previous ? "/previous" : ""));
    if (it == targets.end()) {
      return base::NotFound("container \"" + container + "\" not found in pod \"" + pod + "\"");
    }
    return it->second;
  }
  base::Result<std::string> NetworkNamespace(const std::string& ns,
                                             const std::string& pod) override {
    if (ns + "/" + pod != "ns/web") return base::NotFound("pod \"" + pod + "\" does not exist");
    return std::string();  // this process's own
  }
  std::mutex mu;
  std::map<std::string, ContainerTarget> targets;
};

class PodServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("pod_server_test_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    exec_ = NewHostExecRunner();
    PodServerOptions options;
    options.host = "127.0.0.1";
    options.port = 0;
    auto server = StartPodServer(options, &directory_, exec_.get());
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    server_ = std::move(*server);
    directory_.targets["ns/web/app"] = {"c1", (dir_ / "0.log").string(), true, {}, nullptr};
  }
  void TearDown() override {
    server_.reset();
    fs::remove_all(dir_);
  }

  client::HttpResponse Get(const std::string& target) {
    client::HttpConnection conn(client::Url{false, "127.0.0.1", server_->port()}, nullptr, "");
    client::HttpResponse response;
    base::Status s = conn.Do("GET", target, "", &response);
    EXPECT_TRUE(s.ok()) << s.ToString();
    return response;
  }

  void WriteLog(const std::vector<std::string>& lines) {
    base::FakeClock clock(base::WallTime{} + std::chrono::hours(24 * 365 * 56));
    auto writer = CriLogWriter::Open((dir_ / "0.log").string(), {}, &clock);
    ASSERT_TRUE(writer.ok());
    for (const auto& l : lines) {
      ASSERT_TRUE((*writer)->Write(LogStream::kStdout, l + "\n").ok());
      clock.Advance(std::chrono::seconds(1));
    }
  }

  fs::path dir_;
  FakeDirectory directory_;
  std::unique_ptr<ExecRunner> exec_;
  std::unique_ptr<PodServer> server_;
};

TEST_F(PodServerTest, ServesContainerLogsWithTailAndTimestamps) {
  WriteLog({"one", "two", "three"});
  directory_.targets["ns/web/app"].running = false;
  auto all = Get("/containerLogs/ns/web/app");
  EXPECT_EQ(all.status, 200);
  EXPECT_EQ(all.body, "one\ntwo\nthree\n");
  EXPECT_EQ(Get("/containerLogs/ns/web/app?tailLines=1").body, "three\n");
  EXPECT_EQ(Get("/containerLogs/ns/web/app?limitBytes=6").body, "one\ntw");
  std::string stamped = Get("/containerLogs/ns/web/app?tailLines=1&timestamps=true").body;
  EXPECT_NE(stamped.find("Z three\n"), std::string::npos) << stamped;
  // A follow of a container that no longer runs returns what there is and ends.
  EXPECT_EQ(Get("/containerLogs/ns/web/app?follow=true").body, "one\ntwo\nthree\n");
}

TEST_F(PodServerTest, LogErrorsAreTheKubeletsPlainText) {
  auto missing = Get("/containerLogs/ns/web/nope");
  EXPECT_EQ(missing.status, 404);
  EXPECT_EQ(missing.body, "container \"nope\" not found in pod \"web\"");
  EXPECT_EQ(Get("/containerLogs/ns/web").status, 400);
  EXPECT_EQ(Get("/containerLogs/ns/web/app?tailLines=x").status, 400);
}

// Reads what the connection has into `decoder` (a websocket::Decoder or spdy::FrameReader);
// false once it ends.
template <typename Decoder>
bool ReadMore(client::Transport& transport, Decoder& decoder) {
  char buf[4096];
  long n = transport.Read(buf, sizeof buf);
  if (n <= 0) return false;
  decoder.Feed(std::string_view(buf, static_cast<std::size_t>(n)));
  return true;
}

// A WebSocket client speaking the remote command protocol, as kubectl does.
class ExecClient {
 public:
  explicit ExecClient(uint16_t port, std::string path = "/exec/ns/web/app")
      : port_(port), path_(std::move(path)) {}

  // Sends the upgrade request; returns the response status and keeps the connection.
  int Open(const std::string& query, const std::string& protocols = "v5.channel.k8s.io",
           const std::string& upgrade = "websocket") {
    EXPECT_TRUE(transport_.Connect(client::Url{false, "127.0.0.1", port_}, nullptr).ok());
    std::string request = "GET " + path_ + "?" + query +
                          " HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: " + upgrade +
                          "\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: "
                          "dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: " +
                          protocols + "\r\n\r\n";
    EXPECT_TRUE(transport_.WriteAll(request).ok());
    while (head_.find("\r\n\r\n") == std::string::npos) {
      char buf[4096];
      long n = transport_.Read(buf, sizeof buf);
      if (n <= 0) break;
      head_.append(buf, static_cast<std::size_t>(n));
    }
    std::size_t end = head_.find("\r\n\r\n");
    if (end == std::string::npos) return 0;
    int status = std::atoi(head_.c_str() + 9);
    if (status != 101) {  // an error: read its body too, into head()
      std::size_t at = head_.find("Content-Length: ");
      std::size_t length = at == std::string::npos ? 0 : std::stoul(head_.substr(at + 16));
      while (head_.size() < end + 4 + length) {
        char buf[4096];
        long n = transport_.Read(buf, sizeof buf);
        if (n <= 0) break;
        head_.append(buf, static_cast<std::size_t>(n));
      }
      return status;
    }
    decoder_.Feed(std::string_view(head_).substr(end + 4));
    return status;
  }
  const std::string& head() const { return head_; }

  // One binary message, as it is.
  void SendMessage(std::string_view payload) {
    ASSERT_TRUE(transport_.WriteAll(websocket::EncodeFrame(websocket::kBinary, payload, 0x5a5a5a5a)).ok());
  }
  // The next binary message's payload ("" once the connection ends).
  std::string NextMessage() {
    websocket::Opcode op;
    std::string payload;
    while (Next(&op, &payload)) {
      if (op == websocket::kBinary) return payload;
    }
    return "";
  }

  void Send(uint8_t channel, std::string_view data) {
    std::string payload(1, static_cast<char>(channel));
    payload.append(data);
    ASSERT_TRUE(transport_.WriteAll(websocket::EncodeFrame(websocket::kBinary, payload, 0x5a5a5a5a)).ok());
  }

  // Reads messages until `channel` has carried `marker`; returns what it carried.
  std::string ReadUntil(uint8_t channel, const std::string& marker) {
    std::string got;
    websocket::Opcode op;
    std::string payload;
    while (got.find(marker) == std::string::npos && Next(&op, &payload)) {
      if (op == websocket::kBinary && !payload.empty() &&
          static_cast<uint8_t>(payload[0]) == channel) {
        got += payload.substr(1);
      }
    }
    return got;
  }

  // Reads messages until the server closes; returns what each channel carried.
  std::map<int, std::string> ReadAll() {
    std::map<int, std::string> out;
    websocket::Opcode op;
    std::string payload;
    while (Next(&op, &payload)) {
      if (op == websocket::kBinary && !payload.empty()) {
        out[static_cast<uint8_t>(payload[0])] += payload.substr(1);
      }
    }
    return out;
  }

 private:
  // The next message; false once the connection ends or the server closes it.
  bool Next(websocket::Opcode* op, std::string* payload) {
    for (;;) {
      auto next = decoder_.Next(op, payload);
      EXPECT_TRUE(next.ok());
      if (!next.ok()) return false;
      if (*next) return *op != websocket::kClose;
      if (!ReadMore(transport_, decoder_)) return false;
    }
  }

  uint16_t port_;
  std::string path_;
  client::Transport transport_;
  std::string head_;
  websocket::Decoder decoder_;
};

TEST_F(PodServerTest, ExecSendsOutputsAndTheExitCode) {
  ExecClient client(server_->port());
  ASSERT_EQ(client.Open("command=/bin/sh&command=-c&command=echo%20out%3B%20echo%20err%20%3E%262%3B%20exit%203"
                        "&stdout=true&stderr=true"),
            101)
      << client.head();
  EXPECT_NE(client.head().find("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
            std::string::npos);
  EXPECT_NE(client.head().find("Sec-WebSocket-Protocol: v5.channel.k8s.io"), std::string::npos);
  auto got = client.ReadAll();
  EXPECT_EQ(got[kStdoutChannel], "out\n");
  EXPECT_EQ(got[kStderrChannel], "err\n");
  Json status = Json::parse(got[kErrorChannel]);
  EXPECT_EQ(status["details"]["causes"][0]["message"], "3");
}

TEST_F(PodServerTest, ExecStdinEndsWithTheV5CloseSignal) {
  ExecClient client(server_->port());
  ASSERT_EQ(client.Open("command=/bin/cat&stdin=true&stdout=true&stderr=true",
                        "v5.channel.k8s.io, v4.channel.k8s.io"),
            101);
  client.Send(kStdinChannel, "typed\n");
  client.Send(kCloseChannel, std::string(1, static_cast<char>(kStdinChannel)));
  auto got = client.ReadAll();
  EXPECT_EQ(got[kStdoutChannel], "typed\n");
  EXPECT_EQ(got[kErrorChannel], R"({"metadata":{},"status":"Success"})");
}

TEST_F(PodServerTest, ExecCommandIsKilledWhenTheClientGoesAway) {
  int pid = 0;
  {
    ExecClient client(server_->port());
    ASSERT_EQ(client.Open("command=/bin/sh&command=-c&command=echo%20%24%24%3B%20exec%20sleep%201000"
                          "&stdout=true"),
              101);
    std::string out = client.ReadUntil(kStdoutChannel, "\n");
    pid = std::atoi(out.c_str());
    ASSERT_GT(pid, 0) << out;
  }  // the connection closes
  EXPECT_TRUE(client::Eventually([pid] { return ::kill(pid, 0) != 0; }));
}

TEST_F(PodServerTest, ExecWithATerminalTakesItsSize) {
  ExecClient client(server_->port());
  ASSERT_EQ(client.Open("command=/bin/sh&command=-c&command=read%20x%3B%20stty%20size&stdin=true&"
                        "stdout=true&tty=true",
                        "v4.channel.k8s.io"),
            101);
  client.Send(kResizeChannel, R"({"Width":101,"Height":33})");
  client.Send(kStdinChannel, "go\r");
  auto got = client.ReadAll();
  EXPECT_NE(got[kStdoutChannel].find("33 101"), std::string::npos) << got[kStdoutChannel];
  EXPECT_EQ(got[kErrorChannel], R"({"metadata":{},"status":"Success"})");
}

TEST_F(PodServerTest, AttachSendsWhatTheContainerWritesUntilItStops) {
  WriteLog({"before"});
  ExecClient client(server_->port(), "/attach/ns/web/app");
  ASSERT_EQ(client.Open("stdout=true&stderr=true"), 101) << client.head();
  {
    base::FakeClock clock;
    auto writer = CriLogWriter::Open((dir_ / "0.log").string(), {}, &clock);
    ASSERT_TRUE(writer.ok());
    ASSERT_TRUE((*writer)->Write(LogStream::kStdout, "after\n").ok());
    ASSERT_TRUE((*writer)->Write(LogStream::kStderr, "oops\n").ok());
  }
  {
    std::lock_guard lock(directory_.mu);
    directory_.targets["ns/web/app"].running = false;  // the attachment ends after a last read
  }
  auto got = client.ReadAll();
  EXPECT_EQ(got[kStdoutChannel], "after\n");
  EXPECT_EQ(got[kStderrChannel], "oops\n");
  EXPECT_EQ(got[kErrorChannel], R"({"metadata":{},"status":"Success"})");
  ExecClient with_stdin(server_->port(), "/attach/ns/web/app");
  EXPECT_EQ(with_stdin.Open("stdin=true&stdout=true"), 400);
}

TEST_F(PodServerTest, AttachRefusesStdinToAContainerWithoutIt) {
  ExecClient client(server_->port(), "/attach/ns/web/app");
  EXPECT_EQ(client.Open("stdin=true&stdout=true"), 400);
  EXPECT_NE(client.head().find(R"(container \"app\" in pod \"web\" doesn't have stdin enabled)"),
            std::string::npos)
      << client.head();
}

TEST_F(PodServerTest, AttachWritesStdinAndStdinOnceClosesItWhenTheClientsInputEnds) {
  auto stdio = ContainerStdio::Open({.stdin = true, .stdin_once = true});
  ASSERT_TRUE(stdio.ok() && *stdio);
  ContainerBundle bundle;
  (*stdio)->Prepare(&bundle, nullptr, "c1");
  int container_stdin = ::dup(bundle.stdin_fd);  // as runc hands it to the container
  ASSERT_TRUE((*stdio)->Started(nullptr, "c1").ok());
  {
    std::lock_guard lock(directory_.mu);
    directory_.targets["ns/web/app"].stdio_options = (*stdio)->options();
    directory_.targets["ns/web/app"].stdio = *stdio;
  }
  WriteLog({"before"});
  ExecClient client(server_->port(), "/attach/ns/web/app");
  ASSERT_EQ(client.Open("stdin=true&stdout=true&stderr=true"), 101) << client.head();
  client.Send(kStdinChannel, "hello\n");
  EXPECT_EQ(ReadFdUntil(container_stdin, "\n"), "hello\n");
  client.Send(kCloseChannel, std::string(1, static_cast<char>(kStdinChannel)));  // v5: stdin ends
  char c;
  EXPECT_EQ(::read(container_stdin, &c, 1), 0);  // the container reads EOF
  ::close(container_stdin);
  {
    base::FakeClock clock;
    auto writer = CriLogWriter::Open((dir_ / "0.log").string(), {}, &clock);
    ASSERT_TRUE(writer.ok());
    ASSERT_TRUE((*writer)->Write(LogStream::kStdout, "got:hello\n").ok());
  }
  EXPECT_EQ(client.ReadUntil(kStdoutChannel, "\n"), "got:hello\n");
  {
    std::lock_guard lock(directory_.mu);
    directory_.targets["ns/web/app"].running = false;
  }
  client.ReadAll();
  {
    std::lock_guard lock(directory_.mu);
    directory_.targets["ns/web/app"].running = true;
  }
  ExecClient again(server_->port(), "/attach/ns/web/app");
  EXPECT_EQ(again.Open("stdin=true&stdout=true"), 400);
  EXPECT_NE(again.head().find("stdinOnce closed it"), std::string::npos) << again.head();
}

TEST_F(PodServerTest, AttachWithoutStdinOnceLeavesStdinOpenForTheNextSession) {
  auto stdio = ContainerStdio::Open({.stdin = true});
  ASSERT_TRUE(stdio.ok() && *stdio);
  ContainerBundle bundle;
  (*stdio)->Prepare(&bundle, nullptr, "c1");
  int container_stdin = ::dup(bundle.stdin_fd);
  ASSERT_TRUE((*stdio)->Started(nullptr, "c1").ok());
  {
    std::lock_guard lock(directory_.mu);
    directory_.targets["ns/web/app"].stdio_options = (*stdio)->options();
    directory_.targets["ns/web/app"].stdio = *stdio;
  }
  WriteLog({"before"});
  for (const char* line : {"one\n", "two\n"}) {
    ExecClient client(server_->port(), "/attach/ns/web/app");
    ASSERT_EQ(client.Open("stdin=true&stdout=true", "v4.channel.k8s.io"), 101) << client.head();
    client.Send(kStdinChannel, line);
    EXPECT_EQ(ReadFdUntil(container_stdin, "\n"), line);
  }  // the client goes away
  EXPECT_TRUE((*stdio)->stdin_open());
  ::close(container_stdin);
}

TEST_F(PodServerTest, AttachToATerminalCarriesInputOutputAndSize) {
  fs::create_directories(dir_ / "fifo");
  int master = ::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
  ASSERT_GE(master, 0);
  ASSERT_EQ(::grantpt(master), 0);
  ASSERT_EQ(::unlockpt(master), 0);
  int slave = ::open(::ptsname(master), O_RDWR | O_NOCTTY | O_CLOEXEC);
  ASSERT_GE(slave, 0);
  termios raw;
  ASSERT_EQ(::tcgetattr(slave, &raw), 0);
  ::cfmakeraw(&raw);
  ASSERT_EQ(::tcsetattr(slave, TCSANOW, &raw), 0);
  auto capture = LogCapture::Start();
  ASSERT_TRUE(capture.ok());
  auto writer = CriLogWriter::Open((dir_ / "0.log").string(), {}, base::RealClock());
  ASSERT_TRUE(writer.ok());
  ASSERT_TRUE((*capture)->Attach("c1", (dir_ / "fifo").string(), std::move(*writer)).ok());
  auto stdio = ContainerStdio::Open({.stdin = true, .stdin_once = true, .tty = true});
  ASSERT_TRUE(stdio.ok() && *stdio);
  ContainerBundle bundle;
  (*stdio)->Prepare(&bundle, capture->get(), "c1");
  *bundle.terminal_fd = master;  // as the runtime hands it over
  ASSERT_TRUE((*stdio)->Started(capture->get(), "c1").ok());
  {
    std::lock_guard lock(directory_.mu);
    directory_.targets["ns/web/app"].stdio_options = (*stdio)->options();
    directory_.targets["ns/web/app"].stdio = *stdio;
  }

  ExecClient client(server_->port(), "/attach/ns/web/app");
  ASSERT_EQ(client.Open("stdin=true&stdout=true&tty=true"), 101) << client.head();
  client.Send(kResizeChannel, R"({"Width":101,"Height":33})");
  client.Send(kStdinChannel, "echo hi\r");
  EXPECT_EQ(ReadFdUntil(slave, "\r"), "echo hi\r");
  winsize ws{};
  ASSERT_EQ(::ioctl(slave, TIOCGWINSZ, &ws), 0);  // the resize came before the input
  EXPECT_EQ(ws.ws_col, 101);
  EXPECT_EQ(ws.ws_row, 33);
  ASSERT_EQ(::write(slave, "hi\r\n$ ", 6), 6);
  EXPECT_EQ(client.ReadUntil(kStdoutChannel, "$ "), "hi\r\n$ ");
  ::close(slave);  // the container exits: the terminal hangs up and the session ends
  auto rest = client.ReadAll();
  EXPECT_EQ(rest[kErrorChannel], R"({"metadata":{},"status":"Success"})");
  (*capture)->Drain();
  std::string log;
  ASSERT_TRUE(ReadContainerLog((dir_ / "0.log").string(), {}, [&](std::string_view s) {
                log.append(s);
                return true;
              }).ok());
  EXPECT_EQ(log, "hi\r\n$ \n");  // the unfinished line is flushed when the terminal ends
}

TEST_F(PodServerTest, ExecRefusesUnknownProtocolsWithAStatus) {
  ExecClient old(server_->port());
  EXPECT_EQ(old.Open("command=/bin/true", "channel.k8s.io"), 400);
  EXPECT_NE(old.head().find("fulcrum speaks v5.channel.k8s.io"), std::string::npos);
}

TEST(SpdyTest, HeaderBlocksShareTheCompressionStateAcrossFrames) {
  spdy::HeaderCompressor compressor;
  spdy::HeaderDecompressor decompressor;
  for (int i = 0; i < 3; ++i) {
    spdy::Headers headers = {{"streamtype", "stdout"}, {"port", std::to_string(8080 + i)}};
    auto got = decompressor.Decompress(compressor.Compress(headers));
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    EXPECT_EQ(*got, headers);
  }
  spdy::HeaderDecompressor fresh;  // a block out of its stream's context is refused, not misread
  spdy::HeaderCompressor other;
  (void)other.Compress({{"a", "b"}});
  EXPECT_FALSE(fresh.Decompress(other.Compress({{"a", "b"}})).ok());
}

TEST(SpdyTest, FramesAreReadOnceWhole) {
  std::string wire = spdy::DataFrame(5, "hello", true) + spdy::Ping(7);
  spdy::FrameReader reader;
  spdy::Frame frame;
  reader.Feed(wire.substr(0, 9));
  EXPECT_FALSE(*reader.Next(&frame));
  reader.Feed(wire.substr(9));
  ASSERT_TRUE(*reader.Next(&frame));
  EXPECT_FALSE(frame.control);
  EXPECT_EQ(frame.stream_id, 5u);
  EXPECT_EQ(frame.payload, "hello");
  EXPECT_EQ(frame.flags, spdy::kFlagFin);
  ASSERT_TRUE(*reader.Next(&frame));
  EXPECT_TRUE(frame.control);
  EXPECT_EQ(frame.type, spdy::kPing);
  spdy::FrameReader small(4);
  small.Feed(spdy::DataFrame(1, "toolong", false));
  EXPECT_FALSE(small.Next(&frame).ok());
}

// kubectl before 1.30: exec over SPDY/3.1, one stream per channel.
class SpdyClient {
 public:
  explicit SpdyClient(uint16_t port, std::string path = "/exec/ns/web/app")
      : port_(port), path_(std::move(path)) {}

  int Open(const std::string& query, const std::string& protocols = "v4.channel.k8s.io") {
    EXPECT_TRUE(transport_.Connect(client::Url{false, "127.0.0.1", port_}, nullptr).ok());
    EXPECT_TRUE(transport_
                    .WriteAll("POST " + path_ + "?" + query +
                              " HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1"
                              "\r\nX-Stream-Protocol-Version: " + protocols +
                              "\r\nContent-Length: 0\r\n\r\n")
                    .ok());
    std::string head;
    while (head.find("\r\n\r\n") == std::string::npos) {
      char buf[4096];
      long n = transport_.Read(buf, sizeof buf);
      if (n <= 0) return 0;
      head.append(buf, static_cast<std::size_t>(n));
    }
    reader_.Feed(std::string_view(head).substr(head.find("\r\n\r\n") + 4));
    return std::atoi(head.c_str() + 9);
  }

  uint32_t Stream(const std::string& type, spdy::Headers more = {}) {
    uint32_t id = next_id_;
    next_id_ += 2;
    more.emplace_back("streamtype", type);
    EXPECT_TRUE(transport_.WriteAll(spdy::SynStream(id, compressor_.Compress(more), false)).ok());
    return id;
  }
  void Send(uint32_t id, std::string_view data, bool fin) {
    EXPECT_TRUE(transport_.WriteAll(spdy::DataFrame(id, data, fin)).ok());
  }

  // Until the server closes: each stream's bytes, and which were replied to and finished.
  // Until the server closes, or every stream of `until` has finished.
  std::map<uint32_t, std::string> ReadAll(std::set<uint32_t>* replied, std::set<uint32_t>* fins,
                                          const std::set<uint32_t>& until = {}) {
    std::map<uint32_t, std::string> out;
    for (;;) {
      if (!until.empty() && std::includes(fins->begin(), fins->end(), until.begin(), until.end())) {
        return out;
      }
      spdy::Frame frame;
      auto next = reader_.Next(&frame);
      EXPECT_TRUE(next.ok());
      if (!next.ok()) return out;
      if (*next) {
        if (frame.control && frame.type == spdy::kSynReply) replied->insert(frame.stream_id);
        if (!frame.control) {
          out[frame.stream_id] += frame.payload;
          if (frame.flags & spdy::kFlagFin) fins->insert(frame.stream_id);
        }
        continue;
      }
      if (!ReadMore(transport_, reader_)) return out;
    }
  }

 private:
  uint16_t port_;
  std::string path_;
  client::Transport transport_;
  spdy::FrameReader reader_;
  spdy::HeaderCompressor compressor_;
  uint32_t next_id_ = 1;
};

TEST_F(PodServerTest, ExecOverSpdyForKubectlBefore130) {
  SpdyClient client(server_->port());
  ASSERT_EQ(client.Open("command=/bin/sh&command=-c&command=cat%3B%20echo%20err%20%3E%262%3B%20exit%203"
                        "&stdin=true&stdout=true&stderr=true",
                        "v4.channel.k8s.io, v3.channel.k8s.io"),
            101);
  uint32_t error = client.Stream("error"), in = client.Stream("stdin"),
           out = client.Stream("stdout"), err = client.Stream("stderr");
  client.Send(in, "typed\n", true);
  std::set<uint32_t> replied, fins;
  auto got = client.ReadAll(&replied, &fins);
  EXPECT_EQ(replied, (std::set<uint32_t>{error, in, out, err}));
  EXPECT_EQ(got[out], "typed\n");
  EXPECT_EQ(got[err], "err\n");
  Json status = Json::parse(got[error]);
  EXPECT_EQ(status["details"]["causes"][0]["message"], "3");
  EXPECT_TRUE(fins.count(error) && fins.count(out) && fins.count(err));
  SpdyClient old(server_->port());
  EXPECT_EQ(old.Open("command=/bin/true", "v3.channel.k8s.io"), 400);
}

TEST_F(PodServerTest, PortForwardConnectsToThePortInThePod) {
  // An echo server on the loopback stands for the pod's port.
  int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(listener, 1), 0);
  socklen_t len = sizeof addr;
  ::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len);
  const std::string port = std::to_string(ntohs(addr.sin_port));
  std::thread echo([listener] {
    int c = ::accept(listener, nullptr, nullptr);
    char buf[256];
    for (ssize_t n; (n = ::recv(c, buf, sizeof buf, 0)) > 0;) ::send(c, buf, static_cast<size_t>(n), 0);
    ::close(c);
  });
  SpdyClient client(server_->port(), "/portForward/ns/web");
  ASSERT_EQ(client.Open("", "portforward.k8s.io"), 101);
  uint32_t error = client.Stream("error", {{"port", port}, {"requestid", "0"}});
  uint32_t data = client.Stream("data", {{"port", port}, {"requestid", "0"}});
  client.Send(data, "ping", true);
  std::set<uint32_t> replied, fins;
  auto got = client.ReadAll(&replied, &fins, {error, data});
  echo.join();
  ::close(listener);
  EXPECT_EQ(got[data], "ping");
  EXPECT_EQ(got[error], "");
  EXPECT_TRUE(fins.count(data) && fins.count(error));
  // A port nothing listens on: the error stream says so.
  SpdyClient refused(server_->port(), "/portForward/ns/web");
  ASSERT_EQ(refused.Open("", "portforward.k8s.io"), 101);
  error = refused.Stream("error", {{"port", "1"}, {"requestid", "1"}});
  data = refused.Stream("data", {{"port", "1"}, {"requestid", "1"}});
  fins.clear();
  got = refused.ReadAll(&replied, &fins, {error, data});
  EXPECT_NE(got[error].find("error forwarding port 1 to pod web"), std::string::npos) << got[error];
}

TEST_F(PodServerTest, PortForwardTunnelledInAWebSocketForKubectl131) {
  int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(listener, 1), 0);
  socklen_t len = sizeof addr;
  ::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len);
  const std::string port = std::to_string(ntohs(addr.sin_port));
  std::thread server([listener] {
    int c = ::accept(listener, nullptr, nullptr);
    ::send(c, "hi", 2, 0);
    ::close(c);
  });
  ExecClient client(server_->port(), "/portForward/ns/web");
  ASSERT_EQ(client.Open("", "SPDY/3.1+portforward.k8s.io"), 101) << client.head();
  spdy::HeaderCompressor compressor;
  client.SendMessage(spdy::SynStream(
      1, compressor.Compress({{"streamtype", "error"}, {"port", port}, {"requestid", "0"}}), false));
  client.SendMessage(spdy::SynStream(
      3, compressor.Compress({{"streamtype", "data"}, {"port", port}, {"requestid", "0"}}), false));
  spdy::FrameReader reader;
  std::string data;
  std::set<uint32_t> fins;
  while (!(fins.count(1) && fins.count(3))) {
    std::string message = client.NextMessage();
    ASSERT_FALSE(message.empty());
    reader.Feed(message);
    spdy::Frame frame;
    while (*reader.Next(&frame)) {
      if (frame.control) continue;
      if (frame.stream_id == 3) data += frame.payload;
      if (frame.flags & spdy::kFlagFin) fins.insert(frame.stream_id);
    }
  }
  server.join();
  ::close(listener);
  EXPECT_EQ(data, "hi");
}

TEST(PodServerAuthTest, OnlyTheApiServerCertificateOfTheClusterCaIsServed) {
  fs::path dir = fs::temp_directory_path() / ("pod_server_auth_" + std::to_string(::getpid()));
  auto cluster = apiserver::EnsurePki((dir / "cluster").string(), {});
  auto other = apiserver::EnsurePki((dir / "other").string(), {});
  ASSERT_TRUE(cluster.ok() && other.ok());
  FakeDirectory directory;
  auto exec = NewHostExecRunner();
  auto server = StartAgentPodServer("127.0.0.1:0", (dir / "agent").string(), cluster->ca_pem,
                                    &directory, exec.get());
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  auto get = [&](const apiserver::Pki& pki) {
    auto tls = client::TlsContext::CreateWithClientCertificate(pki.server_cert_file,
                                                               pki.server_key_file);
    EXPECT_TRUE(tls.ok());
    client::HttpConnection conn(client::Url{true, "127.0.0.1", (*server)->port()}, *tls, "");
    client::HttpResponse response;
    base::Status s = conn.Do("GET", "/healthz", "", &response);
    return s.ok() ? response.status : 0;
  };
  EXPECT_EQ(get(*cluster), 200);
  EXPECT_EQ(get(*other), 0);  // the handshake fails
  EXPECT_FALSE(StartAgentPodServer("127.0.0.1:0", (dir / "agent").string(), "", &directory,
                                   exec.get())
                   .ok());
  server->reset();
  fs::remove_all(dir);
}

}  // namespace
}  // namespace fulcrum::agent
