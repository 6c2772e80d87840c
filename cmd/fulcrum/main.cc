// fulcrum: one binary, several roles. Subcommands only; the logic lives in the libraries.
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "agent/agent.h"
#include "agent/qos_manager.h"
#include "agent/image_command.h"
#include "apiserver/api_server.h"
#include "base/log.h"
#include "client/api_client.h"
#include "controllers/controller_manager.h"
#include "scheduler/live_scheduler.h"
#include "sim/predict.h"
#include "sim/run.h"

namespace {

using fulcrum::base::LogLevel;

const char kUsage[] =
    "usage: fulcrum <command> [flags]\n"
    "\n"
    "commands:\n"
    "  up       all-in-one cluster on this machine: server + an agent for this node\n"
    "  server   API server, controllers and scheduler: fulcrum server --data-dir DIR\n"
    "           [--listen HOST:PORT] [--store URI] [--scheduler-policy P]\n"
    "  agent    node agent: fulcrum agent --kubeconfig FILE --node-name NAME [--root DIR]\n"
    "           [--pod-cidr CIDR] [--cluster-dns IP] [--node-ip IP] [--bridge NAME]\n"
    "  image    the node's image store: fulcrum image import FILE | ls | rm REF [--root DIR]\n"
    "  sim      trace-driven evaluation: fulcrum sim predict --trace PATH --format FORMAT\n"
    "           fulcrum sim run --nodes N --days D --online PATH --batch FILE --policy P,...\n"
    "\n"
    "flags:\n"
    "  --data-dir DIR      state, certificates and the admin kubeconfig (default /var/lib/fulcrum)\n"
    "  --listen HOST:PORT  address to serve the API on (default 127.0.0.1:6443; port 0 = any)\n"
    "  --store URI         sqlite:PATH (default DIR/state.db)\n"
    "  --scheduler-policy P  archimedes (default) | load-aware | requests (docs/scheduler.md)\n"
    "  --profile-slot-seconds S  the scheduler's application profile slot (default 900; a\n"
    "                      divisor of 86400; a profile learns when a slot ends)\n"
    "  --profile-utc-offset S  the time zone profiles count days in, seconds east of UTC\n"
    "                      (default 0; 28800 for UTC+8)\n"
    "  --control-loops on|off  server: run the controllers and scheduler (default on; the API\n"
    "                      benchmarks measure the API server alone with off)\n"
    "  --node-name NAME    up: this node's name (default: the host name)\n"
    "  --pod-cidr CIDR     up: this node's pod addresses (default 10.244.0.0/24)\n"
    "  --bridge NAME       up: the pod network's bridge (default fulcrum0)\n"
    "  --metrics-listen HOST:PORT, --qos-*  up: passed to the agent (docs/agent.md);\n"
    "                      --qos-cpu-suppress-percent and --qos-cpu-system-usage also bound\n"
    "                      what the scheduler lends batch pods\n"
    "  --usage-report-interval S  up: the agent's NodeMetric usage reports (default 15 s)\n"
    "  -v                  verbose logging\n";

struct Flags {
  std::map<std::string, std::string> values;
  bool verbose = false;
};

bool ParseFlags(int argc, char** argv, int first, Flags* flags, std::string* error) {
  for (int i = first; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "-v" || arg == "--verbose") {
      flags->verbose = true;
      continue;
    }
    if (arg.rfind("--", 0) != 0) {
      *error = "unexpected argument " + arg;
      return false;
    }
    std::string name = arg.substr(2), value;
    auto eq = name.find('=');
    if (eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
    } else if (i + 1 < argc) {
      value = argv[++i];
    } else {
      *error = "flag --" + name + " needs a value";
      return false;
    }
    if (name.rfind("qos", 0) == 0 || name == "metrics-listen") {  // up: the agent's flags
      flags->values[name] = value;
      continue;
    }
    if (name != "data-dir" && name != "listen" && name != "store" && name != "scheduler-policy" &&
        name != "control-loops" && name != "node-name" && name != "pod-cidr" && name != "bridge" &&
        name != "usage-report-interval" && name != "profile-slot-seconds" &&
        name != "profile-utc-offset") {
      *error = "unknown flag --" + name;
      return false;
    }
    flags->values[name] = value;
  }
  return true;
}

bool SplitHostPort(const std::string& s, std::string* host, uint16_t* port) {
  auto colon = s.rfind(':');
  if (colon == std::string::npos) return false;
  *host = s.substr(0, colon);
  if (host->size() >= 2 && host->front() == '[' && host->back() == ']') {
    *host = host->substr(1, host->size() - 2);
  }
  try {
    unsigned long p = std::stoul(s.substr(colon + 1));
    if (p > 65535) return false;
    *port = static_cast<uint16_t>(p);
  } catch (...) {
    return false;
  }
  return true;
}

// The flags `fulcrum up` hands to its agent as they are: --metrics-listen and the batch QoS
// thresholds (--qos-*), which the agent checks.
std::vector<std::string> AgentFlags(const Flags& flags) {
  std::vector<std::string> out;
  for (const auto& [name, value] : flags.values) {
    if (name.rfind("qos", 0) == 0 || name == "metrics-listen") out.push_back("--" + name + "=" + value);
  }
  return out;
}

// The live scheduler's options from the flags. Batch pods are lent no more than the agents let
// them use, so the agent's --qos-cpu-suppress-percent and --qos-cpu-system-usage set the
// scheduler's batch CPU percentage and whether system usage counts. False with `error` for a bad
// value.
bool SchedulerOptionsFromFlags(const Flags& flags, fulcrum::scheduler::LiveSchedulerOptions* options,
                               std::string* error) {
  fulcrum::agent::QosOptions qos;
  for (const char* name : {"qos-cpu-suppress-percent", "qos-cpu-system-usage"}) {
    auto it = flags.values.find(name);
    if (it != flags.values.end() && !fulcrum::agent::ParseQosFlag(name, it->second, &qos, error)) {
      return false;
    }
  }
  options->batch_cpu_percent = qos.cpu_suppress_percent;
  options->count_system_usage = qos.cpu_count_system;
  if (auto it = flags.values.find("scheduler-policy"); it != flags.values.end()) {
    options->policy = it->second;
  }
  // Whole seconds within [min, max]; the range is checked again (and said) by StartLiveScheduler.
  auto whole_seconds = [&](const char* name, long long min, long long max, int64_t* out) {
    auto it = flags.values.find(name);
    if (it == flags.values.end()) return true;
    char* end = nullptr;
    long long seconds = std::strtoll(it->second.c_str(), &end, 10);
    if (it->second.empty() || *end != 0 || seconds < min || seconds > max) {
      *error = std::string("--") + name + " must be whole seconds from " + std::to_string(min) +
               " to " + std::to_string(max) + ", not \"" + it->second + "\"";
      return false;
    }
    *out = seconds;
    return true;
  };
  return whole_seconds("profile-slot-seconds", 1, 86400, &options->profile_slot_seconds) &&
         whole_seconds("profile-utc-offset", -86399, 86399, &options->profile_utc_offset_seconds);
}

// `fulcrum up` runs the node agent as a child process of this same binary, so that a fault in one
// pod's container plumbing cannot take the control plane down with it.
pid_t StartAgentProcess(const std::string& data_dir, const std::string& kubeconfig,
                        const std::string& node_name, const std::string& pod_cidr,
                        const std::string& bridge, const std::string& usage_report_interval,
                        const std::vector<std::string>& agent_flags, bool verbose) {
  std::string node = node_name;
  if (node.empty()) {  // the host name, lower-cased: a valid node name on any sane host
    char host[256] = {};
    gethostname(host, sizeof host - 1);
    for (char* c = host; *c != 0; ++c) node.push_back(static_cast<char>(std::tolower(*c)));
  }
  std::vector<std::string> args = {"/proc/self/exe", "agent",     "--kubeconfig", kubeconfig,
                                   "--node-name",    node,        "--root",       data_dir + "/agent",
                                   "--pod-cidr",     pod_cidr};
  if (!bridge.empty()) {
    args.push_back("--bridge");
    args.push_back(bridge);
  }
  if (!usage_report_interval.empty()) {
    args.push_back("--usage-report-interval");
    args.push_back(usage_report_interval);
  }
  args.insert(args.end(), agent_flags.begin(), agent_flags.end());
  if (verbose) args.push_back("-v");
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid == 0) {
    // The agent goes when the server goes, even when the server is killed.
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent) _exit(1);
    sigset_t none;
    sigemptyset(&none);
    pthread_sigmask(SIG_SETMASK, &none, nullptr);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv("/proc/self/exe", argv.data());
    std::perror("fulcrum up: exec agent");
    _exit(127);
  }
  return pid;
}

int RunServer(const Flags& flags, bool all_in_one) {
  fulcrum::apiserver::ApiServerOptions options;
  auto get = [&](const char* name, const char* fallback) {
    auto it = flags.values.find(name);
    return it == flags.values.end() ? std::string(fallback) : it->second;
  };
  options.data_dir = get("data-dir", "/var/lib/fulcrum");
  options.store_uri = get("store", "");
  if (!SplitHostPort(get("listen", "127.0.0.1:6443"), &options.listen_host,
                     &options.listen_port)) {
    std::fprintf(stderr, "fulcrum: --listen must be HOST:PORT\n");
    return 2;
  }
  fulcrum::scheduler::LiveSchedulerOptions scheduler_options;
  if (std::string error; !SchedulerOptionsFromFlags(flags, &scheduler_options, &error)) {
    std::fprintf(stderr, "fulcrum: %s\n", error.c_str());
    return 2;
  }
  // Block the stop signals before any thread starts so that only sigwait below sees them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  auto server = fulcrum::apiserver::StartApiServer(options);
  if (!server.ok()) {
    std::fprintf(stderr, "fulcrum: %s\n", server.status().ToString().c_str());
    return 1;
  }
  // Controllers and the scheduler reach the API the way every other client does.
  auto config = fulcrum::client::LoadKubeconfig((*server)->kubeconfig_path());
  if (config.ok()) config->user_agent = "fulcrum-server";
  auto api = config.ok() ? fulcrum::client::ApiClient::Create(*config)
                         : fulcrum::base::Result<std::unique_ptr<fulcrum::client::ApiClient>>(config.status());
  if (!api.ok()) {
    std::fprintf(stderr, "fulcrum: API client: %s\n", api.status().ToString().c_str());
    return 1;
  }
  auto* clock = fulcrum::base::RealClock();
  std::unique_ptr<fulcrum::controllers::ControllerManager> controllers;
  std::unique_ptr<fulcrum::scheduler::LiveScheduler> scheduler;
  if (get("control-loops", "on") != "off") {
    auto started = fulcrum::controllers::StartControllerManager(api->get(), clock);
    auto live = fulcrum::scheduler::StartLiveScheduler(api->get(), clock, scheduler_options);
    if (!started.ok() || !live.ok()) {
      std::fprintf(stderr, "fulcrum: %s\n",
                   (!started.ok() ? started.status() : live.status()).ToString().c_str());
      return 1;
    }
    controllers = std::move(started).value();
    scheduler = std::move(live).value();
  }
  std::fprintf(stderr, "fulcrum: API server listening on port %u; export KUBECONFIG=%s\n",
               (*server)->port(), (*server)->kubeconfig_path().c_str());
  pid_t agent = -1;
  if (all_in_one) {
    agent = StartAgentProcess(options.data_dir, (*server)->kubeconfig_path(), get("node-name", ""),
                              get("pod-cidr", "10.244.0.0/24"), get("bridge", ""),
                              get("usage-report-interval", ""), AgentFlags(flags), flags.verbose);
  }
  int sig = 0;
  sigwait(&stop_signals, &sig);
  LOG_INFO << "received " << strsignal(sig) << ", stopping";
  if (agent > 0) {
    kill(agent, SIGTERM);
    waitpid(agent, nullptr, 0);
  }
  if (scheduler) scheduler->Stop();
  if (controllers) controllers->Stop();
  (*server)->Stop();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 2 && std::string(argv[1]) == "image") return fulcrum::agent::RunImageCommand(argc - 2, argv + 2);
  if (argc >= 2 && std::string(argv[1]) == "agent") return fulcrum::agent::RunAgentCommand(argc - 2, argv + 2);
  if (argc < 2 || std::strcmp(argv[1], "-h") == 0 || std::strcmp(argv[1], "--help") == 0 ||
      std::strcmp(argv[1], "help") == 0) {
    std::fputs(kUsage, argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  std::string command = argv[1];
  if (command == "sim" && argc >= 3 && std::string(argv[2]) == "run") {
    return fulcrum::sim::RunSimRunCommand(std::vector<std::string>(argv + 3, argv + argc),
                                          std::cout, std::cerr);
  }
  if (command == "sim") return fulcrum::sim::RunSimCommand(argc - 2, argv + 2);
  Flags flags;
  std::string error;
  if (!ParseFlags(argc, argv, 2, &flags, &error)) {
    std::fprintf(stderr, "fulcrum %s: %s\n%s", command.c_str(), error.c_str(), kUsage);
    return 2;
  }
  if (flags.verbose) fulcrum::base::SetLogLevel(LogLevel::kDebug);
  if (command == "server" || command == "up") return RunServer(flags, command == "up");
  std::fprintf(stderr, "fulcrum: unknown command %s\n%s", command.c_str(), kUsage);
  return 2;
}
