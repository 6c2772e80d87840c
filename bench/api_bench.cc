// api_bench: drives a running fulcrum API server (and optionally etcd's v3 JSON gateway) and
// prints one JSON object per scenario per line on stdout. Progress goes to stderr.
//
//   api_bench --server https://127.0.0.1:PORT --ca-file ca.crt --token-file admin.token
//             --server-pid PID [--etcd http://127.0.0.1:PORT --etcd-pid PID] [--scenarios ...]
//
// Scenarios (comma-separated, default all): durable_creates, memory_per_pod, list_100k,
// list_selector, watch_fanout. memory_per_pod and the list scenarios load --pods pods first.
#include <netinet/in.h>
#include <openssl/evp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "bench/harness.h"
#include "client/http_client.h"

namespace fulcrum::bench {

using client::HttpConnection;
using client::HttpResponse;
using client::LineSplitter;
using client::ParseUrl;
using client::ResponseParser;
using client::TlsContext;
using client::Transport;
using client::Url;

namespace {

// ---------------------------------------------------------------------------------------------
// Flags

struct Flags {
  std::string server;
  std::string ca_file;
  std::string token;
  std::string token_file;
  std::string etcd;
  int server_pid = 0;
  int etcd_pid = 0;
  std::string scenarios = "all";
  std::string ns = "bench";
  int clients = 16;
  double create_seconds = 10;
  int pod_bytes = 2048;
  int pods = 100000;
  double load_timeout = 300;
  int list_runs = 5;
  int selector_requests = 50;
  // Watch fan-out runs, WATCHERSxWRITES_PER_SECOND[xSECONDS]; the first is the target's, the
  // lower rates find the highest one at which the target's latency holds.
  std::string watch_configs = "1000x1000x10,1000x500x5,1000x300x5,1000x200x5,1000x100x5,100x1000x5";
  int watch_pod_bytes = 1024;  // a typical small pod for the watch runs
  int watch_writers = 32;
  int watch_threads = 2;
  double watch_drain_seconds = 10;
  int free_ports = 0;
};

const char kUsage[] =
    "usage: api_bench --server URL [--ca-file F] [--token T | --token-file F] [--server-pid P]\n"
    "                 [--etcd URL] [--etcd-pid P] [--scenarios a,b,...] [--namespace NS]\n"
    "                 [--clients 16] [--create-seconds 10] [--pod-bytes 2048] [--pods 100000]\n"
    "                 [--load-timeout 300] [--list-runs 5] [--selector-requests 50]\n"
    "                 [--watch-configs 1000x1000x10,1000x500x5,...,100x1000x5]\n"
    "                 [--watch-writers 32] [--watch-threads 2] [--watch-drain-seconds 10]\n"
    "                 [--watch-pod-bytes 1024]\n"
    "       api_bench --free-ports N   (prints N currently free TCP ports on 127.0.0.1)\n"
    "scenarios: durable_creates, memory_per_pod, list_100k, list_selector, watch_fanout, all;\n"
    "           etcd_puts alone runs only etcd's half of durable_creates\n";

bool ParseFlags(int argc, char** argv, Flags* f) {
  std::map<std::string, std::string*> strings = {
      {"server", &f->server}, {"ca-file", &f->ca_file},
      {"token", &f->token},   {"token-file", &f->token_file},
      {"etcd", &f->etcd},     {"scenarios", &f->scenarios},
      {"namespace", &f->ns},  {"watch-configs", &f->watch_configs}};
  std::map<std::string, int*> ints = {{"server-pid", &f->server_pid},
                                      {"etcd-pid", &f->etcd_pid},
                                      {"clients", &f->clients},
                                      {"pod-bytes", &f->pod_bytes},
                                      {"pods", &f->pods},
                                      {"list-runs", &f->list_runs},
                                      {"selector-requests", &f->selector_requests},
                                      {"watch-writers", &f->watch_writers},
                                      {"watch-threads", &f->watch_threads},
                                      {"watch-pod-bytes", &f->watch_pod_bytes},
                                      {"free-ports", &f->free_ports}};
  std::map<std::string, double*> doubles = {{"create-seconds", &f->create_seconds},
                                            {"load-timeout", &f->load_timeout},
                                            {"watch-drain-seconds", &f->watch_drain_seconds}};
  return ParseNamedFlags("api_bench", argc, argv, strings, ints, doubles);
}

// ---------------------------------------------------------------------------------------------
// Small helpers

void Progress(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void Progress(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  std::fprintf(stderr, "api_bench: ");
  std::vfprintf(stderr, fmt, ap);
  std::fprintf(stderr, "\n");
  va_end(ap);
}

struct ProcStatus {
  int64_t vm_rss_kib = -1;
  int64_t rss_anon_kib = -1;
  int64_t rss_file_kib = -1;
  int64_t vm_hwm_kib = -1;
  int threads = -1;
};

ProcStatus ReadProcStatus(int pid) {
  ProcStatus st;
  if (pid <= 0) return st;
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    auto value = [&](const char* key) -> std::optional<int64_t> {
      std::size_t n = std::strlen(key);
      if (line.compare(0, n, key) != 0) return std::nullopt;
      return std::strtoll(line.c_str() + n, nullptr, 10);
    };
    if (auto v = value("VmRSS:")) st.vm_rss_kib = *v;
    if (auto v = value("RssAnon:")) st.rss_anon_kib = *v;
    if (auto v = value("RssFile:")) st.rss_file_kib = *v;
    if (auto v = value("VmHWM:")) st.vm_hwm_kib = *v;
    if (auto v = value("Threads:")) st.threads = static_cast<int>(*v);
  }
  return st;
}

// User + system CPU seconds consumed so far by process `pid`, or -1.
double ProcCpuSeconds(int pid) {
  if (pid <= 0) return -1;
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto close = text.rfind(')');
  if (close == std::string::npos) return -1;
  std::istringstream rest(text.substr(close + 2));
  std::string field;
  unsigned long long utime = 0, stime = 0;
  // Fields after "(comm)": state(3) ... utime is field 14, stime 15.
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14) utime = std::stoull(field);
    if (i == 15) stime = std::stoull(field);
  }
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// CPU used by this process and the measured server(s) across one phase.
class CpuMeter {
 public:
  CpuMeter(int server_pid) : pid_(server_pid) {
    self_ = SelfCpuSeconds();
    server_ = ProcCpuSeconds(pid_);
  }
  void Add(OJson* j, const char* server_key = "server_cpu_seconds") const {
    (*j)["client_cpu_seconds"] = Round(SelfCpuSeconds() - self_, 2);
    if (server_ >= 0) (*j)[server_key] = Round(ProcCpuSeconds(pid_) - server_, 2);
  }

 private:
  int pid_;
  double self_;
  double server_;
};

std::string Base64(std::string_view in) {
  std::string out(4 * ((in.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(in.data()),
                          static_cast<int>(in.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

std::size_t CountOccurrences(std::string_view hay, std::string_view needle) {
  std::size_t count = 0;
  const char* p = hay.data();
  const char* end = hay.data() + hay.size();
  while (p < end) {
    const void* hit = memmem(p, static_cast<std::size_t>(end - p), needle.data(), needle.size());
    if (hit == nullptr) break;
    ++count;
    p = static_cast<const char*>(hit) + needle.size();
  }
  return count;
}

std::string Snippet(const std::string& s) { return s.size() <= 300 ? s : s.substr(0, 300) + "..."; }

// ---------------------------------------------------------------------------------------------
// The pod

constexpr int kGroups = 1000;  // selector groups: 100 pods each among 100,000
constexpr char kSentAnnotation[] = "bench.fulcrum.io/sent-ns";

// A realistic pod (labels, annotations, two containers with env, resources, ports, probes,
// volumes) rendered with a unique name, a selector group and a send timestamp. Every rendering
// has the same size: the fields are fixed-width and a padding annotation tops it up to the target.
class PodTemplate {
 public:
  // `small`: one container, fewer labels; the shape of a typical small pod (the watch runs).
  PodTemplate(std::string run_id, std::string ns, std::size_t target_bytes, bool small = false)
      : run_id_(std::move(run_id)), ns_(std::move(ns)), small_(small) {
    Build("");
    std::size_t natural = Render(0, 0).size();
    if (natural < target_bytes) Build(std::string(target_bytes - natural, 'x'));
    bytes_ = Render(0, 0).size();
  }

  std::size_t bytes() const { return bytes_; }
  std::string Name(uint64_t seq) const {
    char buf[64];
    std::snprintf(buf, sizeof(buf), "bench-%s-%07llu", run_id_.c_str(),
                  static_cast<unsigned long long>(seq));
    return buf;
  }
  std::string Group(uint64_t seq) const {
    char buf[64];
    std::snprintf(buf, sizeof(buf), "%s-g%03llu", run_id_.c_str(),
                  static_cast<unsigned long long>(seq % kGroups));
    return buf;
  }
  std::string GroupName(int group) const { return Group(static_cast<uint64_t>(group)); }

  std::string Render(uint64_t seq, int64_t sent_ns) const {
    char sent[32];
    std::snprintf(sent, sizeof(sent), "%019lld", static_cast<long long>(sent_ns));
    std::string out;
    out.reserve(bytes_ + 64);
    for (std::size_t i = 0; i < pieces_.size(); ++i) {
      out.append(pieces_[i]);
      if (i < fields_.size()) {
        switch (fields_[i]) {
          case 'N':
            out.append(Name(seq));
            break;
          case 'G':
            out.append(Group(seq));
            break;
          case 'S':
            out.append(sent);
            break;
        }
      }
    }
    return out;
  }

 private:
  void Build(const std::string& padding) {
    auto env = [](const char* n, const char* v) { return OJson{{"name", n}, {"value", v}}; };
    OJson pod = {
        {"apiVersion", "v1"},
        {"kind", "Pod"},
        {"metadata",
         {{"name", "@N@"},
          {"namespace", ns_},
          {"labels",
           {{"app.kubernetes.io/name", "checkout"},
            {"app.kubernetes.io/component", "backend"},
            {"app.kubernetes.io/version", "1.24.3"},
            {"pod-template-hash", "7d9f8c6b5"},
            {"bench-group", "@G@"}}},
          {"annotations",
           {{kSentAnnotation, "@S@"},
            {"prometheus.io/scrape", "true"},
            {"prometheus.io/port", "9090"},
            {"bench.fulcrum.io/padding", padding}}}}},
        {"spec",
         {{"serviceAccountName", "checkout"},
          {"restartPolicy", "Always"},
          {"terminationGracePeriodSeconds", 30},
          {"nodeSelector", {{"kubernetes.io/os", "linux"}}},
          {"containers",
           OJson::array(
               {{{"name", "checkout"},
                 {"image", "registry.example.com/shop/checkout:1.24.3"},
                 {"imagePullPolicy", "IfNotPresent"},
                 {"args", {"--config=/etc/checkout/config.yaml", "--port=8080"}},
                 {"env", OJson::array({env("LOG_LEVEL", "info"),
                                       env("PAYMENTS_URL", "http://payments.shop.svc:8080"),
                                       env("CART_URL", "http://cart.shop.svc:8080"),
                                       env("OTEL_EXPORTER_OTLP_ENDPOINT",
                                           "http://otel-collector.observability.svc:4317")})},
                 {"ports",
                  OJson::array(
                      {{{"name", "http"}, {"containerPort", 8080}, {"protocol", "TCP"}},
                       {{"name", "metrics"}, {"containerPort", 9090}, {"protocol", "TCP"}}})},
                 {"resources",
                  {{"requests", {{"cpu", "250m"}, {"memory", "256Mi"}}},
                   {"limits", {{"cpu", "1"}, {"memory", "512Mi"}}}}},
                 {"readinessProbe",
                  {{"httpGet", {{"path", "/healthz/ready"}, {"port", 8080}}},
                   {"initialDelaySeconds", 5},
                   {"periodSeconds", 10}}},
                 {"livenessProbe",
                  {{"httpGet", {{"path", "/healthz/live"}, {"port", 8080}}},
                   {"initialDelaySeconds", 15},
                   {"periodSeconds", 20},
                   {"failureThreshold", 3}}},
                 {"volumeMounts",
                  OJson::array(
                      {{{"name", "config"}, {"mountPath", "/etc/checkout"}, {"readOnly", true}}})}},
                {{"name", "log-shipper"},
                 {"image", "registry.example.com/infra/fluent-bit:2.2.0"},
                 {"env", OJson::array({env("FLUENT_HOST", "logs.observability.svc")})},
                 {"resources",
                  {{"requests", {{"cpu", "50m"}, {"memory", "64Mi"}}},
                   {"limits", {{"cpu", "200m"}, {"memory", "128Mi"}}}}}}})},
          {"volumes",
           OJson::array({{{"name", "config"}, {"configMap", {{"name", "checkout-config"}}}}})}}}};
    if (small_) {
      pod = {{"apiVersion", "v1"},
             {"kind", "Pod"},
             {"metadata",
              {{"name", "@N@"},
               {"namespace", ns_},
               {"labels", {{"app.kubernetes.io/name", "checkout"}, {"bench-group", "@G@"}}},
               {"annotations", {{kSentAnnotation, "@S@"}, {"bench.fulcrum.io/padding", padding}}}}},
             {"spec",
              {{"containers",
                OJson::array(
                    {{{"name", "checkout"},
                      {"image", "registry.example.com/shop/checkout:1.24.3"},
                      {"env", OJson::array({env("LOG_LEVEL", "info")})},
                      {"ports", OJson::array({{{"name", "http"}, {"containerPort", 8080}}})},
                      {"resources",
                       {{"requests", {{"cpu", "250m"}, {"memory", "256Mi"}}},
                        {"limits", {{"cpu", "1"}, {"memory", "512Mi"}}}}}}})}}}};
    }
    std::string text = pod.dump();
    pieces_.clear();
    fields_.clear();
    std::size_t pos = 0;
    for (;;) {
      std::size_t best = std::string::npos;
      char field = 0;
      for (char f : {'N', 'G', 'S'}) {
        std::string token = std::string("@") + f + "@";
        std::size_t at = text.find(token, pos);
        if (at < best) {
          best = at;
          field = f;
        }
      }
      if (best == std::string::npos) break;
      pieces_.push_back(text.substr(pos, best - pos));
      fields_.push_back(field);
      pos = best + 3;
    }
    pieces_.push_back(text.substr(pos));
  }

  std::string run_id_;
  std::string ns_;
  bool small_ = false;
  std::vector<std::string> pieces_;
  std::vector<char> fields_;
  std::size_t bytes_ = 0;
};

// ---------------------------------------------------------------------------------------------
// The harness

class Bench {
 public:
  Bench(Flags flags, Url server, std::shared_ptr<TlsContext> tls, std::string run_id)
      : flags_(std::move(flags)),
        server_(std::move(server)),
        tls_(std::move(tls)),
        pod_(run_id, flags_.ns, static_cast<std::size_t>(flags_.pod_bytes)),
        watch_pod_(run_id, flags_.ns, static_cast<std::size_t>(flags_.watch_pod_bytes), true) {}

  HttpConnection ServerConnection() const { return HttpConnection(server_, tls_, flags_.token); }
  const PodTemplate& pod() const { return pod_; }
  const Flags& flags() const { return flags_; }
  std::string PodsPath() const { return "/api/v1/namespaces/" + flags_.ns + "/pods"; }

  // Makes sure the namespace exists and every code path of a create has run once.
  base::Status Prepare() {
    HttpConnection c = ServerConnection();
    HttpResponse r;
    // A server that has just written its kubeconfig may still be starting: retry 5xx a while.
    auto give_up = Clock::now() + std::chrono::seconds(60);
    for (;;) {
      base::Status s = c.Do("GET", "/api/v1/namespaces/" + flags_.ns, "", &r);
      if (s.ok() && r.status < 500) break;
      if (Clock::now() > give_up) {
        return s.ok() ? base::Internal("GET namespace: HTTP " + std::to_string(r.status) + " " +
                                       Snippet(r.body))
                      : s;
      }
      Progress("server not ready (%s); retrying",
               s.ok() ? ("HTTP " + std::to_string(r.status) + " " + Snippet(r.body)).c_str()
                      : s.ToString().c_str());
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
    if (r.status == 404) {
      std::string body =
          R"({"apiVersion":"v1","kind":"Namespace","metadata":{"name":")" + flags_.ns + R"("}})";
      RETURN_IF_ERROR(c.Do("POST", "/api/v1/namespaces", body, &r));
      if (r.status != 201 && r.status != 409) {
        return base::Internal("creating namespace: HTTP " + std::to_string(r.status) + " " +
                              Snippet(r.body));
      }
    } else if (r.status != 200) {
      return base::Internal("GET namespace: HTTP " + std::to_string(r.status) + " " +
                            Snippet(r.body));
    }
    std::string warm = pod_.Render(9999999, NowNs());
    std::string name = pod_.Name(9999999);
    RETURN_IF_ERROR(c.Do("POST", PodsPath(), warm, &r));
    if (r.status != 201) {
      return base::Internal("warm-up create: HTTP " + std::to_string(r.status) + " " +
                            Snippet(r.body));
    }
    RETURN_IF_ERROR(c.Do("GET", PodsPath() + "/" + name, "", &r));
    stored_pod_bytes_ = r.body.size();
    RETURN_IF_ERROR(c.Do("DELETE", PodsPath() + "/" + name, "", &r));
    RETURN_IF_ERROR(c.Do("GET", "/api/v1/pods?labelSelector=bench-none%3Dx", "", &r));
    return base::Status::Ok();
  }

  // Runs `clients` threads, each with its own connection, issuing `op` until the deadline passes
  // or `max_ops` operations have succeeded. A client gives up after 50 consecutive failures.
  struct ClosedLoopResult {
    uint64_t ok = 0;
    uint64_t failed = 0;
    double seconds = 0;
    std::vector<double> latencies_ms;
    std::map<int, uint64_t> statuses;
    std::string first_error;
  };
  using Op = std::function<base::Status(HttpConnection&, int* status, std::string* body)>;
  using ConnectionFactory = std::function<HttpConnection()>;

  static ClosedLoopResult ClosedLoop(int clients, const ConnectionFactory& connect, double seconds,
                                     uint64_t max_ops, const Op& op, int success_status) {
    ClosedLoopResult result;
    std::mutex mu;
    std::atomic<uint64_t> claimed{0};
    std::atomic<uint64_t> done_ok{0};
    auto start = Clock::now();
    auto deadline =
        start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
    std::vector<std::thread> threads;
    for (int i = 0; i < clients; ++i) {
      threads.emplace_back([&] {
        HttpConnection c = connect();
        std::vector<double> lat;
        lat.reserve(1 << 16);
        std::map<int, uint64_t> statuses;
        uint64_t ok = 0, failed = 0;
        int consecutive = 0;
        std::string first_error;
        while (Clock::now() < deadline) {
          if (claimed.fetch_add(1) >= max_ops) break;
          int status = 0;
          std::string body;
          auto t0 = Clock::now();
          base::Status s = op(c, &status, &body);
          auto t1 = Clock::now();
          ++statuses[status];
          if (s.ok() && status == success_status) {
            ++ok;
            consecutive = 0;
            lat.push_back(Seconds(t1 - t0) * 1e3);
            done_ok.fetch_add(1, std::memory_order_relaxed);
          } else {
            ++failed;
            claimed.fetch_sub(1);  // retry the slot
            if (first_error.empty()) {
              first_error =
                  s.ok() ? "HTTP " + std::to_string(status) + " " + Snippet(body) : s.ToString();
            }
            if (++consecutive >= 50) break;
          }
        }
        std::lock_guard lock(mu);
        result.ok += ok;
        result.failed += failed;
        result.latencies_ms.insert(result.latencies_ms.end(), lat.begin(), lat.end());
        for (auto [k, v] : statuses) result.statuses[k] += v;
        if (result.first_error.empty()) result.first_error = first_error;
      });
    }
    for (auto& t : threads) t.join();
    result.seconds = Seconds(Clock::now() - start);
    return result;
  }

  static OJson Describe(ClosedLoopResult& r) {
    OJson j;
    j["ops"] = r.ok;
    j["errors"] = r.failed;
    j["seconds"] = Round(r.seconds, 3);
    j["ops_per_second"] = Round(static_cast<double>(r.ok) / r.seconds, 1);
    j["latency_ms"] = Percentiles(r.latencies_ms, 1.0, 2);
    if (r.failed > 0) {
      OJson statuses = OJson::object();
      for (auto [k, v] : r.statuses) statuses[std::to_string(k)] = v;
      j["statuses"] = statuses;
      j["first_error"] = r.first_error;
    }
    return j;
  }

  // Creates pods through the API with 16 (--clients) concurrent clients.
  ClosedLoopResult CreatePods(double seconds, uint64_t max_ops) {
    return ClosedLoop(
        flags_.clients, [this] { return ServerConnection(); }, seconds, max_ops,
        [this](HttpConnection& c, int* status, std::string* body) {
          uint64_t seq = next_seq_.fetch_add(1);
          HttpResponse r;
          base::Status s = c.Do("POST", PodsPath(), pod_.Render(seq, NowNs()), &r);
          *status = r.status;
          if (s.ok() && r.status == 201) {
            stored_pods_.fetch_add(1);
          } else {
            *body = std::move(r.body);
          }
          return s;
        },
        201);
  }

  void DurableCreates() {
    Progress("durable_creates: fulcrum, %d clients, %.0f s", flags_.clients, flags_.create_seconds);
    FulcrumCreates();
    if (!flags_.etcd.empty()) EtcdPuts();
  }

  void FulcrumCreates() {
    CpuMeter cpu(flags_.server_pid);
    auto r = CreatePods(flags_.create_seconds, UINT64_MAX);
    OJson j = {{"bench", "durable_creates"},
               {"system", "fulcrum"},
               {"clients", flags_.clients},
               {"value_bytes", pod_.bytes()}};
    j.update(Describe(r));
    cpu.Add(&j);
    Emit(j);
  }

  // The anchor: etcd puts of the same pod JSON through its v3 JSON gateway, same client code.
  void EtcdPuts() {
    auto etcd_url = ParseUrl(flags_.etcd);
    if (!etcd_url.ok()) {
      Progress("--etcd: %s", etcd_url.status().ToString().c_str());
      return;
    }
    Progress("durable_creates: etcd, %d clients, %.0f s", flags_.clients, flags_.create_seconds);
    std::atomic<uint64_t> etcd_seq{0};
    CpuMeter etcd_cpu(flags_.etcd_pid);
    Url url = *etcd_url;
    auto e = ClosedLoop(
        flags_.clients, [url] { return HttpConnection(url, nullptr, ""); }, flags_.create_seconds,
        UINT64_MAX,
        [&](HttpConnection& c, int* status, std::string* body) {
          uint64_t seq = etcd_seq.fetch_add(1);
          std::string key = "/registry/pods/" + flags_.ns + "/" + pod_.Name(seq);
          std::string put = R"({"key":")" + Base64(key) + R"(","value":")" +
                            Base64(pod_.Render(seq, NowNs())) + R"("})";
          HttpResponse r;
          base::Status s = c.Do("POST", "/v3/kv/put", put, &r);
          *status = r.status;
          // A put's answer carries the new revision; without it the write did not happen.
          if (s.ok() && r.status == 200 && r.body.find("\"revision\"") == std::string::npos) {
            *status = 0;
          }
          if (*status != 200) *body = std::move(r.body);
          return s;
        },
        200);
    OJson k = {{"bench", "durable_creates"},
               {"system", "etcd"},
               {"clients", flags_.clients},
               {"value_bytes", pod_.bytes()}};
    k.update(Describe(e));
    etcd_cpu.Add(&k);
    Emit(k);
  }

  // Loads pods until --pods of this run's pods are stored, then reports resident memory.
  void LoadAndMeasureMemory(bool report_memory, const ProcStatus& before) {
    uint64_t target = static_cast<uint64_t>(flags_.pods);
    uint64_t have = stored_pods_.load();
    if (have < target) {
      Progress("load: creating %llu pods (%llu stored)",
               static_cast<unsigned long long>(target - have),
               static_cast<unsigned long long>(have));
      CpuMeter cpu(flags_.server_pid);
      auto r = CreatePods(flags_.load_timeout, target - have);
      OJson j = {{"bench", "load"},
                 {"system", "fulcrum"},
                 {"clients", flags_.clients},
                 {"value_bytes", pod_.bytes()},
                 {"pods_stored", stored_pods_.load()}};
      j.update(Describe(r));
      cpu.Add(&j);
      Emit(j);
    }
    if (!report_memory) return;
    std::this_thread::sleep_for(std::chrono::seconds(2));
    ProcStatus after = ReadProcStatus(flags_.server_pid);
    uint64_t pods = stored_pods_.load() - pods_at_baseline_;
    double per_pod = pods == 0 ? 0
                               : static_cast<double>(after.vm_rss_kib - before.vm_rss_kib) *
                                     1024.0 / static_cast<double>(pods);
    double anon_per_pod = pods == 0
                              ? 0
                              : static_cast<double>(after.rss_anon_kib - before.rss_anon_kib) *
                                    1024.0 / static_cast<double>(pods);
    OJson j = {
        {"bench", "memory_per_pod"},
        {"system", "fulcrum"},
        {"pods", pods},
        {"pod_json_bytes", pod_.bytes()},
        {"stored_pod_json_bytes", stored_pod_bytes_},
        {"rss_before_kib", before.vm_rss_kib},
        {"rss_after_kib", after.vm_rss_kib},
        {"rss_anon_before_kib", before.rss_anon_kib},
        {"rss_anon_after_kib", after.rss_anon_kib},
        {"rss_file_after_kib", after.rss_file_kib},
        {"vm_hwm_kib", after.vm_hwm_kib},
        {"bytes_per_pod", Round(per_pod, 1)},
        {"anon_bytes_per_pod", Round(anon_per_pod, 1)},
        {"ratio_to_pod_json", Round(per_pod / static_cast<double>(pod_.bytes()), 2)},
        {"ratio_to_stored_json",
         stored_pod_bytes_ == 0 ? 0.0 : Round(per_pod / static_cast<double>(stored_pod_bytes_), 2)},
        {"target_ratio", 3.0}};
    Emit(j);
  }

  void MarkMemoryBaseline() { pods_at_baseline_ = stored_pods_.load(); }

  void List100k() {
    Progress("list_100k: GET /api/v1/pods, up to %d runs", flags_.list_runs);
    HttpConnection c = ServerConnection();
    std::vector<double> runs;
    std::size_t bytes = 0, items = 0;
    int status = 0;
    std::string error;
    CpuMeter cpu(flags_.server_pid);
    auto phase_start = Clock::now();
    for (int i = 0; i < flags_.list_runs; ++i) {
      HttpResponse r;
      auto t0 = Clock::now();
      base::Status s = c.Do("GET", "/api/v1/pods", "", &r);
      double secs = Seconds(Clock::now() - t0);
      status = r.status;
      if (!s.ok() || r.status != 200) {
        error = s.ok() ? "HTTP " + std::to_string(r.status) + " " + Snippet(r.body) : s.ToString();
        break;
      }
      runs.push_back(secs);
      bytes = r.body.size();
      items = CountOccurrences(r.body, "\"uid\":");
      Progress("list_100k: run %d: %.3f s, %zu bytes, %zu items", i + 1, secs, bytes, items);
      if (Seconds(Clock::now() - phase_start) > 60) break;  // keep the run bounded
    }
    std::vector<double> sorted = runs;
    std::sort(sorted.begin(), sorted.end());
    OJson j = {{"bench", "list_100k"}, {"system", "fulcrum"}, {"items", items},
               {"body_bytes", bytes},  {"runs", runs.size()}, {"status", status}};
    OJson secs = OJson::array();
    for (double r : runs) secs.push_back(Round(r, 3));
    j["seconds_each"] = secs;
    if (!sorted.empty()) {
      j["seconds_min"] = Round(sorted.front(), 3);
      j["seconds_median"] = Round(sorted[(sorted.size() - 1) / 2], 3);
      j["seconds_max"] = Round(sorted.back(), 3);
      j["mb_per_second"] =
          Round(static_cast<double>(bytes) / 1e6 / sorted[(sorted.size() - 1) / 2], 1);
    }
    j["target_seconds"] = 1.0;
    if (!error.empty()) j["error"] = error;
    cpu.Add(&j);
    Emit(j);
  }

  void ListSelector() {
    Progress("list_selector: %d label-selected lists", flags_.selector_requests);
    HttpConnection c = ServerConnection();
    std::vector<double> lat_ms;
    std::size_t items_min = SIZE_MAX, items_max = 0;
    std::string error;
    for (int i = 0; i < flags_.selector_requests; ++i) {
      std::string target =
          "/api/v1/pods?labelSelector=bench-group%3D" + pod_.GroupName(i % kGroups);
      HttpResponse r;
      auto t0 = Clock::now();
      base::Status s = c.Do("GET", target, "", &r);
      double ms = Seconds(Clock::now() - t0) * 1e3;
      if (!s.ok() || r.status != 200) {
        error = s.ok() ? "HTTP " + std::to_string(r.status) + " " + Snippet(r.body) : s.ToString();
        break;
      }
      lat_ms.push_back(ms);
      std::size_t items = 0;
      auto parsed = nlohmann::json::parse(r.body, nullptr, false);
      if (!parsed.is_discarded() && parsed.contains("items") && parsed["items"].is_array()) {
        items = parsed["items"].size();
      }
      items_min = std::min(items_min, items);
      items_max = std::max(items_max, items);
    }
    OJson j = {{"bench", "list_selector"},
               {"system", "fulcrum"},
               {"requests", lat_ms.size()},
               {"pods_stored", stored_pods_.load()},
               {"items_min", items_min == SIZE_MAX ? 0 : items_min},
               {"items_max", items_max}};
    j["latency_ms"] = Percentiles(lat_ms, 1.0, 3);
    j["target_ms"] = 5.0;
    if (!error.empty()) j["error"] = error;
    Emit(j);
  }

  // What one watch fan-out run achieved.
  struct WatchOutcome {
    int watchers = 0;
    double target_rate = 0;
    double write_rate = 0;
    double p99_ms = 0;
    bool met = false;  // the planned rate held, every event arrived, p99 within the target
  };
  // One watch fan-out run: `watchers` streams, creates paced at `rate` per second for `seconds`.
  WatchOutcome WatchFanout(int watchers, double rate, double seconds);

  std::atomic<uint64_t> next_seq_{0};
  std::atomic<uint64_t> stored_pods_{0};

 private:
  Flags flags_;
  Url server_;
  std::shared_ptr<TlsContext> tls_;
  PodTemplate pod_;
  PodTemplate watch_pod_;
  std::size_t stored_pod_bytes_ = 0;
  uint64_t pods_at_baseline_ = 0;
};

// ---------------------------------------------------------------------------------------------
// Watch fan-out: many watch streams multiplexed over a few epoll threads.

struct WatchLoopStats {
  std::vector<uint32_t> latency_us;
  uint64_t line_bytes = 0;  // of the events counted in latency_us
  std::atomic<uint64_t> events{0};  // read by the main thread while running
  uint64_t other_types = 0;
  uint64_t unparsed = 0;
  std::string first_other;
};

struct Watcher {
  std::unique_ptr<Transport> transport;
  std::unique_ptr<ResponseParser> parser;
  LineSplitter lines;
  WatchLoopStats* stats = nullptr;
  int64_t phase_start_ns = 0;
  uint64_t events = 0;
  bool established = false;
  bool closed = false;
  int status = 0;
};

// Reads the send timestamp from a watch event line; records the delivery latency.
void OnWatchLine(Watcher* w, std::string_view line) {
  if (line.empty()) return;
  static constexpr std::string_view kAdded = "\"type\":\"ADDED\"";
  bool added = line.substr(0, 16).find(kAdded) != std::string_view::npos;
  if (!added) {
    auto at = line.rfind("\"type\":\"");
    added = at != std::string_view::npos && line.substr(at, kAdded.size()) == kAdded;
  }
  if (!added) {
    ++w->stats->other_types;
    if (w->stats->first_other.empty()) w->stats->first_other = std::string(line.substr(0, 300));
    return;
  }
  static const std::string kKey = std::string("\"") + kSentAnnotation + "\":\"";
  const void* hit = memmem(line.data(), line.size(), kKey.data(), kKey.size());
  if (hit == nullptr) {
    ++w->stats->unparsed;
    return;
  }
  const char* p = static_cast<const char*>(hit) + kKey.size();
  const char* end = line.data() + line.size();
  int64_t sent = 0;
  while (p < end && *p >= '0' && *p <= '9') sent = sent * 10 + (*p++ - '0');
  if (sent < w->phase_start_ns) return;  // not written by this phase
  int64_t lat_ns = NowNs() - sent;
  w->stats->latency_us.push_back(static_cast<uint32_t>(std::max<int64_t>(0, lat_ns / 1000)));
  w->stats->line_bytes += line.size() + 1;
  ++w->events;
  w->stats->events.fetch_add(1, std::memory_order_relaxed);
}

Bench::WatchOutcome Bench::WatchFanout(int watchers_wanted, double rate, double seconds) {
  const int n = watchers_wanted;
  WatchOutcome outcome;
  outcome.watchers = n;
  outcome.target_rate = rate;
  Progress("watch_fanout: %d watchers, %.0f writes/s for %.0f s", n, rate, seconds);
  // The current resourceVersion, from a list that matches nothing.
  std::string rv;
  {
    HttpConnection c = ServerConnection();
    HttpResponse r;
    base::Status s = c.Do("GET", PodsPath() + "?labelSelector=bench-none%3Dx", "", &r);
    auto j = nlohmann::json::parse(r.body, nullptr, false);
    if (!s.ok() || r.status != 200 || j.is_discarded()) {
      Emit({{"bench", "watch_fanout"},
            {"system", "fulcrum"},
            {"error", s.ok() ? "HTTP " + std::to_string(r.status) : s.ToString()}});
      return outcome;
    }
    rv = j.value("/metadata/resourceVersion"_json_pointer, std::string());
  }
  std::string target = PodsPath() + "?watch=true";
  if (!rv.empty()) target += "&resourceVersion=" + rv;

  int64_t phase_start_ns = NowNs();
  const int loops = std::max(1, flags_.watch_threads);
  std::vector<std::unique_ptr<WatchLoopStats>> stats;
  std::vector<int> epolls;
  for (int i = 0; i < loops; ++i) {
    stats.push_back(std::make_unique<WatchLoopStats>());
    stats.back()->latency_us.reserve(
        static_cast<std::size_t>(rate * seconds * n / loops * 1.05 + 1024));
    epolls.push_back(epoll_create1(EPOLL_CLOEXEC));
  }
  std::vector<std::unique_ptr<Watcher>> watchers(static_cast<std::size_t>(n));
  std::atomic<int> established{0};
  std::atomic<int> failed{0};
  std::atomic<bool> stop{false};
  std::mutex error_mu;
  std::string first_error;

  auto loop = [&](int index) {
    std::vector<epoll_event> events(256);
    std::string buf(256 * 1024, '\0');
    while (!stop.load(std::memory_order_relaxed)) {
      int k = epoll_wait(epolls[index], events.data(), static_cast<int>(events.size()), 100);
      for (int e = 0; e < k; ++e) {
        auto* w = static_cast<Watcher*>(events[e].data.ptr);
        if (w->closed) continue;
        // One read per readiness report (level-triggered epoll reports again while bytes wait
        // in the socket), more only while TLS holds bytes already taken from the socket.
        for (bool first = true; first || w->transport->HasPending(); first = false) {
          long got = w->transport->Read(buf.data(), buf.size());
          if (got == Transport::kWouldBlock) break;
          if (got <= 0) {
            w->closed = true;
            epoll_ctl(epolls[index], EPOLL_CTL_DEL, w->transport->fd(), nullptr);
            if (!w->established) failed.fetch_add(1);
            break;
          }
          auto used = w->parser->Feed(std::string_view(buf.data(), static_cast<std::size_t>(got)));
          if (!used.ok()) {
            std::lock_guard lock(error_mu);
            if (first_error.empty()) first_error = used.status().ToString();
          }
          if (!w->established && w->parser->headers_done()) {
            w->established = true;
            w->status = w->parser->response().status;
            if (w->status == 200) {
              established.fetch_add(1);
            } else {
              failed.fetch_add(1);
            }
          }
          if (!used.ok() || w->parser->complete()) {
            w->closed = true;
            epoll_ctl(epolls[index], EPOLL_CTL_DEL, w->transport->fd(), nullptr);
            break;
          }
        }
      }
    }
  };
  std::vector<std::thread> loop_threads;
  for (int i = 0; i < loops; ++i) loop_threads.emplace_back(loop, i);

  // Connect with a few threads: each TLS handshake blocks on the server for a while.
  auto setup_start = Clock::now();
  std::atomic<int> next_watcher{0};
  std::vector<std::thread> connectors;
  for (int t = 0; t < 8; ++t) {
    connectors.emplace_back([&] {
      HttpConnection c = ServerConnection();
      for (;;) {
        int i = next_watcher.fetch_add(1);
        if (i >= n) return;
        auto w = std::make_unique<Watcher>();
        int loop_index = i % loops;
        w->stats = stats[static_cast<std::size_t>(loop_index)].get();
        w->phase_start_ns = phase_start_ns;
        Watcher* raw = w.get();
        w->parser = std::make_unique<ResponseParser>([raw](std::string_view bytes) {
          raw->lines.Feed(bytes, [raw](std::string_view line) { OnWatchLine(raw, line); });
        });
        auto t = c.StartStream(target);
        if (!t.ok()) {
          failed.fetch_add(1);
          std::lock_guard lock(error_mu);
          if (first_error.empty()) first_error = t.status().ToString();
          watchers[static_cast<std::size_t>(i)] = std::move(w);
          continue;
        }
        w->transport = std::move(t).value();
        w->transport->SetNonBlocking();
        watchers[static_cast<std::size_t>(i)] = std::move(w);
        epoll_event ev{};
        ev.events = EPOLLIN | EPOLLRDHUP;
        ev.data.ptr = raw;
        epoll_ctl(epolls[static_cast<std::size_t>(loop_index)], EPOLL_CTL_ADD, raw->transport->fd(),
                  &ev);
      }
    });
  }
  for (auto& t : connectors) t.join();
  auto wait_until = Clock::now() + std::chrono::seconds(30);
  while (established.load() + failed.load() < n && Clock::now() < wait_until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  double setup_seconds = Seconds(Clock::now() - setup_start);
  int watching = established.load();
  ProcStatus server_during = ReadProcStatus(flags_.server_pid);
  Progress("watch_fanout: %d watchers established (%d failed) in %.2f s; server threads %d",
           watching, failed.load(), setup_seconds, server_during.threads);

  // Paced writer: write i goes out at start + i / rate (or as soon as a writer is free).
  uint64_t total_writes = static_cast<uint64_t>(rate * seconds);
  std::atomic<uint64_t> next_write{0};
  std::atomic<uint64_t> writes_ok{0};
  std::atomic<uint64_t> writes_failed{0};
  std::atomic<uint64_t> writes_late{0};  // sent more than 10 ms after their slot
  std::mutex lat_mu;
  std::vector<double> write_lat_ms;
  CpuMeter cpu(flags_.server_pid);
  auto write_start = Clock::now() + std::chrono::milliseconds(200);
  auto interval = std::chrono::duration<double>(1.0 / rate);
  // Bounded: a server that cannot keep up gets twice the planned time, then the writers stop.
  auto write_deadline = write_start + std::chrono::duration_cast<Clock::duration>(
                                          std::chrono::duration<double>(2 * seconds));
  std::vector<std::thread> writers;
  for (int t = 0; t < flags_.watch_writers; ++t) {
    writers.emplace_back([&] {
      HttpConnection c = ServerConnection();
      HttpResponse r;
      (void)c.Do("GET", "/api/v1/namespaces/" + flags_.ns, "", &r);  // connect ahead of time
      std::vector<double> lat;
      for (;;) {
        uint64_t i = next_write.fetch_add(1);
        if (i >= total_writes) break;
        auto slot = write_start +
                    std::chrono::duration_cast<Clock::duration>(interval * static_cast<double>(i));
        std::this_thread::sleep_until(slot);
        if (Clock::now() > write_deadline) break;
        if (Clock::now() - slot > std::chrono::milliseconds(10)) writes_late.fetch_add(1);
        uint64_t seq = next_seq_.fetch_add(1);
        auto t0 = Clock::now();
        base::Status s = c.Do("POST", PodsPath(), watch_pod_.Render(seq, NowNs()), &r);
        if (s.ok() && r.status == 201) {
          writes_ok.fetch_add(1);
          stored_pods_.fetch_add(1);
          lat.push_back(Seconds(Clock::now() - t0) * 1e3);
        } else {
          writes_failed.fetch_add(1);
        }
      }
      std::lock_guard lock(lat_mu);
      write_lat_ms.insert(write_lat_ms.end(), lat.begin(), lat.end());
    });
  }
  for (auto& t : writers) t.join();
  double write_seconds = Seconds(Clock::now() - write_start);
  Progress("watch_fanout: %llu writes in %.2f s; draining",
           static_cast<unsigned long long>(writes_ok.load()), write_seconds);

  uint64_t expected = writes_ok.load() * static_cast<uint64_t>(watching);
  auto received = [&] {
    uint64_t sum = 0;
    for (auto& s : stats) sum += s->events.load(std::memory_order_relaxed);
    return sum;
  };
  auto drain_until = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                        std::chrono::duration<double>(flags_.watch_drain_seconds));
  while (received() < expected && Clock::now() < drain_until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  double total_seconds = Seconds(Clock::now() - write_start);
  OJson j = {{"bench", "watch_fanout"}, {"system", "fulcrum"}};
  cpu.Add(&j);
  stop = true;
  for (auto& t : loop_threads) t.join();

  std::vector<uint32_t> all;
  uint64_t other = 0, unparsed = 0, line_bytes = 0;
  std::string first_other;
  for (auto& s : stats) {
    all.insert(all.end(), s->latency_us.begin(), s->latency_us.end());
    line_bytes += s->line_bytes;
    other += s->other_types;
    unparsed += s->unparsed;
    if (first_other.empty()) first_other = s->first_other;
  }
  int complete = 0, closed_early = 0;
  uint64_t min_events = UINT64_MAX;
  for (auto& w : watchers) {
    if (!w || !w->established || w->status != 200) continue;
    if (w->events >= writes_ok.load()) ++complete;
    if (w->closed) ++closed_early;
    min_events = std::min(min_events, w->events);
  }
  uint64_t got = all.size();
  j["watchers"] = n;
  j["watchers_established"] = watching;
  j["watchers_failed"] = failed.load();
  j["watchers_complete"] = complete;
  j["watchers_closed_by_server"] = closed_early;
  j["setup_seconds"] = Round(setup_seconds, 2);
  j["target_write_rate"] = rate;
  j["planned_seconds"] = seconds;
  j["writes_planned"] = total_writes;
  j["writes"] = writes_ok.load();
  j["write_errors"] = writes_failed.load();
  j["writes_late_10ms"] = writes_late.load();
  j["write_seconds"] = Round(write_seconds, 3);
  j["write_rate"] = Round(static_cast<double>(writes_ok.load()) / write_seconds, 1);
  j["write_latency_ms"] = Percentiles(write_lat_ms, 1.0, 2);
  j["events_expected"] = expected;
  j["events_received"] = got;
  j["events_missing"] = expected > got ? expected - got : 0;
  j["min_events_per_watcher"] = min_events == UINT64_MAX ? 0 : min_events;
  j["seconds_until_drained"] = Round(total_seconds, 3);
  j["delivery_latency_ms"] = Percentiles(all, 1e-3, 2);
  j["target_p99_ms"] = 100.0;
  j["pod_json_bytes"] = watch_pod_.bytes();
  j["event_bytes_mean"] = got == 0 ? 0 : line_bytes / got;
  j["delivered_mb_per_second"] = Round(static_cast<double>(line_bytes) / total_seconds / 1e6, 1);
  for (auto& w : watchers) {
    if (w && w->transport) {
      j["tls"] = w->transport->Cipher();
      break;
    }
  }
  j["server_threads"] = server_during.threads;
  if (other > 0) {
    j["other_events"] = other;
    j["first_other_event"] = first_other;
  }
  if (unparsed > 0) j["events_without_timestamp"] = unparsed;
  if (!first_error.empty()) j["first_error"] = first_error;
  Emit(j);
  for (auto& w : watchers) {
    if (w && w->transport) w->transport->Close();
  }
  for (int e : epolls) ::close(e);
  std::sort(all.begin(), all.end());
  outcome.write_rate = static_cast<double>(writes_ok.load()) / write_seconds;
  outcome.p99_ms = all.empty() ? 0 : all[std::min(all.size() - 1, all.size() * 99 / 100)] / 1e3;
  outcome.met = watching == n && closed_early == 0 && expected > 0 && got >= expected &&
                writes_ok.load() >= total_writes * 95 / 100 &&
                outcome.write_rate >= 0.95 * rate && outcome.p99_ms <= 100.0;
  return outcome;
}

int PrintFreePorts(int count) {
  std::vector<int> fds;
  for (int i = 0; i < count; ++i) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) return 1;
    socklen_t len = sizeof(addr);
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    std::printf("%d\n", ntohs(addr.sin_port));
    fds.push_back(fd);
  }
  for (int fd : fds) ::close(fd);
  return 0;
}

std::string RunId() {
  std::random_device rd;
  static const char kAlphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
  std::string id;
  for (int i = 0; i < 5; ++i) id.push_back(kAlphabet[rd() % 36]);
  return id;
}

int Main(int argc, char** argv) {
  Flags flags;
  if (!ParseFlags(argc, argv, &flags)) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  if (flags.free_ports > 0) return PrintFreePorts(flags.free_ports);
  std::signal(SIGPIPE, SIG_IGN);
  rlimit nofile{};
  if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
    nofile.rlim_cur = nofile.rlim_max;
    setrlimit(RLIMIT_NOFILE, &nofile);
  }
  if (flags.server.empty()) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  if (flags.token.empty() && !flags.token_file.empty()) {
    std::ifstream in(flags.token_file);
    std::getline(in, flags.token);
    while (!flags.token.empty() && std::isspace(static_cast<unsigned char>(flags.token.back()))) {
      flags.token.pop_back();
    }
  }
  auto url = ParseUrl(flags.server);
  if (!url.ok()) {
    std::fprintf(stderr, "api_bench: --server: %s\n", url.status().ToString().c_str());
    return 2;
  }
  std::shared_ptr<TlsContext> tls;
  if (url->tls) {
    if (flags.ca_file.empty()) {
      std::fprintf(stderr, "api_bench: an https server needs --ca-file\n");
      return 2;
    }
    auto ctx = TlsContext::Create(flags.ca_file);
    if (!ctx.ok()) {
      std::fprintf(stderr, "api_bench: %s\n", ctx.status().ToString().c_str());
      return 2;
    }
    tls = *ctx;
  }
  std::set<std::string> want;
  {
    std::stringstream ss(flags.scenarios);
    std::string s;
    while (std::getline(ss, s, ',')) want.insert(s);
  }
  auto wants = [&](const char* s) { return want.count("all") > 0 || want.count(s) > 0; };

  struct WatchConfig {
    int watchers = 0;
    double rate = 0;
    double seconds = 10;
  };
  std::vector<WatchConfig> watch_configs;
  {
    std::stringstream ss(flags.watch_configs);
    std::string entry;
    while (std::getline(ss, entry, ',')) {
      WatchConfig c;
      if (std::sscanf(entry.c_str(), "%dx%lfx%lf", &c.watchers, &c.rate, &c.seconds) < 2 ||
          c.watchers <= 0 || c.rate <= 0 || c.seconds <= 0) {
        std::fprintf(stderr, "api_bench: --watch-configs: bad entry %s\n", entry.c_str());
        return 2;
      }
      watch_configs.push_back(c);
    }
  }

  Bench bench(flags, *url, tls, RunId());
  Progress("pod JSON is %zu bytes, e.g. %s", bench.pod().bytes(),
           Snippet(bench.pod().Render(0, 0)).c_str());
  if (want.size() == 1 && want.count("etcd_puts") == 1) {  // the anchor alone
    bench.EtcdPuts();
    return 0;
  }
  base::Status prepared = bench.Prepare();
  if (!prepared.ok()) {
    std::fprintf(stderr, "api_bench: preparing the server: %s\n", prepared.ToString().c_str());
    return 1;
  }
  bool memory = wants("memory_per_pod");
  bool lists = wants("list_100k") || wants("list_selector");
  ProcStatus before;
  if (memory) {
    std::this_thread::sleep_for(std::chrono::seconds(1));
    before = ReadProcStatus(flags.server_pid);
    bench.MarkMemoryBaseline();
    if (before.vm_rss_kib < 0) {
      Progress("memory_per_pod needs --server-pid; skipping it");
      memory = false;
    }
  }
  if (wants("durable_creates")) bench.DurableCreates();
  if (memory || lists) bench.LoadAndMeasureMemory(memory, before);
  if (wants("list_100k")) bench.List100k();
  if (wants("list_selector")) bench.ListSelector();
  if (wants("watch_fanout")) {
    std::map<int, std::vector<Bench::WatchOutcome>> outcomes;  // by watcher count
    for (std::size_t i = 0; i < watch_configs.size(); ++i) {
      // Let the previous run's server threads notice their clients are gone.
      if (i > 0) std::this_thread::sleep_for(std::chrono::seconds(3));
      const auto& c = watch_configs[i];
      outcomes[c.watchers].push_back(bench.WatchFanout(c.watchers, c.rate, c.seconds));
    }
    // Per watcher count: the highest write rate tried at which every event arrived with p99
    // delivery within the target.
    for (const auto& [watchers, runs] : outcomes) {
      OJson j = {{"bench", "watch_fanout_summary"}, {"system", "fulcrum"}, {"watchers", watchers}};
      double best = 0;
      OJson tried = OJson::array();
      for (const auto& o : runs) {
        if (o.met) best = std::max(best, o.target_rate);
        tried.push_back({{"target_rate", o.target_rate},
                         {"write_rate", Round(o.write_rate, 1)},
                         {"p99_ms", Round(o.p99_ms, 1)},
                         {"met", o.met}});
      }
      j["highest_rate_meeting_p99_100ms"] = best;
      j["runs"] = std::move(tried);
      Emit(j);
    }
  }
  return 0;
}

}  // namespace
}  // namespace fulcrum::bench

int main(int argc, char** argv) { return fulcrum::bench::Main(argc, argv); }
