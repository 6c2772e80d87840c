// Container logs in the CRI log format (Kubernetes CRI "container logging": one record a line,
// "<RFC 3339 timestamp, nanoseconds> <stdout|stderr> <F|P> <content>\n", F ending a line and P a
// part of one), written to size-rotated files and read back for `kubectl logs`.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "base/clock.h"
#include "base/status.h"

namespace fulcrum::agent {

enum class LogStream { kStdout, kStderr };

// A line longer than this is written as P records of this size, then an F record.
inline constexpr size_t kMaxLogRecordBytes = 16 * 1024;

struct LogRotation {
  int64_t max_bytes = 10 << 20;  // the current file is rotated before it grows past this
  int max_files = 5;             // files kept: PATH and PATH.1 … PATH.(max_files-1), .1 newest
};

// "2026-11-27T07:54:30.123456789Z".
std::string FormatRfc3339Nano(base::WallTime t);

// One record of a CRI log file.
struct CriRecord {
  base::WallTime time;
  std::string timestamp;  // as written
  LogStream stream = LogStream::kStdout;
  bool partial = false;   // P: the line continues in the next record of the stream
  std::string content;    // without the newline
};
// Parses one line (without its newline). BadRequest for a malformed record.
base::Result<CriRecord> ParseCriRecord(std::string_view line);

// Appends CRI records for one container to PATH, rotating by size. Thread-compatible.
class CriLogWriter {
 public:
  // Opens PATH for appending (creating it and its directory). `clock` is borrowed.
  static base::Result<std::unique_ptr<CriLogWriter>> Open(const std::string& path,
                                                          LogRotation rotation,
                                                          const base::Clock* clock);
  ~CriLogWriter();

  // Records `data` written by the container on `stream`: each complete line as one F record (P
  // records first when it is longer than kMaxLogRecordBytes); an unfinished line waits for its
  // end, or for Flush.
  base::Status Write(LogStream stream, std::string_view data);
  // Writes the unfinished line of `stream` as an F record (the stream ended).
  base::Status Flush(LogStream stream);

  const std::string& path() const { return path_; }

 private:
  CriLogWriter(std::string path, LogRotation rotation, const base::Clock* clock, int fd,
               int64_t size);
  base::Status Append(LogStream stream, bool partial, std::string_view content);
  base::Status Rotate();

  const std::string path_;
  const LogRotation rotation_;
  const base::Clock* const clock_;
  int fd_;
  int64_t size_;
  std::string pending_[2];
};

// Where the agent keeps a container's log for one run, as the kubelet lays out /var/log/pods:
// ROOT/logs/<namespace>_<pod>_<uid>/<container>/<restart count>.log. `kubectl logs --previous`
// reads the file of restart count − 1.
std::string ContainerLogPath(const std::string& root, const std::string& pod_namespace,
                             const std::string& pod_name, const std::string& pod_uid,
                             const std::string& container, int restart_count);

// The files of one container's log, oldest first: PATH.(n-1) … PATH.1, PATH (those that exist).
std::vector<std::string> LogFiles(const std::string& path, int max_files = 64);

struct LogReadOptions {
  int64_t tail_lines = -1;              // -1: every line; else the last N lines
  std::optional<base::WallTime> since;  // only lines at or after this time
  bool timestamps = false;              // prefix each line with its RFC 3339 timestamp and a space
  int64_t limit_bytes = -1;             // -1: no limit; else stop after this many bytes
  // When set: the offset in `path` (the current file) just after the last complete line read,
  // for a LogFollower to go on from there without a gap or a line twice (-1 if `path` was not
  // read).
  int64_t* end_offset = nullptr;
};

// Reads a container's log (rotated files included) as `kubectl logs` shows it: each line's
// content and a newline, P records joined to their line. Malformed records are skipped. Calls
// `sink` with each piece of output; stops early when it returns false. NotFound if no file exists.
base::Status ReadContainerLog(const std::string& path, const LogReadOptions& options,
                              const std::function<bool(std::string_view)>& sink);

// Follows a container's log as it grows (`kubectl logs -f`): Poll returns what was appended since
// the last call, following a rotation to the new file. Thread-compatible.
class LogFollower {
 public:
  // Starts at `start_offset` of the current file — where ReadContainerLog stopped
  // (LogReadOptions::end_offset) — or at its end when that is -1 (or beyond the end: the file was
  // rotated since).
  explicit LogFollower(std::string path, bool timestamps = false, int64_t start_offset = -1);
  ~LogFollower();
  // The output for the complete lines appended since the last call ("" when none).
  std::string Poll();

 private:
  bool Reopen();
  const std::string path_;
  const bool timestamps_;
  int fd_ = -1;
  ino_t inode_ = 0;
  std::string partial_line_;  // bytes after the last newline read
  std::string joined_[2];     // P records waiting for their F, per stream
};

// Copies what containers write to their stdout and stderr into CriLogWriters. A container's
// stdout and stderr are FIFOs that the runtime opens read-write as the container's stdio
// (runtime.h): a container never gets SIGPIPE, and a writer blocks rather than loses data while
// no agent reads (after an agent restart, Attach again and the backlog is read). One thread polls
// every attached FIFO. Thread-safe.
class LogCapture {
 public:
  static base::Result<std::unique_ptr<LogCapture>> Start();
  ~LogCapture();  // stops the thread; attached writers are flushed and closed

  struct Pipes {
    std::string stdout_path, stderr_path;  // FIFOs to give the runtime (ContainerBundle)
  };
  // Creates the FIFOs DIR/stdout.fifo and DIR/stderr.fifo if missing, opens their read ends and
  // starts copying into `writer` under `key` (replacing an earlier attachment of the same key).
  // A stream is done when every writer of it has closed (the container exited); the attachment
  // ends when both are done. Internal, naming errno, on failure.
  base::Result<Pipes> Attach(const std::string& key, const std::string& dir,
                             std::unique_ptr<CriLogWriter> writer);
  // Keeps `key`'s attachment when its FIFOs end, until AttachTerminal or Detach: for a container
  // on a terminal, whose FIFOs only runc writes.
  void AwaitTerminal(const std::string& key);
  // Moves `key`'s attachment from its FIFOs to the container's terminal (ContainerStdio): from
  // what is left in the FIFOs on, the writer records what is read from `terminal` (borrowed: a
  // duplicate is read) as stdout, and `tap` is called with each read, from the capture thread (it
  // must not block), then with "" once the terminal hung up (EIO: the container exited) or the
  // attachment ended. NotFound if `key` is not attached; Internal, naming errno, on failure.
  base::Status AttachTerminal(const std::string& key, int terminal,
                              std::function<void(std::string_view)> tap);
  // Stops copying for `key`: what is buffered is read first, then the writer is flushed and closed.
  void Detach(const std::string& key);
  bool Attached(const std::string& key);
  // Blocks until every byte written to the attached FIFOs before the call has been copied (for
  // tests and for reads right after a container exits). Bounded by `timeout_ms`.
  void Drain(int timeout_ms = 2000);

 private:
  struct Attachment;
  LogCapture(int wake_fd);
  void Loop();
  void Wake();

  const int wake_fd_;  // eventfd
  std::mutex mu_;
  std::condition_variable round_done_;
  std::map<std::string, std::shared_ptr<Attachment>> attached_;  // guarded by mu_
  std::vector<std::shared_ptr<Attachment>> retired_;  // replaced, to finish; guarded by mu_
  bool stopping_ = false;                                         // guarded by mu_
  uint64_t rounds_ = 0;                                           // guarded by mu_
  std::thread thread_;
};

}  // namespace fulcrum::agent
