#include "agent/container_stdio.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <termios.h>
#include <unistd.h>

#include <filesystem>

#include "agent/logs.h"
#include "agent/testing/descriptors.h"
#include "base/clock.h"
#include "base/file.h"

namespace fulcrum::agent {
namespace {

namespace fs = std::filesystem;

TEST(StdioOptionsTest, ReadsThePodContainersFlags) {
  auto options = StdioOptionsOf(base::Json::parse(R"({"stdin":true,"stdinOnce":true})"));
  EXPECT_TRUE(options.stdin);
  EXPECT_TRUE(options.stdin_once);
  EXPECT_FALSE(options.tty);
  EXPECT_TRUE(StdioOptionsOf(base::Json::parse(R"({"tty":true})")).tty);
  EXPECT_FALSE(StdioOptionsOf(base::Json::parse(R"({"stdin":"yes"})")).stdin);
}

TEST(ContainerStdioTest, NoneWithoutStdinOrTerminal) {
  auto stdio = ContainerStdio::Open({});
  ASSERT_TRUE(stdio.ok());
  EXPECT_EQ(*stdio, nullptr);
}

TEST(ContainerStdioTest, StdinPipeReadsEofOnlyOnceClosed) {
  auto stdio = ContainerStdio::Open({.stdin = true});
  ASSERT_TRUE(stdio.ok() && *stdio) << stdio.status().ToString();
  ContainerBundle bundle;
  (*stdio)->Prepare(&bundle, nullptr, "c1");
  ASSERT_GE(bundle.stdin_fd, 0);
  EXPECT_EQ(bundle.terminal_fd, nullptr);
  int container = ::dup(bundle.stdin_fd);  // what runc hands on to the container
  ASSERT_TRUE((*stdio)->Started(nullptr, "c1").ok());
  EXPECT_EQ(::fcntl(bundle.stdin_fd, F_GETFD), -1);  // the agent's copy of the read end is gone

  EXPECT_TRUE((*stdio)->stdin_open());
  EXPECT_TRUE((*stdio)->Write("hello\n"));
  EXPECT_EQ(ReadFdUntil(container, "\n"), "hello\n");
  (*stdio)->CloseStdin();
  EXPECT_FALSE((*stdio)->stdin_open());
  EXPECT_FALSE((*stdio)->Write("late\n"));
  char c;
  EXPECT_EQ(::read(container, &c, 1), 0);  // EOF: the agent held the only write end
  ::close(container);
}

class TerminalTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("container_stdio_test_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    master_ = ::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    ASSERT_GE(master_, 0);
    ASSERT_EQ(::grantpt(master_), 0);
    ASSERT_EQ(::unlockpt(master_), 0);
    slave_ = ::open(::ptsname(master_), O_RDWR | O_NOCTTY | O_CLOEXEC);
    ASSERT_GE(slave_, 0);
    termios raw;
    ASSERT_EQ(::tcgetattr(slave_, &raw), 0);
    ::cfmakeraw(&raw);  // no echo, no CR/LF translation: the bytes as written
    ASSERT_EQ(::tcsetattr(slave_, TCSANOW, &raw), 0);
    auto capture = LogCapture::Start();
    ASSERT_TRUE(capture.ok());
    capture_ = std::move(*capture);
    auto writer = CriLogWriter::Open((dir_ / "0.log").string(), {}, base::RealClock());
    ASSERT_TRUE(writer.ok());
    ASSERT_TRUE(capture_->Attach("c1", (dir_ / "fifo").string(), std::move(*writer)).ok());
  }
  void TearDown() override {
    capture_.reset();
    if (slave_ >= 0) ::close(slave_);
    fs::remove_all(dir_);
  }

  // The stdio of a container on the terminal, as the runtime would have given it.
  std::shared_ptr<ContainerStdio> Started(bool stdin) {
    auto stdio = ContainerStdio::Open({.stdin = stdin, .tty = true});
    EXPECT_TRUE(stdio.ok() && *stdio);
    ContainerBundle bundle;
    (*stdio)->Prepare(&bundle, capture_.get(), "c1");
    EXPECT_NE(bundle.terminal_fd, nullptr);
    EXPECT_EQ(bundle.stdin_fd, -1);
    *bundle.terminal_fd = master_;
    base::Status started = (*stdio)->Started(capture_.get(), "c1");
    EXPECT_TRUE(started.ok()) << started.ToString();
    return *stdio;
  }

  fs::path dir_;
  int master_ = -1, slave_ = -1;
  std::unique_ptr<LogCapture> capture_;
};

TEST_F(TerminalTest, OutputGoesToTheLogAndSubscribersInputAndSizeToTheTerminal) {
  auto stdio = Started(true);
  auto output = stdio->SubscribeOutput();
  ASSERT_TRUE(output.ok()) << output.status().ToString();
  ASSERT_EQ(::write(slave_, "prompt$ ", 8), 8);  // no newline: a subscriber gets it at once
  EXPECT_EQ(ReadFdUntil(*output, "$ "), "prompt$ ");
  EXPECT_TRUE(stdio->Write("ls\n"));
  EXPECT_EQ(ReadFdUntil(slave_, "\n"), "ls\n");
  stdio->Resize(120, 40);
  winsize ws{};
  ASSERT_EQ(::ioctl(slave_, TIOCGWINSZ, &ws), 0);
  EXPECT_EQ(ws.ws_col, 120);
  EXPECT_EQ(ws.ws_row, 40);
  ASSERT_EQ(::write(slave_, "done\n", 5), 5);
  EXPECT_EQ(ReadFdUntil(*output, "\n"), "done\n");

  // The container exits: the terminal hangs up, subscribers read EOF, the log has it all.
  ::close(slave_);
  slave_ = -1;
  char c;
  EXPECT_EQ(::read(*output, &c, 1), 0);
  ::close(*output);
  capture_->Drain();
  std::string log;
  ASSERT_TRUE(ReadContainerLog((dir_ / "0.log").string(), {}, [&](std::string_view s) {
                log.append(s);
                return true;
              }).ok());
  EXPECT_EQ(log, "prompt$ done\n");
  auto late = stdio->SubscribeOutput();  // after the hang-up: ends at once
  ASSERT_TRUE(late.ok());
  EXPECT_EQ(::read(*late, &c, 1), 0);
  ::close(*late);
}

TEST_F(TerminalTest, ClosedStdinTakesNoMoreInputAndNoStdinNone) {
  auto stdio = Started(false);
  EXPECT_FALSE(stdio->stdin_open());
  EXPECT_FALSE(stdio->Write("x"));
  auto with_stdin = ContainerStdio::Open({.stdin = true, .tty = true});
  ASSERT_TRUE(with_stdin.ok());
  EXPECT_FALSE((*with_stdin)->Started(capture_.get(), "c2").ok());  // the runtime gave none
}

}  // namespace
}  // namespace fulcrum::agent
