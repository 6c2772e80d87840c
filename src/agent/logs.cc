#include "agent/logs.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <deque>
#include <filesystem>

#include "base/file.h"

namespace fulcrum::agent {
namespace {

namespace fs = std::filesystem;
using base::Status;

std::string Errno(const std::string& what) { return what + ": " + std::strerror(errno); }

const char* StreamName(LogStream s) { return s == LogStream::kStdout ? "stdout" : "stderr"; }
int StreamIndex(LogStream s) { return s == LogStream::kStdout ? 0 : 1; }

Status WriteAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return base::Internal(Errno("write log"));
    data.remove_prefix(static_cast<size_t>(n));
  }
  return Status::Ok();
}

// Turns CRI records into `kubectl logs` output: P records joined to their F record.
class LineAssembler {
 public:
  explicit LineAssembler(bool timestamps) : timestamps_(timestamps) {}
  // The finished line (with its newline) when `r` ends one; nullopt otherwise. `time` is the time
  // of the line's first record.
  std::optional<std::string> Add(const CriRecord& r, base::WallTime* time) {
    int s = StreamIndex(r.stream);
    if (joined_[s].empty() && !started_[s]) {
      first_time_[s] = r.time;
      first_stamp_[s] = r.timestamp;
      started_[s] = true;
    }
    joined_[s] += r.content;
    if (r.partial) return std::nullopt;
    std::string line = timestamps_ ? first_stamp_[s] + " " : "";
    line += joined_[s];
    line += '\n';
    *time = first_time_[s];
    joined_[s].clear();
    started_[s] = false;
    return line;
  }

 private:
  const bool timestamps_;
  std::string joined_[2], first_stamp_[2];
  base::WallTime first_time_[2];
  bool started_[2] = {false, false};
};

}  // namespace

std::string FormatRfc3339Nano(base::WallTime t) {
  auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
  long long secs = ns / 1000000000, frac = ns % 1000000000;
  if (frac < 0) {
    frac += 1000000000;
    --secs;
  }
  std::time_t tt = static_cast<std::time_t>(secs);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[48];
  size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  std::snprintf(buf + n, sizeof buf - n, ".%09lldZ", frac);
  return buf;
}

base::Result<CriRecord> ParseCriRecord(std::string_view line) {
  CriRecord r;
  size_t a = line.find(' ');
  if (a == std::string_view::npos || a == 0) return base::BadRequest("CRI log record has no timestamp");
  size_t b = line.find(' ', a + 1);
  if (b == std::string_view::npos) return base::BadRequest("CRI log record has no stream");
  r.timestamp = std::string(line.substr(0, a));
  if (!base::ParseRfc3339(r.timestamp, &r.time)) {
    return base::BadRequest("CRI log record timestamp \"" + r.timestamp.substr(0, 64) +
                            "\" is not RFC 3339");
  }
  std::string_view stream = line.substr(a + 1, b - a - 1);
  if (stream == "stdout") {
    r.stream = LogStream::kStdout;
  } else if (stream == "stderr") {
    r.stream = LogStream::kStderr;
  } else {
    return base::BadRequest("CRI log record stream is not stdout or stderr");
  }
  // The tag: "F" or "P" (a tag may carry more fields after ':'; only the first matters).
  size_t c = line.find(' ', b + 1);
  std::string_view tag = line.substr(b + 1, c == std::string_view::npos ? line.npos : c - b - 1);
  tag = tag.substr(0, tag.find(':'));
  if (tag == "P") {
    r.partial = true;
  } else if (tag != "F") {
    return base::BadRequest("CRI log record tag is not F or P");
  }
  if (c != std::string_view::npos) r.content = std::string(line.substr(c + 1));
  return r;
}

CriLogWriter::CriLogWriter(std::string path, LogRotation rotation, const base::Clock* clock,
                           int fd, int64_t size)
    : path_(std::move(path)), rotation_(rotation), clock_(clock), fd_(fd), size_(size) {}

CriLogWriter::~CriLogWriter() {
  if (fd_ >= 0) ::close(fd_);
}

base::Result<std::unique_ptr<CriLogWriter>> CriLogWriter::Open(const std::string& path,
                                                               LogRotation rotation,
                                                               const base::Clock* clock) {
  if (rotation.max_bytes < 1024 || rotation.max_files < 1) {
    return base::Invalid("log rotation needs max_bytes ≥ 1024 and max_files ≥ 1");
  }
  RETURN_IF_ERROR(base::MakeDirs(fs::path(path).parent_path().string(), 0755));
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
  if (fd < 0) return base::Internal(Errno("open " + path));
  struct stat st;
  int64_t size = ::fstat(fd, &st) == 0 ? st.st_size : 0;
  return std::unique_ptr<CriLogWriter>(new CriLogWriter(path, rotation, clock, fd, size));
}

Status CriLogWriter::Write(LogStream stream, std::string_view data) {
  std::string& pending = pending_[StreamIndex(stream)];
  pending.append(data);
  size_t start = 0;
  for (size_t nl; (nl = pending.find('\n', start)) != std::string::npos; start = nl + 1) {
    std::string_view line(pending.data() + start, nl - start);
    while (line.size() > kMaxLogRecordBytes) {
      RETURN_IF_ERROR(Append(stream, true, line.substr(0, kMaxLogRecordBytes)));
      line.remove_prefix(kMaxLogRecordBytes);
    }
    RETURN_IF_ERROR(Append(stream, false, line));
  }
  pending.erase(0, start);
  while (pending.size() > kMaxLogRecordBytes) {
    RETURN_IF_ERROR(Append(stream, true, std::string_view(pending).substr(0, kMaxLogRecordBytes)));
    pending.erase(0, kMaxLogRecordBytes);
  }
  return Status::Ok();
}

Status CriLogWriter::Flush(LogStream stream) {
  std::string& pending = pending_[StreamIndex(stream)];
  if (pending.empty()) return Status::Ok();
  Status s = Append(stream, false, pending);
  pending.clear();
  return s;
}

Status CriLogWriter::Append(LogStream stream, bool partial, std::string_view content) {
  std::string record = FormatRfc3339Nano(clock_->Now());
  record += ' ';
  record += StreamName(stream);
  record += partial ? " P " : " F ";
  record.append(content);
  record += '\n';
  if (size_ > 0 && size_ + static_cast<int64_t>(record.size()) > rotation_.max_bytes) {
    RETURN_IF_ERROR(Rotate());
  }
  RETURN_IF_ERROR(WriteAll(fd_, record));
  size_ += static_cast<int64_t>(record.size());
  return Status::Ok();
}

Status CriLogWriter::Rotate() {
  ::close(fd_);
  fd_ = -1;
  std::error_code ec;
  if (rotation_.max_files == 1) {
    fs::remove(path_, ec);
  } else {
    fs::remove(path_ + "." + std::to_string(rotation_.max_files - 1), ec);
    for (int i = rotation_.max_files - 2; i >= 1; --i) {
      std::string from = path_ + "." + std::to_string(i);
      if (fs::exists(from)) fs::rename(from, path_ + "." + std::to_string(i + 1), ec);
    }
    fs::rename(path_, path_ + ".1", ec);
    if (ec) return base::Internal("rotate " + path_ + ": " + ec.message());
  }
  fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
  if (fd_ < 0) return base::Internal(Errno("open " + path_));
  size_ = 0;
  return Status::Ok();
}

std::string ContainerLogPath(const std::string& root, const std::string& pod_namespace,
                             const std::string& pod_name, const std::string& pod_uid,
                             const std::string& container, int restart_count) {
  return root + "/logs/" + pod_namespace + "_" + pod_name + "_" + pod_uid + "/" + container + "/" +
         std::to_string(restart_count) + ".log";
}

std::vector<std::string> LogFiles(const std::string& path, int max_files) {
  std::vector<std::string> files;
  for (int i = max_files - 1; i >= 1; --i) {
    std::string p = path + "." + std::to_string(i);
    if (fs::exists(p)) files.push_back(p);
  }
  if (fs::exists(path)) files.push_back(path);
  return files;
}

Status ReadContainerLog(const std::string& path, const LogReadOptions& options,
                        const std::function<bool(std::string_view)>& sink) {
  std::vector<std::string> files = LogFiles(path);
  if (files.empty()) return base::NotFound("no log at " + path);
  LineAssembler assembler(options.timestamps);
  std::deque<std::string> tail;
  int64_t sent = 0;
  bool stop = false;
  auto emit = [&](const std::string& line) {
    if (options.limit_bytes >= 0 && sent + static_cast<int64_t>(line.size()) > options.limit_bytes) {
      if (sent < options.limit_bytes) sink(std::string_view(line).substr(0, options.limit_bytes - sent));
      sent = options.limit_bytes;
      stop = true;
      return;
    }
    sent += static_cast<int64_t>(line.size());
    if (!sink(line)) stop = true;
  };
  if (options.end_offset != nullptr) *options.end_offset = -1;
  for (const auto& file : files) {
    auto text = base::ReadFile(file);
    if (!text.ok()) continue;  // rotated away while we read
    std::string_view rest(*text);
    const bool current = file == path;
    if (current && options.end_offset != nullptr) *options.end_offset = 0;
    while (!rest.empty() && !stop) {
      size_t nl = rest.find('\n');
      if (nl == std::string_view::npos) break;  // a record being written
      auto record = ParseCriRecord(rest.substr(0, nl));
      rest.remove_prefix(nl + 1);
      if (!record.ok()) continue;
      base::WallTime time;
      auto line = assembler.Add(*record, &time);
      if (line && current && options.end_offset != nullptr) {  // a whole line: go on after it
        *options.end_offset = static_cast<int64_t>(text->size() - rest.size());
      }
      if (!line || (options.since && time < *options.since)) continue;
      if (options.tail_lines >= 0) {
        tail.push_back(std::move(*line));
        if (static_cast<int64_t>(tail.size()) > options.tail_lines) tail.pop_front();
      } else {
        emit(*line);
      }
    }
    if (stop) break;
  }
  for (const auto& line : tail) {
    if (stop) break;
    emit(line);
  }
  return Status::Ok();
}

LogFollower::LogFollower(std::string path, bool timestamps, int64_t start_offset)
    : path_(std::move(path)), timestamps_(timestamps) {
  if (!Reopen()) return;
  off_t end = ::lseek(fd_, 0, SEEK_END);
  if (start_offset >= 0 && start_offset <= end) ::lseek(fd_, start_offset, SEEK_SET);
}

LogFollower::~LogFollower() {
  if (fd_ >= 0) ::close(fd_);
}

bool LogFollower::Reopen() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
  struct stat st;
  inode_ = fd_ >= 0 && ::fstat(fd_, &st) == 0 ? st.st_ino : 0;
  return fd_ >= 0;
}

std::string LogFollower::Poll() {
  std::string bytes;
  auto drain = [&] {
    char buf[65536];
    for (;;) {
      ssize_t n = ::read(fd_, buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      bytes.append(buf, static_cast<size_t>(n));
    }
  };
  if (fd_ < 0) {
    if (!Reopen()) return "";
  } else {
    drain();
    struct stat st;
    if (::stat(path_.c_str(), &st) == 0 && st.st_ino != inode_) {
      drain();  // what was written to the old file before the rotation
      Reopen();
    }
  }
  if (fd_ >= 0) drain();

  partial_line_ += bytes;
  std::string out;
  size_t start = 0;
  for (size_t nl; (nl = partial_line_.find('\n', start)) != std::string::npos; start = nl + 1) {
    auto record = ParseCriRecord(std::string_view(partial_line_).substr(start, nl - start));
    if (!record.ok()) continue;
    int s = StreamIndex(record->stream);
    if (joined_[s].empty() && timestamps_) joined_[s] = record->timestamp + " ";
    joined_[s] += record->content;
    if (record->partial) continue;
    out += joined_[s];
    out += '\n';
    joined_[s].clear();
  }
  partial_line_.erase(0, start);
  return out;
}

struct LogCapture::Attachment {
  std::unique_ptr<CriLogWriter> writer;
  int fds[2] = {-1, -1};  // stdout, stderr read ends (a terminal: stdout only); -1 when done
  bool detach = false;
  bool awaiting_terminal = false;  // AwaitTerminal; guarded by mu_
  int terminal = -1;      // a terminal to move to (AttachTerminal); guarded by mu_
  std::function<void(std::string_view)> terminal_tap;  // its tap; guarded by mu_
  std::function<void(std::string_view)> tap;  // the tap of the terminal read now
  ~Attachment() {
    if (terminal >= 0) ::close(terminal);
  }

  // Closes stream `i` (0: stdout, 1: stderr) after flushing what the writer holds of it.
  void End(int i) {
    (void)writer->Flush(i == 0 ? LogStream::kStdout : LogStream::kStderr);
    ::close(fds[i]);
    fds[i] = -1;
    if (i == 0 && tap) {
      tap("");
      tap = nullptr;
    }
  }
};

LogCapture::LogCapture(int wake_fd) : wake_fd_(wake_fd) {}

base::Result<std::unique_ptr<LogCapture>> LogCapture::Start() {
  int fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (fd < 0) return base::Internal(Errno("eventfd"));
  std::unique_ptr<LogCapture> capture(new LogCapture(fd));
  capture->thread_ = std::thread([c = capture.get()] { c->Loop(); });
  return capture;
}

LogCapture::~LogCapture() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  Wake();
  if (thread_.joinable()) thread_.join();
  ::close(wake_fd_);
}

void LogCapture::Wake() {
  uint64_t one = 1;
  (void)!::write(wake_fd_, &one, sizeof one);
}

base::Result<LogCapture::Pipes> LogCapture::Attach(const std::string& key, const std::string& dir,
                                                   std::unique_ptr<CriLogWriter> writer) {
  RETURN_IF_ERROR(base::MakeDirs(dir, 0700));
  Pipes pipes{dir + "/stdout.fifo", dir + "/stderr.fifo"};
  auto attachment = std::make_shared<Attachment>();
  attachment->writer = std::move(writer);
  const std::string* paths[2] = {&pipes.stdout_path, &pipes.stderr_path};
  for (int i = 0; i < 2; ++i) {
    const std::string& p = *paths[i];
    struct stat st;
    if (::stat(p.c_str(), &st) == 0 && !S_ISFIFO(st.st_mode)) ::unlink(p.c_str());
    if (::mkfifo(p.c_str(), 0600) != 0 && errno != EEXIST) {
      if (attachment->fds[0] >= 0) ::close(attachment->fds[0]);
      return base::Internal(Errno("mkfifo " + p));
    }
    // Non-blocking: opening a FIFO's read end does not wait for a writer.
    attachment->fds[i] = ::open(p.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (attachment->fds[i] < 0) {
      if (i == 1) ::close(attachment->fds[0]);
      return base::Internal(Errno("open " + p));
    }
  }
  {
    std::lock_guard lock(mu_);
    auto& slot = attached_[key];
    if (slot) {
      slot->detach = true;
      retired_.push_back(slot);
    }
    slot = attachment;
  }
  Wake();
  return pipes;
}

base::Status LogCapture::AttachTerminal(const std::string& key, int terminal,
                                        std::function<void(std::string_view)> tap) {
  int copy = ::fcntl(terminal, F_DUPFD_CLOEXEC, 0);
  if (copy < 0) return base::Internal(Errno("dup terminal"));
  {
    std::lock_guard lock(mu_);
    auto it = attached_.find(key);
    if (it == attached_.end() || it->second->detach) {
      ::close(copy);
      return base::NotFound("no log capture for " + key);
    }
    if (it->second->terminal >= 0) ::close(it->second->terminal);
    it->second->terminal = copy;
    it->second->terminal_tap = std::move(tap);
  }
  Wake();
  return base::Status::Ok();
}

void LogCapture::AwaitTerminal(const std::string& key) {
  std::lock_guard lock(mu_);
  if (auto it = attached_.find(key); it != attached_.end()) it->second->awaiting_terminal = true;
}

void LogCapture::Detach(const std::string& key) {
  {
    std::lock_guard lock(mu_);
    auto it = attached_.find(key);
    if (it == attached_.end()) return;
    it->second->detach = true;
  }
  Wake();
}

bool LogCapture::Attached(const std::string& key) {
  std::lock_guard lock(mu_);
  auto it = attached_.find(key);
  return it != attached_.end() && !it->second->detach;
}

void LogCapture::Drain(int timeout_ms) {
  std::unique_lock lock(mu_);
  const uint64_t target = rounds_ + 2;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (rounds_ < target && std::chrono::steady_clock::now() < deadline) {
    Wake();  // a round may otherwise sleep in poll for up to a second
    round_done_.wait_for(lock, std::chrono::milliseconds(5));
  }
}

void LogCapture::Loop() {
  std::vector<std::pair<std::string, std::shared_ptr<Attachment>>> current;
  struct Move {
    std::shared_ptr<Attachment> attachment;
    int terminal;
    std::function<void(std::string_view)> tap;
  };
  std::vector<Move> moving;  // attachments to move to their terminal (AttachTerminal)
  std::vector<pollfd> pfds;
  for (;;) {
    bool stopping;
    {
      std::lock_guard lock(mu_);
      stopping = stopping_;
      current.assign(attached_.begin(), attached_.end());
      for (auto& a : retired_) current.emplace_back("", a);
      retired_.clear();
      for (auto& [key, a] : current) {
        if (a->terminal < 0) continue;
        moving.push_back({a, a->terminal, std::move(a->terminal_tap)});
        a->terminal = -1;
        a->awaiting_terminal = false;  // its terminal is in fds[0] by the end of this round
      }
    }
    // Reads what is buffered in one stream's FIFO or terminal; EOF (every writer closed) or EIO
    // (a terminal hung up) ends the stream.
    auto read_stream = [](Attachment& a, int i) {
      char buf[65536];
      for (;;) {
        ssize_t n = ::read(a.fds[i], buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n == 0 || (n < 0 && errno == EIO)) {
          a.End(i);
          return;
        }
        if (n < 0) return;  // EAGAIN: writers remain, nothing more now
        std::string_view data(buf, static_cast<size_t>(n));
        (void)a.writer->Write(i == 0 ? LogStream::kStdout : LogStream::kStderr, data);
        if (i == 0 && a.tap) a.tap(data);
      }
    };
    // From the FIFOs to the terminal: nothing but runc writes the FIFOs of a container on a
    // terminal, and it has exited.
    for (auto& [a, terminal, tap] : moving) {
      for (int i = 0; i < 2; ++i) {
        if (a->fds[i] < 0) continue;
        read_stream(*a, i);
        if (a->fds[i] >= 0) a->End(i);
      }
      a->fds[0] = terminal;
      a->tap = std::move(tap);
      ::fcntl(terminal, F_SETFL, ::fcntl(terminal, F_GETFL) | O_NONBLOCK);
    }
    moving.clear();
    std::vector<std::string> finished;
    for (auto& [key, a] : current) {
      if (!a->detach && !stopping) continue;
      for (int i = 0; i < 2; ++i) {
        if (a->fds[i] < 0) continue;
        read_stream(*a, i);  // what is buffered; then stop whether or not writers remain
        if (a->fds[i] >= 0) a->End(i);
      }
      finished.push_back(key);
    }
    if (stopping) {
      std::lock_guard lock(mu_);
      attached_.clear();
      ++rounds_;
      break;
    }

    pfds.clear();
    pfds.push_back({wake_fd_, POLLIN, 0});
    std::vector<std::pair<Attachment*, int>> owners;
    for (auto& [key, a] : current) {
      for (int i = 0; i < 2; ++i) {
        if (a->fds[i] >= 0) {
          pfds.push_back({a->fds[i], POLLIN, 0});
          owners.emplace_back(a.get(), i);
        }
      }
    }
    {
      std::lock_guard lock(mu_);
      for (const auto& key : finished) {
        auto it = attached_.find(key);
        if (it != attached_.end() && it->second->detach) attached_.erase(it);
      }
    }
    int n = ::poll(pfds.data(), pfds.size(), 1000);
    if (n > 0) {
      if (pfds[0].revents & POLLIN) {
        uint64_t v;
        (void)!::read(wake_fd_, &v, sizeof v);
      }
      for (size_t i = 1; i < pfds.size(); ++i) {
        if (pfds[i].revents & (POLLIN | POLLHUP | POLLERR)) {
          read_stream(*owners[i - 1].first, owners[i - 1].second);
        }
      }
    }
    {
      std::lock_guard lock(mu_);
      for (auto& [key, a] : current) {
        if (a->fds[0] < 0 && a->fds[1] < 0 && (!a->awaiting_terminal || a->detach)) {
          auto it = attached_.find(key);
          if (it != attached_.end() && it->second == a) attached_.erase(it);
        }
      }
      ++rounds_;
    }
    round_done_.notify_all();
  }
  round_done_.notify_all();
}

}  // namespace fulcrum::agent
