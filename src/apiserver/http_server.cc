// HTTP/1.1 (RFC 9112) over TLS with Boost.Beast: requests on one thread per connection, response
// streams (watches) on a few event-loop threads.
#include "apiserver/http_server.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <set>
#include <thread>
#include <type_traits>

#include "base/json.h"
#include "base/log.h"

namespace fulcrum::apiserver {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;

constexpr std::size_t kMaxHeaderBytes = 64 * 1024;
// Bytes taken from a stream for one write: enough to batch a burst of events into few TLS
// records and system calls, small enough that one connection does not hold its loop thread long.
constexpr std::size_t kMaxStreamWrite = 128 * 1024;
// A stream write that has not finished after this long means a client that stopped reading.
constexpr auto kStreamStallLimit = std::chrono::seconds(60);
// How long a write may still take once the stream gave up on the client, or for the last chunk.
constexpr auto kStreamGrace = std::chrono::seconds(2);
// TLS 1.3 suites in the order Go's crypto/tls (and so Kubernetes) prefers them on AES hardware:
// AES-128-GCM costs about a quarter less per byte than AES-256-GCM, which watches feel.
constexpr const char* kTls13Suites =
    "TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_256_GCM_SHA384";

std::string StatusBody(int code, const std::string& reason, const std::string& message) {
  base::Json j = {{"kind", "Status"},   {"apiVersion", "v1"}, {"metadata", base::Json::object()},
                  {"status", "Failure"}, {"message", message}, {"reason", reason},
                  {"code", code}};
  return base::DumpJson(j);
}

void CloseSocket(tcp::socket& socket) {
  boost::system::error_code ec;
  socket.shutdown(tcp::socket::shutdown_both, ec);
  socket.close(ec);
}
tcp::socket& Socket(beast::tcp_stream& stream) { return stream.socket(); }
tcp::socket& Socket(beast::ssl_stream<tcp::socket>& stream) { return stream.next_layer(); }

// The stream writers alive, so that Stop can end them and wait until they are gone.
class StreamWriterBase;
struct StreamWriters {
  std::mutex mu;
  std::condition_variable gone;
  std::set<StreamWriterBase*> alive;
  bool stopping = false;
};

class StreamWriterBase {
 public:
  explicit StreamWriterBase(StreamWriters* writers) : writers_(writers) {}
  virtual ~StreamWriterBase() = default;
  // Starts writing; called once, from the thread that handed the connection over.
  virtual void Begin() = 0;
  // Closes the connection soon. Called with writers->mu held, from any thread.
  virtual void Shutdown() = 0;

 protected:
  // Called first thing in the derived destructor, so that Shutdown never meets an object whose
  // members are already gone.
  void Unregister() {
    std::lock_guard lock(writers_->mu);
    writers_->alive.erase(this);
    writers_->gone.notify_all();
  }

 private:
  StreamWriters* writers_;
};

// How a StreamWriter reads and writes its connection: through the stream it was handed (plain
// TCP, or TLS through Asio's engine).
template <typename Stream>
class StreamTransport {
 public:
  explicit StreamTransport(Stream stream) : stream_(std::move(stream)) {}
  auto get_executor() { return stream_.get_executor(); }
  tcp::socket& socket() { return Socket(stream_); }
  // Writes all of `buffers` (which stay valid until `done` runs) and calls done(ec).
  template <typename Done>
  void Write(const std::vector<asio::const_buffer>& buffers, Done done) {
    asio::async_write(
        stream_, buffers,
        [done = std::move(done)](boost::system::error_code ec, std::size_t) mutable { done(ec); });
  }
  // Reads and discards what the peer sends; done(ec) after each read.
  template <typename Done>
  void Discard(asio::mutable_buffer buffer, Done done) {
    stream_.async_read_some(buffer, [done = std::move(done)](boost::system::error_code ec,
                                                             std::size_t) mutable { done(ec); });
  }

 private:
  Stream stream_;
};

// A TLS connection whose response head is out, written from here on by OpenSSL and plain system
// calls instead of Asio's engine (which takes the chunks 16 KiB at a time after Beast copies them
// together, copies each encrypted record out of its BIO pair and writes it with an operation of
// its own). The chunks of one write are gathered and encrypted at once, into buffers of the loop
// thread rather than of the connection: a thousand watch connections then share a few buffers
// that stay in the CPU's caches, where buffers of their own would each be cold by their next
// write. Only bytes the socket did not take at once are copied to the connection. Only when
// nothing the peer sent is still buffered inside the engine (Possible), since that would be lost.
class DirectTlsTransport {
 public:
  using TlsStream = beast::ssl_stream<tcp::socket>;

  static bool Possible(TlsStream& stream) {
    SSL* ssl = stream.native_handle();
    return SSL_pending(ssl) == 0 && BIO_ctrl_pending(SSL_get_rbio(ssl)) == 0;
  }

  explicit DirectTlsTransport(TlsStream stream) : stream_(std::move(stream)) {
    SSL* ssl = stream_.native_handle();
    BIO* socket_bio = BIO_new(BIO_s_socket());
    BIO_set_fd(socket_bio, static_cast<int>(socket().native_handle()), BIO_NOCLOSE);
    BIO* sink = BIO_new(AppendBio());
    BIO_set_data(sink, &target_);
    SSL_set_bio(ssl, socket_bio, sink);  // frees the engine's half of its BIO pair
    // Asio's engine set SSL_MODE_RELEASE_BUFFERS: record buffers are freed between writes, so
    // the next connection's write reuses them warm.
    boost::system::error_code ignored;
    socket().non_blocking(true, ignored);
  }
  DirectTlsTransport(const DirectTlsTransport&) = delete;  // the write BIO points at target_
  DirectTlsTransport& operator=(const DirectTlsTransport&) = delete;

  auto get_executor() { return stream_.get_executor(); }
  tcp::socket& socket() { return Socket(stream_); }

  template <typename Done>
  void Write(const std::vector<asio::const_buffer>& buffers, Done done) {
    thread_local std::string plain, sealed;
    plain.clear();
    for (const auto& b : buffers) plain.append(static_cast<const char*>(b.data()), b.size());
    // Bytes OpenSSL wrote outside a write (an alert, a key update) go out first.
    std::string& out = unsent_.empty() ? sealed : unsent_;
    if (&out == &sealed) sealed.clear();
    target_ = &out;
    // The write BIO never blocks, so OpenSSL takes everything (a record or so per call, as the
    // engine enabled partial writes).
    bool ok = true;
    for (std::size_t done_bytes = 0, n = 0; ok && done_bytes < plain.size(); done_bytes += n) {
      ok = SSL_write_ex(stream_.native_handle(), plain.data() + done_bytes,
                        plain.size() - done_bytes, &n) == 1;
    }
    target_ = &unsent_;
    if (!ok) {
      ERR_clear_error();
      return Finish(asio::error::broken_pipe, std::move(done));
    }
    if (&out == &sealed) {
      std::size_t sent = 0;
      if (!Send(sealed, &sent)) return Finish(asio::error::broken_pipe, std::move(done));
      unsent_.assign(sealed, sent);
    }
    Flush(std::move(done));
  }

  template <typename Done>
  void Discard(asio::mutable_buffer buffer, Done done) {
    socket().async_wait(tcp::socket::wait_read, [this, buffer, done = std::move(done)](
                                                    boost::system::error_code ec) mutable {
      if (ec) return done(ec);
      for (;;) {
        std::size_t n = 0;
        if (SSL_read_ex(stream_.native_handle(), buffer.data(), buffer.size(), &n) == 1) continue;
        int e = SSL_get_error(stream_.native_handle(), 0);
        ERR_clear_error();
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return done({});
        return done(asio::error::eof);  // closed (close_notify or TCP) or failed
      }
    });
  }

 private:
  // The connection's write BIO: appends what OpenSSL encrypts to the string *BIO_get_data points
  // at, and never blocks.
  static BIO_METHOD* AppendBio() {
    static BIO_METHOD* method = [] {
      BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "append");
      BIO_meth_set_write(m, [](BIO* b, const char* data, int len) -> int {
        (*static_cast<std::string**>(BIO_get_data(b)))->append(data, static_cast<std::size_t>(len));
        return len;
      });
      BIO_meth_set_ctrl(
          m, [](BIO*, int cmd, long, void*) -> long { return cmd == BIO_CTRL_FLUSH ? 1 : 0; });
      BIO_meth_set_create(m, [](BIO* b) {
        BIO_set_init(b, 1);
        return 1;
      });
      return m;
    }();
    return method;
  }

  // Sends what the socket takes of `bytes` from *sent on, without waiting. False on an error.
  bool Send(const std::string& bytes, std::size_t* sent) {
    int fd = static_cast<int>(socket().native_handle());
    while (*sent < bytes.size()) {
      ssize_t k = ::send(fd, bytes.data() + *sent, bytes.size() - *sent, MSG_NOSIGNAL);
      if (k > 0) {
        *sent += static_cast<std::size_t>(k);
      } else if (k < 0 && errno == EINTR) {
        continue;
      } else {
        return k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
      }
    }
    return true;
  }

  // Sends unsent_, waiting for the socket to take more whenever it is full.
  template <typename Done>
  void Flush(Done done) {
    if (!Send(unsent_, &unsent_sent_)) return Finish(asio::error::broken_pipe, std::move(done));
    if (unsent_sent_ == unsent_.size()) {
      unsent_.clear();
      unsent_sent_ = 0;
      return Finish({}, std::move(done));
    }
    socket().async_wait(tcp::socket::wait_write,
                        [this, done = std::move(done)](boost::system::error_code ec) mutable {
                          if (ec) return Finish(ec, std::move(done));
                          Flush(std::move(done));
                        });
  }

  // Calls done from the executor, never inside Write: the caller may write again at once.
  template <typename Done>
  void Finish(boost::system::error_code ec, Done done) {
    asio::post(get_executor(), [ec, done = std::move(done)]() mutable { done(ec); });
  }

  TlsStream stream_;
  std::string* target_ = &unsent_;  // where the write BIO appends
  std::string unsent_;              // encrypted bytes the socket has not taken yet
  std::size_t unsent_sent_ = 0;     // of unsent_, taken since
};

// Owns one connection after the head of a streamed response, on one of the loop threads (every
// handler runs on the socket's strand): polls the HttpStream when it can write, writes the chunks
// it returns (shared buffers, gathered into one write), waits for a wake or the time the stream
// asked for when there is nothing, and closes the connection when the stream ends, the client
// goes away, or a write stalls.
template <typename Transport>
class StreamWriter : public StreamWriterBase,
                     public std::enable_shared_from_this<StreamWriter<Transport>> {
 public:
  template <typename Stream>
  StreamWriter(StreamWriters* writers, Stream stream, std::shared_ptr<HttpStream> body,
               std::string first)
      : StreamWriterBase(writers),
        stream_(std::move(stream)),
        body_(std::move(body)),
        timer_(stream_.get_executor()) {
    if (!first.empty()) first_ = std::make_shared<const std::string>(HttpChunk(first));
  }
  ~StreamWriter() override { Unregister(); }

  void Begin() override {
    auto waker = std::make_shared<Waker>(stream_.get_executor(), this->weak_from_this());
    body_->Start([waker] { waker->Wake(); });
    asio::post(stream_.get_executor(), [self = this->shared_from_this()] {
      self->ReadPeer();
      self->Pump();
    });
  }

  void Shutdown() override {
    // No strong reference here: the last one must never be dropped on the caller's thread,
    // which holds the lock that the destructor takes.
    asio::post(stream_.get_executor(), [weak = this->weak_from_this()] {
      if (auto self = weak.lock()) self->Close();
    });
  }

 private:
  using TimePoint = std::chrono::steady_clock::time_point;

  // Turns the stream's wakes (from any thread) into at most one queued Pump.
  struct Waker : std::enable_shared_from_this<Waker> {
    Waker(asio::any_io_executor e, std::weak_ptr<StreamWriter> w)
        : executor(std::move(e)), writer(std::move(w)) {}
    void Wake() {
      if (posted.exchange(true)) return;
      asio::post(executor, [self = this->shared_from_this()] {
        self->posted = false;
        if (auto w = self->writer.lock()) w->Pump();
      });
    }
    asio::any_io_executor executor;
    std::weak_ptr<StreamWriter> writer;
    std::atomic<bool> posted{false};
  };

  void Pump() {
    if (closed_ || finishing_) return;
    if (writing_) {
      if (body_->Abandoned()) Arm(std::min(deadline_, Now() + kStreamGrace));
      return;
    }
    TimePoint now = Now();
    sending_.clear();
    if (first_) sending_.push_back(std::move(first_));
    TimePoint poll_at = TimePoint::max();
    if (!body_->Poll(now, kMaxStreamWrite, &sending_, &poll_at)) {
      static const SharedBytes kLastChunk = std::make_shared<const std::string>("0\r\n\r\n");
      sending_.push_back(kLastChunk);
      finishing_ = true;
    }
    if (sending_.empty()) {
      Arm(poll_at);
      return;
    }
    buffers_.clear();
    for (const auto& b : sending_) buffers_.emplace_back(b->data(), b->size());
    writing_ = true;
    Arm(now + (finishing_ || body_->Abandoned() ? kStreamGrace : kStreamStallLimit));
    stream_.Write(buffers_, [self = this->shared_from_this()](boost::system::error_code ec) {
      self->Written(ec);
    });
  }

  void Written(boost::system::error_code ec) {
    writing_ = false;
    sending_.clear();
    if (ec || closed_) {
      Close();
    } else if (finishing_) {
      // The body is complete: send FIN, and close once the client closes too (or soon anyway).
      boost::system::error_code ignored;
      stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
      Arm(Now() + kStreamGrace);
    } else {
      Pump();
    }
  }

  // Reads (and discards) whatever the client sends, to learn at once when it goes away.
  void ReadPeer() {
    stream_.Discard(asio::buffer(peer_buffer_),
                    [self = this->shared_from_this()](boost::system::error_code ec) {
                      if (ec) {
                        self->Close();
                      } else {
                        self->ReadPeer();
                      }
                    });
  }

  // The timer serves both waits: for the stream's next poll when idle, and for a write's
  // deadline when writing (or the client's close after the last chunk). Deadlines move with
  // every write, nearly always later, so the timer is set again only when one comes sooner than
  // the wait under way; a wait that ends before the deadline waits again for the rest.
  void Arm(TimePoint at) {
    deadline_ = at;
    if (at == TimePoint::max() || (timer_waiting_ && timer_expiry_ <= at)) return;
    timer_waiting_ = true;
    timer_expiry_ = at;
    timer_.expires_at(at);  // the wait it replaces ends with an error and a stale generation
    timer_.async_wait([self = this->shared_from_this(),
                       generation = ++timer_generation_](boost::system::error_code ec) {
      if (ec || generation != self->timer_generation_) return;
      self->timer_waiting_ = false;
      if (self->closed_ || self->deadline_ == TimePoint::max()) return;
      if (Now() < self->deadline_) return self->Arm(self->deadline_);
      if (self->writing_ || self->finishing_) {
        self->Close();  // stalled write, or the client kept the connection after the last chunk
      } else {
        self->Pump();
      }
    });
  }

  void Close() {
    if (closed_) return;
    closed_ = true;
    body_->Cancel();
    timer_.cancel();
    CloseSocket(stream_.socket());
  }

  static TimePoint Now() { return std::chrono::steady_clock::now(); }

  Transport stream_;
  std::shared_ptr<HttpStream> body_;
  asio::steady_timer timer_;
  SharedBytes first_;                       // the response's initial body, as a chunk
  std::vector<SharedBytes> sending_;        // what the write under way holds
  std::vector<asio::const_buffer> buffers_;
  std::array<char, 512> peer_buffer_;
  TimePoint deadline_ = TimePoint::max();
  TimePoint timer_expiry_;  // of the wait under way, if timer_waiting_
  bool timer_waiting_ = false;
  uint64_t timer_generation_ = 0;
  bool writing_ = false;
  bool finishing_ = false;  // the last chunk is queued or written
  bool closed_ = false;
};

// A connection handed to HttpResponse::takeover. Every operation on the socket runs on its strand
// (the loop threads), so one read and one write may be under way at once, as asio's TLS stream
// allows; the calling threads wait for them.
template <typename Stream>
class TakenStream : public TakenConnection {
 public:
  TakenStream(Stream& stream, beast::flat_buffer& buffer) : stream_(stream) {
    pending_.assign(static_cast<const char*>(buffer.data().data()), buffer.size());
    buffer.consume(buffer.size());
  }
  ~TakenStream() override {
    Close();
    std::unique_lock lock(mu_);
    cv_.wait(lock, [this] { return !reading_ && !writing_ && !closing_; });
  }

  long Read(char* buf, std::size_t n, std::chrono::milliseconds timeout) override {
    std::unique_lock lock(mu_);
    if (pending_.empty() && !failed_) {
      if (!reading_) {
        reading_ = true;
        asio::post(stream_.get_executor(), [this] {
          stream_.async_read_some(asio::buffer(read_buf_),
                                  [this](boost::system::error_code ec, std::size_t k) {
                                    std::lock_guard lock(mu_);
                                    if (ec || k == 0) failed_ = true;
                                    pending_.append(read_buf_.data(), k);
                                    reading_ = false;
                                    cv_.notify_all();
                                  });
        });
      }
      if (!cv_.wait_for(lock, timeout, [this] { return !reading_; })) return -1;
    }
    if (pending_.empty()) return 0;
    std::size_t k = std::min(n, pending_.size());
    std::memcpy(buf, pending_.data(), k);
    pending_.erase(0, k);
    return static_cast<long>(k);
  }

  bool Write(std::string_view data) override {
    std::unique_lock lock(mu_);
    if (failed_ || closed_) return false;
    writing_ = true;
    asio::post(stream_.get_executor(), [this, data] {
      asio::async_write(stream_, asio::buffer(data.data(), data.size()),
                        [this](boost::system::error_code ec, std::size_t) {
                          std::lock_guard lock(mu_);
                          if (ec) failed_ = true;
                          writing_ = false;
                          cv_.notify_all();
                        });
    });
    if (!cv_.wait_for(lock, kStreamStallLimit, [this] { return !writing_; })) {
      CloseLocked();  // a client that stopped reading
      cv_.wait(lock, [this] { return !writing_; });
    }
    return !failed_;
  }

  void Close() override {
    std::lock_guard lock(mu_);
    CloseLocked();
  }

 private:
  void CloseLocked() {
    if (closed_) return;
    closed_ = true;
    closing_ = true;
    asio::post(stream_.get_executor(), [this] {
      CloseSocket(Socket(stream_));
      std::lock_guard lock(mu_);
      closing_ = false;
      cv_.notify_all();
    });
  }

  Stream& stream_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::string pending_;                 // read, not yet returned; guarded by mu_
  std::array<char, 16 * 1024> read_buf_;
  // Operations under way, and the connection's state; guarded by mu_.
  bool reading_ = false, writing_ = false, closing_ = false, failed_ = false, closed_ = false;
};

class BeastHttpServer : public HttpServer {
 public:
  BeastHttpServer(const HttpServerOptions& options, HttpHandler handler)
      : options_(options), handler_(std::move(handler)), acceptor_(io_) {}

  ~BeastHttpServer() override { Stop(); }

  base::Status Init() {
    if (!options_.cert_file.empty()) {
      tls_ = std::make_unique<ssl::context>(ssl::context::tls_server);
      tls_->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                        ssl::context::no_sslv3 | ssl::context::no_tlsv1 |
                        ssl::context::no_tlsv1_1);
      SSL_CTX_set_ciphersuites(tls_->native_handle(), kTls13Suites);
      SSL_CTX_set_options(tls_->native_handle(), SSL_OP_CIPHER_SERVER_PREFERENCE);
      boost::system::error_code ec;
      tls_->use_certificate_chain_file(options_.cert_file, ec);
      if (!ec) tls_->use_private_key_file(options_.key_file, ssl::context::pem, ec);
      if (ec) {
        return base::Internal("loading TLS certificate " + options_.cert_file + ": " +
                              ec.message());
      }
      if (!options_.client_ca_file.empty()) RETURN_IF_ERROR(RequireClientCertificates());
    }
    boost::system::error_code ec;
    auto address = asio::ip::make_address(options_.host, ec);
    if (ec) return base::BadRequest("invalid listen address " + options_.host);
    tcp::endpoint endpoint(address, options_.port);
    acceptor_.open(endpoint.protocol(), ec);
    if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_.bind(endpoint, ec);
    if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      return base::Unavailable("listening on " + options_.host + ":" +
                               std::to_string(options_.port) + ": " + ec.message());
    }
    port_ = acceptor_.local_endpoint().port();
    std::size_t loops = options_.stream_threads;
    if (loops == 0) loops = std::clamp<std::size_t>(std::thread::hardware_concurrency(), 1, 4);
    for (std::size_t i = 0; i < loops; ++i) {
      loop_threads_.emplace_back([this] { loop_io_.run(); });
    }
    accept_thread_ = std::thread([this] { AcceptLoop(); });
    return base::Status::Ok();
  }

  uint16_t port() const override { return port_; }

  // Client authentication by certificate: signed by the CA of client_ca_file (OpenSSL checks the
  // clientAuth purpose) and, when client_names is set, with one of those subject CNs.
  base::Status RequireClientCertificates() {
    boost::system::error_code ec;
    tls_->load_verify_file(options_.client_ca_file, ec);
    if (ec) {
      return base::Internal("loading client CA " + options_.client_ca_file + ": " + ec.message());
    }
    tls_->set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert);
    static const unsigned char kContext[] = "fulcrum";
    SSL_CTX_set_session_id_context(tls_->native_handle(), kContext, sizeof kContext - 1);
    tls_->set_verify_callback([names = options_.client_names](bool preverified,
                                                              ssl::verify_context& ctx) {
      if (!preverified) return false;
      X509_STORE_CTX* store = ctx.native_handle();
      if (names.empty() || X509_STORE_CTX_get_error_depth(store) != 0) return true;
      char cn[256] = {};
      X509* cert = X509_STORE_CTX_get_current_cert(store);
      if (X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn,
                                    sizeof cn - 1) <= 0) {
        return false;
      }
      return std::find(names.begin(), names.end(), std::string(cn)) != names.end();
    });
    return base::Status::Ok();
  }

  void Stop() override {
    if (stopping_.exchange(true)) return;
    // shutdown() wakes the accept thread's blocking accept(); the acceptor is closed only once
    // that thread is gone, as it must not change under a thread still using it.
    ::shutdown(acceptor_.native_handle(), SHUT_RDWR);
    if (accept_thread_.joinable()) accept_thread_.join();
    boost::system::error_code ec;
    acceptor_.close(ec);
    {
      std::unique_lock lock(mu_);
      for (auto* c : connections_) c->Abort();
      done_.wait(lock, [this] { return connections_.empty(); });
    }
    {
      // No connection thread is left to hand over another stream.
      std::unique_lock lock(writers_.mu);
      writers_.stopping = true;
      for (auto* w : writers_.alive) w->Shutdown();
      writers_.gone.wait(lock, [this] { return writers_.alive.empty(); });
    }
    loop_work_.reset();
    loop_io_.stop();
    for (auto& t : loop_threads_) t.join();
  }

 private:
  struct Connection {
    int fd = -1;
    void Abort() {
      if (fd >= 0) ::shutdown(fd, SHUT_RDWR);
    }
  };

  void AcceptLoop() {
    while (!stopping_) {
      // The socket's handlers run on a strand of the loop threads once a stream takes it over;
      // until then the connection's own thread uses it synchronously.
      tcp::socket socket(asio::make_strand(loop_io_));
      boost::system::error_code ec;
      acceptor_.accept(socket, ec);
      if (ec) {
        if (stopping_) return;
        LOG_WARNING << "accept: " << ec.message();
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
        continue;
      }
      socket.set_option(tcp::no_delay(true), ec);
      auto* conn = new Connection();
      conn->fd = socket.native_handle();
      {
        std::lock_guard lock(mu_);
        if (stopping_) {
          delete conn;
          return;
        }
        connections_.insert(conn);
      }
      // The socket (even moved from, it holds its strand) must be gone before Stop can return
      // and destroy the loop's io_context, so the thread owns it on the heap and frees it first.
      std::thread([this, conn, s = std::make_unique<tcp::socket>(std::move(socket))]() mutable {
        Serve(std::move(*s), conn);
        s.reset();
        std::lock_guard lock(mu_);
        connections_.erase(conn);
        delete conn;
        done_.notify_all();
      }).detach();
    }
  }

  void Serve(tcp::socket socket, Connection* conn) {
    std::string remote;
    boost::system::error_code ec;
    auto ep = socket.remote_endpoint(ec);
    if (!ec) remote = ep.address().to_string();
    if (tls_) {
      beast::ssl_stream<tcp::socket> stream(std::move(socket), *tls_);
      stream.handshake(ssl::stream_base::server, ec);
      if (ec) return;
      if (ServeStream(stream, conn, remote)) return;
      stream.shutdown(ec);
    } else {
      beast::tcp_stream stream(std::move(socket));
      if (ServeStream(stream, conn, remote)) return;
      stream.socket().shutdown(tcp::socket::shutdown_both, ec);
    }
  }

  // Serves requests until the connection ends. Returns true when a streamed response took the
  // connection over (`stream` is then moved from).
  template <typename Stream>
  bool ServeStream(Stream& stream, Connection* conn, const std::string& remote) {
    beast::flat_buffer buffer;
    while (!stopping_) {
      http::request_parser<http::string_body> parser;
      parser.header_limit(kMaxHeaderBytes);
      parser.body_limit(options_.max_body_bytes);
      boost::system::error_code ec;
      http::read(stream, buffer, parser, ec);
      if (ec == http::error::body_limit) {
        WriteSimple(stream, 413, "RequestEntityTooLarge",
                    "the request body is larger than the limit of " +
                        std::to_string(options_.max_body_bytes) + " bytes",
                    false);
        return false;
      }
      if (ec == http::error::header_limit) {
        WriteSimple(stream, 431, "BadRequest", "request headers are too large", false);
        return false;
      }
      if (ec) return false;  // closed, reset or unparseable: nothing useful to answer
      auto& req = parser.get();
      HttpRequest request;
      request.method = std::string(req.method_string());
      std::string_view target(req.target().data(), req.target().size());
      auto q = target.find('?');
      request.path = PercentDecode(target.substr(0, q), false);
      if (q != std::string_view::npos) request.query = ParseQuery(target.substr(q + 1));
      for (const auto& field : req) {
        std::string name(field.name_string());
        for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        // A repeated field is one comma-separated list (RFC 9110 §5.3).
        auto [it, fresh] = request.headers.emplace(name, std::string(field.value()));
        if (!fresh) it->second += ", " + std::string(field.value());
      }
      request.body = std::move(req.body());
      request.remote_address = remote;
      bool keep_alive = req.keep_alive();

      HttpResponse response;
      try {
        response = handler_(request);
      } catch (const std::exception& e) {
        LOG_ERROR << request.method << " " << request.path << ": unhandled exception: "
                  << e.what();
        response = HttpResponse{};
        response.status = 500;
        response.body = StatusBody(500, "InternalError", "internal error");
      }
      if (response.takeover) {
        TakenStream<Stream> taken(stream, buffer);
        response.takeover(taken);
        return true;  // closed by `taken`
      }
      if (response.stream) return HandOver(stream, response);
      http::response<http::string_body> res{static_cast<http::status>(response.status),
                                            req.version()};
      res.set(http::field::content_type, response.content_type);
      for (auto& [k, v] : response.headers) res.set(k, v);
      res.body() = std::move(response.body);
      res.keep_alive(keep_alive);
      res.prepare_payload();
      http::write(stream, res, ec);
      if (ec || !keep_alive) return false;
    }
    return false;
  }

  // Writes the head of a streamed response and gives the connection to the loop threads.
  // Returns true when they took it (the stream is moved from).
  template <typename Stream>
  bool HandOver(Stream& stream, HttpResponse& response) {
    http::response<http::empty_body> res{static_cast<http::status>(response.status), 11};
    res.set(http::field::content_type, response.content_type);
    for (auto& [k, v] : response.headers) res.set(k, v);
    res.chunked(true);
    http::response_serializer<http::empty_body> sr{res};
    boost::system::error_code ec;
    http::write_header(stream, sr, ec);
    if (ec) {
      response.stream->Cancel();
      return false;
    }
    auto make = [&]<typename Transport>() -> std::shared_ptr<StreamWriterBase> {
      return std::make_shared<StreamWriter<Transport>>(&writers_, std::move(stream),
                                                       response.stream, std::move(response.body));
    };
    std::shared_ptr<StreamWriterBase> writer;
    if constexpr (std::is_same_v<Stream, DirectTlsTransport::TlsStream>) {
      writer = DirectTlsTransport::Possible(stream)
                   ? make.template operator()<DirectTlsTransport>()
                   : make.template operator()<StreamTransport<Stream>>();
    } else {
      writer = make.template operator()<StreamTransport<Stream>>();
    }
    {
      std::lock_guard lock(writers_.mu);
      if (writers_.stopping) {
        response.stream->Cancel();
        return true;  // the writer closes the connection as it goes
      }
      writers_.alive.insert(writer.get());
    }
    writer->Begin();
    return true;
  }

  template <typename Stream>
  void WriteSimple(Stream& stream, int code, const std::string& reason, const std::string& message,
                   bool keep_alive) {
    http::response<http::string_body> res{static_cast<http::status>(code), 11};
    res.set(http::field::content_type, "application/json");
    res.body() = StatusBody(code, reason, message);
    res.keep_alive(keep_alive);
    res.prepare_payload();
    boost::system::error_code ec;
    http::write(stream, res, ec);
  }

  HttpServerOptions options_;
  HttpHandler handler_;
  asio::io_context io_;  // the acceptor's; only used synchronously
  // The loop threads', for streams; declared before anything holding its sockets.
  asio::io_context loop_io_;
  asio::executor_work_guard<asio::io_context::executor_type> loop_work_ =
      asio::make_work_guard(loop_io_);
  std::vector<std::thread> loop_threads_;
  StreamWriters writers_;
  tcp::acceptor acceptor_;
  std::unique_ptr<ssl::context> tls_;
  uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  std::thread accept_thread_;
  std::mutex mu_;
  std::condition_variable done_;
  std::set<Connection*> connections_;
};

}  // namespace

std::string HttpChunk(std::string_view data) {
  if (data.empty()) return {};
  char size[24];
  int n = std::snprintf(size, sizeof(size), "%zx\r\n", data.size());
  std::string out;
  out.reserve(static_cast<std::size_t>(n) + data.size() + 2);
  out.append(size, static_cast<std::size_t>(n));
  out.append(data);
  out.append("\r\n");
  return out;
}

std::string HttpRequest::Query(const std::string& name, const std::string& fallback) const {
  auto it = query.find(name);
  return it == query.end() ? fallback : it->second;
}

std::string HttpRequest::Header(const std::string& lower_name) const {
  auto it = headers.find(lower_name);
  return it == headers.end() ? "" : it->second;
}

std::string PercentDecode(std::string_view s, bool plus_is_space) {
  std::string out;
  out.reserve(s.size());
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && hex(s[i + 1]) >= 0 && hex(s[i + 2]) >= 0) {
      out.push_back(static_cast<char>(hex(s[i + 1]) * 16 + hex(s[i + 2])));
      i += 2;
    } else if (s[i] == '+' && plus_is_space) {
      out.push_back(' ');
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

std::multimap<std::string, std::string> ParseQuery(std::string_view raw) {
  std::multimap<std::string, std::string> out;
  while (!raw.empty()) {
    auto amp = raw.find('&');
    std::string_view pair = raw.substr(0, amp);
    raw = amp == std::string_view::npos ? std::string_view() : raw.substr(amp + 1);
    if (pair.empty()) continue;
    auto eq = pair.find('=');
    std::string key = PercentDecode(pair.substr(0, eq), true);
    std::string value =
        eq == std::string_view::npos ? "" : PercentDecode(pair.substr(eq + 1), true);
    out.emplace(std::move(key), std::move(value));
  }
  return out;
}

base::Result<std::unique_ptr<HttpServer>> StartHttpServer(const HttpServerOptions& options,
                                                          HttpHandler handler) {
  auto server = std::make_unique<BeastHttpServer>(options, std::move(handler));
  RETURN_IF_ERROR(server->Init());
  return std::unique_ptr<HttpServer>(std::move(server));
}

}  // namespace fulcrum::apiserver
