// The agent's pod server, the kubelet API subset that `kubectl logs` and `kubectl exec` reach
// through the API server: GET /containerLogs/NS/POD/CONTAINER, and /exec/NS/POD/CONTAINER and
// /attach/NS/POD/CONTAINER as WebSockets (RFC 6455) carrying Kubernetes' channel protocol
// v4/v5.channel.k8s.io, or SPDY/3.1 streams (spdy.h) with v4 for kubectl before 1.30; attach
// gives the container's output from then on, and takes input for a container with `stdin` (its
// ContainerStdio), on its terminal with `tty`. /portForward/NS/POD: SPDY streams to
// ports of the pod's network namespace (portforward.k8s.io), alone or tunnelled in a WebSocket.
// HTTPS with client certificates of the cluster CA only. Behaviour: docs/agent.md.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "agent/container_stdio.h"
#include "base/status.h"

namespace fulcrum::agent {

// Where one container's output is, as the agent knows it.
struct ContainerTarget {
  std::string container_id;  // runtime container ID; empty if never created
  std::string log_path;      // the CRI log of the run asked for
  bool running = false;      // a run is under way (a followed log ends once it is not)
  StdioOptions stdio_options;  // the container's stdin, stdinOnce and tty
  // The current run's stdin and terminal; null when it has neither, or when they were lost with
  // an earlier agent (an adopted container).
  std::shared_ptr<ContainerStdio> stdio;
};

// What the pod server asks the agent. Thread-safe.
class ContainerDirectory {
 public:
  virtual ~ContainerDirectory() = default;
  // The container `container` of pod `ns`/`pod` and the log of its current run, or of the run
  // before when `previous`. NotFound when the node has no such pod or the pod no such container;
  // BadRequest, with the kubelet's message, when there is no such log ("previous terminated
  // container \"c\" in pod \"p\" not found", "container \"c\" in pod \"p\" is waiting to start:
  // ContainerCreating").
  virtual base::Result<ContainerTarget> Find(const std::string& ns, const std::string& pod,
                                             const std::string& container, bool previous) = 0;
  // The path of the pod's network namespace, where port forwarding connects ("" connects in
  // this process's own: tests). NotFound when the node has no such pod; BadRequest when it has
  // no network yet.
  virtual base::Result<std::string> NetworkNamespace(const std::string& ns,
                                                     const std::string& pod) = 0;
};

// One process started by exec. Thread-safe.
class ExecProcess {
 public:
  virtual ~ExecProcess() = default;
  // The process's input and outputs, owned by the process (-1 when not wanted). With a terminal
  // they are all the same descriptor: the terminal's master side, which reads EIO once closed.
  virtual int stdin_fd() const = 0;
  virtual int stdout_fd() const = 0;
  virtual int stderr_fd() const = 0;
  // Writes to the process's input, blocking while it is full: false once it takes no more.
  // Writes stdin_fd() unless overridden.
  virtual bool WriteStdin(std::string_view data);
  // Ends the input (stdin EOF).
  virtual void CloseStdin() = 0;
  // Sets the terminal's size; nothing without a terminal.
  virtual void Resize(uint16_t width, uint16_t height) = 0;
  // Waits for the process to exit: its exit code, 128+signal when killed by a signal.
  virtual int Wait() = 0;
  // Kills the process (the command in the container, not only its runtime).
  virtual void Kill() = 0;
};

class ExecRunner {
 public:
  virtual ~ExecRunner() = default;
  // Starts `argv` in running container `container_id`, on a new terminal when `tty`, reading
  // stdin only when `stdin`. Internal, naming errno, when it cannot be started.
  virtual base::Result<std::unique_ptr<ExecProcess>> Start(const std::string& container_id,
                                                           const std::vector<std::string>& argv,
                                                           bool tty, bool stdin) = 0;
};

// `runc --root ROOT/runc exec [--tty] --pid-file ROOT/containers/ID/… ID ARGV...` for the agent
// root ROOT (runc_runtime.h's layout); runc's exit code is the command's. With a terminal, runc
// gets one of ours as its controlling terminal, copies it to the container's and passes on its
// size when we change it (SIGWINCH).
std::unique_ptr<ExecRunner> NewRuncExecRunner(std::string runc, const std::string& root);
// Runs `argv` on this host, ignoring the container: for tests of the protocol.
std::unique_ptr<ExecRunner> NewHostExecRunner();

// RFC 6455 framing, for the pod server and its tests.
namespace websocket {

enum Opcode : uint8_t {
  kContinuation = 0,
  kText = 1,
  kBinary = 2,
  kClose = 8,
  kPing = 9,
  kPong = 10
};

// "Sec-WebSocket-Accept" for a client's "Sec-WebSocket-Key" (§4.2.2).
std::string AcceptKey(std::string_view client_key);

// One frame, masked when `mask` is non-zero (clients must mask, servers must not).
std::string EncodeFrame(Opcode opcode, std::string_view payload, uint32_t mask = 0);

// Splits a byte stream into messages: frames unmasked, fragments joined, control frames returned
// as they come. Bounds-checked: a frame or message above `max_message` bytes, a fragmented
// control frame or a continuation without a start is an error. Thread-compatible.
class Decoder {
 public:
  explicit Decoder(std::size_t max_message = 1 << 20) : max_message_(max_message) {}
  void Feed(std::string_view bytes) { buffer_.append(bytes); }
  // The next complete message: true with *opcode and *payload set; false when more bytes are
  // needed. BadRequest for a protocol error (the connection must end).
  base::Result<bool> Next(Opcode* opcode, std::string* payload);

 private:
  const std::size_t max_message_;
  std::string buffer_;
  std::string fragments_;
  Opcode fragmented_ = kContinuation;  // the opcode of the message being joined
  bool joining_ = false;
};

}  // namespace websocket

// Kubernetes' remote command channels (k8s.io/apimachinery/pkg/util/remotecommand).
inline constexpr uint8_t kStdinChannel = 0, kStdoutChannel = 1, kStderrChannel = 2,
                         kErrorChannel = 3, kResizeChannel = 4, kCloseChannel = 255;

// The v4/v5 error channel's Status for an exit code: Success for 0, else Failure with reason
// NonZeroExitCode and an ExitCode cause, as the kubelet writes it.
std::string ExitStatusJson(int exit_code, const std::vector<std::string>& argv);

struct PodServerOptions {
  std::string host = "0.0.0.0";
  uint16_t port = 10250;        // 0: any free port
  std::string cert_file;        // serving certificate; TLS is off when empty (tests only)
  std::string key_file;
  std::string client_ca_file;   // clients must present a certificate this CA signed…
  std::vector<std::string> client_names;  // …with one of these subject CNs (empty: any)
};

// Serves /containerLogs/…, /exec/…, /attach/…, /portForward/… (and /healthz) from a thread per
// connection.
class PodServer {
 public:
  virtual ~PodServer() = default;
  virtual uint16_t port() const = 0;
  // Stops serving: open log streams and exec sessions end (their processes are killed).
  virtual void Stop() = 0;
};

// `containers` and `exec` are borrowed and must outlive the server. Errors: as StartHttpServer.
base::Result<std::unique_ptr<PodServer>> StartPodServer(const PodServerOptions& options,
                                                        ContainerDirectory* containers,
                                                        ExecRunner* exec);

// The pod server as `fulcrum agent` runs it on `listen` ("HOST:PORT"): a self-signed serving
// certificate under ROOT/pki (made once; the API server does not verify it, as kube-apiserver
// does not verify kubelets by default), and only clients with a certificate of the cluster CA
// (`ca_pem`, from the agent's kubeconfig) named apiserver::kApiServerCommonName. Invalid when
// `ca_pem` is empty: the pod server never serves unauthenticated clients.
base::Result<std::unique_ptr<PodServer>> StartAgentPodServer(const std::string& listen,
                                                             const std::string& root,
                                                             const std::string& ca_pem,
                                                             ContainerDirectory* containers,
                                                             ExecRunner* exec);

}  // namespace fulcrum::agent
