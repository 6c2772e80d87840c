#include "apiserver/http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <mutex>
#include <thread>

#include "apiserver/pki.h"

namespace fulcrum::apiserver {
namespace {

using namespace std::chrono_literals;

// A stream the test feeds by hand.
class FakeStream : public HttpStream {
 public:
  void Push(SharedBytes chunk) {
    std::lock_guard lock(mu_);
    queue_.push_back(std::move(chunk));
    WakeLocked();
  }
  void End() {
    std::lock_guard lock(mu_);
    ended_ = true;
    WakeLocked();
  }
  void Abandon() {
    std::lock_guard lock(mu_);
    abandoned_ = true;
    WakeLocked();
  }
  void PollEvery(std::chrono::milliseconds interval) {
    std::lock_guard lock(mu_);
    poll_interval_ = interval;
  }
  // Waits (bounded) until Cancel has been called.
  bool WaitCancelled(std::chrono::seconds timeout) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [this] { return cancelled_; });
  }
  bool WaitPolls(int n, std::chrono::seconds timeout) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return polls_ >= n; });
  }
  bool WaitStarted(std::chrono::seconds timeout) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return static_cast<bool>(wake_); });
  }

  // HttpStream
  void Start(std::function<void()> wake) override {
    std::lock_guard lock(mu_);
    wake_ = std::move(wake);
    cv_.notify_all();
  }
  bool Poll(TimePoint now, std::size_t max_bytes, std::vector<SharedBytes>* out,
            TimePoint* poll_at) override {
    std::lock_guard lock(mu_);
    ++polls_;
    cv_.notify_all();
    std::size_t bytes = 0;
    while (!queue_.empty() && bytes < max_bytes) {
      bytes += queue_.front()->size();
      out->push_back(std::move(queue_.front()));
      queue_.pop_front();
    }
    if (abandoned_) queue_.clear();
    if (queue_.empty() && (ended_ || abandoned_)) return false;
    armed_ = queue_.empty();
    *poll_at = poll_interval_.count() > 0 ? now + poll_interval_ : TimePoint::max();
    return true;
  }
  bool Abandoned() const override {
    std::lock_guard lock(mu_);
    return abandoned_;
  }
  void Cancel() override {
    std::lock_guard lock(mu_);
    cancelled_ = true;
    cv_.notify_all();
  }

 private:
  void WakeLocked() {
    if (armed_ && wake_) {
      armed_ = false;
      wake_();
    }
  }

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<SharedBytes> queue_;
  std::function<void()> wake_;
  std::chrono::milliseconds poll_interval_{0};
  int polls_ = 0;
  bool armed_ = false;
  bool ended_ = false;
  bool abandoned_ = false;
  bool cancelled_ = false;
};

// A serving certificate for 127.0.0.1 in a temporary directory, made once for the test binary
// and removed at exit (both live on the heap, so that no destructor runs before the removal).
const Pki& TestPki() {
  static const std::string* dir = [] {
    char tmpl[] = "/tmp/fulcrum-http-test-XXXXXX";
    EXPECT_NE(::mkdtemp(tmpl), nullptr);
    return new std::string(tmpl);
  }();
  static const Pki* pki = [] {
    auto made = EnsurePki(*dir, {"127.0.0.1"});
    EXPECT_TRUE(made.ok()) << made.status().ToString();
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(*dir, ec);
    });
    return new Pki(made.ok() ? *made : Pki{});
  }();
  return *pki;
}

// Hands out FakeStreams for GET /watch and remembers them; TLS with `tls`.
class StreamServer {
 public:
  explicit StreamServer(bool tls, std::size_t stream_threads = 2) {
    HttpServerOptions options;
    options.stream_threads = stream_threads;
    if (tls) {
      options.cert_file = TestPki().server_cert_file;
      options.key_file = TestPki().server_key_file;
    }
    auto server = StartHttpServer(options, [this](const HttpRequest& request) {
      HttpResponse response;
      if (request.path != "/watch") {
        response.body = "plain";
        return response;
      }
      auto stream = std::make_shared<FakeStream>();
      {
        std::lock_guard lock(mu_);
        streams_.push_back(stream);
        cv_.notify_all();
      }
      response.stream = stream;
      return response;
    });
    EXPECT_TRUE(server.ok()) << server.status().ToString();
    server_ = std::move(server).value();
  }

  uint16_t port() const { return server_->port(); }
  HttpServer& server() { return *server_; }

  // The first `n` streams, once that many requests have arrived (bounded wait).
  std::vector<std::shared_ptr<FakeStream>> Streams(std::size_t n) {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, 20s, [&] { return streams_.size() >= n; });
    std::vector<std::shared_ptr<FakeStream>> out(streams_.begin(),
                                                 streams_.begin() + std::min(n, streams_.size()));
    for (auto& s : out) EXPECT_TRUE(s->WaitStarted(20s));
    return out;
  }

 private:
  std::unique_ptr<HttpServer> server_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::shared_ptr<FakeStream>> streams_;
};

// A blocking client socket with a receive timeout, so no test can hang; TLS (not verifying the
// server) with `tls`.
class Client {
 public:
  explicit Client(uint16_t port, bool tls, int receive_buffer = 0) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    timeval tv{20, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (receive_buffer > 0) {
      ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &receive_buffer, sizeof(receive_buffer));
    }
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
    if (connected_ && tls) {
      ctx_ = SSL_CTX_new(TLS_client_method());
      ssl_ = SSL_new(ctx_);
      SSL_set_fd(ssl_, fd_);
      connected_ = SSL_connect(ssl_) == 1;
    }
  }
  ~Client() {
    if (ssl_ != nullptr) SSL_free(ssl_);
    if (ctx_ != nullptr) SSL_CTX_free(ctx_);
    if (fd_ >= 0) ::close(fd_);
  }
  bool connected() const { return connected_; }
  void Send(const std::string& data) {
    if (ssl_ != nullptr) {
      ASSERT_EQ(SSL_write(ssl_, data.data(), static_cast<int>(data.size())),
                static_cast<int>(data.size()));
      return;
    }
    ASSERT_EQ(::send(fd_, data.data(), data.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(data.size()));
  }
  void Get(const std::string& path) { Send("GET " + path + " HTTP/1.1\r\nHost: test\r\n\r\n"); }
  // Goes away without a word (no TLS close_notify).
  void Close() {
    ::close(fd_);
    fd_ = -1;
  }
  // Everything until the server closes (or the receive timeout).
  std::string ReadAll() {
    std::string out;
    char buf[65536];
    for (;;) {
      long n =
          ssl_ != nullptr ? SSL_read(ssl_, buf, sizeof(buf)) : ::recv(fd_, buf, sizeof(buf), 0);
      if (n <= 0) return out;
      out.append(buf, static_cast<std::size_t>(n));
    }
  }

 private:
  int fd_ = -1;
  bool connected_ = false;
  SSL_CTX* ctx_ = nullptr;
  SSL* ssl_ = nullptr;
};

// The decoded body of a chunked response, and whether the last chunk ended it.
struct Body {
  int status = 0;
  bool chunked = false;
  bool complete = false;
  std::string data;
};

Body Decode(const std::string& response) {
  Body body;
  auto head_end = response.find("\r\n\r\n");
  if (head_end == std::string::npos) return body;
  std::string head = response.substr(0, head_end);
  body.status = std::atoi(head.substr(9, 3).c_str());
  body.chunked = head.find("Transfer-Encoding: chunked") != std::string::npos;
  std::size_t pos = head_end + 4;
  while (pos < response.size()) {
    auto eol = response.find("\r\n", pos);
    if (eol == std::string::npos) break;
    std::size_t size = std::strtoul(response.substr(pos, eol - pos).c_str(), nullptr, 16);
    if (size == 0) {
      body.complete = response.compare(eol, 4, "\r\n\r\n") == 0;
      break;
    }
    if (eol + 2 + size + 2 > response.size()) break;
    body.data.append(response, eol + 2, size);
    pos = eol + 2 + size + 2;
  }
  return body;
}

SharedBytes Chunk(const std::string& data) {
  return std::make_shared<const std::string>(HttpChunk(data));
}

TEST(HttpChunkTest, FramesWithHexSize) {
  EXPECT_EQ(HttpChunk("hello\n"), "6\r\nhello\n\r\n");
  EXPECT_EQ(HttpChunk(std::string(26, 'x')).substr(0, 4), "1a\r\n");
  EXPECT_EQ(HttpChunk(""), "");
}

// Every stream test runs over plain TCP and over TLS (where the stream is written by OpenSSL
// straight to the socket once the head is out).
class HttpServerStreamTest : public ::testing::TestWithParam<bool> {
 protected:
  bool tls() const { return GetParam(); }
};

INSTANTIATE_TEST_SUITE_P(Transport, HttpServerStreamTest, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "Tls" : "Plain"; });

TEST_P(HttpServerStreamTest, ManyStreamsReceiveEveryChunkInOrder) {
  StreamServer server(tls());
  constexpr int kClients = 200;
  constexpr int kChunks = 100;
  std::vector<std::unique_ptr<Client>> clients;
  for (int i = 0; i < kClients; ++i) {
    clients.push_back(std::make_unique<Client>(server.port(), tls()));
    ASSERT_TRUE(clients.back()->connected());
    clients.back()->Get("/watch");
  }
  auto streams = server.Streams(kClients);
  ASSERT_EQ(streams.size(), static_cast<std::size_t>(kClients));
  std::string expected;
  for (int c = 0; c < kChunks; ++c) {
    // One shared buffer for every stream, as the watch cache does.
    std::string line = "event " + std::to_string(c) + " " + std::string(c * 10, 'x') + "\n";
    expected += line;
    auto chunk = Chunk(line);
    for (auto& s : streams) s->Push(chunk);
  }
  for (auto& s : streams) s->End();
  for (auto& c : clients) {
    Body body = Decode(c->ReadAll());
    EXPECT_EQ(body.status, 200);
    EXPECT_TRUE(body.chunked);
    EXPECT_TRUE(body.complete);
    EXPECT_EQ(body.data, expected);
  }
}

TEST_P(HttpServerStreamTest, ClientWithSmallBuffersReceivesEveryByteInOrder) {
  StreamServer server(tls());
  Client client(server.port(), tls(), /*receive_buffer=*/4096);
  ASSERT_TRUE(client.connected());
  client.Get("/watch");
  auto streams = server.Streams(1);
  ASSERT_EQ(streams.size(), 1u);
  // Megabytes queued at once: the socket takes a little at a time, so most of every write waits
  // in the connection until the client reads.
  std::string expected;
  for (int c = 0; c < 200; ++c) {
    std::string line = std::to_string(c) + std::string(20000 + c, static_cast<char>('a' + c % 26));
    line += "\n";
    expected += line;
    streams[0]->Push(Chunk(line));
  }
  streams[0]->End();
  Body body = Decode(client.ReadAll());
  EXPECT_TRUE(body.complete);
  EXPECT_EQ(body.data.size(), expected.size());
  EXPECT_TRUE(body.data == expected);
}

TEST_P(HttpServerStreamTest, PlainRequestsStillWorkBesideStreams) {
  StreamServer server(tls());
  Client watcher(server.port(), tls());
  watcher.Get("/watch");
  auto streams = server.Streams(1);
  Client plain(server.port(), tls());
  plain.Send("GET /x HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
  std::string answer = plain.ReadAll();
  EXPECT_NE(answer.find("200 OK"), std::string::npos);
  EXPECT_NE(answer.find("plain"), std::string::npos);
  streams[0]->End();
  EXPECT_TRUE(Decode(watcher.ReadAll()).complete);
}

TEST_P(HttpServerStreamTest, ClientGoingAwayCancelsTheStream) {
  StreamServer server(tls());
  Client client(server.port(), tls());
  client.Get("/watch");
  auto streams = server.Streams(1);
  streams[0]->Push(Chunk("one\n"));
  client.Close();
  EXPECT_TRUE(streams[0]->WaitCancelled(20s));
}

TEST_P(HttpServerStreamTest, StreamIsPolledAgainWhenItAsks) {
  StreamServer server(tls());
  Client client(server.port(), tls());
  client.Get("/watch");
  auto streams = server.Streams(1);
  streams[0]->PollEvery(10ms);
  streams[0]->Push(Chunk("x\n"));  // wakes the writer, which then polls every 10 ms
  EXPECT_TRUE(streams[0]->WaitPolls(5, 20s));
  streams[0]->End();
  EXPECT_EQ(Decode(client.ReadAll()).data, "x\n");
}

TEST_P(HttpServerStreamTest, AbandonedStreamOfAStuckClientIsClosed) {
  StreamServer server(tls());
  Client stuck(server.port(), tls(), /*receive_buffer=*/4096);
  stuck.Get("/watch");
  // The stuck client's stream must be the first: connections are served in parallel, so the
  // second is opened only once the first stream exists.
  server.Streams(1);
  Client healthy(server.port(), tls());
  healthy.Get("/watch");
  auto streams = server.Streams(2);
  // Far more than the socket buffers hold: the writes to the stuck client stall.
  auto big = Chunk(std::string(64 * 1024, 'y'));
  for (int i = 0; i < 256; ++i) streams[0]->Push(big);
  streams[1]->Push(Chunk("fine\n"));
  streams[0]->Abandon();
  // Closed within the grace for a write under way, though the client never reads.
  EXPECT_TRUE(streams[0]->WaitCancelled(20s));
  streams[1]->End();
  EXPECT_EQ(Decode(healthy.ReadAll()).data, "fine\n");
}

TEST_P(HttpServerStreamTest, StopClosesOpenStreams) {
  auto server = std::make_unique<StreamServer>(tls(), 1);
  std::vector<std::unique_ptr<Client>> clients;
  for (int i = 0; i < 10; ++i) {
    clients.push_back(std::make_unique<Client>(server->port(), tls()));
    clients.back()->Get("/watch");
  }
  auto streams = server->Streams(10);
  server->server().Stop();
  for (auto& s : streams) EXPECT_TRUE(s->WaitCancelled(20s));
  for (auto& c : clients) EXPECT_FALSE(Decode(c->ReadAll()).complete);
}

}  // namespace
}  // namespace fulcrum::apiserver
