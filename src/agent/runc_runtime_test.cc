// Runs a real container with runc on the demo image: needs root, runc and the demo image
// (FULCRUM_DEMO_IMAGE, set by CTest). Every wait is bounded; TearDown removes what a failure
// left behind.
#include "agent/runc_runtime.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mount.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <thread>

#include "agent/container_stdio.h"
#include "agent/image_store.h"
#include "agent/logs.h"
#include "agent/network.h"
#include "agent/oci_spec.h"
#include "agent/testing/descriptors.h"
#include "base/file.h"

namespace fulcrum::agent {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

const char kRunc[] = "/usr/sbin/runc";

bool WaitFor(const std::function<bool()>& done, std::chrono::milliseconds limit) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(20ms);
  }
  return done();
}

// Mount points at or under `dir`, from /proc/self/mountinfo.
std::vector<std::string> MountsUnder(const std::string& dir) {
  std::vector<std::string> found;
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string id, parent, dev, root, mount_point;
    fields >> id >> parent >> dev >> root >> mount_point;
    if (mount_point.rfind(dir, 0) == 0) found.push_back(mount_point);
  }
  return found;
}

std::string ReadOr(const std::string& path) {
  auto text = base::ReadFile(path);
  return text.ok() ? *text : "";
}

// The cgroup (v1 hierarchy, or v2) of `pid` for `controller`, as a directory under /sys/fs/cgroup.
std::string CgroupDir(int pid, const std::string& controller) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/cgroup");
  std::string line, v2;
  while (std::getline(in, line)) {
    size_t a = line.find(':'), b = line.find(':', a + 1);
    if (a == std::string::npos || b == std::string::npos) continue;
    std::string controllers = "," + line.substr(a + 1, b - a - 1) + ",";
    std::string path = line.substr(b + 1);
    if (controllers.find("," + controller + ",") != std::string::npos) {
      return "/sys/fs/cgroup/" + line.substr(a + 1, b - a - 1) + path;
    }
    if (controllers == ",," && fs::exists("/sys/fs/cgroup/cgroup.controllers")) {
      v2 = "/sys/fs/cgroup" + path;
    }
  }
  return v2;
}

std::string Trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

// 100m request, 500m limit, 64 MiB, as the test's container asks.
void ExpectCgroupLimits(int pid) {
  std::string memory = CgroupDir(pid, "memory"), cpu = CgroupDir(pid, "cpu");
  ASSERT_FALSE(memory.empty() || cpu.empty()) << "no cgroup found for pid " << pid;
  if (fs::exists(memory + "/memory.limit_in_bytes")) {  // v1
    EXPECT_EQ(Trimmed(ReadOr(memory + "/memory.limit_in_bytes")), "67108864");
    EXPECT_EQ(Trimmed(ReadOr(cpu + "/cpu.shares")), "102");
    EXPECT_EQ(Trimmed(ReadOr(cpu + "/cpu.cfs_quota_us")), "50000");
    EXPECT_EQ(Trimmed(ReadOr(cpu + "/cpu.cfs_period_us")), "100000");
  } else {  // v2
    EXPECT_EQ(Trimmed(ReadOr(memory + "/memory.max")), "67108864");
    EXPECT_EQ(Trimmed(ReadOr(cpu + "/cpu.max")), "50000 100000");
  }
}

class RuncRuntimeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (runs containers with runc)";
    if (::access(kRunc, X_OK) != 0) GTEST_SKIP() << kRunc << " is missing (Debian runc)";
    const char* image = std::getenv("FULCRUM_DEMO_IMAGE");
    if (image == nullptr || !fs::exists(image)) {
      GTEST_SKIP() << "FULCRUM_DEMO_IMAGE is not set or missing; run through ctest";
    }
    std::string tmpl = (fs::temp_directory_path() / "runc_runtime_test.XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = fs::canonical(tmpl).string();
    root_ = dir_ + "/root";
    id_ = "fulcrum-rt-test-" + std::to_string(::getpid());

    auto store = ImageStore::Open(root_);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    auto imported = (*store)->Import(image);
    ASSERT_TRUE(imported.ok()) << imported.status().ToString();
    auto record = (*store)->Resolve("fulcrum.dev/busybox:demo");
    ASSERT_TRUE(record.ok()) << record.status().ToString();
    image_ = *record;

    RuncOptions options;
    options.root = root_;
    options.runc = kRunc;
    options.timeout = 20s;
    auto runtime = OpenRuncRuntime(options);
    ASSERT_TRUE(runtime.ok()) << runtime.status().ToString();
    runtime_ = std::move(*runtime);
  }

  void TearDown() override {
    if (dir_.empty()) return;
    if (runtime_) (void)runtime_->Delete(id_);
    // Whatever a failure left: runc state, then mounts (deepest first), then files.
    std::string cmd = std::string(kRunc) + " --root " + root_ + "/runc delete --force " + id_ +
                      " >/dev/null 2>&1";
    if (fs::exists(root_ + "/runc/" + id_)) (void)std::system(cmd.c_str());
    auto mounts = MountsUnder(dir_);
    for (auto it = mounts.rbegin(); it != mounts.rend(); ++it) ::umount2(it->c_str(), MNT_DETACH);
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  ContainerStatus StatusOf() {
    auto state = runtime_->State(id_);
    EXPECT_TRUE(state.ok()) << state.status().ToString();
    return state.ok() ? state->status : ContainerStatus::kStopped;
  }

  std::string dir_, root_, id_;
  ImageRecord image_;
  std::unique_ptr<ContainerRuntime> runtime_;
};

TEST(SystemMounter, KnowsAMountPointAndUnmountsIt) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root";
  char tmpl[] = "/tmp/fulcrum-mounter-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl, target = dir + "/mnt";
  fs::create_directories(target);
  auto mounter = NewSystemMounter();
  EXPECT_FALSE(mounter->IsMountPoint(target));
  EXPECT_FALSE(mounter->IsMountPoint(dir + "/absent"));
  ASSERT_EQ(::mount("tmpfs", target.c_str(), "tmpfs", 0, "size=1m"), 0);
  EXPECT_TRUE(mounter->IsMountPoint(target));
  EXPECT_TRUE(mounter->IsMountPoint(dir + "/./mnt"));
  EXPECT_FALSE(mounter->IsMountPoint(dir));
  EXPECT_TRUE(mounter->Unmount(target).ok());
  EXPECT_FALSE(mounter->IsMountPoint(target));
  EXPECT_TRUE(MountsUnder(dir).empty());
  EXPECT_TRUE(mounter->Unmount(target).ok());  // nothing mounted: nothing to do
  fs::remove_all(dir);
}

TEST_F(RuncRuntimeTest, RunKillReuseDelete) {
  ContainerSpecInput c;
  c.command = {"sh", "-c",
               "cat /keep 2>/dev/null || echo missing; echo hello; hostname; echo data > /keep; sleep 30"};
  c.hostname = "rt-test";
  c.cpu_request_milli = 100;
  c.cpu_limit_milli = 500;
  c.memory_limit_bytes = 64 << 20;
  auto spec = BuildOciSpec(c, image_.config);
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  ContainerBundle bundle{*spec, image_.layer_dirs, dir_ + "/stdout.log", dir_ + "/stderr.log"};

  // First run.
  base::Status created = runtime_->Create(id_, bundle);
  ASSERT_TRUE(created.ok()) << created.ToString() << "\nstderr: " << ReadOr(bundle.stderr_path);
  EXPECT_EQ(StatusOf(), ContainerStatus::kCreated);
  ASSERT_TRUE(runtime_->Start(id_).ok());
  auto state = runtime_->State(id_);
  ASSERT_TRUE(state.ok());
  EXPECT_EQ(state->status, ContainerStatus::kRunning);
  EXPECT_GT(state->pid, 0);
  EXPECT_FALSE(state->has_exit_code);
  ASSERT_TRUE(WaitFor([&] { return ReadOr(bundle.stdout_path) == "missing\nhello\nrt-test\n"; }, 10s))
      << "stdout: " << ReadOr(bundle.stdout_path) << "\nstderr: " << ReadOr(bundle.stderr_path);
  ASSERT_TRUE(WaitFor([&] { return fs::exists(root_ + "/containers/" + id_ + "/upper/keep"); }, 5s));
  EXPECT_EQ(runtime_->Create(id_, bundle).code(), base::Code::kAlreadyExists);
  ExpectCgroupLimits(state->pid);

  // SIGTERM: sh as the namespace's init has no handler, so it ignores it; then SIGKILL.
  ASSERT_TRUE(runtime_->Kill(id_, SIGTERM).ok());
  bool stopped = WaitFor([&] { return StatusOf() == ContainerStatus::kStopped; }, 1s);
  if (!stopped) {
    ASSERT_TRUE(runtime_->Kill(id_, SIGKILL).ok());
    ASSERT_TRUE(WaitFor([&] { return StatusOf() == ContainerStatus::kStopped; }, 10s));
  }
  state = runtime_->State(id_);
  ASSERT_TRUE(state.ok());
  EXPECT_EQ(state->status, ContainerStatus::kStopped);
  ASSERT_TRUE(state->has_exit_code);
  EXPECT_EQ(state->exit_code, stopped ? 128 + SIGTERM : 128 + SIGKILL);
  EXPECT_EQ(runtime_->Kill(id_, SIGKILL).code(), base::Code::kConflict);
  EXPECT_EQ(runtime_->Start(id_).code(), base::Code::kConflict);

  // Reuse: the same container again, on the same writable layer, created and started in one
  // step (`runc run --detach`, as the agent starts containers).
  created = runtime_->Run(id_, bundle);
  ASSERT_TRUE(created.ok()) << created.ToString() << "\nstderr: " << ReadOr(bundle.stderr_path);
  EXPECT_TRUE(WaitFor([&] { return ReadOr(bundle.stdout_path) == "missing\nhello\nrt-test\ndata\nhello\nrt-test\n"; },
                      10s))
      << "stdout: " << ReadOr(bundle.stdout_path) << "\nstderr: " << ReadOr(bundle.stderr_path);
  EXPECT_EQ(StatusOf(), ContainerStatus::kRunning);

  // Exec in the running container (what exec probes use).
  auto exec = runtime_->Exec(id_, {"sh", "-c", "cat /keep; hostname; exit 4"}, 10s);
  ASSERT_TRUE(exec.ok()) << exec.status().ToString();
  EXPECT_EQ(exec->exit_code, 4);
  EXPECT_EQ(exec->output, "data\nrt-test\n");
  exec = runtime_->Exec(id_, {"sleep", "10"}, 300ms);
  EXPECT_EQ(exec.status().code(), base::Code::kTimeout);

  // Delete while running: no runc state, no mount, no files left.
  base::Status deleted = runtime_->Delete(id_);
  ASSERT_TRUE(deleted.ok()) << deleted.ToString();
  EXPECT_EQ(runtime_->State(id_).status().code(), base::Code::kNotFound);
  EXPECT_FALSE(fs::exists(root_ + "/runc/" + id_));
  EXPECT_FALSE(fs::exists(root_ + "/containers/" + id_));
  EXPECT_EQ(MountsUnder(dir_), std::vector<std::string>{});
  EXPECT_TRUE(runtime_->Delete(id_).ok());  // idempotent
}

TEST_F(RuncRuntimeTest, UserReadOnlyRootEnvVolumeAndExitCode) {
  ASSERT_TRUE(base::MakeDirs(dir_ + "/volume").ok());
  ASSERT_TRUE(base::WriteFileAtomic(dir_ + "/volume/f", "from the volume\n").ok());
  ContainerSpecInput c;
  c.command = {"sh", "-c",
               "id -u; id -g; echo $GREETING; cat /data/f; touch /x 2>/dev/null || echo "
               "read-only; exit 7"};
  c.env = {{"GREETING", "hi there"}};
  c.run_as_user = 65534;
  c.run_as_group = 65534;
  c.read_only_root_filesystem = true;
  c.mounts = {{dir_ + "/volume", "/data", true}};
  auto spec = BuildOciSpec(c, image_.config);
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  ContainerBundle bundle{*spec, image_.layer_dirs, dir_ + "/out.log", dir_ + "/out.log"};
  base::Status created = runtime_->Create(id_, bundle);
  ASSERT_TRUE(created.ok()) << created.ToString() << "\nlog: " << ReadOr(bundle.stdout_path);
  ASSERT_TRUE(runtime_->Start(id_).ok());
  ASSERT_TRUE(WaitFor([&] { return StatusOf() == ContainerStatus::kStopped; }, 10s));
  auto state = runtime_->State(id_);
  ASSERT_TRUE(state.ok());
  ASSERT_TRUE(state->has_exit_code);
  EXPECT_EQ(state->exit_code, 7);
  EXPECT_EQ(ReadOr(bundle.stdout_path),
            "65534\n65534\nhi there\nfrom the volume\nread-only\n");
  ASSERT_TRUE(runtime_->Delete(id_).ok());
  EXPECT_EQ(MountsUnder(dir_), std::vector<std::string>{});
}

TEST_F(RuncRuntimeTest, FailedCreateLeavesNothing) {
  ContainerSpecInput c;
  c.command = {"/no/such/binary"};
  auto spec = BuildOciSpec(c, image_.config);
  ASSERT_TRUE(spec.ok());
  ContainerBundle bundle{*spec, image_.layer_dirs, dir_ + "/out.log", dir_ + "/out.log"};
  base::Status created = runtime_->Create(id_, bundle);
  ASSERT_FALSE(created.ok());
  EXPECT_EQ(created.message(), "runc create " + id_ +
                                   " failed: runc create failed: unable to start container "
                                   "process: exec: \"/no/such/binary\": stat /no/such/binary: "
                                   "no such file or directory");
  EXPECT_EQ(runtime_->State(id_).status().code(), base::Code::kNotFound);
  EXPECT_EQ(MountsUnder(dir_), std::vector<std::string>{});
  EXPECT_TRUE(runtime_->Delete(id_).ok());

  base::Status ran = runtime_->Run(id_, bundle);
  ASSERT_FALSE(ran.ok());
  EXPECT_NE(ran.message().find("runc run " + id_ + " failed: "), std::string::npos) << ran.ToString();
  EXPECT_NE(ran.message().find("/no/such/binary: no such file or directory"), std::string::npos)
      << ran.ToString();
  EXPECT_EQ(runtime_->State(id_).status().code(), base::Code::kNotFound);
  EXPECT_EQ(MountsUnder(dir_), std::vector<std::string>{});
}

TEST_F(RuncRuntimeTest, OutputThroughLogCaptureAndAGivenNetworkNamespace) {
  auto capture = LogCapture::Start();
  ASSERT_TRUE(capture.ok());
  base::FakeClock clock;
  auto writer = CriLogWriter::Open(dir_ + "/logs/0.log", {}, &clock);
  ASSERT_TRUE(writer.ok());
  auto pipes = (*capture)->Attach(id_, dir_ + "/fifo", std::move(*writer));
  ASSERT_TRUE(pipes.ok()) << pipes.status().ToString();
  auto namespaces = NewSystemNetworkNamespaces();
  const std::string netns = dir_ + "/netns/pod";
  ASSERT_TRUE(namespaces->Create(netns).ok());

  ContainerSpecInput c;
  c.command = {"sh", "-c", "ip -o link | cut -d' ' -f2; echo to-stderr >&2; exit 3"};
  c.network_namespace_path = netns;
  auto spec = BuildOciSpec(c, image_.config);
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  ContainerBundle bundle{*spec, image_.layer_dirs, pipes->stdout_path, pipes->stderr_path};
  base::Status created = runtime_->Create(id_, bundle);
  ASSERT_TRUE(created.ok()) << created.ToString();
  ASSERT_TRUE(runtime_->Start(id_).ok());
  ASSERT_TRUE(WaitFor([&] { return StatusOf() == ContainerStatus::kStopped; }, 10s));
  EXPECT_EQ(runtime_->State(id_)->exit_code, 3);
  // The container's descriptors are closed: both streams end and the capture lets go.
  ASSERT_TRUE(WaitFor([&] { return !(*capture)->Attached(id_); }, 5s));
  std::string out, err;
  auto text = base::ReadFile(dir_ + "/logs/0.log");
  ASSERT_TRUE(text.ok());
  std::istringstream lines(*text);
  std::string line;
  while (std::getline(lines, line)) {
    auto record = ParseCriRecord(line);
    ASSERT_TRUE(record.ok()) << line;
    (record->stream == LogStream::kStdout ? out : err) += record->content + "\n";
  }
  EXPECT_EQ(out, "lo:\n");  // only the namespace's loopback: the pod's namespace was joined
  EXPECT_EQ(err, "to-stderr\n");
  ASSERT_TRUE(runtime_->Delete(id_).ok());
  ASSERT_TRUE(namespaces->Remove(netns).ok());
  EXPECT_EQ(MountsUnder(dir_), std::vector<std::string>{});
}

// Containers with stdin or a terminal (ContainerStdio), their output captured as the agent does.
class RuncStdioTest : public RuncRuntimeTest {
 protected:
  void SetUp() override {
    RuncRuntimeTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    auto capture = LogCapture::Start();
    ASSERT_TRUE(capture.ok());
    capture_ = std::move(*capture);
    auto writer = CriLogWriter::Open(dir_ + "/logs/0.log", {}, base::RealClock());
    ASSERT_TRUE(writer.ok());
    auto pipes = capture_->Attach(id_, dir_ + "/fifo", std::move(*writer));
    ASSERT_TRUE(pipes.ok()) << pipes.status().ToString();
    pipes_ = *pipes;
  }

  // The output so far, as kubectl logs shows it.
  std::string LogText() {
    std::string text;
    (void)ReadContainerLog(dir_ + "/logs/0.log", {}, [&](std::string_view s) {
      text.append(s);
      return true;
    });
    return text;
  }

  std::unique_ptr<LogCapture> capture_;
  LogCapture::Pipes pipes_;
};

TEST_F(RuncStdioTest, StdinPipeHeldByTheAgent) {
  ContainerSpecInput c;
  c.command = {"sh", "-c", "read l; echo got:$l; cat; echo eof"};
  auto spec = BuildOciSpec(c, image_.config);
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  auto stdio = ContainerStdio::Open({.stdin = true, .stdin_once = true});
  ASSERT_TRUE(stdio.ok() && *stdio);
  ContainerBundle bundle{*spec, image_.layer_dirs, pipes_.stdout_path, pipes_.stderr_path};
  (*stdio)->Prepare(&bundle, capture_.get(), id_);
  ASSERT_TRUE(runtime_->Run(id_, bundle).ok());
  ASSERT_TRUE((*stdio)->Started(capture_.get(), id_).ok());

  EXPECT_TRUE((*stdio)->Write("hello\n"));
  ASSERT_TRUE(WaitFor([&] { return LogText() == "got:hello\n"; }, 10s))
      << LogText();
  EXPECT_EQ(StatusOf(), ContainerStatus::kRunning);  // cat reads on
  (*stdio)->CloseStdin();  // cat reads EOF
  ASSERT_TRUE(WaitFor([&] { return StatusOf() == ContainerStatus::kStopped; }, 10s));
  EXPECT_EQ(runtime_->State(id_)->exit_code, 0);
  capture_->Drain();
  EXPECT_EQ(LogText(), "got:hello\neof\n");
}

TEST_F(RuncStdioTest, TerminalFromTheConsoleSocket) {
  ContainerSpecInput c;
  c.command = {"sh", "-c", "tty; echo $TERM; read l; stty size; echo got:$l"};
  c.terminal = true;
  auto spec = BuildOciSpec(c, image_.config);
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  ContainerBundle without{*spec, image_.layer_dirs, pipes_.stdout_path, pipes_.stderr_path};
  EXPECT_EQ(runtime_->Run(id_, without).code(), base::Code::kInvalid);  // no terminal_fd

  auto stdio = ContainerStdio::Open({.stdin = true, .tty = true});
  ASSERT_TRUE(stdio.ok() && *stdio);
  ContainerBundle bundle{*spec, image_.layer_dirs, pipes_.stdout_path, pipes_.stderr_path};
  (*stdio)->Prepare(&bundle, capture_.get(), id_);
  base::Status ran = runtime_->Run(id_, bundle);
  ASSERT_TRUE(ran.ok()) << ran.ToString();
  ASSERT_TRUE((*stdio)->Started(capture_.get(), id_).ok());
  EXPECT_FALSE(fs::exists(root_ + "/containers/" + id_ + "/console.sock"));
  auto output = (*stdio)->SubscribeOutput();
  ASSERT_TRUE(output.ok());

  // The shell is at `read` (the input's echo comes after what it wrote before).
  ASSERT_TRUE(WaitFor([&] { return LogText().find("xterm") != std::string::npos; }, 10s))
      << LogText() << "|" << ReadOr(dir_ + "/logs/0.log") << "|" << ContainerStatusName(StatusOf())
      << "|" << ReadOr(root_ + "/containers/" + id_ + "/runc.log");
  (*stdio)->Resize(90, 20);
  EXPECT_TRUE((*stdio)->Write("hello\n"));
  std::string seen = ReadFdUntil(*output, "got:hello");
  EXPECT_NE(seen.find("20 90\r\n"), std::string::npos) << seen;
  ASSERT_TRUE(WaitFor([&] { return StatusOf() == ContainerStatus::kStopped; }, 10s));
  ReadFdUntil(*output, "\x01never");  // until the terminal hung up (EOF)
  ::close(*output);
  capture_->Drain();
  std::string log = LogText();
  EXPECT_EQ(log.rfind("/dev/pts/", 0), 0u) << log;
  EXPECT_NE(log.find("\r\nxterm\r\nhello\r\n20 90\r\n"), std::string::npos) << log;
  EXPECT_NE(log.find("got:hello\r\n"), std::string::npos) << log;
}

}  // namespace
}  // namespace fulcrum::agent
