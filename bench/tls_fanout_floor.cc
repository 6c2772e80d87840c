// tls_fanout_floor: what this machine allows for the watch fan-out target (issue 2: 1,000
// watchers each receive every event, p99 delivery <= 100 ms at 1,000 writes/s), measured without
// the API server. One process, two threads, N TLS connections over loopback (TLS 1.3 with
// AES-128-GCM, what the server negotiates with its clients):
// - writers (--threads, each for its share of the connections) stamp each batch of events with
// their due times (one event every 1/RATE s) and
//   send the batch to each connection with one SSL_write (blocking sockets: a reader that falls
//   behind holds the writer back, as a full socket holds back a server);
// - as many readers read their connections (epoll, non-blocking) and takes each event's delivery
//   latency from its stamp.
// No HTTP, JSON, allocation per event, watch cache or store: only the encryption, decryption,
// loopback TCP copies and system calls that any server and its clients must do on these cores.
// Prints one JSON line per rate.
//
//   tls_fanout_floor [--connections 1000] [--rates 1000,500,300] [--seconds 5]
//                    [--event-bytes 1871] [--batch-ms 10] [--threads 2]
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "bench/harness.h"

namespace fulcrum::bench {
namespace {

const char kUsage[] =
    "usage: tls_fanout_floor [--connections 1000] [--rates 1000,500,300] [--seconds 5]\n"
    "                        [--event-bytes 1871] [--batch-ms 10] [--threads 2]\n";

struct Flags {
  int connections = 1000;
  std::string rates = "1000,500,300";
  double seconds = 5;
  int event_bytes = 1871;  // the API server's mean watch event line for the bench's pod
  double batch_ms = 10;
  int threads = 2;  // writer threads, and as many reader threads
};

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "tls_fanout_floor: %s", what.c_str());
  if (errno != 0) std::fprintf(stderr, ": %s", std::strerror(errno));
  unsigned long e = ERR_get_error();
  if (e != 0) std::fprintf(stderr, " (%s)", ERR_error_string(e, nullptr));
  std::fprintf(stderr, "\n");
  std::exit(1);
}

// A self-signed P-256 certificate for the server end.
void UseFreshCertificate(SSL_CTX* ctx) {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  X509* cert = X509_new();
  if (key == nullptr || cert == nullptr) Die("key or certificate");
  X509_set_version(cert, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
  X509_gmtime_adj(X509_getm_notBefore(cert), 0);
  X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
  X509_NAME* name = X509_get_subject_name(cert);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("tls-fanout-floor"), -1, -1, 0);
  X509_set_issuer_name(cert, name);
  X509_set_pubkey(cert, key);
  if (X509_sign(cert, key, EVP_sha256()) == 0) Die("signing the certificate");
  if (SSL_CTX_use_certificate(ctx, cert) != 1 || SSL_CTX_use_PrivateKey(ctx, key) != 1) {
    Die("using the certificate");
  }
  X509_free(cert);
  EVP_PKEY_free(key);
}

SSL_CTX* NewContext(bool server) {
  SSL_CTX* ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
  if (ctx == nullptr) Die("SSL_CTX_new");
  SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
  SSL_CTX_set_ciphersuites(ctx, "TLS_AES_128_GCM_SHA256");
  if (server) {
    UseFreshCertificate(ctx);
    SSL_CTX_set_num_tickets(ctx, 0);
  } else {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
  }
  return ctx;
}

void SetBlocking(int fd, bool blocking) {
  int flags = ::fcntl(fd, F_GETFL);
  ::fcntl(fd, F_SETFL, blocking ? flags & ~O_NONBLOCK : flags | O_NONBLOCK);
}

struct Connection {
  int server_fd = -1, client_fd = -1;
  SSL* server = nullptr;
  SSL* client = nullptr;
  // Reader state: bytes into the current event, and its stamp as far as read.
  int pos = 0;
  unsigned char stamp[8] = {};
  int64_t events = 0;
};

// N connected pairs with finished TLS handshakes: server ends blocking, client ends not.
std::vector<Connection> Connect(int n, SSL_CTX* server_ctx, SSL_CTX* client_ctx) {
  int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (listener < 0 || ::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(listener, 4096) != 0 ||
      ::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    Die("listening on 127.0.0.1");
  }
  std::vector<Connection> conns(n);
  for (Connection& c : conns) {
    c.client_fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c.client_fd < 0 ||
        ::connect(c.client_fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      Die("connect (raise the open file limit for many connections)");
    }
    c.server_fd = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    if (c.server_fd < 0) Die("accept");
    int one = 1;
    ::setsockopt(c.server_fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    SetBlocking(c.server_fd, false);
    SetBlocking(c.client_fd, false);
    c.server = SSL_new(server_ctx);
    c.client = SSL_new(client_ctx);
    SSL_set_fd(c.server, c.server_fd);
    SSL_set_fd(c.client, c.client_fd);
    SSL_set_accept_state(c.server);
    SSL_set_connect_state(c.client);
    bool server_done = false, client_done = false;
    for (int round = 0; !(server_done && client_done); ++round) {
      if (round > 10000) Die("TLS handshake did not finish");
      auto step = [](SSL* ssl, bool* done) {
        if (*done) return;
        int r = SSL_do_handshake(ssl);
        if (r == 1) {
          *done = true;
          return;
        }
        int e = SSL_get_error(ssl, r);
        if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) Die("TLS handshake");
      };
      step(c.client, &client_done);
      step(c.server, &server_done);
    }
    SetBlocking(c.server_fd, true);
  }
  ::close(listener);
  return conns;
}

// Reads connections [begin, end) until each has `total` events or the deadline passes: each
// event's delivery latency into *latencies_ns.
void ReadSlice(std::vector<Connection>& conns, size_t begin, size_t end, int64_t total,
               int event_bytes, int64_t give_up, std::vector<int64_t>* latencies_ns) {
  int ep = ::epoll_create1(EPOLL_CLOEXEC);
  for (size_t i = begin; i < end; ++i) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = i;
    ::epoll_ctl(ep, EPOLL_CTL_ADD, conns[i].client_fd, &ev);
  }
  const int64_t expected = total * static_cast<int64_t>(end - begin);
  int64_t received = 0;
  std::vector<unsigned char> buf(64 * 1024);
  std::vector<epoll_event> ready(256);
  while (received < expected && NowNs() < give_up) {
    int n = ::epoll_wait(ep, ready.data(), static_cast<int>(ready.size()), 100);
    for (int k = 0; k < n; ++k) {
      Connection& c = conns[ready[k].data.u64];
      for (;;) {
        int got = SSL_read(c.client, buf.data(), static_cast<int>(buf.size()));
        if (got <= 0) break;  // WANT_READ: drained for now
        const int64_t now = NowNs();
        const unsigned char* p = buf.data();
        const unsigned char* stop = p + got;
        while (p < stop) {
          if (c.pos < 8) {
            int take = static_cast<int>(std::min<std::ptrdiff_t>(8 - c.pos, stop - p));
            std::memcpy(c.stamp + c.pos, p, take);
            c.pos += take;
            p += take;
            if (c.pos == 8) {
              int64_t sent;
              std::memcpy(&sent, c.stamp, 8);
              latencies_ns->push_back(now - sent);
            }
          } else {
            int take = static_cast<int>(std::min<std::ptrdiff_t>(event_bytes - c.pos, stop - p));
            c.pos += take;
            p += take;
            if (c.pos == event_bytes) {
              c.pos = 0;
              ++c.events;
              ++received;
            }
          }
        }
      }
    }
  }
  ::close(ep);
}

// Every batch interval, the events that have come due (one every 1/rate s from t0, stamped with
// that time), to connections [begin, end): one SSL_write each. The number of writes.
int64_t WriteSlice(std::vector<Connection>& conns, size_t begin, size_t end, int64_t total,
                   int event_bytes, double rate, int64_t batch_ns, int64_t t0) {
  std::vector<unsigned char> batch;
  int64_t sent = 0, writes = 0;
  while (sent < total) {
    const int64_t due =
        std::min<int64_t>(total, static_cast<int64_t>((NowNs() - t0) * rate / 1e9) + 1);
    if (due > sent) {
      batch.assign(static_cast<size_t>((due - sent) * event_bytes), 'x');
      for (int64_t e = sent; e < due; ++e) {
        int64_t stamp = t0 + static_cast<int64_t>(e * 1e9 / rate);
        unsigned char* ev = batch.data() + (e - sent) * event_bytes;
        std::memcpy(ev, &stamp, 8);
        ev[event_bytes - 1] = '\n';
      }
      for (size_t i = begin; i < end; ++i) {
        if (SSL_write(conns[i].server, batch.data(), static_cast<int>(batch.size())) <= 0) {
          Die("SSL_write");
        }
        ++writes;
      }
      sent = due;
    }
    const int64_t next = t0 + ((NowNs() - t0) / batch_ns + 1) * batch_ns;
    std::this_thread::sleep_for(std::chrono::nanoseconds(std::max<int64_t>(0, next - NowNs())));
  }
  return writes;
}

// One rate: RATE events a second to every connection for SECONDS, the connections split among
// --threads writer threads and as many reader threads.
OJson Run(std::vector<Connection>& conns, const Flags& f, double rate) {
  const int64_t total = static_cast<int64_t>(rate * f.seconds);
  const int64_t batch_ns = static_cast<int64_t>(f.batch_ms * 1e6);
  for (Connection& c : conns) c.events = 0;
  const size_t threads = static_cast<size_t>(f.threads);
  auto slice = [&](size_t t) { return conns.size() * t / threads; };

  std::vector<std::vector<int64_t>> latencies(threads);
  for (size_t t = 0; t < threads; ++t) {
    latencies[t].reserve(static_cast<size_t>(total) * (slice(t + 1) - slice(t)));
  }
  const double cpu0 = SelfCpuSeconds();
  const int64_t t0 = NowNs();
  const int64_t give_up = t0 + static_cast<int64_t>((f.seconds + 60) * 1e9);
  std::vector<std::thread> readers, writers;
  std::vector<int64_t> writes(threads, 0);
  for (size_t t = 0; t < threads; ++t) {
    readers.emplace_back([&, t] {
      ReadSlice(conns, slice(t), slice(t + 1), total, f.event_bytes, give_up, &latencies[t]);
    });
  }
  for (size_t t = 0; t < threads; ++t) {
    writers.emplace_back([&, t] {
      writes[t] =
          WriteSlice(conns, slice(t), slice(t + 1), total, f.event_bytes, rate, batch_ns, t0);
    });
  }
  for (auto& w : writers) w.join();
  const double write_seconds = (NowNs() - t0) / 1e9;
  for (auto& r : readers) r.join();
  const double drained_seconds = (NowNs() - t0) / 1e9;
  const double cpu = SelfCpuSeconds() - cpu0;

  int64_t received = 0, min_events = total, write_calls = 0;
  for (const Connection& c : conns) {
    received += c.events;
    min_events = std::min(min_events, c.events);
  }
  for (int64_t w : writes) write_calls += w;
  std::vector<int64_t> all;
  for (auto& l : latencies) all.insert(all.end(), l.begin(), l.end());
  OJson j;
  j["bench"] = "tls_fanout_floor";
  j["connections"] = conns.size();
  j["threads"] = f.threads;
  j["target_write_rate"] = rate;
  j["write_rate"] = Round(static_cast<double>(total) / write_seconds, 1);
  j["batch_ms"] = f.batch_ms;
  j["event_bytes"] = f.event_bytes;
  j["events_expected"] = total * static_cast<int64_t>(conns.size());
  j["events_received"] = received;
  j["min_events_per_connection"] = min_events;
  j["ssl_writes"] = write_calls;
  j["seconds_until_drained"] = Round(drained_seconds, 3);
  j["delivery_latency_ms"] = Percentiles(all, 1e-6, 2);
  j["target_p99_ms"] = 100.0;
  j["cpu_seconds"] = Round(cpu, 2);
  j["cpu_us_per_event"] = received > 0 ? Round(cpu * 1e6 / static_cast<double>(received), 3) : 0;
  j["mb_per_second_each_way"] =
      Round(static_cast<double>(received) * f.event_bytes / drained_seconds / 1e6, 1);
  j["tls"] = std::string(SSL_get_version(conns[0].server)) + " " +
             SSL_CIPHER_get_name(SSL_get_current_cipher(conns[0].server));
  j["cpus"] = std::thread::hardware_concurrency();
  return j;
}

int Main(int argc, char** argv) {
  Flags f;
  if (!ParseNamedFlags("tls_fanout_floor", argc, argv, {{"rates", &f.rates}},
                       {{"connections", &f.connections},
                        {"event-bytes", &f.event_bytes},
                        {"threads", &f.threads}},
                       {{"seconds", &f.seconds}, {"batch-ms", &f.batch_ms}}) ||
      f.connections < 1 || f.threads < 1 || f.threads > f.connections || f.event_bytes < 9 ||
      f.seconds <= 0 || f.batch_ms <= 0) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  std::vector<double> rates;
  std::stringstream list(f.rates);
  for (std::string item; std::getline(list, item, ',');) {
    try {
      rates.push_back(std::stod(item));
    } catch (const std::exception&) {
      std::fprintf(stderr, "tls_fanout_floor: --rates: not a number: %s\n", item.c_str());
      return 2;
    }
    if (rates.back() <= 0) {
      std::fprintf(stderr, "tls_fanout_floor: --rates: must be positive: %s\n", item.c_str());
      return 2;
    }
  }
  SSL_CTX* server_ctx = NewContext(true);
  SSL_CTX* client_ctx = NewContext(false);
  std::vector<Connection> conns = Connect(f.connections, server_ctx, client_ctx);
  for (double rate : rates) Emit(Run(conns, f, rate));
  for (Connection& c : conns) {
    SSL_free(c.server);
    SSL_free(c.client);
    ::close(c.server_fd);
    ::close(c.client_fd);
  }
  SSL_CTX_free(server_ctx);
  SSL_CTX_free(client_ctx);
  return 0;
}

}  // namespace
}  // namespace fulcrum::bench

int main(int argc, char** argv) { return fulcrum::bench::Main(argc, argv); }
