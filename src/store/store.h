#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/status.h"

namespace fulcrum::store {

using base::Result;
using base::Status;

// One version of one key. Revisions are global and increase by one per committed write, as in
// etcd's data model: create_revision is the revision that created the key (since its last
// deletion), mod_revision the one that last changed it.
struct KeyValue {
  std::string key;
  std::string value;
  int64_t create_revision = 0;
  int64_t mod_revision = 0;
};

struct RangeResult {
  std::vector<KeyValue> kvs;  // in key order
  bool more = false;          // true when `limit` cut the result short
  int64_t revision = 0;       // the revision the range was read at
};

struct WatchEvent {
  enum class Type { kPut, kDelete };
  Type type = Type::kPut;
  // For a put: the new version. For a delete: key set, value empty, mod_revision = the revision of
  // the delete.
  KeyValue kv;
  // The version before this event, when there was one.
  std::optional<KeyValue> prev;
};

// Receives the events of one watch, in revision order, each revision's events together. Called
// from a thread the store owns; must not call back into the store's write path synchronously.
// An empty batch with `compacted` set means the watch fell behind compaction and has ended.
struct WatchBatch {
  std::vector<WatchEvent> events;
  int64_t revision = 0;  // the store revision these events bring the watcher to
  bool compacted = false;
};
using WatchCallback = std::function<void(const WatchBatch&)>;

// Cancels the watch when destroyed. After the destructor returns, the callback is not running and
// will not run again.
class WatchHandle {
 public:
  virtual ~WatchHandle() = default;
};

// A revisioned key-value store with watch. Implementations are thread-safe.
//
// Errors: NotFound for a missing key, AlreadyExists when Create finds the key, Conflict when a
// compare on mod_revision fails, Gone when a revision has been compacted away, Internal or
// Unavailable when the backend fails. A failed write changes nothing.
class Store {
 public:
  virtual ~Store() = default;

  // The latest committed revision (0 for an empty store).
  virtual Result<int64_t> CurrentRevision() = 0;

  // The key at `revision` (0 = latest). NotFound if absent then; Gone if compacted.
  virtual Result<KeyValue> Get(const std::string& key, int64_t revision = 0) = 0;

  // Keys in [start, end) in key order, at `revision` (0 = latest), at most `limit` (0 = no limit).
  // Use RangeEndForPrefix(prefix) as `end` to range over a prefix.
  virtual Result<RangeResult> Range(const std::string& start, const std::string& end,
                                    int64_t limit = 0, int64_t revision = 0) = 0;

  // Writes `value` under `key` if the key does not exist. Returns the stored version.
  virtual Result<KeyValue> Create(const std::string& key, const std::string& value) = 0;

  // Replaces the value if the key's mod_revision equals `expected_mod_revision` (0 = any).
  // NotFound if the key does not exist; Conflict if the revision differs.
  virtual Result<KeyValue> Update(const std::string& key, const std::string& value,
                                  int64_t expected_mod_revision) = 0;

  // Deletes the key if its mod_revision equals `expected_mod_revision` (0 = any). Returns the
  // version that was deleted, with mod_revision set to the revision of the delete.
  virtual Result<KeyValue> Delete(const std::string& key, int64_t expected_mod_revision) = 0;

  // Delivers every change to keys in [start, end) after `after_revision` (0 = changes from now
  // on). Gone if `after_revision` is older than the compacted revision.
  virtual Result<std::unique_ptr<WatchHandle>> Watch(const std::string& start,
                                                     const std::string& end,
                                                     int64_t after_revision,
                                                     WatchCallback callback) = 0;

  // Discards versions superseded at or before `revision`. Reads and watches at older revisions
  // then fail with Gone.
  virtual Status Compact(int64_t revision) = 0;

  // The oldest revision still readable (the last compaction), 0 if never compacted.
  virtual int64_t CompactedRevision() = 0;
};

// The smallest key greater than every key that starts with `prefix`.
std::string RangeEndForPrefix(const std::string& prefix);

// Opens a store from a URI: "memory:" (tests only), "sqlite:/path/to/file.db".
// A later backend adds "etcd:http://host:port,...".
Result<std::unique_ptr<Store>> OpenStore(const std::string& uri);

}  // namespace fulcrum::store
