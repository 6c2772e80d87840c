// HTTP/1.1 message framing per RFC 9112 §6 (Content-Length, chunked, until close).
#include "client/http_client.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <poll.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>

namespace fulcrum::client {
namespace {

constexpr std::size_t kMaxLineBytes = 64 * 1024;
constexpr std::size_t kReadBufferBytes = 256 * 1024;

std::string OpenSslErrors() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof(buf));
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out.empty() ? "unknown TLS error" : out;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) {
    s.remove_suffix(1);
  }
  return s;
}

bool IsIpLiteral(const std::string& host) {
  in6_addr addr6;
  in_addr addr4;
  return inet_pton(AF_INET, host.c_str(), &addr4) == 1 ||
         inet_pton(AF_INET6, host.c_str(), &addr6) == 1;
}

}  // namespace

base::Result<Url> ParseUrl(std::string_view text) {
  Url url;
  std::string_view rest = text;
  if (rest.substr(0, 8) == "https://") {
    url.tls = true;
    rest.remove_prefix(8);
  } else if (rest.substr(0, 7) == "http://") {
    rest.remove_prefix(7);
  } else {
    return base::BadRequest("URL " + std::string(text) + " must start with http:// or https://");
  }
  rest = rest.substr(0, rest.find('/'));
  auto colon = rest.rfind(':');
  if (colon == std::string_view::npos || colon + 1 == rest.size()) {
    url.host = std::string(rest);
    url.port = url.tls ? 443 : 80;
  } else {
    url.host = std::string(rest.substr(0, colon));
    unsigned port = 0;
    auto port_text = rest.substr(colon + 1);
    auto [p, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
    if (ec != std::errc() || p != port_text.data() + port_text.size() || port == 0 ||
        port > 65535) {
      return base::BadRequest("URL " + std::string(text) + " has an invalid port");
    }
    url.port = static_cast<uint16_t>(port);
  }
  if (url.host.size() >= 2 && url.host.front() == '[' && url.host.back() == ']') {
    url.host = url.host.substr(1, url.host.size() - 2);
  }
  if (url.host.empty()) return base::BadRequest("URL " + std::string(text) + " has no host");
  return url;
}

base::Result<std::shared_ptr<TlsContext>> TlsContext::Create(const std::string& ca_file) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  if (ctx == nullptr) return base::Internal("SSL_CTX_new: " + OpenSslErrors());
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
  if (SSL_CTX_load_verify_locations(ctx, ca_file.c_str(), nullptr) != 1) {
    std::string err = OpenSslErrors();
    SSL_CTX_free(ctx);
    return base::Internal("loading CA file " + ca_file + ": " + err);
  }
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  // Read whole socket buffers, not a record header and then its body: half the read calls.
  SSL_CTX_set_read_ahead(ctx, 1);
  return std::shared_ptr<TlsContext>(new TlsContext(ctx));
}

base::Result<std::shared_ptr<TlsContext>> TlsContext::CreateFromPem(std::string_view ca_pem) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  if (ctx == nullptr) return base::Internal("SSL_CTX_new: " + OpenSslErrors());
  auto result = std::shared_ptr<TlsContext>(new TlsContext(ctx));
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
  BIO* bio = BIO_new_mem_buf(ca_pem.data(), static_cast<int>(ca_pem.size()));
  if (bio == nullptr) return base::Internal("BIO_new_mem_buf: " + OpenSslErrors());
  X509_STORE* store = SSL_CTX_get_cert_store(ctx);
  int added = 0;
  while (X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr)) {
    if (X509_STORE_add_cert(store, cert) == 1) ++added;
    X509_free(cert);
  }
  BIO_free(bio);
  ERR_clear_error();  // the loop ends with a "no start line" error
  if (added == 0) return base::BadRequest("certificate authority data holds no PEM certificate");
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  SSL_CTX_set_read_ahead(ctx, 1);
  return result;
}

base::Result<std::shared_ptr<TlsContext>> TlsContext::CreateWithClientCertificate(
    const std::string& cert_file, const std::string& key_file) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  if (ctx == nullptr) return base::Internal("SSL_CTX_new: " + OpenSslErrors());
  auto result = std::shared_ptr<TlsContext>(new TlsContext(ctx));
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
  if (SSL_CTX_use_certificate_chain_file(ctx, cert_file.c_str()) != 1 ||
      SSL_CTX_use_PrivateKey_file(ctx, key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
    return base::Internal("loading client certificate " + cert_file + ": " + OpenSslErrors());
  }
  SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
  return result;
}

TlsContext::~TlsContext() { SSL_CTX_free(ctx_); }

Transport::~Transport() { Close(); }

void Transport::Close() {
  if (ssl_ != nullptr) {
    SSL_free(ssl_);
    ssl_ = nullptr;
  }
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
}

namespace {

// connect(2) that gives up after `timeout`; 0 or errno.
int ConnectWithin(int fd, const sockaddr* addr, socklen_t len, std::chrono::milliseconds timeout) {
  int flags = ::fcntl(fd, F_GETFL, 0);
  ::fcntl(fd, F_SETFL, flags | O_NONBLOCK);
  int err = 0;
  if (::connect(fd, addr, len) != 0) {
    err = errno;
    if (err == EINPROGRESS) {
      pollfd p{fd, POLLOUT, 0};
      int ready;
      do {
        ready = ::poll(&p, 1, static_cast<int>(timeout.count()));
      } while (ready < 0 && errno == EINTR);
      if (ready == 0) {
        err = ETIMEDOUT;
      } else {
        socklen_t size = sizeof err;
        if (ready < 0 || ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &size) != 0) err = errno;
      }
    }
  }
  ::fcntl(fd, F_SETFL, flags);
  return err;
}

// SO_RCVTIMEO and SO_SNDTIMEO: a blocking read or write gives up after `t` (0: never).
void SetSocketTimeouts(int fd, std::chrono::milliseconds t) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(t.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((t.count() % 1000) * 1000);
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

}  // namespace

base::Status Transport::Connect(const Url& url, const TlsContext* tls,
                                std::chrono::milliseconds timeout) {
  Close();
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  std::string port = std::to_string(url.port);
  int rc = getaddrinfo(url.host.c_str(), port.c_str(), &hints, &res);
  if (rc != 0) {
    return base::Unavailable("resolving " + url.host + ": " + gai_strerror(rc));
  }
  std::string last_error = "no addresses";
  for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
    int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
      last_error = std::strerror(errno);
      continue;
    }
    if (int err = ConnectWithin(fd, ai->ai_addr, ai->ai_addrlen, timeout); err != 0) {
      last_error = err == ETIMEDOUT ? "no answer within " + std::to_string(timeout.count()) + " ms"
                                    : std::strerror(err);
      ::close(fd);
      continue;
    }
    fd_ = fd;
    break;
  }
  freeaddrinfo(res);
  if (fd_ < 0) {
    return base::Unavailable("connecting to " + url.host + ":" + port + ": " + last_error);
  }
  int one = 1;
  ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  if (!url.tls) return base::Status::Ok();
  if (tls == nullptr) {
    Close();
    return base::Unavailable("https URL without a CA file");
  }
  ssl_ = SSL_new(tls->get());
  if (ssl_ == nullptr) {
    Close();
    return base::Unavailable("SSL_new: " + OpenSslErrors());
  }
  SSL_set_fd(ssl_, fd_);
  if (IsIpLiteral(url.host)) {
    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl_), url.host.c_str());
  } else {
    SSL_set_tlsext_host_name(ssl_, url.host.c_str());
    SSL_set1_host(ssl_, url.host.c_str());
  }
  SetSocketTimeouts(fd_, timeout);
  int handshake = SSL_connect(ssl_);
  SetSocketTimeouts(fd_, std::chrono::milliseconds(0));
  if (handshake != 1) {
    int saved_errno = errno;
    std::string err = OpenSslErrors();
    if (saved_errno == EAGAIN || saved_errno == EWOULDBLOCK) {
      err = "no answer within " + std::to_string(timeout.count()) + " ms";
    }
    long verify = SSL_get_verify_result(ssl_);
    if (verify != X509_V_OK) err += std::string(" (") + X509_verify_cert_error_string(verify) + ")";
    Close();
    return base::Unavailable("TLS handshake with " + url.host + ":" + port + ": " + err);
  }
  return base::Status::Ok();
}

base::Status Transport::WriteAll(std::string_view data) {
  while (!data.empty()) {
    if (ssl_ != nullptr) {
      int n = SSL_write(ssl_, data.data(),
                        static_cast<int>(std::min<std::size_t>(data.size(), 1 << 30)));
      if (n <= 0) return base::Unavailable("TLS write: " + OpenSslErrors());
      data.remove_prefix(static_cast<std::size_t>(n));
    } else {
      ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EINTR) continue;
        return base::Unavailable(std::string("write: ") + std::strerror(errno));
      }
      data.remove_prefix(static_cast<std::size_t>(n));
    }
  }
  return base::Status::Ok();
}

long Transport::Read(char* buf, std::size_t n) {
  if (ssl_ != nullptr) {
    int r = SSL_read(ssl_, buf, static_cast<int>(std::min<std::size_t>(n, 1 << 30)));
    if (r > 0) return r;
    switch (SSL_get_error(ssl_, r)) {
      case SSL_ERROR_WANT_READ:
      case SSL_ERROR_WANT_WRITE:
        return kWouldBlock;
      case SSL_ERROR_ZERO_RETURN:
        return 0;
      case SSL_ERROR_SYSCALL:
        if (errno == 0) return 0;
        return kError;
      default:
        ERR_clear_error();
        return kError;
    }
  }
  for (;;) {
    ssize_t r = ::recv(fd_, buf, n, 0);
    if (r >= 0) return r;
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return kWouldBlock;
    return kError;
  }
}

long Transport::Write(const char* data, std::size_t n) {
  if (ssl_ != nullptr) {
    int r = SSL_write(ssl_, data, static_cast<int>(std::min<std::size_t>(n, 1 << 30)));
    if (r > 0) return r;
    switch (SSL_get_error(ssl_, r)) {
      case SSL_ERROR_WANT_READ:
      case SSL_ERROR_WANT_WRITE:
        return kWouldBlock;
      default:
        ERR_clear_error();
        return kError;
    }
  }
  for (;;) {
    ssize_t r = ::send(fd_, data, n, MSG_NOSIGNAL);
    if (r >= 0) return r;
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return kWouldBlock;
    return kError;
  }
}

std::string Transport::Cipher() const {
  return ssl_ == nullptr ? "none" : std::string(SSL_get_version(ssl_)) + " " + SSL_get_cipher_name(ssl_);
}

void Transport::SetReadTimeout(int seconds) {
  timeval tv{};
  tv.tv_sec = seconds;
  setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
}

bool Transport::HasPending() const { return ssl_ != nullptr && SSL_has_pending(ssl_) == 1; }

void Transport::SetNonBlocking() {
  int flags = ::fcntl(fd_, F_GETFL, 0);
  ::fcntl(fd_, F_SETFL, flags | O_NONBLOCK);
}

std::string HttpResponse::Header(std::string_view lower_name) const {
  for (const auto& [k, v] : headers) {
    if (k == lower_name) return v;
  }
  return "";
}

void ResponseParser::Body(std::string_view bytes) {
  if (sink_) {
    sink_(bytes);
  } else {
    response_.body.append(bytes);
  }
}

base::Result<std::size_t> ResponseParser::Feed(std::string_view data) {
  std::size_t used = 0;
  while (used < data.size() && state_ != State::kDone) {
    switch (state_) {
      case State::kLengthBody:
      case State::kChunkData: {
        std::size_t take = std::min(remaining_, data.size() - used);
        Body(data.substr(used, take));
        used += take;
        remaining_ -= take;
        if (remaining_ == 0) {
          state_ = state_ == State::kLengthBody ? State::kDone : State::kChunkDataEnd;
        }
        break;
      }
      case State::kUntilClose:
        Body(data.substr(used));
        used = data.size();
        break;
      default: {  // line-oriented states
        auto nl = data.find('\n', used);
        if (nl == std::string_view::npos) {
          line_.append(data.substr(used));
          used = data.size();
          if (line_.size() > kMaxLineBytes) {
            state_ = State::kDone;
            return base::BadRequest("response line longer than 64 KiB");
          }
          break;
        }
        line_.append(data.substr(used, nl - used));
        used = nl + 1;
        if (!line_.empty() && line_.back() == '\r') line_.pop_back();
        base::Status s = OnLine(line_);
        line_.clear();
        if (!s.ok()) {
          state_ = State::kDone;
          return s;
        }
        break;
      }
    }
  }
  return used;
}

void ResponseParser::FeedEof() {
  if (state_ == State::kUntilClose) state_ = State::kDone;
}

base::Status ResponseParser::OnLine(std::string_view line) {
  switch (state_) {
    case State::kStatusLine: {
      if (line.empty()) return base::Status::Ok();  // tolerated leading CRLF
      if (line.substr(0, 5) != "HTTP/" || line.size() < 12) {
        return base::BadRequest("bad status line: " + std::string(line.substr(0, 80)));
      }
      int status = 0;
      auto code = line.substr(9, 3);
      auto [p, ec] = std::from_chars(code.data(), code.data() + code.size(), status);
      if (ec != std::errc() || status < 100 || status > 999) {
        return base::BadRequest("bad status code: " + std::string(line.substr(0, 80)));
      }
      response_.status = status;
      state_ = State::kHeaders;
      return base::Status::Ok();
    }
    case State::kHeaders: {
      if (!line.empty()) {
        auto colon = line.find(':');
        if (colon == std::string_view::npos) {
          return base::BadRequest("bad header line: " + std::string(line.substr(0, 80)));
        }
        response_.headers.emplace_back(Lower(Trim(line.substr(0, colon))),
                                       std::string(Trim(line.substr(colon + 1))));
        return base::Status::Ok();
      }
      if (response_.status >= 100 && response_.status < 200) {  // interim response
        response_.headers.clear();
        state_ = State::kStatusLine;
        return base::Status::Ok();
      }
      if (response_.status == 204 || response_.status == 304) {
        state_ = State::kDone;
        return base::Status::Ok();
      }
      if (Lower(response_.Header("transfer-encoding")).find("chunked") != std::string::npos) {
        state_ = State::kChunkSize;
        return base::Status::Ok();
      }
      std::string length = response_.Header("content-length");
      if (length.empty()) {
        state_ = State::kUntilClose;
        return base::Status::Ok();
      }
      std::size_t n = 0;
      auto [p, ec] = std::from_chars(length.data(), length.data() + length.size(), n);
      if (ec != std::errc() || p != length.data() + length.size()) {
        return base::BadRequest("bad Content-Length: " + length);
      }
      remaining_ = n;
      if (!sink_) response_.body.reserve(std::min<std::size_t>(n, std::size_t{4} << 30));
      state_ = n == 0 ? State::kDone : State::kLengthBody;
      return base::Status::Ok();
    }
    case State::kChunkSize: {
      auto size_text = Trim(line.substr(0, line.find(';')));
      std::size_t n = 0;
      auto [p, ec] = std::from_chars(size_text.data(), size_text.data() + size_text.size(), n, 16);
      if (size_text.empty() || ec != std::errc() || p != size_text.data() + size_text.size()) {
        return base::BadRequest("bad chunk size: " + std::string(line.substr(0, 80)));
      }
      if (n == 0) {
        state_ = State::kTrailers;
      } else {
        remaining_ = n;
        state_ = State::kChunkData;
      }
      return base::Status::Ok();
    }
    case State::kChunkDataEnd:
      if (!line.empty()) return base::BadRequest("chunk data not followed by CRLF");
      state_ = State::kChunkSize;
      return base::Status::Ok();
    case State::kTrailers:
      if (line.empty()) state_ = State::kDone;
      return base::Status::Ok();
    default:
      return base::Internal("parser in a body state got a line");
  }
}

HttpConnection::HttpConnection(Url url, std::shared_ptr<TlsContext> tls, std::string token,
                               std::string user_agent)
    : url_(std::move(url)),
      tls_(std::move(tls)),
      token_(std::move(token)),
      user_agent_(std::move(user_agent)) {}

base::Status HttpConnection::Connect() {
  RETURN_IF_ERROR(transport_.Connect(url_, tls_.get()));
  if (read_timeout_seconds_ > 0) transport_.SetReadTimeout(read_timeout_seconds_);
  return base::Status::Ok();
}

std::string HttpConnection::RequestHead(std::string_view method, std::string_view target,
                                        std::size_t body_bytes, bool has_body,
                                        std::string_view content_type) const {
  std::string head;
  head.reserve(256 + token_.size());
  head.append(method).append(" ").append(target).append(" HTTP/1.1\r\nHost: ");
  head.append(url_.host).append(":").append(std::to_string(url_.port));
  head.append("\r\nUser-Agent: ").append(user_agent_).append("\r\nAccept: application/json\r\n");
  if (!token_.empty()) head.append("Authorization: Bearer ").append(token_).append("\r\n");
  if (has_body) {
    head.append("Content-Type: ").append(content_type).append("\r\nContent-Length: ");
    head.append(std::to_string(body_bytes)).append("\r\n");
  }
  head.append("\r\n");
  return head;
}

base::Status HttpConnection::Do(std::string_view method, std::string_view target,
                                std::string_view body, HttpResponse* response,
                                std::string_view content_type) {
  bool has_body = method != "GET" && method != "HEAD" && method != "DELETE";
  has_body = has_body || !body.empty();
  std::string request = RequestHead(method, target, body.size(), has_body, content_type);
  request.append(body);
  bool reused = transport_.connected();
  if (!reused) RETURN_IF_ERROR(Connect());
  bool nothing_read = false;
  base::Status s = DoOnce(request, response, &nothing_read);
  if (!s.ok() && reused && nothing_read) {
    RETURN_IF_ERROR(Connect());
    s = DoOnce(request, response, &nothing_read);
  }
  if (!s.ok()) transport_.Close();
  return s;
}

base::Status HttpConnection::DoOnce(const std::string& request, HttpResponse* response,
                                    bool* nothing_read) {
  *nothing_read = true;
  base::Status s = transport_.WriteAll(request);
  if (!s.ok()) return s;
  if (buf_.size() != kReadBufferBytes) buf_.resize(kReadBufferBytes);
  ResponseParser parser;
  bool leftover = false;
  while (!parser.complete()) {
    long n = transport_.Read(buf_.data(), buf_.size());
    if (n == Transport::kWouldBlock) {
      if (read_timeout_seconds_ > 0) return base::Unavailable("no response within the read timeout");
      continue;
    }
    if (n == Transport::kError) return base::Unavailable("read failed");
    if (n == 0) {
      parser.FeedEof();
      if (!parser.complete()) return base::Unavailable("connection closed mid-response");
      transport_.Close();
      break;
    }
    *nothing_read = false;
    auto used = parser.Feed(std::string_view(buf_.data(), static_cast<std::size_t>(n)));
    if (!used.ok()) return used.status();
    leftover = *used < static_cast<std::size_t>(n);
  }
  *response = std::move(parser.response());
  if (leftover || Lower(response->Header("connection")) == "close") transport_.Close();
  return base::Status::Ok();
}

base::Result<std::unique_ptr<Transport>> HttpConnection::StartStream(std::string_view target) {
  transport_.Close();
  auto t = std::make_unique<Transport>();
  RETURN_IF_ERROR(t->Connect(url_, tls_.get()));
  RETURN_IF_ERROR(t->WriteAll(RequestHead("GET", target, 0, false, "")));
  return t;
}

}  // namespace fulcrum::client
