// HTTP/1.1 (RFC 9112) over TLS with Boost.Beast, one thread per connection.
#include "apiserver/http_server.h"

#include <poll.h>
#include <sys/socket.h>

#include <atomic>
#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <condition_variable>
#include <mutex>
#include <set>
#include <thread>

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
constexpr auto kStreamPoll = std::chrono::seconds(2);

std::string StatusBody(int code, const std::string& reason, const std::string& message) {
  base::Json j = {{"kind", "Status"},   {"apiVersion", "v1"}, {"metadata", base::Json::object()},
                  {"status", "Failure"}, {"message", message}, {"reason", reason},
                  {"code", code}};
  return base::DumpJson(j);
}

// True once the peer has closed or reset the connection.
bool PeerClosed(int fd) {
  pollfd p{fd, POLLRDHUP, 0};
  if (::poll(&p, 1, 0) <= 0) return false;
  return (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
}

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
      boost::system::error_code ec;
      tls_->use_certificate_chain_file(options_.cert_file, ec);
      if (!ec) tls_->use_private_key_file(options_.key_file, ssl::context::pem, ec);
      if (ec) {
        return base::Internal("loading TLS certificate " + options_.cert_file + ": " +
                              ec.message());
      }
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
    accept_thread_ = std::thread([this] { AcceptLoop(); });
    return base::Status::Ok();
  }

  uint16_t port() const override { return port_; }

  void Stop() override {
    if (stopping_.exchange(true)) return;
    // shutdown() wakes the accept thread's blocking accept(); the acceptor is closed only once
    // that thread is gone, as it must not change under a thread still using it.
    ::shutdown(acceptor_.native_handle(), SHUT_RDWR);
    if (accept_thread_.joinable()) accept_thread_.join();
    boost::system::error_code ec;
    acceptor_.close(ec);
    std::unique_lock lock(mu_);
    for (auto* c : connections_) c->Abort();
    done_.wait(lock, [this] { return connections_.empty(); });
  }

 private:
  struct Connection {
    int fd = -1;
    std::mutex mu;
    std::shared_ptr<HttpStream> stream;  // the watch being served, if any
    void Abort() {
      std::lock_guard lock(mu);
      if (stream) stream->Cancel();
      if (fd >= 0) ::shutdown(fd, SHUT_RDWR);
    }
  };

  void AcceptLoop() {
    while (!stopping_) {
      tcp::socket socket(io_);
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
      std::thread([this, conn, s = std::move(socket)]() mutable {
        Serve(std::move(s), conn);
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
      ServeStream(stream, conn, remote);
      stream.shutdown(ec);
    } else {
      beast::tcp_stream stream(std::move(socket));
      ServeStream(stream, conn, remote);
      stream.socket().shutdown(tcp::socket::shutdown_both, ec);
    }
  }

  template <typename Stream>
  void ServeStream(Stream& stream, Connection* conn, const std::string& remote) {
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
        return;
      }
      if (ec == http::error::header_limit) {
        WriteSimple(stream, 431, "BadRequest", "request headers are too large", false);
        return;
      }
      if (ec) return;  // closed, reset or unparseable: nothing useful to answer
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
        request.headers[name] = std::string(field.value());
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
      if (response.stream) {
        ServeChunked(stream, conn, request, response);
        return;
      }
      http::response<http::string_body> res{static_cast<http::status>(response.status),
                                            req.version()};
      res.set(http::field::content_type, response.content_type);
      for (auto& [k, v] : response.headers) res.set(k, v);
      res.body() = std::move(response.body);
      res.keep_alive(keep_alive);
      res.prepare_payload();
      http::write(stream, res, ec);
      if (ec || !keep_alive) return;
    }
  }

  template <typename Stream>
  void ServeChunked(Stream& stream, Connection* conn, const HttpRequest& request,
                    HttpResponse& response) {
    {
      std::lock_guard lock(conn->mu);
      conn->stream = response.stream;
    }
    http::response<http::empty_body> res{static_cast<http::status>(response.status), 11};
    res.set(http::field::content_type, response.content_type);
    for (auto& [k, v] : response.headers) res.set(k, v);
    res.chunked(true);
    http::response_serializer<http::empty_body> sr{res};
    boost::system::error_code ec;
    http::write_header(stream, sr, ec);
    std::string chunk = std::move(response.body);
    bool more = true;
    while (!ec && !stopping_) {
      if (!chunk.empty()) {
        asio::write(stream, http::make_chunk(asio::buffer(chunk)), ec);
        if (ec) break;
        chunk.clear();
      }
      if (!more) break;
      more = response.stream->Next(&chunk, std::chrono::steady_clock::now() + kStreamPoll);
      if (chunk.empty() && PeerClosed(conn->fd)) break;
    }
    if (!ec) asio::write(stream, http::make_chunk_last(), ec);
    response.stream->Cancel();
    std::lock_guard lock(conn->mu);
    conn->stream.reset();
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
  asio::io_context io_;
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
