#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "store/store.h"
#include "store/watch_hub.h"

namespace fulcrum::store {

struct MemoryStoreOptions {
  // Events a watcher may have queued before it is switched to catching up from history.
  size_t watch_queue_limit = 10000;
};

// An in-memory MVCC store for unit tests: the same semantics as the SQLite store (global revision,
// per-key history, watch from a past revision, compaction), no durability. Opened by
// OpenStore("memory:").
//
// Semantics shared with SqliteStore where store.h leaves room:
//  - An empty `end` in Range and Watch means no upper bound (RangeEndForPrefix returns "" when
//    no key bounds the prefix, e.g. for the empty prefix).
//  - Keys must not be empty: writes with an empty key fail with BadRequest.
//  - Reading at a revision newer than the current one fails with BadRequest; reading at exactly
//    the compacted revision works, older fails with Gone.
//  - Compact(r): Gone if r is older than the last compaction, a no-op if equal, BadRequest if r is
//    newer than the current revision.
//  - A delete event's kv has key and mod_revision set, value empty and create_revision 0; its
//    `prev` is the deleted version.
//  - WatchHandles may be destroyed from inside their own callback, and may outlive the store. The
//    store must not be destroyed from inside a watch callback.
class MemoryStore final : public Store {
 public:
  explicit MemoryStore(MemoryStoreOptions options = {});
  ~MemoryStore() override;

  MemoryStore(const MemoryStore&) = delete;
  MemoryStore& operator=(const MemoryStore&) = delete;

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
  struct Version {
    int64_t revision = 0;
    int64_t create_revision = 0;
    bool deleted = false;
    std::string value;
  };
  using History = std::vector<Version>;  // oldest first

  // The version of `history` visible at `revision`, null if none (or a tombstone).
  static const Version* VisibleAt(const History& history, int64_t revision);
  // Gone/BadRequest for a read at `revision` (non-zero) that cannot be served. Requires mu_.
  Status CheckReadRevision(int64_t revision) const;
  // Appends a version of `key` at the next revision and publishes it. Requires mu_.
  KeyValue Commit(const std::string& key, History& history, Version version);
  // The live history of `key` whose latest revision is `expected_mod_revision` (0 = any):
  // NotFound or Conflict otherwise. Requires mu_.
  Result<History*> LiveHistory(const std::string& key, int64_t expected_mod_revision);
  Result<std::vector<WatchEvent>> ReadEvents(const std::string& start, const std::string& end,
                                             int64_t after, int64_t upto, size_t limit);

  std::mutex mu_;
  std::map<std::string, History> keys_;               // guarded by mu_
  std::vector<std::pair<int64_t, std::string>> log_;  // (revision, key), guarded by mu_
  int64_t revision_ = 0;                              // guarded by mu_
  int64_t compacted_ = 0;                             // guarded by mu_
  // Shut down first in the destructor: watcher threads read history through mu_.
  std::unique_ptr<WatchHub> hub_;
};

}  // namespace fulcrum::store
