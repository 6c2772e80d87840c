// Container restart latency with container reuse (the exited container created again on its
// writable layer) versus a fresh container (delete, then create a new one), on runc with the demo
// image. Needs root. Prints JSON.
//
//   agent_restart_bench BUILD/demo-busybox.tar [--runs N] [--files F]
//
// Each container writes F files into its writable layer when they are not there (an application
// rebuilding its state); every restart is timed from the decision to restart until `runc start`
// returned (start_ms), and until the container's work was done and it exited (done_ms).
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "agent/image_store.h"
#include "agent/oci_spec.h"
#include "agent/runc_runtime.h"

namespace {

using namespace fulcrum::agent;
namespace base = fulcrum::base;
using Clock = std::chrono::steady_clock;

double Percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  size_t i = std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5));
  return v[i];
}

bool WaitStopped(ContainerRuntime& rt, const std::string& id) {
  for (int i = 0; i < 1000; ++i) {
    auto s = rt.State(id);
    if (s.ok() && s->status == ContainerStatus::kStopped) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    if (i == 999) {
      std::fprintf(stderr, "agent_restart_bench: %s: %s\n", id.c_str(),
                   s.ok() ? ContainerStatusName(s->status) : s.status().ToString().c_str());
    }
  }
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: agent_restart_bench DEMO_IMAGE [--runs N] [--files F]\n");
    return 2;
  }
  int runs = 20, files = 100;
  for (int i = 2; i + 1 < argc; i += 2) {
    std::string flag = argv[i];
    if (flag == "--runs") runs = std::atoi(argv[i + 1]);
    if (flag == "--files") files = std::atoi(argv[i + 1]);
  }
  if (::geteuid() != 0) {
    std::fprintf(stderr, "agent_restart_bench: needs root (runs containers)\n");
    return 1;
  }
  std::string tmpl = (std::filesystem::temp_directory_path() / "agent_restart_bench.XXXXXX").string();
  if (::mkdtemp(tmpl.data()) == nullptr) return 1;
  const std::string root = tmpl;
  auto store = ImageStore::Open(root);
  if (!store.ok() || !(*store)->Import(argv[1]).ok()) {
    std::fprintf(stderr, "agent_restart_bench: cannot import %s\n", argv[1]);
    return 1;
  }
  auto image = (*store)->Resolve("fulcrum.dev/busybox:demo");
  RuncOptions options;
  options.root = root;
  auto runtime = OpenRuncRuntime(options);
  if (!image.ok() || !runtime.ok()) {
    std::fprintf(stderr, "agent_restart_bench: %s\n", runtime.status().ToString().c_str());
    return 1;
  }
  ContainerRuntime& rt = **runtime;
  ContainerSpecInput c;
  // A request of one CPU: without one a container gets the minimum CPU shares (BestEffort), and
  // on a busy machine its work would measure the other processes rather than the restart.
  c.cpu_request_milli = 1000;
  c.command = {"sh", "-c",
               "[ -d /state ] || { mkdir /state; i=0; while [ $i -lt " + std::to_string(files) +
                   " ]; do echo $i > /state/$i; i=$((i+1)); done; }"};
  auto spec = BuildOciSpec(c, image->config);
  ContainerBundle bundle{*spec, image->layer_dirs, root + "/out.log", root + "/out.log"};

  struct Times {
    std::vector<double> start, done;
  };
  auto measure = [&](bool reuse) {
    Times t;
    std::string id = reuse ? "bench-reuse" : "bench-fresh";
    int serial = 0;
    if (auto s = rt.Create(id, bundle); !s.ok()) {
      std::fprintf(stderr, "agent_restart_bench: %s\n", s.ToString().c_str());
      return t;
    }
    if (auto s = rt.Start(id); !s.ok()) {
      std::fprintf(stderr, "agent_restart_bench: start: %s\n", s.ToString().c_str());
      return t;
    }
    if (!WaitStopped(rt, id)) {
      std::fprintf(stderr, "agent_restart_bench: %s did not stop\n", id.c_str());
      return t;
    }
    for (int i = 0; i < runs; ++i) {
      auto start = Clock::now();
      std::string next = id;
      if (!reuse) {
        (void)rt.Delete(id);
        next = "bench-fresh-" + std::to_string(++serial);
      }
      base::Status created = rt.Create(next, bundle);
      if (!created.ok()) std::fprintf(stderr, "agent_restart_bench: %s\n", created.ToString().c_str());
      bool ok = created.ok() && rt.Start(next).ok();
      t.start.push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
      id = next;
      if (!ok || !WaitStopped(rt, id)) break;
      t.done.push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
    }
    (void)rt.Delete(id);
    return t;
  };
  Times reuse = measure(true), fresh = measure(false);
  std::error_code ec;
  std::filesystem::remove_all(root, ec);
  if (reuse.done.empty() || fresh.done.empty()) {
    std::fprintf(stderr, "agent_restart_bench: a container failed to run\n");
    return 1;
  }
  auto stats = [](const std::vector<double>& v) {
    double sum = 0;
    for (double x : v) sum += x;
    char buf[200];
    std::snprintf(buf, sizeof buf, "{\"runs\": %zu, \"mean_ms\": %.1f, \"p50_ms\": %.1f, \"p99_ms\": %.1f}",
                  v.size(), sum / static_cast<double>(v.size()), Percentile(v, 0.5),
                  Percentile(v, 0.99));
    return std::string(buf);
  };
  std::printf("{\"benchmark\": \"container_restart\", \"state_files\": %d,\n"
              " \"reuse\": {\"start\": %s, \"done\": %s},\n"
              " \"fresh\": {\"start\": %s, \"done\": %s}}\n",
              files, stats(reuse.start).c_str(), stats(reuse.done).c_str(),
              stats(fresh.start).c_str(), stats(fresh.done).c_str());
  return 0;
}
