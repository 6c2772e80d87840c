// A container's standard input and terminal as the agent holds them for `kubectl attach -i` and
// `kubectl run -it`: the write end of a stdin pipe, or the master side of the terminal runc made
// for the container (runc's docs/terminals.md, --console-socket). A terminal's output goes to the
// container's log (LogCapture::AttachTerminal) and to the attach sessions subscribed to it.
// Neither survives the agent: after a restart the container's stdin reads EOF and its terminal
// hangs up. Behaviour: docs/agent.md (Attach).
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "agent/runtime.h"
#include "base/json.h"
#include "base/status.h"

namespace fulcrum::agent {

class LogCapture;

// The pod container's `stdin`, `stdinOnce` and `tty`.
struct StdioOptions {
  bool stdin = false;
  bool stdin_once = false;  // stdin is closed once the first attach session with stdin ends
  bool tty = false;
};
StdioOptions StdioOptionsOf(const base::Json& container);

// Thread-safe.
class ContainerStdio : public std::enable_shared_from_this<ContainerStdio> {
 public:
  // The stdio of one run of a container with `options`: nullptr when it has neither stdin nor a
  // terminal. With stdin and no terminal, a pipe is made now. Internal, naming errno, when it
  // cannot be.
  static base::Result<std::shared_ptr<ContainerStdio>> Open(const StdioOptions& options);
  ~ContainerStdio();
  ContainerStdio(const ContainerStdio&) = delete;
  ContainerStdio& operator=(const ContainerStdio&) = delete;

  const StdioOptions& options() const { return options_; }

  // Before the runtime runs container `key`: gives it the pipe's read end as stdin, or asks it
  // for the terminal (ContainerBundle::terminal_fd; the bundle must not outlive this object) and
  // has `capture` wait for it (LogCapture::AwaitTerminal).
  void Prepare(ContainerBundle* bundle, LogCapture* capture, const std::string& key);
  // After the runtime ran the container: closes the agent's copy of the pipe's read end (the
  // container holds the only one, so it reads EOF once stdin is closed), and makes `capture`
  // record the terminal's output as container `key`'s log and pass it to attach sessions.
  // Internal when the runtime gave no terminal.
  base::Status Started(LogCapture* capture, const std::string& key);

  // Writes `data` to the container's input, blocking while the pipe or terminal is full. False
  // once stdin is closed, or when there is none.
  bool Write(std::string_view data);
  // Closes stdin: the container reads EOF from its pipe; a terminal takes no more input (it stays
  // the container's terminal, as containerd leaves it).
  void CloseStdin();
  bool stdin_open() const;
  // Sets the terminal's size (the container's foreground process gets SIGWINCH); nothing without
  // a terminal.
  void Resize(uint16_t width, uint16_t height);

  // A socket that reads what the container writes to its terminal from now on, for an attach
  // session (the caller owns it); it reads EOF once the terminal hangs up (the container exited).
  // Internal when there is no terminal or no socket can be made.
  base::Result<int> SubscribeOutput();
  // The terminal's output as the log capture thread reads it, "" once the terminal hung up: sent
  // to each subscriber without blocking (a subscriber that does not keep up loses output; one
  // that went away is dropped).
  void PublishOutput(std::string_view data);

 private:
  explicit ContainerStdio(const StdioOptions& options) : options_(options) {}

  const StdioOptions options_;
  mutable std::mutex mu_;
  int input_ = -1;          // the pipe's write end or the terminal's master; guarded by mu_
  int container_end_ = -1;  // the pipe's read end until Started; guarded by mu_
  int terminal_ = -1;       // the terminal's master side (owned); set by the runtime, then fixed
  bool stdin_closed_ = false;                // guarded by mu_
  std::vector<int> subscribers_;             // write ends; guarded by output_mu_
  bool hung_up_ = false;                     // guarded by output_mu_
  std::mutex output_mu_;
};

}  // namespace fulcrum::agent
