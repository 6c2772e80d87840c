// ContainerRuntime on the runc binary, root filesystems from overlayfs over the image store's
// layers. Layout and behaviour: docs/agent.md.
#pragma once

#include <spawn.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "agent/runtime.h"
#include "base/status.h"

namespace fulcrum::agent {

// The operating system as the runc runtime uses it: mounts and child processes. Real
// implementations below; tests substitute fakes. (Containers' overlays are mounted by runc, in
// their own mount namespaces; the runtime only unmounts those that earlier agents mounted on the
// host.)
class Mounter {
 public:
  virtual ~Mounter() = default;
  // Unmounts `target`. OK if nothing is mounted there.
  virtual base::Status Unmount(const std::string& target) = 0;
  virtual bool IsMountPoint(const std::string& target) = 0;
};

struct ProcessSpec {
  std::vector<std::string> argv;  // argv[0] is an absolute path
  // Descriptors given to the child as its stdio; -1: stdin is /dev/null, stdout/stderr captured
  // into ProcessResult.
  int stdin_fd = -1, stdout_fd = -1, stderr_fd = -1;
  std::string input;             // the child's stdin when stdin_fd is -1 (empty: /dev/null)
  std::vector<std::string> env;  // "NAME=value"; empty: this process's environment
  std::chrono::milliseconds timeout{30000};
};

struct ProcessResult {
  int exit_code = 0;  // 128+signal when killed by a signal
  std::string out, err;
};

class ProcessRunner {
 public:
  virtual ~ProcessRunner() = default;
  // Runs the process to completion. Timeout (after killing it) when it outlives spec.timeout;
  // Internal if it cannot be started. A non-zero exit is a result, not an error.
  virtual base::Result<ProcessResult> Run(const ProcessSpec& spec) = 0;
  // Makes this process the subreaper of its descendants (PR_SET_CHILD_SUBREAPER), so that a
  // detached container's init process, orphaned when `runc create` exits, is reparented here and
  // its exit status can be collected.
  virtual base::Status BecomeSubreaper() = 0;
  // Reaps `pid` if it is a child of this process that has exited: its exit code (128+signal when
  // killed by a signal), or nullopt when it is still running or not a child of this process.
  virtual std::optional<int> TryReap(int pid) = 0;
  // The start time of process `pid` (field 22 of /proc/PID/stat, clock ticks since boot) while
  // it is alive; nullopt when there is no such process or it has exited (a zombie). Together
  // with the pid this names one process: runc records both for a container's init.
  virtual std::optional<uint64_t> LiveStartTime(int pid) = 0;
};

// Makes a posix_spawn child start with no signal blocked and every signal at its default action,
// whatever this process blocks (SIGINT and SIGTERM, for sigwait) or ignores (SIGPIPE); sets
// `extra_flags` (e.g. POSIX_SPAWN_SETSID) too. `attr` is initialised by the caller.
void ResetSignalsOnSpawn(posix_spawnattr_t* attr, short extra_flags = 0);

// The receiving end of runc's --console-socket (runc's docs/terminals.md): a unix socket to which
// runc sends the master side of the terminal it made for a container, as SCM_RIGHTS ancillary
// data. Thread-compatible.
class ConsoleSocket {
 public:
  // Listens at `path`, replacing a stale socket. Invalid when the path is too long for a unix
  // socket; Internal, naming errno, on failure.
  static base::Result<std::unique_ptr<ConsoleSocket>> Listen(const std::string& path);
  ~ConsoleSocket();  // stops listening and removes the socket
  ConsoleSocket(const ConsoleSocket&) = delete;
  ConsoleSocket& operator=(const ConsoleSocket&) = delete;

  const std::string& path() const { return path_; }
  // The descriptor sent by the first connection within `timeout`, the caller's. Timeout when no
  // connection came; Internal when one sent no descriptor.
  base::Result<int> Receive(std::chrono::milliseconds timeout);

 private:
  ConsoleSocket(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}
  const std::string path_;
  const int fd_;
};

std::unique_ptr<Mounter> NewSystemMounter();
std::unique_ptr<ProcessRunner> NewSystemProcessRunner();

// `env` for a Go program that runs for a moment (runc create/run/delete, a CNI plugin) with
// GOMAXPROCS=1: the Go runtime then starts one scheduler thread instead of one per CPU, which
// takes a few percent of such a process's CPU (measured on runc run --detach).
std::vector<std::string> ShortLivedGoToolEnv(std::vector<std::string> env);

struct RuncOptions {
  std::string root;                   // the agent's root; containers under ROOT/containers/<id>
  std::string runc = "/usr/sbin/runc";
  std::chrono::milliseconds timeout{30000};  // for each runc invocation
};

// Opens the runtime: creates ROOT/containers and ROOT/runc (runc's --root) and makes this process
// a subreaper. The returned runtime borrows nothing; `mounter` and `runner` are owned.
base::Result<std::unique_ptr<ContainerRuntime>> OpenRuncRuntime(
    RuncOptions options, std::unique_ptr<Mounter> mounter = NewSystemMounter(),
    std::unique_ptr<ProcessRunner> runner = NewSystemProcessRunner());

}  // namespace fulcrum::agent
