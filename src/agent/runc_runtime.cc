#include "agent/runc_runtime.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mman.h>
#include <poll.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "base/file.h"

extern char** environ;

namespace fulcrum::agent {

std::vector<std::string> ShortLivedGoToolEnv(std::vector<std::string> env) {
  std::erase_if(env, [](const std::string& e) { return e.rfind("GOMAXPROCS=", 0) == 0; });
  env.push_back("GOMAXPROCS=1");
  return env;
}

namespace {

namespace fs = std::filesystem;
using base::Status;

std::string Errno(const std::string& what) { return what + ": " + std::strerror(errno); }

int ExitCodeOf(int wait_status) {
  if (WIFEXITED(wait_status)) return WEXITSTATUS(wait_status);
  if (WIFSIGNALED(wait_status)) return 128 + WTERMSIG(wait_status);
  return -1;
}

class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  int release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }

 private:
  int fd_;
};

std::string ReadAllFd(int fd) {
  std::string out;
  if (::lseek(fd, 0, SEEK_SET) < 0) return out;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

// /proc/self/mountinfo writes space, tab, newline and backslash as \ooo octal escapes.
std::string UnescapeMountPath(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size() &&
        std::all_of(s.begin() + i + 1, s.begin() + i + 4,
                    [](char ch) { return ch >= '0' && ch <= '7'; })) {
      out.push_back(static_cast<char>(std::stoi(s.substr(i + 1, 3), nullptr, 8)));
      i += 3;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

// The OCI mount of a container's "/": overlayfs of the image layers (`lower_dirs`, top first)
// under the container's writable layer.
base::Result<base::Json> OverlayRootMount(const std::vector<std::string>& lower_dirs,
                                          const std::string& upper_dir,
                                          const std::string& work_dir) {
  std::string lower;
  for (const auto& dir : lower_dirs) {
    if (dir.find_first_of(",:") != std::string::npos) {
      return base::Invalid("overlay lower directory \"" + dir + "\" contains ',' or ':'");
    }
    if (!lower.empty()) lower += ":";
    lower += dir;
  }
  return base::Json{{"destination", "/"},
                    {"type", "overlay"},
                    {"source", "overlay"},
                    {"options", base::Json::array({"lowerdir=" + lower, "upperdir=" + upper_dir,
                                                   "workdir=" + work_dir})}};
}

class SystemMounter : public Mounter {
 public:
  // Mounter
  Status Unmount(const std::string& target) override {
    for (int i = 0; i < 16 && IsMountPoint(target); ++i) {
      if (::umount2(target.c_str(), 0) != 0) {
        if (errno == EINVAL) return Status::Ok();
        if (errno != EBUSY || ::umount2(target.c_str(), MNT_DETACH) != 0) {
          return base::Internal(Errno("unmount " + target));
        }
      }
    }
    return Status::Ok();
  }

  bool IsMountPoint(const std::string& target) override {
    // statx says whether a path is the root of a mount (Linux 5.8) without reading the mount
    // table, which grows with every pod's network namespace; older kernels fall back to it.
    struct statx stx;
    if (::statx(AT_FDCWD, target.c_str(), 0, 0, &stx) == 0 &&
        (stx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) != 0) {
      return (stx.stx_attributes & STATX_ATTR_MOUNT_ROOT) != 0;
    }
    std::error_code ec;
    std::string path = fs::weakly_canonical(target, ec).string();
    if (ec) path = target;
    std::ifstream in("/proc/self/mountinfo");
    std::string line;
    while (std::getline(in, line)) {
      std::istringstream fields(line);
      std::string id, parent, dev, root, mount_point;
      fields >> id >> parent >> dev >> root >> mount_point;
      if (UnescapeMountPath(mount_point) == path) return true;
    }
    return false;
  }
};

enum class WaitResult { kExited, kTimedOut, kError };

// Waits for child `pid` to exit and reaps it into *wait_status: kTimedOut when it is still running
// after `timeout`, kError (errno set) when waitpid fails. Sleeps on a pidfd, so an exit is seen at
// once (no polling interval).
WaitResult WaitFor(pid_t pid, std::chrono::milliseconds timeout, int* wait_status) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  Fd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  auto pause = std::chrono::milliseconds(1);
  for (;;) {
    pid_t r = ::waitpid(pid, wait_status, WNOHANG);
    if (r == pid) return WaitResult::kExited;
    if (r < 0 && errno != EINTR) return WaitResult::kError;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return WaitResult::kTimedOut;
    if (pidfd.get() >= 0) {
      struct pollfd p = {pidfd.get(), POLLIN, 0};
      (void)::poll(&p, 1, static_cast<int>(std::min<int64_t>(left.count() + 1, 1 << 30)));
    } else {  // no pidfd_open (Linux < 5.3): poll the child
      std::this_thread::sleep_for(std::min(pause, left));
      pause = std::min(pause * 2, std::chrono::milliseconds(20));
    }
  }
}

class SystemProcessRunner : public ProcessRunner {
 public:
  // ProcessRunner
  base::Result<ProcessResult> Run(const ProcessSpec& spec) override {
    if (spec.argv.empty()) return base::Invalid("empty argv");
    Fd null_fd(::open("/dev/null", O_RDWR | O_CLOEXEC));
    Fd out_mem(spec.stdout_fd < 0 ? ::memfd_create("stdout", MFD_CLOEXEC) : -1);
    Fd err_mem(spec.stderr_fd < 0 ? ::memfd_create("stderr", MFD_CLOEXEC) : -1);
    if (null_fd.get() < 0 || (spec.stdout_fd < 0 && out_mem.get() < 0) ||
        (spec.stderr_fd < 0 && err_mem.get() < 0)) {
      return base::Internal(Errno("opening stdio for " + spec.argv[0]));
    }
    Fd in_mem(spec.stdin_fd < 0 && !spec.input.empty() ? ::memfd_create("stdin", MFD_CLOEXEC)
                                                        : -1);
    if (in_mem.get() >= 0) {
      size_t done = 0;
      while (done < spec.input.size()) {
        ssize_t n = ::write(in_mem.get(), spec.input.data() + done, spec.input.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return base::Internal(Errno("writing stdin for " + spec.argv[0]));
        done += static_cast<size_t>(n);
      }
      ::lseek(in_mem.get(), 0, SEEK_SET);
    }
    int in = spec.stdin_fd >= 0 ? spec.stdin_fd : in_mem.get() >= 0 ? in_mem.get() : null_fd.get();
    int out = spec.stdout_fd >= 0 ? spec.stdout_fd : out_mem.get();
    int err = spec.stderr_fd >= 0 ? spec.stderr_fd : err_mem.get();

    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, in, 0);
    posix_spawn_file_actions_adddup2(&actions, out, 1);
    posix_spawn_file_actions_adddup2(&actions, err, 2);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    ResetSignalsOnSpawn(&attr);

    std::vector<char*> argv;
    for (const auto& a : spec.argv) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    pid_t pid = 0;
    std::vector<char*> envp;
    for (const auto& e : spec.env) envp.push_back(const_cast<char*>(e.c_str()));
    envp.push_back(nullptr);
    int rc = ::posix_spawn(&pid, argv[0], &actions, &attr, argv.data(),
                           spec.env.empty() ? environ : envp.data());
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    if (rc != 0) {
      return base::Internal("cannot run " + spec.argv[0] + ": " + std::strerror(rc));
    }

    int wait_status = 0;
    WaitResult waited = WaitFor(pid, spec.timeout, &wait_status);
    if (waited == WaitResult::kError) return base::Internal(Errno("waitpid " + spec.argv[0]));
    if (waited == WaitResult::kTimedOut) {
      ::kill(pid, SIGKILL);
      while (::waitpid(pid, &wait_status, 0) < 0 && errno == EINTR) {
      }
      return Status(base::Code::kTimeout, spec.argv[0] + " " +
                                              (spec.argv.size() > 1 ? spec.argv[1] : "") +
                                              " did not finish in " +
                                              std::to_string(spec.timeout.count()) + " ms");
    }
    ProcessResult result;
    result.exit_code = ExitCodeOf(wait_status);
    if (out_mem.get() >= 0) result.out = ReadAllFd(out_mem.get());
    if (err_mem.get() >= 0) result.err = ReadAllFd(err_mem.get());
    return result;
  }

  Status BecomeSubreaper() override {
    if (::prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) return base::Internal(Errno("PR_SET_CHILD_SUBREAPER"));
    return Status::Ok();
  }

  std::optional<uint64_t> LiveStartTime(int pid) override {
    if (pid <= 0) return std::nullopt;
    auto stat = base::ReadFile("/proc/" + std::to_string(pid) + "/stat");
    if (!stat.ok()) return std::nullopt;
    // "PID (COMM) STATE ..." where COMM may hold spaces and parentheses: fields after the last ')'.
    size_t close = stat->rfind(')');
    if (close == std::string::npos) return std::nullopt;
    std::istringstream fields(stat->substr(close + 1));
    std::string state, field;
    fields >> state;
    if (state == "Z" || state == "X" || state == "x") return std::nullopt;
    for (int i = 4; i < 22 && fields >> field; ++i) {  // fields 4..21
    }
    uint64_t start = 0;
    if (!(fields >> start)) return std::nullopt;
    return start;
  }

  std::optional<int> TryReap(int pid) override {
    if (pid <= 0) return std::nullopt;
    int wait_status = 0;
    pid_t r;
    do {
      r = ::waitpid(pid, &wait_status, WNOHANG);
    } while (r < 0 && errno == EINTR);
    if (r != pid) return std::nullopt;
    return ExitCodeOf(wait_status);
  }
};

std::string Trim(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  size_t start = 0;
  while (start < s.size() && std::isspace(static_cast<unsigned char>(s[start]))) ++start;
  return s.substr(start);
}

// The last lines of a runc log or stderr, for error messages.
std::string Tail(const std::string& text, size_t max = 600) {
  std::string t = Trim(text);
  return t.size() > max ? "…" + t.substr(t.size() - max) : t;
}

// The message of the last error in a runc --log-format json log, or the log's tail.
std::string LastError(const std::string& log) {
  std::string msg;
  std::istringstream lines(log);
  std::string line;
  while (std::getline(lines, line)) {
    base::Json j;
    if (base::ParseJson(line, &j).ok() && base::StringAt(j, {"level"}) == "error") {
      msg = base::StringAt(j, {"msg"});
    }
  }
  return msg.empty() ? Tail(log) : msg;
}

// A container's stdout or stderr: a FIFO (logs.h) is opened read-write, so that the container
// never gets SIGPIPE when no reader is there (it blocks instead); a file is appended to.
int OpenStdio(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) == 0 && S_ISFIFO(st.st_mode)) {
    return ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  }
  return ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
}

class RuncRuntime : public ContainerRuntime {
 public:
  RuncRuntime(RuncOptions options, std::unique_ptr<Mounter> mounter,
              std::unique_ptr<ProcessRunner> runner)
      : options_(std::move(options)),
        mounter_(std::move(mounter)),
        runner_(std::move(runner)),
        runc_root_(options_.root + "/runc"),
        containers_(options_.root + "/containers") {}

  Status Init() {
    std::vector<std::string> env;
    for (char** e = environ; *e != nullptr; ++e) env.emplace_back(*e);
    runc_env_ = ShortLivedGoToolEnv(std::move(env));
    RETURN_IF_ERROR(base::MakeDirs(runc_root_, 0700));
    RETURN_IF_ERROR(base::MakeDirs(containers_, 0700));
    return runner_->BecomeSubreaper();
  }

  // ContainerRuntime
  Status Create(const std::string& id, const ContainerBundle& bundle) override {
    return CreateWith("create", id, bundle);
  }

  Status Run(const std::string& id, const ContainerBundle& bundle) override {
    return CreateWith("run", id, bundle);
  }

  // `runc create` (the process waits for `runc start`) or `runc run --detach` (it runs at once).
  Status CreateWith(const std::string& verb, const std::string& id, const ContainerBundle& bundle) {
    if (!ValidContainerId(id)) return base::Invalid("invalid container id \"" + id + "\"");
    if (bundle.layer_dirs.empty()) return base::Invalid("container " + id + ": no image layers");
    if (bundle.stdout_path.empty() || bundle.stderr_path.empty()) {
      return base::Invalid("container " + id + ": stdout and stderr paths are required");
    }
    if (!bundle.spec.is_object()) return base::Invalid("container " + id + ": spec is not an object");

    auto existing = RuncState(id);
    if (existing.ok()) {
      if (existing->status != ContainerStatus::kStopped) {
        return base::AlreadyExists("container " + id + " exists and is " +
                                   ContainerStatusName(existing->status));
      }
      // Reuse: drop runc's record of the stopped container, keep its writable layer.
      Collect(id);
      auto deleted = Runc({"delete", id});
      if (!deleted.ok()) return deleted.status();
    } else if (!existing.status().IsNotFound()) {
      return existing.status();
    }

    const std::string dir = Dir(id);
    for (const char* sub : {"/upper", "/work", "/rootfs"}) {
      RETURN_IF_ERROR(base::MakeDirs(dir + sub, 0700));
    }
    // The container's "/" takes its owner and mode from the upper directory (overlayfs merges a
    // directory under the upper one's attributes): 0755 root, whatever mode the layer
    // directories have (the image store's are 0700), so that non-root users can reach /bin.
    if (::chmod((dir + "/upper").c_str(), 0755) != 0) {
      return base::Internal(Errno("chmod " + dir + "/upper"));
    }
    // The image layers and the writable layer are mounted by runc, in the container's own mount
    // namespace, over the empty rootfs directory: the host's mount table does not grow with
    // every container (runc reads it, and the kernel copies it, on every container start), and
    // the overlay goes away with the container's last process. A rootfs that an agent of an
    // earlier version mounted on the host is unmounted first.
    RETURN_IF_ERROR(mounter_->Unmount(dir + "/rootfs"));
    std::vector<std::string> lower(bundle.layer_dirs.rbegin(), bundle.layer_dirs.rend());
    ASSIGN_OR_RETURN(base::Json root_mount, OverlayRootMount(lower, dir + "/upper", dir + "/work"));

    base::Json spec = bundle.spec;
    spec["root"]["path"] = "rootfs";
    base::Json& mounts = spec["mounts"];
    if (!mounts.is_array()) mounts = base::Json::array();
    mounts.insert(mounts.begin(), std::move(root_mount));
    Status written = base::WriteFileAtomic(dir + "/config.json", base::DumpJson(spec), 0600);
    if (!written.ok()) return written;
    std::error_code ec;
    fs::remove(dir + "/exit_code", ec);
    fs::remove(dir + "/pid", ec);
    fs::remove(dir + "/runc.log", ec);

    const base::Json* terminal = base::FindPath(spec, {"process", "terminal"});
    std::unique_ptr<ConsoleSocket> console;
    if (terminal != nullptr && terminal->is_boolean() && terminal->get<bool>()) {
      if (bundle.terminal_fd == nullptr) {
        return base::Invalid("container " + id + ": a terminal needs terminal_fd");
      }
      auto listening = ConsoleSocket::Listen(dir + "/console.sock");
      if (!listening.ok()) return listening.status();
      console = std::move(*listening);
    }

    Fd out(OpenStdio(bundle.stdout_path));
    if (out.get() < 0) return base::Internal(Errno("open " + bundle.stdout_path));
    Fd err(bundle.stderr_path == bundle.stdout_path ? ::dup(out.get())
                                                    : OpenStdio(bundle.stderr_path));
    if (err.get() < 0) return base::Internal(Errno("open " + bundle.stderr_path));
    ::fcntl(err.get(), F_SETFD, FD_CLOEXEC);

    ProcessSpec ps;
    ps.argv = {options_.runc, "--root", runc_root_, "--log", dir + "/runc.log", "--log-format",
               "json", verb};
    if (verb == "run") ps.argv.push_back("--detach");
    if (console) {
      ps.argv.push_back("--console-socket");
      ps.argv.push_back(console->path());
    }
    for (const std::string& a : {std::string("--bundle"), dir, std::string("--pid-file"), dir + "/pid", id}) {
      ps.argv.push_back(a);
    }
    ps.env = runc_env_;
    ps.stdin_fd = bundle.stdin_fd;
    ps.stdout_fd = out.get();
    ps.stderr_fd = err.get();
    ps.timeout = options_.timeout;
    auto run = runner_->Run(ps);
    if (!run.ok() || run->exit_code != 0) {
      std::string log = base::ReadFile(dir + "/runc.log").ok() ? *base::ReadFile(dir + "/runc.log")
                                                                : "";
      (void)Runc({"delete", "--force", id});
      std::string why = !run.ok() ? run.status().message() : LastError(log);
      return base::Internal("runc " + verb + " " + id + " failed: " + why);
    }
    if (console) {
      // runc sent the terminal before it exited: it waits in the socket's queue.
      auto received = console->Receive(std::chrono::milliseconds(1000));
      if (!received.ok()) {
        (void)Runc({"delete", "--force", id});
        return base::Internal("runc " + verb + " " + id +
                              " sent no terminal: " + received.status().message());
      }
      *bundle.terminal_fd = *received;
    }
    return Status::Ok();
  }

  Status Start(const std::string& id) override {
    ASSIGN_OR_RETURN(ContainerState state, State(id));
    if (state.status != ContainerStatus::kCreated) {
      return base::Conflict("container " + id + " is " + ContainerStatusName(state.status) +
                            ", not created");
    }
    return Runc({"start", id}).status();
  }

  base::Result<ContainerState> State(const std::string& id) override {
    if (!ValidContainerId(id)) return base::Invalid("invalid container id \"" + id + "\"");
    ASSIGN_OR_RETURN(ContainerState state, RuncState(id));
    if (state.status == ContainerStatus::kStopped) {
      state.pid = 0;
      if (auto code = Collect(id)) {
        state.has_exit_code = true;
        state.exit_code = *code;
      }
    }
    return state;
  }

  Status Kill(const std::string& id, int signal) override {
    ASSIGN_OR_RETURN(ContainerState state, State(id));
    if (state.status == ContainerStatus::kStopped) {
      return base::Conflict("container " + id + " is not running");
    }
    return Runc({"kill", id, std::to_string(signal)}).status();
  }

  base::Result<ExecResult> Exec(const std::string& id, const std::vector<std::string>& argv,
                                std::chrono::milliseconds timeout) override {
    if (argv.empty()) return base::Invalid("container " + id + ": exec needs a command");
    ASSIGN_OR_RETURN(ContainerState state, State(id));
    if (state.status != ContainerStatus::kRunning) {
      return base::Conflict("container " + id + " is " + ContainerStatusName(state.status) +
                            ", not running");
    }
    // The process's pid, so that a timed-out command is killed too: killing runc alone would
    // orphan it to this process (the subreaper), unreaped, and a pid namespace whose init dies
    // waits for every such zombie.
    const std::string pid_file =
        Dir(id) + "/exec-" + std::to_string(exec_serial_.fetch_add(1)) + ".pid";
    ProcessSpec ps;
    ps.argv = {options_.runc, "--root", runc_root_, "exec", "--pid-file", pid_file, id};
    ps.argv.insert(ps.argv.end(), argv.begin(), argv.end());
    ps.timeout = timeout;
    auto r = runner_->Run(ps);
    if (!r.ok() && r.status().code() == base::Code::kTimeout) {
      auto pid_text = base::ReadFile(pid_file);
      int pid = 0;
      if (pid_text.ok() && std::sscanf(pid_text->c_str(), "%d", &pid) == 1 && pid > 0) {
        ::kill(pid, SIGKILL);
        for (int i = 0; i < 100 && !runner_->TryReap(pid); ++i) {
          std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
      }
    }
    std::error_code ec;
    fs::remove(pid_file, ec);
    if (!r.ok()) return r.status();
    return ExecResult{r->exit_code, r->out + r->err};
  }

  Status Delete(const std::string& id) override {
    if (!ValidContainerId(id)) return base::Invalid("invalid container id \"" + id + "\"");
    auto state = RuncState(id);
    if (state.ok()) {
      if (state->status != ContainerStatus::kStopped) {
        (void)Runc({"kill", id, std::to_string(SIGKILL)});
        // The init process is our child (subreaper): reap it, so runc sees it gone.
        for (int i = 0; i < 500 && !Collect(id); ++i) {
          std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
      }
      auto deleted = Runc({"delete", "--force", id});
      if (!deleted.ok() && !deleted.status().IsNotFound()) return deleted.status();
    } else if (!state.status().IsNotFound()) {
      return state.status();
    }
    Collect(id);
    const std::string dir = Dir(id);
    RETURN_IF_ERROR(mounter_->Unmount(dir + "/rootfs"));
    std::error_code ec;
    fs::remove_all(dir, ec);
    if (ec) return base::Internal("remove " + dir + ": " + ec.message());
    return Status::Ok();
  }

 private:
  std::string Dir(const std::string& id) const { return containers_ + "/" + id; }

  // Runs `runc --root R ARGS...`: NotFound when runc says the container does not exist,
  // Internal with runc's message for any other failure.
  base::Result<ProcessResult> Runc(std::vector<std::string> args) {
    ProcessSpec ps;
    ps.argv = {options_.runc, "--root", runc_root_};
    ps.argv.insert(ps.argv.end(), args.begin(), args.end());
    ps.env = runc_env_;
    ps.timeout = options_.timeout;
    ASSIGN_OR_RETURN(ProcessResult r, runner_->Run(ps));
    if (r.exit_code != 0) {
      std::string msg = Tail(r.err.empty() ? r.out : r.err);
      std::string cmd = "runc " + args[0] + " " + args.back();
      if (msg.find("does not exist") != std::string::npos) return base::NotFound(cmd + ": " + msg);
      return base::Internal(cmd + " failed (exit " + std::to_string(r.exit_code) + "): " + msg);
    }
    return r;
  }

  // The container's state as `runc state` would report it, without running runc: runc's
  // ROOT/runc/<id>/state.json names the init process (pid and start time); the container is
  // stopped when that process is gone or exited, created while runc's exec.fifo exists (removed
  // by `runc start`), running otherwise. NotFound when runc has no record of the container.
  base::Result<ContainerState> RuncState(const std::string& id) {
    const std::string dir = runc_root_ + "/" + id;
    auto text = base::ReadFile(dir + "/state.json");
    if (!text.ok()) {
      std::error_code ec;
      if (!fs::exists(dir + "/state.json", ec)) {
        return base::NotFound("runc state " + id + ": container does not exist");
      }
      return text.status();
    }
    base::Json j;
    RETURN_IF_ERROR(base::ParseJson(*text, &j));
    ContainerState state;
    const base::Json* pid = base::FindPath(j, {"init_process_pid"});
    const base::Json* start = base::FindPath(j, {"init_process_start"});
    if (!pid || !pid->is_number_integer() || !start || !start->is_number()) {
      return base::Internal("runc state " + id + ": no init process in " + dir + "/state.json");
    }
    auto live = runner_->LiveStartTime(pid->get<int>());
    if (!live || *live != start->get<uint64_t>()) {
      state.status = ContainerStatus::kStopped;
      return state;
    }
    std::error_code ec;
    state.status = fs::exists(dir + "/exec.fifo", ec) ? ContainerStatus::kCreated
                                                     : ContainerStatus::kRunning;
    state.pid = pid->get<int>();
    return state;
  }

  // The exit code of the container's init process: recorded in DIR/exit_code, or reaped now
  // (and recorded). nullopt while it runs or when its exit was not observed by this process.
  std::optional<int> Collect(const std::string& id) {
    const std::string dir = Dir(id);
    auto recorded = base::ReadFile(dir + "/exit_code");
    if (recorded.ok()) {
      try {
        return std::stoi(*recorded);
      } catch (...) {
        return std::nullopt;
      }
    }
    auto pid_text = base::ReadFile(dir + "/pid");
    if (!pid_text.ok()) return std::nullopt;
    int pid = 0;
    try {
      pid = std::stoi(*pid_text);
    } catch (...) {
      return std::nullopt;
    }
    auto code = runner_->TryReap(pid);
    if (code) (void)base::WriteFileAtomic(dir + "/exit_code", std::to_string(*code), 0600);
    return code;
  }

  const RuncOptions options_;
  const std::unique_ptr<Mounter> mounter_;
  const std::unique_ptr<ProcessRunner> runner_;
  const std::string runc_root_;
  const std::string containers_;
  std::vector<std::string> runc_env_;  // the agent's environment for runc (ShortLivedGoToolEnv)
  std::atomic<uint64_t> exec_serial_{0};
};

}  // namespace

void ResetSignalsOnSpawn(posix_spawnattr_t* attr, short extra_flags) {
  sigset_t empty, all;
  sigemptyset(&empty);
  sigfillset(&all);
  posix_spawnattr_setsigmask(attr, &empty);
  posix_spawnattr_setsigdefault(attr, &all);
  posix_spawnattr_setflags(attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | extra_flags);
}

base::Result<std::unique_ptr<ConsoleSocket>> ConsoleSocket::Listen(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) {
    return base::Invalid("console socket path " + path + " is longer than " +
                         std::to_string(sizeof addr.sun_path - 1) + " bytes");
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) return base::Internal(Errno("console socket"));
  ::unlink(path.c_str());
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(fd.get(), 1) != 0) {
    return base::Internal(Errno("listening on " + path));
  }
  return std::unique_ptr<ConsoleSocket>(new ConsoleSocket(path, fd.release()));
}

ConsoleSocket::~ConsoleSocket() {
  ::close(fd_);
  ::unlink(path_.c_str());
}

base::Result<int> ConsoleSocket::Receive(std::chrono::milliseconds timeout) {
  pollfd p = {fd_, POLLIN, 0};
  int ready;
  do {
    ready = ::poll(&p, 1, static_cast<int>(timeout.count()));
  } while (ready < 0 && errno == EINTR);
  if (ready == 0) {
    return Status(base::Code::kTimeout, "nothing connected to " + path_ + " in " +
                                            std::to_string(timeout.count()) + " ms");
  }
  Fd conn(::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC));
  if (conn.get() < 0) return base::Internal(Errno("accept on " + path_));
  char name[256];
  iovec iov = {name, sizeof name};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t n;
  do {
    n = ::recvmsg(conn.get(), &msg, MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return base::Internal(Errno("receiving on " + path_));
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
        c->cmsg_len == CMSG_LEN(sizeof(int))) {
      int received;
      std::memcpy(&received, CMSG_DATA(c), sizeof received);
      return received;
    }
  }
  return base::Internal("the connection to " + path_ + " sent no descriptor");
}

const char* ContainerStatusName(ContainerStatus status) {
  switch (status) {
    case ContainerStatus::kCreated: return "created";
    case ContainerStatus::kRunning: return "running";
    case ContainerStatus::kStopped: return "stopped";
  }
  return "unknown";
}

bool ValidContainerId(const std::string& id) {
  if (id.empty() || id.size() > 64 || id[0] == '.' || id[0] == '-') return false;
  return std::all_of(id.begin(), id.end(), [](char ch) {
    return std::isalnum(static_cast<unsigned char>(ch)) || ch == '_' || ch == '.' || ch == '-';
  });
}

std::unique_ptr<Mounter> NewSystemMounter() { return std::make_unique<SystemMounter>(); }
std::unique_ptr<ProcessRunner> NewSystemProcessRunner() {
  return std::make_unique<SystemProcessRunner>();
}

base::Result<std::unique_ptr<ContainerRuntime>> OpenRuncRuntime(
    RuncOptions options, std::unique_ptr<Mounter> mounter, std::unique_ptr<ProcessRunner> runner) {
  if (options.root.empty() || options.root[0] != '/') {
    return base::Invalid("runtime root \"" + options.root + "\" is not an absolute path");
  }
  auto runtime = std::make_unique<RuncRuntime>(std::move(options), std::move(mounter),
                                               std::move(runner));
  RETURN_IF_ERROR(runtime->Init());
  return std::unique_ptr<ContainerRuntime>(std::move(runtime));
}

}  // namespace fulcrum::agent
