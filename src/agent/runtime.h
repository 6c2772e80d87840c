// The container runtime: creates, starts, inspects, signals and deletes one container at a time.
// Implementations: runc (runc_runtime.h).
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "base/json.h"
#include "base/status.h"

namespace fulcrum::agent {

// What a container is made of.
struct ContainerBundle {
  base::Json spec;                      // config.json (oci_spec.h); root.path is set by the runtime
  std::vector<std::string> layer_dirs;  // the image's unpacked layers, bottom first (ImageRecord)
  // The container's stdout, appended to (created if needed); a FIFO (LogCapture, logs.h) is
  // opened read-write instead, so the container blocks rather than dies when no one reads.
  std::string stdout_path;
  std::string stderr_path;              // may equal stdout_path
  // The container's stdin (-1: /dev/null), passed on by the runtime; the caller keeps it.
  int stdin_fd = -1;
  // Required when the spec's process.terminal is true: receives the master side of the terminal
  // the runtime made for the container, the caller's from then on (ContainerStdio). The container
  // writes to the terminal, not to stdout_path and stderr_path, and reads its stdin from it.
  int* terminal_fd = nullptr;
};

enum class ContainerStatus { kCreated, kRunning, kStopped };
const char* ContainerStatusName(ContainerStatus status);

struct ContainerState {
  ContainerStatus status = ContainerStatus::kStopped;
  int pid = 0;                  // the container's init process on the node; 0 when stopped
  bool has_exit_code = false;   // false while not stopped, or when the exit was not observed
  int exit_code = 0;            // exit status, or 128+signal when killed by a signal
};

// Container IDs are 1–64 characters of [A-Za-z0-9_.-], not starting with '.' or '-'.
bool ValidContainerId(const std::string& id);

// Thread-compatible: calls for different IDs may run concurrently; calls for one ID must not.
class ContainerRuntime {
 public:
  virtual ~ContainerRuntime() = default;

  // Prepares the container's root filesystem and creates it, not yet running its process.
  // Container reuse: when a container with this ID ran before and is stopped (not deleted), it is
  // created again on the same writable layer, so files it wrote are still there (read its exit
  // code with State first: the new run forgets it). Invalid for a
  // bad ID or bundle; AlreadyExists if the container exists and is not stopped; Internal, with
  // the runtime's message, when creation fails (nothing is left mounted).
  virtual base::Status Create(const std::string& id, const ContainerBundle& bundle) = 0;

  // Runs the created container's process. NotFound if there is no such container; Conflict if it
  // is not in the created state.
  virtual base::Status Start(const std::string& id) = 0;

  // Create then Start, in one step where the runtime can (`runc run --detach`: one runc process
  // instead of two). Errors as Create's; a failure to start leaves the container created or
  // gone, never half-running.
  virtual base::Status Run(const std::string& id, const ContainerBundle& bundle) {
    RETURN_IF_ERROR(Create(id, bundle));
    return Start(id);
  }

  // NotFound if there is no such container.
  virtual base::Result<ContainerState> State(const std::string& id) = 0;

  // Sends `signal` to the container's init process. NotFound if there is no such container;
  // Conflict if it is not running.
  virtual base::Status Kill(const std::string& id, int signal) = 0;

  struct ExecResult {
    int exit_code = 0;   // 128+signal when killed by a signal
    std::string output;  // stdout, then stderr
  };
  // Runs `argv` in the running container (its namespaces, cgroup, user and environment) and waits
  // for it. NotFound if there is no such container; Conflict if it is not running; Timeout when
  // it outlives `timeout` (the command is killed).
  virtual base::Result<ExecResult> Exec(const std::string& id, const std::vector<std::string>& argv,
                                        std::chrono::milliseconds timeout) = 0;

  // Kills the container if needed and removes everything it had: runtime state, mounts,
  // writable layer. OK if there is no such container.
  virtual base::Status Delete(const std::string& id) = 0;
};

}  // namespace fulcrum::agent
