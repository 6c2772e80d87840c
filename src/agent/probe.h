// Container probes with the kubelet's semantics: startup, liveness and readiness probes by exec,
// httpGet or tcpSocket; initialDelaySeconds, periodSeconds, timeoutSeconds, successThreshold,
// failureThreshold; liveness and readiness wait for the startup probe. Time is injected.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "agent/runtime.h"
#include "base/clock.h"
#include "base/json.h"
#include "base/status.h"

namespace fulcrum::agent {

enum class ProbeKind { kStartup, kLiveness, kReadiness };
const char* ProbeKindName(ProbeKind kind);  // "Startup", "Liveness", "Readiness"

struct ProbeSpec {
  enum class Handler { kExec, kHttpGet, kTcpSocket };
  Handler handler = Handler::kExec;
  std::vector<std::string> command;  // exec
  std::string host;                  // httpGet, tcpSocket; empty: the pod IP
  int port = 0;                      // httpGet, tcpSocket; named ports resolved
  std::string path = "/";            // httpGet
  std::string scheme = "HTTP";       // httpGet
  std::vector<std::pair<std::string, std::string>> headers;  // httpGet
  int initial_delay_seconds = 0;
  int period_seconds = 10;
  int timeout_seconds = 1;
  int success_threshold = 1;
  int failure_threshold = 3;
};

// A probe from a container's JSON (`container` for named ports): Kubernetes defaults applied.
// Invalid, naming the field, for no handler, two handlers, an unknown port name, a grpc probe
// (not supported), or a successThreshold other than 1 for a startup or liveness probe.
base::Result<ProbeSpec> ParseProbe(const base::Json& probe, const base::Json& container,
                                   ProbeKind kind, const std::string& field_path);

struct ProbeTarget {
  std::string container_id;  // exec runs here
  std::string pod_ip;        // default host for httpGet and tcpSocket
};

struct ProbeOutcome {
  bool success = false;
  std::string message;  // why it failed (for events and the container's status)
};

// Performs one probe. Implementations may block for up to the probe's timeout.
class Prober {
 public:
  virtual ~Prober() = default;
  virtual ProbeOutcome Probe(const ProbeSpec& spec, const ProbeTarget& target) = 0;
};
// exec through `runtime` (borrowed; success is exit code 0), httpGet over plain HTTP/1.1
// (success is a status from 200 to 399; HTTPS is refused as unsupported), tcpSocket by connect.
std::unique_ptr<Prober> NewProber(ContainerRuntime* runtime);

// The probes of one run of one container (a restarted container gets a new one).
// Thread-compatible.
class ContainerProbes {
 public:
  ContainerProbes(std::optional<ProbeSpec> startup, std::optional<ProbeSpec> liveness,
                  std::optional<ProbeSpec> readiness, base::WallTime started_at);

  // Runs every probe that is due at `now`, in order startup, liveness, readiness.
  void Run(Prober& prober, const ProbeTarget& target, base::WallTime now);
  // When the next probe is due; nullopt when no probe will run again.
  std::optional<base::WallTime> NextDue() const;

  // containerStatuses[].started: no startup probe, or it has succeeded.
  bool Started() const { return started_; }
  // containerStatuses[].ready: started, and the readiness probe's result is success (no probe:
  // ready once started).
  bool Ready() const;
  // The container must be restarted: its startup or liveness probe reached failureThreshold.
  // Probing stops until a new ContainerProbes replaces this one.
  bool ShouldRestart() const { return restart_kind_.has_value(); }
  std::optional<ProbeKind> RestartKind() const { return restart_kind_; }
  const std::string& LastFailure() const { return last_failure_; }

 private:
  struct Worker {
    ProbeKind kind;
    ProbeSpec spec;
    bool result;          // the current result: readiness starts as failure, others as success
    bool last = false;    // the last raw outcome and how many times in a row it came
    int run = 0;
    base::WallTime due;
  };
  void RunWorker(Worker& w, Prober& prober, const ProbeTarget& target, base::WallTime now);

  std::vector<Worker> workers_;
  bool started_;
  std::optional<ProbeKind> restart_kind_;
  std::string last_failure_;
};

}  // namespace fulcrum::agent
