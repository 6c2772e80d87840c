#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "store/store.h"

namespace fulcrum::store {

// True when `key` lies in [start, end); an empty `end` means no upper bound.
inline bool KeyInRange(const std::string& key, const std::string& start, const std::string& end) {
  return key >= start && (end.empty() || key < end);
}

// Reads the committed events on keys in [start, end) with after < revision <= upto, in revision
// order, at most `limit` of them. Gone when `after` is older than the compacted revision. Every
// revision of these stores carries exactly one event (there are no multi-key transactions), so a
// cut at `limit` never splits a revision.
using HistoryReader = std::function<Result<std::vector<WatchEvent>>(
    const std::string& start, const std::string& end, int64_t after, int64_t upto, size_t limit)>;

// Fans committed events out to watchers. Shared by the store backends; not part of the public
// store API.
//
// Each watcher has its own delivery thread, so a slow callback delays only its own watch. A
// watcher is "synced" while it receives live batches through its queue, and "unsynced" while it
// reads history through the HistoryReader: when it starts from a past revision, and again whenever
// its queue would exceed `queue_limit` events (the queue is dropped and the watcher catches up from
// the store's log, so a stalled consumer costs no unbounded memory). The switch between the two
// happens under the watcher's lock against the latest published revision, so no event is skipped
// or delivered twice. When history is gone (compaction) the watcher gets one batch with
// `compacted` set and ends.
//
// Thread-safe. Publish must be called in revision order, for every committed revision, after the
// revision is readable through the HistoryReader.
class WatchHub {
 public:
  // `revision` is the store's revision when the hub is created (nothing published yet).
  WatchHub(HistoryReader reader, int64_t revision, size_t queue_limit);
  // Calls Shutdown().
  ~WatchHub();

  WatchHub(const WatchHub&) = delete;
  WatchHub& operator=(const WatchHub&) = delete;

  // Publishes the events committed in (previous published revision, revision]. `events` may be
  // empty (the revisions then carry nothing for any watcher).
  void Publish(const std::vector<WatchEvent>& events, int64_t revision);

  // Starts a watch on [start, end) after `after_revision` (0 = after the last published revision).
  // The caller checks `after_revision` against compaction first; a later compaction race ends the
  // watch with a `compacted` batch.
  //
  // The handle may be destroyed from any thread, including from inside its own callback (the
  // callback is then not called again once it returns). It may outlive the hub.
  std::unique_ptr<WatchHandle> Add(std::string start, std::string end, int64_t after_revision,
                                   WatchCallback callback);

  // Stops every watcher and waits for their threads (except one calling from its own callback).
  // After it returns the HistoryReader is not called again. Must not be called with a lock held
  // that a HistoryReader call takes.
  void Shutdown();

  int64_t PublishedRevision();

 private:
  struct Watcher;
  class Handle;

  void Run(const std::shared_ptr<Watcher>& w);

  const HistoryReader reader_;
  const size_t queue_limit_;

  std::mutex mu_;
  int64_t published_;                             // guarded by mu_
  std::vector<std::weak_ptr<Watcher>> watchers_;  // guarded by mu_
  bool shut_down_ = false;                        // guarded by mu_
};

}  // namespace fulcrum::store
