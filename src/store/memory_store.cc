#include "store/memory_store.h"

#include <algorithm>

namespace fulcrum::store {
namespace {

Status CheckKey(const std::string& key) {
  if (key.empty()) return base::BadRequest("key must not be empty");
  return Status::Ok();
}

}  // namespace

MemoryStore::MemoryStore(MemoryStoreOptions options)
    : hub_(std::make_unique<WatchHub>(
          [this](const std::string& start, const std::string& end, int64_t after, int64_t upto,
                 size_t limit) { return ReadEvents(start, end, after, upto, limit); },
          0, options.watch_queue_limit)) {}

MemoryStore::~MemoryStore() { hub_->Shutdown(); }

const MemoryStore::Version* MemoryStore::VisibleAt(const History& history, int64_t revision) {
  auto it = std::upper_bound(history.begin(), history.end(), revision,
                             [](int64_t rev, const Version& v) { return rev < v.revision; });
  if (it == history.begin()) return nullptr;
  --it;
  return it->deleted ? nullptr : &*it;
}

Status MemoryStore::CheckReadRevision(int64_t revision) const {
  if (revision < 0) {
    return base::BadRequest("revision " + std::to_string(revision) + " is negative");
  }
  if (revision < compacted_) {
    return base::Gone("revision " + std::to_string(revision) + " has been compacted (oldest is " +
                      std::to_string(compacted_) + ")");
  }
  if (revision > revision_) {
    return base::BadRequest("revision " + std::to_string(revision) +
                            " is newer than the current revision " + std::to_string(revision_));
  }
  return Status::Ok();
}

Result<int64_t> MemoryStore::CurrentRevision() {
  std::lock_guard lock(mu_);
  return revision_;
}

Result<KeyValue> MemoryStore::Get(const std::string& key, int64_t revision) {
  std::lock_guard lock(mu_);
  if (revision != 0) RETURN_IF_ERROR(CheckReadRevision(revision));
  auto it = keys_.find(key);
  const Version* v =
      it == keys_.end() ? nullptr : VisibleAt(it->second, revision == 0 ? revision_ : revision);
  if (v == nullptr) return base::NotFound("key \"" + key + "\" not found");
  return KeyValue{key, v->value, v->create_revision, v->revision};
}

Result<RangeResult> MemoryStore::Range(const std::string& start, const std::string& end,
                                       int64_t limit, int64_t revision) {
  std::lock_guard lock(mu_);
  if (revision != 0) RETURN_IF_ERROR(CheckReadRevision(revision));
  RangeResult result;
  result.revision = revision == 0 ? revision_ : revision;
  for (auto it = keys_.lower_bound(start); it != keys_.end(); ++it) {
    if (!end.empty() && it->first >= end) break;
    const Version* v = VisibleAt(it->second, result.revision);
    if (v == nullptr) continue;
    if (limit > 0 && static_cast<int64_t>(result.kvs.size()) == limit) {
      result.more = true;
      break;
    }
    result.kvs.push_back(KeyValue{it->first, v->value, v->create_revision, v->revision});
  }
  return result;
}

KeyValue MemoryStore::Commit(const std::string& key, History& history, Version version) {
  WatchEvent event;
  if (!history.empty() && !history.back().deleted) {
    const Version& prev = history.back();
    event.prev = KeyValue{key, prev.value, prev.create_revision, prev.revision};
  }
  version.revision = ++revision_;
  event.type = version.deleted ? WatchEvent::Type::kDelete : WatchEvent::Type::kPut;
  event.kv.key = key;
  event.kv.mod_revision = version.revision;
  if (!version.deleted) {
    event.kv.value = version.value;
    event.kv.create_revision = version.create_revision;
  }
  history.push_back(version);
  log_.emplace_back(version.revision, key);
  hub_->Publish({event}, version.revision);
  if (version.deleted) {
    KeyValue deleted = *event.prev;
    deleted.mod_revision = version.revision;
    return deleted;
  }
  return event.kv;
}

Result<KeyValue> MemoryStore::Create(const std::string& key, const std::string& value) {
  RETURN_IF_ERROR(CheckKey(key));
  std::lock_guard lock(mu_);
  History& history = keys_[key];
  if (!history.empty() && !history.back().deleted) {
    return base::AlreadyExists("key \"" + key + "\" already exists");
  }
  Version v;
  v.create_revision = revision_ + 1;
  v.value = value;
  return Commit(key, history, std::move(v));
}

Result<MemoryStore::History*> MemoryStore::LiveHistory(const std::string& key,
                                                       int64_t expected_mod_revision) {
  auto it = keys_.find(key);
  if (it == keys_.end() || it->second.back().deleted) {
    return base::NotFound("key \"" + key + "\" not found");
  }
  const Version& current = it->second.back();
  if (expected_mod_revision != 0 && current.revision != expected_mod_revision) {
    return base::Conflict("key \"" + key + "\" has mod_revision " +
                          std::to_string(current.revision) + ", not " +
                          std::to_string(expected_mod_revision));
  }
  return &it->second;
}

Result<KeyValue> MemoryStore::Update(const std::string& key, const std::string& value,
                                     int64_t expected_mod_revision) {
  RETURN_IF_ERROR(CheckKey(key));
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(History* history, LiveHistory(key, expected_mod_revision));
  Version v;
  v.create_revision = history->back().create_revision;
  v.value = value;
  return Commit(key, *history, std::move(v));
}

Result<KeyValue> MemoryStore::Delete(const std::string& key, int64_t expected_mod_revision) {
  RETURN_IF_ERROR(CheckKey(key));
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(History* history, LiveHistory(key, expected_mod_revision));
  Version v;
  v.create_revision = history->back().create_revision;
  v.deleted = true;
  return Commit(key, *history, std::move(v));
}

Result<std::unique_ptr<WatchHandle>> MemoryStore::Watch(const std::string& start,
                                                        const std::string& end,
                                                        int64_t after_revision,
                                                        WatchCallback callback) {
  if (after_revision < 0) {
    return base::BadRequest("watch revision " + std::to_string(after_revision) + " is negative");
  }
  std::lock_guard lock(mu_);
  if (after_revision != 0 && after_revision < compacted_) {
    return base::Gone("revision " + std::to_string(after_revision) +
                      " has been compacted (oldest is " + std::to_string(compacted_) + ")");
  }
  return hub_->Add(start, end, after_revision, std::move(callback));
}

Result<std::vector<WatchEvent>> MemoryStore::ReadEvents(const std::string& start,
                                                        const std::string& end, int64_t after,
                                                        int64_t upto, size_t limit) {
  std::lock_guard lock(mu_);
  if (after < compacted_) {
    return base::Gone("revision " + std::to_string(after) + " has been compacted (oldest is " +
                      std::to_string(compacted_) + ")");
  }
  std::vector<WatchEvent> events;
  auto it = std::upper_bound(log_.begin(), log_.end(), after,
                             [](int64_t rev, const auto& entry) { return rev < entry.first; });
  for (; it != log_.end() && it->first <= upto && events.size() < limit; ++it) {
    const std::string& key = it->second;
    if (!KeyInRange(key, start, end)) continue;
    const History& history = keys_.at(key);
    auto v = std::lower_bound(history.begin(), history.end(), it->first,
                              [](const Version& v, int64_t rev) { return v.revision < rev; });
    WatchEvent event;
    event.type = v->deleted ? WatchEvent::Type::kDelete : WatchEvent::Type::kPut;
    event.kv.key = key;
    event.kv.mod_revision = v->revision;
    if (!v->deleted) {
      event.kv.value = v->value;
      event.kv.create_revision = v->create_revision;
    }
    if (v != history.begin() && !(v - 1)->deleted) {
      const Version& prev = *(v - 1);
      event.prev = KeyValue{key, prev.value, prev.create_revision, prev.revision};
    }
    events.push_back(std::move(event));
  }
  return events;
}

Status MemoryStore::Compact(int64_t revision) {
  if (revision < 0) {
    return base::BadRequest("cannot compact at negative revision " + std::to_string(revision));
  }
  std::lock_guard lock(mu_);
  if (revision < compacted_) {
    return base::Gone("revision " + std::to_string(revision) + " has been compacted (oldest is " +
                      std::to_string(compacted_) + ")");
  }
  if (revision > revision_) {
    return base::BadRequest("cannot compact at revision " + std::to_string(revision) +
                            ", newer than the current revision " + std::to_string(revision_));
  }
  if (revision == compacted_) return Status::Ok();
  for (auto it = keys_.begin(); it != keys_.end();) {
    History& history = it->second;
    auto visible = std::upper_bound(history.begin(), history.end(), revision,
                                    [](int64_t rev, const Version& v) { return rev < v.revision; });
    if (visible != history.begin()) {
      --visible;  // the latest version at `revision`: kept unless it is a tombstone
      if (visible->deleted) ++visible;
      history.erase(history.begin(), visible);
    }
    it = history.empty() ? keys_.erase(it) : std::next(it);
  }
  log_.erase(log_.begin(),
             std::upper_bound(log_.begin(), log_.end(), revision,
                              [](int64_t rev, const auto& entry) { return rev < entry.first; }));
  compacted_ = revision;
  return Status::Ok();
}

int64_t MemoryStore::CompactedRevision() {
  std::lock_guard lock(mu_);
  return compacted_;
}

}  // namespace fulcrum::store
