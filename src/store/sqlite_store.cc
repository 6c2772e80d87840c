#include "store/sqlite_store.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <future>
#include <limits>
#include <optional>
#include <string_view>
#include <utility>

#include "base/log.h"

namespace fulcrum::store {
namespace {

constexpr int64_t kSchemaVersion = 1;

constexpr char kSchema[] = R"sql(
CREATE TABLE IF NOT EXISTS kv (
  revision INTEGER PRIMARY KEY,
  key BLOB NOT NULL,
  create_revision INTEGER NOT NULL,
  prev_revision INTEGER NOT NULL,
  deleted INTEGER NOT NULL,
  value BLOB NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS kv_key_revision ON kv(key, revision);
CREATE TABLE IF NOT EXISTS current (
  key BLOB PRIMARY KEY,
  create_revision INTEGER NOT NULL,
  mod_revision INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (
  name TEXT PRIMARY KEY,
  value INTEGER NOT NULL
) WITHOUT ROWID;
)sql";

// Statements are prepared once per connection, cached by the address of these constants. Keys are
// always bound as BLOBs, so they compare bytewise (memcmp), like std::string.
constexpr char kBegin[] = "BEGIN";
constexpr char kBeginImmediate[] = "BEGIN IMMEDIATE";
constexpr char kCommit[] = "COMMIT";
constexpr char kRollback[] = "ROLLBACK";
constexpr char kGetMeta[] = "SELECT value FROM meta WHERE name = ?1";
constexpr char kSetMeta[] =
    "INSERT INTO meta(name, value) VALUES(?1, ?2) "
    "ON CONFLICT(name) DO UPDATE SET value = excluded.value";
constexpr char kMaxRevision[] = "SELECT IFNULL(MAX(revision), 0) FROM kv";
constexpr char kLoadIndex[] = "SELECT key, create_revision, mod_revision FROM current";
constexpr char kInsertKv[] =
    "INSERT INTO kv(revision, key, create_revision, prev_revision, deleted, value) "
    "VALUES(?1, ?2, ?3, ?4, ?5, ?6)";
constexpr char kUpsertCurrent[] =
    "INSERT INTO current(key, create_revision, mod_revision) VALUES(?1, ?2, ?3) "
    "ON CONFLICT(key) DO UPDATE SET create_revision = excluded.create_revision, "
    "mod_revision = excluded.mod_revision";
constexpr char kDeleteCurrent[] = "DELETE FROM current WHERE key = ?1";
constexpr char kRowAt[] = "SELECT create_revision, deleted, value FROM kv WHERE revision = ?1";
constexpr char kGetLatest[] =
    "SELECT c.create_revision, c.mod_revision, k.value FROM current AS c "
    "JOIN kv AS k ON k.revision = c.mod_revision WHERE c.key = ?1";
constexpr char kGetAt[] =
    "SELECT revision, create_revision, deleted, value FROM kv "
    "WHERE key = ?1 AND revision <= ?2 ORDER BY revision DESC LIMIT 1";
// ?3 is the row limit (-1 for none).
constexpr char kRangeLatest[] =
    "SELECT c.key, c.create_revision, c.mod_revision, k.value FROM current AS c "
    "JOIN kv AS k ON k.revision = c.mod_revision "
    "WHERE c.key >= ?1 AND c.key < ?2 ORDER BY c.key LIMIT ?3";
constexpr char kRangeLatestUnbounded[] =
    "SELECT c.key, c.create_revision, c.mod_revision, k.value FROM current AS c "
    "JOIN kv AS k ON k.revision = c.mod_revision "
    "WHERE c.key >= ?1 ORDER BY c.key LIMIT ?3";
// For a range at a past revision: the latest revision of each key at ?3, from the index alone.
constexpr char kRangeKeysAt[] =
    "SELECT key, MAX(revision) FROM kv WHERE key >= ?1 AND key < ?2 AND revision <= ?3 "
    "GROUP BY key ORDER BY key";
constexpr char kRangeKeysAtUnbounded[] =
    "SELECT key, MAX(revision) FROM kv WHERE key >= ?1 AND revision <= ?3 "
    "GROUP BY key ORDER BY key";
// Watch history: walks the log by revision (the unary + keeps the planner off the key index),
// with the replaced version joined through prev_revision.
constexpr char kEvents[] =
    "SELECT k.revision, k.key, k.create_revision, k.deleted, k.value, "
    "p.revision, p.create_revision, p.value FROM kv AS k "
    "LEFT JOIN kv AS p ON p.revision = k.prev_revision "
    "WHERE k.revision > ?1 AND k.revision <= ?2 AND +k.key >= ?3 AND +k.key < ?4 "
    "ORDER BY k.revision LIMIT ?5";
constexpr char kEventsUnbounded[] =
    "SELECT k.revision, k.key, k.create_revision, k.deleted, k.value, "
    "p.revision, p.create_revision, p.value FROM kv AS k "
    "LEFT JOIN kv AS p ON p.revision = k.prev_revision "
    "WHERE k.revision > ?1 AND k.revision <= ?2 AND +k.key >= ?3 "
    "ORDER BY k.revision LIMIT ?5";
// Compaction keeps, per key, the latest version at ?1 unless it is a tombstone, and everything
// newer. prev_revision of a kept row therefore always names a kept row (or 0).
constexpr char kCompact[] =
    "DELETE FROM kv WHERE revision <= ?1 AND (deleted = 1 OR EXISTS ("
    "SELECT 1 FROM kv AS newer WHERE newer.key = kv.key AND newer.revision > kv.revision "
    "AND newer.revision <= ?1))";

constexpr char kMetaRevision[] = "revision";
constexpr char kMetaCompacted[] = "compacted";
constexpr char kMetaSchemaVersion[] = "schema_version";

constexpr size_t kMaxIdleReaders = 16;

Status SqliteStatus(int rc, std::string_view what, sqlite3* db) {
  std::string message = std::string(what) + ": " + (db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_FULL:
    case SQLITE_IOERR:
    case SQLITE_CANTOPEN:
    case SQLITE_READONLY:
    case SQLITE_PROTOCOL:
    case SQLITE_NOMEM:
      return base::Unavailable(std::move(message));
    default:
      return base::Internal(std::move(message));
  }
}

Status CompactedError(int64_t revision, int64_t compacted) {
  return base::Gone("revision " + std::to_string(revision) + " has been compacted (oldest is " +
                    std::to_string(compacted) + ")");
}

Status CheckKey(const std::string& key) {
  if (key.empty()) return base::BadRequest("key must not be empty");
  return Status::Ok();
}

}  // namespace

// One execution of a prepared statement: binds, steps, and resets it when destroyed (which also
// ends the implicit read transaction of a SELECT).
class SqliteQuery {
 public:
  SqliteQuery(sqlite3* db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt) {}
  SqliteQuery(SqliteQuery&& other) noexcept
      : db_(other.db_), stmt_(std::exchange(other.stmt_, nullptr)), bind_rc_(other.bind_rc_) {}
  SqliteQuery& operator=(SqliteQuery&&) = delete;
  ~SqliteQuery() {
    if (stmt_ != nullptr) sqlite3_reset(stmt_);
  }

  SqliteQuery& Bind(int i, int64_t v) {
    Check(sqlite3_bind_int64(stmt_, i, v));
    return *this;
  }
  // The bytes must stay alive until the query is destroyed.
  SqliteQuery& BindBlob(int i, std::string_view v) {
    Check(sqlite3_bind_blob64(stmt_, i, v.data() != nullptr ? v.data() : "", v.size(),
                              SQLITE_STATIC));
    return *this;
  }
  SqliteQuery& BindText(int i, std::string_view v) {
    Check(sqlite3_bind_text64(stmt_, i, v.data() != nullptr ? v.data() : "", v.size(),
                              SQLITE_STATIC, SQLITE_UTF8));
    return *this;
  }

  // True when a row is available, false when the statement is done.
  Result<bool> Step() {
    if (bind_rc_ != SQLITE_OK) return SqliteStatus(bind_rc_, "binding parameters", db_);
    int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    return SqliteStatus(rc, sqlite3_sql(stmt_), db_);
  }
  // Steps a statement that returns no rows.
  Status Run() {
    ASSIGN_OR_RETURN(bool row, Step());
    (void)row;
    return Status::Ok();
  }

  int64_t Int(int col) const { return sqlite3_column_int64(stmt_, col); }
  bool IsNull(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }
  std::string Blob(int col) const {
    const void* p = sqlite3_column_blob(stmt_, col);
    int n = sqlite3_column_bytes(stmt_, col);
    return p == nullptr ? std::string() : std::string(static_cast<const char*>(p), n);
  }

 private:
  void Check(int rc) {
    if (bind_rc_ == SQLITE_OK) bind_rc_ = rc;
  }

  sqlite3* db_;
  sqlite3_stmt* stmt_;
  int bind_rc_ = SQLITE_OK;
};

class SqliteConnection {
 public:
  static Result<std::unique_ptr<SqliteConnection>> Open(const std::string& path, bool writer) {
    sqlite3* db = nullptr;
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (writer ? SQLITE_OPEN_CREATE : 0);
    int rc = sqlite3_open_v2(path.c_str(), &db, flags, nullptr);
    auto conn = std::unique_ptr<SqliteConnection>(new SqliteConnection(db));
    if (rc != SQLITE_OK) return SqliteStatus(rc, "opening " + path, db);
    sqlite3_extended_result_codes(db, 1);
    sqlite3_busy_timeout(db, 10000);
    if (writer) {
      // WAL: readers run beside the writer. synchronous=FULL: the WAL is fsynced at every commit,
      // so an acknowledged write survives power loss, not just a crash of this process.
      ASSIGN_OR_RETURN(std::string mode, conn->QueryText("PRAGMA journal_mode=WAL"));
      if (mode != "wal") {
        return base::Unavailable("cannot put " + path + " in WAL mode (journal_mode is " + mode +
                                 ")");
      }
      RETURN_IF_ERROR(conn->Exec(
          "PRAGMA synchronous=FULL; PRAGMA temp_store=MEMORY; PRAGMA cache_size=-8192;"));
    } else {
      // Readers map the file instead of copying each page through read(): a list of many large
      // values took about half the CPU (63,000 values of 2 KB). Only this store writes the file,
      // which never shrinks under a reader, so the usual mmap hazard (SIGBUS on truncation) does
      // not arise.
      RETURN_IF_ERROR(conn->Exec(
          "PRAGMA query_only=ON; PRAGMA cache_size=-4096; PRAGMA mmap_size=1073741824;"));
    }
    return conn;
  }

  ~SqliteConnection() {
    for (auto& [sql, stmt] : stmts_) sqlite3_finalize(stmt);
    sqlite3_close_v2(db_);
  }

  SqliteConnection(const SqliteConnection&) = delete;
  SqliteConnection& operator=(const SqliteConnection&) = delete;

  sqlite3* db() const { return db_; }

  // A query on the statement for `sql`, one of the constants above (cached by address).
  Result<SqliteQuery> Query(const char* sql) {
    auto it = stmts_.find(sql);
    if (it == stmts_.end()) {
      sqlite3_stmt* stmt = nullptr;
      int rc = sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
      if (rc != SQLITE_OK) return SqliteStatus(rc, std::string("preparing ") + sql, db_);
      it = stmts_.emplace(sql, stmt).first;
    }
    return SqliteQuery(db_, it->second);
  }

  // Runs a cached statement that returns no rows.
  Status Execute(const char* sql) {
    ASSIGN_OR_RETURN(SqliteQuery q, Query(sql));
    return q.Run();
  }

  // Runs uncached SQL, ignoring any rows (schema, pragmas).
  Status Exec(const char* sql) {
    char* error = nullptr;
    int rc = sqlite3_exec(db_, sql, nullptr, nullptr, &error);
    if (rc == SQLITE_OK) return Status::Ok();
    std::string message = error ? error : sqlite3_errstr(rc);
    sqlite3_free(error);
    return SqliteStatus(rc, message, nullptr);
  }

  // The first column of the first row of uncached SQL.
  Result<std::string> QueryText(const char* sql) {
    sqlite3_stmt* stmt = nullptr;
    int rc = sqlite3_prepare_v2(db_, sql, -1, &stmt, nullptr);
    if (rc != SQLITE_OK) return SqliteStatus(rc, sql, db_);
    rc = sqlite3_step(stmt);
    std::string text;
    if (rc == SQLITE_ROW) {
      const unsigned char* p = sqlite3_column_text(stmt, 0);
      if (p != nullptr) text = reinterpret_cast<const char*>(p);
    }
    sqlite3_finalize(stmt);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return SqliteStatus(rc, sql, db_);
    return text;
  }

  // Ends the open transaction, if any, discarding its changes.
  void RollbackIfOpen() {
    if (sqlite3_get_autocommit(db_) == 0) (void)Execute(kRollback);
  }

 private:
  explicit SqliteConnection(sqlite3* db) : db_(db) {}

  sqlite3* db_;
  std::unordered_map<const char*, sqlite3_stmt*> stmts_;
};

namespace {

// Runs `body` (returning a Status or Result) inside one read transaction, so every query in it
// sees the same committed revision.
template <typename F>
auto InReadTransaction(SqliteConnection& conn, F&& body) -> decltype(body()) {
  RETURN_IF_ERROR(conn.Execute(kBegin));
  auto result = body();
  Status end = conn.Execute(kCommit);
  if (!end.ok()) {
    conn.RollbackIfOpen();
    if (result.ok()) return end;
  }
  return result;
}

Result<std::optional<int64_t>> GetMeta(SqliteConnection& conn, const char* name) {
  ASSIGN_OR_RETURN(SqliteQuery q, conn.Query(kGetMeta));
  q.BindText(1, name);
  ASSIGN_OR_RETURN(bool row, q.Step());
  if (!row) return std::optional<int64_t>();
  return std::optional<int64_t>(q.Int(0));
}

Status SetMeta(SqliteConnection& conn, const char* name, int64_t value) {
  ASSIGN_OR_RETURN(SqliteQuery q, conn.Query(kSetMeta));
  q.BindText(1, name).Bind(2, value);
  return q.Run();
}

struct Marks {
  int64_t revision = 0;
  int64_t compacted = 0;
};

// The revision and compaction mark of the open transaction's snapshot.
Result<Marks> ReadMarks(SqliteConnection& conn) {
  Marks marks;
  ASSIGN_OR_RETURN(std::optional<int64_t> revision, GetMeta(conn, kMetaRevision));
  ASSIGN_OR_RETURN(std::optional<int64_t> compacted, GetMeta(conn, kMetaCompacted));
  marks.revision = revision.value_or(0);
  marks.compacted = compacted.value_or(0);
  return marks;
}

// Gone/BadRequest for a read at `revision` (non-zero) that the snapshot cannot serve.
Status CheckReadRevision(const Marks& marks, int64_t revision) {
  if (revision < marks.compacted) return CompactedError(revision, marks.compacted);
  if (revision > marks.revision) {
    return base::BadRequest("revision " + std::to_string(revision) +
                            " is newer than the current revision " +
                            std::to_string(marks.revision));
  }
  return Status::Ok();
}

}  // namespace

struct SqliteStore::PendingWrite {
  enum class Op { kCreate, kUpdate, kDelete, kCompact };
  Op op = Op::kCreate;
  std::string key;
  std::string value;
  int64_t revision = 0;  // the expected mod_revision (0 = any), or the compaction revision
  std::promise<Result<KeyValue>> done;
};

// A read connection borrowed from the pool for one read; returned when destroyed.
class SqliteStore::ReaderLease {
 public:
  ReaderLease(SqliteStore* store, std::unique_ptr<SqliteConnection> conn)
      : store_(store), conn_(std::move(conn)) {}
  ReaderLease(ReaderLease&& other) noexcept = default;
  ReaderLease& operator=(ReaderLease&&) = delete;
  ~ReaderLease() {
    if (conn_) store_->ReleaseReader(std::move(conn_));
  }
  SqliteConnection& conn() { return *conn_; }

 private:
  SqliteStore* store_;
  std::unique_ptr<SqliteConnection> conn_;
};

Result<std::unique_ptr<SqliteStore>> SqliteStore::Open(const std::string& path,
                                                       SqliteStoreOptions options) {
  const auto started = std::chrono::steady_clock::now();
  options.max_batch = std::max<size_t>(options.max_batch, 1);
  const std::string lock_path = path + ".lock";
  int lock_fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (lock_fd < 0) {
    return base::Unavailable("cannot open store lock file " + lock_path + ": " +
                             std::strerror(errno));
  }
  if (::flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
    int err = errno;
    ::close(lock_fd);
    return base::Unavailable("store database " + path + " is in use by another store (" +
                             lock_path + ": " + std::strerror(err) + ")");
  }
  struct LockGuard {
    int fd;
    ~LockGuard() {
      if (fd >= 0) ::close(fd);
    }
  } lock_guard{lock_fd};

  ASSIGN_OR_RETURN(std::unique_ptr<SqliteConnection> writer,
                   SqliteConnection::Open(path, /*writer=*/true));
  SqliteConnection& conn = *writer;

  RETURN_IF_ERROR(conn.Execute(kBeginImmediate));
  auto setup = [&]() -> Result<Marks> {
    RETURN_IF_ERROR(conn.Exec(kSchema));
    ASSIGN_OR_RETURN(std::optional<int64_t> version, GetMeta(conn, kMetaSchemaVersion));
    if (!version) {
      RETURN_IF_ERROR(SetMeta(conn, kMetaSchemaVersion, kSchemaVersion));
    } else if (*version != kSchemaVersion) {
      return base::Internal("store database " + path + " has schema version " +
                            std::to_string(*version) + ", this build reads " +
                            std::to_string(kSchemaVersion));
    }
    ASSIGN_OR_RETURN(Marks marks, ReadMarks(conn));
    ASSIGN_OR_RETURN(SqliteQuery q, conn.Query(kMaxRevision));
    ASSIGN_OR_RETURN(bool row, q.Step());
    if (row) marks.revision = std::max(marks.revision, q.Int(0));
    return marks;
  };
  Result<Marks> marks = setup();
  if (!marks.ok()) {
    conn.RollbackIfOpen();
    return marks.status();
  }
  RETURN_IF_ERROR(conn.Execute(kCommit));

  std::unordered_map<std::string, IndexEntry> index;
  {
    ASSIGN_OR_RETURN(SqliteQuery q, conn.Query(kLoadIndex));
    while (true) {
      ASSIGN_OR_RETURN(bool row, q.Step());
      if (!row) break;
      index.emplace(q.Blob(0), IndexEntry{q.Int(1), q.Int(2)});
    }
  }

  const auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - started);
  LOG_INFO << "opened store " << path << " at revision " << marks->revision << " with "
           << index.size() << " keys (compacted at " << marks->compacted << ") in "
           << elapsed.count() << " ms";
  lock_guard.fd = -1;
  return std::unique_ptr<SqliteStore>(new SqliteStore(path, lock_fd, options, std::move(writer),
                                                      std::move(index), marks->revision,
                                                      marks->compacted));
}

SqliteStore::SqliteStore(std::string path, int lock_fd, SqliteStoreOptions options,
                         std::unique_ptr<SqliteConnection> writer,
                         std::unordered_map<std::string, IndexEntry> index, int64_t revision,
                         int64_t compacted)
    : path_(std::move(path)),
      lock_fd_(lock_fd),
      options_(options),
      writer_(std::move(writer)),
      index_(std::move(index)),
      revision_(revision),
      compacted_(compacted) {
  hub_ = std::make_unique<WatchHub>(
      [this](const std::string& start, const std::string& end, int64_t after, int64_t upto,
             size_t limit) { return ReadEvents(start, end, after, upto, limit); },
      revision, options_.watch_queue_limit);
  committer_ = std::thread([this] { CommitLoop(); });
}

SqliteStore::~SqliteStore() {
  {
    std::lock_guard lock(queue_mu_);
    closing_ = true;
  }
  queue_cv_.notify_all();
  committer_.join();  // commits what is queued, then returns
  hub_->Shutdown();   // watcher threads read through the reader pool
  {
    std::lock_guard lock(readers_mu_);
    idle_readers_.clear();
  }
  writer_.reset();  // the last connection to close checkpoints the WAL
  ::close(lock_fd_);
}

// ---- Reads -------------------------------------------------------------------------------------

Result<SqliteStore::ReaderLease> SqliteStore::AcquireReader() {
  {
    std::lock_guard lock(readers_mu_);
    if (!idle_readers_.empty()) {
      std::unique_ptr<SqliteConnection> conn = std::move(idle_readers_.back());
      idle_readers_.pop_back();
      return ReaderLease(this, std::move(conn));
    }
  }
  ASSIGN_OR_RETURN(std::unique_ptr<SqliteConnection> conn,
                   SqliteConnection::Open(path_, /*writer=*/false));
  return ReaderLease(this, std::move(conn));
}

void SqliteStore::ReleaseReader(std::unique_ptr<SqliteConnection> conn) {
  conn->RollbackIfOpen();
  std::lock_guard lock(readers_mu_);
  if (idle_readers_.size() < kMaxIdleReaders) idle_readers_.push_back(std::move(conn));
}

Result<int64_t> SqliteStore::CurrentRevision() { return revision_.load(); }

int64_t SqliteStore::CompactedRevision() { return compacted_.load(); }

Result<KeyValue> SqliteStore::Get(const std::string& key, int64_t revision) {
  if (revision < 0) {
    return base::BadRequest("revision " + std::to_string(revision) + " is negative");
  }
  ASSIGN_OR_RETURN(ReaderLease lease, AcquireReader());
  SqliteConnection& conn = lease.conn();
  if (revision == 0) {
    ASSIGN_OR_RETURN(SqliteQuery q, conn.Query(kGetLatest));
    q.BindBlob(1, key);
    ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) return base::NotFound("key \"" + key + "\" not found");
    return KeyValue{key, q.Blob(2), q.Int(0), q.Int(1)};
  }
  return InReadTransaction(conn, [&]() -> Result<KeyValue> {
    ASSIGN_OR_RETURN(Marks marks, ReadMarks(conn));
    RETURN_IF_ERROR(CheckReadRevision(marks, revision));
    ASSIGN_OR_RETURN(SqliteQuery q, conn.Query(kGetAt));
    q.BindBlob(1, key).Bind(2, revision);
    ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row || q.Int(2) != 0) {
      return base::NotFound("key \"" + key + "\" not found at revision " +
                            std::to_string(revision));
    }
    return KeyValue{key, q.Blob(3), q.Int(1), q.Int(0)};
  });
}

Result<RangeResult> SqliteStore::Range(const std::string& start, const std::string& end,
                                       int64_t limit, int64_t revision) {
  if (revision < 0) {
    return base::BadRequest("revision " + std::to_string(revision) + " is negative");
  }
  if (limit < 0) return base::BadRequest("limit " + std::to_string(limit) + " is negative");
  ASSIGN_OR_RETURN(ReaderLease lease, AcquireReader());
  SqliteConnection& conn = lease.conn();
  return InReadTransaction(conn, [&]() -> Result<RangeResult> {
    ASSIGN_OR_RETURN(Marks marks, ReadMarks(conn));
    if (revision != 0) RETURN_IF_ERROR(CheckReadRevision(marks, revision));
    RangeResult result;
    result.revision = revision == 0 ? marks.revision : revision;
    if (!end.empty() && end <= start) return result;
    // One row more than asked tells whether there are more.
    const bool limited = limit > 0 && limit < std::numeric_limits<int64_t>::max();
    const size_t wanted = limited ? static_cast<size_t>(limit) + 1 : SIZE_MAX;
    // The snapshot is at the requested revision when it is the latest: read the `current` table.
    if (result.revision == marks.revision) {
      ASSIGN_OR_RETURN(SqliteQuery q,
                       conn.Query(end.empty() ? kRangeLatestUnbounded : kRangeLatest));
      q.BindBlob(1, start).Bind(3, limited ? limit + 1 : -1);
      if (!end.empty()) q.BindBlob(2, end);
      while (true) {
        ASSIGN_OR_RETURN(bool row, q.Step());
        if (!row) break;
        result.kvs.push_back(KeyValue{q.Blob(0), q.Blob(3), q.Int(1), q.Int(2)});
      }
    } else {
      ASSIGN_OR_RETURN(SqliteQuery keys,
                       conn.Query(end.empty() ? kRangeKeysAtUnbounded : kRangeKeysAt));
      keys.BindBlob(1, start).Bind(3, revision);
      if (!end.empty()) keys.BindBlob(2, end);
      while (result.kvs.size() < wanted) {
        ASSIGN_OR_RETURN(bool row, keys.Step());
        if (!row) break;
        const int64_t mod_revision = keys.Int(1);
        ASSIGN_OR_RETURN(SqliteQuery version, conn.Query(kRowAt));
        version.Bind(1, mod_revision);
        ASSIGN_OR_RETURN(bool found, version.Step());
        if (!found || version.Int(1) != 0) continue;  // a tombstone: absent at `revision`
        result.kvs.push_back(KeyValue{keys.Blob(0), version.Blob(2), version.Int(0), mod_revision});
      }
    }
    if (result.kvs.size() == wanted) {
      result.kvs.pop_back();
      result.more = true;
    }
    return result;
  });
}

Result<std::vector<WatchEvent>> SqliteStore::ReadEvents(const std::string& start,
                                                        const std::string& end, int64_t after,
                                                        int64_t upto, size_t limit) {
  ASSIGN_OR_RETURN(ReaderLease lease, AcquireReader());
  SqliteConnection& conn = lease.conn();
  return InReadTransaction(conn, [&]() -> Result<std::vector<WatchEvent>> {
    ASSIGN_OR_RETURN(Marks marks, ReadMarks(conn));
    if (after < marks.compacted) return CompactedError(after, marks.compacted);
    std::vector<WatchEvent> events;
    if (!end.empty() && end <= start) return events;
    ASSIGN_OR_RETURN(SqliteQuery q, conn.Query(end.empty() ? kEventsUnbounded : kEvents));
    q.Bind(1, after).Bind(2, upto).BindBlob(3, start).Bind(5, static_cast<int64_t>(limit));
    if (!end.empty()) q.BindBlob(4, end);
    while (true) {
      ASSIGN_OR_RETURN(bool row, q.Step());
      if (!row) break;
      WatchEvent event;
      const bool deleted = q.Int(3) != 0;
      event.type = deleted ? WatchEvent::Type::kDelete : WatchEvent::Type::kPut;
      event.kv.key = q.Blob(1);
      event.kv.mod_revision = q.Int(0);
      if (!deleted) {
        event.kv.create_revision = q.Int(2);
        event.kv.value = q.Blob(4);
      }
      if (!q.IsNull(5)) event.prev = KeyValue{event.kv.key, q.Blob(7), q.Int(6), q.Int(5)};
      events.push_back(std::move(event));
    }
    return events;
  });
}

Result<std::unique_ptr<WatchHandle>> SqliteStore::Watch(const std::string& start,
                                                        const std::string& end,
                                                        int64_t after_revision,
                                                        WatchCallback callback) {
  if (after_revision < 0) {
    return base::BadRequest("watch revision " + std::to_string(after_revision) + " is negative");
  }
  const int64_t compacted = compacted_.load();
  if (after_revision != 0 && after_revision < compacted) {
    return CompactedError(after_revision, compacted);
  }
  return hub_->Add(start, end, after_revision, std::move(callback));
}

// ---- Writes ------------------------------------------------------------------------------------

Result<KeyValue> SqliteStore::Create(const std::string& key, const std::string& value) {
  RETURN_IF_ERROR(CheckKey(key));
  auto write = std::make_unique<PendingWrite>();
  write->op = PendingWrite::Op::kCreate;
  write->key = key;
  write->value = value;
  return Submit(std::move(write));
}

Result<KeyValue> SqliteStore::Update(const std::string& key, const std::string& value,
                                     int64_t expected_mod_revision) {
  RETURN_IF_ERROR(CheckKey(key));
  auto write = std::make_unique<PendingWrite>();
  write->op = PendingWrite::Op::kUpdate;
  write->key = key;
  write->value = value;
  write->revision = expected_mod_revision;
  return Submit(std::move(write));
}

Result<KeyValue> SqliteStore::Delete(const std::string& key, int64_t expected_mod_revision) {
  RETURN_IF_ERROR(CheckKey(key));
  auto write = std::make_unique<PendingWrite>();
  write->op = PendingWrite::Op::kDelete;
  write->key = key;
  write->revision = expected_mod_revision;
  return Submit(std::move(write));
}

Status SqliteStore::Compact(int64_t revision) {
  if (revision < 0) {
    return base::BadRequest("cannot compact at negative revision " + std::to_string(revision));
  }
  auto write = std::make_unique<PendingWrite>();
  write->op = PendingWrite::Op::kCompact;
  write->revision = revision;
  Result<KeyValue> result = Submit(std::move(write));
  return result.ok() ? Status::Ok() : result.status();
}

Result<KeyValue> SqliteStore::Submit(std::unique_ptr<PendingWrite> write) {
  std::future<Result<KeyValue>> done = write->done.get_future();
  {
    std::lock_guard lock(queue_mu_);
    if (closing_) return base::Unavailable("store " + path_ + " is closing");
    queue_.push_back(std::move(write));
  }
  queue_cv_.notify_one();
  return done.get();
}

void SqliteStore::CommitLoop() {
  std::vector<std::unique_ptr<PendingWrite>> batch;
  while (true) {
    {
      std::unique_lock lock(queue_mu_);
      queue_cv_.wait(lock, [&] { return closing_ || !queue_.empty(); });
      if (queue_.empty()) return;  // closing, and everything queued is done
      while (!queue_.empty() && batch.size() < options_.max_batch) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    size_t i = 0;
    while (i < batch.size()) {
      if (batch[i]->op == PendingWrite::Op::kCompact) {
        Status status = RunCompaction(batch[i]->revision);
        if (status.ok()) {
          batch[i]->done.set_value(KeyValue{});
        } else {
          batch[i]->done.set_value(std::move(status));
        }
        ++i;
        continue;
      }
      size_t j = i;
      while (j < batch.size() && batch[j]->op != PendingWrite::Op::kCompact) ++j;
      CommitWrites(batch, i, j);
      i = j;
    }
    batch.clear();
  }
}

void SqliteStore::CommitWrites(std::vector<std::unique_ptr<PendingWrite>>& batch, size_t begin,
                               size_t end) {
  SqliteConnection& conn = *writer_;
  // Index changes of this batch, applied to index_ only once the transaction has committed.
  std::unordered_map<std::string, std::optional<IndexEntry>> staged;
  auto lookup = [&](const std::string& key) -> std::optional<IndexEntry> {
    if (auto it = staged.find(key); it != staged.end()) return it->second;
    if (auto it = index_.find(key); it != index_.end()) return it->second;
    return std::nullopt;
  };

  const int64_t first_revision = revision_.load();
  int64_t revision = first_revision;
  std::vector<Result<KeyValue>> results;
  results.reserve(end - begin);
  std::vector<WatchEvent> events;

  Status failure = conn.Execute(kBeginImmediate);
  for (size_t k = begin; k < end && failure.ok(); ++k) {
    const PendingWrite& w = *batch[k];
    const std::optional<IndexEntry> current = lookup(w.key);
    if (w.op == PendingWrite::Op::kCreate) {
      if (current) {
        results.emplace_back(base::AlreadyExists("key \"" + w.key + "\" already exists"));
        continue;
      }
    } else {
      if (!current) {
        results.emplace_back(base::NotFound("key \"" + w.key + "\" not found"));
        continue;
      }
      if (w.revision != 0 && current->mod_revision != w.revision) {
        results.emplace_back(base::Conflict("key \"" + w.key + "\" has mod_revision " +
                                            std::to_string(current->mod_revision) + ", not " +
                                            std::to_string(w.revision)));
        continue;
      }
    }

    const int64_t next = revision + 1;
    WatchEvent event;
    event.kv.key = w.key;
    event.kv.mod_revision = next;
    if (current) {
      auto prev_value = [&]() -> Result<std::string> {
        ASSIGN_OR_RETURN(SqliteQuery q, conn.Query(kRowAt));
        q.Bind(1, current->mod_revision);
        ASSIGN_OR_RETURN(bool row, q.Step());
        if (!row) {
          return base::Internal("store log has no row for revision " +
                                std::to_string(current->mod_revision) + " of key \"" + w.key +
                                "\"");
        }
        return q.Blob(2);
      }();
      if (!prev_value.ok()) {
        failure = prev_value.status();
        break;
      }
      event.prev =
          KeyValue{w.key, std::move(*prev_value), current->create_revision, current->mod_revision};
    }
    const bool deleted = w.op == PendingWrite::Op::kDelete;
    const int64_t create_revision = current ? current->create_revision : next;
    {
      auto insert = conn.Query(kInsertKv);
      if (!insert.ok()) {
        failure = insert.status();
        break;
      }
      insert->Bind(1, next)
          .BindBlob(2, w.key)
          .Bind(3, create_revision)
          .Bind(4, current ? current->mod_revision : 0)
          .Bind(5, deleted ? 1 : 0)
          .BindBlob(6, deleted ? std::string_view() : std::string_view(w.value));
      failure = insert->Run();
      if (!failure.ok()) break;
    }
    {
      auto update = conn.Query(deleted ? kDeleteCurrent : kUpsertCurrent);
      if (!update.ok()) {
        failure = update.status();
        break;
      }
      update->BindBlob(1, w.key);
      if (!deleted) update->Bind(2, create_revision).Bind(3, next);
      failure = update->Run();
      if (!failure.ok()) break;
    }

    revision = next;
    if (deleted) {
      staged[w.key] = std::nullopt;
      event.type = WatchEvent::Type::kDelete;
      KeyValue gone = *event.prev;
      gone.mod_revision = next;
      results.emplace_back(std::move(gone));
    } else {
      staged[w.key] = IndexEntry{create_revision, next};
      event.type = WatchEvent::Type::kPut;
      event.kv.value = w.value;
      event.kv.create_revision = create_revision;
      results.emplace_back(event.kv);
    }
    events.push_back(std::move(event));
  }
  if (failure.ok() && revision != first_revision) {
    failure = SetMeta(conn, kMetaRevision, revision);
  }
  if (failure.ok()) failure = conn.Execute(kCommit);

  if (!failure.ok()) {
    conn.RollbackIfOpen();
    LOG_ERROR << "store " << path_ << ": commit of " << (end - begin)
              << " writes failed: " << failure.ToString();
    for (size_t k = begin; k < end; ++k) {
      batch[k]->done.set_value(Status(failure.code(), "commit failed: " + failure.message()));
    }
    return;
  }

  for (auto& [key, entry] : staged) {
    if (entry) {
      index_[key] = *entry;
    } else {
      index_.erase(key);
    }
  }
  revision_.store(revision);
  // Watchers see a revision before any writer is told it committed, so a watch started after an
  // acknowledged write never replays it as new.
  if (!events.empty()) hub_->Publish(events, revision);
  for (size_t k = begin; k < end; ++k) batch[k]->done.set_value(std::move(results[k - begin]));
}

Status SqliteStore::RunCompaction(int64_t revision) {
  const int64_t compacted = compacted_.load();
  if (revision < compacted) return CompactedError(revision, compacted);
  if (revision > revision_.load()) {
    return base::BadRequest("cannot compact at revision " + std::to_string(revision) +
                            ", newer than the current revision " +
                            std::to_string(revision_.load()));
  }
  if (revision == compacted) return Status::Ok();

  const auto started = std::chrono::steady_clock::now();
  SqliteConnection& conn = *writer_;
  int64_t removed = 0;
  auto compact = [&]() -> Status {
    RETURN_IF_ERROR(conn.Execute(kBeginImmediate));
    {
      ASSIGN_OR_RETURN(SqliteQuery q, conn.Query(kCompact));
      q.Bind(1, revision);
      RETURN_IF_ERROR(q.Run());
      removed = sqlite3_changes64(conn.db());
    }
    RETURN_IF_ERROR(SetMeta(conn, kMetaCompacted, revision));
    return conn.Execute(kCommit);
  };
  Status status = compact();
  if (!status.ok()) {
    conn.RollbackIfOpen();
    LOG_ERROR << "store " << path_ << ": compaction at " << revision
              << " failed: " << status.ToString();
    return status;
  }
  compacted_.store(revision);
  const auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - started);
  LOG_INFO << "store " << path_ << ": compacted at revision " << revision << ", removed " << removed
           << " versions in " << elapsed.count() << " ms";
  return Status::Ok();
}

}  // namespace fulcrum::store
