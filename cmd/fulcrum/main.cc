// fulcrum: one binary, several roles. Subcommands only; the logic lives in the libraries.
#include <signal.h>

#include <cstdio>
#include <cstring>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "agent/agent.h"
#include "agent/image_command.h"
#include "apiserver/api_server.h"
#include "base/log.h"
#include "sim/predict.h"
#include "sim/run.h"

namespace {

using fulcrum::base::LogLevel;

const char kUsage[] =
    "usage: fulcrum <command> [flags]\n"
    "\n"
    "commands:\n"
    "  up       all-in-one cluster on this machine (API server on the embedded store)\n"
    "  server   API server: fulcrum server --data-dir DIR [--listen HOST:PORT] [--store URI]\n"
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
    if (name != "data-dir" && name != "listen" && name != "store") {
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

int RunServer(const Flags& flags) {
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
  std::fprintf(stderr, "fulcrum: API server listening on port %u; export KUBECONFIG=%s\n",
               (*server)->port(), (*server)->kubeconfig_path().c_str());
  int sig = 0;
  sigwait(&stop_signals, &sig);
  LOG_INFO << "received " << strsignal(sig) << ", stopping";
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
  if (command == "server" || command == "up") return RunServer(flags);
  std::fprintf(stderr, "fulcrum: unknown command %s\n%s", command.c_str(), kUsage);
  return 2;
}
