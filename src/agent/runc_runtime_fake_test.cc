// The runc runtime against a fake mounter and a scripted runc: no root, no containers.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <stdlib.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>

#include "agent/runc_runtime.h"
#include "base/file.h"

namespace fulcrum::agent {
namespace {

namespace fs = std::filesystem;
using base::Status;

struct FakeMounter : Mounter {
  Status Unmount(const std::string& target) override {
    mounted.erase(target);
    return Status::Ok();
  }
  bool IsMountPoint(const std::string& target) override { return mounted.count(target) > 0; }

  std::set<std::string> mounted;  // what an agent of an earlier version left mounted
};

// Plays runc: keeps container states and answers create/start/kill/delete, keeping runc's state
// files (--root/<id>/state.json, exec.fifo while created) as runc does; its processes live
// until killed.
struct FakeRunc : ProcessRunner {
  base::Result<ProcessResult> Run(const ProcessSpec& spec) override {
    calls.push_back(spec.argv);
    const auto& a = spec.argv;
    auto flag = [&](const std::string& name) {
      auto it = std::find(a.begin(), a.end(), name);
      return it != a.end() && it + 1 != a.end() ? *(it + 1) : std::string();
    };
    auto cmd = std::find_if(a.begin(), a.end(), [](const std::string& s) {
      return s == "create" || s == "start" || s == "state" || s == "kill" || s == "delete";
    });
    if (cmd == a.end()) return base::Internal("unexpected argv");
    const std::string id = *cmd == "kill" ? *(cmd + 1) : a.back();
    ProcessResult r;
    auto missing = [&] {
      r.exit_code = 1;
      r.err = "ERRO[0000] container does not exist";
      return r;
    };
    if (*cmd == "create") {
      create_had_stdio = spec.stdout_fd >= 0 && spec.stderr_fd >= 0;
      if (fail_create) {
        (void)base::WriteFileAtomic(flag("--log"),
                                    R"({"level":"error","msg":"exec: \"x\": not found"})" "\n");
        r.exit_code = 1;
        return r;
      }
      states[id] = "created";
      (void)base::WriteFileAtomic(flag("--pid-file"), std::to_string(next_pid));
      const std::string state_dir = flag("--root") + "/" + id;
      (void)base::MakeDirs(state_dir, 0700);
      (void)base::WriteFileAtomic(state_dir + "/state.json",
                                  R"({"id":")" + id + R"(","init_process_pid":)" +
                                      std::to_string(next_pid) + R"(,"init_process_start":)" +
                                      std::to_string(StartTimeOf(next_pid)) + "}");
      (void)base::WriteFileAtomic(state_dir + "/exec.fifo", "");
      alive.insert(next_pid);
      pids[id] = next_pid++;
    } else if (*cmd == "state") {
      if (!states.count(id)) return missing();
      r.out = R"({"id":")" + id + R"(","status":")" + states[id] + R"(","pid":)" +
              std::to_string(states[id] == "stopped" ? 0 : pids[id]) + "}";
    } else if (!states.count(id)) {
      return missing();
    } else if (*cmd == "start") {
      states[id] = "running";
      fs::remove(flag("--root") + "/" + id + "/exec.fifo");
    } else if (*cmd == "kill") {
      states[id] = "stopped";
      alive.erase(pids[id]);
      exited[pids[id]] = 128 + std::stoi(a.back());
    } else if (*cmd == "delete") {
      states.erase(id);
      fs::remove_all(flag("--root") + "/" + id);
    }
    return r;
  }
  Status BecomeSubreaper() override {
    subreaper = true;
    return Status::Ok();
  }
  std::optional<uint64_t> LiveStartTime(int pid) override {
    if (!alive.count(pid)) return std::nullopt;
    return StartTimeOf(pid);
  }
  static uint64_t StartTimeOf(int pid) { return static_cast<uint64_t>(pid) * 10; }
  std::optional<int> TryReap(int pid) override {
    auto it = exited.find(pid);
    if (it == exited.end()) return std::nullopt;
    int code = it->second;
    exited.erase(it);
    return code;
  }

  bool fail_create = false;
  bool subreaper = false;
  bool create_had_stdio = false;
  int next_pid = 4242;
  std::map<std::string, std::string> states;
  std::map<std::string, int> pids;
  std::map<int, int> exited;
  std::set<int> alive;
  std::vector<std::vector<std::string>> calls;
};

class RuncRuntimeFakeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "runc_fake_test.XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    auto mounter = std::make_unique<FakeMounter>();
    auto runc = std::make_unique<FakeRunc>();
    mounter_ = mounter.get();
    runc_ = runc.get();
    RuncOptions options;
    options.root = dir_;
    auto runtime = OpenRuncRuntime(options, std::move(mounter), std::move(runc));
    ASSERT_TRUE(runtime.ok()) << runtime.status().ToString();
    runtime_ = std::move(*runtime);
    bundle_.spec = {{"ociVersion", "1.0.2"}, {"root", {{"path", "ignored"}}}};
    bundle_.layer_dirs = {"/layers/bottom", "/layers/top"};
    bundle_.stdout_path = dir_ + "/out.log";
    bundle_.stderr_path = dir_ + "/out.log";
  }
  void TearDown() override { fs::remove_all(dir_); }

  // The runc subcommands run so far, "create c1", "state c1", ...
  std::vector<std::string> Commands() const {
    std::vector<std::string> out;
    for (const auto& argv : runc_->calls) {
      for (const char* cmd : {"create", "start", "state", "kill", "delete"}) {
        if (std::find(argv.begin(), argv.end(), cmd) != argv.end()) {
          bool force = std::find(argv.begin(), argv.end(), "--force") != argv.end();
          out.push_back(std::string(cmd) + (force ? " --force" : ""));
        }
      }
    }
    return out;
  }

  std::string dir_;
  FakeMounter* mounter_ = nullptr;
  FakeRunc* runc_ = nullptr;
  std::unique_ptr<ContainerRuntime> runtime_;
  ContainerBundle bundle_;
};

// The config.json runc was given for container `id`.
base::Json BundleConfig(const std::string& dir, const std::string& id) {
  auto config = base::ReadFile(dir + "/containers/" + id + "/config.json");
  return config.ok() ? base::Json::parse(*config) : base::Json();
}

TEST_F(RuncRuntimeFakeTest, CreateHasRuncMountTheLayersTopFirstAndWritesBundle) {
  EXPECT_TRUE(runc_->subreaper);
  bundle_.spec["mounts"] = base::Json::array({{{"destination", "/proc"}, {"type", "proc"}}});
  ASSERT_TRUE(runtime_->Create("c1", bundle_).ok());
  base::Json config = BundleConfig(dir_, "c1");
  EXPECT_EQ(config["root"]["path"], "rootfs");
  // The overlay is the first mount runc makes, in the container's mount namespace; the host
  // mounts nothing.
  const std::string c1 = dir_ + "/containers/c1";
  EXPECT_EQ(config["mounts"][0],
            (base::Json{{"destination", "/"},
                        {"type", "overlay"},
                        {"source", "overlay"},
                        {"options", {"lowerdir=/layers/top:/layers/bottom",
                                     "upperdir=" + c1 + "/upper", "workdir=" + c1 + "/work"}}}));
  EXPECT_EQ(config["mounts"][1]["destination"], "/proc");
  EXPECT_TRUE(fs::is_directory(c1 + "/rootfs"));
  EXPECT_TRUE(mounter_->mounted.empty());
  EXPECT_TRUE(runc_->create_had_stdio);
  const auto& create = runc_->calls.back();
  EXPECT_EQ(create[0], "/usr/sbin/runc");
  EXPECT_EQ(create[1], "--root");
  EXPECT_EQ(create[2], dir_ + "/runc");
  EXPECT_NE(std::find(create.begin(), create.end(), dir_ + "/containers/c1"), create.end());
  auto state = runtime_->State("c1");
  ASSERT_TRUE(state.ok());
  EXPECT_EQ(state->status, ContainerStatus::kCreated);
  EXPECT_EQ(state->pid, 4242);
}

TEST_F(RuncRuntimeFakeTest, ReuseKeepsTheWritableLayer) {
  ASSERT_TRUE(runtime_->Create("c1", bundle_).ok());
  ASSERT_TRUE(runtime_->Start("c1").ok());
  EXPECT_EQ(runtime_->Create("c1", bundle_).code(), base::Code::kAlreadyExists);
  ASSERT_TRUE(runtime_->Kill("c1", SIGKILL).ok());
  auto state = runtime_->State("c1");
  ASSERT_TRUE(state.ok());
  EXPECT_EQ(state->status, ContainerStatus::kStopped);
  ASSERT_TRUE(state->has_exit_code);
  EXPECT_EQ(state->exit_code, 137);
  // Recorded: still known after the process was reaped.
  state = runtime_->State("c1");
  ASSERT_TRUE(state.ok() && state->has_exit_code);
  EXPECT_EQ(state->exit_code, 137);

  runc_->calls.clear();
  ASSERT_TRUE(runtime_->Create("c1", bundle_).ok());
  // State comes from runc's files, not from `runc state`.
  EXPECT_EQ(Commands(), (std::vector<std::string>{"delete", "create"}));
  EXPECT_EQ(BundleConfig(dir_, "c1")["mounts"][0]["options"][1],  // the same upper directory
            "upperdir=" + dir_ + "/containers/c1/upper");
  state = runtime_->State("c1");
  ASSERT_TRUE(state.ok());
  EXPECT_EQ(state->status, ContainerStatus::kCreated);
  EXPECT_FALSE(state->has_exit_code);  // the old exit code is gone
}

TEST_F(RuncRuntimeFakeTest, FailedCreateLeavesNothingMounted) {
  runc_->fail_create = true;
  base::Status s = runtime_->Create("c1", bundle_);
  EXPECT_EQ(s.code(), base::Code::kInternal);
  EXPECT_EQ(s.message(), "runc create c1 failed: exec: \"x\": not found");
  EXPECT_TRUE(mounter_->mounted.empty());
  EXPECT_EQ(Commands().back(), "delete --force");
}

TEST_F(RuncRuntimeFakeTest, LayerPathThatOverlayfsCannotTakeRunsNoRunc) {
  bundle_.layer_dirs = {"/layers/a:b"};
  base::Status s = runtime_->Create("c1", bundle_);
  EXPECT_EQ(s.code(), base::Code::kInvalid);
  EXPECT_EQ(s.message(), "overlay lower directory \"/layers/a:b\" contains ',' or ':'");
  EXPECT_TRUE(Commands().empty());
}

TEST_F(RuncRuntimeFakeTest, RootfsThatAnEarlierAgentMountedIsUnmounted) {
  mounter_->mounted.insert(dir_ + "/containers/c1/rootfs");
  ASSERT_TRUE(runtime_->Create("c1", bundle_).ok());
  EXPECT_TRUE(mounter_->mounted.empty());
}

TEST_F(RuncRuntimeFakeTest, DeleteKillsUnmountsAndRemoves) {
  ASSERT_TRUE(runtime_->Create("c1", bundle_).ok());
  ASSERT_TRUE(runtime_->Start("c1").ok());
  mounter_->mounted.insert(dir_ + "/containers/c1/rootfs");  // by an agent of an earlier version
  runc_->calls.clear();
  ASSERT_TRUE(runtime_->Delete("c1").ok());
  EXPECT_EQ(Commands(), (std::vector<std::string>{"kill", "delete --force"}));
  EXPECT_TRUE(mounter_->mounted.empty());
  EXPECT_FALSE(fs::exists(dir_ + "/containers/c1"));
  EXPECT_EQ(runtime_->State("c1").status().code(), base::Code::kNotFound);
  EXPECT_TRUE(runtime_->Delete("c1").ok());
}

TEST_F(RuncRuntimeFakeTest, ErrorsForMissingAndInvalid) {
  EXPECT_EQ(runtime_->State("nope").status().code(), base::Code::kNotFound);
  EXPECT_EQ(runtime_->Start("nope").code(), base::Code::kNotFound);
  EXPECT_EQ(runtime_->Kill("nope", SIGTERM).code(), base::Code::kNotFound);
  EXPECT_EQ(runtime_->Create("../x", bundle_).code(), base::Code::kInvalid);
  EXPECT_EQ(runtime_->Delete("a/b").code(), base::Code::kInvalid);
  bundle_.layer_dirs.clear();
  EXPECT_EQ(runtime_->Create("c1", bundle_).code(), base::Code::kInvalid);
}

TEST(SystemProcessRunner, CapturesOutputAndExitCode) {
  auto runner = NewSystemProcessRunner();
  ProcessSpec spec;
  spec.argv = {"/bin/sh", "-c", "echo out; echo err >&2; exit 3"};
  auto r = runner->Run(spec);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->exit_code, 3);
  EXPECT_EQ(r->out, "out\n");
  EXPECT_EQ(r->err, "err\n");

  spec.argv = {"/bin/sh", "-c", "kill -TERM $$"};
  r = runner->Run(spec);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->exit_code, 128 + SIGTERM);

  spec.argv = {"/no/such/program"};
  EXPECT_FALSE(runner->Run(spec).ok());
}

TEST(SystemProcessRunner, KillsWhatOutlivesItsTimeout) {
  auto runner = NewSystemProcessRunner();
  ProcessSpec spec;
  spec.argv = {"/bin/sleep", "30"};
  spec.timeout = std::chrono::milliseconds(100);
  auto start = std::chrono::steady_clock::now();
  auto r = runner->Run(spec);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), base::Code::kTimeout);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
}

TEST(SystemProcessRunner, GivesTheChildTheCallersDescriptors) {
  std::string tmpl = (fs::temp_directory_path() / "runner_test.XXXXXX").string();
  ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
  std::string path = tmpl + "/out";
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  ASSERT_GE(fd, 0);
  auto runner = NewSystemProcessRunner();
  ProcessSpec spec;
  spec.argv = {"/bin/sh", "-c", "echo one; echo two >&2"};
  spec.stdout_fd = fd;
  spec.stderr_fd = fd;
  auto r = runner->Run(spec);
  ::close(fd);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->out, "");
  EXPECT_EQ(*base::ReadFile(path), "one\ntwo\n");
  fs::remove_all(tmpl);
}

TEST(ConsoleSocket, ReceivesTheDescriptorRuncSends) {
  const std::string path = (fs::temp_directory_path() /
                            ("console_socket_test_" + std::to_string(::getpid()) + ".sock"))
                               .string();
  auto socket = ConsoleSocket::Listen(path);
  ASSERT_TRUE(socket.ok()) << socket.status().ToString();
  EXPECT_EQ((*socket)->Receive(std::chrono::milliseconds(0)).status().code(),
            base::Code::kTimeout);
  int pipe_fds[2];
  ASSERT_EQ(::pipe(pipe_fds), 0);
  // runc's side (utils.SendFd): connect, then one message, the terminal's name, with the fd.
  int client = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strcpy(addr.sun_path, path.c_str());
  ASSERT_EQ(::connect(client, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  char name[] = "/dev/ptmx";
  iovec iov = {name, sizeof name - 1};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  std::memcpy(CMSG_DATA(c), &pipe_fds[1], sizeof(int));
  ASSERT_GT(::sendmsg(client, &msg, 0), 0);
  ::close(client);
  ::close(pipe_fds[1]);

  auto received = (*socket)->Receive(std::chrono::milliseconds(5000));
  ASSERT_TRUE(received.ok()) << received.status().ToString();
  EXPECT_NE(::fcntl(*received, F_GETFD) & FD_CLOEXEC, 0);
  ASSERT_EQ(::write(*received, "x", 1), 1);  // the very pipe: its read end gets the byte
  ::close(*received);
  char byte = 0;
  EXPECT_EQ(::read(pipe_fds[0], &byte, 1), 1);
  EXPECT_EQ(byte, 'x');
  ::close(pipe_fds[0]);
  socket->reset();
  EXPECT_FALSE(fs::exists(path));  // removed with the socket

  EXPECT_EQ(ConsoleSocket::Listen("/tmp/" + std::string(200, 'x')).status().code(),
            base::Code::kInvalid);
}

TEST(ShortLivedGoToolEnv, OneSchedulerThreadWhateverTheCallerSet) {
  EXPECT_EQ(ShortLivedGoToolEnv({"PATH=/bin", "GOMAXPROCS=8", "HOME=/root"}),
            (std::vector<std::string>{"PATH=/bin", "HOME=/root", "GOMAXPROCS=1"}));
  EXPECT_EQ(ShortLivedGoToolEnv({}), (std::vector<std::string>{"GOMAXPROCS=1"}));
}

TEST(ValidContainerId, Rules) {
  EXPECT_TRUE(ValidContainerId("pod_ns_c-1.2"));
  EXPECT_FALSE(ValidContainerId(""));
  EXPECT_FALSE(ValidContainerId(".x"));
  EXPECT_FALSE(ValidContainerId("-x"));
  EXPECT_FALSE(ValidContainerId("a/b"));
  EXPECT_FALSE(ValidContainerId(std::string(65, 'a')));
}

}  // namespace
}  // namespace fulcrum::agent
