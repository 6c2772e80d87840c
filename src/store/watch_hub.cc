#include "store/watch_hub.h"

#include <algorithm>
#include <utility>

#include "base/log.h"

namespace fulcrum::store {
namespace {

// Events read from history per HistoryReader call while a watcher catches up.
constexpr size_t kReplayChunk = 1000;

}  // namespace

struct WatchHub::Watcher {
  Watcher(std::string s, std::string e, WatchCallback cb)
      : start(std::move(s)), end(std::move(e)), callback(std::move(cb)) {}

  // Cancels the watch and waits for its thread, unless called from that thread.
  void Stop() {
    {
      std::lock_guard lock(mu);
      cancelled = true;
    }
    cv.notify_all();
    std::lock_guard lock(join_mu);
    if (!thread.joinable()) return;
    if (thread.get_id() == std::this_thread::get_id()) {
      // Destroyed from its own callback: the thread sees `cancelled` when the callback returns.
      thread.detach();
    } else {
      thread.join();
    }
  }

  const std::string start;
  const std::string end;
  const WatchCallback callback;

  std::mutex mu;
  std::condition_variable cv;
  std::deque<WatchBatch> queue;  // live batches, guarded by mu
  size_t queued_events = 0;      // guarded by mu
  // Every revision up to `pos` has been delivered (or had nothing for this watcher).
  int64_t pos = 0;  // guarded by mu
  // The latest revision the hub has published; an unsynced watcher reads history up to it.
  int64_t known_published = 0;  // guarded by mu
  bool synced = false;          // guarded by mu
  bool cancelled = false;       // guarded by mu
  bool ended = false;           // guarded by mu; set when history was lost

  std::mutex join_mu;
  std::thread thread;  // guarded by join_mu once started
};

class WatchHub::Handle final : public WatchHandle {
 public:
  explicit Handle(std::shared_ptr<Watcher> w) : w_(std::move(w)) {}
  ~Handle() override { w_->Stop(); }

 private:
  std::shared_ptr<Watcher> w_;
};

WatchHub::WatchHub(HistoryReader reader, int64_t revision, size_t queue_limit)
    : reader_(std::move(reader)),
      queue_limit_(std::max<size_t>(queue_limit, 1)),
      published_(revision) {}

WatchHub::~WatchHub() { Shutdown(); }

int64_t WatchHub::PublishedRevision() {
  std::lock_guard lock(mu_);
  return published_;
}

void WatchHub::Publish(const std::vector<WatchEvent>& events, int64_t revision) {
  std::lock_guard hub_lock(mu_);
  published_ = revision;
  auto live = watchers_.begin();
  for (auto it = watchers_.begin(); it != watchers_.end(); ++it) {
    std::shared_ptr<Watcher> w = it->lock();
    if (!w) continue;
    if (live != it) *live = std::move(*it);  // a self-move would empty the weak_ptr
    ++live;

    std::lock_guard lock(w->mu);
    w->known_published = revision;
    if (w->cancelled || w->ended || !w->synced) continue;
    WatchBatch batch;
    batch.revision = revision;
    for (const WatchEvent& e : events) {
      if (KeyInRange(e.kv.key, w->start, w->end)) batch.events.push_back(e);
    }
    if (batch.events.empty()) continue;
    if (w->queued_events + batch.events.size() > queue_limit_) {
      // The consumer is behind: drop its queue and let it catch up from history (from w->pos).
      w->queue.clear();
      w->queued_events = 0;
      w->synced = false;
    } else {
      w->queued_events += batch.events.size();
      w->queue.push_back(std::move(batch));
    }
    w->cv.notify_one();
  }
  watchers_.erase(live, watchers_.end());
}

std::unique_ptr<WatchHandle> WatchHub::Add(std::string start, std::string end,
                                           int64_t after_revision, WatchCallback callback) {
  auto w = std::make_shared<Watcher>(std::move(start), std::move(end), std::move(callback));
  std::lock_guard hub_lock(mu_);
  {
    std::lock_guard lock(w->mu);
    w->known_published = published_;
    w->pos = after_revision == 0 ? published_ : after_revision;
    w->synced = w->pos >= published_;
    if (shut_down_) w->cancelled = true;
  }
  if (!shut_down_) {
    watchers_.push_back(w);
    std::lock_guard lock(w->join_mu);
    w->thread = std::thread([this, w] { Run(w); });
  }
  return std::make_unique<Handle>(std::move(w));
}

void WatchHub::Shutdown() {
  std::vector<std::shared_ptr<Watcher>> watchers;
  {
    std::lock_guard lock(mu_);
    shut_down_ = true;
    for (auto& weak : watchers_) {
      if (auto w = weak.lock()) watchers.push_back(std::move(w));
    }
    watchers_.clear();
  }
  for (auto& w : watchers) w->Stop();
}

void WatchHub::Run(const std::shared_ptr<Watcher>& w) {
  // After `cancelled` is seen this returns without touching the hub: a watcher destroyed from its
  // own callback runs detached and may outlive the hub.
  std::unique_lock lock(w->mu);
  while (true) {
    w->cv.wait(lock, [&] { return w->cancelled || !w->queue.empty() || !w->synced; });
    if (w->cancelled) return;

    if (!w->queue.empty()) {
      WatchBatch batch = std::move(w->queue.front());
      w->queue.pop_front();
      w->queued_events -= batch.events.size();
      // A watch that starts after a revision not yet published skips the older events.
      const int64_t floor = w->pos;
      w->pos = std::max(w->pos, batch.revision);
      lock.unlock();
      std::erase_if(batch.events,
                    [floor](const WatchEvent& e) { return e.kv.mod_revision <= floor; });
      if (!batch.events.empty()) w->callback(batch);
      lock.lock();
      continue;
    }

    // Unsynced: catch up from history, then switch to the live queue.
    if (w->pos >= w->known_published) {
      w->synced = true;
      continue;
    }
    const int64_t from = w->pos;
    const int64_t upto = w->known_published;
    lock.unlock();
    Result<std::vector<WatchEvent>> events = reader_(w->start, w->end, from, upto, kReplayChunk);
    if (!events.ok()) {
      if (events.status().code() != base::Code::kGone) {
        LOG_ERROR << "watch on [" << w->start << ", " << w->end << ") ended: reading history after "
                  << from << " failed: " << events.status().ToString();
      }
      lock.lock();
      if (w->cancelled) return;
      w->ended = true;
      w->queue.clear();
      lock.unlock();
      WatchBatch end_batch;
      end_batch.revision = from;
      end_batch.compacted = true;
      w->callback(end_batch);
      return;
    }
    const int64_t reached = events->size() < kReplayChunk ? upto : events->back().kv.mod_revision;
    lock.lock();
    if (w->cancelled) return;
    lock.unlock();
    if (!events->empty()) {
      WatchBatch batch;
      batch.events = std::move(*events);
      batch.revision = reached;
      w->callback(batch);
    }
    lock.lock();
    w->pos = reached;
  }
}

}  // namespace fulcrum::store
