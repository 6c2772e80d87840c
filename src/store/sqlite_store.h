#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "store/store.h"
#include "store/watch_hub.h"

namespace fulcrum::store {

class SqliteConnection;  // one sqlite3 handle with its prepared statements; sqlite_store.cc

struct SqliteStoreOptions {
  // Events a watcher may have queued before it is switched to catching up from the log.
  size_t watch_queue_limit = 10000;
  // Writes committed together in one transaction at most.
  size_t max_batch = 1024;
};

// The embedded production backend: one SQLite database in WAL mode with synchronous=FULL, so a
// write is on disk before it is acknowledged and survives kill -9 and power loss.
//
// Schema (see kSchema in sqlite_store.cc):
//   kv(revision INTEGER PRIMARY KEY, key, create_revision, prev_revision, deleted, value)
//       The MVCC log, as etcd keeps it: one row per revision (rowid = revision, so writes append),
//       a tombstone row for a delete. Indexed on (key, revision) for reads at a past revision.
//   current(key PRIMARY KEY, create_revision, mod_revision) WITHOUT ROWID
//       The live keys only, so a Range over a prefix at the latest revision walks just the live
//       keys in key order and joins each to its log row by rowid, however long the history; and
//       startup rebuilds the in-memory index from this narrow table alone.
//   meta(name PRIMARY KEY, value): schema_version, revision (survives compaction of the rows
//       that carried it), compacted.
//
// Writes go through group commit: callers enqueue and wait; one committer thread takes every
// pending write, checks each precondition against an in-memory index (key -> create/mod revision
// of the live version, owned by that thread), assigns consecutive revisions, writes the whole batch
// in one transaction with one fsync, publishes the events to watchers and then acknowledges each
// caller. A failed precondition fails only its caller; a failed transaction fails the whole batch
// and changes nothing. Compaction runs on the committer thread between batches.
//
// Reads use a pool of separate read connections (WAL lets them run beside the writer), each read
// in one SQLite read transaction, so it sees one committed revision.
//
// An exclusive flock on "<path>.lock" keeps a second store (in this or another process) off the
// same database.
//
// Semantics where store.h leaves room are those listed on MemoryStore (memory_store.h).
// Thread-safe. Must not be destroyed from inside a watch callback; outstanding writes are
// committed before the destructor returns.
class SqliteStore final : public Store {
 public:
  // Opens or creates the database at `path` (its directory must exist). Unavailable if the file
  // is held by another store or cannot be opened; Internal if it is not a store database.
  static Result<std::unique_ptr<SqliteStore>> Open(const std::string& path,
                                                   SqliteStoreOptions options = {});
  ~SqliteStore() override;

  SqliteStore(const SqliteStore&) = delete;
  SqliteStore& operator=(const SqliteStore&) = delete;

  // Store
  Result<int64_t> CurrentRevision() override;
  Result<KeyValue> Get(const std::string& key, int64_t revision) override;
  Result<RangeResult> Range(const std::string& start, const std::string& end, int64_t limit,
                            int64_t revision) override;
  Result<KeyValue> Create(const std::string& key, const std::string& value) override;
  Result<KeyValue> Update(const std::string& key, const std::string& value,
                          int64_t expected_mod_revision) override;
  Result<KeyValue> Delete(const std::string& key, int64_t expected_mod_revision) override;
  Result<std::unique_ptr<WatchHandle>> Watch(const std::string& start, const std::string& end,
                                             int64_t after_revision,
                                             WatchCallback callback) override;
  Status Compact(int64_t revision) override;
  int64_t CompactedRevision() override;

 private:
  struct PendingWrite;
  struct IndexEntry {
    int64_t create_revision = 0;
    int64_t mod_revision = 0;
  };
  class ReaderLease;

  SqliteStore(std::string path, int lock_fd, SqliteStoreOptions options,
              std::unique_ptr<SqliteConnection> writer,
              std::unordered_map<std::string, IndexEntry> index, int64_t revision,
              int64_t compacted);

  // Enqueues a write for the committer and waits for its outcome.
  Result<KeyValue> Submit(std::unique_ptr<PendingWrite> write);
  void CommitLoop();
  // Commits writes [begin, end) of `batch` (none of them a compaction) in one transaction.
  void CommitWrites(std::vector<std::unique_ptr<PendingWrite>>& batch, size_t begin, size_t end);
  Status RunCompaction(int64_t revision);

  Result<ReaderLease> AcquireReader();
  void ReleaseReader(std::unique_ptr<SqliteConnection> conn);
  Result<std::vector<WatchEvent>> ReadEvents(const std::string& start, const std::string& end,
                                             int64_t after, int64_t upto, size_t limit);

  const std::string path_;
  const int lock_fd_;
  const SqliteStoreOptions options_;

  // Committer thread only (after construction).
  std::unique_ptr<SqliteConnection> writer_;
  std::unordered_map<std::string, IndexEntry> index_;

  std::atomic<int64_t> revision_;   // written by the committer after each commit
  std::atomic<int64_t> compacted_;  // written by the committer after each compaction

  std::mutex readers_mu_;
  std::vector<std::unique_ptr<SqliteConnection>> idle_readers_;  // guarded by readers_mu_

  std::mutex queue_mu_;
  std::condition_variable queue_cv_;
  std::deque<std::unique_ptr<PendingWrite>> queue_;  // guarded by queue_mu_
  bool closing_ = false;                             // guarded by queue_mu_

  std::unique_ptr<WatchHub> hub_;
  std::thread committer_;
};

}  // namespace fulcrum::store
