// The kubelet's /containerLogs and /exec endpoints (Kubernetes' kubelet server), the WebSocket
// framing of RFC 6455 and the remote command channel protocol v4/v5.channel.k8s.io.
#include "agent/pod_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <openssl/evp.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <map>
#include <functional>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <thread>

#include "agent/container_stdio.h"
#include "agent/logs.h"
#include "agent/runc_runtime.h"
#include "agent/spdy.h"
#include "apiserver/http_server.h"
#include "apiserver/pki.h"
#include "apiserver/rest.h"
#include "base/base64.h"
#include "base/file.h"
#include "base/json.h"
#include "base/log.h"

extern char** environ;

namespace fulcrum::agent {

using apiserver::HttpRequest;
using apiserver::HttpResponse;
using apiserver::TakenConnection;
using base::Json;
using base::Result;
using base::Status;

namespace websocket {

std::string AcceptKey(std::string_view client_key) {
  std::string input(client_key);
  input += "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_Digest(input.data(), input.size(), digest, &n, EVP_sha1(), nullptr);
  return base::Base64Encode(std::string_view(reinterpret_cast<const char*>(digest), n));
}

std::string EncodeFrame(Opcode opcode, std::string_view payload, uint32_t mask) {
  std::string out;
  out.reserve(payload.size() + 14);
  out.push_back(static_cast<char>(0x80 | opcode));
  const char mask_bit = mask != 0 ? static_cast<char>(0x80) : 0;
  const uint64_t n = payload.size();
  if (n < 126) {
    out.push_back(static_cast<char>(mask_bit | static_cast<char>(n)));
  } else if (n <= 0xffff) {
    out.push_back(static_cast<char>(mask_bit | 126));
    out.push_back(static_cast<char>(n >> 8));
    out.push_back(static_cast<char>(n & 0xff));
  } else {
    out.push_back(static_cast<char>(mask_bit | 127));
    for (int shift = 56; shift >= 0; shift -= 8) out.push_back(static_cast<char>((n >> shift) & 0xff));
  }
  if (mask == 0) {
    out.append(payload);
    return out;
  }
  const unsigned char key[4] = {static_cast<unsigned char>(mask >> 24),
                                static_cast<unsigned char>(mask >> 16),
                                static_cast<unsigned char>(mask >> 8),
                                static_cast<unsigned char>(mask)};
  out.append(reinterpret_cast<const char*>(key), 4);
  for (std::size_t i = 0; i < payload.size(); ++i) {
    out.push_back(static_cast<char>(payload[i] ^ key[i % 4]));
  }
  return out;
}

Result<bool> Decoder::Next(Opcode* opcode, std::string* payload) {
  for (;;) {
    if (buffer_.size() < 2) return false;
    const auto* b = reinterpret_cast<const unsigned char*>(buffer_.data());
    const bool fin = (b[0] & 0x80) != 0;
    if ((b[0] & 0x70) != 0) return base::BadRequest("websocket frame with reserved bits set");
    const auto op = static_cast<Opcode>(b[0] & 0x0f);
    const bool masked = (b[1] & 0x80) != 0;
    uint64_t length = b[1] & 0x7f;
    std::size_t header = 2;
    if (length == 126) {
      if (buffer_.size() < 4) return false;
      length = (uint64_t{b[2]} << 8) | b[3];
      header = 4;
    } else if (length == 127) {
      if (buffer_.size() < 10) return false;
      length = 0;
      for (int i = 2; i < 10; ++i) length = (length << 8) | b[i];
      header = 10;
    }
    if (length > max_message_) {
      return base::BadRequest("websocket frame of " + std::to_string(length) +
                              " bytes is above the limit of " + std::to_string(max_message_));
    }
    const std::size_t mask_at = header;
    if (masked) header += 4;
    if (buffer_.size() < header + length) return false;
    std::string data = buffer_.substr(header, static_cast<std::size_t>(length));
    if (masked) {
      for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(data[i] ^ b[mask_at + i % 4]);
    }
    buffer_.erase(0, header + static_cast<std::size_t>(length));
    switch (op) {
      case kClose:
      case kPing:
      case kPong:
        if (!fin || data.size() > 125) return base::BadRequest("malformed websocket control frame");
        *opcode = op;
        *payload = std::move(data);
        return true;
      case kContinuation:
        if (!joining_) return base::BadRequest("websocket continuation frame without a start");
        if (fragments_.size() + data.size() > max_message_) {
          return base::BadRequest("websocket message above the limit of " +
                                  std::to_string(max_message_) + " bytes");
        }
        fragments_ += data;
        if (fin) {
          joining_ = false;
          *opcode = fragmented_;
          *payload = std::move(fragments_);
          fragments_.clear();
          return true;
        }
        continue;
      case kText:
      case kBinary:
        if (joining_) return base::BadRequest("websocket message started inside another");
        if (fin) {
          *opcode = op;
          *payload = std::move(data);
          return true;
        }
        joining_ = true;
        fragmented_ = op;
        fragments_ = std::move(data);
        continue;
      default:
        return base::BadRequest("websocket frame with unknown opcode " + std::to_string(op));
    }
  }
}

}  // namespace websocket

std::string ExitStatusJson(int exit_code, const std::vector<std::string>& argv) {
  if (exit_code == 0) return R"({"metadata":{},"status":"Success"})";
  std::string command;
  for (const auto& a : argv) command += (command.empty() ? "" : " ") + a;
  Json status = {
      {"metadata", Json::object()},
      {"status", "Failure"},
      {"message", "command terminated with non-zero exit code: error executing command [" +
                      command + "], exit code " + std::to_string(exit_code)},
      {"reason", "NonZeroExitCode"},
      {"details",
       {{"causes", Json::array({{{"reason", "ExitCode"}, {"message", std::to_string(exit_code)}}})}}}};
  return base::DumpJson(status);
}

bool ExecProcess::WriteStdin(std::string_view data) {
  while (!data.empty() && stdin_fd() >= 0) {
    ssize_t w = ::write(stdin_fd(), data.data(), data.size());
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    data.remove_prefix(static_cast<std::size_t>(w));
  }
  return stdin_fd() >= 0;
}

namespace {

std::string Errno(const std::string& what) { return what + ": " + std::strerror(errno); }

// A process spawned with pipes or a terminal for its stdio.
class SpawnedProcess : public ExecProcess {
 public:
  ~SpawnedProcess() override {
    Kill();
    (void)Wait();
    for (int fd : {in_, out_, err_, master_}) {
      if (fd >= 0) ::close(fd);
    }
  }

  // Spawns `argv` (argv[0] absolute). `pid_file`, when set, is where runc writes the command's pid.
  static Result<std::unique_ptr<SpawnedProcess>> Spawn(const std::vector<std::string>& argv,
                                                       bool tty, bool stdin,
                                                       std::string pid_file) {
    std::unique_ptr<SpawnedProcess> p(new SpawnedProcess());
    p->pid_file_ = std::move(pid_file);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    short flags = 0;
    int child_ends[3] = {-1, -1, -1};
    std::string slave_path;
    Status failed = Status::Ok();
    if (tty) {
      // A new session whose first terminal opened becomes its controlling terminal: the child
      // then gets SIGWINCH when Resize changes the size.
      p->master_ = ::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
      if (p->master_ < 0 || ::grantpt(p->master_) != 0 || ::unlockpt(p->master_) != 0) {
        failed = base::Internal(Errno("allocating a terminal"));
      } else {
        char name[128];
        if (::ptsname_r(p->master_, name, sizeof name) != 0) {
          failed = base::Internal(Errno("ptsname"));
        }
        slave_path = name;
        flags |= POSIX_SPAWN_SETSID;
        posix_spawn_file_actions_addopen(&actions, 0, slave_path.c_str(), O_RDWR, 0);
        posix_spawn_file_actions_adddup2(&actions, 0, 1);
        posix_spawn_file_actions_adddup2(&actions, 0, 2);
        p->in_ = stdin ? ::dup(p->master_) : -1;
        p->out_ = ::dup(p->master_);
        if (p->in_ >= 0) ::fcntl(p->in_, F_SETFD, FD_CLOEXEC);
        ::fcntl(p->out_, F_SETFD, FD_CLOEXEC);
      }
    } else {
      int fds[3][2] = {{-1, -1}, {-1, -1}, {-1, -1}};
      for (int i = 0; i < 3 && failed.ok(); ++i) {
        if (i == 0 && !stdin) continue;
        if (::pipe2(fds[i], O_CLOEXEC) != 0) failed = base::Internal(Errno("pipe"));
      }
      if (failed.ok()) {
        if (stdin) {
          child_ends[0] = fds[0][0];
          p->in_ = fds[0][1];
          posix_spawn_file_actions_adddup2(&actions, child_ends[0], 0);
        } else {
          posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
        }
        child_ends[1] = fds[1][1];
        p->out_ = fds[1][0];
        child_ends[2] = fds[2][1];
        p->err_ = fds[2][0];
        posix_spawn_file_actions_adddup2(&actions, child_ends[1], 1);
        posix_spawn_file_actions_adddup2(&actions, child_ends[2], 2);
      } else {
        for (auto& f : fds) {
          for (int fd : f) {
            if (fd >= 0) ::close(fd);
          }
        }
      }
    }
    if (failed.ok()) {
      ResetSignalsOnSpawn(&attr, flags);
      std::vector<char*> args;
      for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
      args.push_back(nullptr);
      int rc = ::posix_spawn(&p->pid_, argv[0].c_str(), &actions, &attr, args.data(), environ);
      if (rc != 0) {
        errno = rc;
        failed = base::Internal(Errno("starting " + argv[0]));
        p->pid_ = 0;
      }
    }
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    for (int fd : child_ends) {
      if (fd >= 0) ::close(fd);
    }
    if (!failed.ok()) return failed;
    return p;
  }

  int stdin_fd() const override { return in_; }
  int stdout_fd() const override { return out_; }
  int stderr_fd() const override { return err_; }

  void CloseStdin() override {
    std::lock_guard lock(mu_);
    if (master_ >= 0 || in_ < 0) return;  // a terminal's input ends with the session
    ::close(in_);
    in_ = -1;
  }

  void Resize(uint16_t width, uint16_t height) override {
    if (master_ < 0) return;
    winsize ws{};
    ws.ws_col = width;
    ws.ws_row = height;
    ::ioctl(master_, TIOCSWINSZ, &ws);
  }

  int Wait() override {
    std::lock_guard wait_lock(wait_mu_);
    if (waited_) return exit_code_;
    if (pid_ <= 0) return 255;
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    std::lock_guard lock(mu_);
    waited_ = true;
    exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    if (!pid_file_.empty()) ::unlink(pid_file_.c_str());
    return exit_code_;
  }

  void Kill() override {
    std::lock_guard lock(mu_);
    if (waited_ || pid_ <= 0) return;
    // The command itself: killing only runc would leave it running, orphaned to the agent.
    if (!pid_file_.empty()) {
      auto text = base::ReadFile(pid_file_);
      int pid = text.ok() ? std::atoi(text->c_str()) : 0;
      if (pid > 0) {
        ::kill(pid, SIGKILL);
        return;  // runc exits with it
      }
    }
    ::kill(pid_, SIGKILL);
  }

 private:
  SpawnedProcess() = default;

  pid_t pid_ = 0;
  int in_ = -1, out_ = -1, err_ = -1, master_ = -1;
  std::string pid_file_;
  std::mutex wait_mu_;  // one waitpid at a time
  std::mutex mu_;
  bool waited_ = false;  // guarded by mu_
  int exit_code_ = 0;    // guarded by mu_
};

class RuncExecRunner : public ExecRunner {
 public:
  RuncExecRunner(std::string runc, const std::string& root)
      : runc_(std::move(runc)), runc_root_(root + "/runc"), containers_(root + "/containers") {}

  Result<std::unique_ptr<ExecProcess>> Start(const std::string& container_id,
                                             const std::vector<std::string>& argv, bool tty,
                                             bool stdin) override {
    std::string pid_file = containers_ + "/" + container_id + "/stream-exec-" +
                           std::to_string(::getpid()) + "-" + std::to_string(serial_++) + ".pid";
    std::vector<std::string> full = {runc_, "--root", runc_root_, "exec", "--pid-file", pid_file};
    if (tty) full.push_back("--tty");
    full.push_back(container_id);
    full.insert(full.end(), argv.begin(), argv.end());
    ASSIGN_OR_RETURN(auto p, SpawnedProcess::Spawn(full, tty, stdin, pid_file));
    return std::unique_ptr<ExecProcess>(std::move(p));
  }

 private:
  const std::string runc_, runc_root_, containers_;
  std::atomic<uint64_t> serial_{0};
};

class HostExecRunner : public ExecRunner {
 public:
  Result<std::unique_ptr<ExecProcess>> Start(const std::string&,
                                             const std::vector<std::string>& argv, bool tty,
                                             bool stdin) override {
    if (argv.empty() || argv[0].empty() || argv[0][0] != '/') {
      return base::Invalid("the host exec runner needs an absolute command");
    }
    ASSIGN_OR_RETURN(auto p, SpawnedProcess::Spawn(argv, tty, stdin, ""));
    return std::unique_ptr<ExecProcess>(std::move(p));
  }
};

// A running container's output from now on, as an ExecProcess, for `kubectl attach`: a thread
// follows the container's CRI log and sends each stream's lines to its own socket (sockets, not
// pipes: a write after the reader went away fails without SIGPIPE), until the container stops
// running (`running` says so) or Kill.
class LogAttachment : public ExecProcess {
 public:
  static Result<std::unique_ptr<LogAttachment>> Start(std::string path,
                                                      std::function<bool()> running) {
    std::unique_ptr<LogAttachment> a(new LogAttachment());
    for (int i = 0; i < 2; ++i) {
      int pair[2];
      if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) {
        return base::Internal(Errno("socketpair"));
      }
      a->read_[i] = pair[0];
      a->write_[i] = pair[1];
    }
    a->OpenLog(path, true);  // now: what the container writes after this is sent
    a->thread_ = std::thread([a = a.get(), path = std::move(path), running = std::move(running)] {
      a->Follow(path, running);
    });
    return a;
  }
  ~LogAttachment() override {
    Kill();
    (void)Wait();
    for (int fd : read_) ::close(fd);
  }

  int stdin_fd() const override { return -1; }
  int stdout_fd() const override { return read_[0]; }
  int stderr_fd() const override { return read_[1]; }
  void CloseStdin() override {}
  void Resize(uint16_t, uint16_t) override {}
  int Wait() override {
    std::lock_guard lock(wait_mu_);
    if (thread_.joinable()) thread_.join();
    return 0;
  }
  void Kill() override {
    if (stop_.exchange(true)) return;
    for (int fd : read_) ::shutdown(fd, SHUT_RDWR);
  }

 private:
  LogAttachment() = default;

  void OpenLog(const std::string& path, bool at_end) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    struct stat st;
    inode_ = fd_ >= 0 && ::fstat(fd_, &st) == 0 ? st.st_ino : 0;
    if (fd_ >= 0 && at_end) ::lseek(fd_, 0, SEEK_END);
  }

  void Follow(const std::string& path, const std::function<bool()>& running) {
    int& fd = fd_;
    std::string partial, joined[2];
    auto drain = [&] {
      char buf[32 * 1024];
      ssize_t n;
      while (fd >= 0 && (n = ::read(fd, buf, sizeof buf)) > 0) {
        partial.append(buf, static_cast<std::size_t>(n));
        std::size_t start = 0, nl;
        while ((nl = partial.find('\n', start)) != std::string::npos) {
          auto record = ParseCriRecord(std::string_view(partial).substr(start, nl - start));
          start = nl + 1;
          if (!record.ok()) continue;
          int s = record->stream == LogStream::kStdout ? 0 : 1;
          joined[s] += record->content;
          if (record->partial) continue;
          joined[s] += "\n";
          std::string_view out = joined[s];
          while (!out.empty() && !stop_) {
            ssize_t w = ::send(write_[s], out.data(), out.size(), MSG_NOSIGNAL);
            if (w <= 0) break;
            out.remove_prefix(static_cast<std::size_t>(w));
          }
          joined[s].clear();
        }
        partial.erase(0, start);
      }
    };
    auto last_check = std::chrono::steady_clock::now();
    while (!stop_) {
      drain();
      struct stat st;
      if (::stat(path.c_str(), &st) == 0 && st.st_ino != inode_) {  // rotated: the new file
        drain();
        OpenLog(path, false);
        partial.clear();
        continue;
      }
      if (std::chrono::steady_clock::now() - last_check > std::chrono::seconds(1)) {
        last_check = std::chrono::steady_clock::now();
        if (!running()) {
          drain();
          break;
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    if (fd >= 0) ::close(fd);
    for (int w : write_) ::close(w);
  }

  int read_[2] = {-1, -1}, write_[2] = {-1, -1};
  int fd_ = -1;      // the log file; the thread's once started
  ino_t inode_ = 0;
  std::atomic<bool> stop_{false};
  std::mutex wait_mu_;
  std::thread thread_;
};

// What a container writes to its terminal from now on, as an ExecProcess, for `kubectl attach`
// to a container with `tty`: a socket subscribed to the terminal (ContainerStdio), which ends
// when the terminal hangs up or Kill.
class TerminalOutput : public ExecProcess {
 public:
  static Result<std::unique_ptr<TerminalOutput>> Start(ContainerStdio& stdio) {
    ASSIGN_OR_RETURN(int fd, stdio.SubscribeOutput());
    return std::unique_ptr<TerminalOutput>(new TerminalOutput(fd));
  }
  ~TerminalOutput() override { ::close(fd_); }

  int stdin_fd() const override { return -1; }
  int stdout_fd() const override { return fd_; }
  int stderr_fd() const override { return -1; }
  void CloseStdin() override {}
  void Resize(uint16_t, uint16_t) override {}
  int Wait() override { return 0; }
  void Kill() override { ::shutdown(fd_, SHUT_RDWR); }

 private:
  explicit TerminalOutput(int fd) : fd_(fd) {}
  const int fd_;
};

// An attach session to a container with stdin or a terminal: the output as `output` gives it,
// the input (when the client sends it) to the container's stdin. With stdinOnce, the container's
// stdin is closed when the session ends, or when the client's input ends (no terminal), as
// containerd does; otherwise it stays open for the next session.
class StdioAttachment : public ExecProcess {
 public:
  StdioAttachment(std::unique_ptr<ExecProcess> output, std::shared_ptr<ContainerStdio> stdio,
                  bool with_stdin)
      : output_(std::move(output)), stdio_(std::move(stdio)), with_stdin_(with_stdin) {}
  ~StdioAttachment() override {
    output_.reset();  // its thread is done before stdin closes
    if (with_stdin_ && stdio_->options().stdin_once) stdio_->CloseStdin();
  }

  int stdin_fd() const override { return -1; }
  int stdout_fd() const override { return output_->stdout_fd(); }
  int stderr_fd() const override { return output_->stderr_fd(); }
  bool WriteStdin(std::string_view data) override { return with_stdin_ && stdio_->Write(data); }
  void CloseStdin() override {
    if (with_stdin_ && stdio_->options().stdin_once && !stdio_->options().tty) {
      stdio_->CloseStdin();
    }
  }
  void Resize(uint16_t width, uint16_t height) override { stdio_->Resize(width, height); }
  int Wait() override { return output_->Wait(); }
  void Kill() override { output_->Kill(); }

 private:
  std::unique_ptr<ExecProcess> output_;
  const std::shared_ptr<ContainerStdio> stdio_;
  const bool with_stdin_;
};

// The kubelet answers errors of its log endpoint in plain text; the API server turns them into
// Status objects.
HttpResponse TextError(int code, const std::string& message) {
  HttpResponse r;
  r.status = code;
  r.content_type = "text/plain; charset=utf-8";
  r.body = message;
  return r;
}

HttpResponse TextError(const Status& s) {
  return TextError(s.code() == base::Code::kNotFound ? 404
                   : s.code() == base::Code::kBadRequest ? 400
                                                         : 500,
                   s.message());
}

bool Truthy(const std::string& v) { return v == "true" || v == "1"; }

// NS, POD and CONTAINER of "/PREFIX/NS/POD/CONTAINER".
bool SplitTarget(const std::string& path, std::size_t prefix, std::string* ns, std::string* pod,
                 std::string* container) {
  std::vector<std::string> parts;
  std::size_t at = prefix;
  while (at <= path.size()) {
    std::size_t slash = path.find('/', at);
    if (slash == std::string::npos) slash = path.size();
    parts.push_back(path.substr(at, slash - at));
    at = slash + 1;
  }
  if (parts.size() != 3) return false;
  for (const auto& p : parts) {
    if (p.empty()) return false;
  }
  *ns = parts[0];
  *pod = parts[1];
  *container = parts[2];
  return true;
}

bool WriteChunk(TakenConnection& conn, std::string_view data) {
  if (data.empty()) return true;
  return conn.Write(apiserver::HttpChunk(data));
}

class Server : public PodServer {
 public:
  Server(ContainerDirectory* containers, ExecRunner* exec) : containers_(containers), exec_(exec) {}
  ~Server() override { Stop(); }

  Status Init(const PodServerOptions& options) {
    apiserver::HttpServerOptions http;
    http.host = options.host;
    http.port = options.port;
    http.cert_file = options.cert_file;
    http.key_file = options.key_file;
    http.client_ca_file = options.client_ca_file;
    http.client_names = options.client_names;
    http.max_body_bytes = 64 * 1024;
    ASSIGN_OR_RETURN(http_, apiserver::StartHttpServer(
                                http, [this](const HttpRequest& r) { return Handle(r); }));
    return Status::Ok();
  }

  uint16_t port() const override { return http_ ? http_->port() : 0; }

  void Stop() override {
    if (http_) http_->Stop();
  }

 private:
  HttpResponse Handle(const HttpRequest& request) {
    const std::string& path = request.path;
    if (path == "/healthz") return TextError(200, "ok");
    std::string ns, pod, container;
    if (path.rfind("/containerLogs/", 0) == 0) {
      if (request.method != "GET") return TextError(405, "only GET");
      if (!SplitTarget(path, 15, &ns, &pod, &container)) {
        return TextError(400, "expected /containerLogs/NAMESPACE/POD/CONTAINER");
      }
      return Logs(request, ns, pod, container);
    }
    if (path.rfind("/exec/", 0) == 0) {
      if (!SplitTarget(path, 6, &ns, &pod, &container)) {
        return apiserver::StatusResponse(
            base::BadRequest("expected /exec/NAMESPACE/POD/CONTAINER"));
      }
      return Exec(request, ns, pod, container);
    }
    if (path.rfind("/portForward/", 0) == 0) {
      std::size_t slash = path.find('/', 13);
      if (slash == std::string::npos || slash == 13 || slash + 1 >= path.size() ||
          path.find('/', slash + 1) != std::string::npos) {
        return apiserver::StatusResponse(base::BadRequest("expected /portForward/NAMESPACE/POD"));
      }
      return PortForward(request, path.substr(13, slash - 13), path.substr(slash + 1));
    }
    if (path.rfind("/attach/", 0) == 0) {
      if (!SplitTarget(path, 8, &ns, &pod, &container)) {
        return apiserver::StatusResponse(
            base::BadRequest("expected /attach/NAMESPACE/POD/CONTAINER"));
      }
      return Attach(request, ns, pod, container);
    }
    return TextError(404, "404 page not found\n");
  }

  HttpResponse Logs(const HttpRequest& request, const std::string& ns, const std::string& pod,
                    const std::string& container) {
    LogReadOptions read;
    auto integer = [&](const char* name, int64_t* out) {
      if (!request.HasQuery(name)) return true;
      std::string v = request.Query(name);
      char* end = nullptr;
      errno = 0;
      long long n = std::strtoll(v.c_str(), &end, 10);
      if (v.empty() || *end != '\0' || errno != 0) return false;
      *out = n;
      return true;
    };
    int64_t since_seconds = -1;
    if (!integer("tailLines", &read.tail_lines) || !integer("limitBytes", &read.limit_bytes) ||
        !integer("sinceSeconds", &since_seconds)) {
      return TextError(400, "tailLines, limitBytes and sinceSeconds must be integers");
    }
    if (since_seconds >= 0) {
      read.since = base::RealClock()->Now() - std::chrono::seconds(since_seconds);
    } else if (request.HasQuery("sinceTime")) {
      base::WallTime t;
      if (!base::ParseRfc3339(request.Query("sinceTime"), &t)) {
        return TextError(400, "sinceTime must be an RFC 3339 time");
      }
      read.since = t;
    }
    read.timestamps = Truthy(request.Query("timestamps"));
    const bool follow = Truthy(request.Query("follow"));
    const bool previous = Truthy(request.Query("previous"));
    auto target = containers_->Find(ns, pod, container, previous);
    if (!target.ok()) return TextError(target.status());
    HttpResponse response;
    response.takeover = [this, read, follow, previous, target = *target, ns, pod,
                         container](TakenConnection& conn) {
      if (!conn.Write("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                      "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n")) {
        return;
      }
      int64_t left = read.limit_bytes;
      bool open = true;     // the client takes more
      bool limited = false;  // limitBytes reached
      auto send = [&](std::string_view data) {
        if (left >= 0) {
          if (static_cast<int64_t>(data.size()) >= left) {
            data = data.substr(0, static_cast<std::size_t>(left));
            limited = true;
          }
          left -= static_cast<int64_t>(data.size());
        }
        if (!WriteChunk(conn, data)) open = false;
        return open && !limited;
      };
      int64_t end_offset = -1;
      LogReadOptions options = read;
      options.end_offset = &end_offset;
      Status read_status = ReadContainerLog(target.log_path, options, send);
      if (!read_status.ok() && !read_status.IsNotFound()) {
        LOG_WARNING << "reading " << target.log_path << ": " << read_status.ToString();
      }
      if (follow && open && !limited && !previous) {
        FollowLog(conn, target, read.timestamps, end_offset, ns, pod, container, send, &open);
      }
      if (open) conn.Write("0\r\n\r\n");
    };
    return response;
  }

  // Sends what the container appends until it stops running, its log moves on to a new run, or
  // the client goes away.
  template <typename Send>
  void FollowLog(TakenConnection& conn, const ContainerTarget& target, bool timestamps,
                 int64_t start_offset, const std::string& ns, const std::string& pod,
                 const std::string& container, Send& send, bool* open) {
    LogFollower follower(target.log_path, timestamps, start_offset);
    bool running = target.running;
    auto last_check = std::chrono::steady_clock::now();
    for (;;) {
      std::string out = follower.Poll();
      if (!out.empty() && !send(out)) return;
      if (!running) return;
      char discard[256];
      if (conn.Read(discard, sizeof discard, std::chrono::milliseconds(100)) == 0) {
        *open = false;
        return;
      }
      if (std::chrono::steady_clock::now() - last_check > std::chrono::seconds(1)) {
        last_check = std::chrono::steady_clock::now();
        auto now = containers_->Find(ns, pod, container, false);
        // Ends after one more Poll: what the run wrote last is read first.
        running = now.ok() && now->running && now->log_path == target.log_path;
      }
    }
  }

  HttpResponse Exec(const HttpRequest& request, const std::string& ns, const std::string& pod,
                    const std::string& container) {
    auto target = containers_->Find(ns, pod, container, false);
    if (!target.ok()) return apiserver::StatusResponse(target.status());
    if (!target->running || target->container_id.empty()) {
      return apiserver::StatusResponse(base::BadRequest(
          "container \"" + container + "\" in pod \"" + pod + "\" is not running"));
    }
    std::vector<std::string> argv;
    for (auto [it, end] = request.query.equal_range("command"); it != end; ++it) {
      argv.push_back(it->second);
    }
    if (argv.empty()) {
      return apiserver::StatusResponse(base::BadRequest("you must specify at least 1 command"));
    }
    auto upgrade = Negotiate(request, "exec");
    if (!upgrade.ok()) return apiserver::StatusResponse(upgrade.status());
    const bool tty = Truthy(request.Query("tty"));
    const bool stdin = Truthy(request.Query("stdin"));
    auto process = exec_->Start(target->container_id, argv, tty, stdin);
    if (!process.ok()) return apiserver::StatusResponse(process.status());
    HttpResponse response;
    response.takeover = [process = std::shared_ptr<ExecProcess>(std::move(*process)),
                         upgrade = *upgrade, request, argv, tty](TakenConnection& conn) {
      if (!conn.Write(upgrade.head)) return;
      if (upgrade.spdy) {
        RunSpdySession(conn, *process, request, argv);
      } else {
        RunExecSession(conn, *process, upgrade.protocol == kV5, tty, argv);
      }
    };
    return response;
  }

  // `kubectl attach`: the container's output from now on, until it stops running, and its stdin
  // when asked for and the container has one (ContainerStdio); on its terminal with `tty`.
  HttpResponse Attach(const HttpRequest& request, const std::string& ns, const std::string& pod,
                      const std::string& container) {
    auto target = containers_->Find(ns, pod, container, false);
    if (!target.ok()) return apiserver::StatusResponse(target.status());
    const std::string quoted = "container \"" + container + "\" in pod \"" + pod + "\"";
    if (!target->running) {
      return apiserver::StatusResponse(base::BadRequest(quoted + " is not running"));
    }
    const bool stdin = Truthy(request.Query("stdin"));
    const bool tty = target->stdio_options.tty;
    const std::shared_ptr<ContainerStdio>& stdio = target->stdio;
    const char* lost = "; they do not outlive the agent, which restarted since the container started";
    if (stdin && !target->stdio_options.stdin) {
      return apiserver::StatusResponse(base::BadRequest(
          quoted + " doesn't have stdin enabled (stdin: true in its spec); attach without -i, "
                   "or use kubectl exec -i"));
    }
    if ((stdin || tty) && !stdio) {
      return apiserver::StatusResponse(
          base::BadRequest(quoted + " has lost its " + (tty ? "terminal" : "stdin") + lost));
    }
    if (stdin && !stdio->stdin_open()) {
      return apiserver::StatusResponse(base::BadRequest(
          quoted + "'s stdin is closed: stdinOnce closed it when the first attach session ended"));
    }
    auto upgrade = Negotiate(request, "attach");
    if (!upgrade.ok()) return apiserver::StatusResponse(upgrade.status());
    std::unique_ptr<ExecProcess> session;
    if (tty) {
      auto output = TerminalOutput::Start(*stdio);
      if (!output.ok()) return apiserver::StatusResponse(output.status());
      session = std::move(*output);
    } else {
      auto still_running = [this, ns, pod, container, path = target->log_path] {
        auto now = containers_->Find(ns, pod, container, false);
        return now.ok() && now->running && now->log_path == path;
      };
      auto output = LogAttachment::Start(target->log_path, still_running);
      if (!output.ok()) return apiserver::StatusResponse(output.status());
      session = std::move(*output);
    }
    if (stdio) session = std::make_unique<StdioAttachment>(std::move(session), stdio, stdin);
    std::shared_ptr<ExecProcess> attachment = std::move(session);
    HttpResponse response;
    response.takeover = [attachment, upgrade = *upgrade, request, tty](TakenConnection& conn) {
      if (!conn.Write(upgrade.head)) return;
      if (upgrade.spdy) {
        RunSpdySession(conn, *attachment, request, {});
      } else {
        RunExecSession(conn, *attachment, upgrade.protocol == kV5, tty, {});
      }
    };
    return response;
  }

  static constexpr const char* kV5 = "v5.channel.k8s.io";

  // `kubectl port-forward`: SPDY/3.1 with portforward.k8s.io, or (kubectl 1.31+) the same SPDY
  // tunnelled in a WebSocket, subprotocol SPDY/3.1+portforward.k8s.io.
  HttpResponse PortForward(const HttpRequest& request, const std::string& ns,
                           const std::string& pod) {
    auto netns = containers_->NetworkNamespace(ns, pod);
    if (!netns.ok()) return apiserver::StatusResponse(netns.status());
    std::string upgrade = request.Header("upgrade");
    for (char& c : upgrade) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    std::string head;
    bool tunnel = false;
    if (upgrade == "spdy/3.1" &&
        request.Header("x-stream-protocol-version").find("portforward.k8s.io") !=
            std::string::npos) {
      head = "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n"
             "X-Stream-Protocol-Version: portforward.k8s.io\r\n\r\n";
    } else if (upgrade == "websocket" && !request.Header("sec-websocket-key").empty() &&
               request.Header("sec-websocket-protocol").find(kTunnelledPortForward) !=
                   std::string::npos) {
      head = SwitchingProtocols(request, kTunnelledPortForward);
      tunnel = true;
    } else {
      return apiserver::StatusResponse(base::BadRequest(
          "fulcrum serves port forwarding over SPDY/3.1 (portforward.k8s.io), alone or in a "
          "WebSocket (SPDY/3.1+portforward.k8s.io)"));
    }
    HttpResponse response;
    response.takeover = [netns = *netns, pod, head, tunnel](TakenConnection& conn) {
      if (!conn.Write(head)) return;
      if (tunnel) {
        WebSocketTunnel inner(conn);
        RunPortForwardSession(inner, netns, pod);
      } else {
        RunPortForwardSession(conn, netns, pod);
      }
    };
    return response;
  }

  static constexpr const char* kTunnelledPortForward = "SPDY/3.1+portforward.k8s.io";

  // A byte stream carried in WebSocket binary messages (client-go's TunnelingConnection): Read
  // returns the messages' payloads, Write sends one message; pings are answered.
  class WebSocketTunnel : public TakenConnection {
   public:
    explicit WebSocketTunnel(TakenConnection& conn) : conn_(conn) {}
    long Read(char* buf, std::size_t n, std::chrono::milliseconds timeout) override {
      while (pending_.empty()) {
        websocket::Opcode op;
        std::string payload;
        auto next = decoder_.Next(&op, &payload);
        if (!next.ok()) return 0;
        if (*next) {
          if (op == websocket::kClose) return 0;
          if (op == websocket::kPing) SendFrame(websocket::EncodeFrame(websocket::kPong, payload));
          if (op == websocket::kBinary || op == websocket::kText) pending_ = std::move(payload);
          continue;
        }
        char raw[16 * 1024];
        long got = conn_.Read(raw, sizeof raw, timeout);
        if (got <= 0) return got;
        decoder_.Feed(std::string_view(raw, static_cast<std::size_t>(got)));
      }
      std::size_t k = std::min(n, pending_.size());
      std::memcpy(buf, pending_.data(), k);
      pending_.erase(0, k);
      return static_cast<long>(k);
    }
    bool Write(std::string_view data) override {
      return SendFrame(websocket::EncodeFrame(websocket::kBinary, data));
    }
    void Close() override { conn_.Close(); }

   private:
    bool SendFrame(const std::string& frame) {
      std::lock_guard lock(write_mu_);
      return conn_.Write(frame);
    }
    TakenConnection& conn_;
    websocket::Decoder decoder_;
    std::string pending_;
    std::mutex write_mu_;
  };

  // A TCP connection to 127.0.0.1:`port` in the network namespace at `netns` ("" here): a thread
  // enters the namespace, and the socket stays in it. -1 with *error set on failure.
  static int DialInNamespace(const std::string& netns, int port, std::string* error) {
    int fd = -1;
    std::thread([&] {
      if (!netns.empty()) {
        int ns = ::open(netns.c_str(), O_RDONLY | O_CLOEXEC);
        if (ns < 0 || ::setns(ns, CLONE_NEWNET) != 0) {
          *error = Errno("entering the network namespace " + netns);
          if (ns >= 0) ::close(ns);
          return;
        }
        ::close(ns);
      }
      fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_in addr{};
      addr.sin_family = AF_INET;
      addr.sin_port = htons(static_cast<uint16_t>(port));
      addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        *error = Errno("dial tcp4 127.0.0.1:" + std::to_string(port));
        if (fd >= 0) ::close(fd);
        fd = -1;
      }
    }).join();
    return fd;
  }

  // The kubelet's port forwarding protocol: for each connection the client opens an error and a
  // data stream with the same "requestid" and the "port"; the agent connects to the port in the
  // pod, copies both ways (FIN ends a direction), then finishes both streams; a failure is the
  // error stream's text.
  static void RunPortForwardSession(TakenConnection& conn, const std::string& netns,
                                    const std::string& pod) {
    struct Forward {
      uint32_t error = 0, data = 0;
      int port = 0;
      int fd = -1;
      bool started = false;
    };
    std::mutex mu;  // the connection's writes, the compressor, `forwards`
    std::map<std::string, Forward> forwards;  // by request id
    std::map<uint32_t, int> sockets;          // data stream → socket
    std::vector<std::thread> copiers;
    spdy::HeaderCompressor compressor;
    auto write = [&](const std::string& frame) {
      std::lock_guard lock(mu);
      return conn.Write(frame);
    };
    auto start = [&](Forward f) {
      std::string error;
      int fd = DialInNamespace(netns, f.port, &error);
      if (fd < 0) {
        write(spdy::DataFrame(f.error, "error forwarding port " + std::to_string(f.port) +
                                           " to pod " + pod + ": " + error, true));
        write(spdy::DataFrame(f.data, "", true));
        return;
      }
      {
        std::lock_guard lock(mu);
        sockets[f.data] = fd;
      }
      copiers.emplace_back([&write, f, fd] {
        char buf[32 * 1024];
        for (;;) {
          ssize_t n = ::recv(fd, buf, sizeof buf, 0);
          if (n < 0 && errno == EINTR) continue;
          if (n <= 0) break;
          if (!write(spdy::DataFrame(f.data, std::string_view(buf, static_cast<std::size_t>(n)),
                                     false))) {
            break;
          }
        }
        write(spdy::DataFrame(f.data, "", true));
        write(spdy::DataFrame(f.error, "", true));
      });
    };
    ReadSpdyFrames(conn, write, [&](const spdy::Frame& frame, const spdy::Headers& headers) {
      if (frame.control && frame.type == spdy::kSynStream) {
        const std::string port = HeaderOf(headers, "port");
        Forward ready;
        {
          std::lock_guard lock(mu);
          conn.Write(spdy::SynReply(frame.stream_id, compressor.Compress({}), false));
          Forward& f = forwards[HeaderOf(headers, "requestid")];
          (HeaderOf(headers, "streamtype") == "error" ? f.error : f.data) = frame.stream_id;
          f.port = std::atoi(port.c_str());
          if (f.error != 0 && f.data != 0 && !f.started) {
            f.started = true;
            ready = f;
          }
        }
        if (!ready.started) return true;
        if (ready.port <= 0 || ready.port > 65535) {
          write(spdy::DataFrame(ready.error, "invalid port \"" + port + "\"", true));
          write(spdy::DataFrame(ready.data, "", true));
        } else {
          start(ready);
        }
      } else if (frame.control && frame.type == spdy::kGoAway) {
        return false;
      } else if (frame.control && frame.type == spdy::kRstStream) {
        std::lock_guard lock(mu);
        if (auto it = sockets.find(frame.stream_id); it != sockets.end()) {
          ::shutdown(it->second, SHUT_RDWR);
        }
      } else if (!frame.control) {
        int fd = -1;
        {
          std::lock_guard lock(mu);
          if (auto it = sockets.find(frame.stream_id); it != sockets.end()) fd = it->second;
        }
        if (fd < 0) return true;
        std::string_view data = frame.payload;
        while (!data.empty()) {
          ssize_t w = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
          if (w < 0 && errno == EINTR) continue;
          if (w <= 0) break;
          data.remove_prefix(static_cast<std::size_t>(w));
        }
        if (frame.flags & spdy::kFlagFin) ::shutdown(fd, SHUT_WR);
      }
      return true;
    });
    {
      std::lock_guard lock(mu);
      for (auto& [id, fd] : sockets) ::shutdown(fd, SHUT_RDWR);
    }
    for (auto& t : copiers) t.join();
    for (auto& [id, fd] : sockets) ::close(fd);
  }

  struct Upgrade {
    bool spdy = false;     // SPDY/3.1 (kubectl before 1.30), else a WebSocket
    std::string protocol;  // the channel protocol
    std::string head;      // the 101 response
  };

  // How to answer an upgrade for `what`: a WebSocket with v5 or v4.channel.k8s.io, or SPDY/3.1
  // with v4.channel.k8s.io (X-Stream-Protocol-Version). BadRequest otherwise.
  static Result<Upgrade> Negotiate(const HttpRequest& request, const std::string& what) {
    auto lower = [](std::string v) {
      for (char& c : v) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      return v;
    };
    auto offers = [](const std::string& list, const std::string& token) {
      for (std::size_t at = list.find(token); at != std::string::npos;
           at = list.find(token, at + 1)) {
        std::size_t end = at + token.size();
        if ((at == 0 || list[at - 1] == ',' || list[at - 1] == ' ') &&
            (end == list.size() || list[end] == ',' || list[end] == ' ')) {
          return true;
        }
      }
      return false;
    };
    const std::string upgrade = lower(request.Header("upgrade"));
    if (upgrade == "spdy/3.1") {
      std::string offered = request.Header("x-stream-protocol-version");
      if (!offers(offered, "v4.channel.k8s.io")) {
        return base::BadRequest("none of the offered stream protocols \"" + offered +
                                "\" is supported: fulcrum speaks v4.channel.k8s.io over SPDY/3.1");
      }
      return Upgrade{true, "v4.channel.k8s.io",
                     "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                     "Upgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: v4.channel.k8s.io\r\n\r\n"};
    }
    if (upgrade != "websocket" || request.Header("sec-websocket-key").empty()) {
      return base::BadRequest(what + " needs a WebSocket upgrade (Upgrade: websocket, "
                              "Sec-WebSocket-Protocol: v5.channel.k8s.io) or SPDY/3.1");
    }
    std::string offered = request.Header("sec-websocket-protocol");
    for (const char* p : {kV5, "v4.channel.k8s.io"}) {
      if (offers(offered, p)) return Upgrade{false, p, SwitchingProtocols(request, p)};
    }
    return base::BadRequest("none of the offered subprotocols \"" + offered +
                            "\" is supported: fulcrum speaks v5.channel.k8s.io and "
                            "v4.channel.k8s.io");
  }

  static std::string SwitchingProtocols(const HttpRequest& request, const std::string& protocol) {
    return "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Accept: " + websocket::AcceptKey(request.Header("sec-websocket-key")) +
           "\r\nSec-WebSocket-Protocol: " + protocol + "\r\n\r\n";
  }

  // Reads SPDY frames until the connection ends, a protocol error, or `on_frame` returns false.
  // A SYN_STREAM's header block is decompressed for on_frame; PINGs are answered with `write`.
  template <typename Write, typename OnFrame>
  static void ReadSpdyFrames(TakenConnection& conn, Write& write, OnFrame on_frame) {
    spdy::FrameReader reader;
    spdy::HeaderDecompressor decompressor;
    std::string buf(16 * 1024, '\0');
    for (;;) {
      long n = conn.Read(buf.data(), buf.size(), std::chrono::seconds(1));
      if (n < 0) continue;
      if (n == 0) return;
      reader.Feed(std::string_view(buf.data(), static_cast<std::size_t>(n)));
      spdy::Frame frame;
      for (;;) {
        auto next = reader.Next(&frame);
        if (!next.ok()) {
          LOG_WARNING << "SPDY: " << next.status().ToString();
          return;
        }
        if (!*next) break;
        spdy::Headers headers;
        if (frame.control && frame.type == spdy::kSynStream) {
          auto block = frame.payload.size() >= 10
                           ? decompressor.Decompress(std::string_view(frame.payload).substr(10))
                           : base::Result<spdy::Headers>(base::BadRequest("short SYN_STREAM"));
          if (!block.ok()) {
            LOG_WARNING << "SPDY: " << block.status().ToString();
            return;
          }
          headers = std::move(*block);
        } else if (frame.control && frame.type == spdy::kPing) {
          write(spdy::ControlFrame(spdy::kPing, 0, frame.payload));
          continue;
        }
        if (!on_frame(frame, headers)) return;
      }
    }
  }

  static std::string HeaderOf(const spdy::Headers& headers, const std::string& name) {
    for (const auto& [n, v] : headers) {
      if (n == name) return v;
    }
    return "";
  }

  // A resize message: {"Width":W,"Height":H}.
  static void Resize(ExecProcess& process, std::string_view json) {
    Json size;
    if (base::ParseJson(json, &size).ok() && size.is_object()) {
      process.Resize(static_cast<uint16_t>(size.value("Width", 0)),
                     static_cast<uint16_t>(size.value("Height", 0)));
    }
  }

  // Sends the process's stdout and stderr (channels 1 and 2) until both end or `stop` is set.
  // Returns false once a send failed (the client is gone).
  template <typename Send>
  static bool PumpOutputs(ExecProcess& process, bool tty, const std::atomic<bool>& stop,
                          Send& send) {
    int fds[2] = {process.stdout_fd(), tty ? -1 : process.stderr_fd()};
    const uint8_t channels[2] = {kStdoutChannel, kStderrChannel};
    bool writable = true;
    for (;;) {
      pollfd p[2];
      int n = 0, which[2];
      for (int i = 0; i < 2; ++i) {
        if (fds[i] < 0) continue;
        p[n] = {fds[i], POLLIN, 0};
        which[n++] = i;
      }
      if (n == 0 || stop) break;
      if (::poll(p, static_cast<nfds_t>(n), 200) < 0 && errno != EINTR) break;
      for (int k = 0; k < n; ++k) {
        if (!(p[k].revents & (POLLIN | POLLHUP | POLLERR))) continue;
        char buf[32 * 1024];
        ssize_t got = ::read(p[k].fd, buf, sizeof buf);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) {
          fds[which[k]] = -1;  // EOF, or EIO from a terminal whose other side closed
          continue;
        }
        if (writable &&
            !send(channels[which[k]], std::string_view(buf, static_cast<std::size_t>(got)))) {
          writable = false;
        }
      }
    }
    return writable;
  }

  // The same session over SPDY/3.1 (kubectl before 1.30), protocol v4.channel.k8s.io: the client
  // opens one stream per channel (header "streamtype": error, stdin, stdout, stderr, resize),
  // each answered with SYN_REPLY; data frames carry the bytes, FIN ends a stream, the error
  // stream gets the exit status. Output waits until the streams asked for exist.
  static void RunSpdySession(TakenConnection& conn, ExecProcess& process, const HttpRequest& request,
                             const std::vector<std::string>& argv) {
    const bool tty = Truthy(request.Query("tty"));
    std::vector<std::string> expected = {"error"};
    if (Truthy(request.Query("stdin"))) expected.push_back("stdin");
    if (Truthy(request.Query("stdout"))) expected.push_back("stdout");
    if (Truthy(request.Query("stderr")) && !tty) expected.push_back("stderr");
    if (tty) expected.push_back("resize");
    std::mutex mu;  // the connection's writes, the compressor, `streams`
    std::condition_variable streams_changed;
    std::map<std::string, uint32_t> streams;
    spdy::HeaderCompressor compressor;
    auto write = [&](const std::string& frame) {
      std::lock_guard lock(mu);
      return conn.Write(frame);
    };
    auto stream = [&](const char* type) {
      std::lock_guard lock(mu);
      auto it = streams.find(type);
      return it == streams.end() ? 0u : it->second;
    };
    std::atomic<bool> client_gone{false};
    std::thread output([&] {
      {
        std::unique_lock lock(mu);
        streams_changed.wait_for(lock, std::chrono::seconds(30), [&] {
          if (client_gone) return true;
          for (const auto& t : expected) {
            if (!streams.count(t)) return false;
          }
          return true;
        });
      }
      const uint32_t out = stream("stdout"), err = stream("stderr"), status = stream("error");
      auto send = [&](uint8_t channel, std::string_view data) {
        uint32_t id = channel == kStdoutChannel ? out : err;
        return id == 0 || write(spdy::DataFrame(id, data, false));
      };
      bool writable = !client_gone && PumpOutputs(process, tty, client_gone, send);
      if (client_gone) process.Kill();
      int code = process.Wait();
      if (writable) {
        for (uint32_t id : {out, err}) {
          if (id != 0) write(spdy::DataFrame(id, "", true));
        }
        if (status != 0) write(spdy::DataFrame(status, ExitStatusJson(code, argv), true));
      }
      conn.Close();
    });
    std::string resize;
    ReadSpdyFrames(conn, write, [&](const spdy::Frame& frame, const spdy::Headers& headers) {
      if (frame.control && frame.type == spdy::kSynStream) {
        std::lock_guard lock(mu);
        conn.Write(spdy::SynReply(frame.stream_id, compressor.Compress({}), false));
        streams[HeaderOf(headers, "streamtype")] = frame.stream_id;
        streams_changed.notify_all();
      } else if (frame.control &&
                 (frame.type == spdy::kRstStream || frame.type == spdy::kGoAway)) {
        return false;
      } else if (!frame.control && frame.stream_id != 0 && frame.stream_id == stream("stdin")) {
        (void)process.WriteStdin(frame.payload);
        if (frame.flags & spdy::kFlagFin) process.CloseStdin();
      } else if (!frame.control && frame.stream_id != 0 && frame.stream_id == stream("resize")) {
        resize += frame.payload;  // JSON objects, one a line
        for (std::size_t nl; (nl = resize.find('\n')) != std::string::npos;) {
          Resize(process, std::string_view(resize).substr(0, nl));
          resize.erase(0, nl + 1);
        }
      }
      return true;
    });
    client_gone = true;
    {
      std::lock_guard lock(mu);
      streams_changed.notify_all();
    }
    output.join();
  }

  // Copies between the WebSocket and the process until the process has exited and its output is
  // sent (then the error channel carries its exit status), or the client goes away (then the
  // process is killed).
  static void RunExecSession(TakenConnection& conn, ExecProcess& process, bool v5, bool tty,
                             const std::vector<std::string>& argv) {
    std::mutex write_mu;
    auto send_frame = [&](websocket::Opcode op, std::string_view payload) {
      std::lock_guard lock(write_mu);
      return conn.Write(websocket::EncodeFrame(op, payload));
    };
    auto send = [&](uint8_t channel, std::string_view data) {
      std::string payload(1, static_cast<char>(channel));
      payload.append(data);
      return send_frame(websocket::kBinary, payload);
    };
    std::atomic<bool> client_gone{false};
    std::thread output([&] {
      bool writable = PumpOutputs(process, tty, client_gone, send);
      if (client_gone) process.Kill();
      int code = process.Wait();
      if (writable) {
        send(kErrorChannel, ExitStatusJson(code, argv));
        send_frame(websocket::kClose, std::string("\x03\xe8", 2));  // 1000: normal closure
      }
      conn.Close();
    });
    websocket::Decoder decoder;
    std::string buf(16 * 1024, '\0');
    bool reading = true;
    while (reading) {
      long n = conn.Read(buf.data(), buf.size(), std::chrono::seconds(1));
      if (n < 0) continue;
      if (n == 0) break;
      decoder.Feed(std::string_view(buf.data(), static_cast<std::size_t>(n)));
      websocket::Opcode op;
      std::string message;
      for (;;) {
        auto next = decoder.Next(&op, &message);
        if (!next.ok()) {
          LOG_WARNING << "exec: " << next.status().ToString();
          reading = false;
          break;
        }
        if (!*next) break;
        if (op == websocket::kPing) {
          send_frame(websocket::kPong, message);
        } else if (op == websocket::kClose) {
          reading = false;
          break;
        } else if ((op == websocket::kBinary || op == websocket::kText) && !message.empty()) {
          auto channel = static_cast<uint8_t>(message[0]);
          std::string_view data = std::string_view(message).substr(1);
          if (channel == kStdinChannel) {
            (void)process.WriteStdin(data);
          } else if (channel == kResizeChannel) {
            Resize(process, data);
          } else if (v5 && channel == kCloseChannel && !data.empty() &&
                     static_cast<uint8_t>(data[0]) == kStdinChannel) {
            process.CloseStdin();
          }
        }
      }
    }
    // The output side closes the connection once the process is done; anything else ending the
    // input means the client went away.
    client_gone = true;
    output.join();
  }

  ContainerDirectory* containers_;
  ExecRunner* exec_;
  std::unique_ptr<apiserver::HttpServer> http_;
};

}  // namespace

std::unique_ptr<ExecRunner> NewRuncExecRunner(std::string runc, const std::string& root) {
  return std::make_unique<RuncExecRunner>(std::move(runc), root);
}

std::unique_ptr<ExecRunner> NewHostExecRunner() { return std::make_unique<HostExecRunner>(); }

Result<std::unique_ptr<PodServer>> StartPodServer(const PodServerOptions& options,
                                                  ContainerDirectory* containers,
                                                  ExecRunner* exec) {
  auto server = std::make_unique<Server>(containers, exec);
  RETURN_IF_ERROR(server->Init(options));
  return std::unique_ptr<PodServer>(std::move(server));
}

Result<std::unique_ptr<PodServer>> StartAgentPodServer(const std::string& listen,
                                                       const std::string& root,
                                                       const std::string& ca_pem,
                                                       ContainerDirectory* containers,
                                                       ExecRunner* exec) {
  if (ca_pem.empty()) {
    return base::Invalid("the pod server needs the cluster CA (certificate-authority-data in the "
                         "kubeconfig) to authenticate the API server; use --server-listen \"\" "
                         "to run without it");
  }
  const std::size_t colon = listen.rfind(':');
  char* end = nullptr;
  long port = colon == std::string::npos ? -1 : std::strtol(listen.c_str() + colon + 1, &end, 10);
  if (port < 0 || port > 65535 || end == nullptr || *end != '\0') {
    return base::Invalid("--server-listen must be HOST:PORT, not \"" + listen + "\"");
  }
  const std::string dir = root + "/pki";
  RETURN_IF_ERROR(base::MakeDirs(dir, 0700));
  PodServerOptions options;
  options.host = listen.substr(0, colon);
  options.port = static_cast<uint16_t>(port);
  options.cert_file = dir + "/pod-server.crt";
  options.key_file = dir + "/pod-server.key";
  options.client_ca_file = dir + "/cluster-ca.crt";
  options.client_names = {apiserver::kApiServerCommonName};
  RETURN_IF_ERROR(apiserver::EnsureSelfSignedCert(options.cert_file, options.key_file,
                                                  "fulcrum-agent", {options.host}));
  RETURN_IF_ERROR(base::WriteFileAtomic(options.client_ca_file, ca_pem, 0644));
  return StartPodServer(options, containers, exec);
}

}  // namespace fulcrum::agent
